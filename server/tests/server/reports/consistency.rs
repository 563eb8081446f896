//! The figures consistency suite: on generated records, every figure a
//! county acts on is computed here from the records by this file's own
//! small reading of `docs/reports.md`, and compared with every JSON
//! endpoint, CSV and XLSX file and dashboard page that shows it, and each
//! pair of places that show the same quantity with each other.
//!
//! The generator writes each record's history and, beside it, what the
//! history means (when a hazard was removed, whether and since when a
//! dispute is resolved): the reference reads that truth, not the server's
//! status rules. Its cases are the ones that went wrong in the county: a
//! dispute resolved and then stabilised, escalated or followed up, a
//! conflict waiting, a hazard reopened, times on the edges of days,
//! weeks, months, years and the 30-day backlog threshold in Beijing time,
//! a month and a year not over, and more than 5,000 hazards.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gridsync_core::grid::{GridLevel, GridPath};
use gridsync_core::model::{
    Dispute, DisputeAction, DisputeCategory, DisputeLevel, Hazard, HazardAction, HazardCategory, Location,
    MonthlyReport, Patrol, PatrolSlot, Record, RecordBody, Visit, VisitTarget, beijing_day, next_event,
};
use gridsync_server::store::{CaseCount, CaseKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{DAY, HOUR, day, xlsx_parts};
use crate::support::{Resp, Server, off_runtime};

/// The backlog threshold the pages use.
const DAYS: i64 = 30;

/// Now, by the server's clock: Thursday 10 December 2026, 10:00 Beijing
/// time. December, the week of the 7th and the year 2026 are running;
/// November and 2025 are over.
fn now() -> i64 {
    day(2026, 12, 10) + 10 * HOUR
}

/// What a record means, as its generator wrote it.
#[derive(Debug, Clone)]
enum Truth {
    Patrol {
        grid: GridPath,
        slot: PatrolSlot,
        at: i64,
    },
    Visit {
        grid: GridPath,
        target: VisitTarget,
        at: i64,
    },
    Hazard {
        grid: GridPath,
        created: i64,
        removed: Option<i64>,
    },
    Dispute {
        grid: GridPath,
        found: i64,
        resolved: Option<i64>,
        escalated: Vec<i64>,
        level: DisputeLevel,
        conflict: bool,
    },
}

impl Truth {
    fn grid(&self) -> &GridPath {
        match self {
            Truth::Patrol { grid, .. }
            | Truth::Visit { grid, .. }
            | Truth::Hazard { grid, .. }
            | Truth::Dispute { grid, .. } => grid,
        }
    }
}

/// The generated county: records to store, and what each means.
struct Generated {
    records: Vec<Record>,
    truth: Vec<Truth>,
}

fn g(s: &str) -> GridPath {
    GridPath::parse(s).unwrap()
}

/// Times on the edges the definitions turn on, and a few ordinary ones.
fn edges() -> Vec<i64> {
    let n = now();
    vec![
        day(2026, 12, 1),              // the running month's first instant
        day(2026, 12, 1) - 1,          // November's last
        day(2026, 11, 1),              // November's first
        day(2026, 11, 1) - 1,          // October's last
        day(2026, 12, 7),              // the running week's Monday
        day(2026, 12, 7) - 1,          // the Sunday before, 23:59:59.999
        n - DAYS * DAY,                // exactly 30 days before now
        n - DAYS * DAY - 1,            // a millisecond more: a backlog case now
        n - DAYS * DAY + 1,            // a millisecond less: not yet
        day(2026, 12, 1) - DAYS * DAY, // 30 days before November's end
        day(2026, 12, 1) - DAYS * DAY - 1,
        day(2026, 1, 1),                  // the running year's first instant
        day(2026, 1, 1) - 1,              // 2025's last
        day(2026, 1, 1) - DAYS * DAY - 1, // a backlog case from 2025's last instant
        day(2025, 12, 15) + 9 * HOUR,
        day(2026, 6, 15) + 9 * HOUR,
    ]
}

/// A time in `[from, to)`, or an edge, at random.
fn when(rng: &mut StdRng, from: i64, to: i64) -> i64 {
    if rng.gen_bool(0.3) {
        let e = edges();
        let t = e[rng.gen_range(0..e.len())];
        if (from..to).contains(&t) {
            return t;
        }
    }
    rng.gen_range(from..to)
}

fn author(grid: &GridPath) -> String {
    format!("gm-{}", grid.to_string().replace('/', "-"))
}

fn dispute(grid: &GridPath, found: i64, events: Vec<gridsync_core::model::DisputeEvent>) -> Record {
    Record::new(
        grid.clone(),
        &author(grid),
        found,
        RecordBody::Dispute(Dispute {
            parties: vec!["甲".into(), "乙".into()],
            category: DisputeCategory::Neighbour,
            summary: "邻里纠纷".into(),
            found_at: found,
            events,
        }),
    )
}

fn hazard(grid: &GridPath, created: i64, events: Vec<gridsync_core::model::HazardEvent>) -> Record {
    Record::new(
        grid.clone(),
        &author(grid),
        created,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Fire,
            location: Location { text: "村口".into(), gps: None },
            description: "柴草堆放".into(),
            events,
        }),
    )
}

