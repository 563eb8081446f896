//! HTTP-level tests of the sync server: the app is mounted in-process with
//! `actix_web::test` (no sockets) over a fresh SQLite store, and driven with
//! real protocol messages and Automerge changes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::support::*;
use actix_web::http::StatusCode;
use gridsync_core::grid::Role;
use gridsync_core::model::{DisputeAction, DisputeCategory, DisputeLevel, Record, RecordBody, next_event};
use gridsync_core::protocol::{self, DocChanges, RejectReason, SyncRequest};
use gridsync_server::Limits;
use gridsync_server::store::User;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// 1. Access matrix
// ---------------------------------------------------------------------------

/// Record kinds of the matrix: one ordinary (a hazard, which every role
/// but agency staff may report), two sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hazard,
    Household,
    KeyPersonVisit,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Hazard, Kind::Household, Kind::KeyPersonVisit];

    fn sensitive(self) -> bool {
        self != Kind::Hazard
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Hazard => "hazard",
            Kind::Household => "household",
            Kind::KeyPersonVisit => "visit(key_person)",
        }
    }

    fn record(self, grid: &str, author: &str) -> Record {
        match self {
            Kind::Hazard => hazard(grid, author),
            Kind::Household => household(grid, author),
            Kind::KeyPersonVisit => key_person_visit(grid, author),
        }
    }
}

/// Grids a record may belong to, around the matrix users' home t01/v01/g1.
const GRIDS: [&str; 7] = ["t01/v01/g1", "t01/v01/g2", "t01/v01", "t01", "", "t01/v02/g1", "t02/v01/g1"];

/// The users of the matrix: one per role, all around t01/v01/g1.
fn matrix_users() -> Vec<User> {
    vec![
        user("m-gm", Role::GridManager, "t01/v01/g1"),
        user("m-vl", Role::VillageLeader, "t01/v01"),
        user("m-sv", Role::Supervisor, "t01/v01"),
        user("m-tc", Role::TownshipChief, "t01"),
        user("m-county", Role::CountyStaff, ""),
        user("m-agency", Role::AgencyStaff, ""),
    ]
}

/// The node a role works on, written from the design brief (not from the
/// server's code): grid manager their group, village leader and supervisor
/// their village, township chief their township, county staff everything,
/// agency staff nothing.
fn brief_scope(u: &User) -> Option<String> {
    let g = u.grid.to_string();
    let take = |n: usize| g.split('/').filter(|s| !s.is_empty()).take(n).collect::<Vec<_>>().join("/");
    match u.role {
        Role::GridManager => Some(take(3)),
        Role::VillageLeader | Role::Supervisor => Some(take(2)),
        Role::TownshipChief => Some(take(1)),
        Role::CountyStaff => Some(String::new()),
        Role::AgencyStaff => None,
    }
}

fn path_contains(node: &str, grid: &str) -> bool {
    node.is_empty() || grid == node || grid.starts_with(&format!("{node}/"))
}

/// What the brief says about `u` and a record at `grid`: `Ok` if they may
/// read and write it, else the reason a push is refused.
fn brief_rule(u: &User, grid: &str, sensitive: bool) -> Result<(), RejectReason> {
    let Some(scope) = brief_scope(u) else { return Err(RejectReason::Forbidden) };
    if !path_contains(&scope, grid) {
        return Err(RejectReason::OutOfScope);
    }
    if sensitive && !matches!(u.role, Role::GridManager | Role::VillageLeader | Role::Supervisor) {
        return Err(RejectReason::Forbidden);
    }
    Ok(())
}

/// How a record's grid relates to the user's node, for the failure table.
fn relation(u: &User, grid: &str) -> &'static str {
    let Some(scope) = brief_scope(u) else { return "any (no scope)" };
    let depth = |s: &str| s.split('/').filter(|p| !p.is_empty()).count();
    let parent = |s: &str| s.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap_or_default();
    if grid == scope {
        "own"
    } else if path_contains(&scope, grid) {
        "below own"
    } else if path_contains(grid, &scope) {
        "parent level"
    } else if depth(grid) == depth(&scope) && parent(grid) == parent(&scope) {
        "sibling"
    } else if grid.split('/').next() == scope.split('/').next() {
        "other village"
    } else {
        "other township"
    }
}

fn outcome_label(r: Result<(), RejectReason>) -> String {
    match r {
        Ok(()) => "ack".into(),
        Err(reason) => reason.as_str().into(),
    }
}

struct Cell {
    role: Role,
    grid: &'static str,
    relation: &'static str,
    kind: Kind,
    op: &'static str,
    expected: String,
    actual: String,
}

impl Cell {
    fn ok(&self) -> bool {
        self.expected == self.actual
    }
}

