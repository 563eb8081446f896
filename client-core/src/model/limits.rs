//! Limits that cannot freeze a record.
//!
//! Phones add to a record offline and at once, so the merged record can
//! hold more than any one of them saw: two people adding members each stay
//! within the limit and together pass it. A limit checked on the whole
//! record would then refuse every later step of everyone, the escalation
//! and the resolution included. So the counted limits here refuse only a
//! step that *adds* to what it counts while the result is past the limit,
//! as its writer saw the record; a step that adds nothing to a count
//! (closing, escalating, settling, resolving, deleting, editing another
//! field) is never refused for it, whatever the merged record holds.
//!
//! Where one person could use up a budget everyone shares, the budget is
//! per author: the notes of a history (a dispute's 排查发现 and follow-ups,
//! a hazard's reports and handling steps) are counted per person, so a
//! grid manager's thousand follow-ups never stop the village leader's.
//! A history's decisions (classification, plan, 稳控, escalation,
//! resolution, settlement) are not counted at all: the size limit bounds
//! them ([`crate::judge::MAX_DOC_BYTES`], past which only the record's
//! handlers still act). See `docs/records.md`, "Limits that cannot freeze
//! a record".

use std::collections::{BTreeMap, BTreeSet};

use crate::error::FieldError;

use super::{DisputeAction, HazardAction, Record, RecordBody};

/// Notes (a dispute's 排查发现 and follow-ups, a hazard's reports and
/// handling steps) one person may record in one record's history.
pub const MAX_NOTES_PER_AUTHOR: usize = 1000;
/// Members of one household.
pub const MAX_MEMBERS: usize = 100;
/// Entries in each of a household's machinery, vehicles and facilities.
pub const MAX_ASSETS: usize = 100;

