//! Record kinds, their fields, validation, Chinese labels and derived status.
//!
//! A [`Record`] is the typed view of one record document: a header every
//! kind shares and a [`RecordBody`] per kind. Collections that several
//! people edit at once are keyed by id (household members, machinery) so
//! that concurrent edits to different entries merge; histories are
//! append-only [`Event`] lists (see [`crate::events`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{CoreError, FieldError};
use crate::events::{Conflict, Event, HistoryAction, Ordered};
use crate::grid::{GridLevel, GridPath};

/// Schema version written into every new record document.
pub const SCHEMA_VERSION: i64 = 1;

/// The keys of a record document's root map; any other key is refused.
const HEADER_KEYS: [&str; 9] =
    ["id", "kind", "schema", "grid", "author", "created_at", "updated_at", "deleted", "data"];

/// At most `n` characters of `s`, for quoting hostile input in messages.
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// 一巡: a patrol of the grid.
    Patrol,
    /// 二报: a hazard and how it was handled.
    Hazard,
    /// 三查: a visit to floating population, a key person or a special place.
    Visit,
    /// 四清: a household's base ledger (sensitive personal information).
    Household,
    /// 矛盾纠纷: a dispute and its resolution history.
    Dispute,
    /// 周排查: a village's weekly review meeting (grid is the village).
    VillageMeeting,
    /// 月研判: a township's monthly review (grid is the township).
    TownshipReview,
    /// 月报: a township's written monthly report to the county (grid is the township).
    MonthlyReport,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 8] = [
        RecordKind::Patrol,
        RecordKind::Hazard,
        RecordKind::Visit,
        RecordKind::Household,
        RecordKind::Dispute,
        RecordKind::VillageMeeting,
        RecordKind::TownshipReview,
        RecordKind::MonthlyReport,
    ];

    /// The grid level a record of this kind belongs to: field records to a
    /// group, the weekly meeting to a village, the monthly review and
    /// report to a township.
    pub fn grid_level(self) -> GridLevel {
        match self {
            RecordKind::VillageMeeting => GridLevel::Village,
            RecordKind::TownshipReview | RecordKind::MonthlyReport => GridLevel::Township,
            _ => GridLevel::Group,
        }
    }

    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Patrol => "patrol",
            RecordKind::Hazard => "hazard",
            RecordKind::Visit => "visit",
            RecordKind::Household => "household",
            RecordKind::Dispute => "dispute",
            RecordKind::VillageMeeting => "village_meeting",
            RecordKind::TownshipReview => "township_review",
            RecordKind::MonthlyReport => "monthly_report",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            RecordKind::Patrol => "巡查",
            RecordKind::Hazard => "隐患",
            RecordKind::Visit => "走访",
            RecordKind::Household => "户籍台账",
            RecordKind::Dispute => "矛盾纠纷",
            RecordKind::VillageMeeting => "周排查例会",
            RecordKind::TownshipReview => "月研判",
            RecordKind::MonthlyReport => "月度报告",
        }
    }

    /// Parse a machine name.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| CoreError::invalid("kind", "unknown_kind", format!("未知记录类型“{s}”")))
    }
}

/// A point from the phone's GPS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Time of day of a patrol (早中晚不定时巡查).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct Patrol {
    /// Morning, midday or evening.
    pub slot: PatrolSlot,
    /// Start, ms since epoch.
    pub started_at: i64,
    /// End, ms since epoch, once finished.
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// GPS points along the way (optional).
    #[serde(default)]
    pub route: Vec<GeoPoint>,
    /// What was seen.
    #[serde(default)]
    pub findings: String,
    /// Ids of hazard records found on this patrol (a set: concurrent links merge).
    #[serde(default)]
    pub hazard_ids: BTreeMap<String, bool>,
}

/// Category of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Where something is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Place description, in words.
    pub text: String,
    /// GPS position, when the phone had one.
    #[serde(default)]
    pub gps: Option<GeoPoint>,
}

/// A step in a hazard's handling (报隐患 / 报隐患处置情况).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub events: Vec<Event<HazardAction>>,
}

/// What a visit was to (三查).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct Visit {
    /// What was visited.
    pub target: VisitTarget,
    /// The person, household or place visited, in words.
    pub subject: String,
    /// The household record visited, if any.
    #[serde(default)]
    pub household_id: Option<String>,
    /// When, ms since epoch.
    pub visited_at: i64,
    /// What was found.
    #[serde(default)]
    pub findings: String,
    /// Whether someone must come back.
    #[serde(default)]
    pub follow_up_needed: bool,
}

/// A person's category in the household ledger (人员类别).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonCategory {
    /// 常住人口
    Resident,
    /// 流动人口
    Floating,
    /// 重点人员
    KeyPerson,
    /// 监护对象 (e.g. 易肇事肇祸精神病人), with a named guardian.
    UnderGuardianship,
}