/// A compact table: one row per role × operation × kind, one column per
/// grid; a wrong cell shows `expected≠actual` and is listed below in words.
fn render(cells: &[Cell]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<42}", "role / op / kind");
    for g in GRIDS {
        let _ = write!(out, "| {:<20}", if g.is_empty() { "(county)" } else { g });
    }
    out.push('\n');
    let mut rows: Vec<(Role, &str, Kind)> = vec![];
    for c in cells {
        if !rows.contains(&(c.role, c.op, c.kind)) {
            rows.push((c.role, c.op, c.kind));
        }
    }
    for (role, op, kind) in rows {
        let _ = write!(out, "{:<42}", format!("{} / {op} / {}", role.as_str(), kind.label()));
        for g in GRIDS {
            let c = cells.iter().find(|c| c.role == role && c.op == op && c.kind == kind && c.grid == g);
            let s = match c {
                Some(c) if c.ok() => c.actual.clone(),
                Some(c) => format!("!{}≠{}", c.expected, c.actual),
                None => "?".into(),
            };
            let _ = write!(out, "| {s:<20}");
        }
        out.push('\n');
    }
    for c in cells.iter().filter(|c| !c.ok()) {
        let _ = writeln!(
            out,
            "FAILING: {} {} a {} record at '{}' ({}): expected {}, got {}",
            c.role.as_str(),
            c.op,
            c.kind.label(),
            c.grid,
            c.relation,
            c.expected,
            c.actual
        );
    }
    out
}

