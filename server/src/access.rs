//! Who may see and change what. The server decides on every push and pull;
//! the phone never does.
//!
//! - grid manager: own group; village leader and supervisor: their village;
//!   township chief: township; county staff: the whole county; agency staff:
//!   no records (they enter case counts only).
//! - Sensitive records (household ledgers, visits to key persons) are read
//!   and written only by those who work the grid on the ground: the group's
//!   manager and the village's leader and supervisor.
//! - Dispute actions follow [`DisputeAction::may_act`].
//! - Supervision records: the weekly village meeting is written by the
//!   village's leader or supervisor; the township's monthly review and
//!   monthly report by its chief. A submitted monthly report is final.

use gridsync_core::grid::Role;
use gridsync_core::model::{Record, RecordBody, RecordKind};

use crate::store::User;

/// Whether `user` may read `record`'s data (also used for single-record reads on the web).
pub fn may_read(user: &User, grid: &gridsync_core::grid::GridPath, sensitive: bool) -> bool {
    if user.role == Role::AgencyStaff {
        return false;
    }
    user.scope().contains(grid) && (!sensitive || user.role.reads_sensitive())
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Outside the user's grid.
    OutOfScope,
    /// Inside the grid, but the role may not do this.
    Forbidden(String),
}

/// Whether `user` may write the merged `after` state of a record whose
/// stored state was `before` (None for a new record).
pub fn may_write(user: &User, before: Option<&Record>, after: &Record) -> Result<(), Denied> {
    if user.role == Role::AgencyStaff {
        return Err(Denied::Forbidden("县直部门账号不能修改网格记录".into()));
    }
    if !user.scope().contains(&after.grid) {
        return Err(Denied::OutOfScope);
    }
    if after.index().sensitive && !user.role.reads_sensitive() {
        return Err(Denied::Forbidden("只有本网格的网格员、网格长和督导员可以修改涉及个人敏感信息的记录".into()));
    }
    if before.is_none() && after.author != user.id {
        return Err(Denied::Forbidden("新记录的记录人必须是当前用户".into()));
    }
    match after.kind() {
        RecordKind::VillageMeeting if !matches!(user.role, Role::VillageLeader | Role::Supervisor) => {
            return Err(Denied::Forbidden("只有本村网格长或网格督导员可以记录周排查例会".into()));
        }
        RecordKind::TownshipReview | RecordKind::MonthlyReport if user.role != Role::TownshipChief => {
            return Err(Denied::Forbidden("只有乡镇网格总长可以记录月研判和月度报告".into()));
        }
        _ => {}
    }
    // The county judges lateness by the submission time: once submitted, a
    // report (and that time) cannot change.
    if let Some(b) = before
        && let RecordBody::MonthlyReport(old) = &b.body
        && old.submitted_at.is_some()
        && (b.body != after.body || b.deleted != after.deleted)
    {
        return Err(Denied::Forbidden("月度报告已提交，不能再修改".into()));
    }
    if let RecordBody::Dispute(d) = &after.body {
        let old_events: std::collections::HashSet<&str> = match before.map(|b| &b.body) {
            Some(RecordBody::Dispute(b)) => b.events.iter().map(|e| e.id.as_str()).collect(),
            _ => Default::default(),
        };
        for e in d.events.iter().filter(|e| !old_events.contains(e.id.as_str())) {
            if e.by != user.id {
                return Err(Denied::Forbidden("事件记录人必须是当前用户".into()));
            }
            // Judge each new event by the level its author saw, so the
            // outcome does not depend on which concurrent edit arrived first.
            let level = d.state_seen_by(&e.id).level;
            if !e.action.may_act(user.role, level) {
                return Err(Denied::Forbidden(format!(
                    "{}不能在{}纠纷上进行“{}”操作",
                    user.role.label_zh(),
                    level.label_zh(),
                    e.action.label_zh()
                )));
            }
        }
    }
    Ok(())
}
