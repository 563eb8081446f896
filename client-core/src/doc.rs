//! Record documents: one Automerge document per record.
//!
//! The document holds the record's JSON tree (see [`Record::to_json`]):
//! objects are Automerge maps, so two people who change different fields
//! both keep their change; `events` arrays are append-only Automerge lists,
//! so concurrent appends both survive; other arrays are replaced whole
//! (last writer wins, for short lists like parties or a route). Edits are
//! written as a minimal diff against the document's current tree, which is
//! what keeps concurrent edits to different fields from overwriting each
//! other.
//!
//! A map that two phones create at the same key at once (the first photo
//! attached to a record on two phones offline: each makes the `attachments`
//! map) is, to Automerge, two objects in conflict, and Automerge shows only
//! one. The reader here shows their union instead, key by key (where they
//! share a key, the value Automerge would pick wins), so neither phone's
//! entries vanish; the writer writes into the winning object and removes a
//! key from every one of them. The judge reads records through the same
//! code, so what the server judges is what every phone shows.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value,
    ValueRef,
};
use serde_json::{Map, Value as Json};

use crate::error::{CoreError, Result};
use crate::model::Record;

/// Keys whose arrays are append-only histories.
const APPEND_ONLY: &[&str] = &["events"];

/// Size of an uncompressed snapshot from which [`RecordDoc::save_snapshot`]
/// compresses it.
pub const SNAPSHOT_COMPRESS_FROM: usize = 4096;

/// Deepest nesting accepted when reading a document (hostile input guard).
const MAX_DEPTH: usize = 16;

/// One record as an Automerge document.
pub struct RecordDoc {
    doc: AutoCommit,
}

impl std::fmt::Debug for RecordDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordDoc").finish_non_exhaustive()
    }
}

impl RecordDoc {
    /// A new document holding `record`, written by `actor`. Validates first.
    pub fn create(record: &Record, actor: ActorId) -> Result<Self> {
        record.validate()?;
        let mut doc = AutoCommit::new().with_actor(actor);
        let Json::Object(tree) = record.to_json() else {
            return Err(CoreError::Document("record is not an object".into()));
        };
        write_map(&mut doc, &[ROOT], None, &tree)?;
        doc.commit_with(CommitOptions::default().with_time(record.created_at / 1000));
        Ok(RecordDoc { doc })
    }

    /// An empty document, to receive changes from elsewhere.
    pub fn empty(actor: ActorId) -> Self {
        RecordDoc { doc: AutoCommit::new().with_actor(actor) }
    }

    /// Load a saved document.
    pub fn load(bytes: &[u8], actor: ActorId) -> Result<Self> {
        let doc = AutoCommit::load(bytes).map_err(|e| CoreError::Document(e.to_string()))?;
        Ok(RecordDoc { doc: doc.with_actor(actor) })
    }

    /// Save the whole document compactly.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Save the whole document as the server keeps it: uncompressed while
    /// that is small, compressed beyond [`SNAPSHOT_COMPRESS_FROM`] bytes.
    ///
    /// Automerge compresses each column over 256 bytes with a fresh
    /// DEFLATE stream, and setting one up costs more than a small record
    /// saves by it: an evening's records (all under 1 KB) save 0 to 18%
    /// smaller compressed (a hazard 773 bytes against 834), at five times
    /// the CPU; a hazard with three handling steps saves 1,210 bytes to
    /// 891, at 32 µs against 3 µs (and its next load inflates it again).
    /// Records under 4 KiB are kept plain; a patrol with a route of 300
    /// points is stored compressed (2.8 KB against 9.1 KB).
    pub fn save_snapshot(&mut self) -> Vec<u8> {
        let plain = self.doc.save_nocompress();
        if plain.len() < SNAPSHOT_COMPRESS_FROM { plain } else { self.doc.save() }
    }

