//! The township's monthly report (月度报告) on the web: a draft the chief
//! saves and returns to, a confirmation page before it becomes final, a
//! month that has not ended refused, the narrative and figures shown as
//! they were submitted (never recomputed), and the county sending it back
//! for correction with a reason. Every change is a `monthly_report` record
//! merged like a phone's ([`super::edit`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use gridsync_core::grid::{GridPath, Role};
use gridsync_core::model::{MonthlyReport, Record, RecordBody, ReportReturn};
use gridsync_core::reports::DEFAULT_BACKLOG_DAYS;
use uuid::Uuid;

use super::html::{esc, out, tables_html, time};
use super::{Ctx, Out, Req, WebError, edit};

use crate::reports::{self, MonthlyReportData};
use crate::reports_files::{self, Cell, Table};
use crate::store::{RecordView, ServerStore, ViewQuery};

/// The Chinese label of a figure of a monthly report (`disputes.found`).
pub fn figure_label(key: &str) -> &str {
    match key {
        "patrols.morning" => "早巡次数",
        "patrols.midday" => "午巡次数",
        "patrols.evening" => "晚巡次数",
        "hazards.found" => "新发现隐患",
        "hazards.handled" => "已处置隐患",
        "hazards.open" => "未消除隐患",
        "visits.floating_population" => "走访流动人口/出租房",
        "visits.key_person" => "走访重点人群",
        "visits.special_place" => "走访特殊场所",
        "disputes.found" => "新排查矛盾纠纷",
        "disputes.resolved" => "已化解矛盾纠纷",
        "disputes.escalated" => "上报矛盾纠纷",
        "disputes.backlog" => "积案",
        other => other,
    }
}

/// The figures of a monthly report in the order the monthly table shows them.
const FIGURE_ORDER: [&str; 13] = [
    "patrols.morning",
    "patrols.midday",
    "patrols.evening",
    "hazards.found",
    "hazards.handled",
    "hazards.open",
    "visits.floating_population",
    "visits.key_person",
    "visits.special_place",
    "disputes.found",
    "disputes.resolved",
    "disputes.escalated",
    "disputes.backlog",
];

/// The record id the web gives a township's report on a month: one per
/// township and month, so two submissions racing are two creations of one
/// record and the second is refused.
pub fn report_id(grid: &GridPath, month: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("gridsync:monthly_report/{grid}/{month}").as_bytes())
}

/// The township's report record on `month`: the web's own if there is
/// one, else the latest a phone made.
fn find(s: &dyn ServerStore, grid: &GridPath, month: &str) -> Result<Option<(RecordView, MonthlyReport)>, WebError> {
    // A report's list date is its month's first instant.
    let (start, end) = reports::month_bounds(month)?;
    let views = super::lists::load_where(
        s,
        ViewQuery {
            under: Some(grid.clone()),
            kind: Some(gridsync_core::model::RecordKind::MonthlyReport),
            from: Some(start),
            until: Some(end),
            ..Default::default()
        },
    )?;
    let own = report_id(grid, month);
    let mut found: Vec<(RecordView, MonthlyReport)> = views
        .into_iter()
        .filter(|(v, _)| &v.grid == grid)
        .filter_map(|(v, r)| match r.body {
            RecordBody::MonthlyReport(m) if m.month == month => Some((v, m)),
            _ => None,
        })
        .collect();
    found.sort_by_key(|(v, _)| (v.id == own, v.updated_at));
    Ok(found.pop())
}

fn figures_table(title: &str, id: &str, figures: &BTreeMap<String, i64>) -> String {
    let mut out = format!(
        "<div class=\"card\"><h3>{}</h3><table id=\"{id}\"><tr><th>项目</th><th class=\"n\">数量</th></tr>",
        esc(title)
    );
    // In the order of the monthly table, then anything else by name.
    let mut rows: Vec<(&String, &i64)> = figures.iter().collect();
    rows.sort_by_key(|(k, _)| (FIGURE_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX), k.as_str()));
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td class=\"n\">{v}</td></tr>", esc(figure_label(k)));
    }
    out.push_str("</table></div>");
    out
}

