//! Which steps the enrolled user may take on a record now, and why not: the
//! server's own rules ([`crate::rules::check_step`]) judged on the change
//! each step would make, so an app never offers a step the server refuses.

use crate::model::{DisputeAction, DisputeLevel, HazardAction, Record, RecordBody};
use crate::rules::{Step, Writer, check_step, with_dispute_event, with_hazard_event};

/// A step an app can offer on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ActionKind {
    /// Change the record's fields (`update_record`).
    Edit,
    /// Delete the record (`delete_record`).
    Delete,
    /// 甄别分类 a dispute.
    DisputeClassify,
    /// Set a dispute's 化解方案 and team.
    DisputeSetPlan,
    /// Add a follow-up to a dispute.
    DisputeFollowUp,
    /// Put a dispute under 稳控.
    DisputeStabilize,
    /// Escalate a dispute one level up (`escalate_to` says where).
    DisputeEscalate,
    /// Record a dispute resolved.
    DisputeResolve,
    /// Settle a dispute's conflict (`settle_conflict`).
    DisputeSettle,
    /// Record a hazard handling step.
    HazardStep,
    /// Record a hazard removed.
    HazardResolve,
}

impl ActionKind {
    /// Chinese label, for a button.
    pub fn label_zh(self) -> &'static str {
        match self {
            ActionKind::Edit => "修改",
            ActionKind::Delete => "删除",
            ActionKind::DisputeClassify => "甄别分类",
            ActionKind::DisputeSetPlan => "制定化解方案",
            ActionKind::DisputeFollowUp => "跟进",
            ActionKind::DisputeStabilize => "稳控管理",
            ActionKind::DisputeEscalate => "上报",
            ActionKind::DisputeResolve => "化解",
            ActionKind::DisputeSettle => "裁定冲突",
            ActionKind::HazardStep => "报处置情况",
            ActionKind::HazardResolve => "隐患已消除",
        }
    }
}

/// Whether the enrolled user may take one step now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ActionCheck {
    /// The step.
    pub action: ActionKind,
    /// Its Chinese label.
    pub label_zh: String,
    /// Whether the server would take it.
    pub allowed: bool,
    /// Why not, in Chinese (when not allowed).
    pub reason_zh: Option<String>,
    /// For an escalation, the level it goes to.
    pub escalate_to: Option<DisputeLevel>,
    /// For settling a conflict, the ids of the conflicting steps this user
    /// may keep (those above a dispute's level may keep either side; those
    /// below it only an escalation).
    pub settle_keeps: Vec<String>,
}

fn check(action: ActionKind, verdict: Result<(), String>) -> ActionCheck {
    ActionCheck {
        action,
        label_zh: action.label_zh().to_owned(),
        allowed: verdict.is_ok(),
        reason_zh: verdict.err(),
        escalate_to: None,
        settle_keeps: Vec::new(),
    }
}

/// The record with one more step by `w`, as `check_step` judges it.
fn with_dispute_step(r: &Record, w: &Writer, action: DisputeAction) -> Record {
    with_dispute_event(r, &w.user_id, r.updated_at.max(0) + 1, action)
}

fn with_hazard_step(r: &Record, w: &Writer, action: HazardAction) -> Record {
    with_hazard_event(r, &w.user_id, r.updated_at.max(0) + 1, action)
}