    /// Current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The document's JSON tree. Values of a type the record writer never
    /// writes (counters, timestamps, bytes, text and table objects) are an
    /// error, not silently mapped.
    pub fn to_json(&self) -> Result<Json> {
        read_obj(&self.doc, &ROOT, ObjType::Map, 0, None)
    }

    /// The JSON tree as it was at `heads` (every change they depend on,
    /// nothing else): the state a change was made against.
    pub fn to_json_at(&self, heads: &[ChangeHash]) -> Result<Json> {
        read_obj(&self.doc, &ROOT, ObjType::Map, 0, Some(heads))
    }

    /// The typed record.
    pub fn record(&self) -> Result<Record> {
        Record::from_json(&self.to_json()?)
    }

    /// Replace the record with `new`, writing only what differs. The id,
    /// kind, grid, author and creation time cannot change. Returns whether
    /// anything changed.
    pub fn update(&mut self, new: &Record) -> Result<bool> {
        let old = self.to_json()?;
        let old_rec = Record::from_json(&old)?;
        // Judged as a step from the record as it is: what a merge already
        // brought in is not this step's to answer for.
        new.validate_step(Some(&old_rec))?;
        if old_rec.id != new.id {
            return Err(CoreError::invalid("id", "immutable", "记录编号不能修改"));
        }
        if old_rec.kind() != new.kind() {
            return Err(CoreError::invalid("kind", "immutable", "记录类型不能修改"));
        }
        if old_rec.grid != new.grid {
            return Err(CoreError::invalid("grid", "immutable", "记录所属网格不能修改"));
        }
        if old_rec.author != new.author || old_rec.created_at != new.created_at {
            return Err(CoreError::invalid("author", "immutable", "记录人和创建时间不能修改"));
        }
        let mut new_json = new.to_json();
        let old_obj = old.as_object().cloned().unwrap_or_default();
        let changed = {
            let mut a = old_obj.clone();
            a.remove("updated_at");
            let mut b = new_json.as_object().cloned().unwrap_or_default();
            b.remove("updated_at");
            a != b
        };
        if !changed {
            return Ok(false);
        }
        if let Some(o) = new_json.as_object_mut() {
            // updated_at never goes backwards across devices with bad clocks.
            let prev = old_rec.updated_at;
            if new.updated_at < prev {
                o.insert("updated_at".into(), Json::from(prev));
            }
        }
        let Json::Object(tree) = new_json else { return Ok(false) };
        if let Err(e) = write_map(&mut self.doc, &[ROOT], Some(&old_obj), &tree) {
            self.doc.rollback();
            return Err(e);
        }
        self.doc.commit_with(CommitOptions::default().with_time(new.updated_at / 1000));
        Ok(true)
    }

    /// Changes made after `heads` (all changes for an empty slice).
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> Vec<Change> {
        self.doc.get_changes(heads)
    }

    /// Apply changes received from elsewhere. Changes already present are
    /// ignored; changes whose dependencies are missing wait in the document
    /// until the dependencies arrive.
    pub fn apply(&mut self, changes: Vec<Change>) -> Result<()> {
        self.doc.apply_changes(changes).map_err(|e| CoreError::Document(e.to_string()))
    }

    /// Merge another replica of the same record into this one.
    pub fn merge(&mut self, other: &mut RecordDoc) -> Result<()> {
        self.doc.merge(&mut other.doc).map(|_| ()).map_err(|e| CoreError::Document(e.to_string()))
    }

