//! The dashboard's pages. Each takes the store and the signed-in user,
//! checks scope first, and returns an [`Out`]. Runs on the blocking pool.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{Dispute, DisputeLevel, DisputeStatus, Record, RecordBody};
use uuid::Uuid;

use super::html::{esc, page, time};
use super::{Ctx, Out, WebError};
use crate::access::may_read;

use crate::reports;
use crate::reports_files::{self, Cell};
use crate::store::{AuditQuery, RecordView, ServerStore, ViewQuery};

pub(super) const OUT_OF_SCOPE: &str = "该页面超出您的网格范围，您只能查看本人负责网格内的信息";
const SENSITIVE: &str = "户籍台账属于个人敏感信息，只有本网格的网格管理员、网格长和网格督导员可以查看";

pub(super) fn names(s: &dyn ServerStore) -> Result<HashMap<GridPath, String>, WebError> {
    Ok(s.grid_nodes()?.into_iter().map(|n| (n.path, n.name)).collect())
}

pub(super) fn parse_grid(s: &str) -> Result<GridPath, WebError> {
    GridPath::parse(s).map_err(|_| WebError::NotFound)
}

/// The part of `node` the user may see: the node itself when it is inside
/// their scope, their own scope when it is inside the node; otherwise 403.
pub(super) fn visible(user: &crate::store::User, node: &GridPath) -> Result<GridPath, WebError> {
    if user.role == Role::AgencyStaff {
        return Err(WebError::Forbidden("县直部门账号只能录入“四无”案件数，不能查看网格记录".into()));
    }
    let scope = user.scope();
    if scope.contains(node) {
        Ok(node.clone())
    } else if node.contains(&scope) {
        Ok(scope)
    } else {
        Err(WebError::Forbidden(OUT_OF_SCOPE.into()))
    }
}

/// Rows on one page of a list.
pub(super) const PAGE_ROWS: u32 = 100;

/// Most records a page reads whole for a set that is small by nature (a
/// village's meetings, a township's open escalations): beyond it the page
/// is refused with a message, never drawn from part of the records.
const MAX_WHOLE: u32 = 20_000;

/// Every live record of a kind under a node, parsed. A set larger than a
/// page can hold is an error, not a silently shorter list.
pub(super) fn load(
    s: &dyn ServerStore,
    under: &GridPath,
    kind: &str,
    sensitive: bool,
) -> Result<Vec<(RecordView, Record)>, WebError> {
    load_where(s, ViewQuery { under: Some(under.clone()), kind: Some(kind.into()), sensitive, ..Default::default() })
}

/// Every live record `q` selects, parsed (see [`load`]).
pub(super) fn load_where(s: &dyn ServerStore, q: ViewQuery) -> Result<Vec<(RecordView, Record)>, WebError> {
    let views = s.records(&ViewQuery { live: true, limit: Some(MAX_WHOLE + 1), offset: 0, ..q })?;
    if views.len() > MAX_WHOLE as usize {
        return Err(WebError::Bad(format!("该范围内记录超过{MAX_WHOLE}条，请缩小范围后查看")));
    }
    Ok(parsed_views(views))
}

/// Records as read, parsed; deleted ones left out.
pub(super) fn parsed_views(views: Vec<RecordView>) -> Vec<(RecordView, Record)> {
    views.into_iter().filter(|v| !v.deleted).filter_map(|v| Record::from_json(&v.json).ok().map(|r| (v, r))).collect()
}

/// One page (1-based) of the live records `q` selects, parsed, and how many
/// there are in all, counted in the database.
pub(super) fn load_page(
    s: &dyn ServerStore,
    q: ViewQuery,
    page: u32,
) -> Result<(Vec<(RecordView, Record)>, u64), WebError> {
    let q = ViewQuery { live: true, ..q };
    let total = s.count_records(&q)?;
    let offset = page.saturating_sub(1).saturating_mul(PAGE_ROWS);
    let views = s.records(&ViewQuery { limit: Some(PAGE_ROWS), offset, ..q })?;
    Ok((parsed_views(views), total))
}

