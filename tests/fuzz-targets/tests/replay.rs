//! Every crashing input the fuzzers found (`tests/fuzz/crashers/<target>/`)
//! and every seed (`tests/fuzz/seeds/<target>/` and `seeds::seeds`), run
//! through its target on each `cargo test`: a past crash stays fixed, and
//! the targets' properties hold on honest inputs, without the fuzzing
//! toolchain.

use std::path::{Path, PathBuf};

use gridsync_fuzz_targets::alloc::CountingAlloc;
use gridsync_fuzz_targets::{TARGETS, seeds, target};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `tests/fuzz/<kind>/<target>/`, by target.
fn inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(kind)) else { return out };
    for dir in dirs.flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if f.path().is_file() && !f.file_name().to_string_lossy().starts_with('.') {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out.sort();
    out
}

/// Each crasher replays through its target without a property failing, and
/// every folder is named after a target (a typo would skip its inputs).
#[test]
fn every_crasher_replays_clean() {
    gridsync_fuzz_targets::alloc::check_active();
    let crashers = inputs("crashers");
    assert!(crashers.iter().any(|(t, _)| t == "automerge_sync_message"), "the Automerge crasher is missing");
    for (name, path) in crashers {
        let t = target(&name).unwrap_or_else(|| panic!("{}: no target {name}", path.display()));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| (t.check)(&bytes)).is_err() {
            panic!("crasher {} fails its target again", path.display());
        }
    }
}

/// Every target's seeds, written and committed, hold its properties.
#[test]
fn every_seed_holds_its_targets_properties() {
    gridsync_fuzz_targets::alloc::check_active();
    for t in TARGETS {
        let made = seeds::seeds(t.name);
        assert!(!made.is_empty(), "{} has no seeds", t.name);
        for s in made {
            (t.check)(&s);
        }
    }
    for (name, path) in inputs("seeds") {
        let t = target(&name).unwrap_or_else(|| panic!("{}: no target {name}", path.display()));
        (t.check)(&std::fs::read(&path).unwrap_or_default());
    }
}

/// The Automerge sync message that made Automerge 0.12 divide by zero: a
/// Bloom filter of one entry and zero bits per entry, which decodes, and
/// panics when a document answers it. Unguarded, it panics; behind
/// `doc::guarded` it is an error; `doc::decode_sync_message` refuses it
/// before Automerge uses it; and its target replays it clean.
#[test]
fn the_automerge_divide_by_zero_is_caught_by_the_guard() {
    use automerge::sync::SyncDoc;
    use gridsync_core::doc::{decode_sync_message, guarded};
    let path = fuzz_dir().join("crashers/automerge_sync_message/bloom-zero-bits-divides-by-zero");
    let bytes = std::fs::read(&path).expect("the crasher is in the folder");
    let answer = || {
        let msg = automerge::sync::Message::decode(&bytes).expect("Automerge decodes it");
        let mut doc = automerge::AutoCommit::new();
        let _ = automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "kind", "patrol");
        doc.commit();
        let mut state = automerge::sync::State::new();
        doc.sync()
            .receive_sync_message(&mut state, msg)
            .map_err(|e| gridsync_core::CoreError::Document(e.to_string()))?;
        let _ = doc.sync().generate_sync_message(&mut state);
        Ok(())
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let unguarded = std::panic::catch_unwind(answer);
    std::panic::set_hook(hook);
    let why = unguarded.expect_err("Automerge no longer panics on it: update this test and the docs");
    let why = why.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| why.downcast_ref::<String>().cloned());
    assert!(why.as_deref().is_some_and(|w| w.contains("divisor of zero")), "{why:?}");
    assert!(guarded(answer).is_err());
    let refused = decode_sync_message(&bytes).expect_err("refused up front");
    assert!(refused.to_string().contains("0 bits per entry"), "{refused}");
    (target("automerge_sync_message").expect("a target").check)(&bytes);
}
