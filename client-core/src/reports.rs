//! Supervision figures computed from records: the weekly summary of a grid,
//! a township's monthly figures, patrol coverage and backlog disputes.
//!
//! Pure functions over [`Record`]s, no I/O: the village leader's phone
//! computes the weekly summary offline from what it holds, and the server
//! computes the same figures with the same functions from its materialized
//! records, so the two never disagree. Figures are counts only: nothing
//! here copies a name out of a record, so a count may include records
//! (key-person visits) that the reader could not open.
//!
//! Days and months are calendar days in Beijing time (UTC+8, no DST); see
//! `docs/reports.md` for each figure's definition.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::Ordered;
use crate::grid::GridPath;
use crate::model::{
    Dispute, DisputeAction, Hazard, HazardAction, HazardStatus, PatrolSlot, Record, RecordBody, VisitTarget,
    beijing_day, beijing_midnight_ms,
};

/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// Default number of days after which an unresolved dispute is a backlog
/// case (积案): the county counts a dispute left unresolved for a month as
/// a backlog, and the township reports monthly, so a dispute found in one
/// reporting month and still open in the next shows up in that report.
pub const DEFAULT_BACKLOG_DAYS: u32 = 30;

/// Counts per patrol slot (早 / 中 / 晚).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SlotCounts {
    /// 早巡
    pub morning: u32,
    /// 午巡
    pub midday: u32,
    /// 晚巡
    pub evening: u32,
}

impl SlotCounts {
    /// Add one to a slot.
    pub fn add(&mut self, slot: PatrolSlot) {
        match slot {
            PatrolSlot::Morning => self.morning += 1,
            PatrolSlot::Midday => self.midday += 1,
            PatrolSlot::Evening => self.evening += 1,
        }
    }

    /// Sum of the three slots.
    pub fn total(&self) -> u32 {
        self.morning + self.midday + self.evening
    }
}

/// Counts per visit target (三查).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct VisitCounts {
    /// 流动人口 / 出租房
    pub floating_population: u32,
    /// 重点人群
    pub key_person: u32,
    /// 特殊场所
    pub special_place: u32,
}

impl VisitCounts {
    fn add(&mut self, t: VisitTarget) {
        match t {
            VisitTarget::FloatingPopulation => self.floating_population += 1,
            VisitTarget::KeyPerson => self.key_person += 1,
            VisitTarget::SpecialPlace => self.special_place += 1,
        }
    }

    /// Sum of the three targets.
    pub fn total(&self) -> u32 {
        self.floating_population + self.key_person + self.special_place
    }
}

/// The slots in their order of the day.
pub const SLOTS: [PatrolSlot; 3] = [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening];

/// A grid manager's week, as the village weekly meeting sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct WeeklySummary {
    /// The grid summed up (usually a group).
    pub grid: GridPath,
    /// First day of the week (`YYYY-MM-DD`, Beijing time).
    pub week_start: String,
    /// The figures are taken up to this instant, ms (exclusive): the
    /// week's end, or just after now while the week runs.
    pub as_of: i64,
    /// Whether the week is over (otherwise the figures are so far).
    pub complete: bool,
    /// Patrols started in the week, per slot.
    pub patrols: SlotCounts,
    /// Days of the week on which all three slots were patrolled.
    pub days_fully_patrolled: u32,
    /// Hazards reported in the week.
    pub hazards_found: u32,
    /// Hazards reported before the week's end (or now) and not removed by then.
    pub hazards_open: u32,
    /// Visits in the week, per target.
    pub visits: VisitCounts,
    /// Disputes found in the week.
    pub disputes_found: u32,
    /// Disputes found before the week's end (or now) and not resolved by then.
    pub disputes_open: u32,
}

impl WeeklySummary {
    /// The figures as a flat map of counts (what a [`crate::model::GridWeekNote`] keeps).
    pub fn to_figures(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        put_slots(&mut m, "patrols", &self.patrols);
        m.insert("patrols.days_fully_patrolled".into(), i64::from(self.days_fully_patrolled));
        m.insert("hazards.found".into(), i64::from(self.hazards_found));
        m.insert("hazards.open".into(), i64::from(self.hazards_open));
        put_visits(&mut m, &self.visits);
        m.insert("disputes.found".into(), i64::from(self.disputes_found));
        m.insert("disputes.open".into(), i64::from(self.disputes_open));
        m
    }
}

