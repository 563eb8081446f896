//! HTTP API: `POST /v1/enroll`, `POST /v1/sync`, `GET /healthz`, `GET /metrics`.
//!
//! Every refusal is JSON ([`ErrorBody`]) with a machine-readable `error`
//! code and a Chinese message. Storage work runs on actix's blocking pool.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use gridsync_core::protocol::{
    self, CONTENT_TYPE, DocAck, DocChanges, EnrollRequest, EnrollResponse, ErrorBody, SUPPORTED_VERSIONS, SyncRequest,
    SyncResponse,
};
use uuid::Uuid;

use crate::auth;
use crate::merge::{Outcome, merge_doc};
use crate::metrics::Metrics;
use crate::store::{Cursor, Device, DeviceAuth, DocDecision, IncomingDoc, ReadScope, ServerStore, StoreError};

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
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

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
    let token = auth::new_token();
    let device = Device {
        id: Uuid::new_v4().to_string(),
        user_id: String::new(),
        name,
        created_at: now_ms(),
        last_sync_at: None,
        revoked_at: None,
    };
    let store = state.store.clone();
    let (code_hash, token_hash, dev) = (auth::hash_secret(&code), auth::hash_secret(&token), device.clone());
    let res = web::block(move || store.redeem_enrollment(&code_hash, &dev, &token_hash, now_ms())).await;
    match res {
        Ok(Ok(Some(user))) => {
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
        Ok(Ok(None)) => {
            error(StatusCode::UNAUTHORIZED, "invalid_code", "注册码无效、已使用或已过期，请向管理员重新申请")
        }
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

async fn sync_inner(req: HttpRequest, state: &web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "设备未注册，请先用注册码注册");
    };
    let store = state.store.clone();
    let auth = match web::block(move || store.device_by_token(&auth::hash_secret(&token))).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => return error(StatusCode::UNAUTHORIZED, "unauthorized", "设备凭证无效，请重新注册"),
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return blocking_error(),
    };
    if auth.device.revoked_at.is_some() {
        tracing::warn!(device = %auth.device.id, "revoked device tried to sync");
        return HttpResponse::Unauthorized().json(ErrorBody {
            error: "device_revoked".into(),
            message_zh: "此设备已被管理员停用，本机数据将被清除".into(),
            wipe: true,
            supported_versions: vec![],
        });
    }
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
    let result = web::block(move || process_sync(store.as_ref(), &metrics, &auth, incoming, cursor, page_bytes)).await;
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

/// One sync round on the server, without HTTP: merge the device's records
/// in one transaction, then read its next feed page. Used by the HTTP
/// handler, the bundle import and the deterministic simulation.
pub fn process_sync(
    store: &dyn ServerStore,
    metrics: &Metrics,
    auth: &DeviceAuth,
    incoming: Vec<IncomingDoc>,
    cursor: Cursor,
    page_bytes: usize,
) -> Result<SyncResponse, StoreError> {
    let user = auth.user.clone();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; incoming.len()];
    let decisions = store.merge_batch(&auth.device.id, &incoming, &mut |i, stored, doc| {
        let (decision, outcome) = merge_doc(&user, stored, doc);
        outcomes[i] = Some(outcome);
        decision
    })?;
    let mut resp = SyncResponse::default();
    for ((decision, outcome), doc) in decisions.iter().zip(outcomes).zip(&incoming) {
        match (decision, outcome) {
            (DocDecision::Accept(m), Some(Outcome::Acked(h))) => {
                Metrics::add(&metrics.changes_stored, m.new_changes.len() as u64);
                Metrics::add(&metrics.changes_duplicate, h.len().saturating_sub(m.new_changes.len()) as u64);
                // Every change sent for this record is stored: an empty list
                // says so without repeating 32 bytes per change.
                resp.acked.push(DocAck { doc: *doc.doc_id.as_bytes(), hashes: vec![] });
            }
            (_, Some(Outcome::Acked(h))) => {
                Metrics::add(&metrics.changes_duplicate, h.len() as u64);
                resp.acked.push(DocAck { doc: *doc.doc_id.as_bytes(), hashes: vec![] });
            }
            (_, Some(Outcome::Rejected(r))) => {
                Metrics::add(&metrics.docs_rejected, 1);
                tracing::info!(device = %auth.device.id, doc = %doc.doc_id, reason = r.reason.as_str(), "record rejected");
                resp.rejected.push(r);
            }
            (_, None) => {}
        }
    }
    let scope = ReadScope::of(&user);
    let page = store.read_feed(cursor, &scope, &auth.device.id, page_bytes)?;
    Metrics::add(&metrics.changes_sent, page.changes.len() as u64);
    for (doc, bytes) in page.changes {
        match resp.changes.last_mut() {
            Some(last) if last.doc == *doc.as_bytes() => last.changes.push(bytes),
            _ => resp.changes.push(DocChanges { doc: *doc.as_bytes(), changes: vec![bytes] }),
        }
    }
    resp.next_cursor = page.next.to_bytes();
    resp.more = page.more;
    store.touch_device(&auth.device.id, now_ms())?;
    tracing::info!(
        device = %auth.device.id,
        acked = resp.acked.len(),
        rejected = resp.rejected.len(),
        sent = resp.changes.len(),
        more = resp.more,
        "sync"
    );
    Ok(resp)
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
