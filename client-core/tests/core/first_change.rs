//! A new record's first change, read without Automerge's op set
//! (`doc::first_change_tree`), gives exactly the tree Automerge gives after
//! applying it, or declines: checked on every record kind as the record
//! writer makes them, and on random changes of any shape a hostile phone
//! could encode.

use crate::common;

use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType, SortedVec};
use automerge::{ActorId, Change, ExpandedChange, ObjType, ScalarValue};
use gridsync_core::doc::{RecordDoc, first_change_snapshot, first_change_tree, parse_change};
use gridsync_core::model::RecordKind;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// What Automerge makes of `c` on an empty document: its tree, or `None`
/// if it cannot apply it or the tree is not readable as a record's.
fn automerge_tree(c: &Change) -> Option<serde_json::Value> {
    let mut doc = RecordDoc::empty(ActorId::random());
    gridsync_core::doc::guarded(|| doc.apply(vec![c.clone()])).ok()?;
    gridsync_core::doc::guarded(|| doc.to_json()).ok()
}

#[test]
fn every_kind_of_new_record_is_read_without_the_op_set_as_automerge_reads_it() {
    for kind in RecordKind::ALL {
        let rec = common::sample(kind, "t01/v01/g1", common::T0);
        let mut doc = RecordDoc::create(&rec, ActorId::random()).unwrap();
        let [change] = &doc.changes_since(&[])[..] else { panic!("one change") };
        let change = parse_change(change.raw_bytes()).unwrap();
        let tree = first_change_tree(&change);
        assert!(tree.is_some(), "{kind:?}: the record writer's first change declined");
        assert_eq!(tree, automerge_tree(&change), "{kind:?}");
        assert_eq!(tree, Some(doc.to_json().unwrap()), "{kind:?}");
        // Stored as its own chunk, it loads as the document.
        let loaded = RecordDoc::load(&first_change_snapshot(&change), ActorId::random()).unwrap();
        assert_eq!(loaded.record().unwrap(), rec, "{kind:?}");
    }
}

#[test]
fn a_long_first_change_is_stored_compressed_and_loads() {
    let mut rec = common::sample(RecordKind::Patrol, "t01/v01/g1", common::T0);
    if let gridsync_core::model::RecordBody::Patrol(p) = &mut rec.body {
        p.route =
            (0..300).map(|i| gridsync_core::model::GeoPoint { lat: 33.9 + f64::from(i) * 1e-4, lon: 106.3 }).collect();
    }
    let mut doc = RecordDoc::create(&rec, ActorId::random()).unwrap();
    let change = doc.changes_since(&[]).remove(0);
    let snapshot = first_change_snapshot(&change);
    assert!(snapshot.len() < change.raw_bytes().len() / 2, "{} of {}", snapshot.len(), change.raw_bytes().len());
    assert_eq!(RecordDoc::load(&snapshot, ActorId::random()).unwrap().record().unwrap(), rec);
}

/// A first change nesting maps deeper than a record reader reads is
/// declined, as Automerge's reader refuses it.
#[test]
fn nesting_past_the_readers_limit_is_declined() {
    use automerge::transaction::Transactable;
    for depth in [15, 16, 17, 30] {
        let mut doc = automerge::AutoCommit::new();
        let mut obj = automerge::ROOT;
        for _ in 0..depth {
            obj = doc.put_object(&obj, "x", ObjType::Map).unwrap();
        }
        doc.commit();
        let change = parse_change(doc.get_changes(&[])[0].raw_bytes()).unwrap();
        let tree = first_change_tree(&change);
        assert_eq!(tree, automerge_tree(&change), "depth {depth}");
        assert_eq!(tree.is_some(), depth <= 16, "depth {depth}");
    }
}

/// One operation of a random change, as indices resolved against what the
/// change made before it.
#[derive(Debug, Clone)]
struct RawOp {
    target: u8,
    action: u8,
    key: u8,
    after: u8,
    insert_flag: u8,
    pred: u8,
    scalar: u8,
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (any::<u8>(), any::<u8>(), 0u8..6, any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
        |(target, action, key, after, insert_flag, pred, scalar)| RawOp {
            target,
            action,
            key,
            after,
            insert_flag,
            pred,
            scalar,
        },
    )
}

