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

/// A bundle file written by a hostile app (a record named twice, a record
/// without changes, 20,001 changes) is refused by another phone's import,
/// saying why in Chinese, and by the township office's `import-bundle`,
/// naming the fault; nothing of it is stored on either. The phone's
/// honest bundle still imports on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_past_the_sync_limits_is_refused_by_phones_and_the_office() {
    use gridsync_core::phone::ApiError;
    use gridsync_core::protocol::{DocChanges, sign_docs};

    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("db"));
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db.clone()).unwrap();
    let mut gm = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let vl = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "vl-t01-v01").unwrap()).await.unwrap();
    let p = patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning);
    gm.create(&p).unwrap();
    let d = dispute(&gm.grid, &gm.user, 2);
    gm.create(&d).unwrap();
    let honest = gm.store().export_bundle().unwrap();
    let (device, key) = gm.store().signer().unwrap();
    let [a, b] = [&honest.docs[0], &honest.docs[1]];
    let many = DocChanges { doc: [9; 16], changes: (0..20_001u32).map(|i| i.to_be_bytes().to_vec()).collect() };
    let cases = [
        ("named twice", vec![a.clone(), b.clone(), a.clone()], "malformed", "named twice"),
        (
            "without changes",
            vec![a.clone(), DocChanges { doc: b.doc, changes: vec![] }],
            "malformed",
            "without changes",
        ),
        ("20,001 changes", vec![a.clone(), many], "too_many_changes", "more than 20000 changes"),
    ];
    for (name, docs, reason, why) in cases {
        let signature = sign_docs(&key, &device, &docs);
        let bytes = Bundle { docs, signature, ..honest.clone() }.encode().unwrap();
        match vl.phone.import_bundle(&bytes) {
            Err(ApiError::InvalidInput { field, reason: r, message_zh }) => {
                assert_eq!((field.as_str(), r.as_str()), ("bundle", reason), "{name}: {message_zh}");
                assert!(message_zh.contains("同步文件"), "{name}: {message_zh}");
            }
            other => panic!("{name}: the phone took it: {other:?}"),
        }
        assert_eq!(vl.store().count().unwrap(), 0, "{name}: the phone stored something");
        let file = dir.path().join("hostile.gsb");
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new(server_binary().unwrap())
            .args(["--data-dir", &dir.path().join("db").to_string_lossy(), "import-bundle"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(why), "{name}: {stderr}");
        assert_eq!(admin.change_count().unwrap(), 0, "{name}: the server stored something");
    }
    let report = vl.phone.import_bundle(&honest.encode().unwrap()).unwrap();
    assert_eq!(report.records, 2);
}
