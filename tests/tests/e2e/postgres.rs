//! Several stateless server nodes on one PostgreSQL database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::grid::{GridPath, Role};
use gridsync_core::model::{PatrolSlot, RecordKind};
use gridsync_server::store::postgres::PostgresServerStore;
use gridsync_server::store::{Cursor, IncomingDoc, ReadScope, ServerStore, User, ViewQuery};
use gridsync_tests::device::Device;
use gridsync_tests::records::{DAY0, hazard, hazard_step, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, issue_code, postgres_db, seed_demo};

/// Two nodes share one database; six phones alternate between them for
/// eight rounds, editing each other's records: every phone ends with the
/// same records as the database, and every change is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
async fn phones_alternating_between_two_nodes_converge() {
    // The PostgreSQL client used for checks blocks; keep it off the async workers.
    use tokio::task::block_in_place as blocking;
    let db = blocking(postgres_db);
    let admin = Admin::open(&db);
    blocking(|| seed_demo(admin.as_ref()).unwrap());
    let a = ServerProc::start(db.clone()).unwrap();
    let b = ServerProc::start(db.clone()).unwrap();
    let users = ["gm-t01-v01-g1", "gm-t01-v01-g2", "gm-t01-v01-g3", "vl-t01-v01", "sv-t01-v01", "tc-t01-1"];
    let mut devices = Vec::new();
    for u in users {
        let code = blocking(|| issue_code(admin.as_ref(), u).unwrap());
        devices.push(Device::enroll(&a.url(), &code).await.unwrap());
    }
    let mut made = 0;
    for round in 0..8i64 {
        let mut tasks = Vec::new();
        for (i, mut d) in devices.drain(..).enumerate() {
            let node = if (i as i64 + round) % 2 == 0 { a.url() } else { b.url() };
            d.set_server(&node).unwrap();
            let before = d.store().outbox_len().unwrap();
            if d.grid.level() != gridsync_core::grid::GridLevel::Township {
                let grid = if d.grid.level() == gridsync_core::grid::GridLevel::Village {
                    d.grid.child("g4").unwrap()
                } else {
                    d.grid.clone()
                };
                d.create(&patrol(&grid, &d.user, round, PatrolSlot::Evening)).unwrap();
                d.create(&hazard(&grid, &d.user, round)).unwrap();
            }
            // Everyone in the township records a handling step on the first
            // hazard they hold: concurrent appends through both nodes.
            let first_hazard = d.ids(RecordKind::Hazard).unwrap().first().copied();
            if let Some(id) = first_hazard {
                let user = d.user.clone();
                let at = DAY0 + round * 1000;
                d.store().edit(id, at, |r| hazard_step(r, &user, at, &format!("{user} 第{round}轮"))).unwrap();
            }
            made += d.store().outbox_len().unwrap() - before;
            tasks.push(tokio::spawn(async move {
                d.sync().await.unwrap();
                d
            }));
        }
        for t in tasks {
            devices.push(t.await.unwrap());
        }
    }
    // Settle: a few clean rounds, alternating nodes, until every phone has
    // seen everything (rows of transactions still running are read later).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, d) in devices.iter_mut().enumerate() {
            d.set_server(&if i % 2 == 0 { b.url() } else { a.url() }).unwrap();
            d.sync().await.unwrap();
        }
        let all_match = blocking(|| {
            devices.iter().all(|d| {
                let held = d.records().unwrap();
                let want = admin
                    .records(&ViewQuery { under: Some(d.grid.clone()), sensitive: true, ..Default::default() })
                    .unwrap();
                held.len() == want.len() && want.iter().all(|v| held.get(&v.id) == Some(&v.json))
            })
        });
        if all_match {
            break;
        }
        assert!(Instant::now() < deadline, "phones did not converge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(blocking(|| admin.change_count().unwrap()), made);
}

