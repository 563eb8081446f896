//! 一巡: a patrol of the grid.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// Time of day of a patrol (早中晚不定时巡查).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum PatrolSlot {
    /// 早
    Morning,
    /// 中
    Midday,
    /// 晚
    Evening,
}

impl PatrolSlot {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            PatrolSlot::Morning => "早巡",
            PatrolSlot::Midday => "午巡",
            PatrolSlot::Evening => "晚巡",
        }
    }
}

/// 一巡: one walk of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Patrol {
    /// Morning, midday or evening.
    pub slot: PatrolSlot,
    /// Start, ms since epoch.
    pub started_at: i64,
    /// End, ms since epoch, once finished.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub ended_at: Option<i64>,
    /// GPS points along the way (optional).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub route: Vec<GeoPoint>,
    /// What was seen.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub findings: String,
    /// Ids of hazard records found on this patrol (a set: concurrent links merge).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub hazard_ids: IdSet,
}

impl Patrol {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let p = self;
        check_long("findings", &p.findings, "巡查情况", 4000, errs);
        if let Some(end) = p.ended_at
            && end < p.started_at
        {
            errs.push(FieldError::new("ended_at", "before_start", "结束时间不能早于开始时间"));
        }
        if p.route.len() > 2000 {
            errs.push(FieldError::new("route", "too_long", "巡查轨迹点不能超过2000个"));
        }
        for (i, pt) in p.route.iter().enumerate() {
            check_point(&format!("route[{i}]"), pt, errs);
        }
        check_id_set("hazard_ids", &p.hazard_ids, "关联隐患", 100, errs);
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let p = self;
        ix.status = if p.ended_at.is_some() { "done" } else { "in_progress" }.into();
        ix.title = format!("{} {}", date_of(p.started_at), p.slot.label_zh());
        ix.occurred_at = p.started_at;
    }
}
