//! The types that cross the FFI: UniFFI records and enums mirroring the
//! core's model, and the conversions both ways. No rules live here: the
//! core validates, derives status and merges; this module only copies
//! fields.
//!
//! Why copies rather than deriving UniFFI on the core's types: the core
//! keys concurrent collections with `BTreeMap` and shares one generic
//! `Event<A>`, neither of which UniFFI can express, and the core stays
//! free of any FFI dependency.

use std::collections::{BTreeMap, HashMap};

use gridsync_core::events::Event;
use gridsync_core::model as m;
use gridsync_core::store as st;

/// Kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RecordKind {
    /// 一巡: a patrol of the grid.
    Patrol,
    /// 二报: a hazard and its handling.
    Hazard,
    /// 三查: a visit.
    Visit,
    /// 四清: a household's ledger (sensitive).
    Household,
    /// 矛盾纠纷: a dispute.
    Dispute,
    /// 周排查: a village's weekly meeting.
    VillageMeeting,
    /// 月研判: a township's monthly review.
    TownshipReview,
    /// 月报: a township's monthly report.
    MonthlyReport,
}

/// A GPS point.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// Where something is.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Location {
    /// In words.
    pub text: String,
    /// GPS position, if the phone had one.
    #[uniffi(default)]
    pub gps: Option<GeoPoint>,
}

/// Time of day of a patrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PatrolSlot {
    /// 早
    Morning,
    /// 中
    Midday,
    /// 晚
    Evening,
}

/// 一巡: one walk of the grid.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Patrol {
    /// Morning, midday or evening.
    pub slot: PatrolSlot,
    /// Start, ms since the epoch.
    pub started_at: i64,
    /// End, ms since the epoch, once finished.
    #[uniffi(default)]
    pub ended_at: Option<i64>,
    /// GPS points along the way.
    #[uniffi(default)]
    pub route: Vec<GeoPoint>,
    /// What was seen.
    #[uniffi(default)]
    pub findings: String,
    /// Ids of hazard records found on this patrol.
    #[uniffi(default)]
    pub hazard_ids: Vec<String>,
}

/// Category of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

/// A step in a hazard's handling.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum HazardAction {
    /// Reported.
    Reported {
        /// Note.
        note: String,
    },
    /// A handling step.
    Step {
        /// What was done.
        note: String,
    },
    /// Removed.
    Resolved {
        /// How.
        note: String,
    },
}

/// One entry of a hazard's history.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct HazardEvent {
    /// Event id.
    pub id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// User id of who recorded it.
    pub by: String,
    /// Events its author had seen.
    pub parents: Vec<String>,
    /// What happened.
    pub action: HazardAction,
}

/// 二报: a hazard. `events` is read-only here: append with
/// `GridCore.append_hazard_event`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Hazard {
    /// Category.
    pub category: HazardCategory,
    /// Where.
    pub location: Location,
    /// What it is.
    pub description: String,
    /// Handling history (ignored on create and update).
    #[uniffi(default)]
    pub events: Vec<HazardEvent>,
}

/// What a visit was to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VisitTarget {
    /// 流动人口 / 出租房
    FloatingPopulation,
    /// 重点人群
    KeyPerson,
    /// 特殊场所
    SpecialPlace,
}

/// 三查: one visit.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Visit {
    /// What was visited.
    pub target: VisitTarget,
    /// Who or what, in words.
    pub subject: String,
    /// The household record visited, if any.
    #[uniffi(default)]
    pub household_id: Option<String>,
    /// When, ms since the epoch.
    pub visited_at: i64,
    /// What was found.
    #[uniffi(default)]
    pub findings: String,
    /// Someone must come back.
    #[uniffi(default)]
    pub follow_up_needed: bool,
}

/// A person's category in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PersonCategory {
    /// 常住人口
    Resident,
    /// 流动人口
    Floating,
    /// 重点人员
    KeyPerson,
    /// 监护对象 (needs a guardian).
    UnderGuardianship,
}

