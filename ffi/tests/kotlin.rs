//! The Kotlin proof, run by `cargo test`: build `libgridsync_ffi` and its
//! Kotlin bindings with `ffi/generate-bindings.sh` (the build and generator
//! a developer gets), build `gridsync-server`, compile the bindings with the
//! suite in `ffi/kotlin/tests` using `kotlinc-jvm`, and run it on the JVM
//! against that library and a real server on loopback.
//!
//! Needs the Kotlin compiler, JNA and a JDK. `.ci/run` installs them:
//! `kotlinc-jvm` from npm's `kotlin-compiler` under
//! `~/.cache/gridsync/kotlin` (or `GRIDSYNC_KOTLINC`), JNA from Debian's
//! `libjna-java` (or `GRIDSYNC_JNA_JAR`). Without them the test fails and
//! says how to install them, unless `GRIDSYNC_SKIP_KOTLIN=1`, which skips
//! it and prints `skipped:`. `GRIDSYNC_KOTLIN_TESTS` runs only the Kotlin
//! tests whose names contain one of its comma-separated words.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

mod support;
use support::{build_bindings, build_server, visible};

/// The whole Kotlin run (not the builds) may take this long before it is
/// killed and the test fails.
const SUITE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A `gridsync-server` with the demo county on a loopback port, stopped
/// when dropped.
struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

impl Server {
    fn start(bin: &Path) -> Result<Server> {
        let data = tempfile::tempdir()?;
        let out = Command::new(bin).arg("--data-dir").arg(data.path()).args(["load-tree", "--demo"]).output()?;
        ensure!(out.status.success(), "load-tree --demo failed: {}", String::from_utf8_lossy(&out.stderr));
        let log = std::fs::File::create(data.path().join("server.log"))?;
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .env("RUST_LOG", "warn")
            // The suite enrolls a dozen phones from one address in seconds.
            .env("GRIDSYNC_ENROLL_PER_MINUTE", "1000")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Read until it says where it listens, then keep draining so the
        // server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = Server { child, url: String::new(), data };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => server.url = url,
            Err(_) => bail!("gridsync-server did not say where it listens:\n{}", server.log_tail()),
        }
        Ok(server)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the Kotlin toolchain is.
struct Toolchain {
    kotlinc: PathBuf,
    /// kotlin-stdlib, kotlinx-coroutines-core-jvm and kotlin-test, from
    /// the compiler's own `lib/`.
    kotlin_lib: PathBuf,
    jna: PathBuf,
    java: PathBuf,
}

impl Toolchain {
    /// The toolchain, or what is missing and how to install it.
    fn find() -> Result<Toolchain, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let kotlinc = std::env::var_os("GRIDSYNC_KOTLINC")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache/gridsync/kotlin/node_modules/kotlin-compiler/bin/kotlinc-jvm"));
        let kotlin_lib = kotlinc.parent().and_then(Path::parent).map(|p| p.join("lib")).unwrap_or_default();
        let jna = std::env::var_os("GRIDSYNC_JNA_JAR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/share/java/jna.jar"));
        let java = std::env::var_os("JAVA_HOME")
            .map(|h| PathBuf::from(h).join("bin/java"))
            .filter(|j| j.exists())
            .unwrap_or_else(|| PathBuf::from("java"));
        let mut missing = Vec::new();
        if !kotlinc.exists() {
            missing.push(format!(
                "no kotlinc-jvm at {} (`npm install --prefix ~/.cache/gridsync/kotlin kotlin-compiler@2.4.20`, \
                 or set GRIDSYNC_KOTLINC)",
                kotlinc.display()
            ));
        }
        for jar in ["kotlin-stdlib.jar", "kotlinx-coroutines-core-jvm.jar", "kotlin-test.jar"] {
            if kotlinc.exists() && !kotlin_lib.join(jar).exists() {
                missing.push(format!("no {jar} in {}", kotlin_lib.display()));
            }
        }
        if !jna.exists() {
            missing.push(format!(
                "no JNA jar at {} (`apt-get install libjna-java`, or set GRIDSYNC_JNA_JAR)",
                jna.display()
            ));
        }
        if !Command::new(&java).arg("-version").output().map(|o| o.status.success()).unwrap_or(false) {
            missing.push(format!("cannot run `{} -version` (install a JDK, 17 or later)", java.display()));
        }
        if missing.is_empty() { Ok(Toolchain { kotlinc, kotlin_lib, jna, java }) } else { Err(missing.join("\n  ")) }
    }

    fn classpath(&self, extra: &[&Path]) -> Result<std::ffi::OsString> {
        let mut parts: Vec<PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
        parts.push(self.jna.clone());
        for jar in ["kotlin-stdlib.jar", "kotlinx-coroutines-core-jvm.jar", "kotlin-test.jar"] {
            parts.push(self.kotlin_lib.join(jar));
        }
        Ok(std::env::join_paths(parts)?)
    }
}

