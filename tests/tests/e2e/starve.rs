//! A server no client can starve: hostile requests to a real server
//! process, with its memory read from /proc. Each case is bounded in time
//! and its figures are printed (`cargo test -- --nocapture` shows them).

use std::io::Write as _;
use std::time::{Duration, Instant};

use gridsync_core::model::{DisputeAction, PatrolSlot, RecordBody};
use gridsync_core::protocol::{self, SyncRequest};
use gridsync_tests::device::{Device, RawClient};
use gridsync_tests::hostile::{copy_of, push_raw, wire};
use gridsync_tests::records::{DAY0, dispute, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, seed_demo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

struct Town {
    _dir: tempfile::TempDir,
    server: ServerProc,
    admin: Admin,
}

async fn town(extra: &[&str]) -> Town {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = Admin::open(&db);
    blocking(|| seed_demo(admin.as_ref()).unwrap());
    let server = ServerProc::start_serving(db, extra).unwrap();
    Town { _dir: dir, server, admin }
}

impl Town {
    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    async fn healthz(&self) -> u16 {
        match reqwest::get(format!("{}/healthz", self.server.url())).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

/// A deflate-compressed sync body holding `body` (postcard already).
fn envelope(body: &[u8]) -> Vec<u8> {
    let mut out = b"GS".to_vec();
    out.extend_from_slice(&protocol::PROTOCOL_VERSION.to_be_bytes());
    out.push(1); // plain deflate
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).unwrap();
    out.extend(enc.finish().unwrap());
    out
}

/// POST raw bytes to `path` with a token; the status and `Retry-After`.
async fn post(url: &str, path: &str, token: &str, body: Vec<u8>) -> (u16, Option<String>) {
    let c = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    match c.post(format!("{url}{path}")).header("authorization", format!("Bearer {token}")).body(body).send().await {
        Ok(r) => (r.status().as_u16(), r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned)),
        Err(_) => (0, None),
    }
}

/// POST `body` to `/v1/sync` over a raw connection: the headers and a first
/// piece, then wait at `gate` for the other senders, then the rest. An
/// answer that came before the rest was sent (a 503) is taken as it is.
async fn post_together(url: &str, token: &str, body: &[u8], gate: &tokio::sync::Barrier) -> (u16, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else { return (0, None) };
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let first = body.len().min(64 * 1024);
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(&body[..first]).await;
    gate.wait().await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // An early answer (the budget was full) is already waiting.
    if let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(300), conn.read(&mut buf)).await {
        answer.extend_from_slice(&buf[..n]);
    }
    if answer.is_empty() {
        let _ = conn.write_all(&body[first..]).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline && !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let retry =
        text.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_owned()));
    (status, retry)
}

