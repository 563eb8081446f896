//! The supervisors' web dashboard: Chinese pages rendered on the server
//! (no JavaScript, no CDN; the CSS is inline), signed in with a password.
//!
//! - Accounts: argon2id passwords set with `gridsync-server set-password`;
//!   sessions are random tokens in an `HttpOnly; SameSite=Strict` cookie
//!   (only their SHA-256 is stored); every POST form carries the session's
//!   CSRF token, compared in constant time; 5 failed sign-ins lock the
//!   account for 15 minutes.
//! - Scope: every page checks the signed-in user's grid ([`guard`]); out of
//!   scope is a Chinese 403 page. Household ledgers are shown only to the
//!   roles that may read sensitive records, and every view is audited.
//! - Audit: sign-ins (and failures), sign-outs, household views, report
//!   downloads and submissions, device revocations; county staff read it.
//!
//! # Layout
//!
//! Every page is one function of the store, the signed-in user and the
//! request ([`request::Page`]), named in one route table ([`ROUTES`]);
//! [`configure`] mounts the table behind one handler that reads the session
//! (and, for a form, its body and CSRF token) before the page runs on the
//! blocking pool. Pages are grouped by what they show:
//!
//! - [`overview`]: the start pages (county, township, village);
//! - [`hazards`], [`disputes`], [`records`] (visits, ledgers, photos),
//!   [`provenance`], [`map`]: records and their lists;
//! - [`monthly`], [`reviews`], [`figures`]: reports, meetings and figures;
//! - [`people`], [`admin`] (devices, audit log): the county's administration;
//! - [`guard`] (who may open which record or node), [`lists`] (paging and
//!   loading), [`edit`] (changes merged like a phone's), [`html`],
//!   [`request`], [`response`], [`password`]: the parts pages share.
//!
//! See `docs/dashboard.md`.

pub mod admin;
pub mod disputes;
pub mod edit;
pub mod figures;
pub mod guard;
pub mod hazards;
pub mod html;
pub mod lists;
pub mod map;
pub mod monthly;
pub mod overview;
pub mod password;
pub mod people;
pub mod provenance;
pub mod records;
pub mod request;
pub mod response;
pub mod reviews;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

pub use request::{Ctx, Page, Req};
pub use response::{Out, WebError};
use response::{redirect, secure_headers, set_cookie};

use crate::AppState;
use crate::auth;
use crate::store::{AuditEntry, ServerStore, StoreError, User, WebSession};

/// Session cookie name.
pub const SESSION_COOKIE: &str = "gs_session";
/// Pre-sign-in CSRF cookie name (protects the sign-in form).
pub const PRE_COOKIE: &str = "gs_pre";
/// How long a session lasts, ms (8 hours: a working day at the office).
pub const SESSION_MS: i64 = 8 * 3_600_000;
/// Failed sign-ins before the account is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a lockout lasts, ms.
pub const LOCK_MS: i64 = 15 * 60_000;
/// Largest form body the dashboard reads (a monthly report's 20,000
/// characters, URL-encoded, fit with room to spare).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;
/// Most fields in one form (the largest, the agencies' counts of a county,
/// has 121 villages × 3 kinds): each field costs its strings however short
/// it is, so this, not the byte limit, bounds a form's memory.
pub const MAX_FORM_FIELDS: usize = 2_000;
/// Largest file upload (the agencies' CSV).
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

/// A route of the dashboard: its method, its path, and the page.
pub struct Route {
    /// `GET` pages show; `POST` pages take a form (with the CSRF token).
    pub method: Method,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// The page.
    pub page: Page,
}

/// The methods the dashboard answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Show a page.
    Get,
    /// Send a form.
    Post,
}

const fn get(path: &'static str, page: Page) -> Route {
    Route { method: Method::Get, path, page }
}

const fn post(path: &'static str, page: Page) -> Route {
    Route { method: Method::Post, path, page }
}

