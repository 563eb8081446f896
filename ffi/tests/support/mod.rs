//! What the foreign-language suites share (each integration test is its
//! own crate, so `kotlin.rs` and `python.rs` include this module): building
//! the library, its bindings and the server the way a developer would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// Print past the test harness's capture: a skip must be seen.
pub fn visible(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub fn library_name() -> &'static str {
    if cfg!(target_os = "macos") { "libgridsync_ffi.dylib" } else { "libgridsync_ffi.so" }
}

/// The Cargo profile this test was built with (`debug` or `release`) and
/// the target directory, from where Cargo put the bindgen binary.
pub fn profile_and_target_dir() -> Result<(String, PathBuf)> {
    let bindgen = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    let profile_dir = bindgen.parent().context("bindgen has no directory")?;
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).context("no profile directory")?.to_owned();
    ensure!(
        profile == "debug" || profile == "release",
        "ffi/generate-bindings.sh builds the debug or release profile only, not `{profile}`"
    );
    Ok((profile, profile_dir.parent().context("no target directory")?.to_path_buf()))
}

/// Drop what Cargo set for running this test (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, `OUT_DIR`...) from a command that runs Cargo
/// again: build scripts (ring's, through `cc`) rerun when those change, so
/// a nested build that inherited them would rebuild ring, rustls, reqwest
/// and the core, and the next build from a shell would rebuild them back.
pub fn without_cargo_test_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if k == "OUT_DIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || matches!(k, "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR")
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// `cargo build` for the profile this test runs under, in its target
/// directory, with a shell's environment.
pub fn cargo_build(profile: &str, target_dir: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    without_cargo_test_env(&mut cmd).arg("build").args(args).env("CARGO_TARGET_DIR", target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    ensure!(cmd.status().context("cannot run cargo")?.success(), "cargo build {} failed", args.join(" "));
    Ok(())
}

/// Build the library exactly as `ffi/generate-bindings.sh` does (it runs
/// the build itself), generate `language`'s bindings into `out`, and
/// return the library's path.
pub fn build_bindings(language: &str, out: &Path) -> Result<PathBuf> {
    let (profile, target_dir) = profile_and_target_dir()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("generate-bindings.sh");
    let status = without_cargo_test_env(&mut Command::new(&script))
        .arg(language)
        .env("PROFILE", &profile)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("OUT_DIR", out)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(status.success(), "{} {language} failed", script.display());
    let lib = target_dir.join(&profile).join(library_name());
    ensure!(lib.exists(), "{} was not built", lib.display());
    Ok(lib)
}

/// Build the server binary now, so the suite never runs against a stale one.
pub fn build_server() -> Result<PathBuf> {
    let (profile, target_dir) = profile_and_target_dir()?;
    cargo_build(&profile, &target_dir, &["-p", "gridsync-server", "--bin", "gridsync-server"])?;
    Ok(target_dir.join(&profile).join(format!("gridsync-server{}", std::env::consts::EXE_SUFFIX)))
}
