//! Record changes made on the web. A form never writes the database
//! around the rules: it builds the new state with the core's own helpers
//! (`RecordDoc`, `next_event`), writes it as a diff against the stored
//! document (as `RecordDoc::update` does on a phone), and merges the
//! resulting changes through [`crate::sync::merge_records`] as the
//! signed-in user ([`crate::sync::web_pusher`]). So every change is judged
//! by `gridsync_core::judge` against `gridsync_core::rules`, exactly like a
//! phone's, and phones receive it at their next sync (its origin in the
//! feed is `web:<user id>`).

use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::model::Record;
use gridsync_core::protocol::RejectReason;
use uuid::Uuid;

use super::{Ctx, WebError};
use crate::store::{IncomingDoc, ServerStore};
use crate::sync::{merge_records, web_pusher};

fn core_error(e: gridsync_core::CoreError) -> WebError {
    match e {
        gridsync_core::CoreError::Invalid(_) | gridsync_core::CoreError::NotFound(_) => WebError::Bad(e.message_zh()),
        other => WebError::Store(other.to_string()),
    }
}

/// Merge `changes` of record `id` as the signed-in user; a refusal by the
/// rules becomes a Chinese 403 or 400 page with the rules' own sentence.
fn merge(s: &dyn ServerStore, ctx: &Ctx, id: Uuid, changes: Vec<Vec<u8>>, now: i64) -> Result<(), WebError> {
    let incoming = IncomingDoc::unsigned(id, changes);
    let outcomes = merge_records(s, &web_pusher(&ctx.user), std::slice::from_ref(&incoming), now)?;
    let Some(r) = outcomes.first().and_then(|o| o.rejections.first()) else { return Ok(()) };
    Err(match r.reason {
        RejectReason::Forbidden | RejectReason::OutOfScope => WebError::Forbidden(r.detail.clone()),
        _ => WebError::Bad(r.detail.clone()),
    })
}

/// Create `rec` (its author must be the signed-in user).
pub(super) fn create(s: &dyn ServerStore, ctx: &Ctx, rec: &Record, now: i64) -> Result<(), WebError> {
    let mut doc = RecordDoc::create(rec, ActorId::random()).map_err(core_error)?;
    let changes = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    merge(s, ctx, rec.id, changes, now)
}

/// Change the stored record `id` with `f`, which gets the record as stored
/// (the merged state every phone converges to) and edits it in place;
/// only what differs is written. Returns the record as `f` left it.
pub(super) fn update(
    s: &dyn ServerStore,
    ctx: &Ctx,
    id: Uuid,
    now: i64,
    f: impl FnOnce(&mut Record) -> Result<(), WebError>,
) -> Result<Record, WebError> {
    let stored = s.snapshot(id)?.ok_or(WebError::NotFound)?;
    let mut doc = RecordDoc::load(&stored.snapshot, ActorId::random()).map_err(core_error)?;
    let heads = doc.heads();
    let mut rec = doc.record().map_err(core_error)?;
    f(&mut rec)?;
    rec.updated_at = rec.updated_at.max(now);
    if !doc.update(&rec).map_err(core_error)? {
        return Ok(rec);
    }
    let changes = doc.changes_since(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
    merge(s, ctx, id, changes, now)?;
    Ok(rec)
}

/// A form's text field, trimmed, at most `max` characters (longer is
/// refused, not cut, so nothing typed is silently lost).
pub(super) fn text(
    form: &std::collections::HashMap<String, String>,
    key: &str,
    label: &str,
    max: usize,
) -> Result<String, WebError> {
    let v = form.get(key).map(|v| v.trim().to_owned()).unwrap_or_default();
    if v.chars().count() > max {
        return Err(WebError::Bad(format!("{label}不能超过{max}个字")));
    }
    Ok(v)
}

/// Like [`text`], but it must not be empty.
pub(super) fn required(
    form: &std::collections::HashMap<String, String>,
    key: &str,
    label: &str,
    max: usize,
) -> Result<String, WebError> {
    let v = text(form, key, label, max)?;
    if v.is_empty() {
        return Err(WebError::Bad(format!("请填写{label}")));
    }
    Ok(v)
}

/// Names typed in one field, separated by `、`, `,`, `，`, `;` or spaces.
pub(super) fn names(
    form: &std::collections::HashMap<String, String>,
    key: &str,
    label: &str,
) -> Result<Vec<String>, WebError> {
    let raw = text(form, key, label, 4000)?;
    let list: Vec<String> = raw
        .split(['、', ',', '，', ';', '；', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if list.len() > 50 || list.iter().any(|n| n.chars().count() > 50) {
        return Err(WebError::Bad(format!("{label}最多50人，每个姓名不超过50个字")));
    }
    Ok(list)
}
