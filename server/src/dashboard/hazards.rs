//! Hazards (二报) on the web: the list for a node, a hazard's page with its
//! handling steps in causal order, and the two steps the web can add (a
//! handling step, the hazard removed), merged like a phone's change.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::events::Ordered;
use gridsync_core::model::{Hazard, HazardAction, HazardStatus, Record, RecordBody, RecordKind, next_event};
use gridsync_core::rules::{Step, check_step, with_hazard_event};

use super::guard::{node_of, readable};
use super::html::{esc, names, out, time, village_link};
use super::lists::{load_page, page_number, pager};
use super::{Ctx, Out, Req, WebError, edit};
use crate::store::{ServerStore, ViewQuery};

fn hazard_of(r: &Record) -> Option<&Hazard> {
    match &r.body {
        RecordBody::Hazard(h) => Some(h),
        _ => None,
    }
}

fn status_tag(s: HazardStatus) -> String {
    let cls = if s == HazardStatus::Resolved { "tag" } else { "tag warn" };
    format!("<span class=\"{cls}\">{}</span>", esc(s.label_zh()))
}

/// `GET /web/hazards?grid=&status=&open=1&page=`: the hazards under a
/// node, those not removed first, newest first within each, a page at a
/// time; the counts are the database's.
pub fn list(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let get = |k: &str| r.query(k);
    let seen = node_of(ctx, get("grid"))?;
    let page = page_number(get("page"))?;
    let names = names(s)?;
    let status = match get("status") {
        None => None,
        Some(w) => Some(
            [HazardStatus::Open, HazardStatus::Handling, HazardStatus::Resolved]
                .into_iter()
                .find(|h| h.as_str() == w)
                .ok_or_else(|| WebError::Bad("隐患状态应为待处置、处置中或已消除".into()))?,
        ),
    };
    let open_only = get("open") == Some("1");
    let all = ViewQuery { under: Some(seen.clone()), kind: Some(RecordKind::Hazard), live: true, ..Default::default() };
    let open_total = s.count_records(&ViewQuery { open: Some(true), ..all.clone() })?;
    let (list, total) = load_page(
        s,
        ViewQuery {
            status: status.map(|h| h.as_str().to_owned()),
            open: open_only.then_some(true),
            open_first: true,
            ..all
        },
        page,
    )?;
    let title = names.get(&seen).cloned().unwrap_or_else(|| "全县".into());
    let mut base = format!("/web/hazards?grid={seen}");
    if let Some(h) = status {
        let _ = write!(base, "&status={}", h.as_str());
    }
    if open_only {
        base.push_str("&open=1");
    }
    let what = match (status, open_only) {
        (Some(h), _) => h.label_zh().to_owned(),
        (None, true) => "未消除".into(),
        (None, false) => String::new(),
    };
    let mut body = format!(
        "<h2 id=\"title\">{}隐患 · {}</h2><p class=\"muted\">未消除 <span id=\"open\">{open_total}</span> 条 · \
         <a href=\"/web/hazards?grid={}&amp;open=1\">只看未消除</a> · <a href=\"/web/hazards?grid={}\">全部</a> · \
         <a href=\"/web/map?grid={}\">在地图上查看</a></p><div class=\"card\">{}\
         <table id=\"hazards\"><tr><th>隐患</th><th>类别</th><th>村</th><th>地点</th><th>状态</th><th>处置步骤</th><th>发现时间</th></tr>",
        esc(&what),
        esc(&title),
        esc(&seen.to_string()),
        esc(&seen.to_string()),
        esc(&seen.to_string()),
        pager("count", &base, page, total),
    );
    for (v, r) in &list {
        let Some(h) = hazard_of(r) else { continue };
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/hazards/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.id,
            esc(&v.title),
            esc(h.category.label_zh()),
            village_link(&names, &v.grid),
            esc(&h.location.text),
            status_tag(h.status()),
            h.events.len(),
            time(r.created_at)
        );
    }
    body.push_str("</table></div>");
    Ok(out(ctx, "隐患", &body))
}

/// Whether the rules would take `action` by this user on `r` now (the
/// server judges again when the form is sent).
fn may_take(ctx: &Ctx, r: &Record, action: HazardAction) -> bool {
    let after = with_hazard_event(r, &ctx.user.id, ctx.now, action);
    check_step(&ctx.writer(), r, Step::Append(&after)).is_ok()
}

