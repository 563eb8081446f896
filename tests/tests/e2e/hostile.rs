//! Hostile phones: enrolled devices that send crafted changes to a real
//! server process. Each case checks that the forbidden change is refused
//! with its reason, that every honest change still arrives, and that the
//! honest phones keep syncing. Every case runs on SQLite and on PostgreSQL.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{Change, ReadDoc};
use gridsync_core::CoreError;
use gridsync_core::events::Event;
use gridsync_core::grid::GridPath;
use gridsync_core::model::*;
use gridsync_core::protocol::RejectReason;
use gridsync_tests::device::{Device, RawClient};
use gridsync_tests::hostile::*;
use gridsync_tests::records::{DAY0, dispute, dispute_act, hazard, hazard_step, patrol, visit};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, postgres_db, seed_demo};
use uuid::Uuid;

on_both_backends!(
    an_invalid_step_hidden_behind_its_repair_stalls_nobody,
    a_phone_cannot_write_under_a_colleagues_actor,
    stale_parents_do_not_bypass_the_dispute_level,
    a_township_chief_cannot_overwrite_a_key_person_visit,
    hazard_steps_are_recorded_as_their_pusher,
    deletes_and_edits_follow_role_and_level,
    the_server_decides_when_a_report_was_submitted,
    unknown_keys_a_changed_schema_and_wrong_types_are_refused,
    an_honest_record_is_never_lost_to_a_rule_the_phone_did_not_know,
    a_record_a_phone_cannot_apply_is_set_aside,
);

/// A county on a real server, its database, and phones enrolled on it.
struct Town {
    server: ServerProc,
    admin: Admin,
}

impl Town {
    async fn start(db: Db) -> Town {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let server = ServerProc::start(db).unwrap();
        Town { server, admin }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    /// The server's materialized record.
    fn json(&self, id: Uuid) -> serde_json::Value {
        blocking(|| self.admin.record(id).unwrap()).expect("record on the server").json
    }

    fn changes(&self) -> u64 {
        blocking(|| self.admin.change_count().unwrap())
    }
}

/// Sync and insist that nothing was refused or set aside.
async fn sync_clean(d: &mut Device) {
    let r = d.sync().await.unwrap_or_else(|e| panic!("{} could not sync: {e}", d.user));
    assert!(r.rejected.is_empty(), "{}: refused {:?}", d.user, r.rejected);
    assert!(r.set_aside.is_empty(), "{}: set aside {:?}", d.user, r.set_aside);
}

fn events_of(json: &serde_json::Value) -> Vec<serde_json::Value> {
    json["data"]["events"].as_array().cloned().unwrap_or_default()
}

fn dispute_of(d: &Device, id: Uuid) -> Dispute {
    match d.store().get(id).unwrap().body {
        RecordBody::Dispute(x) => x,
        _ => panic!("not a dispute"),
    }
}

/// The edit `mutate` makes, written with no rule applied, as `dev`'s phone.
fn crafted_edit(dev: &Device, id: Uuid, mutate: impl FnOnce(&mut Record)) -> Vec<Change> {
    let mut doc = copy_of(dev, id).unwrap();
    let heads = doc.heads();
    let mut rec = doc.record().unwrap();
    mutate(&mut rec);
    assert!(doc.update(&rec).unwrap(), "the crafted edit changes nothing");
    doc.changes_since(&heads)
}

/// The edit `mutate` makes on `dev`'s copy of a record, written as another
/// device's actor: one change, with that actor's next sequence number.
fn as_actor(dev: &Device, id: Uuid, actor: &automerge::ActorId, mutate: impl FnOnce(&mut Record)) -> Change {
    let mut doc = copy_of(dev, id).unwrap().fork_as(actor.clone());
    let heads = doc.heads();
    let mut rec = doc.record().unwrap();
    mutate(&mut rec);
    assert!(doc.update(&rec).unwrap());
    doc.changes_since(&heads).remove(0)
}

fn assert_not_allowed<T: std::fmt::Debug>(r: Result<T, CoreError>, needle: &str) {
    match r {
        Err(CoreError::NotAllowed { message_zh, .. }) => assert!(message_zh.contains(needle), "{message_zh}"),
        other => panic!("the phone should refuse this step at once: {other:?}"),
    }
}

/// A grid manager's phone sends two changes to his own patrol: the first
/// breaks it (an unknown patrol slot, with 200 KB of text), the second puts
/// it right. Both are refused (the second only because it builds on the
/// first); his new hazard in the same request is stored; the village
/// leader, supervisor, township chief, county and a phone enrolled
/// afterwards all keep syncing and hold every honest record.
async fn an_invalid_step_hidden_behind_its_repair_stalls_nobody(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut readers = Vec::new();
    for u in ["vl-t01-v01", "sv-t01-v01", "tc-t01-1", "county-admin"] {
        let mut d = t.phone(u).await;
        // The smallest page the server gives: the two changes would land in
        // different pages.
        d.opts.page_bytes = 16 * 1024;
        readers.push(d);
    }
    let p = patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning);
    gm.create(&p).unwrap();
    sync_clean(&mut gm).await;
    for r in &mut readers {
        sync_clean(r).await;
    }

