//! The supervisors' web dashboard: Chinese pages rendered on the server
//! (no JavaScript, no CDN; the CSS is inline), signed in with a password.
//!
//! - Accounts: argon2id passwords set with `gridsync-server set-password`;
//!   sessions are random tokens in an `HttpOnly; SameSite=Strict` cookie
//!   (only their SHA-256 is stored); every POST form carries the session's
//!   CSRF token, compared in constant time; 5 failed sign-ins lock the
//!   account for 15 minutes.
//! - Scope: every page checks the signed-in user's grid ([`access`]); out of
//!   scope is a Chinese 403 page. Household ledgers are shown only to the
//!   roles that may read sensitive records, and every view is audited.
//! - Audit: sign-ins (and failures), sign-outs, household views, report
//!   downloads and submissions, device revocations; county staff read it.
//!
//! See `docs/dashboard.md`.

mod disputes;
mod edit;
mod figures;
mod hazards;
pub mod html;
pub mod map;
mod monthly;
mod pages;
pub mod password;
mod people;
mod provenance;
mod reviews;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::AppState;
use crate::api::now_ms;
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

/// Mount the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sign_in_page))
        .route("/signin", web::post().to(sign_in))
        .route("/signout", web::post().to(sign_out))
        .route("/web", web::get().to(overview))
        .route("/web/t/{t}", web::get().to(township))
        .route("/web/t/{t}/{v}", web::get().to(village))
        .route("/web/disputes", web::get().to(disputes))
        .route("/web/disputes/{id}", web::get().to(dispute))
        .route("/web/disputes/{id}/act", web::post().to(dispute_act))
        .route("/web/hazards", web::get().to(hazards_list))
        .route("/web/hazards/{id}", web::get().to(hazard))
        .route("/web/hazards/{id}/act", web::post().to(hazard_act))
        .route("/web/map", web::get().to(map_page))
        .route("/web/photos/{hash}", web::get().to(photo))
        .route("/web/households/{id}", web::get().to(household))
        .route("/web/visits/{id}", web::get().to(visit))
        .route("/web/records/{id}/provenance", web::get().to(provenance_page))
        .route("/web/records/{id}/provenance.json", web::get().to(provenance_download))
        .route("/web/reports/{t}/{month}", web::get().to(report))
        .route("/web/reports/{t}/{month}/draft", web::post().to(report_draft))
        .route("/web/reports/{t}/{month}/confirm", web::post().to(report_confirm))
        .route("/web/reports/{t}/{month}/submit", web::post().to(submit_report))
        .route("/web/reports/{t}/{month}/return", web::post().to(report_return))
        .route("/web/reviews/{t}", web::get().to(reviews_page))
        .route("/web/reviews/{t}", web::post().to(review_create))
        .route("/web/devices", web::get().to(devices))
        .route("/web/devices/{id}/revoke", web::post().to(revoke_device))
        .route("/web/audit", web::get().to(audit))
        .route("/web/four-none", web::get().to(four_none))
        .route("/web/four-none/{file}", web::get().to(four_none_file))
        .route("/web/figures/{name}", web::get().to(figure))
        .route("/web/case-counts", web::get().to(case_counts))
        .route("/web/case-counts", web::post().to(case_counts_save))
        .route("/web/case-counts/csv", web::post().to(case_counts_csv))
        .route("/web/users", web::get().to(users))
        .route("/web/users", web::post().to(user_create))
        .route("/web/users/{id}", web::get().to(user_page))
        .route("/web/users/{id}/update", web::post().to(user_update))
        .route("/web/users/{id}/password", web::post().to(user_password))
        .route("/web/users/{id}/active", web::post().to(user_active))
        .route("/web/users/{id}/enroll", web::post().to(user_enroll));
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in.
    SignIn,
    /// Outside the user's scope or role.
    Forbidden(String),
    /// No such page or record.
    NotFound,
    /// Malformed input.
    Bad(String),
    /// Storage failed.
    Store(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::Store(e.to_string())
    }
}

