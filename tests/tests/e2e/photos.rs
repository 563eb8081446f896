//! Photos end to end, real server processes: taken offline and attached to
//! a hazard, sent after the record, seen on the village leader's phone and
//! the dashboard; a sensitive record's photo stripped of its location and
//! refused to a township chief; an upload cut mid-photo over a 64 kbit/s
//! link resuming to the byte; a thousand photos queued not delaying a
//! record; the server refusing bytes no record asked for; garbage
//! collection of a deleted record's photos.

use std::sync::Arc;
use std::time::Duration;

use gridsync_core::model::sha256_hex;
use gridsync_core::model::{HazardAction, HazardCategory, Location, RecordKind, Visit, VisitTarget};
use gridsync_core::phone::{ApiError, HazardFields, PHOTO_CHUNK, RecordInput};
use gridsync_server::store::AuditQuery;
use gridsync_tests::bed::Bed;
use gridsync_tests::device::Device;
use gridsync_tests::http1::http;
use gridsync_tests::proxy::{Proxy, Shaping};
use gridsync_tests::records::photo_jpeg as jpeg;
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};

/// The complete bytes the server holds for photo `hash`.
fn stored(bed: &Bed, hash: &str) -> Option<Vec<u8>> {
    bed.admin.blob_store().get(hash).unwrap()
}

fn hazard() -> RecordInput {
    RecordInput::Hazard(HazardFields {
        category: HazardCategory::Geological,
        location: Location { text: "二组后山".into(), gps: None },
        description: "山体出现裂缝，已设警示。".into(),
    })
}

fn has_gps(b: &[u8]) -> bool {
    b.windows(3).any(|w| w == b"GPS")
}

/// Taken offline on the grid manager's phone, the photo travels after its
/// hazard, and the village leader's phone and the dashboard both see it,
/// byte for byte, served as an image that runs no script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_taken_offline_reaches_the_village_leader_and_the_dashboard() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut vl = bed.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let handled = gm.phone.append_hazard_event(&id, HazardAction::Step { note: "已设警示牌".into() }).unwrap();
    let step = handled.timeline.last().unwrap().event_id.clone();
    let (photo, thumb) = (jpeg(120_000, 1, true), jpeg(6_000, 2, false));
    let view = gm.phone.attach_photo(&id, photo.clone(), Some(thumb.clone()), Some(step.clone())).unwrap();
    assert_eq!(view.photos.len(), 1);
    let p = &view.photos[0];
    assert_eq!(
        (p.hash.as_str(), p.size, p.event.as_deref()),
        (sha256_hex(&photo).as_str(), photo.len() as u64, Some(step.as_str()))
    );
    assert_eq!(p.thumbnail.as_deref(), Some(sha256_hex(&thumb).as_str()));
    assert!(p.on_phone && p.uploading);
    assert!(has_gps(&gm.phone.photo_bytes(&p.hash).unwrap().unwrap()), "a hazard's photo keeps its location");
    // Attaching the same photo again changes nothing.
    assert_eq!(gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos.len(), 1);
    assert_eq!(gm.phone.photo_backlog().unwrap().photos, 2);

    // Before the record is on the server, no photo goes.
    let early = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((early.completed, early.requests, early.remaining), (0, 0, 2));
    gm.sync().await.unwrap();
    assert_eq!(stored(&bed, &p.hash), None, "a sync sends records, not photos");
    let up = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((up.completed, up.remaining), (2, 0));
    assert_eq!(up.bytes_sent, (photo.len() + thumb.len()) as u64);
    assert_eq!(stored(&bed, &p.hash).unwrap(), photo);
    assert!(!gm.phone.get_record(&id).unwrap().photos[0].uploading);

    // The village leader's phone gets the reference, then the bytes on demand.
    vl.sync().await.unwrap();
    let seen = vl.phone.get_record(&id).unwrap();
    assert_eq!(seen.photos.len(), 1);
    assert!(!seen.photos[0].on_phone);
    assert_eq!(vl.phone.fetch_photo(&id, &p.hash).await.unwrap(), photo);
    assert!(vl.phone.get_record(&id).unwrap().photos[0].on_phone, "kept once downloaded");

    // The dashboard: a thumbnail on the hazard's page, the photo behind it.
    let cookie = bed.session("vl-t01-v01");
    let page = bed.get(&format!("/web/hazards/{id}"), &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains(&format!("<img src=\"/web/photos/{}\"", sha256_hex(&thumb))), "{}", page.text());
    let shown = bed.get(&format!("/web/photos/{}", p.hash), &[("Cookie", &cookie)]);
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, photo);
    assert_eq!(shown.header("content-type"), ["image/jpeg"]);
    assert_eq!(shown.header("x-content-type-options"), ["nosniff"]);
    assert!(shown.header("content-security-policy")[0].contains("sandbox"));
    // Another township's chief sees neither page nor photo.
    let other = bed.session("tc-t02-1");
    assert_eq!(bed.get(&format!("/web/photos/{}", p.hash), &[("Cookie", &other)]).status, 403);
    let chief = bed.session("tc-t01-1");
    assert_eq!(bed.get(&format!("/web/photos/{}", p.hash), &[("Cookie", &chief)]).status, 200);
}

