//! Figures as pages: the four-none villages (四无创建) by year, against the
//! 2023 goals, each also as XLSX; and the county agencies' case counts,
//! entered on a form or uploaded as CSV, each agency its own target only
//! (the same checks as `POST /v1/case-counts`).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::Datelike;
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::reports::DEFAULT_BACKLOG_DAYS;

use super::html::{esc, out, tables_html, url_encode};
use super::{Ctx, Out, Req, WebError};
use crate::reports::{self, CaseCountInput, ReportError};
use crate::reports_files;
use crate::store::{CaseKind, ServerStore};

fn this_year(ctx: &Ctx) -> i32 {
    gridsync_core::model::beijing_day(ctx.now).year()
}

fn year_of(ctx: &Ctx, q: Option<&str>) -> Result<i32, WebError> {
    match q {
        None | Some("") => Ok(this_year(ctx)),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (2000..2200).contains(y))
            .ok_or_else(|| WebError::Bad("年份应为2000至2199之间的四位数字".into())),
    }
}

/// The node of a four-none table for the signed-in user: the agencies and
/// the county see the county, a chief their township, a village their
/// village; a grid manager (whose scope holds no whole village) none.
fn four_none_node(ctx: &Ctx) -> Result<GridPath, WebError> {
    match ctx.user.role {
        Role::AgencyStaff => Ok(GridPath::county()),
        Role::GridManager => Err(WebError::Forbidden("“四无”创建按村统计，网格管理员无权查看".into())),
        _ => Ok(ctx.user.scope()),
    }
}

/// Says plainly that a period's figures are so far, when it has not ended.
pub(super) fn so_far_note(period: &str, as_of: i64, complete: bool) -> String {
    if complete {
        return String::new();
    }
    format!(
        "<p class=\"msg\" id=\"so-far\">{}尚未结束：以下为{}</p>",
        esc(period),
        esc(&reports_files::as_of_text(as_of, false).replace("（尚未结束，为至今的数字）", "的情况，不是全期数字。"))
    )
}

/// `GET /web/four-none?year=`
pub fn four_none(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    four_none_of(s, ctx, r.query("year"), false)
}

/// `GET /web/four-none/{year}.xlsx`
pub fn four_none_file(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    match r.param("file").strip_suffix(".xlsx") {
        Some(year) => four_none_of(s, ctx, Some(year), true),
        None => Err(WebError::NotFound),
    }
}

