//! The township's reviews: the monthly review (月研判) written on the web,
//! and which villages held their weekly review meeting (周排查) this week.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::Datelike;
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{
    DisputeLevel, DisputeStatus, Record, RecordBody, RecordKind, TownshipReview, beijing_day, beijing_midnight_ms,
    parse_month,
};
use gridsync_core::reports::DAY_MS;

use super::disputes::dispute_of;
use super::guard::{parse_grid, visible};
use super::html::{esc, names, out, time};
use super::lists::load;
use super::{Ctx, Out, Req, WebError, edit};

/// Monday (Beijing time) of the week holding `now`.
fn week_start(now: i64) -> chrono::NaiveDate {
    let today = beijing_day(now);
    today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))
}

fn township_of(ctx: &Ctx, t: &str) -> Result<GridPath, WebError> {
    let node = parse_grid(t)?;
    if node.level() != GridLevel::Township {
        return Err(WebError::NotFound);
    }
    let seen = visible(&ctx.user, &node)?;
    if seen != node {
        return Err(WebError::Forbidden("月研判和周排查情况只供乡镇网格总长和县综治中心查看".into()));
    }
    Ok(node)
}

/// `GET /web/reviews/{t}`: the township's monthly reviews, a form for a
/// new one (chief only), and this week's village meetings.
pub fn page(s: &dyn crate::store::ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let node = township_of(ctx, r.param("t"))?;
    let names = names(s)?;
    let tname = names.get(&node).cloned().unwrap_or_default();
    let now = ctx.now;
    let mut body = format!("<h2 id=\"title\">{} · 月研判与周排查</h2>", esc(&tname));

    // This week's 周排查 per village.
    let monday = week_start(now);
    let (from, until) = (beijing_midnight_ms(monday), beijing_midnight_ms(monday) + 7 * DAY_MS);
    let meetings = load(s, &node, RecordKind::VillageMeeting, false)?;
    let mut villages: Vec<(&GridPath, &String)> =
        names.iter().filter(|(p, _)| p.level() == GridLevel::Village && node.contains(p)).collect();
    villages.sort();
    let held: Vec<_> = villages
        .iter()
        .map(|(v, _)| {
            meetings
                .iter()
                .filter_map(|(view, r)| match &r.body {
                    RecordBody::VillageMeeting(m) if v.contains(&view.grid) && (from..until).contains(&m.held_at) => {
                        Some(m.held_at)
                    }
                    _ => None,
                })
                .max()
        })
        .collect();
    let done = held.iter().filter(|h| h.is_some()).count();
    let _ = write!(
        body,
        "<div class=\"card\"><h3>本周周排查（{} 起）：{done}/{} 个村已召开</h3><table id=\"weekly-meetings\"><tr><th>村（社区）</th><th>本周例会</th></tr>",
        monday.format("%Y-%m-%d"),
        villages.len()
    );
    for ((v, name), h) in villages.iter().zip(&held) {
        let cell = match h {
            Some(at) => format!("<span class=\"ok\">已召开</span> {}", time(*at)),
            None => "<span class=\"bad\">未召开</span>".into(),
        };
        let _ = write!(body, "<tr data-village=\"{}\"><td>{}</td><td>{cell}</td></tr>", esc(&v.to_string()), esc(name));
    }
    body.push_str("</table></div>");

    // The form for a new 月研判.
    let disputes = load(s, &node, RecordKind::Dispute, false)?;
    let open: Vec<_> = disputes
        .iter()
        .filter_map(|(v, r)| dispute_of(r).map(|d| (v, d.state())))
        .filter(|(_, st)| st.status != DisputeStatus::Resolved)
        .collect();
    let titles: HashMap<String, String> = disputes.iter().map(|(v, _)| (v.id.to_string(), v.title.clone())).collect();
    if ctx.user.role == Role::TownshipChief {
        let month = beijing_day(now).format("%Y-%m").to_string();
        let _ = write!(
            body,
            "<div class=\"card\"><h3>记录月研判</h3><form method=\"post\" action=\"/web/reviews/{t}\" id=\"review-form\">\
             {}\
             <div class=\"inline\"><label>研判月份 <input name=\"month\" id=\"review-month\" value=\"{month}\" size=\"8\"></label>\
             <label>召开日期 <input name=\"held_on\" id=\"held-on\" value=\"{}\" size=\"10\"></label></div>\
             <label>参会人员（用顿号或逗号分隔） <input name=\"attendees\" id=\"attendees\" size=\"60\"></label>\
             <p>研判的矛盾纠纷：</p>",
            ctx.csrf_field(),
            beijing_day(now).format("%Y-%m-%d"),
            t = esc(r.param("t")),
        );
        if open.is_empty() {
            body.push_str("<p class=\"muted\">暂无未化解的纠纷</p>");
        }
        for (v, st) in &open {
            let checked = if st.level != DisputeLevel::Village { " checked" } else { "" };
            let _ = write!(
                body,
                "<label class=\"check\"><input type=\"checkbox\" name=\"dispute\" value=\"{id}\"{checked}> {} · {} · {}</label>",
                esc(&v.title),
                esc(st.level.label_zh()),
                esc(st.status.label_zh()),
                id = v.id
            );
        }
        body.push_str(
            "<label>研判意见（化解方案、责任人） <textarea name=\"decisions\" id=\"decisions\" rows=\"4\" maxlength=\"8000\"></textarea></label>\
             <p><button class=\"btn\" type=\"submit\" id=\"save-review\">保存月研判</button></p></form></div>",
        );
    }

    // The reviews held.
    let mut reviews: Vec<(i64, Record)> =
        load(s, &node, RecordKind::TownshipReview, false)?.into_iter().map(|(v, r)| (v.occurred_at, r)).collect();
    reviews.sort_by_key(|(at, r)| std::cmp::Reverse((*at, r.created_at)));
    body.push_str("<div class=\"card\"><h3>已记录的月研判</h3>");
    if reviews.is_empty() {
        body.push_str("<p class=\"muted\">暂无</p>");
    }
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    body.push_str("<div id=\"reviews\">");
    for (_, r) in &reviews {
        let RecordBody::TownshipReview(rv) = &r.body else { continue };
        let reviewed: Vec<String> = rv
            .disputes_reviewed
            .keys()
            .map(|id| titles.get(id).cloned().unwrap_or_else(|| "（已删除的纠纷）".into()))
            .collect();
        let _ = write!(
            body,
            "<div class=\"review\"><h4>{} 月研判 · {}</h4><p>参会：{}</p><p>研判纠纷：{}</p><p>研判意见：{}</p><p class=\"muted\">记录人：{}</p></div>",
            esc(&rv.month),
            rv.held_at.map(time).unwrap_or_else(|| "—".into()),
            esc(&rv.attendees.join("、")),
            esc(&reviewed.join("；")),
            esc(&rv.decisions).replace('\n', "<br>"),
            esc(users.get(&r.author).map(String::as_str).unwrap_or(&r.author)),
        );
    }
    body.push_str("</div></div>");
    Ok(out(ctx, "月研判", &body))
}

