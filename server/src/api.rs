//! HTTP API: `POST /v1/enroll`, `POST /v1/sync`, `POST /v1/problems`, `GET /healthz`, `GET /metrics`.
//!
//! Every refusal is JSON ([`ErrorBody`]) with a machine-readable `error`
//! code and a Chinese message. Storage work runs on actix's blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use gridsync_core::protocol::{
    self, CONTENT_TYPE, DecodeError, DecodeLimits, DeviceKeyRequest, DeviceKeyResponse, EnrollRequest, EnrollResponse,
    ErrorBody, MAX_DECODED_BYTES, ProblemReport, SUPPORTED_VERSIONS, SyncRequest,
};
use uuid::Uuid;

use crate::auth;
use crate::metrics::Metrics;
use crate::store::{Cursor, Device, DeviceAuth, KeyRegistered, ProblemNoted, Redeemed, ServerStore, StoreError};
use crate::sync::process_signed_sync;

/// Limits on what one request may carry and take. Each is checked before
/// the work it bounds; `docs/operations.md` lists them with their flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes (compressed, as sent).
    pub max_body_bytes: usize,
    /// Most changes in one sync request.
    pub max_changes: usize,
    /// Largest response page the server will build, bytes of changes.
    pub max_page_bytes: u32,
    /// Memory for request bodies in flight (as sent, and inflated), bytes,
    /// over all requests: beyond it the server answers 503 with Retry-After.
    pub max_inflight_bytes: usize,
    /// Sync requests judged and merged at once; the rest wait their turn
    /// (their bodies already held of the in-flight budget). More than the
    /// cores only adds threads that wait for the same cores.
    pub merge_concurrency: usize,
    /// Longest wait for the next piece of a request body.
    pub body_idle: Duration,
    /// After `body_grace`, a body must keep arriving at this average rate
    /// (bytes per second), or the request ends with 408.
    pub body_min_rate: u64,
    /// Time a body may take before the average rate applies.
    pub body_grace: Duration,
    /// Enrollment attempts per client address.
    pub enroll_rate: crate::ratelimit::Rate,
    /// Dashboard sign-in attempts per client address.
    pub sign_in_rate: crate::ratelimit::Rate,
    /// Problem reports (`POST /v1/problems`) per device.
    pub problem_rate: crate::ratelimit::Rate,
    /// Header carrying the client address, set by a reverse proxy in front
    /// (`X-Real-IP`); without it, the TCP peer's address.
    pub client_ip_header: Option<String>,
    /// The directory of the SQLite database, whose free space /healthz checks.
    pub data_dir: Option<std::path::PathBuf>,
    /// Free space below which /healthz answers 503 `disk_full`, bytes.
    pub min_free_disk_bytes: u64,
    /// Tile source of the dashboard's map (`--map-tiles`); `None` draws
    /// the map over a latitude and longitude grid with no outside host.
    pub map_tiles: Option<crate::web_map::TileSource>,
    /// What one user's photo uploads may hold on the server.
    pub photo_quota: crate::store::PhotoQuota,
    /// What relayed bundles one device may bring per hour, as carrier and
    /// as signer.
    pub relay_quota: crate::ratelimit::RelayQuota,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_changes: 20_000,
            max_page_bytes: 1024 * 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
            merge_concurrency: default_merge_concurrency(false),
            body_idle: Duration::from_secs(15),
            body_min_rate: 512,
            body_grace: Duration::from_secs(20),
            enroll_rate: crate::ratelimit::Rate { burst: 60, per_minute: 60 },
            sign_in_rate: crate::ratelimit::Rate { burst: 20, per_minute: 20 },
            problem_rate: crate::ratelimit::Rate { burst: 10, per_minute: 6 },
            client_ip_header: None,
            data_dir: None,
            min_free_disk_bytes: 64 * 1024 * 1024,
            map_tiles: None,
            photo_quota: crate::store::PhotoQuota::default(),
            relay_quota: crate::ratelimit::RelayQuota::default(),
        }
    }
}

