//! Deterministic simulation of one village syncing over a bad network, with
//! no sockets: the real client store and sync engine on four phones, and the
//! real server sync round ([`process_sync`]) over an in-memory SQLite store.
//!
//! The phones belong to the grid managers of groups `g1` (two phones) and
//! `g2` of village `t01/v01`, and to the village's leader. A seeded RNG
//! drives every choice: which phone acts, whether it creates a record,
//! edits one it holds (within its role's permissions, so the server has no
//! reason to refuse anything) or syncs, and what the network does to each
//! request. The network loses requests, loses replies (the server did the
//! work, the phone never hears), delivers requests twice (the phone applies
//! one of the replies), and delays requests of abandoned attempts so that
//! they reach the server after later ones (their replies are dropped, as an
//! HTTP client that gave up would drop them). Users sometimes keep working
//! while a request is on its way.
//!
//! After the faulty phase the late requests land, the network heals, and
//! every phone syncs until a whole pass moves nothing. Then: every phone's
//! outbox is empty; the server refused nothing and no record carries a
//! rejection; every change is stored on the server exactly once; every
//! phone holds exactly the records of its scope, each with the server's
//! change history and content.
//!
//! A failing run names its seed; add it to [`REGRESSION_SEEDS`] once fixed.
//! `GRIDSYNC_SIM_SEEDS=N` runs seeds `0..N` instead of the default (`0`
//! runs the regression seeds only, to replay one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use gridsync_core::CoreError;
use gridsync_core::grid::{GridPath, Role};
use gridsync_core::model::{
    DisputeAction, DisputeCategory, DisputeLevel, PatrolSlot, RecordBody, RecordKind, VisitTarget,
};
use gridsync_core::protocol::{self, SyncRequest};
use gridsync_core::store::{ListFilter, RecordSummary, Store};
use gridsync_core::sync::{SyncOptions, SyncReport, SyncSession};
use gridsync_core::transport::Enrollment;
use gridsync_server::clock::now_ms;
use gridsync_server::metrics::Metrics;
use gridsync_server::store::prelude::*;
use gridsync_server::store::sqlite::SqliteServerStore;
use gridsync_server::store::{Cursor, Device, DeviceAuth, ReadScope, User, ViewQuery};
use gridsync_server::sync::{SignedDocs, process_signed_sync};
use gridsync_tests::records::{self, DAY0};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Seeds that once failed; always run first.
const REGRESSION_SEEDS: &[u64] = &[];
/// Seeds run by default (override with `GRIDSYNC_SIM_SEEDS`).
const DEFAULT_SEEDS: u64 = 500;
/// Most healing passes before giving up on quiescence.
const MAX_HEAL_PASSES: usize = 20;
/// Name of the phones' cursor with the one server.
const CURSOR: &str = "sim";
const VILLAGE: &str = "t01/v01";
const GROUPS: [&str; 2] = ["g1", "g2"];