/// The page number a list was asked for (`?page=`, 1-based).
pub(super) fn page_number(q: Option<&str>) -> Result<u32, WebError> {
    match q.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => {
            p.parse::<u32>().ok().filter(|p| (1..=100_000).contains(p)).ok_or_else(|| WebError::Bad("页码无效".into()))
        }
    }
}

/// "共 N 条" (the total in the element `id`) and links to the pages around
/// `page`, for a list at `base` (a path with its query, without `page`).
pub(super) fn pager(id: &str, base: &str, page: u32, total: u64) -> String {
    let pages = total.div_ceil(u64::from(PAGE_ROWS)).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!(
        "<p class=\"muted pager\" id=\"{id}-pager\">共 <span id=\"{id}\">{total}</span> 条 · 第 {page}/{pages} 页"
    );
    if page > 1 {
        let _ = write!(out, " · <a href=\"{}{sep}page={}\" rel=\"prev\">上一页</a>", esc(base), page - 1);
    }
    if u64::from(page) < pages {
        let _ = write!(out, " · <a href=\"{}{sep}page={}\" rel=\"next\">下一页</a>", esc(base), page + 1);
    }
    out.push_str("</p>");
    out
}

pub(super) fn dispute_of(r: &Record) -> Option<&Dispute> {
    match &r.body {
        RecordBody::Dispute(d) => Some(d),
        _ => None,
    }
}

pub(super) fn last_month(now: i64) -> String {
    use chrono::Datelike;
    let today = gridsync_core::model::beijing_day(now);
    let first = today.with_day(1).unwrap_or(today);
    (first - chrono::Days::new(1)).format("%Y-%m").to_string()
}

pub(super) fn html(ctx: &Ctx, title: &str, body: &str) -> Out {
    Out::Html(page(title, Some(&ctx.header()), body))
}

pub(super) fn village_link(names: &HashMap<GridPath, String>, g: &GridPath) -> String {
    let v = g.ancestor(GridLevel::Village);
    let name = names.get(&v).cloned().unwrap_or_else(|| v.to_string());
    match (v.township(), v.village()) {
        (Some(t), Some(vv)) => format!("<a href=\"/web/t/{}/{}\">{}</a>", esc(t), esc(vv), esc(&name)),
        _ => esc(&name),
    }
}

/// `GET /web`
pub fn overview(s: &dyn ServerStore, ctx: &Ctx) -> Result<Out, WebError> {
    let u = &ctx.user;
    match u.role {
        Role::AgencyStaff => {
            return Ok(html(
                ctx,
                "总览",
                "<div class=\"card\"><h2>县直部门</h2><p>县直部门账号录入本部门负责的“四无”案件数，不查看网格记录。</p>\
                 <p><a class=\"btn\" id=\"case-counts-link\" href=\"/web/case-counts\">录入案件数</a> \
                 <a class=\"btn alt\" id=\"four-none-link\" href=\"/web/four-none\">“四无”村创建情况</a></p></div>",
            ));
        }
        Role::TownshipChief => {
            let scope = u.scope();
            return Ok(Out::Redirect(format!("/web/t/{}", scope.township().unwrap_or_default())));
        }
        Role::VillageLeader | Role::Supervisor | Role::GridManager => {
            let v = u.scope().ancestor(GridLevel::Village);
            return Ok(Out::Redirect(format!(
                "/web/t/{}/{}",
                v.township().unwrap_or_default(),
                v.village().unwrap_or_default()
            )));
        }
        _ => {}
    }
    let county = GridPath::county();
    let names = names(s)?;
    let now = ctx.now;
    let open = reports::open_now(s, &county)?;
    let month = last_month(now);
    let subs = reports::submissions(s, &county, &month, now)?;
    let mut body = format!(
        "<h2>全县总览</h2><div class=\"card\"><table id=\"townships\"><tr><th>乡镇</th><th>未消除隐患</th><th>未化解纠纷</th><th>上报至县的纠纷</th><th>{}月度报告</th></tr>",
        esc(&month)
    );
    for t in &subs.townships {
        let o = reports::open_now_under(&open, &t.township);
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/t/{code}\">{name}</a></td><td class=\"n\"><a href=\"/web/hazards?grid={code}&amp;open=1\">{}</a></td>\
             <td class=\"n\"><a href=\"/web/disputes?grid={code}&amp;open=1\">{}</a></td><td class=\"n\">{}</td><td><a href=\"/web/reports/{code}/{m}\">{status}</a></td></tr>",
            o.hazards,
            o.disputes,
            o.disputes_at_county,
            code = esc(&t.township.to_string()),
            name = esc(names.get(&t.township).map(String::as_str).unwrap_or(&t.name)),
            m = esc(&month),
            status = esc(t.status.label_zh()),
        );
    }
    body.push_str("</table><p class=\"muted\">数字为当前记录中未消除、未化解的件数。</p></div>");
    Ok(html(ctx, "全县总览", &body))
}

