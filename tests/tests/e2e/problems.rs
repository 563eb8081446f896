//! What a phone sends to be logged or counted (`POST /v1/problems`) and
//! what it may look up (`GET /v1/directory`), tried as a hostile phone
//! would, against a real server process whose log goes to a file. Every
//! case runs on SQLite and on PostgreSQL.

use gridsync_core::protocol::Directory;
use gridsync_tests::device::{Device, RawClient};
use gridsync_tests::records::{hazard, patrol};
use gridsync_tests::server::{Admin, Db, ServerProc, blocking, issue_code, postgres_db, seed_demo};
use uuid::Uuid;

on_both_backends!(with_dir:
    a_phone_cannot_flood_the_log_forge_a_line_or_inflate_the_alarm,
    an_agency_directory_names_no_grid_manager,
    grid_paths_are_normalised_at_every_door,
);

/// The demo county on a real server logging to `dir/server.log`.
struct Town {
    server: ServerProc,
    admin: Admin,
    log: std::path::PathBuf,
}

impl Town {
    async fn start(db: Db, dir: &std::path::Path) -> Town {
        let admin = Admin::open(&db);
        blocking(|| seed_demo(admin.as_ref()).unwrap());
        let log = dir.join("server.log");
        let server = ServerProc::start_logging_to(db, &log).unwrap();
        Town { server, admin, log }
    }

    async fn phone(&self, user: &str) -> Device {
        let code = blocking(|| issue_code(self.admin.as_ref(), user).unwrap());
        Device::enroll(&self.server.url(), &code).await.unwrap()
    }

    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }
}

fn token(d: &Device) -> String {
    d.store().enrollment().unwrap().unwrap().token
}

async fn set_aside_counted(url: &str) -> u64 {
    let metrics = RawClient::new().get_text(&format!("{url}/metrics")).await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gridsync_phone_records_set_aside_total "))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A grid manager's phone reports its own hazard with a reason that
/// carries a forged log line, a neighbouring group's patrol and a record
/// that does not exist, then floods `/v1/problems` with full reports for
/// two seconds. The forged line never appears as a line of its own; the
/// record it may not read is ignored (and its reason never logged); the
/// flood is refused with 429 and `Retry-After` after a small burst, the
/// log grows by a few lines, not megabytes, and the alarm counter counts
/// the one (record, device) pair once. The operator finds it stored,
/// counted, on the devices page.
async fn a_phone_cannot_flood_the_log_forge_a_line_or_inflate_the_alarm(db: Db, dir: &std::path::Path) {
    let t = Town::start(db, dir).await;
    let mut gm = t.phone("gm-t01-v01-g1").await;
    let mut other = t.phone("gm-t01-v01-g2").await;
    let hz = hazard(&gm.grid, &gm.user, 0);
    gm.create(&hz).unwrap();
    gm.sync().await.unwrap();
    let theirs = patrol(&other.grid, &other.user, 0, gridsync_core::model::PatrolSlot::Morning);
    other.create(&theirs).unwrap();
    other.sync().await.unwrap();
    let url = t.server.url();
    let client = reqwest::Client::new();
    let tok = token(&gm);
    let post = |body: serde_json::Value| {
        client
            .post(format!("{url}/v1/problems"))
            .bearer_auth(&tok)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
    };

    let before = t.log_bytes();
    let forged = "bad heads\n2026-12-08T04:00:00.000000Z ERROR gridsync_server::api: FORGED-LINE\r\x1b[2K";
    let first = post(serde_json::json!({"set_aside": [
        {"doc": hz.id.to_string(), "reason": forged},
        {"doc": theirs.id.to_string(), "reason": "NOT-MINE-SECRET"},
        {"doc": Uuid::new_v4().to_string(), "reason": "no such record"},
    ]}))
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    let answer: serde_json::Value = serde_json::from_slice(&first.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (answer["received"].as_u64(), answer["new"].as_u64(), answer["ignored"].as_u64()),
        (Some(3), Some(1), Some(2)),
        "{answer}"
    );

    // The flood: full reports (1,000 records: the hazard and 999 others)
    // as fast as one connection sends them, for two seconds at most.
    let mut flood: Vec<serde_json::Value> = vec![serde_json::json!({"doc": hz.id.to_string(), "reason": forged})];
    flood.extend((0..999).map(|_| serde_json::json!({"doc": Uuid::new_v4().to_string(), "reason": "x\ny"})));
    let body = serde_json::json!({ "set_aside": flood });
    let (mut taken, mut refused) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for _ in 0..2_000 {
        if started.elapsed() > std::time::Duration::from_secs(2) {
            break;
        }
        let r = post(body.clone()).await.unwrap();
        match r.status().as_u16() {
            200 => taken += 1,
            429 => {
                let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait >= 1, "Retry-After {wait}");
                let e: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                assert_eq!(e["error"], "too_many_reports");
                assert!(e["message_zh"].as_str().unwrap().contains("稍后"), "{e}");
                refused += 1;
            }
            s => panic!("status {s}"),
        }
    }
    assert!(taken <= 10, "{taken} full reports taken in two seconds from one device");
    assert!(refused >= 10, "the flood was not refused: {refused} refused, {taken} taken");

    // Give the logger a moment to write what it has.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let grown = t.log_bytes() - before;
    eprintln!("the log grew by {grown} bytes over {} reports ({taken} taken, {refused} refused)", taken + refused + 1);
    assert!(grown < 16 * 1024, "the log grew by {grown} bytes from {} reports", taken + refused + 1);
    let log = std::fs::read_to_string(&t.log).unwrap();
    for line in log.lines().filter(|l| l.contains("FORGED-LINE")) {
        assert!(line.contains("a phone set a record aside") && line.contains("\\n"), "forged or unescaped: {line:?}");
    }
    assert!(!log.lines().any(|l| l.starts_with("2026-12-08T04:00:00")), "a forged line:\n{log}");
    assert!(!log.contains('\x1b'), "an escape sequence reached the log");
    assert!(!log.contains("NOT-MINE-SECRET"), "the reason of a record the device may not read was logged");
    assert_eq!(log.matches("a phone set a record aside").count(), 1, "{log}");

    assert_eq!(set_aside_counted(&url).await, 1, "one (record, device) pair, counted once");
    let stored = blocking(|| t.admin.problem_reports(100).unwrap());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!((stored[0].doc_id, stored[0].count as u64), (hz.id, 1 + taken));
    assert_eq!(stored[0].reason, forged);
    assert!(stored[0].last_seen >= stored[0].first_seen);

    // County staff see it on the devices page, the reason escaped.
    let page = blocking(|| {
        let (cookie, _) = gridsync_tests::bed::web_session(t.admin.as_ref(), "county-admin");
        gridsync_tests::http1::http("GET", &format!("{url}/web/devices"), &[("Cookie", &cookie)], b"")
    });
    assert_eq!(page.status, 200);
    let page = String::from_utf8(page.body).unwrap();
    let table = &page[page.find("id=\"set-aside\"").expect("the set-aside table")..];
    assert!(table.contains(&hz.id.to_string()) && table.contains("bad heads\\n2026"), "{table}");
    assert!(!table.contains("bad heads\n") && !table.contains('\x1b'), "unescaped on the page");
    assert!(table.contains(&format!("<td>{}</td></tr>", 1 + taken)), "the count: {table}");
    assert!(!table.contains(&theirs.id.to_string()), "an ignored record is listed");
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
}

