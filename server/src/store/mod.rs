//! Server storage: one trait per concern ([`RecordStore`], [`AccountStore`],
//! [`DeviceStore`], [`SessionStore`], [`AuditStore`], [`CaseCountStore`],
//! [`PhotoStore`], [`ProblemStore`], [`SchemaStore`]) and [`ServerStore`],
//! all of them from one backend: embedded SQLite
//! ([`sqlite::SqliteServerStore`], one county on one machine) or PostgreSQL
//! ([`postgres::PostgresServerStore`], several stateless nodes). Both pass
//! the same conformance suite (`conformance.rs`, a macro per concern). The
//! vocabulary the traits speak is in `types.rs`; what the two SQL backends
//! share (lockout policy, audit query, index columns) in `sql.rs`.
//!
//! The traits are synchronous: handlers call them on actix's blocking pool.
//! Merging happens inside [`RecordStore::merge_batch`] so that loading a
//! document, applying changes and writing the result are one transaction
//! per request, with the record locked (a transaction-scoped advisory lock
//! per record on PostgreSQL, SQLite's single writer) so two nodes never
//! lose each other's merges.

pub mod photo_ledger;
pub mod postgres;
pub mod sqlite;

pub use photo_ledger::{PhotoLedger, PhotoOwner, PhotoQuota, PhotoUploadRow, UploadBegun, WantedPhoto};

#[cfg(test)]
mod conformance;

mod disk;
mod sql;
mod types;

pub use disk::check_free_space;
use sql::*;
pub use types::*;

use gridsync_core::grid::GridPath;
use gridsync_core::model::RecordKind;
use uuid::Uuid;

/// The database itself: its schema, health and the deployment's secrets.
pub trait SchemaStore: Send + Sync {
    /// Create or upgrade the schema.
    fn migrate(&self) -> StoreResult<()>;

    /// Whether the database answers.
    fn ping(&self) -> StoreResult<()>;

    /// Write and commit a probe row: `Ok` only if writes commit.
    fn probe_write(&self, now: i64) -> StoreResult<()>;

    /// Number of stored changes (for tests and metrics).
    fn change_count(&self) -> StoreResult<u64>;

    /// The server's secret named `name`, storing `fresh` first if there is
    /// none yet; every node of a deployment gets the same one.
    fn server_secret(&self, name: &str, fresh: &[u8], now: i64) -> StoreResult<Vec<u8>>;
}

/// The grid tree and the people in it.
pub trait AccountStore: Send + Sync {
    /// Insert or rename grid nodes.
    fn put_grid_nodes(&self, nodes: &[GridNode]) -> StoreResult<()>;

    /// Every grid node, ordered by path.
    fn grid_nodes(&self) -> StoreResult<Vec<GridNode>>;

    /// Add a user; `Conflict` if the id exists.
    fn add_user(&self, user: &User) -> StoreResult<()>;

    /// A user by id.
    fn user(&self, id: &str) -> StoreResult<Option<User>>;

    /// Every user.
    fn users(&self) -> StoreResult<Vec<User>>;

    /// A user with their agency and whether the account is active.
    fn account(&self, id: &str) -> StoreResult<Option<Account>>;

    /// Every account, ordered by user id.
    fn accounts(&self) -> StoreResult<Vec<Account>>;

    /// Change a user's name, role and grid (`NotFound` if unknown). When the
    /// role or the grid changes, every device of the user is revoked (and
    /// told to wipe) and their web sessions end, in the same transaction: a
    /// phone must not keep the records of a grid that is no longer its
    /// user's, and a page must not keep the old scope.
    fn update_user(&self, user: &User, now: i64) -> StoreResult<()>;

    /// Set the agency of an account (`NotFound` if unknown).
    fn set_agency(&self, user_id: &str, agency: Option<Agency>) -> StoreResult<()>;

    /// Deactivate or reactivate a user (`NotFound` if unknown). Deactivating
    /// ends their web sessions, revokes their devices and voids their unused
    /// enrollment codes, in one transaction; reactivating enrolls nothing
    /// again (the user needs a new code).
    fn set_active(&self, user_id: &str, active: bool, now: i64) -> StoreResult<()>;
}

/// Enrollment codes and the devices they enrolled.
pub trait DeviceStore: Send + Sync {
    /// Store a hashed one-time enrollment code for a user (`NotFound` if
    /// the user does not exist or is deactivated).
    fn create_enrollment(&self, code_hash: &[u8], user_id: &str, expires_at: i64) -> StoreResult<()>;

