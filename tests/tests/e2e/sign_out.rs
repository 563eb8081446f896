//! Sign-out and wipe only by the device itself, and no wipe deletes
//! unsynced work unoffered; relayed bundles are budgeted per carrier and
//! per signer. Real server processes, on SQLite and on PostgreSQL.
//!
//! - A token alone (or a sign-out signed by another key, for another
//!   device, or too long ago) signs no phone out: the phone keeps its
//!   records and its unsynced work reaches the server.
//! - A signed sign-out is taken once; posted again it meets a revoked device.
//! - A phone revoked with unsynced records seals them before it wipes; a
//!   colleague's phone carries the bundle and the server takes the changes
//!   made before the revocation (and refuses one dated after).
//! - Relayed bundles past a carrier's or a signer's hourly budget get 429
//!   `relay_quota` (413 `relay_too_large` past a full budget) while honest
//!   phones keep syncing.

use gridsync_core::model::{HazardCategory, Location, PatrolSlot};
use gridsync_core::phone::{HazardFields, RecordInput};
use gridsync_core::protocol::{RelayReport, SignOutRequest};
use gridsync_core::signing::{hex_of, is_sealed};
use gridsync_core::sync::SyncError;
use gridsync_tests::device::Device;
use gridsync_tests::records::{DAY0, hazard, patrol, photo_jpeg};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, postgres_db, seed_demo};

on_both_backends!(
    a_token_alone_signs_no_phone_out,
    a_signed_sign_out_is_taken_once,
    a_revoked_phone_offers_its_unsynced_work,
    a_revoked_phone_keeps_the_photos_it_has_not_sent,
    relay_past_its_budget_waits_while_honest_phones_sync,
);

const GM: &str = "gm-t01-v01-g1";
const CARRIER: &str = "vl-t01-v01";

struct Town {
    server: ServerProc,
    admin: Admin,
}

impl Town {
    async fn start(db: Db, extra: &[&str]) -> Town {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let server = ServerProc::start_serving(db, extra).unwrap();
        Town { server, admin }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    fn revoked(&self, id: &str) -> bool {
        blocking(|| self.admin.devices().unwrap()).into_iter().find(|x| x.id == id).unwrap().revoked_at.is_some()
    }

    /// POST `body` to `path` under `token`: the status, the `error` code
    /// and the body.
    async fn post(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, String, String) {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let resp = c
            .post(format!("{}{path}", self.server.url()))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (status, code, text)
    }
}

fn token(d: &Device) -> String {
    d.store().enrollment().unwrap().unwrap().token
}

fn device_id(d: &Device) -> String {
    d.store().enrollment().unwrap().unwrap().device_id
}

/// A sign-out body for device `of`, signed at `at` with `signer`'s key.
fn signed_sign_out(of: &Device, signer: &Device, at: i64) -> Vec<u8> {
    let (_, key) = signer.store().signer().unwrap();
    let device = uuid::Uuid::parse_str(&device_id(of)).unwrap();
    let body = SignOutRequest { device_id: device_id(of), at, signature: hex_of(&key.sign_sign_out(&device, at).0) };
    serde_json::to_vec(&body).unwrap()
}

/// Someone holding the grid manager's token (copied off a backup, say)
/// tries to sign her phone out: with the token alone, with a sign-out her
/// key never signed (his own phone's key), and with one signed ten minutes
/// ago. Each is refused with its code; her phone is not revoked, keeps its
/// records, and its unsynced hazard reaches the server.
async fn a_token_alone_signs_no_phone_out(db: Db) {
    let t = Town::start(db, &[]).await;
    let mut gm = t.phone(GM).await;
    let other = t.phone("gm-t01-v01-g2").await;
    gm.create(&patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning)).unwrap();
    gm.sync().await.unwrap();
    let hz = hazard(&gm.grid, &gm.user, 1);
    gm.create(&hz).unwrap();
    let tok = token(&gm);
    let gm_id = device_id(&gm);
    let now = gridsync_server::clock::now_ms();

