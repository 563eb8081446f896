//! Numbered SQL migrations from `migrations/client/`, each applied in its
//! own transaction that also bumps `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::{CoreError, Result};

/// The migrations, in order; the schema version is the index + 1.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_init", include_str!("../../../migrations/client/001_init.sql")),
    ("002_rejections_and_status_index", include_str!("../../../migrations/client/002_rejections_and_status_index.sql")),
    ("003_refused_and_set_aside", include_str!("../../../migrations/client/003_refused_and_set_aside.sql")),
    ("004_directory", include_str!("../../../migrations/client/004_directory.sql")),
    ("005_attachments", include_str!("../../../migrations/client/005_attachments.sql")),
    ("006_relay", include_str!("../../../migrations/client/006_relay.sql")),
    ("007_kept_refused_steps", include_str!("../../../migrations/client/007_kept_refused_steps.sql")),
];

/// Newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database up to `target` (at most [`latest`]).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest() {
        return Err(CoreError::SchemaTooNew { found: current, supported: latest() });
    }
    for (i, (_name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current || version > target {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    fn columns(conn: &Connection, table: &str) -> Vec<(String, String, bool)> {
        let mut st = conn.prepare(&format!("PRAGMA table_info({table})")).unwrap();
        st.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    /// The schema of every released version, as it was released (frozen:
    /// never edit one; add one for each new version). A migration that
    /// changes what an old version had, or a fresh schema that drifts from
    /// what upgrades produce, fails [`every_released_schema_upgrades_to_the_fresh_one`].
    const RELEASED: &[(i64, &str)] = &[
        (1, include_str!("../../../migrations/client/snapshots/v1.sql")),
        (2, include_str!("../../../migrations/client/snapshots/v2.sql")),
        (3, include_str!("../../../migrations/client/snapshots/v3.sql")),
        (4, include_str!("../../../migrations/client/snapshots/v4.sql")),
        (5, include_str!("../../../migrations/client/snapshots/v5.sql")),
        (6, include_str!("../../../migrations/client/snapshots/v6.sql")),
        (7, include_str!("../../../migrations/client/snapshots/v7.sql")),
    ];

    /// The schema as comparable text: every object's SQL with whitespace
    /// collapsed, and every table's columns.
    fn described(conn: &Connection) -> Vec<String> {
        let mut out: Vec<String> = schema(conn)
            .into_iter()
            .map(|(name, sql)| format!("{name}: {}", sql.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        for (table, sql) in schema(conn) {
            if sql.starts_with("CREATE TABLE") {
                out.push(format!("{table} columns: {:?}", columns(conn, &table)));
            }
        }
        out
    }

    /// The schema a version leaves, as SQL to recreate it.
    fn dump(conn: &Connection) -> String {
        let mut st = conn
            .prepare(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
                 ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name",
            )
            .unwrap();
        let stmts: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        stmts.iter().map(|s| format!("{s};\n")).collect()
    }

    /// A phone on any released version upgrades to exactly the schema of a
    /// fresh install. `GRIDSYNC_WRITE_SCHEMA_SNAPSHOTS=1` writes the
    /// snapshot of a new version (once, when it is released).
    #[test]
    fn every_released_schema_upgrades_to_the_fresh_one() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate_to(&mut fresh, latest()).unwrap();
        if std::env::var_os("GRIDSYNC_WRITE_SCHEMA_SNAPSHOTS").is_some() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/client/snapshots");
            let path = format!("{dir}/v{}.sql", latest());
            if !std::path::Path::new(&path).exists() {
                let header = format!("-- Phone store schema version {}, as released. Frozen: never edit.\n", latest());
                std::fs::write(&path, header + &dump(&fresh)).unwrap();
            }
        }
        assert_eq!(RELEASED.last().map(|r| r.0), Some(latest()), "add a snapshot of the newest schema");
        for (v, sql) in RELEASED {
            let mut old = Connection::open_in_memory().unwrap();
            old.execute_batch(sql).unwrap();
            old.pragma_update(None, "user_version", v).unwrap();
            migrate_to(&mut old, latest()).unwrap();
            assert_eq!(described(&old), described(&fresh), "version {v} upgraded differs from a fresh schema");
        }
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate_to(&mut conn, latest()), Err(CoreError::SchemaTooNew { found: 99, .. })));
    }
}