/// A grid manager's phone tries to build a history that would take the
/// server cubic work under its write lock: one change appending 601 events
/// (300 concurrent resolutions and a chain), then 300 changes each
/// resolving from the first version. Both are refused (one step appends at
/// most 20 events, each on the latest ones; a device's changes build on
/// its own previous change), and a village leader syncing at the same time
/// is answered promptly throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_built_for_cubic_work_is_refused_without_stalling_others() {
    let t = town(&[]).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut vl = t.phone("vl-t01-v01").await;
    let d = dispute(&gm.grid, &gm.user, 0);
    gm.create(&d).unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();
    let token = gm.store().enrollment().unwrap().unwrap().token;

    // One change with 601 events.
    let mut doc = copy_of(&gm, d.id).unwrap();
    let heads = doc.heads();
    let mut rec = doc.record().unwrap();
    let found = match &rec.body {
        RecordBody::Dispute(x) => x.events[0].id.clone(),
        _ => unreachable!(),
    };
    if let RecordBody::Dispute(x) = &mut rec.body {
        for i in 0..300 {
            x.events.push(gridsync_core::events::Event {
                id: Uuid::new_v4().to_string(),
                at: DAY0 + i,
                by: gm.user.clone(),
                parents: vec![found.clone()],
                action: DisputeAction::Resolved { note: format!("结果{i}") },
            });
        }
        let mut prev: Vec<String> = x.events[1..].iter().map(|e| e.id.clone()).collect();
        for i in 0..301 {
            let id = Uuid::new_v4().to_string();
            x.events.push(gridsync_core::events::Event {
                id: id.clone(),
                at: DAY0 + 1000 + i,
                by: gm.user.clone(),
                parents: std::mem::take(&mut prev).into_iter().take(16).collect(),
                action: DisputeAction::FollowUp { note: String::new() },
            });
            prev = vec![id];
        }
    }
    doc.update(&rec).unwrap();
    let big = wire(d.id, &doc.changes_since(&heads));

    // 300 changes each based on the first version.
    let mut many = Vec::new();
    let root: Vec<_> = copy_of(&gm, d.id)
        .unwrap()
        .changes_since(&[])
        .iter()
        .filter(|c| c.deps().is_empty())
        .map(|c| c.hash())
        .collect();
    for i in 0..300 {
        let mut fork = copy_of(&gm, d.id).unwrap().fork_at(&root, gm.store().actor().clone()).unwrap();
        let mut r = fork.record().unwrap();
        if let RecordBody::Dispute(x) = &mut r.body {
            let action = DisputeAction::Resolved { note: format!("结果{i}") };
            let e = gridsync_core::model::next_event(&x.events, &gm.user, DAY0 + i, action);
            x.events.push(e);
        }
        fork.update(&r).unwrap();
        many.extend(fork.changes_since(&root));
    }
    let many = wire(d.id, &many);
    // Signed by the phone: the signature proves who sent it, not that it is fair.
    let (device, key) = gm.store().signer().unwrap();

    let url = t.server.url();
    let attack = tokio::spawn(async move {
        let started = Instant::now();
        let mut statuses = Vec::new();
        for docs in [vec![big], vec![many]] {
            let signature = protocol::sign_docs(&key, &device, &docs);
            let req = SyncRequest { cursor: vec![0xff; 16], docs, max_response_bytes: 0, signature };
            let body = protocol::encode(&req).unwrap();
            statuses.push(post(&url, "/v1/sync", &token, body).await.0);
        }
        (statuses, started.elapsed())
    });
    let mut longest = Duration::ZERO;
    while !attack.is_finished() {
        let started = Instant::now();
        vl.sync().await.unwrap();
        longest = longest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (statuses, took) = attack.await.unwrap();
    eprintln!("cubic attack: answered in {took:.2?}; longest honest sync meanwhile {longest:.2?}");
    assert_eq!(statuses, [200, 200]);
    // The first of the 300 is an honest-looking step (his own next change);
    // the other 299 reuse its sequence number.
    let view = blocking(|| t.admin.record(d.id).unwrap().unwrap());
    assert!(view.json["data"]["events"].as_array().unwrap().len() <= 2, "{}", view.json);
    assert!(longest < Duration::from_secs(5), "an honest sync waited {longest:?}");
}

/// The postcard body of a sync request with one record and `n` empty
/// changes (and a signature of zeros).
fn zero_length_changes(n: u64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let mut body = vec![0u8]; // empty cursor
    varint(&mut body, 1);
    body.extend_from_slice(&[7u8; 16]);
    varint(&mut body, n);
    body.resize(body.len() + n as usize, 0); // n changes of length 0
    varint(&mut body, 0);
    body.extend_from_slice(&[0; 64]); // the signature
    body
}

/// 32 KB on the wire inflating to 32 MiB of zero-length changes: refused
/// at the change limit while counting, so two of them at once leave the
/// server's peak memory within tens of MiB (it used to reach 1.3 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_checked_before_memory_is_taken() {
    let t = town(&[]).await;
    let gm = t.phone("gm-t01-v01-g1").await;
    let token = gm.store().enrollment().unwrap().unwrap().token;
    let bomb = envelope(&zero_length_changes(32 * 1024 * 1024 - 128));
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let before = t.server.peak_rss_mib().unwrap();
    let url = t.server.url();
    let (a, b) = tokio::join!(post(&url, "/v1/sync", &token, bomb.clone()), post(&url, "/v1/sync", &token, bomb));
    let after = t.server.peak_rss_mib().unwrap();
    eprintln!("zero-length changes: peak RSS {before:.1} -> {after:.1} MiB");
    assert_eq!((a.0, b.0), (413, 413));
    assert!(after - before < 100.0, "peak RSS grew from {before:.1} to {after:.1} MiB");
    assert_eq!(t.healthz().await, 200);
}