    let mut doc = copy_of(&gm, p.id).unwrap();
    let h0 = doc.heads();
    let data = data_obj(&mut doc).unwrap();
    doc.automerge().put(&data, "findings", noise_text(70_000)).unwrap();
    put_and_commit(&mut doc, &data, "slot", "midnight").unwrap();
    doc.automerge().put(&data, "findings", "巡查村道、河道及重点户，未发现异常。").unwrap();
    put_and_commit(&mut doc, &data, "slot", "morning").unwrap();
    let crafted = doc.changes_since(&h0);
    assert_eq!(crafted.len(), 2);
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&hz).unwrap();
    let honest: Vec<Vec<u8>> = gm.store().outbox(usize::MAX).unwrap().into_iter().map(|e| e.change).collect();
    let mut docs = vec![wire(p.id, &crafted)];
    docs.push(gridsync_core::protocol::DocChanges { doc: *hz.id.as_bytes(), changes: honest });
    let resp = push_raw(&gm, docs).await.unwrap();
    let refused = refusals(&resp, p.id);
    assert!(!acked(&resp, p.id), "{resp:?}");
    assert_eq!(refused.iter().map(|r| r.2).sum::<usize>(), 2, "{refused:?}");
    assert!(refused.iter().any(|r| matches!(r.0, RejectReason::Invalid | RejectReason::TooLarge)), "{refused:?}");
    assert!(refused.iter().any(|r| r.1.starts_with("依赖于")), "{refused:?}");
    assert!(acked(&resp, hz.id) && refusals(&resp, hz.id).is_empty());

    sync_clean(&mut gm).await;
    for r in &mut readers {
        sync_clean(r).await;
        let held = r.records().unwrap();
        assert!(held.contains_key(&hz.id), "{} lacks the new hazard", r.user);
        assert_eq!(held[&p.id]["data"]["slot"], "morning");
        assert_eq!(held[&p.id]["data"]["findings"], "巡查村道、河道及重点户，未发现异常。");
    }
    let mut fresh = t.phone("vl-t01-v01").await;
    sync_clean(&mut fresh).await;
    let held = fresh.records().unwrap();
    assert!(held.contains_key(&p.id) && held.contains_key(&hz.id));
    assert_eq!(t.json(p.id)["data"]["slot"], "morning");
}

