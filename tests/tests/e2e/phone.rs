//! The phone API ([`gridsync_core::phone::Phone`], what an app calls
//! through the FFI) against a real server: the steps it offers are the
//! steps the server takes, a history reads with its conflicts, lists page
//! by a stable cursor, a sync can be cancelled without holding the store,
//! the app hears what changed, names come from the directory, signing out
//! waits for unsynced work, and the village leader's figures are counted
//! on the phone.

use std::sync::{Arc, Mutex};

use gridsync_core::model::{
    DisputeAction, DisputeCategory, DisputeLevel, HazardAction, HazardCategory, Location, Patrol, PatrolSlot,
    RecordKind, RecordStatus, Visit, VisitTarget,
};
use gridsync_core::phone::{
    ActionKind, ApiError, ChangeListener, ChangeSource, DisputeFields, HazardFields, Phone, RecordInput, RecordQuery,
    RecordView, RecordsChanged,
};
use gridsync_core::sync::{SyncError, SyncOptions};
use gridsync_tests::bed::Bed;
use gridsync_tests::device::{Device, test_retry};
use gridsync_tests::server::issue_code;

fn dispute_input() -> RecordInput {
    RecordInput::Dispute(DisputeFields {
        parties: vec!["张某".into(), "李某".into()],
        category: DisputeCategory::Land,
        summary: "两户因承包地地界发生争执。".into(),
        found_at: gridsync_tests::records::DAY0,
    })
}

fn hazard_input() -> RecordInput {
    RecordInput::Hazard(HazardFields {
        category: HazardCategory::Geological,
        location: Location { text: "二组后山".into(), gps: None },
        description: "山体出现裂缝。".into(),
    })
}

/// The concrete step an app takes for an offered action.
fn step_for(action: ActionKind, to: Option<DisputeLevel>) -> Option<DisputeAction> {
    let note = || "网格员记录".to_owned();
    Some(match action {
        ActionKind::DisputeClassify => DisputeAction::Classified { category: DisputeCategory::Neighbour, note: note() },
        ActionKind::DisputeSetPlan => {
            DisputeAction::PlanSet { plan: "组织双方调解".into(), team: vec!["村调委会".into()] }
        }
        ActionKind::DisputeFollowUp => DisputeAction::FollowUp { note: note() },
        ActionKind::DisputeStabilize => DisputeAction::Stabilized { note: note() },
        ActionKind::DisputeEscalate => DisputeAction::Escalated { to: to?, note: note() },
        ActionKind::DisputeResolve => DisputeAction::Resolved { note: note() },
        _ => return None,
    })
}

fn offered(view: &RecordView, action: ActionKind) -> &gridsync_core::phone::ActionCheck {
    view.actions.iter().find(|a| a.action == action).unwrap()
}

