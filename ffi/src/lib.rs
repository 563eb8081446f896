//! Gridsync's core for Android and iOS, through UniFFI.
//!
//! A thin layer: [`GridCore`] holds an encrypted [`Store`] and an
//! [`HttpClient`] from `gridsync-core`, converts the app's values to the
//! core's types and back, and turns the core's errors into [`ApiError`].
//! Validation, status, merging and sync are the core's; nothing here
//! decides anything a record means.
//!
//! Threads: every method that touches the store or the network is `async`.
//! The work runs on a tokio runtime this crate owns (SQLite calls on its
//! blocking pool), so the caller's thread, the app's UI thread included,
//! only awaits. Kotlin sees `suspend fun`, Swift `async`, Python coroutines.
//!
//! Panics: none are expected; should one happen in the core it is caught
//! where the task is joined and becomes [`ApiError::Storage`], so it never
//! unwinds into the app.
//!
//! # Layout
//!
//! - [`types`]: the UniFFI records and enums, and conversions to the core.
//! - [`error`]: [`ApiError`], the public error.
//! - this file: [`GridCore`], the runtime, and the [`SyncProgress`] callback.

pub mod error;
pub mod types;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use gridsync_core::grid::GridPath;
use gridsync_core::model::{self as m, next_event};
use gridsync_core::store::{self as st, Store};
use gridsync_core::sync::SyncOptions;
use gridsync_core::transport::bundle::Bundle;
use gridsync_core::transport::http::{HttpClient, RetryPolicy};
use uuid::Uuid;

pub use error::ApiError;
pub use types::*;

uniffi::setup_scaffolding!();

/// The crate's tokio runtime, started on first use and never dropped (a
/// runtime dropped from inside async code panics; a static one cannot be).
fn runtime() -> Result<&'static tokio::runtime::Runtime, ApiError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gridsync")
        .enable_all()
        .build()
        .map_err(|e| ApiError::internal(format!("cannot start the runtime: {e}")))?;
    // If another thread won the race, its runtime is kept and ours dropped
    // here, outside any async context.
    Ok(RUNTIME.get_or_init(|| rt))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "bad_uuid", "记录编号格式错误"))
}

fn parse_grid(field: &str, grid: &str) -> Result<GridPath, ApiError> {
    GridPath::parse(grid).map_err(|e| match ApiError::from(e) {
        ApiError::InvalidInput { reason, message_zh, .. } => {
            ApiError::InvalidInput { field: field.into(), reason, message_zh }
        }
        other => other,
    })
}

/// Receives a running sync's progress and log lines. Implemented by the
/// app; called from a background thread. An error returned (or thrown)
/// here is logged away and does not stop the sync.
#[uniffi::export(foreign)]
pub trait SyncProgress: Send + Sync {
    /// Called after every round trip with the totals so far.
    fn on_progress(&self, stats: SyncStats) -> Result<(), ApiError>;
    /// A line worth logging (start, end, failure), in English.
    fn on_log(&self, message: String) -> Result<(), ApiError>;
}

/// The phone's Gridsync core: one encrypted record store and the server it
/// is enrolled with. Create one per store file and share it; every method
/// is safe to call from any thread.
#[derive(uniffi::Object)]
pub struct GridCore {
    // A std mutex: the store is only ever locked on the runtime's blocking
    // threads, never across an await of the caller's.
    store: Arc<Mutex<Store>>,
    http: HttpClient,
    path: PathBuf,
}

impl std::fmt::Debug for GridCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridCore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl GridCore {
    /// Run `work` with the store on the runtime's blocking pool.
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.store);
        let task = runtime()?.spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| ApiError::internal("store lock poisoned by an earlier fault"))?;
            work(&mut guard)
        });
        task.await.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    }

    fn author(store: &Store) -> Result<String, ApiError> {
        match store.enrollment()? {
            Some(e) => Ok(e.user_id),
            None => Err(ApiError::NotEnrolled {
                message_zh: "本机尚未注册，请输入管理员发放的注册码".into()
            }),
        }
    }
}