impl From<crate::reports::ReportError> for WebError {
    fn from(e: crate::reports::ReportError) -> Self {
        use crate::reports::ReportError as R;
        match e {
            R::OutOfScope => WebError::Forbidden("超出您的网格范围".into()),
            R::Forbidden(why) => WebError::Forbidden(why),
            R::BadInput { message_zh, .. } => WebError::Bad(message_zh),
            R::Store(e) => e.into(),
        }
    }
}

/// What a page handler produces (built on the blocking pool, so `Send`).
pub enum Out {
    /// An HTML page.
    Html(String),
    /// An HTML page that shows images from one outside origin (the map's
    /// tiles), allowed by its `img-src` and nothing else.
    HtmlImages {
        /// The page.
        html: String,
        /// `scheme://host[:port]` of the images.
        img_origin: String,
    },
    /// A file download.
    File {
        /// Bytes.
        bytes: Vec<u8>,
        /// Content type.
        ctype: &'static str,
        /// File name.
        name: String,
    },
    /// See other (after a POST).
    Redirect(String),
    /// A photo, with its media type; `sensitive`: never cached.
    Photo {
        /// Bytes.
        bytes: Vec<u8>,
        /// Media type.
        mime: String,
        /// It belongs to sensitive records only.
        sensitive: bool,
    },
}

/// The signed-in user and their session.
pub struct Ctx {
    /// The user.
    pub user: User,
    /// Their session.
    pub session: WebSession,
    /// Client address, for the audit log.
    pub ip: String,
}

impl Ctx {
    /// The signed-in user as the write rules see them.
    pub fn writer(&self) -> gridsync_core::rules::Writer {
        gridsync_core::rules::Writer {
            user_id: self.user.id.clone(),
            role: self.user.role,
            grid: self.user.grid.clone(),
        }
    }

    /// Append to the audit log as this user.
    pub fn audit(&self, store: &dyn ServerStore, action: &str, target: &str) -> Result<(), WebError> {
        store.append_audit(&AuditEntry {
            seq: 0,
            at: now_ms(),
            user_id: self.user.id.clone(),
            action: action.into(),
            target: target.into(),
            ip: self.ip.clone(),
        })?;
        Ok(())
    }

    /// Page header.
    pub fn header(&self) -> html::Header<'_> {
        html::Header {
            name: &self.user.display_name,
            role: self.user.role.label_zh(),
            csrf: &self.session.csrf,
            county: self.user.role == gridsync_core::grid::Role::CountyStaff,
        }
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

fn set_cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}")
}

fn secure_headers(b: &mut actix_web::HttpResponseBuilder) {
    secure_headers_with_images(b, None);
}

fn secure_headers_with_images(b: &mut actix_web::HttpResponseBuilder, img_origin: Option<&str>) {
    let img = img_origin.map_or_else(|| "'self'".to_owned(), |o| format!("'self' {o}"));
    b.insert_header(("cache-control", "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header((
            "content-security-policy",
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; img-src {img}; form-action 'self'; frame-ancestors 'none'"
            ),
        ));
}

fn html_response(status: StatusCode, body: String) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    secure_headers(&mut b);
    b.content_type("text/html; charset=utf-8").body(body)
}

fn redirect(to: &str) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    secure_headers(&mut b);
    b.insert_header(("location", to.to_owned())).finish()
}

fn error_page(e: WebError) -> HttpResponse {
    let (status, title, msg) = match e {
        WebError::SignIn => return redirect("/"),
        WebError::Forbidden(why) => (StatusCode::FORBIDDEN, "无权访问", why),
        WebError::NotFound => (StatusCode::NOT_FOUND, "页面不存在", "没有找到该页面或记录".to_owned()),
        WebError::Bad(why) => (StatusCode::BAD_REQUEST, "请求有误", why),
        WebError::Store(e) => {
            tracing::error!(error = %e, "web page failed");
            (StatusCode::SERVICE_UNAVAILABLE, "服务暂时不可用", "服务器存储暂时不可用，请稍后重试".to_owned())
        }
    };
    let body = format!(
        "<div class=\"card\"><h2 id=\"error\">{} {}</h2><p>{}</p><p><a href=\"/web\">返回总览</a></p></div>",
        status.as_u16(),
        html::esc(title),
        html::esc(&msg)
    );
    html_response(status, html::page(title, None, &body))
}

