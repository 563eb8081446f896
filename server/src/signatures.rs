//! Device signatures on the server: every request a device sends is
//! checked against the device's registered Ed25519 key before any of its
//! changes is judged ([`verify_docs`]), and each change is stored naming
//! the signature it came under. The deployment's relay key
//! ([`relay_key`]) opens the bundles phones carry for each other
//! ([`crate::bundles`]). See `docs/protocol.md` ("Signatures", "Relay").

use std::sync::Arc;

use gridsync_core::protocol::{DocChanges, DocRejection, RejectReason, Signature, manifest_of};
use gridsync_core::signing::{ServerKey, change_hash, verify_batch};
use uuid::Uuid;

use crate::store::{Device, IncomingDoc, ServerStore, SignedBatch, StoreError, StoreResult};

/// Name of the relay key in the server's key table.
const RELAY_KEY: &str = "relay";

/// The deployment's relay key: made by the first node that needs it, then
/// read by every node from the database.
pub fn relay_key(store: &dyn ServerStore, now: i64) -> StoreResult<Arc<ServerKey>> {
    let fresh = ServerKey::generate().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let secret = store.server_secret(RELAY_KEY, &fresh.secret(), now)?;
    ServerKey::from_secret(&secret).map(Arc::new).map_err(|e| StoreError::Corrupt(format!("relay key: {e}")))
}

/// What checking a request's signature left.
#[derive(Debug, Default)]
pub struct Verified {
    /// The records, when the signature is the device's (each with the
    /// signature and its manifest, to store); none otherwise.
    pub incoming: Vec<IncomingDoc>,
    /// Every record, refused (`bad_signature`), when it is not.
    pub refused: Vec<DocRejection>,
    /// How many changes those were.
    pub refused_changes: u64,
}

/// Check that `signature` is `device`'s over every change of `docs`. The
/// server rebuilds the manifest from the bytes it received (each change by
/// its hash), so one changed byte anywhere, a change added or left out, or
/// another device's key refuses the whole request (`bad_signature`): an
/// honest phone never sends one.
pub fn verify_docs(device: &Device, docs: Vec<DocChanges>, signature: &Signature) -> Verified {
    let manifest = manifest_of(&docs);
    let ok = match (&device.public_key, Uuid::parse_str(&device.id)) {
        (Some(key), Ok(dev)) => verify_batch(key, &dev, &manifest, signature),
        _ => false,
    };
    if ok {
        let batch = Arc::new(SignedBatch { signature: *signature, manifest });
        return Verified {
            incoming: docs
                .into_iter()
                .map(|d| IncomingDoc {
                    doc_id: Uuid::from_bytes(d.doc),
                    changes: d.changes,
                    batch: Some(batch.clone()),
                })
                .collect(),
            ..Verified::default()
        };
    }
    let detail = if device.public_key.is_none() {
        "本机的设备密钥尚未登记，请更新应用后联网同步"
    } else {
        "修改的设备签名无效（数据在途中被改动，或不是本机所写），服务器未收下"
    };
    let mut out = Verified::default();
    for d in docs {
        out.refused_changes += d.changes.len() as u64;
        let hashes = d.changes.iter().map(|c| change_hash(c)).collect();
        out.refused.push(DocRejection {
            doc: d.doc,
            reason: RejectReason::BadSignature,
            detail: detail.into(),
            hashes,
        });
    }
    out
}
