//! Repairing a record whose changes a server refused: the refused step is
//! dropped from the record's document and the user's later steps on it are
//! replayed as new changes, so the rest of the work reaches the server.
//!
//! A refused change stays in the phone's document until then (the field
//! worker sees the record as they wrote it, with the reason), and changes
//! that build on it would be refused with it; so edits wait for the repair
//! (`CoreError::NeedsRepair`). The repair is a rebase: the document is
//! rebuilt at the changes the server kept, and each later step of this
//! phone's is applied again as the difference it made, judged again by the
//! write rules. A step that no longer applies is skipped and counted.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{ActorId, ChangeHash};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, push_outbox, write_record};
use crate::error::{CoreError, Result};
use crate::events::heads;
use crate::model::{Record, RecordBody};
use crate::rules::check_write;

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RepairReport {
    /// Refused steps dropped from the record.
    pub dropped: u64,
    /// Later steps of this phone's applied again as new changes.
    pub replayed: u64,
    /// Later steps that could not be applied again (they relied on the
    /// refused step, or are themselves not allowed).
    pub skipped: u64,
    /// The record's creation itself was refused: the record is removed
    /// from this phone.
    pub removed: bool,
}

struct Meta {
    deps: Vec<ChangeHash>,
    actor: ActorId,
}

/// Changes in causal order (dependencies first).
fn causal_order(meta: &HashMap<ChangeHash, Meta>) -> Vec<ChangeHash> {
    let mut done: HashSet<ChangeHash> = HashSet::new();
    let mut order = Vec::with_capacity(meta.len());
    let mut pending: Vec<ChangeHash> = meta.keys().copied().collect();
    pending.sort();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|h| {
            let ready = meta[h].deps.iter().all(|d| done.contains(d) || !meta.contains_key(d));
            if ready {
                done.insert(*h);
                order.push(*h);
            }
            !ready
        });
        if pending.len() == before {
            // A cycle cannot come out of hashes; keep whatever is left.
            order.append(&mut pending);
        }
    }
    order
}

/// Apply the difference `before` → `after` onto `target`: changed fields are
/// set, removed ones removed, objects merged per key, and events appended
/// (a history is never replaced).
fn apply_patch(before: &Value, after: &Value, target: &mut Value) {
    let (Value::Object(b), Value::Object(a), Some(t)) = (before, after, target.as_object_mut()) else {
        *target = after.clone();
        return;
    };
    for (k, av) in a {
        let bv = b.get(k);
        if bv == Some(av) {
            continue;
        }
        match (k.as_str(), bv, av, t.get_mut(k)) {
            ("events", _, Value::Array(new), Some(Value::Array(tv))) => {
                let old: BTreeSet<&str> = match bv {
                    Some(Value::Array(old)) => old.iter().filter_map(|e| e.get("id")?.as_str()).collect(),
                    _ => BTreeSet::new(),
                };
                let present: BTreeSet<String> =
                    tv.iter().filter_map(|e| Some(e.get("id")?.as_str()?.to_owned())).collect();
                for e in new {
                    let id = e.get("id").and_then(Value::as_str).unwrap_or_default();
                    if !old.contains(id) && !present.contains(id) {
                        tv.push(e.clone());
                    }
                }
            }
            (_, Some(bv @ Value::Object(_)), Value::Object(_), Some(tv @ Value::Object(_))) => apply_patch(bv, av, tv),
            _ => {
                t.insert(k.clone(), av.clone());
            }
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            t.remove(k);
        }
    }
}

/// Events the rebased step appended now sit on top of the repaired
/// history: their parents become the latest events before them.
fn rebase_events(rec: &mut Record, base: &Record) {
    fn fix<A>(events: &mut [crate::events::Event<A>], base: &[crate::events::Event<A>]) {
        let known: BTreeSet<String> = base.iter().map(|e| e.id.clone()).collect();
        for i in 0..events.len() {
            if !known.contains(&events[i].id) {
                let parents = heads(&events[..i]);
                events[i].parents = parents;
            }
        }
    }
    match (&mut rec.body, &base.body) {
        (RecordBody::Dispute(d), RecordBody::Dispute(b)) => fix(&mut d.events, &b.events),
        (RecordBody::Hazard(h), RecordBody::Hazard(b)) => fix(&mut h.events, &b.events),
        _ => {}
    }
}