/// Agency staff (县直部门) read no records, only the county's four-none
/// counts by village: their directory names the villages and the county
/// staff, and none of the county's grid managers, village leaders,
/// supervisors or chiefs. A grid manager's still names the colleagues in
/// his records and not a neighbouring group's manager.
async fn an_agency_directory_names_no_grid_manager(db: Db, dir: &std::path::Path) {
    let t = Town::start(db, dir).await;
    let police = t.phone("police").await;
    let gm = t.phone("gm-t01-v01-g1").await;
    let get = |d: &Device| {
        let (url, tok) = (format!("{}/v1/directory", t.server.url()), token(d));
        async move {
            let r = reqwest::Client::new().get(url).bearer_auth(tok).send().await.unwrap();
            assert_eq!(r.status(), 200);
            serde_json::from_slice::<Directory>(&r.bytes().await.unwrap()).unwrap()
        }
    };
    let d = get(&police).await;
    let roles: Vec<&str> = d.users.iter().map(|u| u.role.as_str()).collect();
    for role in ["grid_manager", "village_leader", "supervisor", "township_chief"] {
        assert!(!roles.contains(&role), "the police read the {role}s' names: {roles:?}");
    }
    assert!(d.users.iter().any(|u| u.id == "county-admin"), "{:?}", d.users);
    assert!(d.users.len() <= 10, "{} names", d.users.len());
    let grids: Vec<&str> = d.grids.iter().map(|g| g.id.as_str()).collect();
    assert!(grids.contains(&"t01/v01") && grids.contains(&"t12"), "the villages they count: {grids:?}");

    let mine = get(&gm).await;
    let ids: Vec<&str> = mine.users.iter().map(|u| u.id.as_str()).collect();
    assert!(ids.contains(&"vl-t01-v01") && ids.contains(&"county-admin"), "{ids:?}");
    assert!(!ids.contains(&"gm-t01-v01-g2") && !ids.contains(&"gm-t02-v01-g1"), "{ids:?}");
}

/// A grid path typed with spaces around it and its codes (a full-width
/// one too) is stored normalised, through the command line and the
/// dashboard's user form alike; an empty level is refused in Chinese.
async fn grid_paths_are_normalised_at_every_door(db: Db, dir: &std::path::Path) {
    let t = Town::start(db.clone(), dir).await;
    let out = blocking(|| {
        gridsync_tests::server::admin_command(
            &db,
            &[
                "add-user",
                "--id",
                "gm-cli",
                "--name",
                " 新来的 ",
                "--role",
                "grid_manager",
                "--grid",
                " t01 / v01 /g1\u{3000}",
            ],
        )
    });
    assert!(out.is_ok(), "{out:?}");
    let u = blocking(|| t.admin.user("gm-cli").unwrap().unwrap());
    assert_eq!((u.grid.to_string(), u.display_name.as_str()), ("t01/v01/g1".to_owned(), "新来的"));

    let url = t.server.url();
    let post = |grid: &str| {
        let (cookie, csrf) = gridsync_tests::bed::web_session(t.admin.as_ref(), "county-admin");
        let form = format!(
            "csrf={csrf}&id=gm-web&name=%E6%96%B0%E4%BA%BA&role=grid_manager&grid={}&agency=&password=",
            grid.replace(' ', "+").replace('/', "%2F")
        );
        gridsync_tests::http1::http(
            "POST",
            &format!("{url}/web/users"),
            &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    };
    let refused = blocking(|| post("t01//g1"));
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("空的一级"), "{}", String::from_utf8_lossy(&refused.body));
    let taken = blocking(|| post(" t01 / v01 / g1 "));
    assert_eq!(taken.status, 303, "{}", String::from_utf8_lossy(&taken.body));
    let u = blocking(|| t.admin.user("gm-web").unwrap().unwrap());
    assert_eq!(u.grid.to_string(), "t01/v01/g1");
}