/// `GET /web/hazards/{id}`
pub fn page(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let (v, r) = readable(s, ctx, req.param("id"), Some(RecordKind::Hazard), "view_hazard")?;
    let Some(h) = hazard_of(&r) else { return Err(WebError::NotFound) };
    let names = names(s)?;
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let gps = h.location.gps.map_or(String::new(), |g| {
        format!(" · <span class=\"muted\" id=\"gps\">北纬{:.5}°，东经{:.5}°</span>", g.lat, g.lon)
    });
    let mut body = format!(
        "<h2 id=\"title\">{}</h2><div class=\"card\"><p>{} · 类别：{} · 状态：<span id=\"status\">{}</span></p>\
         <p>地点：{}{gps}</p><p>{}</p><p class=\"muted\">{} 于 {} 发现</p></div>",
        esc(&v.title),
        village_link(&names, &v.grid),
        esc(h.category.label_zh()),
        status_tag(h.status()),
        esc(&h.location.text),
        esc(&h.description),
        esc(&who(&r.author)),
        time(r.created_at),
    );
    let csrf = ctx.csrf_field();
    let mut forms = String::new();
    for (step, title, label, button, action) in [
        ("step", "报处置情况", "采取的措施", "记录处置情况", HazardAction::Step { note: String::new() }),
        ("resolved", "隐患已消除", "消除情况", "确认已消除", HazardAction::Resolved { note: String::new() }),
    ] {
        if h.status() == HazardStatus::Resolved && step == "resolved" {
            continue;
        }
        if !may_take(ctx, &r, action) {
            continue;
        }
        let _ = write!(
            forms,
            "<form method=\"post\" action=\"/web/hazards/{}/act\" class=\"step\" id=\"form-{step}\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"{step}\"><h4>{title}</h4>\
             <label>{label}<textarea name=\"note\" rows=\"2\" maxlength=\"2000\" required></textarea></label>\
             <p><button class=\"btn\" type=\"submit\" id=\"do-{step}\">{button}</button></p></form>",
            v.id
        );
    }
    if !forms.is_empty() {
        let _ = write!(body, "<div class=\"card\" id=\"actions\"><h3>处置</h3>{forms}</div>");
    }
    body.push_str("<div class=\"card\"><h3>处置经过（按先后顺序）</h3><ol class=\"timeline\" id=\"timeline\">");
    for e in Ordered::new(&h.events).events {
        let note = match &e.action {
            HazardAction::Reported { note } | HazardAction::Step { note } | HazardAction::Resolved { note } => note,
        };
        let _ = write!(
            body,
            "<li><strong>{}</strong> · {} · {}{}</li>",
            esc(e.action.label_zh()),
            esc(&who(&e.by)),
            time(e.at),
            if note.is_empty() { String::new() } else { format!("：{}", esc(note)) }
        );
    }
    body.push_str("</ol></div>");
    body.push_str(&super::html::photos_card(&r.attachments, &who));
    body.push_str(&super::html::provenance_link(&v.id));
    Ok(out(ctx, &v.title, &body))
}

/// `POST /web/hazards/{id}/act`: append a handling step or the removal as
/// the signed-in user, merged like a phone's change.
pub fn act(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let form = req.form();
    let (v, _) = readable(s, ctx, req.param("id"), Some(RecordKind::Hazard), "view_hazard")?;
    let action = match form.get("action").map(String::as_str) {
        Some("step") => HazardAction::Step { note: edit::required(form, "note", "处置措施", 2000)? },
        Some("resolved") => HazardAction::Resolved { note: edit::required(form, "note", "消除情况", 2000)? },
        _ => return Err(WebError::Bad("未知的处置步骤".into())),
    };
    let now = ctx.now;
    let user = ctx.user.id.clone();
    edit::update(s, ctx, v.id, now, move |rec| {
        let RecordBody::Hazard(h) = &mut rec.body else { return Err(WebError::NotFound) };
        let e = next_event(&h.events, &user, now, action);
        h.events.push(e);
        Ok(())
    })?;
    Ok(Out::Redirect(format!("/web/hazards/{}", v.id)))
}