/// Sync requests merged at once unless `--merge-concurrency` says.
///
/// On SQLite, as many as one group commit takes: a turn lasts until the
/// request's changes are committed, so fewer turns leave the cores idle
/// while a group waits for its commit (measured: 4 turns merge 3,000
/// changes a second, 64 turns 3,600 to 3,900).
///
/// On PostgreSQL, 8 per node: each turn holds a database connection and a
/// transaction for its round trips, and more of them only queue in the
/// database (measured on one node: 2 turns 920 changes a second, 4 and 8
/// turns 1,320 to 1,370, 16 turns 970, 64 turns 760). Two nodes at 8 hold
/// 16 of PostgreSQL's default 100 connections.
///
/// Each waiting turn is a request body already held of the in-flight
/// budget.
pub fn default_merge_concurrency(postgres: bool) -> usize {
    if postgres { 8 } else { crate::store::sqlite::GROUP_MAX_MEMBERS }
}

/// The memory budget for request bodies in flight, shared by all workers.
#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    used: AtomicUsize,
}

impl InFlight {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<InFlight> {
        Arc::new(InFlight { limit, used: AtomicUsize::new(0) })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| u.checked_add(n).filter(|&t| t <= self.limit))
            .is_ok()
    }
}

/// Bytes one request holds of the budget, given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<InFlight>,
    bytes: usize,
}

impl Held {
    /// Nothing held yet.
    pub fn new(budget: &Arc<InFlight>) -> Held {
        Held { budget: Arc::clone(budget), bytes: 0 }
    }

    /// Hold `total` bytes in all (more than now): false if the budget is spent.
    pub fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        if self.budget.take(total - self.bytes) {
            self.bytes = total;
            true
        } else {
            false
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// When the health probe last ran, and its failure code if it failed.
pub type HealthProbe = (Instant, Option<String>);

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn ServerStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Limits,
    /// The server's clock.
    pub clock: crate::clock::Clock,
    /// Memory budget for bodies in flight.
    pub inflight: Arc<InFlight>,
    /// The last health probe: when, and its failure code if it failed.
    pub health: Arc<std::sync::Mutex<Option<HealthProbe>>>,
    /// Enrollment attempts by address.
    pub enroll_limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Sign-in attempts by address.
    pub sign_in_limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Problem reports by device id.
    pub problem_limiter: Arc<crate::ratelimit::RateLimiter<String>>,
    /// Photo bytes.
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    /// The deployment's relay key, read from the database on first use.
    pub relay_key: Arc<std::sync::OnceLock<Arc<gridsync_core::signing::ServerKey>>>,
    /// Turns to judge and merge a sync request ([`Limits::merge_concurrency`]).
    pub merges: Arc<tokio::sync::Semaphore>,
    /// Relay budgets by carrier and by signer ([`Limits::relay_quota`]).
    pub relay_budget: Arc<crate::ratelimit::RelayBudget>,
}

impl AppState {
    /// State over `store` with default limits, the system clock and fresh counters.
    pub fn new(store: Arc<dyn ServerStore>) -> AppState {
        AppState::with_limits(store, Limits::default())
    }

    /// State over `store` with `limits`.
    pub fn with_limits(store: Arc<dyn ServerStore>, limits: Limits) -> AppState {
        let inflight = InFlight::new(limits.max_inflight_bytes);
        AppState {
            merges: Arc::new(tokio::sync::Semaphore::new(limits.merge_concurrency.max(1))),
            blobs: store.blob_store(),
            store,
            metrics: Arc::default(),
            clock: crate::clock::Clock::system(),
            inflight,
            health: Arc::default(),
            enroll_limiter: Arc::new(crate::ratelimit::RateLimiter::new(limits.enroll_rate)),
            sign_in_limiter: Arc::new(crate::ratelimit::RateLimiter::new(limits.sign_in_rate)),
            problem_limiter: Arc::new(crate::ratelimit::RateLimiter::new(limits.problem_rate)),
            relay_budget: Arc::new(crate::ratelimit::RelayBudget::new(limits.relay_quota)),
            limits,
            relay_key: Arc::default(),
        }
    }

