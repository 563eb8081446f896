//! The Gridsync server: merges every record whenever a phone reconnects,
//! decides who may see and change what, and (later) serves supervisors.
//!
//! # Layout
//!
//! - [`api`]: HTTP handlers (`/v1/enroll`, `/v1/sync`, `/healthz`, `/metrics`).
//! - [`merge`]: merging one record's incoming changes (pure, guarded).
//! - [`access`]: who may read and write what.
//! - [`store`]: the [`store::ServerStore`] trait and its SQLite and PostgreSQL backends.
//! - [`auth`]: enrollment codes and device tokens.
//! - [`demo`]: the demo county.
//! - [`metrics`]: Prometheus counters.

pub mod access;
pub mod api;
pub mod auth;
pub mod demo;
pub mod merge;
pub mod metrics;
pub mod store;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

pub use api::{AppState, Limits};

/// Open the store named by a database URL: `postgres://...` for
/// PostgreSQL, anything else is a SQLite file path.
pub fn open_store(database: &str) -> Result<Arc<dyn store::ServerStore>, store::StoreError> {
    let s: Arc<dyn store::ServerStore> = if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        Arc::new(store::postgres::PostgresServerStore::connect(database)?)
    } else {
        Arc::new(store::sqlite::SqliteServerStore::open(database)?)
    };
    s.migrate()?;
    Ok(s)
}

/// Every route of the server; tests mount it on `actix_web::test` apps.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/enroll", web::post().to(api::enroll))
        .route("/v1/sync", web::post().to(api::sync))
        .route("/healthz", web::get().to(api::healthz))
        .route("/metrics", web::get().to(api::metrics))
        .default_service(web::to(api::not_found));
}

/// Build the HTTP server on an already-bound listener (tests bind port 0).
/// The caller awaits the returned server; its handle stops it.
pub fn run(listener: TcpListener, state: AppState, workers: usize) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
    .workers(workers.max(1))
    .listen(listener)?
    .run();
    Ok(server)
}