/// A household member.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Member {
    /// Name.
    pub name: String,
    /// Relation to the head of household.
    #[uniffi(default)]
    pub relation: String,
    /// Category.
    pub category: PersonCategory,
    /// Resident ID number (18 characters), if known.
    #[uniffi(default)]
    pub id_number: String,
    /// Guardian, required for people under guardianship.
    #[uniffi(default)]
    pub guardian: Option<String>,
}

/// A machine, vehicle or facility.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Asset {
    /// What it is.
    pub description: String,
    /// Plate, model or other identifier.
    #[uniffi(default)]
    pub identifier: String,
}

/// 四清: a household's ledger. Maps are keyed by entry id so concurrent
/// edits to different entries merge.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Household {
    /// Head of household.
    pub head_name: String,
    /// Address.
    pub address: String,
    /// Ten-household joint defence group.
    #[uniffi(default)]
    pub ten_household_group: String,
    /// Members by member id.
    #[uniffi(default)]
    pub members: HashMap<String, Member>,
    /// Farm machinery by id.
    #[uniffi(default)]
    pub machinery: HashMap<String, Asset>,
    /// Vehicles by id.
    #[uniffi(default)]
    pub vehicles: HashMap<String, Asset>,
    /// Facilities by id.
    #[uniffi(default)]
    pub facilities: HashMap<String, Asset>,
    /// Notes.
    #[uniffi(default)]
    pub notes: String,
}

/// Category of a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

/// Level at which a dispute is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DisputeLevel {
    /// 村
    Village,
    /// 乡镇
    Township,
    /// 县
    County,
}

/// One step in a dispute's history.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum DisputeAction {
    /// 排查发现
    Found {
        /// Note.
        note: String,
    },
    /// 甄别分类
    Classified {
        /// Category decided.
        category: DisputeCategory,
        /// Note.
        note: String,
    },
    /// 化解方案 and team set.
    PlanSet {
        /// The plan.
        plan: String,
        /// Team members.
        team: Vec<String>,
    },
    /// A follow-up.
    FollowUp {
        /// What happened.
        note: String,
    },
    /// 稳控管理
    Stabilized {
        /// Note.
        note: String,
    },
    /// 上报
    Escalated {
        /// Level it goes to.
        to: DisputeLevel,
        /// Why.
        note: String,
    },
    /// 化解
    Resolved {
        /// How.
        note: String,
    },
    /// A conflict settled by keeping one event.
    Settled {
        /// Id of the event kept.
        kept: String,
        /// Why.
        note: String,
    },
}

/// One entry of a dispute's history.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DisputeEvent {
    /// Event id.
    pub id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// User id of who recorded it.
    pub by: String,
    /// Events its author had seen.
    pub parents: Vec<String>,
    /// What happened.
    pub action: DisputeAction,
}

/// 矛盾纠纷: a dispute. `events` is read-only here: append with
/// `GridCore.append_dispute_event`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Dispute {
    /// Parties.
    pub parties: Vec<String>,
    /// Category as first recorded.
    pub category: DisputeCategory,
    /// What it is about.
    pub summary: String,
    /// When found, ms since the epoch.
    pub found_at: i64,
    /// History (ignored on create and update).
    #[uniffi(default)]
    pub events: Vec<DisputeEvent>,
}

/// One grid's week as noted at the village's weekly meeting.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GridWeekNote {
    /// Figures computed from the grid's records when the meeting was held.
    #[uniffi(default)]
    pub figures: HashMap<String, i64>,
    /// What was reported and noted.
    #[uniffi(default)]
    pub note: String,
}

/// 周排查: a village's weekly review meeting (grid is the village).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct VillageMeeting {
    /// When held, ms since the epoch.
    pub held_at: i64,
    /// Who attended.
    #[uniffi(default)]
    pub attendees: Vec<String>,
    /// Per group grid path: figures and notes.
    #[uniffi(default)]
    pub grid_summaries: HashMap<String, GridWeekNote>,
    /// Ids of the disputes reviewed.
    #[uniffi(default)]
    pub disputes_reviewed: Vec<String>,
    /// What was decided.
    #[uniffi(default)]
    pub decisions: String,
}