impl PersonCategory {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            PersonCategory::Resident => "常住人口",
            PersonCategory::Floating => "流动人口",
            PersonCategory::KeyPerson => "重点人员",
            PersonCategory::UnderGuardianship => "监护对象",
        }
    }
}

/// One member of a household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Name.
    pub name: String,
    /// Relation to the head of household (户主, 配偶, 子女...).
    #[serde(default)]
    pub relation: String,
    /// Category.
    pub category: PersonCategory,
    /// Resident ID number (18 characters), if known.
    #[serde(default)]
    pub id_number: String,
    /// Guardian's name; required for people under guardianship.
    #[serde(default)]
    pub guardian: Option<String>,
}

/// A machine, vehicle or facility in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// What it is (拖拉机, 三轮车, 水窖...).
    pub description: String,
    /// Plate, model or other identifier.
    #[serde(default)]
    pub identifier: String,
}

/// 四清: a household's base ledger (基础台账). Sensitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// Name of the head of household.
    pub head_name: String,
    /// Address.
    pub address: String,
    /// Ten-household joint defence group (十户联防), if any.
    #[serde(default)]
    pub ten_household_group: String,
    /// Members keyed by member id.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    /// Farm machinery (农机具) keyed by id.
    #[serde(default)]
    pub machinery: BTreeMap<String, Asset>,
    /// Vehicles keyed by id.
    #[serde(default)]
    pub vehicles: BTreeMap<String, Asset>,
    /// Facilities in the area (区域设施) keyed by id.
    #[serde(default)]
    pub facilities: BTreeMap<String, Asset>,
    /// Free notes.
    #[serde(default)]
    pub notes: String,
}

/// Category of a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub events: Vec<Event<DisputeAction>>,
}

/// Status of a dispute, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// When it was resolved, if it is.
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
        st
    }
}

/// Status of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// One grid's week as the village leader noted it at the weekly meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GridWeekNote {
    /// The figures computed from the grid's records when the meeting was
    /// held (see [`crate::reports::weekly_summary`]), kept as they were.
    #[serde(default)]
    pub figures: BTreeMap<String, i64>,
    /// What the grid manager reported and the leader noted.
    #[serde(default)]
    pub note: String,
}

/// 周排查: a village's weekly review meeting. Each grid manager reports the
/// week; the leader sums up, classifies new disputes, sets plans and teams
/// (those go into the disputes' own histories) and records the decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VillageMeeting {
    /// When it was held, ms since epoch.
    pub held_at: i64,
    /// Who attended (names).
    #[serde(default)]
    pub attendees: Vec<String>,
    /// Per group (grid path `t01/v03/g2`): the week's figures and notes.
    #[serde(default)]
    pub grid_summaries: BTreeMap<String, GridWeekNote>,
    /// Ids of the dispute records reviewed (a set: concurrent edits merge).
    #[serde(default)]
    pub disputes_reviewed: BTreeMap<String, bool>,
    /// What was decided.
    #[serde(default)]
    pub decisions: String,
}

/// 月研判: a township's monthly review of escalated disputes and hazards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TownshipReview {
    /// Month reviewed, `YYYY-MM`.
    pub month: String,
    /// When it was held, ms since epoch.
    #[serde(default)]
    pub held_at: Option<i64>,
    /// Who attended (names).
    #[serde(default)]
    pub attendees: Vec<String>,
    /// Ids of the dispute records reviewed.
    #[serde(default)]
    pub disputes_reviewed: BTreeMap<String, bool>,
    /// Plans and assignments decided.
    #[serde(default)]
    pub decisions: String,
}

/// 月报: a township's written monthly report to the county political-legal
/// committee. The report on month M is due before the 20th of month M+1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlyReport {
    /// Month reported on, `YYYY-MM`.
    pub month: String,
    /// Figures (counts keyed by machine names such as `patrols.morning`),
    /// usually drafted from the records by the server.
    #[serde(default)]
    pub figures: BTreeMap<String, i64>,
    /// The written report.
    #[serde(default)]
    pub narrative: String,
    /// When the township chief submitted it, ms since epoch; `None` while a draft.
    #[serde(default)]
    pub submitted_at: Option<i64>,
}

/// The kind-specific part of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBody {
    /// 一巡
    Patrol(Patrol),
    /// 二报
    Hazard(Hazard),
    /// 三查
    Visit(Visit),
    /// 四清
    Household(Household),
    /// 矛盾纠纷
    Dispute(Dispute),
    /// 周排查
    VillageMeeting(VillageMeeting),
    /// 月研判
    TownshipReview(TownshipReview),
    /// 月报
    MonthlyReport(MonthlyReport),
}

