//! HTTP tests of the supervision reports on the demo county: records go in
//! through `/v1/sync` as the phones would send them, case counts through
//! `/v1/case-counts`, and the reports come out of `/v1/reports/...`.

mod consistency;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use crate::support::*;
use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use chrono::NaiveDate;
use gridsync_core::model::{
    Dispute, DisputeAction, DisputeCategory, DisputeLevel, Hazard, HazardAction, HazardCategory, Location,
    MonthlyReport, Patrol, PatrolSlot, Record, RecordBody, VillageMeeting, Visit, VisitTarget, beijing_midnight_ms,
    next_event,
};
use gridsync_core::protocol::RejectReason;
use gridsync_server::Limits;
use gridsync_server::demo::demo_county;
use gridsync_server::store::User;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Midnight starting a day in March 2024, Beijing time.
fn march(d: u32) -> i64 {
    beijing_midnight_ms(NaiveDate::from_ymd_opt(2024, 3, d).unwrap())
}

fn day(y: i32, m: u32, d: u32) -> i64 {
    beijing_midnight_ms(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

/// A server holding the demo county's grid and people.
async fn county() -> Server {
    let s = Server::in_memory(Limits::default()).await;
    gridsync_server::demo::load(s.store.as_ref()).unwrap();
    s
}

fn demo_user(id: &str) -> User {
    demo_county().users.into_iter().find(|u| u.id == id).unwrap()
}

async fn dev(s: &Server, id: &str) -> Device {
    s.device_for(&demo_user(id)).await
}

async fn get(s: &Server, d: &Device, path: &str) -> Resp {
    s.send(TestRequest::get().uri(path).insert_header(("authorization", format!("Bearer {}", d.token)))).await
}

async fn post(s: &Server, d: &Device, path: &str, ctype: &str, body: impl Into<Vec<u8>>) -> Resp {
    let body: Vec<u8> = body.into();
    s.send(
        TestRequest::post()
            .uri(path)
            .insert_header(("authorization", format!("Bearer {}", d.token)))
            .insert_header(("content-type", ctype.to_owned()))
            .set_payload(body),
    )
    .await
}

/// Push new records; each must be stored.
async fn push_ok(s: &Server, d: &Device, recs: &[Record]) {
    let docs = recs.iter().map(|r| d.doc(r).1).collect();
    let resp = s.push(d, docs).await;
    assert!(resp.rejected.is_empty(), "{} refused: {:?}", d.user.id, resp.rejected);
    assert_eq!(resp.acked.len(), recs.len());
}

fn patrol_at(g: &str, author: &str, slot: PatrolSlot, t: i64) -> Record {
    Record::new(
        grid(g),
        author,
        t,
        RecordBody::Patrol(Patrol {
            slot,
            started_at: t,
            ended_at: Some(t + HOUR),
            route: vec![],
            findings: "正常".into(),
            hazard_ids: BTreeMap::new(),
        }),
    )
}

fn hazard_at(g: &str, author: &str, t: i64, resolved: Option<i64>) -> Record {
    let mut events = vec![next_event(&[], author, t, HazardAction::Reported { note: String::new() })];
    if let Some(r) = resolved {
        let e = next_event(&events, author, r, HazardAction::Resolved { note: "已更换电线".into() });
        events.push(e);
    }
    Record::new(
        grid(g),
        author,
        t,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Fire,
            location: Location { text: "村委会后院".into(), gps: None },
            description: "电线老化".into(),
            events,
        }),
    )
}

fn visit_at(g: &str, author: &str, target: VisitTarget, t: i64) -> Record {
    Record::new(
        grid(g),
        author,
        t,
        RecordBody::Visit(Visit {
            target,
            subject: "李某".into(),
            household_id: None,
            visited_at: t,
            findings: String::new(),
            follow_up_needed: false,
        }),
    )
}

fn dispute_at(g: &str, author: &str, found: i64, resolved: Option<i64>) -> Record {
    let mut events = vec![next_event(&[], author, found, DisputeAction::Found { note: String::new() })];
    if let Some(r) = resolved {
        let e = next_event(&events, author, r, DisputeAction::Resolved { note: "就地化解".into() });
        events.push(e);
    }
    Record::new(
        grid(g),
        author,
        found,
        RecordBody::Dispute(Dispute {
            parties: vec!["张三".into(), "李四".into()],
            category: DisputeCategory::Land,
            summary: "地界纠纷".into(),
            found_at: found,
            events,
        }),
    )
}

