//! Limits on the merged record never freeze it, and a padded record never
//! loses an honest step, end to end with real server processes, on SQLite
//! and on PostgreSQL, each case with two phones offline at once: a grid
//! manager's 999 follow-ups never stop the village leader's escalation; a
//! hazard padded past its size limit still takes the township chief's
//! resolution; household members added at once past 100 never stop the
//! address fix; a grid manager's offline 稳控 step on a dispute padded past
//! its size limit is kept and shown on his phone, blocks none of his later
//! work, and is never dropped by the repair. (Photos added at once past
//! their limit: `photo_owners::photos_added_at_once_past_the_limit_freeze_nothing`.)

use gridsync_core::judge::MAX_DOC_BYTES;
use gridsync_core::model::{
    DisputeAction, DisputeCategory, DisputeLevel, HazardAction, HazardCategory, Location, MAX_NOTES_PER_AUTHOR, Member,
    PatrolSlot, PersonCategory, RecordBody,
};
use gridsync_core::phone::{ApiError, DisputeFields, HazardFields, RecordInput};
use gridsync_core::protocol::RejectReason;
use gridsync_tests::device::Device;
use gridsync_tests::records::{dispute_act, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, postgres_db, seed_demo};
use uuid::Uuid;

on_both_backends!(
    a_grid_managers_999_follow_ups_never_stop_the_escalation,
    a_padded_hazard_still_takes_the_township_resolution,
    members_added_at_once_past_100_never_stop_the_address_fix,
    an_offline_step_on_a_padded_dispute_is_kept_and_shown_never_dropped,
);

/// A county on a real server, and its database open beside it.
struct County {
    server: ServerProc,
    admin: Admin,
}

impl County {
    async fn start(db: Db) -> County {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let server = ServerProc::start(db).unwrap();
        County { server, admin }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    fn json(&self, id: &str) -> serde_json::Value {
        let id: Uuid = id.parse().unwrap();
        blocking(|| self.admin.record(id).unwrap()).expect("record on the server").json
    }

    /// Bytes of the record's stored (compacted) document.
    fn stored_bytes(&self, id: &str) -> usize {
        let id: Uuid = id.parse().unwrap();
        blocking(|| self.admin.snapshot(id).unwrap()).expect("record on the server").snapshot.len()
    }
}

/// Sync and insist that nothing was refused or set aside.
async fn sync_clean(d: &mut Device) {
    let r = d.sync().await.unwrap_or_else(|e| panic!("{} could not sync: {e}", d.user));
    assert!(r.rejected.is_empty(), "{}: refused {:?}", d.user, r.rejected);
    assert!(r.set_aside.is_empty(), "{}: set aside {:?}", d.user, r.set_aside);
}

/// The actions in the stored record's history, by type.
fn actions(json: &serde_json::Value) -> Vec<String> {
    json["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"]["type"].as_str().unwrap().to_owned())
        .collect()
}

/// A long note no compressor shrinks much (2,000 characters is a step's limit).
fn long_note(i: usize) -> String {
    (0..1990).map(|j| char::from_u32(0x4e00 + ((i * 7919 + j * 31) % 20000) as u32).unwrap()).collect()
}

fn dispute() -> RecordInput {
    RecordInput::Dispute(DisputeFields {
        parties: vec!["张三".into(), "李四".into()],
        category: DisputeCategory::Land,
        summary: "两户因地界发生争执".into(),
        found_at: gridsync_server::clock::now_ms(),
    })
}

fn hazard() -> RecordInput {
    RecordInput::Hazard(HazardFields {
        category: HazardCategory::Geological,
        location: Location { text: "二组后山".into(), gps: None },
        description: "山体出现裂缝，已设警示。".into(),
    })
}