/// For a grid manager, a village leader and a township chief, every step a
/// fresh village dispute offers: a step shown as allowed is saved on the
/// phone and taken by the server (no refusal after the sync); a step shown
/// as not allowed is refused on the phone with the same Chinese reason,
/// and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_offered_is_taken_by_the_server_and_every_step_withheld_is_refused() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut others = [bed.phone("vl-t01-v01").await, bed.phone("tc-t01-1").await];
    let steps = [
        ActionKind::DisputeClassify,
        ActionKind::DisputeSetPlan,
        ActionKind::DisputeFollowUp,
        ActionKind::DisputeStabilize,
        ActionKind::DisputeEscalate,
        ActionKind::DisputeResolve,
    ];
    // One dispute per step, so each is judged on a fresh village dispute.
    let ids: Vec<String> = steps.iter().map(|_| gm.phone.create_record(None, dispute_input()).unwrap().id).collect();
    gm.sync().await.unwrap();
    let (mut allowed_seen, mut refused_seen) = (0, 0);
    for who in 0..3 {
        let d: &mut Device = if who == 0 { &mut gm } else { &mut others[who - 1] };
        d.sync().await.unwrap();
        for (step, id) in steps.iter().zip(&ids) {
            let view = d.phone.get_record(id).unwrap();
            let check = offered(&view, *step);
            let action = step_for(*step, check.escalate_to).unwrap();
            let before = view.timeline.len();
            match d.phone.append_dispute_event(id, action) {
                Ok(after) => {
                    assert!(check.allowed, "{} was withheld but saved: {step:?}", d.user);
                    assert_eq!(after.timeline.len(), before + 1);
                    allowed_seen += 1;
                }
                Err(ApiError::NotAllowed { message_zh, .. }) => {
                    assert!(!check.allowed, "{} was offered {step:?} but refused: {message_zh}", d.user);
                    assert_eq!(check.reason_zh.as_deref(), Some(message_zh.as_str()), "{step:?}");
                    assert_eq!(d.phone.get_record(id).unwrap().timeline.len(), before, "nothing saved");
                    refused_seen += 1;
                }
                Err(e) => panic!("{step:?} by {}: {e}", d.user),
            }
        }
        let report = d.sync().await.unwrap();
        assert_eq!(report.rejected, vec![], "the server took every step {} was offered", d.user);
    }
    assert!(allowed_seen >= 6 && refused_seen >= 4, "allowed {allowed_seen}, refused {refused_seen}");
    // A grid manager may not plan; the village leader may.
    let fresh = gm.phone.create_record(None, dispute_input()).unwrap();
    assert!(!offered(&fresh, ActionKind::DisputeSetPlan).allowed);
    assert!(offered(&fresh, ActionKind::DisputeSetPlan).reason_zh.as_deref().unwrap().contains("制定化解方案"));
    assert!(!offered(&fresh, ActionKind::DisputeSettle).allowed, "no conflict to settle");
    assert_eq!(offered(&fresh, ActionKind::DisputeEscalate).escalate_to, Some(DisputeLevel::Township));
}

/// A grid manager resolves a dispute while the village leader escalates
/// it, both offline. After syncing, the leader's phone shows one conflict
/// with both steps' content, who took them and why they conflict; she
/// settles it by keeping the escalation, and the resolution is marked
/// overruled in the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_reads_as_both_sides_and_settling_marks_the_overruled_step() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut vl = bed.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, dispute_input()).unwrap().id;
    gm.phone.append_dispute_event(&id, DisputeAction::Found { note: "入户发现".into() }).unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();

    gm.phone.append_dispute_event(&id, DisputeAction::Resolved { note: "双方当场和解".into() }).unwrap();
    vl.phone
        .append_dispute_event(&id, DisputeAction::Escalated { to: DisputeLevel::Township, note: "涉及宅基地".into() })
        .unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();

    let view = vl.phone.get_record(&id).unwrap();
    assert_eq!(view.status, RecordStatus::Conflict);
    assert_eq!(view.status_label_zh, "待裁定");
    assert_eq!(view.conflicts.len(), 1);
    let c = &view.conflicts[0];
    assert!(c.reason_zh.contains("化解") && c.reason_zh.contains("上报"), "{}", c.reason_zh);
    let sides: Vec<(&str, &str, &str)> =
        [&c.a, &c.b].iter().map(|s| (s.by.as_str(), s.label_zh.as_str(), s.text.as_str())).collect();
    assert!(sides.contains(&("gm-t01-v01-g1", "化解", "双方当场和解")), "{sides:?}");
    assert!(sides.contains(&("vl-t01-v01", "上报至乡镇", "涉及宅基地")), "{sides:?}");
    for side in [&c.a, &c.b] {
        assert!(side.in_conflict);
        assert!(side.by_name.is_some(), "the directory names {}", side.by);
    }
    let escalation = if c.a.label_zh == "上报至乡镇" { &c.a } else { &c.b }.event_id.clone();
    // Below the township, she may keep only the escalation.
    let settle = offered(&view, ActionKind::DisputeSettle);
    assert!(settle.allowed, "{:?}", settle.reason_zh);
    assert_eq!(settle.settle_keeps, vec![escalation.clone()]);
    assert!(!offered(&gm.phone.get_record(&id).unwrap(), ActionKind::DisputeSettle).allowed);
    let bad = vl.phone.settle_conflict(&id, "not-an-event", "x").unwrap_err();
    assert!(matches!(bad, ApiError::InvalidInput { ref field, .. } if field == "keep"), "{bad:?}");
    let settled = vl.phone.settle_conflict(&id, &escalation, "以上报为准").unwrap();
    assert_eq!(settled.status, RecordStatus::Escalated);
    assert_eq!(settled.level, Some(DisputeLevel::Township));
    assert!(settled.conflicts.is_empty());
    let overruled: Vec<&str> = settled.timeline.iter().filter(|t| t.overruled).map(|t| t.text.as_str()).collect();
    assert_eq!(overruled, ["双方当场和解"]);
    assert!(settled.timeline.iter().all(|t| !t.in_conflict));
    assert_eq!(settled.timeline.last().unwrap().label_zh, "裁定冲突");
    assert_eq!(vl.sync().await.unwrap().rejected, vec![]);
    gm.sync().await.unwrap();
    assert_eq!(gm.phone.get_record(&id).unwrap().timeline, settled.timeline);
}

