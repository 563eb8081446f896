//! Photo bytes on the phone: content-addressed rows in the (encrypted)
//! store, the ones this phone must upload, and how far each upload got.

use crate::model::sha256_hex;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::Store;
use crate::error::Result;

/// A blob waiting to go to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBlob {
    /// SHA-256, hex.
    pub hash: String,
    /// The record that references it.
    pub record_id: Uuid,
    /// Media type.
    pub mime: String,
    /// Bytes in all.
    pub size: u64,
    /// Bytes the server has confirmed.
    pub sent: u64,
}

/// A photo (or thumbnail) this phone took, saved with its record's change.
#[derive(Debug, Clone, Copy)]
pub struct NewBlob<'a> {
    /// Media type.
    pub mime: &'a str,
    /// The bytes as they will be sent.
    pub bytes: &'a [u8],
}

/// What the phone holds of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobState {
    /// The bytes are on this phone.
    pub on_phone: bool,
    /// This phone still has to upload it.
    pub upload: bool,
    /// Bytes the server confirmed.
    pub sent: u64,
}

/// Keep blob `bytes` for `record_id` (`upload`: this phone took it and
/// must send it). Storing the same bytes twice is harmless; a blob once to
/// upload stays so until it is sent.
pub(crate) fn insert_blob(
    conn: &rusqlite::Connection,
    record_id: Uuid,
    mime: &str,
    bytes: &[u8],
    upload: bool,
    now: i64,
) -> Result<String> {
    let hash = sha256_hex(bytes);
    conn.execute(
        "INSERT INTO attachments (hash, record_id, mime, size, bytes, upload, sent, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
         ON CONFLICT (hash) DO UPDATE SET bytes = coalesce(attachments.bytes, excluded.bytes)",
        params![hash, record_id.to_string(), mime, bytes.len() as i64, bytes, upload, now],
    )?;
    Ok(hash)
}

impl Store {
    /// Keep blob `bytes` for `record_id` (see [`insert_blob`]).
    pub fn put_blob(&self, record_id: Uuid, mime: &str, bytes: &[u8], upload: bool, now: i64) -> Result<String> {
        insert_blob(&self.conn, record_id, mime, bytes, upload, now)
    }

    /// What this phone holds of blob `hash` (`None`: nothing).
    pub fn blob_state(&self, hash: &str) -> Result<Option<BlobState>> {
        Ok(self
            .conn
            .query_row("SELECT bytes IS NOT NULL, upload, sent FROM attachments WHERE hash = ?1", [hash], |r| {
                Ok(BlobState { on_phone: r.get(0)?, upload: r.get(1)?, sent: r.get::<_, i64>(2)? as u64 })
            })
            .optional()?)
    }

    /// Stop trying to upload blob `hash` (its record was refused or
    /// deleted on the server); the bytes stay on the phone.
    pub fn blob_given_up(&self, hash: &str) -> Result<()> {
        self.conn.execute("UPDATE attachments SET upload = 0 WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// Send these blobs (again), from their first byte, where this phone
    /// holds their bytes and is not sending them already: the server asked
    /// for them (a photo collected while its record was deleted, then the
    /// record restored; a photo whose upload was given up). Returns how
    /// many were queued.
    pub fn requeue_blobs(&self, hashes: &[String]) -> Result<usize> {
        let mut st = self.conn.prepare_cached(
            "UPDATE attachments SET upload = 1, sent = 0 WHERE hash = ?1 AND upload = 0 AND bytes IS NOT NULL",
        )?;
        let mut n = 0;
        for h in hashes {
            n += st.execute([h])?;
        }
        Ok(n)
    }

    /// Forget a blob this phone stored but whose record was never saved.
    pub fn drop_blob(&self, hash: &str) -> Result<()> {
        self.conn.execute("DELETE FROM attachments WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// The bytes of a blob, when this phone has them.
    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT bytes FROM attachments WHERE hash = ?1", [hash], |r| r.get::<_, Option<Vec<u8>>>(0))
            .optional()?
            .flatten())
    }

    /// Whether the blob still waits to be uploaded from this phone, and how
    /// many of its bytes the server confirmed.
    pub fn blob_upload(&self, hash: &str) -> Result<Option<(bool, u64)>> {
        Ok(self
            .conn
            .query_row("SELECT upload, sent FROM attachments WHERE hash = ?1", [hash], |r| {
                Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()?)
    }

    /// Blobs to upload whose records the server has acknowledged (no
    /// change of the record waits in the outbox: records go first),
    /// thumbnails before photos, oldest first.
    pub fn pending_blobs(&self, limit: usize) -> Result<Vec<PendingBlob>> {
        let mut st = self.conn.prepare_cached(
            "SELECT hash, record_id, mime, size, sent FROM attachments a
             WHERE upload = 1 AND bytes IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.doc_id = a.record_id)
             ORDER BY size > 65536, created_at, hash LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, rid, mime, size, sent) = row?;
            let Ok(record_id) = Uuid::parse_str(&rid) else { continue };
            out.push(PendingBlob { hash, record_id, mime, size: size as u64, sent: sent as u64 });
        }
        Ok(out)
    }

    /// Blobs waiting to be uploaded, and their bytes left, records sent or not.
    pub fn blob_backlog(&self) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(size - sent), 0) FROM attachments WHERE upload = 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// The server confirmed `sent` bytes of `hash`; all of them ends the upload.
    pub fn blob_sent(&self, hash: &str, sent: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE attachments SET sent = ?2, upload = CASE WHEN ?2 >= size THEN 0 ELSE upload END WHERE hash = ?1",
            params![hash, sent as i64],
        )?;
        Ok(())
    }

    /// Keep the downloaded bytes of a photo another user took.
    pub fn put_downloaded(&self, record_id: Uuid, mime: &str, bytes: &[u8], now: i64) -> Result<String> {
        self.put_blob(record_id, mime, bytes, false, now)
    }
}
