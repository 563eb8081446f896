//! HTTP endpoints of the supervision reports (`/v1/reports/...`), the case
//! counts the county agencies enter (`/v1/case-counts`), and the OpenAPI
//! document (`/v1/openapi.json`).
//!
//! Callers authenticate with the same device token as `/v1/sync`, or (to
//! read reports) with the dashboard's session cookie. Every
//! report is about one grid node, which must be inside the caller's scope
//! (403 `out_of_scope` otherwise). Every refusal is JSON with an `error`
//! code and a Chinese `message_zh`.

// Helpers return the finished error response as their `Err`, as `api.rs`
// does; it is built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::protocol::ErrorBody;
use gridsync_core::reports::DEFAULT_BACKLOG_DAYS;
use serde::Serialize;

use crate::api::AppState;
use crate::auth;
use crate::reports::DEFAULT_SYNC_DAYS;
use crate::reports::{self, ReportError};
use crate::reports_files::{self, Table};
use crate::store::{DeviceAuth, User};

/// The OpenAPI 3 document of these endpoints, written by hand.
pub const OPENAPI_JSON: &str = include_str!("reports_openapi.json");

/// One table for what is mounted and what [`MOUNTED`] lists, so the
/// OpenAPI document can be checked against the routes that really exist.
macro_rules! report_routes {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {
        /// Every route of this module as (path, method), exactly as [`routes`] mounts them.
        pub const MOUNTED: &[(&str, &str)] = &[$(($path, stringify!($method))),*];

        /// Mount every route of this module.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

report_routes! {
    get "/v1/reports/weekly" => weekly,
    get "/v1/reports/monthly/{township}/{month}" => monthly,
    get "/v1/reports/coverage" => coverage,
    get "/v1/reports/backlog" => backlog,
    get "/v1/reports/four-none/{year}" => four_none,
    get "/v1/reports/sync-health" => sync_health,
    get "/v1/reports/submissions/{month}" => submissions,
    post "/v1/case-counts" => post_case_counts,
    post "/v1/case-counts/csv" => post_case_counts_csv,
    get "/v1/openapi.json" => openapi,
}

fn error(status: StatusCode, code: &str, message_zh: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: code.to_owned(),
        message_zh: message_zh.to_owned(),
        wipe: false,
        supported_versions: vec![],
    })
}

fn report_error(e: ReportError) -> HttpResponse {
    match e {
        ReportError::OutOfScope => error(StatusCode::FORBIDDEN, "out_of_scope", "超出您的网格范围"),
        ReportError::Forbidden(why) => error(StatusCode::FORBIDDEN, "forbidden", &why),
        ReportError::BadInput { code, message_zh } => error(StatusCode::BAD_REQUEST, code, &message_zh),
        ReportError::TooMany { limit } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_records",
            &format!("统计范围内的记录超过{limit}条，请缩小统计范围（按乡镇或村统计）"),
        ),
        ReportError::Store(e) => {
            tracing::error!(error = %crate::logtext::logged(&e.to_string()), "storage failure");
            error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "服务器存储暂时不可用，请稍后重试")
        }
    }
}

/// The caller: a device's user from the Bearer token, or, for reading
/// reports (GET), the user signed in on the dashboard (its session
/// cookie), with the same scope rules. Changes (case counts) need a token:
/// the dashboard has its own forms, with CSRF tokens, for them.
async fn caller(req: &HttpRequest, state: &web::Data<AppState>) -> Result<User, HttpResponse> {
    let has_bearer = req.headers().contains_key("authorization");
    if !has_bearer
        && req.method() == actix_web::http::Method::GET
        && let Some(cookie) = crate::dashboard::session_cookie(req).filter(|t| !t.is_empty() && t.len() <= 128)
    {
        let store = state.store.clone();
        let now = state.clock.now();
        return match web::block(move || crate::dashboard::session_user(store.as_ref(), &cookie, now)).await {
            Ok(Ok(Some(u))) => Ok(u),
            Ok(Ok(None)) => Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "登录已过期，请重新登录")),
            Ok(Err(e)) => Err(report_error(ReportError::Store(e))),
            Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后重试")),
        };
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .map(str::to_owned);
    let Some(token) = token else {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "设备未注册，请先用注册码注册"));
    };
    let store = state.store.clone();
    let auth: DeviceAuth = match web::block(move || store.device_by_token(&auth::hash_secret(&token))).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "设备凭证无效，请重新注册")),
        Ok(Err(e)) => return Err(report_error(ReportError::Store(e))),
        Err(_) => return Err(error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后重试")),
    };
    if auth.device.revoked_at.is_some() {
        return Err(error(StatusCode::UNAUTHORIZED, "device_revoked", "此设备已被管理员停用"));
    }
    Ok(auth.user)
}

type Query = HashMap<String, String>;

fn query(req: &HttpRequest) -> Result<Query, HttpResponse> {
    web::Query::<Query>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_query", "查询参数格式错误"))
}

