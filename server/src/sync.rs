//! The sync service, without HTTP: the one path by which changes enter the
//! server. Phone syncs (`POST /v1/sync`), bundle imports and the web
//! dashboard's forms all call [`merge_records`], so every change is judged
//! by the same rules ([`crate::merge::merge_doc`]) whoever brought it.

use automerge::Change;
use gridsync_core::protocol::{DocAck, DocChanges, Signature, SyncResponse};

use crate::merge::{Outcome, Pusher, PusherActor, merge_doc};
use crate::metrics::Metrics;
use crate::store::{
    Cursor, DeviceAuth, DocDecision, IncomingDoc, ReadScope, ServerStore, StoreError, StoreResult, StoredDoc, User,
};

/// Merge `incoming` as `pusher` in one transaction; one outcome per record,
/// in request order.
///
/// Each record is judged first against its state as committed, without
/// the writer, so the judging of many requests runs on every core at once.
/// Under the writer each record's state is read again: where it is still
/// the one judged, that verdict is written; where another request changed
/// it meanwhile, the record is judged again there. Either way what is
/// written was judged against exactly the state it is written onto.
pub fn merge_records(
    store: &dyn ServerStore,
    pusher: &Pusher,
    incoming: &[IncomingDoc],
    now: i64,
) -> StoreResult<Vec<Outcome>> {
    merge_and_touch(store, pusher, incoming, now, false)
}

/// [`merge_records`], recording the device's sync in the same transaction
/// when `touch` is set.
fn merge_and_touch(
    store: &dyn ServerStore,
    pusher: &Pusher,
    incoming: &[IncomingDoc],
    now: i64,
    touch: bool,
) -> StoreResult<Vec<Outcome>> {
    let ids: Vec<_> = incoming.iter().map(|d| d.doc_id).collect();
    let seen = store.stored_docs(&ids)?;
    let mut early: Vec<Option<(DocDecision, Outcome)>> =
        seen.iter().zip(incoming).map(|(stored, doc)| Some(merge_doc(pusher, stored.as_ref(), doc, now))).collect();
    let mut outcomes = vec![Outcome::default(); incoming.len()];
    let mut merge = |i: usize, stored: Option<StoredDoc>, doc: &IncomingDoc| {
        let judged = early.get_mut(i).and_then(Option::take).filter(|_| seen.get(i) == Some(&stored));
        let (decision, outcome) = judged.unwrap_or_else(|| merge_doc(pusher, stored.as_ref(), doc, now));
        if let Some(slot) = outcomes.get_mut(i) {
            *slot = outcome;
        }
        decision
    };
    store.merge_batch(&pusher.device_id, touch.then_some(now), incoming, &mut merge)?;
    Ok(outcomes)
}

/// The pusher for the dashboard's own forms: the signed-in user, changes
/// the server made itself under fresh actor ids.
pub fn web_pusher(user: &User) -> Pusher {
    Pusher { user: user.clone(), device_id: format!("web:{}", user.id), actor: PusherActor::Server }
}

/// The pusher for a device, registering its actor first if it has none yet
/// (a device enrolled before actors were registered claims the actor of the
/// first change it sends, unless another device holds it).
fn device_pusher(store: &dyn ServerStore, auth: &DeviceAuth, incoming: &[IncomingDoc]) -> StoreResult<Pusher> {
    let actor = match &auth.device.actor {
        Some(a) => a.clone(),
        None => {
            let first = incoming
                .iter()
                .flat_map(|d| d.changes.iter())
                .find_map(|bytes| gridsync_core::doc::parse_change(bytes).ok())
                .map(|c: Change| c.actor_id().to_bytes().to_vec());
            match first {
                Some(a) if store.claim_actor(&auth.device.id, &a)? => {
                    tracing::info!(device = %auth.device.id, "registered the device's actor at its first sync");
                    a
                }
                // Nothing to claim, or it is taken: no actor matches, so
                // every change is refused as another device's.
                _ => Vec::new(),
            }
        }
    };
    Ok(Pusher { user: auth.user.clone(), device_id: auth.device.id.clone(), actor: PusherActor::Device(actor) })
}

/// Merge `incoming` (signatures already checked) as the device of `auth`:
/// judged by its user's rights, its changes bound to its actor.
pub fn merge_as_device(
    store: &dyn ServerStore,
    auth: &DeviceAuth,
    incoming: &[IncomingDoc],
    now: i64,
) -> StoreResult<Vec<Outcome>> {
    let pusher = device_pusher(store, auth, incoming)?;
    merge_records(store, &pusher, incoming, now)
}

