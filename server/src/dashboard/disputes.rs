//! A dispute's page and the steps taken on it from the web: classify, set
//! a plan and team, follow up, stabilise, resolve, escalate one level up,
//! and settle a conflict by keeping one of its two events. Each step is an
//! event appended with the core's `next_event` and merged like a phone's
//! ([`super::edit`]), so the rules decide who may take it at which level.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use gridsync_core::events::{Event, Ordered};
use gridsync_core::grid::GridPath;
use gridsync_core::model::{
    Dispute, DisputeAction, DisputeCategory, DisputeLevel, DisputeState, DisputeStatus, Record, RecordBody, RecordKind,
    next_event,
};
use gridsync_core::rules::{Step, check_step, with_dispute_event};
use uuid::Uuid;

use super::guard::{node_of, readable};
use super::html::{esc, names, out, time, village_link};
use super::lists::{load_page, page_number, pager};
use super::{Ctx, Out, Req, WebError, edit};
use crate::store::{RecordView, ServerStore, ViewQuery};

/// Every category, in the order the form lists them.
const CATEGORIES: [DisputeCategory; 6] = [
    DisputeCategory::Neighbour,
    DisputeCategory::Family,
    DisputeCategory::Land,
    DisputeCategory::Debt,
    DisputeCategory::Labour,
    DisputeCategory::Other,
];

fn category_code(c: DisputeCategory) -> &'static str {
    match c {
        DisputeCategory::Neighbour => "neighbour",
        DisputeCategory::Family => "family",
        DisputeCategory::Land => "land",
        DisputeCategory::Debt => "debt",
        DisputeCategory::Labour => "labour",
        DisputeCategory::Other => "other",
    }
}

/// The level a dispute goes to when escalated from `level` (`None` at the top).
fn next_level(level: DisputeLevel) -> Option<DisputeLevel> {
    match level {
        DisputeLevel::Village => Some(DisputeLevel::Township),
        DisputeLevel::Township => Some(DisputeLevel::County),
        DisputeLevel::County => None,
    }
}

fn field_zh(k: &str) -> &str {
    match k {
        "note" => "备注",
        "category" => "类别",
        "plan" => "化解方案",
        "team" => "化解小组",
        "to" | "level" => "层级",
        "kept" => "保留事件",
        _ => k,
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("、"),
        other => other.to_string(),
    }
}

/// What an event says, in words: its label and its fields. A settlement's
/// kept event is named by its content, never by its id.
fn event_text(e: &Event<DisputeAction>, all: &[Event<DisputeAction>], who: &dyn Fn(&str) -> String) -> String {
    let mut details = String::new();
    if let DisputeAction::Settled { kept, note } = &e.action {
        if let Some(k) = all.iter().find(|x| &x.id == kept) {
            let _ = write!(
                details,
                "<div class=\"muted\">保留：{}（{} · {}）</div>",
                esc(&short(k)),
                esc(&who(&k.by)),
                time(k.at)
            );
        }
        if !note.is_empty() {
            let _ = write!(details, "<div class=\"muted\">备注：{}</div>", esc(note));
        }
        return details;
    }
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&e.action) {
        for (k, val) in m.iter().filter(|(k, _)| k.as_str() != "type") {
            let text = match k.as_str() {
                "category" => serde_json::from_value::<DisputeCategory>(val.clone())
                    .map(|c| c.label_zh().to_owned())
                    .unwrap_or_else(|_| value_text(val)),
                "to" => serde_json::from_value::<DisputeLevel>(val.clone())
                    .map(|l| l.label_zh().to_owned())
                    .unwrap_or_else(|_| value_text(val)),
                _ => value_text(val),
            };
            if !text.is_empty() {
                let _ = write!(details, "<div class=\"muted\">{}：{}</div>", esc(field_zh(k)), esc(&text));
            }
        }
    }
    details
}