/// `GET /web/t/{t}`
pub fn township(s: &dyn ServerStore, ctx: &Ctx, t: &str) -> Result<Out, WebError> {
    let node = parse_grid(t)?;
    if node.level() != GridLevel::Township {
        return Err(WebError::NotFound);
    }
    let names = names(s)?;
    let Some(tname) = names.get(&node).cloned() else { return Err(WebError::NotFound) };
    let seen = visible(&ctx.user, &node)?;
    let open = reports::open_now(s, &seen)?;
    let mut villages: Vec<(&GridPath, &String)> = names
        .iter()
        .filter(|(p, _)| p.level() == GridLevel::Village && node.contains(p) && (seen.contains(p) || p.contains(&seen)))
        .collect();
    villages.sort();
    let month = last_month(ctx.now);
    let mut body = format!("<h2 id=\"title\">{}</h2>", esc(&tname));
    if ctx.user.role == Role::TownshipChief || ctx.user.role == Role::CountyStaff {
        let _ = write!(
            body,
            "<div class=\"card\"><a class=\"btn\" id=\"report-link\" href=\"/web/reports/{t}/{m}\">{m} 月度报告</a> \
             <a class=\"btn alt\" id=\"reviews-link\" href=\"/web/reviews/{t}\">月研判与周排查</a> \
             <a class=\"btn alt\" id=\"figures-link\" href=\"/web/figures/weekly?grid={t}\">周小结·巡查覆盖·积案</a> \
             <a class=\"btn alt\" href=\"/web/disputes?grid={t}\">全部矛盾纠纷</a></div>",
            t = esc(t),
            m = esc(&month)
        );
    }
    body.push_str("<div class=\"card\"><h3>各村情况</h3><table id=\"villages\"><tr><th>村（社区）</th><th>未消除隐患</th><th>未化解纠纷</th><th>待裁定冲突</th></tr>");
    for (p, name) in &villages {
        let o = reports::open_now_under(&open, p);
        let cls = |n: u64| if n > 0 { "n bad" } else { "n" };
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/t/{}/{}\">{}</a></td><td class=\"{}\">{}</td><td class=\"{}\">{}</td><td class=\"{}\">{}</td></tr>",
            esc(p.township().unwrap_or_default()),
            esc(p.village().unwrap_or_default()),
            esc(name),
            cls(o.hazards),
            o.hazards,
            cls(o.disputes),
            o.disputes,
            cls(o.conflicts),
            o.conflicts
        );
    }
    body.push_str("</table></div>");
    let escalated: Vec<_> = load_where(
        s,
        ViewQuery { under: Some(seen.clone()), kind: Some("dispute".into()), open: Some(true), ..Default::default() },
    )?
    .into_iter()
    .filter_map(|(v, r)| dispute_of(&r).map(|d| (v.clone(), d.state())))
    .filter(|(_, st)| st.level != DisputeLevel::Village)
    .collect();
    body.push_str("<div class=\"card\"><h3>上报至乡镇及以上的纠纷</h3>");
    if escalated.is_empty() {
        body.push_str("<p class=\"muted\">暂无</p>");
    } else {
        body.push_str("<table><tr><th>纠纷</th><th>村</th><th>层级</th><th>状态</th></tr>");
        for (v, st) in escalated {
            let _ = write!(
                body,
                "<tr><td><a href=\"/web/disputes/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.id,
                esc(&v.title),
                village_link(&names, &v.grid),
                esc(st.level.label_zh()),
                esc(st.status.label_zh())
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</div>");
    Ok(html(ctx, &tname, &body))
}

/// `GET /web/t/{t}/{v}`
pub fn village(s: &dyn ServerStore, ctx: &Ctx, v: &str, page: Option<&str>) -> Result<Out, WebError> {
    let node = parse_grid(v)?;
    if node.level() != GridLevel::Village {
        return Err(WebError::NotFound);
    }
    let page = page_number(page)?;
    let names = names(s)?;
    let Some(vname) = names.get(&node).cloned() else { return Err(WebError::NotFound) };
    let seen = visible(&ctx.user, &node)?;
    let tname = names.get(&node.ancestor(GridLevel::Township)).cloned().unwrap_or_default();
    let mut body = format!("<h2 id=\"title\">{} · {}</h2>", esc(&tname), esc(&vname));
    let under = |kind: &str| ViewQuery { under: Some(seen.clone()), kind: Some(kind.into()), ..Default::default() };
    let (hazards, open_total) = load_page(s, ViewQuery { open: Some(true), ..under("hazard") }, 1)?;
    let _ = write!(
        body,
        "<div class=\"card\"><h3>未消除的隐患</h3>{}<table id=\"hazards\"><tr><th>隐患</th><th>网格</th><th>状态</th><th>发现时间</th></tr>",
        shown_of("hazards", hazards.len(), open_total, &format!("/web/hazards?grid={}&open=1", seen))
    );
    for (h, _) in &hazards {
        let status = if h.status == "handling" { "处置中" } else { "待处置" };
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/hazards/{}\">{}</a></td><td>{}</td><td><span class=\"tag warn\">{status}</span></td><td>{}</td></tr>",
            h.id,
            esc(&h.title),
            esc(names.get(&h.grid).map(String::as_str).unwrap_or_default()),
            time(h.occurred_at)
        );
    }
    body.push_str("</table></div>");
    let (disputes, disputes_total) = load_page(s, under("dispute"), 1)?;
    let _ = write!(
        body,
        "<div class=\"card\"><h3>矛盾纠纷</h3>{}{}</div>",
        shown_of("disputes", disputes.len(), disputes_total, &format!("/web/disputes?grid={seen}")),
        dispute_table(&names, &disputes)
    );
    let visits = s.records(&ViewQuery {
        sensitive: ctx.user.role.reads_sensitive(),
        live: true,
        limit: Some(30),
        ..under("visit")
    })?;
    body.push_str("<div class=\"card\"><h3>近期走访（最近30次）</h3><table id=\"visits\"><tr><th>走访</th><th>网格</th><th>照片</th><th>时间</th></tr>");
    for (v, r) in &parsed_views(visits) {
        let photos = gridsync_core::model::photos_of(&r.attachments).count();
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/visits/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.id,
            esc(&v.title),
            esc(names.get(&v.grid).map(String::as_str).unwrap_or_default()),
            if photos == 0 { "—".to_owned() } else { format!("{photos}张") },
            time(v.occurred_at)
        );
    }
    body.push_str("</table></div>");
    if ctx.user.role.reads_sensitive() {
        let (households, total) = load_page(s, ViewQuery { sensitive: true, ..under("household") }, page)?;
        // A list of heads of household and addresses is sensitive too.
        if !households.is_empty() {
            ctx.audit(s, "list_households", &node.to_string())?;
        }
        let _ = write!(
            body,
            "<div class=\"card\"><h3>户籍台账（敏感信息，查看将被记录）</h3>{}<table id=\"households\"><tr><th>户</th><th>网格</th></tr>",
            pager("households-total", &format!("/web/t/{v}"), page, total)
        );
        for (h, _) in &households {
            let _ = write!(
                body,
                "<tr><td><a href=\"/web/households/{}\">{}</a></td><td>{}</td></tr>",
                h.id,
                esc(&h.title),
                esc(names.get(&h.grid).map(String::as_str).unwrap_or_default())
            );
        }
        body.push_str("</table></div>");
    }
    Ok(html(ctx, &vname, &body))
}

