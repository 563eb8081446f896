//! The Chinese label of every code an app shows, in one table, so an app
//! keeps no translations of its own and shows what the dashboard shows.

use serde::Serialize;

use super::ActionKind;
use crate::grid::{GridLevel, Role};
use crate::model::{
    DisputeAction, DisputeCategory, DisputeLevel, HazardAction, HazardCategory, PatrolSlot, PersonCategory, RecordKind,
    RecordStatus, VisitTarget,
};
use crate::protocol::RejectReason;

/// What a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum LabelGroup {
    /// Record kinds (`hazard`).
    RecordKind,
    /// Statuses, by kind: `<kind>.<status>` (`hazard.resolved` 已消除,
    /// `dispute.resolved` 已化解).
    RecordStatus,
    /// Dispute levels (`township`).
    DisputeLevel,
    /// Dispute categories (`land`).
    DisputeCategory,
    /// Dispute steps (`escalated`).
    DisputeAction,
    /// Hazard categories (`fire`).
    HazardCategory,
    /// Hazard steps (`step`).
    HazardAction,
    /// What a visit was to (`key_person`).
    VisitTarget,
    /// A household member's category (`under_guardianship`).
    PersonCategory,
    /// Patrol times of day (`morning`).
    PatrolSlot,
    /// Roles (`village_leader`).
    Role,
    /// Grid levels (`village`).
    GridLevel,
    /// Steps an app offers ([`ActionKind`], by its Rust name in snake case).
    Action,
    /// Why a server refused a record (`forbidden`).
    RejectReason,
}

/// One code's label.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Label {
    /// What it names.
    pub group: LabelGroup,
    /// The machine name, as records, filters and errors carry it.
    pub code: String,
    /// Chinese label.
    pub label_zh: String,
}

/// A unit variant's machine name, as serde writes it into documents.
fn code<T: Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every label.
pub fn labels() -> Vec<Label> {
    let mut out = Vec::new();
    let mut add = |group, code: String, label: &str| out.push(Label { group, code, label_zh: label.to_owned() });
    for k in RecordKind::ALL {
        add(LabelGroup::RecordKind, k.as_str().to_owned(), k.label_zh());
        for s in RecordStatus::ALL {
            add(LabelGroup::RecordStatus, format!("{}.{}", k.as_str(), s.as_str()), s.label_zh(k));
        }
    }
    for l in [DisputeLevel::Village, DisputeLevel::Township, DisputeLevel::County] {
        add(LabelGroup::DisputeLevel, code(l), l.label_zh());
    }
    use DisputeCategory as C;
    for c in [C::Neighbour, C::Family, C::Land, C::Debt, C::Labour, C::Other] {
        add(LabelGroup::DisputeCategory, code(c), c.label_zh());
    }
    let s = String::new;
    for a in [
        DisputeAction::Found { note: s() },
        DisputeAction::Classified { category: C::Other, note: s() },
        DisputeAction::PlanSet { plan: s(), team: Vec::new() },
        DisputeAction::FollowUp { note: s() },
        DisputeAction::Stabilized { note: s() },
        DisputeAction::Escalated { to: DisputeLevel::Township, note: s() },
        DisputeAction::Resolved { note: s() },
        DisputeAction::Settled { kept: s(), note: s() },
    ] {
        add(LabelGroup::DisputeAction, a.name().to_owned(), a.label_zh());
    }
    use HazardCategory as H;
    for c in [H::Fire, H::Traffic, H::Geological, H::Flood, H::Building, H::Production, H::PublicOrder, H::Other] {
        add(LabelGroup::HazardCategory, code(c), c.label_zh());
    }
    for a in
        [HazardAction::Reported { note: s() }, HazardAction::Step { note: s() }, HazardAction::Resolved { note: s() }]
    {
        add(LabelGroup::HazardAction, a.name().to_owned(), a.label_zh());
    }
    for t in [VisitTarget::FloatingPopulation, VisitTarget::KeyPerson, VisitTarget::SpecialPlace] {
        add(LabelGroup::VisitTarget, code(t), t.label_zh());
    }
    use PersonCategory as P;
    for c in [P::Resident, P::Floating, P::KeyPerson, P::UnderGuardianship] {
        add(LabelGroup::PersonCategory, code(c), c.label_zh());
    }
    for slot in [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening] {
        add(LabelGroup::PatrolSlot, code(slot), slot.label_zh());
    }
    use Role as R;
    for r in [R::GridManager, R::VillageLeader, R::Supervisor, R::TownshipChief, R::CountyStaff, R::AgencyStaff] {
        add(LabelGroup::Role, r.as_str().to_owned(), r.label_zh());
    }
    for l in [GridLevel::County, GridLevel::Township, GridLevel::Village, GridLevel::Group] {
        add(LabelGroup::GridLevel, code(l), l.label_zh());
    }
    use ActionKind as A;
    for a in [
        A::Edit,
        A::Delete,
        A::DisputeClassify,
        A::DisputeSetPlan,
        A::DisputeFollowUp,
        A::DisputeStabilize,
        A::DisputeEscalate,
        A::DisputeResolve,
        A::DisputeSettle,
        A::HazardStep,
        A::HazardResolve,
    ] {
        add(LabelGroup::Action, snake(&format!("{a:?}")), a.label_zh());
    }
    use RejectReason as J;
    for j in [J::OutOfScope, J::Invalid, J::Malformed, J::Forbidden, J::MissingDependencies, J::TooLarge, J::Immutable]
    {
        add(LabelGroup::RejectReason, j.as_str().to_owned(), j.label_zh());
    }
    out
}
