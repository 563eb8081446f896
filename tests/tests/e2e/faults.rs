//! Syncing through a network that cuts requests and loses responses, and a
//! server killed with SIGKILL in the middle of it.

use std::collections::BTreeMap;
use std::time::Duration;

use gridsync_core::model::{PatrolSlot, RecordBody};
use gridsync_core::protocol;
use gridsync_core::sync::{SyncOptions, SyncSession};
use gridsync_tests::device::Device;
use gridsync_tests::proxy::Proxy;
use gridsync_tests::records::{hazard_step, patrol};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Six phones edit and sync for twelve rounds through a link that cuts 15%
/// of requests and loses 15% of responses after the server committed, and
/// the server is killed with SIGKILL and restarted halfway: afterwards every
/// change made on every phone is on the server exactly once, every outbox is
/// empty, and every phone's records equal the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_or_doubled_under_faults_and_a_server_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let mut server = ServerProc::start(db).unwrap();
    let proxy = Proxy::start(server.addr(), 42).await.unwrap();
    let users = ["gm-t01-v01-g1", "gm-t01-v01-g2", "gm-t01-v01-g3", "gm-t01-v01-g4", "vl-t01-v01", "gm-t01-v02-g1"];
    let mut devices = Vec::new();
    for u in users {
        devices.push(Device::enroll(&proxy.url(), &issue_code(admin.as_ref(), u).unwrap()).await.unwrap());
    }
    proxy.set_faults(15, 15);
    let mut rng = StdRng::seed_from_u64(99);
    let mut made = 0u64;
    for round in 0..12i64 {
        for d in devices.iter_mut() {
            let before = d.store().outbox_len().unwrap();
            let grid = if d.grid.level() == gridsync_core::grid::GridLevel::Village {
                d.grid.child("g1").unwrap()
            } else {
                d.grid.clone()
            };
            let slot = [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][rng.gen_range(0..3)];
            d.create(&patrol(&grid, &d.user, round, slot)).unwrap();
            // Edit one of its own records (patrols are edited by their author only).
            let held: Vec<Uuid> = d
                .records()
                .unwrap()
                .iter()
                .filter(|(_, v)| v["author"] == d.user.as_str())
                .map(|(id, _)| *id)
                .collect();
            if !held.is_empty() {
                let id = held[rng.gen_range(0..held.len())];
                let user = d.user.clone();
                let at = gridsync_tests::records::DAY0 + round * 86_400_000 + 1000;
                d.store()
                    .edit(id, at, |r| match &mut r.body {
                        RecordBody::Patrol(p) => p.findings = format!("{user}第{round}轮补充"),
                        _ => hazard_step(r, &user, at, "复查"),
                    })
                    .unwrap();
            }
            made += d.store().outbox_len().unwrap() - before;
        }
        let mut tasks = Vec::new();
        for mut d in devices.drain(..) {
            tasks.push(tokio::spawn(async move {
                let r = d.sync().await;
                (d, r.is_ok())
            }));
        }
        if round == 6 {
            // Kill the server while the phones are uploading, then restart it.
            tokio::time::sleep(Duration::from_millis(30)).await;
            server.kill();
            tokio::time::sleep(Duration::from_millis(200)).await;
            server.restart().unwrap();
        }
        for t in tasks {
            devices.push(t.await.unwrap().0);
        }
    }
    let stats = &proxy.stats;
    assert!(stats.cut_requests.load(std::sync::atomic::Ordering::Relaxed) > 0, "faults were injected");
    assert!(stats.lost_responses.load(std::sync::atomic::Ordering::Relaxed) > 0, "faults were injected");

    // Heal: a clean link; everyone syncs until nothing moves.
    proxy.set_faults(0, 0);
    for _ in 0..3 {
        for d in devices.iter_mut() {
            d.sync().await.unwrap();
        }
    }
    assert_eq!(admin.change_count().unwrap(), made, "every change stored exactly once");
    for d in &devices {
        assert_eq!(d.store().outbox_len().unwrap(), 0, "{}: outbox empty", d.user);
        let held = d.records().unwrap();
        let visible = admin
            .records(&gridsync_server::store::ViewQuery {
                under: Some(d.grid.clone()),
                sensitive: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(held.len(), visible.len(), "{} holds its whole scope", d.user);
        for v in visible {
            assert_eq!(held.get(&v.id), Some(&v.json), "{}: record {} converged", d.user, v.id);
        }
    }
}

/// The same request delivered twice (a retry after a lost response, or a
/// duplicating network) is stored once and acknowledged both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    let server = ServerProc::start(db).unwrap();
    let mut d = Device::enroll(&server.url(), &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    for day in 0..3 {
        d.create(&patrol(&d.grid, &d.user, day, PatrolSlot::Morning)).unwrap();
    }
    let token = d.store().enrollment().unwrap().unwrap().token;
    let mut session = SyncSession::new(gridsync_core::transport::CURSOR_KEY, SyncOptions::default());
    let req = session.next_request(&mut d.store()).unwrap().unwrap();
    let client = reqwest_client();
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(post(&client, &server.url(), &token, &req.body).await);
    }
    assert_eq!(admin.change_count().unwrap(), 3);
    let acks: Vec<usize> =
        replies.iter().map(|b| protocol::decode::<protocol::SyncResponse>(b).unwrap().acked.len()).collect();
    assert_eq!(acks, vec![3, 3, 3], "all three records acknowledged every time");
    session.handle_response(&mut d.store(), &req, &replies[2]).unwrap();
    assert_eq!(d.store().outbox_len().unwrap(), 0);
    let _: BTreeMap<Uuid, serde_json::Value> = d.records().unwrap();
}

fn reqwest_client() -> gridsync_tests::device::RawClient {
    gridsync_tests::device::RawClient::new()
}

async fn post(c: &gridsync_tests::device::RawClient, url: &str, token: &str, body: &[u8]) -> Vec<u8> {
    c.post_sync(url, token, body).await.unwrap()
}