/// 月研判: a township's monthly review (grid is the township).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TownshipReview {
    /// Month reviewed, `YYYY-MM`.
    pub month: String,
    /// When held, ms since the epoch.
    #[uniffi(default)]
    pub held_at: Option<i64>,
    /// Who attended.
    #[uniffi(default)]
    pub attendees: Vec<String>,
    /// Ids of the disputes reviewed.
    #[uniffi(default)]
    pub disputes_reviewed: Vec<String>,
    /// Plans and assignments decided.
    #[uniffi(default)]
    pub decisions: String,
}

/// 月报: a township's monthly report to the county (grid is the township).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MonthlyReport {
    /// Month reported on, `YYYY-MM`.
    pub month: String,
    /// Figures by machine name.
    #[uniffi(default)]
    pub figures: HashMap<String, i64>,
    /// The written report.
    #[uniffi(default)]
    pub narrative: String,
    /// When submitted, ms; `None` while a draft.
    #[uniffi(default)]
    pub submitted_at: Option<i64>,
}

/// The kind-specific part of a record.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum RecordBody {
    /// 一巡
    Patrol {
        /// Fields.
        value: Patrol,
    },
    /// 二报
    Hazard {
        /// Fields.
        value: Hazard,
    },
    /// 三查
    Visit {
        /// Fields.
        value: Visit,
    },
    /// 四清
    Household {
        /// Fields.
        value: Household,
    },
    /// 矛盾纠纷
    Dispute {
        /// Fields.
        value: Dispute,
    },
    /// 周排查
    VillageMeeting {
        /// Fields.
        value: VillageMeeting,
    },
    /// 月研判
    TownshipReview {
        /// Fields.
        value: TownshipReview,
    },
    /// 月报
    MonthlyReport {
        /// Fields.
        value: MonthlyReport,
    },
}

/// A record as read from the store, with what the core derives from it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Record {
    /// Record id (UUID).
    pub id: String,
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid path (`t01/v03/g2`).
    pub grid: String,
    /// User id of the creator.
    pub author: String,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Deleted (a tombstone that syncs).
    pub deleted: bool,
    /// Derived status, machine name (`open`, `resolved`, `conflict`...).
    pub status: String,
    /// One-line title for lists.
    pub title: String,
    /// Dispute level, for disputes.
    pub level: Option<DisputeLevel>,
    /// A conflict waits for a village leader.
    pub has_conflict: bool,
    /// Fields.
    pub body: RecordBody,
}

/// A server's refusal of a record's changes.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Rejection {
    /// Machine code.
    pub code: String,
    /// For the user, in Chinese.
    pub message_zh: String,
}

/// A line of a record list.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RecordSummary {
    /// Record id.
    pub id: String,
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid.
    pub grid: String,
    /// Derived status.
    pub status: String,
    /// Dispute level, for disputes.
    pub level: Option<DisputeLevel>,
    /// Title.
    pub title: String,
    /// When it happened, ms.
    pub occurred_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// Deleted.
    pub deleted: bool,
    /// A conflict waits.
    pub has_conflict: bool,
    /// Why a server refused the last changes, if it did.
    pub rejection: Option<Rejection>,
}

/// What to list. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct ListFilter {
    /// Only this kind.
    #[uniffi(default)]
    pub kind: Option<RecordKind>,
    /// Only this status.
    #[uniffi(default)]
    pub status: Option<String>,
    /// Only at or below this grid path.
    #[uniffi(default)]
    pub grid: Option<String>,
    /// Occurred at or after, ms.
    #[uniffi(default)]
    pub from_ms: Option<i64>,
    /// Occurred before, ms.
    #[uniffi(default)]
    pub until_ms: Option<i64>,
    /// Name or title search.
    #[uniffi(default)]
    pub search: Option<String>,
    /// Include deleted records.
    #[uniffi(default)]
    pub include_deleted: bool,
    /// Page size (default 100, at most 10,000).
    #[uniffi(default)]
    pub limit: Option<u32>,
    /// Rows to skip.
    #[uniffi(default)]
    pub offset: Option<u32>,
}