    /// Hashes this document is missing to apply what it holds.
    pub fn missing_deps(&mut self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// A copy of this document that writes as another actor.
    pub fn fork_as(&mut self, actor: ActorId) -> RecordDoc {
        RecordDoc { doc: self.doc.fork().with_actor(actor) }
    }

    /// A copy of this document as it was at `heads` (their changes and
    /// everything they depend on, nothing else), writing as `actor`.
    pub fn fork_at(&mut self, heads: &[ChangeHash], actor: ActorId) -> Result<RecordDoc> {
        Ok(RecordDoc { doc: self.doc.fork_at(heads)?.with_actor(actor) })
    }

    /// The underlying Automerge document.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }
}

/// The JSON tree a record's first change makes on an empty document, read
/// straight from the change's operations, or `None` when the change is not
/// of the plain shape the record writer gives a new record.
///
/// Applying a change through Automerge's op set costs about 10 µs plus
/// 0.8 µs an operation, and a record's first change is most of what a
/// server judges (an evening's patrols, visits and ledgers are new records
/// of one change each). On an empty document a change of the plain shape
/// has exactly one outcome, so it is read here without the op set:
///
/// - every operation makes a map or a list, or puts a scalar of a type the
///   record writer uses (string, integer, float, boolean, null);
/// - none overwrites or deletes another (no predecessors), and no map key
///   is written twice (no conflict to resolve);
/// - each goes into the root or an object made earlier in the change: into
///   a map by key, into a list by inserting after that list's last element
///   (so the list's order is the order of insertion).
///
/// Anything else (a conflict, an overwrite, a delete, a counter, text, an
/// insert elsewhere in a list, a reference to an object the change did not
/// make, nesting past the reader's limit) gives `None`, and the caller
/// applies the change through Automerge as for every other change. Where
/// this gives a tree, it is the one [`RecordDoc::to_json`] reads after
/// applying the change (tested against Automerge on random changes).
pub fn first_change_tree(change: &Change) -> Option<Json> {
    use automerge::ExpandedChange;
    use automerge::legacy::{ElementId, Key, ObjectId, OpType};
    use std::collections::HashMap;

    enum Slot {
        Scalar(Json),
        Obj(usize),
    }
    enum Node {
        Map(std::collections::BTreeMap<String, Slot>),
        List(Vec<Slot>, Option<u64>),
    }
    if !change.deps().is_empty() {
        return None;
    }
    let expanded: ExpandedChange = std::panic::catch_unwind(|| change.decode()).ok()?;
    let actor = change.actor_id();
    let start = change.start_op().get();
    let mut nodes: Vec<Node> = vec![Node::Map(Default::default())];
    let mut made: HashMap<u64, usize> = HashMap::new();
    for (i, op) in expanded.operations.iter().enumerate() {
        let counter = start.checked_add(i as u64)?;
        if !op.pred.is_empty() {
            return None;
        }
        let target = match &op.obj {
            ObjectId::Root => 0,
            ObjectId::Id(id) if id.actor() == actor => *made.get(&id.counter())?,
            ObjectId::Id(_) => return None,
        };
        let value = match &op.action {
            OpType::Make(ObjType::Map) => {
                nodes.push(Node::Map(Default::default()));
                made.insert(counter, nodes.len() - 1);
                Slot::Obj(nodes.len() - 1)
            }
            OpType::Make(ObjType::List) => {
                nodes.push(Node::List(Vec::new(), None));
                made.insert(counter, nodes.len() - 1);
                Slot::Obj(nodes.len() - 1)
            }
            OpType::Put(v) => Slot::Scalar(match v {
                ScalarValue::Str(s) => Json::String(s.to_string()),
                ScalarValue::Int(n) => Json::from(*n),
                ScalarValue::Uint(n) => Json::from(*n),
                ScalarValue::F64(f) => Json::Number(serde_json::Number::from_f64(*f)?),
                ScalarValue::Boolean(b) => Json::Bool(*b),
                ScalarValue::Null => Json::Null,
                _ => return None,
            }),
            _ => return None,
        };
        match (nodes.get_mut(target)?, &op.key, op.insert) {
            (Node::Map(entries), Key::Map(k), false) => {
                if entries.insert(k.to_string(), value).is_some() {
                    return None;
                }
            }
            (Node::List(items, last), Key::Seq(after), true) => {
                let follows_last = match (after, *last) {
                    (ElementId::Head, None) => true,
                    (ElementId::Id(id), Some(l)) => id.actor() == actor && id.counter() == l,
                    _ => false,
                };
                if !follows_last {
                    return None;
                }
                items.push(value);
                *last = Some(counter);
            }
            _ => return None,
        }
    }
    // Each object is made once and placed once, so the nodes form a tree
    // under the root; build it bottom-up, the root's depth being 0.
    fn build(nodes: &mut [Option<Node>], n: usize, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        let node = nodes.get_mut(n)?.take()?;
        let mut value = |slot: Slot| match slot {
            Slot::Scalar(v) => Some(v),
            Slot::Obj(child) => build(nodes, child, depth + 1),
        };
        match node {
            Node::Map(entries) => {
                let mut m = Map::new();
                for (k, slot) in entries {
                    m.insert(k, value(slot)?);
                }
                Some(Json::Object(m))
            }
            Node::List(items, _) => items.into_iter().map(value).collect::<Option<Vec<_>>>().map(Json::Array),
        }
    }
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    build(&mut nodes, 0, 0)
}

/// The stored form of a record whose only change is `change`: the change
/// chunk itself, which Automerge loads as a document (compressed from
/// [`SNAPSHOT_COMPRESS_FROM`] bytes, as [`RecordDoc::save_snapshot`] does).
pub fn first_change_snapshot(change: &Change) -> Vec<u8> {
    if change.raw_bytes().len() < SNAPSHOT_COMPRESS_FROM {
        change.raw_bytes().to_vec()
    } else {
        change.clone().bytes().into_owned()
    }
}

/// Parse one change from bytes received over the wire, without panicking on
/// hostile input.
pub fn parse_change(bytes: &[u8]) -> Result<Change> {
    let change = guarded(|| Change::from_bytes(bytes.to_vec()).map_err(|e| CoreError::Document(e.to_string())))?;
    // Automerge 0.12 does not verify a chunk's checksum (bytes 4..8, the
    // first four bytes of the change hash) when parsing; do it here so a
    // corrupted change is refused instead of stored as a new one.
    if bytes.get(4..8) != Some(&change.hash().0[..4]) {
        return Err(CoreError::Document("change checksum mismatch".into()));
    }
    Ok(change)
}

/// Most probes a received Bloom filter may ask for (Automerge writes 7).
pub const MAX_SYNC_BLOOM_PROBES: u32 = 64;

/// A Bloom filter's parameters as its wire form states them: entries,
/// bits per entry, probes; `None` for an empty filter.
pub fn bloom_params(bloom: &automerge::sync::BloomFilter) -> Option<(u32, u32, u32)> {
    let bytes = bloom.to_bytes();
    let mut it = bytes.iter();
    let mut next = || {
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = *it.next()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(v).ok();
            }
        }
        None
    };
    Some((next()?, next()?, next()?))
}

