//! A history as an app shows it: each step labelled and named, in the
//! order the status is folded in, with the steps a settlement overruled
//! marked, and the conflicts still waiting with both sides' content.

use crate::events::{Event, HistoryAction, Ordered};
use crate::model::{DisputeAction, HazardAction, RecordBody};

use super::*;

/// What a step of a history did.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum StepAction {
    /// A dispute's step.
    Dispute(DisputeAction),
    /// A hazard's step.
    Hazard(HazardAction),
}

/// One step of a history.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct TimelineEntry {
    /// Event id.
    pub event_id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// User id of who recorded it.
    pub by: String,
    /// Their name, when the directory has it.
    pub by_name: Option<String>,
    /// What was done, in Chinese (`上报至乡镇`, `化解`).
    pub label_zh: String,
    /// The step's note, plan or other text, as written.
    pub text: String,
    /// The step itself.
    pub action: StepAction,
    /// It is one side of a conflict still waiting to be settled.
    pub in_conflict: bool,
    /// A settlement kept the other side of its conflict: this step no
    /// longer counts for the status.
    pub overruled: bool,
}

/// Two steps taken at the same time that cannot both stand.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConflictView {
    /// Why they conflict, in Chinese.
    pub reason_zh: String,
    /// One side.
    pub a: TimelineEntry,
    /// The other side.
    pub b: TimelineEntry,
}

fn dispute_text(a: &DisputeAction) -> (String, String) {
    match a {
        DisputeAction::Escalated { to, note } => {
            (format!("上报至{}", to.label_zh().trim_end_matches('级')), note.clone())
        }
        DisputeAction::Classified { category, note } => (format!("甄别分类：{}", category.label_zh()), note.clone()),
        DisputeAction::PlanSet { plan, team } if !team.is_empty() => {
            (a.label_zh().to_owned(), format!("{plan}（化解小组：{}）", team.join("、")))
        }
        DisputeAction::PlanSet { plan, .. } => (a.label_zh().to_owned(), plan.clone()),
        DisputeAction::Found { note }
        | DisputeAction::FollowUp { note }
        | DisputeAction::Stabilized { note }
        | DisputeAction::Resolved { note }
        | DisputeAction::Settled { note, .. } => (a.label_zh().to_owned(), note.clone()),
    }
}

fn hazard_text(a: &HazardAction) -> (String, String) {
    let (HazardAction::Reported { note } | HazardAction::Step { note } | HazardAction::Resolved { note }) = a;
    (a.label_zh().to_owned(), note.clone())
}

/// The entries of one history, and its open conflicts.
fn entries<A: HistoryAction + Clone>(
    store: &Store,
    events: &[Event<A>],
    describe: impl Fn(&A) -> (String, String),
    wrap: impl Fn(A) -> StepAction,
) -> Result<(Vec<TimelineEntry>, Vec<ConflictView>), ApiError> {
    let ordered = Ordered::new(events);
    let (open, overruled) = ordered.conflicts();
    let mut out = Vec::with_capacity(ordered.events.len());
    for (i, e) in ordered.events.iter().enumerate() {
        let (label_zh, text) = describe(&e.action);
        out.push(TimelineEntry {
            event_id: e.id.clone(),
            at: e.at,
            by: e.by.clone(),
            by_name: store.user_name(&e.by)?,
            label_zh,
            text,
            action: wrap(e.action.clone()),
            in_conflict: open.iter().any(|c| c.a == e.id || c.b == e.id),
            overruled: overruled.contains(&i),
        });
    }
    let find = |id: &str| out.iter().find(|t| t.event_id == id).cloned();
    let conflicts = open
        .iter()
        .filter_map(|c| Some(ConflictView { reason_zh: c.reason_zh.clone(), a: find(&c.a)?, b: find(&c.b)? }))
        .collect();
    Ok((out, conflicts))
}

/// The timeline and open conflicts of a record's history (empty for kinds
/// without one).
pub(super) fn of(store: &Store, body: &RecordBody) -> Result<(Vec<TimelineEntry>, Vec<ConflictView>), ApiError> {
    match body {
        RecordBody::Dispute(d) => entries(store, &d.events, dispute_text, StepAction::Dispute),
        RecordBody::Hazard(h) => entries(store, &h.events, hazard_text, StepAction::Hazard),
        _ => Ok((Vec::new(), Vec::new())),
    }
}
