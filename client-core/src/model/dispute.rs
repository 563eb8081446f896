//! 矛盾纠纷: a dispute, its append-only history and the status derived from it.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::events::{Conflict, HistoryAction, Ordered};
use crate::grid::GridLevel;
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// Category of a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum DisputeCategory {
    /// 邻里纠纷
    Neighbour,
    /// 婚姻家庭
    Family,
    /// 土地山林
    Land,
    /// 债务
    Debt,
    /// 劳资
    Labour,
    /// 其他
    Other,
}

impl DisputeCategory {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            DisputeCategory::Neighbour => "邻里纠纷",
            DisputeCategory::Family => "婚姻家庭",
            DisputeCategory::Land => "土地山林",
            DisputeCategory::Debt => "债务纠纷",
            DisputeCategory::Labour => "劳资纠纷",
            DisputeCategory::Other => "其他",
        }
    }
}

/// Level at which a dispute is being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum DisputeLevel {
    /// 村
    Village,
    /// 乡镇
    Township,
    /// 县
    County,
}

impl DisputeLevel {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            DisputeLevel::Village => "村级",
            DisputeLevel::Township => "乡镇级",
            DisputeLevel::County => "县级",
        }
    }

    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeLevel::Village => "village",
            DisputeLevel::Township => "township",
            DisputeLevel::County => "county",
        }
    }

    /// The grid level whose people handle a dispute at this level.
    pub fn grid_level(self) -> GridLevel {
        match self {
            DisputeLevel::Village => GridLevel::Village,
            DisputeLevel::Township => GridLevel::Township,
            DisputeLevel::County => GridLevel::County,
        }
    }
}

/// One step in a dispute's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum DisputeAction {
    /// 排查发现: found and recorded by a grid manager.
    Found {
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// 甄别分类: screened and classified at the weekly meeting.
    Classified {
        /// Category decided.
        category: DisputeCategory,
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// 化解方案 and 化解小组 set.
    PlanSet {
        /// The plan.
        plan: String,
        /// Members of the resolution team.
        #[serde(default)]
        team: Vec<String>,
    },
    /// A follow-up note.
    FollowUp {
        /// What happened.
        note: String,
    },
    /// 稳控管理: kept under watch.
    Stabilized {
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// 上报: escalated to a higher level.
    Escalated {
        /// Level it goes to.
        to: DisputeLevel,
        /// Why.
        #[serde(default)]
        note: String,
    },
    /// 化解: resolved.
    Resolved {
        /// How.
        note: String,
    },
    /// A village leader (or higher) settled a conflict by keeping one event.
    Settled {
        /// Id of the event kept.
        kept: String,
        /// Why.
        #[serde(default)]
        note: String,
    },
}

impl DisputeAction {
    /// Stable machine name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            DisputeAction::Found { .. } => "found",
            DisputeAction::Classified { .. } => "classified",
            DisputeAction::PlanSet { .. } => "plan_set",
            DisputeAction::FollowUp { .. } => "follow_up",
            DisputeAction::Stabilized { .. } => "stabilized",
            DisputeAction::Escalated { .. } => "escalated",
            DisputeAction::Resolved { .. } => "resolved",
            DisputeAction::Settled { .. } => "settled",
        }
    }

    /// Chinese label.
    pub fn label_zh(&self) -> &'static str {
        match self {
            DisputeAction::Found { .. } => "排查发现",
            DisputeAction::Classified { .. } => "甄别分类",
            DisputeAction::PlanSet { .. } => "制定化解方案",
            DisputeAction::FollowUp { .. } => "跟进",
            DisputeAction::Stabilized { .. } => "稳控管理",
            DisputeAction::Escalated { .. } => "上报",
            DisputeAction::Resolved { .. } => "化解",
            DisputeAction::Settled { .. } => "裁定冲突",
        }
    }
}

impl DisputeAction {
    /// Whether a person with `role` may record this action on a dispute
    /// currently handled at `level` ("small matters stay in the village, big
    /// matters stay in the township"). Anyone whose grid holds the dispute may
    /// record that it was found and add follow-ups; a grid manager may also
    /// record an on-the-spot resolution or watch (就地化解 / 稳控) at village
    /// level; classifying, planning and escalating belong to the people who
    /// handle that level (settling a conflict also to those above it);
    /// escalation goes one level up at a time.
    pub fn may_act(&self, role: crate::grid::Role, level: DisputeLevel) -> bool {
        use crate::grid::Role;
        let handles = match role {
            Role::VillageLeader | Role::Supervisor => Some(DisputeLevel::Village),
            Role::TownshipChief => Some(DisputeLevel::Township),
            Role::CountyStaff => Some(DisputeLevel::County),
            Role::GridManager | Role::AgencyStaff => None,
        };
        match self {
            DisputeAction::Found { .. } | DisputeAction::FollowUp { .. } => role != Role::AgencyStaff,
            DisputeAction::Resolved { .. } | DisputeAction::Stabilized { .. }
                if role == Role::GridManager && level == DisputeLevel::Village =>
            {
                true
            }
            DisputeAction::Escalated { to, .. } => {
                handles == Some(level)
                    && matches!(
                        (level, to),
                        (DisputeLevel::Village, DisputeLevel::Township)
                            | (DisputeLevel::Township, DisputeLevel::County)
                    )
            }
            // Those who handle the dispute's level or a higher one settle
            // its conflicts; those below may only confirm an escalation that
            // raced their own level's step (`rules` checks that the
            // settlement does not take the dispute back down).
            DisputeAction::Settled { .. } => handles.is_some(),
            _ => handles == Some(level),
        }
    }
}