/// Read an Automerge sync message from a peer. Gridsync's own sync does
/// not use Automerge's protocol; should repair or device-to-device
/// transfer read one, it must come through here. Automerge 0.12 decodes a
/// Bloom filter of zero bits per entry, then divides by zero when it is
/// used, and allocates a vector of the stated probe count (billions) before
/// any check; such a message is refused here, and the decoding itself runs
/// behind [`guarded`].
pub fn decode_sync_message(bytes: &[u8]) -> Result<automerge::sync::Message> {
    let msg = guarded(|| automerge::sync::Message::decode(bytes).map_err(|e| CoreError::Document(e.to_string())))?;
    for have in &msg.have {
        if let Some((_, bits, probes)) = bloom_params(&have.bloom)
            && (bits == 0 || probes == 0 || probes > MAX_SYNC_BLOOM_PROBES)
        {
            return Err(CoreError::Document(format!(
                "sync message Bloom filter with {bits} bits per entry and {probes} probes"
            )));
        }
    }
    Ok(msg)
}

/// Run an Automerge call on untrusted input, turning a panic inside the
/// library into an error. Automerge's decoders are not hardened against
/// hostile bytes, so every call that touches received data goes through here.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(CoreError::Document("document library failed on this input".into())),
    }
}

fn scalar(v: &Json) -> ScalarValue {
    match v {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => {
            if n.is_f64() {
                ScalarValue::F64(n.as_f64().unwrap_or(0.0))
            } else if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else {
                ScalarValue::Uint(n.as_u64().unwrap_or(0))
            }
        }
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => ScalarValue::Null,
    }
}