/// A visit to a key person is sensitive: its photo loses its location on
/// the phone before it is kept, a HEIC the phone cannot strip is refused,
/// and the township chief (who may not read the record) gets a 403 on the
/// phone API and the dashboard, while the village leader's view is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_records_photo_is_stripped_and_refused_to_a_township_chief() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let tc = bed.phone("tc-t01-1").await;
    let visit = RecordInput::Visit(Visit {
        target: VisitTarget::KeyPerson,
        subject: "刑满释放人员张某".into(),
        visited_at: gridsync_tests::records::DAY0,
        household_id: None,
        findings: "情绪稳定，已就业。".into(),
        follow_up_needed: false,
    });
    let id = gm.phone.create_record(None, visit).unwrap().id;
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0GPS-in-heic".to_vec();
    match gm.phone.attach_photo(&id, heic, None, None) {
        Err(ApiError::InvalidInput { field, reason, .. }) => {
            assert_eq!((field.as_str(), reason.as_str()), ("photo", "cannot_strip"))
        }
        other => panic!("a HEIC on a sensitive record must be refused, got {other:?}"),
    }
    let taken = jpeg(20_000, 3, true);
    let view = gm.phone.attach_photo(&id, taken.clone(), None, None).unwrap();
    let hash = view.photos[0].hash.clone();
    let kept = gm.phone.photo_bytes(&hash).unwrap().unwrap();
    assert!(!has_gps(&kept), "the location is gone");
    assert_eq!(hash, sha256_hex(&kept), "named by the bytes it keeps");
    assert!(kept.len() < taken.len());
    gm.sync().await.unwrap();
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1);
    assert_eq!(stored(&bed, &hash).unwrap(), kept);

    let token = tc.store().enrollment().unwrap().unwrap().token;
    let refused = bed.get(&format!("/v1/photos/{hash}"), &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("\"forbidden\""), "{}", refused.text());
    assert_eq!(bed.get(&format!("/web/photos/{hash}"), &[("Cookie", &bed.session("tc-t01-1"))]).status, 403);

    // Another group's grid manager names the hash in a hazard of his own:
    // the server takes the record, but the photo stays the visit's.
    let mut g2 = bed.phone("gm-t01-v01-g2").await;
    let own = g2.phone.create_record(None, hazard()).unwrap().id;
    let at = gridsync_server::clock::now_ms();
    g2.store()
        .edit(own.parse().unwrap(), at, |r| {
            r.attachments.insert(
                hash.clone(),
                gridsync_core::model::Attachment {
                    mime: "image/jpeg".into(),
                    size: kept.len() as i64,
                    at,
                    by: "gm-t01-v01-g2".into(),
                    event: None,
                    thumb_of: None,
                },
            );
        })
        .unwrap();
    assert!(g2.sync().await.unwrap().rejected.is_empty());
    let token = g2.store().enrollment().unwrap().unwrap().token;
    let r = bed.get(&format!("/v1/photos/{hash}"), &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(r.status, 403, "a reference of one's own opened a sensitive photo");

    let vl = bed.session("vl-t01-v01");
    let shown = bed.get(&format!("/web/photos/{hash}"), &[("Cookie", &vl)]);
    assert_eq!(shown.status, 200);
    assert_eq!(shown.header("cache-control"), ["no-store"]);
    let audit =
        bed.admin.audit_log(&AuditQuery { user: Some("vl-t01-v01".into()), limit: 10, ..Default::default() }).unwrap();
    assert!(audit.iter().any(|e| e.action == "view_photo" && e.target.ends_with(&hash)), "{audit:?}");

    // The visit's page shows the photo to the village leader, not to the chief.
    let page = bed.get(&format!("/web/visits/{id}"), &[("Cookie", &vl)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains(&format!("/web/photos/{hash}")), "{}", page.text());
    assert_eq!(bed.get(&format!("/web/visits/{id}"), &[("Cookie", &bed.session("tc-t01-1"))]).status, 403);
    let village = bed.get("/web/t/t01/v01", &[("Cookie", &vl)]);
    assert!(village.text().contains(&format!("/web/visits/{id}")), "the village page lists the visit");
    let audit =
        bed.admin.audit_log(&AuditQuery { user: Some("vl-t01-v01".into()), limit: 20, ..Default::default() }).unwrap();
    assert!(audit.iter().any(|e| e.action == "view_visit" && e.target == id), "{audit:?}");
}

/// Over a 64 kbit/s link that drops connections mid-request, the upload
/// resumes from the last byte the server confirmed, also when the phone
/// lost the answer (it is told where the server is); the server ends with
/// exactly the photo's bytes, hash checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_mid_photo_resumes_and_every_byte_arrives_once() {
    let bed = Bed::start();
    let proxy = Proxy::start(bed.server.addr(), 14).await.unwrap();
    let mut gm = bed.phone_at(&proxy.url(), "gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(2 * PHOTO_CHUNK + 5_000, 4, false);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    gm.sync().await.unwrap();

    // One chunk goes, then the run stops at its budget: the photo is half there.
    let first = gm.phone.upload_photos(PHOTO_CHUNK as u64).await.unwrap();
    assert_eq!((first.completed, first.bytes_sent), (0, PHOTO_CHUNK as u64));
    assert_eq!(gm.store().blob_state(&hash).unwrap().unwrap().sent, PHOTO_CHUNK as u64);
    // The phone lost the answer to that chunk: it believes nothing arrived.
    gm.store().blob_sent(&hash, 0).unwrap();

    // The weak link, cutting a third of the connections part-way.
    proxy.set_shaping(Some(Shaping { bytes_per_sec: 8_000, one_way_delay: Duration::from_millis(100) })).await;
    proxy.set_faults(33, 0);
    let mut runs = 0;
    while gm.phone.photo_backlog().unwrap().photos > 0 {
        runs += 1;
        assert!(runs <= 20, "the upload did not finish in 20 runs");
        let _ = gm.phone.upload_photos(0).await;
    }
    let cuts = proxy.stats.cut_requests.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("uploaded {} bytes in {runs} runs through {cuts} cut connections", photo.len());
    assert!(cuts > 0, "the link cut no connection: the test proves nothing");
    assert_eq!(stored(&bed, &hash).unwrap(), photo, "every byte, once, in order");
}

/// A thousand photos (100 MB) waiting do not hold a record back: a sync
/// sends the records and none of the photo bytes, and photos go only after
/// their records, thumbnails first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_photo_backlog_does_not_delay_records() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let mut ids = Vec::new();
    for r in 0..50 {
        let id = gm.phone.create_record(None, hazard()).unwrap().id;
        for i in 0..20 {
            gm.phone.attach_photo(&id, jpeg(100_000, r * 100 + i, false), None, None).unwrap();
        }
        ids.push(id);
    }
    assert_eq!(gm.phone.photo_backlog().unwrap().photos, 1000);
    let report = gm.sync().await.unwrap();
    assert_eq!(report.records_sent, 50);
    assert!(report.bytes_up < 2_000_000, "the sync carried photo bytes: {} bytes up", report.bytes_up);
    for id in &ids {
        assert_eq!(bed.admin.record(id.parse().unwrap()).unwrap().unwrap().kind, RecordKind::Hazard);
    }
    // A record made now, with photos still queued, goes in the next sync at once.
    let late = gm.phone.create_record(None, hazard()).unwrap().id;
    gm.phone.attach_photo(&late, jpeg(100_000, 99_999, false), Some(jpeg(500, 99_998, false)), None).unwrap();
    let before = std::time::Instant::now();
    assert_eq!(gm.sync().await.unwrap().records_sent, 1);
    eprintln!("a record behind 1,000 queued photos synced in {:?}", before.elapsed());
    assert!(bed.admin.record(late.parse().unwrap()).unwrap().is_some());
    // Thumbnails go before photos.
    let pending = gm.store().pending_blobs(5).unwrap();
    assert_eq!(pending[0].size, 500 + 21, "{pending:?}");
    let some = gm.phone.upload_photos(50 * 1024).await.unwrap();
    assert!(some.completed > 0 && some.remaining > 0);
}

