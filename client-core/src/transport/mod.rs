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
}

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

    /// Save the enrollment.
    pub fn set_enrollment(&mut self, e: &Enrollment) -> Result<()> {
        let bytes = serde_json::to_vec(e).map_err(|e| crate::CoreError::Document(e.to_string()))?;
        self.set_meta(ENROLLMENT_KEY, &bytes)
    }
}