/// Encode `ops` as a root change of `actor`: mostly well-formed (puts into
/// maps, appends to lists), with conflicts, overwrites, deletes, counters,
/// text, inserts in the middle and dangling references mixed in.
fn change_of(actor: &ActorId, ops: &[RawOp], tame: bool) -> Option<Change> {
    let other = ActorId::from([7u8; 16]);
    let mut objects: Vec<(ObjectId, ObjType)> = vec![(ObjectId::Root, ObjType::Map)];
    let mut last_elem: Vec<Option<OpId>> = vec![None];
    let mut operations = Vec::new();
    for (i, r) in ops.iter().enumerate() {
        let counter = 1 + i as u64;
        // Tame: into an object the change made, each key once. A third
        // of the operations go into the newest object, so lists get long.
        let t = match r.target % 3 {
            0 => objects.len() - 1,
            _ => r.target as usize % (objects.len() + usize::from(!tame)),
        };
        let (obj, obj_type) = match objects.get(t) {
            Some(o) => o.clone(),
            // A reference to an object the change never made.
            None => (ObjectId::Id(OpId(counter + 5, actor.clone())), ObjType::Map),
        };
        let action = match r.action % 16 {
            0..=5 => OpType::Put(match r.scalar % 10 {
                0 => ScalarValue::Str(format!("值{}", r.scalar).into()),
                1 => ScalarValue::Int(i64::from(r.scalar) - 100),
                2 => ScalarValue::Uint(u64::from(r.scalar)),
                3 => ScalarValue::F64(f64::from(r.scalar) / 3.0),
                4 => ScalarValue::Boolean(r.scalar % 2 == 0),
                5 => ScalarValue::Null,
                6 => ScalarValue::Counter(i64::from(r.scalar).into()),
                7 => ScalarValue::Timestamp(i64::from(r.scalar)),
                8 => ScalarValue::Bytes(vec![r.scalar]),
                _ => ScalarValue::F64(f64::NAN),
            }),
            6..=8 => OpType::Make(ObjType::Map),
            9..=11 => OpType::Make(ObjType::List),
            12 => OpType::Make(ObjType::Text),
            13 => OpType::Delete,
            14 => OpType::Increment(1),
            _ => OpType::Make(ObjType::Table),
        };
        let well_formed = r.insert_flag % 8 != 0;
        let (key, insert) = match obj_type {
            ObjType::List | ObjType::Text if well_formed => {
                let last = last_elem.get(t).cloned().flatten();
                let elem = match (r.after % 4, last) {
                    (0, _) | (_, None) => ElementId::Head,
                    (_, Some(l)) => ElementId::Id(l),
                };
                (Key::Seq(elem), true)
            }
            _ if tame => (Key::Map(format!("k{counter}").into()), false),
            _ if well_formed => (Key::Map(["a", "b", "c", "事项", "data", "id"][r.key as usize % 6].into()), false),
            _ => match r.after % 3 {
                0 => (Key::Seq(ElementId::Head), r.insert_flag % 2 == 0),
                1 => (Key::Seq(ElementId::Id(OpId(u64::from(r.after), actor.clone()))), true),
                _ => (Key::Map("a".into()), true),
            },
        };
        let pred: SortedVec<OpId> = match r.pred % 10 {
            0 if counter > 1 => vec![OpId(counter - 1, actor.clone())].into(),
            1 => vec![OpId(counter, other.clone())].into(),
            _ => SortedVec::new(),
        };
        if insert
            && t < objects.len()
            && let Some(slot) = last_elem.get_mut(t)
        {
            *slot = Some(OpId(counter, actor.clone()));
        }
        if let OpType::Make(ty) = action
            && t < objects.len()
        {
            objects.push((ObjectId::Id(OpId(counter, actor.clone())), ty));
            last_elem.push(None);
        }
        operations.push(Op { action, obj, key, pred, insert });
    }
    let expanded = ExpandedChange {
        operations,
        actor_id: actor.clone(),
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(1).unwrap(),
        time: 0,
        message: None,
        deps: vec![],
        extra_bytes: vec![],
        author: None,
    };
    let change = std::panic::catch_unwind(|| Change::from(expanded)).ok()?;
    // As the server sees it: parsed from the bytes a phone sent.
    parse_change(change.raw_bytes()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Where the shortcut reads a tree, Automerge applies the change and
    /// reads the same tree; where Automerge cannot, the shortcut declines.
    #[test]
    fn the_shortcut_reads_what_automerge_reads_or_declines(ops in proptest::collection::vec(raw_op(), 0..40), tame: bool) {
        let actor = ActorId::random();
        if let Some(change) = change_of(&actor, &ops, tame)
            && let Some(tree) = first_change_tree(&change)
        {
            prop_assert_eq!(Some(tree), automerge_tree(&change));
        }
    }
}

/// The random changes above are not all declined: most well-formed ones
/// take the shortcut, so the property is tested where it matters.
#[test]
fn random_well_formed_changes_mostly_take_the_shortcut() {
    let actor = ActorId::random();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(raw_op(), 1..12);
    let (mut taken, mut tried) = (0, 0);
    for _ in 0..500 {
        let mut ops = strategy.new_tree(&mut runner).unwrap().current();
        for o in &mut ops {
            o.insert_flag |= 1;
            o.pred = 5;
            o.action %= 12;
            o.scalar %= 6;
            o.after = 1;
        }
        if let Some(change) = change_of(&actor, &ops, true) {
            tried += 1;
            if first_change_tree(&change).is_some() {
                taken += 1;
            }
        }
    }
    assert!(tried > 400 && taken * 4 > tried, "{taken} of {tried} took the shortcut");
}