/// The figures as the township submitted them, and beside each what the
/// records give now, a difference marked: the county reads what the
/// township signed, and sees where the records have moved since.
fn submitted_table(submitted: &BTreeMap<String, i64>, now: &BTreeMap<String, i64>) -> String {
    let changes = reports::figure_changes(submitted, now);
    let mut out = format!(
        "<div class=\"card\"><h3>报送的数字（提交时的统计，不再重算）</h3>{}\
         <table id=\"submitted-figures\"><tr><th>项目</th><th class=\"n\">报送数</th><th class=\"n\">按当前记录</th><th>差异</th></tr>",
        if changes.is_empty() {
            "<p class=\"muted\" id=\"figures-unchanged\">报送后记录没有变化，当前记录计算的数字与报送数一致。</p>"
                .to_owned()
        } else {
            format!(
                "<p class=\"bad\" id=\"figures-changed\">报送后有{}项数字与当前记录不一致（记录在报送后有补录或更正），已在下表标出。</p>",
                changes.len()
            )
        }
    );
    let mut keys: Vec<&String> = submitted.keys().chain(now.keys()).collect();
    keys.sort_by_key(|k| (FIGURE_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX), k.as_str()));
    keys.dedup();
    for k in keys {
        let (was, is) = (submitted.get(k), now.get(k));
        let text = |v: Option<&i64>| v.map_or_else(|| "—".to_owned(), i64::to_string);
        let diff = match (was, is) {
            (Some(a), Some(b)) if a == b => String::new(),
            (Some(a), Some(b)) => format!("<span class=\"bad\">{:+}</span>", b - a),
            _ => "<span class=\"bad\">不一致</span>".to_owned(),
        };
        let _ = write!(
            out,
            "<tr data-figure=\"{}\"><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{diff}</td></tr>",
            esc(k),
            esc(figure_label(k)),
            text(was),
            text(is)
        );
    }
    out.push_str("</table></div>");
    out
}

/// The figures as one line of text, to tell whether the records changed
/// between the confirmation page and the submission.
fn digest(figures: &BTreeMap<String, i64>) -> String {
    figures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
}

/// Whether the month is over (a report on it may be submitted).
fn month_over(month: &str, now: i64) -> Result<bool, WebError> {
    let (_, end) = reports::month_bounds(month)?;
    Ok(now >= end)
}

fn own_chief(ctx: &Ctx, grid: &GridPath) -> bool {
    ctx.user.role == Role::TownshipChief && &ctx.user.scope() == grid
}

fn tables(data: &MonthlyReportData, submitted: Option<&MonthlyReport>) -> Vec<Table> {
    let mut t = reports_files::monthly_tables(data);
    if let Some(m) = submitted {
        t.insert(
            0,
            Table {
                title: "报送数字".into(),
                headers: vec!["项目".into(), "数量".into()],
                rows: m.figures.iter().map(|(k, v)| vec![Cell::from(figure_label(k)), Cell::Int(*v)]).collect(),
            },
        );
        t.push(Table {
            title: "报告正文".into(),
            headers: vec!["报告正文".into()],
            rows: vec![vec![Cell::Text(m.narrative.clone())]],
        });
    }
    t
}

