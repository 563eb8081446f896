//! [`PostgresServerStore`]: a province on several stateless server nodes
//! sharing one PostgreSQL database.
//!
//! Two things differ from SQLite because several nodes write at once:
//! a merge takes a transaction-scoped advisory lock per record (in record id
//! order, so two nodes cannot deadlock) before reading its snapshot; and the
//! change feed is ordered by (writing transaction id, seq) and read only
//! below the oldest transaction still running, because a sequence number is
//! handed out at insert time, not at commit time (see
//! `docs/decisions/002-change-feed-cursor.md`).

use std::collections::HashMap;

use ::postgres::{Client, NoTls, Transaction};
use uuid::Uuid;

use super::*;
use crate::pg_pool::{ClientPool, PoolBusy};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/server-postgres/001_init.sql"),
    include_str!("../../../migrations/server-postgres/002_case_counts.sql"),
    include_str!("../../../migrations/server-postgres/003_web.sql"),
    include_str!("../../../migrations/server-postgres/004_device_actors.sql"),
    include_str!("../../../migrations/server-postgres/005_health_probe.sql"),
    include_str!("../../../migrations/server-postgres/006_accounts.sql"),
    include_str!("../../../migrations/server-postgres/007_attachments.sql"),
    include_str!("../../../migrations/server-postgres/008_signatures.sql"),
    include_str!("../../../migrations/server-postgres/009_photo_owners.sql"),
];

/// The schema whose migration also re-reads stored records' photos
/// ([`rederive_photo_refs`]).
const PHOTO_OWNERS_SCHEMA: usize = 9;

/// Schema 9's step in Rust: every record with photos read again with this
/// core's reader, adding the references (and the JSON) an older core lost
/// when two phones made the record's `attachments` map at once.
fn rederive_photo_refs(tx: &mut Transaction<'_>) -> StoreResult<()> {
    let ids: Vec<Uuid> =
        tx.query("SELECT DISTINCT record_id FROM attachment_refs", &[])?.iter().map(|r| r.get(0)).collect();
    for id in ids {
        let Some(row) = tx.query_opt("SELECT snapshot FROM documents WHERE id = $1", &[&id])? else { continue };
        let snapshot: Vec<u8> = row.get(0);
        let stored: std::collections::HashSet<String> = tx
            .query("SELECT hash FROM attachment_refs WHERE record_id = $1", &[&id])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let Some((refs, json)) = reread_photos(&snapshot, &stored) else { continue };
        for a in refs {
            tx.execute(
                "INSERT INTO attachment_refs (hash, record_id, by_user, mime, size) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash, record_id) DO NOTHING",
                &[&a.hash, &id, &a.by, &a.mime, &a.size],
            )?;
        }
        tx.execute("UPDATE documents SET json = $2::text::jsonb WHERE id = $1", &[&id, &json])?;
    }
    Ok(())
}

/// The PostgreSQL store: a small pool of connections.
pub struct PostgresServerStore {
    pool: std::sync::Arc<ClientPool>,
}

impl From<PoolBusy> for StoreError {
    fn from(e: PoolBusy) -> Self {
        StoreError::Open(e.to_string())
    }
}

/// A device and its user, by `column` of `devices` (`id` or `token_hash`).
fn device_auth(
    c: &mut Client,
    column: &'static str,
    key: &(dyn ::postgres::types::ToSql + Sync),
) -> StoreResult<Option<DeviceAuth>> {
    let sql = format!(
        "SELECT d.id, d.user_id, d.name, d.created_at, d.last_sync_at, d.revoked_at, d.actor, d.public_key, u.id, u.display_name, u.role, u.grid
         FROM devices d JOIN users u ON u.id = d.user_id WHERE d.{column} = $1"
    );
    c.query_opt(&sql, &[key])?.map(|r| Ok(DeviceAuth { device: device_of(&r)?, user: user_of(&r, 8)? })).transpose()
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn user_of(r: &::postgres::Row, at: usize) -> StoreResult<User> {
    Ok(User {
        id: r.try_get(at)?,
        display_name: r.try_get(at + 1)?,
        role: r.try_get::<_, String>(at + 2)?.parse().map_err(corrupt)?,
        grid: GridPath::parse(&r.try_get::<_, String>(at + 3)?).map_err(corrupt)?,
    })
}

fn account_of(r: &::postgres::Row) -> StoreResult<Account> {
    let agency: Option<String> = r.try_get(4)?;
    Ok(Account {
        user: user_of(r, 0)?,
        agency: agency.as_deref().and_then(Agency::parse),
        deactivated_at: r.try_get(5)?,
    })
}

/// Columns of an [`Account`], in the order [`account_of`] reads them.
const ACCOUNT_COLS: &str = "id, display_name, role, grid, agency, deactivated_at";

fn device_of(r: &::postgres::Row) -> StoreResult<Device> {
    Ok(Device {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: r.try_get(3)?,
        last_sync_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
        actor: r.try_get(6)?,
        public_key: r.try_get(7)?,
    })
}

/// The `WHERE` condition of a [`ViewQuery`], over the arguments of
/// [`ViewArgs`] ($1 to $11): shared by the list and its count, so a total
/// is always the list's.
const VIEW_FILTER: &str = "($1 = '' OR township = $1) AND ($2 = '' OR village = $2) AND ($3 = '' OR grp = $3)
       AND ($4::text IS NULL OR kind = $4) AND ($5 OR NOT sensitive)
       AND ($6::bigint IS NULL OR occurred_at >= $6) AND ($7::bigint IS NULL OR occurred_at < $7)
       AND (NOT $8 OR NOT deleted) AND ($9::text IS NULL OR status = $9)
       AND ($10::boolean IS NULL OR (status <> $11) = $10)";

/// The arguments of [`VIEW_FILTER`] for one query.
struct ViewArgs<'a> {
    q: &'a ViewQuery,
    parts: (String, String, String),
    kind: Option<&'static str>,
    closed: &'static str,
}

impl<'a> ViewArgs<'a> {
    fn of(q: &'a ViewQuery) -> Self {
        ViewArgs {
            q,
            parts: q.under.as_ref().map(parts).unwrap_or_default(),
            kind: q.kind.map(RecordKind::as_str),
            closed: gridsync_core::reports::CLOSED_STATUS,
        }
    }

    fn args(&self) -> Vec<&(dyn ::postgres::types::ToSql + Sync)> {
        let q = self.q;
        vec![
            &self.parts.0,
            &self.parts.1,
            &self.parts.2,
            &self.kind,
            &q.sensitive,
            &q.from,
            &q.until,
            &q.live,
            &q.status,
            &q.open,
            &self.closed,
        ]
    }
}

fn view_of(r: &::postgres::Row) -> StoreResult<RecordView> {
    Ok(RecordView {
        id: r.try_get(0)?,
        kind: RecordKind::parse(r.try_get(1)?).map_err(corrupt)?,
        grid: GridPath::parse(&r.try_get::<_, String>(2)?).map_err(corrupt)?,
        status: r.try_get(3)?,
        level: r.try_get(4)?,
        title: r.try_get(5)?,
        occurred_at: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
        author: r.try_get(9)?,
        sensitive: r.try_get(10)?,
        deleted: r.try_get(11)?,
        has_conflict: r.try_get(12)?,
        json: r.try_get(13)?,
    })
}

