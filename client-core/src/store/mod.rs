//! The phone's record store: SQLite with one row per record holding its
//! Automerge document and index columns, an outbox of changes no server has
//! acknowledged, and the sync cursor.
//!
//! Every write commits the document, its index columns and its outbox
//! entries in one transaction, in WAL mode with `synchronous=FULL`, so a
//! write that returned `Ok` survives the app being killed or the battery
//! dying. Lists read index columns only, never documents.

mod account;
pub mod attachments;
pub mod migrate;
pub use attachments::{BlobState, NewBlob, PendingBlob};
mod repair;

pub use repair::{RefusedStep, RepairReport};

use std::path::Path;

use automerge::{ActorId, Change};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::doc::{RecordDoc, guarded};
use crate::error::{CoreError, Result};
use crate::grid::{GridPath, Role};
use crate::model::{DisputeLevel, Record, RecordKind};
use crate::rules::{Writer, check_write};

/// `meta` key of the bundle of unsynced changes the last wipe saved.
const RESCUED_BUNDLE: &str = "rescued_bundle";

/// A line in a record list: index columns only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// Record id.
    pub id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid.
    pub grid: GridPath,
    /// Derived status (machine name).
    pub status: String,
    /// Dispute level, for disputes.
    pub level: Option<DisputeLevel>,
    /// One-line title.
    pub title: String,
    /// When it happened, ms.
    pub occurred_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// Tombstoned.
    pub deleted: bool,
    /// A conflict waits to be settled.
    pub has_conflict: bool,
    /// Why a server refused the last changes, if it did.
    pub rejection: Option<Rejection>,
}

/// A server's refusal of a record's changes, kept on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Rejection {
    /// Machine-readable reason code.
    pub code: String,
    /// Detail, in Chinese, for the user.
    pub message_zh: String,
}

/// A record received from a server that could not be applied, set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    /// Record id.
    pub doc_id: Uuid,
    /// Changes set aside.
    pub changes: u64,
    /// Why (English, no record content).
    pub reason: String,
    /// Whether the server has been told.
    pub reported: bool,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this kind.
    pub kind: Option<RecordKind>,
    /// Only this status.
    pub status: Option<String>,
    /// Only records at or below this grid node.
    pub grid: Option<GridPath>,
    /// Occurred at or after (ms).
    pub from: Option<i64>,
    /// Occurred before (ms).
    pub until: Option<i64>,
    /// Substring of the name search text (household heads and members, titles).
    pub search: Option<String>,
    /// Include tombstoned records.
    pub include_deleted: bool,
    /// Page size (default 100, at most 10,000).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
    /// Only rows after this one in list order (`occurred_at` descending,
    /// then id): the last row of the previous page, so pages do not shift
    /// when records arrive between two reads.
    pub after: Option<(i64, Uuid)>,
}

/// One unacknowledged change in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox.
    pub seq: i64,
    /// Record the change belongs to.
    pub doc_id: Uuid,
    /// Automerge change hash.
    pub hash: [u8; 32],
    /// Raw change bytes.
    pub change: Vec<u8>,
}