    /// Use an enrollment code once: if it exists, is unused and unexpired,
    /// mark it used and create the device with its actor id. An actor id
    /// held by a device of the same user moves to the new device (the same
    /// phone enrolling again); one held by another user's device refuses
    /// the enrollment and leaves the code unused.
    fn redeem_enrollment(
        &self,
        code_hash: &[u8],
        device: &Device,
        token_hash: &[u8],
        now: i64,
    ) -> StoreResult<Redeemed>;

    /// Register `actor` for a device that has none yet (enrolled before
    /// actors were registered). False if another device holds it, or the
    /// device already has a different one.
    fn claim_actor(&self, device_id: &str, actor: &[u8]) -> StoreResult<bool>;

    /// The device holding this token hash, with its user.
    fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceAuth>>;

    /// The device with this id, with its user (revoked or not).
    fn device(&self, device_id: &str) -> StoreResult<Option<DeviceAuth>>;

    /// Revoke a device; false if unknown.
    fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool>;

    /// Every device.
    fn devices(&self) -> StoreResult<Vec<Device>>;

    /// Register a device's Ed25519 public key, once.
    fn set_device_key(&self, device_id: &str, public_key: &[u8]) -> StoreResult<KeyRegistered>;

    /// Record a successful sync.
    fn touch_device(&self, device_id: &str, now: i64) -> StoreResult<()>;
}

/// Records, their changes and the feed phones read: the one way changes
/// enter the server ([`RecordStore::merge_batch`]) and every read of them.
pub trait RecordStore: Send + Sync {
    /// The records with these ids as committed now (`None`: not stored),
    /// read without the writer: what [`crate::sync::merge_records`] judges
    /// against before it takes the writer.
    fn stored_docs(&self, ids: &[Uuid]) -> StoreResult<Vec<Option<StoredDoc>>>;

    /// Merge a request's records in one transaction. `merge` is called once
    /// per record with its index in `docs` and its stored state, while the
    /// record is locked (backends may visit records in lock order); what it
    /// returns is written before the commit. With `synced_at`, the same
    /// transaction records that device `device_id` synced then (one commit,
    /// one WAL flush). Returns the decisions in request order.
    fn merge_batch(
        &self,
        device_id: &str,
        synced_at: Option<i64>,
        docs: &[IncomingDoc],
        merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
    ) -> StoreResult<Vec<DocDecision>>;
    /// Changes after `cursor` visible to `scope`, excluding those uploaded by
    /// `exclude_device`, up to about `max_bytes` (at least one change).
    fn read_feed(
        &self,
        cursor: Cursor,
        scope: &ReadScope,
        exclude_device: &str,
        max_bytes: usize,
    ) -> StoreResult<FeedPage>;

    /// Materialized records for reports.
    fn records(&self, q: &ViewQuery) -> StoreResult<Vec<RecordView>>;

    /// How many records [`ServerStore::records`] gives for `q` without its
    /// limit and offset: a list's total, never a truncated list's length.
    fn count_records(&self, q: &ViewQuery) -> StoreResult<u64>;

    /// Live records of `kinds` at or below `under`, counted by village,
    /// kind, status, level and conflict, in the database: the dashboard's
    /// counts come from here, never from a list that may stop short.
    fn tally(&self, under: &GridPath, kinds: &[RecordKind]) -> StoreResult<Vec<Tally>>;

    /// One materialized record.
    fn record(&self, id: Uuid) -> StoreResult<Option<RecordView>>;

    /// A record's stored snapshot (the compacted document the next merge
    /// starts from), for building a change on the web against it.
    fn snapshot(&self, id: Uuid) -> StoreResult<Option<StoredDoc>>;

    /// Every stored change of a record, in the order stored.
    fn change_log(&self, doc: Uuid) -> StoreResult<Vec<StoredChange>>;

    /// The manifest a stored signature covers.
    fn signed_batch(&self, signature: &Signature) -> StoreResult<Option<gridsync_core::signing::Manifest>>;
}

/// The agencies' yearly case counts per village (the four-none figures).
pub trait CaseCountStore: Send + Sync {
    /// Enter case counts, replacing any entered before for the same
    /// (village, year, kind); all or nothing.
    fn put_case_counts(&self, counts: &[CaseCount]) -> StoreResult<()>;

    /// Every case count entered for `year`, ordered by village and kind.
    fn case_counts(&self, year: i32) -> StoreResult<Vec<CaseCount>>;
}

