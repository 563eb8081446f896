//! Reports as files: the township's monthly report and the county's
//! four-none table as XLSX (one sheet per table, Chinese headers) and CSV
//! (UTF-8 with a BOM so that Excel shows the Chinese; tables separated by
//! an empty line).

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::reports::{FourNoneTable, MonthlyReportData};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<u32> for Cell {
    fn from(n: u32) -> Self {
        Cell::Int(i64::from(n))
    }
}

/// A table with a title (the sheet name) and Chinese headers.
#[derive(Debug, Clone)]
pub struct Table {
    /// Sheet name (at most 31 characters).
    pub title: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
}

/// One CSV cell. A text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would run as a formula when the file is opened in a
/// spreadsheet (OWASP "CSV injection"): it is prefixed with `'`, which
/// spreadsheets show as text.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// Tables as CSV: UTF-8 with a BOM.
pub fn to_csv(tables: &[Table]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let line = |cells: Vec<String>| cells.join(",") + "\r\n";
        out.push_str(&line(t.headers.iter().map(|h| csv_field(h)).collect()));
        for r in &t.rows {
            out.push_str(&line(
                r.iter()
                    .map(|c| match c {
                        Cell::Text(s) => csv_field(s),
                        Cell::Int(n) => n.to_string(),
                    })
                    .collect(),
            ));
        }
    }
    out.into_bytes()
}

/// Tables as an XLSX workbook, one sheet each.
pub fn to_xlsx(tables: &[Table]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for t in tables {
        let ws = wb.add_worksheet();
        ws.set_name(&t.title)?;
        for (c, h) in t.headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)?;
            ws.set_column_width(c as u16, (h.chars().count() as f64 * 2.2).max(10.0))?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32 + 1, c as u16);
                match cell {
                    Cell::Text(s) => ws.write_string(r, c, s)?,
                    Cell::Int(n) => ws.write_number(r, c, *n as f64)?,
                };
            }
        }
    }
    wb.save_to_buffer()
}

/// Headers of the monthly report's table.
pub const MONTHLY_HEADERS: [&str; 15] = [
    "网格",
    "名称",
    "早巡次数",
    "午巡次数",
    "晚巡次数",
    "新发现隐患",
    "已处置隐患",
    "未消除隐患",
    "走访流动人口/出租房",
    "走访重点人群",
    "走访特殊场所",
    "新排查矛盾纠纷",
    "已化解矛盾纠纷",
    "上报矛盾纠纷",
    "积案",
];

fn monthly_row(grid: String, name: String, f: &gridsync_core::reports::MonthlyFigures) -> Vec<Cell> {
    vec![
        grid.into(),
        name.into(),
        f.patrols.morning.into(),
        f.patrols.midday.into(),
        f.patrols.evening.into(),
        f.hazards_found.into(),
        f.hazards_handled.into(),
        f.hazards_open.into(),
        f.visits.floating_population.into(),
        f.visits.key_person.into(),
        f.visits.special_place.into(),
        f.disputes_found.into(),
        f.disputes_resolved.into(),
        f.disputes_escalated.into(),
        f.disputes_backlog.into(),
    ]
}

/// The monthly report as tables: the figures per village with the
/// township's total, and a sheet about the report itself.
pub fn monthly_tables(m: &MonthlyReportData) -> Vec<Table> {
    let mut rows: Vec<Vec<Cell>> =
        m.villages.iter().map(|v| monthly_row(v.village.to_string(), v.name.clone(), &v.figures)).collect();
    rows.push(monthly_row(m.township.to_string(), format!("{}合计", m.name), &m.total));
    let status = m.submission.status.label_zh();
    vec![
        Table {
            title: "月度统计".into(), headers: MONTHLY_HEADERS.iter().map(|h| (*h).to_owned()).collect(), rows
        },
        Table {
            title: "报告信息".into(),
            headers: vec!["项目".into(), "内容".into()],
            rows: vec![
                vec!["乡镇".into(), m.name.clone().into()],
                vec!["月份".into(), m.month.clone().into()],
                vec!["积案认定天数".into(), m.total.backlog_days.into()],
                vec!["统计截至".into(), as_of_text(m.total.as_of, m.total.complete).into()],
                vec!["报送状态".into(), status.into()],
            ],
        },
    ]
}

