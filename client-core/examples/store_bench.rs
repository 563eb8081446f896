//! Phone store benchmark: the client figures of the design brief.
//!
//! ```text
//! cargo run --release -p gridsync-core --example store_bench -- [--records N] [--open-records N] [--writes N] [--smoke]
//! ```
//!
//! Prints one JSON line per figure:
//! - `create`, `update`: ms per record over `--writes` saves into a file
//!   store (each its own durable transaction), mean and p99. Target < 2 ms.
//! - `list_kind_date`, `list_name_search`: ms to list from a store of
//!   `--records` records (default 10,000), first call and median of 20.
//!   Target < 50 ms.
//! - `open`: ms to open a store of `--open-records` records (default
//!   50,000) and list its first page, and the peak resident memory of a
//!   fresh process doing only that. Target < 200 ms in < 64 MiB.
//!
//! The large stores are filled the way a first sync fills them (received
//! changes applied in a few big transactions), which is much faster than
//! one durable transaction per record and gives the same file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::events::Event;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{
    Dispute, DisputeAction, DisputeCategory, GeoPoint, Hazard, HazardAction, HazardCategory, Household, Location,
    Member, Patrol, PatrolSlot, PersonCategory, Record, RecordBody, RecordKind, Visit, VisitTarget,
};
use gridsync_core::store::{ListFilter, Store};
use serde_json::json;
use uuid::Uuid;

/// 2024-01-01 00:00 Beijing time, ms.
const T0: i64 = 1_704_038_400_000;
const DAY: i64 = 86_400_000;

const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"];
const GIVEN: [&str; 16] = [
    "秀英", "建国", "桂兰", "志强", "玉梅", "德明", "小军", "小红", "海燕", "文华", "国庆", "春花", "明", "刚", "芳",
    "伟",
];

