//! `gridsync-bench`: what a sync costs, in numbers.
//!
//! Starts a real `gridsync-server` on loopback (this binary re-runs itself
//! as the server), drives simulated phones through the real client core and
//! HTTP transport, and prints one JSON line per scenario. Bytes are counted
//! on the socket by a pass-through proxy (HTTP headers included).
//!
//! ```text
//! cargo run --release -p gridsync-tests --bin gridsync-bench            # full run
//! cargo run --release -p gridsync-tests --bin gridsync-bench -- --smoke # small sizes (CI)
//! cargo run --release -p gridsync-tests --bin gridsync-bench -- --postgres postgres://postgres@127.0.0.1/test
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gridsync_core::model::{PatrolSlot, Record, RecordBody};
use gridsync_core::store::{ListFilter, Store};
use gridsync_core::transport::http::RetryPolicy;
use gridsync_tests::device::{Device, test_retry};
use gridsync_tests::proxy::{Proxy, Shaping};
use gridsync_tests::records::{DAY0, day_of_records, dispute, dispute_act, hazard_step, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, seed_demo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

struct Config {
    smoke: bool,
    postgres: Option<String>,
    only: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Config> {
    let mut c = Config { smoke: false, postgres: None, only: vec![] };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => c.smoke = true,
            "--postgres" => c.postgres = Some(it.next().context("--postgres needs a URL")?.clone()),
            "--scenario" => c.only.push(it.next().context("--scenario needs a name")?.clone()),
            "-h" | "--help" => {
                println!(
                    "gridsync-bench [--smoke] [--postgres URL] [--scenario evening|backlog|supervisor|throughput|weak_link|attachments|attack|hostile_mix|client|signatures]..."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(c)
}

#[global_allocator]
static ALLOCATOR: gridsync_server::Allocator = gridsync_server::Allocator;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Re-run as the server, or as the child that measures opening a store.
    if args.get(1).map(String::as_str) == Some("--as-server") {
        let mut a = vec!["gridsync-server".to_owned()];
        a.extend(args[2..].iter().cloned());
        return gridsync_server::cli::main_from(a);
    }
    if args.get(1).map(String::as_str) == Some("--as-open-child") {
        return open_child(args.get(2).context("path")?);
    }
    let cfg = parse_args(&args[1..])?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(cfg))
}

fn want(cfg: &Config, name: &str) -> bool {
    cfg.only.is_empty() || cfg.only.iter().any(|o| o == name)
}

fn emit(v: serde_json::Value) {
    println!("{v}");
    let _ = std::io::stdout().flush();
}

/// Server process CPU seconds (user + system) and peak RSS in MiB.
fn server_usage(pid: Option<u32>) -> (f64, f64) {
    let Some(pid) = pid else { return (0.0, 0.0) };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that ends the command name: utime is field 14, stime 15.
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// A server node the phones of a scenario sync with.
#[derive(Clone, Copy)]
struct Node<'a> {
    proxy: &'a Proxy,
    pid: Option<u32>,
}

/// What the phones of a throughput run send.
#[derive(Clone, Copy, PartialEq)]
enum Workload {
    /// New patrols and hazards: each record one change.
    NewRecords,
    /// Handling steps on hazards the server already holds: each change is
    /// judged against the stored record, through Automerge.
    Edits,
}

/// `n` phones of `users`, `per` record changes each, all syncing at the
/// same instant, spread over `nodes` in turn: one JSON line named `name`.
async fn throughput(
    bed: &Bed,
    users: &[String],
    n: usize,
    per: usize,
    nodes: &[Node<'_>],
    name: &str,
    workload: Workload,
) -> Result<serde_json::Value> {
    let mut devices = Vec::new();
    for (i, u) in users.iter().take(n).enumerate() {
        let code = tokio::task::block_in_place(|| issue_code(bed.admin.as_ref(), u))?;
        devices.push(Device::enroll_with(&nodes[i % nodes.len()].proxy.url(), &code, test_retry()).await?);
    }
    let n = devices.len();
    let mut changes = 0u64;
    if workload == Workload::Edits {
        // Five hazards each, on the server before the timed run; then
        // `per` handling steps spread over them.
        let mut hazards = Vec::new();
        for d in devices.iter_mut() {
            let mine: Vec<Record> = (0..5).map(|_| gridsync_tests::records::hazard(&d.grid, &d.user, 40)).collect();
            for h in &mine {
                d.create(h)?;
            }
            d.sync().await?;
            hazards.push(mine);
        }
        for (d, mine) in devices.iter_mut().zip(&mut hazards) {
            for i in 0..per {
                let h = &mut mine[i % 5];
                hazard_step(h, &d.user, DAY0 + 41 * 86_400_000 + i as i64 * 60_000, &format!("第{i}次处置"));
                d.store().update(h)?;
            }
            changes += d.store().outbox_len()?;
        }
    }
    for d in devices.iter_mut().filter(|_| workload == Workload::NewRecords) {
        for i in 0..per {
            let mut p = patrol(
                &d.grid,
                &d.user,
                40 + i as i64 / 3,
                [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][i % 3],
            );
            if i % 5 == 4 {
                let mut h = gridsync_tests::records::hazard(&d.grid, &d.user, 40);
                hazard_step(&mut h, &d.user, DAY0 + 41 * 86_400_000, "已处置");
                d.create(&h)?;
            } else {
                if let RecordBody::Patrol(x) = &mut p.body {
                    x.findings = format!("第{i}次巡查");
                }
                d.create(&p)?;
            }
        }
        changes += d.store().outbox_len()?;
    }
    let cpu = || nodes.iter().map(|node| server_usage(node.pid)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let (cpu0, _) = cpu();
    let (client0, _) = server_usage(Some(std::process::id()));
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut d in devices {
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            let t = Instant::now();
            let r = d.sync().await;
            (t.elapsed().as_secs_f64(), r.is_ok())
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, ok) = t.await?;
        lat.push(l);
        if !ok {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, rss) = cpu();
    let (client1, _) = server_usage(Some(std::process::id()));
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len() - 1)];
    Ok(json!({
        "scenario": name, "devices": n, "server_nodes": nodes.len(), "changes": changes, "failed_syncs": failed,
        "changes_per_s": changes as f64 / wall, "wall_s": wall, "p50_s": pct(0.50), "p99_s": pct(0.99),
        "server_cpu_s": cpu1 - cpu0, "server_peak_rss_mib": rss, "client_cpu_s": client1 - client0,
        "note": "bench client (the phones and the byte-counting proxy) and server share the machine's cores",
        "target": ">= 5000 changes/s, p99 < 1.5 s",
    }))
}

/// gzip size of records as a JSON array (the baseline the brief compares with).
fn gzip_json(records: &[&Record]) -> usize {
    let arr = serde_json::Value::Array(records.iter().map(|r| r.to_json()).collect());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(arr.to_string().as_bytes());
    enc.finish().map(|v| v.len()).unwrap_or(0)
}

struct Bed {
    _dir: tempfile::TempDir,
    server: ServerProc,
    /// Dropped off the async workers: PostgreSQL's client blocks.
    admin: Admin,
    proxy: Proxy,
}

async fn bed(cfg: &Config) -> Result<Bed> {
    let dir = tempfile::tempdir()?;
    // The blocking PostgreSQL client must not run on an async worker (it
    // starts a runtime of its own): every call to it goes through
    // block_in_place, and the handle is dropped the same way.
    let db = match &cfg.postgres {
        Some(url) => Db::Postgres(blocking(|| gridsync_server::store::postgres::fresh_schema_url(url, "gs_bench"))?),
        None => Db::Sqlite(dir.path().to_path_buf()),
    };
    // A bad URL fails here with its reason (the handle dropped off the workers too).
    blocking(|| db.open().map(drop))?;
    let admin = Admin::open(&db);
    blocking(|| seed_demo(admin.as_ref()))?;
    let exe = std::env::current_exe()?;
    let server = ServerProc::start_with(exe, vec!["--as-server".into()], db)?;
    let proxy = Proxy::start(server.addr(), 5).await?;
    Ok(Bed { _dir: dir, server, admin, proxy })
}

async fn enroll(bed: &Bed, user: &str, retry: RetryPolicy) -> Result<Device> {
    let code = tokio::task::block_in_place(|| issue_code(bed.admin.as_ref(), user))?;
    Device::enroll_with(&bed.proxy.url(), &code, retry).await
}

fn reset(bed: &Bed) {
    bed.proxy.stats.bytes_up.store(0, Ordering::Relaxed);
    bed.proxy.stats.bytes_down.store(0, Ordering::Relaxed);
}

fn socket_bytes(bed: &Bed) -> (u64, u64) {
    (bed.proxy.stats.bytes_up.load(Ordering::Relaxed), bed.proxy.stats.bytes_down.load(Ordering::Relaxed))
}

/// One grid manager's evening: 3 patrols, a hazard with one handling
/// update, 2 visits, and a household or a dispute change.
fn evening_records(d: &Device, i: usize, rng: &mut StdRng) -> Vec<Record> {
    let mut recs = day_of_records(&d.grid, &d.user, 0, rng);
    if i % 2 == 1 {
        recs.pop();
        let mut dp = dispute(&d.grid, &d.user, 0);
        dispute_act(
            &mut dp,
            &d.user,
            DAY0 + 9 * 3_600_000,
            gridsync_core::model::DisputeAction::FollowUp { note: "已电话回访双方".into() },
        );
        recs.push(dp);
    }
    recs
}

async fn run(cfg: Config) -> Result<()> {
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "database": if cfg.postgres.is_some() { "postgresql" } else { "sqlite" },
        "smoke": cfg.smoke,
    });
    emit(json!({"scenario": "machine", "machine": machine}));
    let bed = bed(&cfg).await?;
    let users: Vec<String> = tokio::task::block_in_place(|| bed.admin.users())?
        .into_iter()
        .filter(|u| u.role == gridsync_core::grid::Role::GridManager)
        .map(|u| u.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(2026);

    if want(&cfg, "evening") {
        let n = if cfg.smoke { 12 } else { users.len() };
        let mut devices = Vec::new();
        for u in users.iter().take(n) {
            devices.push(enroll(&bed, u, RetryPolicy::default()).await?);
        }
        let mut baseline = 0usize;
        let mut records = 0usize;
        for (i, d) in devices.iter_mut().enumerate() {
            let recs = evening_records(d, i, &mut rng);
            for r in &recs {
                d.create(r)?;
            }
            baseline += gzip_json(&recs.iter().collect::<Vec<_>>());
            records += recs.len();
        }
        reset(&bed);
        let (cpu0, _) = server_usage(bed.server.pid());
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(32));
        let mut tasks = Vec::new();
        for mut d in devices {
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await;
                let r = d.sync().await;
                r.map(|r| (r.requests, r.bytes_up, r.bytes_down, r.retries))
            }));
        }
        let mut requests = 0;
        let mut max_requests = 0;
        let (mut body_up, mut body_down, mut retries) = (0, 0, 0);
        for t in tasks {
            let (r, bu, bd, rt) = t.await??;
            retries += rt;
            requests += r;
            // Round trips the protocol needed; transport retries are counted apart.
            max_requests = max_requests.max(r - rt);
            body_up += bu;
            body_down += bd;
        }
        let wall = started.elapsed().as_secs_f64();
        let (cpu1, rss) = server_usage(bed.server.pid());
        let (up, down) = socket_bytes(&bed);
        emit(json!({
            "scenario": "evening", "devices": n, "records": records, "bytes_up": up, "bytes_down": down,
            "bytes_per_record": (up + down) as f64 / records as f64, "requests": requests,
            "max_requests_per_device": max_requests, "retries": retries,
            "server_5xx_so_far": server_errors(&bed.server.url()).await, "body_bytes_up": body_up, "body_bytes_down": body_down, "wall_s": wall, "server_cpu_s": cpu1 - cpu0,
            "server_peak_rss_mib": rss, "gzip_json_bytes": baseline,
            "ratio_to_gzip_json": (up + down) as f64 / baseline as f64,
            "target": "1 request per device; ratio <= 1.5",
        }));
    }

    let backlog_days = if cfg.smoke { 5 } else { 30 };
    if want(&cfg, "backlog") || want(&cfg, "supervisor") || want(&cfg, "weak_link") || want(&cfg, "attachments") {
        // A phone back after 30 days: 7 records a day.
        let user = "gm-t02-v01-g1";
        let mut d = enroll(&bed, user, RetryPolicy::default()).await?;
        let mut recs = Vec::new();
        for day in 0..backlog_days {
            for r in day_of_records(&d.grid, &d.user, day, &mut rng) {
                d.create(&r)?;
                recs.push(r);
            }
        }
        let baseline = gzip_json(&recs.iter().collect::<Vec<_>>());
        reset(&bed);
        let (cpu0, _) = server_usage(bed.server.pid());
        let started = Instant::now();
        let report = d.sync().await?;
        let (cpu1, rss) = server_usage(bed.server.pid());
        let (up, down) = socket_bytes(&bed);
        if want(&cfg, "backlog") {
            emit(json!({
                "scenario": "backlog_30_days", "records": recs.len(), "bytes_up": up, "bytes_down": down,
                "bytes_per_record": (up + down) as f64 / recs.len() as f64, "requests": report.requests,
                "wall_s": started.elapsed().as_secs_f64(), "server_cpu_s": cpu1 - cpu0, "server_peak_rss_mib": rss,
                "gzip_json_bytes": baseline, "ratio_to_gzip_json": (up + down) as f64 / baseline as f64,
                "target": "<= 3 requests; ratio <= 2",
            }));
        }

        if want(&cfg, "supervisor") {
            // The village leader's fresh phone downloads the village.
            let mut vl = enroll(&bed, "vl-t02-v01", RetryPolicy::default()).await?;
            reset(&bed);
            let (cpu0, _) = server_usage(bed.server.pid());
            let started = Instant::now();
            let report = vl.sync().await?;
            let (cpu1, rss) = server_usage(bed.server.pid());
            let (up, down) = socket_bytes(&bed);
            let n = vl.store().count()? as usize;
            emit(json!({
                "scenario": "supervisor_pull", "records": n, "bytes_up": up, "bytes_down": down,
                "bytes_per_record": (up + down) as f64 / n.max(1) as f64, "requests": report.requests,
                "wall_s": started.elapsed().as_secs_f64(), "server_cpu_s": cpu1 - cpu0, "server_peak_rss_mib": rss,
                "gzip_json_bytes": baseline, "ratio_to_gzip_json": (up + down) as f64 / baseline as f64,
            }));
        }

        if want(&cfg, "weak_link") {
            // Phones back after 30 days, each over 64 kbit/s with 300 ms
            // round trips, the link dropping 5% of connections; uploads go in
            // 8 KiB requests so a drop loses little, and a failed sync is
            // simply run again: it resumes from the outbox and the cursor.
            let phones = if cfg.smoke { 2 } else { 8 };
            bed.proxy
                .set_shaping(Some(Shaping { bytes_per_sec: 8_000, one_way_delay: Duration::from_millis(150) }))
                .await;
            bed.proxy.set_faults(5, 0);
            reset(&bed);
            let cuts0 = bed.proxy.stats.cut_requests.load(Ordering::Relaxed);
            let (mut requests, mut retries, mut sessions_total, mut max_sessions) = (0, 0, 0, 0);
            let mut times = Vec::new();
            let mut records = 0;
            let mut left = 0;
            for p in 0..phones {
                let mut slow = enroll(&bed, &format!("gm-t03-v{:02}-g1", p + 1), RetryPolicy::default()).await?;
                for day in 0..backlog_days {
                    for r in day_of_records(&slow.grid, &slow.user, day, &mut rng) {
                        slow.create(&r)?;
                        records += 1;
                    }
                }
                slow.opts = gridsync_core::sync::SyncOptions { max_upload_bytes: 8 * 1024, ..Default::default() };
                slow.set_retry(weak_link_retry())?;
                let started = Instant::now();
                let mut sessions = 0;
                loop {
                    sessions += 1;
                    match slow.sync().await {
                        Ok(r) => {
                            retries += r.retries;
                            requests += r.requests;
                            break;
                        }
                        Err(e) if sessions < 10 => eprintln!("weak link: session {sessions} failed: {e}; resuming"),
                        Err(e) => return Err(e.into()),
                    }
                }
                times.push(started.elapsed().as_secs_f64());
                sessions_total += sessions;
                max_sessions = max_sessions.max(sessions);
                left += slow.store().outbox_len()?;
            }
            let (up, down) = socket_bytes(&bed);
            bed.proxy.set_shaping(None).await;
            bed.proxy.set_faults(0, 0);
            emit(json!({
                "scenario": "weak_link_backlog", "phones": phones, "records": records,
                "link": "64 kbit/s, 300 ms RTT, 5% connections cut",
                "bytes_up": up, "bytes_down": down, "requests": requests, "retries": retries,
                "sessions": sessions_total, "max_sessions_per_phone": max_sessions,
                "connections_cut": bed.proxy.stats.cut_requests.load(Ordering::Relaxed) - cuts0,
                "mean_s_per_phone": times.iter().sum::<f64>() / times.len() as f64,
                "max_s_per_phone": times.iter().copied().fold(0.0, f64::max),
                "outbox_left": left,
            }));
        }

        if want(&cfg, "attachments") {
            // A grid manager's day with 10 photos of about 300 KB over the
            // same 64 kbit/s link: the records sync first; the photos follow
            // in 32 KiB chunks, resumed after any drop.
            let (photos, size) = if cfg.smoke { (2, 20_000) } else { (10, 300_000) };
            bed.proxy
                .set_shaping(Some(Shaping { bytes_per_sec: 8_000, one_way_delay: Duration::from_millis(150) }))
                .await;
            bed.proxy.set_faults(5, 0);
            reset(&bed);
            let mut gm = enroll(&bed, "gm-t04-v01-g1", RetryPolicy::default()).await?;
            gm.set_retry(weak_link_retry())?;
            let recs = day_of_records(&gm.grid, &gm.user, 0, &mut rng);
            for r in &recs {
                gm.create(r)?;
            }
            let holders: Vec<String> = recs
                .iter()
                .filter(|r| gridsync_core::model::takes_photos(r.kind()))
                .map(|r| r.id.to_string())
                .collect();
            for i in 0..photos {
                let thumb = gridsync_tests::records::photo_jpeg(12_000, 10_000 + i as u32, false);
                let photo = gridsync_tests::records::photo_jpeg(size, i as u32, true);
                gm.phone.attach_photo(&holders[i % holders.len()], photo, Some(thumb), None)?;
            }
            let started = Instant::now();
            let mut sessions = 0;
            while let Err(e) = gm.sync().await {
                sessions += 1;
                anyhow::ensure!(sessions < 10, "records did not sync: {e}");
            }
            let records_s = started.elapsed().as_secs_f64();
            let mut runs = 0;
            let mut requests = 0;
            while gm.phone.photo_backlog()?.photos > 0 {
                runs += 1;
                match gm.phone.upload_photos(0).await {
                    Ok(u) => requests += u.requests,
                    Err(e) if runs < 20 => eprintln!("attachments: upload run {runs} failed: {e}; resuming"),
                    Err(e) => return Err(e.into()),
                }
            }
            let photos_s = started.elapsed().as_secs_f64();
            let (up, down) = socket_bytes(&bed);
            bed.proxy.set_shaping(None).await;
            bed.proxy.set_faults(0, 0);
            emit(json!({
                "scenario": "attachments", "records": recs.len(), "photos": photos, "photo_bytes": photos * (size + 21),
                "link": "64 kbit/s, 300 ms RTT, 5% connections cut",
                "records_on_server_s": records_s, "photos_on_server_s": photos_s,
                "upload_runs": runs, "photo_requests": requests, "bytes_up": up, "bytes_down": down,
            }));
        }
    }

    if want(&cfg, "throughput") {
        // 400 phones sync at once, each with a batch of record changes.
        let n = if cfg.smoke { 20 } else { 400 };
        let per = if cfg.smoke { 5 } else { 15 };
        let users = &users[6.min(users.len())..];
        let one = [Node { proxy: &bed.proxy, pid: bed.server.pid() }];
        emit(throughput(&bed, users, n, per, &one, "merge_throughput", Workload::NewRecords).await?);
        // The same phones again, now editing records the server holds.
        emit(throughput(&bed, users, n, per, &one, "merge_throughput_edits", Workload::Edits).await?);
        if cfg.postgres.is_some() {
            // A province runs several stateless nodes on one database: the
            // same load again, the phones spread over two nodes.
            let exe = std::env::current_exe()?;
            let db = bed.server.db().clone();
            let second = blocking(|| ServerProc::start_with(exe, vec!["--as-server".into()], db))?;
            let proxy = Proxy::start(second.addr(), 6).await?;
            let two = [one[0], Node { proxy: &proxy, pid: second.pid() }];
            emit(throughput(&bed, users, n, per, &two, "merge_throughput_two_nodes", Workload::NewRecords).await?);
            blocking(move || drop(second));
        }
    }

    if want(&cfg, "attack") {
        attack(&cfg).await?;
    }

    if want(&cfg, "hostile_mix") {
        hostile_mix(&cfg).await?;
    }

    if want(&cfg, "client") {
        client_figures(cfg.smoke)?;
    }
    if want(&cfg, "signatures") {
        signature_figures(cfg.smoke)?;
    }
    Ok(())
}

