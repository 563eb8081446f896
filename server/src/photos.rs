//! Photos over HTTP, and who may send and see which.
//!
//! - `PUT /v1/photos/{hash}?offset=N`: a chunk of a photo's bytes from the
//!   phone that took it. Records go first: the server takes bytes only for
//!   a photo some record it holds references, only from the user the
//!   reference names, and only up to the size it declares, all checked
//!   before the body is read. The answer ([`PhotoProgress`]) says how many
//!   bytes the server holds; a chunk past them is `409 offset_mismatch`
//!   with the same figure, so a phone whose answer was lost resumes at the
//!   right byte. The last byte checks the SHA-256 (`422 hash_mismatch`).
//!   With less than four times `--min-free-disk-mib` free, uploads wait
//!   (`507 disk_full`) so photos never take the room records need.
//! - `GET /v1/photos/{hash}`: the bytes, for whoever may read every live
//!   record referencing the photo ([`crate::access::may_read`]): a
//!   sensitive record's photo is seen only by those who may read the
//!   record, whatever other record names its hash.
//!   Served with its own media type, `nosniff` and a sandboxing CSP.
//! - the dashboard shows photos through [`web_photo`], auditing each view
//!   of a sensitive record's photo;
//! - [`collect_garbage`]: blobs no live record references, after a grace.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use gridsync_core::model::valid_hash;
use gridsync_core::protocol::{MAX_PHOTO_CHUNK, PhotoProgress};

use crate::AppState;
use crate::access::may_read;
use crate::api::{Held, authenticate, error, read_body, store_error};
use crate::blobs::{BlobError, BlobStore};
use crate::store::{PhotoHolder, ServerStore, StoreError, User};

/// Whether a user may see a photo, judged on the records referencing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoAccess {
    /// No live record references it.
    Unknown,
    /// Records reference it, none the user may read.
    Forbidden,
    /// The user may read a record holding it.
    Allowed {
        /// Media type.
        mime: String,
        /// A record holding it is sensitive (the view is audited).
        sensitive: bool,
        /// The record the access was granted through.
        record_id: uuid::Uuid,
    },
}

/// Judge `user`'s access to a photo held by `holders`: a photo is as
/// private as the most private live record that holds it, so the user must
/// be able to read every one. Anyone who can write a record can put any
/// hash in it, so a record of one's own must not open another's photo
/// (a sensitive visit's photo referenced from a hazard stays the visit's).
pub fn access(user: &User, holders: &[PhotoHolder]) -> PhotoAccess {
    let live: Vec<&PhotoHolder> = holders.iter().filter(|h| !h.deleted).collect();
    let Some(first) = live.first() else { return PhotoAccess::Unknown };
    if !live.iter().all(|h| may_read(user, &h.grid, h.sensitive)) {
        return PhotoAccess::Forbidden;
    }
    let sensitive = live.iter().find(|h| h.sensitive);
    let through = sensitive.unwrap_or(first);
    PhotoAccess::Allowed {
        mime: through.attachment.mime.clone(),
        sensitive: sensitive.is_some(),
        record_id: through.record_id,
    }
}

fn bad_hash() -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "bad_hash", "照片编号格式错误")
}

fn unknown() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "photo_unknown", "服务器上没有引用这张照片的记录，请先同步记录")
}

/// The start of a chunk, from a query string (`offset=N`, the first one).
pub fn offset_of(query: &str) -> Option<u64> {
    query.split('&').find_map(|kv| kv.strip_prefix("offset=")).and_then(|v| v.parse().ok())
}

/// Why a photo chunk's request line or its size was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkRefused {
    /// The path's hash is not a SHA-256 in lower-case hex (400 `bad_hash`).
    BadHash,
    /// No readable `offset` (400 `bad_offset`).
    NoOffset,
    /// The offset is past the photo's declared size (400 `bad_offset`).
    PastSize,
}

/// Check a chunk's hash and query before anything is looked up.
pub fn parse_chunk_request(hash: &str, query: &str) -> Result<u64, ChunkRefused> {
    if !valid_hash(hash) {
        return Err(ChunkRefused::BadHash);
    }
    offset_of(query).ok_or(ChunkRefused::NoOffset)
}

/// The most body bytes a chunk at `offset` of a photo of `size` bytes may
/// carry: never more than [`MAX_PHOTO_CHUNK`], nor than the photo has left.
pub fn chunk_limit(size: u64, offset: u64) -> Result<usize, ChunkRefused> {
    let left = size.checked_sub(offset).ok_or(ChunkRefused::PastSize)?;
    Ok(usize::try_from(left).unwrap_or(usize::MAX).min(MAX_PHOTO_CHUNK))
}