/// Advisory lock key for a record: its id's first 8 bytes.
fn lock_key(id: &Uuid) -> i64 {
    let b = id.as_bytes();
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Most records one merge transaction holds locks on. PostgreSQL keeps
/// advisory locks in one table shared by every connection, of
/// `max_locks_per_transaction × max_connections` slots (6,400 by default);
/// a transaction that needs more fails with "out of shared memory", and so
/// do others that need a slot meanwhile. A request of more records is
/// merged in parts of this many, each committed on its own, so nodes ×
/// merge turns × this stays under the table (4 nodes × 8 turns × 128 =
/// 4,096 slots).
pub const MERGE_PART: usize = 128;

/// Merge `docs` (at most [`MERGE_PART`] of them from a sync) as device
/// `device_id` inside the open transaction, in a fixed number of round
/// trips whatever they hold: every record's lock in one statement (in key
/// order, so two nodes cannot deadlock), every stored state in one, then
/// the judging, then every record's row, every change and the signature in
/// one statement each. A round trip to the database costs more than a
/// record's inserts; a merge of seven records took 34 of them.
///
/// A request naming a record more than once (no honest phone sends one)
/// is merged in rounds, each holding a record once, so each later mention
/// is judged on what the one before wrote.
fn merge_in(
    tx: &mut Transaction<'_>,
    device_id: &str,
    docs: &[IncomingDoc],
    merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
) -> StoreResult<Vec<DocDecision>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<Uuid, usize> = HashMap::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        let n = seen.entry(d.doc_id).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    let mut out: Vec<Option<DocDecision>> = vec![None; docs.len()];
    for round in rounds {
        merge_round(tx, device_id, docs, &round, merge, &mut out)?;
    }
    Ok(out.into_iter().map(|d| d.unwrap_or(DocDecision::Reject)).collect())
}

/// [`merge_in`] for the records of `docs` at `round`, each named once.
fn merge_round(
    tx: &mut Transaction<'_>,
    device_id: &str,
    all: &[IncomingDoc],
    round: &[usize],
    merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
    out: &mut [Option<DocDecision>],
) -> StoreResult<()> {
    let docs: Vec<&IncomingDoc> = round.iter().filter_map(|&i| all.get(i)).collect();
    let mut keys: Vec<i64> = docs.iter().map(|d| lock_key(&d.doc_id)).collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k", &[&keys])?;
    let ids: Vec<Uuid> = docs.iter().map(|d| d.doc_id).collect();
    let mut stored: HashMap<Uuid, StoredDoc> = HashMap::with_capacity(docs.len());
    for r in tx.query("SELECT id, snapshot, sensitive FROM documents WHERE id = ANY($1)", &[&ids])? {
        stored.insert(r.get(0), StoredDoc { snapshot: r.get(1), sensitive: r.get(2) });
    }
    let mut rows = DocRows::default();
    let mut changes = ChangeRows::default();
    let mut batch: Option<&SignedBatch> = None;
    for (&i, d) in round.iter().zip(&docs) {
        let decision = merge(i, stored.remove(&d.doc_id), d);
        if let DocDecision::Accept(m) = &decision {
            let ix = &m.index;
            let (t, v, g) = parts(&ix.grid);
            rows.id.push(d.doc_id);
            rows.kind.push(ix.kind.as_str().to_owned());
            rows.grid.push(ix.grid.to_string());
            rows.township.push(t.clone());
            rows.village.push(v.clone());
            rows.grp.push(g.clone());
            rows.status.push(ix.status.clone());
            rows.level.push(ix.level.map(|l| l.as_str().to_owned()));
            rows.title.push(ix.title.clone());
            rows.occurred_at.push(ix.occurred_at);
            rows.created_at.push(m.created_at);
            rows.updated_at.push(m.updated_at);
            rows.author.push(m.author.clone());
            rows.sensitive.push(ix.sensitive);
            rows.deleted.push(ix.deleted);
            rows.has_conflict.push(ix.has_conflict);
            rows.json.push(m.json.clone());
            rows.snapshot.push(m.snapshot.clone());
            if m.history_turns_sensitive {
                tx.execute("UPDATE changes SET sensitive = true WHERE doc_id = $1", &[&d.doc_id])?;
            }
            if m.batch.is_some() && !m.new_changes.is_empty() {
                batch = d.batch.as_deref();
            }
            let sig = m.batch.as_ref().map(|b| b.signature.0.to_vec());
            for (hash, bytes) in &m.new_changes {
                changes.doc_id.push(d.doc_id);
                changes.hash.push(hash.to_vec());
                changes.bytes.push(bytes.clone());
                changes.township.push(t.clone());
                changes.village.push(v.clone());
                changes.grp.push(g.clone());
                changes.sensitive.push(ix.sensitive);
                changes.signature.push(sig.clone());
            }
            for a in &m.attachments {
                tx.execute(
                    "INSERT INTO attachment_refs (hash, record_id, by_user, mime, size) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (hash, record_id) DO NOTHING",
                    &[&a.hash, &d.doc_id, &a.by, &a.mime, &a.size],
                )?;
            }
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(decision);
        }
    }
    if let Some(b) = batch {
        // The records of one request share its signature: stored once.
        tx.execute(
            "INSERT INTO signed_batches (signature, device_id, manifest) VALUES ($1, $2, $3)
             ON CONFLICT (signature) DO NOTHING",
            &[&&b.signature.0[..], &device_id, &b.manifest.bytes()],
        )?;
    }
    if !rows.id.is_empty() {
        tx.execute(
            "INSERT INTO documents (id, kind, grid, township, village, grp, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json, snapshot)
             SELECT id, kind, grid, township, village, grp, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json::jsonb, snapshot
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                         $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::bool[], $15::bool[], $16::bool[], $17::text[], $18::bytea[])
                  AS u(id, kind, grid, township, village, grp, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json, snapshot)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, level = excluded.level, title = excluded.title,
               occurred_at = excluded.occurred_at, updated_at = excluded.updated_at, sensitive = excluded.sensitive,
               deleted = excluded.deleted, has_conflict = excluded.has_conflict, json = excluded.json, snapshot = excluded.snapshot",
            &[
                &rows.id,
                &rows.kind,
                &rows.grid,
                &rows.township,
                &rows.village,
                &rows.grp,
                &rows.status,
                &rows.level,
                &rows.title,
                &rows.occurred_at,
                &rows.created_at,
                &rows.updated_at,
                &rows.author,
                &rows.sensitive,
                &rows.deleted,
                &rows.has_conflict,
                &rows.json,
                &rows.snapshot,
            ],
        )?;
    }
    if !changes.doc_id.is_empty() {
        // In the order given (each record's changes in causal order): the
        // feed's `seq` follows it.
        tx.execute(
            "INSERT INTO changes (doc_id, hash, bytes, origin, township, village, grp, sensitive, signature)
             SELECT doc_id, hash, bytes, $4, township, village, grp, sensitive, signature
             FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $5::text[], $6::text[], $7::text[], $8::bool[], $9::bytea[])
                  WITH ORDINALITY AS u(doc_id, hash, bytes, township, village, grp, sensitive, signature, n)
             ORDER BY n
             ON CONFLICT (doc_id, hash) DO NOTHING",
            &[
                &changes.doc_id,
                &changes.hash,
                &changes.bytes,
                &device_id,
                &changes.township,
                &changes.village,
                &changes.grp,
                &changes.sensitive,
                &changes.signature,
            ],
        )?;
    }
    Ok(())
}

