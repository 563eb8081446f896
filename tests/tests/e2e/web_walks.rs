//! The township office and the county centre acting on the web, in a real
//! browser (headless Chromium, driven as in [`crate::browser`]): each walk
//! asserts what the page then shows, and that a phone receives the web's
//! change at its next sync.

use gridsync_core::model::{DisputeAction, DisputeLevel, DisputeStatus, Record, RecordBody, RecordKind};
use gridsync_server::dashboard::password;
use gridsync_server::store::ServerStore;
use gridsync_tests::device::Device;
use gridsync_tests::http1::http;
use gridsync_tests::records::{DAY0, dispute, dispute_act};
use gridsync_tests::server::{Db, ServerProc, issue_code, seed_demo};

use crate::browser::{Driver, PASSWORD, browser_available, seed_month, sign_in, sign_out, wait_until};

/// A record as the phone holds it.
fn on_phone(d: &Device, id: uuid::Uuid) -> Option<Record> {
    let json = d.records().unwrap().remove(&id)?;
    Some(Record::from_json(&json).unwrap())
}

fn dispute_status(d: &Device, id: uuid::Uuid) -> Option<DisputeStatus> {
    match on_phone(d, id)?.body {
        RecordBody::Dispute(x) => Some(x.state().status),
        _ => None,
    }
}

fn start(users: &[&str]) -> (tempfile::TempDir, std::sync::Arc<dyn ServerStore>, ServerProc) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    for u in users {
        admin.set_web_password(u, &password::hash(PASSWORD).unwrap(), 0).unwrap();
    }
    let server = ServerProc::start(db).unwrap();
    (dir, admin, server)
}

