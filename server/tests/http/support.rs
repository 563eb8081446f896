//! Shared helpers of the HTTP tests: an app mounted without sockets over a
//! fresh SQLite store, enrollment, sync calls and record builders.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::grid::{GridPath, Role};
use gridsync_core::model::{
    Dispute, DisputeAction, DisputeCategory, Hazard, HazardAction, HazardCategory, Household, Location, Patrol,
    PatrolSlot, Record, RecordBody, Visit, VisitTarget, next_event,
};
use gridsync_core::protocol::{self, DocChanges, EnrollResponse, SyncRequest, SyncResponse};
use gridsync_core::signing::DeviceKey;
use gridsync_server::clock::Clock;
use gridsync_server::metrics::Metrics;
use gridsync_server::store::prelude::*;
use gridsync_server::store::sqlite::SqliteServerStore;
use gridsync_server::store::{DocDecision, IncomingDoc, MergedDoc, User};
use gridsync_server::{AppState, Limits, auth};
use uuid::Uuid;

/// Milliseconds used as "now" for records (the server does not check clocks).
pub const T0: i64 = 1_700_000_000_000;

/// Run `f` on a thread of its own: PostgreSQL's client blocks on a runtime
/// of its own, which cannot start on the test's runtime thread.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: body is not JSON ({e}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// The `error` code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// The body as a sync response (panics unless 200 and decodable).
    pub fn sync(&self) -> SyncResponse {
        assert_eq!(self.status, StatusCode::OK, "sync failed: {:?}", String::from_utf8_lossy(&self.body));
        protocol::decode(&self.body).unwrap()
    }

    /// Whatever the input, the server answers sensibly: a decodable sync
    /// response on 200, a JSON error body on 4xx, never 5xx.
    pub fn assert_sane(&self, what: &str) {
        match self.status.as_u16() {
            200 => {
                protocol::decode::<SyncResponse>(&self.body)
                    .unwrap_or_else(|e| panic!("{what}: 200 with an undecodable body: {e}"));
            }
            400 | 413 => {
                let v = self.json();
                assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{what}: error body without code: {v}");
                assert!(v["message_zh"].as_str().is_some_and(|s| !s.is_empty()), "{what}: no Chinese message: {v}");
            }
            s => panic!("{what}: unexpected status {s}: {:?}", String::from_utf8_lossy(&self.body)),
        }
    }
}

type Call = Box<dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Resp>>>>;

/// The server app over a fresh store, called in-process.
#[allow(dead_code)]
pub struct Server {
    pub store: Arc<dyn ServerStore>,
    pub metrics: Arc<Metrics>,
    /// The server's clock (fixed; tests move it where time decides an outcome).
    pub clock: Clock,
    call: Call,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// An app over a fresh in-memory store.
    pub async fn in_memory(limits: Limits) -> Server {
        let store = SqliteServerStore::in_memory().unwrap();
        store.migrate().unwrap();
        Self::mount(Arc::new(store), limits, None).await
    }

    /// An app over a fresh SQLite file in a temporary directory (readers on
    /// their own connections, as in production).
    pub async fn on_disk(limits: Limits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteServerStore::open(dir.path().join("server.sqlite3")).unwrap();
        store.migrate().unwrap();
        Self::mount(Arc::new(store), limits, Some(dir)).await
    }

    /// An app over a fresh schema of the PostgreSQL database at
    /// `GRIDSYNC_TEST_POSTGRES_URL`; `None` without it.
    pub async fn on_postgres(limits: Limits) -> Option<Server> {
        let store = off_runtime(|| {
            let url = gridsync_server::store::postgres::test_database_url()?;
            let store = gridsync_server::store::postgres::PostgresServerStore::connect(&url).unwrap();
            store.migrate().unwrap();
            Some(store)
        })?;
        Some(Self::mount(Arc::new(store), limits, None).await)
    }