impl Store {
    /// Repair a record the server refused changes of: drop the refused
    /// steps, replay this phone's later steps as new changes (judged again
    /// by the write rules), and queue them for the next sync. Harmless on a
    /// record with nothing refused.
    pub fn repair(&mut self, id: Uuid, now: i64) -> Result<RepairReport> {
        let refused: HashSet<ChangeHash> = {
            let mut st = self.conn.prepare_cached("SELECT hash FROM refused_changes WHERE doc_id = ?1")?;
            let rows = st.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = HashSet::new();
            for h in rows {
                let h: [u8; 32] = h?.try_into().map_err(|_| CoreError::Document("bad refused hash".into()))?;
                out.insert(ChangeHash(h));
            }
            out
        };
        if refused.is_empty() {
            return Ok(RepairReport::default());
        }
        let mut doc = self.load_doc(id)?;
        let meta: HashMap<ChangeHash, Meta> = doc
            .automerge()
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| (m.hash, Meta { deps: m.deps.clone(), actor: m.actor.into_owned() }))
            .collect();
        let order = causal_order(&meta);
        // Refused steps whose own history was kept are dropped; everything
        // built on them is replayed (this phone's) or dropped (anyone else's).
        let mut dropped: HashSet<ChangeHash> = HashSet::new();
        let mut roots: Vec<ChangeHash> = Vec::new();
        let mut replay: Vec<ChangeHash> = Vec::new();
        for h in &order {
            let on_dropped = meta[h].deps.iter().any(|d| dropped.contains(d));
            if refused.contains(h) && !on_dropped {
                roots.push(*h);
                dropped.insert(*h);
            } else if on_dropped {
                dropped.insert(*h);
                if meta[h].actor == self.actor {
                    replay.push(*h);
                }
            }
        }
        let keep: Vec<ChangeHash> = order.iter().copied().filter(|h| !dropped.contains(h)).collect();
        let mut report = RepairReport { dropped: roots.len() as u64, ..RepairReport::default() };
        let writer = self.writer()?;
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM outbox WHERE doc_id = ?1 AND hash = ?2")?;
            for h in &dropped {
                del.execute(params![id.to_string(), &h.0[..]])?;
            }
        }
        tx.execute("DELETE FROM refused_changes WHERE doc_id = ?1", [id.to_string()])?;
        if keep.is_empty() {
            // The record's creation was refused: nothing of it can reach the
            // server, so it leaves this phone (the user saw why).
            tx.execute("DELETE FROM records WHERE id = ?1", [id.to_string()])?;
            tx.execute("DELETE FROM outbox WHERE doc_id = ?1", [id.to_string()])?;
            tx.commit()?;
            report.removed = true;
            report.skipped = replay.len() as u64;
            return Ok(report);
        }
        let depended: HashSet<ChangeHash> = keep.iter().flat_map(|h| meta[h].deps.iter().copied()).collect();
        let base_heads: Vec<ChangeHash> = keep.iter().copied().filter(|h| !depended.contains(h)).collect();
        let mut base = doc.fork_at(&base_heads, self.actor.clone())?;
        for h in replay {
            let step = (|| -> Result<bool> {
                let before = doc.to_json_at(&meta[&h].deps)?;
                let after = doc.to_json_at(&[h])?;
                let base_record = base.record()?;
                let mut target = base.to_json()?;
                apply_patch(&before, &after, &mut target);
                let mut rec = Record::from_json(&target)?;
                rebase_events(&mut rec, &base_record);
                rec.updated_at = rec.updated_at.max(now);
                rec.validate()?;
                if let Some(w) = &writer {
                    check_write(w, Some(&base_record), &rec, None)?;
                }
                base.update(&rec)
            })();
            match step {
                Ok(true) => report.replayed += 1,
                Ok(false) => {}
                Err(_) => report.skipped += 1,
            }
        }
        let record = base.record()?;
        write_record(&tx, &record, &mut base)?;
        push_outbox(&tx, id, base.changes_since(&base_heads))?;
        tx.execute("UPDATE records SET rejection = NULL WHERE id = ?1", [id.to_string()])?;
        tx.commit()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_appends_events_and_merges_objects() {
        let before = serde_json::json!({"data": {"a": 1, "b": {"x": 1}, "events": [{"id": "e1"}]}});
        let after =
            serde_json::json!({"data": {"a": 2, "b": {"x": 1, "y": 2}, "events": [{"id": "e1"}, {"id": "e3"}]}});
        let mut target =
            serde_json::json!({"data": {"a": 1, "b": {"x": 1, "z": 3}, "events": [{"id": "e1"}, {"id": "e2"}]}});
        apply_patch(&before, &after, &mut target);
        assert_eq!(
            target,
            serde_json::json!({"data": {"a": 2, "b": {"x": 1, "y": 2, "z": 3}, "events": [{"id": "e1"}, {"id": "e2"}, {"id": "e3"}]}})
        );
    }
}
