//! A phone whose battery dies keeps every record the app was told had been
//! saved: the power-cut shim (`tests/powercut/`) drops every write that was
//! not fsynced when the writer is killed, which SIGKILL alone never does.

// The shim is an `LD_PRELOAD` library reading `/proc/self/fd`.
#![cfg(target_os = "linux")]

use crate::common;
#[path = "../../../tests/src/powercut.rs"]
mod cut;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{T0, sample};
use cut::Powercut;
use gridsync_core::model::{RecordBody, RecordKind};
use gridsync_core::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// `<workload> <database path>`: run as the child that writes and is killed.
const CHILD_ENV: &str = "GRIDSYNC_POWERCUT_CHILD";
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);
const PAYLOAD: &str = "巡查正常，无异常情况。";

/// The raw-SQLite child: rows in WAL mode with `synchronous` set to `sync`
/// after the table was created (durably), one commit per row, "ack n" on
/// stdout after each commit returned.
fn rows_child(path: &str, sync: &str) -> ! {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
    conn.pragma_update(None, "synchronous", sync).unwrap();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    for n in 0u64.. {
        // Never outlive a parent that failed to kill us.
        if started.elapsed() > Duration::from_secs(60) {
            std::process::exit(3);
        }
        conn.execute("INSERT INTO t (n, v) VALUES (?1, ?2)", rusqlite::params![n as i64, PAYLOAD.repeat(8)]).unwrap();
        writeln!(out, "ack {n}").unwrap();
        out.flush().unwrap();
    }
    unreachable!()
}

/// The phone child, as in `crash.rs`: create patrols and update earlier
/// ones through the real store, and say "saved" only after it returned `Ok`.
fn store_child(path: &str) -> ! {
    let mut store = Store::open(path).unwrap();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut created: Vec<Uuid> = Vec::new();
    for n in 0u64.. {
        if started.elapsed() > Duration::from_secs(60) {
            std::process::exit(3);
        }
        let at = T0 + n as i64 * 1000;
        if n % 3 == 2 {
            let id = created[(n as usize * 7) % created.len()];
            let mut rec = store.get(id).unwrap();
            if let RecordBody::Patrol(p) = &mut rec.body {
                p.findings = n.to_string();
            }
            rec.updated_at = at;
            store.update(&rec).unwrap();
            writeln!(out, "ack update {id} {n}").unwrap();
        } else {
            let rec = sample(RecordKind::Patrol, "t01/v03/g2", at);
            store.create(&rec).unwrap();
            created.push(rec.id);
            writeln!(out, "ack create {} {n}", rec.id).unwrap();
        }
        out.flush().unwrap();
    }
    unreachable!()
}

/// When this process is a child, do the child's work and never return.
fn be_child_if_asked() {
    let Ok(arg) = std::env::var(CHILD_ENV) else { return };
    let (workload, path) = arg.split_once(' ').unwrap();
    match workload {
        "store" => store_child(path),
        sync => rows_child(path, sync),
    }
}

/// Run `test` again as a child doing `workload` on `path` with `env`, SIGKILL
/// it once it acknowledged `acks_before_kill` writes (while it goes on
/// writing), and return every acknowledgement it printed.
fn run_child(
    test: &str,
    workload: &str,
    path: &Path,
    env: &[(String, OsString)],
    acks_before_kill: usize,
) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{workload} {}", path.display()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + ROUND_TIMEOUT;
    let mut lines = Vec::new();
    while lines.len() < acks_before_kill {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("ack ") => lines.push(line),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    // Lines printed before the kill landed are acknowledged writes too.
    lines.extend(rx.try_iter().filter(|l| l.starts_with("ack ")));
    assert!(!lines.is_empty(), "the child acknowledged no write within {ROUND_TIMEOUT:?}");
    lines
}

/// Acknowledged rows missing from the database at `path`.
fn missing_rows(path: &Path, lines: &[String]) -> Vec<u64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn.prepare("SELECT v FROM t WHERE n = ?1").unwrap();
    let mut missing = Vec::new();
    for line in lines {
        let n: u64 = line.strip_prefix("ack ").unwrap().parse().unwrap();
        let v: Option<String> = st.query_row([n as i64], |r| r.get(0)).ok();
        if v.as_deref() != Some(PAYLOAD.repeat(8).as_str()) {
            missing.push(n);
        }
    }
    missing
}