fn four_none_of(s: &dyn ServerStore, ctx: &Ctx, year: Option<&str>, xlsx: bool) -> Result<Out, WebError> {
    let node = four_none_node(ctx)?;
    let year = year_of(ctx, year)?;
    let table = reports::four_none(s, &node, year, DEFAULT_BACKLOG_DAYS, ctx.now)?;
    let tables = reports_files::four_none_tables(&table);
    if xlsx {
        let bytes = reports_files::to_xlsx(&tables).map_err(|e| WebError::Store(format!("xlsx: {e}")))?;
        return Ok(Out::File {
            bytes,
            ctype: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            name: format!("four-none-{year}.xlsx"),
        });
    }
    let mut body = format!(
        "<h2 id=\"title\">{year}年“四无”村创建</h2><div class=\"card\"><form method=\"get\" action=\"/web/four-none\" class=\"inline\">\
         <label>年份 <input name=\"year\" value=\"{year}\" size=\"5\"></label> <button class=\"btn alt\" type=\"submit\">查看</button> \
         <a class=\"btn alt\" id=\"download\" href=\"/web/four-none/{year}.xlsx\">下载Excel（XLSX）</a></form>"
    );
    // Say plainly which villages have no count: they are not counted as met.
    let missing =
        |f: fn(&reports::FourNoneVillage) -> Option<u32>| table.villages.iter().filter(|v| f(v).is_none()).count();
    let gaps = [
        ("县公安局", "治安案件数", missing(|v| v.public_security_cases)),
        ("县检察院", "刑事案件数", missing(|v| v.criminal_cases)),
        ("县法院", "诉讼案件数", missing(|v| v.lawsuits)),
    ];
    body.push_str("<ul id=\"missing\">");
    for (agency, what, n) in gaps {
        if n > 0 {
            let _ =
                write!(body, "<li class=\"bad\">{n}个村尚无{agency}录入的{what}（显示为“未录入”，不计为达标）</li>");
        } else {
            let _ = write!(body, "<li class=\"ok\">{agency}已录入全部{}个村的{what}</li>", table.villages.len());
        }
    }
    body.push_str("</ul><p class=\"muted\">“无矛盾纠纷积案村”由矛盾纠纷记录统计（纠纷满30天未化解即为积案）。</p>");
    body.push_str(&so_far_note(&format!("{year}年"), table.as_of, table.complete));
    body.push_str("</div>");
    let mut goals = String::from(
        "<div class=\"card\"><h3>达标情况（对照2023年目标）</h3><table id=\"four-none-totals\"><tr><th>目标</th><th class=\"n\">达标村数</th><th class=\"n\">村数</th><th class=\"n\">比例</th><th class=\"n\">2023年目标</th><th>是否达到目标</th></tr>",
    );
    for t in table.totals.iter().chain(std::iter::once(&table.all_four)) {
        let _ = write!(
            goals,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&t.label_zh),
            t.villages,
            t.of,
            esc(&t.percent_text),
            t.goal_percent.map(|g| format!("≥{g}%")).unwrap_or_else(|| "—".into()),
            match t.goal_met {
                Some(true) => "<span class=\"ok\">已达到</span>",
                Some(false) => "<span class=\"bad\">未达到</span>",
                None => "—",
            }
        );
    }
    goals.push_str("</table></div>");
    body.push_str(&goals);
    // The village table (the first of the file's tables).
    body.push_str(&tables_html(&tables[..1]));
    Ok(out(ctx, "“四无”村创建", &body))
}

fn agency_kind(s: &dyn ServerStore, ctx: &Ctx) -> Result<(crate::store::Agency, CaseKind), WebError> {
    if ctx.user.role != Role::AgencyStaff {
        return Err(WebError::Forbidden("只有县直部门账号可以录入案件数".into()));
    }
    let agency = s
        .account(&ctx.user.id)?
        .and_then(|a| a.agency)
        .ok_or_else(|| WebError::Forbidden("该账号未设置所属县直部门，请联系县综治中心".into()))?;
    let kind = agency.case_kind().ok_or_else(|| {
        WebError::Forbidden(format!("{}负责的“无矛盾纠纷积案村”由矛盾纠纷记录统计，不需录入案件数", agency.label_zh()))
    })?;
    Ok((agency, kind))
}

