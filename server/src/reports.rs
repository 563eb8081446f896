//! Supervision aggregates: weekly summaries, a township's monthly figures,
//! patrol coverage, backlog disputes, the four-none table, sync health and
//! monthly-report submissions, computed from the merged records'
//! materialized JSON ([`ServerStore::records`]) and scoped like every read.
//!
//! The figures themselves come from [`gridsync_core::reports`], the same
//! functions the phone runs offline. Every answer here is counts, ids,
//! grid codes and staff names: never a name or text out of a record, so
//! counts may include sensitive records (key-person visits) that the
//! reader could not open. Definitions are in `docs/reports.md`.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::{Record, RecordBody, RecordKind, beijing_midnight_ms, parse_month};
use gridsync_core::reports::{
    self as core_reports, BacklogDispute, DAY_MS, GridCoverage, MonthlyFigures, SlotCounts, WeeklySummary,
};
use serde::Serialize;

use crate::access::may_read;
use crate::store::{CaseCount, CaseKind, GridNode, ServerStore, StoreError, User, ViewQuery};

/// Most records one report reads per kind.
const MAX_RECORDS: u32 = 500_000;
/// Longest range of a patrol coverage report, days.
pub const MAX_COVERAGE_DAYS: i64 = 62;
/// Day of the following month before which a monthly report is due.
pub const REPORT_DUE_DAY: u32 = 20;

/// Default number of days without a sync after which a person is listed
/// as not syncing (the sync-health report, the devices page): a week, the
/// cadence of the village meeting that needs everyone's week.
pub const DEFAULT_SYNC_DAYS: u32 = 7;
/// The county's 2023 goals for the four targets, percent of villages, in
/// the order public security, criminal, lawsuit, backlog.
pub const FOUR_NONE_GOALS: [u32; 4] = [60, 70, 80, 90];

/// Why a report cannot be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The requested node is outside the caller's grid.
    #[error("out of scope")]
    OutOfScope,
    /// The caller's role may not see this report.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A parameter is malformed.
    #[error("bad input {code}: {message_zh}")]
    BadInput {
        /// Machine-readable code.
        code: &'static str,
        /// Chinese message.
        message_zh: String,
    },
    /// The node holds more records of one kind than a report reads at
    /// once: the figure is refused rather than computed from part of them.
    #[error("more than {limit} records of one kind")]
    TooMany {
        /// Most records read per kind.
        limit: u32,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportError {
    fn bad(code: &'static str, message_zh: impl Into<String>) -> Self {
        ReportError::BadInput { code, message_zh: message_zh.into() }
    }
}

/// Result with [`ReportError`].
pub type ReportResult<T> = Result<T, ReportError>;

/// The node a report is about: `requested` (a grid path) or the caller's
/// own scope; refused outside the caller's scope. Agency staff see no
/// records, so no record-based report.
pub fn target(user: &User, requested: Option<&str>) -> ReportResult<GridPath> {
    if user.role == Role::AgencyStaff {
        return Err(ReportError::Forbidden("县直部门账号只能录入和查看“四无”案件数".into()));
    }
    let g = match requested {
        Some(s) => GridPath::parse(s).map_err(|_| ReportError::bad("bad_grid", "网格路径格式错误"))?,
        None => user.scope(),
    };
    if !user.scope().contains(&g) {
        return Err(ReportError::OutOfScope);
    }
    Ok(g)
}

/// Parse `YYYY-MM-DD`.
pub fn parse_day(s: &str, field: &'static str) -> ReportResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| (2000..2200).contains(&d.year()))
        .ok_or_else(|| ReportError::bad(field, format!("日期“{s}”格式应为YYYY-MM-DD")))
}

/// Parse `YYYY-MM` into its bounds.
pub fn month_bounds(month: &str) -> ReportResult<(i64, i64)> {
    parse_month(month).ok_or_else(|| ReportError::bad("bad_month", format!("月份“{month}”格式应为YYYY-MM")))
}

/// When the report on `month` is due: midnight (Beijing time) starting the
/// 20th of the following month; a report submitted before it is on time.
pub fn report_due_at(month: &str) -> ReportResult<i64> {
    let (_, end) = month_bounds(month)?;
    Ok(end + i64::from(REPORT_DUE_DAY - 1) * DAY_MS)
}

/// Records of one kind at or below `under`, occurred in `[from, until)`.
fn load(
    store: &dyn ServerStore,
    under: &GridPath,
    kind: RecordKind,
    from: Option<i64>,
    until: Option<i64>,
) -> ReportResult<Vec<Record>> {
    let views = store.records(&ViewQuery {
        under: Some(under.clone()),
        kind: Some(kind),
        sensitive: true,
        from,
        until,
        limit: Some(MAX_RECORDS + 1),
        ..ViewQuery::default()
    })?;
    // Never a figure from a truncated list.
    if views.len() > MAX_RECORDS as usize {
        return Err(ReportError::TooMany { limit: MAX_RECORDS });
    }
    Ok(views
        .iter()
        .filter(|v| !v.deleted)
        .filter_map(|v| match Record::from_json(&v.json) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(id = %v.id, error = %e, "materialized record unreadable");
                None
            }
        })
        .collect())
}