    /// The relay key, loaded (or made, by the first node) on first use.
    pub(crate) async fn relay_key(&self) -> Result<Arc<gridsync_core::signing::ServerKey>, HttpResponse> {
        if let Some(k) = self.relay_key.get() {
            return Ok(k.clone());
        }
        let (store, now) = (self.store.clone(), self.clock.now());
        match web::block(move || crate::signatures::relay_key(store.as_ref(), now)).await {
            Ok(Ok(k)) => Ok(self.relay_key.get_or_init(|| k).clone()),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(blocking_error()),
        }
    }
}

/// The machine-readable code of an error response, kept in the response's
/// extensions so the error counter can label 5xx answers by reason.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

pub(crate) fn error(status: StatusCode, code: &str, message_zh: &str) -> HttpResponse {
    let mut r = HttpResponse::build(status).json(ErrorBody {
        error: code.to_owned(),
        message_zh: message_zh.to_owned(),
        wipe: false,
        supported_versions: vec![],
    });
    r.extensions_mut().insert(ErrorCode(code.to_owned()));
    r
}

/// Middleware: count every 5xx answer by status and reason
/// (`gridsync_http_errors_total{status,error}`).
pub async fn count_errors(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if res.status().is_server_error()
        && let Some(m) = metrics
    {
        let code =
            res.response().extensions().get::<ErrorCode>().map(|c| c.0.clone()).unwrap_or_else(|| "other".into());
        m.count_error(res.status().as_u16(), &code);
    }
    Ok(res)
}

pub(crate) fn store_error(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %crate::logtext::logged(&e.to_string()), "storage failure");
    error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "服务器存储暂时不可用，请稍后重试")
}

pub(crate) fn blocking_error() -> HttpResponse {
    busy()
}

/// 503 `overloaded` with a hint when to try again.
fn busy() -> HttpResponse {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后重试");
    r.headers_mut()
        .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("5"));
    r
}

/// A `Content-Length` header's value: decimal digits, with spaces or tabs
/// around them (RFC 9110); `None` for anything else. `usize::from_str`
/// alone also took a sign and any Unicode space (`\u{b}\u{b}+1\r`), which
/// the fuzzer found.
pub fn content_length(value: &[u8]) -> Option<usize> {
    let v = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Read a request body of at most `limit` bytes, holding its size of the
/// in-flight budget, and end a body that stalls (nothing for `body_idle`)
/// or trickles (below `body_min_rate` on average after `body_grace`) with
/// 408: a slow body may not hold a connection and its memory for ever.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    limits: &Limits,
    held: &mut Held,
) -> Result<Vec<u8>, HttpResponse> {
    let too_large = format!("请求过大（上限{}），请分批同步", gridsync_core::model::size_zh(limit as i64));
    read_body_limited(req, payload, limit, limits, held, &too_large).await
}

/// [`read_body`], answering a body over `limit` with 413 `body_too_large`
/// and the sentence `too_large` (what the limit is, in the caller's words).
pub(crate) async fn read_body_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    limits: &Limits,
    held: &mut Held,
    too_large: &str,
) -> Result<Vec<u8>, HttpResponse> {
    let started = Instant::now();
    // A declared length is held of the budget at once (and the buffer made
    // that size), so memory in flight is what the budget says it is.
    let declared: Option<usize> =
        req.headers().get(actix_web::http::header::CONTENT_LENGTH).and_then(|v| content_length(v.as_bytes()));
    if declared.is_some_and(|n| n > limit) {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", too_large));
    }
    if let Some(n) = declared
        && !held.grow_to(n)
    {
        return Err(busy());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    loop {
        // The next piece must come before the body falls below the minimum
        // average rate, and never later than the idle limit.
        let due = limits.body_grace + Duration::from_secs_f64(body.len() as f64 / limits.body_min_rate.max(1) as f64);
        let wait = due.saturating_sub(started.elapsed()).min(limits.body_idle);
        let next = match tokio::time::timeout(wait, payload.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "网络太慢，请求数据未能及时收到，请稍后重试",
                ));
            }
        };
        let Some(chunk) = next else { return Ok(body) };
        let chunk = chunk.map_err(|_| error(StatusCode::BAD_REQUEST, "body_unreadable", "请求数据接收不完整"))?;
        if body.len() + chunk.len() > limit {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", too_large));
        }
        if !held.grow_to(body.len() + chunk.len()) {
            return Err(busy());
        }
        body.extend_from_slice(&chunk);
    }
}

/// 429 `too_many_attempts`, with when to try again.
pub fn too_many(wait: Duration) -> HttpResponse {
    retry_after(error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "尝试次数过多，请稍后再试"), wait)
}

/// `r` with a `Retry-After` of `wait` (at least a second).
fn retry_after(mut r: HttpResponse, wait: Duration) -> HttpResponse {
    let secs = wait.as_secs().max(1).to_string();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs) {
        r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
    }
    r
}

