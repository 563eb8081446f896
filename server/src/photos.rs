//! Photos over HTTP, and who may send and see which.
//!
//! A photo's **owners** are the users who proved they hold its bytes: their
//! upload of it completed, hash checked (the photo ledger,
//! [`crate::store::PhotoLedger`]). A record's reference (`by`, who attached
//! it) counts only when `by` is an owner; so a reference that merely names
//! a hash reaches nothing and hides nothing.
//!
//! - `PUT /v1/photos/{hash}?offset=N`: a chunk of a photo's bytes. Records
//!   go first: the server takes bytes only for a photo a live record
//!   references as taken by the sender, into the sender's own upload
//!   (never a shared one: what a colleague sends can neither fill nor
//!   stall it), only up to the size the reference declares, and only
//!   within the sender's budgets (uploads under way, and begun in a day),
//!   all checked before the body is read. The answer ([`PhotoProgress`])
//!   says how many bytes of the sender's upload the server holds; a chunk
//!   past them is `409 offset_mismatch` with the same figure, so a phone
//!   whose answer was lost resumes at the right byte. The last byte checks
//!   the SHA-256 (`422 hash_mismatch`) and makes the sender an owner. With
//!   less than four times `--min-free-disk-mib` free, uploads wait
//!   (`507 disk_full`) so photos never take the room records need.
//! - `GET /v1/photos/{hash}`: the bytes, for whoever may read a live
//!   record whose reference names an owner ([`access`]).
//!   Served with its own media type, `nosniff` and a sandboxing CSP.
//! - `GET /v1/photos/wanted`: the photos live records say the user took
//!   and the user has not uploaded: what their phone sends again (after a
//!   deleted record was restored and its photo collected, say).
//! - the dashboard shows photos through [`fetch`], auditing each view of a
//!   sensitive record's photo;
//! - [`collect_garbage`]: blobs no live record references, and uploads no
//!   one wrote to, after a grace.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use gridsync_core::model::{size_zh, valid_hash};
use gridsync_core::protocol::{MAX_PHOTO_CHUNK, PhotoProgress, PhotosWanted, WantedPhoto};

use crate::AppState;
use crate::access::may_read;
use crate::api::{Held, authenticate, error, read_body_limited, store_error};
use crate::blobs::{BlobError, BlobStore};
use crate::store::{PhotoHolder, ServerStore, StoreError, UploadBegun, User};

/// Whether a user may see a photo, judged on the records referencing it
/// and on who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoAccess {
    /// No live record references it.
    Unknown,
    /// Records reference it, none that opens it to the user.
    Forbidden,
    /// The user may read a record referencing it, and nobody has uploaded
    /// its bytes yet.
    NotUploaded,
    /// The user may read a record whose reference names an owner.
    Allowed {
        /// Media type.
        mime: String,
        /// A record opening it to the user is sensitive (the view is audited).
        sensitive: bool,
        /// The record the access was granted through.
        record_id: uuid::Uuid,
    },
}