/// Field records a weekly or monthly figure needs: patrols and visits in
/// the window, every hazard and dispute (open ones date from before).
fn field_records(store: &dyn ServerStore, under: &GridPath, from: i64, until: i64) -> ReportResult<Vec<Record>> {
    let mut out = load(store, under, RecordKind::Patrol, Some(from), Some(until))?;
    out.extend(load(store, under, RecordKind::Visit, Some(from), Some(until))?);
    out.extend(load(store, under, RecordKind::Hazard, None, None)?);
    out.extend(load(store, under, RecordKind::Dispute, None, None)?);
    Ok(out)
}

fn nodes_under(store: &dyn ServerStore, under: &GridPath, level: GridLevel) -> ReportResult<Vec<GridNode>> {
    Ok(store.grid_nodes()?.into_iter().filter(|n| n.path.level() == level && under.contains(&n.path)).collect())
}

fn names(store: &dyn ServerStore) -> ReportResult<HashMap<GridPath, String>> {
    Ok(store.grid_nodes()?.into_iter().map(|n| (n.path, n.name)).collect())
}

/// The weekly summary of a node: its total and one per group below it.
#[derive(Debug, Clone, Serialize)]
pub struct WeeklyReport {
    /// The node.
    pub grid: GridPath,
    /// Monday of the week.
    pub week_start: String,
    /// The node as a whole.
    pub total: WeeklySummary,
    /// Each group at or below the node.
    pub grids: Vec<WeeklySummary>,
}

/// The week starting on `week_start` of `grid` (each group below it), seen
/// at `now` (a week not over is counted so far).
pub fn weekly(store: &dyn ServerStore, grid: &GridPath, week_start: NaiveDate, now: i64) -> ReportResult<WeeklyReport> {
    let start = beijing_midnight_ms(week_start);
    let records = field_records(store, grid, start, start + 7 * DAY_MS)?;
    let mut groups: Vec<GridPath> = nodes_under(store, grid, GridLevel::Group)?.into_iter().map(|n| n.path).collect();
    if groups.is_empty() && grid.level() == GridLevel::Group {
        groups.push(grid.clone());
    }
    Ok(WeeklyReport {
        grid: grid.clone(),
        week_start: week_start.format("%Y-%m-%d").to_string(),
        total: core_reports::weekly_summary(&records, grid, week_start, now),
        grids: groups.iter().map(|g| core_reports::weekly_summary(&records, g, week_start, now)).collect(),
    })
}

/// One village's line of a monthly report.
#[derive(Debug, Clone, Serialize)]
pub struct VillageFigures {
    /// The village.
    pub village: GridPath,
    /// Its name.
    pub name: String,
    /// Its figures.
    pub figures: MonthlyFigures,
}

/// A township's monthly figures, with the draft for its monthly report.
#[derive(Debug, Clone, Serialize)]
pub struct MonthlyReportData {
    /// The township.
    pub township: GridPath,
    /// Its name.
    pub name: String,
    /// Month, `YYYY-MM`.
    pub month: String,
    /// The township as a whole.
    pub total: MonthlyFigures,
    /// Each village.
    pub villages: Vec<VillageFigures>,
    /// The totals as the `figures` of a `monthly_report` record.
    pub draft_figures: BTreeMap<String, i64>,
    /// Where this township's report on the month stands.
    pub submission: Submission,
    /// The figures as the township submitted them (the county reads what
    /// the township signed: never recomputed), once submitted.
    pub submitted_figures: Option<BTreeMap<String, i64>>,
    /// Each submitted figure the records now give differently, so a wrong
    /// figure is visible rather than silent.
    pub changed_since_submission: Vec<FigureChange>,
}