/// One dispute of each shape the figures must read right, found at `found`
/// in `grid`; the steps fall before now.
fn disputes_at(rng: &mut StdRng, grid: &GridPath, found: i64, out: &mut Generated) {
    let n = now();
    let later = |rng: &mut StdRng, after: i64| -> Option<i64> {
        let t = when(rng, after + 1, (after + 45 * DAY).min(n).max(after + 2));
        (t < n).then_some(t)
    };
    let (vl, gm) = ("vl", author(grid));
    let found_ev = next_event(&[], &gm, found, DisputeAction::Found { note: String::new() });
    let resolved = |events: &[_], at| next_event(events, vl, at, DisputeAction::Resolved { note: "调解成功".into() });
    let escalate =
        |events: &[_], at, to| next_event(events, vl, at, DisputeAction::Escalated { to, note: String::new() });
    let shape = rng.gen_range(0..8);
    let mut events = vec![found_ev];
    let mut truth_resolved = None;
    let mut escalated = vec![];
    let mut level = DisputeLevel::Village;
    let mut conflict = false;
    match shape {
        // Resolved, and resolved then followed up: resolved since the 化解.
        0 | 1 => {
            if let Some(r) = later(rng, found) {
                events.push(resolved(&events, r));
                truth_resolved = Some(r);
                if shape == 1
                    && let Some(f) = later(rng, r)
                {
                    let e = next_event(&events, vl, f, DisputeAction::FollowUp { note: "回访".into() });
                    events.push(e);
                }
            }
        }
        // Resolved then stabilised: not resolved.
        2 => {
            if let Some(r) = later(rng, found) {
                events.push(resolved(&events, r));
                truth_resolved = Some(r);
                if let Some(s) = later(rng, r) {
                    let e = next_event(&events, vl, s, DisputeAction::Stabilized { note: "继续稳控".into() });
                    events.push(e);
                    truth_resolved = None;
                }
            }
        }
        // Resolved then escalated: not resolved, and escalated then.
        3 => {
            if let Some(r) = later(rng, found) {
                events.push(resolved(&events, r));
                truth_resolved = Some(r);
                if let Some(e) = later(rng, r) {
                    events.push(escalate(&events, e, DisputeLevel::Township));
                    truth_resolved = None;
                    escalated.push(e);
                    level = DisputeLevel::Township;
                }
            }
        }
        // A conflict waiting: one resolves while another stabilises.
        4 => {
            if let Some(r) = later(rng, found) {
                let heads = events.clone();
                let a = resolved(&heads, r);
                let b = next_event(&heads, &gm, r + 1, DisputeAction::Stabilized { note: String::new() });
                events.push(a);
                events.push(b);
                conflict = true;
            }
        }
        // Escalated to the township, then to the county, then maybe resolved there.
        5 => {
            if let Some(e) = later(rng, found) {
                events.push(escalate(&events, e, DisputeLevel::Township));
                escalated.push(e);
                level = DisputeLevel::Township;
                if let Some(c) = later(rng, e) {
                    events.push(escalate(&events, c, DisputeLevel::County));
                    escalated.push(c);
                    level = DisputeLevel::County;
                    if rng.gen_bool(0.5)
                        && let Some(r) = later(rng, c)
                    {
                        events.push(resolved(&events, r));
                        truth_resolved = Some(r);
                    }
                }
            }
        }
        // Still open at the village.
        _ => {}
    }
    out.records.push(dispute(grid, found, events));
    out.truth.push(Truth::Dispute { grid: grid.clone(), found, resolved: truth_resolved, escalated, level, conflict });
}

