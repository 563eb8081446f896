//! Real `gridsync-server` processes for tests.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gridsync_server::store::ServerStore;

/// Where a server keeps its data.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite in this directory.
    Sqlite(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

impl Db {
    fn args(&self) -> Vec<String> {
        match self {
            Db::Sqlite(dir) => vec!["--data-dir".into(), dir.to_string_lossy().into_owned()],
            Db::Postgres(url) => vec!["--database-url".into(), url.clone()],
        }
    }

    /// Open the same database from the test process (to seed users, issue
    /// codes, and check what the server stored).
    pub fn open(&self) -> Result<Arc<dyn ServerStore>> {
        let target = match self {
            Db::Sqlite(dir) => {
                std::fs::create_dir_all(dir)?;
                dir.join("gridsync.sqlite3").to_string_lossy().into_owned()
            }
            Db::Postgres(url) => url.clone(),
        };
        Ok(gridsync_server::open_store(&target)?)
    }
}

/// Run an administrator's command (`gc-photos --grace-days 0`, say) of the
/// server binary on `db`, as an operator would, and return its standard
/// output; a command that fails is an error with its standard error.
pub fn admin_command(db: &Db, args: &[&str]) -> Result<String> {
    let out = Command::new(server_binary()?).args(db.args()).args(args).env("RUST_LOG", "warn").output()?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The server binary: this package's `gridsync-server-e2e`, which Cargo
/// builds from the current sources before it runs the tests.
pub fn server_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/gridsync-server-e2e
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test binary location")?;
    let bin = profile_dir.join("gridsync-server-e2e");
    if !bin.exists() {
        bail!("{} is missing: run the tests with `cargo test -p gridsync-tests`", bin.display());
    }
    Ok(bin)
}

/// A running server process.
pub struct ServerProc {
    child: Option<Child>,
    db: Db,
    addr: String,
    bin: PathBuf,
    prefix: Vec<String>,
    extra: Vec<String>,
    env: Vec<(String, OsString)>,
}

impl ServerProc {
    /// Start a server on an ephemeral loopback port.
    pub fn start(db: Db) -> Result<ServerProc> {
        Self::start_with(server_binary()?, vec![], db)
    }

    /// Start a server with extra `serve` arguments (limits, say).
    pub fn start_serving(db: Db, extra: &[&str]) -> Result<ServerProc> {
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::start_on(server_binary()?, vec![], vec![], db, "127.0.0.1:0", extra)
    }

    /// Start `bin` with `prefix` arguments before the server's own (the
    /// bench re-runs itself as the server this way).
    pub fn start_with(bin: PathBuf, prefix: Vec<String>, db: Db) -> Result<ServerProc> {
        Self::start_on(bin, prefix, vec![], db, "127.0.0.1:0", vec![])
    }

    /// Start a server with extra environment variables (the power-cut
    /// shim's, see [`crate::powercut`]), kept for restarts.
    pub fn start_with_env(db: Db, env: Vec<(String, OsString)>) -> Result<ServerProc> {
        Self::start_on(server_binary()?, vec![], env, db, "127.0.0.1:0", vec![])
    }

    fn start_on(
        bin: PathBuf,
        prefix: Vec<String>,
        env: Vec<(String, OsString)>,
        db: Db,
        listen: &str,
        extra: Vec<String>,
    ) -> Result<ServerProc> {
        let mut child = Command::new(&bin)
            .args(&prefix)
            .args(db.args())
            .args(["serve", "--listen", listen, "--workers", "2"])
            // Tests and the bench enroll hundreds of phones from loopback;
            // a test of the limit itself sets its own.
            .args(if extra.iter().any(|a| a == "--enroll-per-minute") {
                vec![]
            } else {
                vec!["--enroll-per-minute", "100000"]
            })
            .args(&extra)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start gridsync-server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                bail!("gridsync-server exited before listening: {status}");
            };
            if let Some(a) = line?.strip_prefix("listening on http://") {
                break a.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProc { child: Some(child), db, addr, bin, prefix, extra, env })
    }

    /// The server process's peak resident memory so far (VmHWM), MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        self.status_kib("VmHWM").map(|k| k as f64 / 1024.0)
    }

    /// The server process's resident memory now (VmRSS), MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        self.status_kib("VmRSS").map(|k| k as f64 / 1024.0)
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> Result<usize> {
        let pid = self.pid().context("not running")?;
        Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
    }

    fn status_kib(&self, field: &str) -> Result<u64> {
        let pid = self.pid().context("not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    }

    /// Process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Kill with SIGKILL (no chance to flush anything) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Environment variables for the next [`ServerProc::restart`].
    pub fn set_env(&mut self, env: Vec<(String, OsString)>) {
        self.env = env;
    }

    /// Start again on the same address, retrying while the port is released.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let mut last = None;
        for _ in 0..50 {
            match Self::start_on(
                self.bin.clone(),
                self.prefix.clone(),
                self.env.clone(),
                self.db.clone(),
                &self.addr.clone(),
                self.extra.clone(),
            ) {
                Ok(mut p) => {
                    self.child = p.child.take();
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("restart failed")))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Issue an enrollment code for `user` directly in the database.
pub fn issue_code(store: &dyn ServerStore, user: &str) -> Result<String> {
    Ok(gridsync_server::accounts::issue_enrollment_code(store, user, gridsync_server::clock::now_ms(), 1)?)
}

/// Load the demo county's tree and users.
pub fn seed_demo(store: &dyn ServerStore) -> Result<()> {
    gridsync_server::demo::load(store)?;
    Ok(())
}

/// Why a test is ignored without PostgreSQL (run it with `--include-ignored`
/// and `GRIDSYNC_TEST_POSTGRES_URL` set).
pub const NEEDS_POSTGRES: &str = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored";

/// A fresh PostgreSQL database (its own schema) for a test. The tests that
/// call this are `#[ignore]`d; asked to run without
/// `GRIDSYNC_TEST_POSTGRES_URL`, or with one that does not work, they fail.
pub fn postgres_db() -> Db {
    match gridsync_server::store::postgres::test_database_url() {
        Some(url) => Db::Postgres(url),
        None => panic!("this test needs GRIDSYNC_TEST_POSTGRES_URL (see README)"),
    }
}

/// The test's own handle on the server's database. PostgreSQL's client
/// blocks, so inside async tests every call goes through [`blocking`], and
/// the handle is dropped off the async workers too (also when a test fails).
pub struct Admin(Option<Arc<dyn ServerStore>>);

impl Admin {
    /// Open `db` from an async test.
    pub fn open(db: &Db) -> Admin {
        Admin(Some(blocking(|| db.open().expect("open the test database"))))
    }
}

impl std::ops::Deref for Admin {
    type Target = Arc<dyn ServerStore>;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let inner = self.0.take();
        blocking(move || drop(inner));
    }
}

/// Run blocking work from a multi-threaded async test.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(f),
        Err(_) => f(),
    }
}
