//! Server storage behind one trait, [`ServerStore`], with an embedded SQLite
//! backend ([`sqlite::SqliteServerStore`], one county on one machine) and a
//! PostgreSQL backend ([`postgres::PostgresServerStore`], several stateless
//! nodes). Both pass the same conformance suite (`conformance.rs`).
//!
//! The trait is synchronous: handlers call it on actix's blocking pool.
//! Merging happens inside [`ServerStore::merge_batch`] so that loading a
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

use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{RecordIndex, RecordKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// (township, village, group) codes of a path, empty where absent: the
/// index columns both backends store.
fn parts(g: &GridPath) -> (String, String, String) {
    (
        g.township().unwrap_or_default().to_owned(),
        g.village().unwrap_or_default().to_owned(),
        g.group().unwrap_or_default().to_owned(),
    )
}

/// Columns of a [`RecordView`], in the order both backends read them.
const VIEW_COLS: &str = "id, kind, grid, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json";

/// One sign-in attempt against a stored (failures, locked_until): `None` if
/// the account is locked now, else the (failures, locked_until) to store.
/// The attempt counts as a failure until a success clears it; the
/// `max_failures`-th locks the account and starts the count again.
fn sign_in_step(
    failures: i64,
    locked_until: Option<i64>,
    now: i64,
    max_failures: u32,
    lock_ms: i64,
) -> Option<(i64, Option<i64>)> {
    if locked_until.is_some_and(|t| t > now) {
        return None;
    }
    if failures + 1 >= i64::from(max_failures) {
        Some((0, Some(now.saturating_add(lock_ms))))
    } else {
        Some((failures + 1, None))
    }
}

/// The audit query as SQL with numbered placeholders (`?1` or `$1`) and its
/// arguments, the same for both backends.
fn audit_sql(q: &AuditQuery, placeholder: impl Fn(usize) -> String) -> (String, Vec<AuditArg>) {
    let mut sql = String::from("SELECT seq, at, user_id, action, target, ip FROM audit_log WHERE 1=1");
    let mut args: Vec<AuditArg> = Vec::new();
    let mut add = |sql: &mut String, clause: &str, v: AuditArg| {
        args.push(v);
        sql.push_str(&clause.replace('#', &placeholder(args.len())));
    };
    if let Some(u) = &q.user {
        add(&mut sql, " AND user_id = #", AuditArg::Text(u.clone()));
    }
    if let Some(a) = &q.action {
        add(&mut sql, " AND action = #", AuditArg::Text(a.clone()));
    }
    if let Some(t) = &q.target {
        add(&mut sql, " AND target = #", AuditArg::Text(t.clone()));
    }
    if let Some(t) = q.from {
        add(&mut sql, " AND at >= #", AuditArg::Int(t));
    }
    if let Some(t) = q.until {
        add(&mut sql, " AND at < #", AuditArg::Int(t));
    }
    if let Some(s) = q.before_seq {
        add(&mut sql, " AND seq < #", AuditArg::Int(s));
    }
    add(&mut sql, " ORDER BY seq DESC LIMIT #", AuditArg::Int(i64::from(q.limit.clamp(1, 1000))));
    (sql, args)
}

/// An argument of [`audit_sql`].
#[derive(Debug, Clone)]
enum AuditArg {
    Text(String),
    Int(i64),
}

impl rusqlite::ToSql for AuditArg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            AuditArg::Text(s) => s.to_sql(),
            AuditArg::Int(i) => i.to_sql(),
        }
    }
}

/// `DiskFull` if the file system holding `dir` has less than `min_free`
/// bytes free: a full disk fails writes that /healthz must not call healthy.
pub fn check_free_space(dir: &std::path::Path, min_free: u64) -> StoreResult<()> {
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let st = rustix::fs::statvfs(dir).map_err(|e| StoreError::Open(format!("cannot read free space: {e}")))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < min_free {
        return Err(StoreError::DiskFull { free_bytes: free });
    }
    Ok(())
}

/// Lock a mutex, ignoring poisoning: a panic while holding a connection
/// cannot leave a half-written transaction behind (it rolls back on drop).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// A row already exists (user id, grid path...).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database schema is newer than this build.
    #[error("database schema version {found} is newer than this server supports ({supported})")]
    SchemaTooNew {
        /// Version found.
        found: i64,
        /// Highest known.
        supported: i64,
    },
    /// Opening the database failed.
    #[error("cannot open database: {0}")]
    Open(String),
    /// The disk holding the database is (nearly) full.
    #[error("disk nearly full: {free_bytes} bytes free")]
    DiskFull {
        /// Bytes still free.
        free_bytes: u64,
    },
}

