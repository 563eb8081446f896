//! Gridsync end-to-end tests: one test binary, one module per area.
//!
//! Most tests start real `gridsync-server` processes on loopback ports;
//! PostgreSQL tests read `GRIDSYNC_TEST_POSTGRES_URL` and are skipped
//! (saying so) without it.

#![allow(clippy::unwrap_used)]

/// Run each named case on SQLite and on PostgreSQL (the latter `#[ignore]`d
/// unless run with `--include-ignored` and a PostgreSQL URL): a module per
/// case with `on_sqlite` and `on_postgres`. A case takes the `Db`; with
/// `with_dir:`, also a scratch directory. The calling module has `Db`,
/// `blocking` and `postgres_db` in scope.
macro_rules! on_both_backends {
    (with_dir: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(Db::Sqlite(dir.path().to_path_buf()), dir.path()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
                async fn on_postgres() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = blocking(postgres_db);
                    super::$name(db, dir.path()).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(Db::Sqlite(dir.path().to_path_buf())).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
                async fn on_postgres() {
                    let db = blocking(postgres_db);
                    super::$name(db).await;
                }
            }
        )*
    };
}

mod backlog;
mod bench;
mod browser;
mod bundle;
mod disputes;
mod evening;
mod faults;
mod hostile;
mod limits;
mod phone;
mod photo_owners;
mod photos;
mod postgres;
#[cfg(target_os = "linux")]
mod powercut;
mod problems;
mod relay_limits;
mod revoke;
mod sign_out;
mod signatures;
mod simulation;
mod starve;
mod web_abuse;
mod web_walks;