/// A grid manager reads the village leader's actor id (any of her changes
/// carries it) and pushes a hazard step under it with her next sequence
/// number. The server refuses it as another device's; her real offline
/// step then syncs, and both phones keep syncing.
async fn a_phone_cannot_write_under_a_colleagues_actor(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&hz).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;

    let at = DAY0 + 3_600_000;
    // Recorded in his own name: only the actor gives it away.
    let forged = as_actor(&gm, hz.id, vl.store().actor(), |r| hazard_step(r, "gm-t01-v01-g1", at, "已转移三户村民"));
    assert_eq!((forged.actor_id(), forged.seq()), (vl.store().actor(), 1), "her actor, her next sequence number");
    let resp = push_raw(&gm, vec![wire(hz.id, &[forged])]).await.unwrap();
    let refused = refusals(&resp, hz.id);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, RejectReason::Forbidden);
    assert!(refused[0].1.contains("设备标识"), "{refused:?}");

    let vl_user = vl.user.clone();
    vl.store().edit(hz.id, at + 1, |r| hazard_step(r, &vl_user, at + 1, "村里已派人处置")).unwrap();
    sync_clean(&mut vl).await;
    sync_clean(&mut gm).await;
    let notes: Vec<String> = events_of(&t.json(hz.id)).iter().map(|e| e["action"]["note"].to_string()).collect();
    assert!(notes.iter().any(|n| n.contains("村里已派人处置")), "{notes:?}");
    assert!(!notes.iter().any(|n| n.contains("已转移三户村民")), "{notes:?}");
    let on_gm = events_of(&gm.records().unwrap()[&hz.id]);
    assert!(on_gm.iter().any(|e| e["by"] == vl_user.as_str()), "the leader's step reached the grid manager");
}

/// A grid manager resolves a dispute on the spot while, offline, the
/// village leader escalates it to the township: a genuine conflict. The
/// leader can neither claim she never saw her own escalation (an event
/// whose parents skip it) nor settle the conflict by keeping the village
/// resolution; the township chief can.
async fn stale_parents_do_not_bypass_the_dispute_level(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let mut tc = t.phone("tc-t01-1").await;
    let d = dispute(&gm.grid, &gm.user, 0);
    gm.create(&d).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    let found = dispute_of(&vl, d.id).events[0].id.clone();

    let (gm_user, vl_user) = (gm.user.clone(), vl.user.clone());
    let at = DAY0 + 86_400_000;
    vl.store()
        .edit(d.id, at, |r| {
            dispute_act(
                r,
                &vl_user,
                at,
                DisputeAction::Escalated { to: DisputeLevel::Township, note: "书面上报".into() },
            )
        })
        .unwrap();
    gm.store()
        .edit(d.id, at + 1, |r| dispute_act(r, &gm_user, at + 1, DisputeAction::Resolved { note: "现场调解".into() }))
        .unwrap();
    sync_clean(&mut vl).await;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    sync_clean(&mut tc).await;
    let st = dispute_of(&vl, d.id).state();
    assert_eq!((st.status, st.level), (DisputeStatus::Conflict, DisputeLevel::Township));

    // A resolution that claims to follow only the first event.
    let stale = crafted_edit(&vl, d.id, |r| {
        if let RecordBody::Dispute(x) = &mut r.body {
            x.events.push(Event {
                id: Uuid::new_v4().to_string(),
                at: at + 2,
                by: vl_user.clone(),
                parents: vec![found.clone()],
                action: DisputeAction::Resolved { note: "村里已调解".into() },
            });
        }
    });
    let resp = push_raw(&vl, vec![wire(d.id, &stale)]).await.unwrap();
    assert_eq!(refusals(&resp, d.id).first().map(|r| r.0), Some(RejectReason::Forbidden), "{resp:?}");

    // Settling by keeping the village resolution would take the case back down.
    let dv = dispute_of(&vl, d.id);
    let resolution = dv.events.iter().find(|e| matches!(e.action, DisputeAction::Resolved { .. })).unwrap().id.clone();
    let keep_resolution = DisputeAction::Settled { kept: resolution.clone(), note: "以调解为准".into() };
    let act = keep_resolution.clone();
    assert_not_allowed(vl.store().edit(d.id, at + 3, |r| dispute_act(r, &vl_user, at + 3, act)), "乡镇网格总长");
    let act = keep_resolution.clone();
    let crafted = crafted_edit(&vl, d.id, |r| dispute_act(r, &vl_user, at + 3, act));
    let resp = push_raw(&vl, vec![wire(d.id, &crafted)]).await.unwrap();
    assert_eq!(refusals(&resp, d.id).first().map(|r| r.0), Some(RejectReason::Forbidden), "{resp:?}");
    assert_eq!(blocking(|| t.admin.record(d.id).unwrap().unwrap().status), "conflict");

    // The township chief decides.
    let tc_user = tc.user.clone();
    tc.store().edit(d.id, at + 4, |r| dispute_act(r, &tc_user, at + 4, keep_resolution)).unwrap();
    sync_clean(&mut tc).await;
    sync_clean(&mut vl).await;
    sync_clean(&mut gm).await;
    let view = blocking(|| t.admin.record(d.id).unwrap().unwrap());
    assert_eq!((view.status.as_str(), view.has_conflict), ("resolved", false));
    assert_eq!(dispute_of(&gm, d.id).state().status, DisputeStatus::Resolved);
}

