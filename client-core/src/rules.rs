//! Who may change what: the write rules, judged on one step from a record's
//! state before it to its state after it.
//!
//! The server applies these to every incoming change, against the state at
//! that change's own dependencies (see [`crate::judge`]); the phone applies
//! them to every edit before it saves it, so a field worker is told at once,
//! in Chinese, that a step is not theirs to take instead of making a record
//! the server will refuse. `docs/records.md` has the same rules as a table.
//!
//! The rules, in the order they are checked:
//!
//! 1. County agency staff write no records (they enter case counts only).
//! 2. The record's grid must be inside the writer's grid (`out_of_scope`).
//! 3. Sensitive records (household ledgers, visits to key persons) are
//!    written only by the grid manager, village leader and supervisor.
//! 4. The header (id, kind, schema, grid, author, creation time) never
//!    changes, and a history event once recorded never changes or goes away
//!    (`immutable`).
//! 5. A submitted monthly report is final, except that the county may
//!    send it back for correction (clear `submitted_at`, set `returned`).
//! 6. Per kind, who may create, edit fields, append events and delete
//!    ([`may_create`], [`may_edit`], [`may_delete`]); dispute events follow
//!    [`DisputeAction::may_act`] at the level the dispute had when the step
//!    was taken, and every new event's author is the writer and its parents
//!    are exactly the latest events the writer had.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::events::{Event, heads};
use crate::grid::{GridPath, Role};
use crate::model::{
    Dispute, DisputeAction, DisputeLevel, DisputeState, DisputeStatus, HazardAction, HazardStatus, Record, RecordBody,
    RecordKind, VisitTarget, next_event,
};
use crate::protocol::RejectReason;

/// The person a write is made for: the user a device is enrolled as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// User id (what `author` and an event's `by` must be).
    pub user_id: String,
    /// Role.
    pub role: Role,
    /// The grid node the role is assigned to.
    pub grid: GridPath,
}

impl Writer {
    /// The node whose records this writer may read and write.
    pub fn scope(&self) -> GridPath {
        self.grid.ancestor(self.role.grid_level())
    }

    fn on_the_ground(&self) -> bool {
        self.role.reads_sensitive()
    }

    fn village_level(&self) -> bool {
        matches!(self.role, Role::VillageLeader | Role::Supervisor)
    }
}

/// A write the rules refuse: the reason code the server sends, the field
/// concerned and the sentence shown to the field worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason (the sync protocol's).
    pub reason: RejectReason,
    /// The field or part of the record concerned (`events`, `deleted`, `summary`...).
    pub field: String,
    /// Why, in Chinese.
    pub message_zh: String,
}

impl Refusal {
    fn new(reason: RejectReason, field: &str, message_zh: impl Into<String>) -> Self {
        Refusal { reason, field: field.to_owned(), message_zh: message_zh.into() }
    }

    fn forbidden(field: &str, message_zh: impl Into<String>) -> Self {
        Self::new(RejectReason::Forbidden, field, message_zh)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason.as_str(), self.field, self.message_zh)
    }
}

/// Whether a record holds sensitive personal information (PIPL arts.
/// 28-29): every household ledger, and visits to key persons.
pub fn is_sensitive(record: &Record) -> bool {
    match &record.body {
        RecordBody::Household(_) => true,
        RecordBody::Visit(v) => v.target == VisitTarget::KeyPerson,
        _ => false,
    }
}

/// Judge one step of a record: `before` is its state when the step was
/// taken (`None` for a new record), `after` the state the step leads to,
/// and `current` the state the record has now where that is later than
/// `before` (the server's merged state; a step concurrent with a
/// submission may not reopen a final report).
pub fn check_write(
    w: &Writer,
    before: Option<&Record>,
    after: &Record,
    current: Option<&Record>,
) -> Result<(), Refusal> {
    check_access(w, before, after)?;
    let Some(b) = before else {
        return check_create(w, after);
    };
    check_header(b, after)?;
    if let Some(verdict) = check_report_return(w, b, after) {
        return verdict;
    }
    check_not_final([Some(b), current])?;
    if b.deleted != after.deleted
        && let Err(why) = may_delete(w, b)
    {
        return Err(Refusal::forbidden("deleted", why));
    }
    for field in changed_fields(b, after) {
        if let Err(why) = may_edit(w, b, &field) {
            return Err(Refusal::forbidden(&field, why));
        }
    }
    check_events(w, Some(b), after)?;
    check_attachments(w, Some(b), after)
}

