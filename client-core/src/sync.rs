//! The phone's sync engine, sans I/O: it builds the next request from the
//! outbox and the cursor, and applies a response in one store transaction.
//! A transport ([`crate::transport`]) moves the bytes; the same engine runs
//! over HTTP, a file, or directly against a server store in tests.
//!
//! A [`SyncSession`] pages until the outbox is empty and the server says
//! nothing more remains. Every step is safe to repeat: changes are
//! identified by hash, the cursor only moves after the response it came in
//! has been applied, and acknowledged changes leave the outbox in the same
//! transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::protocol::{self, DocChanges, RejectReason, SyncRequest, SyncResponse};
use crate::store::{Rejection, Store};

/// Tunables of a session.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Most change bytes uploaded in one request.
    pub max_upload_bytes: usize,
    /// Byte budget asked of the server for each response.
    pub page_bytes: u32,
    /// Most requests in one session (a guard against a server that never
    /// says "no more").
    pub max_requests: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { max_upload_bytes: 512 * 1024, page_bytes: protocol::DEFAULT_PAGE_BYTES, max_requests: 200 }
    }
}

/// What a sync did, for the caller to show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Records whose changes were sent and acknowledged.
    pub records_sent: u64,
    /// Changes acknowledged.
    pub changes_sent: u64,
    /// Records received (new or changed).
    pub records_received: u64,
    /// Changes received.
    pub changes_received: u64,
    /// Records with changes refused by the server, with reasons.
    pub rejected: Vec<(Uuid, Rejection)>,
    /// Records received that could not be applied and were set aside
    /// (kept, retried when more of them arrives), with why.
    pub set_aside: Vec<(Uuid, String)>,
    /// Records new or changed on this phone by what was received, in the
    /// order they first arrived (what a list on screen should refresh).
    pub received_ids: Vec<Uuid>,
    /// Request body bytes.
    pub bytes_up: u64,
    /// Response body bytes.
    pub bytes_down: u64,
    /// Requests made (including retries).
    pub requests: u64,
    /// Retries after a failed attempt.
    pub retries: u64,
    /// Wall time, ms.
    pub duration_ms: u64,
    /// Relay bundles carried for other devices that the server took.
    #[serde(default)]
    pub relayed_bundles: u64,
    /// Changes of those bundles the server stored.
    #[serde(default)]
    pub relayed_changes: u64,
    /// Changes of those bundles the server refused (by their signer's
    /// rights; their device still holds them).
    #[serde(default)]
    pub relay_refused_changes: u64,
    /// Carried bundles the server could not take at all (not sealed to it,
    /// or from a device it does not know), dropped.
    #[serde(default)]
    pub relay_refused_bundles: u64,
}

/// A request on its way: the encoded body and what it carried.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// Encoded body to send.
    pub body: Vec<u8>,
    sent: HashMap<Uuid, Vec<[u8; 32]>>,
}

/// One sync with one server, driven by a transport:
///
/// ```text
/// while let Some(req) = session.next_request(&store)? {
///     let body = transport.send(req.body)?;      // I/O, retried by the transport
///     session.handle_response(&mut store, &req, &body)?;
/// }
/// ```
pub struct SyncSession {
    server: String,
    opts: SyncOptions,
    more: bool,
    started: Instant,
    repaired: BTreeSet<Uuid>,
    sent_records: BTreeSet<Uuid>,
    received_records: BTreeSet<Uuid>,
    /// The running report.
    pub report: SyncReport,
}

impl SyncSession {
    /// A session with `server` (any stable name for it: its URL).
    pub fn new(server: &str, opts: SyncOptions) -> Self {
        SyncSession {
            server: server.to_owned(),
            opts,
            more: true,
            started: Instant::now(),
            repaired: BTreeSet::new(),
            sent_records: BTreeSet::new(),
            received_records: BTreeSet::new(),
            report: SyncReport::default(),
        }
    }