/// Who this phone is enrolled as (the token stays inside).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EnrollmentInfo {
    /// Server base URL.
    pub server_url: String,
    /// Device id given by the server.
    pub device_id: String,
    /// User id.
    pub user_id: String,
    /// User's name.
    pub display_name: String,
    /// Role machine name.
    pub role: String,
    /// Grid path.
    pub grid: String,
}

/// A record the server refused during a sync.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RejectedRecord {
    /// Record id.
    pub id: String,
    /// Machine code.
    pub code: String,
    /// For the user, in Chinese.
    pub message_zh: String,
}

/// What a sync has done so far (progress) or did (result).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncStats {
    /// Records whose changes the server acknowledged.
    pub records_sent: u64,
    /// Changes acknowledged.
    pub changes_sent: u64,
    /// Records received.
    pub records_received: u64,
    /// Changes received.
    pub changes_received: u64,
    /// Records refused, with reasons.
    pub rejected: Vec<RejectedRecord>,
    /// Ids of records received that could not be applied and were set
    /// aside (kept, retried, reported to the server); the sync went on.
    pub set_aside: Vec<String>,
    /// Request bytes.
    pub bytes_up: u64,
    /// Response bytes.
    pub bytes_down: u64,
    /// Requests made, retries included.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// Wall time, ms (0 in progress reports).
    pub duration_ms: u64,
}

/// What repairing a record did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RepairStats {
    /// Refused steps dropped.
    pub dropped: u64,
    /// Later steps of this phone's applied again, to be synced.
    pub replayed: u64,
    /// Later steps that could not be applied again.
    pub skipped: u64,
    /// The record's creation was refused, so it was removed from the phone.
    pub removed: bool,
}

/// What importing a bundle did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ImportStats {
    /// Records touched.
    pub records: u64,
    /// Changes read.
    pub changes: u64,
}

// ---- conversions -------------------------------------------------------

macro_rules! mirror_enum {
    ($ffi:ident <=> $core:path { $($v:ident),* $(,)? }) => {
        impl From<$ffi> for $core {
            fn from(v: $ffi) -> Self {
                use $core as C;
                match v { $($ffi::$v => C::$v),* }
            }
        }
        impl From<$core> for $ffi {
            fn from(v: $core) -> Self {
                use $core as C;
                match v { $(C::$v => $ffi::$v),* }
            }
        }
    };
}

mirror_enum!(RecordKind <=> m::RecordKind {
    Patrol, Hazard, Visit, Household, Dispute, VillageMeeting, TownshipReview, MonthlyReport
});
mirror_enum!(PatrolSlot <=> m::PatrolSlot { Morning, Midday, Evening });
mirror_enum!(HazardCategory <=> m::HazardCategory {
    Fire, Traffic, Geological, Flood, Building, Production, PublicOrder, Other
});
mirror_enum!(VisitTarget <=> m::VisitTarget { FloatingPopulation, KeyPerson, SpecialPlace });
mirror_enum!(PersonCategory <=> m::PersonCategory { Resident, Floating, KeyPerson, UnderGuardianship });
mirror_enum!(DisputeCategory <=> m::DisputeCategory { Neighbour, Family, Land, Debt, Labour, Other });
mirror_enum!(DisputeLevel <=> m::DisputeLevel { Village, Township, County });

impl From<GeoPoint> for m::GeoPoint {
    fn from(p: GeoPoint) -> Self {
        m::GeoPoint { lat: p.lat, lon: p.lon }
    }
}
impl From<m::GeoPoint> for GeoPoint {
    fn from(p: m::GeoPoint) -> Self {
        GeoPoint { lat: p.lat, lon: p.lon }
    }
}

impl From<Location> for m::Location {
    fn from(l: Location) -> Self {
        m::Location { text: l.text, gps: l.gps.map(Into::into) }
    }
}
impl From<m::Location> for Location {
    fn from(l: m::Location) -> Self {
        Location { text: l.text, gps: l.gps.map(Into::into) }
    }
}

