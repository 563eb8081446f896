//! 三查: a visit to floating population, a key person or a special place.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// What a visit was to (三查).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum VisitTarget {
    /// 流动人口 / 出租房
    FloatingPopulation,
    /// 重点人群
    KeyPerson,
    /// 特殊场所
    SpecialPlace,
}

impl VisitTarget {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            VisitTarget::FloatingPopulation => "流动人口/出租房",
            VisitTarget::KeyPerson => "重点人群",
            VisitTarget::SpecialPlace => "特殊场所",
        }
    }
}

/// 三查: one in-person visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Visit {
    /// What was visited.
    pub target: VisitTarget,
    /// The person, household or place visited, in words.
    pub subject: String,
    /// The household record visited, if any.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub household_id: Option<String>,
    /// When, ms since epoch.
    pub visited_at: i64,
    /// What was found.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub findings: String,
    /// Whether someone must come back.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub follow_up_needed: bool,
}

impl Visit {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let v = self;
        req(errs, "subject", &v.subject, "走访对象", 100);
        check_long("findings", &v.findings, "走访情况", 4000, errs);
        if let Some(h) = &v.household_id
            && Uuid::parse_str(h).is_err()
        {
            errs.push(FieldError::new("household_id", "bad_uuid", "户编号格式错误"));
        }
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let v = self;
        ix.status = if v.follow_up_needed { "follow_up" } else { "done" }.into();
        ix.title = format!("{}：{}", v.target.label_zh(), truncate_chars(&v.subject, 40));
        ix.occurred_at = v.visited_at;
        ix.sensitive = v.target == VisitTarget::KeyPerson;
    }
}