/// Photos: a reference once recorded never changes or goes away; a new one
/// is the writer's (`by`), on a kind that takes photos, and added by whom
/// may edit the record, or by the author of the history event it shows
/// (a handling step's photo is its taker's); a step that adds one keeps
/// the record's photo limits as its writer saw the record
/// ([`crate::model::added_within_limits`]).
fn check_attachments(w: &Writer, before: Option<&Record>, after: &Record) -> Result<(), Refusal> {
    let empty = crate::model::Attachments::new();
    let old = before.map_or(&empty, |b| &b.attachments);
    for (hash, a) in old {
        if after.attachments.get(hash) != Some(a) {
            return Err(Refusal::new(RejectReason::Immutable, "attachments", "已附的照片不能修改或移除"));
        }
    }
    let mut authors = None;
    for (_, a) in after.attachments.iter().filter(|(h, _)| !old.contains_key(*h)) {
        if a.by != w.user_id {
            return Err(Refusal::forbidden("attachments", "新附照片的拍摄人必须是当前用户"));
        }
        if !crate::model::takes_photos(after.kind()) {
            return Err(Refusal::forbidden("attachments", format!("{}不能附照片", after.kind().label_zh())));
        }
        let Some(b) = before else { continue };
        let own_event = a.event.as_ref().is_some_and(|e| {
            authors.get_or_insert_with(|| after.event_authors()).iter().any(|(id, by)| id == e && by == &w.user_id)
        });
        if !own_event && let Err(why) = may_edit(w, b, "attachments") {
            return Err(Refusal::forbidden("attachments", format!("不能给这条记录附照片：{why}")));
        }
    }
    crate::model::added_within_limits(old, &after.attachments)
        .map_err(|e| Refusal::new(RejectReason::Invalid, "attachments", e.message_zh))
}

/// Rules 1 to 3: the writer's role, scope and sensitivity.
fn check_access(w: &Writer, before: Option<&Record>, after: &Record) -> Result<(), Refusal> {
    if w.role == Role::AgencyStaff {
        return Err(Refusal::forbidden("record", "县直部门账号不能修改网格记录"));
    }
    let scope = w.scope();
    if !scope.contains(&after.grid) || before.is_some_and(|b| !scope.contains(&b.grid)) {
        return Err(Refusal::new(RejectReason::OutOfScope, "grid", RejectReason::OutOfScope.label_zh()));
    }
    if (is_sensitive(after) || before.is_some_and(is_sensitive)) && !w.on_the_ground() {
        return Err(Refusal::forbidden("record", "只有本网格的网格员、网格长和督导员可以修改涉及个人敏感信息的记录"));
    }
    Ok(())
}

/// Rule 5: a submitted monthly report is final.
fn check_not_final<'a>(states: impl IntoIterator<Item = Option<&'a Record>>) -> Result<(), Refusal> {
    for state in states.into_iter().flatten() {
        if let RecordBody::MonthlyReport(r) = &state.body
            && r.submitted_at.is_some()
        {
            return Err(Refusal::forbidden("submitted_at", "月度报告已提交，不能再修改"));
        }
    }
    Ok(())
}

/// A step an app may offer on an existing record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step<'a> {
    /// Change its fields (not its history).
    EditFields,
    /// Delete it.
    Delete,
    /// Append the events `after` has beyond the record (`after` is the
    /// record with them).
    Append(&'a Record),
}

/// `r` with one more dispute step by `by` at `at`, after every step it
/// holds: the record a [`Step::Append`] is judged on.
pub fn with_dispute_event(r: &Record, by: &str, at: i64, action: DisputeAction) -> Record {
    let mut after = r.clone();
    if let RecordBody::Dispute(d) = &mut after.body {
        let e = next_event(&d.events, by, at, action);
        d.events.push(e);
    }
    after
}

/// `r` with one more hazard step by `by` at `at` (see [`with_dispute_event`]).
pub fn with_hazard_event(r: &Record, by: &str, at: i64, action: HazardAction) -> Record {
    let mut after = r.clone();
    if let RecordBody::Hazard(h) = &mut after.body {
        let e = next_event(&h.events, by, at, action);
        h.events.push(e);
    }
    after
}

/// Whether `w` may take `step` on `b` as it is now: the rules
/// [`check_write`] applies to the change the step would make, judged before
/// the user fills anything in (so an app offers only steps the server will
/// take; what the user then types is validated on saving).
pub fn check_step(w: &Writer, b: &Record, step: Step<'_>) -> Result<(), Refusal> {
    match step {
        Step::Append(after) => check_write(w, Some(b), after, None),
        Step::EditFields => {
            check_access(w, Some(b), b)?;
            check_not_final([Some(b)])?;
            // A dispute's category changes by classifying it; its other
            // fields follow one rule.
            let field = if b.kind() == RecordKind::Dispute { "summary" } else { "data" };
            may_edit(w, b, field).map_err(|why| Refusal::forbidden(field, why))
        }
        Step::Delete => {
            check_access(w, Some(b), b)?;
            check_not_final([Some(b)])?;
            may_delete(w, b).map_err(|why| Refusal::forbidden("deleted", why))
        }
    }
}