impl From<HazardAction> for m::HazardAction {
    fn from(a: HazardAction) -> Self {
        match a {
            HazardAction::Reported { note } => m::HazardAction::Reported { note },
            HazardAction::Step { note } => m::HazardAction::Step { note },
            HazardAction::Resolved { note } => m::HazardAction::Resolved { note },
        }
    }
}
impl From<m::HazardAction> for HazardAction {
    fn from(a: m::HazardAction) -> Self {
        match a {
            m::HazardAction::Reported { note } => HazardAction::Reported { note },
            m::HazardAction::Step { note } => HazardAction::Step { note },
            m::HazardAction::Resolved { note } => HazardAction::Resolved { note },
        }
    }
}

impl From<DisputeAction> for m::DisputeAction {
    fn from(a: DisputeAction) -> Self {
        use m::DisputeAction as C;
        match a {
            DisputeAction::Found { note } => C::Found { note },
            DisputeAction::Classified { category, note } => C::Classified { category: category.into(), note },
            DisputeAction::PlanSet { plan, team } => C::PlanSet { plan, team },
            DisputeAction::FollowUp { note } => C::FollowUp { note },
            DisputeAction::Stabilized { note } => C::Stabilized { note },
            DisputeAction::Escalated { to, note } => C::Escalated { to: to.into(), note },
            DisputeAction::Resolved { note } => C::Resolved { note },
            DisputeAction::Settled { kept, note } => C::Settled { kept, note },
        }
    }
}
impl From<m::DisputeAction> for DisputeAction {
    fn from(a: m::DisputeAction) -> Self {
        use m::DisputeAction as C;
        match a {
            C::Found { note } => DisputeAction::Found { note },
            C::Classified { category, note } => DisputeAction::Classified { category: category.into(), note },
            C::PlanSet { plan, team } => DisputeAction::PlanSet { plan, team },
            C::FollowUp { note } => DisputeAction::FollowUp { note },
            C::Stabilized { note } => DisputeAction::Stabilized { note },
            C::Escalated { to, note } => DisputeAction::Escalated { to: to.into(), note },
            C::Resolved { note } => DisputeAction::Resolved { note },
            C::Settled { kept, note } => DisputeAction::Settled { kept, note },
        }
    }
}

fn map_assets(m: HashMap<String, Asset>) -> BTreeMap<String, m::Asset> {
    m.into_iter().map(|(k, a)| (k, m::Asset { description: a.description, identifier: a.identifier })).collect()
}

fn unmap_assets(m: BTreeMap<String, m::Asset>) -> HashMap<String, Asset> {
    m.into_iter().map(|(k, a)| (k, Asset { description: a.description, identifier: a.identifier })).collect()
}

impl RecordBody {
    /// The core body. History lists are left empty: they change only by
    /// appending events through the core.
    pub(crate) fn into_core(self) -> m::RecordBody {
        match self {
            RecordBody::Patrol { value: p } => m::RecordBody::Patrol(m::Patrol {
                slot: p.slot.into(),
                started_at: p.started_at,
                ended_at: p.ended_at,
                route: p.route.into_iter().map(Into::into).collect(),
                findings: p.findings,
                hazard_ids: set_of(p.hazard_ids),
            }),
            RecordBody::Hazard { value: h } => m::RecordBody::Hazard(m::Hazard {
                category: h.category.into(),
                location: h.location.into(),
                description: h.description,
                events: Vec::new(),
            }),
            RecordBody::Visit { value: v } => m::RecordBody::Visit(m::Visit {
                target: v.target.into(),
                subject: v.subject,
                household_id: v.household_id,
                visited_at: v.visited_at,
                findings: v.findings,
                follow_up_needed: v.follow_up_needed,
            }),
            RecordBody::Household { value: h } => m::RecordBody::Household(m::Household {
                head_name: h.head_name,
                address: h.address,
                ten_household_group: h.ten_household_group,
                members: h
                    .members
                    .into_iter()
                    .map(|(k, p)| {
                        (
                            k,
                            m::Member {
                                name: p.name,
                                relation: p.relation,
                                category: p.category.into(),
                                id_number: p.id_number,
                                guardian: p.guardian,
                            },
                        )
                    })
                    .collect(),
                machinery: map_assets(h.machinery),
                vehicles: map_assets(h.vehicles),
                facilities: map_assets(h.facilities),
                notes: h.notes,
            }),
            RecordBody::Dispute { value: d } => m::RecordBody::Dispute(m::Dispute {
                parties: d.parties,
                category: d.category.into(),
                summary: d.summary,
                found_at: d.found_at,
                events: Vec::new(),
            }),
            RecordBody::VillageMeeting { value: v } => m::RecordBody::VillageMeeting(m::VillageMeeting {
                held_at: v.held_at,
                attendees: v.attendees,
                grid_summaries: v
                    .grid_summaries
                    .into_iter()
                    .map(|(k, n)| (k, m::GridWeekNote { figures: n.figures.into_iter().collect(), note: n.note }))
                    .collect(),
                disputes_reviewed: set_of(v.disputes_reviewed),
                decisions: v.decisions,
            }),
            RecordBody::TownshipReview { value: t } => m::RecordBody::TownshipReview(m::TownshipReview {
                month: t.month,
                held_at: t.held_at,
                attendees: t.attendees,
                disputes_reviewed: set_of(t.disputes_reviewed),
                decisions: t.decisions,
            }),
            RecordBody::MonthlyReport { value: r } => m::RecordBody::MonthlyReport(m::MonthlyReport {
                month: r.month,
                figures: r.figures.into_iter().collect(),
                narrative: r.narrative,
                submitted_at: r.submitted_at,
            }),
        }
    }
}