impl RecordBody {
    /// The kind of this body.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::Patrol(_) => RecordKind::Patrol,
            RecordBody::Hazard(_) => RecordKind::Hazard,
            RecordBody::Visit(_) => RecordKind::Visit,
            RecordBody::Household(_) => RecordKind::Household,
            RecordBody::Dispute(_) => RecordKind::Dispute,
            RecordBody::VillageMeeting(_) => RecordKind::VillageMeeting,
            RecordBody::TownshipReview(_) => RecordKind::TownshipReview,
            RecordBody::MonthlyReport(_) => RecordKind::MonthlyReport,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let v = match self {
            RecordBody::Patrol(b) => serde_json::to_value(b),
            RecordBody::Hazard(b) => serde_json::to_value(b),
            RecordBody::Visit(b) => serde_json::to_value(b),
            RecordBody::Household(b) => serde_json::to_value(b),
            RecordBody::Dispute(b) => serde_json::to_value(b),
            RecordBody::VillageMeeting(b) => serde_json::to_value(b),
            RecordBody::TownshipReview(b) => serde_json::to_value(b),
            RecordBody::MonthlyReport(b) => serde_json::to_value(b),
        };
        // Serializing plain structs of strings and numbers into a Value
        // cannot fail; fall back to null rather than panic.
        v.unwrap_or(Value::Null)
    }

    fn from_json(kind: RecordKind, v: Value) -> Result<Self, CoreError> {
        fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, CoreError> {
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "data".to_owned() } else { path };
                let msg = e.inner().to_string();
                // serde_json's messages are stable enough to sort into the
                // reason codes the app shows; the field names the place.
                let named = |prefix: &str| {
                    msg.strip_prefix(prefix).map(|rest| {
                        let name = clip(rest.split('`').next().unwrap_or_default(), 40);
                        let full = if field == "data" { name.clone() } else { format!("{field}.{name}") };
                        (name, full)
                    })
                };
                if let Some((name, full)) = named("unknown field `") {
                    return CoreError::invalid(full, "unknown_field", format!("记录含有未知字段“{name}”"));
                }
                if let Some((_, full)) = named("missing field `") {
                    return CoreError::invalid(full.clone(), "required", format!("缺少字段“{full}”"));
                }
                let (reason, zh) = if msg.starts_with("unknown variant") {
                    ("unknown_value", format!("字段“{field}”的取值无效"))
                } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
                    ("wrong_type", format!("字段“{field}”的类型错误"))
                } else {
                    ("malformed", format!("字段“{field}”格式错误"))
                };
                CoreError::invalid(field, reason, zh)
            })
        }
        Ok(match kind {
            RecordKind::Patrol => RecordBody::Patrol(de(v)?),
            RecordKind::Hazard => RecordBody::Hazard(de(v)?),
            RecordKind::Visit => RecordBody::Visit(de(v)?),
            RecordKind::Household => RecordBody::Household(de(v)?),
            RecordKind::Dispute => RecordBody::Dispute(de(v)?),
            RecordKind::VillageMeeting => RecordBody::VillageMeeting(de(v)?),
            RecordKind::TownshipReview => RecordBody::TownshipReview(de(v)?),
            RecordKind::MonthlyReport => RecordBody::MonthlyReport(de(v)?),
        })
    }
}

/// A record: the header every kind shares, and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Stable id.
    pub id: Uuid,
    /// Schema version of the document.
    pub schema: i64,
    /// The grid node that owns the record (a group for field records).
    pub grid: GridPath,
    /// User id of the creator.
    pub author: String,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Last changed, ms since epoch.
    pub updated_at: i64,
    /// Deletion tombstone: a deleted record keeps its document so the
    /// deletion syncs like any other change.
    pub deleted: bool,
    /// Kind-specific fields.
    pub body: RecordBody,
}