/// The columns of the `documents` rows one request writes.
#[derive(Default)]
struct DocRows {
    id: Vec<Uuid>,
    kind: Vec<String>,
    grid: Vec<String>,
    township: Vec<String>,
    village: Vec<String>,
    grp: Vec<String>,
    status: Vec<String>,
    level: Vec<Option<String>>,
    title: Vec<String>,
    occurred_at: Vec<i64>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    author: Vec<String>,
    sensitive: Vec<bool>,
    deleted: Vec<bool>,
    has_conflict: Vec<bool>,
    /// The record's JSON as the judge wrote it; PostgreSQL parses it once,
    /// into `jsonb`.
    json: Vec<String>,
    snapshot: Vec<Vec<u8>>,
}

/// The columns of the `changes` rows one request writes.
#[derive(Default)]
struct ChangeRows {
    doc_id: Vec<Uuid>,
    hash: Vec<Vec<u8>>,
    bytes: Vec<Vec<u8>>,
    township: Vec<String>,
    village: Vec<String>,
    grp: Vec<String>,
    sensitive: Vec<bool>,
    signature: Vec<Option<Vec<u8>>>,
}

impl PostgresServerStore {
    /// Connect to `url` (`postgres://user@host:port/db`), opening at most
    /// [`ClientPool::DEFAULT_MAX_OPEN`] connections.
    pub fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, ClientPool::DEFAULT_MAX_OPEN)
    }

    /// Connect to `url`, opening at most `max_connections` connections.
    pub fn connect_with(url: &str, max_connections: usize) -> StoreResult<Self> {
        let first = Client::connect(url, NoTls).map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(PostgresServerStore { pool: std::sync::Arc::new(ClientPool::with_max(url, Some(first), max_connections)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> StoreResult<T>) -> StoreResult<T> {
        self.pool.with(f)
    }

    fn tx<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Merge `docs` in transactions of at most [`MERGE_PART`] records each,
    /// on one connection, recording the device's sync at `touch` in the
    /// last. Each part commits before the next begins, and the phone is
    /// answered after the last: a request cut short by a failure is sent
    /// again whole, and what was committed is acknowledged then.
    fn merge_in_parts(
        &self,
        device_id: &str,
        touch: Option<i64>,
        docs: &[IncomingDoc],
        merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
    ) -> StoreResult<Vec<DocDecision>> {
        // No records still makes one (empty) part, for the touch.
        let parts: Vec<&[IncomingDoc]> = if docs.is_empty() { vec![docs] } else { docs.chunks(MERGE_PART).collect() };
        self.with(|c| {
            let mut out = Vec::with_capacity(docs.len());
            for (k, these) in parts.iter().enumerate() {
                let start = k * MERGE_PART;
                let mut tx = c.transaction()?;
                out.extend(merge_in(&mut tx, device_id, these, &mut |i, stored, d| merge(start + i, stored, d))?);
                if k + 1 == parts.len()
                    && let Some(now) = touch
                {
                    tx.execute("UPDATE devices SET last_sync_at = $2 WHERE id = $1", &[&device_id, &now])?;
                }
                tx.commit()?;
            }
            Ok(out)
        })
    }
}

impl SchemaStore for PostgresServerStore {
    fn migrate(&self) -> StoreResult<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // Serialize migrations across nodes starting at once.
            tx.execute("SELECT pg_advisory_xact_lock(7346829)", &[])?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
            let current: i64 =
                tx.query_opt("SELECT max(version) FROM schema_version", &[])?.and_then(|r| r.get(0)).unwrap_or(0);
            if current > MIGRATIONS.len() as i64 {
                return Err(StoreError::SchemaTooNew { found: current, supported: MIGRATIONS.len() as i64 });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.batch_execute(sql)?;
                if i + 1 == PHOTO_OWNERS_SCHEMA {
                    rederive_photo_refs(&mut tx)?;
                }
                tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i64 + 1)])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.with(|c| {
            c.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }

    fn probe_write(&self, now: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute("UPDATE health_probe SET at = $1 WHERE id = 1", &[&now])?;
            Ok(())
        })
    }

    fn change_count(&self) -> StoreResult<u64> {
        self.with(|c| Ok(c.query_one("SELECT count(*) FROM changes", &[])?.get::<_, i64>(0) as u64))
    }

    fn server_secret(&self, name: &str, fresh: &[u8], now: i64) -> StoreResult<Vec<u8>> {
        self.with(|c| {
            c.execute(
                "INSERT INTO server_keys (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh, &now],
            )?;
            Ok(c.query_one("SELECT secret FROM server_keys WHERE name = $1", &[&name])?.try_get(0)?)
        })
    }
}