fn put_slots(m: &mut BTreeMap<String, i64>, prefix: &str, s: &SlotCounts) {
    m.insert(format!("{prefix}.morning"), i64::from(s.morning));
    m.insert(format!("{prefix}.midday"), i64::from(s.midday));
    m.insert(format!("{prefix}.evening"), i64::from(s.evening));
}

fn put_visits(m: &mut BTreeMap<String, i64>, v: &VisitCounts) {
    m.insert("visits.floating_population".into(), i64::from(v.floating_population));
    m.insert("visits.key_person".into(), i64::from(v.key_person));
    m.insert("visits.special_place".into(), i64::from(v.special_place));
}

/// The exclusive bound a period `[start, end)` is seen up to at `now`:
/// its end once it is over, and just after `now` while it runs. No figure
/// is ever taken at an instant after now: the running week's, month's and
/// year's figures are "so far".
pub fn seen_until(end: i64, now: i64) -> i64 {
    end.min(now.saturating_add(1))
}

/// A recorded time as the figures take it: a time after `now` (a phone
/// whose clock runs ahead) is taken as now. With this, a record's state at
/// the present instant is its current status, whatever its clock said.
pub fn taken(t: i64, now: i64) -> i64 {
    t.min(now)
}

/// When a hazard was removed: the time of the last `resolved` step, if
/// its current status is removed (已消除; a step after a removal reopens it).
pub fn hazard_resolved_at(h: &Hazard) -> Option<i64> {
    if h.status() != HazardStatus::Resolved {
        return None;
    }
    Ordered::new(&h.events)
        .events
        .iter()
        .rev()
        .find(|e| matches!(e.action, HazardAction::Resolved { .. }))
        .map(|e| e.at)
}

/// Since when a dispute is resolved: the time of the resolution that made
/// its current status 已化解; `None` while it is anything else (a 稳控, an
/// escalation or an open conflict after a resolution undoes it).
pub fn dispute_resolved_at(d: &Dispute) -> Option<i64> {
    d.state().resolved_at
}

/// The index status of a closed hazard (已消除) and of a resolved dispute
/// (已化解): the one status the database's lists and counts treat as
/// closed. Every other status of the two kinds is open.
pub const CLOSED_STATUS: &str = "resolved";

/// Whether an index status (what lists and counts read in the database)
/// is an open one: a hazard not removed, a dispute not resolved. At the
/// present instant this agrees with [`open_by`] (tested).
pub fn is_open_status(status: &str) -> bool {
    status != CLOSED_STATUS
}

/// When a hazard or dispute opened (a hazard when recorded, a dispute when
/// found) and since when it is closed, if it is; `None` for other kinds.
pub fn open_span(r: &Record) -> Option<(i64, Option<i64>)> {
    match &r.body {
        RecordBody::Hazard(h) => Some((r.created_at, hazard_resolved_at(h))),
        RecordBody::Dispute(d) => Some((d.found_at, dispute_resolved_at(d))),
        _ => None,
    }
}

/// Whether a span `(opened, closed)` is open up to the bound `b` seen at
/// `now`: opened before `b` and not closed before `b`.
pub fn span_open_by((opened, closed): (i64, Option<i64>), b: i64, now: i64) -> bool {
    taken(opened, now) < b && closed.is_none_or(|c| taken(c, now) >= b)
}

/// Whether a hazard or dispute is open up to the bound `b` (see
/// [`seen_until`]), seen at `now`. Other kinds are never open.
pub fn open_by(r: &Record, b: i64, now: i64) -> bool {
    open_span(r).is_some_and(|s| span_open_by(s, b, now))
}

/// Whether a dispute is a backlog case (积案) up to the bound `b`, seen at
/// `now`: found at least `days` days before `b` and still not resolved by
/// then. [`backlog_disputes`] takes `b` just after now; a month's figure
/// takes its end, or just after now while the month runs.
pub fn is_backlog_by(d: &Dispute, b: i64, days: u32, now: i64) -> bool {
    let since = taken(d.found_at, now).saturating_add(i64::from(days) * DAY_MS);
    since < b && dispute_resolved_at(d).is_none_or(|r| taken(r, now) >= b)
}

