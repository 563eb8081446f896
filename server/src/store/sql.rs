//! What both SQL backends share: the index columns of a grid path, the
//! record view's columns, the sign-in lockout policy, the audit log's
//! query and a mutex that a panic cannot poison.

use gridsync_core::grid::GridPath;

use super::*;

/// (township, village, group) codes of a path, empty where absent: the
/// index columns both backends store.
pub(super) fn parts(g: &GridPath) -> (String, String, String) {
    (
        g.township().unwrap_or_default().to_owned(),
        g.village().unwrap_or_default().to_owned(),
        g.group().unwrap_or_default().to_owned(),
    )
}

/// Columns of a [`RecordView`], in the order both backends read them.
pub(super) const VIEW_COLS: &str = "id, kind, grid, status, level, title, occurred_at, created_at, updated_at, author, sensitive, deleted, has_conflict, json";

/// One sign-in attempt against a stored (failures, locked_until): `None` if
/// the account is locked now, else the (failures, locked_until) to store.
/// The attempt counts as a failure until a success clears it; the
/// `max_failures`-th locks the account and starts the count again.
pub(super) fn sign_in_step(
    failures: i64,
    locked_until: Option<i64>,
    now: i64,
    max_failures: u32,
    lock_ms: i64,
) -> Option<(i64, Option<i64>)> {
    if locked_until.is_some_and(|t| t > now) {
        return None;
    }
    if failures + 1 >= i64::from(max_failures) {
        Some((0, Some(now.saturating_add(lock_ms))))
    } else {
        Some((failures + 1, None))
    }
}

/// The audit query as SQL with numbered placeholders (`?1` or `$1`) and its
/// arguments, the same for both backends.
pub(super) fn audit_sql(q: &AuditQuery, placeholder: impl Fn(usize) -> String) -> (String, Vec<AuditArg>) {
    let mut sql = String::from("SELECT seq, at, user_id, action, target, ip FROM audit_log WHERE 1=1");
    let mut args: Vec<AuditArg> = Vec::new();
    let mut add = |sql: &mut String, clause: &str, v: AuditArg| {
        args.push(v);
        sql.push_str(&clause.replace('#', &placeholder(args.len())));
    };
    if let Some(u) = &q.user {
        add(&mut sql, " AND user_id = #", AuditArg::Text(u.clone()));
    }
    if let Some(a) = &q.action {
        add(&mut sql, " AND action = #", AuditArg::Text(a.clone()));
    }
    if let Some(t) = &q.target {
        add(&mut sql, " AND target = #", AuditArg::Text(t.clone()));
    }
    if let Some(t) = q.from {
        add(&mut sql, " AND at >= #", AuditArg::Int(t));
    }
    if let Some(t) = q.until {
        add(&mut sql, " AND at < #", AuditArg::Int(t));
    }
    if let Some(s) = q.before_seq {
        add(&mut sql, " AND seq < #", AuditArg::Int(s));
    }
    add(&mut sql, " ORDER BY seq DESC LIMIT #", AuditArg::Int(i64::from(q.limit.clamp(1, 1000))));
    (sql, args)
}

/// An argument of [`audit_sql`].
#[derive(Debug, Clone)]
pub(super) enum AuditArg {
    Text(String),
    Int(i64),
}

impl rusqlite::ToSql for AuditArg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            AuditArg::Text(s) => s.to_sql(),
            AuditArg::Int(i) => i.to_sql(),
        }
    }
}

/// Lock a mutex, ignoring poisoning: a panic while holding a connection
/// cannot leave a half-written transaction behind (it rolls back on drop).
pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