/// What signing costs a phone and checking costs the server, on real
/// record changes sent as an evening sync sends them (one grid manager's
/// day per request): the phone's one signature per request, and the
/// server's whole check as it runs before judging (hash every change,
/// rebuild the manifest, verify once).
fn signature_figures(smoke: bool) -> Result<()> {
    use gridsync_core::protocol::{DocChanges, sign_docs};
    use gridsync_core::signing::DeviceKey;
    let key = DeviceKey::generate()?;
    let device = uuid::Uuid::new_v4();
    let mut rng = StdRng::seed_from_u64(5);
    let grid = gridsync_core::grid::GridPath::parse("t01/v01/g1")?;
    let mut requests: Vec<Vec<DocChanges>> = Vec::new();
    let days = if smoke { 10 } else { 400 };
    for day in 0..days {
        let mut docs = Vec::new();
        for rec in day_of_records(&grid, "gm", day, &mut rng) {
            let mut d = gridsync_core::doc::RecordDoc::create(&rec, automerge::ActorId::random())?;
            let changes = d.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
            docs.push(DocChanges { doc: *rec.id.as_bytes(), changes });
        }
        requests.push(docs);
    }
    let n: usize = requests.iter().flatten().map(|d| d.changes.len()).sum();
    let t = Instant::now();
    let signatures: Vec<_> = requests.iter().map(|docs| sign_docs(&key, &device, docs)).collect();
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / requests.len() as f64;
    let dev = gridsync_server::store::Device {
        id: device.to_string(),
        user_id: "gm".into(),
        name: String::new(),
        created_at: 0,
        last_sync_at: None,
        revoked_at: None,
        actor: None,
        public_key: Some(key.public().to_vec()),
    };
    let t = Instant::now();
    let mut refused = 0;
    for (docs, sig) in requests.iter().zip(&signatures) {
        refused += gridsync_server::signatures::verify_docs(&dev, docs.clone(), sig).refused.len();
    }
    let check = t.elapsed().as_secs_f64() * 1e6;
    if refused != 0 {
        bail!("{refused} records refused: signatures did not verify");
    }
    emit(json!({
        "scenario": "signatures", "requests": requests.len(), "changes": n,
        "sign_us_per_request": sign_us, "server_check_us_per_request": check / requests.len() as f64,
        "server_check_us_per_change": check / n as f64, "bytes_per_request": 64,
    }));
    Ok(())
}