/// A hazard reported at `created`: open, handled, removed, or removed and
/// then reopened by a later step.
fn hazard_at(rng: &mut StdRng, grid: &GridPath, created: i64, out: &mut Generated) {
    let n = now();
    let gm = author(grid);
    let mut events = vec![next_event(&[], &gm, created, HazardAction::Reported { note: String::new() })];
    let mut removed = None;
    let shape = rng.gen_range(0..4);
    if shape > 0 {
        let r = when(rng, created + 1, (created + 20 * DAY).min(n).max(created + 2));
        if r < n {
            let e = next_event(&events, &gm, r, HazardAction::Resolved { note: "已消除".into() });
            events.push(e);
            removed = Some(r);
            if shape == 3 {
                let s = when(rng, r + 1, (r + 10 * DAY).min(n).max(r + 2));
                if s < n {
                    let e = next_event(&events, &gm, s, HazardAction::Step { note: "复发，重新处置".into() });
                    events.push(e);
                    removed = None;
                }
            }
        }
    }
    out.records.push(hazard(grid, created, events));
    out.truth.push(Truth::Hazard { grid: grid.clone(), created, removed });
}

fn patrol(grid: &GridPath, slot: PatrolSlot, at: i64, out: &mut Generated) {
    out.records.push(Record::new(
        grid.clone(),
        &author(grid),
        at,
        RecordBody::Patrol(Patrol {
            slot,
            started_at: at,
            ended_at: None,
            route: vec![],
            findings: String::new(),
            hazard_ids: BTreeMap::new(),
        }),
    ));
    out.truth.push(Truth::Patrol { grid: grid.clone(), slot, at });
}

/// Records in the villages of 城关镇 (t01) and 站儿巷镇 (t02), and more than
/// 5,000 hazards over the county; `groups` holds each village's groups.
fn generate(villages: &[GridPath], groups: &BTreeMap<GridPath, Vec<GridPath>>) -> Generated {
    let groups_of = |v: &GridPath| groups[v].clone();
    let mut rng = StdRng::seed_from_u64(30);
    let mut out = Generated { records: vec![], truth: vec![] };
    let (n, from) = (now(), day(2025, 10, 1));
    for v in villages.iter().filter(|v| matches!(v.township(), Some("t01" | "t02"))) {
        let groups = groups_of(v);
        for _ in 0..12 {
            let grid = &groups[rng.gen_range(0..groups.len())];
            let found = when(&mut rng, from, n);
            disputes_at(&mut rng, grid, found, &mut out);
        }
        for grid in &groups {
            for _ in 0..6 {
                let created = when(&mut rng, from, n);
                hazard_at(&mut rng, grid, created, &mut out);
            }
            for _ in 0..25 {
                let at = when(&mut rng, day(2026, 10, 25), n);
                let slot = [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][rng.gen_range(0..3)];
                patrol(grid, slot, at, &mut out);
            }
            // Every slot of the running week's Monday and Tuesday, so a group
            // has fully patrolled days.
            for d in [day(2026, 12, 7), day(2026, 12, 8)] {
                for (slot, h) in [(PatrolSlot::Morning, 8), (PatrolSlot::Midday, 13), (PatrolSlot::Evening, 19)] {
                    patrol(grid, slot, d + h * HOUR, &mut out);
                }
            }
            for _ in 0..4 {
                let at = when(&mut rng, day(2026, 10, 25), n);
                let target = [VisitTarget::FloatingPopulation, VisitTarget::SpecialPlace][rng.gen_range(0..2)];
                out.records.push(Record::new(
                    grid.clone(),
                    &author(grid),
                    at,
                    RecordBody::Visit(Visit {
                        target,
                        subject: "出租房".into(),
                        household_id: None,
                        visited_at: at,
                        findings: String::new(),
                        follow_up_needed: false,
                    }),
                ));
                out.truth.push(Truth::Visit { grid: grid.clone(), target, at });
            }
        }
    }
    // More than 5,000 hazards in all: the rest of the county.
    let others: Vec<&GridPath> = villages.iter().filter(|v| !matches!(v.township(), Some("t01" | "t02"))).collect();
    let mut i = 0;
    while out.truth.iter().filter(|t| matches!(t, Truth::Hazard { .. })).count() < 5_300 {
        let gs = groups_of(others[i % others.len()]);
        let grid = gs[i % gs.len()].clone();
        let created = when(&mut rng, from, n);
        hazard_at(&mut rng, &grid, created, &mut out);
        i += 1;
    }
    out
}

// ---- the reference: docs/reports.md, read by this file ----

/// The exclusive bound a period ending at `end` is taken up to, at now.
fn bound(end: i64) -> i64 {
    end.min(now() + 1)
}

fn open_by(opened: i64, closed: Option<i64>, b: i64) -> bool {
    opened < b && closed.is_none_or(|c| c >= b)
}

fn backlog_by(found: i64, resolved: Option<i64>, b: i64) -> bool {
    found + DAYS * DAY < b && resolved.is_none_or(|r| r >= b)
}

