//! Changes signed by the device that made them, end to end with real
//! server processes: a grid manager's records relayed through the village
//! supervisor's phone (judged as the grid manager's, unreadable to the
//! carrier, a changed byte refused); a bundle forged under another
//! device's id refused; a revoked device's later signatures refused while
//! its earlier ones still verify, on the dashboard and in an export checked
//! by a small program that knows nothing of Gridsync.

use std::path::Path;
use std::process::Command;

use gridsync_core::model::{PatrolSlot, RecordKind};
use gridsync_core::phone::ApiError;
use gridsync_core::protocol::{Bundle, sign_docs};
use gridsync_core::signing::{DeviceKey, from_hex, hex_of, seal_to_server};
use gridsync_server::provenance::{Verification, record_provenance};
use gridsync_tests::bed::Bed;
use gridsync_tests::device::Device;
use gridsync_tests::records::{DAY0, hazard, household, patrol};
use gridsync_tests::server::server_binary;
use rand::SeedableRng;
use uuid::Uuid;

const GM: &str = "gm-t01-v01-g1";
/// The supervisor of the neighbouring village, passing through: he may
/// neither read nor write the first village's records.
const CARRIER: &str = "sv-t01-v02";

/// The grid manager's phone, enrolled and synced once (it learns the
/// server's relay key), then offline with a household ledger and a patrol.
async fn offline_grid_manager(bed: &Bed) -> (Device, Uuid, Uuid, String) {
    let mut gm = bed.phone(GM).await;
    gm.sync().await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let h = household(&gm.grid, &gm.user, &mut rng);
    let head = match &h.body {
        gridsync_core::model::RecordBody::Household(x) => x.head_name.clone(),
        _ => unreachable!("a household"),
    };
    gm.create(&h).unwrap();
    let p = patrol(&gm.grid, &gm.user, 3, PatrolSlot::Morning);
    gm.create(&p).unwrap();
    (gm, h.id, p.id, head)
}

fn device_id(d: &Device) -> String {
    d.store().enrollment().unwrap().unwrap().device_id
}