/// Headers of the four-none village table.
pub const FOUR_NONE_HEADERS: [&str; 12] = [
    "乡镇",
    "村（社区）",
    "网格编码",
    "治安案件数",
    "无治安案件村",
    "刑事案件数",
    "无刑事案件村",
    "诉讼案件数",
    "无诉讼村",
    "积案数",
    "无矛盾纠纷积案村",
    "四项均达标",
];

fn yes(b: bool) -> Cell {
    if b { "是" } else { "否" }.into()
}

fn count(c: Option<u32>) -> Cell {
    c.map_or_else(|| "未录入".into(), Cell::from)
}

/// The four-none table as tables: one line per village, then the totals
/// against the 2023 goals.
pub fn four_none_tables(t: &FourNoneTable) -> Vec<Table> {
    let rows = t
        .villages
        .iter()
        .map(|v| {
            vec![
                v.township_name.clone().into(),
                v.name.clone().into(),
                v.village.to_string().into(),
                count(v.public_security_cases),
                yes(v.meets[0]),
                count(v.criminal_cases),
                yes(v.meets[1]),
                count(v.lawsuits),
                yes(v.meets[2]),
                v.backlog_disputes.into(),
                yes(v.meets[3]),
                yes(v.all_four),
            ]
        })
        .collect();
    let mut totals: Vec<Vec<Cell>> = t
        .totals
        .iter()
        .map(|x| {
            vec![
                x.label_zh.clone().into(),
                x.villages.into(),
                x.of.into(),
                x.percent_text.clone().into(),
                x.goal_percent.map_or_else(|| "—".into(), |g| format!("{g}%").into()),
                x.goal_met.map_or_else(|| "—".into(), yes),
            ]
        })
        .collect();
    let a = &t.all_four;
    totals.push(vec![
        a.label_zh.clone().into(),
        a.villages.into(),
        a.of.into(),
        a.percent_text.clone().into(),
        "—".into(),
        "—".into(),
    ]);
    vec![
        Table {
            title: format!("{}年四无创建", t.year),
            headers: FOUR_NONE_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        },
        Table {
            title: "达标汇总".into(),
            headers: ["创建类别", "达标村数", "村（社区）总数", "达标比例", "2023年目标", "是否达到目标"]
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            rows: totals,
        },
        Table {
            title: "统计说明".into(),
            headers: vec!["项目".into(), "内容".into()],
            rows: vec![
                vec!["年份".into(), t.year.to_string().into()],
                vec!["积案认定天数".into(), t.backlog_days.into()],
                vec!["统计截至".into(), as_of_text(t.as_of, t.complete).into()],
            ],
        },
    ]
}

/// When figures were taken: "全期" for a period that is over, else
/// "截至 2026-12-08 09:15（尚未结束，为至今的数字）" (Beijing time; `as_of`
/// is the exclusive bound the figures were taken up to).
pub fn as_of_text(as_of: i64, complete: bool) -> String {
    if complete {
        "全期（已结束）".into()
    } else {
        let t = chrono::DateTime::from_timestamp_millis(as_of - 1 + 8 * 3_600_000)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        format!("截至 {t}（尚未结束，为至今的数字）")
    }
}

/// A node's path and name for a row: `t01/v03/g2`, `王家村 · 一组`.
fn named(
    names: &std::collections::HashMap<gridsync_core::grid::GridPath, String>,
    g: &gridsync_core::grid::GridPath,
) -> Cell {
    use gridsync_core::grid::GridLevel;
    let parts: Vec<String> = [GridLevel::Township, GridLevel::Village, GridLevel::Group]
        .into_iter()
        .filter(|l| *l <= g.level())
        .map(|l| names.get(&g.ancestor(l)).cloned().unwrap_or_default())
        .collect();
    Cell::Text(parts.join(" · "))
}