/// Result with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// A node of the county tree with its Chinese name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridNode {
    /// Path (`t01/v03`).
    pub path: GridPath,
    /// Name (`城关镇`, `张家村`, `第一组`).
    pub name: String,
}

/// A person who uses Gridsync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login id.
    pub id: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Grid node the role applies to.
    pub grid: GridPath,
}

impl User {
    /// The node whose records this user reads and writes.
    pub fn scope(&self) -> GridPath {
        self.grid.ancestor(self.role.grid_level())
    }
}

/// The county agency an agency account belongs to. Each owns one of the
/// four-none targets; the first three enter case counts of their own kind
/// only, and the justice bureau's target (no backlog disputes) comes from
/// the dispute records, so it enters none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agency {
    /// 县公安局: public-security cases.
    Police,
    /// 县检察院: criminal cases.
    Procuratorate,
    /// 县法院: lawsuits.
    Court,
    /// 县司法局: disputes (from the records).
    Justice,
}

impl Agency {
    /// Every agency.
    pub const ALL: [Agency; 4] = [Agency::Police, Agency::Procuratorate, Agency::Court, Agency::Justice];

    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Agency::Police => "police",
            Agency::Procuratorate => "procuratorate",
            Agency::Court => "court",
            Agency::Justice => "justice",
        }
    }

    /// Parse a machine name.
    pub fn parse(s: &str) -> Option<Agency> {
        Agency::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Chinese name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Agency::Police => "县公安局",
            Agency::Procuratorate => "县检察院",
            Agency::Court => "县法院",
            Agency::Justice => "县司法局",
        }
    }

    /// The one kind of case count this agency enters (`None`: the justice
    /// bureau, whose figure comes from the dispute records).
    pub fn case_kind(self) -> Option<CaseKind> {
        match self {
            Agency::Police => Some(CaseKind::PublicSecurity),
            Agency::Procuratorate => Some(CaseKind::Criminal),
            Agency::Court => Some(CaseKind::Lawsuit),
            Agency::Justice => None,
        }
    }
}

/// A user with what the county manages about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user.
    pub user: User,
    /// For agency staff, their agency (`None`: not set, so no case kind).
    pub agency: Option<Agency>,
    /// When the account was deactivated, ms; `None` while active.
    pub deactivated_at: Option<i64>,
}

/// A device enrolled for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// The user it acts for.
    pub user_id: String,
    /// Name given at enrollment.
    pub name: String,
    /// Enrolled at, ms.
    pub created_at: i64,
    /// Last successful sync, ms.
    pub last_sync_at: Option<i64>,
    /// Revoked at, ms.
    pub revoked_at: Option<i64>,
    /// The Automerge actor id registered for this device: the only actor
    /// its changes may carry. `None` until it is registered (at enrollment,
    /// or at the first sync of a device enrolled before actors were).
    #[serde(default, skip_serializing)]
    pub actor: Option<Vec<u8>>,
    /// The device's Ed25519 public key: every change it sends must carry
    /// a signature by it. `None` until registered (at enrollment, or once
    /// afterwards for a device enrolled before devices had keys).
    #[serde(default, skip_serializing)]
    pub public_key: Option<Vec<u8>>,
}

/// What registering a device's public key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRegistered {
    /// The key is now the device's.
    Registered,
    /// The device had this very key already.
    Same,
    /// The device has another key: keys are never replaced.
    Conflict,
    /// No such device.
    UnknownDevice,
}

/// One stored change of a record, with who sent it and its signature: the
/// record's provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    /// Position in the change feed (the order changes were stored in).
    pub seq: i64,
    /// Automerge change hash.
    pub hash: [u8; 32],
    /// Raw change.
    pub bytes: Vec<u8>,
    /// The device whose signature it carries (`web:<user>` for the dashboard).
    pub origin: String,
    /// The device's signature it came under (see [`ServerStore::signed_batch`]).
    pub signature: Option<Signature>,
}

