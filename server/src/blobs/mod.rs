//! Photo bytes on the server, content-addressed by their SHA-256, behind
//! one trait with two backends:
//!
//! - [`disk::DiskBlobStore`]: files in `blobs/` next to the SQLite database
//!   (the default: one county on one machine);
//! - [`postgres::PgBlobStore`]: rows in PostgreSQL, shared by every server
//!   node of a province.
//!
//! An upload arrives in chunks ([`BlobStore::append`]), each acknowledged
//! once it is durable, so a phone on a weak link resumes at the last
//! acknowledged byte after any drop. Each uploader's upload is its own
//! (a partial blob per uploader, never shared): what one sends can neither
//! fill nor stall another's. Appending is idempotent: bytes the upload
//! already has are skipped, a gap is refused with how much it holds. When
//! the last byte arrives the whole upload's SHA-256 is checked against its
//! name; a mismatch discards it, a match makes it the complete blob (or,
//! when another upload got there first, is dropped: the bytes are the
//! same). Only complete blobs are read. Who may upload or read which blob
//! is decided by the caller ([`crate::photos`]); the store only keeps
//! bytes.
//!
//! Both backends pass one conformance suite (`conformance.rs`).

pub mod disk;
pub mod postgres;

#[cfg(test)]
mod conformance;

/// How far an upload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes held, from the start.
    pub received: u64,
    /// All bytes arrived and their hash matched.
    pub complete: bool,
}

/// One complete blob, or one upload under way, the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// SHA-256, lowercase hex.
    pub hash: String,
    /// For an upload under way: its key ([`upload_key`] of the uploader;
    /// empty for one begun before uploads were kept apart). `None` for the
    /// complete blob.
    pub upload: Option<String>,
    /// Bytes held.
    pub received: u64,
    /// Complete (`upload` is `None`).
    pub complete: bool,
    /// Last written, ms since the epoch.
    pub written_at: i64,
}

/// Why a chunk was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The chunk starts after the bytes held: send from `received`.
    #[error("chunk starts at {offset}, the store holds {received} bytes")]
    Gap {
        /// Where the chunk started.
        offset: u64,
        /// Bytes held.
        received: u64,
    },
    /// The chunk goes past the blob's declared size.
    #[error("chunk ends at {end}, past the blob's {size} bytes")]
    PastEnd {
        /// Where the chunk ends.
        end: u64,
        /// Declared size.
        size: u64,
    },
    /// All bytes arrived and their SHA-256 is not the blob's name; they
    /// were discarded.
    #[error("the bytes' SHA-256 is not {0}")]
    HashMismatch(String),
    /// Storage failed.
    #[error("blob storage: {0}")]
    Io(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        BlobError::Io(e.to_string())
    }
}

impl From<crate::pg_pool::PoolBusy> for BlobError {
    fn from(e: crate::pg_pool::PoolBusy) -> Self {
        BlobError::Io(e.to_string())
    }
}

impl From<::postgres::Error> for BlobError {
    fn from(e: ::postgres::Error) -> Self {
        BlobError::Io(e.to_string())
    }
}

/// Result of a blob store call.
pub type BlobResult<T> = Result<T, BlobError>;

/// Content-addressed bytes. Every method is blocking (call it on the
/// blocking pool); `hash` is always a checked lowercase hex SHA-256, and
/// `uploader` the user id of whoever sends the bytes.
pub trait BlobStore: Send + Sync {
    /// The size of complete blob `hash` (`None`: not complete, or absent).
    fn complete(&self, hash: &str) -> BlobResult<Option<u64>>;
    /// How far `uploader`'s upload of blob `hash` got (`None`: nothing of
    /// it is held). Another uploader's upload, or the complete blob, is
    /// not this upload.
    fn progress(&self, hash: &str, uploader: &str) -> BlobResult<Option<Progress>>;
    /// Add `bytes` at `offset` to `uploader`'s upload of blob `hash` of
    /// `size` bytes, durably, and say how far it now is. Bytes already held
    /// are skipped (a resent chunk is harmless); a chunk after a gap is
    /// [`BlobError::Gap`]; the last byte checks the hash
    /// ([`BlobError::HashMismatch`], the upload discarded) and then makes
    /// the upload the complete blob, or drops it when the blob is complete
    /// already; either way the answer is complete.
    fn append(&self, hash: &str, uploader: &str, size: u64, offset: u64, bytes: &[u8]) -> BlobResult<Progress>;
    /// The bytes of complete blob `hash`.
    fn get(&self, hash: &str) -> BlobResult<Option<Vec<u8>>>;
    /// Remove blob `hash` and every upload of it; false when there was none.
    fn delete(&self, hash: &str) -> BlobResult<bool>;
    /// Remove the upload of blob `hash` whose key is `upload` (see
    /// [`BlobInfo::upload`]); false when there was none.
    fn delete_upload(&self, hash: &str, upload: &str) -> BlobResult<bool>;
    /// Every complete blob and every upload under way.
    fn list(&self) -> BlobResult<Vec<BlobInfo>>;
}

/// The key an uploader's uploads go by in a blob store: 32 hex digits of
/// the SHA-256 of the user id (safe in a file name, and no user id on disk).
pub fn upload_key(uploader: &str) -> String {
    sha256_hex(uploader.as_bytes())[..32].to_owned()
}

pub use gridsync_core::model::sha256_hex;

/// What part of a chunk at `offset` is new given `received` bytes held:
/// the checks every backend makes, in one place.
pub fn new_part(size: u64, received: u64, offset: u64, bytes: &[u8]) -> BlobResult<&[u8]> {
    let end = offset.saturating_add(bytes.len() as u64);
    if end > size {
        return Err(BlobError::PastEnd { end, size });
    }
    if offset > received {
        return Err(BlobError::Gap { offset, received });
    }
    let skip = usize::try_from(received - offset).unwrap_or(usize::MAX).min(bytes.len());
    Ok(&bytes[skip..])
}
