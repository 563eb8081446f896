//! Append-only event histories and the deterministic rules that derive a
//! record's status from them.
//!
//! Disputes and hazards keep their history as a list of immutable events.
//! Each event names the events its author had seen (`parents`, the heads of
//! the history when it was written), so the history is a DAG even after two
//! people appended offline at the same time. The status is a fold over the
//! events in a deterministic topological order, so every replica that holds
//! the same events derives the same status, whatever order the Automerge
//! list ended up in. Two *concurrent* events that the domain cannot reconcile
//! (one resolved while the other escalated) are a [`Conflict`] that stays
//! visible until a `settled` event that has seen both picks one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// One entry in an append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event<A> {
    /// Unique id (UUID string).
    pub id: String,
    /// When it happened, milliseconds since the Unix epoch.
    pub at: i64,
    /// User id of the person who recorded it.
    pub by: String,
    /// Ids of the latest events the author had seen when recording this one.
    #[serde(default)]
    pub parents: Vec<String>,
    /// What happened.
    pub action: A,
}

/// A pair of concurrent events that cannot both stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Id of the first event (the smaller id).
    pub a: String,
    /// Id of the second event.
    pub b: String,
    /// Why they conflict, in Chinese, for the village leader.
    pub reason_zh: String,
}

/// Actions that can take part in history-level conflicts.
pub trait HistoryAction {
    /// If `self` and `other` were recorded concurrently, why they cannot both
    /// stand (in Chinese), or `None` when they merge on their own.
    fn conflicts_with(&self, other: &Self) -> Option<String>;
    /// If this action settles a conflict, the id of the event it keeps.
    fn settles(&self) -> Option<&str>;
}

/// Heads of a history: the events no other event names as a parent. A new
/// event takes these as its `parents`.
pub fn heads<A>(events: &[Event<A>]) -> Vec<String> {
    let named: BTreeSet<&str> = events.iter().flat_map(|e| e.parents.iter().map(String::as_str)).collect();
    let mut h: Vec<String> = events.iter().filter(|e| !named.contains(e.id.as_str())).map(|e| e.id.clone()).collect();
    h.sort();
    h.dedup();
    h
}

/// The result of ordering a history: events in causal order, and for each
/// event the set of its ancestors (indices into the ordered list).
pub struct Ordered<'a, A> {
    /// Events in deterministic topological order.
    pub events: Vec<&'a Event<A>>,
    ancestors: Vec<BTreeSet<usize>>,
}

impl<'a, A> Ordered<'a, A> {
    /// Order `events` parents-first; ties by time, then id. Parents that are
    /// not in the history are ignored; duplicate ids keep their first copy.
    pub fn new(events: &'a [Event<A>]) -> Self {
        let mut by_id: HashMap<&str, &Event<A>> = HashMap::new();
        for e in events {
            by_id.entry(e.id.as_str()).or_insert(e);
        }
        // Depth = longest path from a root; computed iteratively to stay
        // safe on hostile (cyclic) parent links: a cycle gets depth cut off.
        let mut depth: HashMap<&str, usize> = HashMap::new();
        let n = by_id.len();
        let ids: BTreeSet<&str> = by_id.keys().copied().collect();
        for _ in 0..=n {
            let mut changed = false;
            for id in &ids {
                let e = by_id[id];
                let d = e
                    .parents
                    .iter()
                    .filter(|p| p.as_str() != *id)
                    .filter_map(|p| depth.get(p.as_str()).map(|d| d + 1))
                    .max()
                    .unwrap_or(0)
                    .min(n);
                if depth.get(id) != Some(&d) {
                    depth.insert(id, d);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut ordered: Vec<&Event<A>> = by_id.values().copied().collect();
        ordered.sort_by(|a, b| {
            (depth[a.id.as_str()], a.at, a.id.as_str()).cmp(&(depth[b.id.as_str()], b.at, b.id.as_str()))
        });
        let index: HashMap<&str, usize> = ordered.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
        let mut ancestors: Vec<BTreeSet<usize>> = Vec::with_capacity(ordered.len());
        for (i, e) in ordered.iter().enumerate() {
            let mut set = BTreeSet::new();
            for p in &e.parents {
                if let Some(&j) = index.get(p.as_str())
                    && j < i
                {
                    set.insert(j);
                    set.extend(ancestors[j].iter().copied());
                }
            }
            ancestors.push(set);
        }
        Ordered { events: ordered, ancestors }
    }

    /// Whether event `i` has seen event `j`.
    pub fn descends(&self, i: usize, j: usize) -> bool {
        self.ancestors[i].contains(&j)
    }

    /// Whether neither event has seen the other.
    pub fn concurrent(&self, i: usize, j: usize) -> bool {
        i != j && !self.descends(i, j) && !self.descends(j, i)
    }
}

impl<A: HistoryAction> Ordered<'_, A> {
    /// Open conflicts, and the indices of events overruled by a settlement.
    pub fn conflicts(&self) -> (Vec<Conflict>, BTreeSet<usize>) {
        let mut open = Vec::new();
        let mut overruled = BTreeSet::new();
        let index: BTreeMap<&str, usize> = self.events.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
        for i in 0..self.events.len() {
            for j in (i + 1)..self.events.len() {
                if !self.concurrent(i, j) {
                    continue;
                }
                let Some(reason) = self.events[i].action.conflicts_with(&self.events[j].action) else {
                    continue;
                };
                // A settlement that has seen both and keeps one of them.
                let settlement = (0..self.events.len()).find_map(|s| {
                    let kept = self.events[s].action.settles()?;
                    let kept = *index.get(kept)?;
                    (self.descends(s, i) && self.descends(s, j) && (kept == i || kept == j)).then_some(kept)
                });
                match settlement {
                    Some(kept) => {
                        overruled.insert(if kept == i { j } else { i });
                    }
                    None => {
                        let (a, b) = (&self.events[i].id, &self.events[j].id);
                        let (a, b) = if a < b { (a, b) } else { (b, a) };
                        open.push(Conflict { a: a.clone(), b: b.clone(), reason_zh: reason });
                    }
                }
            }
        }
        (open, overruled)
    }
}
