//! HTTP API: `POST /v1/enroll`, `POST /v1/sync`, `POST /v1/problems`, `GET /healthz`, `GET /metrics`.
//!
//! Every refusal is JSON ([`ErrorBody`]) with a machine-readable `error`
//! code and a Chinese message. Storage work runs on actix's blocking pool.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use gridsync_core::protocol::{
    self, CONTENT_TYPE, EnrollRequest, EnrollResponse, ErrorBody, ProblemReport, SUPPORTED_VERSIONS, SyncRequest,
};
use uuid::Uuid;

use crate::auth;
use crate::metrics::Metrics;
use crate::store::{Cursor, Device, DeviceAuth, IncomingDoc, Redeemed, ServerStore, StoreError};
use crate::sync::process_sync_at;

/// Limits on what one request may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes (compressed, as sent).
    pub max_body_bytes: usize,
    /// Most changes in one sync request.
    pub max_changes: usize,
    /// Largest response page the server will build, bytes of changes.
    pub max_page_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 8 * 1024 * 1024, max_changes: 20_000, max_page_bytes: 1024 * 1024 }
    }
}

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
    pub clock: crate::sync::Clock,
}

pub use crate::sync::now_ms;

fn error(status: StatusCode, code: &str, message_zh: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: code.to_owned(),
        message_zh: message_zh.to_owned(),
        wipe: false,
        supported_versions: vec![],
    })
}

fn store_error(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "storage failure");
    error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "服务器存储暂时不可用，请稍后重试")
}

fn blocking_error() -> HttpResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后重试")
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, HttpResponse> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| error(StatusCode::BAD_REQUEST, "body_unreadable", "请求数据接收不完整"))?;
        if body.len() + chunk.len() > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("请求过大（上限{}KB），请分批同步", limit / 1024),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /v1/enroll`: trade a one-time code for a device token.
pub async fn enroll(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let body = match read_body(payload, 16 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: EnrollRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed_body", "请求格式错误：需要 code 和 device_name"),
    };
    let name = req.device_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_device_name", "设备名称不能为空，且不超过100个字");
    }
    let code = auth::normalize_code(&req.code);
    if code.len() != 12 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code", "注册码应为12位字母和数字");
    }
    let actor = match req.actor.as_deref().map(hex::decode) {
        None => None,
        Some(Ok(a)) if (1..=32).contains(&a.len()) => Some(a),
        Some(_) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_actor", "设备标识格式错误，请升级应用");
        }
    };
    let token = auth::new_token();
    let device = Device {
        id: Uuid::new_v4().to_string(),
        user_id: String::new(),
        name,
        created_at: now_ms(),
        last_sync_at: None,
        revoked_at: None,
        actor,
    };
    let store = state.store.clone();
    let (code_hash, token_hash, dev) = (auth::hash_secret(&code), auth::hash_secret(&token), device.clone());
    let res = web::block(move || store.redeem_enrollment(&code_hash, &dev, &token_hash, now_ms())).await;
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
async fn authenticate(req: &HttpRequest, state: &web::Data<AppState>) -> Result<DeviceAuth, HttpResponse> {
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
    let body = match read_body(payload, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    Metrics::add(&state.metrics.bytes_in, body.len() as u64);
    if let Some(v) = protocol::version_of(&body)
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        return HttpResponse::BadRequest().json(ErrorBody {
            error: "unsupported_protocol_version".into(),
            message_zh: "应用版本与服务器不兼容，请升级应用".into(),
            wipe: false,
            supported_versions: SUPPORTED_VERSIONS.to_vec(),
        });
    }
    let request: SyncRequest = match protocol::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(device = %auth.device.id, error = %e, "malformed sync body");
            return error(StatusCode::BAD_REQUEST, "malformed_body", "同步数据格式错误");
        }
    };
    let n_changes: usize = request.docs.iter().map(|d| d.changes.len()).sum();
    if n_changes > state.limits.max_changes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_changes",
            &format!("一次同步最多{}条修改，请分批同步", state.limits.max_changes),
        );
    }
    let Some(cursor) = Cursor::from_bytes(&request.cursor) else {
        return error(StatusCode::BAD_REQUEST, "bad_cursor", "同步位置无效");
    };
    let page_bytes = request.max_response_bytes.clamp(16 * 1024, state.limits.max_page_bytes) as usize;
    let incoming: Vec<IncomingDoc> =
        request.docs.into_iter().map(|d| IncomingDoc { doc_id: Uuid::from_bytes(d.doc), changes: d.changes }).collect();

    let store = state.store.clone();
    let metrics = state.metrics.clone();
    let now = state.clock.now();
    let result =
        web::block(move || process_sync_at(store.as_ref(), &metrics, &auth, incoming, cursor, page_bytes, now)).await;
    let resp = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return blocking_error(),
    };
    match protocol::encode(&resp) {
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

/// `POST /v1/problems`: a phone reports records it received but could not
/// apply and set aside (JSON [`ProblemReport`]). The server counts them in
/// `gridsync_phone_records_set_aside_total` and logs the record ids (never
/// their content), so an operator sees a record that cannot reach phones.
pub async fn problems(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = match read_body(payload, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let report: ProblemReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed_body", "请求格式错误：需要 set_aside 列表"),
    };
    if report.set_aside.len() > 1000 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", "一次最多报告1000条记录");
    }
    for p in &report.set_aside {
        let Ok(doc) = Uuid::parse_str(&p.doc) else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "bad_record_id", "记录编号格式错误");
        };
        let reason: String = p.reason.chars().take(200).collect();
        tracing::warn!(device = %auth.device.id, doc = %doc, reason = %reason, "a phone set a record aside");
    }
    Metrics::add(&state.metrics.phone_set_aside, report.set_aside.len() as u64);
    HttpResponse::Ok().json(serde_json::json!({"received": report.set_aside.len()}))
}

/// `GET /healthz`: 200 when the database answers.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "数据库不可用"),
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
