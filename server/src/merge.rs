//! Merging one record's incoming changes: pure logic, no I/O, called by the
//! store while the record is locked.
//!
//! Every change is judged on its own, in causal order, against the state at
//! its own dependencies ([`gridsync_core::judge`]), by the rules of its
//! writer ([`gridsync_core::rules`]); exactly the changes that break a rule
//! (and those that depend on them) are refused, and the rest is kept. The
//! server then adds what only it may decide: the time a monthly report was
//! submitted (its own clock, not the phone's), and that a record once
//! sensitive stays sensitive (its whole history stays restricted).

use std::collections::BTreeMap;

use gridsync_core::judge::{Actors, judge};
use gridsync_core::model::RecordBody;
use gridsync_core::protocol::{DocRejection, RejectReason};
use gridsync_core::rules::{Writer, is_sensitive};

use crate::store::{AttachmentRef, DocDecision, IncomingDoc, MergedDoc, StoredDoc, User};

pub use gridsync_core::judge::MAX_DOC_BYTES;

/// Which Automerge actor may have written a pusher's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PusherActor {
    /// The device's registered actor id; any other actor is refused.
    Device(Vec<u8>),
    /// Changes the server made itself (a web form), under fresh actors.
    Server,
}

/// Who is pushing changes: the user, the device (its id goes into the feed
/// as the changes' origin) and the actor its changes must carry.
#[derive(Debug, Clone)]
pub struct Pusher {
    /// The user the changes are judged as.
    pub user: User,
    /// Device id, or `web:<user>` for the dashboard.
    pub device_id: String,
    /// The actor rule.
    pub actor: PusherActor,
}

impl Pusher {
    /// The rules' view of the user.
    pub fn writer(&self) -> Writer {
        Writer { user_id: self.user.id.clone(), role: self.user.role, grid: self.user.grid.clone() }
    }
}

/// The outcome of merging one record, for the response.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Hashes now durably stored (new, or stored before).
    pub acked: Vec<[u8; 32]>,
    /// Refused changes, grouped by reason.
    pub rejections: Vec<DocRejection>,
    /// How many of the acked changes are new.
    pub new: usize,
    /// How many were stored before.
    pub known: usize,
}

impl Outcome {
    /// Whether every change sent for the record is stored.
    pub fn all_acked(&self) -> bool {
        self.rejections.is_empty()
    }
}

/// Merge `incoming` into `stored` on behalf of `pusher` at server time
/// `now` (ms). Returns what to write and what to tell the device.
pub fn merge_doc(
    pusher: &Pusher,
    stored: Option<&StoredDoc>,
    incoming: &IncomingDoc,
    now: i64,
) -> (DocDecision, Outcome) {
    let writer = pusher.writer();
    let actors = match &pusher.actor {
        PusherActor::Device(a) => Actors::Device(a),
        PusherActor::Server => Actors::Server,
    };
    let was_sensitive = stored.is_some_and(|s| s.sensitive);
    let verdict = judge(stored.map(|s| s.snapshot.as_slice()), incoming.doc_id, &incoming.changes, &writer, actors);

    let mut outcome = Outcome { new: verdict.accepted.len(), known: verdict.known.len(), ..Outcome::default() };
    outcome.acked.extend(verdict.known.iter().copied());
    outcome.acked.extend(verdict.accepted.iter().map(|c| c.hash().0));
    // The changes that broke a rule come first, then those refused only
    // because they build on them: a phone shows the first reason.
    let mut groups: BTreeMap<(bool, u8, String), DocRejection> = BTreeMap::new();
    for r in &verdict.refused {
        let key = (r.dependent, reason_order(r.reason), r.detail.clone());
        let entry = groups.entry(key).or_insert_with(|| DocRejection {
            doc: *incoming.doc_id.as_bytes(),
            reason: r.reason,
            detail: r.detail.clone(),
            hashes: vec![],
        });
        if let Some(h) = r.hash {
            entry.hashes.push(h);
        }
    }
    outcome.rejections = groups.into_values().collect();

    let (Some(after), Some(snapshot)) = (verdict.after, verdict.snapshot) else {
        let decision = if outcome.acked.is_empty() { DocDecision::Reject } else { DocDecision::AlreadyStored };
        return (decision, outcome);
    };
    let mut json = after.to_json();
    // The county judges a report's lateness by when it was submitted: the
    // server's clock at the change that submitted it, not the phone's.
    if let RecordBody::MonthlyReport(r) = &after.body
        && r.submitted_at.is_some()
    {
        let before_submitted = matches!(
            verdict.before.as_ref().map(|b| &b.body),
            Some(RecordBody::MonthlyReport(b)) if b.submitted_at.is_some()
        );
        if !before_submitted && let Some(data) = json.get_mut("data").and_then(|d| d.as_object_mut()) {
            data.insert("submitted_at".into(), serde_json::Value::from(now));
        }
    }
    // Sensitivity is sticky: once a record held sensitive data, its whole
    // history stays restricted, whatever later edits say.
    let sensitive = is_sensitive(&after) || was_sensitive;
    let mut index = after.index();
    index.sensitive = sensitive;
    let merged = MergedDoc {
        new_changes: verdict.accepted.iter().map(|c| (c.hash().0, c.raw_bytes().to_vec())).collect(),
        batch: incoming.batch.clone(),
        snapshot,
        index,
        json: json.to_string(),
        author: after.author.clone(),
        created_at: after.created_at,
        updated_at: after.updated_at,
        history_turns_sensitive: stored.is_some() && sensitive && !was_sensitive,
        attachments: AttachmentRef::all_of(&after),
    };
    (DocDecision::Accept(Box::new(merged)), outcome)
}

/// A stable order of reasons within one record's rejections.
fn reason_order(r: RejectReason) -> u8 {
    match r {
        RejectReason::OutOfScope => 0,
        RejectReason::Forbidden => 1,
        RejectReason::Immutable => 2,
        RejectReason::Invalid => 3,
        RejectReason::Malformed => 4,
        RejectReason::TooLarge => 5,
        RejectReason::MissingDependencies => 6,
        _ => 7,
    }
}