/// An enrollment request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollInput {
    /// The code, normalized (12 upper-case letters and digits).
    pub code: String,
    /// The device name, trimmed.
    pub name: String,
    /// The device's actor id, if sent.
    pub actor: Option<Vec<u8>>,
    /// The device's Ed25519 public key, if sent.
    pub public_key: Option<Vec<u8>>,
}

/// Why an enrollment body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRefused {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// For the user.
    pub message_zh: &'static str,
}

/// Parse and check a `POST /v1/enroll` body (JSON): the decoder the
/// enrollment endpoint exposes to anyone, without a token.
pub fn parse_enroll(body: &[u8]) -> Result<EnrollInput, BodyRefused> {
    let refuse = |status, code, message_zh| BodyRefused { status, code, message_zh };
    let req: EnrollRequest = serde_json::from_slice(body)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed_body", "请求格式错误：需要 code 和 device_name"))?;
    let name = req.device_name.trim().to_owned();
    // A name is shown on the dashboard and printed by `devices`: no line
    // breaks or escape sequences of the phone's in an operator's terminal.
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_device_name",
            "设备名称不能为空，不超过100个字，且不能包含换行等控制字符",
        ));
    }
    let code = auth::normalize_code(&req.code);
    if code.len() != 12 {
        return Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code", "注册码应为12位字母和数字"));
    }
    let actor = match req.actor.as_deref().map(hex::decode) {
        None => None,
        Some(Ok(a)) if (1..=32).contains(&a.len()) => Some(a),
        Some(_) => {
            return Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid_actor", "设备标识格式错误，请升级应用"));
        }
    };
    let public_key = match req.public_key.as_deref() {
        None => None,
        Some(k) => Some(parse_public_key(k).ok_or_else(|| {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid_public_key", "设备密钥格式错误，请升级应用")
        })?),
    };
    Ok(EnrollInput { code, name, actor, public_key })
}

/// Parse and check a `POST /v1/device-key` body (JSON
/// [`DeviceKeyRequest`]): the key's 32 bytes, a usable Ed25519 key.
pub fn parse_device_key(body: &[u8]) -> Result<Vec<u8>, BodyRefused> {
    let refuse = |status, code, message_zh| BodyRefused { status, code, message_zh };
    let r: DeviceKeyRequest = serde_json::from_slice(body)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed_body", "请求格式错误：需要 public_key"))?;
    parse_public_key(&r.public_key)
        .ok_or_else(|| refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid_public_key", "设备密钥格式错误，请升级应用"))
}

/// Most records one problem report may name.
pub const MAX_PROBLEM_RECORDS: usize = 1000;
/// Longest reason of a set-aside record that is logged, characters.
pub const MAX_PROBLEM_REASON_CHARS: usize = 200;

/// Parse and check a `POST /v1/problems` body (JSON [`ProblemReport`]): at
/// most [`MAX_PROBLEM_RECORDS`] records, each a record id and its reason
/// cut to [`MAX_PROBLEM_REASON_CHARS`] characters.
pub fn parse_problem_report(body: &[u8]) -> Result<Vec<(Uuid, String)>, BodyRefused> {
    let refuse = |status, code, message_zh| BodyRefused { status, code, message_zh };
    let report: ProblemReport = serde_json::from_slice(body)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed_body", "请求格式错误：需要 set_aside 列表"))?;
    if report.set_aside.len() > MAX_PROBLEM_RECORDS {
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", "一次最多报告1000条记录"));
    }
    report
        .set_aside
        .into_iter()
        .map(|p| match Uuid::parse_str(&p.doc) {
            Ok(doc) => Ok((doc, p.reason.chars().take(MAX_PROBLEM_REASON_CHARS).collect())),
            Err(_) => Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, "bad_record_id", "记录编号格式错误")),
        })
        .collect()
}

/// A device public key from its hex: 32 bytes that are a usable Ed25519 key.
fn parse_public_key(hex: &str) -> Option<Vec<u8>> {
    gridsync_core::signing::from_hex(hex).filter(|k| gridsync_core::signing::valid_public_key(k))
}