/// `GET /web/case-counts?year=`: the agency's own counts, one per village.
pub fn case_counts(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (agency, kind) = agency_kind(s, ctx)?;
    let year = year_of(ctx, r.query("year"))?;
    let saved: Option<usize> = r.query("saved").and_then(|n| n.parse().ok());
    let entered: HashMap<GridPath, u32> =
        s.case_counts(year)?.into_iter().filter(|c| c.kind == kind).map(|c| (c.village, c.count)).collect();
    let nodes = s.grid_nodes()?;
    let names: HashMap<GridPath, String> = nodes.iter().map(|n| (n.path.clone(), n.name.clone())).collect();
    let villages: Vec<&GridPath> = nodes.iter().map(|n| &n.path).filter(|p| p.level() == GridLevel::Village).collect();
    let csrf = ctx.csrf_field();
    let mut body = format!("<h2 id=\"title\">{} · {year}年{}录入</h2>", esc(agency.label_zh()), esc(kind.label_zh()));
    if let Some(n) = saved {
        let _ = write!(body, "<p class=\"msg ok\" id=\"saved\">已保存{n}个村的{}。</p>", esc(kind.label_zh()));
    }
    let _ = write!(
        body,
        "<div class=\"card\"><p>{}只录入本部门负责的{}；未填写的村显示为“未录入”，不计为达标。已录入{}个村，共{}个村。</p>\
         <form method=\"get\" action=\"/web/case-counts\" class=\"inline\"><label>年份 <input name=\"year\" value=\"{year}\" size=\"5\"></label> <button class=\"btn alt\" type=\"submit\">切换</button></form></div>\
         <div class=\"card\"><h3>上传CSV</h3><form method=\"post\" action=\"/web/case-counts/csv\" enctype=\"multipart/form-data\">{csrf}\
         <p class=\"muted\">UTF-8编码，表头 village,year,kind,count，kind 为 {}。</p>\
         <input type=\"file\" name=\"csv\" id=\"csv-file\" accept=\".csv,text/csv\"> <button class=\"btn\" type=\"submit\" id=\"upload\">上传</button></form></div>",
        esc(agency.label_zh()),
        esc(kind.label_zh()),
        entered.len(),
        villages.len(),
        kind.as_str(),
    );
    let _ = write!(
        body,
        "<div class=\"card\"><h3>逐村填写</h3><form method=\"post\" action=\"/web/case-counts\" id=\"counts-form\">{csrf}\
         <input type=\"hidden\" name=\"year\" value=\"{year}\"><table id=\"counts\"><tr><th>乡镇</th><th>村（社区）</th><th>{}</th></tr>",
        esc(kind.label_zh())
    );
    for v in villages {
        let t = names.get(&v.ancestor(GridLevel::Township)).cloned().unwrap_or_default();
        let value = entered.get(v).map(|n| n.to_string()).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><input name=\"n:{v}\" value=\"{value}\" size=\"5\" inputmode=\"numeric\" placeholder=\"未录入\"></td></tr>",
            esc(&t),
            esc(names.get(v).map(String::as_str).unwrap_or_default()),
            v = esc(&v.to_string()),
        );
    }
    body.push_str("</table><p><button class=\"btn\" type=\"submit\" id=\"save-counts\">保存</button></p></form></div>");
    Ok(out(ctx, "录入案件数", &body))
}

fn store_counts(s: &dyn ServerStore, ctx: &Ctx, inputs: &[(usize, CaseCountInput)]) -> Result<usize, WebError> {
    let counts = reports::check_case_counts(s, &ctx.user, inputs, ctx.now).map_err(|e| match e {
        ReportError::BadInput { message_zh, .. } => WebError::Bad(message_zh),
        e => e.into(),
    })?;
    s.put_case_counts(&counts)?;
    ctx.audit(
        s,
        "enter_case_counts",
        &format!("{} x{}", counts.first().map(|c| c.kind.as_str()).unwrap_or(""), counts.len()),
    )?;
    Ok(counts.len())
}

/// `POST /web/case-counts`: the filled-in villages of the form.
pub fn save_form(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let form = r.form();
    let (_, kind) = agency_kind(s, ctx)?;
    let year = year_of(ctx, form.get("year").map(String::as_str))?;
    let mut inputs = Vec::new();
    let mut keys: Vec<(&String, &String)> =
        form.iter().filter(|(k, v)| k.starts_with("n:") && !v.trim().is_empty()).collect();
    keys.sort();
    for (i, (k, v)) in keys.into_iter().enumerate() {
        let count = v.trim().parse::<i64>().map_err(|_| WebError::Bad(format!("“{}”不是整数", v.trim())))?;
        inputs
            .push((i + 1, CaseCountInput { village: k[2..].to_owned(), year, kind: kind.as_str().to_owned(), count }));
    }
    if inputs.is_empty() {
        return Err(WebError::Bad("没有填写任何村的案件数".into()));
    }
    let n = store_counts(s, ctx, &inputs)?;
    Ok(Out::Redirect(format!("/web/case-counts?year={year}&saved={n}")))
}

/// `POST /web/case-counts/csv`: the uploaded CSV file (`village,year,kind,count`).
pub fn save_csv(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    agency_kind(s, ctx)?;
    let csv = r.file("csv").ok_or_else(|| WebError::Bad("请选择要上传的CSV文件".into()))?;
    let text = std::str::from_utf8(csv).map_err(|_| WebError::Bad("CSV文件应为UTF-8编码".into()))?;
    let inputs = reports::parse_case_counts_csv(text)?;
    let year = inputs.first().map(|(_, i)| i.year).unwrap_or_else(|| this_year(ctx));
    let n = store_counts(s, ctx, &inputs)?;
    Ok(Out::Redirect(format!("/web/case-counts?year={year}&saved={n}")))
}

