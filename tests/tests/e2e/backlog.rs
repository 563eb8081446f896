//! A phone back after thirty days in the hills.

use gridsync_core::sync::SyncOptions;
use gridsync_server::store::ViewQuery;
use gridsync_tests::device::Device;
use gridsync_tests::records::day_of_records;
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A grid manager back after 30 days offline (210 records) gets everything
/// onto the server in at most three requests; a village leader's new phone
/// then downloads the village in bounded pages, each within its byte budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_day_backlog_syncs_in_bounded_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db).unwrap();
    let mut gm = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let mut rng = StdRng::seed_from_u64(30);
    for day in 0..30 {
        for rec in day_of_records(&gm.grid, &gm.user, day, &mut rng) {
            gm.create(&rec).unwrap();
        }
    }
    assert_eq!(gm.store().count().unwrap(), 210);
    let changes = gm.store().outbox_len().unwrap();
    let report = gm.sync().await.unwrap();
    assert!(report.requests <= 3, "{} requests", report.requests);
    assert_eq!(report.records_sent, 210);
    assert_eq!(admin.change_count().unwrap(), changes);
    assert_eq!(admin.records(&ViewQuery { sensitive: true, ..Default::default() }).unwrap().len(), 210);

    // With a small upload budget the same backlog goes up in several
    // bounded requests.
    let mut gm2 = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g2").unwrap()).await.unwrap();
    for day in 0..30 {
        for rec in day_of_records(&gm2.grid, &gm2.user, day, &mut rng) {
            gm2.create(&rec).unwrap();
        }
    }
    gm2.opts = SyncOptions { max_upload_bytes: 16 * 1024, ..SyncOptions::default() };
    let report = gm2.sync().await.unwrap();
    assert!(report.requests >= 3, "{} requests", report.requests);
    assert!(report.bytes_up / report.requests <= 16 * 1024, "each request within its budget");
    assert_eq!(gm2.store().outbox_len().unwrap(), 0);

    // A fresh village leader's phone pages through the village.
    let page = 32 * 1024;
    let mut vl = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "vl-t01-v01").unwrap()).await.unwrap();
    vl.opts = SyncOptions { page_bytes: page, ..SyncOptions::default() };
    let report = vl.sync().await.unwrap();
    assert_eq!(vl.store().count().unwrap(), 420);
    assert!(report.requests > 3, "paged: {} requests", report.requests);
    // Each page is about `page` bytes of changes; compressed bodies are smaller.
    assert!(report.bytes_down / report.requests <= u64::from(page), "{report:?}");
    let again = vl.sync().await.unwrap();
    assert_eq!((again.requests, again.records_received), (1, 0), "nothing left");
}
