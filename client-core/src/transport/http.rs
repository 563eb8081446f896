//! HTTP transport: reqwest over rustls. Timeouts on every request, retries
//! with jittered exponential backoff on network failures and 5xx answers
//! (every sync request is safe to repeat), the device token, and the
//! server's wipe instruction honoured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};

use crate::protocol::Directory;
use crate::protocol::{
    CONTENT_TYPE, DeviceKeyRequest, DeviceKeyResponse, EnrollRequest, EnrollResponse, ErrorBody, ProblemReport,
    RelayReport, SetAsideReport,
};
use crate::signing::DeviceKey;
use crate::store::Store;
use crate::sync::{SyncError, SyncOptions, SyncReport, SyncSession, backoff};
use crate::transport::Enrollment;

/// Lock the store. A poisoned lock means a panic in the middle of a store
/// call; SQLite rolled that call's transaction back, so the store is whole
/// and is used on.
pub fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stops a running sync at its next safe point: before the next request,
/// or while waiting for an answer or a retry (the answer is then never
/// applied, so the store is exactly as after the last finished round; what
/// the server stored meanwhile is acknowledged by the next sync).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    wake: tokio::sync::Notify,
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel: the sync holding this token stops at its next safe point.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.wake.notify_waiters();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    async fn cancelled(&self) {
        loop {
            let woken = self.0.wake.notified();
            tokio::pin!(woken);
            // Registered before the check, so a cancel in between wakes it.
            woken.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            woken.await;
        }
    }

    /// `work`, unless the token is cancelled first.
    async fn unless_cancelled<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, SyncError> {
        tokio::select! {
            biased;
            () = self.cancelled() => Err(SyncError::Cancelled),
            out = work => Ok(out),
        }
    }
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request before giving up (the session can be run again
    /// later and resumes where it stopped).
    pub attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
    /// Timeout of one HTTP exchange.
    pub timeout: Duration,
    /// Timeout for connecting.
    pub connect_timeout: Duration,
    /// Keep connections open between requests (off in fault tests, so a
    /// proxy's per-connection faults hit single requests).
    pub reuse_connections: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(15),
            reuse_connections: true,
        }
    }
}

/// How long the client keeps an idle connection for its next request: a
/// second less than the server keeps it ([`crate::protocol::SERVER_KEEP_ALIVE`]),
/// so the phone never sends a request down a connection the server is
/// closing at that moment (the request then fails, and is sent again).
/// Consecutive requests of one sync are back to back; after a longer pause
/// the server would have closed the connection anyway.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(crate::protocol::SERVER_KEEP_ALIVE.as_secs() - 1);

/// A client for one server.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    retry: RetryPolicy,
}