/// How stale a device's last sync time may get before a sync records it
/// again: the dashboard shows it to the minute and judges staleness by
/// days, so a phone syncing every few seconds costs no write each time.
pub const TOUCH_EVERY_MS: i64 = 60_000;

fn needs_touch(auth: &DeviceAuth, now: i64) -> bool {
    auth.device.last_sync_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS || now < t)
}

/// A request's changes and the device's signature over them.
#[derive(Debug, Clone)]
pub struct SignedDocs {
    /// The changes, by record.
    pub docs: Vec<DocChanges>,
    /// The signature.
    pub signature: Signature,
}

/// One sync round of signed changes at server time `now`: the request's
/// signature is checked against the device's key before anything is
/// judged ([`crate::signatures::verify_docs`]); if it is not the device's,
/// every record is refused, else they merge as in [`process_sync`].
pub fn process_signed_sync(
    store: &dyn ServerStore,
    metrics: &Metrics,
    auth: &DeviceAuth,
    signed: SignedDocs,
    cursor: Cursor,
    page_bytes: usize,
    now: i64,
) -> Result<SyncResponse, StoreError> {
    let verified = crate::signatures::verify_docs(&auth.device, signed.docs, &signed.signature);
    if !verified.refused.is_empty() {
        Metrics::add(&metrics.changes_refused, verified.refused_changes);
        Metrics::add(&metrics.docs_rejected, verified.refused.len() as u64);
        tracing::warn!(
            device = %auth.device.id,
            records = verified.refused.len(),
            changes = verified.refused_changes,
            "changes refused: bad signature"
        );
    }
    let mut resp = process_sync(store, metrics, auth, verified.incoming, cursor, page_bytes, now)?;
    resp.rejected.extend(verified.refused);
    Ok(resp)
}

/// One sync round on the server at server time `now` (the HTTP handler
/// passes its clock's): merge the device's records in one transaction,
/// then read its next feed page. Used by the signed sync below, the bundle
/// import and the PostgreSQL tests.
pub fn process_sync(
    store: &dyn ServerStore,
    metrics: &Metrics,
    auth: &DeviceAuth,
    incoming: Vec<IncomingDoc>,
    cursor: Cursor,
    page_bytes: usize,
    now: i64,
) -> Result<SyncResponse, StoreError> {
    let mut resp = SyncResponse::default();
    let mut touch = needs_touch(auth, now);
    if !incoming.is_empty() {
        let pusher = device_pusher(store, auth, &incoming)?;
        let outcomes = merge_and_touch(store, &pusher, &incoming, now, touch)?;
        touch = false;
        for (outcome, doc) in outcomes.into_iter().zip(&incoming) {
            let refused: u64 = outcome.rejections.iter().map(|r| r.hashes.len().max(1) as u64).sum();
            Metrics::add(&metrics.changes_refused, refused);
            Metrics::add(&metrics.changes_stored, outcome.new as u64);
            Metrics::add(&metrics.changes_duplicate, outcome.known as u64);
            if !outcome.acked.is_empty() {
                // An empty list says "every change sent for this record"
                // without repeating 32 bytes per change.
                let hashes = if outcome.all_acked() { vec![] } else { outcome.acked.clone() };
                resp.acked.push(DocAck { doc: *doc.doc_id.as_bytes(), hashes });
            }
            if !outcome.rejections.is_empty() {
                Metrics::add(&metrics.docs_rejected, 1);
                for r in &outcome.rejections {
                    tracing::info!(
                        device = %auth.device.id,
                        doc = %doc.doc_id,
                        reason = r.reason.as_str(),
                        changes = r.hashes.len(),
                        "changes refused"
                    );
                }
                resp.rejected.extend(outcome.rejections);
            }
        }
    }
    let scope = ReadScope::of(&auth.user);
    let page = store.read_feed(cursor, &scope, &auth.device.id, page_bytes)?;
    Metrics::add(&metrics.changes_sent, page.changes.len() as u64);
    for (doc, bytes) in page.changes {
        match resp.changes.last_mut() {
            Some(last) if last.doc == *doc.as_bytes() => last.changes.push(bytes),
            _ => resp.changes.push(DocChanges { doc: *doc.as_bytes(), changes: vec![bytes] }),
        }
    }
    resp.next_cursor = page.next.to_bytes();
    resp.more = page.more;
    if touch {
        store.touch_device(&auth.device.id, now)?;
    }
    tracing::info!(
        device = %auth.device.id,
        acked = resp.acked.len(),
        rejected = resp.rejected.len(),
        sent = resp.changes.len(),
        more = resp.more,
        "sync"
    );
    Ok(resp)
}
