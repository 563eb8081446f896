//! [`SqliteServerStore`]: one county on one machine, embedded SQLite in WAL
//! mode with `synchronous=FULL` (an acknowledged change survives power loss).
//!
//! One writer connection behind a mutex serializes merges, which also makes
//! the feed's `seq` commit order; readers use their own connections.
//!
//! Merges use group commit: a sync that finds other syncs waiting for the
//! writer leaves its transaction open (its work sealed in a savepoint) and
//! waits; the last of the group commits once for all of them, so 400 phones
//! syncing at once cost a handful of `fsync`s instead of 400. Nobody is
//! answered before the commit that holds their changes.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::*;
use gridsync_core::grid::Role;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/server-sqlite/001_init.sql"),
    include_str!("../../../migrations/server-sqlite/002_case_counts.sql"),
    include_str!("../../../migrations/server-sqlite/003_web.sql"),
    include_str!("../../../migrations/server-sqlite/004_device_actors.sql"),
    include_str!("../../../migrations/server-sqlite/005_health_probe.sql"),
    include_str!("../../../migrations/server-sqlite/006_accounts.sql"),
    include_str!("../../../migrations/server-sqlite/007_attachments.sql"),
    include_str!("../../../migrations/server-sqlite/008_signatures.sql"),
    include_str!("../../../migrations/server-sqlite/009_photo_owners.sql"),
    include_str!("../../../migrations/server-sqlite/010_problem_reports.sql"),
];

/// The schema whose migration also re-reads stored records' photos
/// ([`rederive_photo_refs`]).
const PHOTO_OWNERS_SCHEMA: usize = 9;

/// The embedded SQLite store.
pub struct SqliteServerStore {
    writer: Mutex<Writer>,
    /// Signalled when a group transaction ends.
    group_done: Condvar,
    /// Syncs waiting for the writer (they will join the open group).
    wanting: AtomicUsize,
    readers: Mutex<Vec<Connection>>,
    path: Option<std::path::PathBuf>,
}

/// The writer connection and the state of its group transaction.
struct Writer {
    conn: Connection,
    /// A group transaction is open.
    open: bool,
    /// Number of the current (or last) group transaction.
    epoch: u64,
    /// Last group transaction that ended (committed or rolled back).
    ended: u64,
    /// Group transactions that were rolled back.
    failed: BTreeSet<u64>,
    /// Members and start of the open group.
    members: usize,
    opened_at: Instant,
}

/// A group stops taking members after this many, or this long, so a steady
/// stream of syncs cannot keep it open.
pub const GROUP_MAX_MEMBERS: usize = 64;
const GROUP_MAX_OPEN: Duration = Duration::from_millis(50);
/// Reader connections kept open between reads.
const READER_POOL: usize = 32;

impl Writer {
    fn new(conn: Connection) -> Self {
        Writer { conn, open: false, epoch: 0, ended: 0, failed: BTreeSet::new(), members: 0, opened_at: Instant::now() }
    }
}

/// The writer, exclusively, with no group transaction open.
struct Exclusive<'a>(MutexGuard<'a, Writer>);

impl std::ops::Deref for Exclusive<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

fn open_conn(path: Option<&Path>) -> StoreResult<Connection> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // One plan per statement, whatever its parameters. Without it, SQLite
    // (3.54, built with STAT4) marks a statement whose plan could depend on
    // a bound value (a `LIMIT ?`, a join's key) to be compiled again at
    // every new binding: the device lookup and the feed read, run by every
    // sync, were parsed and planned anew each time, 4% of the evening's
    // CPU. The server keeps no statistics (no ANALYZE), so no plan is lost.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// The writer's connection: [`open_conn`], with its sub-journals in memory.