/// One line naming an event by what it says (`化解：双方达成协议`).
fn short(e: &Event<DisputeAction>) -> String {
    let what = match &e.action {
        DisputeAction::Classified { category, note } => format!("{} {}", category.label_zh(), note),
        DisputeAction::PlanSet { plan, team } => {
            if team.is_empty() {
                plan.clone()
            } else {
                format!("{plan}（化解小组：{}）", team.join("、"))
            }
        }
        DisputeAction::Escalated { to, note } => format!("至{} {}", to.label_zh(), note),
        DisputeAction::Found { note }
        | DisputeAction::FollowUp { note }
        | DisputeAction::Stabilized { note }
        | DisputeAction::Resolved { note }
        | DisputeAction::Settled { note, .. } => note.clone(),
    };
    let what: String = what.trim().chars().take(120).collect();
    if what.is_empty() { e.action.label_zh().to_owned() } else { format!("{}：{what}", e.action.label_zh()) }
}

/// Whether the rules would take `action` by the signed-in user on `r` now
/// (the server judges again when the form is sent): the same
/// `rules::check_step` the phone's action list asks, so the page offers no
/// step, and no side of a conflict, that the merge would then refuse.
fn may_take(ctx: &Ctx, r: &Record, action: DisputeAction) -> bool {
    let after = with_dispute_event(r, &ctx.user.id, ctx.now, action);
    check_step(&ctx.writer(), r, Step::Append(&after)).is_ok()
}

/// The steps the signed-in user may take on the dispute `r` now.
fn allowed(ctx: &Ctx, r: &Record, st: &DisputeState) -> Vec<&'static str> {
    let note = String::new;
    let mut candidates = vec![
        ("classified", DisputeAction::Classified { category: st.category, note: note() }),
        ("plan_set", DisputeAction::PlanSet { plan: note(), team: vec![] }),
        ("follow_up", DisputeAction::FollowUp { note: note() }),
        ("stabilized", DisputeAction::Stabilized { note: note() }),
        ("resolved", DisputeAction::Resolved { note: note() }),
    ];
    if let Some(to) = next_level(st.level) {
        candidates.push(("escalated", DisputeAction::Escalated { to, note: note() }));
    }
    candidates.into_iter().filter(|(_, action)| may_take(ctx, r, action.clone())).map(|(step, _)| step).collect()
}

fn forms(ctx: &Ctx, id: Uuid, r: &Record, d: &Dispute, st: &DisputeState) -> String {
    let level = st.level;
    let steps = allowed(ctx, r, st);
    if steps.is_empty() {
        return String::new();
    }
    let action = format!("/web/disputes/{id}/act");
    let csrf = ctx.csrf_field();
    let mut out = String::from("<div class=\"card\" id=\"actions\"><h3>处理</h3>");
    let form = |out: &mut String, step: &str, title: &str, inner: &str, button: &str| {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{action}\" class=\"step\" id=\"form-{step}\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"{step}\"><h4>{title}</h4>{inner}\
             <p><button class=\"btn\" type=\"submit\" id=\"do-{step}\">{button}</button></p></form>"
        );
    };
    for step in steps {
        match step {
            "classified" => {
                let current = d.state().category;
                let mut options = String::new();
                for c in CATEGORIES {
                    let sel = if c == current { " selected" } else { "" };
                    let _ = write!(options, "<option value=\"{}\"{sel}>{}</option>", category_code(c), c.label_zh());
                }
                form(
                    &mut out,
                    step,
                    "甄别分类",
                    &format!(
                        "<label>纠纷类别 <select name=\"category\" id=\"category\">{options}</select></label>\
                         <label>说明 <input name=\"note\" id=\"classified-note\" maxlength=\"2000\"></label>"
                    ),
                    "保存分类",
                );
            }
            "plan_set" => form(
                &mut out,
                step,
                "制定化解方案",
                "<label>化解方案 <textarea name=\"plan\" id=\"plan\" rows=\"3\" maxlength=\"2000\"></textarea></label>\
                 <label>化解小组（姓名用顿号或逗号分隔） <input name=\"team\" id=\"team\" maxlength=\"2000\"></label>",
                "保存方案",
            ),
            "follow_up" => form(
                &mut out,
                step,
                "跟进",
                "<label>跟进情况 <textarea name=\"note\" id=\"follow_up-note\" rows=\"2\" maxlength=\"2000\"></textarea></label>",
                "记录跟进",
            ),
            "stabilized" => form(
                &mut out,
                step,
                "稳控管理",
                "<label>稳控措施 <textarea name=\"note\" id=\"stabilized-note\" rows=\"2\" maxlength=\"2000\"></textarea></label>",
                "记录稳控",
            ),
            "resolved" => form(
                &mut out,
                step,
                "化解",
                "<label>化解结果 <textarea name=\"note\" id=\"resolved-note\" rows=\"2\" maxlength=\"2000\"></textarea></label>",
                "记录已化解",
            ),
            "escalated" => {
                let to = next_level(level).map(DisputeLevel::label_zh).unwrap_or_default();
                form(
                    &mut out,
                    step,
                    &format!("上报至{to}"),
                    "<label>上报原因 <textarea name=\"note\" id=\"escalated-note\" rows=\"2\" maxlength=\"2000\"></textarea></label>",
                    &format!("上报{to}"),
                );
            }
            _ => {}
        }
    }
    out.push_str("</div>");
    out
}