/// `GET /web/figures/{coverage|backlog|weekly}[.xlsx]?grid=&...`: patrol
/// coverage (`from`, `to`; default the last 7 days), backlog disputes
/// (`days`, default 30) and the weekly summary (`week_start`, default this
/// week's Monday), for a node in the user's scope, each also as XLSX.
pub fn figure(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (name, q) = (r.param("name"), r.query_map());
    let (name, xlsx) = match name.strip_suffix(".xlsx") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let grid = reports::target(&ctx.user, q.get("grid").map(String::as_str).filter(|g| !g.is_empty()))?;
    let names: HashMap<GridPath, String> = s.grid_nodes()?.into_iter().map(|n| (n.path, n.name)).collect();
    let now = ctx.now;
    let today = gridsync_core::model::beijing_day(now);
    let day = |k: &str, default: chrono::NaiveDate| -> Result<chrono::NaiveDate, WebError> {
        match q.get(k).map(String::as_str).filter(|v| !v.is_empty()) {
            Some(v) => Ok(reports::parse_day(v, "bad_day")?),
            None => Ok(default),
        }
    };
    let mut note = String::new();
    let (title, tables, params) = match name {
        "coverage" => {
            let to = day("to", today)?;
            let from = day("from", to - chrono::Days::new(6))?;
            let r = reports::coverage(s, &grid, from, to, now)?;
            (
                format!("巡查覆盖（{} 至 {}）", r.from, r.to),
                reports_files::coverage_tables(&r, &names),
                format!("from={}&to={}", r.from, r.to),
            )
        }
        "backlog" => {
            let days = match q.get("days").filter(|d| !d.is_empty()) {
                None => DEFAULT_BACKLOG_DAYS,
                Some(d) => d
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| WebError::Bad("天数应为1到3650之间的整数".into()))?,
            };
            let r = reports::backlog(s, &ctx.user, &grid, days, now)?;
            (
                format!("积案（满{days}天未化解的纠纷）：{}件", r.disputes.len()),
                reports_files::backlog_tables(&r, &names),
                format!("days={days}"),
            )
        }
        "weekly" => {
            let monday = today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
            let week = day("week_start", monday)?;
            let r = reports::weekly(s, &grid, week, now)?;
            note = so_far_note("本周", r.total.as_of, r.total.complete);
            (
                format!("周小结（{} 起一周）", r.week_start),
                reports_files::weekly_tables(&r, &names),
                format!("week_start={}", r.week_start),
            )
        }
        _ => return Err(WebError::NotFound),
    };
    let grid_q = format!("grid={}", url_encode(&grid.to_string()));
    if xlsx {
        let bytes = reports_files::to_xlsx(&tables).map_err(|e| WebError::Store(format!("xlsx: {e}")))?;
        return Ok(Out::File {
            bytes,
            ctype: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            name: format!("{name}-{}.xlsx", grid.to_string().replace('/', "-")),
        });
    }
    let place = super::people::grid_label(&names, &grid);
    let body = format!(
        "<h2 id=\"title\">{} · {}</h2><div class=\"card\"><p>\
         <a class=\"btn alt\" href=\"/web/figures/weekly?{grid_q}\">周小结</a> \
         <a class=\"btn alt\" href=\"/web/figures/coverage?{grid_q}\">巡查覆盖</a> \
         <a class=\"btn alt\" href=\"/web/figures/backlog?{grid_q}\">积案</a> \
         <a class=\"btn\" id=\"download\" href=\"/web/figures/{name}.xlsx?{grid_q}&amp;{}\">下载Excel（XLSX）</a></p>{note}</div>{}",
        esc(&place),
        esc(&title),
        esc(&params),
        tables_html(&tables)
    );
    Ok(out(ctx, &title, &body))
}