/// Twelve 8 MiB bodies at once against a 32 MiB budget for bodies in
/// flight: those beyond it are told 503 with Retry-After at once, the
/// server's memory stays near the budget, and /healthz answers meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_stay_within_the_budget() {
    let t = town(&["--max-inflight-mib", "32", "--max-body-mib", "8"]).await;
    let gm = t.phone("gm-t01-v01-g1").await;
    let token = gm.store().enrollment().unwrap().unwrap().token;
    let before = t.server.peak_rss_mib().unwrap();
    let mut noise = vec![0u8; 8 * 1024 * 1024 - 1024];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut body = b"GS\x00\x02\x00".to_vec();
    body.extend(noise);
    let url = t.server.url();
    // Every request's headers (and its declared length) reach the server
    // before any body is finished, so all twelve are in flight at once
    // however the machine schedules them.
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (url, token, body, gate) = (url.clone(), token.clone(), body.clone(), gate.clone());
            tokio::spawn(async move { post_together(&url, &token, &body, &gate).await })
        })
        .collect();
    let health = t.healthz().await;
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let after = t.server.peak_rss_mib().unwrap();
    eprintln!(
        "12 bodies of 8 MiB, 32 MiB budget: peak RSS {before:.1} -> {after:.1} MiB; answers {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let busy = answers.iter().filter(|(s, r)| *s == 503 && r.is_some()).count();
    assert!(busy >= 1, "nobody was told to retry: {answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 503 || *s == 400), "{answers:?}");
    assert_eq!(health, 200);
    assert!(after - before < 32.0 + 48.0, "peak RSS grew from {before:.1} to {after:.1} MiB");
}

/// Send the request head of a POST with a body of `len` bytes, then the
/// body one byte a second; the status line the server answers with, and
/// after how long.
async fn trickle(addr: &str, path: &str, len: usize, max: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    for _ in 0..len {
        if started.elapsed() > max {
            break;
        }
        if s.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                return (text.lines().next().unwrap_or_default().to_owned(), started.elapsed());
            }
            Ok(_) => return (String::new(), started.elapsed()),
            Err(_) => {}
        }
    }
    (String::new(), started.elapsed())
}