/// Every page of the dashboard (sign-in and sign-out aside).
pub const ROUTES: &[Route] = &[
    get("/web", overview::overview),
    get("/web/t/{t}", overview::township),
    get("/web/t/{t}/{v}", overview::village),
    get("/web/disputes", disputes::list),
    get("/web/disputes/{id}", disputes::page),
    post("/web/disputes/{id}/act", disputes::act),
    get("/web/hazards", hazards::list),
    get("/web/hazards/{id}", hazards::page),
    post("/web/hazards/{id}/act", hazards::act),
    get("/web/map", map::page),
    get("/web/photos/{hash}", records::photo),
    get("/web/households/{id}", records::household),
    get("/web/visits/{id}", records::visit),
    get("/web/records/{id}/provenance", provenance::page),
    get("/web/records/{id}/provenance.json", provenance::download),
    get("/web/reports/{t}/{month}", monthly::page),
    post("/web/reports/{t}/{month}/draft", monthly::draft),
    post("/web/reports/{t}/{month}/confirm", monthly::confirm),
    post("/web/reports/{t}/{month}/submit", monthly::submit),
    post("/web/reports/{t}/{month}/return", monthly::send_back),
    get("/web/reviews/{t}", reviews::page),
    post("/web/reviews/{t}", reviews::create),
    get("/web/devices", admin::devices),
    post("/web/devices/{id}/revoke", admin::revoke_device),
    get("/web/audit", admin::audit),
    get("/web/four-none", figures::four_none),
    get("/web/four-none/{file}", figures::four_none_file),
    get("/web/figures/{name}", figures::figure),
    get("/web/case-counts", figures::case_counts),
    post("/web/case-counts", figures::save_form),
    post("/web/case-counts/csv", figures::save_csv),
    get("/web/users", people::list),
    post("/web/users", people::create),
    get("/web/users/{id}", people::page),
    post("/web/users/{id}/update", people::update),
    post("/web/users/{id}/password", people::reset_password),
    post("/web/users/{id}/active", people::set_active),
    post("/web/users/{id}/enroll", people::enroll),
    post("/signout", sign_out),
];

/// Mount the dashboard: the sign-in page and form, and [`ROUTES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sign_in_page)).route("/signin", web::post().to(sign_in));
    for r in ROUTES {
        let page = r.page;
        match r.method {
            Method::Get => cfg.route(
                r.path,
                web::get().to(move |req: HttpRequest, state: web::Data<AppState>| show(req, state, page)),
            ),
            Method::Post => cfg.route(
                r.path,
                web::post().to(move |req: HttpRequest, state: web::Data<AppState>, body: web::Payload| {
                    send(req, state, body, page)
                }),
            ),
        };
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    header.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

fn client_ip(req: &HttpRequest) -> String {
    let header = req.app_data::<web::Data<AppState>>().and_then(|s| s.limits.client_ip_header.clone());
    crate::ratelimit::client_ip(req, header.as_deref()).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

/// The session cookie of a request, if it sent one.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    cookie(req, SESSION_COOKIE)
}

/// The signed-in, active user holding session cookie `token` (for the
/// reports API, which takes a web session as well as a device token).
pub fn session_user(store: &dyn ServerStore, token: &str, now: i64) -> Result<Option<User>, StoreError> {
    match session(store, Some(token), now) {
        Ok(Some((session, user))) => {
            let _ = session;
            Ok(Some(user))
        }
        Ok(None) => Ok(None),
        Err(WebError::Store(e)) => Err(StoreError::Open(e)),
        Err(_) => Ok(None),
    }
}

/// The session with cookie `token` and its active user, if there is one.
fn session(store: &dyn ServerStore, token: Option<&str>, now: i64) -> Result<Option<(WebSession, User)>, WebError> {
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 128) else { return Ok(None) };
    let Some(s) = store.web_session(&auth::hash_secret(token), now)? else { return Ok(None) };
    let Some(account) = store.account(&s.user_id)? else { return Ok(None) };
    if account.deactivated_at.is_some() {
        return Ok(None);
    }
    Ok(Some((s, account.user)))
}

/// The request's parts a page reads, but its form.
fn request_parts(req: &HttpRequest) -> Req {
    let ci = req.connection_info();
    Req {
        params: req.match_info().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        query: web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default(),
        origin: format!("{}://{}", ci.scheme(), ci.host()),
        ..Req::default()
    }
}

/// Run `page` for the signed-in user on the blocking pool; `csrf`: the
/// token the form sent, checked before the page runs.
async fn run(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    r: Req,
    csrf: Option<String>,
    page: Page,
) -> Result<HttpResponse, WebError> {
    let store = state.store.clone();
    let token = cookie(req, SESSION_COOKIE);
    let (ip, now) = (client_ip(req), state.clock.now());
    let (blobs, tiles) = (state.blobs.clone(), state.limits.map_tiles.clone());
    let out = web::block(move || {
        let (session, user) = session(store.as_ref(), token.as_deref(), now)?.ok_or(WebError::SignIn)?;
        if let Some(sent) = &csrf
            && !ct_eq(sent.as_bytes(), session.csrf.as_bytes())
        {
            return Err(WebError::Forbidden("表单已过期或来源不明（CSRF校验失败），请刷新页面后重试".into()));
        }
        let ctx = Ctx { user, session, ip, now, blobs, tiles };
        page(store.as_ref(), &ctx, &r)
    })
    .await
    .map_err(|_| WebError::Store("blocking pool".into()))??;
    Ok(out.into_response())
}

