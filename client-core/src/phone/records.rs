//! Creating, editing and reading records.
//!
//! What an app sends ([`RecordInput`]) has no histories: a hazard's or a
//! dispute's history only grows by the append methods, so an edit made
//! from a stale copy cannot drop or rewrite a step. What an app reads
//! ([`RecordView`]) has the history, and everything derived from it.

use super::*;
use crate::events::Event;
use crate::model::{
    self as m, DisputeAction, DisputeCategory, DisputeLevel, HazardAction, HazardCategory, Location, Record,
    RecordBody, RecordKind, RecordStatus,
};
use crate::rules::Writer;
use crate::store::{RecordSummary, Rejection, RepairReport};

/// A step of this phone's the server refused, kept aside when its record
/// was repaired, for the user to see (and carry over by hand if it still
/// matters) until they dismiss it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RefusedStepView {
    /// The record.
    pub record_id: String,
    /// The refused change's hash, hex.
    pub hash: String,
    /// The record's title, if it is still on the phone.
    pub title: String,
    /// The server's reason code (`too_large`, `invalid`, `forbidden`...).
    pub code: String,
    /// Why, in Chinese.
    pub message_zh: String,
    /// When it was refused (ms).
    pub refused_at: i64,
    /// The record before the step (none for its creation), as JSON.
    pub before_json: Option<String>,
    /// The record the step made, as JSON.
    pub after_json: String,
}

/// Relay bundles a phone carries for other devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RelayBacklog {
    /// Bundles not yet handed to the server.
    pub bundles: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A hazard's fields an app fills in (its history grows by
/// `append_hazard_event`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct HazardFields {
    /// What kind of hazard.
    pub category: HazardCategory,
    /// Where.
    pub location: Location,
    /// What it is.
    pub description: String,
}

/// A dispute's fields an app fills in (its history grows by
/// `append_dispute_event`; its category changes by classifying it).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DisputeFields {
    /// The parties.
    pub parties: Vec<String>,
    /// Category as first recorded.
    pub category: DisputeCategory,
    /// What it is about.
    pub summary: String,
    /// When found, ms since the epoch.
    pub found_at: i64,
}

/// A record's fields as an app sends them to create or edit it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum RecordInput {
    /// 一巡
    Patrol(m::Patrol),
    /// 二报
    Hazard(HazardFields),
    /// 三查
    Visit(m::Visit),
    /// 四清
    Household(m::Household),
    /// 矛盾纠纷
    Dispute(DisputeFields),
    /// 周排查
    VillageMeeting(m::VillageMeeting),
    /// 月研判
    TownshipReview(m::TownshipReview),
    /// 月报
    MonthlyReport(m::MonthlyReport),
}

impl RecordInput {
    /// The kind of record this input makes.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordInput::Patrol(_) => RecordKind::Patrol,
            RecordInput::Hazard(_) => RecordKind::Hazard,
            RecordInput::Visit(_) => RecordKind::Visit,
            RecordInput::Household(_) => RecordKind::Household,
            RecordInput::Dispute(_) => RecordKind::Dispute,
            RecordInput::VillageMeeting(_) => RecordKind::VillageMeeting,
            RecordInput::TownshipReview(_) => RecordKind::TownshipReview,
            RecordInput::MonthlyReport(_) => RecordKind::MonthlyReport,
        }
    }

    /// The body with these fields and `old`'s history (none for a new
    /// record). The kinds must match (checked by the caller).
    fn into_body(self, old: Option<&RecordBody>) -> RecordBody {
        match self {
            RecordInput::Patrol(p) => RecordBody::Patrol(p),
            RecordInput::Hazard(h) => RecordBody::Hazard(m::Hazard {
                category: h.category,
                location: h.location,
                description: h.description,
                events: match old {
                    Some(RecordBody::Hazard(o)) => o.events.clone(),
                    _ => Vec::new(),
                },
            }),
            RecordInput::Visit(v) => RecordBody::Visit(v),
            RecordInput::Household(h) => RecordBody::Household(h),
            RecordInput::Dispute(d) => RecordBody::Dispute(m::Dispute {
                parties: d.parties,
                category: d.category,
                summary: d.summary,
                found_at: d.found_at,
                events: match old {
                    Some(RecordBody::Dispute(o)) => o.events.clone(),
                    _ => Vec::new(),
                },
            }),
            RecordInput::VillageMeeting(v) => RecordBody::VillageMeeting(v),
            RecordInput::TownshipReview(t) => RecordBody::TownshipReview(t),
            RecordInput::MonthlyReport(r) => RecordBody::MonthlyReport(r),
        }
    }
}