/// Everyday phones keep their records on a faulty network: after losses,
/// duplicates and late requests heal, every phone and the server agree on
/// every record, nothing is stored twice and nothing is refused.
#[test]
fn faulty_network_converges_for_every_seed() {
    let n: u64 = std::env::var("GRIDSYNC_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEEDS);
    let started = Instant::now();
    // The seeds are independent: run them on two threads.
    let seeds: Vec<u64> = REGRESSION_SEEDS.iter().copied().chain(0..n).collect();
    let halves: Vec<Vec<u64>> =
        vec![seeds.iter().copied().step_by(2).collect(), seeds.iter().copied().skip(1).step_by(2).collect()];
    let results: Vec<Result<Stats, String>> = halves
        .into_iter()
        .map(|half| {
            std::thread::spawn(move || {
                let mut total = Stats::default();
                for seed in half {
                    match std::panic::catch_unwind(|| run_seed(seed)) {
                        Ok(Ok(stats)) => total.add(&stats),
                        Ok(Err(why)) => return Err(format!("seed {seed}: {why}")),
                        Err(p) => {
                            let msg = p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            return Err(format!("seed {seed}: panicked: {msg}"));
                        }
                    }
                }
                Ok(total)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("a seed thread died".into())))
        .collect();
    let mut total = Stats::default();
    for r in results {
        match r {
            Ok(s) => total.add(&s),
            Err(why) => panic!("{why}"),
        }
    }
    eprintln!("simulation: {} seeds in {:.1?}; {total:?}", REGRESSION_SEEDS.len() as u64 + n, started.elapsed());
    // The faults must actually have happened.
    assert!(n < 20 || (total.lost_requests > 0 && total.lost_replies > 0 && total.duplicates > 0 && total.late > 0));
}

/// What happened in a run (summed over seeds for the log line).
#[derive(Debug, Default, Clone)]
struct Stats {
    creates: u64,
    edits: u64,
    sync_rounds: u64,
    abandoned_rounds: u64,
    lost_requests: u64,
    lost_replies: u64,
    duplicates: u64,
    late: u64,
    heal_passes: u64,
    /// Edits the phone refused at once (the user may not take that step).
    refused_offline: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.creates += o.creates;
        self.edits += o.edits;
        self.sync_rounds += o.sync_rounds;
        self.abandoned_rounds += o.abandoned_rounds;
        self.lost_requests += o.lost_requests;
        self.lost_replies += o.lost_replies;
        self.duplicates += o.duplicates;
        self.late += o.late;
        self.heal_passes += o.heal_passes;
        self.refused_offline += o.refused_offline;
    }

    /// Count an edit: saved, or refused at once by the phone's rules. Any
    /// other failure (a record needing repair means the server refused what
    /// the phone allowed) ends the run.
    fn count<T>(&mut self, r: Result<T, CoreError>) {
        match r {
            Ok(_) => self.edits += 1,
            Err(CoreError::NotAllowed { .. }) => self.refused_offline += 1,
            Err(e) => panic!("an edit failed: {e}"),
        }
    }
}

/// One simulated phone.
struct Phone {
    store: Store,
    auth: DeviceAuth,
    opts: SyncOptions,
}

impl Phone {
    fn user(&self) -> &User {
        &self.auth.user
    }

    /// The records the phone holds, by id (index columns only).
    fn held(&self, include_deleted: bool) -> HashMap<Uuid, RecordSummary> {
        self.store
            .list(&ListFilter { include_deleted, limit: Some(10_000), ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s))
            .collect()
    }
}

/// What the network does to one delivery attempt.
enum Fault {
    None,
    LoseRequest,
    LoseReply,
    Duplicate,
    Late,
}

struct Sim {
    rng: StdRng,
    /// The server nodes (one SQLite store, or two nodes on one PostgreSQL
    /// database); each delivery goes to a node picked at random.
    nodes: Vec<Arc<dyn ServerStore>>,
    metrics: Metrics,
    phones: Vec<Phone>,
    /// Every record id, in creation order: choices index into this, never
    /// into lists ordered by (random) uuids.
    created: Vec<Uuid>,
    /// Requests of abandoned attempts still on their way: (phone, body).
    late: Vec<(usize, Vec<u8>)>,
    /// Every refusal the server answered with (there must be none: the
    /// generator only makes changes the users may make).
    refusals: Vec<String>,
    step: i64,
    stats: Stats,
}

fn user(id: &str, role: Role, grid: &str) -> User {
    User { id: id.into(), display_name: format!("用户{id}"), role, grid: GridPath::parse(grid).unwrap() }
}

/// The server side of one delivery: exactly what `POST /v1/sync` does
/// between reading the body and writing the answer.
fn serve(
    server: &dyn ServerStore,
    metrics: &Metrics,
    auth: &DeviceAuth,
    body: &[u8],
    refusals: &mut Vec<String>,
) -> Vec<u8> {
    let req: SyncRequest = protocol::decode(body).unwrap();
    let cursor = Cursor::from_bytes(&req.cursor).unwrap();
    let resp = process_signed_sync(
        server,
        metrics,
        auth,
        SignedDocs { docs: req.docs, signature: req.signature },
        cursor,
        req.max_response_bytes as usize,
        now_ms(),
    )
    .unwrap();
    for r in &resp.rejected {
        refusals.push(format!(
            "{} refused {} of {}: {} ({})",
            auth.device.id,
            r.hashes.len(),
            Uuid::from_bytes(r.doc),
            r.reason.as_str(),
            r.detail
        ));
    }
    protocol::encode(&resp).unwrap()
}

impl Sim {
    fn new(seed: u64, nodes: Vec<Arc<dyn ServerStore>>) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let server = nodes[0].clone();
        let users = [
            user("gm1", Role::GridManager, "t01/v01/g1"),
            user("gm2", Role::GridManager, "t01/v01/g2"),
            user("vl1", Role::VillageLeader, VILLAGE),
        ];
        for u in &users {
            server.add_user(u).unwrap();
        }
        // gm1 carries two phones; each phone enrolls like over HTTP.
        let mut phones = Vec::new();
        for (i, uid) in ["gm1", "gm1", "gm2", "vl1"].into_iter().enumerate() {
            let code = format!("code-{i}").into_bytes();
            let token = format!("token-{i}").into_bytes();
            server.create_enrollment(&code, uid, i64::MAX).unwrap();
            let mut store = Store::open_in_memory().unwrap();
            let dev = Device {
                id: Uuid::from_u128(i as u128 + 1).to_string(),
                user_id: String::new(),
                name: format!("手机{i}"),
                created_at: 0,
                last_sync_at: None,
                revoked_at: None,
                actor: Some(store.actor().to_bytes().to_vec()),
                public_key: Some(store.device_key().unwrap().public().to_vec()),
            };
            let redeemed = server.redeem_enrollment(&code, &dev, &token, 0).unwrap();
            assert!(matches!(redeemed, gridsync_server::store::Redeemed::Enrolled(_)), "{redeemed:?}");
            let auth = server.device_by_token(&token).unwrap().unwrap();
            // The phone knows who it is enrolled as, so it applies the same
            // write rules as the server before saving anything.
            let mut store = store;
            store
                .set_enrollment(&Enrollment {
                    server_url: "sim".into(),
                    device_id: auth.device.id.clone(),
                    token: String::from_utf8_lossy(&token).into_owned(),
                    user_id: auth.user.id.clone(),
                    display_name: auth.user.display_name.clone(),
                    role: auth.user.role.as_str().into(),
                    grid: auth.user.grid.to_string(),
                    server_key: String::new(),
                })
                .unwrap();
            // Small upload and page budgets split sessions into many requests.
            let opts = SyncOptions {
                max_upload_bytes: [1, 3_000, 512 * 1024][rng.gen_range(0..3)],
                page_bytes: [1, 4_000, 256 * 1024][rng.gen_range(0..3)],
                ..SyncOptions::default()
            };
            phones.push(Phone { store, auth, opts });
        }
        Sim {
            rng,
            nodes,
            metrics: Metrics::default(),
            phones,
            created: Vec::new(),
            late: Vec::new(),
            refusals: Vec::new(),
            step: 0,
            stats: Stats::default(),
        }
    }

    fn now(&self) -> i64 {
        DAY0 + self.step * 10 * 60_000
    }

    fn run(&mut self) -> Result<Stats, String> {
        let steps = self.rng.gen_range(60..=100);
        for _ in 0..steps {
            self.step += 1;
            // A late request from an abandoned attempt may land now.
            if !self.late.is_empty() && self.rng.gen_bool(0.3) {
                self.deliver_late();
            }
            let p = self.rng.gen_range(0..self.phones.len());
            match self.rng.gen_range(0..100) {
                0..30 => self.create(p),
                30..65 => self.edit(p),
                _ => self.sync_faulty(p),
            }
        }
        self.heal()?;
        self.check()?;
        Ok(self.stats.clone())
    }

    /// A phone's user makes a new record of a random kind in their grid.
    fn create(&mut self, p: usize) {
        let u = self.phones[p].user().clone();
        let grid = match u.role {
            Role::VillageLeader => u.grid.child(GROUPS[self.rng.gen_range(0..GROUPS.len())]).unwrap(),
            _ => u.grid.clone(),
        };
        let day = self.step / 40;
        let rec = match self.rng.gen_range(0..5) {
            0 => {
                let slot = [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][self.rng.gen_range(0..3)];
                records::patrol(&grid, &u.id, day, slot)
            }
            1 => records::hazard(&grid, &u.id, day),
            2 => {
                let target = [VisitTarget::FloatingPopulation, VisitTarget::KeyPerson, VisitTarget::SpecialPlace]
                    [self.rng.gen_range(0..3)];
                records::visit(&grid, &u.id, day, target)
            }
            3 => records::household(&grid, &u.id, &mut self.rng),
            _ => records::dispute(&grid, &u.id, day),
        };
        self.phones[p].store.create(&rec).unwrap();
        self.created.push(rec.id);
        self.stats.creates += 1;
    }

    /// A phone's user changes a record they hold, as their role allows.
    fn edit(&mut self, p: usize) {
        let held = self.phones[p].held(false);
        let candidates: Vec<&RecordSummary> = self.created.iter().filter_map(|id| held.get(id)).collect();
        if candidates.is_empty() {
            return;
        }
        let rec = candidates[self.rng.gen_range(0..candidates.len())];
        let id = rec.id;
        let now = self.now();
        let note = format!("第{}步的记录", self.step);
        let u = self.phones[p].user().clone();
        let roll = self.rng.gen_range(0..100);
        let store = &mut self.phones[p].store;
        if roll < 3 {
            self.stats.count(store.delete(id, now));
            return;
        }
        let fields = roll < 40;
        let done: Result<(), CoreError> = match rec.kind {
            RecordKind::Patrol => {
                let end = self.rng.gen_bool(0.5);
                store
                    .edit(id, now, |r| {
                        if let RecordBody::Patrol(b) = &mut r.body {
                            b.findings = note;
                            if end {
                                b.ended_at = Some(b.started_at + 30 * 60_000);
                            }
                        }
                    })
                    .map(|_| ())
            }
            RecordKind::Hazard if fields => store
                .edit(id, now, |r| {
                    if let RecordBody::Hazard(b) = &mut r.body {
                        b.description = note;
                    }
                })
                .map(|_| ()),
            RecordKind::Hazard => store.edit(id, now, |r| records::hazard_step(r, &u.id, now, &note)).map(|_| ()),
            RecordKind::Visit => {
                let follow = self.rng.gen_bool(0.5);
                store
                    .edit(id, now, |r| {
                        if let RecordBody::Visit(b) = &mut r.body {
                            b.findings = note;
                            b.follow_up_needed = follow;
                        }
                    })
                    .map(|_| ())
            }
            RecordKind::Household => {
                let address = self.rng.gen_bool(0.3);
                store
                    .edit(id, now, |r| {
                        if let RecordBody::Household(b) = &mut r.body {
                            if address {
                                b.address = format!("两当县{note}");
                            } else {
                                b.notes = note;
                            }
                        }
                    })
                    .map(|_| ())
            }
            RecordKind::Dispute if fields => store
                .edit(id, now, |r| {
                    if let RecordBody::Dispute(b) = &mut r.body {
                        b.summary = format!("两户因承包地地界发生争执（{note}）");
                    }
                })
                .map(|_| ()),
            RecordKind::Dispute => {
                let level = rec.level.unwrap_or(DisputeLevel::Village);
                let action = match u.role {
                    Role::VillageLeader if level == DisputeLevel::Village => match self.rng.gen_range(0..4) {
                        0 => DisputeAction::Classified {
                            category: [DisputeCategory::Land, DisputeCategory::Neighbour, DisputeCategory::Debt]
                                [self.rng.gen_range(0..3)],
                            note,
                        },
                        1 => DisputeAction::PlanSet { plan: note, team: vec!["村调委会".into()] },
                        2 => DisputeAction::Escalated { to: DisputeLevel::Township, note },
                        _ => DisputeAction::FollowUp { note },
                    },
                    Role::GridManager if self.rng.gen_bool(0.2) => DisputeAction::Found { note },
                    _ => DisputeAction::FollowUp { note },
                };
                store.edit(id, now, |r| records::dispute_act(r, &u.id, now, action)).map(|_| ())
            }
            // The simulation creates only the five field kinds above.
            _ => return,
        };
        self.stats.count(done);
    }

    fn fault(&mut self) -> Fault {
        match self.rng.gen_range(0..100) {
            0..50 => Fault::None,
            50..62 => Fault::LoseRequest,
            62..76 => Fault::LoseReply,
            76..88 => Fault::Duplicate,
            _ => Fault::Late,
        }
    }

    fn serve(&mut self, p: usize, body: &[u8]) -> Vec<u8> {
        let node = self.nodes[self.rng.gen_range(0..self.nodes.len())].clone();
        serve(node.as_ref(), &self.metrics, &self.phones[p].auth, body, &mut self.refusals)
    }

    /// A request of an abandoned attempt reaches the server; nobody is
    /// listening for the reply.
    fn deliver_late(&mut self) {
        let (p, body) = self.late.swap_remove(self.rng.gen_range(0..self.late.len()));
        let _ = self.serve(p, &body);
        self.stats.late += 1;
    }

    /// One sync session through the faulty network: each request is tried
    /// up to a few times, then the session is abandoned (to be run again
    /// later, as the app does).
    fn sync_faulty(&mut self, p: usize) {
        self.stats.sync_rounds += 1;
        let mut session = SyncSession::new(CURSOR, self.phones[p].opts.clone());
        while let Some(req) = session.next_request(&mut self.phones[p].store).unwrap() {
            let attempts = self.rng.gen_range(1..=3);
            let mut reply = None;
            for _ in 0..attempts {
                match self.fault() {
                    Fault::None => {
                        reply = Some(self.serve(p, &req.body));
                        break;
                    }
                    Fault::LoseRequest => self.stats.lost_requests += 1,
                    Fault::LoseReply => {
                        let _ = self.serve(p, &req.body);
                        self.stats.lost_replies += 1;
                    }
                    Fault::Duplicate => {
                        let first = self.serve(p, &req.body);
                        let second = self.serve(p, &req.body);
                        self.stats.duplicates += 1;
                        reply = Some(if self.rng.gen_bool(0.5) { first } else { second });
                        break;
                    }
                    Fault::Late => self.late.push((p, req.body.clone())),
                }
            }
            let Some(body) = reply else {
                self.stats.abandoned_rounds += 1;
                return;
            };
            // The user keeps working while the phone syncs in the background.
            match self.rng.gen_range(0..100) {
                0..5 => self.create(p),
                5..15 => self.edit(p),
                _ => {}
            }
            session.handle_response(&mut self.phones[p].store, &req, &body).unwrap();
        }
    }

    /// One complete session over a perfect network.
    fn sync_perfect(&mut self, p: usize) -> SyncReport {
        let mut session = SyncSession::new(CURSOR, self.phones[p].opts.clone());
        while let Some(req) = session.next_request(&mut self.phones[p].store).unwrap() {
            let body = self.serve(p, &req.body);
            session.handle_response(&mut self.phones[p].store, &req, &body).unwrap();
        }
        session.finish()
    }

    /// Land every late request, then sync every phone until a whole pass
    /// moves nothing.
    fn heal(&mut self) -> Result<(), String> {
        while !self.late.is_empty() {
            self.deliver_late();
        }
        for _ in 0..MAX_HEAL_PASSES {
            self.stats.heal_passes += 1;
            let mut quiet = true;
            for p in 0..self.phones.len() {
                let r = self.sync_perfect(p);
                if !r.rejected.is_empty() {
                    return Err(format!("phone {p} had records rejected while healing: {:?}", r.rejected));
                }
                if r.changes_sent > 0 || r.changes_received > 0 {
                    quiet = false;
                }
            }
            if quiet {
                return Ok(());
            }
        }
        Err(format!("not quiescent after {MAX_HEAL_PASSES} healing passes"))
    }

    /// Every change on the server, by record, read through the feed.
    fn server_changes(&self) -> Result<BTreeMap<Uuid, BTreeSet<[u8; 32]>>, String> {
        let everything = ReadScope { node: Some(GridPath::county()), sensitive: true };
        let mut cursor = Cursor::default();
        let mut out: BTreeMap<Uuid, BTreeSet<[u8; 32]>> = BTreeMap::new();
        let mut n = 0u64;
        loop {
            let page = self.nodes[0].read_feed(cursor, &everything, "", 1 << 30).unwrap();
            for (doc, bytes) in &page.changes {
                let hash = gridsync_core::doc::parse_change(bytes).unwrap().hash().0;
                if !out.entry(*doc).or_default().insert(hash) {
                    return Err(format!("record {doc}: change {} stored twice", hex(&hash)));
                }
                n += 1;
            }
            cursor = page.next;
            if !page.more {
                break;
            }
        }
        let count = self.nodes[0].change_count().unwrap();
        if count != n {
            return Err(format!("server counts {count} changes but its feed holds {n}"));
        }
        Ok(out)
    }

    fn check(&mut self) -> Result<(), String> {
        if !self.refusals.is_empty() {
            return Err(format!("the server refused changes: {:?}", self.refusals));
        }
        let server = self.server_changes()?;
        let views: BTreeMap<Uuid, serde_json::Value> = self.nodes[0]
            .records(&ViewQuery { sensitive: true, limit: Some(100_000), ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|v| (v.id, v.json))
            .collect();
        let mut union: BTreeMap<Uuid, BTreeSet<[u8; 32]>> = BTreeMap::new();
        for (p, phone) in self.phones.iter().enumerate() {
            let who = format!("phone {p} ({})", phone.user().id);
            let outbox = phone.store.outbox_len().unwrap();
            if outbox != 0 {
                return Err(format!("{who}: {outbox} changes still in the outbox"));
            }
            let list = phone
                .store
                .list(&ListFilter { include_deleted: true, limit: Some(10_000), ..Default::default() })
                .unwrap();
            for s in &list {
                if let Some(r) = &s.rejection {
                    return Err(format!("{who}: record {} ({}) rejected: {r:?}", s.id, s.kind.as_str()));
                }
            }
            // Exactly the records of the phone's scope.
            let scope = phone.user().scope();
            let held: BTreeSet<Uuid> = list.iter().map(|s| s.id).collect();
            let expected: BTreeSet<Uuid> = self.nodes[0]
                .records(&ViewQuery {
                    under: Some(scope.clone()),
                    sensitive: true,
                    limit: Some(100_000),
                    ..Default::default()
                })
                .unwrap()
                .into_iter()
                .map(|v| v.id)
                .collect();
            if held != expected {
                return Err(format!(
                    "{who}: holds {} records, the server has {} in {scope}; missing {:?}, extra {:?}",
                    held.len(),
                    expected.len(),
                    expected.difference(&held).collect::<Vec<_>>(),
                    held.difference(&expected).collect::<Vec<_>>()
                ));
            }
            for id in &held {
                let mut doc = phone.store.load_doc(*id).unwrap();
                let hashes: BTreeSet<[u8; 32]> = doc.changes_since(&[]).iter().map(|c| c.hash().0).collect();
                let stored = server.get(id).cloned().unwrap_or_default();
                if hashes != stored {
                    return Err(format!(
                        "{who}: record {id} has {} changes, the server {} ({} only on the phone, {} only on the server)",
                        hashes.len(),
                        stored.len(),
                        hashes.difference(&stored).count(),
                        stored.difference(&hashes).count()
                    ));
                }
                union.entry(*id).or_default().extend(hashes);
                let json = doc.to_json().unwrap();
                let view = views.get(id).ok_or_else(|| format!("record {id} not on the server"))?;
                if json != *view {
                    return Err(format!("{who}: record {id} differs from the server:\nphone:  {json}\nserver: {view}"));
                }
            }
        }
        if union != server {
            return Err(format!(
                "the phones' changes ({} records) differ from the server's ({} records)",
                union.len(),
                server.len()
            ));
        }
        let n: usize = union.values().map(BTreeSet::len).sum();
        if n as u64 != self.nodes[0].change_count().unwrap() {
            return Err(format!(
                "phones hold {n} distinct changes, the server {}",
                self.nodes[0].change_count().unwrap()
            ));
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run_seed(seed: u64) -> Result<Stats, String> {
    let store = SqliteServerStore::in_memory().unwrap();
    store.migrate().unwrap();
    Sim::new(seed, vec![Arc::new(store)]).run()
}

/// Seeds of the two-node scenario (each builds a PostgreSQL schema).
const POSTGRES_SEEDS: u64 = 20;

/// The same phones with two server nodes on one PostgreSQL database, each
/// delivery (and each late one) reaching either node: after healing,
/// everything agrees and nothing is stored twice, although the nodes
/// commit into one feed in an order sequence numbers do not give.
#[test]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
fn two_nodes_on_one_postgres_converge_for_every_seed() {
    let n: u64 =
        std::env::var("GRIDSYNC_SIM_POSTGRES_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(POSTGRES_SEEDS);
    let started = Instant::now();
    for seed in 0..n {
        let gridsync_tests::server::Db::Postgres(url) = gridsync_tests::server::postgres_db() else { unreachable!() };
        let a = gridsync_server::store::postgres::PostgresServerStore::connect(&url).unwrap();
        a.migrate().unwrap();
        let b = gridsync_server::store::postgres::PostgresServerStore::connect(&url).unwrap();
        let nodes: Vec<Arc<dyn ServerStore>> = vec![Arc::new(a), Arc::new(b)];
        if let Err(why) = Sim::new(seed, nodes).run() {
            panic!("seed {seed}: {why}");
        }
    }
    eprintln!("simulation on two PostgreSQL nodes: {n} seeds in {:.1?}", started.elapsed());
}
