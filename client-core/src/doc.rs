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
        write_map(&mut doc, &ROOT, None, &tree)?;
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
        new.validate()?;
        let old = self.to_json()?;
        let old_rec = Record::from_json(&old)?;
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
        if let Err(e) = write_map(&mut self.doc, &ROOT, Some(&old_obj), &tree) {
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

fn write_map(
    doc: &mut AutoCommit,
    obj: &ObjId,
    old: Option<&Map<String, Json>>,
    new: &Map<String, Json>,
) -> Result<()> {
    for (k, v) in new {
        let prev = old.and_then(|o| o.get(k));
        if prev == Some(v) {
            continue;
        }
        match v {
            Json::Object(m) => match (prev, doc.get(obj, k.as_str())?) {
                (Some(Json::Object(pm)), Some((Value::Object(ObjType::Map), id))) => write_map(doc, &id, Some(pm), m)?,
                _ => {
                    let id = doc.put_object(obj, k.as_str(), ObjType::Map)?;
                    write_map(doc, &id, None, m)?;
                }
            },
            Json::Array(items) if APPEND_ONLY.contains(&k.as_str()) => {
                let existing = doc.get(obj, k.as_str())?;
                let list = match existing {
                    Some((Value::Object(ObjType::List), id)) => id,
                    _ => doc.put_object(obj, k.as_str(), ObjType::List)?,
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
                let list = doc.put_object(obj, k.as_str(), ObjType::List)?;
                for (i, item) in items.iter().enumerate() {
                    insert_value(doc, &list, i, item)?;
                }
            }
            other => doc.put(obj, k.as_str(), scalar(other))?,
        }
    }
    if let Some(old) = old {
        for k in old.keys() {
            if !new.contains_key(k) {
                doc.delete(obj, k.as_str())?;
            }
        }
    }
    Ok(())
}

fn insert_value(doc: &mut AutoCommit, list: &ObjId, at: usize, v: &Json) -> Result<()> {
    match v {
        Json::Object(m) => {
            let id = doc.insert_object(list, at, ObjType::Map)?;
            write_map(doc, &id, None, m)
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
/// with the value that wins a conflict, as `get` would give it).
fn read_obj(doc: &AutoCommit, obj: &ObjId, t: ObjType, depth: usize, heads: Option<&[ChangeHash]>) -> Result<Json> {
    if depth > MAX_DEPTH {
        return Err(CoreError::Document("document nested too deeply".into()));
    }
    match t {
        ObjType::Map => {
            let mut m = Map::new();
            let items = match heads {
                Some(h) => doc.map_range_at(obj, .., h),
                None => doc.map_range(obj, ..),
            };
            for item in items {
                let value = read_value(doc, item.value.clone(), || item.id(), depth, heads)?;
                m.insert(item.key.into_owned(), value);
            }
            Ok(Json::Object(m))
        }
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