/// A village leader pages through her records three at a time; between
/// the first and second page a sync brings newer records, which sort to
/// the top. The second page still starts right after the first one's last
/// row: nothing is shown twice or skipped, and the total counts the
/// newcomers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_do_not_shift_when_records_arrive_between_them() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut vl = bed.phone("vl-t01-v01").await;
    for slot in [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening] {
        for day in 0..2 {
            let start = gridsync_tests::records::DAY0 + day * 86_400_000 + slot as i64 * 3_600_000;
            gm.phone.create_record(None, patrol_input(slot, start)).unwrap();
        }
    }
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();
    let all: Vec<String> = vl
        .phone
        .list_records(&RecordQuery { limit: Some(100), ..Default::default() })
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all.len(), 6);

    let q = RecordQuery { kind: Some(RecordKind::Patrol), limit: Some(3), ..Default::default() };
    let first = vl.phone.list_records(&q).unwrap();
    assert_eq!(first.total, 6);
    assert_eq!(first.items.len(), 3);
    // Newer records arrive.
    for i in 0..2 {
        gm.phone
            .create_record(
                None,
                patrol_input(PatrolSlot::Morning, gridsync_tests::records::DAY0 + (10 + i) * 86_400_000),
            )
            .unwrap();
    }
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();
    let second = vl.phone.list_records(&RecordQuery { after: first.next.clone(), ..q.clone() }).unwrap();
    assert_eq!(second.total, 8, "the total counts the newcomers");
    let seen: Vec<String> = first.items.iter().chain(&second.items).map(|r| r.id.clone()).collect();
    assert_eq!(seen, all, "the two pages are the first six rows as they were, in order");
    assert!(second.next.is_none(), "the older end is reached");
    let bad = vl.phone.list_records(&RecordQuery { after: Some("yesterday".into()), ..q }).unwrap_err();
    assert!(matches!(bad, ApiError::InvalidInput { ref field, .. } if field == "after"), "{bad:?}");
}

fn patrol_input(slot: PatrolSlot, start: i64) -> RecordInput {
    RecordInput::Patrol(Patrol {
        slot,
        started_at: start,
        ended_at: Some(start + 1_800_000),
        route: vec![],
        findings: "正常".into(),
        hazard_ids: Default::default(),
    })
}

/// A listener that keeps what it heard.
#[derive(Default)]
struct Heard(Mutex<Vec<RecordsChanged>>);

impl ChangeListener for Heard {
    fn records_changed(&self, change: RecordsChanged) {
        self.0.lock().unwrap().push(change);
    }
}

impl Heard {
    fn take(&self) -> Vec<RecordsChanged> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A phone's sync waits on a server that accepts the connection and never
/// answers. Meanwhile the grid manager saves a record (the store is not
/// held across the wait), and cancelling ends the sync with `Cancelled`
/// rather than after its timeouts. Against the real server the next sync
/// sends everything, once, and the listener heard the local save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_waiting_on_the_network_is_cancelled_and_the_store_stays_usable() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let first = gm.phone.create_record(None, hazard_input()).unwrap().id;
    // A server that takes the request and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let (accepted_tx, accepted) = tokio::sync::oneshot::channel();
    let hold = tokio::spawn(async move {
        let (conn, _) = silent.accept().await.unwrap();
        let _ = accepted_tx.send(());
        // Keep the connection open, unanswered, until the test ends.
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        drop(conn);
    });
    gm.set_server(&silent_url).unwrap();
    let heard = Arc::new(Heard::default());
    gm.phone.set_listener(Some(heard.clone()));