/// `GET` a page.
async fn show(req: HttpRequest, state: web::Data<AppState>, page: Page) -> Result<HttpResponse, WebError> {
    let r = request_parts(&req);
    run(&req, &state, r, None, page).await
}

/// `POST` a form to a page: its body read under the dashboard's limits
/// (URL-encoded, or multipart with a file), its CSRF token checked.
async fn send(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut payload: web::Payload,
    page: Page,
) -> Result<HttpResponse, WebError> {
    use futures_util::StreamExt;
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let multipart = ctype.starts_with("multipart/form-data");
    let limit = if multipart { MAX_UPLOAD_BYTES } else { MAX_FORM_BYTES };
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebError::Bad("提交的数据接收不完整，请重试".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(WebError::TooLarge(format!("提交的内容过长（上限{}KB），请删减后重试", limit / 1024)));
        }
        body.extend_from_slice(&chunk);
    }
    let mut r = request_parts(&req);
    if multipart {
        let parts = request::multipart(&ctype, &body).ok_or_else(|| WebError::Bad("请选择要上传的文件".into()))?;
        for p in parts {
            if p.file {
                r.files.push((p.name, p.bytes));
            } else {
                r.pairs.push((p.name, String::from_utf8_lossy(&p.bytes).into_owned()));
            }
        }
    } else {
        r.pairs = request::form_pairs(&body)?;
    }
    r.form = r.pairs.iter().cloned().collect();
    let csrf = r.form.get("csrf").cloned().unwrap_or_default();
    run(&req, &state, r, Some(csrf), page).await
}

// ---- sign-in and sign-out ----

fn sign_in_html(pre: &str, message: Option<&str>) -> String {
    let msg = message.map(|m| format!("<p class=\"msg\" id=\"message\">{}</p>", html::esc(m))).unwrap_or_default();
    let body = format!(
        "<div class=\"card login\"><h2>登录</h2>{msg}<form method=\"post\" action=\"/signin\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"user\">账号</label><input id=\"user\" name=\"user\" autocomplete=\"username\" required>\
         <label for=\"password\">密码</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <p><button class=\"btn\" type=\"submit\" id=\"signin\">登录</button></p></form>\
         <p class=\"muted\">密码由县综治中心管理员设置。连续输错5次将锁定15分钟。</p></div>",
        html::esc(pre)
    );
    html::page("登录", None, &body)
}

fn sign_in_form(message: Option<&str>, status: StatusCode) -> HttpResponse {
    let pre = auth::new_token();
    let mut b = HttpResponse::build(status);
    secure_headers(&mut b);
    b.append_header(("set-cookie", set_cookie(PRE_COOKIE, &pre, 3600)))
        .content_type("text/html; charset=utf-8")
        .body(sign_in_html(&pre, message))
}

/// `GET /`: the sign-in page (or the overview when signed in).
async fn sign_in_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let token = cookie(&req, SESSION_COOKIE);
    let now = state.clock.now();
    let signed_in = web::block(move || matches!(session(store.as_ref(), token.as_deref(), now), Ok(Some(_))))
        .await
        .unwrap_or(false);
    if signed_in { redirect("/web") } else { sign_in_form(None, StatusCode::OK) }
}

enum SignIn {
    Ok(String),
    Refused(&'static str),
    Busy,
}

/// Password checks running now. Each argon2id check takes about 19 MiB and
/// most of a core for a fraction of a second: beyond this many at once the
/// server answers "busy" instead of queueing memory.
static PASSWORD_CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Most password checks at once.
pub const MAX_PASSWORD_CHECKS: usize = 4;

/// One running password check, released when dropped.
struct PasswordCheck;

impl PasswordCheck {
    fn start() -> Option<PasswordCheck> {
        use std::sync::atomic::Ordering;
        PASSWORD_CHECKS
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < MAX_PASSWORD_CHECKS).then_some(n + 1))
            .ok()
            .map(|_| PasswordCheck)
    }
}

