//! The server's storage vocabulary: what the store traits take and give.

use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{RecordIndex, RecordKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// What [`ServerStore::note_problems`] did with one reported record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemNoted {
    /// The first report of this record from this device.
    New,
    /// Reported by this device before: counted, not new.
    Repeat,
    /// Not a record the device may read (or not stored): not kept.
    Ignored,
}

/// A record a phone set aside, as stored: one per (record, device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemReportRow {
    /// The record.
    pub doc_id: Uuid,
    /// The device that reported it.
    pub device_id: String,
    /// Its latest reason, as the phone sent it (cut to 200 characters):
    /// escape it wherever it is shown or logged.
    pub reason: String,
    /// First reported, ms.
    pub first_seen: i64,
    /// Last reported, ms.
    pub last_seen: i64,
    /// Times reported.
    pub count: i64,
}
