//! The dashboard and the endpoints without a token, tried as an attacker
//! would: parallel password guesses, a forged sign-out, a reset password, a
//! flood that would push the audit trail out of sight, a month with a sign,
//! a report submitted twice at once, enrollment codes tried fast. Real
//! server processes, plain HTTP on loopback.

use std::time::Duration;

use gridsync_server::dashboard::password;
use gridsync_server::store::{AuditEntry, AuditQuery, ServerStore};
use gridsync_tests::http1::{Resp, http};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};

const PASSWORD: &str = "lds-grid-2026!";

struct Site {
    _dir: tempfile::TempDir,
    server: ServerProc,
    admin: std::sync::Arc<dyn ServerStore>,
}

fn site(extra: &[&str]) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    for u in ["tc-t01-1", "county-admin", "vl-t01-v01"] {
        admin.set_web_password(u, &password::hash(PASSWORD).unwrap(), 0).unwrap();
    }
    let server = ServerProc::start_serving(db, extra).unwrap();
    Site { _dir: dir, server, admin }
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A signed-in session of `user` made in the store: (cookie, csrf).
    fn session(&self, user: &str) -> (String, String) {
        gridsync_tests::bed::web_session(self.admin.as_ref(), user)
    }

    fn get(&self, path: &str, cookie: &str) -> Resp {
        http("GET", &self.url(path), &[("Cookie", cookie)], b"")
    }

    fn post_form(&self, path: &str, cookie: &str, form: &str) -> Resp {
        http(
            "POST",
            &self.url(path),
            &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    }

    /// One sign-in attempt through the form (with its CSRF pre-token).
    fn sign_in(&self, user: &str, pw: &str) -> Resp {
        let page = http("GET", &self.url("/"), &[], b"");
        let pre = page
            .header("set-cookie")
            .iter()
            .find_map(|c| c.strip_prefix("gs_pre="))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        self.post_form(
            "/signin",
            &format!("gs_pre={pre}"),
            &format!("csrf={pre}&user={user}&password={}", pw.replace('!', "%21")),
        )
    }

    fn audit(&self, q: AuditQuery) -> Vec<AuditEntry> {
        self.admin.audit_log(&AuditQuery { limit: q.limit.max(1), ..q }).unwrap()
    }
}

/// Forty sign-ins of one account at once, 39 wrong and one right: the lock
/// is decided and counted before each password check, so no more than five
/// are checked (the rest find the account locked), and at most four checks
/// run at once, so the server's memory stays within a few argon2 buffers.
#[test]
fn parallel_guesses_cannot_outrun_the_lockout() {
    let s = site(&["--sign-in-per-minute", "1000"]);
    let before = s.server.peak_rss_mib().unwrap();
    let s = std::sync::Arc::new(s);
    let answers: Vec<(u16, String)> = (0..40)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let r = s.sign_in("tc-t01-1", if i == 17 { PASSWORD } else { "wrong-password-1" });
                (r.status, r.text())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let after = s.server.peak_rss_mib().unwrap();
    let checked = s.audit(AuditQuery { user: Some("tc-t01-1".into()), limit: 100, ..Default::default() });
    let failed = checked.iter().filter(|e| e.action == "sign_in_failed").count();
    let succeeded = checked.iter().filter(|e| e.action == "sign_in").count();
    let busy = answers.iter().filter(|(st, _)| *st == 503).count();
    eprintln!(
        "40 parallel sign-ins: {failed} wrong and {succeeded} right checked, {busy} busy; peak RSS {before:.1} -> {after:.1} MiB"
    );
    assert!(failed + succeeded <= 5, "{failed} + {succeeded} passwords were checked");
    assert!(answers.iter().filter(|(_, t)| t.contains("锁定")).count() + busy >= 35);
    assert!(after - before < 4.0 * 20.0 + 60.0, "peak RSS grew from {before:.1} to {after:.1} MiB");
}