    /// The next request, or `None` when the outbox is empty and the server
    /// has nothing more.
    pub fn next_request(&mut self, store: &mut Store) -> Result<Option<PendingRequest>> {
        let outbox = store.outbox(self.opts.max_upload_bytes)?;
        if outbox.is_empty() && !self.more {
            return Ok(None);
        }
        if self.report.requests >= u64::from(self.opts.max_requests) {
            return Ok(None);
        }
        let cursor = store.transaction(|tx| tx.cursor(&self.server))?.unwrap_or_default();
        // Every change goes signed with the device's key (one signature
        // over all of them): the server refuses any other.
        let (device, key) = store.signer()?;
        let mut docs: Vec<DocChanges> = Vec::new();
        let mut hashes: Vec<Vec<[u8; 32]>> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        let mut sent: HashMap<Uuid, Vec<[u8; 32]>> = HashMap::new();
        for e in outbox {
            let i = *index.entry(e.doc_id).or_insert_with(|| {
                docs.push(DocChanges { doc: *e.doc_id.as_bytes(), changes: vec![] });
                hashes.push(vec![]);
                docs.len() - 1
            });
            docs[i].changes.push(e.change);
            hashes[i].push(e.hash);
            sent.entry(e.doc_id).or_default().push(e.hash);
        }
        let mut manifest = crate::signing::Manifest::new();
        for (d, h) in docs.iter().zip(&hashes) {
            manifest.push(&Uuid::from_bytes(d.doc), h);
        }
        let signature = key.sign_batch(&device, &manifest);
        let req = SyncRequest { cursor, docs, max_response_bytes: self.opts.page_bytes, signature };
        let body = protocol::encode(&req)?;
        Ok(Some(PendingRequest { body, sent }))
    }

    /// Apply the server's answer to `req` in one transaction.
    pub fn handle_response(&mut self, store: &mut Store, req: &PendingRequest, body: &[u8]) -> Result<()> {
        let resp: SyncResponse = protocol::decode(body)?;
        self.report.requests += 1;
        self.report.bytes_up += req.body.len() as u64;
        self.report.bytes_down += body.len() as u64;
        let server = self.server.clone();
        let mut newly_rejected = Vec::new();
        let mut repairs = Vec::new();
        let mut received = 0u64;
        let mut received_docs = Vec::new();
        let mut acked_changes = 0u64;
        let mut acked_docs = Vec::new();
        let mut set_aside = Vec::new();
        store.transaction(|tx| {
            for ack in &resp.acked {
                let doc = Uuid::from_bytes(ack.doc);
                // An empty list acknowledges everything sent for the record.
                let hashes: &[[u8; 32]] = if ack.hashes.is_empty() {
                    req.sent.get(&doc).map(Vec::as_slice).unwrap_or_default()
                } else {
                    &ack.hashes
                };
                for h in hashes {
                    tx.ack(doc, h)?;
                }
                tx.clear_rejection(doc)?;
                acked_changes += hashes.len() as u64;
                acked_docs.push(doc);
            }
            let now = chrono::Utc::now().timestamp_millis();
            for rej in &resp.rejected {
                let doc = Uuid::from_bytes(rej.doc);
                let r = Rejection { code: rej.reason.as_str().to_owned(), message_zh: rej.detail.clone() };
                if rej.reason == RejectReason::MissingDependencies {
                    if !self.repaired.contains(&doc) {
                        // The server lacks earlier changes of this record (it
                        // was restored from a backup, say): send its history.
                        repairs.push(doc);
                        tx.requeue_history(doc)?;
                    } else {
                        // Still missing after a resend: keep the changes for
                        // a later session and show why.
                        tx.note_rejection(doc, &r)?;
                        newly_rejected.push((doc, r));
                    }
                    continue;
                }
                // The server names the refused changes; a change it could
                // not even parse has no hash, and then every change sent for
                // the record that it did not acknowledge is refused.
                let hashes: Vec<[u8; 32]> = if rej.hashes.is_empty() {
                    let acked: std::collections::HashSet<[u8; 32]> =
                        resp.acked.iter().filter(|a| a.doc == rej.doc).flat_map(|a| a.hashes.iter().copied()).collect();
                    req.sent.get(&doc).into_iter().flatten().copied().filter(|h| !acked.contains(h)).collect()
                } else {
                    rej.hashes.clone()
                };
                // The server lists the changes that broke a rule before
                // those refused along with them: the record shows the first.
                let shown = !newly_rejected.iter().any(|(d, _)| *d == doc);
                tx.reject(doc, &r, &hashes, now, shown)?;
                newly_rejected.push((doc, r));
            }
            let mut by_doc: BTreeMap<Uuid, Vec<Vec<u8>>> = BTreeMap::new();
            for dc in resp.changes.iter() {
                by_doc.entry(Uuid::from_bytes(dc.doc)).or_default().extend(dc.changes.iter().cloned());
            }
            for (doc, changes) in by_doc {
                received += changes.len() as u64;
                // One record that cannot be applied never stops the rest:
                // it is set aside and the cursor moves on.
                match tx.apply_or_set_aside(doc, &changes, now)? {
                    None => received_docs.push(doc),
                    Some(why) => set_aside.push((doc, why)),
                }
            }
            tx.set_cursor(&server, &resp.next_cursor, chrono::Utc::now().timestamp_millis())?;
            Ok(())
        })?;
        self.repaired.extend(repairs);
        self.sent_records.extend(acked_docs);
        for doc in received_docs {
            if self.received_records.insert(doc) {
                self.report.received_ids.push(doc);
            }
        }
        self.report.changes_sent += acked_changes;
        self.report.changes_received += received;
        self.report.records_sent = self.sent_records.len() as u64;
        self.report.records_received = self.received_records.len() as u64;
        self.report.rejected.extend(newly_rejected);
        self.report.set_aside.extend(set_aside);
        self.more = resp.more;
        Ok(())
    }

