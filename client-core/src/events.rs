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

use std::collections::{BTreeSet, HashMap};

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

/// A set of event indices as a bitset: ancestor sets of a whole history
/// take n²/64 words, and a membership test is one load.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn with_len(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn insert(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn union_with(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// The result of ordering a history: events in causal order, and for each
/// event the set of its ancestors (indices into the ordered list).
///
/// Everything here is near-linear in the history (a topological sort, then
/// ancestor bitsets), so a history of thousands of events (notes are bounded per
/// author, [`crate::model::MAX_NOTES_PER_AUTHOR`], and a record by its size),
/// concurrent ones included, folds in milliseconds.
pub struct Ordered<'a, A> {
    /// Events in deterministic topological order.
    pub events: Vec<&'a Event<A>>,
    ancestors: Vec<Bits>,
}

impl<'a, A> Ordered<'a, A> {
    /// Order `events` parents-first; ties by depth (the longest chain of
    /// parents from a first event), then time, then id. Parents that are not
    /// in the history are ignored; duplicate ids keep their first copy;
    /// events on a parent cycle (only possible in a hostile document) sort
    /// last.
    pub fn new(events: &'a [Event<A>]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        let mut unique: Vec<&'a Event<A>> = Vec::with_capacity(events.len());
        for e in events {
            if !index.contains_key(e.id.as_str()) {
                index.insert(e.id.as_str(), unique.len());
                unique.push(e);
            }
        }
        let n = unique.len();
        // Parents as indices, without self links or duplicates.
        let parents: Vec<Vec<usize>> = unique
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut p: Vec<usize> =
                    e.parents.iter().filter_map(|p| index.get(p.as_str()).copied()).filter(|&j| j != i).collect();
                p.sort_unstable();
                p.dedup();
                p
            })
            .collect();
        // Depth by Kahn's algorithm: a node's depth is one more than its
        // deepest parent; nodes never freed sit on or behind a cycle.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting: Vec<usize> = vec![0; n];
        for (i, ps) in parents.iter().enumerate() {
            waiting[i] = ps.len();
            for &p in ps {
                children[p].push(i);
            }
        }
        let mut depth: Vec<usize> = vec![n; n];
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        for &i in &ready {
            depth[i] = 0;
        }
        while let Some(i) = ready.pop() {
            for &c in &children[i] {
                let d = depth[i] + 1;
                if depth[c] == n || depth[c] < d {
                    depth[c] = d;
                }
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push(c);
                }
            }
        }
        for i in 0..n {
            if waiting[i] > 0 {
                depth[i] = n;
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            (depth[a], unique[a].at, unique[a].id.as_str()).cmp(&(depth[b], unique[b].at, unique[b].id.as_str()))
        });
        let mut position = vec![0usize; n];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut ancestors: Vec<Bits> = Vec::with_capacity(n);
        for (pos, &i) in order.iter().enumerate() {
            let mut set = Bits::with_len(n);
            for &p in &parents[i] {
                let j = position[p];
                if j < pos {
                    set.insert(j);
                    let parent_set = ancestors[j].clone();
                    set.union_with(&parent_set);
                }
            }
            ancestors.push(set);
        }
        Ordered { events: order.into_iter().map(|i| unique[i]).collect(), ancestors }
    }

    /// Whether event `i` has seen event `j`.
    pub fn descends(&self, i: usize, j: usize) -> bool {
        self.ancestors.get(i).is_some_and(|a| a.contains(j))
    }

    /// Whether neither event has seen the other.
    pub fn concurrent(&self, i: usize, j: usize) -> bool {
        i != j && !self.descends(i, j) && !self.descends(j, i)
    }
}

