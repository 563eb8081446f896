//! The phone API: everything an app does with the core, in one place, for
//! `gridsync-ffi` to expose to Kotlin and Swift and for the e2e test phones
//! to drive, so both run the same code.
//!
//! A [`Phone`] owns one store and the HTTP client of its enrolled server.
//! It decides what a field worker's action means before the store saves it:
//! who authors a record and which grid owns it, that an edit keeps a
//! record's history, what a new event's parents are, which steps the user
//! may take now (the rules the server applies, [`crate::rules`]), how a
//! history reads as a timeline with its conflicts, what the names behind
//! ids are, and the village leader's figures. The FFI converts nothing but
//! threads and callbacks.
//!
//! Threads: every method is blocking except [`Phone::enroll`] and
//! [`Phone::sync`], which wait on the network. The store sits behind a
//! mutex held only for the length of one store call, never across a
//! network wait, so records are saved while a slow sync runs.
//!
//! # Layout
//!
//! - this file: [`Phone`], opening, enrollment, change notification.
//! - `records`: creating, editing and reading records ([`RecordInput`], [`RecordView`]).
//! - `actions`: which steps the user may take on a record ([`ActionCheck`]).
//! - `timeline`: a history as the app shows it, conflicts and settling.
//! - `list`: lists by a stable cursor, with counts.
//! - `photos`: attaching photos offline, uploading them after the records, downloading on demand.
//! - `sync`: sync that can be cancelled and reports what changed.
//! - `account`: the directory of names, sign-out, re-keying, wiping.
//! - `figures`: the weekly summary and monthly figures, offline.
//! - `labels`: the Chinese labels of every code an app shows.
//! - `error`: [`ApiError`].

mod account;
mod actions;
mod error;
mod figures;
mod labels;
mod list;
mod photos;
mod records;
mod sync;
mod timeline;

pub use account::{DirectoryInfo, NamedId};
pub use actions::{ActionCheck, ActionKind};
pub use error::ApiError;
pub use labels::{Label, LabelGroup, labels};
pub use list::{RecordPage, RecordQuery};
pub use photos::{PHOTO_CHUNK, PhotoBacklog, PhotoUpload, PhotoView};
pub use records::{DisputeFields, HazardFields, RecordInput, RecordLine, RecordView, RefusedStepView, RelayBacklog};
pub use sync::{RejectedRecord, SyncStats};
pub use timeline::{ConflictView, StepAction, TimelineEntry};

use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::grid::GridPath;
use crate::store::Store;
use crate::transport::Enrollment;
use crate::transport::http::{CancelToken, HttpClient, RetryPolicy, lock};

/// Where a change came from, for [`ChangeListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ChangeSource {
    /// The app saved it on this phone.
    Local,
    /// A sync brought it.
    Sync,
    /// An imported bundle brought it.
    Import,
    /// A repair dropped refused steps.
    Repair,
    /// Every record was removed (sign-out with wipe, revocation, a wipe).
    Wipe,
}

/// Records that changed, for a UI to refresh without polling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordsChanged {
    /// Ids of the records (empty for [`ChangeSource::Wipe`]: all are gone).
    pub ids: Vec<String>,
    /// What changed them.
    pub source: ChangeSource,
}

/// Hears about changed records. Called on the thread that made the change,
/// after the store has committed it and released its lock (so the
/// listener may read the records straight away).
pub trait ChangeListener: Send + Sync {
    /// Records changed.
    fn records_changed(&self, change: RecordsChanged);
}

/// Who this phone is enrolled as (the device token stays inside).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EnrollmentInfo {
    /// Server base URL.
    pub server_url: String,
    /// Device id given by the server.
    pub device_id: String,
    /// User id.
    pub user_id: String,
    /// User's name.
    pub display_name: String,
    /// Role machine name (`grid_manager`, `village_leader`...).
    pub role: String,
    /// The role's Chinese label.
    pub role_label_zh: String,
    /// Grid path.
    pub grid: String,
    /// The grid's name, once the directory has it.
    pub grid_name: Option<String>,
}