fn backlog_during(found: i64, resolved: Option<i64>, start: i64, b: i64) -> bool {
    let since = found + DAYS * DAY;
    let until = resolved.unwrap_or(i64::MAX);
    since < b && until > start && since < until
}

/// A month's (or week's) figures of a node, in the monthly table's column
/// order after the grid and name: patrols (morning, midday, evening),
/// hazards found, handled, open, visits (floating, key person, special
/// place), disputes found, resolved, escalated, backlog.
fn monthly_ref(truth: &[Truth], node: &GridPath, start: i64, end: i64) -> Vec<i64> {
    let b = bound(end);
    let within = |t: i64| (start..b).contains(&t);
    let mut f = vec![0i64; 13];
    for t in truth.iter().filter(|t| node.contains(t.grid())) {
        match t {
            Truth::Patrol { slot, at, .. } if within(*at) => f[*slot as usize] += 1,
            Truth::Hazard { created, removed, .. } => {
                f[3] += i64::from(within(*created));
                f[4] += i64::from(removed.is_some_and(within));
                f[5] += i64::from(open_by(*created, *removed, b));
            }
            Truth::Visit { target, at, .. } if within(*at) => f[6 + visit_column(*target)] += 1,
            Truth::Dispute { found, resolved, escalated, .. } => {
                f[9] += i64::from(within(*found));
                f[10] += i64::from(resolved.is_some_and(within));
                f[11] += i64::from(escalated.iter().any(|e| within(*e)));
                f[12] += i64::from(backlog_by(*found, *resolved, b));
            }
            _ => {}
        }
    }
    f
}

/// A visit target's place among the three visit columns.
fn visit_column(t: VisitTarget) -> usize {
    match t {
        VisitTarget::FloatingPopulation => 0,
        VisitTarget::KeyPerson => 1,
        VisitTarget::SpecialPlace => 2,
    }
}

/// A week's figures of a node, in the weekly table's column order: patrols
/// (3), days fully patrolled, hazards found, open, visits (3), disputes
/// found, open.
fn weekly_ref(truth: &[Truth], node: &GridPath, monday: i64) -> Vec<i64> {
    let (start, end) = (monday, monday + 7 * DAY);
    let b = bound(end);
    let within = |t: i64| (start..b).contains(&t);
    let mut f = vec![0i64; 11];
    let mut slots: BTreeMap<(GridPath, chrono::NaiveDate), BTreeSet<usize>> = BTreeMap::new();
    for t in truth.iter().filter(|t| node.contains(t.grid())) {
        match t {
            Truth::Patrol { grid, slot, at } if within(*at) => {
                f[*slot as usize] += 1;
                slots.entry((grid.clone(), beijing_day(*at))).or_default().insert(*slot as usize);
            }
            Truth::Hazard { created, removed, .. } => {
                f[4] += i64::from(within(*created));
                f[5] += i64::from(open_by(*created, *removed, b));
            }
            Truth::Visit { target, at, .. } if within(*at) => f[6 + visit_column(*target)] += 1,
            Truth::Dispute { found, resolved, .. } => {
                f[9] += i64::from(within(*found));
                f[10] += i64::from(open_by(*found, *resolved, b));
            }
            _ => {}
        }
    }
    f[3] = slots.values().filter(|s| s.len() == 3).count() as i64;
    f
}

/// What is open now under a node: hazards, disputes, disputes at the
/// county, conflicts waiting.
fn open_now_ref(truth: &[Truth], node: &GridPath) -> [i64; 4] {
    let b = now() + 1;
    let mut o = [0i64; 4];
    for t in truth.iter().filter(|t| node.contains(t.grid())) {
        match t {
            Truth::Hazard { created, removed, .. } => o[0] += i64::from(open_by(*created, *removed, b)),
            Truth::Dispute { found, resolved, level, conflict, .. } if open_by(*found, *resolved, b) => {
                o[1] += 1;
                o[2] += i64::from(*level == DisputeLevel::County);
                o[3] += i64::from(*conflict);
            }
            _ => {}
        }
    }
    o
}

/// The villages with a backlog case at some instant of the year, so far.
fn backlog_villages(truth: &[Truth], year: i32) -> BTreeSet<GridPath> {
    let (start, end) = (day(year, 1, 1), day(year + 1, 1, 1));
    truth
        .iter()
        .filter_map(|t| match t {
            Truth::Dispute { grid, found, resolved, .. } if backlog_during(*found, *resolved, start, bound(end)) => {
                Some(grid.ancestor(GridLevel::Village))
            }
            _ => None,
        })
        .collect()
}

