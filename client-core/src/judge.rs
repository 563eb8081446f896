//! Judging received changes one at a time, in causal order, each against
//! the state at its own dependencies.
//!
//! A phone is never trusted. Checking only the merged end state of a batch
//! of changes lets a change that breaks a rule hide behind a later one that
//! repairs it (readers that receive the first alone cannot apply it), lets
//! a change claim to have been made on an older state than it was, and lets
//! a device write under another device's actor id. So for every change
//! that is not stored yet, [`judge`] checks, before it is kept:
//!
//! - its size (bytes and operations), and that it carries nothing the
//!   record writer never writes (an author, a message, extra bytes);
//! - that its actor is the pushing device's registered actor, its sequence
//!   number is the next of that actor's, it builds on that actor's previous
//!   change, and its first operation counter follows its dependencies (so
//!   no change can claim a counter that makes it win every conflict);
//! - that it is the record's only root, if it has no dependencies;
//! - that the record at its dependencies, with it applied, is readable
//!   under the strict schema, valid, and a step the writer may take
//!   ([`crate::rules::check_write`], judged against that state and the
//!   record's current state).
//!
//! A change that fails is refused with its reason; changes that depend on
//! it are refused with it; the causally closed rest is kept, so an honest
//! step is never lost because a later one broke a rule.

use std::collections::{HashMap, HashSet};

use automerge::{ActorId, Change, ChangeHash};
use uuid::Uuid;

use crate::doc::{RecordDoc, guarded, parse_change};
use crate::error::{CoreError, Result};
use crate::model::Record;
use crate::protocol::RejectReason;
use crate::rules::{Writer, check_write};

/// Largest single change accepted, in bytes. The largest honest change is a
/// new record with a full patrol route (2,000 points, about 40 KB).
pub const MAX_CHANGE_BYTES: usize = 256 * 1024;
/// Most operations in a single change.
pub const MAX_CHANGE_OPS: usize = 20_000;
/// Size of a record (compacted, plus the changes of a request) past which
/// only the people who handle it may still add to it: a record cannot be
/// filled to its limit by someone so that its handlers can no longer act.
pub const MAX_DOC_BYTES: usize = 1024 * 1024;
/// Largest compacted record kept at all.
pub const HARD_MAX_DOC_BYTES: usize = 2 * 1024 * 1024;
/// Room past [`HARD_MAX_DOC_BYTES`] for the steps that close a record
/// ([`crate::rules::closes`]), which no size limit refuses: they can only
/// happen a few times in a row, so this absolute bound on a stored record
/// (the memory one merge may need) is never what refuses them.
pub const CLOSING_ROOM_BYTES: usize = 256 * 1024;

/// Which Automerge actor may have written the changes being judged.
#[derive(Debug, Clone, Copy)]
pub enum Actors<'a> {
    /// Only the pushing device's registered actor id.
    Device(&'a [u8]),
    /// The server itself made these changes (a web form): any actor.
    Server,
}

/// One refused change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its hash, when it could be parsed.
    pub hash: Option<[u8; 32]>,
    /// Why.
    pub reason: RejectReason,
    /// Detail for the user, in Chinese.
    pub detail: String,
    /// Refused only because it builds on another refused change.
    pub dependent: bool,
}

/// What [`judge`] decided for one record.
#[derive(Debug)]
pub struct Verdict {
    /// Changes not stored before that are kept, in causal order.
    pub accepted: Vec<Change>,
    /// Hashes of changes that were already stored.
    pub known: Vec<[u8; 32]>,
    /// Refused changes, with reasons.
    pub refused: Vec<Refused>,
    /// The record before these changes (the stored state), if any.
    pub before: Option<Record>,
    /// The merged record after the accepted changes, when any were accepted.
    pub after: Option<Record>,
    /// The compacted document after the accepted changes, when any were accepted.
    pub snapshot: Option<Vec<u8>>,
}

/// Cached facts about the changes in the working document.
#[derive(Default)]
struct Graph {
    max_op: HashMap<ChangeHash, u64>,
    deps: HashMap<ChangeHash, Vec<ChangeHash>>,
    last: HashMap<ActorId, (u64, ChangeHash)>,
}

impl Graph {
    fn of(doc: &mut RecordDoc) -> Graph {
        let mut g = Graph::default();
        for m in doc.automerge().get_changes_meta(&[]) {
            g.max_op.insert(m.hash, m.max_op);
            g.deps.insert(m.hash, m.deps.clone());
            let e = g.last.entry(m.actor.into_owned()).or_insert((0, m.hash));
            if m.seq > e.0 {
                *e = (m.seq, m.hash);
            }
        }
        g
    }

    fn add(&mut self, c: &Change) {
        self.max_op.insert(c.hash(), c.max_op());
        self.deps.insert(c.hash(), c.deps().to_vec());
        self.last.insert(c.actor_id().clone(), (c.seq(), c.hash()));
    }

    fn has(&self, h: &ChangeHash) -> bool {
        self.max_op.contains_key(h)
    }

    /// Whether `target` is one of `from` or an ancestor of them.
    fn reaches(&self, from: &[ChangeHash], target: &ChangeHash) -> bool {
        let mut seen: HashSet<ChangeHash> = HashSet::new();
        let mut stack: Vec<ChangeHash> = from.to_vec();
        while let Some(h) = stack.pop() {
            if &h == target {
                return true;
            }
            if seen.insert(h)
                && let Some(d) = self.deps.get(&h)
            {
                stack.extend(d.iter().copied());
            }
        }
        false
    }
}

fn refuse(hash: Option<[u8; 32]>, reason: RejectReason, detail: impl Into<String>) -> Refused {
    Refused { hash, reason, detail: detail.into(), dependent: false }
}

fn load(stored: Option<&[u8]>, accepted: &[Change]) -> Result<RecordDoc> {
    // The server writes nothing of its own into records; this actor id is
    // never used in a change.
    let actor = ActorId::from([0u8; 16]);
    let mut doc = match stored {
        Some(b) => guarded(|| RecordDoc::load(b, actor.clone()))?,
        None => RecordDoc::empty(actor),
    };
    if !accepted.is_empty() {
        let changes = accepted.to_vec();
        guarded(|| doc.apply(changes))?;
    }
    Ok(doc)
}

