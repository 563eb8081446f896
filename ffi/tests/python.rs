//! The foreign-language proof, run by `cargo test`: generate the Python
//! bindings from the built library with the workspace's own
//! uniffi-bindgen, then run the pytest suite in `ffi/python/tests` against
//! a real `gridsync-server`.
//!
//! Needs `python3` with pytest (`python3 -m pip install pytest`); without
//! it the test fails and says so, unless `GRIDSYNC_SKIP_PYTHON=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// `target/<profile>`, where Cargo put the bindgen binary and the library.
fn profile_dir() -> Result<PathBuf> {
    let bindgen = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    Ok(bindgen.parent().context("bindgen has no directory")?.to_path_buf())
}

fn library_name() -> &'static str {
    if cfg!(target_os = "macos") { "libgridsync_ffi.dylib" } else { "libgridsync_ffi.so" }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The cdylib. `cargo test` builds only the rlib, so on a clean checkout it
/// is built here.
fn library(profile: &Path) -> Result<PathBuf> {
    let lib = profile.join(library_name());
    if !lib.exists() {
        // The same selection as ffi/generate-bindings.sh, so the script that
        // .ci/run calls afterwards finds everything already built.
        let ok = cargo().args(["build", "-p", "gridsync-ffi", "--lib", "--bin", "uniffi-bindgen"]).status()?.success();
        ensure!(ok && lib.exists(), "cannot build {}", lib.display());
    }
    Ok(lib)
}

/// The server binary: `GRIDSYNC_SERVER_BIN`, or the one `cargo test
/// --workspace` built (gridsync-server has integration tests), or built now.
fn server_binary(profile: &Path) -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("GRIDSYNC_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let bin = profile.join(format!("gridsync-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let ok = cargo().args(["build", "-p", "gridsync-server", "--bin", "gridsync-server"]).status()?.success();
        ensure!(ok && bin.exists(), "cannot build {}", bin.display());
    }
    Ok(bin)
}

fn pytest_available() -> bool {
    Command::new("python3").args(["-m", "pytest", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Phones driven from Python through the generated bindings: every record
/// kind round-trips through an encrypted store and a real server, and each
/// failure reaches Python as the typed error an app would act on.
#[test]
fn python_suite_passes_against_a_real_server() -> Result<()> {
    if std::env::var("GRIDSYNC_SKIP_PYTHON").as_deref() == Ok("1") {
        println!("skipped: GRIDSYNC_SKIP_PYTHON=1");
        return Ok(());
    }
    if !pytest_available() {
        bail!(
            "`python3 -m pytest` is not available: run `python3 -m pip install pytest` (or set GRIDSYNC_SKIP_PYTHON=1)"
        );
    }
    let profile = profile_dir()?;
    let lib = library(&profile)?;
    let server = server_binary(&profile)?;

    let bindings = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(&lib)
        .args(["--language", "python", "--out-dir"])
        .arg(bindings.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("cannot run uniffi-bindgen")?;
    ensure!(
        out.status.success(),
        "uniffi-bindgen failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The generated module loads the library from its own directory.
    std::fs::copy(&lib, bindings.path().join(library_name()))?;

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests");
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&suite)
        .env("GRIDSYNC_BINDINGS_DIR", bindings.path())
        .env("GRIDSYNC_LIBRARY_DIR", &profile)
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
