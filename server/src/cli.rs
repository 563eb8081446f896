//! The `gridsync-server` command line: run the sync server and administer it.
//!
//! ```text
//! gridsync-server serve --demo                 # SQLite in ./data, demo county
//! gridsync-server --database-url postgres://... serve
//! gridsync-server add-user --id gm-1 --name 王建国 --role grid_manager --grid t01/v01/g1
//! gridsync-server enroll-code --user gm-1
//! gridsync-server devices
//! gridsync-server revoke-device <device-id>
//! gridsync-server set-password --user tc-t01-1 --password-stdin < pw.txt
//! gridsync-server gc-photos --grace-days 7
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{GridNode, ServerStore, User};
use crate::{AppState, Limits, demo};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gridsync_core::grid::Role;

#[derive(Parser)]
#[command(name = "gridsync-server", version, about = "Gridsync sync server")]
struct Cli {
    /// Directory for the embedded SQLite database.
    #[arg(long, env = "GRIDSYNC_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user@host/db); without it, SQLite in the data directory.
    #[arg(long, env = "GRIDSYNC_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Most connections this node opens to PostgreSQL (merges, feeds, the
    /// dashboard and photos share them). Every node of a province opens up
    /// to this many: keep nodes × this under the database's max_connections.
    #[arg(long, env = "GRIDSYNC_DB_CONNECTIONS", default_value_t = crate::pg_pool::ClientPool::DEFAULT_MAX_OPEN, global = true)]
    db_connections: usize,
    /// Log as JSON lines.
    #[arg(long, env = "GRIDSYNC_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The server's limits (see `docs/operations.md#limits`).
#[derive(clap::Args, Debug, Clone)]
struct LimitArgs {
    /// Largest sync request body as sent, MiB.
    #[arg(long, env = "GRIDSYNC_MAX_BODY_MIB", default_value_t = 8)]
    max_body_mib: usize,
    /// Most changes in one sync request.
    #[arg(long, env = "GRIDSYNC_MAX_CHANGES", default_value_t = 20_000)]
    max_changes: usize,
    /// Memory for request bodies in flight (as sent and inflated), MiB; beyond it, 503 with Retry-After.
    #[arg(long, env = "GRIDSYNC_MAX_INFLIGHT_MIB", default_value_t = 256)]
    max_inflight_mib: usize,
    /// Sync requests judged and merged at once (0: 64 on SQLite, one group commit's worth; 8 per node on PostgreSQL).
    #[arg(long, env = "GRIDSYNC_MERGE_CONCURRENCY", default_value_t = 0)]
    merge_concurrency: usize,
    /// Longest wait for the next piece of a request body, seconds.
    #[arg(long, env = "GRIDSYNC_BODY_IDLE_SECS", default_value_t = 15)]
    body_idle_secs: u64,
    /// Seconds a body may take before the minimum rate applies.
    #[arg(long, env = "GRIDSYNC_BODY_GRACE_SECS", default_value_t = 20)]
    body_grace_secs: u64,
    /// Minimum average rate of a request body after the grace time, bytes per second.
    #[arg(long, env = "GRIDSYNC_BODY_MIN_RATE", default_value_t = 512)]
    body_min_rate: u64,
    /// Enrollment attempts per client address per minute (and at once): a
    /// township office enrolls its grid managers' phones together, behind
    /// one address.
    #[arg(long, env = "GRIDSYNC_ENROLL_PER_MINUTE", default_value_t = 60)]
    enroll_per_minute: u32,
    /// Dashboard sign-in attempts per client address per minute (and at once).
    #[arg(long, env = "GRIDSYNC_SIGN_IN_PER_MINUTE", default_value_t = 20)]
    sign_in_per_minute: u32,
    /// Header with the client address, set by the reverse proxy in front (e.g. X-Real-IP).
    #[arg(long, env = "GRIDSYNC_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// Most open connections (default: the open-file limit less 256, at most 25,000).
    #[arg(long, env = "GRIDSYNC_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Free disk space below which /healthz answers 503 disk_full (SQLite), MiB.
    #[arg(long, env = "GRIDSYNC_MIN_FREE_DISK_MIB", default_value_t = 64)]
    min_free_disk_mib: u64,
    /// Declared bytes of one user's photo uploads under way, at most, MiB
    /// (a new upload past it waits: 429 photo_quota).
    #[arg(long, env = "GRIDSYNC_PHOTO_UNFINISHED_MIB", default_value_t = 64)]
    photo_unfinished_mib: i64,
    /// Declared bytes of the photo uploads one user may begin in 24 hours, MiB.
    #[arg(long, env = "GRIDSYNC_PHOTO_MIB_PER_DAY", default_value_t = 1024)]
    photo_mib_per_day: i64,
    /// Changes one device may hand over by relay per hour, as carrier (and at once).
    #[arg(long, env = "GRIDSYNC_RELAY_CARRIER_CHANGES_PER_HOUR", default_value_t = 40_000)]
    relay_carrier_changes_per_hour: u64,
    /// Records one device's relayed bundles may name per hour, as carrier.
    #[arg(long, env = "GRIDSYNC_RELAY_CARRIER_RECORDS_PER_HOUR", default_value_t = 10_000)]
    relay_carrier_records_per_hour: u64,
    /// Changes signed by one device that may arrive by relay per hour.
    #[arg(long, env = "GRIDSYNC_RELAY_SIGNER_CHANGES_PER_HOUR", default_value_t = 20_000)]
    relay_signer_changes_per_hour: u64,
    /// Records one signer's relayed bundles may name per hour.
    #[arg(long, env = "GRIDSYNC_RELAY_SIGNER_RECORDS_PER_HOUR", default_value_t = 5_000)]
    relay_signer_records_per_hour: u64,
    /// Tile URL template for the dashboard's map, with {z}, {x} and {y}
    /// (e.g. 天地图's with its key); without it the map is drawn over a
    /// latitude and longitude grid and asks no outside host for anything.
    #[arg(long, env = "GRIDSYNC_MAP_TILES")]
    map_tiles: Option<String>,
    /// Attribution shown under the map's tiles (e.g. "天地图").
    #[arg(long, env = "GRIDSYNC_MAP_ATTRIBUTION", default_value = "")]
    map_attribution: String,
}

impl LimitArgs {
    fn limits(&self, postgres: bool) -> anyhow::Result<Limits> {
        if self.max_body_mib == 0 || self.max_body_mib > 64 {
            bail!("--max-body-mib must be between 1 and 64");
        }
        if self.max_inflight_mib < self.max_body_mib * 2 {
            bail!("--max-inflight-mib must be at least twice --max-body-mib");
        }
        if self.max_changes == 0 {
            bail!("--max-changes must be at least 1");
        }
        // A full-size photo must fit both, or it could never be sent.
        let photo_mib = gridsync_core::model::MAX_PHOTO_BYTES >> 20;
        if self.photo_unfinished_mib < photo_mib || self.photo_mib_per_day < photo_mib {
            bail!("--photo-unfinished-mib and --photo-mib-per-day must be at least {photo_mib} (one photo)");
        }
        let rate = |n: u32| crate::ratelimit::Rate { burst: n.max(1), per_minute: n.max(1) };
        Ok(Limits {
            max_body_bytes: self.max_body_mib << 20,
            max_changes: self.max_changes,
            max_inflight_bytes: self.max_inflight_mib << 20,
            merge_concurrency: match self.merge_concurrency {
                0 => crate::api::default_merge_concurrency(postgres),
                n => n,
            },
            body_idle: std::time::Duration::from_secs(self.body_idle_secs.max(1)),
            body_grace: std::time::Duration::from_secs(self.body_grace_secs),
            body_min_rate: self.body_min_rate.max(1),
            enroll_rate: rate(self.enroll_per_minute),
            sign_in_rate: rate(self.sign_in_per_minute),
            client_ip_header: self.client_ip_header.clone(),
            min_free_disk_bytes: self.min_free_disk_mib << 20,
            photo_quota: crate::store::PhotoQuota {
                unfinished_bytes: self.photo_unfinished_mib.saturating_mul(1 << 20),
                daily_bytes: self.photo_mib_per_day.saturating_mul(1 << 20),
            },
            relay_quota: crate::ratelimit::RelayQuota {
                carrier_changes: self.relay_carrier_changes_per_hour.max(1),
                carrier_records: self.relay_carrier_records_per_hour.max(1),
                signer_changes: self.relay_signer_changes_per_hour.max(1),
                signer_records: self.relay_signer_records_per_hour.max(1),
            },
            map_tiles: match &self.map_tiles {
                Some(t) => {
                    Some(crate::web_map::TileSource::parse(t, &self.map_attribution).map_err(|e| anyhow::anyhow!(e))?)
                }
                None => None,
            },
            ..Limits::default()
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "GRIDSYNC_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Seed the demo county (Liangdang-shaped) if the database is empty.
        #[arg(long)]
        demo: bool,
        /// HTTP worker threads (default: number of CPUs).
        #[arg(long)]
        workers: Option<usize>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Load the county tree from a JSON file (`[{"path": "t01", "name": "城关镇"}, ...]`) or the demo county.
    LoadTree {
        /// JSON file with the nodes.
        #[arg(long, conflicts_with = "demo")]
        file: Option<PathBuf>,
        /// Load the demo county and its users.
        #[arg(long)]
        demo: bool,
    },
    /// Add a user.
    AddUser {
        /// Login id.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// grid_manager, village_leader, supervisor, township_chief, county_staff, agency_staff.
        #[arg(long)]
        role: String,
        /// Grid path (t01/v03/g2 for a grid manager, t01/v03 for a village leader...).
        #[arg(long, default_value = "")]
        grid: String,
        /// For agency_staff: police, procuratorate, court or justice.
        #[arg(long)]
        agency: Option<String>,
    },
    /// List users.
    Users,
    /// Issue a one-time enrollment code for a user's phone.
    EnrollCode {
        /// User id.
        #[arg(long)]
        user: String,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = 72)]
        valid_hours: i64,
    },
    /// List enrolled devices.
    Devices,
    /// Revoke a device: it is refused and told to wipe its data.
    RevokeDevice {
        /// Device id.
        id: String,
    },
    /// Set a user's password for the web dashboard (read from stdin, one
    /// line; at least 10 characters). Clears any sign-in lockout.
    SetPassword {
        /// User id.
        #[arg(long)]
        user: String,
        /// Read the password from stdin without prompting (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Import a sync bundle file a phone wrote offline (or a relay bundle
    /// sealed to this server), as the phone that signed it: every change
    /// must carry that phone's signature. Importing the same bundle again
    /// is harmless.
    ImportBundle {
        /// The bundle file.
        file: PathBuf,
    },
    /// Remove stored photos no live record references any more (their
    /// records were deleted), and uploads that never finished (whatever
    /// record names their photo), once nothing has written them for the
    /// grace period; forget the owners of photos whose bytes are gone, so
    /// their phones are asked for them again. Prints what it did as JSON.
    GcPhotos {
        /// Days an unreferenced photo, or an unfinished upload, is kept after it was last written.
        #[arg(long, default_value_t = 7)]
        grace_days: i64,
    },
    /// Write a record's changes, their device signatures and the devices'
    /// public keys as JSON, for a court or an inspection: anyone can check
    /// it without this server (docs/provenance.md).
    ExportProvenance {
        /// Record id (UUID).
        #[arg(long)]
        record: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Print lines, stopping quietly when the reader goes away (`| head`).
fn print_lines(lines: impl Iterator<Item = String>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}

fn database(cli: &Cli) -> anyhow::Result<String> {
    if let Some(url) = &cli.database_url {
        crate::check_database_url(url).map_err(|e| anyhow::anyhow!(e))?;
        return Ok(url.clone());
    }
    std::fs::create_dir_all(&cli.data_dir).with_context(|| format!("cannot create {}", cli.data_dir.display()))?;
    Ok(cli.data_dir.join("gridsync.sqlite3").to_string_lossy().into_owned())
}

fn seed_demo(store: &dyn ServerStore) -> anyhow::Result<bool> {
    if !store.grid_nodes()?.is_empty() {
        return Ok(false);
    }
    demo::load(store)?;
    Ok(true)
}

fn issue_code(store: &dyn ServerStore, user: &str, hours: i64) -> anyhow::Result<String> {
    Ok(crate::accounts::issue_enrollment_code(store, user, crate::clock::now_ms(), hours)?)
}

/// The `serve` command's flags, each with its default (as clap shows it),
/// and the global ones: what the docs' limits table must agree with
/// (`server/tests/server/docs.rs`).
pub fn serve_flags() -> Vec<(String, Option<String>)> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").cloned().unwrap_or_default();
    cmd.get_arguments()
        .chain(serve.get_arguments())
        .filter_map(|a| {
            let long = a.get_long()?;
            let default = a.get_default_values().first().map(|v| v.to_string_lossy().into_owned());
            Some((format!("--{long}"), default))
        })
        .collect()
}

/// Parse the process's command line and run the command.
pub fn main() -> anyhow::Result<()> {
    main_from(std::env::args())
}

/// Parse `args` (program name first) and run the command.
pub fn main_from<I: IntoIterator<Item = String>>(args: I) -> anyhow::Result<()> {
    let cli = Cli::parse_from(args);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    if cli.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init().ok();
    } else {
        // Colours only on a terminal: a log file or journald gets plain
        // lines, with no escape sequence of ours beside the escaped ones.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter).with_writer(std::io::stderr).try_init().ok();
    }
    let db = database(&cli)?;
    let store = crate::open_store_with(&db, cli.db_connections).with_context(|| "cannot open the database")?;
    match cli.command {
        Command::Serve { listen, demo, workers, limits } => {
            let max_connections = limits.max_connections;
            let mut limits = limits.limits(db.starts_with("postgres"))?;
            if cli.database_url.is_none() {
                limits.data_dir = Some(cli.data_dir.clone());
            }
            if demo && seed_demo(store.as_ref())? {
                println!("已载入演示县（12个乡镇、121个村、406个村民小组）。Demo county loaded.");
                println!("正在生成近一个月的演示记录… Loading a month of demo records…");
                let started = std::time::Instant::now();
                let month = crate::demo_month::load_month(store.as_ref(), crate::clock::now_ms(), 2026)?;
                anyhow::ensure!(month.refused == 0, "{} demo records were refused (see the log)", month.refused);
                println!(
                    "已载入{}条演示记录（{}部演示手机签名）、{}个乡镇的上月月报和{}条案件数（{:.0}秒）。",
                    month.records,
                    month.phones,
                    month.reports_submitted,
                    month.case_counts,
                    started.elapsed().as_secs_f64()
                );
                for user in ["gm-t01-v01-g1", "vl-t01-v01", "tc-t01-1"] {
                    println!("enrollment code for {user}: {}", issue_code(store.as_ref(), user, 72)?);
                }
            }
            let listener = crate::listen(&listen).with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, database = if db.starts_with("postgres") { "postgresql" } else { "sqlite" }, "listening");
            println!("listening on http://{addr}");
            let state = AppState::with_limits(Arc::clone(&store), limits);
            let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let server = crate::run(listener, state, workers, max_connections)?;
                server.await
            })?;
        }
        Command::Migrate => println!("schema up to date"),
        Command::LoadTree { file, demo } => {
            if demo {
                let added = demo::load(store.as_ref())?;
                println!("loaded {} grid nodes and {added} new users", demo::demo_county().nodes.len());
            } else if let Some(file) = file {
                let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                let nodes: Vec<GridNode> =
                    serde_json::from_str(&text).with_context(|| "the file is not a list of {path, name}")?;
                store.put_grid_nodes(&nodes)?;
                println!("loaded {} grid nodes", nodes.len());
            } else {
                bail!("give --file PATH or --demo");
            }
        }
        Command::AddUser { id, name, role, grid, agency } => {
            let role: Role = role.parse().map_err(|e: gridsync_core::CoreError| anyhow::anyhow!("{e}"))?;
            let grid = crate::accounts::parse_grid(&grid)?;
            let agency =
                match agency.as_deref() {
                    None => None,
                    Some(a) => Some(crate::store::Agency::parse(a).ok_or_else(|| {
                        anyhow::anyhow!("未知的县直部门“{a}”：police、procuratorate、court 或 justice")
                    })?),
                };
            let user = User { id: id.clone(), display_name: name, role, grid };
            crate::accounts::add_user(store.as_ref(), &user, agency)?;
            println!("added user {id}");
        }
        Command::Users => {
            let lines = store
                .users()?
                .into_iter()
                .map(|u| format!("{}\t{}\t{}\t{}", u.id, u.role.as_str(), u.grid, u.display_name));
            print_lines(lines);
        }
        Command::EnrollCode { user, valid_hours } => {
            if !(1..=24 * 30).contains(&valid_hours) {
                bail!("--valid-hours must be between 1 and 720");
            }
            let code = issue_code(store.as_ref(), &user, valid_hours)?;
            println!("{code}");
        }
        Command::Devices => {
            let lines = store.devices()?.into_iter().map(|d| {
                let state = if d.revoked_at.is_some() { "revoked" } else { "active" };
                let last = d.last_sync_at.map(|t| t.to_string()).unwrap_or_else(|| "never".into());
                // The name is the phone's: escaped, as in a log line.
                let name = crate::logtext::logged(&d.name);
                format!("{}\t{}\t{name}\t{state}\tlast_sync_ms={last}", d.id, d.user_id)
            });
            print_lines(lines);
        }
        Command::RevokeDevice { id } => {
            if !store.revoke_device(&id, crate::clock::now_ms())? {
                bail!("no device with id {id}");
            }
            println!("revoked {id}; it will be told to wipe its data at its next sync");
        }
        Command::SetPassword { user, password_stdin } => {
            if store.user(&user)?.is_none() {
                bail!("no user with id {user}");
            }
            if !password_stdin {
                eprintln!("请输入新密码（至少10个字符），回车结束 / type the new password and press Enter:");
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            crate::dashboard::password::check_new_for(password, &user).map_err(|e| anyhow::anyhow!("{e}"))?;
            let hash = crate::dashboard::password::hash(password)?;
            store.set_web_password(&user, &hash, crate::clock::now_ms())?;
            println!("password set for {user}");
        }
        Command::ImportBundle { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = crate::import_bundle(store.as_ref(), &bytes, crate::clock::now_ms())?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::GcPhotos { grace_days } => {
            let blobs = store.blob_store();
            let grace = grace_days.max(0).saturating_mul(86_400_000);
            let report = crate::photos::collect_garbage(store.as_ref(), blobs.as_ref(), crate::clock::now_ms(), grace)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::ExportProvenance { record, out } => {
            let id =
                uuid::Uuid::parse_str(&record).map_err(|_| anyhow::anyhow!("--record must be a record id (UUID)"))?;
            let doc = crate::provenance::export(store.as_ref(), id, crate::clock::now_ms())?
                .ok_or_else(|| anyhow::anyhow!("no record {id}"))?;
            let text = serde_json::to_string_pretty(&doc)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote the provenance of {id} to {}", path.display());
                }
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::main_from;

    fn run(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
        let data = dir.to_str().expect("utf-8 temp dir");
        main_from(["gridsync-server", "--data-dir", data].iter().chain(args).map(|s| s.to_string()))
    }

    /// `add-user` runs the dashboard's checks: a grid not in the tree, a
    /// grid at another level and an agency account without its agency are
    /// refused with the dashboard's message; spaces around a grid are not
    /// kept.
    #[test]
    fn add_user_places_people_only_on_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &["load-tree", "--demo"]).unwrap();
        let add = |id: &str, role: &str, grid: &str| {
            run(dir.path(), &["add-user", "--id", id, "--name", "王芳", "--role", role, "--grid", grid])
        };
        let err = add("vl-x", "village_leader", "t01/v99").unwrap_err();
        assert_eq!(err.to_string(), "没有网格“t01/v99”");
        let err = add("vl-x", "village_leader", "t01").unwrap_err();
        assert_eq!(err.to_string(), "网格长应分配到村一级的网格（例如t01/v03）");
        let err = add("police-1", "agency_staff", "").unwrap_err();
        assert_eq!(err.to_string(), "县直部门账号请选择所属部门");
        add("vl-x", "village_leader", " t01/v01 ").unwrap();
        let store = crate::open_store(&dir.path().join("gridsync.sqlite3").to_string_lossy()).unwrap();
        let u = store.user("vl-x").unwrap().unwrap();
        assert_eq!(u.grid.to_string(), "t01/v01");
        run(
            dir.path(),
            &["add-user", "--id", "police-1", "--name", "李警官", "--role", "agency_staff", "--agency", "police"],
        )
        .unwrap();
    }
}