/// Index columns of a record: what lists, filters and reports read instead
/// of loading documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordIndex {
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid.
    pub grid: GridPath,
    /// Derived status machine name (`open`, `resolved`, `conflict`...).
    pub status: String,
    /// Dispute level, for disputes.
    pub level: Option<DisputeLevel>,
    /// One-line title shown in lists.
    pub title: String,
    /// Text searched by name search (households: head, members, address).
    pub search_text: String,
    /// When the thing happened (patrol start, visit time...), ms since epoch.
    pub occurred_at: i64,
    /// Whether the record holds sensitive personal information.
    pub sensitive: bool,
    /// Whether the record is deleted.
    pub deleted: bool,
    /// Whether the record has a conflict waiting to be settled.
    pub has_conflict: bool,
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn date_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| (d + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Record {
    /// A new record with a fresh id, owned by `grid`, created by `author` at `now`.
    pub fn new(grid: GridPath, author: &str, now: i64, body: RecordBody) -> Self {
        Record {
            id: Uuid::new_v4(),
            schema: SCHEMA_VERSION,
            grid,
            author: author.to_owned(),
            created_at: now,
            updated_at: now,
            deleted: false,
            body,
        }
    }

    /// Kind of the record.
    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }

    /// The record as the JSON tree stored in its document.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "kind": self.kind().as_str(),
            "schema": self.schema,
            "grid": self.grid.to_string(),
            "author": self.author,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
            "data": self.body.to_json(),
        })
    }

    /// Read a record back from its JSON tree. Strict: a key no schema
    /// knows, a value of the wrong type or a missing required field is an
    /// error naming the field, so a document written by a hostile or buggy
    /// client cannot carry data the schema does not describe.
    pub fn from_json(v: &Value) -> Result<Self, CoreError> {
        let Some(obj) = v.as_object() else {
            return Err(CoreError::invalid("record", "not_an_object", "记录格式错误"));
        };
        if let Some(k) = obj.keys().find(|k| !HEADER_KEYS.contains(&k.as_str())) {
            return Err(CoreError::invalid(k.as_str(), "unknown_field", format!("记录含有未知字段“{}”", clip(k, 40))));
        }
        let s = |k: &str| -> Result<&str, CoreError> {
            match obj.get(k) {
                Some(Value::String(s)) => Ok(s),
                None => Err(CoreError::invalid(k, "required", format!("缺少字段“{k}”"))),
                Some(_) => Err(CoreError::invalid(k, "wrong_type", format!("字段“{k}”应为文字"))),
            }
        };
        let n = |k: &str| -> Result<i64, CoreError> {
            match obj.get(k) {
                Some(x) if x.is_i64() => Ok(x.as_i64().unwrap_or_default()),
                None => Err(CoreError::invalid(k, "required", format!("缺少字段“{k}”"))),
                Some(_) => Err(CoreError::invalid(k, "wrong_type", format!("字段“{k}”应为整数"))),
            }
        };
        let id = Uuid::parse_str(s("id")?).map_err(|_| CoreError::invalid("id", "bad_uuid", "记录编号格式错误"))?;
        let kind = RecordKind::parse(s("kind")?)?;
        let deleted = match obj.get("deleted") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(CoreError::invalid("deleted", "wrong_type", "字段“deleted”应为是或否")),
        };
        let data = match obj.get("data") {
            Some(d @ Value::Object(_)) => d.clone(),
            None => return Err(CoreError::invalid("data", "required", "缺少记录内容")),
            Some(_) => return Err(CoreError::invalid("data", "wrong_type", "记录内容格式错误")),
        };
        Ok(Record {
            id,
            schema: n("schema")?,
            grid: GridPath::parse(s("grid")?)?,
            author: s("author")?.to_owned(),
            created_at: n("created_at")?,
            updated_at: n("updated_at")?,
            deleted,
            body: RecordBody::from_json(kind, data)?,
        })
    }

    /// Check every field; the error lists each bad field with a Chinese
    /// message. Every text, list and map has a stated limit (see
    /// `docs/records.md`), so no field can carry more than its purpose needs.
    pub fn validate(&self) -> Result<(), CoreError> {
        let mut errs = Vec::new();
        fn req(errs: &mut Vec<FieldError>, field: &str, value: &str, label: &str, max: usize) {
            if value.trim().is_empty() {
                errs.push(FieldError::new(field, "required", format!("请填写{label}")));
            } else if value.chars().count() > max {
                errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个字")));
            }
        }
        req(&mut errs, "author", &self.author, "记录人", 64);
        if self.schema != SCHEMA_VERSION {
            errs.push(FieldError::new("schema", "unknown_schema", format!("不支持的记录版本{}", self.schema)));
        }
        match &self.body {
            RecordBody::Patrol(p) => {
                check_long("findings", &p.findings, "巡查情况", 4000, &mut errs);
                if let Some(end) = p.ended_at
                    && end < p.started_at
                {
                    errs.push(FieldError::new("ended_at", "before_start", "结束时间不能早于开始时间"));
                }
                if p.route.len() > 2000 {
                    errs.push(FieldError::new("route", "too_long", "巡查轨迹点不能超过2000个"));
                }
                for (i, pt) in p.route.iter().enumerate() {
                    check_point(&format!("route[{i}]"), pt, &mut errs);
                }
                check_id_set("hazard_ids", &p.hazard_ids, "关联隐患", 100, &mut errs);
            }
            RecordBody::Hazard(h) => {
                req(&mut errs, "description", &h.description, "隐患描述", 2000);
                req(&mut errs, "location.text", &h.location.text, "隐患位置", 200);
                if let Some(pt) = &h.location.gps {
                    check_point("location.gps", pt, &mut errs);
                }
                check_events(&h.events, &mut errs);
            }
            RecordBody::Visit(v) => {
                req(&mut errs, "subject", &v.subject, "走访对象", 100);
                check_long("findings", &v.findings, "走访情况", 4000, &mut errs);
                if let Some(h) = &v.household_id
                    && Uuid::parse_str(h).is_err()
                {
                    errs.push(FieldError::new("household_id", "bad_uuid", "户编号格式错误"));
                }
            }
            RecordBody::Household(h) => {
                req(&mut errs, "head_name", &h.head_name, "户主姓名", 50);
                req(&mut errs, "address", &h.address, "住址", 200);
                check_long("ten_household_group", &h.ten_household_group, "十户联防组", 50, &mut errs);
                check_long("notes", &h.notes, "备注", 4000, &mut errs);
                if h.members.len() > 100 {
                    errs.push(FieldError::new("members", "too_long", "家庭成员不能超过100人"));
                }
                for (id, m) in &h.members {
                    let f = |x: &str| format!("members[{}].{x}", clip(id, 64));
                    check_key("members", id, &mut errs);
                    if m.name.trim().is_empty() {
                        errs.push(FieldError::new(f("name"), "required", "请填写成员姓名"));
                    }
                    if m.name.chars().count() > 50 {
                        errs.push(FieldError::new(f("name"), "too_long", "成员姓名不能超过50个字"));
                    }
                    check_long(&f("relation"), &m.relation, "与户主关系", 20, &mut errs);
                    if !m.id_number.is_empty() && !valid_id_number(&m.id_number) {
                        errs.push(FieldError::new(
                            f("id_number"),
                            "bad_id_number",
                            format!("{}的身份证号码无效（应为18位且校验位正确）", clip(&m.name, 50)),
                        ));
                    }
                    if let Some(g) = &m.guardian {
                        check_long(&f("guardian"), g, "监护人姓名", 50, &mut errs);
                    }
                    if m.category == PersonCategory::UnderGuardianship
                        && m.guardian.as_deref().is_none_or(|g| g.trim().is_empty())
                    {
                        errs.push(FieldError::new(
                            f("guardian"),
                            "required",
                            format!("{}是监护对象，请填写监护人", clip(&m.name, 50)),
                        ));
                    }
                }
                for (field, map) in
                    [("machinery", &h.machinery), ("vehicles", &h.vehicles), ("facilities", &h.facilities)]
                {
                    if map.len() > 100 {
                        errs.push(FieldError::new(field, "too_long", "登记项不能超过100个"));
                    }
                    for (id, a) in map {
                        check_key(field, id, &mut errs);
                        let id = clip(id, 64);
                        if a.description.trim().is_empty() {
                            errs.push(FieldError::new(format!("{field}[{id}].description"), "required", "请填写名称"));
                        }
                        check_long(&format!("{field}[{id}].description"), &a.description, "名称", 100, &mut errs);
                        check_long(&format!("{field}[{id}].identifier"), &a.identifier, "编号", 64, &mut errs);
                    }
                }
            }
            RecordBody::Dispute(d) => {
                req(&mut errs, "summary", &d.summary, "纠纷概要", 2000);
                if d.parties.iter().all(|p| p.trim().is_empty()) {
                    errs.push(FieldError::new("parties", "required", "请至少填写一方当事人"));
                }
                check_people("parties", &d.parties, "当事人", 50, &mut errs);
                check_events(&d.events, &mut errs);
            }
            RecordBody::VillageMeeting(m) => {
                check_people("attendees", &m.attendees, "参会人员", 200, &mut errs);
                check_id_set("disputes_reviewed", &m.disputes_reviewed, "审议的纠纷", 500, &mut errs);
                check_long("decisions", &m.decisions, "会议决定", 8000, &mut errs);
                if m.grid_summaries.len() > 20 {
                    errs.push(FieldError::new("grid_summaries", "too_long", "网格小结不能超过20个"));
                }
                for (g, note) in &m.grid_summaries {
                    let shown = clip(g, 40);
                    match GridPath::parse(g) {
                        Ok(p) if p.level() == GridLevel::Group && self.grid.contains(&p) => {}
                        _ => errs.push(FieldError::new(
                            format!("grid_summaries[{shown}]"),
                            "not_in_village",
                            format!("“{shown}”不是本村的网格"),
                        )),
                    }
                    check_long(&format!("grid_summaries[{shown}].note"), &note.note, "网格小结", 2000, &mut errs);
                    check_figures(&format!("grid_summaries[{shown}].figures"), &note.figures, &mut errs);
                }
            }
            RecordBody::TownshipReview(t) => {
                if parse_month(&t.month).is_none() {
                    errs.push(FieldError::new("month", "bad_month", "研判月份格式应为“YYYY-MM”"));
                }
                check_people("attendees", &t.attendees, "参会人员", 200, &mut errs);
                check_id_set("disputes_reviewed", &t.disputes_reviewed, "审议的纠纷", 500, &mut errs);
                check_long("decisions", &t.decisions, "研判意见", 8000, &mut errs);
            }
            RecordBody::MonthlyReport(r) => {
                if parse_month(&r.month).is_none() {
                    errs.push(FieldError::new("month", "bad_month", "报告月份格式应为“YYYY-MM”"));
                }
                check_long("narrative", &r.narrative, "报告正文", 20_000, &mut errs);
                check_figures("figures", &r.figures, &mut errs);
            }
        }
        let level = self.kind().grid_level();
        if level != GridLevel::Group && self.grid.level() != level {
            errs.push(FieldError::new(
                "grid",
                "wrong_level",
                format!("{}必须属于{}一级网格", self.kind().label_zh(), level.label_zh()),
            ));
        }
        if errs.is_empty() { Ok(()) } else { Err(CoreError::Invalid(errs)) }
    }

    /// Index columns for lists and reports.
    pub fn index(&self) -> RecordIndex {
        let mut ix = RecordIndex {
            kind: self.kind(),
            grid: self.grid.clone(),
            status: String::new(),
            level: None,
            title: String::new(),
            search_text: String::new(),
            occurred_at: self.created_at,
            sensitive: false,
            deleted: self.deleted,
            has_conflict: false,
        };
        match &self.body {
            RecordBody::Patrol(p) => {
                ix.status = if p.ended_at.is_some() { "done" } else { "in_progress" }.into();
                ix.title = format!("{} {}", date_of(p.started_at), p.slot.label_zh());
                ix.occurred_at = p.started_at;
            }
            RecordBody::Hazard(h) => {
                ix.status = h.status().as_str().into();
                ix.title = format!("{}：{}", h.category.label_zh(), truncate_chars(&h.description, 40));
            }
            RecordBody::Visit(v) => {
                ix.status = if v.follow_up_needed { "follow_up" } else { "done" }.into();
                ix.title = format!("{}：{}", v.target.label_zh(), truncate_chars(&v.subject, 40));
                ix.occurred_at = v.visited_at;
                ix.sensitive = v.target == VisitTarget::KeyPerson;
            }
            RecordBody::Household(h) => {
                ix.status = "active".into();
                ix.title = format!("{}户 {}", h.head_name, truncate_chars(&h.address, 40));
                let mut s = vec![h.head_name.clone(), h.address.clone()];
                s.extend(h.members.values().map(|m| m.name.clone()));
                ix.search_text = s.join(" ");
                ix.sensitive = true;
            }
            RecordBody::Dispute(d) => {
                let st = d.state();
                ix.status = st.status.as_str().into();
                ix.level = Some(st.level);
                ix.has_conflict = !st.conflicts.is_empty();
                ix.title = format!("{}：{}", st.category.label_zh(), truncate_chars(&d.summary, 40));
                ix.occurred_at = d.found_at;
            }
            RecordBody::VillageMeeting(m) => {
                ix.status = "held".into();
                ix.title = format!("{} 周排查例会", date_of(m.held_at));
                ix.occurred_at = m.held_at;
            }
            RecordBody::TownshipReview(t) => {
                ix.status = "held".into();
                ix.title = format!("{} 月研判", t.month);
                ix.occurred_at = parse_month(&t.month).map_or(self.created_at, |(start, _)| start);
            }
            RecordBody::MonthlyReport(r) => {
                ix.status = if r.submitted_at.is_some() { "submitted" } else { "draft" }.into();
                ix.title = format!("{} 月度报告", r.month);
                ix.occurred_at = parse_month(&r.month).map_or(self.created_at, |(start, _)| start);
            }
        }
        if ix.search_text.is_empty() {
            ix.search_text = ix.title.clone();
        }
        ix
    }
}