/// `GET /web/reports/{t}/{YYYY-MM}[.xlsx]`
pub fn page(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, month) = (r.param("t"), r.param("month"));
    let (month, xlsx) = match month.strip_suffix(".xlsx") {
        Some(m) => (m, true),
        None => (month, false),
    };
    let grid = reports::target(&ctx.user, Some(t))?;
    let now = ctx.now;
    let data = reports::monthly(s, &grid, month, DEFAULT_BACKLOG_DAYS, now)?;
    let record = find(s, &grid, month)?;
    let submitted = record.as_ref().map(|(_, m)| m).filter(|m| m.submitted_at.is_some());
    if xlsx {
        let bytes =
            reports_files::to_xlsx(&tables(&data, submitted)).map_err(|e| WebError::Store(format!("xlsx: {e}")))?;
        ctx.audit(s, "download_report", &format!("{grid}/{month}"))?;
        return Ok(Out::File {
            bytes,
            ctype: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            name: format!("monthly-{}-{month}.xlsx", grid.to_string().replace('/', "-")),
        });
    }
    let sub = &data.submission;
    let state = match record.as_ref().map(|(_, m)| m) {
        Some(m) if m.submitted_at.is_some() => sub.status.label_zh().to_owned(),
        Some(m) if m.returned.is_some() => "已退回修改".into(),
        Some(_) => format!("草稿 · {}", sub.status.label_zh()),
        None => sub.status.label_zh().to_owned(),
    };
    let mut body = format!(
        "<h2 id=\"title\">{} {} 月度报告</h2><div class=\"card\"><p>报送状态：<span class=\"tag\" id=\"submission\">{}</span>{}</p>\
         <p class=\"muted\">应于{}前报送。</p>\
         <p><a class=\"btn alt\" id=\"download\" href=\"/web/reports/{}/{}.xlsx\">下载Excel（XLSX）</a></p>",
        esc(&data.name),
        esc(month),
        esc(&state),
        sub.submitted_at.map(|t| format!(" · 提交于 <span id=\"submitted-at\">{}</span>", time(t))).unwrap_or_default(),
        esc(&reports::submissions(s, &grid, month, now)?.due_date),
        esc(t),
        esc(month)
    );
    if let Some(ret) = record.as_ref().and_then(|(_, m)| m.returned.as_ref()) {
        let _ = write!(
            body,
            "<p class=\"msg\" id=\"returned\">{}于{}退回修改：{}</p>",
            esc(&user_name(s, &ret.by)),
            time(ret.at),
            esc(&ret.reason)
        );
    }
    body.push_str(&super::figures::so_far_note("本月", data.total.as_of, data.total.complete));
    body.push_str("</div>");
    let csrf = ctx.csrf_field();
    if let Some(m) = submitted {
        // What the county received, exactly as it was submitted.
        let _ = write!(
            body,
            "<div class=\"card\"><h3>报告正文（报送时）</h3><p id=\"narrative-submitted\">{}</p></div>",
            esc(&m.narrative).replace('\n', "<br>")
        );
        body.push_str(&submitted_table(&m.figures, &data.draft_figures));
        if ctx.user.role == Role::CountyStaff {
            let _ = write!(
                body,
                "<div class=\"card\"><h3>退回修改</h3><form method=\"post\" action=\"/web/reports/{}/{}/return\">{csrf}\
                 <label>退回原因 <textarea name=\"reason\" id=\"return-reason\" rows=\"2\" maxlength=\"2000\" required></textarea></label>\
                 <p><button class=\"btn\" type=\"submit\" id=\"return\">退回乡镇修改</button></p></form></div>",
                esc(t),
                esc(month)
            );
        }
    } else if own_chief(ctx, &grid) {
        let draft = record.as_ref().map(|(_, m)| m.narrative.clone()).unwrap_or_default();
        let over = month_over(month, now)?;
        let _ = write!(
            body,
            "<div class=\"card\"><h3>填写报告</h3><form method=\"post\" action=\"/web/reports/{t}/{m}/draft\" id=\"report-form\">{csrf}\
             <label for=\"narrative\">报告正文</label><textarea id=\"narrative\" name=\"narrative\" rows=\"6\" maxlength=\"20000\">{}</textarea>\
             <p><button class=\"btn alt\" type=\"submit\" id=\"save-draft\">保存草稿</button> \
             {}</p></form></div>",
            esc(&draft),
            if over {
                "<button class=\"btn\" type=\"submit\" id=\"submit\" formaction=\"/web/reports/{t}/{m}/confirm\">提交月度报告…</button>"
                    .replace("{t}", &esc(t))
                    .replace("{m}", &esc(month))
            } else {
                "<span class=\"muted\" id=\"not-over\">本月尚未结束，月底后才能提交；现在可以先保存草稿。</span>".into()
            },
            t = esc(t),
            m = esc(month),
        );
        body.push_str(&figures_table("草稿数字（按当前记录计算，提交时固定）", "draft-figures", &data.draft_figures));
    }
    body.push_str(&format!(
        "<h3>按村明细（按当前记录计算）</h3>{}",
        tables_html(&reports_files::monthly_tables(&data))
    ));
    Ok(out(ctx, "月度报告", &body))
}

