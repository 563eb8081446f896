//! Photos never lost, owned and bounded, end to end with real server
//! processes, on SQLite and on PostgreSQL: two phones attaching a first
//! photo to one record at once both keep it; naming a photo's hash neither
//! reaches nor hides it; a colleague cannot stall a photographer's upload;
//! unfinished uploads are bounded per user and expired by `gc-photos`; a
//! record's photo budget counts thumbnails; photos added at once past the
//! limit freeze nothing; a deleted record restored after `gc-photos` gets
//! its photo back from the phone that took it; a chunk past a small photo
//! is told its limit in bytes.

use std::collections::BTreeSet;

use gridsync_core::model::{Attachment, HazardAction, HazardCategory, Location, Visit, VisitTarget, sha256_hex};
use gridsync_core::phone::{ApiError, HazardFields, PHOTO_CHUNK, RecordInput};
use gridsync_core::protocol::RejectReason;
use gridsync_tests::device::Device;
use gridsync_tests::hostile::{acked, copy_of, push_raw, refusals, wire};
use gridsync_tests::http1::{Resp, http};
use gridsync_tests::records::photo_jpeg as jpeg;
use gridsync_tests::server::{Admin, Db, ServerProc, admin_command, blocking, issue_code, postgres_db, seed_demo};
use uuid::Uuid;

on_both_backends!(
    first_photos_attached_at_once_are_both_kept,
    naming_a_photos_hash_neither_reaches_nor_hides_it,
    a_colleague_cannot_stall_a_photographers_upload,
    unfinished_uploads_are_bounded_per_user_and_expired_by_gc,
    a_records_photo_budget_counts_thumbnails,
    photos_added_at_once_past_the_limit_freeze_nothing,
    a_deleted_record_restored_after_gc_gets_its_photo_back,
    a_photo_is_not_given_up_while_its_record_references_it,
    a_chunk_past_a_small_photo_is_told_its_limit_in_bytes,
);

/// A county on a real server, and its database open beside it.
struct County {
    server: ServerProc,
    admin: Admin,
    db: Db,
}