fn check_long(field: &str, value: &str, label: &str, max: usize, errs: &mut Vec<FieldError>) {
    if value.chars().count() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个字")));
    }
}

fn check_people(field: &str, people: &[String], label: &str, max: usize, errs: &mut Vec<FieldError>) {
    if people.len() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}人")));
    }
    let blank_allowed = field == "parties";
    if people.iter().any(|p| p.chars().count() > 50 || (!blank_allowed && p.trim().is_empty())) {
        errs.push(FieldError::new(field, "bad_name", format!("{label}姓名不能为空，且不超过50个字")));
    }
}

/// A set of record ids (`{id: true}`): each a UUID, at most `max`.
fn check_id_set(field: &str, ids: &BTreeMap<String, bool>, label: &str, max: usize, errs: &mut Vec<FieldError>) {
    if ids.len() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个")));
    }
    if ids.keys().any(|id| Uuid::parse_str(id).is_err()) {
        errs.push(FieldError::new(field, "bad_uuid", format!("{label}编号格式错误")));
    }
}

/// A key of a keyed collection (member id, machine id): 1 to 64 characters.
fn check_key(field: &str, key: &str, errs: &mut Vec<FieldError>) {
    if key.is_empty() || key.chars().count() > 64 {
        errs.push(FieldError::new(field, "bad_key", "登记项编号不能为空，且不超过64个字符"));
    }
}