fn days_param(q: &Query, default: u32) -> Result<u32, ReportError> {
    match q.get("days") {
        None => Ok(default),
        Some(s) => {
            s.parse::<u32>().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| ReportError::BadInput {
                code: "bad_days",
                message_zh: "天数应为1到3650之间的整数".into(),
            })
        }
    }
}

/// Run a report on the blocking pool and answer it as JSON.
async fn run<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<T, HttpResponse> {
    match web::block(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(report_error(e)),
        Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "服务器繁忙，请稍后重试")),
    }
}

/// What every report does first: who asks (a device token or a dashboard
/// session), the query, then `f` on the blocking pool with the store, the
/// caller, the query and the server's time.
async fn answer<T: Serialize + Send + 'static>(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    f: impl FnOnce(&dyn crate::store::ServerStore, &User, &Query, i64) -> Result<T, ReportError> + Send + 'static,
) -> Result<T, HttpResponse> {
    let user = caller(req, state).await?;
    let q = query(req)?;
    let (store, now) = (state.store.clone(), state.clock.now());
    run(move || f(store.as_ref(), &user, &q, now)).await
}

fn json<T: Serialize>(r: Result<T, HttpResponse>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(resp) => resp,
    }
}

/// `{name}`, `{name}.json`, `{name}.csv` or `{name}.xlsx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
}

fn split_format(s: &str) -> (&str, Format) {
    if let Some(x) = s.strip_suffix(".xlsx") {
        (x, Format::Xlsx)
    } else if let Some(x) = s.strip_suffix(".csv") {
        (x, Format::Csv)
    } else {
        (s.strip_suffix(".json").unwrap_or(s), Format::Json)
    }
}

fn file(tables: &[Table], format: Format, name: &str) -> HttpResponse {
    let (bytes, ctype, ext) = match format {
        Format::Csv => (reports_files::to_csv(tables), "text/csv; charset=utf-8", "csv"),
        Format::Xlsx | Format::Json => match reports_files::to_xlsx(tables) {
            Ok(b) => (b, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
            Err(e) => {
                tracing::error!(error = %e, "cannot write xlsx");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "无法生成Excel文件");
            }
        },
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}.{ext}\"")))
        .body(bytes)
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// `GET /v1/reports/weekly?grid=&week_start=YYYY-MM-DD`
async fn weekly(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    json(
        answer(&req, &state, |store, user, q, now| {
            let grid = reports::target(user, q.get("grid").map(String::as_str))?;
            let week = match q.get("week_start") {
                Some(s) => reports::parse_day(s, "bad_week_start")?,
                None => {
                    use chrono::Datelike;
                    let today = gridsync_core::model::beijing_day(now);
                    today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))
                }
            };
            reports::weekly(store, &grid, week, now)
        })
        .await,
    )
}

/// `GET /v1/reports/monthly/{township}/{YYYY-MM}[.json|.csv|.xlsx]?days=`
async fn monthly(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (township, month) = path.into_inner();
    let (month, format) = split_format(&month);
    let month = month.to_owned();
    let data = try_resp!(
        answer(&req, &state, move |store, user, q, now| {
            let grid = reports::target(user, Some(&township))?;
            let days = days_param(q, DEFAULT_BACKLOG_DAYS)?;
            reports::monthly(store, &grid, &month, days, now)
        })
        .await
    );
    match format {
        Format::Json => HttpResponse::Ok().json(data),
        f => file(
            &reports_files::monthly_tables(&data),
            f,
            &format!("monthly-{}-{}", data.township.to_string().replace('/', "-"), data.month),
        ),
    }
}

/// `GET /v1/reports/coverage?grid=&from=&to=`
async fn coverage(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    json(
        answer(&req, &state, |store, user, q, now| {
            let grid = reports::target(user, q.get("grid").map(String::as_str))?;
            let to = match q.get("to") {
                Some(s) => reports::parse_day(s, "bad_to")?,
                None => gridsync_core::model::beijing_day(now),
            };
            let from = match q.get("from") {
                Some(s) => reports::parse_day(s, "bad_from")?,
                None => to - chrono::Days::new(6),
            };
            reports::coverage(store, &grid, from, to, now)
        })
        .await,
    )
}

/// `GET /v1/reports/backlog?grid=&days=30`
async fn backlog(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    json(
        answer(&req, &state, |store, user, q, now| {
            let grid = reports::target(user, q.get("grid").map(String::as_str))?;
            let days = days_param(q, DEFAULT_BACKLOG_DAYS)?;
            reports::backlog(store, user, &grid, days, now)
        })
        .await,
    )
}

