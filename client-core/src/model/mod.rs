//! Record kinds, their fields, validation, Chinese labels and derived status.
//!
//! A [`Record`] is the typed view of one record document: a header every
//! kind shares and a [`RecordBody`] per kind. Collections that several
//! people edit at once are keyed by id (household members, machinery) so
//! that concurrent edits to different entries merge; histories are
//! append-only [`Event`] lists (see [`crate::events`]).

//!
//! # Layout
//!
//! - this file: the header every kind shares ([`Record`]), the kinds
//!   ([`RecordKind`], [`RecordBody`]), index columns, and the calendar.
//! - `patrol`, `hazard`, `visit`, `household`, `dispute`, `supervision`:
//!   one kind each (its fields, labels, checks, index), re-exported here.
//! - `validate`: the field checks shared by every kind.
//! - `ffi` (feature `uniffi`): how the collection types below cross to
//!   Kotlin and Swift.

mod attachment;
mod dispute;
#[cfg(feature = "uniffi")]
mod ffi;
mod hazard;
mod household;
mod limits;
mod patrol;
mod supervision;
mod validate;
mod visit;

pub use attachment::*;
pub use dispute::*;
pub use hazard::*;
pub use household::*;
pub use limits::{MAX_ASSETS, MAX_MEMBERS, MAX_NOTES_PER_AUTHOR};
pub use patrol::*;
pub use supervision::*;
pub use validate::valid_id_number;
pub use visit::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{CoreError, FieldError};
use crate::events::Event;
use crate::grid::{GridLevel, GridPath};

use validate::{clip, req};

/// A set of ids (a patrol's hazards, the disputes a meeting reviewed): the
/// keys of a map, so that two people adding different ids at once both
/// keep theirs. Apps see a list of ids.
pub type IdSet = BTreeMap<String, bool>;
/// Figures by machine name (`patrols.morning`, `hazards.open`...).
pub type Figures = BTreeMap<String, i64>;
/// A household's members by member id.
pub type Members = BTreeMap<String, Member>;
/// A household's machinery, vehicles or facilities by entry id.
pub type Assets = BTreeMap<String, Asset>;
/// A weekly meeting's notes by group grid path.
pub type GridNotes = BTreeMap<String, GridWeekNote>;
/// One step of a hazard's handling history.
pub type HazardEvent = Event<HazardAction>;
/// One step of a dispute's history.
pub type DisputeEvent = Event<DisputeAction>;

/// Schema version written into every new record document.
pub const SCHEMA_VERSION: i64 = 1;

/// The keys of a record document's root map; any other key is refused.
const HEADER_KEYS: [&str; 10] =
    ["id", "kind", "schema", "grid", "author", "created_at", "updated_at", "deleted", "data", "attachments"];

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
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

/// A record's derived status, every kind's in one enum (the index column
/// keeps its machine name, [`RecordStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// A patrol not finished yet; a dispute being worked on.
    InProgress,
    /// A patrol finished; a visit with nothing left to do.
    Done,
    /// A visit someone must come back to.
    FollowUp,
    /// A hazard waiting to be handled.
    Open,
    /// A hazard being handled.
    Handling,
    /// A hazard removed; a dispute resolved.
    Resolved,
    /// A household ledger in use.
    Active,
    /// A dispute recorded, not screened yet.
    Registered,
    /// A dispute screened and classified.
    Classified,
    /// A dispute under watch.
    Stabilized,
    /// A dispute escalated to a higher level.
    Escalated,
    /// A dispute whose history holds a conflict to settle.
    Conflict,
    /// A meeting or review held.
    Held,
    /// A monthly report not submitted yet.
    Draft,
    /// A monthly report submitted (final).
    Submitted,
    /// A monthly report the county sent back for correction.
    Returned,
}