/// Judge `user`'s access to a photo held by `holders` and owned by
/// `owners`: the user must be able to read a live record whose reference
/// was made by an owner (someone who uploaded the bytes). A reference by
/// anyone else opens nothing, and narrows nothing: a colleague who names
/// a grid manager's hazard photo in a key-person visit hides it from no
/// one. Before anyone uploaded it, a reader of a record holding it is told
/// it is not uploaded yet.
pub fn access(user: &User, holders: &[PhotoHolder], owners: &[String]) -> PhotoAccess {
    let live: Vec<&PhotoHolder> = holders.iter().filter(|h| !h.deleted).collect();
    if live.is_empty() {
        return PhotoAccess::Unknown;
    }
    let readable = |h: &&&PhotoHolder| may_read(user, &h.grid, h.sensitive);
    if owners.is_empty() {
        return if live.iter().any(|h| readable(&h)) { PhotoAccess::NotUploaded } else { PhotoAccess::Forbidden };
    }
    let opening: Vec<&&PhotoHolder> =
        live.iter().filter(|h| owners.contains(&h.attachment.by)).filter(readable).collect();
    let Some(first) = opening.first() else { return PhotoAccess::Forbidden };
    // A view through a sensitive record is audited, whichever other
    // record would have opened it too.
    let sensitive = opening.iter().find(|h| h.sensitive);
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
    let user = auth.user.id.clone();
    let (store, blobs) = (state.store.clone(), state.blobs.clone());
    // Photos stop well before the disk is full (at four times the free
    // space /healthz asks for), so they never take the room records need.
    let (dir, min_free) = (state.limits.data_dir.clone(), state.limits.min_free_disk_bytes.saturating_mul(4));
    let (quota, now) = (state.limits.photo_quota, state.clock.now());
    let (h, u) = (hash.clone(), user.clone());
    let judged = web::block(move || -> Result<Judged, StoreError> {
        if let Some(dir) = dir {
            crate::store::check_free_space(&dir, min_free)?;
        }
        let holders = store.photo_holders(&h)?;
        let live: Vec<&PhotoHolder> = holders.iter().filter(|x| !x.deleted).collect();
        if live.is_empty() {
            return Ok(Judged::Unknown);
        }
        let Some(mine) = live.iter().find(|x| x.attachment.by == u) else { return Ok(Judged::NotTheTaker) };
        let size = u64::try_from(mine.attachment.size).unwrap_or(0);
        if offset > size {
            return Ok(Judged::BadOffset);
        }
        // The sender proved these bytes before: nothing to send again.
        let ledger = store.photo_ledger();
        let blob = blobs.complete(&h).map_err(|e| StoreError::Open(e.to_string()))?;
        if blob.is_some() && ledger.photo_owners(&h)?.contains(&u) {
            return Ok(Judged::Done(size));
        }
        let begun = ledger.begin_photo_upload(&h, &u, mine.attachment.size, now, &quota)?;
        Ok(Judged::Take { size, begun })
    })
    .await;
    let (size, begun) = match judged {
        Ok(Ok(Judged::Take { size, begun })) => (size, begun),
        Ok(Ok(Judged::Done(size))) => {
            return HttpResponse::Ok().json(PhotoProgress { received: size, size, complete: true });
        }
        Ok(Ok(Judged::Unknown)) => return unknown(),
        Ok(Ok(Judged::NotTheTaker)) => {
            return error(StatusCode::FORBIDDEN, "forbidden", "只有记录中登记的拍摄人可以上传这张照片");
        }
        Ok(Ok(Judged::BadOffset)) => return error(StatusCode::BAD_REQUEST, "bad_offset", "上传位置超出照片大小"),
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
    match begun {
        UploadBegun::Continuing | UploadBegun::Started => {}
        UploadBegun::OverUnfinished { held } => {
            tracing::debug!(device = %auth.device.id, held, "photo upload refused: too many unfinished uploads");
            return over_quota(
                "600",
                &format!("您还有{}的照片没有传完，请等这些照片传完后再传新照片（记录同步不受影响）", size_zh(held)),
            );
        }
        UploadBegun::OverDaily { used } => {
            tracing::debug!(device = %auth.device.id, used, "photo upload refused: daily budget spent");
            return over_quota(
                "3600",
                &format!("今天已上传{}照片，达到每日上限，其余照片稍后自动上传（记录同步不受影响）", size_zh(used)),
            );
        }
    }
    let Ok(limit) = chunk_limit(size, offset) else {
        return error(StatusCode::BAD_REQUEST, "bad_offset", "上传位置超出照片大小");
    };
    let mut held = Held::new(&state.inflight);
    let too_large = format!("上传的照片数据超出记录中登记的大小：这一段最多{}", size_zh(limit as i64));
    let body = match read_body_limited(&req, payload, limit, &state.limits, &mut held, &too_large).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (store, blobs) = (state.store.clone(), state.blobs.clone());
    let (h, u) = (hash.clone(), user.clone());
    let now = state.clock.now();
    let done = web::block(move || {
        let appended = blobs.append(&h, &u, size, offset, &body);
        let ledger = store.photo_ledger();
        let noted = match &appended {
            Ok(p) if p.complete => ledger.finish_photo_upload(&h, &u, i64::try_from(size).unwrap_or(i64::MAX), now),
            Ok(p) => ledger.note_photo_upload(&h, &u, i64::try_from(p.received).unwrap_or(0), now),
            Err(BlobError::HashMismatch(_)) => ledger.drop_photo_upload(&h, &u),
            Err(_) => Ok(()),
        };
        (appended, noted)
    })
    .await;
    match done {
        Ok((_, Err(e))) => store_error(&e),
        Ok((Ok(p), Ok(()))) => {
            if p.complete {
                tracing::info!(device = %auth.device.id, photo = %hash, size, "photo received");
            }
            HttpResponse::Ok().json(PhotoProgress { received: p.received, size, complete: p.complete })
        }
        Ok((Err(BlobError::Gap { received, .. }), _)) => HttpResponse::Conflict().json(serde_json::json!({
            "error": "offset_mismatch",
            "message_zh": "上传位置与服务器已收到的不一致，将从服务器已收到处继续",
            "received": received,
            "size": size,
            "complete": false,
        })),
        Ok((Err(BlobError::PastEnd { .. }), _)) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "photo_too_large", "上传的数据超出记录中登记的照片大小")
        }
        Ok((Err(BlobError::HashMismatch(_)), _)) => {
            tracing::warn!(device = %auth.device.id, photo = %hash, "photo bytes did not match their hash");
            error(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", "照片数据校验失败，已丢弃，将重新上传")
        }
        Ok((Err(BlobError::Io(e)), _)) => store_error(&StoreError::Open(e)),
        Err(_) => crate::api::blocking_error(),
    }
}