/// The backlog cases now under a node.
fn backlog_now_ref(truth: &[Truth], node: &GridPath) -> usize {
    truth
        .iter()
        .filter(|t| {
            node.contains(t.grid())
                && matches!(t, Truth::Dispute { found, resolved, .. } if backlog_by(*found, *resolved, now() + 1))
        })
        .count()
}

// ---- reading what the server shows ----

/// The rows of an HTML table (`<table id="...">`), cells as text.
fn html_table(page: &str, id: &str) -> Vec<Vec<String>> {
    let start = page.find(&format!("<table id=\"{id}\"")).unwrap_or_else(|| panic!("no table #{id}"));
    let table = &page[start..start + page[start..].find("</table>").unwrap()];
    table
        .split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap_or(cell.len())];
                    text_of(inner)
                })
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for c in html.chars() {
        match c {
            '<' => tag = true,
            '>' => tag = false,
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").trim().to_owned()
}

/// The text of the element with `id`.
fn html_text(page: &str, id: &str) -> String {
    let at = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let rest = &page[at..];
    text_of(&rest[rest.find('>').unwrap() + 1..rest.find("</").unwrap()])
}

/// The rows of a CSV table that follow the header `first`.
fn csv_table(text: &str, first: &str) -> Vec<Vec<String>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.split("\r\n").skip_while(|l| !l.starts_with(first)).skip(1);
    let mut rows = vec![];
    for l in lines.by_ref() {
        if l.is_empty() {
            break;
        }
        rows.push(l.split(',').map(str::to_owned).collect());
    }
    rows
}

/// The rows (after the header) of the first sheet of an XLSX file.
fn xlsx_table(bytes: &[u8]) -> Vec<Vec<String>> {
    let parts = xlsx_parts(bytes);
    let shared: Vec<String> =
        parts.get("xl/sharedStrings.xml").map(|x| x.split("<si>").skip(1).map(text_of).collect()).unwrap_or_default();
    let sheet = &parts["xl/worksheets/sheet1.xml"];
    sheet
        .split("<row")
        .skip(2)
        .map(|row| {
            row.split("<c ")
                .skip(1)
                .map(|c| {
                    let v = c.find("<v>").map(|i| &c[i + 3..i + 3 + c[i + 3..].find("</v>").unwrap()]).unwrap_or("");
                    if c.contains("t=\"s\"") { shared[v.parse::<usize>().unwrap()].clone() } else { v.to_owned() }
                })
                .collect()
        })
        .collect()
}

/// The numbers of a row after its first `skip` cells.
fn numbers(row: &[String], skip: usize) -> Vec<i64> {
    row[skip..].iter().map(|c| c.parse::<i64>().unwrap_or_else(|_| panic!("not a number: {c:?} in {row:?}"))).collect()
}

fn json_monthly(f: &serde_json::Value) -> Vec<i64> {
    let n = |k: &str| f.pointer(k).and_then(serde_json::Value::as_i64).unwrap_or_else(|| panic!("no {k} in {f}"));
    [
        "/patrols/morning",
        "/patrols/midday",
        "/patrols/evening",
        "/hazards_found",
        "/hazards_handled",
        "/hazards_open",
        "/visits/floating_population",
        "/visits/key_person",
        "/visits/special_place",
        "/disputes_found",
        "/disputes_resolved",
        "/disputes_escalated",
        "/disputes_backlog",
    ]
    .iter()
    .map(|k| n(k))
    .collect()
}

fn json_weekly(f: &serde_json::Value) -> Vec<i64> {
    let n = |k: &str| f.pointer(k).and_then(serde_json::Value::as_i64).unwrap_or_else(|| panic!("no {k} in {f}"));
    [
        "/patrols/morning",
        "/patrols/midday",
        "/patrols/evening",
        "/days_fully_patrolled",
        "/hazards_found",
        "/hazards_open",
        "/visits/floating_population",
        "/visits/key_person",
        "/visits/special_place",
        "/disputes_found",
        "/disputes_open",
    ]
    .iter()
    .map(|k| n(k))
    .collect()
}