/// A township chief handles a dispute the village escalated: sets a plan
/// and team, records the monthly review, settles the conflict between the
/// web's resolution and a stabilisation their own phone recorded offline
/// by choosing the event to keep, drafts, confirms and submits the monthly
/// report (the current month is refused), and sees it sent back by the
/// county with a reason; the village's phones receive every step.
#[test]
fn a_township_chief_handles_an_escalated_dispute_reviews_and_reports() {
    if !browser_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, admin, server) = start(&["tc-t01-1", "county-admin"]);
    let base = server.url();
    let enroll = |user: &str| rt.block_on(Device::enroll(&base, &issue_code(admin.as_ref(), user).unwrap())).unwrap();
    let mut gm = enroll("gm-t01-v01-g1");
    let mut vl = enroll("vl-t01-v01");
    let mut tc = enroll("tc-t01-1");

    // The grid manager finds a dispute; the village escalates it.
    let rec = dispute(&gm.grid, &gm.user, 1);
    gm.create(&rec).unwrap();
    rt.block_on(gm.sync()).unwrap();
    rt.block_on(vl.sync()).unwrap();
    let vl_user = vl.user.clone();
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
    rt.block_on(vl.sync()).unwrap();
    rt.block_on(tc.sync()).unwrap();

    let d = Driver::start();
    sign_in(&d, &base, "tc-t01-1");
    d.click(&format!("a[href=\"/web/disputes/{}\"]", rec.id));
    wait_until(|| d.current_url().contains("/web/disputes/"), "dispute page");
    assert_eq!((d.text("#status").as_str(), d.text("#level").as_str()), ("已上报", "乡镇级"));
    // The chief handles the township level: plan, resolve, escalate to the
    // county; classifying is theirs too. Nothing of the village's.
    for form in ["#form-classified", "#form-plan_set", "#form-stabilized", "#form-resolved", "#form-escalated"] {
        assert_eq!(d.count(form), 1, "{form} offered");
    }
    assert!(d.text("#form-escalated").contains("县级"));
    d.type_into("#plan", "由镇司法所牵头，组织双方现场勘界");
    d.type_into("#team", "王建国、李秀英，司法所张明");
    d.screenshot("dispute-actions");
    d.click("#do-plan_set");
    wait_until(|| d.try_text("#status").as_deref() == Some("化解中"), "plan recorded");
    let timeline = d.text("#timeline");
    assert!(timeline.contains("制定化解方案") && timeline.contains("王建国、李秀英、司法所张明"), "{timeline}");
    assert_eq!(d.count("#timeline li"), 3);
    // The village's phones receive the plan.
    rt.block_on(gm.sync()).unwrap();
    assert_eq!(dispute_status(&gm, rec.id), Some(DisputeStatus::InProgress), "the grid manager's phone has the plan");

    // The monthly review: this week's village meetings, and the escalated
    // dispute reviewed.
    d.goto(&format!("{base}/web/t/t01"));
    d.click("#reviews-link");
    wait_until(|| d.current_url().ends_with("/web/reviews/t01"), "reviews page");
    assert_eq!(d.count("#weekly-meetings tr"), 1 + 11, "every village of 城关镇 listed");
    assert!(d.text("#weekly-meetings").contains("未召开"));
    assert_eq!(
        d.attr(&format!("input[value=\"{}\"]", rec.id), "checked"),
        "true",
        "an escalated dispute is preselected"
    );
    d.type_into("#attendees", "王建国、李秀英、张明");
    d.type_into("#decisions", "土地纠纷由司法所牵头勘界，月底前化解。");
    d.screenshot("review");
    d.click("#save-review");
    wait_until(|| d.count("#reviews .review") == 1, "review recorded");
    let review = d.text("#reviews");
    assert!(review.contains("司法所牵头勘界") && review.contains("土地纠纷"), "{review}");
    rt.block_on(tc.sync()).unwrap();
    assert_eq!(tc.ids(RecordKind::TownshipReview).unwrap().len(), 1, "the chief's phone has the review");

    // The figures as pages, each also as XLSX.
    d.goto(&format!("{base}/web/t/t01"));
    d.click("#figures-link");
    wait_until(|| d.count("#report-table-0") == 1, "weekly summary");
    assert!(d.text("#title").contains("周小结"));
    assert_eq!(d.count("#report-table-0 tr"), 1 + 44 + 1, "城关镇's 44 groups and the total");
    d.screenshot("figures-weekly");
    d.goto(&format!("{base}/web/figures/coverage?grid=t01/v01"));
    assert!(d.text("#report-table-0").contains("缺早巡天数"));
    d.screenshot("figures-coverage");
    d.goto(&format!("{base}/web/figures/backlog?grid=t01&days=7"));
    assert!(
        d.text("#title").contains("1件"),
        "the escalated dispute is a backlog case after 7 days: {}",
        d.text("#title")
    );
    d.screenshot("figures-backlog");
    let href = format!("{base}{}", d.attr("#download", "href"));
    let cookie = format!("gs_session={}", d.cookie("gs_session").unwrap());
    let r = http("GET", &href, &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200, "{href}");
    let files = crate::browser::unzip(&r.body);
    let strings =
        files.iter().find(|(n, _)| n == "xl/sharedStrings.xml").map(|f| String::from_utf8_lossy(&f.1).into_owned());
    assert!(strings.is_some_and(|s| s.contains("未化解天数") && s.contains(&rec.id.to_string())), "the backlog XLSX");

    // Offline, the chief's phone records a stabilisation, while on the web
    // the chief records the resolution: a conflict.
    let tc_user = tc.user.clone();
    let now = gridsync_server::clock::now_ms();
    tc.store()
        .edit(rec.id, now, |r| dispute_act(r, &tc_user, now, DisputeAction::Stabilized { note: "安排专人稳控".into() }))
        .unwrap();
    d.goto(&format!("{base}/web/disputes/{}", rec.id));
    d.type_into("#resolved-note", "双方签订勘界协议，纠纷化解");
    d.click("#do-resolved");
    wait_until(|| d.try_text("#status").as_deref() == Some("已化解"), "resolved on the web");
    rt.block_on(tc.sync()).unwrap();
    d.goto(&format!("{base}/web/disputes/{}", rec.id));
    assert_eq!(d.text("#status"), "待裁定");
    let conflicts = d.text("#conflicts");
    assert!(
        conflicts.contains("化解：双方签订勘界协议，纠纷化解") && conflicts.contains("稳控管理：安排专人稳控"),
        "both events shown by what they say: {conflicts}"
    );
    d.screenshot("dispute-conflict");
    let stored = admin.record(rec.id).unwrap().unwrap();
    let resolved_id = stored.json["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"]["type"] == "resolved")
        .and_then(|e| e["id"].as_str())
        .unwrap()
        .to_owned();
    d.click(&format!("button[data-kept=\"{resolved_id}\"]"));
    wait_until(|| d.try_text("#status").as_deref() == Some("已化解"), "settled");
    assert_eq!(d.count("#conflicts"), 0);
    assert_eq!(d.count("#timeline li.overruled"), 1);
    assert!(d.text("#timeline li.overruled").contains("稳控管理"), "the stabilisation is marked overruled");
    assert!(d.text("#timeline").contains("保留：化解：双方签订勘界协议"), "the settlement names what it kept");
    d.screenshot("dispute-settled");
    rt.block_on(gm.sync()).unwrap();
    assert_eq!(
        dispute_status(&gm, rec.id),
        Some(DisputeStatus::Resolved),
        "the grid manager's phone has the settlement"
    );

    // The monthly report: this month is refused; last month is drafted,
    // confirmed and submitted.
    let month = seed_month();
    d.goto(&format!("{base}/web/reports/t01/2026-12"));
    assert_eq!(d.count("#not-over"), 1, "a month not over cannot be submitted");
    let csrf = d.attr("input[name=csrf]", "value");
    let cookie = format!("gs_session={}", d.cookie("gs_session").unwrap());
    let form = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("csrf={csrf}&narrative=x");
    let r = http("POST", &format!("{base}/web/reports/t01/2026-12/confirm"), &form, body.as_bytes());
    assert_eq!(r.status, 400);
    assert!(r.text().contains("尚未结束"), "{}", r.text());
    d.goto(&format!("{base}/web/reports/t01/{month}"));
    d.type_into("#narrative", "本月全镇网格运行正常，一起土地纠纷经月研判后化解。");
    d.click("#save-draft");
    wait_until(|| d.try_text("#submission").is_some_and(|t| t.contains("草稿")), "draft saved");
    assert!(d.source().contains("一起土地纠纷经月研判后化解"), "the draft is kept");
    d.screenshot("report-draft");
    d.click("#submit");
    wait_until(|| d.count("#confirm-submit") == 1, "confirmation page");
    assert!(d.text("#confirm-narrative").contains("一起土地纠纷"));
    let found = d.text("#confirm-figures");
    assert!(found.contains("新排查矛盾纠纷"), "{found}");
    d.screenshot("report-confirm");
    d.click("#confirm-submit");
    wait_until(|| d.count("#narrative-submitted") == 1, "submitted");
    assert_eq!(d.text("#submission"), "按时报送");
    assert!(d.text("#narrative-submitted").contains("一起土地纠纷"));
    // Each figure as submitted, beside what the records say now.
    let found = |d: &Driver, column: usize| -> String {
        d.text(&format!("#submitted-figures tr[data-figure='disputes.found'] td:nth-child({column})"))
    };
    assert_eq!((found(&d, 2), found(&d, 3)), ("1".to_owned(), "1".to_owned()));
    assert_eq!(d.count("#figures-unchanged"), 1);
    d.screenshot("report-submitted");
    rt.block_on(tc.sync()).unwrap();
    let report = tc.ids(RecordKind::MonthlyReport).unwrap();
    assert_eq!(report.len(), 1, "the chief's phone has the report");
    // A dispute found later in the month changes the records, not what
    // was submitted.
    gm.create(&dispute(&gm.grid, &gm.user, 10)).unwrap();
    rt.block_on(gm.sync()).unwrap();
    d.goto(&format!("{base}/web/reports/t01/{month}"));
    assert_eq!(found(&d, 2), "1", "figures as submitted");
    assert_eq!(
        (found(&d, 3), found(&d, 4)),
        ("2".to_owned(), "+1".to_owned()),
        "the records now, the difference marked"
    );
    assert!(d.text("#figures-changed").contains("1项"), "{}", d.text("#figures-changed"));
    sign_out(&d);

    // The county sends it back for correction.
    sign_in(&d, &base, "county-admin");
    d.goto(&format!("{base}/web/reports/t01/{month}"));
    d.type_into("#return-reason", "积案数与司法局台账不一致，请核实后重报");
    d.click("#return");
    wait_until(|| d.count("#returned") == 1, "returned");
    assert_eq!(d.text("#submission"), "已退回修改");
    assert!(d.text("#returned").contains("积案数与司法局台账不一致"));
    d.screenshot("report-returned");
    sign_out(&d);
    rt.block_on(tc.sync()).unwrap();
    match on_phone(&tc, report[0]).unwrap().body {
        RecordBody::MonthlyReport(m) => {
            assert!(m.submitted_at.is_none());
            assert_eq!(m.returned.map(|r| r.reason).as_deref(), Some("积案数与司法局台账不一致，请核实后重报"));
        }
        other => panic!("{other:?}"),
    }

    // The chief corrects and submits again; the reason stays shown.
    sign_in(&d, &base, "tc-t01-1");
    d.goto(&format!("{base}/web/reports/t01/{month}"));
    d.type_into("#narrative", "（已核实积案数）");
    d.click("#submit");
    wait_until(|| d.count("#confirm-submit") == 1, "confirmation page");
    d.click("#confirm-submit");
    wait_until(|| d.count("#narrative-submitted") == 1, "submitted again");
    assert_eq!(d.text("#submission"), "按时报送");
    assert!(d.text("#narrative-submitted").contains("已核实积案数"));
    assert_eq!(d.count("#returned"), 1, "the county's reason stays on the report");
    sign_out(&d);
    drop(server);
}

