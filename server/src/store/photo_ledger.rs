//! The photo ledger: who proved they hold a photo's bytes (its owners),
//! each uploader's upload under way, and the per-user budgets uploads are
//! held to. The bytes themselves are in the blob store
//! ([`crate::blobs::BlobStore`]); which record references which photo is
//! `attachment_refs` ([`super::ServerStore::photo_holders`]). Both
//! backends keep it in their database (schema 9) and pass the ledger's
//! tests in the conformance suite.

use super::StoreResult;

/// A day, in ms: the window of the daily upload budget.
pub const DAY_MS: i64 = 86_400_000;

/// What one user may have the server keep of their uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoQuota {
    /// Declared bytes of the user's uploads under way, at most: an upload
    /// that would pass it does not begin until others finish or expire.
    pub unfinished_bytes: i64,
    /// Declared bytes of the uploads the user began in the last 24 hours
    /// (finished or not), at most.
    pub daily_bytes: i64,
}

impl Default for PhotoQuota {
    /// 64 MiB under way (eight full-size photos; a phone sends one at a
    /// time) and 1 GiB a day (250 photos of 4 MB; a grid manager takes ten
    /// to forty on a busy day).
    fn default() -> Self {
        PhotoQuota { unfinished_bytes: 64 << 20, daily_bytes: 1 << 30 }
    }
}

/// What [`PhotoLedger::begin_photo_upload`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadBegun {
    /// The user's upload of this photo was under way already.
    Continuing,
    /// A new upload, now counted in the user's budgets.
    Started,
    /// Refused: the user's uploads under way already declare this many
    /// bytes, and this one would pass [`PhotoQuota::unfinished_bytes`].
    OverUnfinished {
        /// Declared bytes under way.
        held: i64,
    },
    /// Refused: the user began uploads of this many bytes in the last 24
    /// hours, and this one would pass [`PhotoQuota::daily_bytes`].
    OverDaily {
        /// Declared bytes begun in the window.
        used: i64,
    },
}

/// One upload under way, as the ledger counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoUploadRow {
    /// The photo.
    pub hash: String,
    /// Who sends it.
    pub user_id: String,
    /// Declared size, bytes.
    pub size: i64,
    /// Bytes the blob store confirmed, as last noted.
    pub received: i64,
    /// Begun, ms.
    pub started_at: i64,
    /// Last chunk, ms.
    pub written_at: i64,
}

/// A photo a live record says `user` took, of which the server holds no
/// bytes from them: what their phone is asked to send (again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPhoto {
    /// The photo.
    pub hash: String,
    /// Its declared size.
    pub size: i64,
    /// A live record referencing it.
    pub record_id: uuid::Uuid,
}

/// An owner of a photo: a user who uploaded its bytes in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoOwner {
    /// The photo.
    pub hash: String,
    /// The user.
    pub user_id: String,
    /// When the upload completed, ms (0: taken as the owner when schema 9
    /// was made).
    pub at: i64,
}

/// The photo ledger (see the module docs). Every method is blocking.
pub trait PhotoLedger: Send + Sync {
    /// Begin (or continue) `user_id`'s upload of photo `hash` of `size`
    /// declared bytes at `now`, unless it would pass `quota`. The check
    /// and the new row are one write: two uploads begun at once cannot
    /// both slip under a budget.
    fn begin_photo_upload(
        &self,
        hash: &str,
        user_id: &str,
        size: i64,
        now: i64,
        quota: &PhotoQuota,
    ) -> StoreResult<UploadBegun>;
    /// Note that the blob store now holds `received` bytes of the upload.
    fn note_photo_upload(&self, hash: &str, user_id: &str, received: i64, now: i64) -> StoreResult<()>;
    /// The upload completed with its hash checked: `user_id` owns the
    /// photo from `now` (counted in the daily budget), and the upload is
    /// no longer under way.
    fn finish_photo_upload(&self, hash: &str, user_id: &str, size: i64, now: i64) -> StoreResult<()>;
    /// Forget an upload under way (its bytes were discarded or expired).
    fn drop_photo_upload(&self, hash: &str, user_id: &str) -> StoreResult<()>;
    /// Every upload under way.
    fn photo_uploads(&self) -> StoreResult<Vec<PhotoUploadRow>>;
    /// The users who own photo `hash`.
    fn photo_owners(&self, hash: &str) -> StoreResult<Vec<String>>;
    /// Every owner of every photo (for garbage collection).
    fn all_photo_owners(&self) -> StoreResult<Vec<PhotoOwner>>;
    /// Forget the owners of photo `hash` (its bytes are gone), or only
    /// `user_id`.
    fn drop_photo_owners(&self, hash: &str, user_id: Option<&str>) -> StoreResult<()>;
    /// Up to `limit` photos live records say `user_id` took and that user
    /// does not own, by hash.
    fn photos_wanted(&self, user_id: &str, limit: usize) -> StoreResult<Vec<WantedPhoto>>;
}