/// Patrol coverage: per group, the days each slot (早/午/晚) was patrolled
/// and missed, over the report's days.
pub fn coverage_tables(
    r: &crate::reports::CoverageReport,
    names: &std::collections::HashMap<gridsync_core::grid::GridPath, String>,
) -> Vec<Table> {
    let days = r.grids.first().map_or(0, |g| g.days.len()) as u32;
    let rows = r
        .grids
        .iter()
        .map(|g| {
            let m = &g.missed_days;
            vec![
                g.grid.to_string().into(),
                named(names, &g.grid),
                (days - m.morning.min(days)).into(),
                (days - m.midday.min(days)).into(),
                (days - m.evening.min(days)).into(),
                m.morning.into(),
                m.midday.into(),
                m.evening.into(),
            ]
        })
        .collect();
    vec![Table {
        title: "巡查覆盖".into(),
        headers: ["网格", "名称", "早巡天数", "午巡天数", "晚巡天数", "缺早巡天数", "缺午巡天数", "缺晚巡天数"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        rows,
    }]
}

/// Backlog disputes (积案), oldest first: counts and codes only.
pub fn backlog_tables(
    r: &crate::reports::BacklogReport,
    names: &std::collections::HashMap<gridsync_core::grid::GridPath, String>,
) -> Vec<Table> {
    let rows = r
        .disputes
        .iter()
        .map(|d| {
            let level =
                serde_json::from_value::<gridsync_core::model::DisputeLevel>(serde_json::Value::from(d.level.clone()))
                    .map(|l| l.label_zh().to_owned())
                    .unwrap_or_else(|_| d.level.clone());
            let status = serde_json::from_value::<gridsync_core::model::DisputeStatus>(serde_json::Value::from(
                d.status.clone(),
            ))
            .map(|l| l.label_zh().to_owned())
            .unwrap_or_else(|_| d.status.clone());
            vec![
                d.id.to_string().into(),
                d.grid.to_string().into(),
                named(names, &d.grid),
                level.into(),
                status.into(),
                gridsync_core::model::beijing_day(d.found_at).format("%Y-%m-%d").to_string().into(),
                Cell::Int(d.days_open),
            ]
        })
        .collect();
    vec![Table {
        title: "积案".into(),
        headers: ["纠纷编号", "网格", "名称", "层级", "状态", "发现日期", "未化解天数"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        rows,
    }]
}

/// The weekly summary (周小结): one row per group and the node's total.
pub fn weekly_tables(
    r: &crate::reports::WeeklyReport,
    names: &std::collections::HashMap<gridsync_core::grid::GridPath, String>,
) -> Vec<Table> {
    let row = |w: &gridsync_core::reports::WeeklySummary, name: Cell| -> Vec<Cell> {
        vec![
            w.grid.to_string().into(),
            name,
            w.patrols.morning.into(),
            w.patrols.midday.into(),
            w.patrols.evening.into(),
            w.days_fully_patrolled.into(),
            w.hazards_found.into(),
            w.hazards_open.into(),
            w.visits.floating_population.into(),
            w.visits.key_person.into(),
            w.visits.special_place.into(),
            w.disputes_found.into(),
            w.disputes_open.into(),
        ]
    };
    let mut rows: Vec<Vec<Cell>> = r.grids.iter().map(|w| row(w, named(names, &w.grid))).collect();
    rows.push(row(&r.total, Cell::Text("合计".into())));
    vec![Table {
        title: "周小结".into(),
        headers: [
            "网格",
            "名称",
            "早巡次数",
            "午巡次数",
            "晚巡次数",
            "三巡齐全天数",
            "新发现隐患",
            "未消除隐患",
            "走访流动人口/出租房",
            "走访重点人群",
            "走访特殊场所",
            "新排查纠纷",
            "未化解纠纷",
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect(),
        rows,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        let t = Table {
            title: "t".into(),
            headers: vec!["名称".into()],
            rows: ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "正常"]
                .into_iter()
                .map(|v| vec![Cell::Text(v.into())])
                .collect(),
        };
        let csv = String::from_utf8(to_csv(&[t])).unwrap();
        let cells: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").skip(1).collect();
        assert_eq!(cells[0], "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(&cells[1..5], ["'+1", "'-2", "'@SUM(A1)", "'\tx"]);
        assert_eq!(cells[5], "\"'\rx\"");
        assert_eq!(cells[6], "正常");
    }

    #[test]
    fn csv_has_a_bom_and_quotes_what_needs_it() {
        let t = Table {
            title: "表".into(),
            headers: vec!["名称".into(), "数".into()],
            rows: vec![vec!["张家村,一组".into(), Cell::Int(3)], vec!["说\"好\"".into(), Cell::Int(0)]],
        };
        let csv = String::from_utf8(to_csv(&[t])).unwrap();
        assert_eq!(csv, "\u{feff}名称,数\r\n\"张家村,一组\",3\r\n\"说\"\"好\"\"\",0\r\n");
    }
}
