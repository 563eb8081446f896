//! Merging one record's incoming changes: pure logic, no I/O, called by the
//! store while the record is locked.
//!
//! Every Automerge call on received bytes is guarded: a hostile change may
//! make the library panic, and that must not take a request thread down.

use std::collections::{BTreeMap, HashSet};

use automerge::ActorId;
use gridsync_core::doc::{RecordDoc, guarded, parse_change};
use gridsync_core::model::{Record, RecordBody};
use gridsync_core::protocol::{DocRejection, RejectReason};

use crate::access::{Denied, may_write};
use crate::store::{DocDecision, IncomingDoc, MergedDoc, StoredDoc, User};

/// Largest compacted record accepted.
pub const MAX_DOC_BYTES: usize = 1024 * 1024;

/// The outcome of merging one record, for the response.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored (or already stored): acknowledge these hashes.
    Acked(Vec<[u8; 32]>),
    /// Refused.
    Rejected(DocRejection),
}

/// Merge `incoming` into `stored` on behalf of `user`. Returns what to write
/// and what to tell the device.
pub fn merge_doc(user: &User, stored: Option<StoredDoc>, incoming: &IncomingDoc) -> (DocDecision, Outcome) {
    let doc_bytes = *incoming.doc_id.as_bytes();
    let mut hashes = Vec::with_capacity(incoming.changes.len());
    let reject = |reason: RejectReason, detail: String, hashes: Vec<[u8; 32]>| {
        (DocDecision::Reject, Outcome::Rejected(DocRejection { doc: doc_bytes, reason, detail, hashes }))
    };
    let mut parsed = Vec::with_capacity(incoming.changes.len());
    for c in &incoming.changes {
        match parse_change(c) {
            Ok(ch) => {
                hashes.push(ch.hash().0);
                parsed.push(ch);
            }
            Err(_) => return reject(RejectReason::Malformed, RejectReason::Malformed.label_zh().into(), hashes),
        }
    }
    // The server writes nothing of its own into records; its actor id is
    // never used in a change.
    let actor = ActorId::from([0u8; 16]);
    let before_doc = match &stored {
        Some(s) => match guarded(|| RecordDoc::load(&s.snapshot, actor.clone())) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(doc = %incoming.doc_id, error = %e, "stored snapshot unreadable");
                return reject(RejectReason::Malformed, "服务器上的记录无法读取".into(), hashes);
            }
        },
        None => None,
    };
    let before: Option<Record> = match &before_doc {
        Some(d) => guarded(|| d.record()).ok(),
        None => None,
    };
    let mut doc = match before_doc {
        Some(d) => d,
        None => RecordDoc::empty(actor),
    };
    let known: HashSet<[u8; 32]> = hashes
        .iter()
        .copied()
        .filter(|h| doc.automerge().get_change_by_hash(&automerge::ChangeHash(*h)).is_some())
        .collect();
    let new: Vec<_> = parsed.into_iter().filter(|c| !known.contains(&c.hash().0)).collect();
    if new.is_empty() {
        return (DocDecision::AlreadyStored, Outcome::Acked(hashes));
    }
    // A record's history has one root: the change that created it. Another
    // change without dependencies is a second document's history under this
    // id; merged in, it would put a conflicting copy of every field (kept
    // or refused depending only on which actor id sorts higher).
    let roots = new.iter().filter(|c| c.deps().is_empty()).count();
    if roots > usize::from(stored.is_none()) {
        return reject(RejectReason::Immutable, "记录的历史不能替换".into(), hashes);
    }
    let new_changes: Vec<([u8; 32], Vec<u8>)> = new.iter().map(|c| (c.hash().0, c.raw_bytes().to_vec())).collect();
    if let Err(e) = guarded(|| doc.apply(new)) {
        return reject(RejectReason::Malformed, format!("记录数据已损坏：{e}"), hashes);
    }
    if !doc.missing_deps().is_empty() {
        return reject(RejectReason::MissingDependencies, RejectReason::MissingDependencies.label_zh().into(), hashes);
    }
    let after = match guarded(|| doc.record()) {
        Ok(r) => r,
        Err(e) => return reject(RejectReason::Invalid, e.message_zh(), hashes),
    };
    if after.id != incoming.doc_id {
        return reject(RejectReason::Immutable, "记录编号与文档不符".into(), hashes);
    }
    if let Err(e) = after.validate() {
        return reject(RejectReason::Invalid, e.message_zh(), hashes);
    }
    if let Some(b) = &before
        && let Some(why) = immutable_violation(b, &after)
    {
        return reject(RejectReason::Immutable, why.into(), hashes);
    }
    match may_write(user, before.as_ref(), &after) {
        Ok(()) => {}
        Err(Denied::OutOfScope) => {
            return reject(RejectReason::OutOfScope, RejectReason::OutOfScope.label_zh().into(), hashes);
        }
        Err(Denied::Forbidden(why)) => return reject(RejectReason::Forbidden, why, hashes),
    }
    let snapshot = doc.save();
    if snapshot.len() > MAX_DOC_BYTES {
        return reject(RejectReason::TooLarge, format!("记录超过{}KB上限", MAX_DOC_BYTES / 1024), hashes);
    }
    let merged = MergedDoc {
        new_changes,
        snapshot,
        index: after.index(),
        json: after.to_json().to_string(),
        author: after.author.clone(),
        created_at: after.created_at,
        updated_at: after.updated_at,
    };
    (DocDecision::Accept(Box::new(merged)), Outcome::Acked(hashes))
}

/// What a merge may not change: the header, and any event already recorded.
fn immutable_violation(before: &Record, after: &Record) -> Option<&'static str> {
    if before.kind() != after.kind() || before.grid != after.grid || before.author != after.author {
        return Some("记录的类型、网格和记录人不能修改");
    }
    if before.created_at != after.created_at {
        return Some("记录的创建时间不能修改");
    }
    fn events_kept<A: serde::Serialize>(
        b: &[gridsync_core::events::Event<A>],
        a: &[gridsync_core::events::Event<A>],
    ) -> bool {
        let after: BTreeMap<&str, serde_json::Value> =
            a.iter().map(|e| (e.id.as_str(), serde_json::to_value(e).unwrap_or_default())).collect();
        b.iter().all(|e| after.get(e.id.as_str()) == Some(&serde_json::to_value(e).unwrap_or_default()))
    }
    let kept = match (&before.body, &after.body) {
        (RecordBody::Dispute(b), RecordBody::Dispute(a)) => events_kept(&b.events, &a.events),
        (RecordBody::Hazard(b), RecordBody::Hazard(a)) => events_kept(&b.events, &a.events),
        _ => true,
    };
    (!kept).then_some("已记录的历史事件不能修改或删除")
}
