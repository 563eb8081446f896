//! The core's error type: one enum, every variant documented, each able to
//! say in Chinese what a field worker should do about it.

use std::fmt;

/// Why a field value was refused. The `field` is the machine name of the
/// field (`"summary"`, `"members[3].id_number"`), `reason` a stable code and
/// `message_zh` the sentence shown to a field worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Machine name of the field, with a path for nested values.
    pub field: String,
    /// Stable machine-readable reason code, such as `required` or `too_long`.
    pub reason: String,
    /// What to tell the user, in Chinese.
    pub message_zh: String,
}

impl FieldError {
    /// A field error with the given field, reason code and Chinese message.
    pub fn new(field: impl Into<String>, reason: &str, message_zh: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.to_owned(), message_zh: message_zh.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` {}: {}", self.field, self.reason, self.message_zh)
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A record or value failed validation; the list names each bad field.
    #[error("invalid input: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The record asked for does not exist in this store.
    #[error("record {0} not found")]
    NotFound(String),
    /// A stored or received Automerge document or change could not be read.
    #[error("corrupt or unreadable document: {0}")]
    Document(String),
    /// A sync message could not be decoded (truncated, wrong version, too large).
    #[error("bad sync message: {0}")]
    Protocol(String),
    /// The local database failed.
    #[cfg(feature = "store")]
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// The local database file was written by a newer version of Gridsync.
    #[error("store schema version {found} is newer than this app supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An encrypted store could not be opened with the key given (or the
    /// file is not a Gridsync store at all).
    #[error("wrong key for the encrypted store, or not a store")]
    WrongKey,
    /// The enrolled user may not take this step (the same rule the server
    /// applies: [`crate::rules`]); nothing was saved.
    #[error("not allowed ({reason}, field `{field}`): {message_zh}")]
    NotAllowed {
        /// Machine-readable reason (`forbidden`, `out_of_scope`, `immutable`).
        reason: String,
        /// The field or part of the record concerned.
        field: String,
        /// Why, in Chinese.
        message_zh: String,
    },
    /// The server refused earlier changes of this record; it must be
    /// repaired (`Store::repair`) before it is edited again, or the new
    /// edit would be refused with them.
    #[error("record has refused changes; repair it first: {message_zh}")]
    NeedsRepair {
        /// The server's reason, in Chinese.
        message_zh: String,
    },
}

impl CoreError {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, reason: &str, message_zh: impl Into<String>) -> Self {
        CoreError::Invalid(vec![FieldError::new(field, reason, message_zh)])
    }

    /// The message to show a field worker, in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            CoreError::Invalid(errs) => errs.iter().map(|e| e.message_zh.clone()).collect::<Vec<_>>().join("；"),
            CoreError::NotFound(_) => "找不到该记录".into(),
            CoreError::Document(_) => "记录数据已损坏，无法读取".into(),
            CoreError::Protocol(_) => "同步数据格式错误".into(),
            #[cfg(feature = "store")]
            CoreError::Storage(_) => "本地存储出错".into(),
            CoreError::SchemaTooNew { .. } => "本地数据由更新版本的应用写入，请升级应用".into(),
            CoreError::Io(_) => "文件读写出错".into(),
            CoreError::WrongKey => "无法解密本机数据：密钥不正确".into(),
            CoreError::NotAllowed { message_zh, .. } => message_zh.clone(),
            CoreError::NeedsRepair { message_zh } => {
                format!("服务器拒绝了该记录的修改（{message_zh}），请先撤销被拒绝的修改再继续编辑")
            }
        }
    }
}

impl From<crate::rules::Refusal> for CoreError {
    fn from(r: crate::rules::Refusal) -> Self {
        CoreError::NotAllowed { reason: r.reason.as_str().to_owned(), field: r.field, message_zh: r.message_zh }
    }
}

impl From<automerge::AutomergeError> for CoreError {
    fn from(e: automerge::AutomergeError) -> Self {
        CoreError::Document(e.to_string())
    }
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