    async fn mount(store: Arc<dyn ServerStore>, limits: Limits, dir: Option<tempfile::TempDir>) -> Server {
        let clock = Clock::fixed(now_ms());
        let mut state = AppState::with_limits(store.clone(), limits);
        state.clock = clock.clone();
        let metrics = state.metrics.clone();
        let app = Rc::new(
            test::init_service(App::new().app_data(web::Data::new(state)).configure(gridsync_server::routes)).await,
        );
        let call: Call = Box::new(move |req: TestRequest| {
            let app = app.clone();
            Box::pin(async move {
                let res = test::call_service(&*app, req.to_request()).await;
                let status = res.status();
                let content_type = res
                    .headers()
                    .get(actix_web::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = test::read_body(res).await.to_vec();
                Resp { status, content_type, body }
            })
        });
        Server { store, metrics, clock, call, _dir: dir }
    }

    /// Send any request.
    pub async fn send(&self, req: TestRequest) -> Resp {
        (self.call)(req).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(TestRequest::get().uri(path)).await
    }

    /// `POST /v1/enroll` with a raw body.
    pub async fn enroll_raw(&self, body: impl Into<Vec<u8>>) -> Resp {
        let body: Vec<u8> = body.into();
        self.send(
            TestRequest::post().uri("/v1/enroll").insert_header(("content-type", "application/json")).set_payload(body),
        )
        .await
    }

    /// `POST /v1/enroll` with a code and device name, as a client from
    /// before actor ids were registered (no `actor`), with the signing key
    /// [`test_key`] of the code.
    pub async fn enroll(&self, code: &str, device_name: &str) -> Resp {
        let body =
            serde_json::json!({ "code": code, "device_name": device_name, "public_key": test_key(code).public_hex() });
        self.enroll_raw(body.to_string()).await
    }

    /// `POST /v1/enroll` registering the device's actor id and key.
    pub async fn enroll_as(&self, code: &str, device_name: &str, actor: &ActorId) -> Resp {
        let body = serde_json::json!({
            "code": code,
            "device_name": device_name,
            "actor": actor.to_hex_string(),
            "public_key": test_key(code).public_hex(),
        });
        self.enroll_raw(body.to_string()).await
    }

    /// Issue a one-time code for `user_id`, valid for an hour.
    pub fn issue_code(&self, user_id: &str) -> String {
        let code = auth::new_enrollment_code();
        self.store
            .create_enrollment(&auth::hash_secret(&auth::normalize_code(&code)), user_id, now_ms() + 3_600_000)
            .unwrap();
        code
    }

    /// Add a user and enroll one device for them; returns its token.
    pub async fn device_for(&self, user: &User) -> Device {
        if self.store.user(&user.id).unwrap().is_none() {
            self.store.add_user(user).unwrap();
        }
        let code = self.issue_code(&user.id);
        let actor = ActorId::random();
        let r = self.enroll_as(&code, "测试手机", &actor).await;
        assert_eq!(r.status, StatusCode::OK, "enroll {}: {:?}", user.id, r.json());
        let e: EnrollResponse = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(e.user_id, user.id);
        Device { token: e.token, device_id: e.device_id, user: user.clone(), actor, key: test_key(&code).secret() }
    }

    /// `POST /v1/sync` with a raw body.
    pub async fn sync_raw(&self, token: &str, body: impl Into<Vec<u8>>) -> Resp {
        let body: Vec<u8> = body.into();
        self.send(
            TestRequest::post()
                .uri("/v1/sync")
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("content-type", protocol::CONTENT_TYPE))
                .set_payload(body),
        )
        .await
    }

    /// One sync round; panics unless it is answered 200.
    pub async fn sync(&self, dev: &Device, req: &SyncRequest) -> SyncResponse {
        self.sync_raw(&dev.token, protocol::encode(req).unwrap()).await.sync()
    }

    /// Push records' changes (no pull of interest).
    pub async fn push(&self, dev: &Device, docs: Vec<DocChanges>) -> SyncResponse {
        self.sync(dev, &dev.request(vec![], docs, 0)).await
    }

    /// Pull the whole feed from the start, following `more`; returns the
    /// number of changes received per record.
    pub async fn pull_all(&self, dev: &Device) -> BTreeMap<Uuid, usize> {
        let mut cursor = vec![];
        let mut got = BTreeMap::new();
        for _ in 0..1000 {
            let resp = self.sync(dev, &dev.request(cursor.clone(), vec![], 16 * 1024)).await;
            for d in &resp.changes {
                *got.entry(Uuid::from_bytes(d.doc)).or_insert(0) += d.changes.len();
            }
            cursor = resp.next_cursor;
            if !resp.more {
                return got;
            }
        }
        panic!("feed never ended for {}", dev.user.id);
    }

    /// The stored record's materialized JSON, if any.
    pub fn record_json(&self, id: Uuid) -> Option<serde_json::Value> {
        self.store.record(id).unwrap().map(|v| v.json)
    }

    /// Put many records straight into the store, bypassing access rules,
    /// a few hundred to a transaction (histories of any shape, concurrent
    /// steps included, as phones would have merged them).
    pub fn seed_many(&self, recs: &[Record]) {
        let store = self.store.clone();
        off_runtime(move || seed_many_into(store.as_ref(), recs));
    }