/// Named counts: at most 200, names of 1 to 64 characters, none negative.
fn check_figures(field: &str, figures: &BTreeMap<String, i64>, errs: &mut Vec<FieldError>) {
    if figures.len() > 200 {
        errs.push(FieldError::new(field, "too_long", "统计项不能超过200个"));
    }
    if figures.keys().any(|k| k.is_empty() || k.chars().count() > 64) {
        errs.push(FieldError::new(field, "bad_key", "统计项名称不能为空，且不超过64个字符"));
    }
    if figures.values().any(|n| *n < 0) {
        errs.push(FieldError::new(field, "negative", "统计数不能为负数"));
    }
}

/// Milliseconds in an hour; Beijing time is UTC+8 all year.
const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// The start (inclusive) and end (exclusive) of a month `YYYY-MM` in
/// Beijing time, ms since epoch; `None` unless the text is a valid month
/// between 2000 and 2199.
pub fn parse_month(s: &str) -> Option<(i64, i64)> {
    let (y, m) = s.split_once('-')?;
    // ASCII digits only: `str::parse` would take "+8" for 8.
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    use chrono::Datelike;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(2000..2200).contains(&y) {
        return None;
    }
    let start = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
    let end = if m == 12 { chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)? } else { start.with_month(m + 1)? };
    Some((beijing_midnight_ms(start), beijing_midnight_ms(end)))
}

