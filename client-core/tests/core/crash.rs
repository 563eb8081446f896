//! A phone killed in the middle of writing (battery pulled, app killed by
//! the OS) keeps every record the app was told had been saved.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{T0, sample};
use gridsync_core::model::{RecordBody, RecordKind};
use gridsync_core::store::Store;
use uuid::Uuid;

const CHILD_ENV: &str = "GRIDSYNC_CRASH_CHILD";
const TEST_NAME: &str = "crash::a_killed_writer_loses_no_acknowledged_write";
const ACKS_BEFORE_KILL: usize = 200;
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);

/// The child: write records as fast as possible, and say "saved" on stdout
/// only after the store returned `Ok`, like the app tells its user.
fn child(path: &str) -> ! {
    let mut store = Store::open(path).unwrap();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut created: Vec<Uuid> = Vec::new();
    for n in 0u64.. {
        // Never outlive a parent that failed to kill us.
        if started.elapsed() > Duration::from_secs(60) {
            std::process::exit(3);
        }
        let at = T0 + n as i64 * 1000;
        if n % 3 == 2 {
            // Every third write updates an earlier patrol's findings to `n`.
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

/// Acknowledged writes: each record id and the newest findings value the
/// child confirmed for it.
type Acked = BTreeMap<Uuid, Option<u64>>;

/// Run one child against `path`, kill it after enough acknowledged writes,
/// and collect every line it managed to print.
fn run_round(path: &str, acked: &mut Acked) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
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
    while lines.len() < ACKS_BEFORE_KILL {
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
    for line in &lines {
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
    lines.len()
}

#[test]
fn a_killed_writer_loses_no_acknowledged_write() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.db");
    let path = path.to_str().unwrap();
    let mut acked = Acked::new();
    for round in 0..3 {
        let lines = run_round(path, &mut acked);
        let store = Store::open(path).unwrap();
        assert!(store.integrity_ok().unwrap(), "round {round}: database damaged");
        for (id, findings) in &acked {
            let rec = store.get(*id).unwrap_or_else(|e| panic!("round {round}: acknowledged record {id} lost: {e}"));
            let RecordBody::Patrol(p) = &rec.body else { panic!("{id} is not a patrol") };
            if let Some(n) = findings {
                // A write may land without its acknowledgement being printed,
                // so the saved value is the acknowledged one or newer.
                let saved: u64 = p.findings.parse().unwrap_or_else(|_| panic!("{id}: findings {:?}", p.findings));
                assert!(saved >= *n, "round {round}: update {n} of {id} lost (found {saved})");
            }
        }
        // Every created record sent its change to the outbox, none torn.
        assert!(store.outbox_len().unwrap() >= acked.len() as u64);
        assert!(store.count().unwrap() >= acked.len() as u64);
        eprintln!("round {round}: {lines} acknowledged writes, {} records checked", acked.len());
    }
}