/// The steps a record of its kind offers, each judged for `w` (`None`: the
/// phone is not enrolled, and nothing is allowed). A step the server
/// refused earlier blocks nothing: the next edit repairs the record and
/// keeps the refused step aside.
pub(super) fn checks(w: Option<&Writer>, r: &Record) -> Vec<ActionCheck> {
    let mut steps: Vec<(ActionKind, Option<Record>)> = vec![(ActionKind::Edit, None), (ActionKind::Delete, None)];
    let mut escalate_to = None;
    let mut settle_keeps: Vec<String> = Vec::new();
    match &r.body {
        RecordBody::Dispute(d) => {
            let st = d.state();
            if let Some(w) = w {
                let note = || "…".to_owned();
                let next = match st.level {
                    DisputeLevel::Village => Some(DisputeLevel::Township),
                    DisputeLevel::Township => Some(DisputeLevel::County),
                    DisputeLevel::County => None,
                };
                escalate_to = next;
                // The sides of open conflicts this user may keep; the first
                // stands for the step (an app offers each of `settle_keeps`).
                settle_keeps = st
                    .conflicts
                    .iter()
                    .flat_map(|c| [c.a.clone(), c.b.clone()])
                    .filter(|kept| {
                        let after =
                            with_dispute_step(r, w, DisputeAction::Settled { kept: kept.clone(), note: note() });
                        check_step(w, r, Step::Append(&after)).is_ok()
                    })
                    .collect();
                let kept = settle_keeps.first().or(st.conflicts.first().map(|c| &c.a)).cloned();
                let candidates = [
                    (
                        ActionKind::DisputeClassify,
                        Some(DisputeAction::Classified { category: st.category, note: note() }),
                    ),
                    (ActionKind::DisputeSetPlan, Some(DisputeAction::PlanSet { plan: note(), team: Vec::new() })),
                    (ActionKind::DisputeFollowUp, Some(DisputeAction::FollowUp { note: note() })),
                    (ActionKind::DisputeStabilize, Some(DisputeAction::Stabilized { note: note() })),
                    (ActionKind::DisputeEscalate, next.map(|to| DisputeAction::Escalated { to, note: note() })),
                    (ActionKind::DisputeResolve, Some(DisputeAction::Resolved { note: note() })),
                    (ActionKind::DisputeSettle, kept.map(|kept| DisputeAction::Settled { kept, note: note() })),
                ];
                for (kind, action) in candidates {
                    steps.push((kind, action.map(|a| with_dispute_step(r, w, a))));
                }
            } else {
                for kind in [
                    ActionKind::DisputeClassify,
                    ActionKind::DisputeSetPlan,
                    ActionKind::DisputeFollowUp,
                    ActionKind::DisputeStabilize,
                    ActionKind::DisputeEscalate,
                    ActionKind::DisputeResolve,
                    ActionKind::DisputeSettle,
                ] {
                    steps.push((kind, None));
                }
            }
            let out = judge(w, r, steps, |kind| match kind {
                ActionKind::DisputeEscalate if st.level == DisputeLevel::County => {
                    Some("纠纷已在县级，不能再上报".into())
                }
                ActionKind::DisputeSettle if st.conflicts.is_empty() => Some("没有待裁定的冲突".into()),
                _ => None,
            });
            return out
                .into_iter()
                .map(|mut c| {
                    match c.action {
                        ActionKind::DisputeEscalate => c.escalate_to = escalate_to,
                        ActionKind::DisputeSettle if c.allowed => c.settle_keeps = settle_keeps.clone(),
                        _ => {}
                    }
                    c
                })
                .collect();
        }
        RecordBody::Hazard(_) => {
            for (kind, action) in [
                (ActionKind::HazardStep, HazardAction::Step { note: "…".into() }),
                (ActionKind::HazardResolve, HazardAction::Resolved { note: "…".into() }),
            ] {
                steps.push((kind, w.map(|w| with_hazard_step(r, w, action))));
            }
            return judge(w, r, steps, |_| None);
        }
        _ => {}
    }
    judge(w, r, steps, |_| None)
}

/// Judge each step: the phone's state first (not enrolled, deleted,
/// `not_now`), then the rules.
fn judge(
    w: Option<&Writer>,
    r: &Record,
    steps: Vec<(ActionKind, Option<Record>)>,
    not_now: impl Fn(ActionKind) -> Option<String>,
) -> Vec<ActionCheck> {
    steps
        .into_iter()
        .map(|(kind, after)| {
            let verdict = (|| {
                let Some(w) = w else { return Err("本机尚未注册".to_owned()) };
                if r.deleted {
                    return Err("记录已删除".to_owned());
                }
                if let Some(why) = not_now(kind) {
                    return Err(why);
                }
                let step = match (kind, &after) {
                    (ActionKind::Edit, _) => Step::EditFields,
                    (ActionKind::Delete, _) => Step::Delete,
                    (_, Some(after)) => Step::Append(after),
                    // A step with nothing to append (no level above, no
                    // conflict) was answered by `not_now`.
                    (_, None) => return Err("当前不能进行此操作".to_owned()),
                };
                check_step(w, r, step).map_err(|refusal| refusal.message_zh)
            })();
            check(kind, verdict)
        })
        .collect()
}