/// A record as an app shows it: its fields and history, and everything the
/// core derives from them, with names and Chinese labels.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(feature = "uniffi", uniffi(name = "Record"))]
pub struct RecordView {
    /// Record id (UUID).
    pub id: String,
    /// Kind.
    pub kind: RecordKind,
    /// The kind's Chinese label (`隐患`).
    pub kind_label_zh: String,
    /// Owning grid path (`t01/v03/g2`).
    pub grid: String,
    /// The grid's name, when the directory has it.
    pub grid_name: Option<String>,
    /// User id of the creator.
    pub author: String,
    /// The creator's name, when the directory has it.
    pub author_name: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Deleted (a tombstone that syncs).
    pub deleted: bool,
    /// Derived status.
    pub status: RecordStatus,
    /// The status's Chinese label.
    pub status_label_zh: String,
    /// One-line title for lists.
    pub title: String,
    /// Dispute level, for disputes.
    pub level: Option<DisputeLevel>,
    /// A conflict waits to be settled.
    pub has_conflict: bool,
    /// Why a server refused this phone's latest changes, if it did
    /// (`repair_record` drops the refused steps).
    pub rejection: Option<Rejection>,
    /// Fields, with the history as stored.
    pub body: RecordBody,
    /// The history in the order it is folded, each step labelled, with
    /// overruled steps marked (hazards and disputes; empty otherwise).
    pub timeline: Vec<TimelineEntry>,
    /// Conflicts waiting to be settled.
    pub conflicts: Vec<ConflictView>,
    /// What the enrolled user may do with this record now, and why not.
    pub actions: Vec<ActionCheck>,
    /// Its photos, oldest first (hazards, visits, disputes).
    pub photos: Vec<PhotoView>,
}