fn install_crypto() {
    // Only the first call installs; later calls find a provider and return Err.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

enum Attempt {
    Done(Vec<u8>),
    Retry(String),
    Fatal(SyncError),
}

impl HttpClient {
    /// A client with the given retry policy.
    pub fn new(retry: RetryPolicy) -> Result<Self, SyncError> {
        install_crypto();
        let mut builder = reqwest::Client::builder();
        if !retry.reuse_connections {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder
            .pool_idle_timeout(IDLE_CONNECTION)
            .timeout(retry.timeout)
            .connect_timeout(retry.connect_timeout)
            .user_agent(concat!("gridsync-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SyncError::Network(e.to_string()))?;
        Ok(HttpClient { client, retry })
    }

    /// Trade a one-time code for a device token (the caller saves it:
    /// [`crate::phone::Phone::enroll`]). The request registers this phone's Automerge actor id, the only one
    /// the server accepts changes under from this device. If another
    /// user's device holds that id (a phone handed on without being wiped)
    /// and nothing waits in the outbox, the phone takes a new id and tries
    /// once more.
    pub async fn enroll(
        &self,
        store: &Mutex<Store>,
        server_url: &str,
        code: &str,
        device_name: &str,
    ) -> Result<(Enrollment, DeviceKey), SyncError> {
        match self.enroll_once(store, server_url, code, device_name).await {
            Err(SyncError::Server { status: 409, code: c, .. })
                if c == "actor_in_use" && lock(store).outbox_len()? == 0 =>
            {
                lock(store).rotate_actor()?;
                self.enroll_once(store, server_url, code, device_name).await
            }
            other => other,
        }
    }

    async fn enroll_once(
        &self,
        store: &Mutex<Store>,
        server_url: &str,
        code: &str,
        device_name: &str,
    ) -> Result<(Enrollment, DeviceKey), SyncError> {
        let url = format!("{}/v1/enroll", server_url.trim_end_matches('/'));
        let actor = lock(store).actor().to_hex_string();
        // A new device gets a new key; the caller keeps it with the
        // enrollment once the server has registered it.
        let key = DeviceKey::generate()?;
        let request = EnrollRequest {
            code: code.to_owned(),
            device_name: device_name.to_owned(),
            actor: Some(actor),
            public_key: Some(key.public_hex()),
        };
        let body = serde_json::to_vec(&request).map_err(|e| SyncError::Network(e.to_string()))?;
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SyncError::Network(e.to_string()))?;
        if !status.is_success() {
            return Err(server_error(status.as_u16(), &bytes));
        }
        let r: EnrollResponse = serde_json::from_slice(&bytes).map_err(|e| SyncError::Network(e.to_string()))?;
        let e = Enrollment {
            server_url: server_url.trim_end_matches('/').to_owned(),
            device_id: r.device_id,
            token: r.token,
            user_id: r.user_id,
            display_name: r.display_name,
            role: r.role,
            grid: r.grid,
            server_key: r.server_key,
        };
        Ok((e, key))
    }

    /// Register the device's public key if the server does not have it
    /// yet (a device enrolled before devices had keys), and learn the
    /// server's relay key (`POST /v1/device-key`).
    async fn register_key(&self, store: &Mutex<Store>, enrollment: &mut Enrollment) -> Result<(), SyncError> {
        let had_key = lock(store).existing_device_key()?.is_some();
        if had_key && !enrollment.server_key.is_empty() {
            return Ok(());
        }
        let public_key = lock(store).device_key()?.public_hex();
        let body =
            serde_json::to_vec(&DeviceKeyRequest { public_key }).map_err(|e| SyncError::Network(e.to_string()))?;
        let url = format!("{}/v1/device-key", enrollment.server_url);
        let (status, bytes) = self
            .send(Method::POST, &url, &enrollment.token, "application/json", body)
            .await
            .map_err(SyncError::Network)?;
        if !status.is_success() {
            return Err(server_error(status.as_u16(), &bytes));
        }
        let r: DeviceKeyResponse = serde_json::from_slice(&bytes).map_err(|e| SyncError::Network(e.to_string()))?;
        enrollment.server_key = r.server_key;
        lock(store).set_enrollment(enrollment)?;
        Ok(())
    }

    /// Hand the server the relay bundles this phone carries
    /// (`POST /v1/relay`, one each). A bundle the server answered for is
    /// dropped: stored or refused, the device that made it still holds its
    /// changes until its own sync. A failure leaves the rest for next time.
    async fn deliver_relays(
        &self,
        store: &Mutex<Store>,
        enrollment: &Enrollment,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let carried = lock(store).carried_relays()?;
        for (id, bytes) in carried {
            let url = format!("{}/v1/relay", enrollment.server_url);
            let (status, body) = self
                .send(Method::POST, &url, &enrollment.token, "application/x-gridsync-relay", bytes)
                .await
                .map_err(SyncError::Network)?;
            if status.is_success() {
                let r: RelayReport = serde_json::from_slice(&body).map_err(|e| SyncError::Network(e.to_string()))?;
                report.relayed_bundles += 1;
                report.relayed_changes += r.changes_stored;
                report.relay_refused_changes += r.changes_refused;
            } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 401 {
                // The server can never take it (not sealed to it, signer
                // unknown): carrying it further helps no one.
                report.relay_refused_bundles += 1;
            } else {
                return Err(server_error(status.as_u16(), &body));
            }
            lock(store).relay_delivered(&id)?;
        }
        Ok(())
    }

    /// Tell the server about records set aside and not reported yet. Best
    /// effort: a failure leaves them for the next sync.
    async fn report_set_aside(&self, store: &Mutex<Store>, enrollment: &Enrollment) -> Result<(), SyncError> {
        let pending: Vec<_> = lock(store).set_aside()?.into_iter().filter(|s| !s.reported).take(1000).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let report = ProblemReport {
            set_aside: pending
                .iter()
                .map(|s| SetAsideReport { doc: s.doc_id.to_string(), reason: s.reason.clone() })
                .collect(),
        };
        let body = serde_json::to_vec(&report).map_err(|e| SyncError::Network(e.to_string()))?;
        let url = format!("{}/v1/problems", enrollment.server_url);
        let (status, _) = self
            .send(Method::POST, &url, &enrollment.token, "application/json", body)
            .await
            .map_err(SyncError::Network)?;
        if status.is_success() {
            let ids: Vec<_> = pending.iter().map(|s| s.doc_id).collect();
            lock(store).mark_set_aside_reported(&ids)?;
        }
        Ok(())
    }

    /// Run a whole sync with the enrolled server; `progress` sees the report
    /// after every round. The store is locked only to build a request and
    /// to apply an answer, never while the network is waited for, so the
    /// app saves records during a slow sync (they go with its next round).
    /// `cancel` stops it at the next safe point ([`CancelToken`]).
    pub async fn sync(
        &self,
        store: &Mutex<Store>,
        opts: SyncOptions,
        progress: &mut (dyn FnMut(&SyncReport) + Send),
        cancel: &CancelToken,
    ) -> Result<SyncReport, SyncError> {
        let mut enrollment = lock(store).enrollment()?.ok_or(SyncError::NotEnrolled)?;
        match self.register_key(store, &mut enrollment).await {
            Err(SyncError::Revoked) => {
                lock(store).wipe()?;
                return Err(SyncError::Revoked);
            }
            other => other?,
        }
        let url = format!("{}/v1/sync", enrollment.server_url);
        let mut session = SyncSession::new(super::CURSOR_KEY, opts);
        loop {
            if cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            let Some(req) = session.next_request(&mut lock(store))? else { break };
            let mut attempt = 0;
            let body = loop {
                match cancel.unless_cancelled(self.post(&url, &enrollment.token, &req.body)).await? {
                    Attempt::Done(b) => break b,
                    Attempt::Fatal(SyncError::Revoked) => {
                        lock(store).wipe()?;
                        return Err(SyncError::Revoked);
                    }
                    Attempt::Fatal(e) => return Err(e),
                    Attempt::Retry(why) => {
                        attempt += 1;
                        if attempt >= self.retry.attempts {
                            return Err(SyncError::Network(why));
                        }
                        session.note_retry(req.body.len() as u64);
                        let jitter: f64 = rand::thread_rng().r#gen();
                        let pause = backoff(attempt - 1, self.retry.base, self.retry.max, jitter);
                        cancel.unless_cancelled(tokio::time::sleep(pause)).await?;
                    }
                }
            };
            session.handle_response(&mut lock(store), &req, &body)?;
            progress(&session.report);
        }
        // The records are synced; a failed report is retried next time.
        let _ = self.report_set_aside(store, &enrollment).await;
        let _ = self.deliver_relays(store, &enrollment, &mut session.report).await;
        Ok(session.finish())
    }

    /// Fetch the directory of names for the enrolled user's scope
    /// (`GET /v1/directory`), sending the stored version so an unchanged
    /// directory costs an empty 304. `Ok(None)`: unchanged.
    pub async fn directory(&self, enrollment: &Enrollment, have: Option<&str>) -> Result<Option<Directory>, SyncError> {
        let mut req = self
            .client
            .get(format!("{}/v1/directory", enrollment.server_url))
            .header("authorization", format!("Bearer {}", enrollment.token));
        if let Some(v) = have {
            req = req.header("if-none-match", format!("\"{v}\""));
        }
        let resp = req.send().await.map_err(|e| SyncError::Network(e.to_string()))?;
        let status = resp.status();
        if status.as_u16() == 304 {
            return Ok(None);
        }
        let bytes = resp.bytes().await.map_err(|e| SyncError::Network(e.to_string()))?;
        if !status.is_success() {
            return Err(server_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| SyncError::Network(format!("bad directory: {e}")))
    }

    /// Tell the server this device signs out (`POST /v1/sign-out`, a
    /// [`crate::protocol::SignOutRequest`] signed with the device's key):
    /// its token stops working at once.
    pub async fn sign_out(&self, enrollment: &Enrollment, key: &DeviceKey) -> Result<(), SyncError> {
        let device = enrollment.device_uuid()?;
        let at = chrono::Utc::now().timestamp_millis();
        let body = crate::protocol::SignOutRequest {
            device_id: enrollment.device_id.clone(),
            at,
            signature: crate::signing::hex_of(&key.sign_sign_out(&device, at).0),
        };
        let resp = self
            .client
            .post(format!("{}/v1/sign-out", enrollment.server_url))
            .header("authorization", format!("Bearer {}", enrollment.token))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| SyncError::Network(e.to_string()))?)
            .send()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SyncError::Network(e.to_string()))?;
        match server_error(status.as_u16(), &bytes) {
            // Already revoked or unknown: signed out all the same.
            _ if status.is_success() => Ok(()),
            SyncError::Revoked | SyncError::Unauthorized(_) => Ok(()),
            e => Err(e),
        }
    }

    /// Send `bytes` of photo `hash` from `offset` (`PUT /v1/photos/{hash}`),
    /// retrying network failures and 5xx answers with backoff. The answer
    /// says how many bytes the server holds; a `409 offset_mismatch` (an
    /// earlier answer was lost, or the server holds less) is an answer
    /// too: the upload goes on from the server's figure.
    pub async fn upload_photo_chunk(
        &self,
        enrollment: &Enrollment,
        hash: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<crate::protocol::PhotoProgress, SyncError> {
        let url = format!("{}/v1/photos/{hash}?offset={offset}", enrollment.server_url);
        let mut attempt = 0;
        loop {
            let sent =
                self.send(Method::PUT, &url, &enrollment.token, "application/octet-stream", bytes.to_vec()).await;
            let why = match sent {
                Ok((status, body)) if status.as_u16() == 200 || status.as_u16() == 409 => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| SyncError::Network(format!("bad photo answer: {e}")));
                }
                Ok((status, _)) if retryable(status) => format!("server answered {status}"),
                Ok((status, body)) => return Err(server_error(status.as_u16(), &body)),
                Err(why) => why,
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(SyncError::Network(why));
            }
            let jitter: f64 = rand::thread_rng().r#gen();
            tokio::time::sleep(backoff(attempt - 1, self.retry.base, self.retry.max, jitter)).await;
        }
    }

    /// The photos the server wants from this phone's user
    /// (`GET /v1/photos/wanted`): live records say the user took them and
    /// the server holds no upload of theirs. A server from before the list
    /// existed answers 404: nothing is wanted.
    pub async fn photos_wanted(&self, enrollment: &Enrollment) -> Result<crate::protocol::PhotosWanted, SyncError> {
        let resp = self
            .client
            .get(format!("{}/v1/photos/wanted", enrollment.server_url))
            .header("authorization", format!("Bearer {}", enrollment.token))
            .send()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SyncError::Network(e.to_string()))?;
        if status.as_u16() == 404 {
            return Ok(crate::protocol::PhotosWanted { wanted: vec![], more: false });
        }
        if !status.is_success() {
            return Err(server_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| SyncError::Network(format!("bad photo list: {e}")))
    }

    /// The bytes of photo `hash` (`GET /v1/photos/{hash}`), once.
    pub async fn download_photo(&self, enrollment: &Enrollment, hash: &str) -> Result<Vec<u8>, SyncError> {
        let resp = self
            .client
            .get(format!("{}/v1/photos/{hash}", enrollment.server_url))
            .header("authorization", format!("Bearer {}", enrollment.token))
            .send()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SyncError::Network(e.to_string()))?;
        if !status.is_success() {
            return Err(server_error(status.as_u16(), &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// One authenticated request, sent once: the answer's status and body,
    /// or why none came (the network failed, or the body broke off).
    async fn send(
        &self,
        method: Method,
        url: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let resp = self
            .client
            .request(method, url)
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {token}"))
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, bytes.to_vec()))
    }

    /// One sync round trip, classified for the retry loop.
    async fn post(&self, url: &str, token: &str, body: &[u8]) -> Attempt {
        match self.send(Method::POST, url, token, CONTENT_TYPE, body.to_vec()).await {
            Ok((status, bytes)) if status.is_success() => Attempt::Done(bytes),
            Ok((status, _)) if retryable(status) => Attempt::Retry(format!("server answered {status}")),
            Ok((status, bytes)) => Attempt::Fatal(server_error(status.as_u16(), &bytes)),
            Err(why) => Attempt::Retry(why),
        }
    }
}

/// Answers worth sending again after a pause: the server failed or was
/// busy, or the request timed out. Every other 4xx is final.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408
}