/// A township chief, who may not read key-person visits, pushes a change
/// to one based on its first version, padded with 500 operations so his
/// value would win the register conflict. Refused; the visit is unchanged
/// on the server and on the village leader's phone.
async fn a_township_chief_cannot_overwrite_a_key_person_visit(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let tc = t.phone("tc-t01-1").await;
    let v = visit(&gm.grid, &gm.user, 0, VisitTarget::KeyPerson);
    gm.create(&v).unwrap();
    let gm_user = gm.user.clone();
    gm.store()
        .edit(v.id, DAY0 + 1000, |r| {
            if let RecordBody::Visit(x) = &mut r.body {
                x.findings = "情绪稳定，监护人在家".into();
            }
            let _ = &gm_user;
        })
        .unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;

    let mut doc = copy_of(&gm, v.id).unwrap();
    let root: Vec<_> = doc.changes_since(&[]).into_iter().filter(|c| c.deps().is_empty()).map(|c| c.hash()).collect();
    let mut old = doc.fork_at(&root, tc.store().actor().clone()).unwrap();
    let data = data_obj(&mut old).unwrap();
    for i in 0..500 {
        old.automerge().put(&data, "findings", format!("{i}")).unwrap();
    }
    put_and_commit(&mut old, &data, "findings", "乡镇已核实，无需关注").unwrap();
    let resp = push_raw(&tc, vec![wire(v.id, &old.changes_since(&root))]).await.unwrap();
    let refused = refusals(&resp, v.id);
    assert_eq!(refused.first().map(|r| r.0), Some(RejectReason::Forbidden), "{resp:?}");
    assert_eq!(t.json(v.id)["data"]["findings"], "情绪稳定，监护人在家");
    sync_clean(&mut vl).await;
    assert_eq!(vl.records().unwrap()[&v.id]["data"]["findings"], "情绪稳定，监护人在家");
}

/// A hazard step must be recorded as the person who pushes it.
async fn hazard_steps_are_recorded_as_their_pusher(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&hz).unwrap();
    sync_clean(&mut gm).await;
    let at = DAY0 + 7_200_000;
    let crafted = crafted_edit(&gm, hz.id, |r| hazard_step(r, "vl-t01-v01", at, "网格长已到场"));
    let resp = push_raw(&gm, vec![wire(hz.id, &crafted)]).await.unwrap();
    let refused = refusals(&resp, hz.id);
    assert_eq!(refused.first().map(|r| r.0), Some(RejectReason::Forbidden));
    assert!(refused[0].1.contains("记录人"), "{refused:?}");
    assert_not_allowed(gm.store().edit(hz.id, at, |r| hazard_step(r, "vl-t01-v01", at, "网格长已到场")), "记录人");
    let user = gm.user.clone();
    gm.store().edit(hz.id, at, |r| hazard_step(r, &user, at, "已设置警示牌")).unwrap();
    sync_clean(&mut gm).await;
    let events = events_of(&t.json(hz.id));
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["by"] == "gm-t01-v01-g1"));
}