/// A submitted figure the records now give differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FigureChange {
    /// The figure (`disputes.resolved`).
    pub figure: String,
    /// As submitted (`None`: the report did not carry it).
    pub submitted: Option<i64>,
    /// What the records give now.
    pub now: i64,
}

/// The figures of `draft` that `submitted` gives differently.
pub fn figure_changes(submitted: &BTreeMap<String, i64>, draft: &BTreeMap<String, i64>) -> Vec<FigureChange> {
    draft
        .iter()
        .filter(|(k, v)| submitted.get(*k) != Some(v))
        .map(|(k, v)| FigureChange { figure: k.clone(), submitted: submitted.get(k).copied(), now: *v })
        .collect()
}

/// Figures of `township` for `month`.
pub fn monthly(
    store: &dyn ServerStore,
    township: &GridPath,
    month: &str,
    backlog_days: u32,
    now: i64,
) -> ReportResult<MonthlyReportData> {
    if township.level() != GridLevel::Township {
        return Err(ReportError::bad("bad_grid", "月度报告按乡镇统计，请指定乡镇编码"));
    }
    let bounds = month_bounds(month)?;
    let names = names(store)?;
    let Some(name) = names.get(township).cloned() else {
        return Err(ReportError::bad("unknown_grid", format!("没有乡镇“{township}”")));
    };
    let records = field_records(store, township, bounds.0, bounds.1)?;
    let total = core_reports::monthly_figures(&records, township, month, bounds, backlog_days, now);
    let villages = nodes_under(store, township, GridLevel::Village)?
        .into_iter()
        .map(|v| VillageFigures {
            figures: core_reports::monthly_figures(&records, &v.path, month, bounds, backlog_days, now),
            village: v.path,
            name: v.name,
        })
        .collect();
    let submission = submissions(store, township, month, now)?.townships.into_iter().next().unwrap_or(Submission {
        township: township.clone(),
        name: name.clone(),
        status: SubmissionStatus::Pending,
        submitted_at: None,
        report_id: None,
    });
    let submitted_figures = match (submission.submitted_at, submission.report_id) {
        (Some(_), Some(id)) => store.record(id)?.and_then(|v| match Record::from_json(&v.json).ok()?.body {
            RecordBody::MonthlyReport(m) => Some(m.figures),
            _ => None,
        }),
        _ => None,
    };
    let draft_figures = total.to_figures();
    let changed_since_submission =
        submitted_figures.as_ref().map(|s| figure_changes(s, &draft_figures)).unwrap_or_default();
    Ok(MonthlyReportData {
        township: township.clone(),
        name,
        month: month.to_owned(),
        draft_figures,
        total,
        villages,
        submission,
        submitted_figures,
        changed_since_submission,
    })
}

/// Hazards and disputes open now in one village (or at a township's own
/// level): what the dashboard's start pages count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpenNow {
    /// Hazards not removed (未消除隐患).
    pub hazards: u64,
    /// Disputes not resolved (未化解纠纷), a conflict waiting included.
    pub disputes: u64,
    /// Of those, handled at the township or the county (上报至乡镇及以上).
    pub disputes_above_village: u64,
    /// Of those, handled at the county (上报至县).
    pub disputes_at_county: u64,
    /// Disputes with a conflict waiting to be settled (待裁定).
    pub conflicts: u64,
}

impl OpenNow {
    fn add(&mut self, o: &OpenNow) {
        self.hazards += o.hazards;
        self.disputes += o.disputes;
        self.disputes_above_village += o.disputes_above_village;
        self.disputes_at_county += o.disputes_at_county;
        self.conflicts += o.conflicts;
    }
}

/// What is open now under a node, per village (and per township for the
/// records a township owns), counted in the database by status
/// ([`core_reports::is_open_status`]): never from a list that stops short.
pub fn open_now(store: &dyn ServerStore, under: &GridPath) -> ReportResult<BTreeMap<GridPath, OpenNow>> {
    let mut out: BTreeMap<GridPath, OpenNow> = BTreeMap::new();
    for t in store.tally(under, &[RecordKind::Hazard, RecordKind::Dispute])? {
        if !core_reports::is_open_status(&t.status) {
            continue;
        }
        let o = out.entry(t.node).or_default();
        if t.kind == RecordKind::Hazard {
            o.hazards += t.count;
            continue;
        }
        o.disputes += t.count;
        let level = t.level.as_deref().unwrap_or("village");
        if level != gridsync_core::model::DisputeLevel::Village.as_str() {
            o.disputes_above_village += t.count;
        }
        if level == gridsync_core::model::DisputeLevel::County.as_str() {
            o.disputes_at_county += t.count;
        }
        if t.has_conflict {
            o.conflicts += t.count;
        }
    }
    Ok(out)
}