/// Retries as a phone on 64 kbit/s with dropped connections needs them:
/// patient timeouts, a fresh connection per attempt.
fn weak_link_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 8,
        base: Duration::from_millis(500),
        max: Duration::from_secs(8),
        timeout: Duration::from_secs(120),
        connect_timeout: Duration::from_secs(10),
        reuse_connections: false,
    }
}

/// The server's 5xx answers so far, by status and reason, from its
/// `/metrics` (read past the byte-counting proxy): a phone's retry that
/// is not among them was a connection the server never answered.
async fn server_errors(url: &str) -> serde_json::Value {
    let text = match reqwest::get(format!("{url}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return json!({"unreadable": e.to_string()}),
    };
    let mut out = serde_json::Map::new();
    for line in text.lines().filter(|l| l.starts_with("gridsync_http_errors_total{")) {
        if let Some((labels, n)) = line.split_once("} ") {
            let key = labels.trim_start_matches("gridsync_http_errors_total{").replace('"', "");
            out.insert(key, json!(n.trim().parse::<u64>().unwrap_or(0)));
        }
    }
    serde_json::Value::Object(out)
}

/// POST `body` to `path` on a fresh connection; the status (0 on failure).
async fn post_raw(url: &str, path: &str, token: &str, body: Vec<u8>) -> u16 {
    let c = match reqwest::Client::builder().pool_max_idle_per_host(0).build() {
        Ok(c) => c,
        Err(_) => return 0,
    };
    match c.post(format!("{url}{path}")).header("authorization", format!("Bearer {token}")).body(body).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// The worst request mix found against one server with its default
/// limits, all at once for a few rounds: 32 MiB bombs of zero-length
/// changes, 8 MiB bodies beyond the in-flight budget, sign-in floods and
/// trickled bodies, while a village leader and a grid manager sync. Prints
/// the server's peak memory and the longest honest sync.
async fn attack(cfg: &Config) -> Result<()> {
    let bed = bed(cfg).await?;
    let mut gm = enroll(&bed, "gm-t01-v01-g1", test_retry()).await?;
    let mut vl = enroll(&bed, "vl-t01-v01", test_retry()).await?;
    let attacker = enroll(&bed, "gm-t01-v01-g2", test_retry()).await?;
    let token = attacker.store().enrollment()?.context("enrolled")?.token;
    let url = bed.server.url();
    let rounds = if cfg.smoke { 1 } else { 4 };
    let bodies = if cfg.smoke { 4 } else { 50 };
    let (_, rss0) = server_usage(bed.server.pid());
    let mut bomb_body = vec![0u8; 1];
    bomb_body.push(1);
    bomb_body.extend_from_slice(&[7u8; 16]);
    // Zero-length changes, and a signature of zeros.
    let n: u64 = 32 * 1024 * 1024 - 128;
    let mut v = n;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            bomb_body.push(b);
            break;
        }
        bomb_body.push(b | 0x80);
    }
    bomb_body.resize(bomb_body.len() + n as usize, 0);
    bomb_body.push(0);
    bomb_body.extend_from_slice(&[0; 64]);
    let mut bomb = b"GS\x00\x02\x01".to_vec();
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&bomb_body)?;
    bomb.extend(enc.finish()?);
    let mut big = b"GS\x00\x02\x00".to_vec();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    big.extend((0..8 * 1024 * 1024 - 1024).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    let started = Instant::now();
    let mut statuses: std::collections::BTreeMap<u16, u64> = std::collections::BTreeMap::new();
    let mut longest = 0f64;
    let mut honest_syncs = 0u64;
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (url, token, body) = (url.clone(), token.clone(), bomb.clone());
            tasks.push(tokio::spawn(async move { post_raw(&url, "/v1/sync", &token, body).await }));
        }
        for _ in 0..bodies {
            let (url, token, body) = (url.clone(), token.clone(), big.clone());
            tasks.push(tokio::spawn(async move { post_raw(&url, "/v1/sync", &token, body).await }));
        }
        for i in 0..64 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let form = format!("csrf=x&user=tc-t01-1&password=guess{i}");
                post_raw(&url, "/signin", "", form.into_bytes()).await
            }));
        }
        let addr = bed.server.addr().to_owned();
        for _ in 0..if cfg.smoke { 10 } else { 200 } {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else { return 0 };
                let head = "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return 0;
                }
                for _ in 0..30 {
                    if s.write_all(b" ").await.is_err() {
                        return 408;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                0
            }));
        }
        // The honest phones sync throughout.
        gm.create(&patrol(&gm.grid, &gm.user, 60 + round, PatrolSlot::Morning))?;
        let until = Instant::now() + Duration::from_secs(if cfg.smoke { 2 } else { 10 });
        while Instant::now() < until {
            for d in [&mut gm, &mut vl] {
                let t = Instant::now();
                d.sync().await?;
                longest = longest.max(t.elapsed().as_secs_f64());
                honest_syncs += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for t in tasks {
            *statuses.entry(t.await.unwrap_or(0)).or_insert(0) += 1;
        }
    }
    let (_, rss) = server_usage(bed.server.pid());
    emit(json!({
        "scenario": "attack",
        "rounds": rounds,
        "per_round": {"bombs": 2, "bodies_8mib": bodies, "sign_ins": 64, "trickled": if cfg.smoke { 10 } else { 200 }},
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "server_peak_rss_mib_before": rss0,
        "server_peak_rss_mib": rss,
        "honest_syncs": honest_syncs,
        "longest_honest_sync_s": longest,
        "wall_s": started.elapsed().as_secs_f64(),
        "note": "default limits: 256 MiB for bodies in flight",
    }));
    Ok(())
}