/// Whether a dispute was a backlog case at any instant of `[start, b)`,
/// seen at `now` (a year's four-none table takes `b` = the year's end, or
/// just after now while the year runs).
pub fn was_backlog_during(d: &Dispute, start: i64, b: i64, days: u32, now: i64) -> bool {
    let since = taken(d.found_at, now).saturating_add(i64::from(days) * DAY_MS);
    let until = dispute_resolved_at(d).map_or(i64::MAX, |r| taken(r, now));
    since < b && until > start && since < until
}

fn live<'a>(records: &'a [Record], grid: &'a GridPath) -> impl Iterator<Item = &'a Record> + 'a {
    records.iter().filter(move |r| !r.deleted && grid.contains(&r.grid))
}

/// A grid's week starting on `week_start` (Beijing time), seen at `now`
/// (a week not over is counted so far), from whatever records are given
/// (those outside `grid` are ignored).
pub fn weekly_summary(records: &[Record], grid: &GridPath, week_start: NaiveDate, now: i64) -> WeeklySummary {
    let start = beijing_midnight_ms(week_start);
    let end = start + 7 * DAY_MS;
    let b = seen_until(end, now);
    let within = |t: i64| (start..b).contains(&taken(t, now));
    let mut s = WeeklySummary {
        grid: grid.clone(),
        week_start: week_start.format("%Y-%m-%d").to_string(),
        as_of: b,
        complete: b == end,
        patrols: SlotCounts::default(),
        days_fully_patrolled: 0,
        hazards_found: 0,
        hazards_open: 0,
        visits: VisitCounts::default(),
        disputes_found: 0,
        disputes_open: 0,
    };
    let mut slots_by_day: BTreeMap<(GridPath, NaiveDate), BTreeSet<PatrolSlot>> = BTreeMap::new();
    for r in live(records, grid) {
        match &r.body {
            RecordBody::Patrol(p) if within(p.started_at) => {
                s.patrols.add(p.slot);
                slots_by_day.entry((r.grid.clone(), beijing_day(taken(p.started_at, now)))).or_default().insert(p.slot);
            }
            RecordBody::Hazard(_) => {
                if within(r.created_at) {
                    s.hazards_found += 1;
                }
                if open_by(r, b, now) {
                    s.hazards_open += 1;
                }
            }
            RecordBody::Visit(v) if within(v.visited_at) => s.visits.add(v.target),
            RecordBody::Dispute(d) => {
                if within(d.found_at) {
                    s.disputes_found += 1;
                }
                if open_by(r, b, now) {
                    s.disputes_open += 1;
                }
            }
            _ => {}
        }
    }
    // For a group this counts its days; for a village, grid-days.
    s.days_fully_patrolled = slots_by_day.values().filter(|v| v.len() == SLOTS.len()).count() as u32;
    s
}

/// A township's (or any node's) figures for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct MonthlyFigures {
    /// The node summed up.
    pub grid: GridPath,
    /// Month, `YYYY-MM`.
    pub month: String,
    /// The figures are taken up to this instant, ms (exclusive): the
    /// month's end, or just after now while the month runs.
    pub as_of: i64,
    /// Whether the month is over (otherwise the figures are so far).
    pub complete: bool,
    /// Patrols started in the month, per slot.
    pub patrols: SlotCounts,
    /// Hazards reported in the month.
    pub hazards_found: u32,
    /// Hazards removed in the month (whenever reported).
    pub hazards_handled: u32,
    /// Hazards reported before the month's end (or now) and not removed by then.
    pub hazards_open: u32,
    /// Visits in the month, per target.
    pub visits: VisitCounts,
    /// Disputes found in the month.
    pub disputes_found: u32,
    /// Disputes resolved in the month (whenever found).
    pub disputes_resolved: u32,
    /// Disputes escalated in the month (to the township or the county).
    pub disputes_escalated: u32,
    /// Disputes that are backlog cases at the month's end (or now).
    pub disputes_backlog: u32,
    /// Days after which an unresolved dispute counts as a backlog case.
    pub backlog_days: u32,
}