/// The phone's store.
pub struct Store {
    conn: Connection,
    actor: ActorId,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn kind_of(s: &str) -> rusqlite::Result<RecordKind> {
    RecordKind::parse(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// `select` with the WHERE clause of a filter's conditions (not its
/// paging), and the arguments it binds.
fn filter_sql(select: &str, f: &ListFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = format!("{select} WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(k) = f.kind {
        arg(&mut sql, " AND kind = ?", k.as_str().to_owned().into());
    }
    if let Some(s) = &f.status {
        arg(&mut sql, " AND status = ?", s.clone().into());
    }
    if let Some(g) = &f.grid
        && g.level() != crate::grid::GridLevel::County
    {
        let g = g.to_string();
        arg(&mut sql, " AND (grid = ?", g.clone().into());
        arg(&mut sql, " OR grid LIKE ?)", format!("{g}/%").into());
    }
    if let Some(t) = f.from {
        arg(&mut sql, " AND occurred_at >= ?", t.into());
    }
    if let Some(t) = f.until {
        arg(&mut sql, " AND occurred_at < ?", t.into());
    }
    if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        arg(&mut sql, " AND search_text LIKE ? ESCAPE '\\'", format!("%{escaped}%").into());
    }
    if !f.include_deleted {
        sql.push_str(" AND deleted = 0");
    }
    (sql, args)
}

impl Store {
    /// Open (or create) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::init(Connection::open(path)?)
    }

    /// Open (or create) the SQLCipher-encrypted store at `path` with a
    /// 256-bit raw key (the app keeps it in the Android Keystore or iOS
    /// Keychain). The key is set before anything else touches the file, then
    /// checked by reading the schema: a wrong key, or a file that is not an
    /// encrypted store, gives [`CoreError::WrongKey`]. Only with feature
    /// `sqlcipher`: plain SQLite would ignore the key and write clear text.
    #[cfg(feature = "sqlcipher")]
    pub fn open_encrypted(path: impl AsRef<Path>, key: &[u8; 32]) -> Result<Store> {
        let conn = Connection::open(path)?;
        // SQLCipher logs a failed page check ("hmac check failed") to
        // stderr, which Android hands to logcat; the app reports a wrong
        // key itself, as `WrongKey`, and nothing of it reaches a log.
        conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(())).optional()?;
        // A raw key in SQLCipher's blob syntax skips its passphrase KDF; the
        // string is built from hex digits only, so it cannot break the quoting.
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))?;
        let readable = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0));
        match readable {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::NotADatabase => {
                return Err(CoreError::WrongKey);
            }
            Err(e) => return Err(e.into()),
        }
        Self::init(conn)
    }

    /// An in-memory store, for tests and previews.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate::migrate_to(&mut conn, migrate::latest())?;
        let actor: Option<Vec<u8>> =
            conn.query_row("SELECT value FROM meta WHERE key = 'actor'", [], |r| r.get(0)).optional()?;
        let actor = match actor {
            Some(a) => ActorId::from(a),
            None => {
                let a = ActorId::random();
                conn.execute("INSERT INTO meta (key, value) VALUES ('actor', ?1)", [a.to_bytes()])?;
                a
            }
        };
        Ok(Store { conn, actor })
    }

    /// This phone's Automerge actor id.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// Read a setting.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// The connection, for the store's other modules.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Remove a setting.
    pub(crate) fn delete_meta(&mut self, key: &str) -> Result<()> {
        self.conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Write a setting.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The enrolled user as the write rules see them, if the phone is
    /// enrolled. Edits on an enrolled phone are judged by the same rules as
    /// on the server ([`crate::rules`]), so a step the server would refuse
    /// is refused here at once, with the reason in Chinese.
    pub fn writer(&self) -> Result<Option<Writer>> {
        let Some(e) = self.enrollment()? else { return Ok(None) };
        let role: Role = e.role.parse()?;
        Ok(Some(Writer { user_id: e.user_id, role, grid: GridPath::parse(&e.grid)? }))
    }

    /// Save a new record. Fails if the id exists, if a field is invalid, or
    /// (when enrolled) if the user may not create it.
    pub fn create(&mut self, record: &Record) -> Result<()> {
        let mut doc = RecordDoc::create(record, self.actor.clone())?;
        if let Some(w) = self.writer()? {
            check_write(&w, None, record, None)?;
        }
        let changes = doc.changes_since(&[]);
        let tx = self.conn.transaction()?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM records WHERE id = ?1", [record.id.to_string()], |_| Ok(true))
            .optional()?
            .unwrap_or(false);
        if exists {
            return Err(CoreError::invalid("id", "duplicate", "该记录已存在"));
        }
        write_record(&tx, record, &mut doc)?;
        push_outbox(&tx, record.id, changes)?;
        tx.commit()?;
        Ok(())
    }

    /// Load a record's document.
    pub fn load_doc(&self, id: Uuid) -> Result<RecordDoc> {
        let bytes: Vec<u8> = self
            .conn
            .query_row("SELECT doc FROM records WHERE id = ?1", [id.to_string()], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CoreError::NotFound(id.to_string()))?;
        RecordDoc::load(&bytes, self.actor.clone())
    }

    /// Read a record.
    pub fn get(&self, id: Uuid) -> Result<Record> {
        self.load_doc(id)?.record()
    }

    /// Replace a record's fields with `record`'s, writing only what differs.
    /// Returns whether anything changed. Refused (nothing saved) if a field
    /// is invalid, if the enrolled user may not take this step, or if the
    /// server refused earlier changes of the record and it has not been
    /// repaired yet ([`Store::repair`]).
    pub fn update(&mut self, record: &Record) -> Result<bool> {
        self.update_attaching(record, &[])
    }

    /// [`Store::update`], keeping `blobs` (photos this phone took, to
    /// upload) in the same transaction: a photo's bytes and its record's
    /// reference are saved together or not at all.
    pub fn update_attaching(&mut self, record: &Record, blobs: &[attachments::NewBlob<'_>]) -> Result<bool> {
        self.check_not_refused(record.id)?;
        let mut doc = self.load_doc(record.id)?;
        let before_record = doc.record()?;
        let before = doc.heads();
        if !doc.update(record)? {
            return Ok(false);
        }
        let changes = doc.changes_since(&before);
        let merged = doc.record()?;
        if let Some(w) = self.writer()? {
            check_write(&w, Some(&before_record), &merged, None)?;
        }
        let tx = self.conn.transaction()?;
        write_record(&tx, &merged, &mut doc)?;
        push_outbox(&tx, record.id, changes)?;
        for b in blobs {
            attachments::insert_blob(&tx, record.id, b.mime, b.bytes, true, record.updated_at)?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// `NeedsRepair` if the server refused changes of this record.
    fn check_not_refused(&self, id: Uuid) -> Result<()> {
        let refused: Option<String> = self
            .conn
            .query_row("SELECT message_zh FROM refused_changes WHERE doc_id = ?1 LIMIT 1", [id.to_string()], |r| {
                r.get(0)
            })
            .optional()?;
        match refused {
            Some(message_zh) => Err(CoreError::NeedsRepair { message_zh }),
            None => Ok(()),
        }
    }

    /// Changes of a record the server refused, with the reasons: those
    /// waiting for a repair and the steps a repair kept aside
    /// ([`Store::refused_steps`]) until the user dismisses them.
    pub fn refusals(&self, id: Uuid) -> Result<Vec<Rejection>> {
        let mut st = self.conn.prepare_cached(
            "SELECT reason, message_zh FROM refused_changes WHERE doc_id = ?1
             UNION SELECT reason, message_zh FROM refused_steps WHERE doc_id = ?1 ORDER BY 1, 2",
        )?;
        let rows = st.query_map([id.to_string()], |r| Ok(Rejection { code: r.get(0)?, message_zh: r.get(1)? }))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records received from a server that could not be applied and were
    /// set aside, with why (English, for logs; no record content).
    pub fn set_aside(&self) -> Result<Vec<SetAside>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc_id, count(*), min(reason), min(reported) FROM set_aside GROUP BY doc_id ORDER BY doc_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, changes, reason, reported) = row?;
            let doc_id = Uuid::parse_str(&doc).map_err(|e| CoreError::Document(e.to_string()))?;
            out.push(SetAside { doc_id, changes: changes as u64, reason, reported });
        }
        Ok(out)
    }

    /// Mark set-aside records as reported to the server.
    pub fn mark_set_aside_reported(&mut self, ids: &[Uuid]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.execute("UPDATE set_aside SET reported = 1 WHERE doc_id = ?1", [id.to_string()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Give this phone a new Automerge actor id (when the old one is held
    /// by another user's device on the server). Only while nothing waits in
    /// the outbox: waiting changes carry the old id.
    pub fn rotate_actor(&mut self) -> Result<()> {
        if self.outbox_len()? > 0 {
            return Err(CoreError::invalid("actor", "outbox_not_empty", "本机还有未同步的记录，不能更换设备标识"));
        }
        let a = ActorId::random();
        self.conn.execute("UPDATE meta SET value = ?1 WHERE key = 'actor'", [a.to_bytes()])?;
        self.actor = a;
        Ok(())
    }

    /// Load a record, let `edit` change it, save the difference.
    /// A record with refused changes is repaired first ([`Store::repair`]:
    /// the refused steps are kept aside, listed by [`Store::refused_steps`]),
    /// so a refusal never blocks the user's next step.
    pub fn edit(&mut self, id: Uuid, now: i64, edit: impl FnOnce(&mut Record)) -> Result<Record> {
        self.repair(id, now)?;
        let mut rec = self.get(id)?;
        edit(&mut rec);
        rec.updated_at = now;
        self.update(&rec)?;
        self.get(id)
    }

    /// Mark a record deleted (a tombstone that syncs like any change).
    pub fn delete(&mut self, id: Uuid, now: i64) -> Result<()> {
        self.edit(id, now, |r| r.deleted = true).map(|_| ())
    }

    /// List records by index columns.
    pub fn list(&self, f: &ListFilter) -> Result<Vec<RecordSummary>> {
        let (mut sql, mut args) = filter_sql(
            "SELECT id, kind, grid, status, level, title, occurred_at, updated_at, deleted, has_conflict, rejection FROM records",
            f,
        );
        if let Some((at, id)) = f.after {
            args.push(at.into());
            args.push(id.to_string().into());
            let (a, b) = (args.len() - 1, args.len());
            sql.push_str(&format!(" AND (occurred_at < ?{a} OR (occurred_at = ?{a} AND id > ?{b}))"));
        }
        sql.push_str(" ORDER BY occurred_at DESC, id");
        let limit = f.limit.unwrap_or(100).min(10_000);
        args.push(i64::from(limit).into());
        args.push(i64::from(f.offset.unwrap_or(0)).into());
        sql.push_str(&format!(" LIMIT ?{} OFFSET ?{}", args.len() - 1, args.len()));
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let id: String = r.get(0)?;
            let level: Option<String> = r.get(4)?;
            let rejection: Option<String> = r.get(10)?;
            Ok(RecordSummary {
                id: Uuid::parse_str(&id).unwrap_or_default(),
                kind: kind_of(&r.get::<_, String>(1)?)?,
                grid: GridPath::parse(&r.get::<_, String>(2)?).unwrap_or_default(),
                status: r.get(3)?,
                level: level.and_then(|l| serde_json::from_value(serde_json::Value::String(l)).ok()),
                title: r.get(5)?,
                occurred_at: r.get(6)?,
                updated_at: r.get(7)?,
                deleted: r.get(8)?,
                has_conflict: r.get(9)?,
                rejection: rejection.and_then(|j| serde_json::from_str(&j).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// How many records match `f` (its paging fields ignored).
    pub fn count_matching(&self, f: &ListFilter) -> Result<u64> {
        let (sql, args) = filter_sql("SELECT count(*) FROM records", f);
        let n: i64 =
            self.conn.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Number of records (not deleted).
    pub fn count(&self) -> Result<u64> {
        Ok(self.conn.query_row("SELECT count(*) FROM records WHERE deleted = 0", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Oldest outbox entries, up to about `max_bytes` of change bytes (at
    /// least one entry if any).
    pub fn outbox(&self, max_bytes: usize) -> Result<Vec<OutboxEntry>> {
        let mut st = self.conn.prepare_cached("SELECT seq, doc_id, hash, change FROM outbox ORDER BY seq")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        let mut total = 0;
        while let Some(r) = rows.next()? {
            let change: Vec<u8> = r.get(3)?;
            if !out.is_empty() && total + change.len() > max_bytes {
                break;
            }
            total += change.len();
            let hash: Vec<u8> = r.get(2)?;
            out.push(OutboxEntry {
                seq: r.get(0)?,
                doc_id: Uuid::parse_str(&r.get::<_, String>(1)?).map_err(|e| CoreError::Document(e.to_string()))?,
                hash: hash.try_into().map_err(|_| CoreError::Document("bad hash in outbox".into()))?,
                change,
            });
        }
        Ok(out)
    }

    /// The saved cursor for `server`.
    pub fn read_cursor(&self, server: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT cursor FROM sync_cursor WHERE server = ?1", [server], |r| r.get(0))
            .optional()?)
    }

    /// Number of changes waiting to be acknowledged.
    pub fn outbox_len(&self) -> Result<u64> {
        Ok(self.conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Run `f` in one transaction over this store's tables.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut StoreTx<'_>) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction()?;
        let mut stx = StoreTx { tx, actor: self.actor.clone() };
        let out = f(&mut stx)?;
        stx.tx.commit()?;
        Ok(out)
    }

    /// Delete every record, the outbox and cursors (a revoked device, a
    /// sign-out with wipe, another user taking the phone).
    ///
    /// Unsynced work is never deleted without being offered first: changes
    /// still in the outbox are sealed into a relay bundle (signed with the
    /// device's key, sealed to the server's relay key, so whoever holds
    /// the phone cannot read it), kept as the [`Store::rescued_bundle`] the
    /// app offers to export or keep, and carried by this phone too (it
    /// hands the bundle over at its next sync once its user enrolls it
    /// again). Photos this phone took and has not sent yet are kept (in
    /// this encrypted store, with nothing that names them) and go up once
    /// the records naming them are back. Relay bundles carried for other
    /// devices are kept.
    /// Without the server's key (never synced), or past the 8 MiB of a
    /// relay bundle, the signed bundle is kept unsealed, for the township
    /// office's `import-bundle` or another phone's import. If the outbox
    /// cannot be put in a bundle at all (past the bundle limits), nothing
    /// is deleted and the error says so.
    pub fn wipe(&mut self) -> Result<()> {
        let rescued = self.rescue_unsynced()?;
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM records; DELETE FROM outbox; DELETE FROM sync_cursor; DELETE FROM refused_changes;
             DELETE FROM set_aside; DELETE FROM directory; DELETE FROM refused_steps;
             DELETE FROM attachments WHERE NOT (upload = 1 AND bytes IS NOT NULL);
             DELETE FROM meta WHERE key NOT IN ('actor', 'rescued_bundle');",
        )?;
        if let Some(bytes) = &rescued {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![RESCUED_BUNDLE, bytes],
            )?;
            if crate::signing::is_sealed(bytes) {
                use sha2::Digest;
                let id = sha2::Sha256::digest(bytes).to_vec();
                tx.execute(
                    "INSERT OR IGNORE INTO relay_outbox (id, bytes, received_at) VALUES (?1, ?2, ?3)",
                    params![id, bytes, chrono::Utc::now().timestamp_millis()],
                )?;
            }
        }
        tx.commit()?;
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
        Ok(())
    }

    /// The outbox as a bundle, before a wipe: sealed for relay when the
    /// server's key is known (and it fits a relay bundle), else signed and
    /// plain; `None` when nothing waits.
    fn rescue_unsynced(&mut self) -> Result<Option<Vec<u8>>> {
        if self.outbox_len()? == 0 {
            return Ok(None);
        }
        let sealable =
            self.enrollment()?.is_some_and(|e| crate::signing::from_hex(&e.server_key).is_some_and(|k| !k.is_empty()));
        if sealable && let Ok(sealed) = self.export_relay_bundle() {
            return Ok(Some(sealed));
        }
        Ok(Some(self.export_bundle()?.encode()?))
    }

    /// The bundle of unsynced changes the last wipe saved
    /// ([`Store::wipe`]): a sealed relay bundle another phone can carry
    /// (`carry_relay`), or a plain signed bundle for `import-bundle`.
    pub fn rescued_bundle(&self) -> Result<Option<Vec<u8>>> {
        self.meta(RESCUED_BUNDLE)
    }

    /// Forget the rescued bundle (the user exported it, or the server has
    /// its changes).
    pub fn forget_rescued_bundle(&mut self) -> Result<()> {
        self.delete_meta(RESCUED_BUNDLE)
    }

    /// Run SQLite's integrity check; `Ok(true)` when the file is sound.
    pub fn integrity_ok(&self) -> Result<bool> {
        let s: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }
}

/// A transaction over the store, used by the sync engine to apply a whole
/// server response atomically.
pub struct StoreTx<'a> {
    tx: Transaction<'a>,
    actor: ActorId,
}

impl StoreTx<'_> {
    /// The cursor saved for `server`.
    pub fn cursor(&self, server: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tx.query_row("SELECT cursor FROM sync_cursor WHERE server = ?1", [server], |r| r.get(0)).optional()?)
    }

    /// Save the cursor for `server`.
    pub fn set_cursor(&self, server: &str, cursor: &[u8], now: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO sync_cursor (server, cursor, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT(server) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            params![server, cursor, now],
        )?;
        Ok(())
    }

    /// Forget every cursor (after enrolling with a server anew).
    pub fn clear_cursors(&self) -> Result<()> {
        self.tx.execute("DELETE FROM sync_cursor", [])?;
        Ok(())
    }

    /// Drop acknowledged changes from the outbox.
    pub fn ack(&self, doc_id: Uuid, hash: &[u8; 32]) -> Result<()> {
        self.tx
            .execute("DELETE FROM outbox WHERE doc_id = ?1 AND hash = ?2", params![doc_id.to_string(), &hash[..]])?;
        Ok(())
    }

    /// Keep a server's rejection on the record, remember which changes it
    /// refused, and drop them from the outbox (resending them would be
    /// refused again). The local record keeps them, marked, for the user to
    /// see and repair ([`Store::repair`]).
    /// `show` puts this rejection on the record (a response may refuse
    /// several changes of one record for different reasons).
    pub fn reject(&self, doc_id: Uuid, rejection: &Rejection, hashes: &[[u8; 32]], now: i64, show: bool) -> Result<()> {
        if show {
            self.note_rejection(doc_id, rejection)?;
        }
        let mut st = self.tx.prepare_cached(
            "INSERT INTO refused_changes (doc_id, hash, reason, message_zh, refused_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(doc_id, hash) DO UPDATE SET reason = excluded.reason, message_zh = excluded.message_zh",
        )?;
        for h in hashes {
            st.execute(params![doc_id.to_string(), &h[..], rejection.code, rejection.message_zh, now])?;
            self.ack(doc_id, h)?;
        }
        Ok(())
    }

    /// Show a server's refusal on the record without refusing any change
    /// (its changes stay in the outbox to be sent again later).
    pub fn note_rejection(&self, doc_id: Uuid, rejection: &Rejection) -> Result<()> {
        let json = serde_json::to_string(rejection).map_err(|e| CoreError::Document(e.to_string()))?;
        self.tx.execute("UPDATE records SET rejection = ?2 WHERE id = ?1", params![doc_id.to_string(), json])?;
        Ok(())
    }

    /// Hashes of a record's changes waiting in the outbox.
    pub fn outbox_hashes(&self, doc_id: Uuid) -> Result<Vec<[u8; 32]>> {
        let mut st = self.tx.prepare_cached("SELECT hash FROM outbox WHERE doc_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([doc_id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|h| h?.try_into().map_err(|_| CoreError::Document("bad hash in outbox".into()))).collect()
    }

    /// The server accepted changes of the record: forget an earlier
    /// rejection, unless refused changes still wait for a repair.
    pub fn clear_rejection(&self, doc_id: Uuid) -> Result<()> {
        self.tx.execute(
            "UPDATE records SET rejection = NULL WHERE id = ?1 AND rejection IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM refused_changes WHERE doc_id = ?1)
             AND NOT EXISTS (SELECT 1 FROM refused_steps WHERE doc_id = ?1)",
            [doc_id.to_string()],
        )?;
        Ok(())
    }

    /// Put a record's whole history back in the outbox (the server is
    /// missing earlier changes of it).
    pub fn requeue_history(&self, doc_id: Uuid) -> Result<()> {
        let bytes: Option<Vec<u8>> = self
            .tx
            .query_row("SELECT doc FROM records WHERE id = ?1", [doc_id.to_string()], |r| r.get(0))
            .optional()?;
        let Some(bytes) = bytes else { return Ok(()) };
        let mut doc = RecordDoc::load(&bytes, self.actor.clone())?;
        // Only this phone's own changes: the server refuses another
        // device's actor, so resending those could only be refused.
        let refused: std::collections::HashSet<Vec<u8>> = {
            let mut st = self.tx.prepare_cached("SELECT hash FROM refused_changes WHERE doc_id = ?1")?;
            let rows = st.query_map([doc_id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let own: Vec<Change> = doc
            .changes_since(&[])
            .into_iter()
            .filter(|c| c.actor_id() == &self.actor && !refused.contains(&c.hash().0[..]))
            .collect();
        push_outbox(&self.tx, doc_id, own)
    }

    /// Apply received changes of a record, or set them aside if they cannot
    /// be applied (with any set aside before, which are retried first).
    /// Returns why they were set aside, or `None` when applied.
    pub fn apply_or_set_aside(&self, doc_id: Uuid, changes: &[Vec<u8>], now: i64) -> Result<Option<String>> {
        let earlier: Vec<Vec<u8>> = {
            let mut st = self.tx.prepare_cached("SELECT change FROM set_aside WHERE doc_id = ?1 ORDER BY at")?;
            let rows = st.query_map([doc_id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let all: Vec<Vec<u8>> = earlier.iter().chain(changes).cloned().collect();
        self.tx.execute_batch("SAVEPOINT apply_remote")?;
        let why = match self.apply_remote(doc_id, &all) {
            Ok(true) => None,
            Ok(false) => Some("waiting for earlier changes of the record".to_owned()),
            Err(e) => Some(e.to_string().chars().take(200).collect()),
        };
        match why {
            None => {
                self.tx.execute_batch("RELEASE apply_remote")?;
                if !earlier.is_empty() {
                    self.tx.execute("DELETE FROM set_aside WHERE doc_id = ?1", [doc_id.to_string()])?;
                }
                Ok(None)
            }
            Some(why) => {
                self.tx.execute_batch("ROLLBACK TO apply_remote; RELEASE apply_remote")?;
                let mut st = self.tx.prepare_cached(
                    "INSERT INTO set_aside (doc_id, hash, change, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(doc_id, hash) DO NOTHING",
                )?;
                for c in changes {
                    // The hash names the change; unparseable bytes get the
                    // SHA-256 of their bytes so they are kept once too.
                    let hash = crate::doc::parse_change(c).map(|c| c.hash().0.to_vec()).unwrap_or_else(|_| sha_of(c));
                    st.execute(params![doc_id.to_string(), hash, c, why, now])?;
                }
                Ok(Some(why))
            }
        }
    }

    /// Merge changes received from a server into the local record, creating
    /// it if new. Returns whether the record is now readable (all of its
    /// dependencies present).
    pub fn apply_remote(&self, doc_id: Uuid, changes: &[Vec<u8>]) -> Result<bool> {
        let existing: Option<Vec<u8>> = self
            .tx
            .query_row("SELECT doc FROM records WHERE id = ?1", [doc_id.to_string()], |r| r.get(0))
            .optional()?;
        let mut doc = match &existing {
            Some(b) => RecordDoc::load(b, self.actor.clone())?,
            None => RecordDoc::empty(self.actor.clone()),
        };
        let parsed: Vec<Change> = changes.iter().map(|c| crate::doc::parse_change(c)).collect::<Result<_>>()?;
        guarded(|| doc.apply(parsed))?;
        // Keep changes that wait for dependencies inside the saved document.
        let record = match guarded(|| doc.record()) {
            Ok(r) => r,
            Err(_) if existing.is_none() => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if record.id != doc_id {
            return Err(CoreError::Document("record id does not match its document".into()));
        }
        write_record(&self.tx, &record, &mut doc)?;
        Ok(true)
    }
}

/// A stand-in hash for bytes that are not a change: their SHA-256, so a
/// set-aside row is kept once however often the bytes arrive.
fn sha_of(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn write_record(tx: &Transaction<'_>, record: &Record, doc: &mut RecordDoc) -> Result<()> {
    let ix = record.index();
    let bytes = doc.save();
    tx.execute(
        "INSERT INTO records (id, kind, grid, status, level, title, search_text, occurred_at, created_at, updated_at, deleted, sensitive, has_conflict, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(id) DO UPDATE SET status = excluded.status, level = excluded.level, title = excluded.title,
           search_text = excluded.search_text, occurred_at = excluded.occurred_at, updated_at = excluded.updated_at,
           deleted = excluded.deleted, sensitive = excluded.sensitive, has_conflict = excluded.has_conflict, doc = excluded.doc",
        params![
            record.id.to_string(),
            ix.kind.as_str(),
            ix.grid.to_string(),
            ix.status,
            ix.level.map(|l| l.as_str()),
            ix.title,
            ix.search_text,
            ix.occurred_at,
            record.created_at,
            record.updated_at,
            ix.deleted,
            ix.sensitive,
            ix.has_conflict,
            bytes,
        ],
    )?;
    Ok(())
}

fn push_outbox(tx: &Transaction<'_>, doc_id: Uuid, changes: Vec<Change>) -> Result<()> {
    let mut st = tx.prepare_cached("INSERT OR IGNORE INTO outbox (doc_id, hash, change) VALUES (?1, ?2, ?3)")?;
    for c in changes {
        st.execute(params![doc_id.to_string(), &c.hash().0[..], c.raw_bytes()])?;
    }
    Ok(())
}

#[cfg(all(test, feature = "sqlcipher"))]
mod encrypted_tests {
    use super::*;
    use crate::model::{Dispute, DisputeCategory, RecordBody};

    /// A store opened with a key keeps no record text in clear, reopens with
    /// the same key and refuses any other.
    #[test]
    fn encrypted_store_round_trips_and_refuses_a_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let key = [7u8; 32];
        let rec = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "u1",
            1,
            RecordBody::Dispute(Dispute {
                parties: vec!["张三".into()],
                category: DisputeCategory::Land,
                summary: "山体滑坡后的地界纠纷".into(),
                found_at: 1,
                events: vec![],
            }),
        );
        {
            let mut s = Store::open_encrypted(&path, &key).unwrap();
            s.create(&rec).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        let needle = "滑坡".as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        assert!(!bytes.windows(7).any(|w| w == b"records"));
        let s = Store::open_encrypted(&path, &key).unwrap();
        assert_eq!(s.get(rec.id).unwrap(), rec);
        drop(s);
        assert!(matches!(Store::open_encrypted(&path, &[8u8; 32]), Err(CoreError::WrongKey)));
    }
}