/// Honest phones syncing while hostile phones send the worst the limits
/// let through, for a bounded time: relay bundles of as many new records
/// as a signer's budget takes (each hostile signer's, carried by hostile
/// carriers, then again and again past the budget), problem floods of
/// 800 records a report (under the 64 KiB body limit), 8 MiB sync bodies and bodies past the limit,
/// and photo floods (20 photos of 4 MB on each of a hostile phone's
/// records, uploaded while the others go on). Prints the honest syncs'
/// p50, p99 and longest latency (the worst honest-sync stall) and the
/// server's peak RSS from /proc.
async fn hostile_mix(cfg: &Config) -> Result<()> {
    let bed = bed(cfg).await?;
    let url = bed.server.url();
    let (honest_n, secs, bundle_records, photo_size) =
        if cfg.smoke { (4, 6u64, 200usize, 200_000usize) } else { (16, 30, 5_000, 4_000_000) };
    let users: Vec<String> = tokio::task::block_in_place(|| bed.admin.users())?
        .into_iter()
        .filter(|u| u.role == gridsync_core::grid::Role::GridManager)
        .map(|u| u.id)
        .collect();
    anyhow::ensure!(users.len() >= honest_n + 4, "not enough grid managers");
    let mut honest = Vec::new();
    for u in &users[..honest_n] {
        let mut d = enroll(&bed, u, test_retry()).await?;
        d.sync().await?;
        honest.push(d);
    }
    // Hostile signers: each writes a bundle of as many new records as a
    // signer's hourly budget takes, sealed for relay.
    let mut hostile = Vec::new();
    for u in &users[honest_n..honest_n + 4] {
        let mut d = enroll(&bed, u, test_retry()).await?;
        d.sync().await?;
        hostile.push(d);
    }
    let prep = Instant::now();
    let mut bombs = Vec::new();
    for d in hostile.iter_mut().take(2) {
        for i in 0..bundle_records {
            d.create(&patrol(&d.grid, &d.user, (i % 30) as i64, PatrolSlot::Midday))?;
        }
        bombs.push(d.phone.export_relay_bundle()?);
    }
    // The photo flooder: hazards full of large photos, records synced.
    let flooder = &mut hostile[2];
    for h in 0..2 {
        let hz = gridsync_tests::records::hazard(&flooder.grid, &flooder.user, h);
        flooder.create(&hz)?;
        for i in 0..20u32 {
            let photo = gridsync_tests::records::photo_jpeg(photo_size, h as u32 * 100 + i, false);
            flooder.phone.attach_photo(&hz.id.to_string(), photo, None, None)?;
        }
    }
    flooder.sync().await?;
    let prep_s = prep.elapsed().as_secs_f64();
    let tokens: Vec<String> = hostile
        .iter()
        .map(|d| d.store().enrollment().map(|e| e.map(|e| e.token).unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let problem_body = serde_json::to_vec(&json!({
        "set_aside": (0..800).map(|i| json!({"doc": uuid::Uuid::from_u128(i).to_string(), "reason": "无法应用"})).collect::<Vec<_>>()
    }))?;
    let mut big = b"GS\x00\x02\x00".to_vec();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    big.extend((0..8 * 1024 * 1024 - 1024).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    let (_, rss0) = server_usage(bed.server.pid());
    let until = Instant::now() + Duration::from_secs(secs);
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let count = |statuses: &Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>, kind: &str, s: u16| {
        *statuses.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("{kind} {s}")).or_insert(0) += 1;
    };
    let mut tasks = Vec::new();
    // Relay bombs: each carrier posts every bomb, again and again.
    for carrier in [0usize, 1, 3] {
        let (url, token, bombs, st) = (url.clone(), tokens[carrier].clone(), bombs.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                for b in &bombs {
                    let s = post_raw(&url, "/v1/relay", &token, b.clone()).await;
                    count(&st, "relay", s);
                }
            }
        }));
    }
    // Problem floods.
    {
        let (url, token, body, st) = (url.clone(), tokens[3].clone(), problem_body.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let s = post_raw(&url, "/v1/problems", &token, body.clone()).await;
                count(&st, "problems", s);
            }
        }));
    }
    // Oversized and 8 MiB sync bodies, four at a time.
    for k in 0..4 {
        let (url, token, body, st) = (url.clone(), tokens[k % 2].clone(), big.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let mut b = body.clone();
                if k == 3 {
                    b.resize(9 * 1024 * 1024, 0);
                }
                let s = post_raw(&url, "/v1/sync", &token, b).await;
                count(&st, if k == 3 { "sync_9mib" } else { "sync_8mib" }, s);
            }
        }));
    }
    // The photo flood runs on the flooder phone itself.
    let flooder = hostile.remove(2);
    let st = statuses.clone();
    let photos = tokio::spawn(async move {
        let mut bytes = 0u64;
        while Instant::now() < until {
            match flooder.phone.upload_photos(0).await {
                Ok(u) => {
                    bytes += u.bytes_sent;
                    count(&st, "photos_run", 200);
                    if u.remaining == 0 {
                        break;
                    }
                }
                Err(_) => count(&st, "photos_run", 0),
            }
        }
        bytes
    });
    // The honest phones sync throughout, each with a new patrol a round.
    let mut lat = Vec::new();
    let mut failed = 0u64;
    let mut round = 0i64;
    while Instant::now() < until {
        for d in honest.iter_mut() {
            d.create(&patrol(&d.grid, &d.user, 40 + round, PatrolSlot::Evening))?;
            let t = Instant::now();
            match d.sync().await {
                Ok(_) => lat.push(t.elapsed().as_secs_f64()),
                Err(e) => {
                    failed += 1;
                    eprintln!("hostile_mix: an honest sync failed: {e}");
                }
            }
        }
        round += 1;
    }
    for t in tasks {
        let _ = t.await;
    }
    let photo_bytes = photos.await.unwrap_or(0);
    let (_, rss) = server_usage(bed.server.pid());
    anyhow::ensure!(!lat.is_empty(), "no honest sync finished");
    let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner()).clone();
    emit(json!({
        "scenario": "hostile_mix",
        "seconds": secs,
        "honest_phones": honest_n,
        "honest_syncs": lat.len(),
        "honest_failed": failed,
        "honest_p50_s": percentile(&mut lat, 0.50),
        "honest_p99_s": percentile(&mut lat, 0.99),
        "honest_max_s": percentile(&mut lat, 1.0),
        "relay_bomb_records": bundle_records,
        "photo_flood_bytes_sent": photo_bytes,
        "statuses": statuses,
        "server_peak_rss_mib_before": rss0,
        "server_peak_rss_mib": rss,
        "prep_s": prep_s,
        "note": "default limits; relay budgets per carrier and signer",
    }));
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

