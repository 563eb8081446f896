//! The phone's record store: what a grid manager saves is what the app
//! reads back, lists and sends, including after the app is restarted.

use crate::common;

use std::collections::BTreeSet;

use automerge::ActorId;
use common::{DAY, T0, first_event, grid, member, sample};
use gridsync_core::CoreError;
use gridsync_core::doc::{RecordDoc, parse_change};
use gridsync_core::model::{
    DisputeAction, DisputeLevel, HazardAction, PersonCategory, Record, RecordBody, RecordKind, next_event,
};
use gridsync_core::store::{ListFilter, Store};
use uuid::Uuid;

/// `rec` with a few fields changed, as a second visit to the record would.
fn edited(rec: &Record, at: i64) -> Record {
    let mut r = rec.clone();
    r.updated_at = at;
    match &mut r.body {
        RecordBody::Patrol(p) => {
            p.findings = "发现村口护栏松动".into();
            p.hazard_ids.insert(Uuid::new_v4().to_string(), true);
        }
        RecordBody::Hazard(h) => {
            h.description = "雨后山体有落石，已设警示牌".into();
            let e = next_event(&h.events, "gm1", at, HazardAction::Step { note: "设置警示牌".into() });
            h.events.push(e);
        }
        RecordBody::Visit(v) => {
            v.follow_up_needed = true;
            v.findings = "租户一人未登记".into();
        }
        RecordBody::Household(h) => {
            h.members.get_mut("m2").unwrap().id_number = "11010519491231002X".into();
            h.members.remove("m3");
            h.members.insert("m4".into(), member("李小红", "子女", PersonCategory::Floating));
        }
        RecordBody::Dispute(d) => {
            d.parties.push("王五".into());
            let e = next_event(
                &d.events,
                "gm1",
                at,
                DisputeAction::Escalated { to: DisputeLevel::Township, note: "村级无法化解".into() },
            );
            d.events.push(e);
        }
        RecordBody::VillageMeeting(m) => {
            m.disputes_reviewed.insert(Uuid::new_v4().to_string(), true);
            m.decisions.push_str("；上报乡镇一起");
        }
        RecordBody::TownshipReview(t) => t.decisions.push_str("；报县综治中心一起"),
        RecordBody::MonthlyReport(m) => m.submitted_at = Some(at),
    }
    r
}