fn user_name(s: &dyn ServerStore, id: &str) -> String {
    s.user(id).ok().flatten().map(|u| u.display_name).unwrap_or_else(|| id.to_owned())
}

fn chief_only(ctx: &Ctx, t: &str) -> Result<GridPath, WebError> {
    let grid = reports::target(&ctx.user, Some(t))?;
    if !own_chief(ctx, &grid) {
        return Err(WebError::Forbidden("只有本乡镇的网格总长可以填写和提交月度报告".into()));
    }
    Ok(grid)
}

/// Write the report: a new record with the web's id, or the existing one
/// updated; `submit` sets `submitted_at` (the server stamps its own time).
/// What the chief writes: the narrative, the figures, and whether it is submitted.
struct Written {
    narrative: String,
    figures: BTreeMap<String, i64>,
    submit: bool,
}

fn save(s: &dyn ServerStore, ctx: &Ctx, grid: &GridPath, month: &str, w: Written, now: i64) -> Result<(), WebError> {
    let Written { narrative, figures, submit } = w;
    let submitted_at = submit.then_some(now);
    match find(s, grid, month)? {
        Some((v, m)) => {
            if m.submitted_at.is_some() {
                return Err(WebError::Bad("该月的月度报告已经提交".into()));
            }
            edit::update(s, ctx, v.id, now, |rec| {
                let RecordBody::MonthlyReport(m) = &mut rec.body else { return Err(WebError::NotFound) };
                m.narrative = narrative;
                m.figures = figures;
                m.submitted_at = submitted_at;
                Ok(())
            })?;
        }
        None => {
            let mut rec = Record::new(
                grid.clone(),
                &ctx.user.id,
                now,
                RecordBody::MonthlyReport(MonthlyReport {
                    month: month.to_owned(),
                    figures,
                    narrative,
                    submitted_at,
                    returned: None,
                }),
            );
            rec.id = report_id(grid, month);
            edit::create(s, ctx, &rec, now).map_err(|e| match e {
                // The web's id was taken by a racing submission.
                WebError::Bad(_) if s.record(rec.id).ok().flatten().is_some() => {
                    WebError::Bad("该月的月度报告已经提交".into())
                }
                e => e,
            })?;
        }
    }
    Ok(())
}

/// `POST /web/reports/{t}/{YYYY-MM}/draft`: save the draft (figures drafted
/// from the records now).
pub fn draft(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, month, form) = (r.param("t"), r.param("month"), r.form());
    let grid = chief_only(ctx, t)?;
    let now = ctx.now;
    let data = reports::monthly(s, &grid, month, DEFAULT_BACKLOG_DAYS, now)?;
    let narrative = edit::text(form, "narrative", "报告正文", 20_000)?;
    save(s, ctx, &grid, month, Written { narrative, figures: data.draft_figures, submit: false }, now)?;
    ctx.audit(s, "save_report_draft", &format!("{grid}/{month}"))?;
    Ok(Out::Redirect(format!("/web/reports/{t}/{month}")))
}

/// A report about to be confirmed or submitted, checked: the chief's own
/// township, a month that is over, not submitted yet.
struct Submission {
    grid: GridPath,
    now: i64,
    data: MonthlyReportData,
    narrative: String,
}

fn submission(
    s: &dyn ServerStore,
    ctx: &Ctx,
    t: &str,
    month: &str,
    form: &HashMap<String, String>,
) -> Result<Submission, WebError> {
    let grid = chief_only(ctx, t)?;
    let now = ctx.now;
    if !month_over(month, now)? {
        return Err(WebError::Bad(format!("{month}尚未结束，不能提交该月的月度报告")));
    }
    let data = reports::monthly(s, &grid, month, DEFAULT_BACKLOG_DAYS, now)?;
    if data.submission.submitted_at.is_some() {
        return Err(WebError::Bad("该月的月度报告已经提交".into()));
    }
    let narrative = edit::text(form, "narrative", "报告正文", 20_000)?;
    Ok(Submission { grid, now, data, narrative })
}