impl RecordStatus {
    /// Every status.
    pub const ALL: [RecordStatus; 16] = [
        RecordStatus::InProgress,
        RecordStatus::Done,
        RecordStatus::FollowUp,
        RecordStatus::Open,
        RecordStatus::Handling,
        RecordStatus::Resolved,
        RecordStatus::Active,
        RecordStatus::Registered,
        RecordStatus::Classified,
        RecordStatus::Stabilized,
        RecordStatus::Escalated,
        RecordStatus::Conflict,
        RecordStatus::Held,
        RecordStatus::Draft,
        RecordStatus::Submitted,
        RecordStatus::Returned,
    ];

    /// Stable machine name (the index column's value).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::InProgress => "in_progress",
            RecordStatus::Done => "done",
            RecordStatus::FollowUp => "follow_up",
            RecordStatus::Open => "open",
            RecordStatus::Handling => "handling",
            RecordStatus::Resolved => "resolved",
            RecordStatus::Active => "active",
            RecordStatus::Registered => "registered",
            RecordStatus::Classified => "classified",
            RecordStatus::Stabilized => "stabilized",
            RecordStatus::Escalated => "escalated",
            RecordStatus::Conflict => "conflict",
            RecordStatus::Held => "held",
            RecordStatus::Draft => "draft",
            RecordStatus::Submitted => "submitted",
            RecordStatus::Returned => "returned",
        }
    }

    /// The status of a machine name, if it is one.
    pub fn parse(s: &str) -> Option<RecordStatus> {
        RecordStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Chinese label, as a record of `kind` says it (a resolved hazard is
    /// 已消除, a resolved dispute 已化解).
    pub fn label_zh(self, kind: RecordKind) -> &'static str {
        match (self, kind) {
            (RecordStatus::InProgress, RecordKind::Patrol) => "巡查中",
            (RecordStatus::InProgress, _) => DisputeStatus::InProgress.label_zh(),
            (RecordStatus::Done, RecordKind::Patrol) => "已完成",
            (RecordStatus::Done, _) => "已走访",
            (RecordStatus::FollowUp, _) => "待回访",
            (RecordStatus::Open, _) => HazardStatus::Open.label_zh(),
            (RecordStatus::Handling, _) => HazardStatus::Handling.label_zh(),
            (RecordStatus::Resolved, RecordKind::Hazard) => HazardStatus::Resolved.label_zh(),
            (RecordStatus::Resolved, _) => DisputeStatus::Resolved.label_zh(),
            (RecordStatus::Active, _) => "在册",
            (RecordStatus::Registered, _) => DisputeStatus::Registered.label_zh(),
            (RecordStatus::Classified, _) => DisputeStatus::Classified.label_zh(),
            (RecordStatus::Stabilized, _) => DisputeStatus::Stabilized.label_zh(),
            (RecordStatus::Escalated, _) => DisputeStatus::Escalated.label_zh(),
            (RecordStatus::Conflict, _) => DisputeStatus::Conflict.label_zh(),
            (RecordStatus::Held, _) => "已召开",
            (RecordStatus::Draft, _) => "草稿",
            (RecordStatus::Submitted, _) => "已提交",
            (RecordStatus::Returned, _) => "已退回",
        }
    }
}

/// A point from the phone's GPS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Where something is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Place description, in words.
    pub text: String,
    /// GPS position, when the phone had one.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub gps: Option<GeoPoint>,
}