fn report(township: &str, author: &str, month: &str, submitted_at: Option<i64>) -> Record {
    Record::new(
        grid(township),
        author,
        submitted_at.unwrap_or(march(25)),
        RecordBody::MonthlyReport(MonthlyReport {
            month: month.into(),
            figures: BTreeMap::from([("patrols.morning".to_owned(), 10)]),
            narrative: "本月社会治安总体平稳".into(),
            submitted_at,
            returned: None,
        }),
    )
}

/// The village leader escalates a dispute the grid manager recorded.
async fn escalate(s: &Server, vl: &Device, doc: &mut gridsync_core::doc::RecordDoc, rec: &Record, at: i64) {
    let mut doc = vl.fork(doc);
    let heads = doc.heads();
    let mut r = doc.record().unwrap();
    if let RecordBody::Dispute(d) = &mut r.body {
        let e = next_event(
            &d.events,
            &vl.user.id,
            at,
            DisputeAction::Escalated { to: DisputeLevel::Township, note: "村级无法化解".into() },
        );
        d.events.push(e);
    }
    r.updated_at = at;
    doc.update(&r).unwrap();
    let resp = s.push(vl, vec![wire(rec.id, &doc.changes_since(&heads))]).await;
    assert!(resp.rejected.is_empty(), "{:?}", resp.rejected);
}

/// Files in an XLSX (zip) with their text.
fn xlsx_parts(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap_or_default();
            (f.name().unwrap().to_string(), s)
        })
        .collect()
}

