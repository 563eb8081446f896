//! Sync as an app runs it: one at a time, cancellable, never holding the
//! store while the network is waited for, telling the listener which
//! records changed, and checking the directory of names once a day.

use super::*;
use crate::sync::{SyncError, SyncOptions, SyncReport};

/// A record the server refused during a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RejectedRecord {
    /// Record id.
    pub id: String,
    /// Machine code (`forbidden`, `out_of_scope`...).
    pub code: String,
    /// For the user, in Chinese.
    pub message_zh: String,
}

/// What a sync has done so far (progress) or did (result).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SyncStats {
    /// Records whose changes the server acknowledged.
    pub records_sent: u64,
    /// Changes acknowledged.
    pub changes_sent: u64,
    /// Records received.
    pub records_received: u64,
    /// Changes received.
    pub changes_received: u64,
    /// Ids of the records new or changed on this phone by the sync.
    pub changed: Vec<String>,
    /// Records refused, with reasons.
    pub rejected: Vec<RejectedRecord>,
    /// Ids of records received that could not be applied and were set
    /// aside (kept, retried, reported to the server); the sync went on.
    pub set_aside: Vec<String>,
    /// Request bytes.
    pub bytes_up: u64,
    /// Response bytes.
    pub bytes_down: u64,
    /// Requests made, retries included.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// Wall time, ms (0 in progress reports).
    pub duration_ms: u64,
    /// Relay bundles carried for other devices that the server took.
    pub relayed_bundles: u64,
    /// Changes of those bundles the server refused by their signer's
    /// rights (their own phone still holds them and will learn why).
    pub relay_refused_changes: u64,
}

impl From<&SyncReport> for SyncStats {
    fn from(r: &SyncReport) -> Self {
        SyncStats {
            records_sent: r.records_sent,
            changes_sent: r.changes_sent,
            records_received: r.records_received,
            changes_received: r.changes_received,
            changed: r.received_ids.iter().map(Uuid::to_string).collect(),
            rejected: r
                .rejected
                .iter()
                .map(|(id, rej)| RejectedRecord {
                    id: id.to_string(),
                    code: rej.code.clone(),
                    message_zh: rej.message_zh.clone(),
                })
                .collect(),
            set_aside: r.set_aside.iter().map(|(id, _)| id.to_string()).collect(),
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
            requests: r.requests,
            retries: r.retries,
            duration_ms: r.duration_ms,
            relayed_bundles: r.relayed_bundles,
            relay_refused_changes: r.relay_refused_changes,
        }
    }
}

impl Phone {
    /// Sync with the enrolled server until nothing is left either way;
    /// `progress` hears after every round. A second call waits for a
    /// running one. A revoked device gets `SyncError::Revoked` and an
    /// empty store. Records refused by the server are reported, not errors.
    pub async fn sync(
        &self,
        opts: SyncOptions,
        progress: &mut (dyn FnMut(&SyncReport) + Send),
    ) -> Result<SyncReport, SyncError> {
        let _one_at_a_time = self.syncing.lock().await;
        let token = CancelToken::new();
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        let mut told = 0;
        let mut on_round = |r: &SyncReport| {
            // Tell the listener of each round's records as they land.
            self.notify(r.received_ids[told..].iter().copied(), ChangeSource::Sync);
            told = r.received_ids.len();
            progress(r);
        };
        let result = self.http.sync(&self.store, opts, &mut on_round, &token).await;
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match &result {
            Err(SyncError::Revoked) => self.notify([], ChangeSource::Wipe),
            Ok(_) => {
                // Names are a nicety: a failure leaves them for next time.
                let _ = self.refresh_directory(false).await;
            }
            Err(_) => {}
        }
        result
    }

    /// Stop the running sync at its next safe point (before its next
    /// request, or while it waits for an answer or a retry); it then ends
    /// with `SyncError::Cancelled`, the store exactly as after its last
    /// finished round. Nothing happens when no sync runs.
    pub fn cancel_sync(&self) {
        if let Some(token) = self.cancel.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            token.cancel();
        }
    }
}
