//! Gridsync's core for Android and iOS, through UniFFI.
//!
//! A thin layer over [`gridsync_core::phone::Phone`], which decides
//! everything (who authors a record, what an edit keeps, which steps are
//! allowed, what changed in a sync). The types an app sees are the core's
//! own, derived with its `uniffi` feature (Kotlin package `org.gridsync.core`);
//! this crate adds only [`GridCore`] (package `org.gridsync.ffi`), its
//! threads, and the app's callbacks.
//!
//! Threads: every method that touches the store or the network is `async`.
//! The work runs on a tokio runtime this crate owns (store calls on its
//! blocking pool), so the caller's thread, the app's UI thread included,
//! only awaits. Kotlin sees `suspend fun`, Swift `async`, Python coroutines.
//! The store is locked only for each store call, never while a sync waits
//! on the network, so records are saved during a slow sync.
//!
//! Panics: none are expected; should one happen in the core it is caught
//! where the task is joined and becomes `ApiError::Storage`, so it never
//! unwinds into the app.

use std::sync::{Arc, OnceLock};

use gridsync_core::model::{DisputeAction, HazardAction};
use gridsync_core::phone::{
    ApiError, ChangeListener, DirectoryInfo, EnrollmentInfo, Label, Phone, PhotoBacklog, PhotoUpload, RecordInput,
    RecordPage, RecordQuery, RecordView, RecordsChanged, RefusedStepView, RelayBacklog, SyncStats,
};
use gridsync_core::protocol::ImportReport;
use gridsync_core::reports::{MonthlyFigures, WeeklySummary};
use gridsync_core::store::RepairReport;
use gridsync_core::sync::SyncOptions;
use gridsync_core::transport::http::RetryPolicy;

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

/// What an app's callback threw. It is logged away: a failing callback
/// never stops a sync or fails a change. (A type of this crate's own: the
/// Kotlin bindings cannot throw another package's error from a callback.)
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed.
    #[error("callback failed: {detail}")]
    Failed {
        /// What it said (not `message`: Kotlin exceptions have one).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed { detail: e.reason }
    }
}

/// Receives a running sync's progress and log lines. Implemented by the
/// app; called from a background thread. An error returned (or thrown)
/// here is logged away and does not stop the sync.
#[uniffi::export(with_foreign)]
pub trait SyncProgress: Send + Sync {
    /// Called after every round trip with the totals so far.
    fn on_progress(&self, stats: SyncStats) -> Result<(), CallbackError>;
    /// A line worth logging (start, end, failure), in English, with no
    /// record content.
    fn on_log(&self, message: String) -> Result<(), CallbackError>;
}

/// Hears which records changed (saved here, synced, imported, repaired,
/// wiped), so a UI refreshes without polling. Implemented by the app;
/// called from a background thread after the change is committed.
#[uniffi::export(with_foreign)]
pub trait RecordsListener: Send + Sync {
    /// Records changed.
    fn records_changed(&self, change: RecordsChanged) -> Result<(), CallbackError>;
}

/// The app's listener as the core's.
struct Listener(Arc<dyn RecordsListener>);

impl ChangeListener for Listener {
    fn records_changed(&self, change: RecordsChanged) {
        // The app's listener failing is no reason to fail the change.
        let _ = self.0.records_changed(change);
    }
}

/// Every code's Chinese label (kinds, statuses, levels, categories, steps,
/// roles, refusal reasons), for an app to show what the dashboard shows.
#[uniffi::export]
pub fn labels() -> Vec<Label> {
    gridsync_core::phone::labels()
}

/// The phone's Gridsync core: one encrypted record store and the server it
/// is enrolled with. Create one per store file and share it; every method
/// is safe to call from any thread.
#[derive(uniffi::Object)]
pub struct GridCore {
    phone: Arc<Phone>,
}

impl std::fmt::Debug for GridCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridCore").finish_non_exhaustive()
    }
}

impl GridCore {
    /// Run `work` with the phone on the runtime's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Phone) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let phone = Arc::clone(&self.phone);
        let task = runtime()?.spawn_blocking(move || work(&phone));
        task.await.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    }

    /// Run `work` (which waits on the network) on the runtime.
    async fn on_runtime<T, F>(&self, work: impl FnOnce(Arc<Phone>) -> F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let task = runtime()?.spawn(work(Arc::clone(&self.phone)));
        task.await.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    }
}