/// Once a dispute is at the township, the grid manager who found it can no
/// longer delete it or rewrite its parties and summary; nobody changes its
/// category except through a classification; a township chief cannot
/// delete a grid manager's hazard. The phone refuses each at once, and the
/// server refuses the same changes written past the phone's rules.
async fn deletes_and_edits_follow_role_and_level(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let mut tc = t.phone("tc-t01-1").await;
    let d = dispute(&gm.grid, &gm.user, 0);
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&d).unwrap();
    gm.create(&hz).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    let vl_user = vl.user.clone();
    let at = DAY0 + 86_400_000;
    vl.store()
        .edit(d.id, at, |r| {
            dispute_act(
                r,
                &vl_user,
                at,
                DisputeAction::Escalated { to: DisputeLevel::Township, note: "书面上报".into() },
            )
        })
        .unwrap();
    sync_clean(&mut vl).await;
    sync_clean(&mut gm).await;
    sync_clean(&mut tc).await;
    let before_d = t.json(d.id);
    let before_h = t.json(hz.id);

    assert_not_allowed(gm.store().delete(d.id, at), "乡镇级纠纷");
    let reword = |r: &mut Record| {
        if let RecordBody::Dispute(x) = &mut r.body {
            x.parties = vec!["王五".into()];
            x.summary = "已经没事了".into();
        }
    };
    assert_not_allowed(gm.store().edit(d.id, at, reword), "乡镇级纠纷");
    let recategorize = |r: &mut Record| {
        if let RecordBody::Dispute(x) = &mut r.body {
            x.category = DisputeCategory::Debt;
        }
    };
    assert_not_allowed(gm.store().edit(d.id, at, recategorize), "甄别分类");
    assert_not_allowed(vl.store().edit(d.id, at, recategorize), "甄别分类");
    assert_not_allowed(tc.store().delete(hz.id, at), "删除");

    let cases: Vec<(&Device, Uuid, Vec<Change>)> = vec![
        (&gm, d.id, crafted_edit(&gm, d.id, |r| r.deleted = true)),
        (&gm, d.id, crafted_edit(&gm, d.id, reword)),
        (&gm, d.id, crafted_edit(&gm, d.id, recategorize)),
        (&tc, hz.id, crafted_edit(&tc, hz.id, |r| r.deleted = true)),
    ];
    for (dev, id, changes) in cases {
        let resp = push_raw(dev, vec![wire(id, &changes)]).await.unwrap();
        assert_eq!(refusals(&resp, id).first().map(|r| r.0), Some(RejectReason::Forbidden), "{}: {resp:?}", dev.user);
    }
    assert_eq!(t.json(d.id), before_d);
    assert_eq!(t.json(hz.id), before_h);
    // What each may do still works: the chief handles the case, the leader
    // removes a hazard report made by mistake.
    let tc_user = tc.user.clone();
    tc.store()
        .edit(d.id, at + 1, |r| {
            dispute_act(r, &tc_user, at + 1, DisputeAction::PlanSet { plan: "司法所介入".into(), team: vec![] })
        })
        .unwrap();
    vl.store().delete(hz.id, at + 1).unwrap();
    sync_clean(&mut tc).await;
    sync_clean(&mut vl).await;
    assert_eq!(t.json(hz.id)["deleted"], true);
    assert_eq!(blocking(|| t.admin.record(d.id).unwrap().unwrap().status), "in_progress");
}

/// A township chief submits October 2025's report today with a date a year
/// ago: the server keeps the time it received the submission, so the
/// county sees the report as late, whatever the phone's clock said.
async fn the_server_decides_when_a_report_was_submitted(db: Db) {
    let t = Town::start(db).await;
    let mut tc = t.phone("tc-t01-1").await;
    let before = gridsync_server::clock::now_ms();
    let claimed = before - 365 * 86_400_000;
    let r = Record::new(
        GridPath::parse("t01").unwrap(),
        &tc.user,
        claimed,
        RecordBody::MonthlyReport(MonthlyReport {
            month: "2025-10".into(),
            figures: BTreeMap::from([("patrols.morning".to_owned(), 12)]),
            narrative: "本月总体平稳".into(),
            submitted_at: Some(claimed),
            returned: None,
        }),
    );
    tc.create(&r).unwrap();
    sync_clean(&mut tc).await;
    let stamped = t.json(r.id)["data"]["submitted_at"].as_i64().unwrap();
    assert!(stamped >= before, "the server kept the phone's time {stamped} (test began at {before})");
    let subs = blocking(|| {
        gridsync_server::reports::submissions(t.admin.as_ref(), &GridPath::parse("t01").unwrap(), "2025-10", stamped)
            .unwrap()
    });
    assert_eq!(subs.townships[0].status, gridsync_server::reports::SubmissionStatus::Late);
    assert_eq!(subs.townships[0].submitted_at, Some(stamped));
    // The phone keeps what it wrote; the county judges by the server's time.
    match tc.store().get(r.id).unwrap().body {
        RecordBody::MonthlyReport(m) => assert_eq!(m.submitted_at, Some(claimed)),
        _ => unreachable!(),
    }
}

