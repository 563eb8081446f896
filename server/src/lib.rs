//! The Gridsync server: merges every record whenever a phone reconnects,
//! decides who may see and change what, and serves supervisors a dashboard and reports.
//!
//! # Layout
//!
//! - [`api`]: HTTP handlers (`/v1/enroll`, `/v1/sync`, `/healthz`, `/metrics`).
//! - [`sync`]: the sync service: the one path by which changes enter (phones, bundles, the web).
//! - [`merge`]: merging one record's incoming changes, each judged on its own (pure, guarded).
//! - [`access`]: who may read and write what.
//! - [`store`]: the [`store::ServerStore`] trait and its SQLite and PostgreSQL backends.
//! - [`blobs`]: photo bytes behind [`blobs::BlobStore`] (files next to SQLite, or PostgreSQL).
//! - [`photos`]: `PUT`/`GET /v1/photos/{hash}`, who may send and see which photo, garbage collection.
//! - [`auth`]: enrollment codes and device tokens.
//! - [`signatures`]: device signatures checked before judging, relay bundles, bundle import.
//! - [`provenance`]: who signed each change of a record, and its export for anyone to verify.
//! - [`cli`]: the `gridsync-server` command line.
//! - [`demo`]: the demo county; [`demo_month`] a month of its records, with [`demo_households`]
//!   (ledgers), [`demo_phones`] (enrolled phones that sign the records) and [`demo_cases`] (agency counts).
//! - [`logtext`]: text from requests made safe for a log line (escaped, bounded).
//! - [`metrics`]: Prometheus counters.
//! - [`ratelimit`]: per-address limits for enrollment and sign-in.
//! - [`reports`]: supervision aggregates (weekly, monthly, coverage, backlog, four-none, sync health, submissions).
//! - [`reports_files`]: those reports as XLSX and CSV.
//! - [`dashboard`]: the supervisors' web dashboard (`/`, `/web/...`).
//! - [`reports_api`]: their HTTP endpoints (`/v1/reports/...`, `/v1/case-counts`, `/v1/openapi.json`).

pub mod access;
pub mod account_api;
pub mod accounts;
pub mod api;
pub mod auth;
pub mod blobs;
pub mod bundles;
pub mod cli;
pub mod clock;
pub mod dashboard;
pub mod demo;
pub mod demo_cases;
pub mod demo_households;
pub mod demo_month;
pub mod demo_phones;
pub mod logtext;
pub mod merge;
pub mod metrics;
pub mod pg_pool;
pub mod photos;
pub mod provenance;
pub mod ratelimit;
pub mod reports;
pub mod reports_api;
pub mod reports_files;
pub mod signatures;
pub mod store;
pub mod sync;

/// The dashboard map's tile source, for the CLI and [`Limits`].
pub use dashboard::map as web_map;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

pub use api::{AppState, Limits};

/// The system allocator, for a build without the `jemalloc` feature (the
/// fuzz targets, which count allocations themselves and need not build
/// jemalloc's C).
#[cfg(not(feature = "jemalloc"))]
pub use std::alloc::System as Allocator;
/// The allocator every server binary installs (`#[global_allocator]`):
/// jemalloc. Judging a change allocates and frees the record's tree
/// several times over, on every core at once; with glibc's malloc that
/// was 14% of the server's CPU.
#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator::Jemalloc as Allocator;