fn invalid_fields(e: CoreError) -> Vec<String> {
    match e {
        CoreError::Invalid(errs) => errs.into_iter().map(|e| e.field).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn ids(list: &[gridsync_core::store::RecordSummary]) -> BTreeSet<Uuid> {
    list.iter().map(|s| s.id).collect()
}

#[test]
fn every_kind_round_trips_through_create_update_get() {
    let mut store = Store::open_in_memory().unwrap();
    for (i, kind) in RecordKind::ALL.into_iter().enumerate() {
        let at = T0 + i as i64 * DAY;
        let rec = sample(kind, "t01/v03/g2", at);
        store.create(&rec).unwrap();
        assert_eq!(store.get(rec.id).unwrap(), rec, "{kind:?}");

        let changed = edited(&rec, at + 3_600_000);
        assert!(store.update(&changed).unwrap(), "{kind:?}");
        assert_eq!(store.get(rec.id).unwrap(), changed, "{kind:?}");
        let list = store.list(&ListFilter { kind: Some(kind), ..Default::default() }).unwrap();
        assert_eq!(list.len(), 1);
        let s = &list[0];
        let ix = changed.index();
        assert_eq!(
            (s.id, s.kind, &s.status, &s.title, s.updated_at),
            (rec.id, kind, &ix.status, &ix.title, at + 3_600_000)
        );

        // Saving the same thing again changes nothing and sends nothing.
        let outbox = store.outbox_len().unwrap();
        assert!(!store.update(&changed).unwrap());
        assert_eq!(store.outbox_len().unwrap(), outbox);
    }
    assert_eq!(store.count().unwrap(), RecordKind::ALL.len() as u64);
    // The statuses a user sees in lists follow the edits.
    let status = |k| store.list(&ListFilter { kind: Some(k), ..Default::default() }).unwrap()[0].status.clone();
    assert_eq!(status(RecordKind::Hazard), "handling");
    assert_eq!(status(RecordKind::Dispute), "escalated");
    assert_eq!(status(RecordKind::Visit), "follow_up");
    assert_eq!(status(RecordKind::Patrol), "done");
}

#[test]
fn every_write_puts_its_change_in_the_outbox() {
    let mut store = Store::open_in_memory().unwrap();
    let rec = sample(RecordKind::Dispute, "t01/v03/g2", T0);
    store.create(&rec).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 1);
    store.update(&edited(&rec, T0 + 1000)).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 2);
    store.delete(rec.id, T0 + 2000).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 3);

    let entries = store.outbox(usize::MAX).unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    for e in &entries {
        assert_eq!(e.doc_id, rec.id);
        assert_eq!(parse_change(&e.change).unwrap().hash().0, e.hash, "stored hash is the change's hash");
    }
    // The newest change is the document's head: the outbox is not behind the record.
    let mut doc = store.load_doc(rec.id).unwrap();
    assert_eq!(doc.heads().iter().map(|h| h.0).collect::<Vec<_>>(), vec![entries[2].hash]);
    // The outbox alone rebuilds the record (it is what the server receives).
    let mut rebuilt = RecordDoc::empty(ActorId::random());
    rebuilt.apply(entries.iter().map(|e| parse_change(&e.change).unwrap()).collect()).unwrap();
    assert_eq!(rebuilt.to_json().unwrap(), doc.to_json().unwrap());
    assert!(rebuilt.record().unwrap().deleted);

    // A byte budget smaller than one change still returns one change.
    assert_eq!(store.outbox(1).unwrap().len(), 1);
    // Acknowledged changes leave the outbox.
    store
        .transaction(|tx| {
            for e in &entries[..2] {
                tx.ack(e.doc_id, &e.hash)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.outbox(usize::MAX).unwrap(), entries[2..].to_vec());
}

#[test]
fn lists_filter_by_kind_status_grid_date_and_name() {
    let mut store = Store::open_in_memory().unwrap();
    let day = |n: i64| T0 + n * DAY;
    let mut add = |rec: Record| {
        store.create(&rec).unwrap();
        rec.id
    };
    let household = add(sample(RecordKind::Household, "t01/v01/g1", day(0)));
    let patrol = add(sample(RecordKind::Patrol, "t01/v01/g1", day(1)));
    let open_hazard = add(sample(RecordKind::Hazard, "t01/v01/g1", day(2)));
    let mut resolved = sample(RecordKind::Hazard, "t01/v01/g1", day(3));
    if let RecordBody::Hazard(h) = &mut resolved.body {
        let e = next_event(&h.events, "gm1", day(3), HazardAction::Resolved { note: "已清理落石".into() });
        h.events.push(e);
    }
    let resolved_hazard = add(resolved);
    let dispute = add(sample(RecordKind::Dispute, "t01/v01/g1", day(4)));
    let visit = add(sample(RecordKind::Visit, "t01/v01/g2", day(5)));
    let mut other = sample(RecordKind::Household, "t01/v01/g2", day(6));
    if let RecordBody::Household(h) = &mut other.body {
        h.head_name = "赵德明".into();
        h.members.clear();
        h.members.insert("m1".into(), member("赵德明", "户主", PersonCategory::Resident));
        h.members.insert("m2".into(), member("王秀兰", "配偶", PersonCategory::Resident));
    }
    let other_household = add(other);
    // v010 starts with "v01" but is another village.
    let lookalike = add(sample(RecordKind::Patrol, "t01/v010/g1", day(7)));
    let other_township = add(sample(RecordKind::Hazard, "t02/v01/g1", day(8)));
    let gone = add(sample(RecordKind::Patrol, "t01/v01/g1", day(9)));
    store.delete(gone, day(9)).unwrap();

    let list = |f: ListFilter| ids(&store.list(&f).unwrap());
    let set = |v: &[Uuid]| v.iter().copied().collect::<BTreeSet<_>>();

    assert_eq!(
        list(ListFilter { kind: Some(RecordKind::Hazard), ..Default::default() }),
        set(&[open_hazard, resolved_hazard, other_township])
    );
    assert_eq!(
        list(ListFilter { kind: Some(RecordKind::Hazard), status: Some("open".into()), ..Default::default() }),
        set(&[open_hazard, other_township])
    );
    assert_eq!(list(ListFilter { status: Some("resolved".into()), ..Default::default() }), set(&[resolved_hazard]));
    assert_eq!(
        list(ListFilter { grid: Some(grid("t01/v01")), ..Default::default() }),
        set(&[household, patrol, open_hazard, resolved_hazard, dispute, visit, other_household])
    );
    assert_eq!(
        list(ListFilter { grid: Some(grid("t01/v01/g2")), ..Default::default() }),
        set(&[visit, other_household])
    );
    assert_eq!(list(ListFilter { grid: Some(grid("t01")), ..Default::default() }).len(), 8);
    assert_eq!(list(ListFilter { grid: Some(grid("")), ..Default::default() }).len(), 9);
    // Date range is [from, until).
    assert_eq!(
        list(ListFilter { from: Some(day(2)), until: Some(day(4)), ..Default::default() }),
        set(&[open_hazard, resolved_hazard])
    );
    assert_eq!(
        list(ListFilter {
            kind: Some(RecordKind::Patrol),
            from: Some(day(1)),
            until: Some(day(30)),
            ..Default::default()
        }),
        set(&[patrol, lookalike])
    );
    // Name search finds a household by a member who is not its head.
    assert_eq!(list(ListFilter { search: Some("王秀英".into()), ..Default::default() }), set(&[household]));
    assert_eq!(
        list(ListFilter { search: Some(" 王秀 ".into()), ..Default::default() }),
        set(&[household, other_household])
    );
    assert_eq!(list(ListFilter { search: Some("赵德明".into()), ..Default::default() }), set(&[other_household]));
    // LIKE wildcards typed by the user are literal characters.
    assert!(list(ListFilter { search: Some("%".into()), ..Default::default() }).is_empty());
    assert!(list(ListFilter { search: Some("王_英".into()), ..Default::default() }).is_empty());

    // Deleted records are hidden unless asked for.
    assert!(!list(ListFilter::default()).contains(&gone));
    let with_deleted = store.list(&ListFilter { include_deleted: true, ..Default::default() }).unwrap();
    assert!(with_deleted.iter().any(|s| s.id == gone && s.deleted));
    assert_eq!(store.count().unwrap(), 9);

    // Pages: newest first, no record twice, none missing.
    let all = store.list(&ListFilter::default()).unwrap();
    assert_eq!(all.len(), 9);
    assert!(all.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at));
    assert_eq!(all[0].id, other_township);
    let mut paged = Vec::new();
    for page in 0..4 {
        let p = store.list(&ListFilter { limit: Some(4), offset: Some(page * 4), ..Default::default() }).unwrap();
        assert!(p.len() <= 4);
        paged.extend(p.into_iter().map(|s| s.id));
    }
    assert_eq!(paged, all.iter().map(|s| s.id).collect::<Vec<_>>());
}