/// The node of a four-none table: like [`reports::target`], but the county
/// agencies see the whole county (the table is theirs), and a grid manager,
/// whose scope holds no whole village, is refused.
fn four_none_target(user: &User, requested: Option<&str>) -> Result<GridPath, ReportError> {
    let scope = if user.role == Role::AgencyStaff { GridPath::county() } else { user.scope() };
    if user.role == Role::GridManager {
        return Err(ReportError::Forbidden("“四无”创建按村统计，网格管理员无权查看".into()));
    }
    let g = match requested {
        Some(s) => GridPath::parse(s)
            .map_err(|_| ReportError::BadInput { code: "bad_grid", message_zh: "网格路径格式错误".into() })?,
        None => scope.clone(),
    };
    if !scope.contains(&g) {
        return Err(ReportError::OutOfScope);
    }
    if g.level() == GridLevel::Group {
        return Err(ReportError::BadInput {
            code: "bad_grid",
            message_zh: "“四无”创建按村统计，不能指定村民小组".into(),
        });
    }
    Ok(g)
}

/// `GET /v1/reports/four-none/{year}[.json|.csv|.xlsx]?grid=&days=`
async fn four_none(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let (year, format) = split_format(&path);
    let year = year.to_owned();
    let table = try_resp!(
        answer(&req, &state, move |store, user, q, now| {
            let grid = four_none_target(user, q.get("grid").map(String::as_str))?;
            let year: i32 = year
                .parse()
                .map_err(|_| ReportError::BadInput {
                    code: "bad_year", message_zh: "年份应为四位数字".into()
                })?;
            let days = days_param(q, DEFAULT_BACKLOG_DAYS)?;
            reports::four_none(store, &grid, year, days, now)
        })
        .await
    );
    match format {
        Format::Json => HttpResponse::Ok().json(table),
        f => file(&reports_files::four_none_tables(&table), f, &format!("four-none-{}", table.year)),
    }
}

/// `GET /v1/reports/sync-health?grid=&days=7`
async fn sync_health(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    json(
        answer(&req, &state, |store, user, q, now| {
            let grid = reports::target(user, q.get("grid").map(String::as_str))?;
            if user.role == Role::GridManager {
                return Err(ReportError::Forbidden("网格管理员无权查看同步情况".into()));
            }
            let days = days_param(q, DEFAULT_SYNC_DAYS)?;
            reports::sync_health(store, &grid, days, now)
        })
        .await,
    )
}

/// `GET /v1/reports/submissions/{YYYY-MM}?grid=`
async fn submissions(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let month = path.into_inner();
    json(
        answer(&req, &state, move |store, user, q, now| {
            let grid = reports::target(user, q.get("grid").map(String::as_str))?;
            if grid.level() > GridLevel::Township {
                return Err(ReportError::Forbidden("月度报告由乡镇报送，请以乡镇或县的账号查看".into()));
            }
            reports::submissions(store, &grid, &month, now)
        })
        .await,
    )
}

async fn body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, HttpResponse> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| error(StatusCode::BAD_REQUEST, "body_unreadable", "请求数据接收不完整"))?;
        if body.len() + chunk.len() > limit {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "请求过大，请分批录入"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Serialize)]
struct Entered {
    entered: usize,
}

async fn store_case_counts(
    state: web::Data<AppState>,
    user: User,
    inputs: Vec<(usize, reports::CaseCountInput)>,
) -> HttpResponse {
    let store = state.store.clone();
    let now = state.clock.now();
    json(
        run(move || {
            let counts = reports::check_case_counts(store.as_ref(), &user, &inputs, now)?;
            store.put_case_counts(&counts)?;
            tracing::info!(user = %user.id, n = counts.len(), "case counts entered");
            Ok(Entered { entered: counts.len() })
        })
        .await,
    )
}

/// `POST /v1/case-counts`: one count or a list, as JSON.
async fn post_case_counts(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let user = try_resp!(caller(&req, &state).await);
    let bytes = try_resp!(body(payload, 2 * 1024 * 1024).await);
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<reports::CaseCountInput>),
        One(reports::CaseCountInput),
    }
    let inputs = match serde_json::from_slice::<OneOrMany>(&bytes) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(c)) => vec![c],
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "请求格式错误：需要 village、year、kind、count（单条或数组）",
            );
        }
    };
    store_case_counts(state, user, inputs.into_iter().enumerate().map(|(i, c)| (i + 1, c)).collect()).await
}

/// `POST /v1/case-counts/csv`: `village,year,kind,count`, UTF-8.
async fn post_case_counts_csv(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let user = try_resp!(caller(&req, &state).await);
    let bytes = try_resp!(body(payload, 2 * 1024 * 1024).await);
    let Ok(text) = String::from_utf8(bytes) else {
        return error(StatusCode::BAD_REQUEST, "not_utf8", "CSV文件应为UTF-8编码");
    };
    match reports::parse_case_counts_csv(&text) {
        Ok(inputs) => store_case_counts(state, user, inputs).await,
        Err(e) => report_error(e),
    }
}

/// `GET /v1/openapi.json`
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI_JSON)
}