fn out_response(o: Out) -> HttpResponse {
    match o {
        Out::Html(s) => html_response(StatusCode::OK, s),
        Out::HtmlImages { html, img_origin } => {
            let mut b = HttpResponse::Ok();
            secure_headers_with_images(&mut b, Some(&img_origin));
            b.content_type("text/html; charset=utf-8").body(html)
        }
        Out::Redirect(to) => redirect(&to),
        Out::Photo { bytes, mime, sensitive } => crate::photos::photo_response(bytes, &mime, sensitive),
        Out::File { bytes, ctype, name } => {
            let mut b = HttpResponse::Ok();
            secure_headers(&mut b);
            b.content_type(ctype)
                .insert_header(("content-disposition", format!("attachment; filename=\"{name}\"")))
                .body(bytes)
        }
    }
}

/// The session cookie of a request, if it sent one.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    cookie(req, SESSION_COOKIE)
}

/// The signed-in, active user holding session cookie `token` (for the
/// reports API, which takes a web session as well as a device token).
pub fn session_user(store: &dyn ServerStore, token: &str) -> Result<Option<User>, StoreError> {
    match session(store, Some(token), String::new()) {
        Ok(ctx) => Ok(Some(ctx.user)),
        Err(WebError::Store(e)) => Err(StoreError::Open(e)),
        Err(_) => Ok(None),
    }
}

/// The signed-in user of a request, read on the blocking pool.
fn session(store: &dyn ServerStore, token: Option<&str>, ip: String) -> Result<Ctx, WebError> {
    let token = token.filter(|t| !t.is_empty() && t.len() <= 128).ok_or(WebError::SignIn)?;
    let s = store.web_session(&auth::hash_secret(token), now_ms())?.ok_or(WebError::SignIn)?;
    let account = store.account(&s.user_id)?.ok_or(WebError::SignIn)?;
    if account.deactivated_at.is_some() {
        return Err(WebError::SignIn);
    }
    Ok(Ctx { user: account.user, session: s, ip })
}

/// Run a page for the signed-in user on the blocking pool.
async fn render<F>(req: &HttpRequest, state: &web::Data<AppState>, f: F) -> HttpResponse
where
    F: FnOnce(&dyn ServerStore, &Ctx) -> Result<Out, WebError> + Send + 'static,
{
    let store = state.store.clone();
    let token = cookie(req, SESSION_COOKIE);
    let ip = client_ip(req);
    let r = web::block(move || {
        let ctx = session(store.as_ref(), token.as_deref(), ip)?;
        f(store.as_ref(), &ctx)
    })
    .await;
    match r {
        Ok(Ok(o)) => out_response(o),
        Ok(Err(e)) => error_page(e),
        Err(_) => error_page(WebError::Store("blocking pool".into())),
    }
}

/// Like [`render`] for a POST form: checks the CSRF token first.
async fn render_post<F>(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    form: HashMap<String, String>,
    f: F,
) -> HttpResponse
where
    F: FnOnce(&dyn ServerStore, &Ctx, HashMap<String, String>) -> Result<Out, WebError> + Send + 'static,
{
    render(req, state, move |s, ctx| {
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if !ct_eq(sent.as_bytes(), ctx.session.csrf.as_bytes()) {
            return Err(WebError::Forbidden("表单已过期或来源不明（CSRF校验失败），请刷新页面后重试".into()));
        }
        f(s, ctx, form)
    })
    .await
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
    let ip = client_ip(&req);
    let signed_in = web::block(move || session(store.as_ref(), token.as_deref(), ip).is_ok()).await.unwrap_or(false);
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
    let r = web::block(move || -> Result<SignIn, StoreError> {
        let now = now_ms();
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
        Ok(Err(e)) => error_page(e.into()),
        Err(_) => error_page(WebError::Store("blocking pool".into())),
    }
}

/// An argon2id hash of a random password, checked when the id is unknown.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| password::hash(&auth::new_token()).unwrap_or_default())
}