#[uniffi::export]
impl GridCore {
    /// Open (or create) the encrypted store at `path` with a 32-byte key
    /// from the platform keystore. A wrong key gives `WrongKey`. Opening
    /// runs the schema migrations; it is quick, but call it off the UI
    /// thread anyway.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> Result<Arc<GridCore>, ApiError> {
        let key: [u8; 32] =
            key.as_slice().try_into().map_err(|_| ApiError::invalid("key", "bad_length", "密钥长度必须为32字节"))?;
        let rt = runtime()?;
        let store = Store::open_encrypted(&path, &key)?;
        // reqwest's client is built inside the runtime it will run on.
        let _guard = rt.enter();
        let http = HttpClient::new(RetryPolicy::default())?;
        Ok(Arc::new(GridCore { store: Arc::new(Mutex::new(store)), http, path: PathBuf::from(path) }))
    }

    /// Trade a one-time enrollment code for this device's credentials.
    /// A refused code is `InvalidInput` on field `code`.
    pub async fn enroll(
        &self,
        server_url: String,
        code: String,
        device_name: String,
    ) -> Result<EnrollmentInfo, ApiError> {
        let http = self.http.clone();
        let handle = runtime()?.handle().clone();
        self.with_store(move |store| {
            handle.block_on(http.enroll(store, &server_url, &code, &device_name)).map(Into::into).map_err(
                |e| match &e {
                    gridsync_core::sync::SyncError::Unauthorized(c)
                    | gridsync_core::sync::SyncError::Server { code: c, .. }
                        if c == "invalid_code" || c == "invalid_device_name" =>
                    {
                        let field = if c == "invalid_code" { "code" } else { "device_name" };
                        ApiError::invalid(field, c, e.message_zh())
                    }
                    _ => e.into(),
                },
            )
        })
        .await
    }

    /// Who this phone is enrolled as, if it is.
    pub async fn enrollment(&self) -> Result<Option<EnrollmentInfo>, ApiError> {
        self.with_store(|store| Ok(store.enrollment()?.map(Into::into))).await
    }

    /// Save a new record owned by `grid` (the enrolled user's grid when
    /// `None`), authored by the enrolled user. Histories in `body` are
    /// ignored; append events instead.
    pub async fn create_record(&self, grid: Option<String>, body: RecordBody) -> Result<Record, ApiError> {
        self.with_store(move |store| {
            let author = Self::author(store)?;
            let grid = match grid {
                Some(g) => parse_grid("grid", &g)?,
                None => parse_grid("grid", &store.enrollment()?.map(|e| e.grid).unwrap_or_default())?,
            };
            let record = m::Record::new(grid, &author, now_ms(), body.into_core());
            store.create(&record)?;
            Ok(store.get(record.id)?.into())
        })
        .await
    }

    /// Replace a record's fields with `body`'s (same kind). Its history is
    /// kept as stored: append events instead.
    pub async fn update_record(&self, id: String, body: RecordBody) -> Result<Record, ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| {
            let mut new = body.into_core();
            let rec = store.edit(id, now_ms(), |r| {
                match (&r.body, &mut new) {
                    (m::RecordBody::Hazard(old), m::RecordBody::Hazard(h)) => h.events = old.events.clone(),
                    (m::RecordBody::Dispute(old), m::RecordBody::Dispute(d)) => d.events = old.events.clone(),
                    _ => {}
                }
                r.body = new;
            })?;
            Ok(rec.into())
        })
        .await
    }

    /// Read a record.
    pub async fn get_record(&self, id: String) -> Result<Record, ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| Ok(store.get(id)?.into())).await
    }

    /// Mark a record deleted (the deletion syncs).
    pub async fn delete_record(&self, id: String) -> Result<(), ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| Ok(store.delete(id, now_ms())?)).await
    }

    /// List records, newest first, by kind, status, grid, date range and
    /// name search, a page at a time.
    pub async fn list_records(&self, filter: ListFilter) -> Result<Vec<RecordSummary>, ApiError> {
        let core = st::ListFilter {
            kind: filter.kind.map(Into::into),
            status: filter.status,
            grid: filter.grid.as_deref().map(|g| parse_grid("grid", g)).transpose()?,
            from: filter.from_ms,
            until: filter.until_ms,
            search: filter.search,
            include_deleted: filter.include_deleted,
            limit: filter.limit,
            offset: filter.offset,
        };
        self.with_store(move |store| Ok(store.list(&core)?.into_iter().map(Into::into).collect())).await
    }

    /// Records on this phone (deleted ones not counted).
    pub async fn count_records(&self) -> Result<u64, ApiError> {
        self.with_store(|store| Ok(store.count()?)).await
    }

    /// Changes no server has acknowledged yet.
    pub async fn pending_changes(&self) -> Result<u64, ApiError> {
        self.with_store(|store| Ok(store.outbox_len()?)).await
    }

    /// Append a step to a dispute's history, as the enrolled user, after
    /// every event this phone has seen. The server checks the user may.
    pub async fn append_dispute_event(&self, id: String, action: DisputeAction) -> Result<Record, ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| {
            let by = Self::author(store)?;
            let now = now_ms();
            let mut wrong_kind = false;
            let rec = store.edit(id, now, |r| match &mut r.body {
                m::RecordBody::Dispute(d) => {
                    let e = next_event(&d.events, &by, now, action.into());
                    d.events.push(e);
                }
                _ => wrong_kind = true,
            })?;
            if wrong_kind {
                return Err(ApiError::invalid("id", "not_a_dispute", "该记录不是矛盾纠纷"));
            }
            Ok(rec.into())
        })
        .await
    }

    /// Append a step to a hazard's handling history, as the enrolled user.
    pub async fn append_hazard_event(&self, id: String, action: HazardAction) -> Result<Record, ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| {
            let by = Self::author(store)?;
            let now = now_ms();
            let mut wrong_kind = false;
            let rec = store.edit(id, now, |r| match &mut r.body {
                m::RecordBody::Hazard(h) => {
                    let e = next_event(&h.events, &by, now, action.into());
                    h.events.push(e);
                }
                _ => wrong_kind = true,
            })?;
            if wrong_kind {
                return Err(ApiError::invalid("id", "not_a_hazard", "该记录不是隐患"));
            }
            Ok(rec.into())
        })
        .await
    }

    /// Repair a record whose changes the server refused (its `rejection`
    /// says why): the refused steps are dropped, this phone's later steps
    /// on it are kept as new changes, and they go with the next sync.
    pub async fn repair_record(&self, id: String) -> Result<RepairStats, ApiError> {
        let id = parse_id(&id)?;
        self.with_store(move |store| Ok(store.repair(id, now_ms())?.into())).await
    }

    /// Sync with the enrolled server until nothing is left either way.
    /// `progress` hears after every round. A revoked device gets
    /// `NotAuthorized { wiped: true }` and an empty store.
    pub async fn sync(&self, progress: Arc<dyn SyncProgress>) -> Result<SyncStats, ApiError> {
        let http = self.http.clone();
        let handle = runtime()?.handle().clone();
        let log = |p: &Arc<dyn SyncProgress>, msg: String| {
            // The app's logger failing is no reason to stop a sync.
            let _ = p.on_log(msg);
        };
        log(&progress, "sync started".into());
        let listener = Arc::clone(&progress);
        let result = self
            .with_store(move |store| {
                let mut on_round = |r: &gridsync_core::sync::SyncReport| {
                    let _ = listener.on_progress(r.into());
                };
                let report = handle.block_on(http.sync(store, SyncOptions::default(), &mut on_round))?;
                Ok(SyncStats::from(&report))
            })
            .await;
        match &result {
            Ok(s) => {
                log(&progress, format!("sync done: sent {} records, received {}", s.records_sent, s.records_received))
            }
            Err(e) => log(&progress, format!("sync failed: {e}")),
        }
        result
    }

    /// Everything not yet acknowledged by a server, as a bundle file's
    /// bytes, for a phone with no network.
    pub async fn export_bundle(&self) -> Result<Vec<u8>, ApiError> {
        self.with_store(|store| Ok(store.export_bundle()?.encode()?)).await
    }

    /// Merge a bundle another device exported.
    pub async fn import_bundle(&self, bytes: Vec<u8>) -> Result<ImportStats, ApiError> {
        self.with_store(move |store| {
            let bundle = Bundle::decode(&bytes)
                .map_err(|_| ApiError::invalid("bundle", "malformed", "同步文件格式错误或已损坏"))?;
            Ok(store.import_bundle(&bundle)?.into())
        })
        .await
    }

    /// Check the store file's integrity.
    pub async fn integrity_ok(&self) -> Result<bool, ApiError> {
        self.with_store(|store| Ok(store.integrity_ok()?)).await
    }
}