    let (status, code, text) = t.post("/v1/sign-out", &tok, vec![]).await;
    assert_eq!((status, code.as_str()), (400, "signature_required"), "{text}");
    assert!(text.contains("设备签名"), "{text}");
    let (status, code, _) = t.post("/v1/sign-out", &tok, b"{\"device_id\":\"x\"}".to_vec()).await;
    assert_eq!((status, code.as_str()), (400, "signature_required"));
    let (status, code, _) = t.post("/v1/sign-out", &tok, signed_sign_out(&gm, &other, now)).await;
    assert_eq!((status, code.as_str()), (403, "bad_signature"), "signed by another device's key");
    let (status, code, _) = t.post("/v1/sign-out", &tok, signed_sign_out(&gm, &gm, now - 10 * 60_000)).await;
    assert_eq!((status, code.as_str()), (400, "signature_expired"), "signed ten minutes ago");
    assert!(!t.revoked(&gm_id), "the device is not revoked");

    let r = gm.sync().await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(gm.store().count().unwrap(), 2, "the phone keeps its records");
    assert!(blocking(|| t.admin.record(hz.id).unwrap()).is_some(), "the unsynced hazard arrived");
}

/// The grid manager signs out from her phone: the request is signed and
/// taken, the device is revoked. The same signed body, replayed with her
/// token, meets a revoked device (401, nothing more happens); posted with
/// a colleague's token it is refused as not his device's (403), and his
/// phone stays signed in.
async fn a_signed_sign_out_is_taken_once(db: Db) {
    let t = Town::start(db, &[]).await;
    let mut gm = t.phone(GM).await;
    let mut colleague = t.phone("gm-t01-v01-g2").await;
    gm.create(&patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning)).unwrap();
    gm.sync().await.unwrap();
    let captured = signed_sign_out(&gm, &gm, gridsync_server::clock::now_ms());
    let (gm_token, colleague_token) = (token(&gm), token(&colleague));
    let gm_id = device_id(&gm);

    let (status, code, _) = t.post("/v1/sign-out", &colleague_token, captured.clone()).await;
    assert_eq!((status, code.as_str()), (403, "bad_signature"), "her sign-out names her device");
    assert!(!t.revoked(&device_id(&colleague)));

    gm.phone.sign_out(false).await.unwrap();
    assert!(t.revoked(&gm_id), "the phone's own signed sign-out is taken");
    assert!(gm.phone.enrollment().unwrap().is_none());
    assert_eq!(gm.store().count().unwrap(), 1, "signing out without wipe keeps the records");

    let (status, code, _) = t.post("/v1/sign-out", &gm_token, captured).await;
    assert_eq!((status, code.as_str()), (401, "device_revoked"), "a replay meets a revoked device");
    colleague.sync().await.unwrap();
    assert!(!t.revoked(&device_id(&colleague)));
}

