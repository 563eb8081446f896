//! The phone API's error: a few variants an app can act on, each carrying
//! the Chinese sentence to show. The core's detailed errors ([`CoreError`],
//! [`SyncError`]) stay inside; what an app would do differently decides the
//! variant (application-services' `example` component makes the same cut).
//!
//! Every field is named `message_zh` rather than `message`: Kotlin
//! exceptions already have a `message` property.

use crate::CoreError;
use crate::sync::SyncError;

/// What went wrong, sorted by what the app can do about it.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Error))]
pub enum ApiError {
    /// The phone is not enrolled: ask for an enrollment code.
    #[error("not enrolled: {message_zh}")]
    NotEnrolled {
        /// For the user.
        message_zh: String,
    },
    /// The server refused this device. When `wiped` is true the device was
    /// revoked and every local record has been deleted: go back to the
    /// enrollment screen.
    #[error("not authorized (wiped: {wiped}): {message_zh}")]
    NotAuthorized {
        /// Local data was wiped on the server's instruction.
        wiped: bool,
        /// For the user.
        message_zh: String,
    },
    /// A value was refused: show `message_zh` next to `field`
    /// (`summary`, `members[m1].id_number`, `code`...).
    #[error("invalid input `{field}` ({reason}): {message_zh}")]
    InvalidInput {
        /// Machine name of the (first) bad field.
        field: String,
        /// Stable reason code (`required`, `too_long`, `bad_uuid`...).
        reason: String,
        /// For the user; lists every bad field when there are several.
        message_zh: String,
    },
    /// The enrolled user may not take this step (the same rule the server
    /// applies; nothing was saved): show `message_zh`, do not offer the step.
    #[error("not allowed `{field}` ({reason}): {message_zh}")]
    NotAllowed {
        /// The field or part of the record concerned.
        field: String,
        /// `forbidden`, `out_of_scope` or `immutable`.
        reason: String,
        /// For the user.
        message_zh: String,
    },
    /// The server refused earlier changes of this record: show the reason
    /// and offer `repair_record`, which drops the refused step and keeps
    /// the rest; edits wait until then.
    #[error("record needs repair: {message_zh}")]
    NeedsRepair {
        /// For the user.
        message_zh: String,
    },
    /// The record does not exist on this phone.
    #[error("record {id} not found")]
    NotFound {
        /// The id asked for.
        id: String,
        /// For the user.
        message_zh: String,
    },
    /// The network or the server failed after retries; records are safe
    /// on the phone, try again later.
    #[error("network: {detail}")]
    Network {
        /// Technical detail, for logs.
        detail: String,
        /// For the user.
        message_zh: String,
    },
    /// The local store failed (disk full, corrupt file, an internal fault).
    #[error("storage: {detail}")]
    Storage {
        /// Technical detail, for logs.
        detail: String,
        /// For the user.
        message_zh: String,
    },
    /// The key does not open this store (or the file is not a store).
    #[error("wrong key: {message_zh}")]
    WrongKey {
        /// For the user.
        message_zh: String,
    },
    /// The sync was cancelled (`cancel_sync`); what it had finished is
    /// kept, the rest goes with the next sync.
    #[error("sync cancelled")]
    Cancelled {
        /// For the user.
        message_zh: String,
    },
    /// Changes made on this phone have not reached a server yet, so the
    /// step asked for (signing out and wiping, enrolling as someone else)
    /// would lose them: sync first, or wipe on purpose.
    #[error("{count} changes not synced: {message_zh}")]
    Unsynced {
        /// Changes waiting in the outbox.
        count: u64,
        /// For the user.
        message_zh: String,
    },
}

impl ApiError {
    /// A storage error from an internal fault (a panic caught at the edge,
    /// a poisoned lock, a runtime that would not start).
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Storage { detail: detail.into(), message_zh: "应用内部出错，请重启应用".into() }
    }

    /// An input error about one field.
    pub fn invalid(field: &str, reason: &str, message_zh: impl Into<String>) -> Self {
        ApiError::InvalidInput { field: field.into(), reason: reason.into(), message_zh: message_zh.into() }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message_zh = e.message_zh();
        match e {
            CoreError::Invalid(errs) => {
                let (field, reason) = errs.first().map(|f| (f.field.clone(), f.reason.clone())).unwrap_or_default();
                ApiError::InvalidInput { field, reason, message_zh }
            }
            CoreError::NotFound(id) => ApiError::NotFound { id, message_zh },
            CoreError::WrongKey => ApiError::WrongKey { message_zh },
            CoreError::NotAllowed { reason, field, .. } => ApiError::NotAllowed { field, reason, message_zh },
            CoreError::NeedsRepair { .. } => ApiError::NeedsRepair { message_zh },
            other => ApiError::Storage { detail: other.to_string(), message_zh },
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let message_zh = e.message_zh();
        match e {
            SyncError::NotEnrolled => ApiError::NotEnrolled { message_zh },
            SyncError::Revoked => ApiError::NotAuthorized { wiped: true, message_zh },
            SyncError::Unauthorized(_) => ApiError::NotAuthorized { wiped: false, message_zh },
            SyncError::Server { status: 401 | 403, .. } => ApiError::NotAuthorized { wiped: false, message_zh },
            SyncError::Server { status, code, .. } => {
                ApiError::Network { detail: format!("server answered {status}: {code}"), message_zh }
            }
            SyncError::Network(detail) => ApiError::Network { detail, message_zh },
            SyncError::Store(core) => core.into(),
            SyncError::Cancelled => ApiError::Cancelled { message_zh },
        }
    }
}

#[cfg(feature = "uniffi")]
impl From<uniffi::UnexpectedUniFFICallbackError> for ApiError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ApiError::internal(format!("callback failed: {}", e.reason))
    }
}
