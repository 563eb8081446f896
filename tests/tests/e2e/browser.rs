//! The supervisors' web dashboard in a real browser: headless Chromium from
//! Debian's packages, driven over the W3C WebDriver protocol (plain JSON
//! over HTTP to chromedriver, by the small client below).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install -y chromium chromium-driver`); without them the test
//! fails, unless `GRIDSYNC_SKIP_BROWSER=1`. With
//! `GRIDSYNC_SAVE_SCREENSHOTS=1` it saves the main pages under
//! `docs/screenshots/`.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gridsync_core::model::{DisputeAction, DisputeCategory, DisputeLevel};
use gridsync_server::dashboard::password;
use gridsync_tests::device::Device;
use gridsync_tests::records::{DAY0, dispute, dispute_act, hazard, household};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};
use rand::SeedableRng;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const PASSWORD: &str = "lds-grid-2026!";

use gridsync_tests::http1::{Resp, http};

// ---- a minimal WebDriver client ----

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--lang=zh-CN",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let mut d = Driver { child, base, session: String::new(), _profile: profile };
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().expect("session id").to_owned();
        d
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("{}{path}", self.base);
        let r = http(method, &url, &[("Content-Type", "application/json")], body.as_bytes());
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(r.status == 200, "WebDriver {method} {path} failed: {} {}", r.status, r.text());
        v["value"].clone()
    }

    /// Like [`Driver::call`], `None` on a WebDriver error (an element not
    /// there yet while a page loads).
    pub(crate) fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("{}{path}", self.base);
        let r = http(method, &url, &[("Content-Type", "application/json")], body.as_bytes());
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        (r.status == 200).then(|| v["value"].clone())
    }

    /// The text of `css`, or `None` while it is not on the page.
    pub(crate) fn try_text(&self, css: &str) -> Option<String> {
        let v = self.try_call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})))?;
        let id = v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str)?.to_owned();
        self.try_call("GET", &self.s(&format!("/element/{id}/text")), None)?.as_str().map(str::to_owned)
    }

    pub(crate) fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub(crate) fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})));
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned()
    }

    pub(crate) fn count(&self, css: &str) -> usize {
        // 0 while a page is loading, rather than an error.
        let v = self.try_call("POST", &self.s("/elements"), Some(json!({"using": "css selector", "value": css})));
        v.as_ref().and_then(Value::as_array).map_or(0, Vec::len)
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &self.s(&format!("/element/{id}/text")), None).as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn attr(&self, css: &str, name: &str) -> String {
        let id = self.find(css);
        self.call("GET", &self.s(&format!("/element/{id}/attribute/{name}")), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/click")), Some(json!({})));
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/value")), Some(json!({"text": text})));
    }

    pub(crate) fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None).as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn current_url(&self) -> String {
        self.call("GET", &self.s("/url"), None).as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let v = self.call("GET", &self.s("/cookie"), None);
        v.as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str()).map(str::to_owned)
    }

    pub(crate) fn screenshot(&self, name: &str) {
        if std::env::var("GRIDSYNC_SAVE_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let v = self.call("GET", &self.s("/screenshot"), None);
        let png = base64_decode(v.as_str().unwrap_or_default());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http("DELETE", &format!("{}/session/{}", self.base, self.session), &[], b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The uncompressed entries of a ZIP file (stored or deflated), read
/// through its central directory.
pub(crate) fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("ZIP end record");
    let (entries, mut at) = (u16_at(eocd + 10), u32_at(eocd + 16));
    let mut out = Vec::new();
    for _ in 0..entries {
        assert_eq!(bytes[at..at + 4], [0x50, 0x4b, 0x01, 0x02], "central directory entry");
        let (method, size) = (u16_at(at + 10), u32_at(at + 20));
        let (name_len, extra_len, comment_len) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        let local = u32_at(at + 42);
        let name = String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]).into_owned();
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let data = &bytes[start..start + size];
        let content = if method == 8 {
            let mut d = Vec::new();
            flate2::read::DeflateDecoder::new(data).read_to_end(&mut d).unwrap();
            d
        } else {
            data.to_vec()
        };
        out.push((name, content));
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

pub(crate) fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var("GRIDSYNC_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("browser test skipped (GRIDSYNC_SKIP_BROWSER=1)");
        return false;
    }
    panic!(
        "the browser test needs Debian's Chromium and chromedriver at {CHROMIUM} and {CHROMEDRIVER}: \
         install them with `apt-get install -y chromium chromium-driver`, \
         or set GRIDSYNC_SKIP_BROWSER=1 to skip this test"
    );
}

/// Clicks return before the next page has loaded: poll.
pub(crate) fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn sign_in(d: &Driver, base: &str, user: &str) {
    d.goto(&format!("{base}/"));
    d.type_into("#user", user);
    d.type_into("#password", PASSWORD);
    d.click("#signin");
    wait_until(|| d.current_url().contains("/web"), &format!("{user} signed in"));
}

pub(crate) fn sign_out(d: &Driver) {
    d.click("#signout");
    wait_until(|| d.source().contains("id=\"signin\""), "signed out");
}

/// The month (`YYYY-MM`, Beijing time) of the seeded records.
pub(crate) fn seed_month() -> String {
    gridsync_core::model::beijing_day(DAY0).to_string()[..7].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    for u in ["tc-t01-1", "gm-t02-v01-g1", "vl-t01-v01", "county-admin"] {
        admin.set_web_password(u, &password::hash(PASSWORD).unwrap(), 0).unwrap();
    }
    let server = ServerProc::start(db).unwrap();
    let base = server.url();

    // A grid manager in 城关镇 (t01) records a hazard, a dispute and a
    // household; the village leader classifies the dispute and escalates it.
    let mut gm = Device::enroll(&base, &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap()).await.unwrap();
    let mut vl = Device::enroll(&base, &issue_code(admin.as_ref(), "vl-t01-v01").unwrap()).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let rec = dispute(&gm.grid, &gm.user, 1);
    gm.create(&rec).unwrap();
    gm.create(&hazard(&gm.grid, &gm.user, 2)).unwrap();
    let hh = household(&gm.grid, &gm.user, &mut rng);
    gm.create(&hh).unwrap();
    gm.sync().await.unwrap();
    vl.sync().await.unwrap();
    let vl_user = vl.user.clone();
    vl.store()
        .edit(rec.id, DAY0 + 2 * 86_400_000, |r| {
            dispute_act(
                r,
                &vl_user,
                DAY0 + 2 * 86_400_000,
                DisputeAction::Classified { category: DisputeCategory::Land, note: "周排查会甄别".into() },
            )
        })
        .unwrap();
    vl.store()
        .edit(rec.id, DAY0 + 3 * 86_400_000, |r| {
            dispute_act(
                r,
                &vl_user,
                DAY0 + 3 * 86_400_000,
                DisputeAction::Escalated { to: DisputeLevel::Township, note: "村级调解未果".into() },
            )
        })
        .unwrap();
    vl.sync().await.unwrap();

    let base2 = base.clone();
    let month = seed_month();
    let rec_id = rec.id;
    let hh_id = hh.id;
    let admin2 = admin.clone();
    tokio::task::spawn_blocking(move || browse(&base2, &month, rec_id, hh_id, admin2.as_ref())).await.unwrap();
    drop(server);
}

fn browse(
    base: &str,
    month: &str,
    dispute_id: uuid::Uuid,
    household_id: uuid::Uuid,
    admin: &dyn gridsync_server::store::ServerStore,
) {
    let d = Driver::start();

    // The township chief of 城关镇 sees only that township.
    d.goto(&format!("{base}/"));
    d.screenshot("signin");
    sign_in(&d, base, "tc-t01-1");
    assert!(d.current_url().ends_with("/web/t/t01"), "a chief lands on the township: {}", d.current_url());
    assert_eq!(d.text("#title"), "城关镇");
    assert_eq!(d.count("#villages tr"), 1 + 11, "the header and 城关镇's 11 villages");
    let src = d.source();
    assert!(!src.contains("站儿巷镇") && !src.contains("/web/t/t02"), "nothing of another township");
    assert!(d.text("#villages").contains('1'), "the open hazard and dispute are counted");
    d.screenshot("township");

    // The dispute escalated to the township, with its timeline.
    d.click(&format!("a[href=\"/web/disputes/{dispute_id}\"]"));
    wait_until(|| d.current_url().contains("/web/disputes/"), "dispute page");
    assert_eq!(d.text("#status"), "已上报");
    let timeline = d.text("#timeline");
    for step in ["排查发现", "甄别分类", "上报", "村级调解未果", "乡镇级"] {
        assert!(timeline.contains(step), "timeline shows {step}: {timeline}");
    }
    assert_eq!(d.count("#timeline li"), 3);
    d.screenshot("dispute");

    // The monthly report: download the XLSX with the session cookie.
    d.goto(&format!("{base}/web/reports/t01/{month}"));
    assert!(d.text("#submission").contains("未报送"));
    let href = format!("{base}{}", d.attr("#download", "href"));
    assert!(href.ends_with(&format!("/web/reports/t01/{month}.xlsx")), "{href}");
    let session = d.cookie("gs_session").expect("session cookie");
    let cookie = format!("gs_session={session}");
    let r = http("GET", &href, &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]);
    assert!(r.body.starts_with(b"PK\x03\x04"), "an XLSX is a ZIP");
    let files = unzip(&r.body);
    let strings = files.iter().find(|(n, _)| n == "xl/sharedStrings.xml").expect("shared strings");
    let strings = String::from_utf8_lossy(&strings.1);
    assert!(strings.contains("城关镇"), "the report names the township");
    assert!(files.iter().filter(|(n, _)| n.starts_with("xl/worksheets/sheet")).count() >= 1);
    // Without the cookie: sent to sign in, no file.
    let r = http("GET", &href, &[], b"");
    assert_eq!((r.status, r.header("location")), (303, vec!["/"]));
    // A form posted without the CSRF token is refused.
    let r = http(
        "POST",
        &format!("{base}/web/reports/t01/{month}/submit"),
        &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
        b"narrative=x",
    );
    assert_eq!(r.status, 403, "no CSRF token");
    d.screenshot("report");

    // Submit it.
    d.type_into("#narrative", "本月全镇网格运行正常，一起土地纠纷已上报乡镇。");
    d.click("#submit");
    wait_until(|| d.count("#confirm-submit") == 1, "confirmation page");
    d.click("#confirm-submit");
    wait_until(|| d.count("#narrative-submitted") == 1, "report submitted");
    let status = d.text("#submission");
    assert!(status.contains("报送") && !status.contains("未报送"), "submitted: {status}");
    assert_eq!(d.count("#submit"), 0, "no second submission");
    let subs = gridsync_server::reports::submissions(
        admin,
        &gridsync_core::grid::GridPath::parse("t01").unwrap(),
        month,
        gridsync_server::clock::now_ms(),
    )
    .unwrap();
    assert!(subs.townships[0].submitted_at.is_some(), "the server holds the submitted report");
    sign_out(&d);
    let r = http("GET", &format!("{base}/web"), &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 303, "the session ended at sign-out");

    // A grid manager of 站儿巷镇 (t02) is refused 城关镇's pages.
    sign_in(&d, base, "gm-t02-v01-g1");
    for page in
        ["/web/t/t01", "/web/t/t01/v01", &format!("/web/disputes/{dispute_id}"), &format!("/web/reports/t01/{month}")]
    {
        d.goto(&format!("{base}{page}"));
        assert!(d.text("#error").starts_with("403"), "{page} is refused");
        let gm_cookie = format!("gs_session={}", d.cookie("gs_session").unwrap());
        assert_eq!(http("GET", &format!("{base}{page}"), &[("Cookie", &gm_cookie)], b"").status, 403, "{page}");
    }
    d.screenshot("forbidden");
    d.goto(&format!("{base}/web/t/t02"));
    assert!(d.source().contains("站儿巷镇"), "but sees their own township");
    sign_out(&d);

    // The village leader opens the household ledger (audited).
    sign_in(&d, base, "vl-t01-v01");
    d.click(&format!("a[href=\"/web/households/{household_id}\"]"));
    wait_until(|| d.current_url().contains("/web/households/"), "household page");
    assert!(d.count("#members tr") >= 2, "members listed");
    sign_out(&d);

    // County staff: the overview and the audit log with that view.
    sign_in(&d, base, "county-admin");
    assert_eq!(d.count("#townships tr"), 1 + 12);
    d.screenshot("overview");
    d.goto(&format!("{base}/web/audit"));
    let rows = d.text("#audit");
    assert!(
        rows.lines()
            .any(|l| l.contains("vl-t01-v01") && l.contains("查看户籍台账") && l.contains(&household_id.to_string())),
        "the household view is in the audit log: {rows}"
    );
    assert!(rows.contains("提交月度报告") && rows.contains("下载月度报告"));
    d.screenshot("audit");
    d.goto(&format!("{base}/web/devices"));
    assert!(d.count("#devices tr") >= 3, "both phones listed");
    sign_out(&d);
}