/// `POST /v1/enroll`: trade a one-time code for a device token.
pub async fn enroll(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    if let Some(ip) = crate::ratelimit::client_ip(&req, state.limits.client_ip_header.as_deref())
        && let Err(wait) = state.enroll_limiter.take(ip, Instant::now())
    {
        return too_many(wait);
    }
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, 16 * 1024, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let EnrollInput { code, name, actor, public_key } = match parse_enroll(&body) {
        Ok(i) => i,
        Err(r) => return error(r.status, r.code, r.message_zh),
    };
    let token = auth::new_token();
    let device = Device {
        id: Uuid::new_v4().to_string(),
        user_id: String::new(),
        name,
        created_at: state.clock.now(),
        last_sync_at: None,
        revoked_at: None,
        actor,
        public_key,
    };
    let server_key = match state.relay_key().await {
        Ok(k) => gridsync_core::signing::hex_of(&k.public()),
        Err(r) => return r,
    };
    let store = state.store.clone();
    let (code_hash, token_hash, dev) = (auth::hash_secret(&code), auth::hash_secret(&token), device.clone());
    let now = state.clock.now();
    let res = web::block(move || store.redeem_enrollment(&code_hash, &dev, &token_hash, now)).await;
    match res {
        Ok(Ok(Redeemed::Enrolled(user))) => {
            Metrics::add(&state.metrics.enrollments, 1);
            tracing::info!(device = %device.id, user = %user.id, "device enrolled");
            HttpResponse::Ok().json(EnrollResponse {
                device_id: device.id,
                token,
                user_id: user.id,
                display_name: user.display_name,
                role: user.role.as_str().to_owned(),
                grid: user.grid.to_string(),
                server_key,
            })
        }
        Ok(Ok(Redeemed::InvalidCode)) => {
            error(StatusCode::UNAUTHORIZED, "invalid_code", "注册码无效、已使用或已过期，请向管理员重新申请")
        }
        Ok(Ok(Redeemed::ActorInUse)) => error(
            StatusCode::CONFLICT,
            "actor_in_use",
            "本机的设备标识已被其他用户的设备使用，请清除本机数据后重新注册",
        ),
        Ok(Err(e)) => store_error(&e),
        Err(_) => blocking_error(),
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let t = h.strip_prefix("Bearer ")?.trim();
    (!t.is_empty() && t.len() <= 128).then(|| t.to_owned())
}

/// `POST /v1/sync`: one round of the sync protocol.
pub async fn sync(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let started = Instant::now();
    let resp = sync_inner(req, &state, payload).await;
    if resp.status().is_success() {
        Metrics::add(&state.metrics.sync_requests, 1);
    } else if resp.status().is_client_error() {
        Metrics::add(&state.metrics.sync_refused, 1);
    }
    Metrics::add(&state.metrics.sync_micros, started.elapsed().as_micros() as u64);
    resp
}

/// The enrolled, unrevoked device presenting the request's bearer token.
pub(crate) async fn authenticate(req: &HttpRequest, state: &web::Data<AppState>) -> Result<DeviceAuth, HttpResponse> {
    let Some(token) = bearer(req) else {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "设备未注册，请先用注册码注册"));
    };
    let store = state.store.clone();
    let auth = match web::block(move || store.device_by_token(&auth::hash_secret(&token))).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "设备凭证无效，请重新注册")),
        Ok(Err(e)) => return Err(store_error(&e)),
        Err(_) => return Err(blocking_error()),
    };
    if auth.device.revoked_at.is_some() {
        tracing::warn!(device = %auth.device.id, "revoked device tried to sync");
        return Err(HttpResponse::Unauthorized().json(ErrorBody {
            error: "device_revoked".into(),
            message_zh: "此设备已被管理员停用，本机数据将被清除".into(),
            wipe: true,
            supported_versions: vec![],
        }));
    }
    Ok(auth)
}