struct Args {
    records: usize,
    open_records: usize,
    writes: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { records: 10_000, open_records: 50_000, writes: 1_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> Result<usize> {
            it.next().with_context(|| format!("{name} needs a number"))?.parse().with_context(|| name.to_owned())
        };
        match flag.as_str() {
            "--records" => a.records = num("--records")?,
            "--open-records" => a.open_records = num("--open-records")?,
            "--writes" => a.writes = num("--writes")?,
            "--smoke" => a = Args { records: 300, open_records: 500, writes: 30 },
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// Small deterministic generator, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn name(&mut self) -> String {
        format!("{}{}", SURNAMES[self.below(SURNAMES.len())], GIVEN[self.below(GIVEN.len())])
    }
}

fn event<A>(by: &str, at: i64, parents: Vec<String>, action: A) -> Event<A> {
    Event { id: Uuid::new_v4().to_string(), at, by: by.to_owned(), parents, action }
}

/// A realistic record of a county's mix: mostly patrols, then visits,
/// hazards, households and disputes, spread over a year and 40 groups.
fn record(rng: &mut Rng, i: usize) -> Result<Record> {
    let at = T0 + (rng.below(365) as i64) * DAY + (rng.below(86_400) as i64) * 1000;
    let grid = GridPath::parse(&format!("t{:02}/v{:02}/g{}", 1 + i % 4, 1 + i % 10, 1 + i % 4))?;
    let by = format!("gm{}", i % 40);
    let body = match rng.below(20) {
        0..=7 => RecordBody::Patrol(Patrol {
            slot: [PatrolSlot::Morning, PatrolSlot::Midday, PatrolSlot::Evening][rng.below(3)],
            started_at: at,
            ended_at: Some(at + 3_600_000),
            route: (0..8).map(|k| GeoPoint { lat: 33.9 + f64::from(k) * 0.001, lon: 106.3 }).collect(),
            findings: "巡查正常，未发现异常情况".into(),
            hazard_ids: BTreeMap::new(),
        }),
        8..=11 => RecordBody::Visit(Visit {
            target: [VisitTarget::FloatingPopulation, VisitTarget::KeyPerson, VisitTarget::SpecialPlace][rng.below(3)],
            subject: format!("{}家出租房", rng.name()),
            household_id: None,
            visited_at: at,
            findings: "租户信息已核实登记".into(),
            follow_up_needed: rng.below(4) == 0,
        }),
        12..=14 => {
            let first = event(&by, at, vec![], HazardAction::Reported { note: String::new() });
            let mut events = vec![first];
            if rng.below(2) == 0 {
                let parents = vec![events[0].id.clone()];
                events.push(event(&by, at + DAY, parents, HazardAction::Resolved { note: "已处置".into() }));
            }
            RecordBody::Hazard(Hazard {
                category: [HazardCategory::Fire, HazardCategory::Geological, HazardCategory::Traffic][rng.below(3)],
                location: Location { text: "村道拐弯处".into(), gps: Some(GeoPoint { lat: 33.93, lon: 106.31 }) },
                description: "路边山体有松动落石，雨天危险".into(),
                events,
            })
        }
        15..=17 => {
            let mut members = BTreeMap::new();
            let head = rng.name();
            for k in 0..(2 + rng.below(4)) {
                let name = if k == 0 { head.clone() } else { rng.name() };
                let category = if rng.below(30) == 0 { PersonCategory::KeyPerson } else { PersonCategory::Resident };
                members.insert(
                    format!("m{k}"),
                    Member {
                        name, relation: "家庭成员".into(), category, id_number: String::new(), guardian: None
                    },
                );
            }
            RecordBody::Household(Household {
                head_name: head,
                address: format!("两当县某镇某村{}组{}号", 1 + i % 4, i % 100),
                ten_household_group: String::new(),
                members,
                machinery: BTreeMap::new(),
                vehicles: BTreeMap::new(),
                facilities: BTreeMap::new(),
                notes: String::new(),
            })
        }
        _ => {
            let found = event(&by, at, vec![], DisputeAction::Found { note: String::new() });
            let parents = vec![found.id.clone()];
            let classified = event(
                "vl1",
                at + DAY,
                parents,
                DisputeAction::Classified { category: DisputeCategory::Neighbour, note: "周例会甄别".into() },
            );
            RecordBody::Dispute(Dispute {
                parties: vec![rng.name(), rng.name()],
                category: DisputeCategory::Land,
                summary: "两户因宅基地边界争执，多次协商未果".into(),
                found_at: at,
                events: vec![found, classified],
            })
        }
    };
    Ok(Record::new(grid, &by, at, body))
}

/// Fill `path` with `n` records the way a first sync does.
fn fill(path: &Path, n: usize, seed: u64) -> Result<()> {
    let mut store = Store::open(path)?;
    let mut rng = Rng(seed);
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(2_000);
        let mut docs = Vec::with_capacity(batch);
        for i in done..done + batch {
            let rec = record(&mut rng, i)?;
            let mut doc = RecordDoc::create(&rec, ActorId::random())?;
            let changes: Vec<Vec<u8>> = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
            docs.push((rec.id, changes));
        }
        store.transaction(|tx| {
            for (id, changes) in &docs {
                tx.apply_remote(*id, changes)?;
            }
            Ok(())
        })?;
        done += batch;
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn mean_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let p99 = v.get(((v.len() as f64) * 0.99).ceil() as usize - 1).copied().unwrap_or(0.0);
    (mean, p99)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn bench_writes(dir: &Path, writes: usize) -> Result<()> {
    let mut store = Store::open(dir.join("writes.db"))?;
    let mut rng = Rng(7);
    let mut created = Vec::with_capacity(writes);
    let mut times = Vec::with_capacity(writes);
    for i in 0..writes {
        let rec = record(&mut rng, i)?;
        let t = Instant::now();
        store.create(&rec)?;
        times.push(ms(t));
        created.push(rec);
    }
    let (mean, p99) = mean_p99(times);
    println!(
        "{}",
        json!({"figure": "create", "n": writes, "mean_ms": round(mean), "p99_ms": round(p99), "target_ms": 2})
    );

    let mut times = Vec::with_capacity(writes);
    for (i, rec) in created.iter().enumerate() {
        let mut rec = rec.clone();
        rec.updated_at += 60_000;
        match &mut rec.body {
            RecordBody::Patrol(p) => p.findings = format!("复查第{i}次：护栏松动"),
            RecordBody::Visit(v) => v.follow_up_needed = !v.follow_up_needed,
            RecordBody::Hazard(h) => {
                let parents = gridsync_core::events::heads(&h.events);
                h.events.push(event("gm1", rec.updated_at, parents, HazardAction::Step { note: "设置警示牌".into() }));
            }
            RecordBody::Household(h) => h.notes = format!("第{i}次走访更新"),
            RecordBody::Dispute(d) => {
                let parents = gridsync_core::events::heads(&d.events);
                d.events.push(event(
                    "gm1",
                    rec.updated_at,
                    parents,
                    DisputeAction::FollowUp { note: "再次调解".into() },
                ));
            }
            // The benchmark creates field records only.
            _ => {}
        }
        let t = Instant::now();
        store.update(&rec)?;
        times.push(ms(t));
    }
    let (mean, p99) = mean_p99(times);
    println!(
        "{}",
        json!({"figure": "update", "n": writes, "mean_ms": round(mean), "p99_ms": round(p99), "target_ms": 2})
    );
    Ok(())
}

fn bench_list(dir: &Path, records: usize) -> Result<()> {
    let path = dir.join("list.db");
    fill(&path, records, 11)?;
    let store = Store::open(&path)?;
    let filters = [
        (
            "list_kind_date",
            ListFilter {
                kind: Some(RecordKind::Patrol),
                from: Some(T0 + 90 * DAY),
                until: Some(T0 + 180 * DAY),
                limit: Some(100),
                ..Default::default()
            },
        ),
        ("list_name_search", ListFilter { search: Some("王秀英".into()), limit: Some(100), ..Default::default() }),
    ];
    for (name, f) in &filters {
        let t = Instant::now();
        let rows = store.list(f)?.len();
        let first = ms(t);
        let mut runs: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                store.list(f).map(|_| ms(t))
            })
            .collect::<Result<_, _>>()?;
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        println!(
            "{}",
            json!({"figure": name, "records": records, "rows": rows, "first_ms": round(first),
                   "median_ms": round(median), "target_ms": 50})
        );
    }
    Ok(())
}