/// The one change a submitted monthly report still takes: the county
/// sends it back for correction (退回修改), clearing `submitted_at` and
/// recording who and why in `returned`, nothing else. `None` when the step
/// is not such a return (the other rules judge it).
fn check_report_return(w: &Writer, b: &Record, after: &Record) -> Option<Result<(), Refusal>> {
    let (RecordBody::MonthlyReport(old), RecordBody::MonthlyReport(new)) = (&b.body, &after.body) else {
        return None;
    };
    if old.submitted_at.is_none()
        || new.submitted_at.is_some()
        || new.returned.is_none()
        || new.returned == old.returned
    {
        return None;
    }
    if w.role != Role::CountyStaff {
        return Some(Err(Refusal::forbidden("returned", "只有县综治中心可以退回月度报告")));
    }
    if new.returned.as_ref().is_some_and(|r| r.by != w.user_id) {
        return Some(Err(Refusal::forbidden("returned", "退回人必须是当前用户")));
    }
    if new.month != old.month
        || new.figures != old.figures
        || new.narrative != old.narrative
        || b.deleted != after.deleted
    {
        return Some(Err(Refusal::forbidden("returned", "退回月度报告时不能修改报告内容")));
    }
    Some(Ok(()))
}

fn check_create(w: &Writer, after: &Record) -> Result<(), Refusal> {
    if after.author != w.user_id {
        return Err(Refusal::forbidden("author", "新记录的记录人必须是当前用户"));
    }
    if after.deleted {
        return Err(Refusal::forbidden("deleted", "不能新建已删除的记录"));
    }
    if let Err(why) = may_create(w, after.kind()) {
        return Err(Refusal::forbidden("kind", why));
    }
    check_events(w, None, after)?;
    check_attachments(w, None, after)
}

fn check_header(b: &Record, a: &Record) -> Result<(), Refusal> {
    let immutable = |field: &str| {
        Refusal::new(RejectReason::Immutable, field, "记录的编号、类型、版本、网格、记录人和创建时间不能修改")
    };
    if b.id != a.id {
        return Err(immutable("id"));
    }
    if b.kind() != a.kind() {
        return Err(immutable("kind"));
    }
    if b.schema != a.schema {
        return Err(immutable("schema"));
    }
    if b.grid != a.grid {
        return Err(immutable("grid"));
    }
    if b.author != a.author {
        return Err(immutable("author"));
    }
    if b.created_at != a.created_at {
        return Err(immutable("created_at"));
    }
    Ok(())
}

/// Whether `w` may create a record of `kind` (inside their grid).
pub fn may_create(w: &Writer, kind: RecordKind) -> Result<(), String> {
    let ok = match kind {
        RecordKind::Patrol | RecordKind::Visit | RecordKind::Household => w.on_the_ground(),
        RecordKind::Hazard | RecordKind::Dispute => w.role != Role::AgencyStaff,
        RecordKind::VillageMeeting => w.village_level(),
        RecordKind::TownshipReview | RecordKind::MonthlyReport => w.role == Role::TownshipChief,
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        RecordKind::Patrol | RecordKind::Visit | RecordKind::Household => {
            format!("{}由网格员、网格长或督导员记录", kind.label_zh())
        }
        RecordKind::VillageMeeting => "只有本村网格长或网格督导员可以记录周排查例会".into(),
        RecordKind::TownshipReview | RecordKind::MonthlyReport => "只有乡镇网格总长可以记录月研判和月度报告".into(),
        _ => format!("{}不能新建{}", w.role.label_zh(), kind.label_zh()),
    })
}

/// The top-level data fields (other than histories) that differ.
fn changed_fields(b: &Record, a: &Record) -> Vec<String> {
    let (Value::Object(bj), Value::Object(aj)) = (b.body.to_json(), a.body.to_json()) else {
        return vec!["data".into()];
    };
    let keys: BTreeSet<&String> = bj.keys().chain(aj.keys()).collect();
    keys.into_iter().filter(|k| k.as_str() != "events" && bj.get(*k) != aj.get(*k)).cloned().collect()
}