/// `POST /signout`
async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let resp = render_post(&req, &state, form.into_inner(), |s, ctx, _| {
        s.delete_web_session(&ctx.session.token_hash, now_ms())?;
        ctx.audit(s, "sign_out", "")?;
        Ok(Out::Redirect("/".into()))
    })
    .await;
    let mut resp = resp;
    // Only a sign-out that happened clears the cookie: a forged one is
    // refused and leaves the session as it was.
    if resp.status() == StatusCode::SEE_OTHER
        && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0))
    {
        resp.headers_mut().append(actix_web::http::header::SET_COOKIE, v);
    }
    resp
}

// ---- pages ----

async fn overview(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    render(&req, &state, pages::overview).await
}

async fn township(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let t = path.into_inner();
    render(&req, &state, move |s, ctx| pages::township(s, ctx, &t)).await
}

async fn village(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (t, v) = path.into_inner();
    render(&req, &state, move |s, ctx| pages::village(s, ctx, &format!("{t}/{v}"))).await
}

async fn disputes(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let grid =
        web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok().and_then(|q| q.get("grid").cloned());
    render(&req, &state, move |s, ctx| pages::disputes(s, ctx, grid.as_deref())).await
}

async fn dispute(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| disputes::page(s, ctx, &id)).await
}

async fn dispute_act(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let id = path.into_inner();
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| disputes::act(s, ctx, &id, &form)).await
}

async fn hazards_list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = query(&req);
    render(&req, &state, move |s, ctx| {
        hazards::list(s, ctx, q.get("grid").map(String::as_str), q.get("status").map(String::as_str))
    })
    .await
}

async fn hazard(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| hazards::page(s, ctx, &id)).await
}

/// `GET /web/photos/{hash}`: a photo for the signed-in user, if they may
/// read a record that holds it as its owner's ([`crate::photos::access`]);
/// a view through a sensitive record goes in the audit log.
async fn photo(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let hash = path.into_inner();
    if !gridsync_core::model::valid_hash(&hash) {
        return error_page(WebError::NotFound);
    }
    let blobs = state.blobs.clone();
    render(&req, &state, move |s, ctx| {
        use crate::photos::{Fetched, PhotoAccess};
        match crate::photos::fetch(s, blobs.as_ref(), &ctx.user, &hash)? {
            Fetched::Photo(bytes, mime, sensitive, record) => {
                if sensitive {
                    ctx.audit(s, "view_photo", &format!("{record}/{hash}"))?;
                }
                Ok(Out::Photo { bytes, mime, sensitive })
            }
            Fetched::Refused(PhotoAccess::Forbidden) => {
                Err(WebError::Forbidden("无权查看这张照片：它所属的记录不在您的查看范围内".into()))
            }
            Fetched::Refused(_) => Err(WebError::NotFound),
            Fetched::NotUploaded => Err(WebError::NotFound),
        }
    })
    .await
}

async fn hazard_act(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let id = path.into_inner();
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| hazards::act(s, ctx, &id, &form)).await
}

async fn map_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = query(&req);
    let tiles = state.limits.map_tiles.clone();
    render(&req, &state, move |s, ctx| {
        map::page(s, ctx, q.get("grid").map(String::as_str), q.get("days").map(String::as_str), tiles.as_ref())
    })
    .await
}

/// A request's query string as a map (a malformed one reads as empty).
fn query(req: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default()
}

async fn visit(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| pages::visit(s, ctx, &id)).await
}

async fn provenance_page(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| provenance::page(s, ctx, &id)).await
}

async fn provenance_download(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| provenance::download(s, ctx, &id)).await
}

async fn household(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    render(&req, &state, move |s, ctx| pages::household(s, ctx, &id)).await
}

async fn report(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (t, month) = path.into_inner();
    render(&req, &state, move |s, ctx| monthly::page(s, ctx, &t, &month)).await
}

type FormFn = fn(&dyn ServerStore, &Ctx, &str, &str, &HashMap<String, String>) -> Result<Out, WebError>;

async fn report_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
    f: FormFn,
) -> HttpResponse {
    let (t, month) = path.into_inner();
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| f(s, ctx, &t, &month, &form)).await
}

async fn report_draft(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    report_post(req, state, path, form, monthly::draft).await
}

async fn report_confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    report_post(req, state, path, form, monthly::confirm).await
}

async fn submit_report(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    report_post(req, state, path, form, monthly::submit).await
}