impl AccountStore for PostgresServerStore {
    fn put_grid_nodes(&self, nodes: &[GridNode]) -> StoreResult<()> {
        self.tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO grid_nodes (path, name) VALUES ($1, $2) ON CONFLICT (path) DO UPDATE SET name = excluded.name",
            )?;
            for n in nodes {
                tx.execute(&st, &[&n.path.to_string(), &n.name])?;
            }
            Ok(())
        })
    }

    fn grid_nodes(&self) -> StoreResult<Vec<GridNode>> {
        self.with(|c| {
            c.query("SELECT path, name FROM grid_nodes ORDER BY path", &[])?
                .iter()
                .map(|r| Ok(GridNode { path: GridPath::parse(r.try_get(0)?).map_err(corrupt)?, name: r.try_get(1)? }))
                .collect()
        })
    }

    fn add_user(&self, u: &User) -> StoreResult<()> {
        self.with(|c| {
            let n = c.execute(
                "INSERT INTO users (id, display_name, role, grid) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[&u.id, &u.display_name, &u.role.as_str(), &u.grid.to_string()],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("user {}", u.id)));
            }
            Ok(())
        })
    }

    fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.with(|c| {
            c.query_opt("SELECT id, display_name, role, grid FROM users WHERE id = $1", &[&id])?
                .map(|r| user_of(&r, 0))
                .transpose()
        })
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        self.with(|c| {
            c.query("SELECT id, display_name, role, grid FROM users ORDER BY id", &[])?
                .iter()
                .map(|r| user_of(r, 0))
                .collect()
        })
    }

    fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.with(|c| {
            c.query_opt(&format!("SELECT {ACCOUNT_COLS} FROM users WHERE id = $1"), &[&id])?
                .map(|r| account_of(&r))
                .transpose()
        })
    }

    fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.with(|c| {
            c.query(&format!("SELECT {ACCOUNT_COLS} FROM users ORDER BY id"), &[])?.iter().map(account_of).collect()
        })
    }

    fn update_user(&self, u: &User, now: i64) -> StoreResult<()> {
        self.tx(|tx| {
            let old = tx
                .query_opt("SELECT id, display_name, role, grid FROM users WHERE id = $1 FOR UPDATE", &[&u.id])?
                .map(|r| user_of(&r, 0))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("user {}", u.id)))?;
            tx.execute(
                "UPDATE users SET display_name = $2, role = $3, grid = $4 WHERE id = $1",
                &[&u.id, &u.display_name, &u.role.as_str(), &u.grid.to_string()],
            )?;
            if old.role != u.role || old.grid != u.grid {
                tx.execute(
                    "UPDATE devices SET revoked_at = coalesce(revoked_at, $2) WHERE user_id = $1",
                    &[&u.id, &now],
                )?;
                tx.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&u.id])?;
            }
            Ok(())
        })
    }

    fn set_agency(&self, user_id: &str, agency: Option<Agency>) -> StoreResult<()> {
        self.with(|c| {
            let n =
                c.execute("UPDATE users SET agency = $2 WHERE id = $1", &[&user_id, &agency.map(Agency::as_str)])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("user {user_id}")));
            }
            Ok(())
        })
    }

    fn set_active(&self, user_id: &str, active: bool, now: i64) -> StoreResult<()> {
        self.tx(|tx| {
            let n = if active {
                tx.execute("UPDATE users SET deactivated_at = NULL WHERE id = $1", &[&user_id])?
            } else {
                tx.execute(
                    "UPDATE users SET deactivated_at = coalesce(deactivated_at, $2) WHERE id = $1",
                    &[&user_id, &now],
                )?
            };
            if n == 0 {
                return Err(StoreError::NotFound(format!("user {user_id}")));
            }
            if !active {
                tx.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&user_id])?;
                tx.execute(
                    "UPDATE devices SET revoked_at = coalesce(revoked_at, $2) WHERE user_id = $1",
                    &[&user_id, &now],
                )?;
                tx.execute(
                    "UPDATE enrollments SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
                    &[&user_id, &now],
                )?;
            }
            Ok(())
        })
    }
}

impl DeviceStore for PostgresServerStore {
    fn create_enrollment(&self, code_hash: &[u8], user_id: &str, expires_at: i64) -> StoreResult<()> {
        self.with(|c| {
            if c.query_opt("SELECT 1 FROM users WHERE id = $1 AND deactivated_at IS NULL", &[&user_id])?.is_none() {
                return Err(StoreError::NotFound(format!("active user {user_id}")));
            }
            c.execute(
                "INSERT INTO enrollments (code_hash, user_id, expires_at) VALUES ($1, $2, $3)",
                &[&code_hash, &user_id, &expires_at],
            )?;
            Ok(())
        })
    }

    fn redeem_enrollment(
        &self,
        code_hash: &[u8],
        device: &Device,
        token_hash: &[u8],
        now: i64,
    ) -> StoreResult<Redeemed> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "UPDATE enrollments SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[&code_hash, &now],
            )?
            else {
                return Ok(Redeemed::InvalidCode);
            };
            let user_id: String = row.try_get(0)?;
            if let Some(actor) = &device.actor {
                let holder = tx.query_opt("SELECT id, user_id FROM devices WHERE actor = $1 FOR UPDATE", &[actor])?;
                if let Some(h) = holder {
                    let (old_device, holder_user): (String, String) = (h.try_get(0)?, h.try_get(1)?);
                    if holder_user != user_id {
                        // Dropping the transaction rolls back: the code stays unused.
                        return Ok(Redeemed::ActorInUse);
                    }
                    tx.execute("UPDATE devices SET actor = NULL WHERE id = $1", &[&old_device])?;
                }
            }
            tx.execute(
                "INSERT INTO devices (id, user_id, name, token_hash, created_at, actor, public_key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&device.id, &user_id, &device.name, &token_hash, &now, &device.actor, &device.public_key],
            )?;
            let r = tx.query_one("SELECT id, display_name, role, grid FROM users WHERE id = $1", &[&user_id])?;
            let user = user_of(&r, 0)?;
            tx.commit()?;
            Ok(Redeemed::Enrolled(user))
        })
    }

    fn claim_actor(&self, device_id: &str, actor: &[u8]) -> StoreResult<bool> {
        self.with(|c| {
            let Some(row) = c.query_opt("SELECT actor FROM devices WHERE id = $1", &[&device_id])? else {
                return Ok(false);
            };
            if let Some(a) = row.try_get::<_, Option<Vec<u8>>>(0)? {
                return Ok(a == actor);
            }
            // The unique index decides a race between two devices.
            match c.execute("UPDATE devices SET actor = $2 WHERE id = $1 AND actor IS NULL", &[&device_id, &actor]) {
                Ok(n) => Ok(n == 1),
                Err(e) if e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceAuth>> {
        self.with(|c| device_auth(c, "token_hash", &token_hash))
    }

    fn device(&self, device_id: &str) -> StoreResult<Option<DeviceAuth>> {
        self.with(|c| device_auth(c, "id", &device_id))
    }

    fn revoke_device(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE devices SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&device_id, &now],
            )? > 0)
        })
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        self.with(|c| {
            c.query(
                "SELECT id, user_id, name, created_at, last_sync_at, revoked_at, actor, public_key FROM devices ORDER BY user_id, created_at",
                &[],
            )?
            .iter()
            .map(device_of)
            .collect()
        })
    }

    fn set_device_key(&self, device_id: &str, public_key: &[u8]) -> StoreResult<KeyRegistered> {
        self.with(|c| {
            let Some(row) = c.query_opt("SELECT public_key FROM devices WHERE id = $1", &[&device_id])? else {
                return Ok(KeyRegistered::UnknownDevice);
            };
            if let Some(k) = row.try_get::<_, Option<Vec<u8>>>(0)? {
                return Ok(if k == public_key { KeyRegistered::Same } else { KeyRegistered::Conflict });
            }
            let n = c.execute(
                "UPDATE devices SET public_key = $2 WHERE id = $1 AND public_key IS NULL",
                &[&device_id, &public_key],
            )?;
            Ok(if n == 1 { KeyRegistered::Registered } else { KeyRegistered::Conflict })
        })
    }

    fn touch_device(&self, device_id: &str, now: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute("UPDATE devices SET last_sync_at = $2 WHERE id = $1", &[&device_id, &now])?;
            Ok(())
        })
    }
}

impl RecordStore for PostgresServerStore {
    fn stored_docs(&self, ids: &[Uuid]) -> StoreResult<Vec<Option<StoredDoc>>> {
        self.with(|c| {
            let rows = c.query("SELECT id, snapshot, sensitive FROM documents WHERE id = ANY($1)", &[&ids])?;
            let mut by_id: HashMap<Uuid, StoredDoc> = HashMap::with_capacity(rows.len());
            for r in rows {
                by_id.insert(r.get(0), StoredDoc { snapshot: r.get(1), sensitive: r.get(2) });
            }
            Ok(ids.iter().map(|id| by_id.get(id).cloned()).collect())
        })
    }