/// A grid manager adds 999 follow-ups to a dispute while the village
/// leader classifies it, both offline. Once both have synced, the leader's
/// escalation of the merged 1,000-event dispute is taken by her phone and
/// the server; only a note of the grid manager's past his own budget of
/// 1,000 is refused.
async fn a_grid_managers_999_follow_ups_never_stop_the_escalation(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, dispute()).unwrap().id;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    // Through the store (as `append_dispute_event` saves them, without
    // building the view each time).
    let rid: Uuid = id.parse().unwrap();
    let user = gm.user.clone();
    for i in 0..MAX_NOTES_PER_AUTHOR as i64 - 1 {
        let at = gridsync_server::clock::now_ms() + i;
        let note = DisputeAction::FollowUp { note: format!("第{i}次回访") };
        gm.store().edit(rid, at, |r| dispute_act(r, &user, at, note)).unwrap();
    }
    let classify = DisputeAction::Classified { category: DisputeCategory::Neighbour, note: "周例会甄别".into() };
    vl.phone.append_dispute_event(&id, classify).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    assert_eq!(actions(&c.json(&id)).len(), MAX_NOTES_PER_AUTHOR, "all 999 follow-ups are stored");
    match vl.phone.get_record(&id).unwrap().body {
        RecordBody::Dispute(d) => assert_eq!(d.events.len(), MAX_NOTES_PER_AUTHOR),
        other => panic!("{other:?}"),
    }

    let up = DisputeAction::Escalated { to: DisputeLevel::Township, note: "村级无法化解".into() };
    let view = vl.phone.append_dispute_event(&id, up).expect("the leader's phone takes the escalation");
    assert_eq!(view.level, Some(DisputeLevel::Township));
    sync_clean(&mut vl).await;
    let stored = actions(&c.json(&id));
    assert_eq!(stored.len(), MAX_NOTES_PER_AUTHOR + 1);
    assert_eq!(stored.iter().filter(|a| *a == "escalated").count(), 1, "the escalation is stored");

    // The grid manager's own budget: his 1,000th note is taken, the next
    // is refused at once, in Chinese.
    sync_clean(&mut gm).await;
    assert_eq!(gm.phone.get_record(&id).unwrap().level, Some(DisputeLevel::Township));
    gm.phone.append_dispute_event(&id, DisputeAction::FollowUp { note: "第1000条".into() }).unwrap();
    sync_clean(&mut gm).await;
    match gm.phone.append_dispute_event(&id, DisputeAction::FollowUp { note: "再回访".into() }) {
        Err(ApiError::InvalidInput { message_zh, .. }) => {
            assert!(message_zh.contains("每人在一条记录上最多记录1000条"), "{message_zh}")
        }
        other => panic!("a note past the grid manager's budget must be refused: {other:?}"),
    }
}

/// A village leader fills a hazard past its size limit with long handling
/// steps while the township chief, offline, records its resolution and the
/// grid manager, offline, one more step. The chief's resolution is taken
/// (township chiefs resolve hazards); the grid manager's step, who does not
/// handle the hazard, is refused for size and kept on his phone.
async fn a_padded_hazard_still_takes_the_township_resolution(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let mut tc = c.phone("tc-t01-1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    sync_clean(&mut tc).await;
    tc.phone.append_hazard_event(&id, HazardAction::Resolved { note: "乡镇组织排危，隐患已消除".into() }).unwrap();
    gm.phone.append_hazard_event(&id, HazardAction::Step { note: "已拉警戒线".into() }).unwrap();
    let mut i = 0;
    for _round in 0..12 {
        if c.stored_bytes(&id) > MAX_DOC_BYTES {
            break;
        }
        for _ in 0..30 {
            vl.phone.append_hazard_event(&id, HazardAction::Step { note: long_note(i) }).unwrap();
            i += 1;
        }
        sync_clean(&mut vl).await;
    }
    assert!(c.stored_bytes(&id) > MAX_DOC_BYTES, "padded to {} bytes", c.stored_bytes(&id));

    sync_clean(&mut tc).await;
    let stored = actions(&c.json(&id));
    assert!(stored.iter().any(|a| a == "resolved"), "the resolution is stored: {stored:?}");
    let r = gm.sync().await.unwrap();
    let refused: Vec<_> = r.rejected.iter().filter(|(d, _)| d.to_string() == id).collect();
    assert_eq!(refused.len(), 1, "{:?}", r.rejected);
    assert_eq!(refused[0].1.code, RejectReason::TooLarge.as_str());
    assert_eq!(gm.phone.get_record(&id).unwrap().rejection.map(|r| r.code), Some("too_large".into()));
}

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        relation: "家庭成员".into(),
        category: PersonCategory::Resident,
        id_number: String::new(),
        guardian: None,
    }
}

fn household_of(d: &Device, id: &str) -> gridsync_core::model::Household {
    match d.phone.get_record(id).unwrap().body {
        RecordBody::Household(h) => h,
        other => panic!("not a household: {other:?}"),
    }
}

/// A household of 95 members: the grid manager adds five and the
/// supervisor five more, both offline (each within the limit of 100). The
/// merged ledger holds 105: the address fix is taken by the phone and the
/// server, and only a step adding a 106th member is refused.
async fn members_added_at_once_past_100_never_stop_the_address_fix(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut sv = c.phone("sv-t01-v01").await;
    let h = gridsync_core::model::Household {
        head_name: "王大山".into(),
        address: "两当县一组3号".into(),
        ten_household_group: String::new(),
        members: (0..95).map(|i| (format!("m{i}"), member(&format!("成员{i}")))).collect(),
        machinery: Default::default(),
        vehicles: Default::default(),
        facilities: Default::default(),
        notes: String::new(),
    };
    let id = gm.phone.create_record(None, RecordInput::Household(h)).unwrap().id;
    sync_clean(&mut gm).await;
    sync_clean(&mut sv).await;
    for (d, who) in [(&gm, "gm"), (&sv, "sv")] {
        let mut h = household_of(d, &id);
        for k in 0..5 {
            h.members.insert(format!("{who}{k}"), member(&format!("新增{who}{k}")));
        }
        d.phone.update_record(&id, RecordInput::Household(h)).unwrap();
    }
    sync_clean(&mut gm).await;
    sync_clean(&mut sv).await;
    sync_clean(&mut gm).await;
    assert_eq!(household_of(&gm, &id).members.len(), 105);

    let mut fixed = household_of(&gm, &id);
    fixed.address = "两当县一组5号".into();
    gm.phone.update_record(&id, RecordInput::Household(fixed)).expect("the phone takes the address fix");
    sync_clean(&mut gm).await;
    let stored = c.json(&id);
    assert_eq!(stored["data"]["address"], "两当县一组5号");
    assert_eq!(stored["data"]["members"].as_object().unwrap().len(), 105);

    let mut more = household_of(&sv, &id);
    more.members.insert("sv9".into(), member("第106人"));
    match sv.phone.update_record(&id, RecordInput::Household(more)) {
        Err(ApiError::InvalidInput { message_zh, .. }) => assert!(message_zh.contains("家庭成员不能超过100人")),
        other => panic!("a 106th member must be refused: {other:?}"),
    }
}