/// Escalate a dispute of `vl`'s village up to the county: the village
/// leader sends it to the township, the chief's phone to the county.
fn escalate_to_county(rt: &tokio::runtime::Runtime, gm: &mut Device, vl: &mut Device, tc: &mut Device) -> uuid::Uuid {
    let rec = dispute(&gm.grid, &gm.user, 2);
    gm.create(&rec).unwrap();
    rt.block_on(gm.sync()).unwrap();
    for (d, to) in [(vl, DisputeLevel::Township), (tc, DisputeLevel::County)] {
        rt.block_on(d.sync()).unwrap();
        let (user, at) = (d.user.clone(), gridsync_server::clock::now_ms());
        d.store()
            .edit(rec.id, at, |r| {
                dispute_act(r, &user, at, DisputeAction::Escalated { to, note: "本级无法化解".into() })
            })
            .unwrap();
        rt.block_on(d.sync()).unwrap();
    }
    rec.id
}

/// A county clerk creates a village leader, sets their password, issues an
/// enrollment code (text and QR code) that a phone enrolls with, sees the
/// phone on the devices page with its village, resolves a county-level
/// dispute that the new phone then receives, and deactivates the account:
/// the phone is refused and sign-in is too; every step is in the audit log.
#[test]
fn a_county_clerk_creates_a_user_and_enrolls_a_phone() {
    if !browser_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, admin, server) = start(&["county-admin"]);
    let base = server.url();
    let enroll = |user: &str| rt.block_on(Device::enroll(&base, &issue_code(admin.as_ref(), user).unwrap())).unwrap();
    let (mut gm, mut vl, mut tc) = (enroll("gm-t01-v02-g1"), enroll("vl-t01-v02"), enroll("tc-t01-1"));
    let county_case = escalate_to_county(&rt, &mut gm, &mut vl, &mut tc);
    let village = admin.grid_nodes().unwrap().into_iter().find(|n| n.path.to_string() == "t01/v02").unwrap().name;

    let d = Driver::start();
    sign_in(&d, &base, "county-admin");
    d.click("a[href=\"/web/users\"]");
    wait_until(|| d.count("#new-user") == 1, "users page");
    d.type_into("#new-id", "vl2-t01-v02");
    d.type_into("#new-name", "赵海燕");
    d.click("#new-role option[value=village_leader]");
    d.type_into("#new-grid", "t01/v02");
    d.type_into("#new-password", "两当县新村长2026冬");
    d.screenshot("users");
    d.click("#create-user");
    wait_until(|| d.current_url().ends_with("/web/users/vl2-t01-v02"), "user page");
    assert_eq!(d.text("#role"), "网格长");
    assert_eq!(d.text("#grid"), format!("城关镇 · {village}"));
    assert!(admin.web_password("vl2-t01-v02").unwrap().is_some(), "the first password is set");
    // A wrong grid for the role is refused with the reason.
    d.goto(&format!("{base}/web/users"));
    d.type_into("#new-id", "gm-bad");
    d.type_into("#new-name", "错误");
    d.type_into("#new-grid", "t01/v02");
    d.click("#create-user");
    wait_until(|| d.count("#error") == 1, "refused");
    assert!(d.text("#error").starts_with("400") && d.source().contains("组"), "{}", d.source());

    // The enrollment code, as text and as a QR code, enrolls a phone.
    d.goto(&format!("{base}/web/users/vl2-t01-v02"));
    d.click("#issue-code");
    wait_until(|| d.count("#enroll-code") == 1, "code issued");
    let code = d.text("#enroll-code");
    assert_eq!(code.len(), 14, "{code}");
    assert_eq!(d.count("#qr svg path"), 1, "the QR code is drawn in the page");
    assert!(d.text("#enrollment").contains(&base), "the page names the server the phone should use");
    d.screenshot("user-enroll");
    let mut phone = rt.block_on(Device::enroll(&base, &code)).unwrap();
    assert_eq!((phone.user.as_str(), phone.grid.to_string().as_str()), ("vl2-t01-v02", "t01/v02"));
    d.goto(&format!("{base}/web/devices"));
    let row = d.text("#devices").lines().find(|l| l.contains("赵海燕")).unwrap_or_default().to_owned();
    assert!(row.contains("尚未同步") && !row.contains("未同步（") && row.contains(&village), "{row}");
    assert!(!row.contains("超过"), "a phone that never synced is new, not stale: {row}");
    rt.block_on(phone.sync()).unwrap();
    d.goto(&format!("{base}/web/devices"));
    let row = d.text("#devices").lines().find(|l| l.contains("赵海燕")).unwrap_or_default().to_owned();
    assert!(row.contains("正常"), "{row}");
    d.screenshot("devices");

    // The county resolves the county-level dispute; the new phone gets it.
    d.goto(&format!("{base}/web/disputes/{county_case}"));
    assert_eq!(d.text("#level"), "县级");
    assert_eq!(d.count("#form-escalated"), 0, "nothing above the county");
    d.type_into("#resolved-note", "县综治中心协调相关部门化解");
    d.click("#do-resolved");
    wait_until(|| d.try_text("#status").as_deref() == Some("已化解"), "resolved");
    rt.block_on(phone.sync()).unwrap();
    assert_eq!(dispute_status(&phone, county_case), Some(DisputeStatus::Resolved), "the new phone has the resolution");

    // Reset the password, then deactivate: the phone is told to wipe.
    d.goto(&format!("{base}/web/users/vl2-t01-v02"));
    d.type_into("#reset-password", "123");
    d.click("#do-reset");
    wait_until(|| d.count("#error") == 1, "weak password refused");
    assert!(d.text("#error").starts_with("400"));
    d.goto(&format!("{base}/web/users/vl2-t01-v02"));
    d.type_into("#reset-password", "云屏山下的第二个春天");
    d.click("#do-reset");
    // The user's page again, saying so: waiting for the button alone would
    // find the one on the page being left.
    wait_until(|| d.try_text("#notice").is_some_and(|t| t.contains("密码已重置")), "reset");
    d.click("#toggle-active");
    wait_until(|| d.try_text("#state").as_deref() == Some("已停用"), "deactivated");
    assert!(rt.block_on(phone.sync()).is_err(), "a deactivated user's phone is refused");
    d.goto(&format!("{base}/web/audit"));
    let log = d.text("#audit");
    for action in ["新建用户", "生成注册码", "重置密码", "停用账号"] {
        assert!(log.lines().any(|l| l.contains(action) && l.contains("vl2-t01-v02")), "{action} audited: {log}");
    }
    sign_out(&d);
    d.goto(&format!("{base}/"));
    d.type_into("#user", "vl2-t01-v02");
    d.type_into("#password", "云屏山下的第二个春天");
    d.click("#signin");
    wait_until(|| d.count("#message") == 1, "sign-in refused");
    assert!(d.text("#message").contains("已停用"));
    drop(server);
}