/// Keys no schema knows (150,000 characters of them on a patrol whose
/// findings are capped at 4,000), a changed schema version, `deleted` as
/// text, and an unknown field inside a hazard step are each refused with
/// the field named; the record stays as it was.
async fn unknown_keys_a_changed_schema_and_wrong_types_are_refused(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let p = patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning);
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&p).unwrap();
    gm.create(&hz).unwrap();
    sync_clean(&mut gm).await;
    let (before_p, before_h) = (t.json(p.id), t.json(hz.id));
    let count = t.changes();
    for case in 0..4 {
        let id = if case == 3 { hz.id } else { p.id };
        let mut doc = copy_of(&gm, id).unwrap();
        let heads = doc.heads();
        match case {
            0 => {
                let data = data_obj(&mut doc).unwrap();
                put_and_commit(&mut doc, &data, "padding", "x".repeat(150_000)).unwrap();
            }
            1 => put_and_commit(&mut doc, &automerge::ROOT, "schema", 2).unwrap(),
            2 => put_and_commit(&mut doc, &automerge::ROOT, "deleted", "yes").unwrap(),
            _ => {
                let data = data_obj(&mut doc).unwrap();
                let events = doc.automerge().get(&data, "events").unwrap().unwrap().1;
                let first = doc.automerge().get(&events, 0).unwrap().unwrap().1;
                let action = doc.automerge().get(&first, "action").unwrap().unwrap().1;
                doc.automerge().put(&action, "extra", "x").unwrap();
                doc.automerge().commit();
            }
        }
        let resp = push_raw(&gm, vec![wire(id, &doc.changes_since(&heads))]).await.unwrap();
        let refused = refusals(&resp, id);
        assert_eq!(refused.len(), 1, "case {case}: {resp:?}");
        assert!(matches!(refused[0].0, RejectReason::Invalid | RejectReason::Immutable), "case {case}: {refused:?}");
        let needle = ["padding", "版本", "deleted", "extra"][case];
        assert!(refused[0].1.contains(needle), "case {case}: {refused:?}");
    }
    assert_eq!((t.json(p.id), t.json(hz.id)), (before_p, before_h));
    assert_eq!(t.changes(), count);
    sync_clean(&mut gm).await;
}