/// The checker fails without fsync: rows committed with `synchronous=OFF`
/// all survive a SIGKILL (the page cache keeps them) but are lost in a
/// power cut, while the same rows with the stores' settings (WAL,
/// `synchronous=FULL`) survive the cut too.
#[test]
fn the_shim_loses_exactly_the_writes_that_were_not_synced() {
    be_child_if_asked();
    const TEST: &str = "powercut::the_shim_loses_exactly_the_writes_that_were_not_synced";
    let mut rng = StdRng::seed_from_u64(7);
    for sync in ["OFF", "FULL"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let path = data.join("rows.db");
        let cut = Powercut::new(&data).unwrap();
        let lines = run_child(TEST, sync, &path, &cut.env(), rng.gen_range(50..300));

        // What a SIGKILL alone leaves: a copy of the files before the cut.
        let killed = dir.path().join("killed");
        std::fs::create_dir(&killed).unwrap();
        for f in std::fs::read_dir(&data).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, killed.join(f.file_name().unwrap())).unwrap();
        }
        assert_eq!(missing_rows(&killed.join("rows.db"), &lines), Vec::<u64>::new(), "{sync}: SIGKILL lost rows");

        let report = cut.cut().unwrap();
        let missing = missing_rows(&path, &lines);
        eprintln!("synchronous={sync}: {} acknowledged, {} lost, {report:?}", lines.len(), missing.len());
        assert!(report.files >= 2, "{sync}: the shim saw the database and its WAL: {report:?}");
        if sync == "OFF" {
            assert_eq!(missing.len(), lines.len(), "without fsync, every row after the table is lost");
            assert!(report.bytes_lost > 0);
        } else {
            assert_eq!(missing, Vec::<u64>::new(), "synced rows lost");
            let conn = rusqlite::Connection::open(&path).unwrap();
            let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(ok, "ok");
        }
    }
}

/// Acknowledged writes: each record id and the newest findings value the
/// child confirmed for it.
type Acked = BTreeMap<Uuid, Option<u64>>;

fn note_acks(lines: &[String], acked: &mut Acked) {
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let [_, what, id, n] = parts[..] else { panic!("bad line {line:?}") };
        let id = Uuid::parse_str(id).unwrap();
        let n: u64 = n.parse().unwrap();
        match what {
            "create" => {
                acked.entry(id).or_insert(None);
            }
            "update" => {
                acked.insert(id, Some(n));
            }
            _ => panic!("bad line {line:?}"),
        }
    }
}

/// Every acknowledged write the store at `path` lacks, described.
fn lost_writes(path: &Path, acked: &Acked) -> Vec<String> {
    let store = Store::open(path).unwrap();
    let mut lost = Vec::new();
    if !store.integrity_ok().unwrap() {
        lost.push("database damaged".to_owned());
    }
    for (id, findings) in acked {
        let rec = match store.get(*id) {
            Ok(rec) => rec,
            Err(e) => {
                lost.push(format!("record {id}: {e}"));
                continue;
            }
        };
        let RecordBody::Patrol(p) = &rec.body else { panic!("{id} is not a patrol") };
        if let Some(n) = findings {
            // A write may land without its acknowledgement being printed,
            // so the saved value is the acknowledged one or newer.
            let saved: u64 = p.findings.parse().unwrap_or(0);
            if saved < *n {
                lost.push(format!("update {n} of {id} (found {:?})", p.findings));
            }
        }
    }
    lost
}

/// The phone's store, with its real settings, cut off at a random moment
/// in four rounds: every write it reported saved is there, with its saved
/// content, in an undamaged database.
#[test]
fn a_phone_whose_battery_dies_loses_no_write_it_reported_saved() {
    be_child_if_asked();
    const TEST: &str = "powercut::a_phone_whose_battery_dies_loses_no_write_it_reported_saved";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.db");
    drop(Store::open(&path).unwrap());
    let cut = Powercut::new(dir.path()).unwrap();
    let mut rng = StdRng::seed_from_u64(2024);
    let mut acked = Acked::new();
    for round in 0..4 {
        let lines = run_child(TEST, "store", &path, &cut.env(), rng.gen_range(1..300));
        note_acks(&lines, &mut acked);
        let report = cut.cut().unwrap();
        assert!(report.files >= 2, "round {round}: the shim saw the store and its WAL: {report:?}");
        let lost = lost_writes(&path, &acked);
        assert!(lost.is_empty(), "round {round}: acknowledged writes lost in a power cut: {lost:#?}");
        eprintln!("round {round}: {} acknowledged writes, {} records checked, {report:?}", lines.len(), acked.len());
    }
}

/// The check above notices lost writes: on a disk that ignores fsync, a
/// power cut takes records the store reported saved.
#[test]
fn a_phone_on_a_disk_that_ignores_fsync_loses_writes() {
    be_child_if_asked();
    const TEST: &str = "powercut::a_phone_on_a_disk_that_ignores_fsync_loses_writes";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.db");
    drop(Store::open(&path).unwrap());
    let cut = Powercut::new(dir.path()).unwrap();
    let mut acked = Acked::new();
    note_acks(&run_child(TEST, "store", &path, &cut.env_ignoring_fsync(), 30), &mut acked);
    cut.cut().unwrap();
    let lost = lost_writes(&path, &acked);
    assert!(!acked.is_empty());
    assert_eq!(lost.len(), acked.len(), "every record written since the store was opened is lost: {lost:#?}");
}