impl Drop for PasswordCheck {
    fn drop(&mut self) {
        PASSWORD_CHECKS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `POST /signin`
async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(ip) = crate::ratelimit::client_ip(&req, state.limits.client_ip_header.as_deref())
        && let Err(wait) = state.sign_in_limiter.take(ip, std::time::Instant::now())
    {
        let mut r = sign_in_form(Some("登录尝试次数过多，请稍后再试"), StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let form = form.into_inner();
    let pre = cookie(&req, PRE_COOKIE).unwrap_or_default();
    let sent = form.get("csrf").cloned().unwrap_or_default();
    if pre.is_empty() || !ct_eq(pre.as_bytes(), sent.as_bytes()) {
        return sign_in_form(Some("登录表单已过期，请重新输入"), StatusCode::FORBIDDEN);
    }
    let user_id = form.get("user").map(|s| s.trim().to_owned()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    if user_id.is_empty() || user_id.len() > 64 || password.is_empty() || password.len() > 1024 {
        return sign_in_form(Some("请输入账号和密码"), StatusCode::BAD_REQUEST);
    }
    let store = state.store.clone();
    let ip = client_ip(&req);
    let now = state.clock.now();
    let r = web::block(move || -> Result<SignIn, StoreError> {
        let audit = |action: &str| {
            store.append_audit(&AuditEntry {
                seq: 0,
                at: now,
                user_id: user_id.clone(),
                action: action.into(),
                target: String::new(),
                ip: ip.clone(),
            })
        };
        let Some(_check) = PasswordCheck::start() else {
            return Ok(SignIn::Busy);
        };
        let stored = store.web_password(&user_id)?;
        let Some(pw) = stored else {
            // Spend the same time as a real check so ids cannot be probed.
            let _ = password::verify(&password, dummy_hash());
            audit("sign_in_failed")?;
            return Ok(SignIn::Refused("账号或密码错误"));
        };
        // Decided and counted in one step before the check: of many
        // attempts at once, no more than the limit are ever checked.
        if !store.begin_sign_in(&user_id, now, MAX_FAILURES, LOCK_MS)? {
            audit("sign_in_locked")?;
            return Ok(SignIn::Refused("连续输错密码次数过多，账号已锁定15分钟，请稍后再试"));
        }
        if !password::verify(&password, &pw.hash) {
            audit("sign_in_failed")?;
            return Ok(SignIn::Refused("账号或密码错误"));
        }
        if store.account(&user_id)?.is_some_and(|a| a.deactivated_at.is_some()) {
            audit("sign_in_deactivated")?;
            return Ok(SignIn::Refused("该账号已停用，请联系县综治中心"));
        }
        store.clear_failed_sign_ins(&user_id)?;
        let token = auth::new_token();
        store.create_web_session(&WebSession {
            token_hash: auth::hash_secret(&token),
            user_id: user_id.clone(),
            csrf: auth::new_token(),
            created_at: now,
            expires_at: now + SESSION_MS,
        })?;
        audit("sign_in")?;
        Ok(SignIn::Ok(token))
    })
    .await;
    match r {
        Ok(Ok(SignIn::Ok(token))) => {
            let mut b = HttpResponse::SeeOther();
            secure_headers(&mut b);
            b.append_header(("set-cookie", set_cookie(SESSION_COOKIE, &token, SESSION_MS / 1000)))
                .append_header(("set-cookie", set_cookie(PRE_COOKIE, "", 0)))
                .insert_header(("location", "/web"))
                .finish()
        }
        Ok(Ok(SignIn::Refused(msg))) => sign_in_form(Some(msg), StatusCode::UNAUTHORIZED),
        Ok(Ok(SignIn::Busy)) => {
            let mut r = sign_in_form(Some("登录的人较多，请稍等几秒再试"), StatusCode::SERVICE_UNAVAILABLE);
            r.headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("5"));
            r
        }
        Ok(Err(e)) => actix_web::ResponseError::error_response(&WebError::from(e)),
        Err(_) => actix_web::ResponseError::error_response(&WebError::Store("blocking pool".into())),
    }
}

/// An argon2id hash of a random password, checked when the id is unknown.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| password::hash(&auth::new_token()).unwrap_or_default())
}

/// `POST /signout`: the session ends, and its cookie with it (a forged
/// sign-out is refused by the CSRF check and leaves the session as it was).
fn sign_out(s: &dyn ServerStore, ctx: &Ctx, _: &Req) -> Result<Out, WebError> {
    s.delete_web_session(&ctx.session.token_hash, ctx.now)?;
    ctx.audit(s, "sign_out", "")?;
    Ok(Out::SignedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn dummy_hash_is_a_valid_phc_string() {
        assert!(argon2::password_hash::PasswordHash::new(dummy_hash()).is_ok());
    }
}