    fn merge_batch(
        &self,
        device_id: &str,
        synced_at: Option<i64>,
        docs: &[IncomingDoc],
        merge: &mut dyn FnMut(usize, Option<StoredDoc>, &IncomingDoc) -> DocDecision,
    ) -> StoreResult<Vec<DocDecision>> {
        // The touch in the merge's (last) transaction: one commit, one WAL
        // flush, not two.
        self.merge_in_parts(device_id, synced_at, docs, merge)
    }

    fn read_feed(&self, cursor: Cursor, scope: &ReadScope, exclude: &str, max_bytes: usize) -> StoreResult<FeedPage> {
        if scope.node.is_none() {
            return Ok(FeedPage { changes: vec![], next: cursor, more: false });
        }
        let [t, v, g] = scope.filters();
        // Unused filters are NULL; PostgreSQL re-plans for the first runs of
        // a prepared statement, so the scope's index is still chosen.
        let sql = "SELECT xid::text, seq, doc_id, bytes, origin FROM changes
             WHERE (xid, seq) > ($1::text::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())
               AND ($3::text IS NULL OR township = $3) AND ($4::text IS NULL OR village = $4)
               AND ($5::text IS NULL OR grp = $5) AND ($7 OR NOT sensitive)
             ORDER BY xid, seq LIMIT $6";
        // Rows already committed above the horizon (another session's
        // transaction was still running when they committed) would be
        // served only at the phone's next sync. Wait a little for that
        // transaction to end, so a phone syncing right after another's
        // commit receives it; past the bound, serve what is safe now.
        let pending = "SELECT EXISTS (SELECT 1 FROM changes
             WHERE (xid, seq) > ($1::text::xid8, $2) AND xid >= pg_snapshot_xmin(pg_current_snapshot())
               AND ($3::text IS NULL OR township = $3) AND ($4::text IS NULL OR village = $4)
               AND ($5::text IS NULL OR grp = $5) AND ($6 OR NOT sensitive))";
        self.with(|c| {
            let deadline = std::time::Instant::now() + FEED_HORIZON_WAIT;
            loop {
                let row = c.query_one(
                    pending,
                    &[&cursor.xid.to_string(), &(cursor.seq as i64), &t, &v, &g, &scope.sensitive],
                )?;
                let waiting: bool = row.try_get(0)?;
                if !waiting || std::time::Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let st = c.prepare(sql)?;
            let mut page = FeedPage { changes: vec![], next: cursor, more: false };
            let mut total = 0usize;
            const BATCH: i64 = 512;
            loop {
                let rows = c.query(
                    &st,
                    &[&page.next.xid.to_string(), &(page.next.seq as i64), &t, &v, &g, &BATCH, &scope.sensitive],
                )?;
                let n = rows.len() as i64;
                for r in rows {
                    let xid: String = r.try_get(0)?;
                    let seq: i64 = r.try_get(1)?;
                    let bytes: Vec<u8> = r.try_get(3)?;
                    let origin: String = r.try_get(4)?;
                    if origin != exclude {
                        if !page.changes.is_empty() && total + bytes.len() > max_bytes {
                            page.more = true;
                            return Ok(page);
                        }
                        total += bytes.len();
                        page.changes.push((r.try_get(2)?, bytes));
                    }
                    page.next = Cursor { xid: xid.parse().map_err(corrupt)?, seq: seq as u64 };
                }
                if n < BATCH {
                    return Ok(page);
                }
            }
        })
    }

    fn records(&self, q: &ViewQuery) -> StoreResult<Vec<RecordView>> {
        let order = if q.open_first { "(status = $11) ASC, occurred_at DESC, id" } else { "occurred_at DESC, id" };
        let sql =
            format!("SELECT {VIEW_COLS} FROM documents WHERE {VIEW_FILTER} ORDER BY {order} LIMIT $12 OFFSET $13");
        self.with(|c| {
            let (limit, offset) = (i64::from(q.limit.unwrap_or(10_000)), i64::from(q.offset));
            let held = ViewArgs::of(q);
            let mut args = held.args();
            args.push(&limit);
            args.push(&offset);
            c.query(&sql, &args)?.iter().map(view_of).collect()
        })
    }

    fn count_records(&self, q: &ViewQuery) -> StoreResult<u64> {
        let sql = format!("SELECT count(*) FROM documents WHERE {VIEW_FILTER}");
        self.with(|c| {
            let n: i64 = c.query_one(&sql, &ViewArgs::of(q).args())?.try_get(0)?;
            Ok(n as u64)
        })
    }

    fn tally(&self, under: &GridPath, kinds: &[RecordKind]) -> StoreResult<Vec<Tally>> {
        let (t, v, g) = parts(under);
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        self.with(|c| {
            c.query(
                "SELECT township, village, kind, status, level, has_conflict, count(*) FROM documents
                 WHERE NOT deleted AND ($1 = '' OR township = $1) AND ($2 = '' OR village = $2)
                   AND ($3 = '' OR grp = $3) AND kind = ANY($4)
                 GROUP BY township, village, kind, status, level, has_conflict",
                &[&t, &v, &g, &kinds],
            )?
            .iter()
            .map(|r| {
                let (t, v): (String, String) = (r.try_get(0)?, r.try_get(1)?);
                let path = if v.is_empty() { t } else { format!("{t}/{v}") };
                let n: i64 = r.try_get(6)?;
                Ok(Tally {
                    node: GridPath::parse(&path).map_err(corrupt)?,
                    kind: RecordKind::parse(r.try_get(2)?).map_err(corrupt)?,
                    status: r.try_get(3)?,
                    level: r.try_get(4)?,
                    has_conflict: r.try_get(5)?,
                    count: n as u64,
                })
            })
            .collect()
        })
    }

    fn record(&self, id: Uuid) -> StoreResult<Option<RecordView>> {
        self.with(|c| {
            c.query_opt(&format!("SELECT {VIEW_COLS} FROM documents WHERE id = $1"), &[&id])?
                .map(|r| view_of(&r))
                .transpose()
        })
    }

    fn snapshot(&self, id: Uuid) -> StoreResult<Option<StoredDoc>> {
        self.with(|c| {
            Ok(c.query_opt("SELECT snapshot, sensitive FROM documents WHERE id = $1", &[&id])?
                .map(|r| StoredDoc { snapshot: r.get(0), sensitive: r.get(1) }))
        })
    }

    fn change_log(&self, doc: Uuid) -> StoreResult<Vec<StoredChange>> {
        self.with(|c| {
            c.query("SELECT seq, hash, bytes, origin, signature FROM changes WHERE doc_id = $1 ORDER BY seq", &[&doc])?
                .iter()
                .map(|r| {
                    let hash: Vec<u8> = r.try_get(1)?;
                    stored_change(r.try_get(0)?, &hash, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)
                })
                .collect()
        })
    }