/// The server takes photo bytes only for a photo a record it holds
/// references, from the user who took it, up to its declared size, all
/// judged before the body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_takes_only_the_bytes_a_record_asked_for() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let other = bed.phone("gm-t01-v01-g2").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(4_000, 5, false);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    gm.sync().await.unwrap();
    let put = |token: &str, path: &str, body: &[u8]| {
        http("PUT", &format!("{}{path}", bed.server.url()), &[("Authorization", &format!("Bearer {token}"))], body)
    };
    let mine = gm.store().enrollment().unwrap().unwrap().token;
    let theirs = other.store().enrollment().unwrap().unwrap().token;
    let code = |r: &gridsync_tests::http1::Resp| {
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["error"].as_str().unwrap_or("").to_owned()
    };
    let r = put(&mine, "/v1/photos/NOTAHASH?offset=0", &photo);
    assert_eq!((r.status, code(&r)), (400, "bad_hash".into()));
    let nobody = sha256_hex(b"nobody asked for these bytes");
    let r = put(&mine, &format!("/v1/photos/{nobody}?offset=0"), b"nobody asked for these bytes");
    assert_eq!((r.status, code(&r)), (404, "photo_unknown".into()));
    let r = put(&theirs, &format!("/v1/photos/{hash}?offset=0"), &photo);
    assert_eq!((r.status, code(&r)), (403, "forbidden".into()));
    let mut longer = photo.clone();
    longer.extend_from_slice(&[0; 100]);
    let r = put(&mine, &format!("/v1/photos/{hash}?offset=0"), &longer);
    assert_eq!((r.status, code(&r)), (413, "body_too_large".into()));
    let mut forged = photo.clone();
    forged[20] ^= 1;
    let r = put(&mine, &format!("/v1/photos/{hash}?offset=0"), &forged);
    assert_eq!((r.status, code(&r)), (422, "hash_mismatch".into()));
    assert_eq!(stored(&bed, &hash), None);
    let r = put(&mine, &format!("/v1/photos/{hash}?offset=100"), &photo[100..200]);
    assert_eq!((r.status, code(&r)), (409, "offset_mismatch".into()));
    // The honest phone is not put off by any of it.
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1);
    assert_eq!(stored(&bed, &hash).unwrap(), photo);
}