/// `GET /web/disputes/{id}`: parties, state, the conflicts waiting with a
/// button to keep either event, the steps the user may take, and the
/// timeline in causal order with overruled events marked.
pub fn page(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let (v, r) = readable(s, ctx, req.param("id"), Some(RecordKind::Dispute), "view_dispute")?;
    let Some(d) = dispute_of(&r) else { return Err(WebError::NotFound) };
    let names = names(s)?;
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let st = d.state();
    let status_cls = if st.status == DisputeStatus::Resolved { "tag" } else { "tag warn" };
    let mut body = format!(
        "<h2 id=\"title\">{}</h2><div class=\"card\"><p>{} · 类别：<span id=\"category-now\">{}</span> · 层级：<span id=\"level\">{}</span> · 状态：<span class=\"{status_cls}\" id=\"status\">{}</span></p>\
         <p>当事人：{}</p><p>{}</p><p class=\"muted\">发现于 {}</p></div>",
        esc(&v.title),
        village_link(&names, &v.grid),
        esc(st.category.label_zh()),
        esc(st.level.label_zh()),
        esc(st.status.label_zh()),
        esc(&d.parties.join("、")),
        esc(&d.summary),
        time(d.found_at)
    );
    // Each side this user may keep, as the rules judge it: below the
    // dispute's level only an escalation may be kept.
    let may_keep =
        |kept: &str| may_take(ctx, &r, DisputeAction::Settled { kept: kept.to_owned(), note: String::new() });
    let mut kept_any = false;
    if !st.conflicts.is_empty() {
        body.push_str("<div class=\"card\" id=\"conflicts\"><h3 class=\"bad\">待裁定的冲突</h3>");
        for c in &st.conflicts {
            let _ = write!(body, "<p><strong>{}</strong></p><div class=\"pair\">", esc(&c.reason_zh));
            for kept in [&c.a, &c.b] {
                let Some(e) = d.events.iter().find(|e| &e.id == kept) else { continue };
                let _ = write!(
                    body,
                    "<div class=\"choice\"><p><strong>{}</strong></p><p class=\"muted\">{} · {}</p>",
                    esc(&short(e)),
                    esc(&who(&e.by)),
                    time(e.at)
                );
                if may_keep(&e.id) {
                    kept_any = true;
                    let _ = write!(
                        body,
                        "<form method=\"post\" action=\"/web/disputes/{}/act\">{}<input type=\"hidden\" name=\"action\" value=\"settled\">\
                         <input type=\"hidden\" name=\"kept\" value=\"{}\"><input name=\"note\" placeholder=\"裁定说明（可选）\" maxlength=\"2000\">\
                         <button class=\"btn keep\" type=\"submit\" data-kept=\"{}\">保留此项</button></form>",
                        v.id,
                        ctx.csrf_field(),
                        esc(&e.id),
                        esc(&e.id),
                    );
                }
                body.push_str("</div>");
            }
            body.push_str("</div>");
        }
        if !kept_any {
            let _ =
                write!(body, "<p class=\"muted\" id=\"settled-by\">由负责{}的人员裁定。</p>", esc(st.level.label_zh()));
        }
        body.push_str("</div>");
    }
    body.push_str(&forms(ctx, v.id, &r, d, &st));
    let ordered = Ordered::new(&d.events);
    let (open, overruled) = ordered.conflicts();
    let in_conflict: BTreeSet<&str> = open.iter().flat_map(|c| [c.a.as_str(), c.b.as_str()]).collect();
    body.push_str("<div class=\"card\"><h3>处理经过（按先后顺序）</h3><ol class=\"timeline\" id=\"timeline\">");
    for (i, e) in ordered.events.iter().enumerate() {
        let (cls, mark) = if overruled.contains(&i) {
            (" class=\"overruled\"", "<span class=\"tag\">已被裁定否决</span> ")
        } else if in_conflict.contains(e.id.as_str()) {
            (" class=\"conflict\"", "<span class=\"tag warn\">冲突待裁定</span> ")
        } else {
            ("", "")
        };
        let _ = write!(
            body,
            "<li{cls}>{mark}<strong>{}</strong> · {} · {}{}</li>",
            esc(e.action.label_zh()),
            esc(&who(&e.by)),
            time(e.at),
            event_text(e, &d.events, &who)
        );
    }
    body.push_str("</ol></div>");
    body.push_str(&super::html::photos_card(&r.attachments, &who));
    body.push_str(&super::html::provenance_link(&v.id));
    Ok(out(ctx, &v.title, &body))
}