impl County {
    async fn start(db: Db) -> County {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let server = ServerProc::start(db.clone()).unwrap();
        County { server, admin, db }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    fn json(&self, id: &str) -> serde_json::Value {
        let id: Uuid = id.parse().unwrap();
        blocking(|| self.admin.record(id).unwrap()).expect("record on the server").json
    }

    /// The complete bytes the server holds for photo `hash`.
    fn stored(&self, hash: &str) -> Option<Vec<u8>> {
        blocking(|| self.admin.blob_store().get(hash).unwrap())
    }

    /// A request with `dev`'s token, as a phone (or a hand-made client) sends it.
    fn send(&self, dev: &Device, method: &str, path: &str, body: &[u8]) -> Resp {
        let token = dev.store().enrollment().unwrap().unwrap().token;
        let url = format!("{}{path}", self.server.url());
        blocking(|| http(method, &url, &[("Authorization", &format!("Bearer {token}"))], body))
    }

    /// `gc-photos --grace-days 0`, run as the operator runs it.
    fn gc(&self) -> serde_json::Value {
        let out = blocking(|| admin_command(&self.db, &["gc-photos", "--grace-days", "0"]).unwrap());
        serde_json::from_str(out.trim()).unwrap()
    }
}

fn code(r: &Resp) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .map(|v| v["error"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn message(r: &Resp) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .map(|v| v["message_zh"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn hazard() -> RecordInput {
    RecordInput::Hazard(HazardFields {
        category: HazardCategory::Geological,
        location: Location { text: "二组后山".into(), gps: None },
        description: "山体出现裂缝，已设警示。".into(),
    })
}

/// A reference to photo `hash` of `size` bytes taken by `by`.
fn reference(by: &str, size: usize) -> Attachment {
    Attachment {
        mime: "image/jpeg".into(),
        size: size as i64,
        at: gridsync_server::clock::now_ms(),
        by: by.into(),
        event: None,
        thumb_of: None,
    }
}

/// Sync and insist that nothing was refused or set aside.
async fn sync_clean(d: &mut Device) {
    let r = d.sync().await.unwrap_or_else(|e| panic!("{} could not sync: {e}", d.user));
    assert!(r.rejected.is_empty(), "{}: refused {:?}", d.user, r.rejected);
    assert!(r.set_aside.is_empty(), "{}: set aside {:?}", d.user, r.set_aside);
}

fn photo_hashes(d: &Device, id: &str) -> BTreeSet<String> {
    d.phone.get_record(id).unwrap().photos.into_iter().map(|p| p.hash).collect()
}

/// Two people attach a first photo to one hazard at the same time, both
/// offline: each keeps theirs on both phones and on the server, the one who
/// syncs second included, both uploads go through, and every reader sees
/// both photos.
async fn first_photos_attached_at_once_are_both_kept(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;

    // Both offline: each attaches the record's first photo.
    let (pa, ta, pb) = (jpeg(30_000, 101, true), jpeg(2_000, 102, false), jpeg(40_000, 103, true));
    let ha = gm.phone.attach_photo(&id, pa.clone(), Some(ta), None).unwrap().photos[0].hash.clone();
    let hb = vl.phone.attach_photo(&id, pb.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 2);
    sync_clean(&mut vl).await;
    let up = vl.phone.upload_photos(0).await.unwrap();
    assert_eq!((up.completed, up.remaining), (1, 0), "the one who synced second could not send his photo");
    sync_clean(&mut gm).await;

    let both: BTreeSet<String> = [ha.clone(), hb.clone()].into();
    assert_eq!(photo_hashes(&gm, &id), both, "the grid manager's phone");
    assert_eq!(photo_hashes(&vl, &id), both, "the village leader's phone");
    assert_eq!(c.json(&id)["attachments"].as_object().unwrap().len(), 3, "two photos and a thumbnail on the server");
    assert_eq!(c.stored(&ha).unwrap(), pa);
    assert_eq!(c.stored(&hb).unwrap(), pb);
    assert_eq!(gm.phone.fetch_photo(&id, &hb).await.unwrap(), pb);
    assert_eq!(vl.phone.fetch_photo(&id, &ha).await.unwrap(), pa);
    let mut tc = c.phone("tc-t01-1").await;
    sync_clean(&mut tc).await;
    assert_eq!(photo_hashes(&tc, &id), both, "a phone that joins later");
    assert_eq!(tc.phone.fetch_photo(&id, &ha).await.unwrap(), pa);
}

/// A village leader names a grid manager's hazard photo in a key-person
/// visit of his (a sensitive record), and a grid manager of another group
/// names it in a hazard of his own. Neither reference counts, since
/// neither sent the bytes: the township chief, the county and the
/// photographer's second phone still see the photo; the other group's
/// grid manager does not.
async fn naming_a_photos_hash_neither_reaches_nor_hides_it(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(20_000, 201, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1);

    let mut vl = c.phone("vl-t01-v01").await;
    let visit = RecordInput::Visit(Visit {
        target: VisitTarget::KeyPerson,
        subject: "社区矫正对象李某".into(),
        visited_at: gridsync_server::clock::now_ms(),
        household_id: None,
        findings: "按时报到。".into(),
        follow_up_needed: false,
    });
    let vid = vl.phone.create_record(Some("t01/v01/g1"), visit).unwrap().id;
    let at = gridsync_server::clock::now_ms();
    vl.store()
        .edit(vid.parse().unwrap(), at, |r| {
            r.attachments.insert(hash.clone(), reference("vl-t01-v01", photo.len()));
        })
        .unwrap();
    sync_clean(&mut vl).await;
    let mut g2 = c.phone("gm-t01-v01-g2").await;
    let own = g2.phone.create_record(None, hazard()).unwrap().id;
    g2.store()
        .edit(own.parse().unwrap(), at, |r| {
            r.attachments.insert(hash.clone(), reference("gm-t01-v01-g2", photo.len()));
        })
        .unwrap();
    sync_clean(&mut g2).await;

    let path = format!("/v1/photos/{hash}");
    let second = c.phone("gm-t01-v01-g1").await;
    for who in ["tc-t01-1", "county-admin"] {
        let d = c.phone(who).await;
        let r = c.send(&d, "GET", &path, b"");
        assert_eq!(r.status, 200, "{who}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, photo);
    }
    let r = c.send(&second, "GET", &path, b"");
    assert_eq!((r.status, r.body == photo), (200, true), "the photographer's second phone");
    assert_eq!(c.send(&vl, "GET", &path, b"").status, 200, "the village leader reads the hazard");
    let r = c.send(&g2, "GET", &path, b"");
    assert_eq!((r.status, code(&r)), (403, "forbidden".into()), "a reference of one's own opened a colleague's photo");
    // Nor may a name-only reference send bytes that would count.
    let r = c.send(&g2, "PUT", &format!("{path}?offset=0"), &photo);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = c.send(&g2, "GET", &path, b"");
    assert_eq!(r.status, 200, "once he sent the bytes, his record's readers (he) may see them");
}

/// A colleague names the photographer's photo in a record of his own with
/// a larger size and keeps sending bytes for it: his upload is his own, and
/// the photographer's upload goes through beside it.
async fn a_colleague_cannot_stall_a_photographers_upload(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(3 * PHOTO_CHUNK + 500, 301, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;

    let mut g2 = c.phone("gm-t01-v01-g2").await;
    let own = g2.phone.create_record(None, hazard()).unwrap().id;
    let at = gridsync_server::clock::now_ms();
    g2.store()
        .edit(own.parse().unwrap(), at, |r| {
            r.attachments.insert(hash.clone(), reference("gm-t01-v01-g2", 10 * photo.len()));
        })
        .unwrap();
    sync_clean(&mut g2).await;

    // Before each of the photographer's chunks he sends a photo's worth of
    // junk again (to the shared upload, on a server that had one).
    for round in 0..8 {
        let r = c.send(&g2, "PUT", &format!("/v1/photos/{hash}?offset=0"), &vec![0x55; photo.len()]);
        assert_eq!(r.status, 200, "round {round}: {}", String::from_utf8_lossy(&r.body));
        gm.phone.upload_photos(PHOTO_CHUNK as u64).await.unwrap();
    }
    assert_eq!(gm.phone.photo_backlog().unwrap().photos, 0, "the photographer's upload was stalled");
    assert_eq!(c.stored(&hash).unwrap(), photo, "the photographer's bytes, whatever the colleague sent");
    assert_eq!(c.send(&g2, "GET", &format!("/v1/photos/{hash}"), b"").status, 403);
}

/// A grid manager's phone names twenty 8 MB photos it never means to send
/// and starts each upload: only the first eight (64 MiB declared) begin,
/// the rest wait (429 `photo_quota`) while an honest colleague's photo goes
/// through; `gc-photos` then removes the unfinished uploads although a live
/// record names their photos, and keeps the honest photo.
async fn unfinished_uploads_are_bounded_per_user_and_expired_by_gc(db: Db) {
    let c = County::start(db).await;
    let mut bad = c.phone("gm-t01-v01-g2").await;
    let own = bad.phone.create_record(None, hazard()).unwrap().id;
    let names: Vec<String> = (0..20).map(|i| sha256_hex(format!("never sent {i}").as_bytes())).collect();
    let at = gridsync_server::clock::now_ms();
    bad.store()
        .edit(own.parse().unwrap(), at, |r| {
            for h in &names {
                r.attachments.insert(h.clone(), reference("gm-t01-v01-g2", 8 << 20));
            }
        })
        .unwrap();
    sync_clean(&mut bad).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(50_000, 401, false);
    let honest = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;

    let junk = vec![0x33u8; 256 * 1024];
    let answers: Vec<Resp> =
        names.iter().map(|h| c.send(&bad, "PUT", &format!("/v1/photos/{h}?offset=0"), &junk)).collect();
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [[200; 8].as_slice(), [429; 12].as_slice()].concat(), "{statuses:?}");
    assert_eq!(code(&answers[8]), "photo_quota");
    assert!(message(&answers[8]).contains("没有传完"), "{}", message(&answers[8]));
    assert_eq!(answers[8].header("retry-after"), ["600"]);
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1, "the colleague's budget is his own");
    let held = |c: &County| -> u64 {
        blocking(|| c.admin.blob_store().list().unwrap()).iter().filter(|b| !b.complete).map(|b| b.received).sum()
    };
    eprintln!("unfinished bytes held for one user before gc: {} KiB (20 uploads asked for)", held(&c) / 1024);
    assert_eq!(held(&c), 8 * 256 * 1024);

    let report = c.gc();
    assert_eq!(report["unfinished_removed"], 8, "{report}");
    assert_eq!(held(&c), 0, "unfinished uploads expire although a live record names their photos");
    assert_eq!(c.stored(&honest).unwrap(), photo, "a live record's photo stays");
    let again = c.send(&bad, "PUT", &format!("/v1/photos/{}?offset=0", names[19]), &junk);
    assert_eq!(again.status, 200, "the expired uploads no longer count: {}", String::from_utf8_lossy(&again.body));
}

/// A record's photo budget counts thumbnails: a hazard naming one photo
/// with forty thumbnails (forty more uploads the server would take) is
/// refused, and an honest photo with its one thumbnail is not.
async fn a_records_photo_budget_counts_thumbnails(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    sync_clean(&mut gm).await;
    let rid: Uuid = id.parse().unwrap();
    let mut doc = copy_of(&gm, rid).unwrap();
    let heads = doc.heads();
    let mut rec = doc.record().unwrap();
    let photo = sha256_hex(b"one photo");
    rec.attachments.insert(photo.clone(), reference("gm-t01-v01-g1", 8 << 20));
    for i in 0..40 {
        let mut t = reference("gm-t01-v01-g1", 64 << 10);
        t.thumb_of = Some(photo.clone());
        rec.attachments.insert(sha256_hex(format!("thumbnail {i}").as_bytes()), t);
    }
    rec.updated_at += 1;
    doc.update(&rec).unwrap();
    let resp = push_raw(&gm, vec![wire(rid, &doc.changes_since(&heads))]).await.unwrap();
    let refused = refusals(&resp, rid);
    assert_eq!(
        refused.first().map(|r| (r.0, r.1.as_str())),
        Some((RejectReason::Invalid, "每张照片只能有一张缩略图")),
        "{refused:?}"
    );
    assert!(c.json(&id).get("attachments").is_none(), "nothing of it is stored");

    let mut fresh = c.phone("gm-t01-v01-g1").await;
    sync_clean(&mut fresh).await;
    fresh.phone.attach_photo(&id, jpeg(10_000, 501, false), Some(jpeg(1_000, 502, false)), None).unwrap();
    sync_clean(&mut fresh).await;
    assert_eq!(fresh.phone.upload_photos(0).await.unwrap().completed, 2);
}

/// A hazard with one photo gets 10 more on the village leader's phone and
/// 10 on the supervisor's, both offline: 21 on the merged record. Each
/// phone kept the limit as it saw the record, so none is refused, and the
/// record still takes the township chief's resolution and the village
/// leader's deletion; only a 22nd photo is refused.
async fn photos_added_at_once_past_the_limit_freeze_nothing(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    gm.phone.attach_photo(&id, jpeg(3_000, 600, false), None, None).unwrap();
    sync_clean(&mut gm).await;
    let mut vl = c.phone("vl-t01-v01").await;
    let mut sv = c.phone("sv-t01-v01").await;
    sync_clean(&mut vl).await;
    sync_clean(&mut sv).await;
    // Offline, each on their own phone.
    for (i, d) in [(0u32, &vl), (100, &sv)] {
        for k in 0..10 {
            d.phone.attach_photo(&id, jpeg(3_000, 700 + i + k, false), None, None).unwrap();
        }
    }
    for d in [&mut gm, &mut vl, &mut sv] {
        sync_clean(d).await;
        assert_eq!(d.phone.upload_photos(0).await.unwrap().remaining, 0);
    }
    let mut tc = c.phone("tc-t01-1").await;
    sync_clean(&mut tc).await;
    assert_eq!(tc.phone.get_record(&id).unwrap().photos.len(), 21);

    tc.phone.append_hazard_event(&id, HazardAction::Resolved { note: "已组织清理".into() }).unwrap();
    sync_clean(&mut tc).await;
    let events = c.json(&id)["data"]["events"].clone();
    assert!(
        events.as_array().unwrap().iter().any(|e| e["action"]["type"] == "resolved"),
        "the resolution is stored: {events}"
    );

    // The 22nd: the phone says so at once, and the server refuses it.
    sync_clean(&mut gm).await;
    match gm.phone.attach_photo(&id, jpeg(3_000, 999, false), None, None) {
        Err(ApiError::InvalidInput { reason, .. }) => assert_eq!(reason, "too_many"),
        other => panic!("a 22nd photo must be refused on the phone: {other:?}"),
    }
    let rid: Uuid = id.parse().unwrap();
    let mut doc = copy_of(&gm, rid).unwrap();
    let heads = doc.heads();
    let mut rec = doc.record().unwrap();
    rec.attachments.insert(sha256_hex(b"22nd"), reference("gm-t01-v01-g1", 3_021));
    rec.updated_at += 1;
    doc.update(&rec).unwrap();
    let resp = push_raw(&gm, vec![wire(rid, &doc.changes_since(&heads))]).await.unwrap();
    let refused = refusals(&resp, rid);
    assert_eq!(
        refused.first().map(|r| (r.0, r.1.as_str())),
        Some((RejectReason::Invalid, "每条记录最多附20张照片")),
        "{refused:?}"
    );

    sync_clean(&mut vl).await;
    vl.phone.delete_record(&id).unwrap();
    sync_clean(&mut vl).await;
    assert_eq!(c.json(&id)["deleted"], true, "the deletion is stored");
    assert!(!acked(&resp, rid));
}

/// A hazard is deleted, `gc-photos` removes its photo, and the hazard is
/// restored: the server asks the phone that took the photo for it again,
/// and the village leader sees it.
async fn a_deleted_record_restored_after_gc_gets_its_photo_back(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(70_000, 701, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1);
    gm.phone.delete_record(&id).unwrap();
    sync_clean(&mut gm).await;
    let report = c.gc();
    assert_eq!(report["removed"], 1, "{report}");
    assert_eq!(c.stored(&hash), None);

    let at = gridsync_server::clock::now_ms();
    gm.store().edit(id.parse().unwrap(), at, |r| r.deleted = false).unwrap();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    assert!(vl.phone.fetch_photo(&id, &hash).await.is_err(), "not on the server yet");
    let again = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((again.completed, again.remaining), (1, 0), "the phone was not asked for the photo again");
    assert_eq!(c.stored(&hash).unwrap(), photo);
    assert_eq!(vl.phone.fetch_photo(&id, &hash).await.unwrap(), photo);
}

/// The village leader deletes a hazard while its photo still waits on the
/// grid manager's phone: the phone, whose record still names the photo,
/// keeps it (the server says no live record names it); once the deletion
/// reaches the phone it stops trying, and when the leader restores the
/// hazard the server asks for the photo and it goes.
async fn a_photo_is_not_given_up_while_its_record_references_it(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let mut vl = c.phone("vl-t01-v01").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(10_000, 901, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;
    sync_clean(&mut vl).await;
    vl.phone.delete_record(&id).unwrap();
    sync_clean(&mut vl).await;

    let run = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((run.completed, run.remaining), (0, 1), "given up while the phone's record still names it");
    sync_clean(&mut gm).await;
    assert!(gm.phone.get_record(&id).unwrap().deleted);
    let run = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!((run.completed, run.remaining), (0, 0), "a deleted record's photo is not sent");

    let at = gridsync_server::clock::now_ms();
    vl.store().edit(id.parse().unwrap(), at, |r| r.deleted = false).unwrap();
    sync_clean(&mut vl).await;
    let run = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!(run.completed, 1, "the server asked for it again");
    assert_eq!(c.stored(&hash).unwrap(), photo);
}

/// A chunk longer than what a small photo has left is refused with the
/// limit in bytes, not "0KB".
async fn a_chunk_past_a_small_photo_is_told_its_limit_in_bytes(db: Db) {
    let c = County::start(db).await;
    let mut gm = c.phone("gm-t01-v01-g1").await;
    let id = gm.phone.create_record(None, hazard()).unwrap().id;
    let photo = jpeg(579, 801, false);
    assert_eq!(photo.len(), 600);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();
    sync_clean(&mut gm).await;
    let r = c.send(&gm, "PUT", &format!("/v1/photos/{hash}?offset=0"), &[0u8; 900]);
    assert_eq!((r.status, code(&r)), (413, "body_too_large".into()));
    assert!(message(&r).contains("600字节") && !message(&r).contains("0KB"), "{}", message(&r));
    let r = c.send(&gm, "PUT", &format!("/v1/photos/{hash}?offset=100"), &photo);
    assert!(message(&r).contains("500字节"), "{}", message(&r));
    assert_eq!(gm.phone.upload_photos(0).await.unwrap().completed, 1);
}