/// A list of ids as the core's merge-friendly set.
fn set_of(ids: Vec<String>) -> BTreeMap<String, bool> {
    ids.into_iter().map(|id| (id, true)).collect()
}

/// The ids a merge-friendly set holds.
fn ids_of(set: BTreeMap<String, bool>) -> Vec<String> {
    set.into_iter().filter(|(_, on)| *on).map(|(id, _)| id).collect()
}

fn hazard_event(e: Event<m::HazardAction>) -> HazardEvent {
    HazardEvent { id: e.id, at: e.at, by: e.by, parents: e.parents, action: e.action.into() }
}

fn dispute_event(e: Event<m::DisputeAction>) -> DisputeEvent {
    DisputeEvent { id: e.id, at: e.at, by: e.by, parents: e.parents, action: e.action.into() }
}

impl From<m::RecordBody> for RecordBody {
    fn from(b: m::RecordBody) -> Self {
        match b {
            m::RecordBody::Patrol(p) => RecordBody::Patrol {
                value: Patrol {
                    slot: p.slot.into(),
                    started_at: p.started_at,
                    ended_at: p.ended_at,
                    route: p.route.into_iter().map(Into::into).collect(),
                    findings: p.findings,
                    hazard_ids: ids_of(p.hazard_ids),
                },
            },
            m::RecordBody::Hazard(h) => RecordBody::Hazard {
                value: Hazard {
                    category: h.category.into(),
                    location: h.location.into(),
                    description: h.description,
                    events: h.events.into_iter().map(hazard_event).collect(),
                },
            },
            m::RecordBody::Visit(v) => RecordBody::Visit {
                value: Visit {
                    target: v.target.into(),
                    subject: v.subject,
                    household_id: v.household_id,
                    visited_at: v.visited_at,
                    findings: v.findings,
                    follow_up_needed: v.follow_up_needed,
                },
            },
            m::RecordBody::Household(h) => RecordBody::Household {
                value: Household {
                    head_name: h.head_name,
                    address: h.address,
                    ten_household_group: h.ten_household_group,
                    members: h
                        .members
                        .into_iter()
                        .map(|(k, p)| {
                            (
                                k,
                                Member {
                                    name: p.name,
                                    relation: p.relation,
                                    category: p.category.into(),
                                    id_number: p.id_number,
                                    guardian: p.guardian,
                                },
                            )
                        })
                        .collect(),
                    machinery: unmap_assets(h.machinery),
                    vehicles: unmap_assets(h.vehicles),
                    facilities: unmap_assets(h.facilities),
                    notes: h.notes,
                },
            },
            m::RecordBody::Dispute(d) => RecordBody::Dispute {
                value: Dispute {
                    parties: d.parties,
                    category: d.category.into(),
                    summary: d.summary,
                    found_at: d.found_at,
                    events: d.events.into_iter().map(dispute_event).collect(),
                },
            },
            m::RecordBody::VillageMeeting(v) => RecordBody::VillageMeeting {
                value: VillageMeeting {
                    held_at: v.held_at,
                    attendees: v.attendees,
                    grid_summaries: v
                        .grid_summaries
                        .into_iter()
                        .map(|(k, n)| (k, GridWeekNote { figures: n.figures.into_iter().collect(), note: n.note }))
                        .collect(),
                    disputes_reviewed: ids_of(v.disputes_reviewed),
                    decisions: v.decisions,
                },
            },
            m::RecordBody::TownshipReview(t) => RecordBody::TownshipReview {
                value: TownshipReview {
                    month: t.month,
                    held_at: t.held_at,
                    attendees: t.attendees,
                    disputes_reviewed: ids_of(t.disputes_reviewed),
                    decisions: t.decisions,
                },
            },
            m::RecordBody::MonthlyReport(r) => RecordBody::MonthlyReport {
                value: MonthlyReport {
                    month: r.month,
                    figures: r.figures.into_iter().collect(),
                    narrative: r.narrative,
                    submitted_at: r.submitted_at,
                },
            },
        }
    }
}

