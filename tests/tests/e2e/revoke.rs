//! A lost phone is revoked.

use gridsync_core::sync::SyncError;
use gridsync_tests::device::Device;
use gridsync_tests::records::patrol;
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};

/// An administrator revokes a lost phone: its next sync is refused, and the
/// phone deletes every record it held, unsent ones after sealing them into
/// its rescued bundle (`sign_out::a_revoked_phone_offers_its_unsynced_work`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_device_is_refused_and_wipes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db).unwrap();
    let mut d = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let p = patrol(&d.grid, &d.user, 0, gridsync_core::model::PatrolSlot::Morning);
    d.create(&p).unwrap();
    d.sync().await.unwrap();
    d.create(&patrol(&d.grid, &d.user, 1, gridsync_core::model::PatrolSlot::Evening)).unwrap();
    assert_eq!(d.store().count().unwrap(), 2);

    let device_id = d.store().enrollment().unwrap().unwrap().device_id;
    assert!(admin.revoke_device(&device_id, gridsync_server::clock::now_ms()).unwrap());
    match d.sync().await {
        Err(SyncError::Revoked) => {}
        other => panic!("expected Revoked, got {other:?}"),
    }
    assert_eq!(d.store().count().unwrap(), 0, "records wiped");
    assert_eq!(d.store().outbox_len().unwrap(), 0, "outbox wiped");
    assert!(d.store().enrollment().unwrap().is_none(), "credentials wiped");
    assert!(d.store().rescued_bundle().unwrap().is_some(), "the unsent patrol was sealed first");
    assert!(matches!(d.sync().await, Err(SyncError::NotEnrolled)));
    // The server kept what was synced before.
    assert!(admin.record(p.id).unwrap().is_some());
}