/// The sum of [`open_now`]'s lines at or below `node`.
pub fn open_now_under(lines: &BTreeMap<GridPath, OpenNow>, node: &GridPath) -> OpenNow {
    let mut sum = OpenNow::default();
    for (_, o) in lines.iter().filter(|(g, _)| node.contains(g)) {
        sum.add(o);
    }
    sum
}

/// Patrol coverage of every group at or below a node.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageReport {
    /// The node.
    pub grid: GridPath,
    /// First day.
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// Per group, per day.
    pub grids: Vec<GridCoverage>,
    /// The groups that missed any slot, with how many days per slot.
    pub gaps: Vec<CoverageGap>,
}

/// A group that missed some patrols.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageGap {
    /// The group.
    pub grid: GridPath,
    /// Days each slot was missed.
    pub missed_days: SlotCounts,
}

/// Which slots each group patrolled each day from `from` to `to` (days
/// after today are not counted: see [`core_reports::patrol_coverage`]).
pub fn coverage(
    store: &dyn ServerStore,
    grid: &GridPath,
    from: NaiveDate,
    to: NaiveDate,
    now: i64,
) -> ReportResult<CoverageReport> {
    let days = (to - from).num_days();
    if !(0..MAX_COVERAGE_DAYS).contains(&days) {
        return Err(ReportError::bad(
            "bad_range",
            format!("结束日期不能早于开始日期，且一次最多查询{MAX_COVERAGE_DAYS}天"),
        ));
    }
    let start = beijing_midnight_ms(from);
    let records = load(store, grid, RecordKind::Patrol, Some(start), Some(beijing_midnight_ms(to) + DAY_MS))?;
    let mut groups: Vec<GridPath> = nodes_under(store, grid, GridLevel::Group)?.into_iter().map(|n| n.path).collect();
    if groups.is_empty() && grid.level() == GridLevel::Group {
        groups.push(grid.clone());
    }
    let grids = core_reports::patrol_coverage(&records, &groups, from, to, now);
    let gaps = grids
        .iter()
        .filter(|g| g.missed_days.total() > 0)
        .map(|g| CoverageGap { grid: g.grid.clone(), missed_days: g.missed_days })
        .collect();
    Ok(CoverageReport {
        grid: grid.clone(),
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        grids,
        gaps,
    })
}

/// Backlog disputes at or below a node.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    /// The node.
    pub grid: GridPath,
    /// Threshold in days.
    pub days: u32,
    /// As of, ms.
    pub as_of: i64,
    /// The disputes, oldest first.
    pub disputes: Vec<BacklogDispute>,
}

/// Disputes unresolved for `days` days or more at `now`, that `user` may read.
pub fn backlog(
    store: &dyn ServerStore,
    user: &User,
    grid: &GridPath,
    days: u32,
    now: i64,
) -> ReportResult<BacklogReport> {
    let records: Vec<Record> = load(store, grid, RecordKind::Dispute, None, None)?
        .into_iter()
        .filter(|r| may_read(user, &r.grid, r.index().sensitive))
        .collect();
    Ok(BacklogReport {
        grid: grid.clone(),
        days,
        as_of: now,
        disputes: core_reports::backlog_disputes(&records, now, days),
    })
}

/// Where a township's monthly report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Submitted before the due time.
    OnTime,
    /// Submitted at or after the due time.
    Late,
    /// Not submitted, and the due time has passed.
    Missing,
    /// Not submitted yet, not due yet.
    Pending,
}

impl SubmissionStatus {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            SubmissionStatus::OnTime => "按时报送",
            SubmissionStatus::Late => "逾期报送",
            SubmissionStatus::Missing => "未报送（已逾期）",
            SubmissionStatus::Pending => "未报送（未到期）",
        }
    }
}

/// One township's monthly report.
#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    /// The township.
    pub township: GridPath,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub status: SubmissionStatus,
    /// When it was submitted (the earliest, if several chiefs submitted).
    pub submitted_at: Option<i64>,
    /// The report record.
    pub report_id: Option<uuid::Uuid>,
}

/// Monthly-report submissions of every township at or below a node.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionsReport {
    /// Month reported on.
    pub month: String,
    /// Due before this instant, ms (00:00 Beijing time on the 20th of the following month).
    pub due_at: i64,
    /// The due day, `YYYY-MM-DD`: submitted before this day is on time.
    pub due_date: String,
    /// Each township.
    pub townships: Vec<Submission>,
}

