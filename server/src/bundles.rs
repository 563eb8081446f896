//! Bundles: changes that reach the server in a file or through another
//! phone rather than by their own device's sync. A bundle carried by
//! another phone (relay) is opened with the server's relay key and judged
//! as its signer's, never the carrier's ([`relay`]); a bundle file the
//! township office imports is checked the same way ([`import_bundle`]).
//! Both decode under the sync path's limits and go through its signature
//! check ([`crate::signatures::verify_docs`]) and merge
//! ([`crate::sync::merge_as_device`]). See `docs/protocol.md` ("Relay").

use std::collections::BTreeSet;

use gridsync_core::protocol::{Bundle, DecodeError, DecodeLimits, RelayReport, decode_bundle};
use gridsync_core::signing::{ServerKey, is_sealed};
use uuid::Uuid;

use crate::merge::Outcome;
use crate::metrics::Metrics;
use crate::signatures::{relay_key, verify_docs};
use crate::store::{DeviceAuth, IncomingDoc, ServerStore, StoreError, StoreResult};

/// Why a carried bundle could not be taken at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Not sealed to this server's key, or changed on the way.
    #[error("not a relay bundle sealed to this server")]
    Unreadable,
    /// Opened, but the bundle inside breaks the sync path's decode limits
    /// or is malformed (refused as a sync request with the same fault is).
    #[error("relay bundle refused: {0}")]
    Decode(#[from] DecodeError),
    /// The signing device is not enrolled here.
    #[error("the bundle's device is not enrolled here")]
    UnknownSigner,
    /// The carrier's or the signer's relay budget is spent for now, or
    /// the bundle is larger than a full budget.
    #[error("relay budget spent: {0:?}")]
    Quota(crate::ratelimit::RelayRefusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Open a sealed relay bundle with the server's key and decode it with the
/// sync path's reader under `limits`. `grow` is asked for the opened
/// plaintext (at most the sealed size, see [`ServerKey::open`]) before it
/// is made, and then for each size of the inflate buffer on top of it.
pub fn open_sealed(
    key: &ServerKey,
    sealed: &[u8],
    limits: &DecodeLimits,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Bundle, RelayError> {
    if !grow(sealed.len()) {
        return Err(DecodeError::Busy.into());
    }
    let plain = key.open(sealed).ok_or(RelayError::Unreadable)?;
    Ok(decode_bundle(&plain, limits, &mut |n| grow(sealed.len() + n))?)
}

/// The enrolled device that signed `bundle`, with its user.
fn signer_of(store: &dyn ServerStore, bundle: &Bundle) -> Result<DeviceAuth, RelayError> {
    store.device(&bundle.device_id)?.ok_or(RelayError::UnknownSigner)
}

/// What merging a bundle did.
#[derive(Debug, Default)]
pub struct BundleOutcome {
    /// The counts a carrier is told.
    pub report: RelayReport,
    /// Records with refused changes, with the first reason of each.
    pub refused_records: Vec<(Uuid, String)>,
    /// Records whose changes were stored (or already were).
    pub records_acked: usize,
}

/// Keep of `incoming` the changes made before `revoked_at` (ms) by their
/// own time (Automerge's, in seconds, signed with the change); return how
/// many were dropped and the records they were in.
fn made_before(incoming: &mut Vec<IncomingDoc>, revoked_at: i64) -> (u64, Vec<Uuid>) {
    let (mut late, mut records) = (0, Vec::new());
    for d in incoming.iter_mut() {
        let before = d.changes.len();
        d.changes.retain(|c| {
            gridsync_core::doc::parse_change(c).is_ok_and(|c| c.timestamp().saturating_mul(1000) <= revoked_at)
        });
        if d.changes.len() < before {
            late += (before - d.changes.len()) as u64;
            records.push(d.doc_id);
        }
    }
    incoming.retain(|d| !d.changes.is_empty());
    (late, records)
}

/// Merge a bundle as its signing device: signatures checked, then every
/// change judged by the signer's rights. A revoked signer's changes are
/// refused (`signer_revoked`) unless the bundle comes back through its own
/// user: carried by another phone of the same user (`carrier_user`: the
/// phone enrolled again hands over what its wipe rescued) or imported by
/// the township office (`None`). Even then only changes made before the
/// revocation (by the change's own signed time) are taken: its key signs
/// nothing new. A phone's clock can lie, so whoever holds a lost phone
/// could backdate a change; the user's own new enrollment (a code from the
/// county) or an office clerk must bring it, and a colleague cannot.
pub fn merge_bundle(
    store: &dyn ServerStore,
    metrics: &Metrics,
    signer: &DeviceAuth,
    carrier: Option<&DeviceAuth>,
    bundle: Bundle,
    now: i64,
) -> StoreResult<BundleOutcome> {
    let mut acked_records = 0;
    let mut report = RelayReport { records: bundle.docs.len() as u64, ..RelayReport::default() };
    let mut reasons = BTreeSet::new();
    let mut by_record = Vec::new();
    let mut verified = verify_docs(&signer.device, bundle.docs, &bundle.signature);
    report.changes_refused += verified.refused_changes;
    for r in &verified.refused {
        reasons.insert(r.reason.as_str().to_owned());
        by_record.push((Uuid::from_bytes(r.doc), r.reason.as_str().to_owned()));
    }
    Metrics::add(&metrics.changes_refused, verified.refused_changes);
    if let Some(revoked_at) = signer.device.revoked_at {
        // Not brought back by its own user: nothing of it is taken.
        let own = carrier.is_none_or(|c| c.user.id == signer.user.id);
        let cutoff = if own { revoked_at } else { i64::MIN };
        let (late, records) = made_before(&mut verified.incoming, cutoff);
        if late > 0 {
            report.changes_refused += late;
            Metrics::add(&metrics.changes_refused, late);
            reasons.insert("signer_revoked".to_owned());
            by_record.extend(records.into_iter().map(|d| (d, "signer_revoked".to_owned())));
        }
    }
    // The same phone enrolled again holds the revoked device's actor now
    // (enrollment moves it): its rescued changes are bound to that actor.
    let moved;
    let signer = match carrier {
        Some(c) if signer.device.actor.is_none() && c.user.id == signer.user.id && c.device.actor.is_some() => {
            moved = DeviceAuth {
                device: crate::store::Device { actor: c.device.actor.clone(), ..signer.device.clone() },
                user: signer.user.clone(),
            };
            &moved
        }
        _ => signer,
    };
    if !verified.incoming.is_empty() {
        let outcomes = crate::sync::merge_as_device(store, signer, &verified.incoming, now)?;
        for (outcome, doc) in outcomes.iter().zip(&verified.incoming) {
            count_outcome(metrics, outcome);
            report.changes_stored += outcome.acked.len() as u64;
            if !outcome.acked.is_empty() {
                acked_records += 1;
            }
            let refused: u64 = outcome.rejections.iter().map(|r| r.hashes.len().max(1) as u64).sum();
            report.changes_refused += refused;
            if let Some(first) = outcome.rejections.first() {
                by_record.push((doc.doc_id, first.reason.as_str().to_owned()));
            }
            for r in &outcome.rejections {
                reasons.insert(r.reason.as_str().to_owned());
            }
        }
    }
    report.reasons = reasons.into_iter().collect();
    Ok(BundleOutcome { report, refused_records: by_record, records_acked: acked_records })
}

fn count_outcome(metrics: &Metrics, outcome: &Outcome) {
    let refused: u64 = outcome.rejections.iter().map(|r| r.hashes.len().max(1) as u64).sum();
    Metrics::add(&metrics.changes_refused, refused);
    Metrics::add(&metrics.changes_stored, outcome.new as u64);
    Metrics::add(&metrics.changes_duplicate, outcome.known as u64);
}

/// A relay request: the sealed bytes a carrier brought, and the limits and
/// memory budget they are opened under.
pub struct RelayRequest<'a> {
    /// The device that carried it.
    pub carrier: &'a DeviceAuth,
    /// The sealed bundle, as posted.
    pub sealed: &'a [u8],
    /// The sync path's decode limits (`--max-changes`, the inflated size).
    pub limits: DecodeLimits,
    /// The per-carrier and per-signer relay budgets, charged with the
    /// bundle's changes and records before it is merged.
    pub budget: &'a crate::ratelimit::RelayBudget,
}

/// `POST /v1/relay`'s work: open a bundle `carrier` brought, decode it under
/// the sync path's limits (asking `grow` before the plaintext and the
/// inflate buffer take memory), charge the carrier's and the signer's relay
/// budgets with its changes and records, and merge it as its signer's.
pub fn relay(
    store: &dyn ServerStore,
    metrics: &Metrics,
    key: &ServerKey,
    req: RelayRequest<'_>,
    grow: &mut dyn FnMut(usize) -> bool,
    now: i64,
) -> Result<RelayReport, RelayError> {
    let RelayRequest { carrier, sealed, limits, budget } = req;
    let bundle = open_sealed(key, sealed, &limits, grow)?;
    let signer = signer_of(store, &bundle)?;
    let (changes, records) = (bundle.change_count() as u64, bundle.docs.len() as u64);
    if let Err(refusal) =
        budget.take(&carrier.device.id, &signer.device.id, changes, records, std::time::Instant::now())
    {
        tracing::warn!(
            carrier = %carrier.device.id,
            signer = %signer.device.id,
            changes,
            records,
            "relay bundle over budget"
        );
        return Err(RelayError::Quota(refusal));
    }
    let report = merge_bundle(store, metrics, &signer, Some(carrier), bundle, now)?.report;
    tracing::info!(
        carrier = %carrier.device.id,
        signer = %signer.device.id,
        records = report.records,
        stored = report.changes_stored,
        refused = report.changes_refused,
        "relay bundle"
    );
    Ok(report)
}

/// What importing a bundle file did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleImport {
    /// Device the bundle came from (its signer).
    pub device_id: String,
    /// Records whose changes were stored (or already were).
    pub records_acked: usize,
    /// Records refused, with their reason codes.
    pub records_rejected: Vec<(String, String)>,
}

/// Why a bundle could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is not a Gridsync bundle (or a relay bundle for another server).
    #[error("not a Gridsync bundle: {0}")]
    NotABundle(String),
    /// The bundle's device is not enrolled on this server.
    #[error("the bundle's device {0} is not enrolled here")]
    UnknownDevice(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Import a bundle file a phone wrote offline, plain or sealed for relay
/// (see `gridsync_core::transport::bundle`). Each change must carry the
/// signature of the device the bundle names, and is judged with that
/// device's user's scope and rules, exactly as if the phone had synced; an
/// unknown device is refused, and a revoked device's changes are taken
/// only when made before its revocation ([`merge_bundle`]): the office
/// that imports a file brings it back for its user.
pub fn import_bundle(store: &dyn ServerStore, bytes: &[u8], now: i64) -> Result<BundleImport, ImportError> {
    // The same reader and limits as a sync request (the defaults of
    // `serve`): a file from a phone is as untrusted as a request.
    let limits = DecodeLimits::default();
    let bundle = if is_sealed(bytes) {
        let key = relay_key(store, now)?;
        open_sealed(&key, bytes, &limits, &mut |_| true).map_err(|e| match e {
            RelayError::Decode(e) => ImportError::NotABundle(e.to_string()),
            _ => ImportError::NotABundle("a relay bundle not sealed to this server".into()),
        })?
    } else {
        decode_bundle(bytes, &limits, &mut |_| true).map_err(|e| ImportError::NotABundle(e.to_string()))?
    };
    let signer = match signer_of(store, &bundle) {
        Ok(s) => s,
        Err(RelayError::Store(e)) => return Err(e.into()),
        Err(_) => return Err(ImportError::UnknownDevice(bundle.device_id.clone())),
    };
    let outcome = merge_bundle(store, &Metrics::default(), &signer, None, bundle, now)?;
    // A record can have changes refused for several reasons: list it once,
    // with the first (the change that broke a rule).
    let mut records_rejected: Vec<(String, String)> = Vec::new();
    for (id, reason) in outcome.refused_records {
        let id = id.to_string();
        if !records_rejected.iter().any(|(d, _)| *d == id) {
            records_rejected.push((id, reason));
        }
    }
    Ok(BundleImport { device_id: signer.device.id, records_acked: outcome.records_acked, records_rejected })
}