impl HistoryAction for DisputeAction {
    fn conflicts_with(&self, other: &Self) -> Option<String> {
        use DisputeAction::*;
        match (self, other) {
            (Resolved { note: a }, Resolved { note: b }) if a != b => Some("两人分别给出了不同的化解结果".into()),
            (Escalated { to: a, .. }, Escalated { to: b, .. }) if a != b => {
                Some(format!("同时被上报到不同层级：{}与{}", a.label_zh(), b.label_zh()))
            }
            (Resolved { .. }, Escalated { .. }) | (Escalated { .. }, Resolved { .. }) => {
                Some("一人记录已化解，另一人同时上报".into())
            }
            (Resolved { .. }, Stabilized { .. }) | (Stabilized { .. }, Resolved { .. }) => {
                Some("一人记录已化解，另一人同时记录稳控".into())
            }
            (Classified { category: a, .. }, Classified { category: b, .. }) if a != b => {
                Some(format!("同时被分为不同类别：{}与{}", a.label_zh(), b.label_zh()))
            }
            (PlanSet { plan: a, .. }, PlanSet { plan: b, .. }) if a != b => Some("同时制定了两个不同的化解方案".into()),
            _ => None,
        }
    }

    fn settles(&self) -> Option<&str> {
        match self {
            DisputeAction::Settled { kept, .. } => Some(kept),
            _ => None,
        }
    }
}

/// 矛盾纠纷: a dispute and its append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// Names of the parties.
    pub parties: Vec<String>,
    /// Category as first recorded (a later `classified` event overrides it).
    pub category: DisputeCategory,
    /// What it is about.
    pub summary: String,
    /// When it was found, ms since epoch.
    pub found_at: i64,
    /// History, append-only.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub events: Vec<DisputeEvent>,
}

/// Status of a dispute, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    /// 已登记
    Registered,
    /// 已甄别
    Classified,
    /// 化解中
    InProgress,
    /// 稳控中
    Stabilized,
    /// 已上报 (waiting at a higher level)
    Escalated,
    /// 已化解
    Resolved,
    /// 待裁定: concurrent incompatible events
    Conflict,
}

impl DisputeStatus {
    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Registered => "registered",
            DisputeStatus::Classified => "classified",
            DisputeStatus::InProgress => "in_progress",
            DisputeStatus::Stabilized => "stabilized",
            DisputeStatus::Escalated => "escalated",
            DisputeStatus::Resolved => "resolved",
            DisputeStatus::Conflict => "conflict",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            DisputeStatus::Registered => "已登记",
            DisputeStatus::Classified => "已甄别",
            DisputeStatus::InProgress => "化解中",
            DisputeStatus::Stabilized => "稳控中",
            DisputeStatus::Escalated => "已上报",
            DisputeStatus::Resolved => "已化解",
            DisputeStatus::Conflict => "待裁定",
        }
    }
}

/// What a dispute's history adds up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisputeState {
    /// Status.
    pub status: DisputeStatus,
    /// Current level.
    pub level: DisputeLevel,
    /// Current category.
    pub category: DisputeCategory,
    /// Since when it is resolved: the time of the resolution that made it
    /// 已化解, `None` whenever its current status is anything else.
    pub resolved_at: Option<i64>,
    /// Conflicts waiting for a village leader.
    pub conflicts: Vec<Conflict>,
}

impl Dispute {
    /// Derive status, level and conflicts from the history (deterministic).
    pub fn state(&self) -> DisputeState {
        let ordered = Ordered::new(&self.events);
        let (conflicts, overruled) = ordered.conflicts();
        let mut st = DisputeState {
            status: DisputeStatus::Registered,
            level: DisputeLevel::Village,
            category: self.category,
            resolved_at: None,
            conflicts,
        };
        for (i, e) in ordered.events.iter().enumerate() {
            if overruled.contains(&i) {
                continue;
            }
            match &e.action {
                DisputeAction::Found { .. } | DisputeAction::Settled { .. } => {}
                DisputeAction::Classified { category, .. } => {
                    st.category = *category;
                    if st.status == DisputeStatus::Registered {
                        st.status = DisputeStatus::Classified;
                    }
                }
                DisputeAction::PlanSet { .. } | DisputeAction::FollowUp { .. } => {
                    if st.status != DisputeStatus::Resolved {
                        st.status = DisputeStatus::InProgress;
                    }
                }
                DisputeAction::Stabilized { .. } => st.status = DisputeStatus::Stabilized,
                DisputeAction::Escalated { to, .. } => {
                    st.level = st.level.max(*to);
                    st.status = DisputeStatus::Escalated;
                    st.resolved_at = None;
                }
                DisputeAction::Resolved { .. } => {
                    st.status = DisputeStatus::Resolved;
                    st.resolved_at = Some(e.at);
                }
            }
        }
        if !st.conflicts.is_empty() {
            st.status = DisputeStatus::Conflict;
        }
        // A dispute is resolved since its last resolution only while its
        // status is 已化解: a later 稳控, 上报 or an open conflict undoes it,
        // and every figure that counts resolutions reads this field.
        if st.status != DisputeStatus::Resolved {
            st.resolved_at = None;
        }
        st
    }
}

impl Dispute {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let d = self;
        req(errs, "summary", &d.summary, "纠纷概要", 2000);
        if d.parties.iter().all(|p| p.trim().is_empty()) {
            errs.push(FieldError::new("parties", "required", "请至少填写一方当事人"));
        }
        check_people("parties", &d.parties, "当事人", 50, errs);
        check_events(&d.events, errs);
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let d = self;
        let st = d.state();
        ix.status = st.status.as_str().into();
        ix.level = Some(st.level);
        ix.has_conflict = !st.conflicts.is_empty();
        ix.title = format!("{}：{}", st.category.label_zh(), truncate_chars(&d.summary, 40));
        ix.occurred_at = d.found_at;
    }
}
