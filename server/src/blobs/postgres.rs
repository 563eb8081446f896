//! Blobs in PostgreSQL (schema 7: `blobs`, `blob_chunks`), so every server
//! node of a province reads and resumes the same uploads. A chunk is one
//! row, committed before it is acknowledged; the blob's row is locked
//! while a chunk is added, so two nodes taking chunks of one upload at
//! once keep it whole.

use std::sync::Arc;

use ::postgres::Client;

use super::{BlobError, BlobInfo, BlobResult, BlobStore, Progress, new_part, now_ms};
use crate::store::postgres::ClientPool;

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
    fn progress(&self, hash: &str) -> BlobResult<Option<Progress>> {
        self.with(|c| {
            let row = c.query_opt("SELECT received, complete FROM blobs WHERE hash = $1", &[&hash])?;
            Ok(row.map(|r| Progress { received: u(r.get(0)), complete: r.get(1) }))
        })
    }

    fn append(&self, hash: &str, size: u64, offset: u64, bytes: &[u8]) -> BlobResult<Progress> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO blobs (hash, size, received, complete, written_at) VALUES ($1, $2, 0, false, $3)
                 ON CONFLICT (hash) DO NOTHING",
                &[&hash, &i(size), &now_ms()],
            )?;
            let row = tx.query_one("SELECT received, complete FROM blobs WHERE hash = $1 FOR UPDATE", &[&hash])?;
            let (received, complete) = (u(row.get(0)), row.get::<_, bool>(1));
            if complete {
                return Ok(Progress { received, complete: true });
            }
            let fresh = new_part(size, received, offset, bytes)?;
            if !fresh.is_empty() {
                tx.execute(
                    "INSERT INTO blob_chunks (hash, offset_at, bytes) VALUES ($1, $2, $3)",
                    &[&hash, &i(received), &fresh],
                )?;
            }
            let received = received + fresh.len() as u64;
            if received < size {
                tx.execute(
                    "UPDATE blobs SET received = $2, written_at = $3 WHERE hash = $1",
                    &[&hash, &i(received), &now_ms()],
                )?;
                tx.commit()?;
                return Ok(Progress { received, complete: false });
            }
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            for r in tx.query("SELECT bytes FROM blob_chunks WHERE hash = $1 ORDER BY offset_at", &[&hash])? {
                sha2::Digest::update(&mut hasher, r.get::<_, &[u8]>(0));
            }
            if hex::encode(sha2::Digest::finalize(hasher)) != hash {
                tx.execute("DELETE FROM blobs WHERE hash = $1", &[&hash])?;
                tx.commit()?;
                return Err(BlobError::HashMismatch(hash.to_owned()));
            }
            tx.execute(
                "UPDATE blobs SET received = $2, complete = true, written_at = $3 WHERE hash = $1",
                &[&hash, &i(received), &now_ms()],
            )?;
            tx.commit()?;
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
        self.with(|c| Ok(c.execute("DELETE FROM blobs WHERE hash = $1", &[&hash])? > 0))
    }

    fn list(&self) -> BlobResult<Vec<BlobInfo>> {
        self.with(|c| {
            let rows = c.query("SELECT hash, received, complete, written_at FROM blobs ORDER BY hash", &[])?;
            Ok(rows
                .iter()
                .map(|r| BlobInfo { hash: r.get(0), received: u(r.get(1)), complete: r.get(2), written_at: r.get(3) })
                .collect())
        })
    }
}