fn run_import(bed: &Bed, file: &Path) -> serde_json::Value {
    let out = Command::new(server_binary().unwrap())
        .args(["--data-dir", &bed.dir.path().to_string_lossy(), "import-bundle"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The grid manager has no signal; a supervisor passes through, carries
/// the sealed bundle, and syncs at the township. The records arrive as the
/// grid manager's (signed by her phone and bound to its actor; judged as
/// the carrier's, whose village this is not, they would be refused); the
/// carrier's phone never could read the household ledger, and does not get
/// it from the server either; a carried copy with one byte changed is
/// refused and dropped; when the grid manager syncs herself, nothing is
/// stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_managers_records_relayed_through_the_supervisors_phone() {
    let bed = Bed::start();
    let (mut gm, household_id, patrol_id, head) = offline_grid_manager(&bed).await;
    let pending = gm.store().outbox_len().unwrap();
    let sealed = gm.phone.export_relay_bundle().unwrap();

    // The carrier sees nothing it may not read: no plain text, no bundle.
    assert!(!sealed.windows(head.len()).any(|w| w == head.as_bytes()), "the household's head is in plain text");
    assert!(Bundle::decode(&sealed).is_err());
    let mut sv = bed.phone(CARRIER).await;
    let err = sv.phone.import_bundle(&sealed).unwrap_err();
    assert!(matches!(err, ApiError::InvalidInput { .. }), "{err:?}");
    assert!(sv.phone.carry_relay_bundle(&sealed).unwrap());
    assert!(!sv.phone.carry_relay_bundle(&sealed).unwrap(), "carried once");
    // A copy changed on the way (one byte of the ciphertext).
    let mut tampered = sealed.clone();
    let at = tampered.len() - 20;
    tampered[at] ^= 0x40;
    assert!(sv.phone.carry_relay_bundle(&tampered).unwrap());
    assert_eq!(sv.phone.relay_backlog().unwrap().bundles, 2);
    assert!(matches!(sv.phone.carry_relay_bundle(b"GSR1 not really").unwrap_err(), ApiError::InvalidInput { .. }));

    let before = bed.admin.change_count().unwrap();
    let report = sv.sync().await.unwrap();
    assert_eq!((report.relayed_bundles, report.relay_refused_bundles), (1, 1), "{report:?}");
    assert_eq!(report.relayed_changes, pending);
    assert_eq!(report.relay_refused_changes, 0);
    assert_eq!(sv.phone.relay_backlog().unwrap().bundles, 0, "both copies were answered for");
    assert_eq!(bed.admin.change_count().unwrap(), before + pending);

    // Stored as the grid manager's: her device signed every change, and
    // each signature verifies against her registered key.
    let gm_device = device_id(&gm);
    for id in [household_id, patrol_id] {
        let view = bed.admin.record(id).unwrap().unwrap();
        assert_eq!(view.author, GM);
        let rows = record_provenance(bed.admin.as_ref(), id).unwrap();
        assert!(!rows.is_empty());
        for r in rows {
            assert_eq!((r.device_id.as_str(), r.user_id.as_str()), (gm_device.as_str(), GM));
            assert_eq!(r.verification, Verification::Valid);
        }
    }
    // The carrier's phone receives none of it (not within its grid),
    // whatever it carried.
    sv.sync().await.unwrap();
    assert!(sv.ids(RecordKind::Household).unwrap().is_empty());
    assert!(!sv.ids(RecordKind::Patrol).unwrap().contains(&patrol_id));

    // The grid manager syncs herself later: acknowledged, nothing twice.
    let r = gm.sync().await.unwrap();
    assert_eq!(r.changes_sent, pending);
    assert_eq!(gm.store().outbox_len().unwrap(), 0);
    assert_eq!(bed.admin.change_count().unwrap(), before + pending);
}

/// A township chief writes a bundle naming the village leader's device
/// and carrying a record of his own: the import refuses every record
/// (`bad_signature`) and stores nothing, as does the same forgery sealed
/// for relay. The chief's own, honestly signed bundle imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_forged_under_another_devices_id_is_refused() {
    let bed = Bed::start();
    let mut chief = bed.phone("tc-t01-1").await;
    let vl = bed.phone("vl-t01-v01").await;
    chief.sync().await.unwrap();
    let grid = gridsync_core::grid::GridPath::parse("t01/v01/g1").unwrap();
    let rec = hazard(&grid, &chief.user, 7);
    chief.create(&rec).unwrap();

    let honest = chief.store().export_bundle().unwrap();
    let mut forged = honest.clone();
    forged.device_id = device_id(&vl);
    forged.user_id = vl.user.clone();
    // Re-signed with a key of the forger's own: still not the leader's.
    let mut resigned = forged.clone();
    let key = DeviceKey::generate().unwrap();
    let leader = Uuid::parse_str(&forged.device_id).unwrap();
    resigned.signature = sign_docs(&key, &leader, &forged.docs);

    let before = bed.admin.change_count().unwrap();
    for (name, b) in [("forged.gsb", &forged), ("resigned.gsb", &resigned)] {
        let file = bed.dir.path().join(name);
        std::fs::write(&file, b.encode().unwrap()).unwrap();
        let json = run_import(&bed, &file);
        assert_eq!(json["device_id"], forged.device_id.as_str());
        assert_eq!(json["records_acked"], 0, "{name}: {json}");
        assert_eq!(json["records_rejected"], serde_json::json!([[rec.id.to_string(), "bad_signature"]]), "{name}");
        assert_eq!(bed.admin.change_count().unwrap(), before, "{name} stored something");
    }
    // The same forgery sealed for relay (the server's key is public) and
    // carried by the leader's own phone.
    let server_key = from_hex(&chief.store().enrollment().unwrap().unwrap().server_key).unwrap();
    let sealed = seal_to_server(&server_key, &forged.encode().unwrap()).unwrap();
    let mut carrier = vl;
    carrier.phone.carry_relay_bundle(&sealed).unwrap();
    let r = carrier.sync().await.unwrap();
    assert_eq!((r.relayed_bundles, r.relayed_changes, r.relay_refused_changes), (1, 0, 1), "{r:?}");
    assert_eq!(bed.admin.change_count().unwrap(), before);
    assert!(bed.admin.record(rec.id).unwrap().is_none());

    // The honest bundle, signed by the chief's own phone, imports.
    let file = bed.dir.path().join("honest.gsb");
    std::fs::write(&file, honest.encode().unwrap()).unwrap();
    let json = run_import(&bed, &file);
    assert_eq!(json["records_acked"], 1, "{json}");
    assert_eq!(bed.admin.record(rec.id).unwrap().unwrap().author, chief.user);
}

/// A grid manager's phone is lost and revoked. What it signed before still
/// verifies, on the dashboard's provenance page and in an export checked by
/// `tests/provenance/verify.py` (Python and `cryptography`, no Gridsync);
/// what it signed dated after its revocation, relayed by a supervisor, is
/// refused (what it made before the revocation is honest work, taken: see
/// `sign_out.rs`). A change altered in the export fails the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_devices_later_signatures_are_refused_and_earlier_ones_verify() {
    let bed = Bed::start();
    let (mut gm, household_id, patrol_id, _) = offline_grid_manager(&bed).await;
    gm.sync().await.unwrap();
    // Later, offline again: a hazard, handed to the supervisor.
    let later = hazard(&gm.grid, &gm.user, 9);
    gm.create(&later).unwrap();
    let sealed = gm.phone.export_relay_bundle().unwrap();
    let gm_device = device_id(&gm);
    // Revoked the morning of day 9, before the hazard was signed.
    assert!(bed.admin.revoke_device(&gm_device, DAY0 + 9 * 86_400_000).unwrap());

    let mut sv = bed.phone(CARRIER).await;
    sv.phone.carry_relay_bundle(&sealed).unwrap();
    let r = sv.sync().await.unwrap();
    assert_eq!((r.relayed_bundles, r.relayed_changes), (1, 0), "{r:?}");
    assert!(r.relay_refused_changes > 0);
    assert!(bed.admin.record(later.id).unwrap().is_none(), "a revoked key signed something new in");

    // Earlier signatures still verify: the dashboard says so, device
    // revoked or not.
    let cookie = bed.session("vl-t01-v01");
    let page = bed.get(&format!("/web/records/{patrol_id}/provenance"), &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("签名有效") && html.contains("停用"), "{html}");
    assert!(!html.contains("签名无效"));
    // The export, by the command line, verified by the independent program.
    let export = bed.dir.path().join("provenance.json");
    let out = Command::new(server_binary().unwrap())
        .args(["--data-dir", &bed.dir.path().to_string_lossy(), "export-provenance", "--record"])
        .arg(household_id.to_string())
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, text) = verify(&export);
    assert!(ok, "{text}");
    assert!(text.contains("VALID") && text.contains("0 invalid"), "{text}");

    // One byte of one change altered: the check fails, naming it.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let change = doc["changes"][0]["change"].as_str().unwrap().to_owned();
    let mut bytes = from_hex(&change).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    doc["changes"][0]["change"] = serde_json::Value::from(hex_of(&bytes));
    let altered = bed.dir.path().join("altered.json");
    std::fs::write(&altered, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (ok, text) = verify(&altered);
    assert!(!ok, "{text}");
    assert!(text.contains("INVALID"), "{text}");
    // The dashboard's download is the same export.
    let download = bed.get(&format!("/web/records/{household_id}/provenance.json"), &[("Cookie", &cookie)]);
    assert_eq!(download.status, 200);
    let d: serde_json::Value = serde_json::from_slice(&download.body).unwrap();
    assert_eq!(
        d["changes"],
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&export).unwrap()).unwrap()["changes"]
    );
}

/// Run the independent verifier on an export: (exit 0, its output).
fn verify(export: &Path) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/provenance/verify.py");
    let out = Command::new("python3").arg(script).arg(export).output().expect("python3 runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