/// Whether `w` may still add to a record past its size limit
/// ([`crate::judge::MAX_DOC_BYTES`]): only the people who handle the
/// record, and only handling steps (events appended, photos added) or its
/// deletion or restoration, no field changed. For a dispute, the people of
/// its current level or a higher one (a higher level settles a lower
/// one's conflicts), and a settlement by anyone the rules let settle; for
/// a hazard, the village leader, the supervisor, the township chief (who
/// also resolves hazards) and the county. So nobody can fill a record to
/// its limit in a way that stops its handlers from closing, escalating,
/// settling, resolving or deleting it.
pub fn may_add_to_a_large_record(w: &Writer, before: Option<&Record>, after: &Record) -> bool {
    let Some(b) = before else { return false };
    if !changed_fields(b, after).is_empty() {
        return false;
    }
    match (&b.body, &after.body) {
        (RecordBody::Dispute(d), RecordBody::Dispute(a)) => {
            let level = d.state().level;
            let old: BTreeSet<&str> = d.events.iter().map(|e| e.id.as_str()).collect();
            let mut new = a.events.iter().filter(|e| !old.contains(e.id.as_str())).peekable();
            let settles = new.peek().is_some() && new.all(|e| matches!(e.action, DisputeAction::Settled { .. }));
            handles(w.role).is_some_and(|h| h >= level || settles)
        }
        (RecordBody::Hazard(_), _) => w.village_level() || matches!(w.role, Role::TownshipChief | Role::CountyStaff),
        _ => false,
    }
}

/// Whether a step closes its record: deletes it, resolves a dispute or a
/// hazard, raises a dispute's level or settles one of its conflicts, and
/// changes nothing else. No size limit refuses such a step
/// ([`crate::judge::HARD_MAX_DOC_BYTES`] included), so nobody, a handler
/// included, can pad a record to stop the next level from closing it. The
/// growth it allows is bounded: a record is deleted once, a level rises at
/// most twice, a dispute or hazard is resolved again only after a step
/// that reopens it (which the limits do refuse), and a conflict is only
/// made by steps taken at once.
pub fn closes(before: Option<&Record>, after: &Record) -> bool {
    let Some(b) = before else { return false };
    if !changed_fields(b, after).is_empty() {
        return false;
    }
    if after.deleted != b.deleted {
        return after.deleted;
    }
    match (&b.body, &after.body) {
        (RecordBody::Dispute(bd), RecordBody::Dispute(ad)) => {
            let (s0, s1) = (bd.state(), ad.state());
            s1.level > s0.level
                || (s1.status == DisputeStatus::Resolved && s0.status != DisputeStatus::Resolved)
                || s1.conflicts.len() < s0.conflicts.len()
        }
        (RecordBody::Hazard(bh), RecordBody::Hazard(ah)) => {
            ah.status() == HazardStatus::Resolved && bh.status() != HazardStatus::Resolved
        }
        _ => false,
    }
}

/// What a dispute's people may do: the level a role handles.
fn handles(role: Role) -> Option<DisputeLevel> {
    match role {
        Role::VillageLeader | Role::Supervisor => Some(DisputeLevel::Village),
        Role::TownshipChief => Some(DisputeLevel::Township),
        Role::CountyStaff => Some(DisputeLevel::County),
        Role::GridManager | Role::AgencyStaff => None,
    }
}

/// Who handles a dispute level, in words.
fn level_handler_zh(level: DisputeLevel) -> &'static str {
    match level {
        DisputeLevel::Village => "网格长或网格督导员",
        DisputeLevel::Township => "乡镇网格总长",
        DisputeLevel::County => "县综治中心",
    }
}

/// Whether the author of a dispute still owns its wording: it is at village
/// level and nobody has screened it yet.
fn author_still_owns(w: &Writer, b: &Record, st: &DisputeState) -> bool {
    w.user_id == b.author && st.level == DisputeLevel::Village && st.status == DisputeStatus::Registered
}

/// Whether `w` may change data field `field` of `b` (its state before).
pub fn may_edit(w: &Writer, b: &Record, field: &str) -> Result<(), String> {
    let is_author = w.user_id == b.author;
    match &b.body {
        RecordBody::Patrol(_) | RecordBody::Visit(_) => {
            if is_author {
                return Ok(());
            }
            Err(format!("只有记录人可以修改这条{}", b.kind().label_zh()))
        }
        RecordBody::Household(_) => Ok(()),
        RecordBody::Hazard(_) => {
            if is_author || w.village_level() {
                return Ok(());
            }
            Err("只有记录人或本村网格长、督导员可以修改隐患的内容".into())
        }
        RecordBody::Dispute(d) => {
            if field == "category" {
                return Err("纠纷类别请通过“甄别分类”修改".into());
            }
            let st = d.state();
            if handles(w.role) == Some(st.level) || author_still_owns(w, b, &st) {
                return Ok(());
            }
            Err(format!("{}纠纷的内容只能由负责该层级的人员修改", st.level.label_zh()))
        }
        RecordBody::VillageMeeting(_) => {
            if w.village_level() {
                return Ok(());
            }
            Err("只有本村网格长或网格督导员可以修改周排查例会".into())
        }
        RecordBody::MonthlyReport(_) if field == "returned" => Err("退回意见只能由县综治中心在退回报告时填写".into()),
        RecordBody::TownshipReview(_) | RecordBody::MonthlyReport(_) => {
            if w.role == Role::TownshipChief {
                return Ok(());
            }
            Err("只有乡镇网格总长可以修改月研判和月度报告".into())
        }
    }
}