/// `gc-photos` removes the photos of a deleted record once the grace period
/// has passed, and keeps every photo a live record references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_removes_only_photos_no_live_record_references() {
    let bed = Bed::start();
    let mut gm = bed.phone("gm-t01-v01-g1").await;
    let keep = gm.phone.create_record(None, hazard()).unwrap().id;
    let gone = gm.phone.create_record(None, hazard()).unwrap().id;
    let kept = gm.phone.attach_photo(&keep, jpeg(2_000, 6, false), None, None).unwrap().photos[0].hash.clone();
    let dropped = gm.phone.attach_photo(&gone, jpeg(2_000, 7, false), None, None).unwrap().photos[0].hash.clone();
    gm.sync().await.unwrap();
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 2);
    gm.phone.delete_record(&gone).unwrap();
    gm.sync().await.unwrap();

    let blobs = bed.admin.blob_store();
    let now = gridsync_server::clock::now_ms();
    let within = gridsync_server::photos::collect_garbage(bed.admin.as_ref(), blobs.as_ref(), now, 3_600_000).unwrap();
    assert_eq!((within.removed, within.kept), (0, 2), "within the grace period nothing goes");
    let after =
        gridsync_server::photos::collect_garbage(bed.admin.as_ref(), blobs.as_ref(), now + 7_200_000, 3_600_000)
            .unwrap();
    assert_eq!((after.removed, after.kept, after.bytes_freed), (1, 1, 2_000 + 21));
    assert!(stored(&bed, &kept).is_some());
    assert_eq!(stored(&bed, &dropped), None);
}