/// Midnight at the start of `day` in Beijing time, ms since epoch.
pub fn beijing_midnight_ms(day: chrono::NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis()) - BEIJING_OFFSET_MS
}

/// The calendar day (Beijing time) of an instant in ms since epoch.
pub fn beijing_day(ms: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms + BEIJING_OFFSET_MS).map(|d| d.date_naive()).unwrap_or_default()
}

fn check_point(field: &str, p: &GeoPoint, errs: &mut Vec<FieldError>) {
    if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
        errs.push(FieldError::new(field, "out_of_range", "GPS坐标超出范围"));
    }
}

fn check_events<A: Serialize>(events: &[Event<A>], errs: &mut Vec<FieldError>) {
    let mut ids = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        if !ids.insert(e.id.as_str()) {
            errs.push(FieldError::new(format!("events[{i}].id"), "duplicate", "事件编号重复"));
        }
        if Uuid::parse_str(&e.id).is_err() {
            errs.push(FieldError::new(format!("events[{i}].id"), "bad_uuid", "事件编号格式错误"));
        }
        if e.by.trim().is_empty() || e.by.chars().count() > 64 {
            errs.push(FieldError::new(format!("events[{i}].by"), "bad_user", "事件记录人不能为空，且不超过64个字符"));
        }
        if e.parents.len() > 16 {
            errs.push(FieldError::new(format!("events[{i}].parents"), "too_long", "前序事件不能超过16个"));
        }
        // Every text in an action (notes, plans, team names) is bounded.
        if let Ok(v) = serde_json::to_value(&e.action)
            && !texts_within(&v, 2000, 50)
        {
            errs.push(FieldError::new(
                format!("events[{i}].action"),
                "too_long",
                "事件内容过长（每项不超过2000字，名单不超过50人）",
            ));
        }
    }
    for (i, e) in events.iter().enumerate() {
        if e.parents.iter().any(|p| !ids.contains(p.as_str()) || p == &e.id) {
            errs.push(FieldError::new(format!("events[{i}].parents"), "unknown_parent", "事件引用了不存在的前序事件"));
        }
    }
    if events.len() > MAX_EVENTS {
        errs.push(FieldError::new("events", "too_long", format!("事件记录不能超过{MAX_EVENTS}条")));
    }
}

/// Most events in one record's history.
pub const MAX_EVENTS: usize = 1000;

/// Whether every string in `v` has at most `max_chars` characters and every
/// array at most `max_items` items.
fn texts_within(v: &Value, max_chars: usize, max_items: usize) -> bool {
    match v {
        Value::String(s) => s.chars().count() <= max_chars,
        Value::Array(a) => a.len() <= max_items && a.iter().all(|x| texts_within(x, max_chars, max_items)),
        Value::Object(m) => m.values().all(|x| texts_within(x, max_chars, max_items)),
        _ => true,
    }
}

/// Check a PRC resident ID number (GB 11643-1999): 17 digits and a check
/// character computed from them.
pub fn valid_id_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(W).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let expected = C[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == expected
}