/// "共 N 条", and when the first page does not hold them all, a link to
/// the whole list.
fn shown_of(id: &str, shown: usize, total: u64, all: &str) -> String {
    let more = if (shown as u64) < total {
        format!("，这里显示最近的{shown}条 · <a href=\"{}\">查看全部</a>", esc(all))
    } else {
        String::new()
    };
    format!("<p class=\"muted\">共 <span id=\"{id}-total\">{total}</span> 条{more}</p>")
}

pub(super) fn dispute_table(names: &HashMap<GridPath, String>, disputes: &[(RecordView, Record)]) -> String {
    let mut out = String::from(
        "<table id=\"disputes\"><tr><th>纠纷</th><th>村</th><th>类别</th><th>层级</th><th>状态</th><th>发现时间</th></tr>",
    );
    for (v, r) in disputes {
        let Some(d) = dispute_of(r) else { continue };
        let st = d.state();
        let cls = match st.status {
            DisputeStatus::Resolved => "tag",
            _ => "tag warn",
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"/web/disputes/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"{cls}\">{}</span></td><td>{}</td></tr>",
            v.id,
            esc(&v.title),
            village_link(names, &v.grid),
            esc(st.category.label_zh()),
            esc(st.level.label_zh()),
            esc(st.status.label_zh()),
            time(d.found_at)
        );
    }
    out.push_str("</table>");
    out
}