/// What the checks before an upload's body found.
enum Judged {
    /// No live record references the photo.
    Unknown,
    /// Live records reference it, none as taken by the sender.
    NotTheTaker,
    /// The offset is past the declared size.
    BadOffset,
    /// The sender owns the photo and it is complete (its declared size).
    Done(u64),
    /// Take the chunk into the sender's upload of `size` bytes.
    Take {
        /// Declared size.
        size: u64,
        /// The budgets' verdict.
        begun: UploadBegun,
    },
}

/// 429 `photo_quota`, with when to try again.
fn over_quota(retry_after: &'static str, message_zh: &str) -> HttpResponse {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "photo_quota", message_zh);
    r.headers_mut()
        .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static(retry_after));
    r
}

/// Most photos one `GET /v1/photos/wanted` answer names.
pub const WANTED_PAGE: usize = 500;

/// `GET /v1/photos/wanted`: the photos live records say the user took of
/// which the server holds no upload of theirs, by hash; `more` when there
/// are more than one answer names (the phone asks again after sending).
pub async fn wanted(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let store = state.store.clone();
    let user = auth.user.id.clone();
    match web::block(move || store.photo_ledger().photos_wanted(&user, WANTED_PAGE + 1)).await {
        Ok(Ok(mut rows)) => {
            let more = rows.len() > WANTED_PAGE;
            rows.truncate(WANTED_PAGE);
            let wanted = rows
                .into_iter()
                .map(|w| WantedPhoto { hash: w.hash, size: u64::try_from(w.size).unwrap_or(0) })
                .collect();
            HttpResponse::Ok().json(PhotosWanted { wanted, more })
        }
        Ok(Err(e)) => store_error(&e),
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
    let owners = if holders.iter().any(|h| !h.deleted) { store.photo_ledger().photo_owners(hash)? } else { vec![] };
    match access(user, &holders, &owners) {
        PhotoAccess::Allowed { mime, sensitive, record_id } => {
            match blobs.get(hash).map_err(|e| StoreError::Open(e.to_string()))? {
                Some(b) => Ok(Fetched::Photo(b, mime, sensitive, record_id)),
                None => Ok(Fetched::NotUploaded),
            }
        }
        PhotoAccess::NotUploaded => Ok(Fetched::NotUploaded),
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
    /// Blobs and unfinished uploads removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Of those, unfinished uploads (expired whether or not a record
    /// references their photo).
    pub unfinished_removed: usize,
    /// Blobs and uploads kept (referenced, or written within the grace period).
    pub kept: usize,
    /// Owners forgotten of photos whose bytes the store no longer holds
    /// (their phones are asked for them again).
    pub owners_forgotten: usize,
}

/// Why `gc-photos` stopped: the record store or the photo store failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The record store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The photo store failed.
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
}

/// Remove every complete blob no live record references and nobody wrote
/// for `grace_ms` (a photo of a deleted record goes, a photo just uploaded
/// does not), and every upload nobody wrote to for `grace_ms`, finished or
/// not, whatever record names its photo: an upload that never completes
/// is not kept for ever. Owners of photos whose bytes are gone are
/// forgotten, so `GET /v1/photos/wanted` asks their phones again (a
/// deleted record restored after its photo was collected gets it back
/// from the phone that took it). An upload whose record goes meanwhile is
/// refused (`photo_unknown`), so nothing is recreated.
pub fn collect_garbage(
    store: &dyn ServerStore,
    blobs: &dyn BlobStore,
    now: i64,
    grace_ms: i64,
) -> Result<GcReport, GcError> {
    let live = store.live_photos()?;
    let ledger = store.photo_ledger();
    let old = |written_at: i64| now.saturating_sub(written_at) >= grace_ms;
    let mut report = GcReport::default();
    let mut complete = std::collections::HashSet::new();
    for b in blobs.list()? {
        match &b.upload {
            None if live.contains(&b.hash) || !old(b.written_at) => {
                complete.insert(b.hash);
                report.kept += 1;
            }
            None => {
                // Its owners first: nobody is counted as holding bytes that are gone.
                ledger.drop_photo_owners(&b.hash, None)?;
                if blobs.delete(&b.hash)? {
                    report.removed += 1;
                    report.bytes_freed += b.received;
                }
            }
            Some(_) if !old(b.written_at) => report.kept += 1,
            Some(key) => {
                if blobs.delete_upload(&b.hash, key)? {
                    report.removed += 1;
                    report.unfinished_removed += 1;
                    report.bytes_freed += b.received;
                }
            }
        }
    }
    for u in ledger.photo_uploads()? {
        if old(u.written_at) {
            ledger.drop_photo_upload(&u.hash, &u.user_id)?;
        }
    }
    for o in ledger.all_photo_owners()? {
        if !complete.contains(&o.hash) && old(o.at) {
            ledger.drop_photo_owners(&o.hash, Some(&o.user_id))?;
            report.owners_forgotten += 1;
        }
    }
    Ok(report)
}