/// `POST /web/disputes/{id}/act`: append the step in the form to the
/// stored history as the signed-in user, merged like a phone's change.
pub fn act(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let form = req.form();
    let (v, r) = readable(s, ctx, req.param("id"), Some(RecordKind::Dispute), "view_dispute")?;
    let Some(d) = dispute_of(&r) else { return Err(WebError::NotFound) };
    let st = d.state();
    let note = || edit::text(form, "note", "说明", 2000);
    let action = match form.get("action").map(String::as_str) {
        Some("classified") => {
            let code = form.get("category").map(String::as_str).unwrap_or_default();
            let category = CATEGORIES
                .into_iter()
                .find(|c| category_code(*c) == code)
                .ok_or_else(|| WebError::Bad("请选择纠纷类别".into()))?;
            DisputeAction::Classified { category, note: note()? }
        }
        Some("plan_set") => DisputeAction::PlanSet {
            plan: edit::required(form, "plan", "化解方案", 2000)?,
            team: edit::names(form, "team", "化解小组")?,
        },
        Some("follow_up") => DisputeAction::FollowUp { note: edit::required(form, "note", "跟进情况", 2000)? },
        Some("stabilized") => DisputeAction::Stabilized { note: edit::required(form, "note", "稳控措施", 2000)? },
        Some("resolved") => DisputeAction::Resolved { note: edit::required(form, "note", "化解结果", 2000)? },
        Some("escalated") => {
            let to = next_level(st.level).ok_or_else(|| WebError::Bad("县级纠纷不能再上报".into()))?;
            DisputeAction::Escalated { to, note: edit::required(form, "note", "上报原因", 2000)? }
        }
        Some("settled") => {
            let kept = form.get("kept").cloned().unwrap_or_default();
            if !st.conflicts.iter().any(|c| c.a == kept || c.b == kept) {
                return Err(WebError::Bad("该冲突已经裁定或不存在，请刷新页面".into()));
            }
            DisputeAction::Settled { kept, note: note()? }
        }
        _ => return Err(WebError::Bad("未知的处理步骤".into())),
    };
    let now = ctx.now;
    let user = ctx.user.id.clone();
    edit::update(s, ctx, v.id, now, move |rec| {
        let RecordBody::Dispute(d) = &mut rec.body else { return Err(WebError::NotFound) };
        let e = next_event(&d.events, &user, now, action);
        d.events.push(e);
        Ok(())
    })?;
    Ok(Out::Redirect(format!("/web/disputes/{}", v.id)))
}

/// The dispute a record holds, if it is one.
pub fn dispute_of(r: &Record) -> Option<&Dispute> {
    match &r.body {
        RecordBody::Dispute(d) => Some(d),
        _ => None,
    }
}

/// Disputes as a table: title, village, category, level, status, found.
pub fn dispute_table(names: &HashMap<GridPath, String>, disputes: &[(RecordView, Record)]) -> String {
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
pub fn list(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let seen = node_of(ctx, r.query("grid"))?;
    let page = page_number(r.query("page"))?;
    let open = r.query("open") == Some("1");
    let names = names(s)?;
    let (list, total) = load_page(
        s,
        ViewQuery {
            under: Some(seen.clone()),
            kind: Some(RecordKind::Dispute),
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
    Ok(out(ctx, "矛盾纠纷", &body))
}