/// Each sync of a group commit works inside a savepoint, and SQLite keeps
/// the page images a savepoint may roll back to in a sub-journal that
/// spills to a temporary file past 64 KiB: a `pwrite` per page, 4% of the
/// evening's CPU. In memory they cost a copy; a group holds at most
/// [`GROUP_MAX_MEMBERS`] syncs, so the journal stays a few MiB at most.
fn open_writer(path: Option<&Path>) -> StoreResult<Connection> {
    let conn = open_conn(path)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Merge `docs` as device `device_id` inside the open transaction.
fn merge_in(
    tx: &Connection,
    device_id: &str,
    docs: &[IncomingDoc],
    merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
) -> StoreResult<Vec<DocDecision>> {
    let mut out = Vec::with_capacity(docs.len());
    // The records of one request share its signature: stored once.
    let mut batch_stored: Option<[u8; gridsync_core::signing::SIGNATURE_LEN]> = None;
    for (i, d) in docs.iter().enumerate() {
        let id = d.doc_id.to_string();
        let decision = merge(i, stored_doc(tx, &id)?, d);
        if let DocDecision::Accept(m) = &decision {
            let ix = &m.index;
            let (t, v, g) = parts(&ix.grid);
            let sensitive = ix.sensitive;
            tx.prepare_cached(
                    "INSERT INTO documents (id, kind, grid, township, village, grp, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json, snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                     ON CONFLICT(id) DO UPDATE SET status = excluded.status, level = excluded.level, title = excluded.title,
                       occurred_at = excluded.occurred_at, updated_at = excluded.updated_at, sensitive = excluded.sensitive,
                       deleted = excluded.deleted, has_conflict = excluded.has_conflict, json = excluded.json, snapshot = excluded.snapshot",
                )?
                .execute(params![
                        id,
                        ix.kind.as_str(),
                        ix.grid.to_string(),
                        t,
                        v,
                        g,
                        ix.status,
                        ix.level.map(|l| l.as_str()),
                        ix.title,
                        ix.occurred_at,
                        m.created_at,
                        m.updated_at,
                        m.author,
                        sensitive,
                        ix.deleted,
                        ix.has_conflict,
                        m.json,
                        m.snapshot,
                    ])?;
            if m.history_turns_sensitive {
                tx.prepare_cached("UPDATE changes SET sensitive = 1 WHERE doc_id = ?1")?.execute([&id])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO changes (doc_id, hash, bytes, origin, township, village, grp, sensitive, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(doc_id, hash) DO NOTHING",
            )?;
            let sig = m.batch.as_ref().map(|b| &b.signature.0[..]);
            if let Some(b) = &m.batch
                && !m.new_changes.is_empty()
                && batch_stored != Some(b.signature.0)
            {
                batch_stored = Some(b.signature.0);
                tx.prepare_cached(
                    "INSERT INTO signed_batches (signature, device_id, manifest) VALUES (?1, ?2, ?3)
                         ON CONFLICT (signature) DO NOTHING",
                )?
                .execute(params![&b.signature.0[..], device_id, b.manifest.bytes()])?;
            }
            for (hash, bytes) in &m.new_changes {
                st.execute(params![id, &hash[..], bytes, device_id, t, v, g, sensitive, sig])?;
            }
            if !m.attachments.is_empty() {
                let mut st = tx.prepare_cached(
                    "INSERT INTO attachment_refs (hash, record_id, by_user, mime, size) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (hash, record_id) DO NOTHING",
                )?;
                for a in &m.attachments {
                    st.execute(params![a.hash, id, a.by, a.mime, a.size])?;
                }
            }
        }
        out.push(decision);
    }
    Ok(out)
}

/// Schema 9's step in Rust: every record with photos read again with this
/// core's reader, adding the references (and the JSON) an older core lost
/// when two phones made the record's `attachments` map at once.
fn rederive_photo_refs(c: &Connection) -> StoreResult<()> {
    let ids: Vec<String> = c
        .prepare("SELECT DISTINCT record_id FROM attachment_refs")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        let Some(snapshot) = c
            .query_row("SELECT snapshot FROM documents WHERE id = ?1", [&id], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
        else {
            continue;
        };
        let stored: std::collections::HashSet<String> = c
            .prepare("SELECT hash FROM attachment_refs WHERE record_id = ?1")?
            .query_map([&id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let Some((refs, json)) = reread_photos(&snapshot, &stored) else { continue };
        for a in refs {
            c.execute(
                "INSERT INTO attachment_refs (hash, record_id, by_user, mime, size) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (hash, record_id) DO NOTHING",
                params![a.hash, id, a.by, a.mime, a.size],
            )?;
        }
        c.execute("UPDATE documents SET json = ?2 WHERE id = ?1", params![id, json])?;
    }
    Ok(())
}

/// A record's stored state, as judged against: read before judging (a
/// reader) and again under the writer.
fn stored_doc(c: &Connection, id: &str) -> StoreResult<Option<StoredDoc>> {
    Ok(c.prepare_cached("SELECT snapshot, sensitive FROM documents WHERE id = ?1")?
        .query_row([id], |r| Ok(StoredDoc { snapshot: r.get(0)?, sensitive: r.get(1)? }))
        .optional()?)
}

/// A device and its user, by `column` of `devices` (`id` or
/// `token_hash`). Every request looks its device up: the statement is
/// cached, not parsed each time.
fn device_auth(c: &Connection, column: &'static str, key: &dyn rusqlite::ToSql) -> StoreResult<Option<DeviceAuth>> {
    let sql = format!(
        "SELECT d.id, d.user_id, d.name, d.created_at, d.last_sync_at, d.revoked_at, d.actor, d.public_key, u.id, u.display_name, u.role, u.grid
         FROM devices d JOIN users u ON u.id = d.user_id WHERE d.{column} = ?1"
    );
    Ok(c.prepare_cached(&sql)?
        .query_row([key], |r| Ok(DeviceAuth { device: device_row(r)?, user: user_row(r, 8)? }))
        .optional()?)
}

fn touch(conn: &Connection, device_id: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached("UPDATE devices SET last_sync_at = ?2 WHERE id = ?1")?.execute(params![device_id, now])?;
    Ok(())
}

fn role_of(s: &str) -> rusqlite::Result<Role> {
    s.parse().map_err(|e: gridsync_core::CoreError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn grid_of(s: &str) -> rusqlite::Result<GridPath> {
    GridPath::parse(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn user_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(at)?,
        display_name: r.get(at + 1)?,
        role: role_of(&r.get::<_, String>(at + 2)?)?,
        grid: grid_of(&r.get::<_, String>(at + 3)?)?,
    })
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let agency: Option<String> = r.get(4)?;
    Ok(Account { user: user_row(r, 0)?, agency: agency.as_deref().and_then(Agency::parse), deactivated_at: r.get(5)? })
}

/// Columns of an [`Account`], in the order [`account_row`] reads them.
const ACCOUNT_COLS: &str = "id, display_name, role, grid, agency, deactivated_at";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        last_sync_at: r.get(4)?,
        revoked_at: r.get(5)?,
        actor: r.get(6)?,
        public_key: r.get(7)?,
    })
}

/// The village (or township) of a record's township and village columns.
fn node_of(t: &str, v: &str) -> StoreResult<GridPath> {
    let path = if v.is_empty() { t.to_owned() } else { format!("{t}/{v}") };
    GridPath::parse(&path).map_err(|e| StoreError::Corrupt(format!("grid {path}: {e}")))
}

/// The `WHERE` condition of a [`ViewQuery`] and its arguments ?1 to ?9,
/// shared by the list and its count so a total is always the list's.
fn view_filter(q: &ViewQuery) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
    let (t, v, g) = q.under.as_ref().map(parts).unwrap_or_default();
    // Naming ?9 here fixes the statement's parameter count at nine or more.
    let mut cond = String::from("?9 IS NOT NULL");
    for (set, c) in [
        (!t.is_empty(), " AND township = ?1"),
        (!v.is_empty(), " AND village = ?2"),
        (!g.is_empty(), " AND grp = ?3"),
        (q.kind.is_some(), " AND kind = ?4"),
        (!q.sensitive, " AND sensitive = 0"),
        (q.from.is_some(), " AND occurred_at >= ?5"),
        (q.until.is_some(), " AND occurred_at < ?6"),
        (q.live, " AND deleted = 0"),
        (q.status.is_some(), " AND status = ?7"),
        (q.open == Some(true), " AND status <> ?9"),
        (q.open == Some(false), " AND status = ?9"),
    ] {
        if set {
            cond.push_str(c);
        }
    }
    // ?8 is unused; every argument is bound so the numbering stays fixed.
    let args: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(t),
        Box::new(v),
        Box::new(g),
        Box::new(q.kind.map(RecordKind::as_str)),
        Box::new(q.from),
        Box::new(q.until),
        Box::new(q.status.clone()),
        Box::new(None::<i64>),
        Box::new(gridsync_core::reports::CLOSED_STATUS),
    ];
    (cond, args)
}

fn view_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordView> {
    let id: String = r.get(0)?;
    let json: String = r.get(13)?;
    let kind: String = r.get(1)?;
    Ok(RecordView {
        id: Uuid::parse_str(&id).unwrap_or_default(),
        kind: RecordKind::parse(&kind)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?,
        grid: grid_of(&r.get::<_, String>(2)?)?,
        status: r.get(3)?,
        level: r.get(4)?,
        title: r.get(5)?,
        occurred_at: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        author: r.get(9)?,
        sensitive: r.get(10)?,
        deleted: r.get(11)?,
        has_conflict: r.get(12)?,
        json: serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
    })
}