    fn signed_batch(&self, signature: &Signature) -> StoreResult<Option<gridsync_core::signing::Manifest>> {
        self.with(|c| {
            let row = c.query_opt("SELECT manifest FROM signed_batches WHERE signature = $1", &[&&signature.0[..]])?;
            row.map(|r| {
                let b: Vec<u8> = r.try_get(0)?;
                gridsync_core::signing::Manifest::from_bytes(b).ok_or_else(|| StoreError::Corrupt("manifest".into()))
            })
            .transpose()
        })
    }
}

impl CaseCountStore for PostgresServerStore {
    fn put_case_counts(&self, counts: &[CaseCount]) -> StoreResult<()> {
        self.tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO case_counts (village, year, kind, count, entered_by, entered_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (village, year, kind) DO UPDATE SET count = excluded.count,
                   entered_by = excluded.entered_by, entered_at = excluded.entered_at",
            )?;
            for c in counts {
                tx.execute(
                    &st,
                    &[
                        &c.village.to_string(),
                        &c.year,
                        &c.kind.as_str(),
                        &i64::from(c.count),
                        &c.entered_by,
                        &c.entered_at,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn case_counts(&self, year: i32) -> StoreResult<Vec<CaseCount>> {
        self.with(|c| {
            c.query(
                "SELECT village, year, kind, count, entered_by, entered_at FROM case_counts WHERE year = $1 ORDER BY village, kind",
                &[&year],
            )?
            .iter()
            .map(|r| {
                CaseCount::from_row(
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                )
            })
            .collect()
        })
    }
}

impl SessionStore for PostgresServerStore {
    fn set_web_password(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<()> {
        self.with(|c| {
            if c.query_opt("SELECT 1 FROM users WHERE id = $1", &[&user_id])?.is_none() {
                return Err(StoreError::NotFound(format!("user {user_id}")));
            }
            c.execute(
                "INSERT INTO web_passwords (user_id, hash, set_at, failures, locked_until) VALUES ($1, $2, $3, 0, NULL)
                 ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at, failures = 0, locked_until = NULL",
                &[&user_id, &hash, &now],
            )?;
            c.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&user_id])?;
            Ok(())
        })
    }

    fn web_password(&self, user_id: &str) -> StoreResult<Option<WebPassword>> {
        self.with(|c| {
            Ok(c.query_opt("SELECT hash, failures, locked_until FROM web_passwords WHERE user_id = $1", &[&user_id])?
                .map(|r| WebPassword {
                    hash: r.get(0),
                    failures: u32::try_from(r.get::<_, i32>(1)).unwrap_or(u32::MAX),
                    locked_until: r.get(2),
                }))
        })
    }

    fn begin_sign_in(&self, user_id: &str, now: i64, max_failures: u32, lock_ms: i64) -> StoreResult<bool> {
        self.tx(|tx| {
            // The row lock makes reading and counting one step for every
            // other sign-in, on every node.
            let Some(row) = tx.query_opt(
                "SELECT failures, locked_until FROM web_passwords WHERE user_id = $1 FOR UPDATE",
                &[&user_id],
            )?
            else {
                return Ok(true);
            };
            let failures = i64::from(row.try_get::<_, i32>(0)?);
            let locked_until: Option<i64> = row.try_get(1)?;
            match sign_in_step(failures, locked_until, now, max_failures, lock_ms) {
                None => Ok(false),
                Some((f, l)) => {
                    let f = i32::try_from(f).unwrap_or(i32::MAX);
                    tx.execute(
                        "UPDATE web_passwords SET failures = $2, locked_until = $3 WHERE user_id = $1",
                        &[&user_id, &f, &l],
                    )?;
                    Ok(true)
                }
            }
        })
    }

    fn clear_failed_sign_ins(&self, user_id: &str) -> StoreResult<()> {
        self.with(|c| {
            c.execute("UPDATE web_passwords SET failures = 0, locked_until = NULL WHERE user_id = $1", &[&user_id])?;
            Ok(())
        })
    }

    fn create_web_session(&self, s: &WebSession) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&s.token_hash, &s.user_id, &s.csrf, &s.created_at, &s.expires_at],
            )?;
            Ok(())
        })
    }

    fn web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<WebSession>> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT token_hash, user_id, csrf, created_at, expires_at FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
                &[&token_hash, &now],
            )?
            .map(|r| WebSession {
                token_hash: r.get(0),
                user_id: r.get(1),
                csrf: r.get(2),
                created_at: r.get(3),
                expires_at: r.get(4),
            }))
        })
    }

    fn delete_web_session(&self, token_hash: &[u8], now: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute("DELETE FROM web_sessions WHERE token_hash = $1 OR expires_at <= $2", &[&token_hash, &now])?;
            Ok(())
        })
    }
}

impl AuditStore for PostgresServerStore {
    fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit_log (at, user_id, action, target, ip) VALUES ($1, $2, $3, $4, $5)",
                &[&e.at, &e.user_id, &e.action, &e.target, &e.ip],
            )?;
            Ok(())
        })
    }

    fn audit_log(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (sql, args) = audit_sql(q, |i| format!("${i}"));
        self.with(|c| {
            let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| match a {
                    AuditArg::Text(s) => s as &(dyn ::postgres::types::ToSql + Sync),
                    AuditArg::Int(i) => i as &(dyn ::postgres::types::ToSql + Sync),
                })
                .collect();
            let rows = c.query(&sql, &params)?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    seq: r.get(0),
                    at: r.get(1),
                    user_id: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    ip: r.get(5),
                })
                .collect())
        })
    }
}

impl PhotoStore for PostgresServerStore {
    fn photo_holders(&self, hash: &str) -> StoreResult<Vec<PhotoHolder>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT a.record_id, a.by_user, a.mime, a.size, d.grid, d.sensitive, d.deleted
                 FROM attachment_refs a JOIN documents d ON d.id = a.record_id WHERE a.hash = $1 ORDER BY a.record_id",
                &[&hash],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(PhotoHolder {
                        record_id: r.try_get(0)?,
                        attachment: AttachmentRef {
                            hash: hash.to_owned(),
                            by: r.try_get(1)?,
                            mime: r.try_get(2)?,
                            size: r.try_get(3)?,
                        },
                        grid: GridPath::parse(&r.try_get::<_, String>(4)?).map_err(corrupt)?,
                        sensitive: r.try_get(5)?,
                        deleted: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    fn live_photos(&self) -> StoreResult<std::collections::HashSet<String>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT DISTINCT a.hash FROM attachment_refs a JOIN documents d ON d.id = a.record_id WHERE NOT d.deleted",
                &[],
            )?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    fn blob_store(&self) -> std::sync::Arc<dyn crate::blobs::BlobStore> {
        std::sync::Arc::new(crate::blobs::postgres::PgBlobStore::new(self.pool.clone()))
    }

    fn photo_ledger(&self) -> &dyn PhotoLedger {
        self
    }
}

impl PhotoLedger for PostgresServerStore {
    fn begin_photo_upload(
        &self,
        hash: &str,
        user_id: &str,
        size: i64,
        now: i64,
        quota: &PhotoQuota,
    ) -> StoreResult<UploadBegun> {
        self.tx(|tx| {
            // One user's uploads begin one at a time on every node: the
            // budget read and the new row cannot interleave with another's.
            tx.execute("SELECT pg_advisory_xact_lock(7346830, hashtext($1))", &[&user_id])?;
            let going = tx.execute(
                "UPDATE photo_uploads SET written_at = $3 WHERE hash = $1 AND user_id = $2",
                &[&hash, &user_id, &now],
            )?;
            if going > 0 {
                return Ok(UploadBegun::Continuing);
            }
            let held: i64 = tx
                .query_one("SELECT coalesce(sum(size), 0)::bigint FROM photo_uploads WHERE user_id = $1", &[&user_id])?
                .get(0);
            if held.saturating_add(size) > quota.unfinished_bytes {
                return Ok(UploadBegun::OverUnfinished { held });
            }
            let since = now.saturating_sub(photo_ledger::DAY_MS);
            let used: i64 = tx
                .query_one(
                    "SELECT ((SELECT coalesce(sum(size), 0) FROM photo_uploads WHERE user_id = $1 AND started_at > $2)
                          + (SELECT coalesce(sum(size), 0) FROM photo_owners WHERE user_id = $1 AND at > $2))::bigint",
                    &[&user_id, &since],
                )?
                .get(0);
            if used.saturating_add(size) > quota.daily_bytes {
                return Ok(UploadBegun::OverDaily { used });
            }
            tx.execute(
                "INSERT INTO photo_uploads (hash, user_id, size, received, started_at, written_at) VALUES ($1, $2, $3, 0, $4, $4)",
                &[&hash, &user_id, &size, &now],
            )?;
            Ok(UploadBegun::Started)
        })
    }