/// A line of a record list.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(feature = "uniffi", uniffi(name = "RecordSummary"))]
pub struct RecordLine {
    /// Record id.
    pub id: String,
    /// Kind.
    pub kind: RecordKind,
    /// Owning grid.
    pub grid: String,
    /// The grid's name, when the directory has it.
    pub grid_name: Option<String>,
    /// Derived status.
    pub status: RecordStatus,
    /// The status's Chinese label.
    pub status_label_zh: String,
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

/// The status a stored index value names (`Active` for a value no build
/// writes, so a list never fails on one row).
pub(super) fn status_of(s: &str) -> RecordStatus {
    RecordStatus::parse(s).unwrap_or(RecordStatus::Active)
}

impl RecordLine {
    pub(super) fn from_summary(s: RecordSummary, store: &Store) -> Result<RecordLine, ApiError> {
        let status = status_of(&s.status);
        let grid = s.grid.to_string();
        Ok(RecordLine {
            id: s.id.to_string(),
            kind: s.kind,
            grid_name: store.grid_name(&grid)?,
            grid,
            status,
            status_label_zh: status.label_zh(s.kind).to_owned(),
            level: s.level,
            title: s.title,
            occurred_at: s.occurred_at,
            updated_at: s.updated_at,
            deleted: s.deleted,
            has_conflict: s.has_conflict,
            rejection: s.rejection,
        })
    }
}

/// The view of `r` for `writer` (`None`: not enrolled).
pub(super) fn view(store: &Store, r: Record, writer: Option<&Writer>) -> Result<RecordView, ApiError> {
    let ix = r.index();
    let status = status_of(&ix.status);
    let rejection = store.refusals(r.id)?.into_iter().next();
    let (timeline, conflicts) = timeline::of(store, &r.body)?;
    let actions = actions::checks(writer, &r);
    let photos = photos::views(store, &r)?;
    let grid = r.grid.to_string();
    let kind = r.kind();
    Ok(RecordView {
        id: r.id.to_string(),
        kind,
        kind_label_zh: kind.label_zh().to_owned(),
        grid_name: store.grid_name(&grid)?,
        grid,
        author_name: store.user_name(&r.author)?,
        author: r.author,
        created_at: r.created_at,
        updated_at: r.updated_at,
        deleted: r.deleted,
        status,
        status_label_zh: status.label_zh(kind).to_owned(),
        title: ix.title,
        level: ix.level,
        has_conflict: ix.has_conflict,
        rejection,
        body: r.body,
        timeline,
        conflicts,
        actions,
        photos,
    })
}

impl Phone {
    /// Save a new record owned by `grid` (the enrolled user's own grid, or
    /// the village or township above it for meetings and reviews, when
    /// `None`), authored by the enrolled user.
    pub fn create_record(&self, grid: Option<&str>, input: RecordInput) -> Result<RecordView, ApiError> {
        let (id, view) = {
            let mut store = self.store();
            let writer = store.writer()?.ok_or_else(not_enrolled)?;
            let grid = match grid {
                Some(g) => parse_grid("grid", g)?,
                None => writer.grid.ancestor(input.kind().grid_level()),
            };
            let record = Record::new(grid, &writer.user_id, now_ms(), input.into_body(None));
            store.create(&record)?;
            (record.id, view(&store, record, Some(&writer))?)
        };
        self.notify([id], ChangeSource::Local);
        Ok(view)
    }

    /// Replace a record's fields with `input`'s (the same kind); its history
    /// stays as it is.
    pub fn update_record(&self, id: &str, input: RecordInput) -> Result<RecordView, ApiError> {
        let id = parse_id(id)?;
        self.edit(id, |r| {
            if r.kind() != input.kind() {
                return Err(ApiError::invalid(
                    "kind",
                    "wrong_kind",
                    format!("该记录是{}，不能改为{}", r.kind().label_zh(), input.kind().label_zh()),
                ));
            }
            r.body = input.into_body(Some(&r.body));
            Ok(())
        })
    }

    /// Read a record.
    pub fn get_record(&self, id: &str) -> Result<RecordView, ApiError> {
        let id = parse_id(id)?;
        let store = self.store();
        let writer = store.writer()?;
        view(&store, store.get(id)?, writer.as_ref())
    }

    /// Mark a record deleted (the deletion syncs).
    pub fn delete_record(&self, id: &str) -> Result<(), ApiError> {
        let id = parse_id(id)?;
        self.edit(id, |r| {
            r.deleted = true;
            Ok(())
        })
        .map(|_| ())
    }

    /// Append a step to a dispute's history, as the enrolled user, after
    /// every step this phone has seen.
    pub fn append_dispute_event(&self, id: &str, action: DisputeAction) -> Result<RecordView, ApiError> {
        let id = parse_id(id)?;
        self.append(id, |body| match body {
            RecordBody::Dispute(d) => Ok(History::Dispute(&mut d.events, action)),
            _ => Err(ApiError::invalid("id", "not_a_dispute", "该记录不是矛盾纠纷")),
        })
    }

    /// Append a step to a hazard's handling history, as the enrolled user.
    pub fn append_hazard_event(&self, id: &str, action: HazardAction) -> Result<RecordView, ApiError> {
        let id = parse_id(id)?;
        self.append(id, |body| match body {
            RecordBody::Hazard(h) => Ok(History::Hazard(&mut h.events, action)),
            _ => Err(ApiError::invalid("id", "not_a_hazard", "该记录不是隐患")),
        })
    }