/// March 2024 in 城关镇 (t01): what the township chief's monthly figures
/// show is what the grid managers recorded.
#[actix_web::test]
async fn monthly_figures_add_up_what_the_grid_managers_recorded() {
    let s = county().await;
    let gm = dev(&s, "gm-t01-v01-g1").await;
    let gm2 = dev(&s, "gm-t01-v02-g1").await;
    let vl = dev(&s, "vl-t01-v01").await;
    let tc = dev(&s, "tc-t01-1").await;
    let g1 = "t01/v01/g1";
    let old_dispute = dispute_at(g1, &gm.user.id, march(1) - 40 * DAY, None);
    push_ok(
        &s,
        &gm,
        &[
            patrol_at(g1, &gm.user.id, PatrolSlot::Morning, march(4) + 7 * HOUR),
            patrol_at(g1, &gm.user.id, PatrolSlot::Midday, march(4) + 12 * HOUR),
            patrol_at(g1, &gm.user.id, PatrolSlot::Evening, march(4) + 19 * HOUR),
            patrol_at(g1, &gm.user.id, PatrolSlot::Morning, march(5) + 7 * HOUR),
            patrol_at(g1, &gm.user.id, PatrolSlot::Morning, march(1) - HOUR), // February
            hazard_at(g1, &gm.user.id, march(6), Some(march(7))),
            hazard_at(g1, &gm.user.id, march(1) - 3 * DAY, None), // February, still open
            visit_at(g1, &gm.user.id, VisitTarget::KeyPerson, march(8)), // sensitive: counted, never shown
            visit_at(g1, &gm.user.id, VisitTarget::FloatingPopulation, march(8)),
            dispute_at(g1, &gm.user.id, march(10), Some(march(12))),
        ],
    )
    .await;
    let (mut old_doc, old_changes) = gm.doc(&old_dispute);
    assert!(s.push(&gm, vec![old_changes]).await.rejected.is_empty());
    push_ok(&s, &gm2, &[patrol_at("t01/v02/g1", &gm2.user.id, PatrolSlot::Evening, march(9) + 20 * HOUR)]).await;
    escalate(&s, &vl, &mut old_doc, &old_dispute, march(15)).await;

    let r = get(&s, &tc, "/v1/reports/monthly/t01/2024-03").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let v = r.json();
    let t = &v["total"];
    assert_eq!(t["patrols"], serde_json::json!({"morning": 2, "midday": 1, "evening": 2}));
    assert_eq!(
        (t["hazards_found"].as_u64(), t["hazards_handled"].as_u64(), t["hazards_open"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(t["visits"], serde_json::json!({"floating_population": 1, "key_person": 1, "special_place": 0}));
    assert_eq!(
        [&t["disputes_found"], &t["disputes_resolved"], &t["disputes_escalated"], &t["disputes_backlog"]],
        [1, 1, 1, 1]
    );
    assert_eq!(v["villages"].as_array().unwrap().len(), 11, "城关镇 has 11 villages");
    assert_eq!(v["villages"][1]["figures"]["patrols"]["evening"], 1, "t01/v02");
    assert_eq!(v["draft_figures"]["disputes.backlog"], 1);
    assert!(!String::from_utf8_lossy(&r.body).contains("李某"), "no name from a sensitive record");
    // Found on 21 January, the old dispute is 70 days old at the month's
    // end: not a backlog under a 90-day threshold.
    let r = get(&s, &tc, "/v1/reports/monthly/t01/2024-03?days=90").await;
    assert_eq!(r.json()["total"]["disputes_backlog"], 0);

    // The same figures as files.
    let csv = get(&s, &tc, "/v1/reports/monthly/t01/2024-03.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.starts_with("text/csv"));
    let text = String::from_utf8(csv.body.clone()).unwrap();
    assert!(text.starts_with("\u{feff}网格,名称,早巡次数,午巡次数,晚巡次数,新发现隐患"), "{text}");
    assert!(text.contains("\r\nt01,城关镇合计,2,1,2,1,1,1,1,1,0,1,1,1,1\r\n"), "{text}");
    let xlsx = get(&s, &tc, "/v1/reports/monthly/t01/2024-03.xlsx").await;
    assert_eq!(xlsx.status, StatusCode::OK);
    let parts = xlsx_parts(&xlsx.body);
    assert!(parts.contains_key("xl/worksheets/sheet1.xml"));
    assert!(parts["xl/workbook.xml"].contains("月度统计"));
    assert!(parts["xl/sharedStrings.xml"].contains("新排查矛盾纠纷"));
    assert!(parts["xl/sharedStrings.xml"].contains("城关镇合计"));

    // The weekly summary of the leader's village, per group.
    let r = get(&s, &vl, "/v1/reports/weekly?week_start=2024-03-04").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let w = r.json();
    assert_eq!(w["grid"], "t01/v01");
    let g1w = w["grids"].as_array().unwrap().iter().find(|g| g["grid"] == g1).unwrap();
    assert_eq!(g1w["patrols"], serde_json::json!({"morning": 2, "midday": 1, "evening": 1}));
    assert_eq!((g1w["days_fully_patrolled"].as_u64(), g1w["hazards_found"].as_u64()), (Some(1), Some(1)));
    // Open at the week's end, as the monthly figures count: the dispute
    // found on the 10th was resolved on the 12th, after the week.
    assert_eq!((g1w["hazards_open"].as_u64(), g1w["disputes_open"].as_u64()), (Some(1), Some(2)));
    assert_eq!(w["total"]["patrols"]["morning"], 2);

    // Patrol coverage: which slots each group missed.
    let r = get(&s, &vl, "/v1/reports/coverage?from=2024-03-04&to=2024-03-05").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let c = r.json();
    let g1c = c["grids"].as_array().unwrap().iter().find(|g| g["grid"] == g1).unwrap();
    assert_eq!(g1c["days"][0]["missing"], serde_json::json!([]));
    assert_eq!(g1c["days"][1]["missing"], serde_json::json!(["midday", "evening"]));
    let gaps: BTreeSet<&str> = c["gaps"].as_array().unwrap().iter().map(|g| g["grid"].as_str().unwrap()).collect();
    assert_eq!(gaps, BTreeSet::from(["t01/v01/g1", "t01/v01/g2", "t01/v01/g3", "t01/v01/g4"]));
    let r = get(&s, &vl, "/v1/reports/coverage?from=2024-03-05&to=2024-03-04").await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::BAD_REQUEST, "bad_range"));

    // Backlog: the old dispute, now at the township.
    let r = get(&s, &tc, "/v1/reports/backlog").await;
    let b = r.json();
    assert_eq!(b["days"], 30);
    assert_eq!(b["disputes"].as_array().unwrap().len(), 1);
    assert_eq!(b["disputes"][0]["id"], old_dispute.id.to_string());
    assert_eq!(b["disputes"][0]["level"], "township");
    let r = get(&s, &tc, "/v1/reports/backlog?days=abc").await;
    assert_eq!((r.status, r.error_code().as_str()), (StatusCode::BAD_REQUEST, "bad_days"));
    assert!(!r.json()["message_zh"].as_str().unwrap().is_empty());
}

/// Villages (by index in the demo county's order) failing each target,
/// chosen so that the 2021 counts of the seed come out: 31 with
/// public-security cases, 16 with criminal cases, 21 with lawsuits, 3 with
/// a backlog dispute; 53 fail at least one, so 68 meet all four.
fn seed_failures() -> [BTreeSet<usize>; 4] {
    let public_security: BTreeSet<usize> = (0..31).collect();
    let criminal: BTreeSet<usize> = (31..47).collect();
    let lawsuit: BTreeSet<usize> = (47..53).chain(0..15).collect();
    let backlog: BTreeSet<usize> = (0..3).collect();
    [public_security, criminal, lawsuit, backlog]
}

/// The county sees the four-none table of 2021 with the seed's counts:
/// 90, 105, 100 and 118 of 121 villages, 68 meeting all four.
#[actix_web::test]
async fn four_none_table_reproduces_the_seed_2021_counts() {
    let s = county().await;
    let villages: Vec<String> = demo_county()
        .nodes
        .iter()
        .filter(|n| n.path.level() == gridsync_core::grid::GridLevel::Village)
        .map(|n| n.path.to_string())
        .collect();
    assert_eq!(villages.len(), 121);
    let fails = seed_failures();
    // Each agency imports its counts as CSV.
    for (agency, kind, i) in
        [("police", "public_security", 0), ("procuratorate", "criminal", 1), ("court", "lawsuit", 2)]
    {
        let d = dev(&s, agency).await;
        let mut csv = String::from("\u{feff}village,year,kind,count\n");
        for (n, v) in villages.iter().enumerate() {
            let count = if fails[i].contains(&n) { 1 + n % 3 } else { 0 };
            csv.push_str(&format!("{v},2021,{kind},{count}\n"));
        }
        let r = post(&s, &d, "/v1/case-counts/csv", "text/csv", csv).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
        assert_eq!(r.json()["entered"], 121);
    }
    // Three villages had a dispute left unresolved for more than 30 days
    // in 2021; another was resolved in time, another only became a
    // backlog in 2022.
    for &n in &fails[3] {
        let g = format!("{}/g1", villages[n]);
        let gm = dev(&s, &format!("gm-{}", g.replace('/', "-"))).await;
        push_ok(&s, &gm, &[dispute_at(&g, &gm.user.id, day(2021, 3, 1), Some(day(2021, 5, 1)))]).await;
    }
    let g = format!("{}/g1", villages[100]);
    let gm = dev(&s, &format!("gm-{}", g.replace('/', "-"))).await;
    push_ok(
        &s,
        &gm,
        &[
            dispute_at(&g, &gm.user.id, day(2021, 6, 1), Some(day(2021, 6, 20))),
            dispute_at(&g, &gm.user.id, day(2021, 12, 20), None),
        ],
    )
    .await;

    let county = dev(&s, "county-admin").await;
    let r = get(&s, &county, "/v1/reports/four-none/2021").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let t = r.json();
    let counts: Vec<(u64, u64, String, bool)> = t["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["villages"].as_u64().unwrap(),
                x["of"].as_u64().unwrap(),
                x["percent_text"].as_str().unwrap().to_owned(),
                x["goal_met"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (90, 121, "74.4%".into(), true),
            (105, 121, "86.8%".into(), true),
            (100, 121, "82.6%".into(), true),
            (118, 121, "97.5%".into(), true),
        ]
    );
    assert_eq!(t["totals"][0]["percent"], 74.4);
    assert_eq!((t["all_four"]["villages"].as_u64(), t["all_four"]["percent_text"].as_str()), (Some(68), Some("56.2%")));
    assert_eq!(t["villages"][0]["backlog_disputes"], 1);
    assert_eq!(t["villages"][100]["meets"], serde_json::json!([true, true, true, true]));

    // A township chief sees their own township's villages.
    let tc = dev(&s, "tc-t01-1").await;
    let r = get(&s, &tc, "/v1/reports/four-none/2021").await;
    assert_eq!(r.json()["villages"].as_array().unwrap().len(), 11);
    assert_eq!(r.json()["totals"][0]["villages"], 0, "villages 0..11 all had public-security cases");

    // A village without any count entered does not meet a case target.
    let r = get(&s, &county, "/v1/reports/four-none/2022").await;
    assert_eq!(r.json()["totals"][0]["villages"], 0);
    assert_eq!(r.json()["villages"][0]["public_security_cases"], serde_json::Value::Null);

    // Files.
    let csv = get(&s, &county, "/v1/reports/four-none/2021.csv").await;
    let text = String::from_utf8(csv.body).unwrap();
    assert!(text.starts_with("\u{feff}乡镇,村（社区）,网格编码,治安案件数,无治安案件村"), "{text}");
    assert!(text.contains("\r\n无治安案件村,90,121,74.4%,60%,是\r\n"), "{text}");
    assert!(text.contains("\r\n四项均达标,68,121,56.2%,—,—\r\n"), "{text}");
    let xlsx = get(&s, &county, "/v1/reports/four-none/2021.xlsx").await;
    assert_eq!(xlsx.status, StatusCode::OK);
    assert_eq!(&xlsx.body[..2], b"PK");
    let parts = xlsx_parts(&xlsx.body);
    assert!(parts["xl/workbook.xml"].contains("2021年四无创建") && parts["xl/workbook.xml"].contains("达标汇总"));
    for h in ["无刑事案件村", "无矛盾纠纷积案村", "四项均达标", "74.4%", "56.2%"] {
        assert!(parts["xl/sharedStrings.xml"].contains(h), "{h} missing");
    }
}

/// Case counts: agency staff only, every row checked, all or nothing.
#[actix_web::test]
async fn case_counts_are_checked_and_entered_by_agencies_only() {
    let s = county().await;
    let police = dev(&s, "police").await;
    let r = post(
        &s,
        &police,
        "/v1/case-counts",
        "application/json",
        r#"{"village":"t01/v01","year":2021,"kind":"public_security","count":2}"#,
    )
    .await;
    assert_eq!((r.status, r.json()["entered"].as_u64()), (StatusCode::OK, Some(1)));
    let counts = s.store.case_counts(2021).unwrap();
    assert_eq!((counts[0].count, counts[0].entered_by.as_str()), (2, "police"));
    for (body, code) in [
        (r#"{"village":"t99/v01","year":2021,"kind":"public_security","count":1}"#, "invalid_case_counts"),
        (r#"{"village":"t01/v01","year":2021,"kind":"theft","count":1}"#, "invalid_case_counts"),
        (r#"{"village":"t01/v01","year":2021,"kind":"public_security","count":-1}"#, "invalid_case_counts"),
        (
            r#"[{"village":"t01/v01","year":2021,"kind":"public_security","count":1},{"village":"t01","year":2021,"kind":"public_security","count":1}]"#,
            "invalid_case_counts",
        ),
        ("not json", "malformed_body"),
    ] {
        let r = post(&s, &police, "/v1/case-counts", "application/json", body).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{body}");
        assert!(r.json()["message_zh"].as_str().unwrap().contains('第') || code == "malformed_body");
    }
    assert_eq!(s.store.case_counts(2021).unwrap().len(), 1, "nothing of a refused batch is stored");
    let r = post(&s, &police, "/v1/case-counts/csv", "text/csv", "village,count\nt01/v01,1\n").await;
    assert_eq!(r.error_code(), "bad_header");
    let r =
        post(&s, &police, "/v1/case-counts/csv", "text/csv", "village,year,kind,count\nt01/v01,2021,public_security\n")
            .await;
    assert_eq!(r.error_code(), "bad_row");
    let r = post(&s, &police, "/v1/case-counts/csv", "text/csv", vec![0xff, 0xfe, 0x00]).await;
    assert_eq!(r.error_code(), "not_utf8");
    // Each agency enters its own target only; the justice bureau's comes
    // from the dispute records.
    for (agency, body) in [
        ("police", r#"{"village":"t01/v01","year":2021,"kind":"criminal","count":1}"#),
        ("procuratorate", r#"{"village":"t01/v01","year":2021,"kind":"lawsuit","count":1}"#),
        ("court", r#"{"village":"t01/v01","year":2021,"kind":"public_security","count":1}"#),
        ("justice", r#"{"village":"t01/v01","year":2021,"kind":"lawsuit","count":1}"#),
    ] {
        let d = dev(&s, agency).await;
        let r = post(&s, &d, "/v1/case-counts", "application/json", body).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{agency}: {body}");
    }
    let court = dev(&s, "court").await;
    let r = post(
        &s,
        &court,
        "/v1/case-counts",
        "application/json",
        r#"{"village":"t01/v01","year":2021,"kind":"lawsuit","count":0}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.store.case_counts(2021).unwrap().len(), 2);
}

/// The county sees which townships submitted March's report before
/// 20 April, which were late and which never did.
#[actix_web::test]
async fn a_late_report_is_marked_late() {
    let s = county().await;
    let due = day(2024, 4, 20);
    let tc1 = dev(&s, "tc-t01-1").await;
    let tc2 = dev(&s, "tc-t02-1").await;
    let tc4 = dev(&s, "tc-t04-1").await;
    // The server's clock decides, not the time the phone wrote: t01's chief
    // claims an on-time date but syncs late is late; t02's is on time by
    // an hour though the phone claims the 20th.
    s.clock.set(due - HOUR);
    push_ok(&s, &tc2, &[report("t02", &tc2.user.id, "2024-03", Some(due))]).await;
    s.clock.set(due);
    push_ok(&s, &tc1, &[report("t01", &tc1.user.id, "2024-03", Some(due - 2 * HOUR))]).await;
    push_ok(&s, &tc4, &[report("t04", &tc4.user.id, "2024-03", None)]).await; // a draft
    let county = dev(&s, "county-admin").await;
    let r = get(&s, &county, "/v1/reports/submissions/2024-03").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let v = r.json();
    assert_eq!((v["due_date"].as_str(), v["due_at"].as_i64()), (Some("2024-04-20"), Some(due)));
    let status: BTreeMap<String, String> = v["townships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["township"].as_str().unwrap().to_owned(), t["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(status.len(), 12);
    assert_eq!(status["t01"], "late", "reached the server at 00:00 on the 20th, not before the 20th");
    assert_eq!(status["t02"], "on_time");
    assert_eq!(status["t03"], "missing");
    assert_eq!(status["t04"], "missing", "a draft is not a submission");
    // A township chief sees their own line; the monthly figures carry it too.
    let r = get(&s, &tc1, "/v1/reports/submissions/2024-03").await;
    assert_eq!(r.json()["townships"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["townships"][0]["status"], "late");
    assert_eq!(r.json()["townships"][0]["submitted_at"], due);
    let r = get(&s, &tc1, "/v1/reports/monthly/t01/2024-03").await;
    assert_eq!(r.json()["submission"]["status"], "late");
    // A month not yet due is pending.
    let r = get(&s, &county, "/v1/reports/submissions/2199-11").await;
    assert_eq!(r.json()["townships"][0]["status"], "pending");
    let r = get(&s, &county, "/v1/reports/submissions/2024-13").await;
    assert_eq!(r.error_code(), "bad_month");
}

/// Who may write the supervision records, and a submitted report is final.
#[actix_web::test]
async fn supervision_records_are_written_by_the_right_roles() {
    let s = county().await;
    let gm = dev(&s, "gm-t01-v01-g1").await;
    let vl = dev(&s, "vl-t01-v01").await;
    let sv = dev(&s, "sv-t01-v01").await;
    let tc = dev(&s, "tc-t01-1").await;
    let meeting = |author: &str| {
        Record::new(
            grid("t01/v01"),
            author,
            march(8),
            RecordBody::VillageMeeting(VillageMeeting {
                held_at: march(8),
                attendees: vec!["王建国".into()],
                grid_summaries: BTreeMap::new(),
                disputes_reviewed: BTreeMap::new(),
                decisions: "两起纠纷由村调委会调解".into(),
            }),
        )
    };
    let refused = |resp: gridsync_core::protocol::SyncResponse| resp.rejected.first().map(|r| r.reason);
    assert_eq!(refused(s.push(&gm, vec![gm.doc(&meeting(&gm.user.id)).1]).await), Some(RejectReason::OutOfScope));
    push_ok(&s, &vl, &[meeting(&vl.user.id)]).await;
    push_ok(&s, &sv, &[meeting(&sv.user.id)]).await;
    assert_eq!(refused(s.push(&tc, vec![tc.doc(&meeting(&tc.user.id)).1]).await), Some(RejectReason::Forbidden));
    let vl_report = report("t01", &vl.user.id, "2024-03", None);
    assert_eq!(refused(s.push(&vl, vec![vl.doc(&vl_report).1]).await), Some(RejectReason::OutOfScope));

    // Submitted, then changed: refused.
    let rec = report("t01", &tc.user.id, "2024-03", Some(march(30)));
    let (mut doc, first) = tc.doc(&rec);
    assert!(s.push(&tc, vec![first]).await.rejected.is_empty());
    let heads = doc.heads();
    let mut later = rec.clone();
    if let RecordBody::MonthlyReport(m) = &mut later.body {
        m.submitted_at = Some(march(1));
    }
    doc.update(&later).unwrap();
    let resp = s.push(&tc, vec![wire(rec.id, &doc.changes_since(&heads))]).await;
    assert_eq!(refused(resp), Some(RejectReason::Forbidden));
}

/// Every endpoint, every role around 城关镇 (t01): who gets an answer and
/// who gets 403 (`out_of_scope` outside their grid, `forbidden` for their role).
#[actix_web::test]
async fn every_endpoint_honours_the_callers_scope() {
    let s = county().await;
    let users = ["gm-t01-v01-g1", "vl-t01-v01", "sv-t01-v01", "tc-t01-1", "tc-t02-1", "county-admin", "police"];
    let mut devs = Vec::new();
    for u in users {
        devs.push(dev(&s, u).await);
    }
    const OK: &str = "ok";
    const OUT: &str = "out_of_scope";
    const NO: &str = "forbidden";
    // Expected per user, in the order of `users`.
    let township_report = [OUT, OUT, OUT, OK, OUT, OK, NO];
    let cases: Vec<(&str, [&str; 7])> = vec![
        ("/v1/reports/weekly?grid=t01&week_start=2024-03-04", township_report),
        ("/v1/reports/monthly/t01/2024-03", township_report),
        ("/v1/reports/monthly/t01/2024-03.csv", township_report),
        ("/v1/reports/monthly/t01/2024-03.xlsx", township_report),
        ("/v1/reports/coverage?grid=t01&from=2024-03-01&to=2024-03-07", township_report),
        ("/v1/reports/backlog?grid=t01", township_report),
        ("/v1/reports/sync-health?grid=t01", township_report),
        ("/v1/reports/submissions/2024-03?grid=t01", township_report),
        ("/v1/reports/four-none/2021?grid=t01", [NO, OUT, OUT, OK, OUT, OK, OK]),
        ("/v1/reports/four-none/2021.xlsx?grid=t01", [NO, OUT, OUT, OK, OUT, OK, OK]),
        // Each at their own scope (no grid given).
        ("/v1/reports/weekly", [OK, OK, OK, OK, OK, OK, NO]),
        ("/v1/reports/backlog", [OK, OK, OK, OK, OK, OK, NO]),
        ("/v1/reports/coverage", [OK, OK, OK, OK, OK, OK, NO]),
        ("/v1/reports/sync-health", [NO, OK, OK, OK, OK, OK, NO]),
        ("/v1/reports/submissions/2024-03", [NO, NO, NO, OK, OK, OK, NO]),
        ("/v1/reports/four-none/2021.csv", [NO, OK, OK, OK, OK, OK, OK]),
        ("/v1/reports/weekly?grid=t01/v01/g1", [OK, OK, OK, OK, OUT, OK, NO]),
        ("/v1/reports/weekly?grid=t01/v02", [OUT, OUT, OUT, OK, OUT, OK, NO]),
    ];
    for (path, expected) in &cases {
        for (d, want) in devs.iter().zip(expected) {
            let r = get(&s, d, path).await;
            let got = if r.status == StatusCode::OK { OK.to_owned() } else { r.error_code() };
            assert_eq!(&got, want, "{} GET {path}: {} {:?}", d.user.id, r.status, String::from_utf8_lossy(&r.body));
            if *want != OK {
                assert_eq!(r.status, StatusCode::FORBIDDEN);
                assert!(!r.json()["message_zh"].as_str().unwrap().is_empty());
            }
        }
    }
    let body = r#"{"village":"t01/v01","year":2021,"kind":"public_security","count":0}"#;
    for (d, want) in devs.iter().zip([NO, NO, NO, NO, NO, NO, OK]) {
        let r = post(&s, d, "/v1/case-counts", "application/json", body).await;
        let got = if r.status == StatusCode::OK { OK.to_owned() } else { r.error_code() };
        assert_eq!(got, want, "{} POST /v1/case-counts", d.user.id);
        let r =
            post(&s, d, "/v1/case-counts/csv", "text/csv", "village,year,kind,count\nt01/v01,2021,public_security,0\n")
                .await;
        let got = if r.status == StatusCode::OK { OK.to_owned() } else { r.error_code() };
        assert_eq!(got, want, "{} POST /v1/case-counts/csv", d.user.id);
    }
    // Without a valid token: 401, JSON.
    for path in ["/v1/reports/weekly", "/v1/reports/four-none/2021", "/v1/reports/monthly/t01/2024-03.xlsx"] {
        let r = s.get(path).await;
        assert_eq!((r.status, r.error_code().as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{path}");
    }
}

/// Sync health: the township sees who has not synced for a week.
#[actix_web::test]
async fn sync_health_lists_who_has_not_synced() {
    let s = county().await;
    let gm = dev(&s, "gm-t01-v01-g1").await;
    let _silent = dev(&s, "gm-t01-v01-g2").await;
    s.push(&gm, vec![]).await;
    let tc = dev(&s, "tc-t01-1").await;
    let r = get(&s, &tc, "/v1/reports/sync-health?grid=t01/v01&days=3").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let v = r.json();
    let not: BTreeSet<&str> = v["not_synced"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert!(!not.contains("gm-t01-v01-g1"));
    assert!(not.contains("gm-t01-v01-g2"), "enrolled, never synced");
    assert!(not.contains("vl-t01-v01"), "no device at all");
    assert_eq!(v["devices"].as_array().unwrap().len(), 2);
    let r = get(&s, &tc, "/v1/reports/sync-health?days=0").await;
    assert_eq!(r.error_code(), "bad_days");
}

/// The OpenAPI document parses and names exactly the routes the server
/// mounts (each path with its methods), and each of them answers.
#[actix_web::test]
async fn openapi_document_lists_every_route() {
    let s = Server::in_memory(Limits::default()).await;
    let r = s.get("/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.0.3");
    // What the document describes must be exactly what the server mounts.
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| item.as_object().unwrap().keys().map(move |m| (p.clone(), m.clone())))
        .collect();
    let mounted: BTreeSet<(String, String)> =
        gridsync_server::reports_api::MOUNTED.iter().map(|(p, m)| ((*p).to_owned(), (*m).to_owned())).collect();
    assert_eq!(described, mounted);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{township}", "t01").replace("{month}", "2024-03").replace("{year}", "2021");
        for method in item.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => TestRequest::get(),
                "post" => TestRequest::post(),
                m => panic!("unexpected method {m}"),
            };
            let r = s.send(req.uri(&uri)).await;
            assert_ne!(r.status, StatusCode::NOT_FOUND, "{method} {path} is not routed");
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
}

/// Every figure the county acts on agrees with the records and with every
/// other place that shows it (the consistency suite), on SQLite.
#[actix_web::test]
async fn figures_agree_everywhere_on_sqlite() {
    consistency::figures_agree_everywhere(&county().await).await;
}

/// The same suite on PostgreSQL.
#[actix_web::test]
#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
async fn figures_agree_everywhere_on_postgres() {
    let s = Server::on_postgres(Limits::default()).await.expect("GRIDSYNC_TEST_POSTGRES_URL is set");
    let store = s.store.clone();
    off_runtime(move || gridsync_server::demo::load(store.as_ref())).unwrap();
    consistency::figures_agree_everywhere(&s).await;
    // The last handle on the pool closes its connections, which PostgreSQL's
    // client does on a runtime of its own: not on this one.
    let store = s.store.clone();
    drop(s);
    off_runtime(move || drop(store));
}
