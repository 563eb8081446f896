//! Transports that run the sync engine: HTTP to a server
//! ([`http`], feature `http`), and a file bundle for places with no network
//! at all ([`bundle`]).

pub mod bundle;
#[cfg(feature = "http")]
pub mod http;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::Store;

/// What the phone keeps after enrolling with a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Server base URL (`https://gridsync.example`).
    pub server_url: String,
    /// Device id the server gave.
    pub device_id: String,
    /// Bearer token.
    pub token: String,
    /// User id.
    pub user_id: String,
    /// User's name.
    pub display_name: String,
    /// Role machine name.
    pub role: String,
    /// Grid path.
    pub grid: String,
    /// The server's relay public key (X25519, hex); empty until known
    /// (enrollments from before relay learn it at their next sync).
    #[serde(default)]
    pub server_key: String,
}

impl Enrollment {
    /// The device id as a UUID (what signatures cover).
    pub fn device_uuid(&self) -> Result<uuid::Uuid> {
        uuid::Uuid::parse_str(&self.device_id)
            .map_err(|_| crate::CoreError::invalid("device_id", "malformed", "设备编号格式错误，请重新注册"))
    }
}

const DEVICE_KEY: &str = "device_key";

const ENROLLMENT_KEY: &str = "enrollment";

/// Name under which the cursor with the enrolled server is kept. One name,
/// not the node's URL: several stateless nodes of one deployment share one
/// feed, and enrolling anew clears the cursor.
pub const CURSOR_KEY: &str = "enrolled";

impl Store {
    /// The saved enrollment, if the phone is enrolled.
    pub fn enrollment(&self) -> Result<Option<Enrollment>> {
        Ok(self.meta(ENROLLMENT_KEY)?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The device's signing key, made now if it has none. It is kept in
    /// the store's meta table, encrypted with the rest of the file when the
    /// store is (`Store::open_encrypted`); enrolling again, signing out and
    /// wiping forget it.
    pub fn device_key(&mut self) -> Result<crate::signing::DeviceKey> {
        if let Some(k) = self.existing_device_key()? {
            return Ok(k);
        }
        let key = crate::signing::DeviceKey::generate()?;
        self.set_meta(DEVICE_KEY, &key.secret())?;
        Ok(key)
    }

    /// Keep `key` as the device's signing key (the one just registered).
    pub fn set_device_key(&mut self, key: &crate::signing::DeviceKey) -> Result<()> {
        self.set_meta(DEVICE_KEY, &key.secret())
    }

    /// The device's signing key, if it has one.
    pub fn existing_device_key(&self) -> Result<Option<crate::signing::DeviceKey>> {
        Ok(self
            .meta(DEVICE_KEY)?
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .map(|s| crate::signing::DeviceKey::from_secret(&s)))
    }

    /// Forget the signing key (a new enrollment makes a new one).
    pub fn forget_device_key(&mut self) -> Result<()> {
        self.delete_meta(DEVICE_KEY)
    }

    /// The enrolled device's id and signing key, for signing what it sends.
    pub fn signer(&mut self) -> Result<(uuid::Uuid, crate::signing::DeviceKey)> {
        let e = self.enrollment()?.ok_or_else(|| {
            crate::CoreError::invalid("enrollment", "not_enrolled", "本机尚未注册，不能同步或导出同步文件")
        })?;
        Ok((e.device_uuid()?, self.device_key()?))
    }

    /// Save the enrollment.
    pub fn set_enrollment(&mut self, e: &Enrollment) -> Result<()> {
        let bytes = serde_json::to_vec(e).map_err(|e| crate::CoreError::Document(e.to_string()))?;
        self.set_meta(ENROLLMENT_KEY, &bytes)
    }
}