    /// A dashboard session for `user_id`: the cookie header to send.
    pub fn web_session(&self, user_id: &str) -> String {
        let token = auth::new_token();
        let session = gridsync_server::store::WebSession {
            token_hash: auth::hash_secret(&token),
            user_id: user_id.to_owned(),
            csrf: auth::new_token(),
            created_at: 0,
            expires_at: i64::MAX,
        };
        let store = self.store.clone();
        off_runtime(move || store.create_web_session(&session)).unwrap();
        format!("gs_session={token}")
    }

    /// Put a record straight into the store, bypassing access rules (data
    /// that no role could push, e.g. a sensitive record at township level).
    pub fn seed_directly(&self, rec: &Record) {
        seed_many_into(self.store.as_ref(), std::slice::from_ref(rec));
    }
}

/// An enrolled device.
#[derive(Debug, Clone)]
pub struct Device {
    pub token: String,
    pub device_id: String,
    pub user: User,
    /// Its registered Automerge actor id.
    pub actor: ActorId,
    /// Its signing key's secret.
    pub key: [u8; 32],
}

/// The signing key a test phone enrolling with `code` registers.
pub fn test_key(code: &str) -> DeviceKey {
    let mut secret = [7u8; 32];
    for (s, b) in secret.iter_mut().zip(code.bytes()) {
        *s ^= b;
    }
    DeviceKey::from_secret(&secret)
}

/// A sync request of `docs` signed by device `device_id` with `key`.
pub fn signed_request(
    key: &DeviceKey,
    device_id: &str,
    cursor: Vec<u8>,
    docs: Vec<DocChanges>,
    page: u32,
) -> SyncRequest {
    let signature = protocol::sign_docs(key, &Uuid::parse_str(device_id).unwrap(), &docs);
    SyncRequest { cursor, docs, max_response_bytes: page, signature }
}

impl Device {
    /// A sync request of `docs`, signed by this phone.
    pub fn request(&self, cursor: Vec<u8>, docs: Vec<DocChanges>, page: u32) -> SyncRequest {
        signed_request(&DeviceKey::from_secret(&self.key), &self.device_id, cursor, docs, page)
    }

    /// A record as a new document written on this phone, and its changes.
    pub fn doc(&self, rec: &Record) -> (RecordDoc, DocChanges) {
        let mut doc = RecordDoc::create(rec, self.actor.clone()).unwrap();
        let changes = wire(rec.id, &doc.changes_since(&[]));
        (doc, changes)
    }

    /// `doc` (a copy of a record's document) as this phone writes it.
    pub fn fork(&self, doc: &mut RecordDoc) -> RecordDoc {
        doc.fork_as(self.actor.clone())
    }
}

/// Wall clock, ms.
pub fn now_ms() -> i64 {
    gridsync_server::clock::now_ms()
}

pub fn grid(s: &str) -> GridPath {
    GridPath::parse(s).unwrap()
}

pub fn user(id: &str, role: Role, g: &str) -> User {
    User { id: id.into(), display_name: format!("用户{id}"), role, grid: grid(g) }
}

pub fn patrol(g: &str, author: &str) -> Record {
    Record::new(
        grid(g),
        author,
        T0,
        RecordBody::Patrol(Patrol {
            slot: PatrolSlot::Morning,
            started_at: T0,
            ended_at: None,
            route: vec![],
            findings: "一切正常".into(),
            hazard_ids: BTreeMap::new(),
        }),
    )
}

pub fn household(g: &str, author: &str) -> Record {
    Record::new(
        grid(g),
        author,
        T0,
        RecordBody::Household(Household {
            head_name: "王建国".into(),
            address: "两当县城关镇张家村一组".into(),
            ten_household_group: String::new(),
            members: BTreeMap::new(),
            machinery: BTreeMap::new(),
            vehicles: BTreeMap::new(),
            facilities: BTreeMap::new(),
            notes: String::new(),
        }),
    )
}

pub fn key_person_visit(g: &str, author: &str) -> Record {
    Record::new(
        grid(g),
        author,
        T0,
        RecordBody::Visit(Visit {
            target: VisitTarget::KeyPerson,
            subject: "李某（社区矫正人员）".into(),
            household_id: None,
            visited_at: T0,
            findings: "情绪稳定".into(),
            follow_up_needed: false,
        }),
    )
}