impl SqliteServerStore {
    /// Open (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let writer = open_writer(Some(&path))?;
        Ok(Self::with_writer(writer, Some(path)))
    }

    /// A private in-memory database (tests). Reads go through the writer.
    pub fn in_memory() -> StoreResult<Self> {
        Ok(Self::with_writer(open_writer(None)?, None))
    }

    fn with_writer(conn: Connection, path: Option<std::path::PathBuf>) -> Self {
        SqliteServerStore {
            writer: Mutex::new(Writer::new(conn)),
            group_done: Condvar::new(),
            wanting: AtomicUsize::new(0),
            readers: Mutex::new(Vec::new()),
            path,
        }
    }

    /// End the open group transaction: commit it (or roll it back when
    /// `ok` is false or the commit fails) and wake its members.
    fn end_group(&self, w: &mut Writer, ok: bool) {
        let committed = ok && w.conn.execute_batch("COMMIT").is_ok();
        if !committed {
            let _ = w.conn.execute_batch("ROLLBACK");
            w.failed.insert(w.epoch);
        }
        w.open = false;
        w.ended = w.epoch;
        w.members = 0;
        self.group_done.notify_all();
    }

    /// Group transactions committed so far (for tests and the bench: with
    /// group commit, far fewer than the writes that went through them).
    pub fn group_commits(&self) -> u64 {
        let w = lock(&self.writer);
        w.epoch - w.failed.len() as u64 - u64::from(w.open)
    }

    /// The writer for an operation of its own: first ends any open group.
    fn exclusive(&self) -> Exclusive<'_> {
        let mut w = lock(&self.writer);
        if w.open {
            self.end_group(&mut w, true);
        }
        Exclusive(w)
    }

    /// Run `f` inside the shared group transaction and return once the
    /// group has committed (or failed, in which case nothing of `f` is kept).
    fn group_write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.wanting.fetch_add(1, Ordering::SeqCst);
        let mut w = lock(&self.writer);
        self.wanting.fetch_sub(1, Ordering::SeqCst);
        if !w.open {
            w.conn.execute_batch("BEGIN IMMEDIATE")?;
            w.open = true;
            w.epoch += 1;
            w.opened_at = Instant::now();
        }
        let epoch = w.epoch;
        w.members += 1;
        // Savepoints as cached statements: one group runs dozens of them.
        let run = |conn: &Connection, sql: &str| conn.prepare_cached(sql).and_then(|mut st| st.execute([])).map(drop);
        let result = match run(&w.conn, "SAVEPOINT sync_request") {
            Ok(()) => {
                let r = f(&w.conn);
                let sealed = if r.is_ok() {
                    run(&w.conn, "RELEASE sync_request")
                } else {
                    run(&w.conn, "ROLLBACK TO sync_request").and_then(|()| run(&w.conn, "RELEASE sync_request"))
                };
                match sealed {
                    Ok(()) => r,
                    Err(e) => {
                        // The transaction is unusable: fail the whole group.
                        self.end_group(&mut w, false);
                        return Err(e.into());
                    }
                }
            }
            Err(e) => Err(e.into()),
        };
        loop {
            if w.ended >= epoch {
                if w.failed.contains(&epoch) {
                    return Err(StoreError::Open("the shared transaction was rolled back; retry".into()));
                }
                return result;
            }
            let nobody_joining = self.wanting.load(Ordering::SeqCst) == 0;
            if w.open
                && w.epoch == epoch
                && (nobody_joining || w.members >= GROUP_MAX_MEMBERS || w.opened_at.elapsed() >= GROUP_MAX_OPEN)
            {
                self.end_group(&mut w, true);
                continue;
            }
            w = self.group_done.wait_timeout(w, Duration::from_millis(5)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let Some(path) = &self.path else {
            return f(&self.exclusive());
        };
        let conn = lock(&self.readers).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(Some(path))?,
        };
        let out = f(&conn);
        let mut pool = lock(&self.readers);
        // Enough for the merges and the dashboard's readers at once; a
        // connection costs a schema parse to open.
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }
}

