//! The start pages: the county's overview, a township's villages and a
//! village's open hazards, disputes, visits and (for the roles that work
//! the grid) household ledgers. Counts are the database's.

use std::fmt::Write as _;

use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{DisputeLevel, RecordKind};

use super::disputes::{dispute_of, dispute_table};
use super::guard::{parse_grid, visible};
use super::html::{esc, last_month, names, out, time, village_link};
use super::lists::{load_page, load_where, page_number, pager, parsed_views, shown_of};
use super::{Ctx, Out, Req, WebError};
use crate::reports;
use crate::store::{ServerStore, ViewQuery};

/// `GET /web`
pub fn overview(s: &dyn ServerStore, ctx: &Ctx, _: &Req) -> Result<Out, WebError> {
    let u = &ctx.user;
    match u.role {
        Role::AgencyStaff => {
            return Ok(out(
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
    Ok(out(ctx, "全县总览", &body))
}

/// `GET /web/t/{t}`
pub fn township(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let t = r.param("t");
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
        ViewQuery {
            under: Some(seen.clone()),
            kind: Some(RecordKind::Dispute),
            open: Some(true),
            ..Default::default()
        },
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
    Ok(out(ctx, &tname, &body))
}

/// `GET /web/t/{t}/{v}`
pub fn village(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let v = format!("{}/{}", r.param("t"), r.param("v"));
    let node = parse_grid(&v)?;
    if node.level() != GridLevel::Village {
        return Err(WebError::NotFound);
    }
    let page = page_number(r.query("page"))?;
    let names = names(s)?;
    let Some(vname) = names.get(&node).cloned() else { return Err(WebError::NotFound) };
    let seen = visible(&ctx.user, &node)?;
    let tname = names.get(&node.ancestor(GridLevel::Township)).cloned().unwrap_or_default();
    let mut body = format!("<h2 id=\"title\">{} · {}</h2>", esc(&tname), esc(&vname));
    let under = |kind: RecordKind| ViewQuery { under: Some(seen.clone()), kind: Some(kind), ..Default::default() };
    let (hazards, open_total) = load_page(s, ViewQuery { open: Some(true), ..under(RecordKind::Hazard) }, 1)?;
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
    let (disputes, disputes_total) = load_page(s, under(RecordKind::Dispute), 1)?;
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
        ..under(RecordKind::Visit)
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
        let (households, total) = load_page(s, ViewQuery { sensitive: true, ..under(RecordKind::Household) }, page)?;
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
    Ok(out(ctx, &vname, &body))
}
