//! A dispute edited offline by a grid manager and a village leader.

use gridsync_core::model::{DisputeAction, DisputeCategory, DisputeLevel, DisputeStatus, RecordBody};
use gridsync_tests::device::Device;
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
        let mut p = setup().await;
        act(&mut p.gm, p.id, DAY0 + 10_000, DisputeAction::Resolved { note: "现场调解，双方签字".into() });
        act(
            &mut p.vl,
            p.id,
            DAY0 + 20_000,
            DisputeAction::Escalated { to: DisputeLevel::Township, note: "书面上报".into() },
        );
        converge(&mut p, gm_first).await;
        let st = state(&p.vl, p.id);
        assert_eq!(st.status, DisputeStatus::Conflict);
        assert_eq!(st.conflicts.len(), 1);
        let view = p.admin.record(p.id).unwrap().unwrap();
        assert!(view.has_conflict);
        assert_eq!(view.status, "conflict");

        // The leader keeps the escalation.
        let rec = p.vl.store().get(p.id).unwrap();
        let RecordBody::Dispute(d) = &rec.body else { unreachable!() };
        let kept = d.events.iter().find(|e| matches!(e.action, DisputeAction::Escalated { .. })).unwrap().id.clone();
        act(&mut p.vl, p.id, DAY0 + 30_000, DisputeAction::Settled { kept, note: "以上报为准".into() });
        converge(&mut p, gm_first).await;
        let st = state(&p.gm, p.id);
        assert!(st.conflicts.is_empty());
        assert_eq!((st.status, st.level), (DisputeStatus::Escalated, DisputeLevel::Township));
        assert_eq!(p.admin.record(p.id).unwrap().unwrap().level.as_deref(), Some("township"));
    }
}