    fn note_photo_upload(&self, hash: &str, user_id: &str, received: i64, now: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE photo_uploads SET received = greatest(received, $3), written_at = $4 WHERE hash = $1 AND user_id = $2",
                &[&hash, &user_id, &received, &now],
            )?;
            Ok(())
        })
    }

    fn finish_photo_upload(&self, hash: &str, user_id: &str, size: i64, now: i64) -> StoreResult<()> {
        self.tx(|tx| {
            tx.execute("DELETE FROM photo_uploads WHERE hash = $1 AND user_id = $2", &[&hash, &user_id])?;
            tx.execute(
                "INSERT INTO photo_owners (hash, user_id, size, at) VALUES ($1, $2, $3, $4) ON CONFLICT (hash, user_id) DO NOTHING",
                &[&hash, &user_id, &size, &now],
            )?;
            Ok(())
        })
    }

    fn drop_photo_upload(&self, hash: &str, user_id: &str) -> StoreResult<()> {
        self.with(|c| {
            c.execute("DELETE FROM photo_uploads WHERE hash = $1 AND user_id = $2", &[&hash, &user_id])?;
            Ok(())
        })
    }

    fn photo_uploads(&self) -> StoreResult<Vec<PhotoUploadRow>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT hash, user_id, size, received, started_at, written_at FROM photo_uploads ORDER BY hash, user_id",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(PhotoUploadRow {
                        hash: r.try_get(0)?,
                        user_id: r.try_get(1)?,
                        size: r.try_get(2)?,
                        received: r.try_get(3)?,
                        started_at: r.try_get(4)?,
                        written_at: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }

    fn photo_owners(&self, hash: &str) -> StoreResult<Vec<String>> {
        self.with(|c| {
            let rows = c.query("SELECT user_id FROM photo_owners WHERE hash = $1 ORDER BY user_id", &[&hash])?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    fn all_photo_owners(&self) -> StoreResult<Vec<PhotoOwner>> {
        self.with(|c| {
            let rows = c.query("SELECT hash, user_id, at FROM photo_owners ORDER BY hash, user_id", &[])?;
            rows.iter()
                .map(|r| Ok(PhotoOwner { hash: r.try_get(0)?, user_id: r.try_get(1)?, at: r.try_get(2)? }))
                .collect()
        })
    }

    fn drop_photo_owners(&self, hash: &str, user_id: Option<&str>) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM photo_owners WHERE hash = $1 AND ($2::text IS NULL OR user_id = $2)",
                &[&hash, &user_id],
            )?;
            Ok(())
        })
    }

    fn photos_wanted(&self, user_id: &str, limit: usize) -> StoreResult<Vec<WantedPhoto>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT a.hash, max(a.size), min(a.record_id::text) FROM attachment_refs a JOIN documents d ON d.id = a.record_id
                 WHERE a.by_user = $1 AND NOT d.deleted
                   AND NOT EXISTS (SELECT 1 FROM photo_owners o WHERE o.hash = a.hash AND o.user_id = $1)
                 GROUP BY a.hash ORDER BY a.hash LIMIT $2",
                &[&user_id, &(limit as i64)],
            )?;
            rows.iter()
                .map(|r| {
                    let id: String = r.try_get(2)?;
                    Ok(WantedPhoto {
                        hash: r.try_get(0)?,
                        size: r.try_get(1)?,
                        record_id: Uuid::parse_str(&id).map_err(corrupt)?,
                    })
                })
                .collect()
        })
    }
}

/// For tests: a fresh schema in the database at `GRIDSYNC_TEST_POSTGRES_URL`,
/// returned as a URL whose connections use it. `None` when the variable is
/// not set (the suite then skips, saying so).
pub fn test_database_url() -> Option<String> {
    let base = std::env::var("GRIDSYNC_TEST_POSTGRES_URL").ok()?;
    match fresh_schema_url(&base, "gs_test") {
        Ok(url) => Some(url),
        // Set but unusable is a broken test setup, not a reason to skip.
        Err(e) => panic!("GRIDSYNC_TEST_POSTGRES_URL is set but PostgreSQL cannot be used: {e}"),
    }
}

/// Longest a feed read waits for transactions still running to end when
/// rows in scope have committed above the feed's horizon.
const FEED_HORIZON_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Create a new schema `<prefix>_<seconds>_<random>` in the database at
/// `base` and return a URL whose connections use it (tests and
/// benchmarks). Schemas of the same prefix made over six hours ago (or
/// named before their names carried the time) are dropped first: a test
/// run never lasts that long, and the test database would otherwise grow
/// with every run.
pub fn fresh_schema_url(base: &str, prefix: &str) -> StoreResult<String> {
    let now = crate::clock::now_ms() / 1000;
    let schema = format!("{prefix}_{now}_{}", Uuid::new_v4().simple());
    let mut c = Client::connect(base, NoTls).map_err(|e| StoreError::Open(e.to_string()))?;
    let like = format!("{prefix}\\_%");
    for row in c.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", &[&like])? {
        let name: String = row.get(0);
        let made = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).and_then(|r| r.split_once('_'));
        let stale = match made.map(|(secs, _)| secs.parse::<i64>()) {
            Some(Ok(secs)) => now - secs > 6 * 3600,
            // `<prefix>_<random>`, from before names carried the time.
            _ => true,
        };
        if stale && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            // Another run may drop it at the same moment: not an error.
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
    c.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

#[cfg(test)]
mod schema_tests {
    use ::postgres::{Client, NoTls};

