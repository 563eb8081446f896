//! Who may see what. The server decides on every pull (the feed's SQL
//! filters follow the same scope) and on every single-record read on the
//! web; the phone never decides. Who may *change* what is judged change by
//! change by the core's rules ([`gridsync_core::rules`]).
//!
//! - grid manager: own group; village leader and supervisor: their village;
//!   township chief: township; county staff: the whole county; agency staff:
//!   no records (they enter case counts only).
//! - Sensitive records (household ledgers, visits to key persons) are read
//!   only by those who work the grid on the ground: the group's manager and
//!   the village's leader and supervisor.

use gridsync_core::grid::Role;

use crate::store::User;

/// Whether `user` may read `record`'s data (also used for single-record reads on the web).
pub fn may_read(user: &User, grid: &gridsync_core::grid::GridPath, sensitive: bool) -> bool {
    if user.role == Role::AgencyStaff {
        return false;
    }
    user.scope().contains(grid) && (!sensitive || user.role.reads_sensitive())
}
