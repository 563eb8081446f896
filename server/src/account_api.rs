//! `GET /v1/directory` and `POST /v1/sign-out`: what a phone needs of its
//! account besides sync.
//!
//! The directory is the names an app shows for the ids in what its user
//! reads, and no more ([`directory_for`]). It carries a version (a hash of
//! its content), also its ETag, so a phone checking an unchanged directory
//! gets an empty 304.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use gridsync_core::grid::{GridPath, Role};
use gridsync_core::protocol::{Directory, DirectoryEntry, SignOutRequest, Signature};
use gridsync_core::signing::verify_sign_out;
use sha2::{Digest, Sha256};

use crate::api::{AppState, Held, authenticate, blocking_error, error, read_body, store_error};
use crate::store::{AuditEntry, Device, ServerStore, User};

/// Whether `node` is in `scope` or above it.
fn visible(scope: &GridPath, node: &GridPath) -> bool {
    scope.contains(node) || node.contains(scope)
}

/// Whether `user`'s directory names `other`.
///
/// A role that reads records gets the people who can appear in them: those
/// whose grid is in the user's scope or above it (the colleagues who write
/// there, the leaders, supervisors and chiefs who step in, the county
/// staff and county agencies, whose counts its reports show). Agency staff
/// read no records (`access::may_read`), only the county's four-none
/// counts by village: they get the county staff and the agencies' own
/// accounts, and no grid manager, village leader, supervisor or chief.
fn names(user: &User, other: &User) -> bool {
    if user.role == Role::AgencyStaff {
        return matches!(other.role, Role::CountyStaff | Role::AgencyStaff);
    }
    visible(&user.scope(), &other.grid)
}

/// The directory for `user`, from the store: the grid nodes in the user's
/// scope and above it (agency staff: every node, for the county's counts
/// by village), and the users [`names`] allows.
pub fn directory_for(store: &dyn ServerStore, user: &User) -> Result<Directory, crate::store::StoreError> {
    let scope = if user.role == Role::AgencyStaff { GridPath::county() } else { user.scope() };
    let mut grids: Vec<DirectoryEntry> = store
        .grid_nodes()?
        .into_iter()
        .filter(|n| visible(&scope, &n.path))
        .map(|n| DirectoryEntry { id: n.path.to_string(), name: n.name, role: String::new(), grid: String::new() })
        .collect();
    grids.sort_by(|a, b| a.id.cmp(&b.id));
    let mut users: Vec<DirectoryEntry> = store
        .users()?
        .into_iter()
        .filter(|u| names(user, u))
        .map(|u| DirectoryEntry {
            id: u.id,
            name: u.display_name,
            role: u.role.as_str().to_owned(),
            grid: u.grid.to_string(),
        })
        .collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let mut d = Directory { version: String::new(), grids, users };
    let body = serde_json::to_vec(&(&d.grids, &d.users)).unwrap_or_default();
    d.version = hex::encode(&Sha256::digest(&body)[..12]);
    Ok(d)
}

/// `GET /v1/directory`: the names in the device user's scope; 304 when the
/// phone's `If-None-Match` names the current version.
pub async fn directory(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let store = state.store.clone();
    let d = match web::block(move || directory_for(store.as_ref(), &auth.user)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return store_error(&e),
        Err(_) => return blocking_error(),
    };
    let etag = format!("\"{}\"", d.version);
    let have = req.headers().get("if-none-match").and_then(|v| v.to_str().ok());
    if have.is_some_and(|h| h.split(',').any(|t| t.trim() == etag)) {
        return HttpResponse::NotModified().insert_header(("etag", etag)).finish();
    }
    HttpResponse::Ok().insert_header(("etag", etag)).json(d)
}

/// How far a signed sign-out's time may be from the server's clock, ms.
pub const SIGN_OUT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Why a sign-out body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutRefused {
    /// No body, not JSON, or no signature: `400 signature_required`.
    Missing,
    /// Signed for another device, by another key, or altered: `403 bad_signature`.
    BadSignature,
    /// Signed too long ago (or ahead): `400 signature_expired`.
    Expired,
}

/// Check a `POST /v1/sign-out` body ([`SignOutRequest`]) from `device` at
/// server time `now`: it must name the device, be signed with the
/// device's registered key, and have been signed within
/// [`SIGN_OUT_WINDOW_MS`] of now. A sign-out, once taken, revokes the
/// device, so the same body posted again meets a revoked device (401).
pub fn check_sign_out(device: &Device, body: &[u8], now: i64) -> Result<(), SignOutRefused> {
    let r: SignOutRequest = serde_json::from_slice(body).map_err(|_| SignOutRefused::Missing)?;
    let sig = gridsync_core::signing::from_hex(&r.signature)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(Signature)
        .ok_or(SignOutRefused::Missing)?;
    let (Some(key), Ok(id)) = (&device.public_key, uuid::Uuid::parse_str(&device.id)) else {
        return Err(SignOutRefused::Missing);
    };
    if r.device_id != device.id || !verify_sign_out(key, &id, r.at, &sig) {
        return Err(SignOutRefused::BadSignature);
    }
    if r.at.abs_diff(now) > SIGN_OUT_WINDOW_MS.unsigned_abs() {
        return Err(SignOutRefused::Expired);
    }
    Ok(())
}

/// `POST /v1/sign-out`: the device's user signs out on it. The body is the
/// device's signed [`SignOutRequest`] ([`check_sign_out`]): a token alone
/// signs no phone out (`400 signature_required`, `403 bad_signature`,
/// `400 signature_expired`). Once taken, the device's token stops working
/// at once (the device is revoked, as from the dashboard) and the audit
/// log says who signed out where.
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let auth = match authenticate(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut held = Held::new(&state.inflight);
    let body = match read_body(&req, payload, 4 * 1024, &state.limits, &mut held).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match check_sign_out(&auth.device, &body, state.clock.now()) {
        Ok(()) => {}
        Err(SignOutRefused::Missing) => {
            return error(
                StatusCode::BAD_REQUEST,
                "signature_required",
                "退出登录需要本机的设备签名，请升级应用后重试",
            );
        }
        Err(SignOutRefused::BadSignature) => {
            tracing::warn!(device = %auth.device.id, "sign-out with a bad signature refused");
            return error(StatusCode::FORBIDDEN, "bad_signature", "退出登录的设备签名无效，服务器未执行");
        }
        Err(SignOutRefused::Expired) => {
            return error(
                StatusCode::BAD_REQUEST,
                "signature_expired",
                "退出登录请求已过期（或手机时间不准），请校准时间后重试",
            );
        }
    }
    let ip = crate::ratelimit::client_ip(&req, state.limits.client_ip_header.as_deref())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    let store = state.store.clone();
    let now = state.clock.now();
    let (device, user) = (auth.device.id.clone(), auth.user.id.clone());
    let done = web::block(move || {
        store.revoke_device(&device, now)?;
        store.append_audit(&AuditEntry {
            seq: 0,
            at: now,
            user_id: user,
            action: "device_sign_out".into(),
            target: device,
            ip,
        })
    })
    .await;
    match done {
        Ok(Ok(())) => {
            tracing::info!(device = %auth.device.id, user = %auth.user.id, "device signed out");
            HttpResponse::Ok().json(serde_json::json!({"signed_out": true}))
        }
        Ok(Err(e)) => store_error(&e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后再试"),
    }
}