/// On PostgreSQL every node reads the same photo store: an upload begun on
/// one node finishes on the other, and a third phone downloads the photo
/// from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
async fn an_upload_begun_on_one_postgres_node_finishes_on_another() {
    use tokio::task::block_in_place as blocking;
    let db = blocking(gridsync_tests::server::postgres_db);
    let admin = gridsync_tests::server::Admin::open(&db);
    blocking(|| seed_demo(admin.as_ref()).unwrap());
    let a = ServerProc::start(db.clone()).unwrap();
    let b = ServerProc::start(db.clone()).unwrap();
    let code = |u: &str| blocking(|| issue_code(admin.as_ref(), u).unwrap());
    let mut gm = Device::enroll(&a.url(), &code("gm-t01-v01-g1")).await.unwrap();
    let mut vl = Device::enroll(&b.url(), &code("vl-t01-v01")).await.unwrap();
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(2 * PHOTO_CHUNK + 777, 8, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    gm.sync().await.unwrap();
    assert_eq!(gm.phone.upload_photos(PHOTO_CHUNK as u64).await.unwrap().bytes_sent, PHOTO_CHUNK as u64);
    gm.set_server(&b.url()).unwrap();
    let rest = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((rest.completed, rest.bytes_sent), (1, (photo.len() - PHOTO_CHUNK) as u64));
    vl.sync().await.unwrap();
    vl.set_server(&a.url()).unwrap();
    assert_eq!(vl.phone.fetch_photo(&id, &hash).await.unwrap(), photo);
    assert_eq!(blocking(|| admin.blob_store().get(&hash).unwrap()).unwrap(), photo);
    blocking(move || drop(admin));
}

/// With the disk short of room, photos wait and records do not: the
/// server answers photo chunks `507 disk_full`, the phone keeps the photo
/// for later, and the record it belongs to is synced all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_wait_when_the_disk_is_short_and_records_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    // Free space "needed" for photos: four times a petabyte.
    let server = ServerProc::start_serving(db, &["--min-free-disk-mib", "1000000000"]).unwrap();
    let mut gm = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    gm.phone.attach_photo(&id, jpeg(5_000, 9, false), None, None).unwrap();
    assert_eq!(gm.sync().await.unwrap().records_sent, 1);
    assert!(admin.record(id.parse().unwrap()).unwrap().is_some(), "the record is on the server");
    match gm.phone.upload_photos(0).await {
        Err(ApiError::Network { detail, .. }) => assert!(detail.contains("507"), "{detail}"),
        other => panic!("expected the upload to wait, got {other:?}"),
    }
    assert_eq!(gm.phone.photo_backlog().unwrap().photos, 1, "the photo waits on the phone");
}

/// An upload the app stops ends after the chunk in flight with
/// `Cancelled`, keeps what the server confirmed, and the next run resumes
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_upload_keeps_what_arrived_and_resumes() {
    let bed = Bed::start();
    let proxy = Proxy::start(bed.server.addr(), 15).await.unwrap();
    let mut gm = bed.phone_at(&proxy.url(), "gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(4 * PHOTO_CHUNK, 10, false);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    gm.sync().await.unwrap();
    proxy.set_shaping(Some(Shaping { bytes_per_sec: 16_000, one_way_delay: Duration::from_millis(50) })).await;
    let phone = Arc::new(std::mem::replace(
        &mut gm.phone,
        gridsync_core::phone::Phone::open_in_memory(gridsync_tests::device::test_retry()).unwrap(),
    ));
    let running = tokio::spawn({
        let phone = phone.clone();
        async move { phone.upload_photos(0).await }
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    phone.cancel_photo_upload();
    let stopped = running.await.unwrap();
    assert!(matches!(stopped, Err(ApiError::Cancelled { .. })), "{stopped:?}");
    let sent = phone.store().blob_state(&hash).unwrap().unwrap().sent;
    assert!(sent > 0 && sent < photo.len() as u64, "{sent} of {} bytes confirmed", photo.len());
    proxy.set_shaping(None).await;
    let rest = phone.upload_photos(0).await.unwrap();
    assert_eq!((rest.completed, rest.bytes_sent), (1, photo.len() as u64 - sent));
    assert_eq!(stored(&bed, &hash).unwrap(), photo);
}
