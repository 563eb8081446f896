//! The encrypted store (feature `sqlcipher`): a wrong key says nothing on
//! stderr (Android sends stderr to logcat, which other apps' bug reports
//! collect), and re-keying moves the store to a new key.
#![cfg(feature = "sqlcipher")]

use std::process::Command;

use gridsync_core::CoreError;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{Dispute, DisputeCategory, Record, RecordBody};
use gridsync_core::store::Store;

fn dispute() -> Record {
    Record::new(
        GridPath::parse("t01/v01/g1").unwrap(),
        "u1",
        1,
        RecordBody::Dispute(Dispute {
            parties: vec!["张三".into()],
            category: DisputeCategory::Land,
            summary: "地界纠纷".into(),
            found_at: 1,
            events: vec![],
        }),
    )
}

/// Run in a child process by the test below: open `path` with a wrong key.
#[test]
fn child_opens_with_a_wrong_key() {
    let Some(path) = std::env::var_os("GRIDSYNC_WRONG_KEY_CHILD") else { return };
    let result = Store::open_encrypted(&path, &[9u8; 32]);
    assert!(matches!(result, Err(CoreError::WrongKey)), "{result:?}");
}

#[test]
fn a_wrong_key_leaves_nothing_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    Store::open_encrypted(&path, &[7u8; 32]).unwrap().create(&dispute()).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "encrypted::child_opens_with_a_wrong_key", "--nocapture", "--test-threads=1"])
        .env("GRIDSYNC_WRONG_KEY_CHILD", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    for needle in ["hmac", "sqlcipher", "ERROR"] {
        assert!(!stderr.contains(needle), "stderr says {needle:?}:\n{stderr}");
    }
}

#[test]
fn rekeying_moves_the_store_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let rec = dispute();
    {
        let mut s = Store::open_encrypted(&path, &old).unwrap();
        s.create(&rec).unwrap();
        s.rekey(&new).unwrap();
        // The open store goes on working.
        assert_eq!(s.get(rec.id).unwrap(), rec);
    }
    assert!(matches!(Store::open_encrypted(&path, &old), Err(CoreError::WrongKey)));
    let s = Store::open_encrypted(&path, &new).unwrap();
    assert_eq!(s.get(rec.id).unwrap(), rec);
    assert!(s.integrity_ok().unwrap());
}
