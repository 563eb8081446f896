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

use gridsync_core::grid::{GridPath, Role};

use crate::store::{ReadScope, User};

/// Why a user may not read what they asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The role reads no records at all (agency staff).
    NoRecords,
    /// The node or record is outside the user's scope.
    OutOfScope,
}

/// What `user` reads from the feed: their scope, with sensitive records or
/// without; nothing for agency staff. The feed's SQL filters on it.
pub fn read_scope(user: &User) -> ReadScope {
    match user.role {
        Role::AgencyStaff => ReadScope { node: None, sensitive: false },
        r => ReadScope { node: Some(user.scope()), sensitive: r.reads_sensitive() },
    }
}

/// `node` when it is inside `user`'s scope: what a report may be about.
pub fn within(user: &User, node: GridPath) -> Result<GridPath, Denied> {
    if user.role == Role::AgencyStaff {
        return Err(Denied::NoRecords);
    }
    if user.scope().contains(&node) { Ok(node) } else { Err(Denied::OutOfScope) }
}

/// The part of `node` that `user` may see: the node itself when it is
/// inside their scope, their own scope when it is inside the node (a
/// village leader opening the township's list sees their village).
pub fn narrowed(user: &User, node: &GridPath) -> Result<GridPath, Denied> {
    if user.role == Role::AgencyStaff {
        return Err(Denied::NoRecords);
    }
    let scope = user.scope();
    if scope.contains(node) {
        Ok(node.clone())
    } else if node.contains(&scope) {
        Ok(scope)
    } else {
        Err(Denied::OutOfScope)
    }
}

/// Whether `user` may read `record`'s data (also used for single-record reads on the web).
pub fn may_read(user: &User, grid: &GridPath, sensitive: bool) -> bool {
    if user.role == Role::AgencyStaff {
        return false;
    }
    user.scope().contains(grid) && (!sensitive || user.role.reads_sensitive())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, grid: &str) -> User {
        User { id: "u".into(), display_name: "u".into(), role, grid: GridPath::parse(grid).unwrap() }
    }

    fn g(s: &str) -> GridPath {
        GridPath::parse(s).unwrap()
    }

    #[test]
    fn reports_stay_inside_the_scope_and_lists_narrow_to_it() {
        let vl = user(Role::VillageLeader, "t01/v01");
        assert_eq!(within(&vl, g("t01/v01/g2")), Ok(g("t01/v01/g2")));
        assert_eq!(within(&vl, g("t01")), Err(Denied::OutOfScope), "a report on the township is not the village's");
        assert_eq!(narrowed(&vl, &g("t01")), Ok(g("t01/v01")), "the township's list shows the village");
        assert_eq!(narrowed(&vl, &g("t01/v02")), Err(Denied::OutOfScope));
        let agency = user(Role::AgencyStaff, "");
        assert_eq!(within(&agency, g("t01")), Err(Denied::NoRecords));
        assert_eq!(narrowed(&agency, &g("")), Err(Denied::NoRecords));
    }

    #[test]
    fn the_feed_reads_sensitive_records_only_on_the_ground() {
        let s = read_scope(&user(Role::GridManager, "t01/v01/g1"));
        assert_eq!((s.node, s.sensitive), (Some(g("t01/v01/g1")), true));
        let s = read_scope(&user(Role::TownshipChief, "t01"));
        assert_eq!((s.node, s.sensitive), (Some(g("t01")), false));
        let s = read_scope(&user(Role::AgencyStaff, ""));
        assert_eq!((s.node, s.sensitive), (None, false));
        assert!(may_read(&user(Role::VillageLeader, "t01/v01"), &g("t01/v01/g3"), true));
        assert!(!may_read(&user(Role::TownshipChief, "t01"), &g("t01/v01/g3"), true));
    }
}