impl MonthlyFigures {
    /// The figures as a flat map of counts (what a
    /// [`crate::model::MonthlyReport`] keeps).
    pub fn to_figures(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        put_slots(&mut m, "patrols", &self.patrols);
        m.insert("hazards.found".into(), i64::from(self.hazards_found));
        m.insert("hazards.handled".into(), i64::from(self.hazards_handled));
        m.insert("hazards.open".into(), i64::from(self.hazards_open));
        put_visits(&mut m, &self.visits);
        m.insert("disputes.found".into(), i64::from(self.disputes_found));
        m.insert("disputes.resolved".into(), i64::from(self.disputes_resolved));
        m.insert("disputes.escalated".into(), i64::from(self.disputes_escalated));
        m.insert("disputes.backlog".into(), i64::from(self.disputes_backlog));
        m
    }
}

/// Figures of `grid` for the month `[start, end)` (see
/// [`crate::model::parse_month`]) seen at `now` (a month not over is
/// counted so far), from whatever records are given.
pub fn monthly_figures(
    records: &[Record],
    grid: &GridPath,
    month: &str,
    (start, end): (i64, i64),
    backlog_days: u32,
    now: i64,
) -> MonthlyFigures {
    let b = seen_until(end, now);
    let within = |t: i64| (start..b).contains(&taken(t, now));
    let mut f = MonthlyFigures {
        grid: grid.clone(),
        month: month.to_owned(),
        as_of: b,
        complete: b == end,
        patrols: SlotCounts::default(),
        hazards_found: 0,
        hazards_handled: 0,
        hazards_open: 0,
        visits: VisitCounts::default(),
        disputes_found: 0,
        disputes_resolved: 0,
        disputes_escalated: 0,
        disputes_backlog: 0,
        backlog_days,
    };
    for r in live(records, grid) {
        match &r.body {
            RecordBody::Patrol(p) if within(p.started_at) => f.patrols.add(p.slot),
            RecordBody::Hazard(h) => {
                if within(r.created_at) {
                    f.hazards_found += 1;
                }
                if hazard_resolved_at(h).is_some_and(within) {
                    f.hazards_handled += 1;
                }
                if open_by(r, b, now) {
                    f.hazards_open += 1;
                }
            }
            RecordBody::Visit(v) if within(v.visited_at) => f.visits.add(v.target),
            RecordBody::Dispute(d) => {
                if within(d.found_at) {
                    f.disputes_found += 1;
                }
                if dispute_resolved_at(d).is_some_and(within) {
                    f.disputes_resolved += 1;
                }
                if d.events.iter().any(|e| matches!(e.action, DisputeAction::Escalated { .. }) && within(e.at)) {
                    f.disputes_escalated += 1;
                }
                if is_backlog_by(d, b, backlog_days, now) {
                    f.disputes_backlog += 1;
                }
            }
            _ => {}
        }
    }
    f
}

/// One grid's patrols on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCoverage {
    /// Day, `YYYY-MM-DD`.
    pub date: String,
    /// Slots patrolled.
    pub patrolled: Vec<PatrolSlot>,
    /// Slots not patrolled.
    pub missing: Vec<PatrolSlot>,
}

/// One grid's patrol coverage over a range of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridCoverage {
    /// The grid (a group).
    pub grid: GridPath,
    /// Per day, in order.
    pub days: Vec<DayCoverage>,
    /// Number of days each slot was missed.
    pub missed_days: SlotCounts,
}