/// Stops the photo upload when the app stops waiting for it.
struct CancelUploadOnDrop(Arc<Phone>, bool);

impl Drop for CancelUploadOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancel_photo_upload();
        }
    }
}

/// Cancels the sync when the app stops waiting for it (a Kotlin coroutine
/// cancelled, a Swift task dropped).
struct CancelOnDrop(Arc<Phone>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancel_sync();
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
        let rt = runtime()?;
        // reqwest's client is built inside the runtime it will run on.
        let _guard = rt.enter();
        let phone = Phone::open_encrypted(&path, &key, RetryPolicy::default())?;
        Ok(Arc::new(GridCore { phone: Arc::new(phone) }))
    }

    /// Hear which records change from now on (`None` to stop).
    pub fn set_listener(&self, listener: Option<Arc<dyn RecordsListener>>) {
        self.phone.set_listener(listener.map(|l| Arc::new(Listener(l)) as Arc<dyn ChangeListener>));
    }

    /// Trade a one-time enrollment code for this device's credentials. A
    /// refused code is `InvalidInput` on field `code`; an unreachable server
    /// is `Network` (nothing was enrolled).
    pub async fn enroll(
        &self,
        server_url: String,
        code: String,
        device_name: String,
    ) -> Result<EnrollmentInfo, ApiError> {
        self.on_runtime(|p| async move { p.enroll(&server_url, &code, &device_name).await }).await
    }

    /// Who this phone is enrolled as, if it is.
    pub async fn enrollment(&self) -> Result<Option<EnrollmentInfo>, ApiError> {
        self.blocking(|p| p.enrollment()).await
    }

    /// Save a new record owned by `grid` (the enrolled user's grid when
    /// `None`), authored by the enrolled user.
    pub async fn create_record(&self, grid: Option<String>, input: RecordInput) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.create_record(grid.as_deref(), input)).await
    }

    /// Replace a record's fields with `input`'s (the same kind); its
    /// history stays as it is.
    pub async fn update_record(&self, id: String, input: RecordInput) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.update_record(&id, input)).await
    }

    /// Read a record, with its timeline, conflicts and allowed steps.
    pub async fn get_record(&self, id: String) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.get_record(&id)).await
    }

    /// Mark a record deleted (the deletion syncs).
    pub async fn delete_record(&self, id: String) -> Result<(), ApiError> {
        self.blocking(move |p| p.delete_record(&id)).await
    }

    /// One page of records, newest first; pass the page's `next` as the
    /// query's `after` for the following one.
    pub async fn list_records(&self, query: RecordQuery) -> Result<RecordPage, ApiError> {
        self.blocking(move |p| p.list_records(&query)).await
    }

    /// How many records match `query`.
    pub async fn count_matching(&self, query: RecordQuery) -> Result<u64, ApiError> {
        self.blocking(move |p| p.count_matching(&query)).await
    }

    /// Records on this phone (deleted ones not counted).
    pub async fn count_records(&self) -> Result<u64, ApiError> {
        self.blocking(|p| p.count_records()).await
    }

    /// Changes no server has acknowledged yet.
    pub async fn pending_changes(&self) -> Result<u64, ApiError> {
        self.blocking(|p| p.pending_changes()).await
    }

    /// Append a step to a dispute's history, as the enrolled user, after
    /// every step this phone has seen.
    pub async fn append_dispute_event(&self, id: String, action: DisputeAction) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.append_dispute_event(&id, action)).await
    }

    /// Append a step to a hazard's handling history, as the enrolled user.
    pub async fn append_hazard_event(&self, id: String, action: HazardAction) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.append_hazard_event(&id, action)).await
    }

    /// Settle a dispute's conflict by keeping event `keep` (one side of a
    /// conflict in the record's `conflicts`), saying why in `note`.
    pub async fn settle_conflict(&self, id: String, keep: String, note: String) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.settle_conflict(&id, &keep, &note)).await
    }

    /// Steps of this phone's the server refused, kept aside when their
    /// record was repaired, until the user dismisses each.
    pub async fn refused_steps(&self) -> Result<Vec<RefusedStepView>, ApiError> {
        self.blocking(move |p| p.refused_steps()).await
    }

    /// The user has seen refused step `hash` of record `id` and lets it go.
    pub async fn dismiss_refused_step(&self, id: String, hash: String) -> Result<bool, ApiError> {
        self.blocking(move |p| p.dismiss_refused_step(&id, &hash)).await
    }

    /// Repair a record whose changes the server refused (its `rejection`
    /// says why): the refused steps are taken out and kept aside
    /// (`refused_steps`), this phone's later steps on it are kept as new
    /// changes, and they go with the next sync.
    pub async fn repair_record(&self, id: String) -> Result<RepairReport, ApiError> {
        self.blocking(move |p| p.repair_record(&id)).await
    }

    /// Sync with the enrolled server until nothing is left either way.
    /// `progress` hears after every round. A revoked device gets
    /// `NotAuthorized { wiped: true }` and an empty store; `cancel_sync`
    /// (or cancelling the awaiting coroutine) ends it with `Cancelled`.
    pub async fn sync(&self, progress: Arc<dyn SyncProgress>) -> Result<SyncStats, ApiError> {
        let mut guard = CancelOnDrop(Arc::clone(&self.phone), false);
        let result = self
            .on_runtime(move |phone| async move {
                let _ = progress.on_log("sync started".into());
                let listener = Arc::clone(&progress);
                let mut on_round = move |r: &gridsync_core::sync::SyncReport| {
                    // The app's callback failing is no reason to stop a sync.
                    let _ = listener.on_progress(r.into());
                };
                let result = phone.sync(SyncOptions::default(), &mut on_round).await;
                let _ = progress.on_log(match &result {
                    Ok(r) => format!("sync done: sent {} records, received {}", r.records_sent, r.records_received),
                    Err(e) => format!("sync failed: {e}"),
                });
                Ok(SyncStats::from(&result?))
            })
            .await;
        guard.1 = true;
        result
    }

    /// Stop the running sync at its next safe point; what it finished is
    /// kept. Nothing happens when no sync runs.
    pub fn cancel_sync(&self) {
        self.phone.cancel_sync();
    }

    /// The names of the grid nodes and users in this phone's scope.
    pub async fn directory(&self) -> Result<DirectoryInfo, ApiError> {
        self.blocking(|p| p.directory()).await
    }

    /// A grid's week from the records on this phone (`week_start`:
    /// `YYYY-MM-DD`; `grid`: the user's scope when `None`).
    pub async fn weekly_summary(&self, grid: Option<String>, week_start: String) -> Result<WeeklySummary, ApiError> {
        self.blocking(move |p| p.weekly_summary(grid.as_deref(), &week_start)).await
    }

    /// Each group's week, as the village weekly meeting notes them.
    pub async fn weekly_summaries_by_group(
        &self,
        grid: Option<String>,
        week_start: String,
    ) -> Result<Vec<WeeklySummary>, ApiError> {
        self.blocking(move |p| p.weekly_summaries_by_group(grid.as_deref(), &week_start)).await
    }

    /// A month's figures (`YYYY-MM`) from the records on this phone.
    pub async fn monthly_figures(&self, grid: Option<String>, month: String) -> Result<MonthlyFigures, ApiError> {
        self.blocking(move |p| p.monthly_figures(grid.as_deref(), &month)).await
    }

    /// Sign out: the server stops accepting this device (the request is
    /// signed with the device's key), and the phone forgets it; with `wipe`
    /// every record goes too. `Unsynced` while changes wait for a server
    /// (sync first).
    pub async fn sign_out(&self, wipe: bool) -> Result<(), ApiError> {
        self.on_runtime(move |p| async move { p.sign_out(wipe).await }).await
    }

    /// Remove every record and the enrollment. Unsynced changes are first
    /// sealed into the rescued bundle (`rescued_bundle`), never deleted
    /// unoffered. Cannot be undone: ask the user twice.
    pub async fn wipe_local_data(&self) -> Result<(), ApiError> {
        self.blocking(|p| p.wipe_local_data()).await
    }

    /// Encrypt the store with `new_key` (32 bytes) from now on; keep the new
    /// key in the keystore once this returns.
    pub async fn rekey(&self, new_key: Vec<u8>) -> Result<(), ApiError> {
        self.blocking(move |p| p.rekey(&new_key)).await
    }

    /// Everything not yet acknowledged by a server, as a bundle file's
    /// bytes, for a phone with no network.
    pub async fn export_bundle(&self) -> Result<Vec<u8>, ApiError> {
        self.blocking(|p| p.export_bundle()).await
    }

    /// Merge a bundle another device exported.
    pub async fn import_bundle(&self, bytes: Vec<u8>) -> Result<ImportReport, ApiError> {
        self.blocking(move |p| p.import_bundle(&bytes)).await
    }

    /// Everything not yet acknowledged, signed and sealed to the server's
    /// key, for another phone (the village supervisor's) to carry to the
    /// server without being able to read it. Needs one sync first, to learn
    /// the server's key (`InvalidInput` on `server_key` before).
    pub async fn export_relay_bundle(&self) -> Result<Vec<u8>, ApiError> {
        self.blocking(|p| p.export_relay_bundle()).await
    }

    /// The unsynced work the last wipe saved (a revoked phone, a sign-out
    /// with wipe), to offer the user: a sealed relay bundle a colleague's
    /// phone carries (`carry_relay_bundle`), or a plain signed bundle for
    /// the township office when the phone never learnt the server's key.
    /// This phone also hands a sealed one over itself once enrolled again.
    /// `None`: nothing unsynced was ever wiped.
    pub async fn rescued_bundle(&self) -> Result<Option<Vec<u8>>, ApiError> {
        self.blocking(|p| p.rescued_bundle()).await
    }

    /// Forget the rescued bundle, once exported or handed on.
    pub async fn forget_rescued_bundle(&self) -> Result<(), ApiError> {
        self.blocking(|p| p.forget_rescued_bundle()).await
    }

    /// Carry another device's relay bundle to the server at the next sync,
    /// where it is judged as its maker's. False if already carried;
    /// `InvalidInput` on `bundle` if the bytes are not a relay bundle.
    pub async fn carry_relay_bundle(&self, bytes: Vec<u8>) -> Result<bool, ApiError> {
        self.blocking(move |p| p.carry_relay_bundle(&bytes)).await
    }

    /// Relay bundles carried for others and not yet handed to the server.
    pub async fn relay_backlog(&self) -> Result<RelayBacklog, ApiError> {
        self.blocking(|p| p.relay_backlog()).await
    }

    /// Check the store file's integrity.
    pub async fn integrity_ok(&self) -> Result<bool, ApiError> {
        self.blocking(|p| p.integrity_ok()).await
    }

    /// Attach a photo (JPEG, PNG or HEIC bytes as the camera gave them, at
    /// most 8 MB) and its thumbnail (at most 64 KB, the app scales it) to a
    /// hazard, visit or dispute; `event` names the handling step or dispute
    /// event it shows. Works offline. A sensitive record's photo loses its
    /// location metadata first (HEIC is then refused: `InvalidInput` on
    /// `photo`, reason `cannot_strip`).
    pub async fn attach_photo(
        &self,
        id: String,
        photo: Vec<u8>,
        thumbnail: Option<Vec<u8>>,
        event: Option<String>,
    ) -> Result<RecordView, ApiError> {
        self.blocking(move |p| p.attach_photo(&id, photo, thumbnail, event)).await
    }

    /// Send waiting photos whose records the server holds (run it after
    /// `sync`, e.g. from a background job on Wi-Fi), until done or
    /// `max_bytes` went up (0: no budget). Resumes where the last run
    /// stopped, to the byte.
    /// `cancel_photo_upload` (or cancelling the awaiting coroutine) stops it
    /// after the chunk in flight with `Cancelled`.
    pub async fn upload_photos(&self, max_bytes: u64) -> Result<PhotoUpload, ApiError> {
        let mut guard = CancelUploadOnDrop(Arc::clone(&self.phone), false);
        let result = self.on_runtime(move |p| async move { p.upload_photos(max_bytes).await }).await;
        guard.1 = true;
        result
    }

    /// Stop the running photo upload after its chunk in flight; every byte
    /// the server confirmed is kept, and the next run resumes there.
    pub fn cancel_photo_upload(&self) {
        self.phone.cancel_photo_upload();
    }

    /// A photo's bytes: from this phone, or downloaded (and kept) when
    /// another user took it.
    pub async fn fetch_photo(&self, id: String, hash: String) -> Result<Vec<u8>, ApiError> {
        self.on_runtime(move |p| async move { p.fetch_photo(&id, &hash).await }).await
    }

    /// Photos not yet sent in full, and their bytes.
    pub async fn photo_backlog(&self) -> Result<PhotoBacklog, ApiError> {
        self.blocking(|p| p.photo_backlog()).await
    }
}