/// What redeeming an enrollment code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The device was created for this user.
    Enrolled(User),
    /// The code is unknown, used or expired.
    InvalidCode,
    /// The device's actor id belongs to a device of another user; the code
    /// is not used up.
    ActorInUse,
}

/// A device presenting its token, with its user.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// The device.
    pub device: Device,
    /// Its user.
    pub user: User,
}

pub use gridsync_core::signing::Signature;

/// A record as stored on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// Compact Automerge save of the whole document.
    pub snapshot: Vec<u8>,
    /// Whether the record is (or ever was) sensitive.
    pub sensitive: bool,
}

/// Result of merging one record's incoming changes.
#[derive(Debug, Clone)]
pub enum DocDecision {
    /// New changes to store, with the merged document.
    Accept(Box<MergedDoc>),
    /// Every change was already stored.
    AlreadyStored,
    /// Refused; nothing is written for this record.
    Reject,
}

/// A merged record, ready to write.
#[derive(Debug, Clone)]
pub struct MergedDoc {
    /// Changes not stored before, with their hashes.
    pub new_changes: Vec<([u8; 32], Vec<u8>)>,
    /// The signed request they came in (none for the dashboard's changes):
    /// stored once, and named by each change it covers.
    pub batch: Option<std::sync::Arc<SignedBatch>>,
    /// Compact save after the merge.
    pub snapshot: Vec<u8>,
    /// Index columns of the merged record.
    pub index: RecordIndex,
    /// The merged record as JSON (the materialized view for reports).
    pub json: String,
    /// Author user id.
    pub author: String,
    /// Created, ms.
    pub created_at: i64,
    /// Updated, ms.
    pub updated_at: i64,
    /// The record just became sensitive: mark its earlier feed rows too.
    pub history_turns_sensitive: bool,
    /// The photos the merged record references (refs only grow: the rules
    /// keep a reference once recorded).
    pub attachments: Vec<AttachmentRef>,
}

/// One photo reference of a record, as `attachment_refs` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRef {
    /// SHA-256 of the bytes, hex.
    pub hash: String,
    /// Who attached it (the only user who may upload its bytes).
    pub by: String,
    /// Media type.
    pub mime: String,
    /// Declared size, bytes.
    pub size: i64,
}

impl AttachmentRef {
    /// Every photo reference of `record`, as `attachment_refs` keeps them.
    pub fn all_of(record: &gridsync_core::model::Record) -> Vec<AttachmentRef> {
        record
            .attachments
            .iter()
            .map(|(hash, a)| AttachmentRef { hash: hash.clone(), by: a.by.clone(), mime: a.mime.clone(), size: a.size })
            .collect()
    }
}

/// A record referencing a photo, with what access to the photo is judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoHolder {
    /// The record.
    pub record_id: Uuid,
    /// The reference.
    pub attachment: AttachmentRef,
    /// The record's grid.
    pub grid: GridPath,
    /// The record is sensitive.
    pub sensitive: bool,
    /// The record is deleted.
    pub deleted: bool,
}

/// Position in the change feed. SQLite uses `seq` only; PostgreSQL orders
/// by (transaction id, seq) and reads only below the oldest running
/// transaction, so no later commit can land behind a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    /// Transaction id (0 on SQLite).
    pub xid: u64,
    /// Sequence within the feed.
    pub seq: u64,
}