    let phone = Arc::new(std::mem::replace(&mut gm.phone, Phone::open_in_memory(test_retry()).unwrap()));
    let syncing = tokio::spawn({
        let phone = phone.clone();
        async move { phone.sync(SyncOptions::default(), &mut |_| {}).await }
    });
    accepted.await.unwrap();
    // The request is on the wire; the store is free.
    let second = phone.create_record(None, hazard_input()).unwrap().id;
    assert_eq!(
        heard.take().iter().map(|c| (c.source, c.ids.clone())).collect::<Vec<_>>(),
        [(ChangeSource::Local, vec![second.clone()])]
    );
    phone.cancel_sync();
    let result = syncing.await.unwrap();
    assert!(matches!(result, Err(SyncError::Cancelled)), "{result:?}");
    hold.abort();
    assert_eq!(phone.pending_changes().unwrap(), 2, "both records wait for the next sync");

    gm.phone = Arc::into_inner(phone).unwrap();
    gm.set_server(&bed.server.url()).unwrap();
    let report = gm.sync().await.unwrap();
    assert_eq!(report.records_sent, 2);
    assert_eq!(gm.phone.pending_changes().unwrap(), 0);
    for id in [first, second] {
        assert!(bed.admin.record(id.parse().unwrap()).unwrap().is_some(), "the server has {id}");
    }
}

/// The listener hears the ids a local save touched and, on another phone,
/// the ids a sync brought; a revocation is heard as a wipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_hears_local_saves_what_a_sync_brings_and_a_wipe() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut vl = bed.phone("vl-t01-v01").await;
    let (on_gm, on_vl) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    gm.phone.set_listener(Some(on_gm.clone()));
    vl.phone.set_listener(Some(on_vl.clone()));

    let id = gm.phone.create_record(None, hazard_input()).unwrap().id;
    gm.phone.append_hazard_event(&id, HazardAction::Step { note: "设置警示牌".into() }).unwrap();
    let local: Vec<_> = on_gm.take().into_iter().map(|c| (c.source, c.ids)).collect();
    assert_eq!(local, [(ChangeSource::Local, vec![id.clone()]), (ChangeSource::Local, vec![id.clone()])]);
    gm.sync().await.unwrap();
    assert_eq!(on_gm.take(), vec![], "its own records coming back are not news");

    let report = vl.sync().await.unwrap();
    assert_eq!(report.received_ids.iter().map(|u| u.to_string()).collect::<Vec<_>>(), vec![id.clone()]);
    let synced: Vec<_> = on_vl.take().into_iter().map(|c| (c.source, c.ids)).collect();
    assert_eq!(synced, [(ChangeSource::Sync, vec![id])]);

    let device = vl.store().enrollment().unwrap().unwrap().device_id;
    assert!(bed.admin.revoke_device(&device, gridsync_server::clock::now_ms()).unwrap());
    assert!(matches!(vl.sync().await, Err(SyncError::Revoked)));
    let wiped: Vec<_> = on_vl.take().into_iter().map(|c| (c.source, c.ids)).collect();
    assert_eq!(wiped, [(ChangeSource::Wipe, vec![])]);
    assert_eq!(vl.phone.count_records().unwrap(), 0);
}

