//! The server loses power while phones sync (`gridsync_tests::powercut`:
//! writes it had not fsynced are dropped, which SIGKILL alone never does).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gridsync_core::grid::GridPath;
use gridsync_core::model::{PatrolSlot, RecordBody};
use gridsync_server::store::{Cursor, ReadScope, ServerStore};
use gridsync_tests::device::Device;
use gridsync_tests::powercut::Powercut;
use gridsync_tests::records::{DAY0, patrol};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// An Automerge change hash.
type Hash = [u8; 32];

/// A phone and every change it ever made, with its record.
struct Phone {
    d: Device,
    made: BTreeMap<Hash, Uuid>,
}

impl Phone {
    /// Changes the server acknowledged: made, and no longer in the outbox
    /// (the phone drops a change from it only on the server's ack).
    fn acked(&self) -> impl Iterator<Item = (&Hash, &Uuid)> {
        let pending: BTreeSet<Hash> = self.d.store().outbox(usize::MAX).unwrap().iter().map(|e| e.hash).collect();
        self.made.iter().filter(move |(h, _)| !pending.contains(*h))
    }
}

/// Record patrols and sync them, as fast as the server answers, until told
/// to stop. Every other round also edits one of the phone's earlier patrols.
/// Every successful sync counts in `synced`.
async fn keep_syncing(mut p: Phone, seed: u64, stop: Arc<AtomicBool>, synced: Arc<AtomicUsize>) -> Phone {
    let mut rng = StdRng::seed_from_u64(seed);
    // Never outlive a test that failed to stop us.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let day = p.made.len() as i64;
        let slot = [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][rng.gen_range(0..3)];
        p.d.create(&patrol(&p.d.grid, &p.d.user, day, slot)).unwrap();
        let own: Vec<Uuid> = p.made.values().copied().collect::<BTreeSet<_>>().into_iter().collect();
        if rng.gen_bool(0.5) && !own.is_empty() {
            let id = own[rng.gen_range(0..own.len())];
            p.d.store()
                .edit(id, DAY0 + day * 86_400_000, |r| {
                    if let RecordBody::Patrol(patrol) = &mut r.body {
                        patrol.findings = format!("第{day}天复查：无异常。");
                    }
                })
                .unwrap();
        }
        for e in p.d.store().outbox(usize::MAX).unwrap() {
            p.made.insert(e.hash, e.doc_id);
        }
        if p.d.sync().await.is_ok() {
            synced.fetch_add(1, Ordering::SeqCst);
        }
    }
    p
}

fn hex(h: &Hash) -> String {
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Every change the server stores, by hash, with its record.
fn stored_changes(store: &dyn ServerStore) -> BTreeMap<Hash, Uuid> {
    let everything = ReadScope { node: Some(GridPath::county()), sensitive: true };
    let mut cursor = Cursor::default();
    let mut out = BTreeMap::new();
    loop {
        let page = store.read_feed(cursor, &everything, "", 1 << 20).unwrap();
        for (id, bytes) in page.changes {
            out.insert(automerge::Change::from_bytes(bytes).unwrap().hash().0, id);
        }
        cursor = page.next;
        if !page.more {
            return out;
        }
    }
}

/// Four phones record and sync patrols while the server's power is cut at
/// a random moment, twice: every change a phone saw acknowledged is still
/// on the server, and afterwards the phones sync on cleanly, with every
/// change stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_loses_no_change_the_server_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::Sqlite(data.clone());
    let users = ["gm-t01-v01-g1", "gm-t01-v01-g2", "gm-t01-v01-g3", "gm-t01-v02-g1"];
    let codes: Vec<String> = {
        let admin = db.open().unwrap();
        seed_demo(admin.as_ref()).unwrap();
        users.iter().map(|u| issue_code(admin.as_ref(), u).unwrap()).collect()
        // Closed here: while its power can be cut, the server is the only
        // process writing the database (one shim cannot cut another's).
    };
    let cut = Powercut::new(&data).unwrap();
    let mut server = ServerProc::start_with_env(db.clone(), cut.env()).unwrap();
    let mut phones = Vec::new();
    for code in &codes {
        let d = Device::enroll(&server.url(), code).await.unwrap();
        phones.push(Phone { d, made: BTreeMap::new() });
    }
    let mut rng = StdRng::seed_from_u64(31);
    let mut acked = BTreeMap::new();
    for round in 0..2u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let synced = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = phones
            .drain(..)
            .enumerate()
            .map(|(i, p)| tokio::spawn(keep_syncing(p, round * 100 + i as u64, stop.clone(), synced.clone())))
            .collect();
        // The random moment counts from the first sync the server answered
        // (a loaded machine may take a while to get there).
        let deadline = Instant::now() + Duration::from_secs(20);
        while synced.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1000))).await;
        server.kill(); // SIGKILL: the power goes
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            phones.push(t.await.unwrap());
        }
        let report = cut.cut().unwrap();
        assert!(report.files >= 2, "round {round}: the shim saw the database and its WAL: {report:?}");
        let before = acked.len();
        for p in &phones {
            acked.extend(p.acked().map(|(h, id)| (*h, *id)));
        }
        assert!(acked.len() > before, "round {round}: the server acknowledged nothing");
        let synced = synced.load(Ordering::SeqCst);

        // Open the database after the cut, without the shim, as the server will.
        let admin = db.open().unwrap();
        let stored = stored_changes(admin.as_ref());
        let lost: Vec<String> = acked
            .iter()
            .filter(|(h, id)| stored.get(*h) != Some(*id))
            .map(|(h, id)| format!("{} of record {id}", hex(h)))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged changes lost, first {:?}",
            lost.len(),
            &lost[..3.min(lost.len())]
        );
        drop(admin);
        eprintln!(
            "round {round}: {synced} syncs, {} changes acknowledged so far, {} stored, {report:?}",
            acked.len(),
            stored.len()
        );
        if round == 1 {
            server.set_env(vec![]); // the last restart runs without the shim
        }
        server.restart().unwrap();
    }

    // Everyone syncs until nothing moves: nothing lost, nothing doubled.
    for _ in 0..3 {
        for p in phones.iter_mut() {
            p.d.sync().await.unwrap();
        }
    }
    let admin = db.open().unwrap();
    let made: BTreeSet<Hash> = phones.iter().flat_map(|p| p.made.keys().copied()).collect();
    assert_eq!(admin.change_count().unwrap(), made.len() as u64, "every change stored exactly once");
    for p in &phones {
        assert_eq!(p.d.store().outbox_len().unwrap(), 0, "{}: outbox empty", p.d.user);
        let held = p.d.records().unwrap();
        let visible = admin
            .records(&gridsync_server::store::ViewQuery {
                under: Some(p.d.grid.clone()),
                sensitive: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(held.len(), visible.len(), "{} holds its whole scope", p.d.user);
        for v in visible {
            assert_eq!(held.get(&v.id), Some(&v.json), "{}: record {} converged", p.d.user, v.id);
        }
    }
}
