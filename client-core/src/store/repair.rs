//! Repairing a record whose changes a server refused: the refused step is
//! taken out of the record's document and the user's later steps on it are
//! replayed as new changes, so the rest of the work reaches the server.
//!
//! A refused change stays in the phone's document until then (the field
//! worker sees the record as they wrote it, with the reason), and changes
//! that build on it would be refused with it; so the next edit of the
//! record repairs it first ([`Store::edit`], and the phone API's edits), and
//! a bare [`Store::update`] waits for the repair (`CoreError::NeedsRepair`).
//! The repair is a rebase: the document is rebuilt at the changes the
//! server kept, and each later step of this phone's is applied again as the
//! difference it made, judged again by the write rules.
//!
//! Nothing is dropped behind the user's back: every refused step of this
//! phone's, and every later step that could not be applied again, is kept
//! in `refused_steps` (the record before and after it, and why), listed by
//! [`Store::refused_steps`] until the user dismisses it.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{ActorId, ChangeHash};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Rejection, Store, push_outbox, write_record};
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
    /// from this phone (its steps are kept, see `kept`).
    pub removed: bool,
    /// Steps of this phone's taken out of the record (the refused ones and
    /// the skipped ones), kept with why for the user to see
    /// ([`Store::refused_steps`]).
    #[serde(default)]
    pub kept: u64,
}

/// A step of this phone's that a server refused (or that relied on one),
/// taken out of its record by a repair and kept for the user to see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedStep {
    /// The record.
    pub doc_id: Uuid,
    /// The change's hash.
    pub hash: [u8; 32],
    /// The server's reason code (`too_large`, `invalid`...).
    pub reason: String,
    /// Why, in Chinese.
    pub message_zh: String,
    /// When it was refused (ms).
    pub refused_at: i64,
    /// The record before the step (`None` for its creation), as JSON.
    pub before: Option<Value>,
    /// The record the step made, as JSON.
    pub after: Value,
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

/// The record before change `h` (at its dependencies `deps`) and after it, as JSON text.
fn step_json(doc: &crate::doc::RecordDoc, deps: &[ChangeHash], h: ChangeHash) -> Result<(Option<String>, String)> {
    let before = if deps.is_empty() { None } else { Some(doc.to_json_at(deps)?.to_string()) };
    Ok((before, doc.to_json_at(&[h])?.to_string()))
}

/// A step kept aside: its hash, reason code, Chinese message, when it was
/// refused, and the record before and after it (JSON text).
type KeptStep = (ChangeHash, String, String, i64, Option<String>, String);

/// Keep `steps` of record `id` in `refused_steps`.
fn keep_steps(tx: &rusqlite::Transaction<'_>, id: Uuid, steps: &[KeptStep]) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO refused_steps (doc_id, hash, reason, message_zh, refused_at, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(doc_id, hash) DO NOTHING",
    )?;
    for (h, reason, message, at, before, after) in steps {
        st.execute(params![id.to_string(), &h.0[..], reason, message, at, before, after])?;
    }
    Ok(())
}

impl Store {
    /// Steps of this phone's that a server refused and a repair took out of
    /// their records, oldest first, until the user dismisses them.
    pub fn refused_steps(&self) -> Result<Vec<RefusedStep>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc_id, hash, reason, message_zh, refused_at, before, after FROM refused_steps
             ORDER BY refused_at, doc_id, hash",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let bad = |e: String| CoreError::Document(e);
        let mut out = Vec::new();
        for row in rows {
            let (doc, hash, reason, message_zh, refused_at, before, after) = row?;
            out.push(RefusedStep {
                doc_id: Uuid::parse_str(&doc).map_err(|e| bad(e.to_string()))?,
                hash: hash.try_into().map_err(|_| bad("bad refused step hash".into()))?,
                reason,
                message_zh,
                refused_at,
                before: before.map(|b| serde_json::from_str(&b)).transpose().map_err(|e| bad(e.to_string()))?,
                after: serde_json::from_str(&after).map_err(|e| bad(e.to_string()))?,
            });
        }
        Ok(out)
    }

    /// The user has seen a kept refused step and lets it go.
    pub fn dismiss_refused_step(&mut self, doc_id: Uuid, hash: &[u8; 32]) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM refused_steps WHERE doc_id = ?1 AND hash = ?2",
            params![doc_id.to_string(), &hash[..]],
        )?;
        tx.execute(
            "UPDATE records SET rejection = NULL WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM refused_changes WHERE doc_id = ?1)
             AND NOT EXISTS (SELECT 1 FROM refused_steps WHERE doc_id = ?1)",
            [doc_id.to_string()],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Repair a record the server refused changes of: drop the refused
    /// steps, replay this phone's later steps as new changes (judged again
    /// by the write rules), and queue them for the next sync. Harmless on a
    /// record with nothing refused.
    pub fn repair(&mut self, id: Uuid, now: i64) -> Result<RepairReport> {
        let refused: HashMap<ChangeHash, (String, String, i64)> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT hash, reason, message_zh, refused_at FROM refused_changes WHERE doc_id = ?1")?;
            let rows = st.query_map([id.to_string()], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (h, reason, message, at) = row?;
                let h: [u8; 32] = h.try_into().map_err(|_| CoreError::Document("bad refused hash".into()))?;
                out.insert(ChangeHash(h), (reason, message, at));
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
            if refused.contains_key(h) && !on_dropped {
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
        // What each step of this phone's taken out was, and why: kept.
        let mut kept: Vec<KeptStep> = Vec::new();
        let first = roots.iter().find_map(|h| refused.get(h)).cloned();
        for h in &roots {
            if meta[h].actor != self.actor {
                continue;
            }
            let (reason, message, at) = refused[h].clone();
            let (before, after) = step_json(&doc, &meta[h].deps, *h)?;
            kept.push((*h, reason, message, at, before, after));
        }
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
            // server, so it leaves this phone's records; its steps are kept.
            let (reason, message, at) = first.clone().unwrap_or_default();
            for h in &replay {
                let (before, after) = step_json(&doc, &meta[h].deps, *h)?;
                kept.push((*h, reason.clone(), format!("依赖于被拒绝的修改（{message}）"), at, before, after));
            }
            keep_steps(&tx, id, &kept)?;
            report.kept = kept.len() as u64;
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
                rec.validate_step(Some(&base_record))?;
                if let Some(w) = &writer {
                    check_write(w, Some(&base_record), &rec, None)?;
                }
                base.update(&rec)
            })();
            match step {
                Ok(true) => report.replayed += 1,
                Ok(false) => {}
                Err(e) => {
                    report.skipped += 1;
                    let (reason, message, at) = first.clone().unwrap_or_default();
                    let why = format!("依赖于被拒绝的修改（{message}）：{}", e.message_zh());
                    let (before, after) = step_json(&doc, &meta[&h].deps, h)?;
                    kept.push((h, reason, why, at, before, after));
                }
            }
        }
        keep_steps(&tx, id, &kept)?;
        report.kept = kept.len() as u64;
        let record = base.record()?;
        write_record(&tx, &record, &mut base)?;
        push_outbox(&tx, id, base.changes_since(&base_heads))?;
        // The record still says why while a kept step waits to be seen.
        let shown = first.filter(|_| !kept.is_empty()).map(|(code, message_zh, _)| Rejection { code, message_zh });
        let shown =
            shown.map(|r| serde_json::to_string(&r)).transpose().map_err(|e| CoreError::Document(e.to_string()))?;
        tx.execute("UPDATE records SET rejection = ?2 WHERE id = ?1", params![id.to_string(), shown])?;
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