/// Connections the kernel may hold for the server before it accepts them.
/// 400 phones reconnecting in the same second (a village's network back)
/// overflow std's 128: each dropped SYN is retried by the phone's kernel a
/// full second later. The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Bind `addr` (`host:port`, port 0 for any) and listen with
/// [`LISTEN_BACKLOG`]: the first of its addresses that binds.
pub fn listen(addr: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let bound = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP)).and_then(|s| {
            // As std does on Unix: a restarted server can bind at once.
            s.set_reuse_address(true)?;
            s.bind(&a.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(s)
        });
        match bound {
            Ok(s) => return Ok(s.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")))
}

/// Open the store named by a database URL: `postgres://...` (or
/// `postgresql://...`) for PostgreSQL, anything else is a SQLite file path.
/// The command line passes SQLite paths only from `--data-dir`; see
/// [`check_database_url`] for `--database-url`.
pub fn open_store(database: &str) -> Result<Arc<dyn store::ServerStore>, store::StoreError> {
    open_store_with(database, pg_pool::ClientPool::DEFAULT_MAX_OPEN)
}

/// [`open_store`], opening at most `db_connections` connections to
/// PostgreSQL (`--db-connections`; SQLite has one writer and its readers).
pub fn open_store_with(
    database: &str,
    db_connections: usize,
) -> Result<Arc<dyn store::ServerStore>, store::StoreError> {
    let s: Arc<dyn store::ServerStore> = if is_postgres_url(database) {
        Arc::new(store::postgres::PostgresServerStore::connect_with(database, db_connections)?)
    } else {
        Arc::new(store::sqlite::SqliteServerStore::open(database)?)
    };
    s.migrate()?;
    Ok(s)
}

fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `--database-url` must be a PostgreSQL URL: anything else (a typo, a
/// `mysql://` URL, a libpq `key=value` string) is refused with the reason,
/// instead of silently creating an empty SQLite file of that name.
pub fn check_database_url(url: &str) -> Result<(), String> {
    if is_postgres_url(url) {
        return Ok(());
    }
    let shown: String = url.chars().take(60).collect();
    if url.contains('=') && !url.contains("://") {
        return Err(format!(
            "--database-url `{shown}` looks like a libpq key=value string; give a URL: postgres://user@host:5432/db"
        ));
    }
    Err(format!(
        "--database-url must be a PostgreSQL URL (postgres://user@host:5432/db), got `{shown}`; for SQLite, leave it out and use --data-dir"
    ))
}

/// Every route of the server; tests mount it on `actix_web::test` apps.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(api::count_errors))
            .route("/v1/enroll", web::post().to(api::enroll))
            .route("/v1/sync", web::post().to(api::sync))
            .route("/v1/problems", web::post().to(api::problems))
            .route("/v1/device-key", web::post().to(api::device_key))
            .route("/v1/relay", web::post().to(api::relay))
            .route("/v1/photos/wanted", web::get().to(photos::wanted))
            .route("/v1/photos/{hash}", web::put().to(photos::upload))
            .route("/v1/photos/{hash}", web::get().to(photos::download))
            .route("/v1/directory", web::get().to(account_api::directory))
            .route("/v1/sign-out", web::post().to(account_api::sign_out))
            .route("/healthz", web::get().to(api::healthz))
            .route("/metrics", web::get().to(api::metrics))
            .configure(reports_api::routes)
            .configure(dashboard::configure)
            .default_service(web::to(api::not_found)),
    );
}

/// Build the HTTP server on an already-bound listener (tests bind port 0).
/// The caller awaits the returned server; its handle stops it.
///
/// Open connections are capped (`max_connections` over all workers, by
/// default what the process's open-file limit leaves after a reserve for
/// the database and logs), so connections held open slowly can never take
/// the descriptors the server needs; request headers must arrive within
/// 5 seconds and bodies keep a minimum rate ([`Limits`]).
pub fn run(
    listener: TcpListener,
    state: AppState,
    workers: usize,
    max_connections: Option<usize>,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = workers.max(1);
    let total = max_connections.unwrap_or_else(default_max_connections).max(workers);
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(workers)
        .max_connections(total / workers)
        .keep_alive(gridsync_core::protocol::SERVER_KEEP_ALIVE)
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        .listen(listener)?
        .run();
    Ok(server)
}

/// Connections the process can hold: its soft open-file limit less a
/// reserve of 256 descriptors, at most 25,000.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<usize>().ok())
    });
    soft.map_or(1024, |n| n.saturating_sub(256).clamp(64, 25_000))
}

pub use bundles::{BundleImport, ImportError, import_bundle};

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    /// A burst of phones connecting before the server accepts any is
    /// queued by the kernel, not dropped: a dropped SYN costs the phone a
    /// full second before its kernel tries again.
    #[test]
    fn a_burst_of_connections_waits_in_the_backlog() {
        let listener = super::listen("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        // More than std's 128 and than tokio's 1024, within the kernel's cap.
        let n = somaxconn.min(super::LISTEN_BACKLOG as usize).min(1500);
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            // Never accepted: each one sits in the accept queue. A full
            // queue drops the SYN, and the connect times out.
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => held.push(s),
                Err(e) => panic!("connection {} of {n} was not queued: {e}", i + 1),
            }
        }
        assert_eq!(held.len(), n);
    }
}