/// Sixty-four sign-ins at once: at most four argon2 checks run together;
/// the others are told the server is busy, and memory stays bounded.
#[test]
fn a_burst_of_sign_ins_is_answered_busy_rather_than_queued() {
    let s = std::sync::Arc::new(site(&["--sign-in-per-minute", "1000"]));
    let before = s.server.peak_rss_mib().unwrap();
    let answers: Vec<u16> = (0..64)
        .map(|i| {
            let s = s.clone();
            let user = ["tc-t01-1", "county-admin", "vl-t01-v01"][i % 3];
            std::thread::spawn(move || s.sign_in(user, PASSWORD).status)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let after = s.server.peak_rss_mib().unwrap();
    eprintln!("64 sign-ins at once: peak RSS {before:.1} -> {after:.1} MiB; answers {answers:?}");
    assert!(answers.iter().all(|a| [303, 401, 503].contains(a)), "{answers:?}");
    assert!(after - before < 4.0 * 20.0 + 60.0, "peak RSS grew from {before:.1} to {after:.1} MiB");
}

/// A password reset ends the user's open sessions; a forged sign-out (no
/// CSRF token) is refused and leaves the session and its cookie alone.
#[test]
fn resets_end_sessions_and_forged_sign_outs_change_nothing() {
    let s = site(&[]);
    let (cookie, csrf) = s.session("tc-t01-1");
    assert_eq!(s.get("/web/devices", &cookie).status, 200);
    let forged = s.post_form("/signout", &cookie, "csrf=not-the-token");
    assert_eq!(forged.status, 403);
    assert!(!forged.header("set-cookie").iter().any(|c| c.starts_with("gs_session=")), "the cookie was cleared");
    assert_eq!(s.get("/web/devices", &cookie).status, 200, "the session survived the forged sign-out");
    s.admin.set_web_password("tc-t01-1", &password::hash("another-pass-2027").unwrap(), 1).unwrap();
    assert_eq!(s.get("/web/devices", &cookie).status, 303, "the reset ended the session");
    let _ = csrf;
}

/// Five hundred and twenty failed sign-ins after a real one: the county
/// clerk still finds the real one on the audit page, by filtering on the
/// user or by paging back.
#[test]
fn the_audit_trail_cannot_be_flushed_out_of_sight() {
    let s = site(&[]);
    let now = gridsync_server::clock::now_ms();
    let line = |at: i64, user: &str, action: &str| AuditEntry {
        seq: 0,
        at,
        user_id: user.into(),
        action: action.into(),
        target: String::new(),
        ip: "10.0.0.9".into(),
    };
    s.admin.append_audit(&line(now - 10_000, "tc-t01-1", "sign_in")).unwrap();
    for i in 0..520 {
        s.admin.append_audit(&line(now - 9_000 + i, "attacker", "sign_in_failed")).unwrap();
    }
    let (cookie, _) = s.session("county-admin");
    let filtered = s.get("/web/audit?user=tc-t01-1", &cookie);
    assert_eq!(filtered.status, 200);
    assert!(filtered.text().contains("tc-t01-1") && filtered.text().contains("data-action=\"sign_in\""));
    assert!(!filtered.text().contains("attacker"));
    let mut path = "/web/audit".to_owned();
    let mut pages = 0;
    loop {
        let page = s.get(&path, &cookie).text();
        pages += 1;
        if page.contains(">tc-t01-1<") {
            break;
        }
        let next = page.split("id=\"older\" href=\"").nth(1).expect("an older page").split('"').next().unwrap();
        path = next.replace("&amp;", "&");
        assert!(pages < 20, "never reached the first line");
    }
    assert!(pages >= 6, "{pages} pages");
}

/// A month written with a sign (`2026-+8`) is refused by the reports API
/// and the dashboard, not read as August.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_with_a_sign_is_refused() {
    let s = site(&[]);
    let code = issue_code(s.admin.as_ref(), "tc-t01-1").unwrap();
    let phone = gridsync_tests::device::Device::enroll(&s.server.url(), &code).await.unwrap();
    let token = phone.store().enrollment().unwrap().unwrap().token;
    let url = s.url("/v1/reports/monthly/t01/2026-+8");
    let r =
        tokio::task::spawn_blocking(move || http("GET", &url, &[("Authorization", &format!("Bearer {token}"))], b""))
            .await
            .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let (cookie, _) = s.session("tc-t01-1");
    let s2 = std::sync::Arc::new(s);
    let s3 = s2.clone();
    let page = tokio::task::spawn_blocking(move || s3.get("/web/reports/t01/2026-+8", &cookie)).await.unwrap();
    assert_eq!(page.status, 400);
}

/// Two submissions of one final report, posted at the same moment, make
/// one report and one audit line.
#[test]
fn a_final_report_posted_twice_at_once_is_one_report() {
    let s = std::sync::Arc::new(site(&[]));
    let (cookie, csrf) = s.session("tc-t01-1");
    // A month that has ended: 40 days ago, as `YYYY-MM` in Beijing time.
    let month = {
        let d = gridsync_core::model::beijing_day(gridsync_server::clock::now_ms() - 40 * 86_400_000);
        d.format("%Y-%m").to_string()
    };
    // The confirmation page carries the figures it showed.
    let confirm =
        s.post_form(&format!("/web/reports/t01/{month}/confirm"), &cookie, &format!("csrf={csrf}&narrative=ok"));
    assert_eq!(confirm.status, 200);
    let page = confirm.text();
    let figures = page.split("name=\"figures\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let answers: Vec<u16> = (0..2)
        .map(|_| {
            let (s, cookie, csrf, month, figures) =
                (s.clone(), cookie.clone(), csrf.clone(), month.clone(), figures.clone());
            std::thread::spawn(move || {
                let body =
                    format!("csrf={csrf}&narrative=ok&figures={}", figures.replace(';', "%3B").replace('=', "%3D"));
                s.post_form(&format!("/web/reports/t01/{month}/submit"), &cookie, &body).status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let reports = s
        .admin
        .records(&gridsync_server::store::ViewQuery {
            kind: Some(gridsync_core::model::RecordKind::MonthlyReport),
            ..Default::default()
        })
        .unwrap();
    let audited = s.audit(AuditQuery { action: Some("submit_report".into()), limit: 10, ..Default::default() });
    assert_eq!(reports.len(), 1, "{answers:?}");
    assert_eq!(audited.len(), 1, "{answers:?}");
    assert!(answers.contains(&303), "{answers:?}");
}

/// The village leader's view of a village lists its households: the list
/// itself (heads of household and addresses) goes in the audit log.
#[test]
fn a_list_of_households_is_audited() {
    let s = site(&[]);
    let rec = gridsync_tests::records::household(
        &gridsync_core::grid::GridPath::parse("t01/v01/g1").unwrap(),
        "gm-t01-v01-g1",
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3),
    );
    let doc = gridsync_core::doc::RecordDoc::create(&rec, automerge::ActorId::random()).unwrap();
    let mut doc = doc;
    let incoming = gridsync_server::store::IncomingDoc::unsigned(
        rec.id,
        doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
    );
    let gm = s.admin.user("gm-t01-v01-g1").unwrap().unwrap();
    let pusher = gridsync_server::merge::Pusher {
        user: gm,
        device_id: "seed".into(),
        actor: gridsync_server::merge::PusherActor::Server,
    };
    let out = gridsync_server::sync::merge_records(s.admin.as_ref(), &pusher, &[incoming], 1).unwrap();
    assert!(out[0].rejections.is_empty(), "{:?}", out[0].rejections);
    let (cookie, _) = s.session("vl-t01-v01");
    assert_eq!(s.get("/web/t/t01/v01", &cookie).status, 200);
    let lines = s.audit(AuditQuery { action: Some("list_households".into()), limit: 10, ..Default::default() });
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].user_id.as_str(), lines[0].target.as_str()), ("vl-t01-v01", "t01/v01"));
}

/// One address trying enrollment codes fast is stopped after its limit
/// (here ten), with
/// when to try again; the eleventh attempt is not even checked.
#[test]
fn enrollment_attempts_from_one_address_are_limited() {
    let s = site(&["--enroll-per-minute", "10"]);
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..11 {
        let r = http(
            "POST",
            &s.url("/v1/enroll"),
            &[("Content-Type", "application/json")],
            br#"{"code":"AAAA-BBBB-CCCC","device_name":"x"}"#,
        );
        statuses.push(r.status);
        retry = r.header("retry-after").first().map(|v| v.to_string());
    }
    assert_eq!(&statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n))));
    std::thread::sleep(Duration::from_millis(10));
}

/// The administrator cannot give an account a password from the lists of
/// the most common ones, or a run of the keyboard.
#[test]
fn guessable_passwords_are_refused_by_set_password() {
    let dir = tempfile::tempdir().unwrap();
    let bin = gridsync_tests::server::server_binary().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    seed_demo(db.open().unwrap().as_ref()).unwrap();
    for pw in ["1234567890", "qwertyuiop", "woaini1314", "password123"] {
        let mut child = std::process::Command::new(&bin)
            .args([
                "--data-dir",
                &dir.path().to_string_lossy(),
                "set-password",
                "--user",
                "tc-t01-1",
                "--password-stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{pw} was accepted");
    }
}