/// Dashboard passwords, sign-in lockout and web sessions.
pub trait SessionStore: Send + Sync {
    /// Set (or replace) a user's web password hash; clears any lockout and
    /// ends every web session of the user. `NotFound` if the user does not exist.
    fn set_web_password(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<()>;

    /// A user's web password, if one was set.
    fn web_password(&self, user_id: &str) -> StoreResult<Option<WebPassword>>;

    /// Decide and count a sign-in attempt in one statement, before its
    /// password is checked: false if the account is locked; else the
    /// attempt counts as failed (until [`ServerStore::clear_failed_sign_ins`]),
    /// and the `max_failures`-th locks the account until `now + lock_ms`
    /// (the counter starts again). Parallel attempts cannot all get through.
    fn begin_sign_in(&self, user_id: &str, now: i64, max_failures: u32, lock_ms: i64) -> StoreResult<bool>;

    /// Forget failed sign-ins after a successful one.
    fn clear_failed_sign_ins(&self, user_id: &str) -> StoreResult<()>;

    /// Store a new web session.
    fn create_web_session(&self, session: &WebSession) -> StoreResult<()>;

    /// The unexpired session with this token hash.
    fn web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<WebSession>>;

    /// End a session (sign-out); also drops every expired session.
    fn delete_web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<()>;
}

/// The append-only audit log.
pub trait AuditStore: Send + Sync {
    /// Append a line to the audit log.
    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// Audit lines matching `q`, newest first.
    fn audit_log(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

/// Where photos' bytes live and which records name them.
pub trait PhotoStore: Send + Sync {
    /// The records referencing photo `hash`, deleted ones included.
    fn photo_holders(&self, hash: &str) -> StoreResult<Vec<PhotoHolder>>;

    /// Every photo some record that is not deleted references (what
    /// garbage collection keeps).
    fn live_photos(&self) -> StoreResult<std::collections::HashSet<String>>;

    /// Where this deployment keeps photo bytes: files next to a SQLite
    /// database, the database itself for PostgreSQL (shared by all nodes).
    fn blob_store(&self) -> std::sync::Arc<dyn crate::blobs::BlobStore>;

    /// Who owns which photo, and the uploads under way.
    fn photo_ledger(&self) -> &dyn PhotoLedger;
}

/// The records phones report they set aside (`POST /v1/problems`).
pub trait ProblemStore: Send + Sync {
    /// Note the records `device_id` reports it set aside (`POST
    /// /v1/problems`), in one transaction: one row per (record, device),
    /// its first report [`ProblemNoted::New`], a later one moving
    /// `last_seen`, the reason and the count ([`ProblemNoted::Repeat`]). A
    /// record not stored, or whose (grid, sensitive) `may_read` refuses, is
    /// [`ProblemNoted::Ignored`] and nothing is written for it.
    fn note_problems(
        &self,
        device_id: &str,
        reports: &[(Uuid, String)],
        may_read: &dyn Fn(&GridPath, bool) -> bool,
        now: i64,
    ) -> StoreResult<Vec<ProblemNoted>>;

    /// The `limit` problem reports last seen most recently, newest first.
    fn problem_reports(&self, limit: u32) -> StoreResult<Vec<ProblemReportRow>>;
}

/// Every store trait, for code that calls a backend's methods on its
/// concrete type (`use gridsync_server::store::prelude::*`).
pub mod prelude {
    pub use super::{
        AccountStore, AuditStore, CaseCountStore, DeviceStore, PhotoLedger, PhotoStore, ProblemStore, RecordStore,
        SchemaStore, ServerStore, SessionStore,
    };
}

/// Storage the server needs: every concern's store, from one backend. Each
/// concern has its own conformance tests (`conformance.rs`), which every
/// backend runs.
pub trait ServerStore:
    SchemaStore
    + AccountStore
    + DeviceStore
    + RecordStore
    + CaseCountStore
    + SessionStore
    + AuditStore
    + PhotoStore
    + ProblemStore
{
}

impl<T> ServerStore for T where
    T: SchemaStore
        + AccountStore
        + DeviceStore
        + RecordStore
        + CaseCountStore
        + SessionStore
        + AuditStore
        + PhotoStore
        + ProblemStore
{
}

/// The references of a stored record's photos read again from its
/// snapshot with this core's reader, and its JSON, when they hold a
/// reference the stored ones lack: a record merged by an older core kept
/// only one of two `attachments` maps made at once (schema 9 re-reads
/// them). `None` when nothing is missing or the snapshot cannot be read.
pub(crate) fn reread_photos(
    snapshot: &[u8],
    stored: &std::collections::HashSet<String>,
) -> Option<(Vec<AttachmentRef>, String)> {
    let rec = gridsync_core::doc::guarded(|| {
        gridsync_core::doc::RecordDoc::load(snapshot, automerge::ActorId::from([0u8; 16]))?.record()
    })
    .ok()?;
    let refs = AttachmentRef::all_of(&rec);
    if refs.iter().all(|a| stored.contains(&a.hash)) {
        return None;
    }
    Some((refs, rec.to_json().to_string()))
}