/// The notes of a record's history, as (event id, author).
fn notes(r: &Record) -> Vec<(&str, &str)> {
    match &r.body {
        RecordBody::Dispute(d) => d
            .events
            .iter()
            .filter(|e| matches!(e.action, DisputeAction::Found { .. } | DisputeAction::FollowUp { .. }))
            .map(|e| (e.id.as_str(), e.by.as_str()))
            .collect(),
        RecordBody::Hazard(h) => h
            .events
            .iter()
            .filter(|e| matches!(e.action, HazardAction::Reported { .. } | HazardAction::Step { .. }))
            .map(|e| (e.id.as_str(), e.by.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `after` has a key `before` does not.
fn adds<V>(before: Option<&BTreeMap<String, V>>, after: &BTreeMap<String, V>) -> bool {
    after.keys().any(|k| before.is_none_or(|b| !b.contains_key(k)))
}

/// The counted limits a step from `before` (`None`: a new record) to
/// `after` breaks: only where it adds to a count that is then past its
/// limit (for notes, its author's count).
pub(crate) fn added_past_limits(before: Option<&Record>, after: &Record) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let old: BTreeSet<&str> = before.map(|b| notes(b).into_iter().map(|(id, _)| id).collect()).unwrap_or_default();
    let all = notes(after);
    let adding: BTreeSet<&str> = all.iter().filter(|(id, _)| !old.contains(id)).map(|(_, by)| *by).collect();
    if adding.iter().any(|a| all.iter().filter(|(_, by)| by == a).count() > MAX_NOTES_PER_AUTHOR) {
        errs.push(FieldError::new(
            "events",
            "too_many",
            format!("每人在一条记录上最多记录{MAX_NOTES_PER_AUTHOR}条跟进或处置情况"),
        ));
    }
    if let RecordBody::Household(h) = &after.body {
        let b = match before.map(|b| &b.body) {
            Some(RecordBody::Household(b)) => Some(b),
            _ => None,
        };
        if h.members.len() > MAX_MEMBERS && adds(b.map(|b| &b.members), &h.members) {
            errs.push(FieldError::new("members", "too_long", format!("家庭成员不能超过{MAX_MEMBERS}人")));
        }
        for (field, new, old) in [
            ("machinery", &h.machinery, b.map(|b| &b.machinery)),
            ("vehicles", &h.vehicles, b.map(|b| &b.vehicles)),
            ("facilities", &h.facilities, b.map(|b| &b.facilities)),
        ] {
            if new.len() > MAX_ASSETS && adds(old, new) {
                errs.push(FieldError::new(field, "too_long", format!("登记项不能超过{MAX_ASSETS}个")));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;
    use crate::grid::GridPath;
    use crate::model::*;

    fn household(members: usize) -> Record {
        let members = (0..members)
            .map(|i| {
                let m = Member {
                    name: format!("成员{i}"),
                    relation: String::new(),
                    category: PersonCategory::Resident,
                    id_number: String::new(),
                    guardian: None,
                };
                (format!("m{i}"), m)
            })
            .collect();
        Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            0,
            RecordBody::Household(Household {
                head_name: "张三".into(),
                address: "两当县一组".into(),
                ten_household_group: String::new(),
                members,
                machinery: BTreeMap::new(),
                vehicles: BTreeMap::new(),
                facilities: BTreeMap::new(),
                notes: String::new(),
            }),
        )
    }

    fn with(r: &Record, f: impl FnOnce(&mut Household)) -> Record {
        let mut n = r.clone();
        if let RecordBody::Household(h) = &mut n.body {
            f(h);
        }
        n
    }

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            relation: String::new(),
            category: PersonCategory::Resident,
            id_number: String::new(),
            guardian: None,
        }
    }

    fn reasons(e: Result<(), CoreError>) -> Vec<String> {
        match e {
            Ok(()) => vec![],
            Err(CoreError::Invalid(errs)) => errs.into_iter().map(|e| e.message_zh).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    /// Two people add members at once, each within the limit, and the
    /// merge holds 105: the address fix, a member's correction and a
    /// removal are taken; adding a 106th is not; nor is a new record of 101.
    #[test]
    fn members_past_the_limit_after_a_merge_freeze_nothing() {
        let merged = household(105);
        let fixed = with(&merged, |h| h.address = "两当县二组".into());
        assert_eq!(reasons(fixed.validate_step(Some(&merged))), Vec::<String>::new());
        let renamed = with(&merged, |h| h.members.get_mut("m3").unwrap().name = "改名".into());
        assert_eq!(reasons(renamed.validate_step(Some(&merged))), Vec::<String>::new());
        let removed = with(&merged, |h| {
            h.members.remove("m0");
        });
        assert_eq!(reasons(removed.validate_step(Some(&merged))), Vec::<String>::new());
        let added = with(&merged, |h| {
            h.members.insert("new".into(), member("新成员"));
        });
        assert_eq!(reasons(added.validate_step(Some(&merged))), ["家庭成员不能超过100人"]);
        // Each phone's own step, from 95, stays within the limit.
        let base = household(95);
        let five = with(&base, |h| {
            for i in 0..5 {
                h.members.insert(format!("a{i}"), member("甲"));
            }
        });
        assert_eq!(reasons(five.validate_step(Some(&base))), Vec::<String>::new());
        assert_eq!(reasons(household(101).validate()), ["家庭成员不能超过100人"]);
        assert_eq!(reasons(household(100).validate()), Vec::<String>::new());
    }

    fn dispute(notes_by_gm: usize) -> Record {
        let mut events = vec![next_event(&[], "gm1", 1, DisputeAction::Found { note: String::new() })];
        for i in 1..notes_by_gm {
            let e = next_event(&events, "gm1", 1 + i as i64, DisputeAction::FollowUp { note: format!("跟进{i}") });
            events.push(e);
        }
        Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1,
            RecordBody::Dispute(Dispute {
                parties: vec!["张三".into()],
                category: DisputeCategory::Land,
                summary: "地界".into(),
                found_at: 1,
                events,
            }),
        )
    }

    fn act(r: &Record, by: &str, action: DisputeAction) -> Record {
        crate::rules::with_dispute_event(r, by, 5_000, action)
    }

    /// A grid manager's thousand notes are his budget, not everyone's: his
    /// next note is refused, the village leader's note, classification and
    /// escalation are not.
    #[test]
    fn notes_are_budgeted_per_author_and_decisions_not_at_all() {
        let full = dispute(MAX_NOTES_PER_AUTHOR);
        let more = act(&full, "gm1", DisputeAction::FollowUp { note: "再跟进".into() });
        assert_eq!(reasons(more.validate_step(Some(&full))), ["每人在一条记录上最多记录1000条跟进或处置情况"]);
        // Stabilizing is a decision, not a note: the grid manager may still.
        let watch = act(&full, "gm1", DisputeAction::Stabilized { note: "稳控".into() });
        assert_eq!(reasons(watch.validate_step(Some(&full))), Vec::<String>::new());
        for action in [
            DisputeAction::FollowUp { note: "村里跟进".into() },
            DisputeAction::Classified { category: DisputeCategory::Neighbour, note: String::new() },
            DisputeAction::Escalated { to: DisputeLevel::Township, note: "上报".into() },
        ] {
            let step = act(&full, "vl1", action);
            assert_eq!(reasons(step.validate_step(Some(&full))), Vec::<String>::new());
        }
        // Two phones' notes merged past one author's budget (his two
        // phones, say): what is merged is not refused, more of his is.
        let merged = act(&full, "gm1", DisputeAction::FollowUp { note: "另一台手机".into() });
        let escalate =
            act(&merged, "vl1", DisputeAction::Escalated { to: DisputeLevel::Township, note: String::new() });
        assert_eq!(reasons(escalate.validate_step(Some(&merged))), Vec::<String>::new());
    }

    /// The same for a hazard: a grid manager's handling steps past his
    /// budget, and the township chief's resolution.
    #[test]
    fn a_hazard_full_of_one_persons_steps_still_takes_a_resolution() {
        let mut events = vec![next_event(&[], "gm1", 1, HazardAction::Reported { note: String::new() })];
        for i in 1..=MAX_NOTES_PER_AUTHOR {
            let e = next_event(&events, "gm1", 1 + i as i64, HazardAction::Step { note: format!("处置{i}") });
            events.push(e);
        }
        let padded = Record::new(
            GridPath::parse("t01/v01/g1").unwrap(),
            "gm1",
            1,
            RecordBody::Hazard(Hazard {
                category: HazardCategory::Geological,
                location: Location { text: "二组后山".into(), gps: None },
                description: "山体裂缝".into(),
                events,
            }),
        );
        let resolved =
            crate::rules::with_hazard_event(&padded, "tc1", 9_999, HazardAction::Resolved { note: "已消除".into() });
        assert_eq!(reasons(resolved.validate_step(Some(&padded))), Vec::<String>::new());
        let step = crate::rules::with_hazard_event(&padded, "gm1", 9_999, HazardAction::Step { note: "又一步".into() });
        assert_eq!(reasons(step.validate_step(Some(&padded))), ["每人在一条记录上最多记录1000条跟进或处置情况"]);
    }
}