fn sorted(h: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut v = h.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Judge `raw` changes for record `doc_id`, whose stored compacted
/// document is `stored` (`None` if the record is new), as written by
/// `writer` from a device whose actors are `actors`.
pub fn judge(stored: Option<&[u8]>, doc_id: Uuid, raw: &[Vec<u8>], writer: &Writer, actors: Actors<'_>) -> Verdict {
    judge_with(stored, doc_id, raw, writer, actors, true)
}

/// [`judge`], with a chain of changes applied at once (`batch`) or one at
/// a time (the tests check that both give the same verdict).
fn judge_with(
    stored: Option<&[u8]>,
    doc_id: Uuid,
    raw: &[Vec<u8>],
    writer: &Writer,
    actors: Actors<'_>,
    batch: bool,
) -> Verdict {
    let mut v = Verdict { accepted: vec![], known: vec![], refused: vec![], before: None, after: None, snapshot: None };
    let mut parsed: Vec<Change> = Vec::with_capacity(raw.len());
    let mut seen: HashSet<ChangeHash> = HashSet::new();
    for bytes in raw {
        match parse_change(bytes) {
            Ok(c) => {
                if seen.insert(c.hash()) {
                    parsed.push(c);
                }
            }
            Err(_) => v.refused.push(refuse(None, RejectReason::Malformed, "修改数据无法解析")),
        }
    }
    let mut doc = match load(stored, &[]) {
        Ok(d) => d,
        Err(e) => {
            tracing_error(doc_id, &e);
            v.refused.extend(
                parsed.iter().map(|c| refuse(Some(c.hash().0), RejectReason::Malformed, "服务器上的记录无法读取")),
            );
            return v;
        }
    };
    if stored.is_some() {
        match guarded(|| doc.record()) {
            Ok(r) => v.before = Some(r),
            Err(e) => {
                tracing_error(doc_id, &e);
                v.refused.extend(
                    parsed.iter().map(|c| refuse(Some(c.hash().0), RejectReason::Malformed, "服务器上的记录无法读取")),
                );
                return v;
            }
        }
    }
    let mut pending: Vec<Change> = Vec::new();
    for c in parsed {
        if doc.automerge().get_change_meta_by_hash(&c.hash()).is_some() {
            v.known.push(c.hash().0);
        } else {
            pending.push(c);
        }
    }
    if pending.is_empty() {
        return v;
    }
    let before = v.before.clone();
    let first_alone = stored.is_none() && pending.len() == 1;
    let fresh = |mut doc: RecordDoc| Judging {
        first_alone,
        shortcut: false,
        size: stored.map_or(0, <[u8]>::len),
        stored,
        doc_id,
        writer,
        actors,
        graph: Graph::of(&mut doc),
        doc,
        current: before.clone(),
        accepted: vec![],
    };
    let mut j = fresh(doc);
    let pending_hashes: HashSet<ChangeHash> = pending.iter().map(Change::hash).collect();
    let mut outcome: HashMap<ChangeHash, Option<(RejectReason, String)>> = HashMap::new();
    let mut remaining = pending;
    if batch && remaining.len() >= 2 && is_chain_on(&remaining, &j.doc.heads()) {
        if j.judge_chain(&remaining) {
            remaining.clear();
        } else {
            // One of them is refused: judge them one at a time, from the
            // stored record, for the refusal and its reasons.
            match load(stored, &[]) {
                Ok(d) => j = fresh(d),
                Err(e) => {
                    tracing_error(doc_id, &e);
                    v.refused.extend(
                        remaining
                            .iter()
                            .map(|c| refuse(Some(c.hash().0), RejectReason::Malformed, "服务器上的记录无法读取")),
                    );
                    return v;
                }
            }
        }
    }
    loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for c in std::mem::take(&mut remaining) {
            let mut wait = false;
            let mut missing = false;
            let mut refused_dep: Option<(RejectReason, String)> = None;
            for d in c.deps() {
                if j.graph.has(d) {
                    continue;
                }
                match outcome.get(d) {
                    Some(Some(r)) => refused_dep = Some(r.clone()),
                    Some(None) => {}
                    None if pending_hashes.contains(d) => wait = true,
                    None => missing = true,
                }
            }
            let dependent = refused_dep.is_some();
            let verdict = if let Some((reason, detail)) = refused_dep {
                let detail = if detail.starts_with("依赖于") {
                    detail
                } else {
                    format!("依赖于被拒绝的修改（{detail}）")
                };
                Some((reason, detail))
            } else if missing {
                Some((RejectReason::MissingDependencies, RejectReason::MissingDependencies.label_zh().to_owned()))
            } else if wait {
                waiting.push(c);
                continue;
            } else {
                j.judge_one(&c).err()
            };
            progressed = true;
            if let Some((reason, detail)) = &verdict {
                v.refused.push(Refused { dependent, ..refuse(Some(c.hash().0), *reason, detail.clone()) });
            }
            outcome.insert(c.hash(), verdict);
        }
        remaining = waiting;
        if remaining.is_empty() || !progressed {
            break;
        }
    }
    for c in remaining {
        v.refused.push(refuse(
            Some(c.hash().0),
            RejectReason::MissingDependencies,
            RejectReason::MissingDependencies.label_zh(),
        ));
    }
    if !j.accepted.is_empty() {
        let snapshot = match (&j.accepted[..], j.shortcut) {
            ([only], true) => crate::doc::first_change_snapshot(only),
            _ => j.doc.save_snapshot(),
        };
        if snapshot.len() > HARD_MAX_DOC_BYTES + CLOSING_ROOM_BYTES {
            let detail = format!("记录超过{}KB上限", HARD_MAX_DOC_BYTES / 1024);
            v.refused
                .extend(j.accepted.iter().map(|c| refuse(Some(c.hash().0), RejectReason::TooLarge, detail.clone())));
            return v;
        }
        v.snapshot = Some(snapshot);
        v.after = j.current.clone();
        v.accepted = j.accepted;
    }
    v
}

/// Whether `changes` are one chain: the first built on exactly `heads`
/// (sorted), each other on exactly the one before it.
fn is_chain_on(changes: &[Change], heads: &[ChangeHash]) -> bool {
    let Some(first) = changes.first() else { return false };
    sorted(first.deps()) == heads && changes.windows(2).all(|w| w[1].deps() == [w[0].hash()])
}