/// Run `cmd` with its output in `dir/<name>.out`, killing it after
/// `timeout`; returns whether it succeeded and its output.
fn run_logged(mut cmd: Command, dir: &Path, name: &str, timeout: Duration) -> Result<(bool, String)> {
    let path = dir.join(format!("{name}.out"));
    let out = std::fs::File::create(&path)?;
    let mut child = cmd.stdout(out.try_clone()?).stderr(out).spawn().with_context(|| format!("cannot run {name}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = std::fs::read_to_string(&path).unwrap_or_default();
    if status.is_none() {
        output.push_str(&format!("\n{name} killed after {} s\n", timeout.as_secs()));
    }
    Ok((status.is_some_and(|s| s.success()), output))
}

/// The `.kt` files under `dir`, recursively, in a stable order.
fn kotlin_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| Ok(e?.path()))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            kotlin_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "kt") {
            out.push(path);
        }
    }
    Ok(())
}

/// Phones driven from Kotlin on the JVM through the generated bindings:
/// every record kind through an encrypted store and a real server, lists
/// paged by a cursor, the steps offered matching the steps taken, a dispute
/// up its levels with a conflict settled by its content, a sync cancelled
/// over a link that never answers, the change listener, sign-out, rekey,
/// names and labels, the figures, and each failure as the typed exception
/// an Android app would catch.
#[test]
fn kotlin_suite_passes_against_a_real_server() -> Result<()> {
    if std::env::var("GRIDSYNC_SKIP_KOTLIN").as_deref() == Ok("1") {
        visible("skipped: GRIDSYNC_SKIP_KOTLIN=1, the Kotlin bindings were not tested");
        return Ok(());
    }
    let tools = match Toolchain::find() {
        Ok(t) => t,
        Err(missing) => bail!(
            "the Kotlin toolchain is not installed (.ci/run installs it; or set GRIDSYNC_SKIP_KOTLIN=1 to skip):\n  \
             {missing}"
        ),
    };

    let t0 = Instant::now();
    let work = tempfile::tempdir()?;
    let bindings = work.path().join("bindings");
    let lib = build_bindings("kotlin", &bindings)?;
    let server_bin = build_server()?;
    let built = t0.elapsed();

    // Compile the generated bindings and the suite together.
    let t1 = Instant::now();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("kotlin/tests");
    // Every file the generator wrote (the core's types and GridCore, one
    // package each), as an app's build would take them.
    let mut sources = Vec::new();
    kotlin_files(&bindings.join("kotlin"), &mut sources)?;
    for wanted in ["org/gridsync/core/gridsync_core.kt", "org/gridsync/ffi/gridsync_ffi.kt"] {
        let path = bindings.join("kotlin").join(wanted);
        ensure!(sources.contains(&path), "uniffi-bindgen wrote no {}", path.display());
    }
    kotlin_files(&suite, &mut sources)?;
    let jar = work.path().join("suite.jar");
    let mut kotlinc = Command::new(&tools.kotlinc);
    kotlinc.arg("-d").arg(&jar).arg("-cp").arg(tools.classpath(&[])?).args(&sources);
    let (ok, output) = run_logged(kotlinc, work.path(), "kotlinc", SUITE_TIMEOUT)?;
    ensure!(ok, "kotlinc failed:\n{output}");
    let compiled = t1.elapsed();

    // Run it against the library just built and a fresh server.
    let t2 = Instant::now();
    let server = Server::start(&server_bin)?;
    let mut java = Command::new(&tools.java);
    // Both components' bindings load the one library just built.
    java.arg(format!("-Duniffi.component.gridsync_ffi.libraryOverride={}", lib.display()))
        .arg(format!("-Duniffi.component.gridsync_core.libraryOverride={}", lib.display()))
        .arg("-cp")
        .arg(tools.classpath(&[&jar])?)
        .arg("org.gridsync.test.HarnessKt")
        .args(std::env::var("GRIDSYNC_KOTLIN_TESTS").unwrap_or_default().split(',').filter(|s| !s.is_empty()))
        .env("GRIDSYNC_SERVER_URL", &server.url)
        .env("GRIDSYNC_SERVER_BIN", &server_bin)
        .env("GRIDSYNC_SERVER_DATA_DIR", server.data.path());
    let (ok, output) = run_logged(java, work.path(), "java", SUITE_TIMEOUT)?;
    println!("{output}");
    ensure!(ok, "the Kotlin suite failed:\n{output}\nserver log:\n{}", server.log_tail());
    ensure!(output.contains("kotlin suite: ") && output.contains(" passed, 0 failed"), "no summary line:\n{output}");
    drop(server);
    println!(
        "kotlin: built library and server in {:.0} s, compiled in {:.0} s, ran in {:.0} s",
        built.as_secs_f64(),
        compiled.as_secs_f64(),
        t2.elapsed().as_secs_f64()
    );
    Ok(())
}
