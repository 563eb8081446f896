//! Accounts: the checks a new or changed user passes and the enrollment
//! codes that bring a phone to a user, in one place for every way in (the
//! dashboard's people pages, the `add-user` and `enroll-code` commands, the
//! test harness), so no door accepts what another refuses.

use gridsync_core::grid::{GridLevel, GridPath, Role};

use crate::auth;
use crate::store::{Agency, ServerStore, StoreError, User};

/// How long an enrollment code from the dashboard stays valid, hours.
pub const CODE_VALID_HOURS: i64 = 72;
/// Longest account id, characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest display name, characters.
pub const MAX_NAME_CHARS: usize = 50;

/// Why an account cannot be made or changed as asked. Its `Display` is the
/// Chinese message the dashboard and the CLI show.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The id is empty, too long or has characters other than letters,
    /// digits and `- _ .`.
    #[error("账号须为1至64个字母、数字或 - _ . 组成")]
    Id,
    /// The display name is empty or too long.
    #[error("姓名须为1至50个字")]
    Name,
    /// The grid path is not a path.
    #[error("网格编码“{0}”格式错误，例如 t01/v03/g2")]
    GridFormat(String),
    /// The grid path is not in the tree.
    #[error("没有网格“{0}”")]
    UnknownGrid(GridPath),
    /// The role works at another level of the tree.
    #[error("{}应分配到{}一级的网格（例如{}）", .0.label_zh(), .0.grid_level().label_zh(), example(.0.grid_level()))]
    WrongLevel(Role),
    /// An agency account without its agency.
    #[error("县直部门账号请选择所属部门")]
    AgencyMissing,
    /// The id is taken.
    #[error("账号“{0}”已存在")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn example(level: GridLevel) -> &'static str {
    match level {
        GridLevel::Group => "t01/v03/g2",
        GridLevel::Village => "t01/v03",
        GridLevel::Township => "t01",
        GridLevel::County => "留空",
    }
}

/// A grid path as typed (surrounding spaces ignored).
pub fn parse_grid(raw: &str) -> Result<GridPath, AccountError> {
    GridPath::parse(raw.trim()).map_err(|_| AccountError::GridFormat(raw.trim().to_owned()))
}

/// An account id: 1 to [`MAX_ID_CHARS`] letters, digits or `- _ .`.
pub fn check_id(id: &str) -> Result<(), AccountError> {
    let ok = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok { Ok(()) } else { Err(AccountError::Id) }
}

/// Where `role` may be placed: `grid` at the role's level and in the tree
/// (the county is the root), and an agency for agency staff only. Returns
/// the agency to keep (none for other roles).
pub fn check_assignment(
    store: &dyn ServerStore,
    role: Role,
    grid: &GridPath,
    agency: Option<Agency>,
) -> Result<Option<Agency>, AccountError> {
    if grid.level() != role.grid_level() {
        return Err(AccountError::WrongLevel(role));
    }
    if grid.level() != GridLevel::County && !store.grid_nodes()?.iter().any(|n| &n.path == grid) {
        return Err(AccountError::UnknownGrid(grid.clone()));
    }
    match (role, agency) {
        (Role::AgencyStaff, None) => Err(AccountError::AgencyMissing),
        (Role::AgencyStaff, a) => Ok(a),
        _ => Ok(None),
    }
}

/// Check and add a user (with their agency): every check of this module,
/// then the store's. Nothing is written when a check fails.
pub fn add_user(store: &dyn ServerStore, user: &User, agency: Option<Agency>) -> Result<(), AccountError> {
    check_id(&user.id)?;
    let name = user.display_name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AccountError::Name);
    }
    let agency = check_assignment(store, user.role, &user.grid, agency)?;
    match store.add_user(&User { display_name: name.to_owned(), ..user.clone() }) {
        Err(StoreError::Conflict(_)) => return Err(AccountError::Exists(user.id.clone())),
        other => other?,
    }
    if agency.is_some() {
        store.set_agency(&user.id, agency)?;
    }
    Ok(())
}

/// A one-time enrollment code for `user_id`, valid `hours` from `now`; only
/// its hash is stored. `NotFound` if the user does not exist or is
/// deactivated.
pub fn issue_enrollment_code(
    store: &dyn ServerStore,
    user_id: &str,
    now: i64,
    hours: i64,
) -> Result<String, StoreError> {
    let code = auth::new_enrollment_code();
    store.create_enrollment(&auth::hash_secret(&auth::normalize_code(&code)), user_id, now + hours * 3_600_000)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GridNode;
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteServerStore;

    fn store() -> SqliteServerStore {
        let s = SqliteServerStore::in_memory().unwrap();
        s.migrate().unwrap();
        s.put_grid_nodes(&[
            GridNode { path: GridPath::parse("t01").unwrap(), name: "城关镇".into() },
            GridNode { path: GridPath::parse("t01/v01").unwrap(), name: "王家村".into() },
        ])
        .unwrap();
        s
    }

    fn user(id: &str, role: Role, grid: &str) -> User {
        User { id: id.into(), display_name: "王芳".into(), role, grid: GridPath::parse(grid).unwrap() }
    }

    #[test]
    fn a_user_is_placed_only_on_a_grid_of_the_tree_at_the_role_s_level() {
        let s = store();
        add_user(&s, &user("vl1", Role::VillageLeader, "t01/v01"), None).unwrap();
        let err = add_user(&s, &user("vl2", Role::VillageLeader, "t01/v09"), None).unwrap_err();
        assert_eq!(err.to_string(), "没有网格“t01/v09”");
        let err = add_user(&s, &user("vl3", Role::VillageLeader, "t01"), None).unwrap_err();
        assert_eq!(err.to_string(), "网格长应分配到村一级的网格（例如t01/v03）");
        let err = add_user(&s, &user("vl1", Role::VillageLeader, "t01/v01"), None).unwrap_err();
        assert_eq!(err.to_string(), "账号“vl1”已存在");
        assert!(matches!(add_user(&s, &user("a b", Role::CountyStaff, ""), None), Err(AccountError::Id)));
        let err = add_user(&s, &user("police", Role::AgencyStaff, ""), None).unwrap_err();
        assert!(matches!(err, AccountError::AgencyMissing));
        assert_eq!(s.users().unwrap().len(), 1, "nothing refused was written");
        add_user(&s, &user("police", Role::AgencyStaff, ""), Some(Agency::Police)).unwrap();
        assert_eq!(s.account("police").unwrap().unwrap().agency, Some(Agency::Police));
    }

    #[test]
    fn a_typed_grid_path_is_trimmed_and_a_malformed_one_named() {
        assert_eq!(parse_grid("  t01/v01 ").unwrap(), GridPath::parse("t01/v01").unwrap());
        assert_eq!(parse_grid(" t01//v01").unwrap_err().to_string(), "网格编码“t01//v01”格式错误，例如 t01/v03/g2");
    }

    #[test]
    fn an_enrollment_code_works_once_for_an_existing_user() {
        let s = store();
        add_user(&s, &user("vl1", Role::VillageLeader, "t01/v01"), None).unwrap();
        let code = issue_enrollment_code(&s, "vl1", 0, 1).unwrap();
        assert!(!code.is_empty());
        assert!(matches!(issue_enrollment_code(&s, "nobody", 0, 1), Err(StoreError::NotFound(_))));
    }
}
