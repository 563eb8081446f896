//! A test bed: the demo county in a SQLite database, a real server process
//! over it, the database open beside it (the administrator's hand), and
//! phones enrolled with real codes.

use std::sync::Arc;

use gridsync_server::auth;
use gridsync_server::store::{ServerStore, WebSession};

use crate::device::Device;
use crate::http1::{Resp, http};
use crate::server::{Db, ServerProc, issue_code, seed_demo};

/// The demo county served by one server process.
pub struct Bed {
    /// The database's directory (removed with the bed).
    pub dir: tempfile::TempDir,
    /// The server.
    pub server: ServerProc,
    /// The database, open beside the server.
    pub admin: Arc<dyn ServerStore>,
}

impl Bed {
    /// Seed the demo county and start a server on it.
    pub fn start() -> Bed {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::Sqlite(dir.path().to_path_buf());
        let admin = db.open().expect("open the database");
        seed_demo(admin.as_ref()).expect("seed the demo county");
        let server = ServerProc::start(db).expect("start the server");
        Bed { dir, server, admin }
    }

    /// A fresh phone enrolled as `user`.
    pub async fn phone(&self, user: &str) -> Device {
        self.phone_at(&self.server.url(), user).await
    }

    /// A fresh phone enrolled as `user` through `url` (a proxy, say).
    pub async fn phone_at(&self, url: &str, user: &str) -> Device {
        let code = issue_code(self.admin.as_ref(), user).expect("issue a code");
        Device::enroll(url, &code).await.expect("enroll")
    }

    /// A dashboard session cookie of `user`, made in the store.
    pub fn session(&self, user: &str) -> String {
        web_session(self.admin.as_ref(), user).0
    }

    /// `GET path` on the server.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http("GET", &format!("{}{path}", self.server.url()), headers, b"")
    }
}

/// A signed-in dashboard session of `user`, made in the store: (cookie, csrf token).
pub fn web_session(admin: &dyn ServerStore, user: &str) -> (String, String) {
    let token = auth::new_token();
    let csrf = auth::new_token();
    let now = gridsync_server::clock::now_ms();
    admin
        .create_web_session(&WebSession {
            token_hash: auth::hash_secret(&token),
            user_id: user.into(),
            csrf: csrf.clone(),
            created_at: now,
            expires_at: now + 3_600_000,
        })
        .expect("create a web session");
    (format!("gs_session={token}"), csrf)
}