fn tracing_error(doc_id: Uuid, e: &CoreError) {
    // The core has no logger; the server logs what it is told. Keep the
    // record id only: nothing of the record's content reaches a log.
    let _ = (doc_id, e);
}

struct Judging<'a> {
    /// The change being judged is a new record's only change: it may be
    /// read without Automerge ([`crate::doc::first_change_tree`]).
    first_alone: bool,
    /// It was: `doc` does not hold it, and its snapshot is its own bytes.
    shortcut: bool,
    /// The stored record's size plus the changes accepted so far.
    size: usize,
    stored: Option<&'a [u8]>,
    doc_id: Uuid,
    writer: &'a Writer,
    actors: Actors<'a>,
    /// Stored changes plus those accepted so far, nothing else.
    doc: RecordDoc,
    graph: Graph,
    /// The record in `doc`'s current state.
    current: Option<Record>,
    accepted: Vec<Change>,
}

type Verdict1 = std::result::Result<(), (RejectReason, String)>;

impl Judging<'_> {
    fn judge_one(&mut self, c: &Change) -> Verdict1 {
        self.check_header(c)?;
        if self.first_alone
            && self.graph.max_op.is_empty()
            && let Ok(Some(tree)) = guarded(|| Ok(crate::doc::first_change_tree(c)))
        {
            let after = self.judged_state(None, &tree)?;
            self.keep(c, after, None)?;
            self.shortcut = true;
            return Ok(());
        }

        let deps = sorted(c.deps());
        let linear = deps == self.doc.heads();
        if let Err(e) = guarded(|| self.doc.apply(vec![c.clone()])) {
            self.rebuild();
            return Err((RejectReason::Malformed, format!("修改无法应用：{}", e.message_zh())));
        }
        let kept = self.check_applied(c, &deps, linear).and_then(|(after, merged)| self.keep(c, after, merged));
        if kept.is_err() {
            self.rebuild();
        }
        kept
    }

    /// Judge `chain`, changes each built on the one before and the first
    /// on the document's heads (a phone's consecutive edits), with one
    /// Automerge apply for all of them: each is judged against the state at
    /// its dependencies, read back at its own hash, exactly as
    /// [`Judging::judge_one`] would judge it; Automerge's cost of an apply
    /// on a loaded document is mostly per call (about 35 µs, against 25 µs
    /// a change). Keeps all of them and returns true, or, at the first one
    /// that is refused, returns false having changed nothing the caller
    /// keeps: the caller starts again from the stored record, one change at
    /// a time, so a refusal and its reasons come out as they always do.
    fn judge_chain(&mut self, chain: &[Change]) -> bool {
        for c in chain {
            if self.check_header(c).is_err() {
                return false;
            }
            self.graph.add(c);
        }
        if guarded(|| self.doc.apply(chain.to_vec())).is_err() {
            return false;
        }
        for (i, c) in chain.iter().enumerate() {
            let tree = if i + 1 == chain.len() {
                guarded(|| self.doc.to_json())
            } else {
                guarded(|| self.doc.to_json_at(&[c.hash()]))
            };
            let Ok(tree) = tree else { return false };
            let before = self.current.clone();
            if self.judged_state(before.as_ref(), &tree).and_then(|after| self.keep(c, after, None)).is_err() {
                return false;
            }
        }
        true
    }

    fn check_header(&self, c: &Change) -> Verdict1 {
        let bad = |reason: RejectReason, detail: &str| Err((reason, detail.to_owned()));
        if c.raw_bytes().len() > MAX_CHANGE_BYTES || c.len() > MAX_CHANGE_OPS {
            return bad(RejectReason::TooLarge, &format!("单次修改过大（上限{}KB）", MAX_CHANGE_BYTES / 1024));
        }
        if c.author().is_some() || c.message().is_some() || !c.extra_bytes().is_empty() {
            return bad(RejectReason::Malformed, "修改含有不支持的附加数据");
        }
        if let Actors::Device(mine) = self.actors
            && c.actor_id().to_bytes() != mine
        {
            return bad(RejectReason::Forbidden, "修改的设备标识不属于本设备，不能以其他设备的名义写入");
        }
        if c.deps().is_empty() && !self.graph.max_op.is_empty() {
            return bad(RejectReason::Immutable, "记录的历史不能替换");
        }
        let (last_seq, last_hash) = match self.graph.last.get(c.actor_id()) {
            Some((s, h)) => (*s, Some(*h)),
            None => (0, None),
        };
        if c.seq() != last_seq + 1 {
            return bad(RejectReason::Malformed, "该设备的修改序号重复或不连续");
        }
        if let Some(h) = last_hash
            && !self.graph.reaches(c.deps(), &h)
        {
            return bad(RejectReason::Malformed, "修改没有接在本设备之前的修改之后");
        }
        let expected_start = 1 + c.deps().iter().filter_map(|d| self.graph.max_op.get(d)).copied().max().unwrap_or(0);
        if c.start_op().get() != expected_start {
            return bad(RejectReason::Malformed, "修改的操作编号与其依赖不符");
        }
        Ok(())
    }

    /// Keep `c`, which makes the record `after` (and, merged with the
    /// changes concurrent with it, `merged`), unless it takes the record
    /// past [`MAX_DOC_BYTES`] and its writer does not handle the record.
    fn keep(&mut self, c: &Change, after: Record, merged: Option<Record>) -> Verdict1 {
        let size = self.size + c.raw_bytes().len();
        // A step that closes the record is never refused for size: nobody
        // can pad a record to stop the next level from closing it. Asked
        // only past the limit (it derives dispute states), not on every change.
        if size > MAX_DOC_BYTES && !crate::rules::closes(self.current.as_ref(), &after) {
            if size > HARD_MAX_DOC_BYTES {
                return Err((RejectReason::TooLarge, format!("记录超过{}KB上限", HARD_MAX_DOC_BYTES / 1024)));
            }
            if !crate::rules::may_add_to_a_large_record(self.writer, self.current.as_ref(), &after) {
                return Err((
                    RejectReason::TooLarge,
                    format!("记录已超过{}KB，只有负责该记录的人员可以继续记录处理步骤", MAX_DOC_BYTES / 1024),
                ));
            }
        }
        self.size = size;
        self.graph.add(c);
        self.accepted.push(c.clone());
        self.current = Some(merged.unwrap_or(after));
        Ok(())
    }

    /// The record a change makes (`after_json`), judged: readable under
    /// the strict schema, the same record, valid, and a step its writer may
    /// take from `before` (the state at its dependencies).
    fn judged_state(
        &self,
        before: Option<&Record>,
        after_json: &serde_json::Value,
    ) -> std::result::Result<Record, (RejectReason, String)> {
        let after = Record::from_json(after_json).map_err(|e| (RejectReason::Invalid, e.message_zh()))?;
        if after.id != self.doc_id {
            return Err((RejectReason::Immutable, "记录编号与文档不符".into()));
        }
        after.validate_step(before).map_err(|e| (RejectReason::Invalid, e.message_zh()))?;
        check_write(self.writer, before, &after, self.current.as_ref()).map_err(|r| (r.reason, r.message_zh))?;
        Ok(after)
    }

    /// The state before `c` and after it, judged; returns the record after
    /// `c`, and the merged record when that differs (`c` is concurrent with
    /// changes already in the document).
    fn check_applied(
        &mut self,
        c: &Change,
        deps: &[ChangeHash],
        linear: bool,
    ) -> std::result::Result<(Record, Option<Record>), (RejectReason, String)> {
        let unreadable =
            |e: CoreError| (RejectReason::Malformed, format!("记录在此修改之前的状态无法读取：{}", e.message_zh()));
        let before: Option<Record> = if deps.is_empty() {
            None
        } else if linear {
            self.current.clone()
        } else {
            let json = guarded(|| self.doc.to_json_at(deps)).map_err(unreadable)?;
            Some(Record::from_json(&json).map_err(unreadable)?)
        };
        let hash = c.hash();
        let is_head = self.doc.heads() == [hash];
        let after_json =
            if is_head { guarded(|| self.doc.to_json()) } else { guarded(|| self.doc.to_json_at(&[hash])) }
                .map_err(|e| (RejectReason::Invalid, e.message_zh()))?;
        let after = self.judged_state(before.as_ref(), &after_json)?;
        if is_head {
            return Ok((after, None));
        }
        // Concurrent with changes already kept: the merged record must
        // still be readable for every phone that receives both.
        let merged = guarded(|| self.doc.record())
            .map_err(|e| (RejectReason::Invalid, format!("与其他修改合并后记录无法读取：{}", e.message_zh())))?;
        Ok((after, Some(merged)))
    }

    /// Back to the stored document plus the changes accepted so far.
    fn rebuild(&mut self) {
        if let Ok(d) = load(self.stored, &self.accepted) {
            self.doc = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridPath, Role};
    use crate::model::*;
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};

    fn gm() -> Writer {
        Writer { user_id: "gm1".into(), role: Role::GridManager, grid: GridPath::parse("t01/v01/g1").unwrap() }
    }

    fn patrol() -> Record {
        Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1_000,
            RecordBody::Patrol(Patrol {
                slot: PatrolSlot::Morning,
                started_at: 1_000,
                ended_at: None,
                route: vec![],
                findings: "正常".into(),
                hazard_ids: Default::default(),
            }),
        )
    }

    fn bytes(changes: &[Change]) -> Vec<Vec<u8>> {
        changes.iter().map(|c| c.raw_bytes().to_vec()).collect()
    }

    /// The stored snapshot of a small record skips Automerge's column
    /// compression; a record with a long route keeps it, whether it is a
    /// new record's only change or a record judged through Automerge. All
    /// load back to the record that was judged.
    #[test]
    fn small_records_are_stored_uncompressed_and_long_routes_compressed() {
        let actor = ActorId::random();
        let with_route = |rec: &mut Record, points: u32| {
            if let RecordBody::Patrol(p) = &mut rec.body {
                p.route = (0..points).map(|i| GeoPoint { lat: 33.9 + f64::from(i) * 1e-4, lon: 106.3 }).collect();
            }
        };
        for (points, compressed) in [(12, false), (60, false), (300, true)] {
            // A new record.
            let mut rec = patrol();
            with_route(&mut rec, points);
            let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
            let first = doc.changes_since(&[]);
            let v = judge(None, rec.id, &bytes(&first), &gm(), Actors::Device(actor.to_bytes()));
            let stored = v.snapshot.expect("accepted");
            assert_eq!(stored.len() < first[0].raw_bytes().len(), compressed, "{points} points, new");
            assert_eq!(RecordDoc::load(&stored, ActorId::random()).unwrap().record().unwrap(), rec);
            // The same record edited: saved through Automerge.
            let heads = doc.heads();
            let mut edited = rec.clone();
            if let RecordBody::Patrol(p) = &mut edited.body {
                p.findings = "补记".into();
            }
            doc.update(&edited).unwrap();
            let next = doc.changes_since(&heads);
            let v = judge(Some(&stored), rec.id, &bytes(&next), &gm(), Actors::Device(actor.to_bytes()));
            let snapshot = v.snapshot.expect("accepted");
            let plain = doc.automerge().save_nocompress();
            // Both would be smaller compressed: the size decides.
            assert!(doc.automerge().save().len() < plain.len());
            assert_eq!(
                snapshot.len() < plain.len(),
                compressed,
                "{points} points: {} bytes stored, {} uncompressed",
                snapshot.len(),
                plain.len()
            );
            let loaded = RecordDoc::load(&snapshot, ActorId::random()).unwrap().record().unwrap();
            assert_eq!(loaded, edited);
        }
    }

    /// A new record's only change is judged without Automerge's op set
    /// and stored as its own chunk; the record's next change is judged
    /// against that, and a first change that breaks the schema is refused
    /// as the full path refuses it.
    #[test]
    fn a_new_records_only_change_is_stored_as_itself_and_built_on() {
        let actor = ActorId::random();
        let rec = patrol();
        let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
        let first = doc.changes_since(&[]);
        let v = judge(None, rec.id, &bytes(&first), &gm(), Actors::Device(actor.to_bytes()));
        assert!(v.refused.is_empty(), "{:?}", v.refused);
        assert_eq!(v.snapshot.as_deref(), Some(first[0].raw_bytes()));
        assert_eq!(v.after.as_ref(), Some(&rec));
        let heads = doc.heads();
        let mut edited = rec.clone();
        if let RecordBody::Patrol(p) = &mut edited.body {
            p.findings = "补记：村口路灯损坏".into();
        }
        doc.update(&edited).unwrap();
        let next = doc.changes_since(&heads);
        let v = judge(v.snapshot.as_deref(), rec.id, &bytes(&next), &gm(), Actors::Device(actor.to_bytes()));
        assert!(v.refused.is_empty(), "{:?}", v.refused);
        assert_eq!(v.accepted.len(), 1);
        assert_eq!(v.after.map(|r| r.body), Some(edited.body));

        // A first change carrying a key the schema does not know.
        use automerge::legacy::{Key, ObjectId, Op, OpId, OpType, SortedVec};
        let hostile = forge(&first[0], |e| {
            let data = e.operations.iter().position(|o| o.key == Key::Map("data".into())).unwrap();
            let data = OpId(e.start_op.get() + data as u64, e.actor_id.clone());
            e.operations.push(Op {
                action: OpType::Put(automerge::ScalarValue::Str("x".into())),
                obj: ObjectId::Id(data),
                key: Key::Map("padding".into()),
                pred: SortedVec::new(),
                insert: false,
            });
        });
        assert!(crate::doc::first_change_tree(&hostile).is_some(), "takes the shortcut");
        let v = judge(None, rec.id, &bytes(&[hostile]), &gm(), Actors::Device(actor.to_bytes()));
        assert!(v.accepted.is_empty());
        assert_eq!(v.refused[0].reason, RejectReason::Invalid, "{:?}", v.refused);
    }

    #[test]
    fn an_invalid_step_and_its_repair_are_both_refused_and_the_rest_kept() {
        let actor = ActorId::random();
        let rec = patrol();
        let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
        let create = doc.changes_since(&[]);
        let heads = doc.heads();
        // A valid edit, then an invalid one, then one that repairs it.
        let mut good = rec.clone();
        if let RecordBody::Patrol(p) = &mut good.body {
            p.findings = "发现一处隐患".into();
        }
        doc.update(&good).unwrap();
        let after_good = doc.heads();
        let data = match doc.automerge().get(ROOT, "data").unwrap() {
            Some((_, id)) => id,
            None => panic!(),
        };
        doc.automerge().put(&data, "slot", "midnight").unwrap();
        doc.automerge().commit();
        let after_bad = doc.heads();
        doc.automerge().put(&data, "slot", "morning").unwrap();
        doc.automerge().commit();
        let all = doc.changes_since(&[]);
        let v = judge(None, rec.id, &bytes(&all), &gm(), Actors::Device(actor.to_bytes()));
        assert_eq!(v.accepted.len(), 2, "{:?}", v.refused);
        assert_eq!(v.refused.len(), 2);
        assert_eq!(v.refused[0].reason, RejectReason::Invalid);
        assert!(v.refused[1].detail.starts_with("依赖于"), "{:?}", v.refused[1]);
        let kept: Vec<ChangeHash> = v.accepted.iter().map(Change::hash).collect();
        assert_eq!(kept, [create[0].hash(), after_good[0]]);
        assert!(!kept.contains(&after_bad[0]));
        assert_eq!(v.after.unwrap().body, good.body);
        let _ = heads;
    }

    /// A phone's consecutive edits of a record, judged with one apply for
    /// the chain, get exactly the verdict they get judged one at a time:
    /// the same changes kept, the same refusals with the same reasons, the
    /// same record after, whichever edits break a rule.
    #[test]
    fn a_chain_judged_at_once_gets_the_verdict_it_gets_one_at_a_time() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for round in 0..60 {
            let actor = ActorId::random();
            let rec = patrol();
            let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
            let stored = if round % 3 == 0 { None } else { Some(doc.save()) };
            let heads = if stored.is_some() { doc.heads() } else { vec![] };
            let data = doc.automerge().get(ROOT, "data").unwrap().unwrap().1;
            let mut bad = 0;
            for step in 0..rng.gen_range(2..6) {
                match rng.gen_range(0..10) {
                    // A slot the schema does not know, or a changed id.
                    0 => {
                        doc.automerge().put(&data, "slot", "midnight").unwrap();
                        bad += 1;
                    }
                    1 => {
                        doc.automerge().put(ROOT, "id", Uuid::new_v4().to_string()).unwrap();
                        bad += 1;
                    }
                    // A repair: the slot back to one the schema knows.
                    2 | 3 => doc.automerge().put(&data, "slot", "morning").unwrap(),
                    _ => doc.automerge().put(&data, "findings", format!("第{step}次补记")).unwrap(),
                }
                doc.automerge().commit();
            }
            let changes = doc.changes_since(&heads);
            let raw = bytes(&changes);
            let at_once = judge_with(stored.as_deref(), rec.id, &raw, &gm(), Actors::Device(actor.to_bytes()), true);
            let one_by_one =
                judge_with(stored.as_deref(), rec.id, &raw, &gm(), Actors::Device(actor.to_bytes()), false);
            let hashes = |v: &Verdict| v.accepted.iter().map(Change::hash).collect::<Vec<_>>();
            assert_eq!(hashes(&at_once), hashes(&one_by_one), "round {round}");
            assert_eq!(at_once.refused, one_by_one.refused, "round {round}");
            assert_eq!(at_once.after, one_by_one.after, "round {round}");
            assert_eq!(at_once.known, one_by_one.known, "round {round}");
            let record = |v: &Verdict| {
                v.snapshot.as_ref().map(|s| RecordDoc::load(s, ActorId::random()).unwrap().record().unwrap())
            };
            assert_eq!(record(&at_once), record(&one_by_one), "round {round}");
            assert_eq!(at_once.refused.is_empty(), bad == 0, "round {round}: {:?}", at_once.refused);
        }
    }

    #[test]
    fn a_change_under_another_actor_is_refused() {
        let rec = patrol();
        let mut doc = RecordDoc::create(&rec, ActorId::random()).unwrap();
        let all = doc.changes_since(&[]);
        let mine = ActorId::random();
        let v = judge(None, rec.id, &bytes(&all), &gm(), Actors::Device(mine.to_bytes()));
        assert!(v.accepted.is_empty());
        assert_eq!(v.refused[0].reason, RejectReason::Forbidden);
    }

    #[test]
    fn unknown_keys_a_changed_schema_and_wrong_types_are_refused() {
        let actor = ActorId::random();
        let rec = patrol();
        for hostile in 0..3 {
            let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
            let stored = doc.save();
            let heads = doc.heads();
            match hostile {
                0 => {
                    let data = doc.automerge().get(ROOT, "data").unwrap().unwrap().1;
                    doc.automerge().put(&data, "padding", "x".repeat(150_000)).unwrap();
                }
                1 => doc.automerge().put(ROOT, "schema", 2).unwrap(),
                _ => doc.automerge().put(ROOT, "deleted", "yes").unwrap(),
            }
            doc.automerge().commit();
            let new = doc.changes_since(&heads);
            let v = judge(Some(&stored), rec.id, &bytes(&new), &gm(), Actors::Device(actor.to_bytes()));
            assert!(v.accepted.is_empty(), "case {hostile}");
            let reason = v.refused[0].reason;
            assert!(
                matches!(reason, RejectReason::Invalid | RejectReason::Immutable | RejectReason::TooLarge),
                "{reason:?}"
            );
        }
    }

    /// A grid manager fills a dispute with long follow-ups past the size
    /// limit: his next note is refused, while the village leader, who
    /// handles the dispute, can still act on it.
    #[test]
    fn past_the_size_limit_only_the_handlers_may_act() {
        let gm_actor = ActorId::random();
        let vl_actor = ActorId::random();
        let vl = Writer { user_id: "vl1".into(), role: Role::VillageLeader, grid: GridPath::parse("t01/v01").unwrap() };
        let found = next_event(&[], "gm1", 1, DisputeAction::Found { note: String::new() });
        let rec = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1,
            RecordBody::Dispute(Dispute {
                parties: vec!["张三".into()],
                category: DisputeCategory::Land,
                summary: "地界".into(),
                found_at: 1,
                events: vec![found],
            }),
        );
        let mut doc = RecordDoc::create(&rec, gm_actor.clone()).unwrap();
        let mut stored = None::<Vec<u8>>;
        let follow = |doc: &mut RecordDoc, by: &str, action: DisputeAction| {
            let heads = doc.heads();
            let mut r = doc.record().unwrap();
            if let RecordBody::Dispute(d) = &mut r.body {
                let e = next_event(&d.events, by, 2, action);
                d.events.push(e);
            }
            doc.update(&r).unwrap();
            doc.changes_since(&heads)
        };
        let text = |i: usize| -> String {
            (0..1990).map(|j| char::from_u32(0x4e00 + ((i * 7919 + j * 31) % 20000) as u32).unwrap()).collect()
        };
        // Push in batches as a phone would, each batch judged and stored.
        let mut all = doc.changes_since(&[]);
        for round in 0..4 {
            for i in 0..50 {
                all.extend(follow(&mut doc, "gm1", DisputeAction::FollowUp { note: text(round * 50 + i) }));
            }
            let v = judge(stored.as_deref(), rec.id, &bytes(&all), &gm(), Actors::Device(gm_actor.to_bytes()));
            if v.refused.is_empty() {
                stored = v.snapshot;
                all.clear();
            } else {
                assert!(stored.as_ref().is_some_and(|s| s.len() > 512 * 1024), "refused too early");
                assert!(v.refused.iter().all(|r| r.reason == RejectReason::TooLarge), "{:?}", v.refused);
                break;
            }
        }
        let stored = stored.unwrap();
        // Whatever got in, the grid manager's next note is refused once
        // the record is past the limit; the leader's classification is not.
        let mut doc = RecordDoc::load(&stored, gm_actor.clone()).unwrap();
        let mut filler = Vec::new();
        while stored.len() + filler.iter().map(|c: &Change| c.raw_bytes().len()).sum::<usize>() <= MAX_DOC_BYTES {
            filler.extend(follow(&mut doc, "gm1", DisputeAction::FollowUp { note: text(filler.len() + 999) }));
        }
        let v = judge(Some(&stored), rec.id, &bytes(&filler), &gm(), Actors::Device(gm_actor.to_bytes()));
        assert_eq!(v.refused.last().map(|r| r.reason), Some(RejectReason::TooLarge), "{:?}", v.refused);
        let big = v.snapshot.unwrap_or_else(|| stored.clone());
        let mut vdoc = RecordDoc::load(&big, vl_actor.clone()).unwrap();
        let classify = follow(
            &mut vdoc,
            "vl1",
            DisputeAction::Classified { category: DisputeCategory::Neighbour, note: String::new() },
        );
        let v = judge(Some(&big), rec.id, &bytes(&classify), &vl, Actors::Device(vl_actor.to_bytes()));
        assert!(v.refused.is_empty(), "{:?}", v.refused);
        assert_eq!(v.accepted.len(), 1);
    }

    /// A hazard a grid manager filled past the size limit with long
    /// handling steps: his next step is refused, while the township chief's
    /// resolution (township chiefs resolve hazards too) and the village
    /// leader's deletion are taken.
    #[test]
    fn past_the_size_limit_a_hazard_still_takes_a_township_resolution_and_a_deletion() {
        let text = |i: usize| -> String {
            (0..1990).map(|j| char::from_u32(0x4e00 + ((i * 7919 + j * 31) % 20000) as u32).unwrap()).collect()
        };
        let rec = hazard();
        let mut doc = RecordDoc::create(&rec, ActorId::random()).unwrap();
        let mut i = 0;
        while doc.save().len() <= MAX_DOC_BYTES {
            for _ in 0..20 {
                let mut r = doc.record().unwrap();
                if let RecordBody::Hazard(h) = &mut r.body {
                    let e = next_event(&h.events, "gm1", 2_000, HazardAction::Step { note: text(i) });
                    h.events.push(e);
                }
                doc.update(&r).unwrap();
                i += 1;
            }
        }
        let stored = doc.save();
        let step = |who: Writer, action: HazardAction| {
            let mut phone = Phone::on(&stored, who);
            let by = phone.who.user_id.clone();
            let changes = phone.edit(|r| {
                if let RecordBody::Hazard(h) = &mut r.body {
                    let e = next_event(&h.events, &by, 3_000, action);
                    h.events.push(e);
                }
            });
            phone.push(&stored, &changes)
        };
        let v = step(gm(), HazardAction::Step { note: "再记一步".into() });
        assert_eq!(v.refused.first().map(|r| r.reason), Some(RejectReason::TooLarge), "{:?}", v.refused);
        let v =
            step(writer("tc1", Role::TownshipChief, "t01"), HazardAction::Resolved { note: "乡镇已组织清理".into() });
        assert!(v.refused.is_empty(), "the township chief's resolution was refused: {:?}", v.refused);
        let mut vl_phone = Phone::on(&stored, writer("vl1", Role::VillageLeader, "t01/v01"));
        let delete = vl_phone.edit(|r| r.deleted = true);
        let v = vl_phone.push(&stored, &delete);
        assert!(v.refused.is_empty(), "the village leader's deletion was refused: {:?}", v.refused);
        // Not a handler: the grid manager's own edit of a field is refused.
        let mut gm_phone = Phone::on(&stored, gm());
        let edit = gm_phone.edit(|r| {
            if let RecordBody::Hazard(h) = &mut r.body {
                h.description = "山体裂缝扩大".into();
            }
        });
        assert_eq!(gm_phone.push(&stored, &edit).refused.first().map(|r| r.reason), Some(RejectReason::TooLarge));
    }

    /// A hazard its village leader filled past the hard maximum (2 MiB)
    /// with steps of his own (a handler may add past 1 MiB) is not frozen:
    /// the township chief's resolution is taken, a further note of the
    /// leader's is refused, and so is a reopening after the resolution.
    #[test]
    fn past_the_hard_maximum_a_record_still_takes_the_step_that_closes_it() {
        let text = |i: usize| -> String {
            (0..1990).map(|j| char::from_u32(0x4e00 + ((i * 7919 + j * 31) % 20000) as u32).unwrap()).collect()
        };
        let mut doc = RecordDoc::create(&hazard(), ActorId::random()).unwrap();
        let mut i = 0;
        while doc.save().len() <= HARD_MAX_DOC_BYTES {
            for _ in 0..40 {
                let mut r = doc.record().unwrap();
                if let RecordBody::Hazard(h) = &mut r.body {
                    let e = next_event(&h.events, "vl1", 2_000, HazardAction::Step { note: text(i) });
                    h.events.push(e);
                }
                doc.update(&r).unwrap();
                i += 1;
            }
        }
        let stored = doc.save();
        let step = |stored: &[u8], who: Writer, action: HazardAction| {
            let mut phone = Phone::on(stored, who);
            let by = phone.who.user_id.clone();
            let changes = phone.edit(|r| {
                if let RecordBody::Hazard(h) = &mut r.body {
                    let e = next_event(&h.events, &by, 3_000, action);
                    h.events.push(e);
                }
            });
            phone.push(stored, &changes)
        };
        let vl = || writer("vl1", Role::VillageLeader, "t01/v01");
        let v = step(&stored, vl(), HazardAction::Step { note: "再记一步".into() });
        assert_eq!(v.refused.first().map(|r| r.reason), Some(RejectReason::TooLarge), "{:?}", v.refused);
        let tc = || writer("tc1", Role::TownshipChief, "t01");
        let v = step(&stored, tc(), HazardAction::Resolved { note: "乡镇已组织清理".into() });
        assert!(v.refused.is_empty(), "the township chief's resolution was refused: {:?}", v.refused);
        let resolved = v.snapshot.expect("the resolution is stored");
        assert!(resolved.len() > HARD_MAX_DOC_BYTES);
        let v = step(&resolved, vl(), HazardAction::Step { note: "重新处置".into() });
        assert_eq!(v.refused.first().map(|r| r.reason), Some(RejectReason::TooLarge), "a reopening is no closing step");
    }

    /// Re-encode `c` with `edit` applied (a hostile encoder can write any header).
    fn forge(c: &Change, edit: impl FnOnce(&mut automerge::ExpandedChange)) -> Change {
        let mut e = c.decode();
        e.hash = None;
        edit(&mut e);
        Change::from(e)
    }

    #[test]
    fn forged_counters_and_sequence_numbers_are_refused() {
        let actor = ActorId::random();
        let rec = patrol();
        let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
        let stored = doc.save();
        let heads = doc.heads();
        let mut edited = rec.clone();
        if let RecordBody::Patrol(p) = &mut edited.body {
            p.findings = "补记".into();
        }
        doc.update(&edited).unwrap();
        let honest = doc.changes_since(&heads).remove(0);
        let judge1 = |c: &Change| {
            judge(Some(&stored), rec.id, &bytes(std::slice::from_ref(c)), &gm(), Actors::Device(actor.to_bytes()))
        };
        assert_eq!(judge1(&honest).accepted.len(), 1);
        // Operations numbered far above the dependencies win every register
        // conflict against concurrent writes.
        let high = forge(&honest, |e| e.start_op = std::num::NonZeroU64::new(1_000_000).unwrap());
        let v = judge1(&high);
        assert!(v.accepted.is_empty());
        assert!(v.refused[0].detail.contains("操作编号"), "{:?}", v.refused);
        // A sequence number that skips ahead or repeats breaks other phones.
        for seq in [1, 3] {
            let v = judge1(&forge(&honest, |e| e.seq = seq));
            assert!(v.accepted.is_empty(), "seq {seq}");
            assert!(v.refused[0].detail.contains("序号"), "{:?}", v.refused);
        }
        // An author or message the writer never sets.
        let v = judge1(&forge(&honest, |e| e.message = Some("x".repeat(1000))));
        assert_eq!(v.refused[0].reason, RejectReason::Malformed);
    }

    fn writer(user: &str, role: Role, grid: &str) -> Writer {
        Writer { user_id: user.into(), role, grid: GridPath::parse(grid).unwrap() }
    }

    fn hazard() -> Record {
        let events = vec![next_event(&[], "gm1", 1_000, HazardAction::Reported { note: "巡查发现".into() })];
        Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1_000,
            RecordBody::Hazard(Hazard {
                category: HazardCategory::Geological,
                location: Location { text: "二组后山".into(), gps: None },
                description: "山体裂缝".into(),
                events,
            }),
        )
    }

    /// A phone holding `stored`, writing as a fresh actor.
    struct Phone {
        doc: RecordDoc,
        actor: ActorId,
        who: Writer,
    }

    impl Phone {
        fn on(stored: &[u8], who: Writer) -> Phone {
            let actor = ActorId::random();
            Phone { doc: RecordDoc::load(stored, actor.clone()).unwrap(), actor, who }
        }

        /// Attach photos named `names` (one change each); their changes.
        fn attach(&mut self, names: impl IntoIterator<Item = String>) -> Vec<Change> {
            let heads = self.doc.heads();
            for name in names {
                let mut r = self.doc.record().unwrap();
                let a = Attachment {
                    mime: "image/jpeg".into(),
                    size: 1000,
                    at: 2_000,
                    by: self.who.user_id.clone(),
                    event: None,
                    thumb_of: None,
                };
                r.attachments.insert(sha256_hex(name.as_bytes()), a);
                r.updated_at += 1;
                self.doc.update(&r).unwrap();
            }
            self.doc.changes_since(&heads)
        }

        fn edit(&mut self, f: impl FnOnce(&mut Record)) -> Vec<Change> {
            let heads = self.doc.heads();
            let mut r = self.doc.record().unwrap();
            f(&mut r);
            r.updated_at += 1;
            self.doc.update(&r).unwrap();
            self.doc.changes_since(&heads)
        }

        fn push(&self, stored: &[u8], changes: &[Change]) -> Verdict {
            let id = self.doc.record().unwrap().id;
            judge(Some(stored), id, &bytes(changes), &self.who, Actors::Device(self.actor.to_bytes()))
        }
    }

    /// Two people attach a first photo to one hazard at once, offline:
    /// whichever syncs second, the server keeps both photos in the record
    /// it stores (its references are read from that record).
    #[test]
    fn first_photos_attached_at_once_are_both_in_the_judged_record() {
        let stored = RecordDoc::create(&hazard(), ActorId::random()).unwrap().save();
        let mut gm_phone = Phone::on(&stored, gm());
        let mut vl_phone = Phone::on(&stored, writer("vl1", Role::VillageLeader, "t01/v01"));
        let mine = gm_phone.attach(["网格员的照片".to_string()]);
        let theirs = vl_phone.attach(["村长的照片".to_string()]);
        let v = gm_phone.push(&stored, &mine);
        assert!(v.refused.is_empty(), "{:?}", v.refused);
        let stored = v.snapshot.unwrap();
        let v = vl_phone.push(&stored, &theirs);
        assert!(v.refused.is_empty(), "{:?}", v.refused);
        let after = v.after.unwrap();
        let by: Vec<&str> = after.attachments.values().map(|a| a.by.as_str()).collect();
        assert_eq!(by.len(), 2, "{after:?}");
        assert!(by.contains(&"gm1") && by.contains(&"vl1"));
        let snapshot = RecordDoc::load(&v.snapshot.unwrap(), ActorId::random()).unwrap().record().unwrap();
        assert_eq!(snapshot, after, "what is judged is what is stored");
    }

    /// 1 + 10 + 10 photos added at once on three phones make 21: each
    /// phone kept the limit as it saw the record, so all are kept; the
    /// record then still takes a resolution and a deletion, and only a
    /// step that adds a photo to what is already past the limit is
    /// refused.
    #[test]
    fn photos_added_at_once_past_the_limit_freeze_nothing() {
        let stored = RecordDoc::create(&hazard(), ActorId::random()).unwrap().save();
        let mut gm_phone = Phone::on(&stored, gm());
        let mut vl_phone = Phone::on(&stored, writer("vl1", Role::VillageLeader, "t01/v01"));
        let mut sv_phone = Phone::on(&stored, writer("sv1", Role::Supervisor, "t01/v01"));
        let a = gm_phone.attach((0..10).map(|i| format!("gm {i}")));
        let b = vl_phone.attach((0..10).map(|i| format!("vl {i}")));
        let c = sv_phone.attach(["sv 0".to_string()]);
        let mut stored = stored;
        for (phone, changes) in [(&gm_phone, &a), (&vl_phone, &b), (&sv_phone, &c)] {
            let v = phone.push(&stored, changes);
            assert!(v.refused.is_empty(), "{}: {:?}", phone.who.user_id, v.refused);
            stored = v.snapshot.unwrap();
        }
        let merged = RecordDoc::load(&stored, ActorId::random()).unwrap().record().unwrap();
        assert_eq!(photos_of(&merged.attachments).count(), 21);

        // The village leader, with every photo merged, resolves and deletes.
        let mut vl_phone = Phone::on(&stored, writer("vl1", Role::VillageLeader, "t01/v01"));
        let resolve = vl_phone.edit(|r| {
            if let RecordBody::Hazard(h) = &mut r.body {
                let e = next_event(&h.events, "vl1", 5_000, HazardAction::Resolved { note: "已清理".into() });
                h.events.push(e);
            }
        });
        let v = vl_phone.push(&stored, &resolve);
        assert!(v.refused.is_empty(), "a resolution was refused: {:?}", v.refused);
        let stored = v.snapshot.unwrap();
        let delete = vl_phone.edit(|r| r.deleted = true);
        let v = vl_phone.push(&stored, &delete);
        assert!(v.refused.is_empty(), "a deletion was refused: {:?}", v.refused);
        let deleted = v.snapshot.unwrap();

        // A 22nd photo, added knowingly, is refused; so is a thumbnail
        // for a photo that has one.
        let mut gm_phone = Phone::on(&stored, gm());
        let more = gm_phone.attach(["gm 10".to_string()]);
        let v = gm_phone.push(&stored, &more);
        assert_eq!(v.refused.len(), 1, "{:?}", v.refused);
        assert_eq!(
            (v.refused[0].reason, v.refused[0].detail.as_str()),
            (RejectReason::Invalid, "每条记录最多附20张照片")
        );
        let mut gm_phone = Phone::on(&stored, gm());
        let thumb = |of: &str| Attachment {
            mime: "image/jpeg".into(),
            size: 500,
            at: 3_000,
            by: "gm1".into(),
            event: None,
            thumb_of: Some(sha256_hex(of.as_bytes())),
        };
        let first = gm_phone.edit(|r| {
            r.attachments.insert(sha256_hex(b"t1"), thumb("gm 0"));
        });
        let v = gm_phone.push(&stored, &first);
        assert!(v.refused.is_empty(), "a thumbnail for a photo past the limit is no new photo: {:?}", v.refused);
        let second = gm_phone.edit(|r| {
            r.attachments.insert(sha256_hex(b"t2"), thumb("gm 0"));
        });
        let v = gm_phone.push(&v.snapshot.unwrap(), &second);
        assert_eq!(v.refused.first().map(|r| r.detail.as_str()), Some("每张照片只能有一张缩略图"));
        let _ = deleted;
    }
}