    /// Count a retry of the current request.
    pub fn note_retry(&mut self, bytes_up: u64) {
        self.report.retries += 1;
        self.report.requests += 1;
        self.report.bytes_up += bytes_up;
    }

    /// The finished report.
    pub fn finish(mut self) -> SyncReport {
        self.report.duration_ms = self.started.elapsed().as_millis() as u64;
        self.report
    }
}

/// Exponential backoff with full jitter: attempt 0 waits up to `base`,
/// each later attempt up to twice as long, capped at `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(max);
    capped.mul_f64(jitter.clamp(0.0, 1.0))
}

impl From<CoreError> for SyncError {
    fn from(e: CoreError) -> Self {
        SyncError::Store(e)
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The phone has not been enrolled with a server.
    #[error("device not enrolled")]
    NotEnrolled,
    /// The server revoked this device; its local data has been wiped.
    #[error("device revoked by the server; local data wiped")]
    Revoked,
    /// The server refused the device's credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The network failed after every retry.
    #[error("network: {0}")]
    Network(String),
    /// The server answered with an error.
    #[error("server error {status}: {code}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Machine-readable code.
        code: String,
        /// Message for the user, in Chinese.
        message_zh: String,
    },
    /// The local store or a message failed.
    #[error(transparent)]
    Store(CoreError),
    /// The caller cancelled the sync; every round that finished is kept.
    #[error("sync cancelled")]
    Cancelled,
}

impl SyncError {
    /// What to tell the field worker, in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            SyncError::NotEnrolled => "本机尚未注册，请输入管理员发放的注册码".into(),
            SyncError::Revoked => "此设备已被管理员停用，本机数据已清除".into(),
            SyncError::Unauthorized(_) => "设备凭证无效，请重新注册".into(),
            SyncError::Network(_) => "网络不通，记录已保存在本机，有网络时会自动同步".into(),
            SyncError::Server { message_zh, .. } => message_zh.clone(),
            SyncError::Store(e) => e.message_zh(),
            SyncError::Cancelled => "同步已取消，记录已保存在本机，下次同步时继续".into(),
        }
    }
}