fn server_error(status: u16, body: &[u8]) -> SyncError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    match parsed {
        Some(e) if e.wipe => SyncError::Revoked,
        Some(e) if status == 401 => SyncError::Unauthorized(e.error),
        Some(e) => SyncError::Server { status, code: e.error, message_zh: e.message_zh },
        None => SyncError::Server {
            status, code: "unknown".into(), message_zh: "服务器返回了无法识别的错误".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that keeps every connection open (answering 200 to each
    /// request on it) and counts the connections it accepted.
    async fn keep_alive_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // Requests without a body: one per blank line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if conn.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    /// Back-to-back requests share a connection; after a pause past
    /// [`IDLE_CONNECTION`] the next request opens a new one, instead of
    /// going down a connection the server may be closing that moment.
    #[tokio::test]
    async fn an_idle_connection_is_dropped_before_the_server_closes_it() {
        assert!(IDLE_CONNECTION < crate::protocol::SERVER_KEEP_ALIVE);
        let (url, accepted) = keep_alive_server().await;
        let client = HttpClient::new(RetryPolicy::default()).unwrap();
        let enrollment = Enrollment {
            server_url: url,
            device_id: "00000000-0000-4000-8000-000000000001".into(),
            token: "t".into(),
            user_id: "gm1".into(),
            display_name: String::new(),
            role: "grid_manager".into(),
            grid: "t01/v01/g1".into(),
            server_key: String::new(),
        };
        let key = DeviceKey::from_secret(&[1; 32]);
        client.sign_out(&enrollment, &key).await.unwrap();
        client.sign_out(&enrollment, &key).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "back to back on one connection");
        tokio::time::sleep(IDLE_CONNECTION + Duration::from_millis(300)).await;
        client.sign_out(&enrollment, &key).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection after the pause");
    }
}