    /// Settle a dispute's conflict by keeping event `keep` (one of the
    /// conflicting pair; the other is overruled), with a note on why.
    pub fn settle_conflict(&self, id: &str, keep: &str, note: &str) -> Result<RecordView, ApiError> {
        let rid = parse_id(id)?;
        let record = self.store().get(rid)?;
        let RecordBody::Dispute(d) = &record.body else {
            return Err(ApiError::invalid("id", "not_a_dispute", "该记录不是矛盾纠纷"));
        };
        if !d.state().conflicts.iter().any(|c| c.a == keep || c.b == keep) {
            return Err(ApiError::invalid("keep", "not_in_conflict", "所选步骤不在待裁定的冲突中"));
        }
        self.append_dispute_event(id, DisputeAction::Settled { kept: keep.to_owned(), note: note.to_owned() })
    }

    /// Steps of this phone's the server refused (for a limit, say: the
    /// record had grown past its size limit), kept aside when their record
    /// was repaired: the list the app shows until the user dismisses each.
    pub fn refused_steps(&self) -> Result<Vec<RefusedStepView>, ApiError> {
        let store = self.store();
        let mut out = Vec::new();
        for s in store.refused_steps()? {
            let title = store.get(s.doc_id).map(|r| r.index().title).unwrap_or_default();
            out.push(RefusedStepView {
                record_id: s.doc_id.to_string(),
                hash: crate::signing::hex_of(&s.hash),
                title,
                code: s.reason,
                message_zh: s.message_zh,
                refused_at: s.refused_at,
                before_json: s.before.map(|b| b.to_string()),
                after_json: s.after.to_string(),
            });
        }
        Ok(out)
    }

    /// The user has seen refused step `hash` of record `id` and lets it go.
    pub fn dismiss_refused_step(&self, id: &str, hash: &str) -> Result<bool, ApiError> {
        let id = parse_id(id)?;
        let hash: [u8; 32] = crate::signing::from_hex(hash)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| ApiError::invalid("hash", "bad_hash", "修改编号格式错误"))?;
        Ok(self.store().dismiss_refused_step(id, &hash)?)
    }

    /// Repair a record whose changes the server refused (its `rejection`
    /// says why): the refused steps are taken out and kept aside
    /// ([`Phone::refused_steps`]), this phone's later steps on it are kept
    /// as new changes, and they go with the next sync. Editing the record
    /// repairs it first on its own.
    pub fn repair_record(&self, id: &str) -> Result<RepairReport, ApiError> {
        let id = parse_id(id)?;
        let report = {
            let mut store = self.store();
            // An unknown id is an error, not an empty repair.
            store.get(id)?;
            store.repair(id, now_ms())?
        };
        self.notify([id], ChangeSource::Repair);
        Ok(report)
    }

    /// Records on this phone (deleted ones not counted).
    pub fn count_records(&self) -> Result<u64, ApiError> {
        Ok(self.store().count()?)
    }

    /// Changes no server has acknowledged yet.
    pub fn pending_changes(&self) -> Result<u64, ApiError> {
        Ok(self.store().outbox_len()?)
    }

    /// Everything not yet acknowledged by a server, as a bundle file's
    /// bytes, for a phone with no network.
    pub fn export_bundle(&self) -> Result<Vec<u8>, ApiError> {
        let bundle = self.store().export_bundle()?;
        Ok(bundle.encode()?)
    }

    /// Everything not yet acknowledged, signed and sealed to the server's
    /// key, for another phone (the village supervisor's, say) to carry to
    /// the server: it cannot read it. Needs one sync first (to learn the
    /// server's key); `InvalidInput` on `server_key` otherwise.
    pub fn export_relay_bundle(&self) -> Result<Vec<u8>, ApiError> {
        Ok(self.store().export_relay_bundle()?)
    }