/// A village leader, who handles the dispute, fills it past its size limit
/// with long follow-ups while the grid manager, offline, records a 稳控
/// step. The server refuses his step for size. His phone keeps it and
/// says why; his next edits, of a patrol and of the same dispute, are not
/// blocked; the repair keeps the refused step in the list the app shows
/// (with its reason and its content) instead of dropping it; and the
/// leader can still escalate the dispute.
async fn an_offline_step_on_a_padded_dispute_is_kept_and_shown_never_dropped(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, dispute()).unwrap().id;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    gm.phone.append_dispute_event(&id, DisputeAction::Stabilized { note: "夜间稳控，双方已劝离".into() }).unwrap();
    let mut i = 0;
    for _round in 0..12 {
        if c.stored_bytes(&id) > MAX_DOC_BYTES {
            break;
        }
        for _ in 0..30 {
            vl.phone.append_dispute_event(&id, DisputeAction::FollowUp { note: long_note(i) }).unwrap();
            i += 1;
        }
        sync_clean(&mut vl).await;
    }
    assert!(c.stored_bytes(&id) > MAX_DOC_BYTES, "padded to {} bytes", c.stored_bytes(&id));

    let r = gm.sync().await.unwrap();
    assert_eq!(r.rejected.iter().map(|(_, x)| x.code.as_str()).collect::<Vec<_>>(), ["too_large"]);
    // Kept, and shown on the record with why.
    let view = gm.phone.get_record(&id).unwrap();
    assert_eq!(view.rejection.as_ref().map(|r| r.code.as_str()), Some("too_large"));
    assert!(format!("{:?}", view.body).contains("夜间稳控"), "the step is still on the phone");

    // Later work is not blocked: another record, and the same dispute.
    let grid = gm.grid.clone();
    let user = gm.user.clone();
    gm.create(&patrol(&grid, &user, 1, PatrolSlot::Evening)).unwrap();
    gm.phone
        .append_dispute_event(&id, DisputeAction::FollowUp { note: "现场回访，双方情绪平稳".into() })
        .expect("a refused step must not block the next one");
    // The repair kept the refused step aside, with its reason and content.
    let kept = gm.phone.refused_steps().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].record_id.as_str(), kept[0].code.as_str()), (id.as_str(), "too_large"));
    assert!(kept[0].message_zh.contains("KB"), "{}", kept[0].message_zh);
    assert!(kept[0].after_json.contains("夜间稳控"));
    let view = gm.phone.get_record(&id).unwrap();
    assert_eq!(view.rejection.as_ref().map(|r| r.code.as_str()), Some("too_large"), "still shown");
    let r = gm.sync().await.unwrap();
    // The patrol reached the server; the follow-up, past the size limit
    // and not the grid manager's to add there, is refused and kept too (a
    // step that closes the dispute would be taken: `rules::closes`).
    assert_eq!(r.rejected.iter().map(|(_, x)| x.code.as_str()).collect::<Vec<_>>(), ["too_large"]);
    assert!(r.set_aside.is_empty());
    gm.phone.append_dispute_event(&id, DisputeAction::FollowUp { note: "再次回访".into() }).unwrap();
    assert_eq!(gm.phone.refused_steps().unwrap().len(), 2);
    assert_eq!(gm.store().outbox_len().unwrap(), 1, "the latest step waits to be sent, nothing else");
    assert!(blocking(|| c.admin.record(Uuid::parse_str(&id).unwrap()).unwrap()).is_some());

    // The dispute is not frozen for the people who handle it.
    sync_clean(&mut vl).await;
    let up = DisputeAction::Escalated { to: DisputeLevel::Township, note: "上报乡镇".into() };
    vl.phone.append_dispute_event(&id, up).unwrap();
    sync_clean(&mut vl).await;
    assert!(actions(&c.json(&id)).iter().any(|a| a == "escalated"));

    // Dismissed by the grid manager once seen.
    for s in gm.phone.refused_steps().unwrap() {
        assert!(gm.phone.dismiss_refused_step(&s.record_id, &s.hash).unwrap());
    }
    assert!(gm.phone.refused_steps().unwrap().is_empty());
}