/// Which townships under `grid` submitted their report on `month` before
/// it was due, late, or not at all.
pub fn submissions(store: &dyn ServerStore, grid: &GridPath, month: &str, now: i64) -> ReportResult<SubmissionsReport> {
    let (start, end) = month_bounds(month)?;
    let due_at = report_due_at(month)?;
    let reports = load(store, grid, RecordKind::MonthlyReport, Some(start), Some(end))?;
    let mut best: HashMap<GridPath, (Option<i64>, uuid::Uuid)> = HashMap::new();
    for r in &reports {
        let RecordBody::MonthlyReport(m) = &r.body else { continue };
        if m.month != month {
            continue;
        }
        let entry = best.entry(r.grid.clone()).or_insert((m.submitted_at, r.id));
        let better = match (m.submitted_at, entry.0) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            _ => false,
        };
        if better {
            *entry = (m.submitted_at, r.id);
        }
    }
    let mut townships: Vec<GridNode> = nodes_under(store, grid, GridLevel::Township)?;
    if townships.is_empty() && grid.level() >= GridLevel::Township {
        // A village's caller sees its own township's line.
        let t = grid.ancestor(GridLevel::Township);
        let name = names(store)?.get(&t).cloned().unwrap_or_default();
        townships.push(GridNode { path: t, name });
    }
    let townships = townships
        .into_iter()
        .map(|t| {
            let (submitted_at, report_id) = match best.get(&t.path) {
                Some((s, id)) => (*s, Some(*id)),
                None => (None, None),
            };
            let status = match submitted_at {
                Some(s) if s < due_at => SubmissionStatus::OnTime,
                Some(_) => SubmissionStatus::Late,
                None if now >= due_at => SubmissionStatus::Missing,
                None => SubmissionStatus::Pending,
            };
            Submission { township: t.path, name: t.name, status, submitted_at, report_id }
        })
        .collect();
    let due_date = gridsync_core::model::beijing_day(due_at).format("%Y-%m-%d").to_string();
    Ok(SubmissionsReport { month: month.to_owned(), due_at, due_date, townships })
}

/// A percentage to one decimal, rounded half away from zero, computed in
/// integers: tenths of a percent. `0` when `total` is 0.
pub fn percent_tenths(count: u32, total: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    let (c, t) = (u64::from(count), u64::from(total));
    ((c * 1000 * 2 + t) / (t * 2)) as u32
}

/// `74.4%` from tenths.
pub fn percent_text(tenths: u32) -> String {
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// The four targets of the four-none villages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FourNoneTarget {
    /// 无治安案件村
    NoPublicSecurityCase,
    /// 无刑事案件村
    NoCriminalCase,
    /// 无诉讼村
    NoLawsuit,
    /// 无矛盾纠纷积案村
    NoBacklogDispute,
}

impl FourNoneTarget {
    /// The four, in the seed's order.
    pub const ALL: [FourNoneTarget; 4] = [
        FourNoneTarget::NoPublicSecurityCase,
        FourNoneTarget::NoCriminalCase,
        FourNoneTarget::NoLawsuit,
        FourNoneTarget::NoBacklogDispute,
    ];

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            FourNoneTarget::NoPublicSecurityCase => "无治安案件村",
            FourNoneTarget::NoCriminalCase => "无刑事案件村",
            FourNoneTarget::NoLawsuit => "无诉讼村",
            FourNoneTarget::NoBacklogDispute => "无矛盾纠纷积案村",
        }
    }
}

/// One village's four-none line.
#[derive(Debug, Clone, Serialize)]
pub struct FourNoneVillage {
    /// The village.
    pub village: GridPath,
    /// Its township's name.
    pub township_name: String,
    /// Its name.
    pub name: String,
    /// Public-security cases entered by the police (`None`: not entered).
    pub public_security_cases: Option<u32>,
    /// Criminal cases entered by the procuratorate.
    pub criminal_cases: Option<u32>,
    /// Lawsuits entered by the court.
    pub lawsuits: Option<u32>,
    /// Disputes that were backlog cases at some time in the year.
    pub backlog_disputes: u32,
    /// Whether it meets each target, in [`FourNoneTarget::ALL`] order.
    pub meets: [bool; 4],
    /// Whether it meets all four.
    pub all_four: bool,
}