impl From<m::Record> for Record {
    fn from(r: m::Record) -> Self {
        let ix = r.index();
        Record {
            id: r.id.to_string(),
            kind: r.kind().into(),
            grid: r.grid.to_string(),
            author: r.author,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted: r.deleted,
            status: ix.status,
            title: ix.title,
            level: ix.level.map(Into::into),
            has_conflict: ix.has_conflict,
            body: r.body.into(),
        }
    }
}

impl From<st::Rejection> for Rejection {
    fn from(r: st::Rejection) -> Self {
        Rejection { code: r.code, message_zh: r.message_zh }
    }
}

impl From<st::RecordSummary> for RecordSummary {
    fn from(s: st::RecordSummary) -> Self {
        RecordSummary {
            id: s.id.to_string(),
            kind: s.kind.into(),
            grid: s.grid.to_string(),
            status: s.status,
            level: s.level.map(Into::into),
            title: s.title,
            occurred_at: s.occurred_at,
            updated_at: s.updated_at,
            deleted: s.deleted,
            has_conflict: s.has_conflict,
            rejection: s.rejection.map(Into::into),
        }
    }
}

impl From<gridsync_core::transport::Enrollment> for EnrollmentInfo {
    fn from(e: gridsync_core::transport::Enrollment) -> Self {
        EnrollmentInfo {
            server_url: e.server_url,
            device_id: e.device_id,
            user_id: e.user_id,
            display_name: e.display_name,
            role: e.role,
            grid: e.grid,
        }
    }
}

impl From<&gridsync_core::sync::SyncReport> for SyncStats {
    fn from(r: &gridsync_core::sync::SyncReport) -> Self {
        SyncStats {
            records_sent: r.records_sent,
            changes_sent: r.changes_sent,
            records_received: r.records_received,
            changes_received: r.changes_received,
            rejected: r
                .rejected
                .iter()
                .map(|(id, rej)| RejectedRecord {
                    id: id.to_string(),
                    code: rej.code.clone(),
                    message_zh: rej.message_zh.clone(),
                })
                .collect(),
            set_aside: r.set_aside.iter().map(|(id, _)| id.to_string()).collect(),
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
            requests: r.requests,
            retries: r.retries,
            duration_ms: r.duration_ms,
        }
    }
}

impl From<gridsync_core::store::RepairReport> for RepairStats {
    fn from(r: gridsync_core::store::RepairReport) -> Self {
        RepairStats { dropped: r.dropped, replayed: r.replayed, skipped: r.skipped, removed: r.removed }
    }
}

impl From<gridsync_core::transport::bundle::ImportReport> for ImportStats {
    fn from(r: gridsync_core::transport::bundle::ImportReport) -> Self {
        ImportStats { records: r.records, changes: r.changes }
    }
}