/// Which of the three slots each grid patrolled on each day from `from` to
/// `to` inclusive, seen at `now`: days after today are not listed (today is
/// counted so far). Grids without any patrol are listed too (all missing).
pub fn patrol_coverage(
    records: &[Record],
    grids: &[GridPath],
    from: NaiveDate,
    to: NaiveDate,
    now: i64,
) -> Vec<GridCoverage> {
    let to = to.min(beijing_day(now));
    let start = beijing_midnight_ms(from);
    let end = seen_until(beijing_midnight_ms(to) + DAY_MS, now);
    let mut done: BTreeMap<(&GridPath, NaiveDate), BTreeSet<PatrolSlot>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.deleted) {
        if let RecordBody::Patrol(p) = &r.body
            && (start..end).contains(&taken(p.started_at, now))
        {
            done.entry((&r.grid, beijing_day(taken(p.started_at, now)))).or_default().insert(p.slot);
        }
    }
    let empty = BTreeSet::new();
    grids
        .iter()
        .map(|g| {
            let mut missed = SlotCounts::default();
            let days = from
                .iter_days()
                .take_while(|d| *d <= to)
                .map(|d| {
                    let got = done.get(&(g, d)).unwrap_or(&empty);
                    let missing: Vec<PatrolSlot> = SLOTS.into_iter().filter(|s| !got.contains(s)).collect();
                    for s in &missing {
                        missed.add(*s);
                    }
                    DayCoverage {
                        date: d.format("%Y-%m-%d").to_string(),
                        patrolled: got.iter().copied().collect(),
                        missing,
                    }
                })
                .collect();
            GridCoverage { grid: g.clone(), days, missed_days: missed }
        })
        .collect()
}

/// A dispute that has stayed unresolved too long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogDispute {
    /// Record id.
    pub id: Uuid,
    /// Group where it was found.
    pub grid: GridPath,
    /// Level handling it now (`village`, `township`, `county`).
    pub level: String,
    /// Status machine name.
    pub status: String,
    /// When it was found, ms.
    pub found_at: i64,
    /// Whole days since it was found.
    pub days_open: i64,
}

