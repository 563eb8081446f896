//! What a dashboard page answers ([`Out`]) and why it may not ([`WebError`]),
//! and how both become HTTP: every answer carries the dashboard's security
//! headers, and every refusal is a Chinese page (a `ResponseError`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::store::StoreError;

use super::html;

/// What a page produces (built on the blocking pool, so `Send`).
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
    /// Signed out: to the sign-in page, the session cookie cleared.
    SignedOut,
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

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Not signed in: back to the sign-in page.
    #[error("not signed in")]
    SignIn,
    /// Outside the user's scope or role.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such page or record.
    #[error("not found")]
    NotFound,
    /// Malformed input.
    #[error("bad request: {0}")]
    Bad(String),
    /// A form larger than the dashboard takes.
    #[error("form too large")]
    TooLarge(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(String),
}

impl From<crate::accounts::AccountError> for WebError {
    fn from(e: crate::accounts::AccountError) -> Self {
        match e {
            crate::accounts::AccountError::Store(e) => e.into(),
            e => WebError::Bad(e.to_string()),
        }
    }
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
            R::TooMany { limit } => {
                WebError::Bad(format!("统计范围内的记录超过{limit}条，请缩小统计范围（按乡镇或村统计）"))
            }
            R::Store(e) => e.into(),
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::SignIn => StatusCode::SEE_OTHER,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Bad(_) => StatusCode::BAD_REQUEST,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, msg) = match self {
            WebError::SignIn => return redirect("/"),
            WebError::Forbidden(why) => ("无权访问", why.clone()),
            WebError::NotFound => ("页面不存在", "没有找到该页面或记录".to_owned()),
            WebError::Bad(why) => ("请求有误", why.clone()),
            WebError::TooLarge(why) => ("内容过长", why.clone()),
            WebError::Store(e) => {
                tracing::error!(error = %e, "web page failed");
                ("服务暂时不可用", "服务器存储暂时不可用，请稍后重试".to_owned())
            }
        };
        let status = self.status_code();
        let body = format!(
            "<div class=\"card\"><h2 id=\"error\">{} {}</h2><p>{}</p><p><a href=\"/web\">返回总览</a></p></div>",
            status.as_u16(),
            html::esc(title),
            html::esc(&msg)
        );
        let mut r = html_response(status, html::page(title, None, &body));
        // The error counter labels 5xx answers by reason.
        if let WebError::Store(_) = self {
            r.extensions_mut().insert(crate::api::ErrorCode("storage_unavailable".into()));
        }
        r
    }
}

/// Set a cookie the browser sends back only to this site's pages.
pub(super) fn set_cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}")
}

pub(super) fn secure_headers(b: &mut actix_web::HttpResponseBuilder) {
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

pub(super) fn html_response(status: StatusCode, body: String) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    secure_headers(&mut b);
    b.content_type("text/html; charset=utf-8").body(body)
}

pub(super) fn redirect(to: &str) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    secure_headers(&mut b);
    b.insert_header(("location", to.to_owned())).finish()
}

impl Out {
    /// The HTTP answer.
    pub(super) fn into_response(self) -> HttpResponse {
        match self {
            Out::Html(s) => html_response(StatusCode::OK, s),
            Out::HtmlImages { html, img_origin } => {
                let mut b = HttpResponse::Ok();
                secure_headers_with_images(&mut b, Some(&img_origin));
                b.content_type("text/html; charset=utf-8").body(html)
            }
            Out::Redirect(to) => redirect(&to),
            Out::SignedOut => {
                let mut b = HttpResponse::SeeOther();
                secure_headers(&mut b);
                b.insert_header(("location", "/"))
                    .append_header(("set-cookie", set_cookie(super::SESSION_COOKIE, "", 0)))
                    .finish()
            }
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
}
