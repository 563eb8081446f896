//! Numbered SQL migrations from `migrations/client/`, each applied in its
//! own transaction that also bumps `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::{CoreError, Result};

/// The migrations, in order; the schema version is the index + 1.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_init", include_str!("../../../migrations/client/001_init.sql")),
    ("002_rejections_and_status_index", include_str!("../../../migrations/client/002_rejections_and_status_index.sql")),
    ("003_refused_and_set_aside", include_str!("../../../migrations/client/003_refused_and_set_aside.sql")),
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

    /// A phone that installed version 1 and upgraded one release at a time
    /// ends up with the same schema as a fresh install.
    #[test]
    fn step_by_step_upgrade_equals_fresh_schema() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate_to(&mut fresh, latest()).unwrap();

        let mut old = Connection::open_in_memory().unwrap();
        for v in 1..=latest() {
            migrate_to(&mut old, v).unwrap();
            let got: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(got, v);
        }
        let names = |s: &[(String, String)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&schema(&old)), names(&schema(&fresh)));
        for (table, _) in schema(&fresh).iter().filter(|(_, sql)| sql.starts_with("CREATE TABLE")) {
            assert_eq!(columns(&old, table), columns(&fresh, table), "table {table}");
        }
        // Re-running is a no-op.
        migrate_to(&mut old, latest()).unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate_to(&mut conn, latest()), Err(CoreError::SchemaTooNew { found: 99, .. })));
    }
}
