//! Sync bundles for places with no network at all.

use gridsync_core::model::PatrolSlot;
use gridsync_core::protocol::Bundle;
use gridsync_core::store::Store;
use gridsync_tests::device::Device;
use gridsync_tests::records::{dispute, patrol};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo, server_binary};

/// A grid manager with no network writes a bundle file; the village
/// leader's phone imports it and shows the records; the township office
/// imports it into the server twice without doubling anything; when the
/// phone later syncs, nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_moves_records_without_network_and_imports_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("db"));
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db.clone()).unwrap();
    let mut gm = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    for day in 0..2 {
        gm.create(&patrol(&gm.grid, &gm.user, day, PatrolSlot::Morning)).unwrap();
    }
    gm.create(&dispute(&gm.grid, &gm.user, 1)).unwrap();
    let pending = gm.store().outbox_len().unwrap();

    let file = dir.path().join("两当-一组.gsb");
    std::fs::write(&file, gm.store().export_bundle().unwrap().encode().unwrap()).unwrap();

    // Another phone, no network.
    let mut other = Store::open_in_memory().unwrap();
    let report = other.import_bundle(&Bundle::decode(&std::fs::read(&file).unwrap()).unwrap()).unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(other.count().unwrap(), 3);
    other.import_bundle(&Bundle::decode(&std::fs::read(&file).unwrap()).unwrap()).unwrap();
    assert_eq!(other.count().unwrap(), 3, "importing twice changes nothing");
    assert!(Bundle::decode(b"not a bundle").is_err());

    // The township office imports it into the server, twice.
    for _ in 0..2 {
        let out = std::process::Command::new(server_binary().unwrap())
            .args(["--data-dir", &dir.path().join("db").to_string_lossy(), "import-bundle"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["records_acked"], 3);
        assert_eq!(admin.change_count().unwrap(), pending);
    }

    // The phone syncs later: acknowledged, nothing stored twice.
    let r = gm.sync().await.unwrap();
    assert_eq!(r.records_sent, 3);
    assert_eq!(gm.store().outbox_len().unwrap(), 0);
    assert_eq!(admin.change_count().unwrap(), pending);
}