/// The county's (or a township's) count for one target.
#[derive(Debug, Clone, Serialize)]
pub struct FourNoneTotal {
    /// The target.
    pub target: FourNoneTarget,
    /// Its Chinese label.
    pub label_zh: String,
    /// Villages meeting it.
    pub villages: u32,
    /// Villages counted.
    pub of: u32,
    /// Percentage, to one decimal.
    pub percent: f64,
    /// The same, as text (`74.4%`).
    pub percent_text: String,
    /// The 2023 goal, percent (`None` for all four, which has no goal).
    pub goal_percent: Option<u32>,
    /// Whether the share reaches the goal (compared exactly, not rounded).
    pub goal_met: Option<bool>,
}

/// The four-none table of one year.
#[derive(Debug, Clone, Serialize)]
pub struct FourNoneTable {
    /// Calendar year.
    pub year: i32,
    /// The node covered.
    pub grid: GridPath,
    /// Backlog threshold in days.
    pub backlog_days: u32,
    /// The backlog target is judged up to this instant, ms (exclusive): the
    /// year's end, or just after now while the year runs.
    pub as_of: i64,
    /// Whether the year is over (otherwise the table is so far).
    pub complete: bool,
    /// Each village.
    pub villages: Vec<FourNoneVillage>,
    /// Per target, in [`FourNoneTarget::ALL`] order.
    pub totals: Vec<FourNoneTotal>,
    /// Villages meeting all four.
    pub all_four: FourNoneTotal,
}

fn total(target: FourNoneTarget, villages: u32, of: u32, goal: Option<u32>) -> FourNoneTotal {
    let tenths = percent_tenths(villages, of);
    FourNoneTotal {
        target,
        label_zh: target.label_zh().to_owned(),
        villages,
        of,
        percent: f64::from(tenths) / 10.0,
        percent_text: percent_text(tenths),
        goal_percent: goal,
        goal_met: goal.map(|g| u64::from(villages) * 100 >= u64::from(g) * u64::from(of)),
    }
}

/// The four-none table of `year` for the villages under `grid`, seen at
/// `now` (a year not over is judged so far). A village meets a case target
/// only if the agency entered a count of 0 for it: a count never entered
/// is not evidence of no cases.
pub fn four_none(
    store: &dyn ServerStore,
    grid: &GridPath,
    year: i32,
    backlog_days: u32,
    now: i64,
) -> ReportResult<FourNoneTable> {
    if !(2000..2200).contains(&year) {
        return Err(ReportError::bad("bad_year", "年份应在2000至2199之间"));
    }
    let start = parse_month(&format!("{year:04}-01")).map(|b| b.0).unwrap_or_default();
    let end = parse_month(&format!("{:04}-01", year + 1)).map(|b| b.0).unwrap_or_default();
    let names = names(store)?;
    let counts: HashMap<(GridPath, CaseKind), u32> = store
        .case_counts(year)?
        .into_iter()
        .filter(|c| grid.contains(&c.village))
        .map(|c| ((c.village, c.kind), c.count))
        .collect();
    let b = core_reports::seen_until(end, now);
    let mut backlog: HashMap<GridPath, u32> = HashMap::new();
    for r in load(store, grid, RecordKind::Dispute, None, None)? {
        if let RecordBody::Dispute(d) = &r.body
            && core_reports::was_backlog_during(d, start, b, backlog_days, now)
        {
            *backlog.entry(r.grid.ancestor(GridLevel::Village)).or_default() += 1;
        }
    }
    let villages: Vec<FourNoneVillage> = nodes_under(store, grid, GridLevel::Village)?
        .into_iter()
        .map(|v| {
            let get = |k: CaseKind| counts.get(&(v.path.clone(), k)).copied();
            let (ps, cr, law) = (get(CaseKind::PublicSecurity), get(CaseKind::Criminal), get(CaseKind::Lawsuit));
            let b = backlog.get(&v.path).copied().unwrap_or(0);
            let meets = [ps == Some(0), cr == Some(0), law == Some(0), b == 0];
            FourNoneVillage {
                township_name: names.get(&v.path.ancestor(GridLevel::Township)).cloned().unwrap_or_default(),
                village: v.path,
                name: v.name,
                public_security_cases: ps,
                criminal_cases: cr,
                lawsuits: law,
                backlog_disputes: b,
                all_four: meets.iter().all(|m| *m),
                meets,
            }
        })
        .collect();
    let of = villages.len() as u32;
    let totals = FourNoneTarget::ALL
        .into_iter()
        .enumerate()
        .map(|(i, t)| total(t, villages.iter().filter(|v| v.meets[i]).count() as u32, of, Some(FOUR_NONE_GOALS[i])))
        .collect();
    let all = villages.iter().filter(|v| v.all_four).count() as u32;
    let mut all_four = total(FourNoneTarget::NoBacklogDispute, all, of, None);
    all_four.label_zh = "四项均达标".into();
    Ok(FourNoneTable {
        year,
        grid: grid.clone(),
        backlog_days,
        as_of: b,
        complete: b == end,
        villages,
        totals,
        all_four,
    })
}