/// `PUT /v1/photos/{hash}?offset=N`
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let hash = path.into_inner();
    let offset = match parse_chunk_request(&hash, req.query_string()) {
        Ok(o) => o,
        Err(ChunkRefused::BadHash) => return bad_hash(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad_offset", "缺少或无法识别上传位置（offset）"),
    };
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let store = state.store.clone();
    let h = hash.clone();
    // Photos stop well before the disk is full (at four times the free
    // space /healthz asks for), so they never take the room records need.
    let (dir, min_free) = (state.limits.data_dir.clone(), state.limits.min_free_disk_bytes.saturating_mul(4));
    let looked = web::block(move || {
        if let Some(dir) = dir {
            crate::store::check_free_space(&dir, min_free)?;
        }
        store.photo_holders(&h)
    })
    .await;
    let holders = match looked {
        Ok(Ok(h)) => h,
        Ok(Err(StoreError::DiskFull { free_bytes })) => {
            tracing::warn!(free_bytes, "photo upload refused: disk nearly full");
            let mut r = error(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "服务器存储空间不足，照片暂不能上传（记录同步不受影响），稍后会自动重试",
            );
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("3600"),
            );
            return r;
        }
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return crate::api::blocking_error(),
    };
    let live: Vec<&PhotoHolder> = holders.iter().filter(|h| !h.deleted).collect();
    if live.is_empty() {
        return unknown();
    }
    let Some(mine) = live.iter().find(|h| h.attachment.by == auth.user.id) else {
        return error(StatusCode::FORBIDDEN, "forbidden", "只有拍摄人可以上传这张照片");
    };
    let size = u64::try_from(mine.attachment.size).unwrap_or(0);
    let Ok(limit) = chunk_limit(size, offset) else {
        return error(StatusCode::BAD_REQUEST, "bad_offset", "上传位置超出照片大小");
    };
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, limit, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let blobs = state.blobs.clone();
    let h = hash.clone();
    let done = web::block(move || blobs.append(&h, size, offset, &body)).await;
    match done {
        Ok(Ok(p)) => {
            if p.complete && p.received == size {
                tracing::info!(device = %auth.device.id, photo = %hash, size, "photo received");
            }
            HttpResponse::Ok().json(PhotoProgress { received: p.received, size, complete: p.complete })
        }
        Ok(Err(BlobError::Gap { received, .. })) => HttpResponse::Conflict().json(serde_json::json!({
            "error": "offset_mismatch",
            "message_zh": "上传位置与服务器已收到的不一致，将从服务器已收到处继续",
            "received": received,
            "size": size,
            "complete": false,
        })),
        Ok(Err(BlobError::PastEnd { .. })) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "photo_too_large", "上传的数据超出记录中登记的照片大小")
        }
        Ok(Err(BlobError::HashMismatch(_))) => {
            tracing::warn!(device = %auth.device.id, photo = %hash, "photo bytes did not match their hash");
            error(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", "照片数据校验失败，已丢弃，将重新上传")
        }
        Ok(Err(BlobError::Io(e))) => store_error(&StoreError::Open(e)),
        Err(_) => crate::api::blocking_error(),
    }
}

/// Headers of every photo answer: its own type, no sniffing, no script.
pub fn photo_response(bytes: Vec<u8>, mime: &str, sensitive: bool) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.content_type(mime.to_owned())
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("content-security-policy", "default-src 'none'; sandbox"))
        .insert_header(("cross-origin-resource-policy", "same-origin"))
        .insert_header(("cache-control", if sensitive { "no-store" } else { "private, max-age=86400" }));
    b.body(bytes)
}

/// What reading a photo found.
pub enum Fetched {
    /// The bytes, their type, and whether they belong to sensitive records only.
    Photo(Vec<u8>, String, bool, uuid::Uuid),
    /// Not readable, with why.
    Refused(PhotoAccess),
    /// Referenced and readable, but its bytes have not all arrived.
    NotUploaded,
}

/// Read photo `hash` for `user` (on the blocking pool).
pub fn fetch(store: &dyn ServerStore, blobs: &dyn BlobStore, user: &User, hash: &str) -> Result<Fetched, StoreError> {
    let holders = store.photo_holders(hash)?;
    match access(user, &holders) {
        PhotoAccess::Allowed { mime, sensitive, record_id } => {
            match blobs.get(hash).map_err(|e| StoreError::Open(e.to_string()))? {
                Some(b) => Ok(Fetched::Photo(b, mime, sensitive, record_id)),
                None => Ok(Fetched::NotUploaded),
            }
        }
        refused => Ok(Fetched::Refused(refused)),
    }
}

/// `GET /v1/photos/{hash}` (device token).
pub async fn download(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let hash = path.into_inner();
    if !valid_hash(&hash) {
        return bad_hash();
    }
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (store, blobs) = (state.store.clone(), state.blobs.clone());
    let user = auth.user.clone();
    match web::block(move || fetch(store.as_ref(), blobs.as_ref(), &user, &hash)).await {
        Ok(Ok(Fetched::Photo(b, mime, sensitive, _))) => photo_response(b, &mime, sensitive),
        Ok(Ok(Fetched::Refused(PhotoAccess::Forbidden))) => {
            error(StatusCode::FORBIDDEN, "forbidden", "无权查看这张照片：它所属的记录不在您的查看范围内")
        }
        Ok(Ok(Fetched::Refused(_))) => unknown(),
        Ok(Ok(Fetched::NotUploaded)) => {
            error(StatusCode::NOT_FOUND, "photo_not_uploaded", "照片尚未从拍摄人的手机上传完成，请稍后再试")
        }
        Ok(Err(e)) => store_error(&e),
        Err(_) => crate::api::blocking_error(),
    }
}

/// What garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Blobs kept (referenced, or unreferenced within the grace period).
    pub kept: usize,
}

/// Remove every blob (complete or partial) no live record references and
/// nobody wrote for `grace_ms`: a photo of a deleted record goes, a photo
/// whose upload is under way does not. An upload whose record goes
/// meanwhile is refused (`photo_unknown`), so nothing is recreated.
pub fn collect_garbage(
    store: &dyn ServerStore,
    blobs: &dyn BlobStore,
    now: i64,
    grace_ms: i64,
) -> anyhow::Result<GcReport> {
    let live = store.live_photos()?;
    let mut report = GcReport::default();
    for b in blobs.list()? {
        if live.contains(&b.hash) || now.saturating_sub(b.written_at) < grace_ms {
            report.kept += 1;
            continue;
        }
        if blobs.delete(&b.hash)? {
            report.removed += 1;
            report.bytes_freed += b.received;
        }
    }
    Ok(report)
}