/// `POST /web/reports/{t}/{YYYY-MM}/confirm`: what will be submitted,
/// and a button to submit it (nothing is written yet).
pub fn confirm(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, month, form) = (r.param("t"), r.param("month"), r.form());
    let Submission { data, narrative, .. } = submission(s, ctx, t, month, form)?;
    Ok(confirm_page(ctx, t, month, &data, &narrative, None))
}

fn confirm_page(
    ctx: &Ctx,
    t: &str,
    month: &str,
    data: &MonthlyReportData,
    narrative: &str,
    notice: Option<&str>,
) -> Out {
    let mut body = format!("<h2 id=\"title\">确认提交 {} {} 月度报告</h2>", esc(&data.name), esc(month));
    if let Some(n) = notice {
        let _ = write!(body, "<p class=\"msg\" id=\"notice\">{}</p>", esc(n));
    }
    let _ = write!(
        body,
        "<div class=\"card\"><p class=\"bad\">提交后报告即为正式报送，不能再修改（县综治中心可退回修改）。请核对正文和数字。</p>\
         <h3>报告正文</h3><p id=\"confirm-narrative\">{}</p></div>",
        esc(narrative).replace('\n', "<br>")
    );
    body.push_str(&figures_table("将报送的数字", "confirm-figures", &data.draft_figures));
    let _ = write!(
        body,
        "<div class=\"card\"><form method=\"post\" action=\"/web/reports/{t}/{m}/submit\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"narrative\" value=\"{}\">\
         <input type=\"hidden\" name=\"figures\" value=\"{}\">\
         <p><button class=\"btn\" type=\"submit\" id=\"confirm-submit\">确认提交</button> \
         <a class=\"btn alt\" href=\"/web/reports/{t}/{m}\" id=\"back\">返回修改</a></p></form></div>",
        esc(&ctx.session.csrf),
        esc(narrative),
        esc(&digest(&data.draft_figures)),
        t = esc(t),
        m = esc(month),
    );
    out(ctx, "确认提交月度报告", &body)
}

/// `POST /web/reports/{t}/{YYYY-MM}/submit`: submit what the confirmation
/// page showed. If the records changed in between, the new figures are
/// shown for confirmation again instead.
pub fn submit(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, month, form) = (r.param("t"), r.param("month"), r.form());
    let Submission { grid, now, data, narrative } = submission(s, ctx, t, month, form)?;
    if form.get("figures").map(String::as_str) != Some(digest(&data.draft_figures).as_str()) {
        return Ok(confirm_page(
            ctx,
            t,
            month,
            &data,
            &narrative,
            Some("确认期间记录有更新，数字已重新计算，请再次核对后提交。"),
        ));
    }
    save(s, ctx, &grid, month, Written { narrative, figures: data.draft_figures, submit: true }, now)?;
    ctx.audit(s, "submit_report", &format!("{grid}/{month}"))?;
    Ok(Out::Redirect(format!("/web/reports/{t}/{month}")))
}

/// `POST /web/reports/{t}/{YYYY-MM}/return`: county staff send a submitted
/// report back for correction, with the reason.
pub fn send_back(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (t, month, form) = (r.param("t"), r.param("month"), r.form());
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("只有县综治中心可以退回月度报告".into()));
    }
    let grid = reports::target(&ctx.user, Some(t))?;
    reports::month_bounds(month)?;
    let reason = edit::required(form, "reason", "退回原因", 2000)?;
    let Some((v, m)) = find(s, &grid, month)? else { return Err(WebError::NotFound) };
    if m.submitted_at.is_none() {
        return Err(WebError::Bad("该报告尚未提交，不能退回".into()));
    }
    let now = ctx.now;
    let by = ctx.user.id.clone();
    edit::update(s, ctx, v.id, now, |rec| {
        let RecordBody::MonthlyReport(m) = &mut rec.body else { return Err(WebError::NotFound) };
        m.submitted_at = None;
        m.returned = Some(ReportReturn { at: now, by, reason });
        Ok(())
    })?;
    ctx.audit(s, "return_report", &format!("{grid}/{month}"))?;
    Ok(Out::Redirect(format!("/web/reports/{t}/{month}")))
}