/// Two server nodes commit concurrently while readers follow the feed: each
/// reader sees every committed change exactly once, although sequence
/// numbers are handed out before commit and commits land out of order.
#[test]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
fn feed_never_skips_a_change_with_two_nodes_committing_concurrently() {
    let Db::Postgres(url) = postgres_db() else { unreachable!() };
    let node_a: Arc<dyn ServerStore> = Arc::new(PostgresServerStore::connect(&url).unwrap());
    node_a.migrate().unwrap();
    let node_b: Arc<dyn ServerStore> = Arc::new(PostgresServerStore::connect(&url).unwrap());
    let county =
        User { id: "county".into(), display_name: "县".into(), role: Role::CountyStaff, grid: GridPath::county() };
    node_a.add_user(&county).unwrap();
    let writers_done = Arc::new(AtomicBool::new(false));

    // Readers poll the feed with their own cursors the whole time.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let node = if r == 0 { node_a.clone() } else { node_b.clone() };
            let done = writers_done.clone();
            let scope = ReadScope::of(&county);
            std::thread::spawn(move || {
                let mut cursor = Cursor::default();
                let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
                let mut quiet_after_done = 0;
                loop {
                    let page = node.read_feed(cursor, &scope, "reader", 16 * 1024).unwrap();
                    cursor = page.next;
                    let got = page.changes.len();
                    for (_, bytes) in page.changes {
                        let c = gridsync_core::doc::parse_change(&bytes).unwrap();
                        *seen.entry(c.hash().0).or_default() += 1;
                    }
                    if done.load(Ordering::SeqCst) && got == 0 && !page.more {
                        quiet_after_done += 1;
                        if quiet_after_done > 5 {
                            return seen;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // Writers: 6 threads, alternating nodes, small transactions.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let node = if w % 2 == 0 { node_a.clone() } else { node_b.clone() };
            let county = county.clone();
            std::thread::spawn(move || {
                let mut hashes = Vec::new();
                let actor = ActorId::random();
                for i in 0..15 {
                    // County staff may report a hazard anywhere (not patrol).
                    let rec = hazard(&GridPath::parse("t01/v01/g1").unwrap(), "county", i);
                    let mut doc = RecordDoc::create(&rec, actor.clone()).unwrap();
                    let changes = doc.changes_since(&[]);
                    hashes.extend(changes.iter().map(|c| c.hash().0));
                    let inc = IncomingDoc::unsigned(rec.id, changes.iter().map(|c| c.raw_bytes().to_vec()).collect());
                    let out = gridsync_server::sync::process_sync(
                        node.as_ref(),
                        &Default::default(),
                        &gridsync_server::store::DeviceAuth {
                            device: gridsync_server::store::Device {
                                id: format!("writer{w}"),
                                user_id: "county".into(),
                                name: String::new(),
                                created_at: 0,
                                last_sync_at: None,
                                revoked_at: None,
                                actor: Some(actor.to_bytes().to_vec()),
                                public_key: None,
                            },
                            user: county.clone(),
                        },
                        vec![inc],
                        Cursor { xid: u64::MAX, seq: u64::MAX },
                        1,
                        gridsync_server::clock::now_ms(),
                    )
                    .unwrap();
                    assert_eq!(out.acked.len(), 1, "{out:?}");
                }
                hashes
            })
        })
        .collect();
    let mut written: BTreeMap<[u8; 32], ()> = BTreeMap::new();
    for w in writers {
        for h in w.join().unwrap() {
            written.insert(h, ());
        }
    }
    writers_done.store(true, Ordering::SeqCst);
    for r in readers {
        let seen = r.join().unwrap();
        assert_eq!(seen.len(), written.len(), "reader saw every committed change");
        assert!(seen.values().all(|&n| n == 1), "and each exactly once");
        assert!(written.keys().all(|h| seen.contains_key(h)));
    }
    assert_eq!(node_a.change_count().unwrap() as usize, written.len());
}