/// The grid manager's phone syncs once, then goes offline and records
/// three patrols before an administrator revokes it (a day after the
/// third), and a fourth dated after the revocation. Its next sync is
/// refused and it wipes, but first seals the four changes into a relay
/// bundle it offers. The village leader's phone carrying it gets all four
/// refused (`signer_revoked`: not its user's); the phone enrolled again by
/// its grid manager hands it over itself, and the server takes the three
/// made before the revocation and refuses the fourth. Nothing honest is
/// lost.
async fn a_revoked_phone_offers_its_unsynced_work(db: Db) {
    let t = Town::start(db, &[]).await;
    let mut gm = t.phone(GM).await;
    let mut carrier = t.phone(CARRIER).await;
    gm.sync().await.unwrap();
    let honest: Vec<_> = (0..3).map(|d| patrol(&gm.grid, &gm.user, d, PatrolSlot::Morning)).collect();
    for p in &honest {
        gm.create(p).unwrap();
    }
    let late = patrol(&gm.grid, &gm.user, 10, PatrolSlot::Morning);
    gm.create(&late).unwrap();
    assert_eq!(gm.phone.rescued_bundle().unwrap(), None);

    let id = device_id(&gm);
    assert!(blocking(|| t.admin.revoke_device(&id, DAY0 + 3 * 86_400_000).unwrap()));
    assert!(matches!(gm.sync().await, Err(SyncError::Revoked)));
    assert_eq!(gm.store().count().unwrap(), 0, "the phone wiped its records");
    assert_eq!(gm.store().outbox_len().unwrap(), 0);
    let rescued = gm.phone.rescued_bundle().unwrap().expect("the unsynced work is offered");
    assert!(is_sealed(&rescued), "sealed to the server: whoever holds the phone cannot read it");

    // A colleague carrying it is not its user: whoever holds a lost phone
    // could have backdated a change, so nothing of it is taken.
    assert!(carrier.phone.carry_relay_bundle(&rescued).unwrap());
    let r = carrier.sync().await.unwrap();
    assert_eq!((r.relayed_bundles, r.relayed_changes, r.relay_refused_changes), (1, 0, 4), "{r:?}");
    assert!(blocking(|| t.admin.record(honest[0].id).unwrap()).is_none());

    // The phone carries its own bundle too: enrolled again by its user (a
    // new code from the county), it hands over the work made before the
    // revocation.
    gm.phone.enroll(&t.server.url(), &blocking(|| issue_code(t.admin.as_ref(), GM).unwrap()), "手机").await.unwrap();
    let r = gm.sync().await.unwrap();
    assert_eq!((r.relayed_bundles, r.relayed_changes, r.relay_refused_changes), (1, 3, 1), "{r:?}");
    for p in &honest {
        assert!(blocking(|| t.admin.record(p.id).unwrap()).is_some(), "patrol of {} lost", p.created_at);
    }
    assert!(blocking(|| t.admin.record(late.id).unwrap()).is_none(), "dated after the revocation");
    gm.phone.forget_rescued_bundle().unwrap();
    assert_eq!(gm.phone.rescued_bundle().unwrap(), None);
}

/// A grid manager reports a hazard with a photo offline, and her phone
/// is revoked before it syncs. The wipe removes the record but keeps the
/// photo's bytes with the rescued bundle; enrolled again, the phone hands
/// over the bundle, gets the record back, and sends the photo, which the
/// server then serves.
async fn a_revoked_phone_keeps_the_photos_it_has_not_sent(db: Db) {
    let t = Town::start(db, &[]).await;
    let mut gm = t.phone(GM).await;
    gm.sync().await.unwrap();
    let input = RecordInput::Hazard(HazardFields {
        category: HazardCategory::Geological,
        location: Location { text: "二组后山".into(), gps: None },
        description: "山体出现裂缝，已设警示。".into(),
    });
    let id = gm.phone.create_record(None, input).unwrap().id;
    let photo = photo_jpeg(20_000, 7, true);
    let hash = gm.phone.attach_photo(&id, photo.clone(), None, None).unwrap().photos[0].hash.clone();

    let dev = device_id(&gm);
    let later = gridsync_server::clock::now_ms() + 60_000;
    assert!(blocking(|| t.admin.revoke_device(&dev, later).unwrap()));
    assert!(matches!(gm.sync().await, Err(SyncError::Revoked)));
    assert_eq!(gm.store().count().unwrap(), 0, "the phone wiped its records");
    assert!(gm.phone.rescued_bundle().unwrap().is_some());

    gm.phone.enroll(&t.server.url(), &blocking(|| issue_code(t.admin.as_ref(), GM).unwrap()), "手机").await.unwrap();
    let r = gm.sync().await.unwrap();
    assert_eq!((r.relayed_bundles, r.relay_refused_changes), (1, 0), "{r:?}");
    let sent = gm.phone.upload_photos(0).await.unwrap();
    assert_eq!(sent.completed, 1, "the photo taken before the revocation goes up: {sent:?}");
    let c = reqwest::Client::new();
    let got = c
        .get(format!("{}/v1/photos/{hash}", t.server.url()))
        .header("authorization", format!("Bearer {}", token(&gm)))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), photo);
}