/// Write the difference between `old` and `new` into the map that
/// objects `objs` hold together (see [`read_maps`]; the last is the one
/// Automerge picks). New values go into the last object, and a key written
/// or removed is removed from the others, so the document reads back as
/// `new` exactly. `old` is `None` only for a map just made (a new record,
/// or a new object in it), which holds nothing to look up.
fn write_map(
    doc: &mut AutoCommit,
    objs: &[ObjId],
    old: Option<&Map<String, Json>>,
    new: &Map<String, Json>,
) -> Result<()> {
    let Some(target) = objs.last().cloned() else { return Ok(()) };
    for (k, v) in new {
        let prev = old.and_then(|o| o.get(k));
        if prev == Some(v) {
            continue;
        }
        // The objects the key holds, and the type of the value that wins.
        let (held, winner): (Vec<(ObjType, ObjId)>, Option<ObjType>) = if old.is_none() {
            (Vec::new(), None)
        } else {
            let all = candidates(doc, objs, k, None)?;
            let winner = match all.last() {
                Some((Value::Object(t), _)) => Some(*t),
                _ => None,
            };
            let held = all
                .into_iter()
                .filter_map(|(v, id)| match v {
                    Value::Object(t) => Some((t, id)),
                    Value::Scalar(_) => None,
                })
                .collect();
            (held, winner)
        };
        match v {
            Json::Object(m) => match prev {
                Some(Json::Object(pm)) if winner == Some(ObjType::Map) => {
                    let maps: Vec<ObjId> =
                        held.into_iter().filter(|(t, _)| *t == ObjType::Map).map(|(_, id)| id).collect();
                    write_map(doc, &maps, Some(pm), m)?
                }
                _ => {
                    remove_from_others(doc, objs, k)?;
                    let id = doc.put_object(&target, k.as_str(), ObjType::Map)?;
                    write_map(doc, &[id], None, m)?;
                }
            },
            Json::Array(items) if APPEND_ONLY.contains(&k.as_str()) => {
                let list = match held.last() {
                    Some((ObjType::List, id)) if winner == Some(ObjType::List) => id.clone(),
                    _ => {
                        remove_from_others(doc, objs, k)?;
                        doc.put_object(&target, k.as_str(), ObjType::List)?
                    }
                };
                let seen: std::collections::HashSet<&str> = match prev {
                    Some(Json::Array(p)) => p.iter().filter_map(|e| e.get("id").and_then(Json::as_str)).collect(),
                    _ => Default::default(),
                };
                for item in items {
                    let id = item.get("id").and_then(Json::as_str).unwrap_or_default();
                    if seen.contains(id) {
                        continue;
                    }
                    let at = doc.length(&list);
                    insert_value(doc, &list, at, item)?;
                }
            }
            Json::Array(items) => {
                remove_from_others(doc, objs, k)?;
                let list = doc.put_object(&target, k.as_str(), ObjType::List)?;
                for (i, item) in items.iter().enumerate() {
                    insert_value(doc, &list, i, item)?;
                }
            }
            other => {
                remove_from_others(doc, objs, k)?;
                doc.put(&target, k.as_str(), scalar(other))?
            }
        }
    }
    if let Some(old) = old {
        for k in old.keys() {
            if !new.contains_key(k) {
                for o in objs {
                    if doc.get(o, k.as_str())?.is_some() {
                        doc.delete(o, k.as_str())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Remove key `k` from every object of `objs` but the last, which is
/// about to get a new value for it.
fn remove_from_others(doc: &mut AutoCommit, objs: &[ObjId], k: &str) -> Result<()> {
    for o in objs.iter().take(objs.len().saturating_sub(1)) {
        if doc.get(o, k)?.is_some() {
            doc.delete(o, k)?;
        }
    }
    Ok(())
}

/// Every value key `k` has in objects `objs`, in order of priority, the
/// one that wins last: the objects in their order, and in each the
/// conflicting values as Automerge orders them (its winner last).
fn candidates<'a>(
    doc: &'a AutoCommit,
    objs: &[ObjId],
    k: &str,
    heads: Option<&[ChangeHash]>,
) -> Result<Vec<(Value<'a>, ObjId)>> {
    let mut out = Vec::new();
    for o in objs {
        out.extend(match heads {
            Some(h) => doc.get_all_at(o, k, h)?,
            None => doc.get_all(o, k)?,
        });
    }
    Ok(out)
}

fn insert_value(doc: &mut AutoCommit, list: &ObjId, at: usize, v: &Json) -> Result<()> {
    match v {
        Json::Object(m) => {
            let id = doc.insert_object(list, at, ObjType::Map)?;
            write_map(doc, &[id], None, m)
        }
        Json::Array(items) => {
            let id = doc.insert_object(list, at, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_value(doc, &id, i, item)?;
            }
            Ok(())
        }
        other => Ok(doc.insert(list, at, scalar(other))?),
    }
}

fn read_value(
    doc: &AutoCommit,
    v: ValueRef<'_>,
    id: impl FnOnce() -> ObjId,
    depth: usize,
    heads: Option<&[ChangeHash]>,
) -> Result<Json> {
    let wrong = || CoreError::invalid("data", "wrong_type", "记录含有不支持的数据类型");
    Ok(match v {
        ValueRef::Object(t) => read_obj(doc, &id(), t, depth + 1, heads)?,
        ValueRef::Scalar(s) => match s {
            ScalarValueRef::Str(s) => Json::String(s.into_owned()),
            ScalarValueRef::Int(i) => Json::from(i),
            ScalarValueRef::Uint(u) => Json::from(u),
            ScalarValueRef::F64(f) => serde_json::Number::from_f64(f).map(Json::Number).ok_or_else(wrong)?,
            ScalarValueRef::Boolean(b) => Json::Bool(b),
            ScalarValueRef::Null => Json::Null,
            // The record writer never makes these; a document holding one
            // was written by something else, and its meaning (a counter
            // adds up concurrent increments) is not the schema's.
            ScalarValueRef::Counter(_)
            | ScalarValueRef::Timestamp(_)
            | ScalarValueRef::Bytes(_)
            | ScalarValueRef::Unknown { .. } => {
                return Err(wrong());
            }
        },
    })
}

/// The JSON of object `obj`, in one pass over its keys or items (each
/// with the value that wins a conflict, as `get` would give it, except
/// that maps in conflict are read as one: [`read_maps`]).
fn read_obj(doc: &AutoCommit, obj: &ObjId, t: ObjType, depth: usize, heads: Option<&[ChangeHash]>) -> Result<Json> {
    if depth > MAX_DEPTH {
        return Err(CoreError::Document("document nested too deeply".into()));
    }
    match t {
        ObjType::Map => read_maps(doc, std::slice::from_ref(obj), depth, heads),
        ObjType::List => {
            let items = match heads {
                Some(h) => doc.list_range_at(obj, .., h),
                None => doc.list_range(obj, ..),
            };
            let mut out = Vec::new();
            for item in items {
                out.push(read_value(doc, item.value.clone(), || item.id(), depth, heads)?);
            }
            Ok(Json::Array(out))
        }
        // Text and tables are never written by the record writer.
        ObjType::Text | ObjType::Table => Err(CoreError::invalid("data", "wrong_type", "记录含有不支持的数据类型")),
    }
}

/// The JSON of the map that objects `objs` hold together: one object, or
/// several that phones made at the same key at once, in the order
/// [`candidates`] gives them. Every key of any of them is read; a key
/// several of them hold reads as the value Automerge would pick last, and
/// when that is a map, as the union of every map held there (so entries
/// two phones added at once inside maps they both created all stay).
fn read_maps(doc: &AutoCommit, objs: &[ObjId], depth: usize, heads: Option<&[ChangeHash]>) -> Result<Json> {
    if depth > MAX_DEPTH {
        return Err(CoreError::Document("document nested too deeply".into()));
    }
    let mut m = Map::new();
    if let [obj] = objs {
        // The common case: one object, read in one pass; only a key in
        // conflict looks at every value it holds.
        let items = match heads {
            Some(h) => doc.map_range_at(obj, .., h),
            None => doc.map_range(obj, ..),
        };
        for item in items {
            let value = if item.conflict {
                resolve(doc, candidates(doc, objs, &item.key, heads)?, depth, heads)?
            } else {
                read_value(doc, item.value.clone(), || item.id(), depth, heads)?
            };
            m.insert(item.key.into_owned(), value);
        }
        return Ok(Json::Object(m));
    }
    let mut keys = std::collections::BTreeSet::new();
    for o in objs {
        let ks = match heads {
            Some(h) => doc.keys_at(o, h),
            None => doc.keys(o),
        };
        keys.extend(ks);
    }
    for k in keys {
        let held = candidates(doc, objs, &k, heads)?;
        if !held.is_empty() {
            m.insert(k, resolve(doc, held, depth, heads)?);
        }
    }
    Ok(Json::Object(m))
}

/// The value of a key holding `held` (see [`candidates`]): the last one,
/// or, when that is a map, every map among them read as one.
fn resolve(
    doc: &AutoCommit,
    held: Vec<(Value<'_>, ObjId)>,
    depth: usize,
    heads: Option<&[ChangeHash]>,
) -> Result<Json> {
    let Some((last, last_id)) = held.last() else { return Ok(Json::Null) };
    match last {
        Value::Object(ObjType::Map) => {
            let maps: Vec<ObjId> = held
                .iter()
                .filter(|(v, _)| matches!(v, Value::Object(ObjType::Map)))
                .map(|(_, id)| id.clone())
                .collect();
            read_maps(doc, &maps, depth + 1, heads)
        }
        Value::Object(t) => read_obj(doc, last_id, *t, depth + 1, heads),
        Value::Scalar(s) => scalar_json(s),
    }
}

/// A scalar as JSON, by the rules of [`read_value`]: the types the record
/// writer never writes are an error.
fn scalar_json(s: &ScalarValue) -> Result<Json> {
    let wrong = || CoreError::invalid("data", "wrong_type", "记录含有不支持的数据类型");
    Ok(match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map(Json::Number).ok_or_else(wrong)?,
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Null => Json::Null,
        ScalarValue::Counter(_) | ScalarValue::Timestamp(_) | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
            return Err(wrong());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridPath;
    use crate::model::*;

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

    fn photo(by: &str, at: i64) -> Attachment {
        Attachment { mime: "image/jpeg".into(), size: 1000, at, by: by.into(), event: None, thumb_of: None }
    }

    fn attach(doc: &mut RecordDoc, hash: char, a: Attachment) {
        let mut r = doc.record().unwrap();
        r.attachments.insert(hash.to_string().repeat(64), a);
        r.updated_at += 1;
        assert!(doc.update(&r).unwrap());
    }

    fn hashes(doc: &RecordDoc) -> Vec<String> {
        doc.record().unwrap().attachments.keys().map(|h| h[..1].to_owned()).collect()
    }

    /// Two phones holding a record without photos each attach a first one
    /// offline: each creates the `attachments` map, and Automerge keeps two
    /// objects in conflict at the key. Both photos read back, on both
    /// phones, whichever order they merge in; each change alone shows only
    /// its own.
    #[test]
    fn a_first_photo_attached_on_two_phones_at_once_keeps_both() {
        let mut a = RecordDoc::create(&hazard(), ActorId::random()).unwrap();
        let mut b = a.fork_as(ActorId::random());
        attach(&mut a, 'a', photo("gm1", 2_000));
        attach(&mut b, 'b', photo("vl1", 2_001));
        let b_heads = b.heads();
        let mut a2 = a.fork_as(ActorId::random());
        a.merge(&mut b).unwrap();
        b.merge(&mut a2).unwrap();
        assert_eq!(hashes(&a), ["a", "b"]);
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        let at_b = Record::from_json(&a.to_json_at(&b_heads).unwrap()).unwrap();
        assert_eq!(at_b.attachments.keys().map(|h| &h[..1]).collect::<Vec<_>>(), ["b"]);
        // The maps really are in conflict (the reader, not luck, keeps both).
        let all = a.automerge().get_all(ROOT, "attachments").unwrap();
        assert_eq!(all.len(), 2);
    }

    /// After such a merge, a phone edits the union as one map: a photo
    /// added lands once, an entry held only by the losing object can be
    /// changed or removed (the document, not the rules, is tested here),
    /// and another phone that merges the edits reads exactly the same.
    #[test]
    fn the_union_of_maps_in_conflict_is_written_as_one_map() {
        let mut a = RecordDoc::create(&hazard(), ActorId::random()).unwrap();
        let mut b = a.fork_as(ActorId::random());
        attach(&mut a, 'a', photo("gm1", 2_000));
        attach(&mut b, 'b', photo("vl1", 2_001));
        a.merge(&mut b).unwrap();
        // Whichever object lost: change every entry, then drop both first
        // photos (one of them is held only by the losing object).
        attach(&mut a, 'c', photo("gm1", 3_000));
        let mut r = a.record().unwrap();
        for a in r.attachments.values_mut() {
            a.size = 2000;
        }
        r.updated_at += 1;
        assert!(a.update(&r).unwrap());
        assert_eq!(a.record().unwrap(), r);
        r.attachments.retain(|h, _| h.starts_with('c'));
        r.updated_at += 1;
        assert!(a.update(&r).unwrap());
        assert_eq!(a.record().unwrap(), r);
        b.merge(&mut a).unwrap();
        assert_eq!(b.record().unwrap(), r);
        // Nothing left to write: the document reads as what was written.
        assert!(!b.update(&r).unwrap());
    }

    /// Three phones create the map at once and two of them share a key
    /// (the same photo attached twice): every key is kept, and the shared
    /// one reads as the value Automerge picks, on every replica.
    #[test]
    fn maps_made_on_three_phones_merge_key_by_key() {
        let base = RecordDoc::create(&hazard(), ActorId::random()).unwrap().save();
        let mut docs: Vec<RecordDoc> = (0..3).map(|_| RecordDoc::load(&base, ActorId::random()).unwrap()).collect();
        attach(&mut docs[0], 'a', photo("gm1", 2_000));
        attach(&mut docs[1], 'b', photo("gm2", 2_001));
        attach(&mut docs[1], 'f', photo("gm2", 2_002));
        attach(&mut docs[2], 'f', photo("gm3", 2_003));
        let mut merged = Vec::new();
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut m = RecordDoc::load(&base, ActorId::random()).unwrap();
            for i in order {
                let mut other = docs[i].fork_as(ActorId::random());
                m.merge(&mut other).unwrap();
            }
            merged.push(m.to_json().unwrap());
        }
        assert!(merged.windows(2).all(|w| w[0] == w[1]), "{merged:?}");
        let r = Record::from_json(&merged[0]).unwrap();
        assert_eq!(r.attachments.keys().map(|h| &h[..1]).collect::<Vec<_>>(), ["a", "b", "f"]);
        let by = &r.attachments[&"f".repeat(64)].by;
        assert!(by == "gm2" || by == "gm3");
    }
}
