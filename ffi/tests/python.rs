//! The Python proof, run by `cargo test`: build `libgridsync_ffi` and its
//! Python bindings with `ffi/generate-bindings.sh` (the same build the
//! Kotlin suite in `kotlin.rs` uses, so the two share it), build
//! `gridsync-server`, then run the pytest suite in `ffi/python/tests`
//! against that library and a real server.
//!
//! Needs `python3` with pytest (`python3 -m pip install pytest`); without
//! it the test fails and says so, unless `GRIDSYNC_SKIP_PYTHON=1`, which
//! skips it and prints `skipped:`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

mod support;
use support::{build_bindings, build_server, visible};

fn pytest_available() -> bool {
    Command::new("python3").args(["-m", "pytest", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Phones driven from Python through the generated bindings: every record
/// kind round-trips through an encrypted store and a real server, and each
/// failure reaches Python as the typed error an app would act on.
#[test]
fn python_suite_passes_against_a_real_server() -> Result<()> {
    if std::env::var("GRIDSYNC_SKIP_PYTHON").as_deref() == Ok("1") {
        visible("skipped: GRIDSYNC_SKIP_PYTHON=1, the Python bindings were not tested");
        return Ok(());
    }
    if !pytest_available() {
        bail!(
            "`python3 -m pytest` is not available: run `python3 -m pip install pytest` (or set GRIDSYNC_SKIP_PYTHON=1)"
        );
    }
    let work = tempfile::tempdir()?;
    // The script generates the module and copies the library next to it,
    // where the module loads it from.
    let bindings = work.path().join("bindings");
    build_bindings("python", &bindings)?;
    let server = build_server()?;

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests");
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&suite)
        .env("GRIDSYNC_BINDINGS_DIR", bindings.join("python"))
        .env("GRIDSYNC_SERVER_BIN", &server)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .context("cannot run python3")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    ensure!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    Ok(())
}
