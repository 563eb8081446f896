//! What each fuzz target checks, as plain functions of the fuzzer's bytes.
//!
//! Every decoder that untrusted bytes reach has a target here: the server's
//! doors (a sync body, a bundle and a sealed relay bundle, the enrollment,
//! device-key and problem-report JSON, a photo chunk's request and upload,
//! the agencies' case-count CSV, the dashboard's form bodies, the changes a
//! phone sends) and the phone's (a sync answer, a bundle it imports, an
//! Automerge sync message). A target panics when a property fails: not
//! only "no panic", but the decoder's answer within its limits (counts,
//! sizes, memory from [`alloc::peak_during`]) and valid inputs read back as
//! written.
//!
//! The same functions run in two places: `tests/fuzz` wraps each in a
//! libFuzzer target (coverage-guided, built on stable Rust), and this
//! crate's `tests/replay.rs` runs every file in `tests/fuzz/crashers/` and
//! `tests/fuzz/seeds/` through its target in the ordinary `cargo test`, so
//! a past crash stays fixed without the fuzzing toolchain. See
//! `docs/architecture.md` ("Fuzzing").
//!
//! # Layout
//! - [`alloc`]: the counting allocator the binaries install.
//! - [`wire`]: the binary protocol (sync requests and answers, bundles,
//!   relay, received changes, Automerge sync messages).
//! - [`forms`]: JSON, CSV and form bodies, and photo chunks.
//! - [`seeds`]: valid inputs to start each target from.

pub mod alloc;
pub mod forms;
pub mod seeds;
pub mod wire;

/// One fuzz target: its name (its crashers' folder) and its check.
#[derive(Clone, Copy)]
pub struct Target {
    /// Name of the libFuzzer binary and of its folders under `tests/fuzz`.
    pub name: &'static str,
    /// Panics when a property fails on these bytes.
    pub check: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "sync_request", check: wire::sync_request },
    Target { name: "bundle", check: wire::bundle },
    Target { name: "relay_sealed", check: wire::relay_sealed },
    Target { name: "received_changes", check: wire::received_changes },
    Target { name: "sync_response", check: wire::sync_response },
    Target { name: "phone_bundle_import", check: wire::phone_bundle_import },
    Target { name: "automerge_sync_message", check: wire::automerge_sync_message },
    Target { name: "enroll_json", check: forms::enroll_json },
    Target { name: "device_key_json", check: forms::device_key_json },
    Target { name: "problem_report", check: forms::problem_report },
    Target { name: "photo_chunk", check: forms::photo_chunk },
    Target { name: "case_counts_csv", check: forms::case_counts_csv },
    Target { name: "web_form", check: forms::web_form },
    Target { name: "web_multipart", check: forms::web_multipart },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// Set up a fuzzing process: the allocator must count, and panics that a
/// guard catches (Automerge's, inside `gridsync_core::doc::guarded`) must
/// not abort the process as libFuzzer's hook would; one that escapes a
/// target still does, after its message is printed by [`run`].
pub fn init() {
    alloc::check_active();
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Run `check` on `data` in a fuzzing process: a panic that escapes it is
/// printed and aborts (libFuzzer then saves the input as a crash).
pub fn run(check: fn(&[u8]), data: &[u8]) {
    if std::panic::catch_unwind(|| check(data)).is_err() {
        let msg = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        eprintln!("property failed: {msg}");
        std::process::abort();
    }
}
