//! Relay bundles decode under the sync path's limits, with a real server
//! process on SQLite and on PostgreSQL: a sealed bundle that inflates to
//! 33 million empty changes is refused before the memory it would take
//! (the server's peak RSS read from /proc), and a bundle that names a
//! record twice, holds a record without changes or carries 20,001 changes
//! is refused exactly as a sync request holding the same is; the honest
//! phones keep syncing.

use std::io::Write as _;

use gridsync_core::model::PatrolSlot;
use gridsync_core::protocol::{self, Bundle, DocChanges, SyncRequest, sign_docs};
use gridsync_core::signing::{from_hex, seal_to_server};
use gridsync_tests::device::Device;
use gridsync_tests::records::{hazard, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, postgres_db, seed_demo};
use uuid::Uuid;

on_both_backends!(a_relay_bomb_is_refused_before_it_takes_memory, relay_bundles_are_refused_as_sync_requests_are);

const GM: &str = "gm-t01-v01-g1";
/// The village leader carries the grid manager's bundles.
const CARRIER: &str = "vl-t01-v01";

struct Town {
    server: ServerProc,
    admin: Admin,
}

impl Town {
    async fn start(db: Db) -> Town {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let server = ServerProc::start(db).unwrap();
        Town { server, admin }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    fn changes(&self) -> u64 {
        blocking(|| self.admin.change_count().unwrap())
    }

    /// POST `body` to `path` under `token`: the status and the `error` code
    /// (status 0 if the server did not answer within two minutes).
    async fn post(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, String) {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let sent = c
            .post(format!("{}{path}", self.server.url()))
            .header("authorization", format!("Bearer {token}"))
            .body(body)
            .send()
            .await;
        let Ok(resp) = sent else { return (0, "no answer".into()) };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (status, code)
    }

    async fn healthz(&self) -> u16 {
        match reqwest::get(format!("{}/healthz", self.server.url())).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

fn token(d: &Device) -> String {
    d.store().enrollment().unwrap().unwrap().token
}

/// `plain` sealed to the server `d` enrolled with.
fn sealed_for(d: &Device, plain: &[u8]) -> Vec<u8> {
    let key = from_hex(&d.store().enrollment().unwrap().unwrap().server_key).unwrap();
    seal_to_server(&key, plain).unwrap()
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A bundle message (header and deflated postcard body) naming `device`
/// and holding one record with `n` changes of zero bytes, written by hand:
/// no encoder would build the vector of 33 million empty changes.
fn bomb(device: &str, n: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(n as usize + 256);
    varint(&mut body, device.len() as u64);
    body.extend_from_slice(device.as_bytes());
    varint(&mut body, GM.len() as u64);
    body.extend_from_slice(GM.as_bytes());
    varint(&mut body, 0); // created_at
    varint(&mut body, 0); // empty cursor
    varint(&mut body, 1); // one record
    body.extend_from_slice(&[7u8; 16]);
    varint(&mut body, n);
    body.resize(body.len() + n as usize, 0); // n changes of length 0
    body.extend_from_slice(&[0; 64]); // the signature
    let mut out = b"GS".to_vec();
    out.extend_from_slice(&protocol::PROTOCOL_VERSION.to_be_bytes());
    out.push(1); // plain deflate
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&body).unwrap();
    out.extend(enc.finish().unwrap());
    out
}

/// A carrier hands over a 33 KB sealed bundle that inflates to 32 MiB: 33
/// million empty changes of the grid manager's device (the server used to
/// decode each, hash it and take 4.9 GB). It is refused 413
/// `too_many_changes` while it is counted, twice at once, with the
/// server's peak memory growing by less than 100 MiB; /healthz answers,
/// and the grid manager and the carrier still sync.
async fn a_relay_bomb_is_refused_before_it_takes_memory(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone(GM).await;
    let mut carrier = t.phone(CARRIER).await;
    gm.sync().await.unwrap();
    let device = gm.store().enrollment().unwrap().unwrap().device_id;
    let sealed = sealed_for(&gm, &bomb(&device, 32 * 1024 * 1024 - 256));
    assert!(sealed.len() < 64 * 1024, "{}", sealed.len());
    let before = t.server.peak_rss_mib().unwrap();
    let tok = token(&carrier);
    let (a, b) = tokio::join!(t.post("/v1/relay", &tok, sealed.clone()), t.post("/v1/relay", &tok, sealed.clone()));
    let after = t.server.peak_rss_mib().unwrap();
    eprintln!("relay bomb ({} bytes sealed), two at once: peak RSS {before:.1} -> {after:.1} MiB", sealed.len());
    assert_eq!(a, (413, "too_many_changes".into()));
    assert_eq!(b, (413, "too_many_changes".into()));
    assert!(after - before < 100.0, "peak RSS grew from {before:.1} to {after:.1} MiB");
    assert_eq!(t.healthz().await, 200);

    // The honest phones go on: the grid manager's patrol arrives.
    let p = patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning);
    gm.create(&p).unwrap();
    let r = gm.sync().await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert!(blocking(|| t.admin.record(p.id).unwrap()).is_some());
    carrier.sync().await.unwrap();
    assert!(carrier.records().unwrap().contains_key(&p.id));
}

/// The grid manager's phone, offline with a hazard and a patrol, writes
/// bundles a hostile app would: the hazard named twice, a record without
/// changes, and 20,001 changes. Each, signed with her device's key and
/// sealed, is refused through relay with the status and code the sync path
/// gives the same records (400 `malformed_body`, 413 `too_many_changes`),
/// and nothing of it is stored; her honest relay bundle is then taken.
async fn relay_bundles_are_refused_as_sync_requests_are(db: Db) {
    let t = Town::start(db).await;
    let mut gm = t.phone(GM).await;
    let carrier = t.phone(CARRIER).await;
    gm.sync().await.unwrap();
    let hz = hazard(&gm.grid, &gm.user, 3);
    gm.create(&hz).unwrap();
    let p = patrol(&gm.grid, &gm.user, 1, PatrolSlot::Evening);
    gm.create(&p).unwrap();
    let honest = gm.store().export_bundle().unwrap();
    assert_eq!(honest.docs.len(), 2);
    let (hz_doc, p_doc) = {
        let first = honest.docs.iter().find(|d| d.doc == *hz.id.as_bytes()).unwrap().clone();
        let second = honest.docs.iter().find(|d| d.doc == *p.id.as_bytes()).unwrap().clone();
        (first, second)
    };
    let (device, key) = gm.store().signer().unwrap();
    let many = DocChanges {
        doc: *Uuid::new_v4().as_bytes(),
        changes: (0..20_001u32).map(|i| i.to_be_bytes().to_vec()).collect(),
    };
    let cases: Vec<(&str, Vec<DocChanges>, (u16, &str))> = vec![
        ("named twice", vec![hz_doc.clone(), p_doc.clone(), hz_doc.clone()], (400, "malformed_body")),
        (
            "without changes",
            vec![hz_doc.clone(), DocChanges { doc: p_doc.doc, changes: vec![] }],
            (400, "malformed_body"),
        ),
        ("20,001 changes", vec![hz_doc.clone(), many], (413, "too_many_changes")),
    ];
    let before = t.changes();
    for (name, docs, want) in cases {
        let signature = sign_docs(&key, &device, &docs);
        let bundle = Bundle { docs: docs.clone(), signature, ..honest.clone() };
        let relayed = t.post("/v1/relay", &token(&carrier), sealed_for(&gm, &bundle.encode().unwrap())).await;
        let req = SyncRequest { cursor: vec![0xff; 16], docs, max_response_bytes: 16 * 1024, signature };
        let synced = t.post("/v1/sync", &token(&gm), protocol::encode(&req).unwrap()).await;
        assert_eq!((relayed.0, relayed.1.as_str()), want, "{name} through relay");
        assert_eq!(relayed, synced, "{name}: relay and sync answer alike");
        assert_eq!(t.changes(), before, "{name}: something was stored");
    }
    assert!(blocking(|| t.admin.record(hz.id).unwrap()).is_none());

    // The same records, honestly bundled, go through.
    let sealed = gm.phone.export_relay_bundle().unwrap();
    let (status, code) = t.post("/v1/relay", &token(&carrier), sealed).await;
    assert_eq!((status, code.as_str()), (200, ""));
    assert!(blocking(|| t.admin.record(hz.id).unwrap()).is_some());
    assert!(blocking(|| t.admin.record(p.id).unwrap()).is_some());
    let r = gm.sync().await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}
