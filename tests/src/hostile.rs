//! What a hostile (or broken) phone sends, crafted: changes written straight
//! into a copy of a record's Automerge document with no rules applied,
//! change headers re-encoded, raw sync requests under an enrolled phone's
//! token, and data written into a server's store without being judged (as
//! a server from before changes were judged one at a time stored it).

use anyhow::{Context, Result};
use automerge::transaction::Transactable;
use automerge::{Change, ObjId, ROOT, ReadDoc};
use gridsync_core::doc::RecordDoc;
use gridsync_core::protocol::{self, DocChanges, RejectReason, SyncRequest, SyncResponse};
use gridsync_server::store::{DocDecision, IncomingDoc, MergedDoc, ServerStore};
use uuid::Uuid;

use crate::device::{Device, RawClient};

/// The phone's document of record `id`, to write into directly (as the
/// phone's actor, bypassing its store and its rules).
pub fn copy_of(dev: &Device, id: Uuid) -> Result<RecordDoc> {
    Ok(dev.store().load_doc(id)?)
}

/// The object id of a record document's `data` map.
pub fn data_obj(doc: &mut RecordDoc) -> Result<ObjId> {
    Ok(doc.automerge().get(ROOT, "data")?.context("no data map")?.1)
}

/// Put `value` at `key` of `obj` and commit it as one change.
pub fn put_and_commit(
    doc: &mut RecordDoc,
    obj: &ObjId,
    key: &str,
    value: impl Into<automerge::ScalarValue>,
) -> Result<()> {
    doc.automerge().put(obj, key, value)?;
    doc.automerge().commit();
    Ok(())
}

/// Changes of record `id` as they go on the wire.
pub fn wire(id: Uuid, changes: &[Change]) -> DocChanges {
    DocChanges { doc: *id.as_bytes(), changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect() }
}

/// Re-encode `c` with `edit` applied to its header and operations: a
/// hostile encoder can write any actor, sequence number or counter.
pub fn forge(c: &Change, edit: impl FnOnce(&mut automerge::ExpandedChange)) -> Change {
    let mut e = c.decode();
    e.hash = None;
    edit(&mut e);
    Change::from(e)
}

/// Send `docs` in one sync request under `dev`'s token, outside its sync
/// engine (so nothing of the answer reaches its store).
pub async fn push_raw(dev: &Device, docs: Vec<DocChanges>) -> Result<SyncResponse> {
    let e = dev.store().enrollment()?.context("not enrolled")?;
    // The phone signs what it sends, forged or not: its key proves only
    // that it sent it; the judge decides whether it may.
    let (device, key) = dev.store().signer()?;
    let signature = protocol::sign_docs(&key, &device, &docs);
    // A cursor far ahead: the answer carries no feed page to ignore.
    let cursor = [0xffu8; 16].to_vec();
    let body = protocol::encode(&SyncRequest { cursor, docs, max_response_bytes: 16 * 1024, signature })?;
    let bytes = RawClient::new().post_sync(&e.server_url, &e.token, &body).await?;
    Ok(protocol::decode(&bytes)?)
}

/// The refusals of record `id` in `resp`: (reason, detail, hashes refused).
pub fn refusals(resp: &SyncResponse, id: Uuid) -> Vec<(RejectReason, String, usize)> {
    resp.rejected
        .iter()
        .filter(|r| r.doc == *id.as_bytes())
        .map(|r| (r.reason, r.detail.clone(), r.hashes.len()))
        .collect()
}

/// Whether `resp` acknowledges any change of record `id`.
pub fn acked(resp: &SyncResponse, id: Uuid) -> bool {
    resp.acked.iter().any(|a| a.doc == *id.as_bytes())
}

/// Store `changes` of record `id` straight into the server's store, with
/// no rule applied: data a server stored before it judged each change.
pub fn inject_unjudged(store: &dyn ServerStore, id: Uuid, changes: &[Change]) -> Result<()> {
    let incoming = IncomingDoc::unsigned(id, changes.iter().map(|c| c.raw_bytes().to_vec()).collect());
    let mut failure = None;
    store.merge_batch("unjudged", None, &[incoming], &mut |_, stored, _| {
        let built = (|| -> Result<MergedDoc> {
            let snapshot = stored.as_ref().context("no stored record")?;
            let mut doc = RecordDoc::load(&snapshot.snapshot, automerge::ActorId::from([0u8; 16]))?;
            doc.apply(changes.to_vec())?;
            let rec = doc.record()?;
            let mut index = rec.index();
            index.sensitive |= snapshot.sensitive;
            Ok(MergedDoc {
                new_changes: changes.iter().map(|c| (c.hash().0, c.raw_bytes().to_vec())).collect(),
                batch: None,
                snapshot: doc.save(),
                index,
                json: rec.to_json().to_string(),
                author: rec.author.clone(),
                created_at: rec.created_at,
                updated_at: rec.updated_at,
                history_turns_sensitive: false,
                attachments: vec![],
            })
        })();
        match built {
            Ok(m) => DocDecision::Accept(Box::new(m)),
            Err(e) => {
                failure = Some(e);
                DocDecision::Reject
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `n` characters of varied Chinese text (compresses poorly, as real
/// padding would).
pub fn noise_text(n: usize) -> String {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from_u32(0x4e00 + (x % 0x5000)).unwrap_or('字')
        })
        .collect()
}