async fn sync_inner(req: HttpRequest, state: &web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, state.limits.max_body_bytes, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    Metrics::add(&state.metrics.bytes_in, body.len() as u64);
    // Inflating and decoding run on the blocking pool, not on the HTTP
    // workers: a large body must not stall `/healthz` or other requests.
    let decode_limits = DecodeLimits { max_inflated: MAX_DECODED_BYTES, max_changes: state.limits.max_changes };
    let decoded = web::block(move || {
        let sent = body.len();
        let r = protocol::decode_sync_request(&body, &decode_limits, &mut |n| held.grow_to(sent + n));
        (r, held)
    })
    .await;
    let (decoded, held) = match decoded {
        Ok(d) => d,
        Err(_) => return blocking_error(),
    };
    let request: SyncRequest = match decoded {
        Ok(r) => r,
        Err(e) => return decode_refused(&auth, &e, "malformed sync body"),
    };
    let Some(cursor) = Cursor::from_bytes(&request.cursor) else {
        return error(StatusCode::BAD_REQUEST, "bad_cursor", "同步位置无效");
    };
    let page_bytes = request.max_response_bytes.clamp(16 * 1024, state.limits.max_page_bytes) as usize;
    let signed = crate::sync::SignedDocs { docs: request.docs, signature: request.signature };

    let store = state.store.clone();
    let metrics = state.metrics.clone();
    let now = state.clock.now();
    // Judging and merging take a turn: hundreds of phones at once are not
    // hundreds of threads fighting over two cores. The semaphore is never
    // closed, so a turn always comes.
    let Ok(_turn) = state.merges.acquire().await else {
        return blocking_error();
    };
    // Signatures are checked on the blocking pool too, before judging.
    let result =
        web::block(move || process_signed_sync(store.as_ref(), &metrics, &auth, signed, cursor, page_bytes, now)).await;
    let resp = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return blocking_error(),
    };
    // The request's memory is given back once the answer is built.
    let _held = held;
    match protocol::encode_response(&resp) {
        Ok(bytes) => {
            Metrics::add(&state.metrics.bytes_out, bytes.len() as u64);
            HttpResponse::Ok().content_type(CONTENT_TYPE).body(bytes)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode response");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误")
        }
    }
}

/// The answer to a body the sync path's decoder refused, for a sync
/// request and a relay bundle alike: 400 `unsupported_protocol_version`
/// (with the versions spoken), 413 `too_many_changes`, 503 `overloaded`
/// when the in-flight budget is spent, 400 `malformed_body` otherwise
/// (logged as `what`).
fn decode_refused(auth: &DeviceAuth, e: &DecodeError, what: &str) -> HttpResponse {
    match e {
        DecodeError::UnsupportedVersion(_) => HttpResponse::BadRequest().json(ErrorBody {
            error: "unsupported_protocol_version".into(),
            message_zh: "应用版本与服务器不兼容，请升级应用".into(),
            wipe: false,
            supported_versions: SUPPORTED_VERSIONS.to_vec(),
        }),
        DecodeError::TooManyChanges { limit } => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_changes", &format!("一次同步最多{limit}条修改，请分批同步"))
        }
        DecodeError::Busy => busy(),
        e => {
            tracing::info!(device = %auth.device.id, error = %crate::logtext::logged(&e.to_string()), "{what}");
            error(StatusCode::BAD_REQUEST, "malformed_body", "同步数据格式错误")
        }
    }
}

/// `POST /v1/device-key`: a device enrolled before devices had keys
/// registers its Ed25519 public key (JSON [`DeviceKeyRequest`]), once; the
/// answer carries the server's relay key. The same key again is harmless;
/// another key is `409 key_already_registered` (keys are never replaced: a
/// phone that lost its key enrolls anew).
pub async fn device_key(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, 4 * 1024, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key = match parse_device_key(&body) {
        Ok(k) => k,
        Err(r) => return error(r.status, r.code, r.message_zh),
    };
    let server_key = match state.relay_key().await {
        Ok(k) => gridsync_core::signing::hex_of(&k.public()),
        Err(r) => return r,
    };
    let store = state.store.clone();
    let device = auth.device.id.clone();
    match web::block(move || store.set_device_key(&device, &key)).await {
        Ok(Ok(KeyRegistered::Registered)) => {
            tracing::info!(device = %auth.device.id, "device key registered");
            HttpResponse::Ok().json(DeviceKeyResponse { server_key })
        }
        Ok(Ok(KeyRegistered::Same)) => HttpResponse::Ok().json(DeviceKeyResponse { server_key }),
        Ok(Ok(KeyRegistered::Conflict)) => {
            error(StatusCode::CONFLICT, "key_already_registered", "此设备已登记了另一把密钥，请清除本机数据后重新注册")
        }
        Ok(Ok(KeyRegistered::UnknownDevice)) => {
            error(StatusCode::UNAUTHORIZED, "unauthorized", "设备凭证无效，请重新注册")
        }
        Ok(Err(e)) => store_error(&e),
        Err(_) => blocking_error(),
    }
}