impl Cursor {
    /// Wire form: 16 bytes, big-endian.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = self.xid.to_be_bytes().to_vec();
        v.extend_from_slice(&self.seq.to_be_bytes());
        v
    }

    /// Parse the wire form; empty means the start of the feed.
    pub fn from_bytes(b: &[u8]) -> Option<Cursor> {
        match b.len() {
            0 => Some(Cursor::default()),
            16 => Some(Cursor {
                xid: u64::from_be_bytes(b[..8].try_into().ok()?),
                seq: u64::from_be_bytes(b[8..].try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// What a device may read from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope {
    /// Node whose records are visible (`None`: nothing).
    pub node: Option<GridPath>,
    /// Whether sensitive records are visible.
    pub sensitive: bool,
}

impl ReadScope {
    /// The read scope of a user.
    pub fn of(user: &User) -> ReadScope {
        match user.role {
            Role::AgencyStaff => ReadScope { node: None, sensitive: false },
            r => ReadScope { node: Some(user.scope()), sensitive: r.reads_sensitive() },
        }
    }

    /// (township, village, group) equality filters for SQL.
    pub fn filters(&self) -> [Option<String>; 3] {
        let Some(n) = &self.node else { return [None, None, None] };
        [
            n.township().map(str::to_owned),
            n.village().map(str::to_owned),
            (n.level() == GridLevel::Group).then(|| n.group().unwrap_or_default().to_owned()),
        ]
    }
}

/// A page of the feed.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    /// (record id, change bytes), in feed order.
    pub changes: Vec<(Uuid, Vec<u8>)>,
    /// Cursor after the last change returned (or the scan position).
    pub next: Cursor,
    /// More changes are waiting.
    pub more: bool,
}

/// A materialized record for reports and the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    /// Record id.
    pub id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid.
    pub grid: GridPath,
    /// Status machine name.
    pub status: String,
    /// Dispute level.
    pub level: Option<String>,
    /// Title.
    pub title: String,
    /// When it happened, ms.
    pub occurred_at: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Updated, ms.
    pub updated_at: i64,
    /// Author user id.
    pub author: String,
    /// Sensitive.
    pub sensitive: bool,
    /// Deleted.
    pub deleted: bool,
    /// Conflict waiting.
    pub has_conflict: bool,
    /// The record as JSON.
    pub json: serde_json::Value,
}

/// Filter for [`ServerStore::records`].
#[derive(Debug, Clone, Default)]
pub struct ViewQuery {
    /// Only at or below this node.
    pub under: Option<GridPath>,
    /// Only this kind.
    pub kind: Option<RecordKind>,
    /// Include sensitive records.
    pub sensitive: bool,
    /// Occurred at or after, ms.
    pub from: Option<i64>,
    /// Occurred before, ms.
    pub until: Option<i64>,
    /// At most this many (default 10,000).
    pub limit: Option<u32>,
    /// Leave out deleted records.
    pub live: bool,
    /// Only open records (`Some(true)`: a hazard not removed, a dispute not
    /// resolved, by [`gridsync_core::reports::is_open_status`]) or only
    /// closed ones (`Some(false)`).
    pub open: Option<bool>,
    /// Only this status (machine name).
    pub status: Option<String>,
    /// Open records first, then newest first (default: newest first).
    pub open_first: bool,
    /// Skip this many (a page's start).
    pub offset: u32,
}

/// Live records of one kind and state under a village (or a township's
/// own level): one line of [`ServerStore::tally`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The village (or the township, for records owned by the township).
    pub node: GridPath,
    /// Kind.
    pub kind: RecordKind,
    /// Status machine name.
    pub status: String,
    /// Dispute level.
    pub level: Option<String>,
    /// Conflict waiting.
    pub has_conflict: bool,
    /// How many.
    pub count: u64,
}

/// What an agency counts per village and year for the four-none villages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// 治安案件 (county police bureau).
    PublicSecurity,
    /// 刑事案件 (county procuratorate).
    Criminal,
    /// 诉讼案件 (county court).
    Lawsuit,
}

impl CaseKind {
    /// Every kind.
    pub const ALL: [CaseKind; 3] = [CaseKind::PublicSecurity, CaseKind::Criminal, CaseKind::Lawsuit];

    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::PublicSecurity => "public_security",
            CaseKind::Criminal => "criminal",
            CaseKind::Lawsuit => "lawsuit",
        }
    }

    /// Chinese label of the case.
    pub fn label_zh(self) -> &'static str {
        match self {
            CaseKind::PublicSecurity => "治安案件",
            CaseKind::Criminal => "刑事案件",
            CaseKind::Lawsuit => "诉讼案件",
        }
    }

    /// Parse a machine name.
    pub fn parse(s: &str) -> Option<CaseKind> {
        CaseKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Cases of one kind in one village in one year, as an agency entered them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseCount {
    /// The village (`t01/v03`).
    pub village: GridPath,
    /// Calendar year.
    pub year: i32,
    /// What was counted.
    pub kind: CaseKind,
    /// How many cases.
    pub count: u32,
    /// User id of who entered it.
    pub entered_by: String,
    /// When, ms.
    pub entered_at: i64,
}

impl CaseCount {
    /// Build from stored columns, refusing what the schema should not hold.
    pub fn from_row(
        village: &str,
        year: i32,
        kind: &str,
        count: i64,
        entered_by: String,
        entered_at: i64,
    ) -> StoreResult<CaseCount> {
        Ok(CaseCount {
            village: GridPath::parse(village).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            year,
            kind: CaseKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("case kind {kind}")))?,
            count: u32::try_from(count).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            entered_by,
            entered_at,
        })
    }
}