/// `GET /web/disputes?grid=&open=1&page=`: newest first, a page at a time.
pub fn disputes(
    s: &dyn ServerStore,
    ctx: &Ctx,
    grid: Option<&str>,
    open: Option<&str>,
    page: Option<&str>,
) -> Result<Out, WebError> {
    let node = match grid.filter(|g| !g.is_empty()) {
        Some(g) => parse_grid(g)?,
        None => ctx.user.scope(),
    };
    let page = page_number(page)?;
    let open = open == Some("1");
    let seen = visible(&ctx.user, &node)?;
    let names = names(s)?;
    let (list, total) = load_page(
        s,
        ViewQuery {
            under: Some(seen.clone()),
            kind: Some("dispute".into()),
            open: open.then_some(true),
            ..Default::default()
        },
        page,
    )?;
    let title = names.get(&seen).cloned().unwrap_or_else(|| "全县".into());
    let base = format!("/web/disputes?grid={seen}{}", if open { "&open=1" } else { "" });
    let body = format!(
        "<h2>{}矛盾纠纷 · {}</h2><div class=\"card\">{}{}</div>",
        if open { "未化解的" } else { "" },
        esc(&title),
        pager("disputes-total", &base, page, total),
        dispute_table(&names, &list)
    );
    Ok(html(ctx, "矛盾纠纷", &body))
}