/// `POST /v1/relay`: a phone hands over a bundle it carried for another
/// device (sealed to the server's relay key). The bundle's changes are
/// judged as its signer's, never the carrier's; the answer
/// ([`gridsync_core::protocol::RelayReport`]) holds only counts. `422 relay_unreadable`: not sealed
/// to this server or changed on the way; `422 unknown_signer`: its device
/// is not enrolled here. The opened bundle is decoded by the sync path's
/// reader under its limits and budget, and refused as a sync body would be
/// (400 `malformed_body`, 413 `too_many_changes`, 503 `overloaded`). Each
/// bundle is charged to its carrier's and its signer's hourly relay budget
/// (`--relay-*-per-hour`): `429 relay_quota` with Retry-After when either
/// is spent, `413 relay_too_large` for a bundle larger than a full budget.
/// Handing the same bundle over twice is harmless.
pub async fn relay(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let limit = state.limits.max_body_bytes.min(protocol::MAX_RELAY_BYTES + 1024);
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, limit, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key = match state.relay_key().await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let store = state.store.clone();
    let metrics = state.metrics.clone();
    let now = state.clock.now();
    let limits = DecodeLimits { max_inflated: MAX_DECODED_BYTES, max_changes: state.limits.max_changes };
    let Ok(_turn) = state.merges.acquire().await else {
        return blocking_error();
    };
    // Opened and decoded as a sync body is: the plaintext and the inflated
    // bundle are held of the in-flight budget on top of the sealed bytes,
    // and the request's memory is given back once the bundle is merged.
    let carrier = auth.clone();
    let budget = state.relay_budget.clone();
    let result = web::block(move || {
        let sent = body.len();
        let req = crate::bundles::RelayRequest { carrier: &carrier, sealed: &body, limits, budget: &budget };
        let r = crate::bundles::relay(store.as_ref(), &metrics, &key, req, &mut |n| held.grow_to(sent + n), now);
        drop(held);
        r
    })
    .await;
    match result {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(crate::bundles::RelayError::Decode(e))) => decode_refused(&auth, &e, "malformed relay bundle"),
        Ok(Err(crate::bundles::RelayError::Unreadable)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "relay_unreadable",
            "转交文件无法打开：不是给本服务器的，或在途中被改动",
        ),
        Ok(Err(crate::bundles::RelayError::UnknownSigner)) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "unknown_signer", "转交文件来自未在本服务器注册的设备")
        }
        Ok(Err(crate::bundles::RelayError::Quota(crate::ratelimit::RelayRefusal::Wait(wait)))) => {
            let mut r =
                error(StatusCode::TOO_MANY_REQUESTS, "relay_quota", "转交的修改过多，已超过每小时限额，请稍后再交");
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs) {
                r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
            }
            r
        }
        Ok(Err(crate::bundles::RelayError::Quota(crate::ratelimit::RelayRefusal::TooLarge))) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "relay_too_large",
            "转交文件的修改超过每小时转交限额，无法转交，请让原手机自行联网同步",
        ),
        Ok(Err(crate::bundles::RelayError::Store(e))) => store_error(&e),
        Err(_) => blocking_error(),
    }
}

/// `POST /v1/problems`: a phone reports records it received but could not
/// apply and set aside (JSON [`ProblemReport`]). Each is kept once per
/// (record, device) with first and last seen and a count
/// ([`ServerStore::note_problems`]); only records the device may read are
/// taken, the others are `ignored`. A pair is counted in
/// `gridsync_phone_records_set_aside_total` and logged (record id and the
/// reason, escaped and bounded by [`crate::logtext`]) once, when it is
/// new. A device may report [`Limits::problem_rate`] times: beyond it, 429
/// `too_many_reports` with `Retry-After` (the phone keeps its reports for
/// its next sync). The answer: `{"received", "new", "ignored"}`.
pub async fn problems(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(wait) = state.problem_limiter.take(auth.device.id.clone(), Instant::now()) {
        return too_many_reports(wait);
    }
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, 64 * 1024, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut set_aside = match parse_problem_report(&body) {
        Ok(r) => r,
        Err(r) => return error(r.status, r.code, r.message_zh),
    };
    drop(body);
    // A record named twice in one report is one report.
    let mut seen = std::collections::HashSet::new();
    set_aside.retain(|(doc, _)| seen.insert(*doc));
    let received = set_aside.len();
    let store = state.store.clone();
    let (device, user) = (auth.device.id.clone(), auth.user.clone());
    let now = state.clock.now();
    let noted = web::block(move || {
        let may_read =
            |grid: &gridsync_core::grid::GridPath, sensitive: bool| crate::access::may_read(&user, grid, sensitive);
        store.note_problems(&device, &set_aside, &may_read, now).map(|n| (n, set_aside))
    })
    .await;
    let (noted, set_aside) = match noted {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return blocking_error(),
    };
    let mut new = 0usize;
    let mut ignored = 0usize;
    for (outcome, (doc, reason)) in noted.iter().zip(&set_aside) {
        match outcome {
            ProblemNoted::New => {
                new += 1;
                tracing::warn!(
                    device = %auth.device.id,
                    doc = %doc,
                    reason = %crate::logtext::logged(reason),
                    "a phone set a record aside"
                );
            }
            ProblemNoted::Repeat => {}
            ProblemNoted::Ignored => ignored += 1,
        }
    }
    if ignored > 0 {
        tracing::info!(device = %auth.device.id, ignored, "problem report named records the device may not read");
    }
    Metrics::add(&state.metrics.phone_set_aside, new as u64);
    HttpResponse::Ok().json(serde_json::json!({"received": received, "new": new, "ignored": ignored}))
}

