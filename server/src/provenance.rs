//! Provenance: who made each change of a record, and the proof.
//!
//! Every change a device sent is stored with the device's signature
//! ([`crate::signatures`]). [`record_provenance`] checks each again against
//! the device's registered key, for the dashboard; [`export`] writes the
//! record's changes, signatures and keys as one JSON file that anyone can
//! verify without a Gridsync server (`docs/provenance.md`, and the
//! independent verifier `tests/provenance/verify.py`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gridsync_core::doc::{RecordDoc, parse_change};
use gridsync_core::signing::{Manifest, hex_of, verify_batch};
use serde::Serialize;
use uuid::Uuid;

use crate::store::{Device, ServerStore, StoreResult, StoredChange};

/// Format name of an export file.
pub const EXPORT_FORMAT: &str = "gridsync-provenance-v1";

/// Whether a stored change's signature holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Signed by its device's registered key, and the signature verifies.
    Valid,
    /// Signed, but it does not verify against the device's key (the stored
    /// bytes were altered after they were received).
    Invalid,
    /// Made on the web dashboard: the signed-in user, no device signature.
    Web,
    /// Stored before devices signed their changes (or the device is gone).
    Unsigned,
}

impl Verification {
    /// Chinese label for the dashboard.
    pub fn label_zh(self) -> &'static str {
        match self {
            Verification::Valid => "签名有效",
            Verification::Invalid => "签名无效",
            Verification::Web => "网页修改（无设备签名）",
            Verification::Unsigned => "无签名（签名启用前）",
        }
    }
}

/// One change of a record, with who made it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeProvenance {
    /// Order stored.
    pub seq: i64,
    /// Change hash, hex.
    pub hash: String,
    /// Device id (or `web:<user>`).
    pub device_id: String,
    /// Device name at enrollment, if a device made it.
    pub device_name: Option<String>,
    /// When the device was revoked, if it was.
    pub device_revoked_at: Option<i64>,
    /// The user the device acts for (or the web user).
    pub user_id: String,
    /// The time the change claims (the phone's clock), ms.
    pub time: i64,
    /// Events (handling steps, dispute events) the change added, by id.
    pub events: Vec<String>,
    /// Whether its signature holds.
    pub verification: Verification,
}

/// Check one stored change against the devices and the manifest of the
/// signature it came under.
fn check(doc: Uuid, c: &StoredChange, devices: &HashMap<&str, &Device>, manifest: Option<&Manifest>) -> Verification {
    if c.origin.starts_with("web:") {
        return Verification::Web;
    }
    let (Some(sig), Some(device)) = (&c.signature, devices.get(c.origin.as_str())) else {
        return Verification::Unsigned;
    };
    let Some(manifest) = manifest else { return Verification::Invalid };
    let (Some(key), Ok(dev)) = (&device.public_key, Uuid::parse_str(&device.id)) else {
        return Verification::Unsigned;
    };
    // The hash is recomputed from the stored bytes, not taken from its column.
    let hash = match parse_change(&c.bytes) {
        Ok(ch) => ch.hash().0,
        Err(_) => return Verification::Invalid,
    };
    if hash == c.hash && manifest.names(&doc, &hash) && verify_batch(key, &dev, manifest, sig) {
        Verification::Valid
    } else {
        Verification::Invalid
    }
}

/// Which change added which event: the record is replayed change by
/// change, in the order stored (a causal order), and the events present
/// after each change that were not before are its.
fn events_by_change(changes: &[StoredChange]) -> BTreeMap<[u8; 32], Vec<String>> {
    let mut out = BTreeMap::new();
    let mut doc = RecordDoc::empty(automerge::ActorId::random());
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for c in changes {
        let Ok(change) = parse_change(&c.bytes) else { continue };
        if doc.apply(vec![change]).is_err() {
            continue;
        }
        let Ok(rec) = doc.record() else { continue };
        let new: Vec<String> = rec.event_ids().into_iter().filter(|e| !seen.contains(e)).collect();
        seen.extend(new.iter().cloned());
        out.insert(c.hash, new);
    }
    out
}

