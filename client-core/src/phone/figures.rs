//! The village leader's figures, offline: the weekly summary the village
//! meeting notes per group, and a month's figures, computed on the phone
//! from the records it holds by the same functions the server's reports
//! use ([`crate::reports`]).

use std::collections::BTreeSet;

use super::*;
use crate::grid::GridLevel;
use crate::model::{Record, parse_month};
use crate::reports::{self, DEFAULT_BACKLOG_DAYS, MonthlyFigures, WeeklySummary};
use crate::store::ListFilter;

impl Phone {
    /// `grid` parsed, or the enrolled user's scope when `None`; it must lie
    /// inside that scope (the phone holds nothing outside it).
    fn figures_grid(&self, grid: Option<&str>) -> Result<GridPath, ApiError> {
        let scope = self.writer()?.scope();
        let Some(g) = grid else { return Ok(scope) };
        let g = parse_grid("grid", g)?;
        if !scope.contains(&g) {
            return Err(ApiError::invalid("grid", "out_of_scope", "该网格不在您的范围内，本机没有它的记录"));
        }
        Ok(g)
    }

    /// Every live record at or below `grid`.
    fn records_under(&self, grid: &GridPath) -> Result<Vec<Record>, ApiError> {
        let store = self.store();
        let mut filter = ListFilter { grid: Some(grid.clone()), limit: Some(10_000), ..Default::default() };
        let mut out = Vec::new();
        loop {
            let page = store.list(&filter)?;
            let Some(last) = page.last() else { break };
            filter.after = Some((last.occurred_at, last.id));
            for s in &page {
                out.push(store.get(s.id)?);
            }
        }
        Ok(out)
    }

    /// The week starting on `week_start` (`YYYY-MM-DD`, Beijing time) of
    /// `grid` (default: the user's whole scope).
    pub fn weekly_summary(&self, grid: Option<&str>, week_start: &str) -> Result<WeeklySummary, ApiError> {
        let day = parse_day(week_start)?;
        let grid = self.figures_grid(grid)?;
        Ok(reports::weekly_summary(&self.records_under(&grid)?, &grid, day, now_ms()))
    }

    /// The week of each group at or below `grid` (default: the user's
    /// scope), as a village's weekly meeting notes them: every group the
    /// directory or the records name, in path order.
    pub fn weekly_summaries_by_group(
        &self,
        grid: Option<&str>,
        week_start: &str,
    ) -> Result<Vec<WeeklySummary>, ApiError> {
        let day = parse_day(week_start)?;
        let grid = self.figures_grid(grid)?;
        let records = self.records_under(&grid)?;
        let mut groups: BTreeSet<GridPath> =
            records.iter().map(|r| r.grid.clone()).filter(|g| g.level() == GridLevel::Group).collect();
        for e in self.store().directory("grid")? {
            if let Ok(g) = GridPath::parse(&e.id)
                && g.level() == GridLevel::Group
                && grid.contains(&g)
            {
                groups.insert(g);
            }
        }
        let now = now_ms();
        Ok(groups.iter().map(|g| reports::weekly_summary(&records, g, day, now)).collect())
    }

    /// The figures of `month` (`YYYY-MM`) for `grid` (default: the user's
    /// scope), as the monthly report counts them (a month not over so far:
    /// see `MonthlyFigures::complete`).
    pub fn monthly_figures(&self, grid: Option<&str>, month: &str) -> Result<MonthlyFigures, ApiError> {
        let bounds =
            parse_month(month).ok_or_else(|| ApiError::invalid("month", "bad_month", "月份格式应为“2026-08”"))?;
        let grid = self.figures_grid(grid)?;
        Ok(reports::monthly_figures(&self.records_under(&grid)?, &grid, month, bounds, DEFAULT_BACKLOG_DAYS, now_ms()))
    }
}

fn parse_day(s: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("week_start", "bad_date", "日期格式应为“2026-08-03”"))
}