fn client_figures(smoke: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("phone.sqlite3");
    let mut store = Store::open(&path)?;
    let grid = gridsync_core::grid::GridPath::parse("t01/v01/g1")?;
    let mut rng = StdRng::seed_from_u64(1);
    let n_ops = if smoke { 100 } else { 1000 };
    let mut create = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n_ops {
        let r = if i % 7 == 6 {
            gridsync_tests::records::household(&grid, "gm", &mut rng)
        } else {
            patrol(&grid, "gm", i as i64 / 3, PatrolSlot::Morning)
        };
        let t = Instant::now();
        store.create(&r)?;
        create.push(t.elapsed().as_secs_f64() * 1000.0);
        ids.push(r.id);
    }
    let mut update = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        store.edit(*id, DAY0 + i as i64, |r| {
            if let RecordBody::Patrol(p) = &mut r.body {
                p.findings = format!("更新{i}");
            } else if let RecordBody::Household(h) = &mut r.body {
                h.notes = format!("更新{i}");
            }
        })?;
        update.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    emit(
        json!({"scenario": "client_create", "ops": n_ops, "mean_ms": mean(&create), "p99_ms": percentile(&mut create, 0.99), "target_ms": 2.0}),
    );
    emit(
        json!({"scenario": "client_update", "ops": n_ops, "mean_ms": mean(&update), "p99_ms": percentile(&mut update, 0.99), "target_ms": 2.0}),
    );

    // Fill to 10,000 (or 50,000 for the open figure) inside transactions.
    let open_n = if smoke { 2_000 } else { 50_000 };
    let list_n = if smoke { 2_000 } else { 10_000 };
    let mut filled = n_ops;
    let mut list_ms = None;
    while filled < open_n {
        let batch: Vec<Record> = (0..500.min(open_n - filled))
            .map(|i| patrol(&grid, "gm", ((filled + i) / 3) as i64, PatrolSlot::Evening))
            .collect();
        for r in &batch {
            store.create(r)?;
        }
        filled += batch.len();
        if list_ms.is_none() && filled >= list_n {
            let filter = ListFilter {
                kind: Some(gridsync_core::model::RecordKind::Patrol),
                from: Some(DAY0),
                until: Some(DAY0 + 400 * 86_400_000),
                limit: Some(100),
                ..Default::default()
            };
            let mut v = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                let rows = store.list(&filter)?;
                v.push(t.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(rows.len() == 100, "list returned {}", rows.len());
            }
            let search = ListFilter { search: Some("王".into()), limit: Some(100), ..Default::default() };
            let t = Instant::now();
            store.list(&search)?;
            let search_ms = t.elapsed().as_secs_f64() * 1000.0;
            list_ms = Some((percentile(&mut v, 0.5), search_ms));
        }
    }
    if let Some((median, search_ms)) = list_ms {
        emit(
            json!({"scenario": "client_list", "records": list_n, "filter_median_ms": median, "name_search_ms": search_ms, "target_ms": 50.0}),
        );
    }
    drop(store);
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--as-open-child", &path.to_string_lossy()])
        .output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).context("open child output")?;
    emit(
        json!({"scenario": "client_open", "records": open_n, "open_ms": v["open_ms"], "peak_rss_mib": v["peak_rss_mib"], "target": "< 200 ms, < 64 MiB"}),
    );
    Ok(())
}

fn open_child(path: &str) -> Result<()> {
    let t = Instant::now();
    let store = Store::open(path)?;
    let rows = store.list(&ListFilter { limit: Some(100), ..Default::default() })?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(!rows.is_empty(), "empty store");
    let (_, rss) = server_usage(Some(std::process::id()));
    println!("{}", json!({"open_ms": ms, "peak_rss_mib": rss}));
    Ok(())
}
