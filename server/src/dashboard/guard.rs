//! Who may open which node and which record on the dashboard: one guard
//! for a node ([`visible`]) and one for a record ([`readable`]), both on
//! the server's one read rule ([`crate::access::may_read`]).

use gridsync_core::grid::GridPath;
use gridsync_core::model::{Record, RecordKind};
use uuid::Uuid;

use super::{Ctx, WebError};
use crate::access::{Denied, may_read};
use crate::store::{RecordView, ServerStore};

/// A node outside the signed-in user's grid.
pub const OUT_OF_SCOPE: &str = "该页面超出您的网格范围，您只能查看本人负责网格内的信息";
/// A sensitive record the user's role may not read.
pub const SENSITIVE: &str = "该记录涉及个人敏感信息，只有本网格的网格管理员、网格长和网格督导员可以查看";

/// A grid path from a page's address (a malformed one is no page).
pub fn parse_grid(s: &str) -> Result<GridPath, WebError> {
    GridPath::parse(s).map_err(|_| WebError::NotFound)
}

/// The part of `node` the user may see ([`crate::access::narrowed`]);
/// otherwise 403.
pub fn visible(user: &crate::store::User, node: &GridPath) -> Result<GridPath, WebError> {
    crate::access::narrowed(user, node).map_err(|d| match d {
        Denied::NoRecords => WebError::Forbidden("县直部门账号只能录入“四无”案件数，不能查看网格记录".into()),
        Denied::OutOfScope => WebError::Forbidden(OUT_OF_SCOPE.into()),
    })
}

/// The node a list page is about: `?grid=` (or the user's own grid), cut to
/// what the user may see.
pub fn node_of(ctx: &Ctx, grid: Option<&str>) -> Result<GridPath, WebError> {
    let node = match grid {
        Some(g) => parse_grid(g)?,
        None => ctx.user.scope(),
    };
    visible(&ctx.user, &node)
}

/// The record `id` if the signed-in user may read it: stored, not deleted,
/// of `kind` (any kind for `None`), in their grid, and sensitive only for
/// the roles that read sensitive records. Every read of a sensitive
/// record, and every refusal of one, goes to the audit log under `audit`
/// (and `{audit}_refused`) before anything is shown.
pub fn readable(
    s: &dyn ServerStore,
    ctx: &Ctx,
    id: &str,
    kind: Option<RecordKind>,
    audit: &str,
) -> Result<(RecordView, Record), WebError> {
    guarded(s, ctx, id, kind, false, audit)
}

/// [`readable`], a deleted record included (who made, and who deleted, a
/// record stays on its provenance page).
pub fn readable_even_deleted(
    s: &dyn ServerStore,
    ctx: &Ctx,
    id: &str,
    audit: &str,
) -> Result<(RecordView, Record), WebError> {
    guarded(s, ctx, id, None, true, audit)
}

fn guarded(
    s: &dyn ServerStore,
    ctx: &Ctx,
    id: &str,
    kind: Option<RecordKind>,
    deleted_too: bool,
    audit: &str,
) -> Result<(RecordView, Record), WebError> {
    let id = Uuid::parse_str(id).map_err(|_| WebError::NotFound)?;
    let v = s.record(id)?.ok_or(WebError::NotFound)?;
    if (v.deleted && !deleted_too) || kind.is_some_and(|k| k != v.kind) {
        return Err(WebError::NotFound);
    }
    if !may_read(&ctx.user, &v.grid, v.sensitive) {
        if v.sensitive {
            ctx.audit(s, &format!("{audit}_refused"), &id.to_string())?;
        }
        let why = if ctx.user.scope().contains(&v.grid) { SENSITIVE } else { OUT_OF_SCOPE };
        return Err(WebError::Forbidden(why.into()));
    }
    let r = Record::from_json(&v.json).map_err(|_| WebError::NotFound)?;
    if v.sensitive {
        ctx.audit(s, audit, &id.to_string())?;
    }
    Ok((v, r))
}