async fn report_return(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    report_post(req, state, path, form, monthly::send_back).await
}

async fn reviews_page(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let t = path.into_inner();
    render(&req, &state, move |s, ctx| reviews::page(s, ctx, &t)).await
}

async fn review_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let t = path.into_inner();
    let list = form.into_inner();
    let single: HashMap<String, String> = list.iter().cloned().collect();
    render_post(&req, &state, single, move |s, ctx, _| reviews::create(s, ctx, &t, &list)).await
}

async fn devices(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    render(&req, &state, pages::devices).await
}

async fn revoke_device(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let id = path.into_inner();
    render_post(&req, &state, form.into_inner(), move |s, ctx, _| pages::revoke_device(s, ctx, &id)).await
}

async fn audit(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q: HashMap<String, String> = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    render(&req, &state, move |s, ctx| pages::audit(s, ctx, &q)).await
}

async fn four_none(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let year = query(&req).remove("year");
    render(&req, &state, move |s, ctx| figures::four_none(s, ctx, year.as_deref(), false)).await
}

async fn four_none_file(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let file = path.into_inner();
    render(&req, &state, move |s, ctx| match file.strip_suffix(".xlsx") {
        Some(year) => figures::four_none(s, ctx, Some(year), true),
        None => Err(WebError::NotFound),
    })
    .await
}

async fn figure(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    let q = query(&req);
    render(&req, &state, move |s, ctx| figures::figure(s, ctx, &name, &q)).await
}

async fn case_counts(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut q = query(&req);
    let year = q.remove("year");
    let saved = q.remove("saved").and_then(|n| n.parse().ok());
    render(&req, &state, move |s, ctx| figures::case_counts(s, ctx, year.as_deref(), saved)).await
}

async fn case_counts_save(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| figures::save_form(s, ctx, &form)).await
}

/// Largest CSV upload.
const MAX_UPLOAD: usize = 2 * 1024 * 1024;

async fn case_counts_csv(req: HttpRequest, state: web::Data<AppState>, mut payload: web::Payload) -> HttpResponse {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else { return error_page(WebError::Bad("上传的数据不完整".into())) };
        if body.len() + chunk.len() > MAX_UPLOAD {
            return error_page(WebError::Bad("文件过大（不超过2MB），请分批上传".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Some(parts) = figures::multipart(&ctype, &body) else {
        return error_page(WebError::Bad("请选择要上传的CSV文件".into()));
    };
    let mut form = HashMap::new();
    let mut csv = Vec::new();
    for (name, bytes) in parts {
        if name == "csv" {
            csv = bytes;
        } else if name == "csrf" {
            form.insert(name, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    render_post(&req, &state, form, move |s, ctx, _| figures::save_csv(s, ctx, &csv)).await
}

type UserFormFn = fn(&dyn ServerStore, &Ctx, &str, &HashMap<String, String>) -> Result<Out, WebError>;

async fn user_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
    f: UserFormFn,
) -> HttpResponse {
    let id = path.into_inner();
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| f(s, ctx, &id, &form)).await
}

async fn users(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q =
        web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok().and_then(|q| q.get("q").cloned());
    render(&req, &state, move |s, ctx| people::list(s, ctx, q.as_deref())).await
}

async fn user_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    render_post(&req, &state, form.into_inner(), move |s, ctx, form| people::create(s, ctx, &form)).await
}

async fn user_page(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let done = people::Done::from_query(req.query_string());
    render(&req, &state, move |s, ctx| people::page(s, ctx, &id, None, done)).await
}

async fn user_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    user_post(req, state, path, form, people::update).await
}

async fn user_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    user_post(req, state, path, form, people::reset_password).await
}

async fn user_active(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    user_post(req, state, path, form, people::set_active).await
}

async fn user_enroll(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let id = path.into_inner();
    // The address the clerk reached this server by is the one the phone
    // should sync with (behind a proxy, the proxy's).
    let server_url = {
        let ci = req.connection_info();
        format!("{}://{}", ci.scheme(), ci.host())
    };
    render_post(&req, &state, form.into_inner(), move |s, ctx, _| people::enroll(s, ctx, &id, &server_url)).await
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
