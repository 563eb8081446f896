//! Blobs in PostgreSQL, so every server node of a province reads and
//! resumes the same uploads: complete blobs in `blobs` and `blob_chunks`
//! (schema 7), each uploader's upload under way in `blob_uploads` and
//! `blob_upload_chunks` (schema 9). A chunk is one row, committed before
//! it is acknowledged; the upload's row is locked while a chunk is added,
//! so two nodes taking chunks of one upload at once keep it whole. A
//! complete upload's chunks are copied into the blob in the transaction
//! that checks its hash.

use std::sync::Arc;

use ::postgres::Client;

use super::{BlobError, BlobInfo, BlobResult, BlobStore, Progress, new_part, upload_key};
use crate::pg_pool::ClientPool;

/// Blobs in the database of a store, over the store's connections.
pub struct PgBlobStore {
    pool: Arc<ClientPool>,
}

impl PgBlobStore {
    /// Blobs in the database `pool` connects to.
    pub fn new(pool: Arc<ClientPool>) -> PgBlobStore {
        PgBlobStore { pool }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> BlobResult<T>) -> BlobResult<T> {
        self.pool.with(f)
    }
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl BlobStore for PgBlobStore {
    fn complete(&self, hash: &str) -> BlobResult<Option<u64>> {
        self.with(|c| {
            let row = c.query_opt("SELECT size FROM blobs WHERE hash = $1 AND complete", &[&hash])?;
            Ok(row.map(|r| u(r.get(0))))
        })
    }

    fn progress(&self, hash: &str, uploader: &str) -> BlobResult<Option<Progress>> {
        let key = upload_key(uploader);
        self.with(|c| {
            let row =
                c.query_opt("SELECT received FROM blob_uploads WHERE hash = $1 AND upload_key = $2", &[&hash, &key])?;
            Ok(row.map(|r| Progress { received: u(r.get(0)), complete: false }))
        })
    }

    fn append(&self, hash: &str, uploader: &str, size: u64, offset: u64, bytes: &[u8]) -> BlobResult<Progress> {
        let key = upload_key(uploader);
        self.with(|c| {
            let mut tx = c.transaction()?;
            // The upload's row, made if missing and locked. Another chunk of
            // the same upload may complete (and delete the row) between the
            // two statements: then this chunk begins a new upload.
            let mut locked = None;
            for _ in 0..3 {
                tx.execute(
                    "INSERT INTO blob_uploads (hash, upload_key, size, received, written_at) VALUES ($1, $2, $3, 0, $4)
                     ON CONFLICT (hash, upload_key) DO NOTHING",
                    &[&hash, &key, &i(size), &crate::clock::now_ms()],
                )?;
                locked = tx.query_opt(
                    "SELECT received FROM blob_uploads WHERE hash = $1 AND upload_key = $2 FOR UPDATE",
                    &[&hash, &key],
                )?;
                if locked.is_some() {
                    break;
                }
            }
            let Some(row) = locked else { return Err(BlobError::Io("the upload kept ending under this chunk".into())) };
            let received = u(row.get(0));
            let fresh = new_part(size, received, offset, bytes)?;
            if !fresh.is_empty() {
                tx.execute(
                    "INSERT INTO blob_upload_chunks (hash, upload_key, offset_at, bytes) VALUES ($1, $2, $3, $4)",
                    &[&hash, &key, &i(received), &fresh],
                )?;
            }
            let received = received + fresh.len() as u64;
            if received < size {
                tx.execute(
                    "UPDATE blob_uploads SET received = $3, written_at = $4 WHERE hash = $1 AND upload_key = $2",
                    &[&hash, &key, &i(received), &crate::clock::now_ms()],
                )?;
                tx.commit()?;
                return Ok(Progress { received, complete: false });
            }
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            for r in tx.query(
                "SELECT bytes FROM blob_upload_chunks WHERE hash = $1 AND upload_key = $2 ORDER BY offset_at",
                &[&hash, &key],
            )? {
                sha2::Digest::update(&mut hasher, r.get::<_, &[u8]>(0));
            }
            let matched = hex::encode(sha2::Digest::finalize(hasher)) == hash;
            if matched {
                // The first upload to complete makes the blob; a later one
                // (the same bytes) waits on its row and adds nothing.
                let made = tx.execute(
                    "INSERT INTO blobs (hash, size, received, complete, written_at) VALUES ($1, $2, $2, true, $3)
                     ON CONFLICT (hash) DO NOTHING",
                    &[&hash, &i(size), &crate::clock::now_ms()],
                )?;
                if made == 1 {
                    tx.execute(
                        "INSERT INTO blob_chunks (hash, offset_at, bytes)
                         SELECT hash, offset_at, bytes FROM blob_upload_chunks WHERE hash = $1 AND upload_key = $2",
                        &[&hash, &key],
                    )?;
                }
            }
            tx.execute("DELETE FROM blob_uploads WHERE hash = $1 AND upload_key = $2", &[&hash, &key])?;
            tx.commit()?;
            if !matched {
                return Err(BlobError::HashMismatch(hash.to_owned()));
            }
            Ok(Progress { received, complete: true })
        })
    }

    fn get(&self, hash: &str) -> BlobResult<Option<Vec<u8>>> {
        self.with(|c| {
            let done = c.query_opt("SELECT size FROM blobs WHERE hash = $1 AND complete", &[&hash])?;
            let Some(done) = done else { return Ok(None) };
            let mut out = Vec::with_capacity(usize::try_from(done.get::<_, i64>(0)).unwrap_or(0));
            for r in c.query("SELECT bytes FROM blob_chunks WHERE hash = $1 ORDER BY offset_at", &[&hash])? {
                out.extend_from_slice(r.get::<_, &[u8]>(0));
            }
            Ok(Some(out))
        })
    }

    fn delete(&self, hash: &str) -> BlobResult<bool> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute("DELETE FROM blobs WHERE hash = $1", &[&hash])?
                + tx.execute("DELETE FROM blob_uploads WHERE hash = $1", &[&hash])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn delete_upload(&self, hash: &str, upload: &str) -> BlobResult<bool> {
        self.with(|c| {
            Ok(c.execute("DELETE FROM blob_uploads WHERE hash = $1 AND upload_key = $2", &[&hash, &upload])? > 0)
        })
    }

    fn list(&self) -> BlobResult<Vec<BlobInfo>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT hash, NULL::text, received, written_at FROM blobs WHERE complete
                 UNION ALL SELECT hash, upload_key, received, written_at FROM blob_uploads
                 ORDER BY 1, 2 NULLS FIRST",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let upload: Option<String> = r.get(1);
                    BlobInfo {
                        hash: r.get(0),
                        complete: upload.is_none(),
                        upload,
                        received: u(r.get(2)),
                        written_at: r.get(3),
                    }
                })
                .collect())
        })
    }
}
