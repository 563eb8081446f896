//! The account: the directory of names, signing out, re-keying, wiping.

use super::*;
use crate::protocol::DirectoryEntry;

/// `meta` key of the last user enrolled on this phone (kept after a
/// sign-out that keeps the records, so another user's enrollment knows
/// they are not theirs).
pub(super) const LAST_USER: &str = "last_user";

/// How long names are used before the directory is checked again.
pub const DIRECTORY_MAX_AGE_MS: i64 = 24 * 3_600_000;

/// The user whose records this phone holds: the enrolled one, or the last
/// one enrolled.
pub(super) fn previous_user(store: &Store) -> Result<Option<String>, ApiError> {
    if let Some(e) = store.enrollment()? {
        return Ok(Some(e.user_id));
    }
    Ok(store.meta(LAST_USER)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// An id with the name an app shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct NamedId {
    /// Grid path or user id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// For users: the role's machine name (empty for grid nodes).
    pub role: String,
    /// For users: the role's Chinese label (empty for grid nodes).
    pub role_label_zh: String,
    /// For users: their grid path (empty for grid nodes).
    pub grid: String,
}

/// The directory as the phone holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DirectoryInfo {
    /// Grid nodes in the user's scope and above it.
    pub grids: Vec<NamedId>,
    /// Users whose grid is in the user's scope or above it.
    pub users: Vec<NamedId>,
    /// When it was last checked with the server, ms (`None`: never).
    pub checked_at: Option<i64>,
}

fn named(e: DirectoryEntry) -> NamedId {
    let role_label_zh = e.role.parse::<crate::grid::Role>().map(|r| r.label_zh().to_owned()).unwrap_or_default();
    NamedId { id: e.id, name: e.name, role: e.role, role_label_zh, grid: e.grid }
}

impl Phone {
    /// The names of the grid nodes and users this phone knows (fetched
    /// with enrollment and checked once a day during sync).
    pub fn directory(&self) -> Result<DirectoryInfo, ApiError> {
        let store = self.store();
        Ok(DirectoryInfo {
            grids: store.directory("grid")?.into_iter().map(named).collect(),
            users: store.directory("user")?.into_iter().map(named).collect(),
            checked_at: store.directory_version()?.map(|(_, at)| at),
        })
    }

    /// Check the directory with the server if it is older than a day (or
    /// `force`). An unchanged directory costs one empty 304 answer.
    pub async fn refresh_directory(&self, force: bool) -> Result<(), ApiError> {
        let (enrollment, have) = {
            let store = self.store();
            let Some(e) = store.enrollment()? else { return Err(not_enrolled()) };
            (e, store.directory_version()?)
        };
        let now = now_ms();
        if !force && have.as_ref().is_some_and(|(_, at)| now - at < DIRECTORY_MAX_AGE_MS) {
            return Ok(());
        }
        match self.http.directory(&enrollment, have.as_ref().map(|(v, _)| v.as_str())).await? {
            Some(d) => self.store().put_directory(&d, now)?,
            None => self.store().touch_directory(now)?,
        }
        Ok(())
    }

    /// Sign out: the server stops accepting this device's token (the
    /// request is signed with the device's key), and the phone forgets it. With `wipe`, every record goes too; without, they
    /// stay for the same user's next sign-in (another user's enrollment
    /// removes them first). Refused with `Unsynced` while changes wait for
    /// a server: sync first, so nobody's work is lost by signing out.
    /// A server that cannot be reached does not stop the sign-out (the
    /// administrator can revoke the device from the dashboard).
    pub async fn sign_out(&self, wipe: bool) -> Result<(), ApiError> {
        let (enrollment, key) = {
            let mut store = self.store();
            let waiting = store.outbox_len()?;
            if waiting > 0 {
                return Err(ApiError::Unsynced {
                    count: waiting,
                    message_zh: format!("还有{waiting}条修改未同步，请先同步再退出登录"),
                });
            }
            let e = store.enrollment()?.ok_or_else(not_enrolled)?;
            let (_, key) = store.signer()?;
            (e, key)
        };
        // Signed with the device's key: the server takes a sign-out only
        // from the device itself, never from its token alone.
        let _ = self.http.sign_out(&enrollment, &key).await;
        if wipe {
            self.wipe_local_data()?;
        } else {
            self.store().clear_enrollment()?;
        }
        Ok(())
    }

    /// Remove every record, the enrollment and the directory: for a phone
    /// handed on or lost-and-found. Unsynced changes are first sealed into
    /// the rescued bundle ([`Phone::rescued_bundle`], see `Store::wipe`),
    /// never deleted unoffered. Cannot be undone; an app asks twice.
    pub fn wipe_local_data(&self) -> Result<(), ApiError> {
        self.store().wipe()?;
        self.notify([], ChangeSource::Wipe);
        Ok(())
    }

    /// Encrypt the store with `new_key` (32 bytes) from now on; the old key
    /// no longer opens it. The app stores the new key in the keystore
    /// after this returns.
    #[cfg(feature = "sqlcipher")]
    pub fn rekey(&self, new_key: &[u8]) -> Result<(), ApiError> {
        let key = key32(new_key)?;
        self.store().rekey(&key)?;
        Ok(())
    }
}