fn mask_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// `GET /web/households/{id}`: sensitive; every view is audited.
/// `GET /web/visits/{id}`: one visit (三查) with its photos. A visit to a
/// key person is sensitive: read only by the roles that work the grid, and
/// every view (and every refusal) is audited before anything is shown.
pub fn visit(s: &dyn ServerStore, ctx: &Ctx, id: &str) -> Result<Out, WebError> {
    let id = Uuid::parse_str(id).map_err(|_| WebError::NotFound)?;
    let v = s.record(id)?.ok_or(WebError::NotFound)?;
    if v.kind != "visit" || v.deleted {
        return Err(WebError::NotFound);
    }
    if !may_read(&ctx.user, &v.grid, v.sensitive) {
        let why = if ctx.user.scope().contains(&v.grid) { SENSITIVE } else { OUT_OF_SCOPE };
        if v.sensitive {
            ctx.audit(s, "view_visit_refused", &id.to_string())?;
        }
        return Err(WebError::Forbidden(why.into()));
    }
    let r = Record::from_json(&v.json).map_err(|_| WebError::NotFound)?;
    let RecordBody::Visit(visit) = &r.body else { return Err(WebError::NotFound) };
    if v.sensitive {
        ctx.audit(s, "view_visit", &id.to_string())?;
    }
    let names = names(s)?;
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let body = format!(
        "<h2 id=\"title\">{}</h2><div class=\"card\"><p>{} · {} · 走访对象：{}</p><p>{}</p>\
         <p class=\"muted\">{} 于 {} 走访{}</p>{}</div>{}{}",
        esc(&v.title),
        village_link(&names, &v.grid),
        esc(visit.target.label_zh()),
        esc(&visit.subject),
        esc(if visit.findings.is_empty() { "（未填写走访情况）" } else { &visit.findings }),
        esc(&who(&r.author)),
        time(visit.visited_at),
        if visit.follow_up_needed { " · <span class=\"tag warn\">需回访</span>" } else { "" },
        if v.sensitive {
            "<p class=\"muted\">涉及重点人群，本次查看已记入审计日志。</p>"
        } else {
            ""
        },
        super::html::photos_card(&r.attachments, &who),
        super::html::provenance_link(&v.id),
    );
    Ok(html(ctx, &v.title, &body))
}

pub fn household(s: &dyn ServerStore, ctx: &Ctx, id: &str) -> Result<Out, WebError> {
    let id = Uuid::parse_str(id).map_err(|_| WebError::NotFound)?;
    let v = s.record(id)?.ok_or(WebError::NotFound)?;
    if v.kind != "household" || v.deleted {
        return Err(WebError::NotFound);
    }
    if !may_read(&ctx.user, &v.grid, true) {
        let why = if ctx.user.scope().contains(&v.grid) { SENSITIVE } else { OUT_OF_SCOPE };
        ctx.audit(s, "view_household_refused", &id.to_string())?;
        return Err(WebError::Forbidden(why.into()));
    }
    let r = Record::from_json(&v.json).map_err(|_| WebError::NotFound)?;
    let RecordBody::Household(h) = &r.body else { return Err(WebError::NotFound) };
    // Audited before anything is shown.
    ctx.audit(s, "view_household", &id.to_string())?;
    let names = names(s)?;
    let mut body = format!(
        "<h2 id=\"title\">户籍台账：{}</h2><div class=\"card\"><p>{} · {}</p><p>住址：{}</p><p>十户联防：{}</p>\
         <p class=\"muted\">本次查看已记入审计日志。</p></div>",
        esc(&h.head_name),
        village_link(&names, &v.grid),
        esc(names.get(&v.grid).map(String::as_str).unwrap_or_default()),
        esc(&h.address),
        esc(if h.ten_household_group.is_empty() { "—" } else { &h.ten_household_group })
    );
    body.push_str("<div class=\"card\"><h3>家庭成员</h3><table id=\"members\"><tr><th>姓名</th><th>关系</th><th>人员类别</th><th>身份证号</th><th>监护人</th></tr>");
    for m in h.members.values() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            esc(&m.relation),
            esc(m.category.label_zh()),
            esc(&mask_id(&m.id_number)),
            esc(m.guardian.as_deref().unwrap_or("—"))
        );
    }
    body.push_str("</table></div>");
    for (title, assets) in [("农机具", &h.machinery), ("车辆", &h.vehicles), ("区域设施", &h.facilities)] {
        let _ = write!(body, "<div class=\"card\"><h3>{title}</h3><table><tr><th>名称</th><th>型号/牌照</th></tr>");
        for a in assets.values() {
            let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(&a.description), esc(&a.identifier));
        }
        body.push_str("</table></div>");
    }
    Ok(html(ctx, "户籍台账", &body))
}