    /// The unsynced work the last wipe saved (a revoked phone, a sign-out
    /// with wipe): a sealed relay bundle the app offers the user to hand
    /// to a colleague's phone ([`Phone::carry_relay_bundle`] there) or to
    /// keep as a file; this phone also hands it to the server itself once
    /// enrolled again. A plain signed bundle instead when the phone never
    /// learnt the server's key (for the township office's `import-bundle`).
    /// `None`: no wipe ever had unsynced work to save.
    pub fn rescued_bundle(&self) -> Result<Option<Vec<u8>>, ApiError> {
        Ok(self.store().rescued_bundle()?)
    }

    /// Forget the rescued bundle, once the user has exported or handed it on.
    pub fn forget_rescued_bundle(&self) -> Result<(), ApiError> {
        Ok(self.store().forget_rescued_bundle()?)
    }

    /// Carry a relay bundle another device made: it goes to the server at
    /// this phone's next sync, judged as its maker's. False if this phone
    /// carries it already. `InvalidInput` on `bundle` if it is not one.
    pub fn carry_relay_bundle(&self, bytes: &[u8]) -> Result<bool, ApiError> {
        Ok(self.store().carry_relay(bytes, chrono::Utc::now().timestamp_millis())?)
    }

    /// Relay bundles this phone carries for others, not yet handed over.
    pub fn relay_backlog(&self) -> Result<RelayBacklog, ApiError> {
        let (bundles, bytes) = self.store().relay_backlog()?;
        Ok(RelayBacklog { bundles, bytes })
    }

    /// Merge a bundle another device exported.
    pub fn import_bundle(&self, bytes: &[u8]) -> Result<crate::protocol::ImportReport, ApiError> {
        let (report, touched) = self.store().import_bundle_bytes(bytes)?;
        self.notify(touched, ChangeSource::Import);
        Ok(report)
    }

    /// Check the store file's integrity.
    pub fn integrity_ok(&self) -> Result<bool, ApiError> {
        Ok(self.store().integrity_ok()?)
    }

    /// Load record `id`, let `change` edit it, save the difference (judged
    /// by the rules), and return the record as it now is.
    fn edit(&self, id: Uuid, change: impl FnOnce(&mut Record) -> Result<(), ApiError>) -> Result<RecordView, ApiError> {
        let view = {
            let mut store = self.store();
            let writer = store.writer()?.ok_or_else(not_enrolled)?;
            // A step the server refused never blocks the next one: the
            // record is repaired first and the refused step kept aside
            // (`refused_steps`), not dropped.
            store.repair(id, now_ms())?;
            let mut record = store.get(id)?;
            change(&mut record)?;
            record.updated_at = now_ms();
            store.update(&record)?;
            view(&store, store.get(id)?, Some(&writer))?
        };
        self.notify([id], ChangeSource::Local);
        Ok(view)
    }

    /// Append the step `pick` names to record `id`'s history, by the
    /// enrolled user, on top of its current heads.
    fn append(
        &self,
        id: Uuid,
        pick: impl FnOnce(&mut RecordBody) -> Result<History<'_>, ApiError>,
    ) -> Result<RecordView, ApiError> {
        let by = self.writer()?.user_id;
        self.edit(id, move |r| {
            let now = now_ms();
            match pick(&mut r.body)? {
                History::Dispute(events, action) => push(events, &by, now, action),
                History::Hazard(events, action) => push(events, &by, now, action),
            }
            Ok(())
        })
    }
}

/// A history and the step to append to it.
enum History<'a> {
    Dispute(&'a mut Vec<Event<DisputeAction>>, DisputeAction),
    Hazard(&'a mut Vec<Event<HazardAction>>, HazardAction),
}

fn push<A>(events: &mut Vec<Event<A>>, by: &str, now: i64, action: A) {
    let e = m::next_event(events, by, now, action);
    events.push(e);
}