/// The police bureau enters its public-security counts on the form and as
/// a CSV upload (another agency's kind is refused), then sees the
/// four-none page say which villages have no count yet; a village
/// leader's phone reads the new figure at its next request, and the
/// reports API takes the dashboard's session too.
#[test]
fn an_agency_enters_its_counts_and_sees_the_four_none_page() {
    if !browser_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, admin, server) = start(&["police"]);
    let base = server.url();
    let vl = rt.block_on(Device::enroll(&base, &issue_code(admin.as_ref(), "vl-t01-v01").unwrap())).unwrap();
    let year = gridsync_core::model::beijing_day(gridsync_server::clock::now_ms()).to_string()[..4].to_owned();

    let d = Driver::start();
    sign_in(&d, &base, "police");
    d.click("#case-counts-link");
    wait_until(|| d.count("#counts-form") == 1, "case counts page");
    assert!(d.text("#title").contains("治安案件"), "the police enter public-security cases only");
    assert_eq!(d.count("#counts tr"), 1 + 121);
    d.type_into("input[name=\"n:t01/v01\"]", "0");
    d.type_into("input[name=\"n:t01/v02\"]", "2");
    d.screenshot("case-counts");
    d.click("#save-counts");
    wait_until(|| d.count("#saved") == 1, "saved");
    assert!(d.text("#saved").contains('2'));
    // A CSV of three more villages.
    let csv = dir.path().join("counts.csv");
    std::fs::write(
        &csv,
        format!("\u{feff}village,year,kind,count\nt01/v03,{year},public_security,0\nt01/v04,{year},public_security,0\nt01/v05,{year},public_security,1\n"),
    )
    .unwrap();
    d.type_into("#csv-file", &csv.display().to_string());
    d.click("#upload");
    wait_until(|| d.try_text("#saved").is_some_and(|t| t.contains('3')), "uploaded");
    // Another agency's kind is not the police's to enter.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("village,year,kind,count\nt01/v06,{year},criminal,0\n")).unwrap();
    d.type_into("#csv-file", &bad.display().to_string());
    d.click("#upload");
    wait_until(|| d.count("#error") == 1, "refused");
    assert!(d.text("#error").starts_with("403") && d.source().contains("只能录入治安案件数"), "{}", d.source());
    assert_eq!(admin.case_counts(year.parse().unwrap()).unwrap().len(), 5, "nothing of the refused file stored");

    // The four-none page says what is missing instead of counting it as met.
    d.goto(&format!("{base}/web/four-none"));
    let missing = d.text("#missing");
    assert!(missing.contains("116个村尚无县公安局录入的治安案件数"), "{missing}");
    assert!(missing.contains("121个村尚无县检察院录入的刑事案件数"), "{missing}");
    let totals = d.text("#four-none-totals");
    let line = totals.lines().find(|l| l.starts_with("无治安案件村")).unwrap_or_default().to_owned();
    assert!(line.contains("3 121 2.5%") && line.contains("≥60%") && line.contains("未达到"), "{line}");
    assert!(d.text("#report-table-0").contains("未录入"));
    d.screenshot("four-none");
    let href = format!("{base}{}", d.attr("#download", "href"));
    let cookie = format!("gs_session={}", d.cookie("gs_session").unwrap());
    let r = http("GET", &href, &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"PK"), "an XLSX");
    // The reports API reads with the session; changes still need a token.
    let r = http("GET", &format!("{base}/v1/reports/four-none/{year}"), &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http(
        "POST",
        &format!("{base}/v1/case-counts"),
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        format!("{{\"village\":\"t01/v09\",\"year\":{year},\"kind\":\"public_security\",\"count\":0}}").as_bytes(),
    );
    assert_eq!(r.status, 401, "no change by cookie alone outside the dashboard's forms");
    sign_out(&d);

    // The village leader's phone reads its village's new line.
    let token = vl.store().enrollment().unwrap().unwrap().token;
    let r = http(
        "GET",
        &format!("{base}/v1/reports/four-none/{year}?grid=t01/v01"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["villages"][0]["public_security_cases"], 0);
    assert_eq!(v["villages"][0]["meets"][0], true);
    drop(server);
}

/// An 8×8 PNG in the grey of an empty map, served as every tile.
const TILE_PNG: [u8; 74] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x00, 0x00, 0x00, 0x4b, 0x6d, 0x29, 0xdc, 0x00, 0x00, 0x00, 0x11, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xb8, 0xfb, 0xec, 0x1d, 0x56, 0xc4, 0x30, 0xb4, 0x24, 0x00, 0x49, 0x75, 0xac,
    0x41, 0x58, 0x59, 0x00, 0xb9, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A tile server on loopback standing in for 天地图: it answers every GET
/// with [`TILE_PNG`] and keeps the paths asked for. It stops by itself
/// after two minutes.
fn tile_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(path) = head.lines().next().and_then(|l| l.split(' ').nth(1)) {
                seen.lock().unwrap().push(path.to_owned());
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                TILE_PNG.len()
            );
            let _ = conn.write_all(&TILE_PNG);
        }
    });
    (url, asked)
}