impl SchemaStore for SqliteServerStore {
    fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.exclusive();
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > MIGRATIONS.len() as i64 {
            return Err(StoreError::SchemaTooNew { found: current, supported: MIGRATIONS.len() as i64 });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            if i + 1 == PHOTO_OWNERS_SCHEMA {
                rederive_photo_refs(&tx)?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn probe_write(&self, now: i64) -> StoreResult<()> {
        self.group_write(|conn| {
            conn.execute("UPDATE health_probe SET at = ?1 WHERE id = 1", [now])?;
            Ok(())
        })
    }

    fn change_count(&self) -> StoreResult<u64> {
        self.read(|c| Ok(c.query_row("SELECT count(*) FROM changes", [], |r| r.get::<_, i64>(0))? as u64))
    }

    fn server_secret(&self, name: &str, fresh: &[u8], now: i64) -> StoreResult<Vec<u8>> {
        let conn = self.exclusive();
        conn.execute(
            "INSERT INTO server_keys (name, secret, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            params![name, fresh, now],
        )?;
        Ok(conn.query_row("SELECT secret FROM server_keys WHERE name = ?1", [name], |r| r.get(0))?)
    }
}

impl AccountStore for SqliteServerStore {
    fn put_grid_nodes(&self, nodes: &[GridNode]) -> StoreResult<()> {
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO grid_nodes (path, name) VALUES (?1, ?2) ON CONFLICT(path) DO UPDATE SET name = excluded.name",
            )?;
            for n in nodes {
                st.execute(params![n.path.to_string(), n.name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn grid_nodes(&self) -> StoreResult<Vec<GridNode>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT path, name FROM grid_nodes ORDER BY path")?;
            let rows =
                st.query_map([], |r| Ok(GridNode { path: grid_of(&r.get::<_, String>(0)?)?, name: r.get(1)? }))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn add_user(&self, u: &User) -> StoreResult<()> {
        let conn = self.exclusive();
        let n = conn.execute(
            "INSERT INTO users (id, display_name, role, grid) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO NOTHING",
            params![u.id, u.display_name, u.role.as_str(), u.grid.to_string()],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("user {}", u.id)));
        }
        Ok(())
    }

    fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.read(|c| {
            Ok(c.query_row("SELECT id, display_name, role, grid FROM users WHERE id = ?1", [id], |r| user_row(r, 0))
                .optional()?)
        })
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT id, display_name, role, grid FROM users ORDER BY id")?;
            let rows = st.query_map([], |r| user_row(r, 0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {ACCOUNT_COLS} FROM users WHERE id = ?1"), [id], account_row).optional()?)
        })
    }

    fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {ACCOUNT_COLS} FROM users ORDER BY id"))?;
            let rows = st.query_map([], account_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn update_user(&self, u: &User, now: i64) -> StoreResult<()> {
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        let old = tx
            .query_row("SELECT id, display_name, role, grid FROM users WHERE id = ?1", [&u.id], |r| user_row(r, 0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("user {}", u.id)))?;
        tx.execute(
            "UPDATE users SET display_name = ?2, role = ?3, grid = ?4 WHERE id = ?1",
            params![u.id, u.display_name, u.role.as_str(), u.grid.to_string()],
        )?;
        if old.role != u.role || old.grid != u.grid {
            tx.execute(
                "UPDATE devices SET revoked_at = coalesce(revoked_at, ?2) WHERE user_id = ?1",
                params![u.id, now],
            )?;
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [&u.id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn set_agency(&self, user_id: &str, agency: Option<Agency>) -> StoreResult<()> {
        let conn = self.exclusive();
        let n =
            conn.execute("UPDATE users SET agency = ?2 WHERE id = ?1", params![user_id, agency.map(Agency::as_str)])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    fn set_active(&self, user_id: &str, active: bool, now: i64) -> StoreResult<()> {
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        let n = if active {
            tx.execute("UPDATE users SET deactivated_at = NULL WHERE id = ?1", [user_id])?
        } else {
            tx.execute(
                "UPDATE users SET deactivated_at = coalesce(deactivated_at, ?2) WHERE id = ?1",
                params![user_id, now],
            )?
        };
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        if !active {
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?;
            tx.execute(
                "UPDATE devices SET revoked_at = coalesce(revoked_at, ?2) WHERE user_id = ?1",
                params![user_id, now],
            )?;
            tx.execute(
                "UPDATE enrollments SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
                params![user_id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl DeviceStore for SqliteServerStore {
    fn create_enrollment(&self, code_hash: &[u8], user_id: &str, expires_at: i64) -> StoreResult<()> {
        let conn = self.exclusive();
        let exists: bool = conn
            .query_row("SELECT 1 FROM users WHERE id = ?1 AND deactivated_at IS NULL", [user_id], |_| Ok(true))
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("active user {user_id}")));
        }
        conn.execute(
            "INSERT INTO enrollments (code_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            params![code_hash, user_id, expires_at],
        )?;
        Ok(())
    }

    fn redeem_enrollment(
        &self,
        code_hash: &[u8],
        device: &Device,
        token_hash: &[u8],
        now: i64,
    ) -> StoreResult<Redeemed> {
        let mut conn = self.exclusive();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let user_id: Option<String> = tx
            .query_row(
                "UPDATE enrollments SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id",
                params![code_hash, now],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user_id) = user_id else { return Ok(Redeemed::InvalidCode) };
        if let Some(actor) = &device.actor {
            let holder: Option<(String, String)> = tx
                .query_row("SELECT id, user_id FROM devices WHERE actor = ?1", [actor], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match holder {
                // Dropping the transaction rolls back: the code stays unused.
                Some((_, holder_user)) if holder_user != user_id => return Ok(Redeemed::ActorInUse),
                Some((old_device, _)) => {
                    tx.execute("UPDATE devices SET actor = NULL WHERE id = ?1", [old_device])?;
                }
                None => {}
            }
        }
        tx.execute(
            "INSERT INTO devices (id, user_id, name, token_hash, created_at, actor, public_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![device.id, user_id, device.name, token_hash, now, device.actor, device.public_key],
        )?;
        let user = tx.query_row("SELECT id, display_name, role, grid FROM users WHERE id = ?1", [&user_id], |r| {
            user_row(r, 0)
        })?;
        tx.commit()?;
        Ok(Redeemed::Enrolled(user))
    }

    fn claim_actor(&self, device_id: &str, actor: &[u8]) -> StoreResult<bool> {
        let conn = self.exclusive();
        let current: Option<Option<Vec<u8>>> =
            conn.query_row("SELECT actor FROM devices WHERE id = ?1", [device_id], |r| r.get(0)).optional()?;
        match current {
            None => Ok(false),
            Some(Some(a)) => Ok(a == actor),
            Some(None) => {
                let taken: bool = conn
                    .query_row("SELECT 1 FROM devices WHERE actor = ?1", [actor], |_| Ok(true))
                    .optional()?
                    .is_some();
                if taken {
                    return Ok(false);
                }
                let n = conn.execute(
                    "UPDATE devices SET actor = ?2 WHERE id = ?1 AND actor IS NULL",
                    params![device_id, actor],
                )?;
                Ok(n == 1)
            }
        }
    }

    fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceAuth>> {
        self.read(|c| device_auth(c, "token_hash", &token_hash))
    }

    fn device(&self, device_id: &str) -> StoreResult<Option<DeviceAuth>> {
        self.read(|c| device_auth(c, "id", &device_id))
    }

    fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        let conn = self.exclusive();
        let n = conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![device_id, now],
        )?;
        Ok(n > 0)
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, user_id, name, created_at, last_sync_at, revoked_at, actor, public_key FROM devices ORDER BY user_id, created_at",
            )?;
            let rows = st.query_map([], device_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn set_device_key(&self, device_id: &str, public_key: &[u8]) -> StoreResult<KeyRegistered> {
        let conn = self.exclusive();
        let current: Option<Option<Vec<u8>>> =
            conn.query_row("SELECT public_key FROM devices WHERE id = ?1", [device_id], |r| r.get(0)).optional()?;
        Ok(match current {
            None => KeyRegistered::UnknownDevice,
            Some(Some(k)) if k == public_key => KeyRegistered::Same,
            Some(Some(_)) => KeyRegistered::Conflict,
            Some(None) => {
                let n = conn.execute(
                    "UPDATE devices SET public_key = ?2 WHERE id = ?1 AND public_key IS NULL",
                    params![device_id, public_key],
                )?;
                if n == 1 { KeyRegistered::Registered } else { KeyRegistered::Conflict }
            }
        })
    }

    fn touch_device(&self, device_id: &str, now: i64) -> StoreResult<()> {
        self.group_write(|conn| touch(conn, device_id, now))
    }
}

impl RecordStore for SqliteServerStore {
    fn stored_docs(&self, ids: &[Uuid]) -> StoreResult<Vec<Option<StoredDoc>>> {
        self.read(|c| ids.iter().map(|id| stored_doc(c, &id.to_string())).collect())
    }

    fn merge_batch(
        &self,
        device_id: &str,
        synced_at: Option<i64>,
        docs: &[IncomingDoc],
        merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
    ) -> StoreResult<Vec<DocDecision>> {
        self.group_write(|tx| {
            let out = merge_in(tx, device_id, docs, merge)?;
            if let Some(now) = synced_at {
                touch(tx, device_id, now)?;
            }
            Ok(out)
        })
    }

    fn read_feed(&self, cursor: Cursor, scope: &ReadScope, exclude: &str, max_bytes: usize) -> StoreResult<FeedPage> {
        let Some(_) = &scope.node else {
            return Ok(FeedPage { changes: vec![], next: cursor, more: false });
        };
        let [t, v, g] = scope.filters();
        let mut sql = String::from("SELECT seq, doc_id, bytes, origin FROM changes WHERE seq > ?1");
        if t.is_some() {
            sql.push_str(" AND township = ?2");
        }
        if v.is_some() {
            sql.push_str(" AND village = ?3");
        }
        if g.is_some() {
            sql.push_str(" AND grp = ?4");
        }
        if !scope.sensitive {
            sql.push_str(" AND sensitive = 0");
        }
        sql.push_str(" ORDER BY seq LIMIT ?5");
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut page = FeedPage { changes: vec![], next: cursor, more: false };
            let mut total = 0usize;
            const BATCH: i64 = 512;
            loop {
                let mut rows = st.query(params![page.next.seq as i64, t, v, g, BATCH])?;
                let mut n = 0;
                while let Some(r) = rows.next()? {
                    n += 1;
                    let seq: i64 = r.get(0)?;
                    let bytes: Vec<u8> = r.get(2)?;
                    let origin: String = r.get(3)?;
                    if origin != exclude {
                        if !page.changes.is_empty() && total + bytes.len() > max_bytes {
                            page.more = true;
                            return Ok(page);
                        }
                        total += bytes.len();
                        let doc: String = r.get(1)?;
                        let doc = Uuid::parse_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        page.changes.push((doc, bytes));
                    }
                    page.next = Cursor { xid: 0, seq: seq as u64 };
                }
                if n < BATCH {
                    return Ok(page);
                }
            }
        })
    }

    fn records(&self, q: &ViewQuery) -> StoreResult<Vec<RecordView>> {
        let (cond, args) = view_filter(q);
        let order = if q.open_first { "(status = ?9) ASC, occurred_at DESC, id" } else { "occurred_at DESC, id" };
        let sql = format!("SELECT {VIEW_COLS} FROM documents WHERE {cond} ORDER BY {order} LIMIT ?10 OFFSET ?11");
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut all = args;
            all.push(Box::new(i64::from(q.limit.unwrap_or(10_000))));
            all.push(Box::new(i64::from(q.offset)));
            let rows = st.query_map(rusqlite::params_from_iter(all.iter()), view_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn count_records(&self, q: &ViewQuery) -> StoreResult<u64> {
        let (cond, args) = view_filter(q);
        let sql = format!("SELECT count(*) FROM documents WHERE {cond}");
        self.read(|c| {
            let n: i64 = c.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    fn tally(&self, under: &GridPath, kinds: &[RecordKind]) -> StoreResult<Vec<Tally>> {
        let (t, v, g) = parts(under);
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT township, village, kind, status, level, has_conflict, count(*) FROM documents
                 WHERE deleted = 0 AND (?1 = '' OR township = ?1) AND (?2 = '' OR village = ?2)
                   AND (?3 = '' OR grp = ?3) AND kind IN (SELECT value FROM json_each(?4))
                 GROUP BY township, village, kind, status, level, has_conflict",
            )?;
            let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            let kinds = serde_json::to_string(&kinds).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let rows = st.query_map(params![t, v, g, kinds], |r| {
                let (t, v): (String, String) = (r.get(0)?, r.get(1)?);
                let n: i64 = r.get(6)?;
                Ok((t, v, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?, n))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (t, v, kind, status, level, has_conflict, n) = row?;
                let kind = RecordKind::parse(&kind).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(Tally { node: node_of(&t, &v)?, kind, status, level, has_conflict, count: n as u64 });
            }
            Ok(out)
        })
    }

    fn record(&self, id: Uuid) -> StoreResult<Option<RecordView>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {VIEW_COLS} FROM documents WHERE id = ?1"), [id.to_string()], view_row)
                .optional()?)
        })
    }

    fn snapshot(&self, id: Uuid) -> StoreResult<Option<StoredDoc>> {
        self.read(|c| {
            Ok(c.query_row("SELECT snapshot, sensitive FROM documents WHERE id = ?1", [id.to_string()], |r| {
                Ok(StoredDoc { snapshot: r.get(0)?, sensitive: r.get(1)? })
            })
            .optional()?)
        })
    }

    fn change_log(&self, doc: Uuid) -> StoreResult<Vec<StoredChange>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, hash, bytes, origin, signature FROM changes WHERE doc_id = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([doc.to_string()], |r| {
                let hash: Vec<u8> = r.get(1)?;
                let sig: Option<Vec<u8>> = r.get(4)?;
                Ok((r.get(0)?, hash, r.get(2)?, r.get(3)?, sig))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, hash, bytes, origin, sig) = row?;
                out.push(stored_change(seq, &hash, bytes, origin, sig)?);
            }
            Ok(out)
        })
    }

    fn signed_batch(&self, signature: &Signature) -> StoreResult<Option<gridsync_core::signing::Manifest>> {
        self.read(|c| {
            let m: Option<Vec<u8>> = c
                .query_row("SELECT manifest FROM signed_batches WHERE signature = ?1", [&signature.0[..]], |r| r.get(0))
                .optional()?;
            m.map(|b| {
                gridsync_core::signing::Manifest::from_bytes(b).ok_or_else(|| StoreError::Corrupt("manifest".into()))
            })
            .transpose()
        })
    }
}

impl CaseCountStore for SqliteServerStore {
    fn put_case_counts(&self, counts: &[CaseCount]) -> StoreResult<()> {
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO case_counts (village, year, kind, count, entered_by, entered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(village, year, kind) DO UPDATE SET count = excluded.count,
                   entered_by = excluded.entered_by, entered_at = excluded.entered_at",
            )?;
            for c in counts {
                st.execute(params![
                    c.village.to_string(),
                    c.year,
                    c.kind.as_str(),
                    i64::from(c.count),
                    c.entered_by,
                    c.entered_at
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn case_counts(&self, year: i32) -> StoreResult<Vec<CaseCount>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT village, year, kind, count, entered_by, entered_at FROM case_counts WHERE year = ?1 ORDER BY village, kind",
            )?;
            let rows = st.query_map([year], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (village, year, kind, count, entered_by, entered_at) = row?;
                CaseCount::from_row(&village, year, &kind, count, entered_by, entered_at)
            })
            .collect()
        })
    }
}

impl SessionStore for SqliteServerStore {
    fn set_web_password(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<()> {
        let conn = self.exclusive();
        let known: Option<i64> =
            conn.query_row("SELECT 1 FROM users WHERE id = ?1", [user_id], |r| r.get(0)).optional()?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        conn.execute(
            "INSERT INTO web_passwords (user_id, hash, set_at, failures, locked_until) VALUES (?1, ?2, ?3, 0, NULL)
             ON CONFLICT(user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at, failures = 0, locked_until = NULL",
            params![user_id, hash, now],
        )?;
        conn.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?;
        Ok(())
    }

    fn web_password(&self, user_id: &str) -> StoreResult<Option<WebPassword>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT hash, failures, locked_until FROM web_passwords WHERE user_id = ?1",
                [user_id],
                |r| {
                    Ok(WebPassword {
                        hash: r.get(0)?,
                        failures: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                        locked_until: r.get(2)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn begin_sign_in(&self, user_id: &str, now: i64, max_failures: u32, lock_ms: i64) -> StoreResult<bool> {
        // The writer connection is exclusive here: reading and counting are
        // one step for every other sign-in.
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        let row: Option<(i64, Option<i64>)> = tx
            .query_row("SELECT failures, locked_until FROM web_passwords WHERE user_id = ?1", [user_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let allowed = match row {
            None => true,
            Some((failures, locked_until)) => match sign_in_step(failures, locked_until, now, max_failures, lock_ms) {
                None => false,
                Some((f, l)) => {
                    tx.execute(
                        "UPDATE web_passwords SET failures = ?2, locked_until = ?3 WHERE user_id = ?1",
                        params![user_id, f, l],
                    )?;
                    true
                }
            },
        };
        tx.commit()?;
        Ok(allowed)
    }

    fn clear_failed_sign_ins(&self, user_id: &str) -> StoreResult<()> {
        let conn = self.exclusive();
        conn.execute("UPDATE web_passwords SET failures = 0, locked_until = NULL WHERE user_id = ?1", [user_id])?;
        Ok(())
    }

    fn create_web_session(&self, s: &WebSession) -> StoreResult<()> {
        let conn = self.exclusive();
        conn.execute(
            "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.token_hash, s.user_id, s.csrf, s.created_at, s.expires_at],
        )?;
        Ok(())
    }

    fn web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<WebSession>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT token_hash, user_id, csrf, created_at, expires_at FROM web_sessions WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash, now],
                |r| {
                    Ok(WebSession {
                        token_hash: r.get(0)?,
                        user_id: r.get(1)?,
                        csrf: r.get(2)?,
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn delete_web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<()> {
        let conn = self.exclusive();
        conn.execute("DELETE FROM web_sessions WHERE token_hash = ?1 OR expires_at <= ?2", params![token_hash, now])?;
        Ok(())
    }
}

impl AuditStore for SqliteServerStore {
    fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let conn = self.exclusive();
        let _ = e.seq; // assigned by the table
        conn.execute(
            "INSERT INTO audit_log (at, user_id, action, target, ip) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.at, e.user_id, e.action, e.target, e.ip],
        )?;
        Ok(())
    }

    fn audit_log(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (sql, args) = audit_sql(q, |i| format!("?{i}"));
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    user_id: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    ip: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

impl PhotoStore for SqliteServerStore {
    fn photo_holders(&self, hash: &str) -> StoreResult<Vec<PhotoHolder>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT a.record_id, a.by_user, a.mime, a.size, d.grid, d.sensitive, d.deleted
                 FROM attachment_refs a JOIN documents d ON d.id = a.record_id WHERE a.hash = ?1 ORDER BY a.record_id",
            )?;
            let rows = st.query_map([hash], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, by, mime, size, grid, sensitive, deleted) = row?;
                out.push(PhotoHolder {
                    record_id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    attachment: AttachmentRef { hash: hash.to_owned(), by, mime, size },
                    grid: GridPath::parse(&grid).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    sensitive,
                    deleted,
                });
            }
            Ok(out)
        })
    }

    fn live_photos(&self) -> StoreResult<std::collections::HashSet<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT a.hash FROM attachment_refs a JOIN documents d ON d.id = a.record_id WHERE d.deleted = 0",
            )?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = std::collections::HashSet::new();
            for r in rows {
                out.insert(r?);
            }
            Ok(out)
        })
    }

    fn blob_store(&self) -> std::sync::Arc<dyn crate::blobs::BlobStore> {
        // Next to the database file; an in-memory database (tests) gets a
        // directory of its own under the temporary directory.
        let dir = match self.path.as_ref().and_then(|p| p.parent()) {
            Some(parent) => parent.join("blobs"),
            None => std::env::temp_dir().join(format!("gridsync-blobs-{}", Uuid::new_v4().simple())),
        };
        std::sync::Arc::new(crate::blobs::disk::DiskBlobStore::new(dir))
    }

    fn photo_ledger(&self) -> &dyn PhotoLedger {
        self
    }
}

impl ProblemStore for SqliteServerStore {
    fn note_problems(
        &self,
        device_id: &str,
        reports: &[(Uuid, String)],
        may_read: &dyn Fn(&GridPath, bool) -> bool,
        now: i64,
    ) -> StoreResult<Vec<ProblemNoted>> {
        let mut conn = self.exclusive();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(reports.len());
        {
            let mut place = tx.prepare_cached("SELECT grid, sensitive FROM documents WHERE id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO problem_reports (doc_id, device_id, reason, first_seen, last_seen, count)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1) ON CONFLICT (doc_id, device_id) DO NOTHING",
            )?;
            let mut again = tx.prepare_cached(
                "UPDATE problem_reports SET reason = ?3, last_seen = max(last_seen, ?4), count = count + 1
                 WHERE doc_id = ?1 AND device_id = ?2",
            )?;
            for (doc, reason) in reports {
                let id = doc.to_string();
                let found: Option<(String, bool)> =
                    place.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                let readable = found
                    .is_some_and(|(grid, sensitive)| GridPath::parse(&grid).is_ok_and(|g| may_read(&g, sensitive)));
                if !readable {
                    out.push(ProblemNoted::Ignored);
                } else if insert.execute(params![id, device_id, reason, now])? == 1 {
                    out.push(ProblemNoted::New);
                } else {
                    again.execute(params![id, device_id, reason, now])?;
                    out.push(ProblemNoted::Repeat);
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn problem_reports(&self, limit: u32) -> StoreResult<Vec<ProblemReportRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT doc_id, device_id, reason, first_seen, last_seen, count FROM problem_reports
                 ORDER BY last_seen DESC, doc_id, device_id LIMIT ?1",
            )?;
            let rows = st.query_map([i64::from(limit)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (doc, device_id, reason, first_seen, last_seen, count) = row?;
                let doc_id = Uuid::parse_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(ProblemReportRow { doc_id, device_id, reason, first_seen, last_seen, count })
            })
            .collect()
        })
    }
}

impl PhotoLedger for SqliteServerStore {
    fn begin_photo_upload(
        &self,
        hash: &str,
        user_id: &str,
        size: i64,
        now: i64,
        quota: &PhotoQuota,
    ) -> StoreResult<UploadBegun> {
        // In the writer's transaction: the budget read and the new row are
        // one step no other upload can come between.
        self.group_write(|c| {
            let going = c
                .prepare_cached("UPDATE photo_uploads SET written_at = ?3 WHERE hash = ?1 AND user_id = ?2")?
                .execute(params![hash, user_id, now])?;
            if going > 0 {
                return Ok(UploadBegun::Continuing);
            }
            let held: i64 = c
                .prepare_cached("SELECT coalesce(sum(size), 0) FROM photo_uploads WHERE user_id = ?1")?
                .query_row([user_id], |r| r.get(0))?;
            if held.saturating_add(size) > quota.unfinished_bytes {
                return Ok(UploadBegun::OverUnfinished { held });
            }
            let since = now.saturating_sub(photo_ledger::DAY_MS);
            let used: i64 = c
                .prepare_cached(
                    "SELECT (SELECT coalesce(sum(size), 0) FROM photo_uploads WHERE user_id = ?1 AND started_at > ?2)
                          + (SELECT coalesce(sum(size), 0) FROM photo_owners WHERE user_id = ?1 AND at > ?2)",
                )?
                .query_row(params![user_id, since], |r| r.get(0))?;
            if used.saturating_add(size) > quota.daily_bytes {
                return Ok(UploadBegun::OverDaily { used });
            }
            c.prepare_cached(
                "INSERT INTO photo_uploads (hash, user_id, size, received, started_at, written_at) VALUES (?1, ?2, ?3, 0, ?4, ?4)",
            )?
            .execute(params![hash, user_id, size, now])?;
            Ok(UploadBegun::Started)
        })
    }

    fn note_photo_upload(&self, hash: &str, user_id: &str, received: i64, now: i64) -> StoreResult<()> {
        self.group_write(|c| {
            c.prepare_cached(
                "UPDATE photo_uploads SET received = max(received, ?3), written_at = ?4 WHERE hash = ?1 AND user_id = ?2",
            )?
            .execute(params![hash, user_id, received, now])?;
            Ok(())
        })
    }

    fn finish_photo_upload(&self, hash: &str, user_id: &str, size: i64, now: i64) -> StoreResult<()> {
        self.group_write(|c| {
            c.prepare_cached("DELETE FROM photo_uploads WHERE hash = ?1 AND user_id = ?2")?
                .execute(params![hash, user_id])?;
            c.prepare_cached(
                "INSERT INTO photo_owners (hash, user_id, size, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (hash, user_id) DO NOTHING",
            )?
            .execute(params![hash, user_id, size, now])?;
            Ok(())
        })
    }

    fn drop_photo_upload(&self, hash: &str, user_id: &str) -> StoreResult<()> {
        self.group_write(|c| {
            c.prepare_cached("DELETE FROM photo_uploads WHERE hash = ?1 AND user_id = ?2")?
                .execute(params![hash, user_id])?;
            Ok(())
        })
    }

    fn photo_uploads(&self) -> StoreResult<Vec<PhotoUploadRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT hash, user_id, size, received, started_at, written_at FROM photo_uploads ORDER BY hash, user_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(PhotoUploadRow {
                    hash: r.get(0)?,
                    user_id: r.get(1)?,
                    size: r.get(2)?,
                    received: r.get(3)?,
                    started_at: r.get(4)?,
                    written_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn photo_owners(&self, hash: &str) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT user_id FROM photo_owners WHERE hash = ?1 ORDER BY user_id")?;
            let rows = st.query_map([hash], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn all_photo_owners(&self) -> StoreResult<Vec<PhotoOwner>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT hash, user_id, at FROM photo_owners ORDER BY hash, user_id")?;
            let rows = st.query_map([], |r| Ok(PhotoOwner { hash: r.get(0)?, user_id: r.get(1)?, at: r.get(2)? }))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn drop_photo_owners(&self, hash: &str, user_id: Option<&str>) -> StoreResult<()> {
        self.group_write(|c| {
            c.prepare_cached("DELETE FROM photo_owners WHERE hash = ?1 AND (?2 IS NULL OR user_id = ?2)")?
                .execute(params![hash, user_id])?;
            Ok(())
        })
    }

    fn photos_wanted(&self, user_id: &str, limit: usize) -> StoreResult<Vec<WantedPhoto>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT a.hash, max(a.size), min(a.record_id) FROM attachment_refs a JOIN documents d ON d.id = a.record_id
                 WHERE a.by_user = ?1 AND d.deleted = 0
                   AND NOT EXISTS (SELECT 1 FROM photo_owners o WHERE o.hash = a.hash AND o.user_id = ?1)
                 GROUP BY a.hash ORDER BY a.hash LIMIT ?2",
            )?;
            let rows = st.query_map(params![user_id, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, size, id) = row?;
                let record_id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(WantedPhoto { hash, size, record_id });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod connection_tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// A cached statement is compiled once: running it again with new
    /// values (a feed page's `LIMIT ?`, a device lookup's join) does not
    /// parse and plan it anew.
    #[test]
    fn cached_statements_are_not_compiled_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        SqliteServerStore::open(&path).unwrap().migrate().unwrap();
        let c = open_conn(Some(&path)).unwrap();
        for sql in [
            "SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id WHERE d.token_hash = ?1",
            "SELECT seq FROM changes WHERE seq > ?1 AND township = ?2 ORDER BY seq LIMIT ?3",
        ] {
            let n = c.prepare(sql).unwrap().parameter_count();
            for run in 0..3i64 {
                let mut st = c.prepare_cached(sql).unwrap();
                let values: Vec<rusqlite::types::Value> = (0..n).map(|i| (run + i as i64).into()).collect();
                st.query(rusqlite::params_from_iter(values)).unwrap().next().unwrap();
                assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql} compiled again at run {run}");
            }
        }
    }

    /// The writer keeps a savepoint's page images in memory, not in a
    /// temporary file.
    #[test]
    fn the_writer_keeps_its_sub_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let w = open_writer(Some(&dir.path().join("s.sqlite3"))).unwrap();
        let temp_store: i64 = w.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap();
        assert_eq!(temp_store, 2, "temp_store=MEMORY");
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::{acked, incoming, patrol, push, setup};

    /// Thirty-two phones syncing at once through one SQLite writer all get
    /// their changes stored, far fewer commits than writes are made (the
    /// waiting syncs share them), and every acknowledged change is in the
    /// file when it is opened again (nothing acknowledged before its commit).
    #[test]
    fn concurrent_syncs_share_commits_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let store = Arc::new(SqliteServerStore::open(&path).unwrap());
        store.migrate().unwrap();
        setup(store.as_ref());
        let gm1 = store.user("gm1").unwrap().unwrap();
        let commits_before = store.group_commits();
        let start = Arc::new(std::sync::Barrier::new(32));
        let threads: Vec<_> = (0..32)
            .map(|t| {
                let store = store.clone();
                let gm1 = gm1.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let mut n = 0;
                    for _ in 0..5 {
                        let inc = incoming(&patrol("t01/v01/g1", "gm1"));
                        n += inc.changes.len();
                        let out = push(store.as_ref(), &format!("d{t}"), &gm1, &[inc]);
                        assert!(acked(&out[0]), "{out:?}");
                        store.touch_device(&format!("d{t}"), 1).unwrap();
                    }
                    n
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let writes = 32 * 5 * 2;
        let commits = store.group_commits() - commits_before;
        assert!(commits * 2 <= writes, "{commits} commits for {writes} writes: commits were not shared");
        assert_eq!(store.change_count().unwrap() as usize, total);
        drop(store);
        let reopened = SqliteServerStore::open(&path).unwrap();
        assert_eq!(reopened.change_count().unwrap() as usize, total, "acknowledged means committed");
    }
}

#[cfg(test)]
mod schema_tests {
    use rusqlite::Connection;

    use super::{MIGRATIONS, SqliteServerStore};
    use crate::store::prelude::*;

    /// Every released schema, as it was released (frozen; add one per version).
    const RELEASED: &[(i64, &str)] = &[
        (1, include_str!("../../../migrations/server-sqlite/snapshots/v1.sql")),
        (2, include_str!("../../../migrations/server-sqlite/snapshots/v2.sql")),
        (3, include_str!("../../../migrations/server-sqlite/snapshots/v3.sql")),
        (4, include_str!("../../../migrations/server-sqlite/snapshots/v4.sql")),
        (5, include_str!("../../../migrations/server-sqlite/snapshots/v5.sql")),
        (6, include_str!("../../../migrations/server-sqlite/snapshots/v6.sql")),
        (7, include_str!("../../../migrations/server-sqlite/snapshots/v7.sql")),
        (8, include_str!("../../../migrations/server-sqlite/snapshots/v8.sql")),
        (9, include_str!("../../../migrations/server-sqlite/snapshots/v9.sql")),
        (10, include_str!("../../../migrations/server-sqlite/snapshots/v10.sql")),
    ];

    fn described(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap();
        let objects: Vec<(String, String)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
        let mut out = Vec::new();
        for (name, sql) in objects {
            out.push(format!("{name}: {}", sql.split_whitespace().collect::<Vec<_>>().join(" ")));
            if sql.starts_with("CREATE TABLE") {
                let mut t = conn.prepare(&format!("PRAGMA table_info({name})")).unwrap();
                let cols: Vec<(String, String, bool)> =
                    t.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect();
                out.push(format!("{name} columns: {cols:?}"));
            }
        }
        out
    }

    /// A county server whose record lost a photo's reference to an older
    /// core (it read only one of the two `attachments` maps two phones made
    /// at once) gets it back, with the record's JSON, when it upgrades to
    /// schema 9; the photo whose references all name one user is owned by
    /// that user, the lost one is asked of its taker's phone.
    #[test]
    fn upgrading_to_schema_9_restores_references_an_older_core_lost() {
        use crate::store::PhotoLedger;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let s = SqliteServerStore::open(&path).unwrap();
        s.migrate().unwrap();
        crate::store::conformance::setup(&s);
        let rec = crate::store::conformance::photos_attached_at_once(&s);
        let (ha, hb) = ("a".repeat(64), "b".repeat(64));
        drop(s);
        {
            // What an older core stored: only the winning map's photo.
            let c = Connection::open(&path).unwrap();
            c.execute("DELETE FROM attachment_refs WHERE hash = ?1", [&hb]).unwrap();
            let json: String = c.query_row("SELECT json FROM documents", [], |r| r.get(0)).unwrap();
            let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
            json["attachments"].as_object_mut().unwrap().remove(&hb);
            c.execute("UPDATE documents SET json = ?1", [json.to_string()]).unwrap();
            c.execute_batch(
                "DROP TABLE problem_reports; DROP TABLE photo_uploads; DROP TABLE photo_owners; DROP INDEX attachment_refs_by;
                 PRAGMA user_version = 8;",
            )
            .unwrap();
        }
        let s = SqliteServerStore::open(&path).unwrap();
        s.migrate().unwrap();
        let holders: Vec<String> = s.photo_holders(&hb).unwrap().into_iter().map(|h| h.attachment.by).collect();
        assert_eq!(holders, ["vl1"]);
        let json = s.record(rec.id).unwrap().unwrap().json;
        assert_eq!(json["attachments"].as_object().unwrap().len(), 2, "{json}");
        assert_eq!(s.photo_owners(&ha).unwrap(), ["gm1"]);
        assert_eq!(s.photos_wanted("vl1", 10).unwrap().into_iter().map(|w| w.hash).collect::<Vec<_>>(), [hb]);
    }

    /// A county server on any released schema upgrades to exactly what a
    /// fresh install creates.
    #[test]
    fn every_released_schema_upgrades_to_the_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = SqliteServerStore::open(dir.path().join("fresh.sqlite3")).unwrap();
        fresh.migrate().unwrap();
        drop(fresh);
        let fresh = described(&Connection::open(dir.path().join("fresh.sqlite3")).unwrap());
        assert_eq!(RELEASED.last().map(|r| r.0), Some(MIGRATIONS.len() as i64), "add a snapshot of the newest schema");
        for (v, sql) in RELEASED {
            let path = dir.path().join(format!("v{v}.sqlite3"));
            {
                let old = Connection::open(&path).unwrap();
                old.execute_batch(sql).unwrap();
                old.pragma_update(None, "user_version", v).unwrap();
            }
            let store = SqliteServerStore::open(&path).unwrap();
            store.migrate().unwrap();
            drop(store);
            assert_eq!(
                described(&Connection::open(&path).unwrap()),
                fresh,
                "version {v} upgraded differs from a fresh schema"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteServerStore;
    crate::conformance_tests!(make: {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServerStore::open(dir.path().join("s.sqlite3")).unwrap();
        // Keep the directory for the life of the test process.
        std::mem::forget(dir);
        s.migrate().unwrap();
        Some(Box::new(s))
    });
}