    use super::{MIGRATIONS, PostgresServerStore, test_database_url};
    use crate::store::prelude::*;

    /// Every released schema, as the migrations up to it were released.
    const RELEASED: &[(i64, &str)] = &[
        (1, include_str!("../../../migrations/server-postgres/snapshots/v1.sql")),
        (2, include_str!("../../../migrations/server-postgres/snapshots/v2.sql")),
        (3, include_str!("../../../migrations/server-postgres/snapshots/v3.sql")),
        (4, include_str!("../../../migrations/server-postgres/snapshots/v4.sql")),
        (5, include_str!("../../../migrations/server-postgres/snapshots/v5.sql")),
        (6, include_str!("../../../migrations/server-postgres/snapshots/v6.sql")),
        (7, include_str!("../../../migrations/server-postgres/snapshots/v7.sql")),
        (8, include_str!("../../../migrations/server-postgres/snapshots/v8.sql")),
        (9, include_str!("../../../migrations/server-postgres/snapshots/v9.sql")),
    ];

    /// The current schema's tables, columns, indexes and triggers as text
    /// (schema names left out: each test has its own schema).
    fn described(url: &str) -> Vec<String> {
        let mut c = Client::connect(url, NoTls).unwrap();
        let mut out = Vec::new();
        for r in c
            .query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, coalesce(column_default, '')::text
                 FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2",
                &[],
            )
            .unwrap()
        {
            let v: Vec<String> = (0..5).map(|i| r.get::<_, String>(i)).collect();
            out.push(format!("column {}", v.join(" | ")));
        }
        let schema: String = c.query_one("SELECT current_schema()::text", &[]).unwrap().get(0);
        for r in c
            .query(
                "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
                &[],
            )
            .unwrap()
        {
            let def: String = r.get(1);
            out.push(format!("index {}: {}", r.get::<_, String>(0), def.replace(&format!("{schema}."), "")));
        }
        for r in c
            .query(
                "SELECT t.tgname::text, c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal ORDER BY 1",
                &[],
            )
            .unwrap()
        {
            out.push(format!("trigger {} on {}", r.get::<_, String>(0), r.get::<_, String>(1)));
        }
        out
    }

    /// A province whose record lost a photo's reference to an older core
    /// gets it back, with the record's JSON, when it upgrades to schema 9
    /// (as on SQLite).
    #[test]
    #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
    fn upgrading_to_schema_9_restores_references_an_older_core_lost() {
        use crate::store::PhotoLedger;
        let url = test_database_url().expect("GRIDSYNC_TEST_POSTGRES_URL is set");
        let s = PostgresServerStore::connect(&url).unwrap();
        s.migrate().unwrap();
        crate::store::conformance::setup(&s);
        let rec = crate::store::conformance::photos_attached_at_once(&s);
        let (ha, hb) = ("a".repeat(64), "b".repeat(64));
        drop(s);
        let mut c = Client::connect(&url, NoTls).unwrap();
        c.execute("DELETE FROM attachment_refs WHERE hash = $1", &[&hb]).unwrap();
        c.execute("UPDATE documents SET json = json #- ARRAY['attachments', $1::text]", &[&hb]).unwrap();
        c.batch_execute(
            "DROP TABLE photo_uploads; DROP TABLE photo_owners; DROP INDEX attachment_refs_by;
             DROP TABLE blob_upload_chunks; DROP TABLE blob_uploads; DELETE FROM schema_version WHERE version = 9;",
        )
        .unwrap();
        let s = PostgresServerStore::connect(&url).unwrap();
        s.migrate().unwrap();
        let holders: Vec<String> = s.photo_holders(&hb).unwrap().into_iter().map(|h| h.attachment.by).collect();
        assert_eq!(holders, ["vl1"]);
        let json = s.record(rec.id).unwrap().unwrap().json;
        assert_eq!(json["attachments"].as_object().unwrap().len(), 2, "{json}");
        assert_eq!(s.photo_owners(&ha).unwrap(), ["gm1"]);
        assert_eq!(s.photos_wanted("vl1", 10).unwrap().into_iter().map(|w| w.hash).collect::<Vec<_>>(), [hb]);
    }

    /// A province database on any released schema upgrades to exactly what
    /// a fresh install creates.
    #[test]
    #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
    fn every_released_schema_upgrades_to_the_fresh_one() {
        let fresh_url = test_database_url().expect("GRIDSYNC_TEST_POSTGRES_URL is set");
        PostgresServerStore::connect(&fresh_url).unwrap().migrate().unwrap();
        let fresh = described(&fresh_url);
        assert_eq!(RELEASED.last().map(|r| r.0), Some(MIGRATIONS.len() as i64), "add a snapshot of the newest schema");
        for (v, sql) in RELEASED {
            let url = test_database_url().expect("GRIDSYNC_TEST_POSTGRES_URL is set");
            let mut c = Client::connect(&url, NoTls).unwrap();
            c.batch_execute(sql).unwrap();
            c.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)").unwrap();
            c.execute("INSERT INTO schema_version (version) VALUES ($1)", &[v]).unwrap();
            PostgresServerStore::connect(&url).unwrap().migrate().unwrap();
            assert_eq!(described(&url), fresh, "version {v} upgraded differs from a fresh schema");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PostgresServerStore, test_database_url};
    crate::conformance_tests!(#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"] make: {
        test_database_url().map(|url| {
            let s = PostgresServerStore::connect(&url).unwrap();
            s.migrate().unwrap();
            Box::new(s) as Box<dyn ServerStore>
        })
    });
}

#[cfg(test)]
mod fresh_schema_tests {
    use ::postgres::{Client, NoTls};

    use super::fresh_schema_url;

    /// A test run's schema is dropped by a later run once it is six hours
    /// old (or named the old way), and not before: the test database does
    /// not grow with every run, and a run going on beside is left alone.
    #[test]
    #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
    fn old_test_schemas_are_dropped_and_recent_ones_kept() {
        let base = std::env::var("GRIDSYNC_TEST_POSTGRES_URL").expect("GRIDSYNC_TEST_POSTGRES_URL (see README)");
        let mut c = Client::connect(&base, NoTls).unwrap();
        let now = crate::clock::now_ms() / 1000;
        let old = format!("gs_cleanup_{}_a", now - 7 * 3600);
        let legacy = "gs_cleanup_0123abcd".to_owned();
        let recent = format!("gs_cleanup_{}_b", now - 3600);
        for name in [&old, &legacy, &recent] {
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).unwrap();
        }
        let url = fresh_schema_url(&base, "gs_cleanup").unwrap();
        let exists = |c: &mut Client, name: &str| {
            c.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&name]).unwrap().get::<_, i64>(0) == 1
        };
        assert!(!exists(&mut c, &old) && !exists(&mut c, &legacy), "old schemas dropped");
        assert!(exists(&mut c, &recent), "a recent schema kept");
        let made = url.rsplit("search_path%3D").next().unwrap().to_owned();
        assert!(exists(&mut c, &made));
        c.batch_execute(&format!("DROP SCHEMA {recent} CASCADE; DROP SCHEMA {made} CASCADE")).unwrap();
    }
}
