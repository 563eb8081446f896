//! 二报: a hazard found on patrol and its handling history.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::events::{HistoryAction, Ordered};
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// Category of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum HazardCategory {
    /// 消防安全
    Fire,
    /// 交通安全
    Traffic,
    /// 地质灾害
    Geological,
    /// 防汛
    Flood,
    /// 房屋安全
    Building,
    /// 安全生产
    Production,
    /// 治安隐患
    PublicOrder,
    /// 其他
    Other,
}

impl HazardCategory {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            HazardCategory::Fire => "消防安全",
            HazardCategory::Traffic => "交通安全",
            HazardCategory::Geological => "地质灾害",
            HazardCategory::Flood => "防汛",
            HazardCategory::Building => "房屋安全",
            HazardCategory::Production => "安全生产",
            HazardCategory::PublicOrder => "治安隐患",
            HazardCategory::Other => "其他",
        }
    }
}

/// A step in a hazard's handling (报隐患 / 报隐患处置情况).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum HazardAction {
    /// The hazard was reported.
    Reported {
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// A handling step was taken.
    Step {
        /// What was done.
        note: String,
    },
    /// The hazard was removed.
    Resolved {
        /// How.
        note: String,
    },
}

impl HazardAction {
    /// Stable machine name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            HazardAction::Reported { .. } => "reported",
            HazardAction::Step { .. } => "step",
            HazardAction::Resolved { .. } => "resolved",
        }
    }

    /// Chinese label.
    pub fn label_zh(&self) -> &'static str {
        match self {
            HazardAction::Reported { .. } => "报隐患",
            HazardAction::Step { .. } => "报处置情况",
            HazardAction::Resolved { .. } => "隐患已消除",
        }
    }
}

impl HistoryAction for HazardAction {
    fn conflicts_with(&self, _other: &Self) -> Option<String> {
        None
    }
    fn settles(&self) -> Option<&str> {
        None
    }
}

/// 二报: a hazard found on patrol and its handling history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Hazard {
    /// What kind of hazard.
    pub category: HazardCategory,
    /// Where.
    pub location: Location,
    /// What it is.
    pub description: String,
    /// Handling history, append-only.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub events: Vec<HazardEvent>,
}

/// Status of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum HazardStatus {
    /// 待处置
    Open,
    /// 处置中
    Handling,
    /// 已消除
    Resolved,
}

impl HazardStatus {
    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            HazardStatus::Open => "open",
            HazardStatus::Handling => "handling",
            HazardStatus::Resolved => "resolved",
        }
    }
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            HazardStatus::Open => "待处置",
            HazardStatus::Handling => "处置中",
            HazardStatus::Resolved => "已消除",
        }
    }
}

impl Hazard {
    /// Status derived from the handling history: the last step in causal
    /// order decides (ties broken by time, then id).
    pub fn status(&self) -> HazardStatus {
        let ordered = Ordered::new(&self.events);
        ordered.events.iter().fold(HazardStatus::Open, |_, e| match e.action {
            HazardAction::Reported { .. } => HazardStatus::Open,
            HazardAction::Step { .. } => HazardStatus::Handling,
            HazardAction::Resolved { .. } => HazardStatus::Resolved,
        })
    }
}

impl Hazard {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let h = self;
        req(errs, "description", &h.description, "隐患描述", 2000);
        req(errs, "location.text", &h.location.text, "隐患位置", 200);
        if let Some(pt) = &h.location.gps {
            check_point("location.gps", pt, errs);
        }
        check_events(&h.events, errs);
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let h = self;
        ix.status = h.status().as_str().into();
        ix.title = format!("{}：{}", h.category.label_zh(), truncate_chars(&h.description, 40));
    }
}