impl<A: HistoryAction> Ordered<'_, A> {
    /// Open conflicts, and the indices of events overruled by a settlement.
    /// Quadratic in the history at worst (every pair of concurrent events
    /// is compared once); settlements are looked up by the event they keep.
    pub fn conflicts(&self) -> (Vec<Conflict>, BTreeSet<usize>) {
        let mut open = Vec::new();
        let mut overruled = BTreeSet::new();
        let index: HashMap<&str, usize> = self.events.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
        // For each event, the settlements that keep it.
        let mut keeping: HashMap<usize, Vec<usize>> = HashMap::new();
        for (s, e) in self.events.iter().enumerate() {
            if let Some(kept) = e.action.settles().and_then(|k| index.get(k)) {
                keeping.entry(*kept).or_default().push(s);
            }
        }
        for i in 0..self.events.len() {
            for j in (i + 1)..self.events.len() {
                if !self.concurrent(i, j) {
                    continue;
                }
                let Some(reason) = self.events[i].action.conflicts_with(&self.events[j].action) else {
                    continue;
                };
                // The first settlement (in causal order) that has seen both
                // and keeps one of them.
                let settlement = [i, j]
                    .iter()
                    .flat_map(|k| keeping.get(k).into_iter().flatten().map(move |s| (*s, *k)))
                    .filter(|(s, _)| self.descends(*s, i) && self.descends(*s, j))
                    .min_by_key(|(s, _)| *s)
                    .map(|(_, kept)| kept);
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::model::{DisputeAction, DisputeCategory, DisputeLevel};

    /// The fold as it was first written (cubic in the history): the new one
    /// must order and settle every acyclic history exactly as it did, since
    /// phones of both versions derive statuses from the same histories.
    mod reference {
        use super::*;

        pub struct Ordered<'a, A> {
            pub events: Vec<&'a Event<A>>,
            ancestors: Vec<BTreeSet<usize>>,
        }

        impl<'a, A: HistoryAction> Ordered<'a, A> {
            pub fn new(events: &'a [Event<A>]) -> Self {
                let mut by_id: HashMap<&str, &Event<A>> = HashMap::new();
                for e in events {
                    by_id.entry(e.id.as_str()).or_insert(e);
                }
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

            fn descends(&self, i: usize, j: usize) -> bool {
                self.ancestors[i].contains(&j)
            }

            fn concurrent(&self, i: usize, j: usize) -> bool {
                i != j && !self.descends(i, j) && !self.descends(j, i)
            }

            pub fn conflicts(&self) -> (Vec<Conflict>, BTreeSet<usize>) {
                let mut open = Vec::new();
                let mut overruled = BTreeSet::new();
                let index: BTreeMap<&str, usize> =
                    self.events.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
                for i in 0..self.events.len() {
                    for j in (i + 1)..self.events.len() {
                        if !self.concurrent(i, j) {
                            continue;
                        }
                        let Some(reason) = self.events[i].action.conflicts_with(&self.events[j].action) else {
                            continue;
                        };
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
    }

    /// A random acyclic history: event `i` names up to two earlier events
    /// as parents; actions are drawn so that conflicts and settlements (of
    /// events that exist) occur.
    fn history(spec: &[(u8, u8, u8, i64)]) -> Vec<Event<DisputeAction>> {
        let mut out: Vec<Event<DisputeAction>> = Vec::new();
        for (i, &(kind, p1, p2, at)) in spec.iter().enumerate() {
            let mut parents = Vec::new();
            if i > 0 {
                parents.push(out[p1 as usize % i].id.clone());
                if p2 % 3 == 0 {
                    parents.push(out[p2 as usize % i].id.clone());
                }
            }
            let action = match kind % 7 {
                0 => DisputeAction::Resolved { note: format!("r{}", kind % 3) },
                1 => DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() },
                2 => DisputeAction::Classified { category: DisputeCategory::Land, note: String::new() },
                3 => DisputeAction::Classified { category: DisputeCategory::Debt, note: String::new() },
                4 if i > 0 => DisputeAction::Settled { kept: out[p2 as usize % i].id.clone(), note: String::new() },
                5 => DisputeAction::Stabilized { note: String::new() },
                _ => DisputeAction::FollowUp { note: String::new() },
            };
            out.push(Event { id: format!("e{:03}", (i * 37) % 1000), at, by: "u".into(), parents, action });
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_fast_fold_orders_and_settles_like_the_reference(
            spec in proptest::collection::vec((0u8..14, 0u8..255, 0u8..255, 0i64..20), 1..40),
        ) {
            let events = history(&spec);
            let fast = Ordered::new(&events);
            let slow = reference::Ordered::new(&events);
            let ids = |v: &[&Event<DisputeAction>]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&fast.events), ids(&slow.events));
            prop_assert_eq!(fast.conflicts(), slow.conflicts());
        }
    }

    /// Three hundred concurrent resolutions, then a chain: every pair is an
    /// open conflict (the bench measures how fast such a history folds).
    #[test]
    fn many_concurrent_steps_are_each_a_listed_conflict() {
        let root = Event {
            id: "root".into(),
            at: 0,
            by: "u".into(),
            parents: vec![],
            action: DisputeAction::FollowUp { note: String::new() },
        };
        let mut events = vec![root];
        for i in 0..300 {
            events.push(Event {
                id: format!("r{i:03}"),
                at: 1,
                by: "u".into(),
                parents: vec!["root".into()],
                action: DisputeAction::Resolved { note: format!("{i}") },
            });
        }
        let mut prev = "r299".to_owned();
        for i in 0..300 {
            let id = format!("c{i:03}");
            events.push(Event {
                id: id.clone(),
                at: 2,
                by: "u".into(),
                parents: vec![prev.clone()],
                action: DisputeAction::FollowUp { note: String::new() },
            });
            prev = id;
        }
        let o = Ordered::new(&events);
        let (open, _) = o.conflicts();
        assert_eq!(open.len(), 300 * 299 / 2);
    }
}