/// A body trickled one byte a second is cut off with 408 once it falls
/// below the minimum rate (here after a 2 s grace), so slow connections
/// cannot pile up; and 300 of them at once on a server capped at 100
/// connections never take its descriptors: /healthz still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_are_cut_off_and_cannot_take_the_descriptors() {
    let t = town(&[
        "--body-grace-secs",
        "2",
        "--body-idle-secs",
        "3",
        "--body-min-rate",
        "512",
        "--max-connections",
        "100",
        "--enroll-per-minute",
        "10000",
    ])
    .await;
    let (status, took) = trickle(t.server.addr(), "/v1/enroll", 200, Duration::from_secs(20)).await;
    eprintln!("trickled body: {status:?} after {took:.1?}");
    assert!(status.contains("408"), "{status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    let addr = t.server.addr().to_owned();
    let slow: Vec<_> = (0..300)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { trickle(&addr, "/v1/enroll", 100, Duration::from_secs(15)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds = t.server.open_fds().unwrap();
    let started = Instant::now();
    let mut health = 0;
    while started.elapsed() < Duration::from_secs(20) {
        health = t.healthz().await;
        if health == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = started.elapsed();
    for s in slow {
        let _ = s.await;
    }
    eprintln!("300 slow connections, cap 100: {fds} descriptors open; /healthz answered {health} after {waited:.1?}");
    assert!(fds < 100 + 64, "{fds} descriptors open");
    assert_eq!(health, 200);
}

/// /healthz tells the truth: when the database file refuses writes (made
/// immutable) it answers 503 `storage_unavailable`, counted in
/// `gridsync_http_errors_total`, and 200 again once writes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_when_the_database_refuses_writes() {
    let t = town(&[]).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    gm.create(&patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning)).unwrap();
    gm.sync().await.unwrap();
    assert_eq!(t.healthz().await, 200);
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(t._dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".sqlite3") || p.to_string_lossy().ends_with("-wal"))
        .collect();
    let chattr = |flag: &str| {
        files.iter().all(|f| std::process::Command::new("chattr").arg(flag).arg(f).status().is_ok_and(|s| s.success()))
    };
    if !chattr("+i") {
        eprintln!("skipped: chattr +i is not permitted here, so the database cannot be made read-only");
        return;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = reqwest::get(format!("{}/healthz", t.server.url())).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(chattr("-i"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage_unavailable"), "{body}");
    let metrics = RawClient::new().get_text(&format!("{}/metrics", t.server.url())).await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gridsync_http_errors_total{status=\"503\",error=\"storage_unavailable\"}")),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(t.healthz().await, 200);
}

/// A `--database-url` that is not a PostgreSQL URL is refused with the
/// reason, and no SQLite file of that name appears.
#[test]
fn a_database_url_that_is_not_postgres_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = gridsync_tests::server::server_binary().unwrap();
    for url in ["mysql://root@127.0.0.1/test", "postgress://typo", "host=127.0.0.1 dbname=test"] {
        let out = std::process::Command::new(&bin)
            .current_dir(dir.path())
            .args(["--database-url", url, "migrate"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("PostgreSQL URL") || err.contains("key=value"), "{url}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a file was created");
}

/// Send a POST's head declaring `len` bytes of body and `sent` of them,
/// then wait up to 5 s for the answer's status line and body: a limit
/// checked before the body is read answers without the rest.
async fn declared(addr: &str, path: &str, token: &str, len: usize, sent: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(sent).await;
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout(until.saturating_duration_since(Instant::now()), s.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The device-key and relay endpoints judge a phone's body like the sync:
/// past its limit (4 KiB a key, 8 MiB a sealed bundle) it is refused with
/// 413 `body_too_large` from the declared length, before the rest is sent;
/// within it, bytes that are not a key or not a bundle for this server get
/// a reason of their own; and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_relay_bodies_are_judged_before_they_are_read() {
    let t = town(&[]).await;
    let gm = t.phone("gm-t01-v01-g1").await;
    let token = gm.store().enrollment().unwrap().unwrap().token;
    let url = t.server.url();
    let addr = url.trim_start_matches("http://").to_owned();
    let reason = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_owned))
    };

    let (status, body) = declared(&addr, "/v1/device-key", &token, 4 * 1024 + 1, b"{").await;
    assert_eq!((status, reason(&body).as_deref()), (413, Some("body_too_large")), "{body}");
    let (status, body) = declared(&addr, "/v1/relay", &token, protocol::MAX_RELAY_BYTES + 2048, &[0u8; 1024]).await;
    assert_eq!((status, reason(&body).as_deref()), (413, Some("body_too_large")), "{body}");

    let garbage = b"{\"public_key\": 7}".to_vec();
    let (status, body) = declared(&addr, "/v1/device-key", &token, garbage.len(), &garbage).await;
    assert_eq!((status, reason(&body).as_deref()), (400, Some("malformed_body")), "{body}");
    let short = b"{\"public_key\": \"abcd\"}".to_vec();
    let (status, body) = declared(&addr, "/v1/device-key", &token, short.len(), &short).await;
    assert_eq!((status, reason(&body).as_deref()), (422, Some("invalid_public_key")), "{body}");
    let sealed_elsewhere = vec![0x5au8; 4096];
    let (status, body) = declared(&addr, "/v1/relay", &token, sealed_elsewhere.len(), &sealed_elsewhere).await;
    assert_eq!((status, reason(&body).as_deref()), (422, Some("relay_unreadable")), "{body}");

    // A bundle of exactly the limit's size is read, and judged on what it is.
    let at_limit = vec![0x5au8; protocol::MAX_RELAY_BYTES];
    let (status, body) = declared(&addr, "/v1/relay", &token, at_limit.len(), &at_limit).await;
    assert_eq!((status, reason(&body).as_deref()), (422, Some("relay_unreadable")), "{body}");
    assert_eq!(t.healthz().await, 200);
}

/// A signed request that names one record 19,000 times (each mention judged
/// and, on PostgreSQL, merged in a round of its own: 7 s of a merge turn)
/// or carries 100,000 records without changes (each looked up and locked:
/// "out of shared memory" on PostgreSQL, a 503 for whoever merged then)
/// is refused whole with 400 `malformed_body`, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_named_twice_or_records_without_changes_are_refused() {
    let t = town(&[]).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let rec = patrol(&gm.grid, &gm.user, 0, PatrolSlot::Morning);
    gm.create(&rec).unwrap();
    let mut doc = copy_of(&gm, rec.id).unwrap();
    let change = doc.changes_since(&[]).into_iter().next().unwrap().clone();
    let refused = |r: anyhow::Result<protocol::SyncResponse>| match r {
        Err(e) => e.to_string(),
        Ok(resp) => panic!("taken: {} acked", resp.acked.len()),
    };
    let repeated: Vec<_> = (0..19_000).map(|_| wire(rec.id, std::slice::from_ref(&change))).collect();
    let why = refused(push_raw(&gm, repeated).await);
    assert!(why.contains("400") && why.contains("malformed_body"), "{why}");
    let empty: Vec<_> =
        (0..100_000).map(|_| protocol::DocChanges { doc: *Uuid::new_v4().as_bytes(), changes: vec![] }).collect();
    let why = refused(push_raw(&gm, empty).await);
    assert!(why.contains("400") && why.contains("malformed_body"), "{why}");
    assert!(blocking(|| t.admin.record(rec.id).unwrap()).is_none(), "nothing of either stored");
    // The phone's own sync sends the record once, and it is taken.
    gm.sync().await.unwrap();
    assert!(blocking(|| t.admin.record(rec.id).unwrap()).is_some());
}