/// The kind-specific part of a record.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
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
    /// Photos the record references (hazards, visits, disputes).
    pub attachments: Attachments,
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
            attachments: Attachments::new(),
        }
    }

    /// The ids of the record's history events (hazards and disputes).
    pub fn event_ids(&self) -> Vec<String> {
        self.event_authors().into_iter().map(|(id, _)| id).collect()
    }

    /// The record's history events (hazards and disputes) as (id, who recorded it).
    pub fn event_authors(&self) -> Vec<(String, String)> {
        match &self.body {
            RecordBody::Hazard(h) => h.events.iter().map(|e| (e.id.clone(), e.by.clone())).collect(),
            RecordBody::Dispute(d) => d.events.iter().map(|e| (e.id.clone(), e.by.clone())).collect(),
            _ => Vec::new(),
        }
    }

    /// Kind of the record.
    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }

    /// The record as the JSON tree stored in its document.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "kind": self.kind().as_str(),
            "schema": self.schema,
            "grid": self.grid.to_string(),
            "author": self.author,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
            "data": self.body.to_json(),
        });
        // Only records with photos have the key, so a record without any
        // reads the same to a core that predates photos.
        if !self.attachments.is_empty()
            && let (Value::Object(o), Ok(a)) = (&mut v, serde_json::to_value(&self.attachments))
        {
            o.insert("attachments".into(), a);
        }
        v
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
        let attachments = match obj.get("attachments") {
            None => Attachments::new(),
            Some(a) => serde_path_to_error::deserialize(a.clone()).map_err(|e| {
                let field = format!("attachments.{}", e.path());
                CoreError::invalid(field, "malformed", "照片信息格式错误")
            })?,
        };
        Ok(Record {
            id,
            attachments,
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
    /// Judged as a new record: every count is added by it.
    pub fn validate(&self) -> Result<(), CoreError> {
        self.validate_step(None)
    }

    /// Check the record a step makes from `before` (the record as its
    /// writer had it; `None` for a new record): only what the step brings
    /// is refused. A problem `before` already had is not the step's (two
    /// steps taken at once, each valid, can merge into a record no one of
    /// them made), and a count is refused only on a step that adds to it
    /// past its limit ([`limits`]), so no merged record refuses the steps
    /// that close, escalate, settle or delete it.
    pub fn validate_step(&self, before: Option<&Record>) -> Result<(), CoreError> {
        let mut errs = self.field_errors();
        if let Some(b) = before {
            let had = b.field_errors();
            errs.retain(|e| !had.contains(e));
        }
        errs.extend(limits::added_past_limits(before, self));
        if errs.is_empty() { Ok(()) } else { Err(CoreError::Invalid(errs)) }
    }

    /// Every field's problems, counts apart.
    fn field_errors(&self) -> Vec<crate::error::FieldError> {
        let mut errs = Vec::new();
        req(&mut errs, "author", &self.author, "记录人", 64);
        if self.schema != SCHEMA_VERSION {
            errs.push(FieldError::new("schema", "unknown_schema", format!("不支持的记录版本{}", self.schema)));
        }
        match &self.body {
            RecordBody::Patrol(b) => b.check(&self.grid, &mut errs),
            RecordBody::Hazard(b) => b.check(&self.grid, &mut errs),
            RecordBody::Visit(b) => b.check(&self.grid, &mut errs),
            RecordBody::Household(b) => b.check(&self.grid, &mut errs),
            RecordBody::Dispute(b) => b.check(&self.grid, &mut errs),
            RecordBody::VillageMeeting(b) => b.check(&self.grid, &mut errs),
            RecordBody::TownshipReview(b) => b.check(&self.grid, &mut errs),
            RecordBody::MonthlyReport(b) => b.check(&self.grid, &mut errs),
        }
        attachment::check(self.kind(), &self.attachments, &self.event_ids(), &mut errs);
        let level = self.kind().grid_level();
        if level != GridLevel::Group && self.grid.level() != level {
            errs.push(FieldError::new(
                "grid",
                "wrong_level",
                format!("{}必须属于{}一级网格", self.kind().label_zh(), level.label_zh()),
            ));
        }
        errs
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
            RecordBody::Patrol(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::Hazard(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::Visit(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::Household(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::Dispute(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::VillageMeeting(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::TownshipReview(b) => b.index_into(&mut ix, self.created_at),
            RecordBody::MonthlyReport(b) => b.index_into(&mut ix, self.created_at),
        }
        if ix.search_text.is_empty() {
            ix.search_text = ix.title.clone();
        }
        ix
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

/// A new event with a fresh id whose parents are the current heads.
pub fn next_event<A>(events: &[Event<A>], by: &str, at: i64, action: A) -> Event<A> {
    Event { id: Uuid::new_v4().to_string(), at, by: by.to_owned(), parents: crate::events::heads(events), action }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