#[test]
fn invalid_input_is_refused_naming_the_field() {
    let mut store = Store::open_in_memory().unwrap();

    let mut hazard = sample(RecordKind::Hazard, "t01/v03/g2", T0);
    if let RecordBody::Hazard(h) = &mut hazard.body {
        h.description = "  ".into();
    }
    let err = store.create(&hazard).unwrap_err();
    assert!(err.message_zh().contains("隐患描述"), "{}", err.message_zh());
    assert_eq!(invalid_fields(err), ["description"]);

    let mut household = sample(RecordKind::Household, "t01/v03/g2", T0);
    if let RecordBody::Household(h) = &mut household.body {
        h.members.get_mut("m2").unwrap().id_number = "110105194912310021".into();
        h.members.get_mut("m3").unwrap().guardian = None;
    }
    assert_eq!(
        invalid_fields(store.create(&household).unwrap_err()),
        ["members[m2].id_number", "members[m3].guardian"]
    );

    let mut patrol = sample(RecordKind::Patrol, "t01/v03/g2", T0);
    if let RecordBody::Patrol(p) = &mut patrol.body {
        p.ended_at = Some(T0 - 1);
    }
    assert_eq!(invalid_fields(store.create(&patrol).unwrap_err()), ["ended_at"]);
    assert_eq!(store.count().unwrap(), 0);
    assert_eq!(store.outbox_len().unwrap(), 0);

    // A bad update leaves the saved record and the outbox as they were.
    let dispute = sample(RecordKind::Dispute, "t01/v03/g2", T0);
    store.create(&dispute).unwrap();
    let mut bad = dispute.clone();
    if let RecordBody::Dispute(d) = &mut bad.body {
        d.summary.clear();
        d.parties = vec![String::new()];
    }
    assert_eq!(invalid_fields(store.update(&bad).unwrap_err()), ["summary", "parties"]);
    let mut moved = dispute.clone();
    moved.grid = grid("t01/v03/g3");
    assert_eq!(invalid_fields(store.update(&moved).unwrap_err()), ["grid"]);
    let mut unknown_parent = dispute.clone();
    if let RecordBody::Dispute(d) = &mut unknown_parent.body {
        let mut e = first_event("gm1", T0, DisputeAction::FollowUp { note: "x".into() });
        e.parents = vec!["no-such-event".into()];
        d.events.push(e);
    }
    assert_eq!(invalid_fields(store.update(&unknown_parent).unwrap_err()), ["events[1].parents"]);
    assert_eq!(store.get(dispute.id).unwrap(), dispute);
    assert_eq!(store.outbox_len().unwrap(), 1);

    assert_eq!(invalid_fields(store.create(&dispute).unwrap_err()), ["id"]);
    let missing = sample(RecordKind::Visit, "t01/v03/g2", T0);
    assert!(matches!(store.update(&missing), Err(CoreError::NotFound(_))));
    assert!(matches!(store.get(missing.id), Err(CoreError::NotFound(_))));
}