/// A new event with a fresh id whose parents are the current heads.
pub fn next_event<A>(events: &[Event<A>], by: &str, at: i64, action: A) -> Event<A> {
    Event { id: Uuid::new_v4().to_string(), at, by: by.to_owned(), parents: crate::events::heads(events), action }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, parents: &[&str], at: i64, action: DisputeAction) -> Event<DisputeAction> {
        Event { id: id.into(), at, by: "u".into(), parents: parents.iter().map(|s| s.to_string()).collect(), action }
    }

    fn dispute(events: Vec<Event<DisputeAction>>) -> Dispute {
        Dispute {
            parties: vec!["张三".into()],
            category: DisputeCategory::Land,
            summary: "地界".into(),
            found_at: 0,
            events,
        }
    }

    #[test]
    fn status_follows_the_history() {
        let d = dispute(vec![
            ev("a", &[], 1, DisputeAction::Found { note: String::new() }),
            ev("b", &["a"], 2, DisputeAction::Classified { category: DisputeCategory::Neighbour, note: String::new() }),
            ev("c", &["b"], 3, DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() }),
        ]);
        let st = d.state();
        assert_eq!(st.status, DisputeStatus::Escalated);
        assert_eq!(st.level, DisputeLevel::Township);
        assert_eq!(st.category, DisputeCategory::Neighbour);
        assert!(st.conflicts.is_empty());
    }

    #[test]
    fn concurrent_resolve_and_escalate_is_a_conflict_until_settled() {
        let base = vec![
            ev("a", &[], 1, DisputeAction::Found { note: String::new() }),
            ev("r", &["a"], 5, DisputeAction::Resolved { note: "调解成功".into() }),
            ev("e", &["a"], 4, DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() }),
        ];
        let st = dispute(base.clone()).state();
        assert_eq!(st.status, DisputeStatus::Conflict);
        assert_eq!(st.conflicts.len(), 1);
        assert_eq!((st.conflicts[0].a.as_str(), st.conflicts[0].b.as_str()), ("e", "r"));

        let mut settled = base;
        settled.push(ev("s", &["r", "e"], 9, DisputeAction::Settled { kept: "e".into(), note: String::new() }));
        let st = dispute(settled).state();
        assert!(st.conflicts.is_empty());
        assert_eq!(st.status, DisputeStatus::Escalated);
        assert_eq!(st.level, DisputeLevel::Township);
    }

    #[test]
    fn sequential_resolve_after_escalate_is_not_a_conflict() {
        let st = dispute(vec![
            ev("a", &[], 1, DisputeAction::Found { note: String::new() }),
            ev("e", &["a"], 2, DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() }),
            ev("r", &["e"], 3, DisputeAction::Resolved { note: "乡镇调解".into() }),
        ])
        .state();
        assert_eq!(st.status, DisputeStatus::Resolved);
        assert_eq!(st.resolved_at, Some(3));
    }

    #[test]
    fn order_of_the_list_does_not_change_the_status() {
        let mut events = vec![
            ev("a", &[], 1, DisputeAction::Found { note: String::new() }),
            ev("f", &["a"], 9, DisputeAction::FollowUp { note: "x".into() }),
            ev("s", &["a"], 2, DisputeAction::Stabilized { note: String::new() }),
        ];
        let one = dispute(events.clone()).state();
        events.reverse();
        assert_eq!(dispute(events).state(), one);
    }

    #[test]
    fn months_are_four_and_two_digits() {
        assert!(parse_month("2026-08").is_some());
        for bad in ["2026-+8", "+026-08", "2026-8", "26-08", "2026-13", "2026-00", "２０２６-08", "2026-08 "] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn id_numbers_are_checked() {
        assert!(valid_id_number("11010519491231002X"));
        assert!(!valid_id_number("110105194912310021"));
        assert!(!valid_id_number("1234"));
    }

    #[test]
    fn validation_names_each_bad_field_in_chinese() {
        let mut members = BTreeMap::new();
        members.insert(
            "m1".into(),
            Member {
                name: "李四".into(),
                relation: String::new(),
                category: PersonCategory::UnderGuardianship,
                id_number: "123".into(),
                guardian: None,
            },
        );
        let r = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "u1",
            0,
            RecordBody::Household(Household {
                head_name: String::new(),
                address: "两当县".into(),
                ten_household_group: String::new(),
                members,
                machinery: BTreeMap::new(),
                vehicles: BTreeMap::new(),
                facilities: BTreeMap::new(),
                notes: String::new(),
            }),
        );
        let Err(CoreError::Invalid(errs)) = r.validate() else { panic!("should be invalid") };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["head_name", "members[m1].id_number", "members[m1].guardian"]);
        assert!(errs[2].message_zh.contains("监护人"));
    }
}