/// A grid manager with unsynced work cannot sign out until it is synced;
/// then signing out stops the device's token on the server and keeps the
/// records for her next sign-in. Someone else enrolling on that phone
/// removes them first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_waits_for_unsynced_work_and_stops_the_token() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard_input()).unwrap().id;
    let refused = gm.phone.sign_out(false).await.unwrap_err();
    assert!(
        matches!(refused, ApiError::Unsynced { count: 1, ref message_zh } if message_zh.contains("请先同步")),
        "{refused:?}"
    );
    assert!(gm.phone.enrollment().unwrap().is_some(), "still signed in");

    gm.sync().await.unwrap();
    let token = gm.store().enrollment().unwrap().unwrap().token;
    gm.phone.sign_out(false).await.unwrap();
    assert!(gm.phone.enrollment().unwrap().is_none());
    assert_eq!(gm.phone.get_record(&id).unwrap().id, id, "the records stay");
    let raw = gridsync_tests::device::RawClient::new();
    let body = gridsync_core::protocol::encode(&gridsync_core::protocol::SyncRequest::default()).unwrap();
    let err = raw.post_sync(&bed.server.url(), &token, &body).await.unwrap_err().to_string();
    assert!(err.contains("401"), "the old token is refused: {err}");
    assert!(matches!(gm.phone.create_record(None, hazard_input()), Err(ApiError::NotEnrolled { .. })));

    // The same user signs in again: her records are there.
    let url = bed.server.url();
    gm.phone.enroll(&url, &issue_code(bed.admin.as_ref(), "gm-t01-v01-g1").unwrap(), "手机").await.unwrap();
    assert_eq!(gm.phone.count_records().unwrap(), 1);
    gm.sync().await.unwrap();
    gm.phone.sign_out(false).await.unwrap();
    // Another grid manager takes the phone: not his records to see.
    let e = gm.phone.enroll(&url, &issue_code(bed.admin.as_ref(), "gm-t01-v01-g2").unwrap(), "手机").await.unwrap();
    assert_eq!(e.user_id, "gm-t01-v01-g2");
    assert_eq!(gm.phone.count_records().unwrap(), 0);
    assert!(matches!(gm.phone.get_record(&id), Err(ApiError::NotFound { .. })));
}

/// Enrolling as a second user on a phone that holds the first user's
/// unsynced changes is refused, and the new device does not stay enrolled
/// on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_take_over_unsynced_work() {
    let bed = Bed::start();
    let gm = bed.phone("gm-t01-v01-g1").await;
    gm.phone.create_record(None, hazard_input()).unwrap();
    let before = bed.admin.devices().unwrap().len();
    let url = bed.server.url();
    let e = gm.phone.enroll(&url, &issue_code(bed.admin.as_ref(), "gm-t01-v01-g2").unwrap(), "手机").await.unwrap_err();
    assert!(
        matches!(e, ApiError::Unsynced { count: 1, ref message_zh } if message_zh.contains("gm-t01-v01-g1")),
        "{e:?}"
    );
    assert_eq!(gm.phone.enrollment().unwrap().unwrap().user_id, "gm-t01-v01-g1");
    assert_eq!(gm.phone.pending_changes().unwrap(), 1);
    let devices = bed.admin.devices().unwrap();
    assert!(devices.len() <= before + 1);
    assert!(
        devices.iter().filter(|d| d.user_id == "gm-t01-v01-g2").all(|d| d.revoked_at.is_some()),
        "no device of the second user stays enrolled"
    );
}

/// An unreachable server at enrollment says the enrollment did not happen
/// (not that records are saved), and a bad code names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_enrollment_says_so() {
    let bed = Bed::start();
    let phone = Phone::open_in_memory(test_retry()).unwrap();
    let e = phone.enroll("http://127.0.0.1:9", "ABCD-EFGH-JKLM", "手机").await.unwrap_err();
    assert!(matches!(e, ApiError::Network { ref message_zh, .. } if message_zh.contains("注册未完成")), "{e:?}");
    let e = phone.enroll(&bed.server.url(), "ABCD-EFGH-JKLM", "手机").await.unwrap_err();
    assert!(
        matches!(e, ApiError::InvalidInput { ref field, ref message_zh, .. } if field == "code" && message_zh.contains("注册码")),
        "{e:?}"
    );
    assert!(phone.enrollment().unwrap().is_none());
}