/// The phone's Gridsync core: one store and the server it is enrolled with.
pub struct Phone {
    store: Mutex<Store>,
    http: HttpClient,
    listener: Mutex<Option<Arc<dyn ChangeListener>>>,
    /// One sync at a time; a second waits for the first.
    syncing: tokio::sync::Mutex<()>,
    /// The running sync's cancel token.
    cancel: Mutex<Option<CancelToken>>,
    /// Set to stop the running photo upload after its chunk in flight.
    photo_cancel: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone").finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parse a record id given by an app.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "bad_uuid", "记录编号格式错误"))
}

/// Parse a grid path given by an app, naming `field` if it is not one.
pub(crate) fn parse_grid(field: &str, grid: &str) -> Result<GridPath, ApiError> {
    GridPath::parse(grid).map_err(|e| match ApiError::from(e) {
        ApiError::InvalidInput { reason, message_zh, .. } => {
            ApiError::InvalidInput { field: field.into(), reason, message_zh }
        }
        other => other,
    })
}

impl Phone {
    /// A phone over `store`, talking HTTP with `http`.
    pub fn new(store: Store, http: HttpClient) -> Phone {
        Phone {
            store: Mutex::new(store),
            http,
            listener: Mutex::new(None),
            syncing: tokio::sync::Mutex::new(()),
            cancel: Mutex::new(None),
            photo_cancel: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Open (or create) the encrypted store at `path` with a 32-byte key
    /// from the platform keystore. A key of another length is
    /// `InvalidInput` on `key`; a key that does not open the file is
    /// `WrongKey`. Needs a tokio runtime (the HTTP client is built on the
    /// current one).
    #[cfg(feature = "sqlcipher")]
    pub fn open_encrypted(path: &str, key: &[u8], retry: RetryPolicy) -> Result<Phone, ApiError> {
        let key = key32(key)?;
        let store = Store::open_encrypted(path, &key)?;
        Ok(Phone::new(store, HttpClient::new(retry)?))
    }

    /// A phone with an in-memory store (tests, previews).
    pub fn open_in_memory(retry: RetryPolicy) -> Result<Phone, ApiError> {
        Ok(Phone::new(Store::open_in_memory()?, HttpClient::new(retry)?))
    }

    /// The store, locked. For tests and tools; an app goes through the
    /// methods here. Do not hold it across a network wait.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Use another HTTP client (another retry policy) from now on.
    pub fn set_http(&mut self, http: HttpClient) {
        self.http = http;
    }

    /// Hear about changed records from now on (`None` to stop).
    pub fn set_listener(&self, listener: Option<Arc<dyn ChangeListener>>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Tell the listener, if there is one. Call with the store unlocked.
    pub(crate) fn notify(&self, ids: impl IntoIterator<Item = Uuid>, source: ChangeSource) {
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(listener) = listener else { return };
        let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
        if ids.is_empty() && source != ChangeSource::Wipe {
            return;
        }
        listener.records_changed(RecordsChanged { ids, source });
    }

    /// Who this phone is enrolled as, if it is.
    pub fn enrollment(&self) -> Result<Option<EnrollmentInfo>, ApiError> {
        let store = self.store();
        let Some(e) = store.enrollment()? else { return Ok(None) };
        let grid_name = store.grid_name(&e.grid)?;
        Ok(Some(enrollment_info(e, grid_name)))
    }

    /// Trade a one-time enrollment code for this device's credentials,
    /// then fetch the directory of names. A refused code is `InvalidInput`
    /// on `code`; a server that cannot be reached is `Network` with its own
    /// message (nothing was enrolled). A phone holding another user's
    /// unsynced changes is `Unsynced` (sync them or wipe first); another
    /// user's synced records are removed before the new user's arrive.
    pub async fn enroll(&self, server_url: &str, code: &str, device_name: &str) -> Result<EnrollmentInfo, ApiError> {
        let (e, key) = match self.http.enroll(&self.store, server_url, code, device_name).await {
            Ok(e) => e,
            // Another user's device holds this phone's actor and changes
            // under it wait here: the phone is that user's, with work on it.
            Err(crate::sync::SyncError::Server { status: 409, code, .. }) if code == "actor_in_use" => {
                return Err(self.unsynced_of_previous_user()?.unwrap_or_else(|| {
                    ApiError::invalid(
                        "code",
                        "actor_in_use",
                        "本机的设备标识已被其他用户的设备使用，请联系管理员停用原设备后重新注册",
                    )
                }));
            }
            Err(e) => return Err(enroll_error(e)),
        };
        if let Err(refused) = self.take_over(&e) {
            // The new device must not stay enrolled on the server either.
            let _ = self.http.sign_out(&e, &key).await;
            return Err(refused);
        }
        let wiped = {
            let mut store = self.store();
            let wiped = account::previous_user(&store)?.is_some_and(|u| u != e.user_id) && store.count()? > 0;
            if wiped {
                store.wipe()?;
            }
            store.set_enrollment(&e)?;
            store.set_device_key(&key)?;
            store.set_meta(account::LAST_USER, e.user_id.as_bytes())?;
            store.transaction(|tx| tx.clear_cursors())?;
            wiped
        };
        if wiped {
            self.notify([], ChangeSource::Wipe);
        }
        // Names are a nicety: a failure here leaves them for the next sync.
        let _ = self.refresh_directory(true).await;
        let grid_name = self.store().grid_name(&e.grid)?;
        Ok(enrollment_info(e, grid_name))
    }

    /// Whether the user of `e` may take this phone over: another user's
    /// records go (they are not theirs to see), but never another user's
    /// changes no server has yet.
    fn take_over(&self, e: &Enrollment) -> Result<(), ApiError> {
        let previous = account::previous_user(&self.store())?;
        if previous.as_deref() == Some(e.user_id.as_str()) {
            return Ok(());
        }
        match self.unsynced_of_previous_user()? {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// `Unsynced` naming the previous user, if changes of theirs wait.
    fn unsynced_of_previous_user(&self) -> Result<Option<ApiError>, ApiError> {
        let store = self.store();
        let Some(previous) = account::previous_user(&store)? else { return Ok(None) };
        let waiting = store.outbox_len()?;
        if waiting == 0 {
            return Ok(None);
        }
        Ok(Some(ApiError::Unsynced {
            count: waiting,
            message_zh: format!(
                "本机还有上一位用户（{previous}）的{waiting}条修改未同步，请让其登录并同步后再注册新用户"
            ),
        }))
    }

    fn writer(&self) -> Result<crate::rules::Writer, ApiError> {
        self.store().writer()?.ok_or_else(not_enrolled)
    }
}

/// A key as the store takes it.
#[cfg(feature = "sqlcipher")]
pub(crate) fn key32(key: &[u8]) -> Result<[u8; 32], ApiError> {
    key.try_into().map_err(|_| ApiError::invalid("key", "bad_length", "密钥长度必须为32字节"))
}

pub(crate) fn not_enrolled() -> ApiError {
    ApiError::NotEnrolled { message_zh: "本机尚未注册，请输入管理员发放的注册码".into() }
}

fn enrollment_info(e: Enrollment, grid_name: Option<String>) -> EnrollmentInfo {
    let role_label_zh = e.role.parse::<crate::grid::Role>().map(|r| r.label_zh().to_owned()).unwrap_or_default();
    EnrollmentInfo {
        server_url: e.server_url,
        device_id: e.device_id,
        user_id: e.user_id,
        display_name: e.display_name,
        role: e.role,
        role_label_zh,
        grid: e.grid,
        grid_name,
    }
}

/// An enrollment's failure as the person typing the code should read it:
/// nothing about records being saved, since nothing was enrolled.
fn enroll_error(e: crate::sync::SyncError) -> ApiError {
    use crate::sync::SyncError;
    match &e {
        SyncError::Unauthorized(c) | SyncError::Server { code: c, .. }
            if c == "invalid_code" || c == "invalid_device_name" =>
        {
            let field = if c == "invalid_code" { "code" } else { "device_name" };
            let message_zh = if c == "invalid_code" {
                "注册码无效、已使用或已过期，请向管理员重新申请".to_owned()
            } else {
                e.message_zh()
            };
            ApiError::InvalidInput { field: field.into(), reason: c.clone(), message_zh }
        }
        SyncError::Network(detail) => ApiError::Network {
            detail: detail.clone(),
            message_zh: "无法连接服务器，注册未完成。请检查网络和服务器地址后重试".into(),
        },
        SyncError::Server { status, code, message_zh } => ApiError::Network {
            detail: format!("server answered {status}: {code}"),
            message_zh: format!("注册未完成：{message_zh}"),
        },
        _ => e.into(),
    }
}