#[test]
fn a_reopened_store_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gridsync.db");
    let mut saved = Vec::new();
    let (actor, outbox) = {
        let mut store = Store::open(&path).unwrap();
        for (i, kind) in RecordKind::ALL.into_iter().enumerate() {
            let rec = sample(kind, "t01/v03/g2", T0 + i as i64 * DAY);
            store.create(&rec).unwrap();
            let rec = edited(&rec, T0 + i as i64 * DAY + 1000);
            store.update(&rec).unwrap();
            saved.push(rec);
        }
        store.set_meta("user", "gm1".as_bytes()).unwrap();
        (store.actor().clone(), store.outbox(usize::MAX).unwrap())
    };
    let store = Store::open(&path).unwrap();
    for rec in &saved {
        assert_eq!(&store.get(rec.id).unwrap(), rec);
    }
    assert_eq!(store.count().unwrap(), RecordKind::ALL.len() as u64);
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), RecordKind::ALL.len());
    assert_eq!(store.actor(), &actor, "the phone keeps its actor id");
    assert_eq!(store.outbox(usize::MAX).unwrap(), outbox);
    assert_eq!(store.meta("user").unwrap().as_deref(), Some("gm1".as_bytes()));
    assert!(store.integrity_ok().unwrap());
}

fn send(from: &Store, to: &mut Store) {
    let entries = from.outbox(usize::MAX).unwrap();
    let mut by_doc: Vec<(Uuid, Vec<Vec<u8>>)> = Vec::new();
    for e in entries {
        match by_doc.iter_mut().find(|(d, _)| *d == e.doc_id) {
            Some((_, v)) => v.push(e.change),
            None => by_doc.push((e.doc_id, vec![e.change])),
        }
    }
    to.transaction(|tx| {
        for (doc, changes) in &by_doc {
            assert!(tx.apply_remote(*doc, changes)?);
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn remote_changes_make_the_record_appear_in_another_store() {
    let mut manager = Store::open_in_memory().unwrap();
    let mut leader = Store::open_in_memory().unwrap();
    let rec = sample(RecordKind::Dispute, "t01/v03/g2", T0);
    manager.create(&rec).unwrap();
    let rec = edited(&rec, T0 + 1000);
    manager.update(&rec).unwrap();

    send(&manager, &mut leader);
    assert_eq!(
        leader.load_doc(rec.id).unwrap().to_json().unwrap(),
        manager.load_doc(rec.id).unwrap().to_json().unwrap()
    );
    assert_eq!(leader.get(rec.id).unwrap(), rec);
    assert_eq!(leader.list(&ListFilter::default()).unwrap(), manager.list(&ListFilter::default()).unwrap());
    assert_eq!(leader.outbox_len().unwrap(), 0, "received changes are not sent back");
    // Receiving the same changes twice changes nothing.
    send(&manager, &mut leader);
    assert_eq!(leader.get(rec.id).unwrap(), rec);

    // Both work offline: the manager resolves, the leader escalates to the county.
    manager
        .edit(rec.id, T0 + 2000, |r| {
            if let RecordBody::Dispute(d) = &mut r.body {
                d.events.push(next_event(
                    &d.events,
                    "gm1",
                    T0 + 2000,
                    DisputeAction::Resolved { note: "已调解".into() },
                ));
            }
        })
        .unwrap();
    leader
        .edit(rec.id, T0 + 3000, |r| {
            if let RecordBody::Dispute(d) = &mut r.body {
                let to = DisputeLevel::County;
                d.events.push(next_event(
                    &d.events,
                    "vl1",
                    T0 + 3000,
                    DisputeAction::Escalated { to, note: String::new() },
                ));
            }
        })
        .unwrap();
    send(&manager, &mut leader);
    send(&leader, &mut manager);
    let a = manager.load_doc(rec.id).unwrap().to_json().unwrap();
    let b = leader.load_doc(rec.id).unwrap().to_json().unwrap();
    assert_eq!(a, b);
    for store in [&manager, &leader] {
        let conflicts = store.list(&ListFilter { status: Some("conflict".into()), ..Default::default() }).unwrap();
        assert_eq!(ids(&conflicts), BTreeSet::from([rec.id]));
        assert!(conflicts[0].has_conflict);
    }
}

#[test]
fn changes_missing_their_dependencies_wait() {
    let mut manager = Store::open_in_memory().unwrap();
    let rec = sample(RecordKind::Hazard, "t01/v03/g2", T0);
    manager.create(&rec).unwrap();
    manager.update(&edited(&rec, T0 + 1000)).unwrap();
    let entries = manager.outbox(usize::MAX).unwrap();

    // Only the second change arrives first: nothing readable yet.
    let mut other = Store::open_in_memory().unwrap();
    let readable = other.transaction(|tx| tx.apply_remote(rec.id, &[entries[1].change.clone()])).unwrap();
    assert!(!readable);
    assert!(matches!(other.get(rec.id), Err(CoreError::NotFound(_))));
    // Then everything arrives.
    let all: Vec<Vec<u8>> = entries.iter().map(|e| e.change.clone()).collect();
    assert!(other.transaction(|tx| tx.apply_remote(rec.id, &all)).unwrap());
    assert_eq!(other.get(rec.id).unwrap(), manager.get(rec.id).unwrap());

    // Garbage is refused without touching the store.
    let err = other.transaction(|tx| tx.apply_remote(Uuid::new_v4(), &[vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]]));
    assert!(matches!(err, Err(CoreError::Document(_))), "{err:?}");
    assert_eq!(other.count().unwrap(), 1);
}

/// A change that arrives before the one it builds on is kept, not lost: the
/// record shows the older state until the missing change comes.
#[test]
fn a_change_that_arrives_before_its_dependency_is_kept() {
    let mut manager = Store::open_in_memory().unwrap();
    let rec = sample(RecordKind::Patrol, "t01/v03/g2", T0);
    manager.create(&rec).unwrap();
    let first = edited(&rec, T0 + 1000);
    manager.update(&first).unwrap();
    let mut second = first.clone();
    second.updated_at = T0 + 2000;
    if let RecordBody::Patrol(p) = &mut second.body {
        p.findings = "护栏已修复".into();
    }
    manager.update(&second).unwrap();
    let e = manager.outbox(usize::MAX).unwrap();
    assert_eq!(e.len(), 3);

    let mut other = Store::open_in_memory().unwrap();
    assert!(other.transaction(|tx| tx.apply_remote(rec.id, &[e[0].change.clone()])).unwrap());
    other.transaction(|tx| tx.apply_remote(rec.id, &[e[2].change.clone()])).unwrap();
    assert_eq!(other.get(rec.id).unwrap(), rec);
    assert_eq!(other.load_doc(rec.id).unwrap().missing_deps().len(), 1);
    other.transaction(|tx| tx.apply_remote(rec.id, &[e[1].change.clone()])).unwrap();
    assert!(other.load_doc(rec.id).unwrap().missing_deps().is_empty());
    assert_eq!(other.get(rec.id).unwrap(), second);
    assert_eq!(other.list(&ListFilter::default()).unwrap()[0].updated_at, T0 + 2000);
}

/// A phone carries other phones' relay bundles without being able to read
/// them, but not without bound: only sealed bundles, none past 8 MiB, and
/// at most 200 at once (the same bundle twice counts once). The ones it
/// already carries are kept whole when one more is refused.
#[test]
fn carried_relay_bundles_are_bounded() {
    use gridsync_core::signing::{ServerKey, seal_to_server};
    use gridsync_core::transport::bundle::{MAX_CARRIED, MAX_RELAY_BYTES};
    let reason = |e: CoreError| match e {
        CoreError::Invalid(errs) => errs[0].reason.clone(),
        other => panic!("{other:?}"),
    };
    let mut store = Store::open_in_memory().unwrap();
    let server = ServerKey::generate().unwrap().public();
    assert_eq!(reason(store.carry_relay(b"a plain file", T0).unwrap_err()), "not_a_relay_bundle");
    let huge = seal_to_server(&server, &vec![7; MAX_RELAY_BYTES]).unwrap();
    assert_eq!(reason(store.carry_relay(&huge, T0).unwrap_err()), "too_large");
    let first = seal_to_server(&server, b"bundle 0").unwrap();
    assert!(store.carry_relay(&first, T0).unwrap());
    assert!(!store.carry_relay(&first, T0).unwrap(), "the same bundle again is carried once");
    for i in 1..MAX_CARRIED {
        let sealed = seal_to_server(&server, format!("bundle {i}").as_bytes()).unwrap();
        assert!(store.carry_relay(&sealed, T0 + i as i64).unwrap());
    }
    let one_more = seal_to_server(&server, b"bundle 200").unwrap();
    assert_eq!(reason(store.carry_relay(&one_more, T0 + 500).unwrap_err()), "too_many");
    assert_eq!(store.relay_backlog().unwrap().0, MAX_CARRIED);
    let carried = store.carried_relays().unwrap();
    assert_eq!(carried.len() as u64, MAX_CARRIED);
    assert_eq!(carried[0].1, first, "oldest first, bytes unchanged");
    // Handing one over makes room for the next.
    store.relay_delivered(&carried[0].0).unwrap();
    assert!(store.carry_relay(&one_more, T0 + 600).unwrap());
}

/// The server refuses a step (for size, say): the phone keeps it. The next
/// edit of the record is not blocked: the record is repaired first, the
/// refused step kept aside with its reason and its content, the later step
/// goes to the outbox; the record still shows the refusal until the user
/// dismisses the kept step.
#[test]
fn a_refused_step_is_kept_aside_and_blocks_no_later_edit() {
    let mut store = Store::open_in_memory().unwrap();
    let rec = sample(RecordKind::Hazard, "t01/v03/g2", T0);
    store.create(&rec).unwrap();
    let other = sample(RecordKind::Patrol, "t01/v03/g2", T0);
    store.create(&other).unwrap();
    let sent = store.outbox(usize::MAX).unwrap();
    store.transaction(|tx| sent.iter().try_for_each(|e| tx.ack(e.doc_id, &e.hash))).unwrap();
    let step = |store: &mut Store, at: i64, note: &str| {
        store
            .edit(rec.id, at, |r| {
                if let RecordBody::Hazard(h) = &mut r.body {
                    let e = next_event(&h.events, "gm1", at, HazardAction::Step { note: note.into() });
                    h.events.push(e);
                }
            })
            .unwrap()
    };
    step(&mut store, T0 + 1, "稳控：已设警示");
    let refused = store.outbox(usize::MAX).unwrap();
    assert_eq!(refused.len(), 1);
    let why = gridsync_core::store::Rejection { code: "too_large".into(), message_zh: "记录已超过1024KB".into() };
    store.transaction(|tx| tx.reject(rec.id, &why, &[refused[0].hash], T0 + 2, true)).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 0);

    // Other records and the same record both take the next step.
    let patrol = store
        .edit(other.id, T0 + 3, |r| {
            if let RecordBody::Patrol(p) = &mut r.body {
                p.findings = "补记：路灯已修".into();
            }
        })
        .unwrap();
    assert!(format!("{:?}", patrol.body).contains("路灯已修"));
    let after = step(&mut store, T0 + 4, "再次巡查");
    let RecordBody::Hazard(h) = &after.body else { panic!() };
    let notes: Vec<String> = h.events.iter().map(|e| format!("{:?}", e.action)).collect();
    assert!(notes.iter().any(|n| n.contains("再次巡查")), "{notes:?}");
    assert!(!notes.iter().any(|n| n.contains("已设警示")), "the refused step is out of the record: {notes:?}");
    let queued = store.outbox(usize::MAX).unwrap();
    assert!(queued.iter().all(|e| e.hash != refused[0].hash));
    assert!(queued.iter().any(|e| e.doc_id == rec.id));

    // Kept, with its reason and its content, and shown on the record.
    let kept = store.refused_steps().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].doc_id, kept[0].hash), (rec.id, refused[0].hash));
    assert_eq!((kept[0].reason.as_str(), kept[0].message_zh.as_str()), ("too_large", "记录已超过1024KB"));
    assert!(kept[0].after.to_string().contains("稳控：已设警示"));
    assert_eq!(store.refusals(rec.id).unwrap(), std::slice::from_ref(&why));
    let line = store.list(&ListFilter::default()).unwrap().into_iter().find(|s| s.id == rec.id).unwrap();
    assert_eq!(line.rejection, Some(why));
    // Dismissed by the user: gone, and the record no longer says so.
    assert!(store.dismiss_refused_step(rec.id, &refused[0].hash).unwrap());
    assert!(store.refused_steps().unwrap().is_empty());
    assert!(store.refusals(rec.id).unwrap().is_empty());
    let line = store.list(&ListFilter::default()).unwrap().into_iter().find(|s| s.id == rec.id).unwrap();
    assert_eq!(line.rejection, None);
}