/// 429 `too_many_reports`, with when to try again.
fn too_many_reports(wait: Duration) -> HttpResponse {
    retry_after(error(StatusCode::TOO_MANY_REQUESTS, "too_many_reports", "问题报告过于频繁，请稍后再试"), wait)
}

/// `GET /healthz`: 200 when the database answers.
///
/// Healthy means a write commits: the probe writes a row (and, on SQLite,
/// checks the disk has room), so a read-only database, a full disk or a
/// database refusing writes answers 503 with its reason. The answer is
/// kept for a second, so polling /healthz cannot cost a commit per request.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if let Some((at, code)) = lock_health(&state).clone()
        && at.elapsed() < Duration::from_secs(1)
    {
        return health_response(code.as_deref());
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let (dir, min_free) = (state.limits.data_dir.clone(), state.limits.min_free_disk_bytes);
    let probe = move || {
        if let Some(dir) = &dir {
            crate::store::check_free_space(dir, min_free)?;
        }
        store.probe_write(now)
    };
    let code: Option<String> = match web::block(probe).await {
        Ok(Ok(())) => None,
        Ok(Err(StoreError::DiskFull { free_bytes })) => {
            tracing::error!(free_bytes, "disk nearly full");
            Some("disk_full".into())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %crate::logtext::logged(&e.to_string()), "health probe failed");
            Some("storage_unavailable".into())
        }
        Err(_) => Some("overloaded".into()),
    };
    *lock_health(&state) = Some((Instant::now(), code.clone()));
    health_response(code.as_deref())
}

fn lock_health(state: &AppState) -> std::sync::MutexGuard<'_, Option<HealthProbe>> {
    state.health.lock().unwrap_or_else(|p| p.into_inner())
}

fn health_response(code: Option<&str>) -> HttpResponse {
    match code {
        None => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Some("disk_full") => error(StatusCode::SERVICE_UNAVAILABLE, "disk_full", "服务器磁盘空间不足，无法保存数据"),
        Some("overloaded") => busy(),
        Some(_) => error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "数据库不可用或无法写入"),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

/// Any other path.
pub async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "not_found", "找不到该页面")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device name with a line break or an escape sequence is refused,
    /// naming the problem; spaces around it are dropped.
    #[test]
    fn a_device_name_carries_no_control_character() {
        let body = |name: &str| serde_json::json!({"code": "ABCD-EFGH-JKLM", "device_name": name}).to_string();
        for bad in ["手机\n2026-12-08T04:00:00Z ERROR FORGED", "手机\u{1b}[2K", "\r", ""] {
            let r = parse_enroll(body(bad).as_bytes()).unwrap_err();
            assert_eq!(r.code, "invalid_device_name", "{bad:?}");
            assert!(r.message_zh.contains("控制字符"));
        }
        assert_eq!(parse_enroll(body("  王建国的手机 ").as_bytes()).unwrap().name, "王建国的手机");
    }

    /// A declared length is digits with spaces or tabs around them, as HTTP
    /// writes it; a sign or other white space (found by the `photo_chunk`
    /// fuzz target) is no length.
    #[test]
    fn a_content_length_is_only_digits() {
        assert_eq!(content_length(b"1024"), Some(1024));
        assert_eq!(content_length(b" \t16 "), Some(16));
        for bad in
            [&b"+1"[..], b"\x0b\x0b+1\r\r", b"-0", b"", b" ", b"1 2", b"0x10", b"\xff1", b"99999999999999999999999"]
        {
            assert_eq!(content_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
