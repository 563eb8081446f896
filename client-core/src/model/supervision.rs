//! The records of the review cadence: the village's weekly meeting (周排查), the
//! township's monthly review (月研判) and monthly report (月报).

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::grid::GridLevel;
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// One grid's week as the village leader noted it at the weekly meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct GridWeekNote {
    /// The figures computed from the grid's records when the meeting was
    /// held (see [`crate::reports::weekly_summary`]), kept as they were.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub figures: Figures,
    /// What the grid manager reported and the leader noted.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub note: String,
}

/// 周排查: a village's weekly review meeting. Each grid manager reports the
/// week; the leader sums up, classifies new disputes, sets plans and teams
/// (those go into the disputes' own histories) and records the decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct VillageMeeting {
    /// When it was held, ms since epoch.
    pub held_at: i64,
    /// Who attended (names).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub attendees: Vec<String>,
    /// Per group (grid path `t01/v03/g2`): the week's figures and notes.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub grid_summaries: GridNotes,
    /// Ids of the dispute records reviewed (a set: concurrent edits merge).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub disputes_reviewed: IdSet,
    /// What was decided.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub decisions: String,
}

/// 月研判: a township's monthly review of escalated disputes and hazards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct TownshipReview {
    /// Month reviewed, `YYYY-MM`.
    pub month: String,
    /// When it was held, ms since epoch.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub held_at: Option<i64>,
    /// Who attended (names).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub attendees: Vec<String>,
    /// Ids of the dispute records reviewed.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub disputes_reviewed: IdSet,
    /// Plans and assignments decided.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub decisions: String,
}

/// 月报: a township's written monthly report to the county political-legal
/// committee. The report on month M is due before the 20th of month M+1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct MonthlyReport {
    /// Month reported on, `YYYY-MM`.
    pub month: String,
    /// Figures (counts keyed by machine names such as `patrols.morning`),
    /// usually drafted from the records by the server.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub figures: Figures,
    /// The written report.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub narrative: String,
    /// When the township chief submitted it, ms since epoch; `None` while a
    /// draft (or after the county sent it back for correction).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub submitted_at: Option<i64>,
    /// The county's last request to correct it; kept when the chief
    /// submits it again, so the reason stays on the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub returned: Option<ReportReturn>,
}

/// The county sent a submitted monthly report back for correction (退回修改).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct ReportReturn {
    /// When, ms since epoch.
    pub at: i64,
    /// User id of the county staff who sent it back.
    pub by: String,
    /// What to correct.
    pub reason: String,
}

impl VillageMeeting {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, grid: &GridPath, errs: &mut Vec<FieldError>) {
        let m = self;
        check_people("attendees", &m.attendees, "参会人员", 200, errs);
        check_id_set("disputes_reviewed", &m.disputes_reviewed, "审议的纠纷", 500, errs);
        check_long("decisions", &m.decisions, "会议决定", 8000, errs);
        if m.grid_summaries.len() > 20 {
            errs.push(FieldError::new("grid_summaries", "too_long", "网格小结不能超过20个"));
        }
        for (g, note) in &m.grid_summaries {
            let shown = clip(g, 40);
            match GridPath::parse(g) {
                Ok(p) if p.level() == GridLevel::Group && grid.contains(&p) => {}
                _ => errs.push(FieldError::new(
                    format!("grid_summaries[{shown}]"),
                    "not_in_village",
                    format!("“{shown}”不是本村的网格"),
                )),
            }
            check_long(&format!("grid_summaries[{shown}].note"), &note.note, "网格小结", 2000, errs);
            check_figures(&format!("grid_summaries[{shown}].figures"), &note.figures, errs);
        }
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let m = self;
        ix.status = "held".into();
        ix.title = format!("{} 周排查例会", date_of(m.held_at));
        ix.occurred_at = m.held_at;
    }
}

impl TownshipReview {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let t = self;
        if parse_month(&t.month).is_none() {
            errs.push(FieldError::new("month", "bad_month", "研判月份格式应为“YYYY-MM”"));
        }
        check_people("attendees", &t.attendees, "参会人员", 200, errs);
        check_id_set("disputes_reviewed", &t.disputes_reviewed, "审议的纠纷", 500, errs);
        check_long("decisions", &t.decisions, "研判意见", 8000, errs);
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, created_at: i64) {
        let t = self;
        ix.status = "held".into();
        ix.title = format!("{} 月研判", t.month);
        ix.occurred_at = parse_month(&t.month).map_or(created_at, |(start, _)| start);
    }
}

impl MonthlyReport {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let r = self;
        if parse_month(&r.month).is_none() {
            errs.push(FieldError::new("month", "bad_month", "报告月份格式应为“YYYY-MM”"));
        }
        check_long("narrative", &r.narrative, "报告正文", 20_000, errs);
        check_figures("figures", &r.figures, errs);
        if let Some(ret) = &r.returned {
            req(errs, "returned.reason", &ret.reason, "退回原因", 2000);
            req(errs, "returned.by", &ret.by, "退回人", 64);
        }
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, created_at: i64) {
        let r = self;
        ix.status = match (r.submitted_at, &r.returned) {
            (Some(_), _) => "submitted",
            (None, Some(_)) => "returned",
            (None, None) => "draft",
        }
        .into();
        ix.title = format!("{} 月度报告", r.month);
        ix.occurred_at = parse_month(&r.month).map_or(created_at, |(start, _)| start);
    }
}