/// One device's last sync.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceHealth {
    /// Device id.
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// Its user.
    pub user_id: String,
    /// Last successful sync, ms.
    pub last_sync_at: Option<i64>,
    /// Whether revoked.
    pub revoked: bool,
}

/// One person's last sync over all their devices.
#[derive(Debug, Clone, Serialize)]
pub struct UserHealth {
    /// User id.
    pub user_id: String,
    /// Name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Grid.
    pub grid: GridPath,
    /// Latest sync of any of their (unrevoked) devices, ms.
    pub last_sync_at: Option<i64>,
    /// Whole days since then (`None`: never synced).
    pub days_since_sync: Option<i64>,
    /// Not synced for `days` days or more (or never).
    pub stale: bool,
}

/// Sync health of the people at or below a node.
#[derive(Debug, Clone, Serialize)]
pub struct SyncHealthReport {
    /// The node.
    pub grid: GridPath,
    /// Threshold, days.
    pub days: u32,
    /// As of, ms.
    pub as_of: i64,
    /// Every person with their last sync.
    pub users: Vec<UserHealth>,
    /// Every device of those people.
    pub devices: Vec<DeviceHealth>,
    /// Ids of the people who have not synced for `days` days (or never).
    pub not_synced: Vec<String>,
}

/// Last sync per device and person under `grid`; who has not synced for `days` days.
pub fn sync_health(store: &dyn ServerStore, grid: &GridPath, days: u32, now: i64) -> ReportResult<SyncHealthReport> {
    let users: Vec<User> =
        store.users()?.into_iter().filter(|u| u.role != Role::AgencyStaff && grid.contains(&u.grid)).collect();
    let ids: std::collections::HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let devices: Vec<DeviceHealth> = store
        .devices()?
        .into_iter()
        .filter(|d| ids.contains(d.user_id.as_str()))
        .map(|d| DeviceHealth {
            device_id: d.id,
            device_name: d.name,
            user_id: d.user_id,
            last_sync_at: d.last_sync_at,
            revoked: d.revoked_at.is_some(),
        })
        .collect();
    let users: Vec<UserHealth> = users
        .into_iter()
        .map(|u| {
            let last = devices.iter().filter(|d| d.user_id == u.id && !d.revoked).filter_map(|d| d.last_sync_at).max();
            let since = last.map(|t| (now - t).max(0) / DAY_MS);
            UserHealth {
                stale: since.is_none_or(|d| d >= i64::from(days)),
                user_id: u.id,
                display_name: u.display_name,
                role: u.role,
                grid: u.grid,
                last_sync_at: last,
                days_since_sync: since,
            }
        })
        .collect();
    let not_synced = users.iter().filter(|u| u.stale).map(|u| u.user_id.clone()).collect();
    Ok(SyncHealthReport { grid: grid.clone(), days, as_of: now, users, devices, not_synced })
}

/// A case count as an agency sends it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CaseCountInput {
    /// Village grid path (`t01/v03`).
    pub village: String,
    /// Calendar year.
    pub year: i32,
    /// `public_security`, `criminal` or `lawsuit`.
    pub kind: String,
    /// Number of cases.
    pub count: i64,
}