/// A dispute found by `author` (its history starts with a `found` event).
pub fn dispute(g: &str, author: &str) -> Record {
    let found = next_event(&[], author, T0, DisputeAction::Found { note: "巡查中发现".into() });
    Record::new(
        grid(g),
        author,
        T0,
        RecordBody::Dispute(Dispute {
            parties: vec!["张三".into(), "李四".into()],
            category: DisputeCategory::Land,
            summary: "两户因地界发生争执".into(),
            found_at: T0,
            events: vec![found],
        }),
    )
}

pub fn hazard(g: &str, author: &str) -> Record {
    let reported = next_event(&[], author, T0, HazardAction::Reported { note: "巡查发现".into() });
    Record::new(
        grid(g),
        author,
        T0,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Fire,
            location: Location { text: "村委会旁".into(), gps: None },
            description: "电线老化".into(),
            events: vec![reported],
        }),
    )
}

/// A record as a new document under a random actor id (a phone enrolled
/// without one, or a forgery), and all its changes as sent.
pub fn new_doc(rec: &Record) -> (RecordDoc, DocChanges) {
    let mut doc = RecordDoc::create(rec, ActorId::random()).unwrap();
    let changes = wire(rec.id, &doc.changes_since(&[]));
    (doc, changes)
}

/// Changes of one record as they go on the wire.
pub fn wire(id: Uuid, changes: &[automerge::Change]) -> DocChanges {
    DocChanges { doc: *id.as_bytes(), changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect() }
}

/// Hashes of wire changes, as the server acknowledges them.
pub fn hashes(d: &DocChanges) -> Vec<[u8; 32]> {
    d.changes.iter().map(|c| automerge::Change::from_bytes(c.clone()).unwrap().hash().0).collect()
}

/// The acked hashes per record of a response, given the request it
/// answers (an empty hash list acknowledges every change sent for the record).
pub fn acked(resp: &SyncResponse) -> HashMap<Uuid, Vec<[u8; 32]>> {
    resp.acked.iter().map(|a| (Uuid::from_bytes(a.doc), a.hashes.clone())).collect()
}

/// Whether the response acknowledges exactly the changes `sent` for `id`.
pub fn acks_all(resp: &SyncResponse, id: Uuid, sent: &[[u8; 32]]) -> bool {
    resp.acked.iter().any(|a| Uuid::from_bytes(a.doc) == id && (a.hashes.is_empty() || a.hashes == sent))
}

/// A sync request in the uncompressed wire form (compression byte 0),
/// postcard written by hand so that truncations and bit flips reach the
/// body decoder and the change parser rather than the inflater.
pub fn uncompressed(req: &SyncRequest) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut out = b"GS\x00\x02\x00".to_vec();
    bytes(&mut out, &req.cursor);
    varint(&mut out, req.docs.len() as u64);
    for d in &req.docs {
        out.extend_from_slice(&d.doc);
        varint(&mut out, d.changes.len() as u64);
        for c in &d.changes {
            bytes(&mut out, c);
        }
    }
    varint(&mut out, u64::from(req.max_response_bytes));
    out.extend_from_slice(&req.signature.0);
    out
}

/// A deterministic pseudo-random byte stream (xorshift), for garbage.
pub struct Noise(pub u64);

impl Noise {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Merge `recs` as stored (see [`Server::seed_many`]).
fn seed_many_into(store: &dyn ServerStore, recs: &[Record]) {
    for chunk in recs.chunks(256) {
        let mut merged = Vec::with_capacity(chunk.len());
        let mut incoming = Vec::with_capacity(chunk.len());
        for rec in chunk {
            let mut doc = RecordDoc::create(rec, ActorId::random()).unwrap();
            let changes = doc.changes_since(&[]);
            merged.push(MergedDoc {
                new_changes: changes.iter().map(|c| (c.hash().0, c.raw_bytes().to_vec())).collect(),
                batch: None,
                snapshot: doc.save(),
                index: rec.index(),
                json: rec.to_json().to_string(),
                author: rec.author.clone(),
                created_at: rec.created_at,
                updated_at: rec.updated_at,
                history_turns_sensitive: false,
                attachments: vec![],
            });
            incoming.push(IncomingDoc::unsigned(rec.id, changes.iter().map(|c| c.raw_bytes().to_vec()).collect()));
        }
        let d = store
            .merge_batch("seed-directly", None, &incoming, &mut |i, _, _| {
                DocDecision::Accept(Box::new(merged[i].clone()))
            })
            .unwrap();
        assert!(d.iter().all(|d| matches!(d, DocDecision::Accept(_))));
    }
}