/// Whether `w` may delete (or restore) `b`.
pub fn may_delete(w: &Writer, b: &Record) -> Result<(), String> {
    let is_author = w.user_id == b.author;
    match &b.body {
        RecordBody::Patrol(_) | RecordBody::Visit(_) => {
            if is_author {
                return Ok(());
            }
            Err(format!("只有记录人可以删除这条{}", b.kind().label_zh()))
        }
        RecordBody::Household(_) | RecordBody::Hazard(_) => {
            if is_author || w.village_level() {
                return Ok(());
            }
            Err(format!("只有记录人或本村网格长、督导员可以删除{}", b.kind().label_zh()))
        }
        RecordBody::Dispute(d) => {
            let st = d.state();
            if handles(w.role) == Some(st.level) || author_still_owns(w, b, &st) {
                return Ok(());
            }
            Err(format!("{}纠纷只能由负责该层级的人员删除", st.level.label_zh()))
        }
        RecordBody::VillageMeeting(_) | RecordBody::TownshipReview(_) | RecordBody::MonthlyReport(_) => {
            may_edit(w, b, "deleted").map_err(|_| format!("您不能删除这条{}", b.kind().label_zh()))
        }
    }
}

/// History events: the old ones kept as they were, each new one by the
/// writer, on top of the latest events, and allowed at the state it was
/// taken in.
fn check_events(w: &Writer, before: Option<&Record>, after: &Record) -> Result<(), Refusal> {
    match &after.body {
        RecordBody::Dispute(a) => {
            let old = match before.map(|b| &b.body) {
                Some(RecordBody::Dispute(b)) => b.events.as_slice(),
                _ => &[],
            };
            let new = appended(old, &a.events)?;
            let mut hist = Dispute { events: old.to_vec(), ..a.clone() };
            for e in new {
                check_event_author(w, &hist.events, e)?;
                let st = hist.state();
                if !e.action.may_act(w.role, st.level) {
                    return Err(Refusal::forbidden(
                        "events",
                        format!(
                            "{}不能在{}纠纷上进行“{}”操作",
                            w.role.label_zh(),
                            st.level.label_zh(),
                            e.action.label_zh()
                        ),
                    ));
                }
                if let DisputeAction::Settled { kept, .. } = &e.action {
                    if !st.conflicts.iter().any(|c| &c.a == kept || &c.b == kept) {
                        return Err(Refusal::new(RejectReason::Invalid, "events", "裁定保留的事件不在待裁定的冲突中"));
                    }
                    // Below the dispute's level, a settlement may only keep
                    // the escalation: it can never take a case back down.
                    if handles(w.role).is_some_and(|h| h < st.level) {
                        let kept_is_escalation = hist
                            .events
                            .iter()
                            .any(|x| &x.id == kept && matches!(x.action, DisputeAction::Escalated { .. }));
                        let mut after = hist.clone();
                        after.events.push(e.clone());
                        if !kept_is_escalation || after.state().level < st.level {
                            return Err(Refusal::forbidden(
                                "events",
                                format!("{}纠纷的冲突应由{}裁定", st.level.label_zh(), level_handler_zh(st.level)),
                            ));
                        }
                    }
                }
                hist.events.push(e.clone());
            }
            Ok(())
        }
        RecordBody::Hazard(a) => {
            let old = match before.map(|b| &b.body) {
                Some(RecordBody::Hazard(b)) => b.events.as_slice(),
                _ => &[],
            };
            let mut hist = old.to_vec();
            for e in appended(old, &a.events)? {
                check_event_author(w, &hist, e)?;
                hist.push(e.clone());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Most events one step may append: a phone appends one per edit, a form
/// two; the bound keeps judging a step linear in the history.
pub const MAX_NEW_EVENTS: usize = 20;

/// The events of `after` that `old` does not hold, in list order; an error
/// if an old event was changed or removed, or too many are new.
fn appended<'a, A: PartialEq>(old: &[Event<A>], after: &'a [Event<A>]) -> Result<Vec<&'a Event<A>>, Refusal> {
    let by_id: BTreeMap<&str, &Event<A>> = after.iter().map(|e| (e.id.as_str(), e)).collect();
    if old.iter().any(|e| by_id.get(e.id.as_str()) != Some(&e)) {
        return Err(Refusal::new(RejectReason::Immutable, "events", "已记录的历史事件不能修改或删除"));
    }
    let old_ids: BTreeSet<&str> = old.iter().map(|e| e.id.as_str()).collect();
    let new: Vec<&Event<A>> = after.iter().filter(|e| !old_ids.contains(e.id.as_str())).collect();
    if new.len() > MAX_NEW_EVENTS {
        return Err(Refusal::new(RejectReason::Invalid, "events", format!("一次最多记录{MAX_NEW_EVENTS}个处理步骤")));
    }
    Ok(new)
}

fn check_event_author<A>(w: &Writer, hist: &[Event<A>], e: &Event<A>) -> Result<(), Refusal> {
    if e.by != w.user_id {
        return Err(Refusal::forbidden("events", "事件记录人必须是当前用户"));
    }
    let mut parents = e.parents.clone();
    parents.sort();
    parents.dedup();
    if parents != heads(hist) {
        return Err(Refusal::forbidden("events", "新事件必须接在记录当前的最新事件之后"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DisputeCategory, Hazard, HazardAction, HazardCategory, Location, next_event};

    fn writer(user: &str, role: Role, grid: &str) -> Writer {
        Writer { user_id: user.into(), role, grid: GridPath::parse(grid).unwrap() }
    }

    fn gm() -> Writer {
        writer("gm1", Role::GridManager, "t01/v01/g1")
    }
    fn vl() -> Writer {
        writer("vl1", Role::VillageLeader, "t01/v01")
    }
    fn tc() -> Writer {
        writer("tc1", Role::TownshipChief, "t01")
    }

    fn dispute_by(w: &Writer) -> Record {
        let found = next_event(&[], &w.user_id, 1, DisputeAction::Found { note: String::new() });
        Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            &w.user_id,
            1,
            RecordBody::Dispute(Dispute {
                parties: vec!["张三".into()],
                category: DisputeCategory::Land,
                summary: "地界".into(),
                found_at: 1,
                events: vec![found],
            }),
        )
    }

    fn act(r: &Record, w: &Writer, action: DisputeAction) -> Record {
        let mut n = r.clone();
        if let RecordBody::Dispute(d) = &mut n.body {
            let e = next_event(&d.events, &w.user_id, 2, action);
            d.events.push(e);
        }
        n
    }

    fn escalated_to_township(gm_rec: &Record) -> Record {
        act(gm_rec, &vl(), DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() })
    }

    #[test]
    fn a_grid_manager_may_record_a_dispute_but_not_plan_it() {
        let r = dispute_by(&gm());
        assert_eq!(check_write(&gm(), None, &r, None), Ok(()));
        let planned = act(&r, &gm(), DisputeAction::PlanSet { plan: "调解".into(), team: vec![] });
        let err = check_write(&gm(), Some(&r), &planned, None).unwrap_err();
        assert_eq!(err.reason, RejectReason::Forbidden);
        assert!(err.message_zh.contains("制定化解方案"), "{err}");
        // Created with the plan already in it: judged the same.
        let mut born_planned = planned.clone();
        born_planned.id = uuid::Uuid::new_v4();
        assert!(check_write(&gm(), None, &born_planned, None).is_err());
    }

    #[test]
    fn township_disputes_are_not_the_village_s_to_edit_delete_or_settle() {
        let r = escalated_to_township(&dispute_by(&gm()));
        let mut deleted = r.clone();
        deleted.deleted = true;
        assert_eq!(check_write(&gm(), Some(&r), &deleted, None).unwrap_err().field, "deleted");
        assert!(check_write(&vl(), Some(&r), &deleted, None).is_err());
        assert_eq!(check_write(&tc(), Some(&r), &deleted, None), Ok(()));

        let mut reworded = r.clone();
        if let RecordBody::Dispute(d) = &mut reworded.body {
            d.summary = "改写".into();
            d.parties = vec!["王五".into()];
        }
        assert!(check_write(&gm(), Some(&r), &reworded, None).is_err());

        let resolved = act(&r, &vl(), DisputeAction::Resolved { note: "村里调解".into() });
        assert!(check_write(&vl(), Some(&r), &resolved, None).is_err());
        assert_eq!(
            check_write(&tc(), Some(&r), &act(&r, &tc(), DisputeAction::Resolved { note: "乡镇调解".into() }), None),
            Ok(())
        );
    }

    /// A resolution on the spot raced an escalation to the township: the
    /// village leader may confirm the escalation but not take the case
    /// back down; the township chief may decide either way.
    #[test]
    fn below_its_level_a_conflict_may_only_be_settled_upwards() {
        let r = dispute_by(&gm());
        let RecordBody::Dispute(d0) = &r.body else { unreachable!() };
        let found = d0.events[0].id.clone();
        let mut both = r.clone();
        let (esc, res) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
        if let RecordBody::Dispute(d) = &mut both.body {
            d.events.push(crate::events::Event {
                id: esc.clone(),
                at: 2,
                by: "vl1".into(),
                parents: vec![found.clone()],
                action: DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() },
            });
            d.events.push(crate::events::Event {
                id: res.clone(),
                at: 3,
                by: "gm1".into(),
                parents: vec![found],
                action: DisputeAction::Resolved { note: "就地调解".into() },
            });
        }
        let settle = |w: &Writer, kept: &str| {
            let after = act(&both, w, DisputeAction::Settled { kept: kept.into(), note: String::new() });
            check_write(w, Some(&both), &after, None)
        };
        assert_eq!(settle(&vl(), &esc), Ok(()));
        assert!(settle(&vl(), &res).unwrap_err().message_zh.contains("乡镇网格总长"));
        assert_eq!(settle(&tc(), &res), Ok(()));
        assert_eq!(settle(&tc(), "not-in-the-conflict").unwrap_err().reason, RejectReason::Invalid);
    }

    #[test]
    fn category_changes_only_through_classification() {
        let r = dispute_by(&gm());
        let mut recat = r.clone();
        if let RecordBody::Dispute(d) = &mut recat.body {
            d.category = DisputeCategory::Debt;
        }
        for w in [gm(), vl()] {
            assert_eq!(check_write(&w, Some(&r), &recat, None).unwrap_err().field, "category");
        }
    }

    #[test]
    fn an_event_must_be_by_the_writer_and_on_the_latest_events() {
        let r = dispute_by(&gm());
        let mut forged = act(&r, &gm(), DisputeAction::FollowUp { note: "x".into() });
        if let RecordBody::Dispute(d) = &mut forged.body {
            d.events.last_mut().unwrap().by = "vl1".into();
        }
        assert!(check_write(&gm(), Some(&r), &forged, None).unwrap_err().message_zh.contains("记录人"));

        // Claiming not to have seen the escalation.
        let esc = escalated_to_township(&r);
        let RecordBody::Dispute(d) = &esc.body else { unreachable!() };
        let first = d.events[0].id.clone();
        let mut stale = act(&esc, &vl(), DisputeAction::Resolved { note: "假装没看到上报".into() });
        if let RecordBody::Dispute(d) = &mut stale.body {
            d.events.last_mut().unwrap().parents = vec![first];
        }
        assert!(check_write(&vl(), Some(&esc), &stale, None).is_err());
    }

    #[test]
    fn recorded_events_never_change() {
        let r = act(&dispute_by(&gm()), &gm(), DisputeAction::FollowUp { note: "原文".into() });
        let mut edited = r.clone();
        if let RecordBody::Dispute(d) = &mut edited.body
            && let DisputeAction::FollowUp { note } = &mut d.events[1].action
        {
            *note = "改过".into();
        }
        assert_eq!(check_write(&gm(), Some(&r), &edited, None).unwrap_err().reason, RejectReason::Immutable);
    }

    #[test]
    fn a_hazard_is_deleted_by_its_author_or_the_village_not_the_township() {
        let w = gm();
        let h = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            &w.user_id,
            1,
            RecordBody::Hazard(Hazard {
                category: HazardCategory::Fire,
                location: Location { text: "村口".into(), gps: None },
                description: "电线老化".into(),
                events: vec![next_event(&[], "gm1", 1, HazardAction::Reported { note: String::new() })],
            }),
        );
        let mut del = h.clone();
        del.deleted = true;
        assert!(check_write(&tc(), Some(&h), &del, None).is_err());
        assert_eq!(check_write(&vl(), Some(&h), &del, None), Ok(()));
        assert_eq!(check_write(&w, Some(&h), &del, None), Ok(()));
        // Anyone in scope may record a handling step, as themselves.
        let mut step = h.clone();
        if let RecordBody::Hazard(x) = &mut step.body {
            let e = next_event(&x.events, "tc1", 2, HazardAction::Step { note: "乡镇督办".into() });
            x.events.push(e);
        }
        assert_eq!(check_write(&tc(), Some(&h), &step, None), Ok(()));
        assert!(check_write(&vl(), Some(&h), &step, None).is_err(), "by must be the writer");
    }

    #[test]
    fn a_photo_once_attached_stays_and_a_new_one_is_its_takers() {
        use crate::model::Attachment;
        let h = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1,
            RecordBody::Hazard(Hazard {
                category: HazardCategory::Fire,
                location: Location { text: "村口".into(), gps: None },
                description: "电线老化".into(),
                events: vec![next_event(&[], "gm1", 1, HazardAction::Reported { note: String::new() })],
            }),
        );
        let photo = |by: &str, event: Option<String>| Attachment {
            mime: "image/jpeg".into(),
            size: 1000,
            at: 2,
            by: by.into(),
            event,
            thumb_of: None,
        };
        let with = |r: &Record, hash: char, a: Attachment| {
            let mut n = r.clone();
            n.attachments.insert(hash.to_string().repeat(64), a);
            n
        };
        let attached = with(&h, 'a', photo("gm1", None));
        assert_eq!(check_write(&gm(), Some(&h), &attached, None), Ok(()));
        // Under someone else's name: refused.
        assert!(check_write(&gm(), Some(&h), &with(&h, 'b', photo("vl1", None)), None).is_err());
        // Changed or removed once recorded: refused.
        let mut changed = attached.clone();
        changed.attachments.values_mut().for_each(|a| a.size = 2000);
        assert_eq!(check_write(&gm(), Some(&attached), &changed, None).unwrap_err().reason, RejectReason::Immutable);
        let mut removed = attached.clone();
        removed.attachments.clear();
        assert_eq!(check_write(&gm(), Some(&attached), &removed, None).unwrap_err().reason, RejectReason::Immutable);
        // The township may not edit the village's hazard, but may show its
        // own handling step with a photo.
        assert!(check_write(&tc(), Some(&h), &with(&h, 'c', photo("tc1", None)), None).is_err());
        let mut step = h.clone();
        let step_id = if let RecordBody::Hazard(x) = &mut step.body {
            let e = next_event(&x.events, "tc1", 2, HazardAction::Step { note: "乡镇督办".into() });
            let id = e.id.clone();
            x.events.push(e);
            id
        } else {
            unreachable!()
        };
        assert_eq!(check_write(&tc(), Some(&h), &with(&step, 'c', photo("tc1", Some(step_id.clone()))), None), Ok(()));
        // A patrol takes no photos.
        let mut p = h.clone();
        p.body = RecordBody::Patrol(crate::model::Patrol {
            slot: crate::model::PatrolSlot::Morning,
            started_at: 1,
            ended_at: None,
            route: vec![],
            findings: String::new(),
            hazard_ids: Default::default(),
        });
        assert!(check_write(&gm(), None, &with(&p, 'd', photo("gm1", None)), None).is_err());
    }

    #[test]
    fn the_county_sends_a_submitted_report_back_and_the_chief_submits_again() {
        use crate::model::{MonthlyReport, ReportReturn};
        let county = writer("county1", Role::CountyStaff, "");
        let draft = Record::new(
            GridPath::parse("t01").unwrap(),
            "tc1",
            1,
            RecordBody::MonthlyReport(MonthlyReport {
                month: "2026-10".into(),
                figures: BTreeMap::from([("disputes_found".to_owned(), 3)]),
                narrative: "本月情况".into(),
                submitted_at: None,
                returned: None,
            }),
        );
        let with = |r: &Record, f: &dyn Fn(&mut MonthlyReport)| {
            let mut r = r.clone();
            if let RecordBody::MonthlyReport(m) = &mut r.body {
                f(m);
            }
            r
        };
        let submitted = with(&draft, &|m| m.submitted_at = Some(10));
        let ret = |by: &str| Some(ReportReturn { at: 20, by: by.into(), reason: "数字有误".into() });
        let returned = with(&submitted, &|m| {
            m.submitted_at = None;
            m.returned = ret("county1");
        });
        assert_eq!(check_write(&county, Some(&submitted), &returned, None), Ok(()));
        assert!(
            check_write(
                &tc(),
                Some(&submitted),
                &with(&submitted, &|m| {
                    m.submitted_at = None;
                    m.returned = ret("tc1");
                }),
                None
            )
            .is_err(),
            "a chief cannot reopen their own submitted report"
        );
        assert!(
            check_write(&county, Some(&submitted), &with(&returned, &|m| m.narrative = "改写".into()), None).is_err()
        );
        assert!(
            check_write(
                &county,
                Some(&submitted),
                &with(&submitted, &|m| {
                    m.submitted_at = None;
                    m.returned = ret("someone");
                }),
                None
            )
            .is_err(),
            "the return names its writer"
        );
        assert!(check_write(&county, Some(&draft), &with(&draft, &|m| m.returned = ret("county1")), None).is_err());
        // The chief corrects and submits again; the reason stays.
        let corrected = with(&returned, &|m| {
            m.narrative = "更正后的情况".into();
            m.submitted_at = Some(30);
        });
        assert_eq!(check_write(&tc(), Some(&returned), &corrected, None), Ok(()));
        assert!(check_write(&tc(), Some(&returned), &with(&corrected, &|m| m.returned = None), None).is_err());
        assert_eq!(corrected.index().status, "submitted");
        assert_eq!(returned.index().status, "returned");
        // Submitted again, it is final again.
        assert!(
            check_write(&tc(), Some(&corrected), &with(&corrected, &|m| m.narrative = "再改".into()), None).is_err()
        );
    }
}