/// Every change of record `id`, oldest first, with its device, person and
/// whether its signature verifies.
pub fn record_provenance(store: &dyn ServerStore, id: Uuid) -> StoreResult<Vec<ChangeProvenance>> {
    let changes = store.change_log(id)?;
    let devices = store.devices()?;
    let by_id: HashMap<&str, &Device> = devices.iter().map(|d| (d.id.as_str(), d)).collect();
    let events = events_by_change(&changes);
    let manifests = manifests(store, &changes)?;
    Ok(changes
        .iter()
        .map(|c| {
            let device = by_id.get(c.origin.as_str());
            ChangeProvenance {
                seq: c.seq,
                hash: hex_of(&c.hash),
                device_id: c.origin.clone(),
                device_name: device.map(|d| d.name.clone()),
                device_revoked_at: device.and_then(|d| d.revoked_at),
                user_id: match device {
                    Some(d) => d.user_id.clone(),
                    None => c.origin.strip_prefix("web:").unwrap_or_default().to_owned(),
                },
                // Automerge keeps a change's time in seconds (`RecordDoc` commits so).
                time: parse_change(&c.bytes).map(|ch| ch.timestamp().saturating_mul(1000)).unwrap_or(0),
                events: events.get(&c.hash).cloned().unwrap_or_default(),
                verification: check(id, c, &by_id, c.signature.and_then(|s| manifests.get(&s.0)).map(|(_, m)| m)),
            }
        })
        .collect())
}

/// The manifests the changes' signatures cover, by signature (hex of
/// which is what the export names them by).
fn manifests(store: &dyn ServerStore, changes: &[StoredChange]) -> StoreResult<BTreeMap<[u8; 64], (String, Manifest)>> {
    let mut out = BTreeMap::new();
    for c in changes {
        if let Some(sig) = c.signature
            && !out.contains_key(&sig.0)
            && let Some(m) = store.signed_batch(&sig)?
        {
            out.insert(sig.0, (c.origin.clone(), m));
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct ExportBatch {
    /// Ed25519 signature, hex.
    signature: String,
    /// The device that signed it.
    device_id: String,
    /// What it covers, hex: for each record, its id (16 bytes), a change
    /// count (4 bytes, big-endian) and the change hashes (32 bytes each).
    manifest: String,
}

#[derive(Serialize)]
struct ExportDevice {
    device_id: String,
    name: String,
    user_id: String,
    user_name: String,
    /// Ed25519 public key, hex.
    public_key: Option<String>,
    enrolled_at: i64,
    revoked_at: Option<i64>,
}

#[derive(Serialize)]
struct ExportChange {
    seq: i64,
    /// Automerge change hash, hex (the verifier recomputes it from `change`).
    hash: String,
    device_id: String,
    /// The signature it came under (one of `signatures`), hex; absent for
    /// changes made on the web dashboard.
    signature: Option<String>,
    /// The raw Automerge change, hex.
    change: String,
    events: Vec<String>,
}

#[derive(Serialize)]
struct Export {
    format: &'static str,
    record_id: String,
    kind: String,
    title: String,
    exported_at: i64,
    /// How each signature's message is built (see docs/provenance.md).
    signed_message: &'static str,
    devices: Vec<ExportDevice>,
    signatures: Vec<ExportBatch>,
    changes: Vec<ExportChange>,
}

/// Record `id`'s changes, signatures and the keys of the devices that
/// made them, as a JSON document for a court or an inspection; `None` if
/// there is no such record.
pub fn export(store: &dyn ServerStore, id: Uuid, now: i64) -> StoreResult<Option<serde_json::Value>> {
    let Some(view) = store.record(id)? else { return Ok(None) };
    let changes = store.change_log(id)?;
    let events = events_by_change(&changes);
    let origins: BTreeSet<&str> = changes.iter().map(|c| c.origin.as_str()).collect();
    let mut devices = Vec::new();
    for d in store.devices()? {
        if !origins.contains(d.id.as_str()) {
            continue;
        }
        let user_name = store.user(&d.user_id)?.map(|u| u.display_name).unwrap_or_default();
        devices.push(ExportDevice {
            device_id: d.id,
            name: d.name,
            user_id: d.user_id,
            user_name,
            public_key: d.public_key.as_deref().map(hex_of),
            enrolled_at: d.created_at,
            revoked_at: d.revoked_at,
        });
    }
    let export = Export {
        format: EXPORT_FORMAT,
        record_id: id.to_string(),
        kind: view.kind.as_str().to_owned(),
        title: view.title,
        exported_at: now,
        signed_message: "\"gridsync-batch-v1\" || device id (16 bytes) || manifest",
        devices,
        signatures: manifests(store, &changes)?
            .into_iter()
            .map(|(sig, (device_id, m))| ExportBatch {
                signature: hex_of(&sig),
                device_id,
                manifest: hex_of(m.bytes()),
            })
            .collect(),
        changes: changes
            .iter()
            .map(|c| ExportChange {
                seq: c.seq,
                hash: hex_of(&c.hash),
                device_id: c.origin.clone(),
                signature: c.signature.map(|s| hex_of(&s.0)),
                change: hex_of(&c.bytes),
                events: events.get(&c.hash).cloned().unwrap_or_default(),
            })
            .collect(),
    };
    serde_json::to_value(export).map(Some).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))
}