/// Five wrong passwords lock the account for 15 minutes, even against the
/// right one; sign-in needs the form's CSRF token. Plain HTTP, no browser.
#[test]
fn sign_in_lockout_and_csrf() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    admin.set_web_password("tc-t01-1", &password::hash(PASSWORD).unwrap(), 0).unwrap();
    let server = ServerProc::start(db).unwrap();
    let base = server.url();
    let attempt = |pw: &str, with_token: bool| -> Resp {
        let page = http("GET", &format!("{base}/"), &[], b"");
        let set = page.header("set-cookie");
        let pre = set.iter().find_map(|c| c.strip_prefix("gs_pre=")).unwrap().split(';').next().unwrap().to_owned();
        let token = if with_token { pre.clone() } else { "wrong".into() };
        let body = format!("csrf={token}&user=tc-t01-1&password={}", pw.replace('!', "%21"));
        http(
            "POST",
            &format!("{base}/signin"),
            &[("Cookie", &format!("gs_pre={pre}")), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    };
    assert_eq!(attempt(PASSWORD, false).status, 403, "no CSRF token, no sign-in");
    let ok = attempt(PASSWORD, true);
    assert_eq!(ok.status, 303);
    let cookie = ok.header("set-cookie").into_iter().find(|c| c.starts_with("gs_session=")).unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} has {attr}");
    }
    for _ in 0..5 {
        assert_eq!(attempt("wrong-password", true).status, 401);
    }
    let locked = attempt(PASSWORD, true);
    assert_eq!(locked.status, 401);
    assert!(locked.text().contains("锁定"), "locked out");
    let log = admin.audit_log(&gridsync_server::store::AuditQuery { limit: 100, ..Default::default() }).unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "sign_in_failed").count(), 5);
    assert!(log.iter().any(|e| e.action == "sign_in_locked"));
}