/// The suite, on a server over the store `s` holds.
pub async fn figures_agree_everywhere(s: &Server) {
    use actix_web::test::TestRequest;
    s.clock.set(now());
    let store = s.store.clone();
    let nodes = off_runtime(move || store.grid_nodes()).unwrap();
    let villages: Vec<GridPath> =
        nodes.iter().filter(|n| n.path.level() == GridLevel::Village).map(|n| n.path.clone()).collect();
    let townships: Vec<GridPath> =
        nodes.iter().filter(|n| n.path.level() == GridLevel::Township).map(|n| n.path.clone()).collect();
    let mut groups: BTreeMap<GridPath, Vec<GridPath>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.path.level() == GridLevel::Group) {
        groups.entry(n.path.ancestor(GridLevel::Village)).or_default().push(n.path.clone());
    }
    let generated = generate(&villages, &groups);
    s.seed_many(&generated.records);
    let truth = &generated.truth;
    assert!(truth.iter().filter(|t| matches!(t, Truth::Hazard { .. })).count() > 5_000);

    // The agencies' counts: 0 for most villages of t01, some cases, some never entered.
    let mut counts = vec![];
    for (i, v) in villages.iter().enumerate().filter(|(_, v)| v.township() == Some("t01")) {
        for year in [2025, 2026] {
            for kind in CaseKind::ALL {
                if (i + year as usize).is_multiple_of(7) {
                    continue; // never entered
                }
                let count = u32::from((i + kind as usize).is_multiple_of(5));
                counts.push(CaseCount {
                    village: v.clone(),
                    year,
                    kind,
                    count,
                    entered_by: "police".into(),
                    entered_at: 0,
                });
            }
        }
    }
    let store = s.store.clone();
    off_runtime(|| store.put_case_counts(&counts)).unwrap();

    let county_cookie = s.web_session("county-admin");
    let get = |path: String, cookie: String| async move {
        let r: Resp = s.send(TestRequest::get().uri(&path).insert_header(("cookie", cookie))).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        r
    };
    let page = |path: String| {
        let c = county_cookie.clone();
        async move { String::from_utf8(get(path, c).await.body).unwrap() }
    };
    let json = |path: String| {
        let c = county_cookie.clone();
        async move { get(path, c).await.json() }
    };
    let names: HashMap<GridPath, String> = nodes.iter().map(|n| (n.path.clone(), n.name.clone())).collect();

    // ---- monthly figures: JSON, CSV, XLSX and the report page ----
    for (month, start, end) in
        [("2026-11", day(2026, 11, 1), day(2026, 12, 1)), ("2026-12", day(2026, 12, 1), day(2027, 1, 1))]
    {
        for t in ["t01", "t02"] {
            let tp = g(t);
            let want_total = monthly_ref(truth, &tp, start, end);
            let v = json(format!("/v1/reports/monthly/{t}/{month}")).await;
            assert_eq!(json_monthly(&v["total"]), want_total, "JSON total {t} {month}");
            assert_eq!(v["total"]["complete"], end <= now(), "{t} {month} says whether it is over");
            let mut want_rows: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for vf in v["villages"].as_array().unwrap() {
                let village = g(vf["village"].as_str().unwrap());
                let want = monthly_ref(truth, &village, start, end);
                assert_eq!(json_monthly(&vf["figures"]), want, "JSON {village} {month}");
                want_rows.insert(village.to_string(), want);
            }
            want_rows.insert(t.to_owned(), want_total.clone());
            let csv = get(format!("/v1/reports/monthly/{t}/{month}.csv"), county_cookie.clone()).await;
            let csv_rows = csv_table(&String::from_utf8(csv.body).unwrap(), "网格,");
            let xlsx =
                xlsx_table(&get(format!("/v1/reports/monthly/{t}/{month}.xlsx"), county_cookie.clone()).await.body);
            let html = page(format!("/web/reports/{t}/{month}")).await;
            let web_rows = html_table(&html, "report-table-0");
            for (source, rows) in [("CSV", &csv_rows), ("XLSX", &xlsx), ("report page", &web_rows)] {
                assert_eq!(rows.len(), want_rows.len(), "{source} {t} {month}: one row per village and the total");
                for row in rows {
                    assert_eq!(numbers(row, 2), want_rows[&row[0]], "{source} {} {month}", row[0]);
                }
            }
            if end > now() {
                assert!(html.contains("id=\"so-far\""), "the running month's page says it is so far");
            }
        }
    }

    // ---- weekly summary: JSON and the figures page, a past week and this one ----
    for monday in [day(2026, 11, 23), day(2026, 12, 7)] {
        let week = beijing_day(monday).format("%Y-%m-%d").to_string();
        for v in villages.iter().filter(|v| v.township() == Some("t01")).take(3) {
            let r = json(format!("/v1/reports/weekly?grid={v}&week_start={week}")).await;
            assert_eq!(json_weekly(&r["total"]), weekly_ref(truth, v, monday), "weekly {v} {week}");
            for w in r["grids"].as_array().unwrap() {
                let grp = g(w["grid"].as_str().unwrap());
                assert_eq!(json_weekly(w), weekly_ref(truth, &grp, monday), "weekly {grp} {week}");
            }
            let html = page(format!("/web/figures/weekly?grid={v}&week_start={week}")).await;
            for row in html_table(&html, "report-table-0") {
                let node = if row[1] == "合计" { v.clone() } else { g(&row[0]) };
                assert_eq!(numbers(&row, 2), weekly_ref(truth, &node, monday), "weekly page {node} {week}");
            }
        }
    }

    // ---- backlog now: JSON and the page ----
    for t in ["t01", "t02"] {
        let want = backlog_now_ref(truth, &g(t));
        let r = json(format!("/v1/reports/backlog?grid={t}")).await;
        assert_eq!(r["disputes"].as_array().unwrap().len(), want, "backlog JSON {t}");
        let html = page(format!("/web/figures/backlog?grid={t}")).await;
        assert!(html.contains(&format!("积案（满30天未化解的纠纷）：{want}件")), "backlog page {t}");
        // The same quantity: the running month's backlog is the backlog now.
        let m = json(format!("/v1/reports/monthly/{t}/2026-12")).await;
        assert_eq!(m["total"]["disputes_backlog"].as_u64(), Some(want as u64), "monthly so far and backlog page, {t}");
    }

    // ---- the four-none table, 2025 (over) and 2026 (so far) ----
    let entered: HashMap<(GridPath, i32, CaseKind), u32> =
        counts.iter().map(|c| ((c.village.clone(), c.year, c.kind), c.count)).collect();
    for year in [2025, 2026] {
        let backlog = backlog_villages(truth, year);
        let meets = |v: &GridPath| -> [bool; 4] {
            let zero = |k| entered.get(&(v.clone(), year, k)) == Some(&0);
            [zero(CaseKind::PublicSecurity), zero(CaseKind::Criminal), zero(CaseKind::Lawsuit), !backlog.contains(v)]
        };
        let want: Vec<u32> = (0..4).map(|i| villages.iter().filter(|v| meets(v)[i]).count() as u32).collect();
        let all_four = villages.iter().filter(|v| meets(v).iter().all(|m| *m)).count() as u32;
        let r = json(format!("/v1/reports/four-none/{year}")).await;
        assert_eq!(r["complete"], year == 2025);
        for (i, t) in r["totals"].as_array().unwrap().iter().enumerate() {
            assert_eq!(t["villages"].as_u64(), Some(u64::from(want[i])), "four-none {year} target {i}");
            assert_eq!(t["of"].as_u64(), Some(villages.len() as u64));
            let goal = [60u64, 70, 80, 90][i];
            assert_eq!(t["goal_met"].as_bool(), Some(u64::from(want[i]) * 100 >= goal * villages.len() as u64));
        }
        assert_eq!(r["all_four"]["villages"].as_u64(), Some(u64::from(all_four)));
        for row in r["villages"].as_array().unwrap() {
            let v = g(row["village"].as_str().unwrap());
            let got: Vec<bool> = row["meets"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
            assert_eq!(got, meets(&v), "four-none {year} {v}");
        }
        // The file and the page say the same.
        let xlsx = xlsx_table(&get(format!("/v1/reports/four-none/{year}.xlsx"), county_cookie.clone()).await.body);
        let csv = get(format!("/v1/reports/four-none/{year}.csv"), county_cookie.clone()).await;
        let csv_rows = csv_table(&String::from_utf8(csv.body).unwrap(), "乡镇,");
        for (source, rows) in [("XLSX", &xlsx), ("CSV", &csv_rows)] {
            assert_eq!(rows.len(), villages.len(), "{source} four-none {year}");
            for row in rows {
                let v = g(&row[2]);
                let yes = |c: &str| c == "是";
                let got = [yes(&row[4]), yes(&row[6]), yes(&row[8]), yes(&row[10])];
                assert_eq!(got, meets(&v), "{source} four-none {year} {v}");
            }
        }
        let html = page(format!("/web/four-none?year={year}")).await;
        let totals = html_table(&html, "four-none-totals");
        for (i, row) in totals.iter().take(4).enumerate() {
            assert_eq!(row[1], want[i].to_string(), "four-none page {year} target {i}");
        }
        assert_eq!(totals[4][1], all_four.to_string());
        assert_eq!(html.contains("id=\"so-far\""), year == 2026, "the running year says it is so far");
    }
    // Each pair: a village with a backlog case now fails this year's target.
    let now_backlog: BTreeSet<GridPath> = json("/v1/reports/backlog".into()).await["disputes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| g(d["grid"].as_str().unwrap()).ancestor(GridLevel::Village))
        .collect();
    let table = json("/v1/reports/four-none/2026".into()).await;
    for row in table["villages"].as_array().unwrap() {
        if now_backlog.contains(&g(row["village"].as_str().unwrap())) {
            assert_eq!(row["meets"][3], false, "{} has a backlog case now", row["village"]);
        }
    }

    // ---- what is open now: the overview, the township page, the lists, the map ----
    let overview = page("/web".into()).await;
    let mut county_open = [0i64; 4];
    for row in html_table(&overview, "townships") {
        let t = townships.iter().find(|t| names[*t] == row[0]).unwrap_or_else(|| panic!("township {}", row[0]));
        let want = open_now_ref(truth, t);
        assert_eq!(numbers(&row[..4], 1), want[..3].to_vec(), "overview {t}");
        for (a, b) in county_open.iter_mut().zip(want) {
            *a += b;
        }
        // The same quantity: the running month's open hazards are those open now.
        if matches!(t.township(), Some("t01" | "t02")) {
            let m = json(format!("/v1/reports/monthly/{t}/2026-12")).await;
            assert_eq!(m["total"]["hazards_open"].as_i64(), Some(want[0]), "overview and monthly so far, {t}");
        }
    }
    for t in ["t01", "t02"] {
        let html = page(format!("/web/t/{t}")).await;
        for row in html_table(&html, "villages") {
            let v = villages.iter().find(|v| names[*v] == row[0] && v.township() == Some(t)).unwrap();
            let want = open_now_ref(truth, v);
            assert_eq!(numbers(&row, 1), vec![want[0], want[1], want[3]], "township page {v}");
        }
    }
    let hazards_total = truth.iter().filter(|t| matches!(t, Truth::Hazard { .. })).count();
    let list = page("/web/hazards".into()).await;
    assert_eq!(html_text(&list, "count"), hazards_total.to_string(), "the hazard list's total");
    assert_eq!(html_text(&list, "open"), county_open[0].to_string(), "the hazard list's open count");
    let open_list = page("/web/hazards?open=1&page=2".into()).await;
    assert_eq!(html_text(&open_list, "count"), county_open[0].to_string(), "the open list's total");
    let map = page("/web/map".into()).await;
    assert_eq!(html_text(&map, "hazard-total"), hazards_total.to_string(), "the map's hazard count");
    assert!(map.contains("只画最近的"), "the map says it draws fewer than there are");
    let disputes = page("/web/disputes?grid=t01&open=1".into()).await;
    assert_eq!(html_text(&disputes, "disputes-total"), open_now_ref(truth, &g("t01"))[1].to_string());

    // ---- a submitted report keeps its figures; the county sees what moved ----
    let drafted = json("/v1/reports/monthly/t01/2026-11".into()).await["draft_figures"].clone();
    let figures: BTreeMap<String, i64> = serde_json::from_value(drafted).unwrap();
    let report = Record::new(
        g("t01"),
        "tc-t01-1",
        day(2026, 12, 5),
        RecordBody::MonthlyReport(MonthlyReport {
            month: "2026-11".into(),
            figures: figures.clone(),
            narrative: "十一月网格运行平稳".into(),
            submitted_at: Some(day(2026, 12, 5) + 9 * HOUR),
            returned: None,
        }),
    );
    s.seed_many(&[report]);
    let late = dispute(
        &g("t01/v01/g1"),
        day(2026, 11, 20),
        vec![next_event(&[], "gm-t01-v01-g1", day(2026, 11, 20), DisputeAction::Found { note: "补录".into() })],
    );
    s.seed_many(&[late]);
    let m = json("/v1/reports/monthly/t01/2026-11".into()).await;
    let kept: BTreeMap<String, i64> = serde_json::from_value(m["submitted_figures"].clone()).unwrap();
    assert_eq!(kept, figures, "the figures as submitted");
    let changed = m["changed_since_submission"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c["figure"] == "disputes.found" && c["now"].as_i64() == Some(figures["disputes.found"] + 1)),
        "{changed:?}"
    );
    let html = page("/web/reports/t01/2026-11".into()).await;
    let row = html_table(&html, "submitted-figures").into_iter().find(|r| r[0] == "新排查矛盾纠纷").unwrap();
    assert_eq!(row[1], figures["disputes.found"].to_string(), "as submitted");
    assert_eq!(row[2], (figures["disputes.found"] + 1).to_string(), "the records now");
    assert_eq!(row[3], "+1", "the difference marked");
}