pub(super) fn tables_html(tables: &[reports_files::Table]) -> String {
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        let _ = write!(out, "<div class=\"card\"><h3>{}</h3><table id=\"report-table-{i}\"><tr>", esc(&t.title));
        for h in &t.headers {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                match c {
                    Cell::Text(s) => {
                        let _ = write!(out, "<td>{}</td>", esc(s));
                    }
                    Cell::Int(n) => {
                        let _ = write!(out, "<td class=\"n\">{n}</td>");
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></div>");
    }
    out
}

/// `GET /web/devices`: devices of the people in the user's scope.
pub fn devices(s: &dyn ServerStore, ctx: &Ctx) -> Result<Out, WebError> {
    let scope = visible(&ctx.user, &ctx.user.scope())?;
    let users: HashMap<String, crate::store::User> =
        s.users()?.into_iter().filter(|u| scope.contains(&u.grid)).map(|u| (u.id.clone(), u)).collect();
    let names = names(s)?;
    let now = ctx.now;
    let admin = ctx.user.role == Role::CountyStaff;
    let mut body = String::from(
        "<h2>设备同步情况</h2><div class=\"card\"><table id=\"devices\"><tr><th>设备</th><th>使用人</th><th>网格</th><th>最近同步</th><th>状态</th>",
    );
    if admin {
        body.push_str("<th></th>");
    }
    body.push_str("</tr>");
    for d in s.devices()?.into_iter().filter(|d| users.contains_key(&d.user_id)) {
        let u = &users[&d.user_id];
        // Stale only after a first sync and then silence past the same
        // threshold as the sync-health report: a phone enrolled this
        // morning that has not synced yet is new, not stale.
        let days = i64::from(crate::reports_api::DEFAULT_SYNC_DAYS);
        let stale = d.last_sync_at.is_some_and(|t| now - t >= days * 86_400_000);
        let last = d.last_sync_at.map(time).unwrap_or_else(|| "尚未同步".into());
        let state = if d.revoked_at.is_some() {
            "<span class=\"tag\">已停用</span>".to_owned()
        } else if stale {
            format!("<span class=\"tag warn\">超过{days}天未同步</span>")
        } else if d.last_sync_at.is_none() {
            "<span class=\"tag\">已注册，尚未同步</span>".to_owned()
        } else {
            "<span class=\"tag\">正常</span>".to_owned()
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}（{}）</td><td>{}</td><td>{}</td><td>{state}</td>",
            esc(&d.name),
            esc(&u.display_name),
            esc(u.role.label_zh()),
            esc(&super::people::grid_label(&names, &u.grid)),
            esc(&last)
        );
        if admin {
            if d.revoked_at.is_none() {
                let _ = write!(
                    body,
                    "<td><form method=\"post\" action=\"/web/devices/{}/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button class=\"btn\" type=\"submit\">停用</button></form></td>",
                    esc(&d.id),
                    esc(&ctx.session.csrf)
                );
            } else {
                body.push_str("<td></td>");
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</table></div>");
    Ok(html(ctx, "设备", &body))
}

/// `POST /web/devices/{id}/revoke`: county staff only.
pub fn revoke_device(s: &dyn ServerStore, ctx: &Ctx, id: &str) -> Result<Out, WebError> {
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("只有县综治中心管理员可以停用设备".into()));
    }
    if id.is_empty() || id.len() > 128 {
        return Err(WebError::NotFound);
    }
    if !s.revoke_device(id, ctx.now)? {
        return Err(WebError::NotFound);
    }
    ctx.audit(s, "revoke_device", id)?;
    Ok(Out::Redirect("/web/devices".into()))
}

pub(super) fn action_zh(a: &str) -> &str {
    match a {
        "sign_in" => "登录",
        "sign_in_failed" => "登录失败",
        "sign_in_locked" => "登录被锁定",
        "sign_out" => "退出登录",
        "view_household" => "查看户籍台账",
        "view_household_refused" => "查看户籍台账被拒绝",
        "list_households" => "查看户籍台账列表",
        "download_report" => "下载月度报告",
        "submit_report" => "提交月度报告",
        "revoke_device" => "停用设备",
        "sign_in_deactivated" => "已停用账号尝试登录",
        "create_user" => "新建用户",
        "update_user" => "修改用户",
        "change_role_or_grid" => "更改角色或网格",
        "reset_password" => "重置密码",
        "deactivate_user" => "停用账号",
        "reactivate_user" => "重新启用账号",
        "issue_enrollment_code" => "生成注册码",
        "save_report_draft" => "保存月度报告草稿",
        "return_report" => "退回月度报告",
        "enter_case_counts" => "录入案件数",
        other => other,
    }
}

/// Audit lines on one page.
const AUDIT_PAGE: u32 = 100;

/// `GET /web/audit?user=&action=&target=&from=YYYY-MM-DD&until=YYYY-MM-DD&before=SEQ`:
/// county staff only; newest first, a page at a time, filtered.
pub fn audit(s: &dyn ServerStore, ctx: &Ctx, q: &HashMap<String, String>) -> Result<Out, WebError> {
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("审计日志仅供县综治中心管理员查看".into()));
    }
    let field = |k: &str| q.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v.chars().count() <= 128);
    let day = |k: &str| -> Result<Option<i64>, WebError> {
        match field(k) {
            None => Ok(None),
            Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map(|d| Some(gridsync_core::model::beijing_midnight_ms(d)))
                .map_err(|_| WebError::Bad(format!("日期“{}”格式应为YYYY-MM-DD", esc(&d)))),
        }
    };
    let until = day("until")?.map(|t| t + 86_400_000);
    let before_seq = match field("before") {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| WebError::Bad("翻页位置无效".into()))?),
    };
    let query = AuditQuery {
        user: field("user"),
        action: field("action"),
        target: field("target"),
        from: day("from")?,
        until,
        before_seq,
        limit: AUDIT_PAGE,
    };
    let lines = s.audit_log(&query)?;
    let value = |k: &str| esc(&field(k).unwrap_or_default());
    let mut body = String::from("<h2>审计日志</h2><div class=\"card\">");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/web/audit\" id=\"audit-filter\">\
         <label>账号 <input name=\"user\" value=\"{}\"></label> \
         <label>操作 <input name=\"action\" value=\"{}\" placeholder=\"sign_in_failed\"></label> \
         <label>对象 <input name=\"target\" value=\"{}\"></label> \
         <label>从 <input name=\"from\" value=\"{}\" placeholder=\"2026-12-01\"></label> \
         <label>到 <input name=\"until\" value=\"{}\" placeholder=\"2026-12-31\"></label> \
         <button class=\"btn\" type=\"submit\">筛选</button></form>\
         <p class=\"muted\">只增不改；每页{AUDIT_PAGE}条，最新的在前。</p>\
         <table id=\"audit\"><tr><th>时间</th><th>账号</th><th>操作</th><th>对象</th><th>来源IP</th></tr>",
        value("user"),
        value("action"),
        value("target"),
        value("from"),
        value("until"),
    );
    for e in &lines {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td data-action=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            time(e.at),
            esc(&e.user_id),
            esc(&e.action),
            esc(action_zh(&e.action)),
            esc(&e.target),
            esc(&e.ip)
        );
    }
    body.push_str("</table>");
    if lines.len() == AUDIT_PAGE as usize
        && let Some(last) = lines.last()
    {
        let mut next: Vec<String> = ["user", "action", "target", "from", "until"]
            .iter()
            .filter_map(|k| field(k).map(|v| format!("{k}={}", url_encode(&v))))
            .collect();
        next.push(format!("before={}", last.seq));
        let _ = write!(body, "<p><a id=\"older\" href=\"/web/audit?{}\">更早的记录</a></p>", esc(&next.join("&")));
    }
    body.push_str("</div>");
    Ok(html(ctx, "审计日志", &body))
}

/// Percent-encode a query value.
pub(super) fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_masked() {
        assert_eq!(mask_id("62122519800101123X"), "621225********123X");
        assert_eq!(mask_id("123"), "***");
        assert_eq!(last_month(1_700_000_000_000), "2023-10");
    }
}