/// Names come with the enrollment: the user's own name and grid, the
/// village leader above, the grids of the village; records show the names
/// behind their ids. An unchanged directory costs a 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_come_with_the_enrollment_and_an_unchanged_directory_costs_a_304() {
    let bed = Bed::start();
    let gm = bed.phone("gm-t01-v01-g1").await;
    let me = gm.phone.enrollment().unwrap().unwrap();
    let users = bed.admin.users().unwrap();
    let name_of = |id: &str| users.iter().find(|u| u.id == id).unwrap().display_name.clone();
    let nodes = bed.admin.grid_nodes().unwrap();
    let grid_name = |p: &str| nodes.iter().find(|n| n.path.to_string() == p).unwrap().name.clone();
    assert_eq!(me.grid_name, Some(grid_name("t01/v01/g1")));
    assert_eq!(me.role_label_zh, gridsync_core::grid::Role::GridManager.label_zh());

    let dir = gm.phone.directory().unwrap();
    let user_ids: Vec<&str> = dir.users.iter().map(|u| u.id.as_str()).collect();
    assert!(user_ids.contains(&"gm-t01-v01-g1") && user_ids.contains(&"vl-t01-v01") && user_ids.contains(&"tc-t01-1"));
    assert!(!user_ids.contains(&"gm-t01-v01-g2"), "a neighbouring group's manager is not in scope");
    let grid_ids: Vec<&str> = dir.grids.iter().map(|g| g.id.as_str()).collect();
    assert!(grid_ids.contains(&"t01") && grid_ids.contains(&"t01/v01") && grid_ids.contains(&"t01/v01/g1"));
    assert!(!grid_ids.contains(&"t02"));

    let rec = gm.phone.create_record(None, hazard_input()).unwrap();
    assert_eq!(rec.author_name, Some(name_of("gm-t01-v01-g1")));
    assert_eq!(rec.grid_name, Some(grid_name("t01/v01/g1")));
    assert_eq!(rec.kind_label_zh, "隐患");

    let token = gm.store().enrollment().unwrap().unwrap().token;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/directory", bed.server.url());
    let first = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = client.get(&url).bearer_auth(&token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// The village leader's weekly figures for a group, counted on her phone,
/// are the records her grid managers made that week.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_figures_are_counted_on_the_phone() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut vl = bed.phone("vl-t01-v01").await;
    // 2026-11-02 is a Monday; DAY0 is 08:00 that day, Beijing time.
    let day0 = gridsync_tests::records::DAY0;
    for (day, slot) in
        [(0, PatrolSlot::Morning), (0, PatrolSlot::Midday), (0, PatrolSlot::Evening), (1, PatrolSlot::Morning)]
    {
        gm.phone.create_record(None, patrol_input(slot, day0 + day * 86_400_000 + slot as i64 * 3_600_000)).unwrap();
    }
    gm.phone
        .create_record(
            None,
            RecordInput::Visit(Visit {
                target: VisitTarget::KeyPerson,
                subject: "重点人员回访".into(),
                household_id: None,
                visited_at: day0 + 3_600_000,
                findings: String::new(),
                follow_up_needed: false,
            }),
        )
        .unwrap();
    // Next week's patrol does not count.
    gm.phone.create_record(None, patrol_input(PatrolSlot::Morning, day0 + 8 * 86_400_000)).unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();

    let weeks = vl.phone.weekly_summaries_by_group(None, "2026-11-02").unwrap();
    let g1 = weeks.iter().find(|w| w.grid.to_string() == "t01/v01/g1").unwrap();
    assert_eq!((g1.patrols.morning, g1.patrols.midday, g1.patrols.evening), (2, 1, 1));
    assert_eq!(g1.days_fully_patrolled, 1);
    assert_eq!(g1.visits.key_person, 1);
    assert!(weeks.iter().any(|w| w.grid.to_string() == "t01/v01/g2"), "every group of the village, from the directory");
    let village = vl.phone.weekly_summary(None, "2026-11-02").unwrap();
    assert_eq!(village.patrols.total(), 4);
    let month = vl.phone.monthly_figures(None, "2026-11").unwrap();
    assert_eq!(month.patrols.total(), 5);
    assert!(matches!(vl.phone.weekly_summary(Some("t02"), "2026-11-02"), Err(ApiError::InvalidInput { .. })));
    assert!(matches!(vl.phone.monthly_figures(None, "2026-13"), Err(ApiError::InvalidInput { .. })));
}
