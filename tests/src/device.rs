//! A simulated phone: the real phone API of the client core
//! ([`gridsync_core::phone::Phone`], what the app runs through the FFI),
//! on an in-memory store, with the real HTTP transport.

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Duration;

use anyhow::Result;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{Record, RecordKind};
use gridsync_core::phone::Phone;
use gridsync_core::store::{ListFilter, Store};
use gridsync_core::sync::{SyncError, SyncOptions, SyncReport};
use gridsync_core::transport::http::{HttpClient, RetryPolicy};
use uuid::Uuid;

/// One phone.
pub struct Device {
    /// The phone API, as the app holds it.
    pub phone: Phone,
    /// User id.
    pub user: String,
    /// User's grid.
    pub grid: GridPath,
    /// Sync options.
    pub opts: SyncOptions,
}

/// Retry policy for tests: quick, few attempts, no connection reuse (so a
/// proxy's per-connection faults hit single requests).
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        reuse_connections: false,
    }
}

impl Device {
    /// Enroll a fresh in-memory phone with `server_url` using `code`.
    pub async fn enroll(server_url: &str, code: &str) -> Result<Device> {
        Self::enroll_with(server_url, code, test_retry()).await
    }

    /// Enroll with a given retry policy.
    pub async fn enroll_with(server_url: &str, code: &str, retry: RetryPolicy) -> Result<Device> {
        let phone = Phone::open_in_memory(retry)?;
        let e = phone.enroll(server_url, code, "测试手机").await?;
        Ok(Device { phone, user: e.user_id, grid: GridPath::parse(&e.grid)?, opts: SyncOptions::default() })
    }

    /// The phone's store, locked (do not hold it across an await).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.phone.store()
    }

    /// Use another retry policy from now on.
    pub fn set_retry(&mut self, retry: RetryPolicy) -> Result<()> {
        self.phone.set_http(HttpClient::new(retry)?);
        Ok(())
    }

    /// Point the phone at another node of the same deployment.
    pub fn set_server(&mut self, url: &str) -> Result<()> {
        let mut store = self.store();
        let mut e = store.enrollment()?.ok_or_else(|| anyhow::anyhow!("not enrolled"))?;
        e.server_url = url.to_owned();
        store.set_enrollment(&e)?;
        Ok(())
    }

    /// Sync once.
    pub async fn sync(&mut self) -> Result<SyncReport, SyncError> {
        self.phone.sync(self.opts.clone(), &mut |_| {}).await
    }

    /// Save a new record made by this phone's user.
    pub fn create(&mut self, rec: &Record) -> Result<()> {
        self.store().create(rec)?;
        Ok(())
    }

    /// Every record the phone holds (including deleted), as JSON by id.
    pub fn records(&self) -> Result<BTreeMap<Uuid, serde_json::Value>> {
        let store = self.store();
        let mut out = BTreeMap::new();
        let mut filter = ListFilter { include_deleted: true, limit: Some(10_000), ..Default::default() };
        loop {
            let page = store.list(&filter)?;
            let Some(last) = page.last() else { return Ok(out) };
            filter.after = Some((last.occurred_at, last.id));
            for s in page {
                out.insert(s.id, store.load_doc(s.id)?.to_json()?);
            }
        }
    }

    /// Ids of the records of one kind the phone holds.
    pub fn ids(&self, kind: RecordKind) -> Result<Vec<Uuid>> {
        let mut v: Vec<Uuid> = self
            .store()
            .list(&ListFilter { kind: Some(kind), include_deleted: true, limit: Some(10_000), ..Default::default() })?
            .into_iter()
            .map(|s| s.id)
            .collect();
        v.sort();
        Ok(v)
    }
}

/// A bare HTTP client, for sending exactly the bytes a test wants.
pub struct RawClient(reqwest::Client);

impl Default for RawClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RawClient {
    /// A client without connection reuse.
    pub fn new() -> Self {
        RawClient(reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap_or_default())
    }

    /// GET a URL's body as text (error on non-200).
    pub async fn get_text(&self, url: &str) -> Result<String> {
        let resp = self.0.get(url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.is_success(), "status {status}: {text}");
        Ok(text)
    }

    /// POST a sync body and return the response body (error on non-200).
    pub async fn post_sync(&self, base: &str, token: &str, body: &[u8]) -> Result<Vec<u8>> {
        let resp = self
            .0
            .post(format!("{base}/v1/sync"))
            .header("content-type", gridsync_core::protocol::CONTENT_TYPE)
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_vec())
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?.to_vec();
        anyhow::ensure!(status.is_success(), "status {status}: {}", String::from_utf8_lossy(&bytes));
        Ok(bytes)
    }
}