/// Child process: open the store, list the first page, report time and
/// peak memory of this process.
fn open_child(path: &str) -> Result<()> {
    let t = Instant::now();
    let store = Store::open(path)?;
    let rows = store.list(&ListFilter::default())?.len();
    let elapsed = ms(t);
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = |key: &str| -> Result<f64> {
        let line = status.lines().find(|l| l.starts_with(key)).with_context(|| format!("no {key}"))?;
        let n: f64 = line.split_whitespace().nth(1).context("malformed status line")?.parse()?;
        Ok(n)
    };
    println!(
        "{}",
        json!({"ms": round(elapsed), "rows": rows, "peak_rss_mib": round(kib("VmHWM:")? / 1024.0),
               "rss_mib": round(kib("VmRSS:")? / 1024.0)})
    );
    Ok(())
}

fn bench_open(dir: &Path, records: usize) -> Result<()> {
    let path = dir.join("open.db");
    let t = Instant::now();
    fill(&path, records, 13)?;
    let fill_s = t.elapsed().as_secs_f64();
    let file_mib = std::fs::metadata(&path)?.len() as f64 / (1024.0 * 1024.0);
    let path_str = path.to_str().context("temp path is not UTF-8")?;
    // Two runs: the first may read the file from disk, the second from the
    // page cache as on a phone that reopens the app.
    for run in ["first", "second"] {
        let out = Command::new(std::env::current_exe()?).args(["--open-child", path_str]).output()?;
        if !out.status.success() {
            bail!("open child failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let extra = json!({"figure": "open", "run": run, "records": records, "file_mib": round(file_mib),
                           "fill_s": round(fill_s), "target_ms": 200, "target_mib": 64});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        println!("{v}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--open-child") {
        return open_child(argv.get(2).context("--open-child needs a path")?);
    }
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    bench_writes(dir.path(), args.writes)?;
    bench_list(dir.path(), args.records)?;
    bench_open(dir.path(), args.open_records)?;
    Ok(())
}