/// A hazard's status as the phone holds it.
fn hazard_status(d: &Device, id: uuid::Uuid) -> Option<gridsync_core::model::HazardStatus> {
    match on_phone(d, id)?.body {
        RecordBody::Hazard(h) => Some(h.status()),
        _ => None,
    }
}

/// A township chief follows the hazards a grid manager reported: the list
/// shows them open, the chief records a handling step and then the
/// removal on a hazard's page (the grid manager's phone receives both),
/// and the map draws both hazards in their status colours and the day's
/// patrol route over tiles from the configured source, the only outside
/// origin the page may load images from. Without a tile source the map
/// draws a grid of latitude and longitude lines instead.
#[test]
fn a_township_chief_follows_hazards_on_their_page_and_the_map() {
    if !browser_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tiles, asked) = tile_server();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().to_path_buf());
    let admin = db.open().unwrap();
    seed_demo(admin.as_ref()).unwrap();
    admin.set_web_password("tc-t01-1", &password::hash(PASSWORD).unwrap(), 0).unwrap();
    let template = format!("{tiles}/tiles/{{z}}/{{x}}/{{y}}.png");
    let server =
        ServerProc::start_serving(db.clone(), &["--map-tiles", &template, "--map-attribution", "测试底图"]).unwrap();
    let base = server.url();
    let mut gm = rt.block_on(Device::enroll(&base, &issue_code(admin.as_ref(), "gm-t01-v01-g1").unwrap())).unwrap();

    // Two hazards with GPS and today's morning patrol with its route.
    let now = gridsync_server::clock::now_ms();
    let slide = gridsync_tests::records::hazard(&gm.grid, &gm.user, 0);
    let mut fire = gridsync_tests::records::hazard(&gm.grid, &gm.user, 1);
    if let RecordBody::Hazard(h) = &mut fire.body {
        h.category = gridsync_core::model::HazardCategory::Fire;
        h.description = "柴草堆靠近电线。".into();
        h.location.text = "一组打麦场".into();
        h.location.gps = Some(gridsync_core::model::GeoPoint { lat: 33.962, lon: 106.318 });
    }
    let mut patrol = gridsync_tests::records::patrol(&gm.grid, &gm.user, 0, gridsync_core::model::PatrolSlot::Morning);
    if let RecordBody::Patrol(p) = &mut patrol.body {
        p.started_at = now - 2 * 3_600_000;
        p.ended_at = Some(now - 3_600_000);
        p.route = vec![
            gridsync_core::model::GeoPoint { lat: 33.948, lon: 106.296 },
            gridsync_core::model::GeoPoint { lat: 33.955, lon: 106.305 },
            gridsync_core::model::GeoPoint { lat: 33.961, lon: 106.316 },
        ];
    }
    for r in [&slide, &fire, &patrol] {
        gm.create(r).unwrap();
    }
    rt.block_on(gm.sync()).unwrap();

    let d = Driver::start();
    sign_in(&d, &base, "tc-t01-1");
    d.click("#hazards-link");
    wait_until(|| d.count("#hazards") == 1, "hazard list");
    assert_eq!((d.text("#count"), d.text("#open")), ("2".to_owned(), "2".to_owned()));
    assert_eq!(d.count("#hazards tr"), 1 + 2);
    assert!(d.text("#hazards").contains("一组打麦场") && d.text("#hazards").contains("待处置"));
    d.screenshot("hazards");
    d.click(&format!("a[href=\"/web/hazards/{}\"]", slide.id));
    wait_until(|| d.count("#timeline") == 1, "hazard page");
    assert_eq!(d.text("#status"), "待处置");
    assert!(d.text("#gps").contains("33.95000"), "{}", d.text("#gps"));
    d.type_into("#form-step textarea", "已设置警示牌，通知下方三户转移");
    d.click("#do-step");
    wait_until(|| d.try_text("#status").as_deref() == Some("处置中"), "step recorded");
    d.type_into("#form-resolved textarea", "排危完成，裂缝已回填");
    d.screenshot("hazard");
    d.click("#do-resolved");
    wait_until(|| d.try_text("#status").as_deref() == Some("已消除"), "removed");
    assert_eq!(d.count("#form-resolved"), 0, "a removed hazard offers no removal");
    let timeline = d.text("#timeline");
    assert_eq!(d.count("#timeline li"), 3, "{timeline}");
    assert!(timeline.contains("已设置警示牌") && timeline.contains("排危完成"), "{timeline}");
    rt.block_on(gm.sync()).unwrap();
    assert_eq!(
        hazard_status(&gm, slide.id),
        Some(gridsync_core::model::HazardStatus::Resolved),
        "the grid manager's phone has the chief's steps"
    );

    // The map: both hazards in their colours, the route, the tiles.
    d.goto(&format!("{base}/web/map?grid=t01/v01"));
    wait_until(|| d.count("#map") == 1, "map");
    assert_eq!((d.text("#hazard-count"), d.text("#route-count")), ("2".to_owned(), "1".to_owned()));
    assert_eq!(d.count("circle.hazard"), 2);
    assert_eq!(d.attr(&format!("circle[data-id=\"{}\"]", slide.id), "fill"), "#8a949e", "removed: grey");
    assert_eq!(d.attr(&format!("circle[data-id=\"{}\"]", fire.id), "fill"), "#b3261e", "open: red");
    assert_eq!(d.count("polyline.patrol"), 1);
    assert!(d.count("image.tile") >= 1, "tiles drawn");
    assert_eq!(d.text("#attribution"), "底图：测试底图");
    wait_until(|| asked.lock().unwrap().iter().any(|p| p.starts_with("/tiles/")), "the browser fetched a tile");
    d.screenshot("map");
    let cookie = format!("gs_session={}", d.cookie("gs_session").unwrap());
    let r = http("GET", &format!("{base}/web/map?grid=t01/v01"), &[("Cookie", &cookie)], b"");
    let csp = r.header("content-security-policy").concat();
    assert!(csp.contains(&format!("img-src 'self' {tiles}")), "the tile origin, and only it, may serve images: {csp}");
    let r = http("GET", &format!("{base}/web/hazards"), &[("Cookie", &cookie)], b"");
    let csp = r.header("content-security-policy").concat();
    assert!(!csp.contains(&tiles), "other pages load no outside images: {csp}");
    let r = http("GET", &format!("{base}/web/map?days=400"), &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 400, "{}", r.text());
    sign_out(&d);
    drop(server);

    // Without a tile source: the same points over a plain grid.
    let plain = ServerProc::start(db).unwrap();
    let base = plain.url();
    sign_in(&d, &base, "tc-t01-1");
    d.goto(&format!("{base}/web/map?grid=t01/v01"));
    wait_until(|| d.count("#map") == 1, "map");
    assert_eq!(d.count("image.tile"), 0);
    assert_eq!(d.count("circle.hazard"), 2);
    assert!(d.count("g.graticule line") >= 2, "latitude and longitude lines");
    d.screenshot("map-plain");
}