/// Check case counts against the county's villages; each error names the
/// entry (1-based) or CSV line.
pub fn check_case_counts(
    store: &dyn ServerStore,
    user: &User,
    inputs: &[(usize, CaseCountInput)],
    now: i64,
) -> ReportResult<Vec<CaseCount>> {
    if user.role != Role::AgencyStaff {
        return Err(ReportError::Forbidden("只有县直部门（公安、检察、法院）账号可以录入案件数".into()));
    }
    // Each agency enters the counts of its own target only.
    let agency = store.account(&user.id)?.and_then(|a| a.agency);
    let own = match agency {
        None => return Err(ReportError::Forbidden("该账号未设置所属县直部门，请联系县综治中心".into())),
        Some(a) => match a.case_kind() {
            Some(k) => k,
            None => {
                return Err(ReportError::Forbidden(format!(
                    "{}负责的“无矛盾纠纷积案村”由矛盾纠纷记录统计，不需录入案件数",
                    a.label_zh()
                )));
            }
        },
    };
    if let Some((line, i)) = inputs.iter().find(|(_, i)| CaseKind::parse(i.kind.trim()).is_some_and(|k| k != own)) {
        let kind = CaseKind::parse(i.kind.trim()).map(CaseKind::label_zh).unwrap_or_default();
        return Err(ReportError::Forbidden(format!(
            "{}只能录入{}数（第{line}条是{kind}）",
            agency.map(|a| a.label_zh()).unwrap_or_default(),
            own.label_zh()
        )));
    }
    if inputs.is_empty() {
        return Err(ReportError::bad("empty", "没有要录入的案件数"));
    }
    if inputs.len() > 10_000 {
        return Err(ReportError::bad("too_many", "一次最多录入10000条"));
    }
    let villages: std::collections::HashSet<GridPath> =
        store.grid_nodes()?.into_iter().filter(|n| n.path.level() == GridLevel::Village).map(|n| n.path).collect();
    let mut out = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    for (line, i) in inputs {
        let village = GridPath::parse(i.village.trim()).ok().filter(|v| villages.contains(v));
        let kind = CaseKind::parse(i.kind.trim());
        let count = u32::try_from(i.count).ok().filter(|c| *c <= 1_000_000);
        match (village, kind, count) {
            (Some(village), Some(kind), Some(count)) if (2000..2200).contains(&i.year) => {
                out.push(CaseCount { village, year: i.year, kind, count, entered_by: user.id.clone(), entered_at: now })
            }
            (None, ..) => errors.push(format!("第{line}条：没有村（社区）“{}”", i.village)),
            (_, None, _) => errors.push(format!("第{line}条：案件类别应为public_security、criminal或lawsuit")),
            (_, _, None) => errors.push(format!("第{line}条：案件数应为0到1000000之间的整数")),
            _ => errors.push(format!("第{line}条：年份应在2000至2199之间")),
        }
        if errors.len() >= 20 {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(ReportError::bad("invalid_case_counts", errors.join("；")));
    }
    Ok(out)
}

/// Parse the CSV import (`village,year,kind,count`, UTF-8, BOM allowed).
pub fn parse_case_counts_csv(text: &str) -> ReportResult<Vec<(usize, CaseCountInput)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h.split(',').map(|c| c.trim().to_ascii_lowercase()).collect(),
        None => return Err(ReportError::bad("empty", "CSV文件为空")),
    };
    if header != ["village", "year", "kind", "count"] {
        return Err(ReportError::bad("bad_header", "CSV表头应为 village,year,kind,count"));
    }
    lines
        .map(|(n, l)| {
            let cells: Vec<&str> = l.split(',').map(str::trim).collect();
            let line = n + 1;
            match cells[..] {
                [village, year, kind, count] => Ok((
                    line,
                    CaseCountInput {
                        village: village.to_owned(),
                        year: year
                            .parse()
                            .map_err(|_| ReportError::bad("bad_row", format!("第{line}行：年份不是数字")))?,
                        kind: kind.to_owned(),
                        count: count
                            .parse()
                            .map_err(|_| ReportError::bad("bad_row", format!("第{line}行：案件数不是整数")))?,
                    },
                )),
                _ => Err(ReportError::bad("bad_row", format!("第{line}行应有4列"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_half_away_from_zero() {
        let p = |c, t| percent_text(percent_tenths(c, t));
        assert_eq!(
            [p(90, 121), p(105, 121), p(100, 121), p(118, 121), p(68, 121)],
            ["74.4%", "86.8%", "82.6%", "97.5%", "56.2%"]
        );
        assert_eq!(p(1, 8), "12.5%", "12.5 exactly stays");
        assert_eq!(p(1, 16), "6.3%", "6.25 rounds up");
        assert_eq!(p(0, 0), "0.0%");
        assert_eq!(p(121, 121), "100.0%");
    }

    #[test]
    fn reports_are_due_before_the_20th_of_the_next_month() {
        let due = report_due_at("2024-12").unwrap();
        assert_eq!(gridsync_core::model::beijing_day(due).to_string(), "2025-01-20");
        assert_eq!(due, beijing_midnight_ms(NaiveDate::from_ymd_opt(2025, 1, 20).unwrap()));
    }
}