/// A stored change from its columns; `Corrupt` if a hash or signature
/// has the wrong length.
pub fn stored_change(
    seq: i64,
    hash: &[u8],
    bytes: Vec<u8>,
    origin: String,
    signature: Option<Vec<u8>>,
) -> StoreResult<StoredChange> {
    let hash: [u8; 32] = hash.try_into().map_err(|_| StoreError::Corrupt("change hash of the wrong length".into()))?;
    let signature = match signature {
        None => None,
        Some(s) => Some(Signature(
            s.as_slice().try_into().map_err(|_| StoreError::Corrupt("signature of the wrong length".into()))?,
        )),
    };
    Ok(StoredChange { seq, hash, bytes, origin, signature })
}

/// One incoming record in a sync request.
#[derive(Debug, Clone)]
pub struct IncomingDoc {
    /// Record id.
    pub doc_id: Uuid,
    /// Raw changes.
    pub changes: Vec<Vec<u8>>,
    /// The verified signature these changes came under, with what it
    /// covers (none for changes the server made itself, on the dashboard).
    pub batch: Option<std::sync::Arc<SignedBatch>>,
}

impl IncomingDoc {
    /// Changes the server made itself: no device signed them.
    pub fn unsigned(doc_id: Uuid, changes: Vec<Vec<u8>>) -> IncomingDoc {
        IncomingDoc { doc_id, changes, batch: None }
    }
}

/// A device's signature of a request's (or bundle's) changes, and the
/// manifest it covers: kept so that anyone can check each change later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBatch {
    /// Ed25519 signature.
    pub signature: Signature,
    /// What it covers.
    pub manifest: gridsync_core::signing::Manifest,
}

/// A user's web password: an argon2id PHC string, with the sign-in lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPassword {
    /// The PHC string (`$argon2id$...`).
    pub hash: String,
    /// Failed sign-ins since the last success or lockout.
    pub failures: u32,
    /// Sign-ins refused until this instant, ms.
    pub locked_until: Option<i64>,
}

/// A signed-in web session. Only the SHA-256 of the cookie token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie token.
    pub token_hash: Vec<u8>,
    /// Who signed in.
    pub user_id: String,
    /// The CSRF token of the session's forms.
    pub csrf: String,
    /// Signed in at, ms.
    pub created_at: i64,
    /// Valid before this instant, ms.
    pub expires_at: i64,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log (set by the store; 0 when appending).
    pub seq: i64,
    /// When, ms.
    pub at: i64,
    /// Who (user id, or the id tried at a failed sign-in).
    pub user_id: String,
    /// What (`sign_in`, `sign_in_failed`, `view_household`, `revoke_device`...).
    pub action: String,
    /// On what (record id, device id...).
    pub target: String,
    /// From where (client IP).
    pub ip: String,
}

/// Which audit lines to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this user (or id tried at a failed sign-in).
    pub user: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this target (record id, device id...).
    pub target: Option<String>,
    /// At or after, ms.
    pub from: Option<i64>,
    /// Before, ms.
    pub until: Option<i64>,
    /// Only lines older than this position (the next page).
    pub before_seq: Option<i64>,
    /// At most this many (at most 1,000).
    pub limit: u32,
}

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

/// Every store trait, for code that calls a backend's methods on its
/// concrete type (`use gridsync_server::store::prelude::*`).
pub mod prelude {
    pub use super::{
        AccountStore, AuditStore, CaseCountStore, DeviceStore, PhotoLedger, PhotoStore, RecordStore, SchemaStore,
        ServerStore, SessionStore,
    };
}

/// Storage the server needs: every concern's store, from one backend. Each
/// concern has its own conformance tests (`conformance.rs`), which every
/// backend runs.
pub trait ServerStore:
    SchemaStore + AccountStore + DeviceStore + RecordStore + CaseCountStore + SessionStore + AuditStore + PhotoStore
{
}

impl<T> ServerStore for T where
    T: SchemaStore + AccountStore + DeviceStore + RecordStore + CaseCountStore + SessionStore + AuditStore + PhotoStore
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