/// Each role can push and pull exactly the records of its own part of the
/// county, and only grid managers, village leaders and supervisors ever see
/// or change household ledgers and key-person visits.
#[actix_web::test]
async fn access_matrix_push_and_pull_by_role_grid_and_kind() {
    let srv = Server::on_disk(Limits::default()).await;
    let users = matrix_users();
    let mut devices = vec![];
    for u in &users {
        devices.push(srv.device_for(u).await);
    }
    let mut cells = vec![];
    // What is on the server, for checking every record a device receives.
    let mut registry: HashMap<Uuid, (&'static str, bool)> = HashMap::new();

    // Push: each user pushes, in one request, a record of every kind at
    // every grid, authored by themself.
    for dev in &devices {
        let mut docs = vec![];
        let mut planned = vec![];
        for g in GRIDS {
            for k in Kind::ALL {
                let rec = k.record(g, &dev.user.id);
                let (_, changes) = dev.doc(&rec);
                planned.push((rec.id, g, k, hashes(&changes)));
                docs.push(changes);
            }
        }
        let resp = srv.push(dev, docs).await;
        let acks = acked(&resp);
        let rejections: HashMap<Uuid, _> = resp.rejected.iter().map(|r| (Uuid::from_bytes(r.doc), r)).collect();
        for (id, g, k, sent) in planned {
            let actual = match (acks.get(&id), rejections.get(&id)) {
                (Some(h), None) if h.is_empty() || *h == sent => "ack".to_owned(),
                (Some(_), None) => "ack(wrong hashes)".to_owned(),
                (None, Some(r)) if r.hashes == sent => r.reason.as_str().to_owned(),
                (None, Some(r)) => format!("{}(wrong hashes)", r.reason.as_str()),
                (None, None) => "no answer".to_owned(),
                (Some(_), Some(_)) => "acked and rejected".to_owned(),
            };
            if actual == "ack" {
                registry.insert(id, (g, k.sensitive()));
            }
            let stored = srv.record_json(id).is_some();
            let actual = if stored != (actual == "ack") { format!("{actual}(stored={stored})") } else { actual };
            cells.push(Cell {
                role: dev.user.role,
                grid: g,
                relation: relation(&dev.user, g),
                kind: k,
                op: "push",
                expected: outcome_label(brief_rule(&dev.user, g, k.sensitive())),
                actual,
            });
        }
    }

    // Pull: records written at every grid by someone allowed to write them
    // there; where no role may (sensitive records above village level), the
    // record is put straight into the store.
    let mut seeded: Vec<(Uuid, &'static str, Kind)> = vec![];
    let mut writers: BTreeMap<String, Device> = BTreeMap::new();
    for g in GRIDS {
        for k in Kind::ALL {
            let depth = g.split('/').filter(|p| !p.is_empty()).count();
            let writer = match (depth, k.sensitive()) {
                (3, _) => Some(user(&format!("seed-gm-{}", g.replace('/', "-")), Role::GridManager, g)),
                (2, _) => Some(user(&format!("seed-vl-{}", g.replace('/', "-")), Role::VillageLeader, g)),
                (1, false) => Some(user(&format!("seed-tc-{g}"), Role::TownshipChief, g)),
                (0, false) => Some(user("seed-county", Role::CountyStaff, "")),
                _ => None,
            };
            let rec = match &writer {
                Some(w) => {
                    if !writers.contains_key(&w.id) {
                        let d = srv.device_for(w).await;
                        writers.insert(w.id.clone(), d);
                    }
                    let dev = &writers[&w.id];
                    let rec = k.record(g, &w.id);
                    let (_, changes) = dev.doc(&rec);
                    let resp = srv.push(dev, vec![changes]).await;
                    assert!(
                        resp.rejected.is_empty(),
                        "seeding {} at '{g}' as {}: {:?}",
                        k.label(),
                        w.id,
                        resp.rejected
                    );
                    rec
                }
                None => {
                    let rec = k.record(g, "seed-admin");
                    srv.seed_directly(&rec);
                    rec
                }
            };
            registry.insert(rec.id, (g, k.sensitive()));
            seeded.push((rec.id, g, k));
        }
    }

    let mut leaks = vec![];
    for dev in &devices {
        let got = srv.pull_all(dev).await;
        for (id, g, k) in &seeded {
            let expected = if brief_rule(&dev.user, g, k.sensitive()).is_ok() { "recv" } else { "-" };
            let actual = match got.get(id) {
                Some(1) => "recv".to_owned(),
                Some(n) => format!("recv×{n}"),
                None => "-".to_owned(),
            };
            cells.push(Cell {
                role: dev.user.role,
                grid: g,
                relation: relation(&dev.user, g),
                kind: *k,
                op: "pull",
                expected: expected.into(),
                actual,
            });
        }
        // Nothing else may reach the device either (other users' pushes).
        for id in got.keys() {
            match registry.get(id) {
                Some((g, sensitive)) if brief_rule(&dev.user, g, *sensitive).is_ok() => {}
                other => leaks.push(format!("{} received record {id} at {other:?}", dev.user.id)),
            }
        }
    }

    let failing = cells.iter().filter(|c| !c.ok()).count();
    assert!(failing == 0 && leaks.is_empty(), "{failing} wrong cells\n{}\n{}", render(&cells), leaks.join("\n"));
    assert_eq!(cells.len(), 6 * GRIDS.len() * Kind::ALL.len() * 2);
}

// ---------------------------------------------------------------------------
// 2. Dispute actions by level
// ---------------------------------------------------------------------------

/// A dispute as the test knows the server holds it.
struct Tracked {
    id: Uuid,
    truth: gridsync_core::doc::RecordDoc,
    at: i64,
}

impl Tracked {
    async fn create(srv: &Server, dev: &Device, grid: &str) -> Tracked {
        let rec = dispute(grid, &dev.user.id);
        let (truth, changes) = dev.doc(&rec);
        let resp = srv.push(dev, vec![changes.clone()]).await;
        assert!(acks_all(&resp, rec.id, &hashes(&changes)), "dispute not stored: {:?}", resp.rejected);
        Tracked { id: rec.id, truth, at: T0 }
    }

    /// `dev`'s phone appends `action` to the history it last synced and
    /// pushes it; checks the server's answer and the stored record.
    async fn act(&mut self, srv: &Server, dev: &Device, action: DisputeAction, allowed: bool) {
        let what = format!("{} recording {} on a {} dispute", dev.user.role.as_str(), action.name(), self.level(srv));
        self.at += 60_000;
        let heads = self.truth.heads();
        let mut phone = dev.fork(&mut self.truth);
        let mut rec = phone.record().unwrap();
        let RecordBody::Dispute(d) = &mut rec.body else { panic!("not a dispute") };
        let event = next_event(&d.events, &dev.user.id, self.at, action);
        let event_id = event.id.clone();
        d.events.push(event);
        rec.updated_at = self.at;
        assert!(phone.update(&rec).unwrap());
        let sent = phone.changes_since(&heads);
        let changes = wire(self.id, &sent);
        let before = srv.record_json(self.id).unwrap();
        let resp = srv.push(dev, vec![changes.clone()]).await;
        let after = srv.record_json(self.id).unwrap();
        if allowed {
            assert!(resp.rejected.is_empty(), "{what}: refused: {:?}", resp.rejected);
            assert!(acks_all(&resp, self.id, &hashes(&changes)), "{what}: not acked");
            let events = after["data"]["events"].as_array().unwrap();
            assert!(events.iter().any(|e| e["id"] == event_id.as_str()), "{what}: event not on the server");
            self.truth.apply(sent).unwrap();
        } else {
            assert!(resp.acked.is_empty(), "{what}: acked");
            assert_eq!(resp.rejected.len(), 1, "{what}");
            let r = &resp.rejected[0];
            assert_eq!(
                (r.reason, r.hashes.clone()),
                (RejectReason::Forbidden, hashes(&changes)),
                "{what}: {}",
                r.detail
            );
            assert!(!r.detail.is_empty());
            assert_eq!(after, before, "{what}: the stored record changed");
        }
    }

    fn level(&self, srv: &Server) -> String {
        srv.store.record(self.id).unwrap().unwrap().level.unwrap_or_default()
    }

    fn status(&self, srv: &Server) -> String {
        srv.store.record(self.id).unwrap().unwrap().status
    }
}

fn note(s: &str) -> String {
    s.to_owned()
}

/// A grid manager can record and resolve a dispute in the village but not
/// classify or escalate it; each level escalates only to the next one, and
/// a refused step leaves the dispute on the server as it was.
#[actix_web::test]
async fn dispute_actions_follow_the_handling_level() {
    let srv = Server::in_memory(Limits::default()).await;
    let gm = srv.device_for(&user("gm-1", Role::GridManager, "t01/v01/g1")).await;
    let vl = srv.device_for(&user("vl-1", Role::VillageLeader, "t01/v01")).await;
    let tc = srv.device_for(&user("tc-1", Role::TownshipChief, "t01")).await;

    // A dispute the grid manager handles on the spot.
    let mut d1 = Tracked::create(&srv, &gm, "t01/v01/g1").await;
    assert_eq!((d1.level(&srv).as_str(), d1.status(&srv).as_str()), ("village", "registered"));
    d1.act(&srv, &gm, DisputeAction::FollowUp { note: note("双方同意周五调解") }, true).await;
    d1.act(&srv, &gm, DisputeAction::Found { note: note("又发现一处界桩被移动") }, true).await;
    d1.act(&srv, &gm, DisputeAction::Classified { category: DisputeCategory::Neighbour, note: String::new() }, false)
        .await;
    d1.act(&srv, &gm, DisputeAction::PlanSet { plan: note("组织调解"), team: vec![] }, false).await;
    d1.act(&srv, &gm, DisputeAction::Escalated { to: DisputeLevel::Township, note: note("调解不成") }, false).await;
    assert_eq!(d1.status(&srv), "in_progress");
    d1.act(&srv, &gm, DisputeAction::Resolved { note: note("就地调解成功") }, true).await;
    assert_eq!((d1.level(&srv).as_str(), d1.status(&srv).as_str()), ("village", "resolved"));

    // A dispute that goes up level by level.
    let mut d2 = Tracked::create(&srv, &gm, "t01/v01/g1").await;
    d2.act(&srv, &tc, DisputeAction::Classified { category: DisputeCategory::Land, note: String::new() }, false).await;
    d2.act(&srv, &tc, DisputeAction::Escalated { to: DisputeLevel::County, note: String::new() }, false).await;
    d2.act(&srv, &vl, DisputeAction::Classified { category: DisputeCategory::Land, note: note("周例会甄别") }, true)
        .await;
    d2.act(&srv, &vl, DisputeAction::Escalated { to: DisputeLevel::County, note: note("越级上报") }, false).await;
    d2.act(&srv, &vl, DisputeAction::Escalated { to: DisputeLevel::Township, note: note("村级无法化解") }, true).await;
    assert_eq!((d2.level(&srv).as_str(), d2.status(&srv).as_str()), ("township", "escalated"));
    d2.act(&srv, &vl, DisputeAction::Escalated { to: DisputeLevel::County, note: note("再报县里") }, false).await;
    d2.act(&srv, &vl, DisputeAction::Resolved { note: note("村里说已经好了") }, false).await;
    d2.act(&srv, &gm, DisputeAction::Resolved { note: note("组里调解") }, false).await;
    d2.act(&srv, &gm, DisputeAction::FollowUp { note: note("当事人情绪稳定") }, true).await;
    d2.act(&srv, &tc, DisputeAction::PlanSet { plan: note("司法所介入"), team: vec![note("司法所")] }, true).await;
    d2.act(&srv, &tc, DisputeAction::Escalated { to: DisputeLevel::County, note: note("涉及林权") }, true).await;
    assert_eq!((d2.level(&srv).as_str(), d2.status(&srv).as_str()), ("county", "escalated"));
    d2.act(&srv, &tc, DisputeAction::Resolved { note: note("乡镇调解") }, false).await;
    d2.act(&srv, &gm, DisputeAction::FollowUp { note: note("县里已受理") }, true).await;
    assert_eq!(d2.level(&srv), "county");
}

// ---------------------------------------------------------------------------
// 3. Enrollment and device tokens
// ---------------------------------------------------------------------------

/// A one-time code enrolls one phone once, typos in the request are
/// explained, and a revoked phone is refused and told to wipe its data.
#[actix_web::test]
async fn enrollment_codes_tokens_and_revocation() {
    let srv = Server::in_memory(Limits::default()).await;
    let u = user("gm-e", Role::GridManager, "t01/v01/g1");
    srv.store.add_user(&u).unwrap();

    // Malformed JSON, missing fields.
    for body in ["", "{", "not json", r#"{"code": "ABCD-EFGH-JKMN"}"#, r#"{"code": 5, "device_name": "x"}"#] {
        let r = srv.enroll_raw(body).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_body".into()), "{body:?}");
    }

    // A bad device name is refused before the code is used, so the code
    // still works afterwards.
    let code = srv.issue_code(&u.id);
    for name in ["", "   ", &"手".repeat(101)] {
        let r = srv.enroll(&code, name).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert_eq!(r.error_code(), "invalid_device_name");
    }
    // A code of the wrong shape.
    let r = srv.enroll("ABC", "华为畅享").await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code".into()));

    let r = srv.enroll(&code, "华为畅享").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let e: protocol::EnrollResponse = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((e.user_id.as_str(), e.role.as_str(), e.grid.as_str()), ("gm-e", "grid_manager", "t01/v01/g1"));
    assert_eq!(e.token.len(), 64);

    // Second use of the same code.
    let r = srv.enroll(&code, "另一部手机").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_code");

    // The code as typed by hand: lower case, spaces instead of dashes.
    let typed = srv.issue_code(&u.id).to_lowercase().replace('-', " ");
    let r2 = srv.enroll(&typed, "备用手机").await;
    assert_eq!(r2.status, StatusCode::OK, "{:?}", r2.json());
    let e2: protocol::EnrollResponse = serde_json::from_slice(&r2.body).unwrap();
    assert_ne!(e2.token, e.token);
    assert_ne!(e2.device_id, e.device_id);

    // An expired code.
    let old = auth_code_expired(&srv, &u.id);
    let r = srv.enroll(&old, "旧手机").await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "invalid_code".into()));

    // The token syncs.
    let rec = patrol("t01/v01/g1", &u.id);
    let (_, changes) = new_doc(&rec);
    let req = signed_request(&test_key(&code), &e.device_id, vec![], vec![changes.clone()], 0);
    let body = protocol::encode(&req).unwrap();
    let resp = srv.sync_raw(&e.token, body.clone()).await.sync();
    assert!(acks_all(&resp, rec.id, &hashes(&changes)));

    // No token, a malformed header, an unknown token.
    let no_header = srv.send(actix_web::test::TestRequest::post().uri("/v1/sync").set_payload(body.clone())).await;
    assert_eq!((no_header.status, no_header.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    let basic = srv
        .send(
            actix_web::test::TestRequest::post()
                .uri("/v1/sync")
                .insert_header(("authorization", format!("Basic {}", e.token)))
                .set_payload(body.clone()),
        )
        .await;
    assert_eq!((basic.status, basic.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    for bad in [auth_new_token(), "x".repeat(500), e.token.to_uppercase()] {
        let r = srv.sync_raw(&bad, body.clone()).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized".into()), "{bad}");
        assert_eq!(r.json()["wipe"], false);
    }

    // Revoked: refused, told to wipe; its pushes are not stored; the other
    // phone of the same user keeps working.
    let count = srv.store.change_count().unwrap();
    assert!(srv.store.revoke_device(&e.device_id, now_ms()).unwrap());
    let rec2 = patrol("t01/v01/g1", &u.id);
    let (_, changes2) = new_doc(&rec2);
    let body2 = protocol::encode(&signed_request(&test_key(&code), &e.device_id, vec![], vec![changes2], 0)).unwrap();
    let r = srv.sync_raw(&e.token, body2).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let j = r.json();
    assert_eq!((j["error"].as_str(), j["wipe"].as_bool()), (Some("device_revoked"), Some(true)), "{j}");
    assert!(j["message_zh"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(srv.store.change_count().unwrap(), count);
    assert!(srv.record_json(rec2.id).is_none());
    let r = srv.sync_raw(&e2.token, protocol::encode(&SyncRequest::default()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
}

fn auth_code_expired(srv: &Server, user_id: &str) -> String {
    let code = gridsync_server::auth::new_enrollment_code();
    let hash = gridsync_server::auth::hash_secret(&gridsync_server::auth::normalize_code(&code));
    srv.store.create_enrollment(&hash, user_id, srv.clock.now() - 1).unwrap();
    code
}

fn auth_new_token() -> String {
    gridsync_server::auth::new_token()
}

// ---------------------------------------------------------------------------
// 4. Hostile and broken input
// ---------------------------------------------------------------------------

/// Whatever a broken or hostile phone sends, the server answers with a clear
/// error or a per-record rejection, never crashes, and never changes a
/// stored record.
#[actix_web::test]
async fn bad_input_never_panics_and_never_corrupts() {
    let limits = Limits { max_body_bytes: 64 * 1024, max_changes: 8, ..Limits::default() };
    let srv = Server::in_memory(limits).await;
    let gm = srv.device_for(&user("gm-b", Role::GridManager, "t01/v01/g1")).await;

    // A stored record with two changes (created, then finished).
    let mut rec = patrol("t01/v01/g1", &gm.user.id);
    let (mut doc, _) = gm.doc(&rec);
    if let RecordBody::Patrol(p) = &mut rec.body {
        p.ended_at = Some(T0 + 3_600_000);
        p.findings = "发现一处危房，已上报".into();
    }
    rec.updated_at = T0 + 3_600_000;
    assert!(doc.update(&rec).unwrap());
    let stored = wire(rec.id, &doc.changes_since(&[]));
    assert_eq!(stored.changes.len(), 2);
    let resp = srv.push(&gm, vec![stored.clone()]).await;
    assert!(acks_all(&resp, rec.id, &hashes(&stored)));
    let json_before = srv.record_json(rec.id).unwrap();
    let count_before = srv.store.change_count().unwrap();
    assert_eq!(count_before, 2);

    let valid_req = gm.request(vec![], vec![stored.clone()], 0);
    let valid = protocol::encode(&valid_req).unwrap();
    let raw = uncompressed(&valid_req);
    assert_eq!(protocol::decode::<SyncRequest>(&raw).unwrap(), valid_req, "hand-written wire form is wrong");
    for body in [&valid, &raw] {
        let r = srv.sync_raw(&gm.token, body.clone()).await.sync();
        assert!(acks_all(&r, rec.id, &hashes(&stored)), "resending is acked");
    }

    let expect = |r: &Resp, status: StatusCode, code: &str, what: &str| {
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{what}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        r.assert_sane(what);
    };
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);

    // Empty body, garbage, a valid header over garbage, a cut-off body.
    expect(&srv.sync_raw(&gm.token, vec![]).await, StatusCode::BAD_REQUEST, "malformed_body", "empty body");
    for n in [1, 4, 5, 100, 4096] {
        let mut g = noise.bytes(n);
        g[0] = b'X';
        expect(&srv.sync_raw(&gm.token, g).await, StatusCode::BAD_REQUEST, "malformed_body", "garbage");
    }
    for compression in [0u8, 1, 2, 255] {
        let mut g = vec![b'G', b'S', 0, 1, compression];
        g.extend(noise.bytes(300));
        srv.sync_raw(&gm.token, g).await.assert_sane("header over garbage");
    }
    expect(
        &srv.sync_raw(&gm.token, valid[..valid.len() / 2].to_vec()).await,
        StatusCode::BAD_REQUEST,
        "malformed_body",
        "valid header, truncated body",
    );

    // Every truncation and a bit flip at every byte, compressed and not.
    for (form, body) in [("deflate", &valid), ("uncompressed", &raw)] {
        for cut in 0..body.len() {
            srv.sync_raw(&gm.token, body[..cut].to_vec()).await.assert_sane(&format!("{form} cut at {cut}"));
        }
        for i in 0..body.len() {
            let mut b = body.clone();
            b[i] ^= 1 << (i % 8);
            srv.sync_raw(&gm.token, b).await.assert_sane(&format!("{form} bit flip at byte {i}"));
        }
        let mut b = body.clone();
        b.push(0);
        srv.sync_raw(&gm.token, b).await.assert_sane(&format!("{form} with a trailing byte"));
    }

    // An unknown protocol version.
    let mut v99 = valid.clone();
    v99[2..4].copy_from_slice(&99u16.to_be_bytes());
    let r = srv.sync_raw(&gm.token, v99).await;
    expect(&r, StatusCode::BAD_REQUEST, "unsupported_protocol_version", "version 99");
    assert_eq!(r.json()["supported_versions"], serde_json::json!([2]));

    // A compression bomb: small on the wire, more than the decoder accepts
    // once inflated.
    let bomb = protocol::encode(&gm.request(
        vec![],
        vec![DocChanges { doc: *rec.id.as_bytes(), changes: vec![vec![0u8; protocol::MAX_DECODED_BYTES + 1024]] }],
        0,
    ))
    .unwrap();
    assert!(bomb.len() < 64 * 1024, "the bomb must pass the body limit to reach the decoder ({} bytes)", bomb.len());
    expect(&srv.sync_raw(&gm.token, bomb).await, StatusCode::BAD_REQUEST, "malformed_body", "compression bomb");

    // A body over the limit.
    let mut big = valid[..5].to_vec();
    big.extend(noise.bytes(64 * 1024));
    expect(&srv.sync_raw(&gm.token, big).await, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "body over limit");

    // Too many changes.
    let many = gm.request(
        vec![],
        vec![DocChanges { doc: *rec.id.as_bytes(), changes: vec![stored.changes[0].clone(); 9] }],
        0,
    );
    let r = srv.sync_raw(&gm.token, protocol::encode(&many).unwrap()).await;
    expect(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_many_changes", "9 changes with max_changes 8");

    // A bad cursor: the request is refused as a whole, even its good records.
    let other = patrol("t01/v01/g1", &gm.user.id);
    let (_, other_changes) = gm.doc(&other);
    for cursor in [vec![0u8; 5], vec![0u8; 15], vec![0u8; 17]] {
        let req = gm.request(cursor, vec![other_changes.clone()], 0);
        let r = srv.sync_raw(&gm.token, protocol::encode(&req).unwrap()).await;
        expect(&r, StatusCode::BAD_REQUEST, "bad_cursor", "bad cursor");
    }
    assert!(srv.record_json(other.id).is_none(), "a refused request stored a record");

    // Broken changes inside a valid envelope: that record is refused, the
    // other record of the same request is stored.
    let fresh = household("t01/v01/g1", &gm.user.id);
    let (_, fresh_changes) = gm.doc(&fresh);
    let req = gm.request(
        vec![],
        vec![DocChanges { doc: *rec.id.as_bytes(), changes: vec![noise.bytes(200)] }, fresh_changes.clone()],
        0,
    );
    let r = srv.sync_raw(&gm.token, protocol::encode(&req).unwrap()).await.sync();
    assert_eq!(r.rejected.len(), 1, "{:?}", r.rejected);
    assert_eq!((Uuid::from_bytes(r.rejected[0].doc), r.rejected[0].reason), (rec.id, RejectReason::Malformed));
    assert!(acks_all(&r, fresh.id, &hashes(&fresh_changes)));
    assert!(!acked(&r).contains_key(&rec.id));

    // More broken records, each must be refused without touching the stored one:
    let mut cut_change = stored.changes[1].clone();
    cut_change.truncate(cut_change.len() - 3);
    let mut flipped_change = stored.changes[1].clone();
    let mid = flipped_change.len() / 2;
    flipped_change[mid] ^= 0x10;
    let (_, foreign) = gm.doc(&patrol("t01/v01/g1", &gm.user.id));
    let broken: Vec<(&str, Vec<Vec<u8>>, RejectReason)> = vec![
        (
            "a good change followed by garbage",
            vec![stored.changes[0].clone(), noise.bytes(64)],
            RejectReason::Malformed,
        ),
        ("a truncated change", vec![cut_change], RejectReason::Malformed),
        ("a change with a flipped byte", vec![flipped_change], RejectReason::Malformed),
        ("an empty change", vec![vec![]], RejectReason::Malformed),
        // Valid Automerge, but a second history: whether it merged used to
        // depend on which random actor id sorted higher.
        ("another record's history under this id", foreign.changes.clone(), RejectReason::Immutable),
    ];
    for (what, changes, reason) in broken {
        // A change the server already holds is acknowledged again; only the
        // broken one is refused.
        let known: Vec<[u8; 32]> = hashes(&stored)
            .into_iter()
            .filter(|h| {
                changes.iter().any(|c| automerge::Change::from_bytes(c.clone()).is_ok_and(|c| c.hash().0 == *h))
            })
            .collect();
        let req = gm.request(vec![], vec![DocChanges { doc: *rec.id.as_bytes(), changes }], 0);
        let r = srv.sync_raw(&gm.token, protocol::encode(&req).unwrap()).await.sync();
        assert_eq!(acked(&r).get(&rec.id).cloned().unwrap_or_default(), known, "{what}: acked");
        assert_eq!(r.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(), [reason], "{what}");
        assert_eq!(srv.record_json(rec.id).unwrap(), json_before, "{what}: stored record changed");
        assert_eq!(
            srv.store.change_count().unwrap(),
            count_before + fresh_changes.changes.len() as u64,
            "{what}: a change was stored"
        );
    }
    // A change whose dependency the server lacks, for a record it lacks.
    let ghost = patrol("t01/v01/g1", &gm.user.id);
    let (mut gdoc, _) = gm.doc(&ghost);
    let h0 = gdoc.heads();
    let mut ghost2 = ghost.clone();
    ghost2.updated_at += 1;
    if let RecordBody::Patrol(p) = &mut ghost2.body {
        p.findings = "补充".into();
    }
    assert!(gdoc.update(&ghost2).unwrap());
    let only_second = wire(ghost.id, &gdoc.changes_since(&h0));
    let r = srv.push(&gm, vec![only_second]).await;
    assert_eq!(r.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(), [RejectReason::MissingDependencies]);
    assert!(srv.record_json(ghost.id).is_none());

    // A new record whose history has two creations.
    // The first is kept, the second refused: each change is judged on its own.
    let twin = patrol("t01/v01/g1", &gm.user.id);
    let (_, mut twin_changes) = gm.doc(&twin);
    let mut other_twin = patrol("t01/v01/g1", &gm.user.id);
    other_twin.id = twin.id;
    if let RecordBody::Patrol(p) = &mut other_twin.body {
        p.findings = "另一份".into();
    }
    twin_changes.changes.extend(gm.doc(&other_twin).1.changes);
    let r = srv.push(&gm, vec![twin_changes.clone()]).await;
    assert_eq!(r.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(), [RejectReason::Immutable]);
    assert_eq!(r.rejected[0].hashes, hashes(&twin_changes)[1..]);
    assert_eq!(acked(&r)[&twin.id], hashes(&twin_changes)[..1]);
    assert_eq!(srv.record_json(twin.id).unwrap()["data"]["findings"], "一切正常");

    // Afterwards: the stored record is as it was, only the legitimate
    // records were added (and the twin's first creation), and the server is healthy and still syncs.
    assert_eq!(srv.record_json(rec.id).unwrap(), json_before);
    assert_eq!(srv.store.change_count().unwrap(), count_before + fresh_changes.changes.len() as u64 + 1);
    let h = srv.get("/healthz").await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["status"], "ok");
    let r = srv.sync_raw(&gm.token, valid).await.sync();
    assert!(acks_all(&r, rec.id, &hashes(&stored)));
}

// ---------------------------------------------------------------------------
// 5. Idempotence
// ---------------------------------------------------------------------------

/// A phone that resends the same sync after a lost answer gets the same
/// acknowledgement every time, and the server keeps one copy of each change.
#[actix_web::test]
async fn resending_a_sync_stores_each_change_once() {
    let srv = Server::in_memory(Limits::default()).await;
    let gm = srv.device_for(&user("gm-i", Role::GridManager, "t01/v01/g1")).await;
    let mut rec = household("t01/v01/g1", &gm.user.id);
    let (mut doc, _) = gm.doc(&rec);
    if let RecordBody::Household(h) = &mut rec.body {
        h.notes = "低保户".into();
    }
    rec.updated_at += 1000;
    assert!(doc.update(&rec).unwrap());
    let a = wire(rec.id, &doc.changes_since(&[]));
    let (_, b) = gm.doc(&patrol("t01/v01/g1", &gm.user.id));
    let n = (a.changes.len() + b.changes.len()) as u64;
    assert_eq!(n, 3);
    let body = protocol::encode(&gm.request(vec![], vec![a.clone(), b.clone()], 0)).unwrap();

    for round in 1..=3 {
        let r = srv.sync_raw(&gm.token, body.clone()).await.sync();
        assert!(r.rejected.is_empty(), "round {round}: {:?}", r.rejected);
        let acks = acked(&r);
        assert_eq!(acks.len(), 2, "round {round}");
        assert!(acks_all(&r, Uuid::from_bytes(a.doc), &hashes(&a)), "round {round}");
        assert!(acks_all(&r, Uuid::from_bytes(b.doc), &hashes(&b)), "round {round}");
        assert!(r.changes.is_empty(), "round {round}: the phone's own changes came back");
        assert_eq!(srv.store.change_count().unwrap(), n, "round {round}");
    }
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(srv.metrics.changes_stored.load(Relaxed), n);
    assert_eq!(srv.metrics.changes_duplicate.load(Relaxed), 2 * n);
    let dev = srv.store.devices().unwrap().into_iter().find(|d| d.id == gm.device_id).unwrap();
    assert!(dev.last_sync_at.is_some(), "the sync was not recorded on the device");
    let rec_json = srv.record_json(rec.id).unwrap();
    assert_eq!(rec_json["data"]["notes"], "低保户");
}

// ---------------------------------------------------------------------------
// 6. Metrics and unknown paths
// ---------------------------------------------------------------------------

/// Operators can scrape sync counters from `/metrics`, and a wrong address
/// gets a JSON "not found" rather than an HTML page.
#[actix_web::test]
async fn metrics_and_unknown_paths() {
    let srv = Server::in_memory(Limits::default()).await;
    let gm = srv.device_for(&user("gm-m", Role::GridManager, "t01/v01/g1")).await;
    srv.push(&gm, vec![]).await;
    let r = srv.sync_raw(&gm.token, vec![1, 2, 3]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let m = srv.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.content_type.starts_with("text/plain"), "{}", m.content_type);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("# TYPE gridsync_sync_requests_total counter"), "{text}");
    assert!(text.lines().any(|l| l == "gridsync_sync_requests_total 1"), "{text}");
    assert!(text.lines().any(|l| l == "gridsync_sync_refused_total 1"), "{text}");
    assert!(text.lines().any(|l| l == "gridsync_enrollments_total 1"), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.split_once(' ').unwrap();
        assert!(name.starts_with("gridsync_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // `/` is the web dashboard's sign-in page (docs/dashboard.md).
    let home = srv.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.content_type.starts_with("text/html"), "{}", home.content_type);
    for path in ["/v2/sync", "/v1/sync/extra", "/healthz/x", "/%E4%B8%AD", "/web/x/y/z"] {
        let r = srv.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.content_type.starts_with("application/json"), "{path}: {}", r.content_type);
        assert_eq!(r.json()["error"], "not_found", "{path}");
    }
}

/// A device enrolled before devices had keys: its changes are refused
/// (`bad_signature`) until it registers a key, once; the answer carries
/// the server's relay key; another key later is refused. A carried bundle
/// the server cannot open is refused with its reason.
#[actix_web::test]
async fn device_keys_are_registered_once_and_relay_bundles_are_checked() {
    let srv = Server::in_memory(Limits::default()).await;
    let u = user("gm-k", Role::GridManager, "t01/v01/g1");
    srv.store.add_user(&u).unwrap();
    let code = srv.issue_code(&u.id);
    let r = srv.enroll_raw(serde_json::json!({ "code": code, "device_name": "旧版应用" }).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    let e: protocol::EnrollResponse = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e.server_key.len(), 64, "the relay key comes with the enrollment");
    let key = test_key("late key");
    let post_key = |token: String, body: String| {
        srv.send(
            actix_web::test::TestRequest::post()
                .uri("/v1/device-key")
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("content-type", "application/json"))
                .set_payload(body),
        )
    };

    let rec = patrol("t01/v01/g1", &u.id);
    let (_, changes) = new_doc(&rec);
    let body = protocol::encode(&signed_request(&key, &e.device_id, vec![], vec![changes.clone()], 0)).unwrap();
    let resp = srv.sync_raw(&e.token, body.clone()).await.sync();
    assert_eq!(resp.rejected.len(), 1);
    assert_eq!(resp.rejected[0].reason, RejectReason::BadSignature);
    assert!(resp.rejected[0].detail.contains("密钥尚未登记"), "{}", resp.rejected[0].detail);
    assert!(srv.record_json(rec.id).is_none());

    for (body, status, code) in [
        ("{}".to_owned(), StatusCode::BAD_REQUEST, "malformed_body"),
        (r#"{"public_key": "zz"}"#.to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_public_key"),
        (format!(r#"{{"public_key": "{}"}}"#, "00".repeat(32)), StatusCode::UNPROCESSABLE_ENTITY, "invalid_public_key"),
    ] {
        let r = post_key(e.token.clone(), body.clone()).await;
        assert_eq!((r.status, r.error_code()), (status, code.to_owned()), "{body}");
    }
    let r = post_key("no-such-token".into(), format!(r#"{{"public_key": "{}"}}"#, key.public_hex())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A key is 64 hex digits: a body past 4 KiB is refused before it is read.
    let padded = format!(r#"{{"public_key": "{}", "pad": "{}"}}"#, key.public_hex(), "x".repeat(4 * 1024));
    let r = post_key(e.token.clone(), padded).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()));
    for _ in 0..2 {
        let r = post_key(e.token.clone(), format!(r#"{{"public_key": "{}"}}"#, key.public_hex())).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
        assert_eq!(r.json()["server_key"], e.server_key.as_str());
    }
    let other = test_key("another key");
    let r = post_key(e.token.clone(), format!(r#"{{"public_key": "{}"}}"#, other.public_hex())).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "key_already_registered".into()));

    let resp = srv.sync_raw(&e.token, body).await.sync();
    assert!(resp.rejected.is_empty(), "{:?}", resp.rejected);
    assert!(acks_all(&resp, rec.id, &hashes(&changes)));

    // Relay: bytes that are not sealed to this server.
    let relay = |token: &str, body: Vec<u8>| {
        srv.send(
            actix_web::test::TestRequest::post()
                .uri("/v1/relay")
                .insert_header(("authorization", format!("Bearer {token}")))
                .set_payload(body),
        )
    };
    let other_server = gridsync_core::signing::ServerKey::generate().unwrap();
    let sealed_elsewhere = gridsync_core::signing::seal_to_server(&other_server.public(), b"anything").unwrap();
    for body in [b"garbage".to_vec(), sealed_elsewhere] {
        let r = relay(&e.token, body).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "relay_unreadable".into()));
    }
    // Sealed to this server, but naming a device it does not know.
    let bundle = protocol::Bundle {
        device_id: uuid::Uuid::new_v4().to_string(),
        user_id: "nobody".into(),
        created_at: 0,
        cursor: vec![],
        docs: vec![],
        signature: Default::default(),
    };
    let server_key = gridsync_core::signing::from_hex(&e.server_key).unwrap();
    let sealed = gridsync_core::signing::seal_to_server(&server_key, &bundle.encode().unwrap()).unwrap();
    let r = relay(&e.token, sealed.clone()).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_signer".into()));
    let r = relay("no-such-token", sealed).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A bundle is at most 8 MiB; a larger body is refused before it is read.
    let r = relay(&e.token, vec![0; protocol::MAX_RELAY_BYTES + 2048]).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()));
}