/// Disputes that are backlog cases now, oldest first.
pub fn backlog_disputes(records: &[Record], now: i64, days: u32) -> Vec<BacklogDispute> {
    let b = seen_until(i64::MAX, now);
    let mut out: Vec<BacklogDispute> = records
        .iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| match &r.body {
            RecordBody::Dispute(d) if is_backlog_by(d, b, days, now) => {
                let st = d.state();
                Some(BacklogDispute {
                    id: r.id,
                    grid: r.grid.clone(),
                    level: st.level.as_str().to_owned(),
                    status: st.status.as_str().to_owned(),
                    found_at: d.found_at,
                    days_open: (now - taken(d.found_at, now)) / DAY_MS,
                })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|b| (b.found_at, b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        DisputeCategory, DisputeLevel, DisputeStatus, HazardCategory, Location, Patrol, Visit, next_event,
    };

    /// Long after every period the tests look at: each is over.
    const LATER: i64 = 4_102_444_800_000; // 2100-01-01

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap_or_default()
    }

    fn at(d: u32, hour: i64) -> i64 {
        beijing_midnight_ms(day(d)) + hour * 3_600_000
    }

    fn g(s: &str) -> GridPath {
        GridPath::parse(s).unwrap_or_default()
    }

    fn patrol(grid: &str, slot: PatrolSlot, t: i64) -> Record {
        Record::new(
            g(grid),
            "gm",
            t,
            RecordBody::Patrol(Patrol {
                slot,
                started_at: t,
                ended_at: None,
                route: vec![],
                findings: String::new(),
                hazard_ids: BTreeMap::new(),
            }),
        )
    }

    fn hazard(grid: &str, t: i64, resolved: Option<i64>) -> Record {
        let mut events = vec![next_event(&[], "gm", t, HazardAction::Reported { note: String::new() })];
        if let Some(r) = resolved {
            let e = next_event(&events, "gm", r, HazardAction::Resolved { note: "已处置".into() });
            events.push(e);
        }
        Record::new(
            g(grid),
            "gm",
            t,
            RecordBody::Hazard(Hazard {
                category: HazardCategory::Fire,
                location: Location { text: "村口".into(), gps: None },
                description: "电线老化".into(),
                events,
            }),
        )
    }

    fn dispute(grid: &str, found: i64, resolved: Option<i64>, escalated: Option<i64>) -> Record {
        let mut events = vec![next_event(&[], "gm", found, DisputeAction::Found { note: String::new() })];
        if let Some(e) = escalated {
            let ev = next_event(
                &events,
                "vl",
                e,
                DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() },
            );
            events.push(ev);
        }
        if let Some(r) = resolved {
            let ev = next_event(&events, "vl", r, DisputeAction::Resolved { note: "调解".into() });
            events.push(ev);
        }
        Record::new(
            g(grid),
            "gm",
            found,
            RecordBody::Dispute(Dispute {
                parties: vec!["甲".into()],
                category: DisputeCategory::Land,
                summary: "地界".into(),
                found_at: found,
                events,
            }),
        )
    }

    fn visit(grid: &str, target: VisitTarget, t: i64) -> Record {
        Record::new(
            g(grid),
            "gm",
            t,
            RecordBody::Visit(Visit {
                target,
                subject: "某".into(),
                household_id: None,
                visited_at: t,
                findings: String::new(),
                follow_up_needed: false,
            }),
        )
    }

    #[test]
    fn a_week_adds_up() {
        // Week of Monday 2024-03-04.
        let mut recs = vec![];
        for s in SLOTS {
            recs.push(patrol("t01/v01/g1", s, at(4, 7)));
        }
        recs.push(patrol("t01/v01/g1", PatrolSlot::Evening, at(5, 20)));
        recs.push(patrol("t01/v01/g1", PatrolSlot::Morning, at(11, 1))); // next week
        recs.push(patrol("t01/v01/g2", PatrolSlot::Morning, at(4, 7))); // other grid
        recs.push(hazard("t01/v01/g1", at(1, 9), None)); // before the week, still open
        recs.push(hazard("t01/v01/g1", at(5, 9), Some(at(6, 9))));
        recs.push(hazard("t01/v01/g1", at(6, 9), None));
        recs.push(visit("t01/v01/g1", VisitTarget::KeyPerson, at(7, 9)));
        recs.push(visit("t01/v01/g1", VisitTarget::SpecialPlace, at(7, 10)));
        recs.push(dispute("t01/v01/g1", at(8, 10), None, None));
        recs.push(dispute("t01/v01/g1", at(2, 10), Some(at(3, 1)), None));
        let s = weekly_summary(&recs, &g("t01/v01/g1"), day(4), LATER);
        assert_eq!(s.patrols, SlotCounts { morning: 1, midday: 1, evening: 2 });
        assert_eq!(s.days_fully_patrolled, 1);
        assert_eq!((s.hazards_found, s.hazards_open), (2, 2));
        assert_eq!(s.visits, VisitCounts { floating_population: 0, key_person: 1, special_place: 1 });
        assert_eq!((s.disputes_found, s.disputes_open), (1, 1));
        assert_eq!(s.to_figures()["patrols.evening"], 2);
    }

    #[test]
    fn a_month_adds_up_and_backlog_follows_the_threshold() {
        let (start, end) = crate::model::parse_month("2024-03").unwrap_or_default();
        let recs = vec![
            patrol("t01/v01/g1", PatrolSlot::Midday, at(31, 23)), // 23:00 Beijing on the 31st: March
            hazard("t01/v01/g1", at(1, 0) - DAY_MS, Some(at(2, 0))), // February, handled in March
            hazard("t01/v02/g1", at(10, 0), None),
            dispute("t01/v01/g1", at(1, 0) - 40 * DAY_MS, None, Some(at(5, 0))), // backlog, escalated in March
            dispute("t01/v01/g1", at(20, 0), None, None),                        // 12 days old at the month's end
            dispute("t01/v01/g1", at(1, 0) - 40 * DAY_MS, Some(at(3, 0)), None), // resolved in March
        ];
        let f = monthly_figures(&recs, &g("t01"), "2024-03", (start, end), DEFAULT_BACKLOG_DAYS, LATER);
        assert_eq!(f.patrols.midday, 1);
        assert_eq!((f.hazards_found, f.hazards_handled, f.hazards_open), (1, 1, 1));
        assert_eq!((f.disputes_found, f.disputes_resolved, f.disputes_escalated, f.disputes_backlog), (1, 1, 1, 1));
        let f = monthly_figures(&recs, &g("t01"), "2024-03", (start, end), 10, LATER);
        assert_eq!(f.disputes_backlog, 2);
    }

    #[test]
    fn coverage_names_missing_slots_per_day() {
        let recs = vec![
            patrol("t01/v01/g1", PatrolSlot::Morning, at(4, 7)),
            patrol("t01/v01/g1", PatrolSlot::Evening, at(5, 19)),
        ];
        let cov = patrol_coverage(&recs, &[g("t01/v01/g1"), g("t01/v01/g2")], day(4), day(5), LATER);
        assert_eq!(cov[0].days[0].missing, vec![PatrolSlot::Midday, PatrolSlot::Evening]);
        assert_eq!(cov[0].days[1].patrolled, vec![PatrolSlot::Evening]);
        assert_eq!(cov[0].missed_days, SlotCounts { morning: 1, midday: 2, evening: 1 });
        assert_eq!(cov[1].missed_days.total(), 6);
    }

    #[test]
    fn backlog_during_a_year() {
        let y2021 = (
            crate::model::parse_month("2021-01").unwrap_or_default().0,
            crate::model::parse_month("2022-01").unwrap_or_default().0,
        );
        let Record { body: RecordBody::Dispute(late), .. } = dispute("t01/v01/g1", y2021.1 - 10 * DAY_MS, None, None)
        else {
            return;
        };
        assert!(
            !was_backlog_during(&late, y2021.0, y2021.1, 30, LATER),
            "found in late December: a backlog only in 2022"
        );
        let Record { body: RecordBody::Dispute(quick), .. } =
            dispute("t01/v01/g1", y2021.0, Some(y2021.0 + 29 * DAY_MS), None)
        else {
            return;
        };
        assert!(!was_backlog_during(&quick, y2021.0, y2021.1, 30, LATER));
        let Record { body: RecordBody::Dispute(slow), .. } =
            dispute("t01/v01/g1", y2021.0, Some(y2021.0 + 31 * DAY_MS), None)
        else {
            return;
        };
        assert!(was_backlog_during(&slow, y2021.0, y2021.1, 30, LATER));
        let Record { body: RecordBody::Dispute(old), .. } = dispute("t01/v01/g1", y2021.0 - 100 * DAY_MS, None, None)
        else {
            return;
        };
        assert!(was_backlog_during(&old, y2021.0, y2021.1, 30, LATER), "carried over from the year before");
    }

    fn with_step(mut r: Record, by: &str, at: i64, action: DisputeAction) -> Record {
        if let RecordBody::Dispute(d) = &mut r.body {
            let e = next_event(&d.events, by, at, action);
            d.events.push(e);
        }
        r
    }

    fn as_dispute(r: &Record) -> &Dispute {
        match &r.body {
            RecordBody::Dispute(d) => d,
            _ => unreachable!("a dispute"),
        }
    }

    /// A 稳控 step after a 化解, or an escalation after it, undoes the
    /// resolution for every figure: it is not 已化解 in the month, it can
    /// be a backlog case, and a village with it is not 无积案.
    #[test]
    fn a_resolution_undone_counts_as_unresolved() {
        let (start, end) = crate::model::parse_month("2024-03").unwrap_or_default();
        let found = start - 40 * DAY_MS;
        let resolved = dispute("t01/v01/g1", found, Some(at(3, 9)), None);
        let stabilised =
            with_step(resolved.clone(), "vl", at(5, 9), DisputeAction::Stabilized { note: "再观察".into() });
        let escalated = with_step(
            resolved.clone(),
            "vl",
            at(6, 9),
            DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() },
        );
        let followed = with_step(resolved.clone(), "vl", at(7, 9), DisputeAction::FollowUp { note: "回访".into() });
        for (r, still_resolved) in [(&resolved, true), (&stabilised, false), (&escalated, false), (&followed, true)] {
            let d = as_dispute(r);
            assert_eq!(dispute_resolved_at(d).is_some(), still_resolved, "{:?}", d.state().status);
            let f = monthly_figures(std::slice::from_ref(r), &g("t01"), "2024-03", (start, end), 30, LATER);
            assert_eq!(f.disputes_resolved, u32::from(still_resolved));
            assert_eq!(f.disputes_backlog, u32::from(!still_resolved));
            assert!(was_backlog_during(d, start, end, 30, LATER), "a backlog case before its resolution");
            assert_eq!(is_backlog_by(d, LATER, 30, LATER), !still_resolved);
        }
    }

    /// Two people resolving and escalating at once: 待裁定, not resolved.
    #[test]
    fn a_conflict_waiting_is_not_resolved() {
        let r = dispute("t01/v01/g1", at(1, 9), None, None);
        let RecordBody::Dispute(mut d) = r.body.clone() else { return };
        let heads = d.events.clone();
        let a = next_event(&heads, "vl", at(2, 9), DisputeAction::Resolved { note: "调解".into() });
        let b = next_event(&heads, "gm", at(2, 10), DisputeAction::Stabilized { note: String::new() });
        d.events.push(a);
        d.events.push(b);
        assert_eq!(d.state().status, DisputeStatus::Conflict);
        assert_eq!(dispute_resolved_at(&d), None);
    }

    /// While a month runs its figures are taken at now, not at its end: a
    /// dispute found 18 days ago is not yet a backlog case, and the month
    /// says it is not complete.
    #[test]
    fn a_running_month_is_counted_so_far() {
        let (start, end) = crate::model::parse_month("2024-03").unwrap_or_default();
        let now = at(10, 12);
        let recs = vec![dispute("t01/v01/g1", now - 18 * DAY_MS, None, None)];
        let f = monthly_figures(&recs, &g("t01"), "2024-03", (start, end), 30, now);
        assert!(!f.complete);
        assert_eq!(f.as_of, now + 1);
        assert_eq!(f.disputes_backlog, 0, "not a backlog case before its 30 days are over");
        assert!(backlog_disputes(&recs, now, 30).is_empty());
        let done = monthly_figures(&recs, &g("t01"), "2024-03", (start, end), 30, LATER);
        assert!(done.complete);
        assert_eq!(done.disputes_backlog, 1, "at the month's end it is");
        let Record { body: RecordBody::Dispute(d), .. } = &recs[0] else { return };
        let year = (crate::model::parse_month("2024-01").unwrap_or_default().0, end + 300 * DAY_MS);
        assert!(!was_backlog_during(d, year.0, seen_until(year.1, now), 30, now));
    }

    #[test]
    fn closed_is_one_status_for_both_kinds() {
        assert_eq!(HazardStatus::Resolved.as_str(), CLOSED_STATUS);
        assert_eq!(DisputeStatus::Resolved.as_str(), CLOSED_STATUS);
    }

    proptest::proptest! {
        /// At the present instant, open by the times agrees with open by
        /// the status the database lists and counts by, whatever clocks
        /// the steps were taken on (some ahead of the server's).
        #[test]
        fn open_now_agrees_with_the_status(
            steps in proptest::collection::vec((0u8..3, -5i64..5), 0..6),
            disputes in proptest::collection::vec((0u8..5, -5i64..5), 0..6),
            created in -5i64..5,
        ) {
            let now = at(15, 12);
            let mut h = hazard("t01/v01/g1", now + created * DAY_MS, None);
            if let RecordBody::Hazard(hz) = &mut h.body {
                for (kind, day) in &steps {
                    let action = match kind {
                        0 => HazardAction::Step { note: "处置".into() },
                        1 => HazardAction::Resolved { note: "已消除".into() },
                        _ => HazardAction::Reported { note: String::new() },
                    };
                    let e = next_event(&hz.events, "gm", now + day * DAY_MS, action);
                    hz.events.push(e);
                }
            }
            let mut d = dispute("t01/v01/g1", now + created * DAY_MS, None, None);
            for (kind, day) in &disputes {
                let action = match kind {
                    0 => DisputeAction::Resolved { note: "调解".into() },
                    1 => DisputeAction::Stabilized { note: String::new() },
                    2 => DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() },
                    3 => DisputeAction::FollowUp { note: "跟进".into() },
                    _ => DisputeAction::PlanSet { plan: "方案".into(), team: vec![] },
                };
                d = with_step(d, "vl", now + day * DAY_MS, action);
            }
            for r in [&h, &d] {
                proptest::prop_assert_eq!(
                    open_by(r, seen_until(i64::MAX, now), now),
                    is_open_status(&r.index().status)
                );
            }
        }
    }
}