/// A grid manager's phone still believes him a village leader (his role
/// changed on the server since he enrolled): offline he records a dispute,
/// sets a plan (not a grid manager's step) and adds a follow-up. The server
/// keeps the dispute and refuses the plan and the follow-up built on it;
/// the phone keeps all three, shows why, and refuses further edits until
/// he repairs the record; the repair drops the plan and replays the
/// follow-up, which then reaches the village leader.
async fn an_honest_record_is_never_lost_to_a_rule_the_phone_did_not_know(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    // With his real role the phone refuses the plan at once.
    let d0 = dispute(&gm.grid, &gm.user, 0);
    gm.create(&d0).unwrap();
    let user = gm.user.clone();
    let at = DAY0 + 3_600_000;
    let plan = DisputeAction::PlanSet { plan: "组织双方调解".into(), team: vec!["村调委会".into()] };
    let act = plan.clone();
    assert_not_allowed(gm.store().edit(d0.id, at, |r| dispute_act(r, &user, at, act)), "制定化解方案");

    let mut e = gm.store().enrollment().unwrap().unwrap();
    let real_role = e.role.clone();
    e.role = "village_leader".into();
    e.grid = "t01/v01".into();
    gm.store().set_enrollment(&e).unwrap();
    let d = dispute(&GridPath::parse("t01/v01/g1").unwrap(), &gm.user, 1);
    gm.create(&d).unwrap();
    let act = plan.clone();
    gm.store().edit(d.id, at, |r| dispute_act(r, &user, at, act)).unwrap();
    gm.store()
        .edit(d.id, at + 1, |r| {
            dispute_act(r, &user, at + 1, DisputeAction::FollowUp { note: "双方同意周五面谈".into() })
        })
        .unwrap();
    let report = gm.sync().await.unwrap();
    let rejected: Vec<&str> =
        report.rejected.iter().filter(|(id, _)| *id == d.id).map(|(_, r)| r.message_zh.as_str()).collect();
    assert!(rejected.iter().any(|m| m.contains("制定化解方案")), "{rejected:?}");
    sync_clean(&mut vl).await;
    let on_vl = dispute_of(&vl, d.id);
    assert_eq!(on_vl.events.len(), 1, "only the creation reached the leader");

    // The phone keeps its work and says why.
    assert_eq!(dispute_of(&gm, d.id).events.len(), 3);
    let shown = gm.store().list(&Default::default()).unwrap().into_iter().find(|s| s.id == d.id).unwrap();
    assert!(shown.rejection.unwrap().message_zh.contains("制定化解方案"));
    // A bare update (an edit repairs first) waits for the repair.
    let mut next = gm.store().get(d.id).unwrap();
    dispute_act(&mut next, &user, at + 2, DisputeAction::FollowUp { note: "x".into() });
    assert!(matches!(gm.store().update(&next), Err(CoreError::NeedsRepair { .. })));
    e.role = real_role;
    e.grid = "t01/v01/g1".into();
    gm.store().set_enrollment(&e).unwrap();
    let rep = gm.store().repair(d.id, at + 3).unwrap();
    assert_eq!((rep.dropped, rep.replayed, rep.skipped, rep.removed, rep.kept), (1, 1, 0, false, 1));
    // The refused plan is kept aside for the user, not dropped.
    let kept = gm.store().refused_steps().unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].message_zh.contains("制定化解方案") && kept[0].after.to_string().contains("组织双方调解"));
    let local = dispute_of(&gm, d.id);
    assert_eq!(local.events.len(), 2);
    assert!(!local.events.iter().any(|e| matches!(e.action, DisputeAction::PlanSet { .. })));
    sync_clean(&mut gm).await;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    let on_vl = dispute_of(&vl, d.id);
    assert!(
        on_vl.events.iter().any(|e| matches!(&e.action, DisputeAction::FollowUp { note } if note.contains("周五")))
    );
    assert_eq!(
        vl.store().load_doc(d.id).unwrap().to_json().unwrap(),
        gm.store().load_doc(d.id).unwrap().to_json().unwrap()
    );
}

/// A server from before changes were judged one at a time stored a change
/// under the village leader's actor with the sequence number her own
/// offline edit also has. Her phone cannot apply it: it sets that record
/// aside, keeps syncing everything else, and tells the server, which counts
/// it in its metrics.
async fn a_record_a_phone_cannot_apply_is_set_aside(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&hz).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    let at = DAY0 + 3_600_000;
    let vl_user = vl.user.clone();
    vl.store().edit(hz.id, at, |r| hazard_step(r, &vl_user, at, "村里已派人处置")).unwrap();
    let forged = as_actor(&gm, hz.id, vl.store().actor(), |r| hazard_step(r, "vl-t01-v01", at, "伪造的处置记录"));
    blocking(|| inject_unjudged(t.admin.as_ref(), hz.id, &[forged]).unwrap());
    let p2 = patrol(&gm.grid, &gm.user, 1, PatrolSlot::Evening);
    gm.create(&p2).unwrap();
    sync_clean(&mut gm).await;

    let report = vl.sync().await.unwrap();
    assert!(report.set_aside.iter().any(|(id, _)| *id == hz.id), "{report:?}");
    assert!(vl.records().unwrap().contains_key(&p2.id), "the rest of the feed still arrived");
    let again = vl.sync().await.unwrap();
    assert!(again.rejected.is_empty());
    assert!(vl.store().set_aside().unwrap().iter().all(|s| s.reported));
    let metrics = RawClient::new().get_text(&format!("{}/metrics", t.server.url())).await.unwrap();
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gridsync_phone_records_set_aside_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(counted >= 1, "{metrics}");
    // The grid manager, whose phone has no conflicting change, holds it.
    sync_clean(&mut gm).await;
    assert_eq!(events_of(&gm.records().unwrap()[&hz.id]).len(), 2);
}