/// `POST /web/reviews/{t}`: record a 月研判 as the township chief.
pub fn create(s: &dyn crate::store::ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, form) = (r.param("t"), r.pairs());
    let node = township_of(ctx, t)?;
    let single: HashMap<String, String> = form.iter().filter(|(k, _)| k != "dispute").cloned().collect();
    let month = edit::required(&single, "month", "研判月份", 7)?;
    if parse_month(&month).is_none() {
        return Err(WebError::Bad("研判月份格式应为YYYY-MM".into()));
    }
    let held = edit::required(&single, "held_on", "召开日期", 10)?;
    let held_at = chrono::NaiveDate::parse_from_str(&held, "%Y-%m-%d")
        .map(beijing_midnight_ms)
        .map_err(|_| WebError::Bad(format!("召开日期“{held}”格式应为YYYY-MM-DD")))?;
    let attendees = edit::names(&single, "attendees", "参会人员")?;
    let decisions = edit::text(&single, "decisions", "研判意见", 8000)?;
    let mut reviewed = BTreeMap::new();
    for (_, id) in form.iter().filter(|(k, _)| k == "dispute") {
        let id = uuid::Uuid::parse_str(id).map_err(|_| WebError::Bad("研判的纠纷编号无效".into()))?;
        let v = s.record(id)?.filter(|v| v.kind == RecordKind::Dispute && node.contains(&v.grid));
        if v.is_none() {
            return Err(WebError::Bad("研判的纠纷不属于本乡镇".into()));
        }
        reviewed.insert(id.to_string(), true);
    }
    let now = ctx.now;
    let rec = Record::new(
        node,
        &ctx.user.id,
        now,
        RecordBody::TownshipReview(TownshipReview {
            month,
            held_at: Some(held_at + 9 * 3_600_000),
            attendees,
            disputes_reviewed: reviewed,
            decisions,
        }),
    );
    edit::create(s, ctx, &rec, now)?;
    Ok(Out::Redirect(format!("/web/reviews/{t}")))
}