/// With a signer budget of 10 changes an hour and a carrier budget of 12,
/// a carrier hands over a grid manager's bundle of 4 changes (taken), then
/// her bundle of 8 (4 + 8 over her 10: 429 `relay_quota` with
/// Retry-After, nothing of it stored, through a second carrier too), a
/// bundle of 12 changes larger than a full signer budget (413
/// `relay_too_large`), another grid manager's 6 (taken: 10 of the
/// carrier's 12) and a third's 3 (429: the carrier's budget; a second
/// carrier takes them). The honest phones sync throughout and the grid
/// manager's own sync brings her eight patrols.
async fn relay_past_its_budget_waits_while_honest_phones_sync(db: Db) {
    let flags = [
        "--relay-carrier-changes-per-hour",
        "12",
        "--relay-carrier-records-per-hour",
        "100",
        "--relay-signer-changes-per-hour",
        "10",
        "--relay-signer-records-per-hour",
        "100",
    ];
    let t = Town::start(db, &flags).await;
    let mut gm = t.phone(GM).await;
    let mut g2 = t.phone("gm-t01-v01-g2").await;
    let mut g3 = t.phone("gm-t01-v02-g1").await;
    let mut g4 = t.phone("gm-t01-v01-g3").await;
    let carrier = t.phone(CARRIER).await;
    let carrier2 = t.phone("vl-t01-v02").await;
    for d in [&mut gm, &mut g2, &mut g3, &mut g4] {
        d.sync().await.unwrap();
    }
    let relay = |d: &Device| d.phone.export_relay_bundle().unwrap();
    let report = |body: &str| serde_json::from_str::<RelayReport>(body).unwrap();

    for day in 0..4 {
        gm.create(&patrol(&gm.grid, &gm.user, day, PatrolSlot::Morning)).unwrap();
    }
    let (status, _, body) = t.post("/v1/relay", &token(&carrier), relay(&gm)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(report(&body).changes_stored, 4);

    let eight: Vec<_> = (4..8).map(|d| patrol(&gm.grid, &gm.user, d, PatrolSlot::Morning)).collect();
    for p in &eight {
        gm.create(p).unwrap();
    }
    let (status, code, body) = t.post("/v1/relay", &token(&carrier), relay(&gm)).await;
    assert_eq!((status, code.as_str()), (429, "relay_quota"), "{body}");
    assert!(body.contains("限额"), "{body}");
    let (status, code, _) = t.post("/v1/relay", &token(&carrier2), relay(&gm)).await;
    assert_eq!((status, code.as_str()), (429, "relay_quota"), "the signer's budget holds for every carrier");
    for p in &eight {
        assert!(blocking(|| t.admin.record(p.id).unwrap()).is_none(), "a refused bundle stores nothing");
    }

    for day in 0..12 {
        g3.create(&patrol(&g3.grid, &g3.user, day, PatrolSlot::Evening)).unwrap();
    }
    let (status, code, _) = t.post("/v1/relay", &token(&carrier), relay(&g3)).await;
    assert_eq!((status, code.as_str()), (413, "relay_too_large"));

    for day in 0..6 {
        g2.create(&patrol(&g2.grid, &g2.user, day, PatrolSlot::Midday)).unwrap();
    }
    let (status, _, body) = t.post("/v1/relay", &token(&carrier), relay(&g2)).await;
    assert_eq!(status, 200, "4 + 6 of the carrier's 12: {body}");
    for day in 0..3 {
        g4.create(&patrol(&g4.grid, &g4.user, day, PatrolSlot::Midday)).unwrap();
    }
    let (status, code, _) = t.post("/v1/relay", &token(&carrier), relay(&g4)).await;
    assert_eq!((status, code.as_str()), (429, "relay_quota"), "the carrier's budget is spent");
    let (status, _, body) = t.post("/v1/relay", &token(&carrier2), relay(&g4)).await;
    assert_eq!(status, 200, "another carrier brings them: {body}");

    for d in [&mut gm, &mut g2, &mut g3, &mut g4] {
        let r = d.sync().await.unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }
    for p in &eight {
        assert!(blocking(|| t.admin.record(p.id).unwrap()).is_some());
    }
}
