//! A dispute edited offline by a grid manager and a village leader.

use gridsync_core::model::{DisputeAction, DisputeCategory, DisputeLevel, DisputeStatus, RecordBody};
use gridsync_tests::device::Device;
use gridsync_tests::http1::http;
use gridsync_tests::records::{DAY0, dispute, dispute_act};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};
use uuid::Uuid;

struct Pair {
    _dir: tempfile::TempDir,
    server: ServerProc,
    admin: std::sync::Arc<dyn gridsync_server::store::ServerStore>,
    gm: Device,
    vl: Device,
    id: Uuid,
}

async fn setup() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db).unwrap();
    let mut gm = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let mut vl = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "vl-t01-v01").unwrap()).await.unwrap();
    let rec = dispute(&gm.grid, &gm.user, 0);
    gm.create(&rec).unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();
    assert!(vl.records().unwrap().contains_key(&rec.id));
    Pair { _dir: dir, server, admin, gm, vl, id: rec.id }
}

fn act(d: &mut Device, id: Uuid, at: i64, action: DisputeAction) {
    let user = d.user.clone();
    d.store().edit(id, at, |r| dispute_act(r, &user, at, action)).unwrap();
}

fn state(d: &Device, id: Uuid) -> gridsync_core::model::DisputeState {
    match d.store().get(id).unwrap().body {
        RecordBody::Dispute(x) => x.state(),
        _ => unreachable!(),
    }
}

async fn converge(p: &mut Pair, gm_first: bool) {
    if gm_first {
        p.gm.sync().await.unwrap();
        p.vl.sync().await.unwrap();
    } else {
        p.vl.sync().await.unwrap();
        p.gm.sync().await.unwrap();
    }
    p.gm.sync().await.unwrap();
    p.vl.sync().await.unwrap();
    let a = p.gm.store().load_doc(p.id).unwrap().to_json().unwrap();
    let b = p.vl.store().load_doc(p.id).unwrap().to_json().unwrap();
    assert_eq!(a, b, "both phones hold the same dispute");
    assert_eq!(p.admin.record(p.id).unwrap().unwrap().json, a, "and so does the server");
    let _ = &p.server;
}

/// The grid manager records an on-the-spot resolution while the village
/// leader escalates to the township, both offline; then both sync
/// (`gm_first`: in that order) until every copy is the same.
async fn resolved_while_escalated(gm_first: bool) -> Pair {
    let mut p = setup().await;
    act(&mut p.gm, p.id, DAY0 + 10_000, DisputeAction::Resolved { note: "现场调解，双方签字".into() });
    act(
        &mut p.vl,
        p.id,
        DAY0 + 20_000,
        DisputeAction::Escalated { to: DisputeLevel::Township, note: "书面上报".into() },
    );
    converge(&mut p, gm_first).await;
    p
}

/// The id of the first event on `d`'s copy of dispute `id` that `pick` takes.
fn event_id(d: &Device, id: Uuid, pick: fn(&DisputeAction) -> bool) -> String {
    let RecordBody::Dispute(x) = d.store().get(id).unwrap().body else { unreachable!() };
    x.events.iter().find(|e| pick(&e.action)).unwrap().id.clone()
}

/// A grid manager adds a follow-up while the village leader classifies the
/// dispute, both offline: after syncing in either order, both phones and the
/// server show both events, classified, with no conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_and_classification_merge_in_both_orders() {
    for gm_first in [true, false] {
        let mut p = setup().await;
        act(&mut p.gm, p.id, DAY0 + 10_000, DisputeAction::FollowUp { note: "双方情绪稳定".into() });
        act(
            &mut p.vl,
            p.id,
            DAY0 + 20_000,
            DisputeAction::Classified { category: DisputeCategory::Neighbour, note: "周排查会甄别".into() },
        );
        converge(&mut p, gm_first).await;
        let st = state(&p.gm, p.id);
        assert!(st.conflicts.is_empty());
        assert_eq!(st.category, DisputeCategory::Neighbour);
        assert_eq!(st.status, DisputeStatus::InProgress);
        assert_eq!(p.admin.record(p.id).unwrap().unwrap().status, "in_progress");
    }
}

/// The grid manager records an on-the-spot resolution while the village
/// leader escalates to the township: every copy shows the dispute as waiting
/// for a decision (待裁定) with the conflict listed; once the leader settles
/// it, every copy shows the kept outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_versus_escalate_is_a_conflict_until_settled() {
    for gm_first in [true, false] {
        let mut p = resolved_while_escalated(gm_first).await;
        let st = state(&p.vl, p.id);
        assert_eq!(st.status, DisputeStatus::Conflict);
        assert_eq!(st.conflicts.len(), 1);
        let view = p.admin.record(p.id).unwrap().unwrap();
        assert!(view.has_conflict);
        assert_eq!(view.status, "conflict");

        // The leader keeps the escalation.
        let kept = event_id(&p.vl, p.id, |a| matches!(a, DisputeAction::Escalated { .. }));
        act(&mut p.vl, p.id, DAY0 + 30_000, DisputeAction::Settled { kept, note: "以上报为准".into() });
        converge(&mut p, gm_first).await;
        let st = state(&p.gm, p.id);
        assert!(st.conflicts.is_empty());
        assert_eq!((st.status, st.level), (DisputeStatus::Escalated, DisputeLevel::Township));
        assert_eq!(p.admin.record(p.id).unwrap().unwrap().level.as_deref(), Some("township"));
    }
}

/// The dashboard's keep buttons for such a conflict are the ones the rules
/// take: the village leader, below the township level the escalation put
/// the dispute at, sees a keep button on the escalation only (keeping the
/// on-the-spot resolution would take the case back down, which the merge
/// refuses), and settles it from the page; the township chief, who handles
/// that level, is offered both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_offers_only_the_sides_of_a_conflict_the_rules_let_the_user_keep() {
    let p = resolved_while_escalated(true).await;
    let escalation = event_id(&p.vl, p.id, |a| matches!(a, DisputeAction::Escalated { .. }));
    let resolution = event_id(&p.vl, p.id, |a| matches!(a, DisputeAction::Resolved { .. }));
    let url = p.server.url();
    let page_of = |user: &str| {
        let (cookie, csrf) = gridsync_tests::bed::web_session(p.admin.as_ref(), user);
        let r = http("GET", &format!("{url}/web/disputes/{}", p.id), &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200, "{user}'s dispute page");
        (String::from_utf8(r.body).unwrap(), cookie, csrf)
    };
    let keeps = |page: &str| {
        page.split("data-kept=\"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect::<Vec<_>>()
    };

    let (chief_page, _, _) = page_of("tc-t01-1");
    let mut both = vec![escalation.clone(), resolution.clone()];
    both.sort();
    let mut offered = keeps(&chief_page);
    offered.sort();
    assert_eq!(offered, both, "the township chief may keep either side");

    let (leader_page, cookie, csrf) = page_of("vl-t01-v01");
    assert_eq!(keeps(&leader_page), vec![escalation.clone()], "the village leader may keep the escalation only");
    let settle = |kept: &str| {
        let form = format!("csrf={csrf}&action=settled&kept={kept}&note=");
        http(
            "POST",
            &format!("{url}/web/disputes/{}/act", p.id),
            &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    };
    assert_eq!(settle(&resolution).status, 403, "the side the page does not offer is refused");
    assert_eq!(settle(&escalation).status, 303, "the side it offers is taken");
    let view = p.admin.record(p.id).unwrap().unwrap();
    assert!(!view.has_conflict);
    assert_eq!(view.level.as_deref(), Some("township"));
}
