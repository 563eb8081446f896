//! A month of made-up records for the demo county, so a newcomer's
//! dashboard shows what a working county looks like: patrols (some
//! townships keep up better than others), hazards reported and handled,
//! visits, household ledgers ([`crate::demo_households`]: tens of
//! households a group with their members, ID numbers, categories, guardians
//! and 十户联防 groups), disputes at every level (some escalated to the
//! township and the county, some resolved, one conflict waiting), weekly
//! village meetings, and the townships' review (月研判) and report (月报) on
//! last month; with the agencies' case counts for last year and this year
//! ([`crate::demo_cases`]).
//!
//! Every record is made as its author would make it and enters through
//! the sync service as that user, so the rules judge each one as they judge
//! a phone's; a record they refused would be a bug here, and the loader
//! fails on it. Whoever records on a phone sends from an enrolled demo
//! phone, every batch signed with its key ([`crate::demo_phones`]); the
//! county centre's steps are web changes. Seeded: the same day gives the
//! same county.
//!
//! Last month's reports: each township holds its review on one of the
//! first working days of this month and then submits its report, most
//! within a week of it and before the 20th, a few late (the 20th to the
//! 27th), a few not at all. A report carries the figures the township's draft gave at
//! the moment it was submitted ([`crate::reports::monthly`] over the loaded
//! records) and is merged at that moment, so the server stamps it with it.
//! Nothing happens after the demo's `now`: on the first days of a month
//! the reports are still pending, as they would be. The month's figures
//! count only what the 30 days of records hold: the days of last month
//! before them have none.

use std::collections::{BTreeMap, HashMap};

use automerge::ActorId;
use chrono::{Datelike, NaiveDate, Weekday};
use gridsync_core::doc::RecordDoc;
use gridsync_core::events::Event;
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::*;
use gridsync_core::protocol::DocChanges;
use gridsync_core::reports::DEFAULT_BACKLOG_DAYS;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::demo::demo_county;
use crate::demo_households::{Ledgers, mark_township};
use crate::demo_phones::DemoPhones;
use crate::merge::Outcome;
use crate::reports::ReportError;
use crate::store::{GridNode, ServerStore, StoreError, User};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// Households in one village group: tens, as in Liangdang's (about 30).
pub const HOUSEHOLDS_PER_GROUP: std::ops::RangeInclusive<usize> = 20..=40;
/// Share of households that are tenants from elsewhere (流动人口).
const TENANT_SHARE: f64 = 0.03;

/// What was loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MonthLoaded {
    /// Records merged.
    pub records: usize,
    /// Records the rules refused (always 0 unless the generator is wrong).
    pub refused: usize,
    /// Demo phones enrolled (their changes carry their signatures).
    pub phones: usize,
    /// Agency case counts entered (village, year and kind).
    pub case_counts: usize,
    /// Townships whose report on last month is submitted.
    pub reports_submitted: usize,
}

/// A township's report on last month, to be submitted at `at` with the
/// figures the records give then.
struct PlannedReport {
    township: GridPath,
    by: String,
    month: String,
    at: i64,
}

/// A later step on a dispute, by someone other than its author.
struct Later {
    /// Who takes it.
    by: String,
    /// When.
    at: i64,
    /// What.
    action: DisputeAction,
    /// Taken at the same time as the step before it, from the same state
    /// (the two then conflict until someone settles them).
    concurrent_with_previous: bool,
}

/// Records by author, in the order they were made, and the later steps on
/// disputes.
#[derive(Default)]
struct Made {
    by_author: BTreeMap<String, Vec<Record>>,
    later: Vec<(uuid::Uuid, Vec<Later>)>,
    reports: Vec<PlannedReport>,
}

impl Made {
    fn add(&mut self, r: Record) {
        self.by_author.entry(r.author.clone()).or_default().push(r);
    }
}

fn event<A>(events: &[Event<A>], by: &str, at: i64, action: A) -> Event<A> {
    next_event(events, by, at, action)
}

fn lat_lon(g: &GridPath, rng: &mut StdRng) -> GeoPoint {
    // Liangdang lies around 33.9°N, 106.3°E; spread the groups over it.
    let n: u32 = g.to_string().bytes().map(u32::from).sum();
    let (bl, bo) = (33.80 + f64::from(n % 37) * 0.006, 106.15 + f64::from(n % 53) * 0.006);
    GeoPoint { lat: bl + rng.gen_range(-0.004..0.004), lon: bo + rng.gen_range(-0.004..0.004) }
}

/// Midnight, Beijing time, of the day `now` falls in, `days` days back.
fn day_start(now: i64, days: i64) -> i64 {
    beijing_midnight_ms(beijing_day(now)) - days * DAY
}

const FINDINGS: [&str; 4] = [
    "巡查村道、河道及重点户，未发现异常。",
    "沿河堤巡查一遍，水位正常。",
    "检查出租房消防通道，已提醒清理杂物。",
    "走访独居老人两户，情况良好。",
];
const HAZARDS: [(HazardCategory, &str, &str); 4] = [
    (HazardCategory::Geological, "后山坡面出现裂缝，下方有三户村民。", "后山滑坡点"),
    (HazardCategory::Fire, "柴草堆放在电线下方，存在火灾隐患。", "村委会东侧"),
    (HazardCategory::Traffic, "村道急弯处护栏缺失。", "村口急弯"),
    (HazardCategory::Flood, "河道淤积，汛期可能漫堤。", "河堤下段"),
];
const DISPUTES: [(DisputeCategory, &str); 4] = [
    (DisputeCategory::Land, "两户因承包地地界发生争执。"),
    (DisputeCategory::Neighbour, "邻里因排水沟堵塞产生矛盾。"),
    (DisputeCategory::Family, "赡养老人问题引发家庭纠纷。"),
    (DisputeCategory::Debt, "务工工资拖欠引发争执。"),
];

/// The demo's people by grid.
struct People(HashMap<GridPath, Vec<User>>);

impl People {
    fn of(users: &[User]) -> People {
        let mut m: HashMap<GridPath, Vec<User>> = HashMap::new();
        for u in users {
            m.entry(u.grid.clone()).or_default().push(u.clone());
        }
        People(m)
    }

    /// The first user of `role` at `g`.
    fn first(&self, g: &GridPath, role: Role) -> Option<&User> {
        self.0.get(g).and_then(|us| us.iter().find(|u| u.role == role))
    }
}

/// Build the month ending at `now`.
fn make(now: i64, rng: &mut StdRng) -> Made {
    let county = demo_county();
    let people = People::of(&county.users);
    let first = |g: &GridPath, role: Role| people.first(g, role);
    let mut made = Made::default();
    let groups: Vec<&GridPath> =
        county.nodes.iter().map(|n| &n.path).filter(|p| p.level() == GridLevel::Group).collect();
    // How well each township keeps its patrols up.
    let diligence: Vec<f64> = (0..12).map(|_| rng.gen_range(0.55..0.97)).collect();
    let start = day_start(now, 29);
    let days = ((now - start) / DAY + 1).clamp(1, 30);
    for g in &groups {
        let Some(gm) = first(g, Role::GridManager) else { continue };
        let t_index: usize = g.township().and_then(|t| t.trim_start_matches('t').parse().ok()).unwrap_or(1);
        let keep = diligence[(t_index.max(1) - 1) % diligence.len()];
        for d in 0..days {
            for (slot, hour) in [(PatrolSlot::Morning, 8), (PatrolSlot::Midday, 13), (PatrolSlot::Evening, 19)] {
                if !rng.gen_bool(keep) {
                    continue;
                }
                let at = start + d * DAY + hour * HOUR + rng.gen_range(0..40) * 60_000;
                if at > now {
                    continue;
                }
                let origin = lat_lon(g, rng);
                let route = (0..4)
                    .map(|i| GeoPoint {
                        lat: origin.lat + f64::from(i) * 0.0012,
                        lon: origin.lon + f64::from(i % 2) * 0.0015,
                    })
                    .collect();
                made.add(Record::new(
                    (*g).clone(),
                    &gm.id,
                    at,
                    RecordBody::Patrol(Patrol {
                        slot,
                        started_at: at,
                        ended_at: Some(at + 40 * 60_000),
                        route,
                        findings: FINDINGS[rng.gen_range(0..FINDINGS.len())].into(),
                        hazard_ids: IdSet::new(),
                    }),
                ));
            }
            if rng.gen_bool(0.35) {
                let at = start + d * DAY + 15 * HOUR;
                if at <= now {
                    let targets = [VisitTarget::FloatingPopulation, VisitTarget::KeyPerson, VisitTarget::SpecialPlace];
                    let target = targets[rng.gen_range(0..targets.len())];
                    made.add(Record::new(
                        (*g).clone(),
                        &gm.id,
                        at,
                        RecordBody::Visit(Visit {
                            target,
                            subject: match target {
                                VisitTarget::FloatingPopulation => "出租房租户".into(),
                                VisitTarget::KeyPerson => "重点人员回访".into(),
                                VisitTarget::SpecialPlace => "村小卖部".into(),
                            },
                            household_id: None,
                            visited_at: at,
                            findings: "情况正常，已登记。".into(),
                            follow_up_needed: rng.gen_bool(0.2),
                        }),
                    ));
                }
            }
        }
        // Hazards: about one a week per group, some handled, some removed.
        for _ in 0..rng.gen_range(1..=4) {
            let at = start + rng.gen_range(0..days) * DAY + 10 * HOUR;
            if at > now {
                continue;
            }
            let (category, description, place) = HAZARDS[rng.gen_range(0..HAZARDS.len())];
            let mut events = vec![event(&[], &gm.id, at, HazardAction::Reported { note: "巡查发现".into() })];
            if rng.gen_bool(0.6) {
                let e = event(&events, &gm.id, at + 2 * HOUR, HazardAction::Step { note: "已设置警示标志".into() });
                events.push(e);
                if rng.gen_bool(0.5) {
                    let e = event(&events, &gm.id, at + 3 * DAY, HazardAction::Resolved { note: "已清理完毕".into() });
                    events.push(e);
                }
            }
            made.add(Record::new(
                (*g).clone(),
                &gm.id,
                at,
                RecordBody::Hazard(Hazard {
                    category,
                    location: Location { text: place.into(), gps: Some(lat_lon(g, rng)) },
                    description: description.into(),
                    events: events.into_iter().filter(|e| e.at <= now).collect(),
                }),
            ));
        }
    }
    households(&county.nodes, &people, now, start, rng, &mut made);
    let nodes: Vec<GridPath> = county.nodes.iter().map(|n| n.path.clone()).collect();
    disputes_and_meetings(&nodes, &people, now, start, rng, &mut made);
    made
}

/// Disputes at every level, the villages' weekly meetings, the townships'
/// reviews and last month's reports.
fn disputes_and_meetings(nodes: &[GridPath], people: &People, now: i64, start: i64, rng: &mut StdRng, made: &mut Made) {
    let first = |g: &GridPath, role: Role| people.first(g, role);
    let root = GridPath::county();
    let county = first(&root, Role::CountyStaff);
    let mut conflict = false;
    let conflict_made = &mut conflict;
    for v in nodes.iter().filter(|p| p.level() == GridLevel::Village) {
        let Some(vl) = first(v, Role::VillageLeader) else { continue };
        let t = v.ancestor(GridLevel::Township);
        let tc = first(&t, Role::TownshipChief);
        let group = v.child("g1").unwrap_or_else(|_| v.clone());
        let Some(gm) = first(&group, Role::GridManager) else { continue };
        if rng.gen_bool(0.5) {
            let found = start + rng.gen_range(0..20) * DAY + 9 * HOUR;
            let (category, summary) = DISPUTES[rng.gen_range(0..DISPUTES.len())];
            let events = vec![event(&[], &gm.id, found, DisputeAction::Found { note: "村民反映".into() })];
            let mut later = Vec::new();
            let mut step = |by: &str, at: i64, action: DisputeAction, concurrent_with_previous: bool| {
                if at <= now {
                    later.push(Later { by: by.to_owned(), at, action, concurrent_with_previous });
                }
            };
            step(&vl.id, found + DAY, DisputeAction::Classified { category, note: "周排查会甄别".into() }, false);
            step(
                &vl.id,
                found + DAY + HOUR,
                DisputeAction::PlanSet { plan: "组织双方调解".into(), team: vec!["村调委会".into()] },
                false,
            );
            match rng.gen_range(0..5) {
                0 | 1 => {
                    step(&vl.id, found + 3 * DAY, DisputeAction::Resolved { note: "双方达成调解协议".into() }, false)
                }
                2 => {
                    let to = DisputeLevel::Township;
                    step(
                        &vl.id,
                        found + 3 * DAY,
                        DisputeAction::Escalated { to, note: "涉及宅基地，需镇上处理".into() },
                        false,
                    );
                    if let Some(tc) = tc
                        && rng.gen_bool(0.4)
                    {
                        let to = DisputeLevel::County;
                        step(
                            &tc.id,
                            found + 5 * DAY,
                            DisputeAction::Escalated { to, note: "涉及林权，报县".into() },
                            false,
                        );
                        if let Some(county) = county
                            && rng.gen_bool(0.5)
                        {
                            let note = "县里确权后双方认可".into();
                            step(&county.id, found + 8 * DAY, DisputeAction::Resolved { note }, false);
                        }
                    }
                }
                3 if !*conflict_made => {
                    // Two steps at once, waiting for the village leader.
                    *conflict_made = true;
                    step(&gm.id, found + 4 * DAY, DisputeAction::Resolved { note: "双方当场和解".into() }, false);
                    step(
                        &vl.id,
                        found + 4 * DAY + HOUR,
                        DisputeAction::Stabilized { note: "继续稳控观察".into() },
                        true,
                    );
                }
                _ => step(&gm.id, found + 2 * DAY, DisputeAction::FollowUp { note: "双方情绪稳定".into() }, false),
            }
            let rec = Record::new(
                group.clone(),
                &gm.id,
                found,
                RecordBody::Dispute(Dispute {
                    parties: vec!["张某".into(), "李某".into()],
                    category,
                    summary: summary.into(),
                    found_at: found,
                    events,
                }),
            );
            made.later.push((rec.id, later));
            made.add(rec);
        }
        // Weekly meetings (周排查), most villages most weeks.
        for w in 0..4 {
            let held = start + w * 7 * DAY + 2 * DAY + 9 * HOUR;
            if held > now || !rng.gen_bool(0.8) {
                continue;
            }
            made.add(Record::new(
                v.clone(),
                &vl.id,
                held,
                RecordBody::VillageMeeting(VillageMeeting {
                    held_at: held,
                    attendees: vec!["村支书".into(), "各组网格员".into()],
                    grid_summaries: GridNotes::new(),
                    disputes_reviewed: IdSet::new(),
                    decisions: "本周隐患逐户复查，纠纷按方案调解。".into(),
                }),
            ));
        }
    }
    reviews_and_reports(nodes, people, now, rng, made);
}

/// The household ledgers of every group, made by its grid manager in the
/// month's first two weeks (the ledgers were built when the county started
/// the month); each township's key persons and people under guardianship
/// marked among its own.
fn households(nodes: &[GridNode], people: &People, now: i64, start: i64, rng: &mut StdRng, made: &mut Made) {
    let mut ledgers = Ledgers::new(beijing_day(now));
    for t in nodes.iter().filter(|n| n.path.level() == GridLevel::Township) {
        let mut made_here: Vec<Record> = Vec::new();
        for g in nodes.iter().filter(|n| n.path.level() == GridLevel::Group && t.path.contains(&n.path)) {
            let Some(gm) = people.first(&g.path, Role::GridManager) else { continue };
            for no in 1..=rng.gen_range(HOUSEHOLDS_PER_GROUP) {
                let tenant = rng.gen_bool(TENANT_SHARE);
                let h = ledgers.household(&g.name, no, tenant, rng);
                let at =
                    start + rng.gen_range(0..14) * DAY + rng.gen_range(8..18) * HOUR + rng.gen_range(0..60) * MINUTE;
                made_here.push(Record::new(g.path.clone(), &gm.id, at.min(now), RecordBody::Household(h)));
            }
        }
        let mut ledgers_here: Vec<&mut Household> = made_here
            .iter_mut()
            .filter_map(|r| match &mut r.body {
                RecordBody::Household(h) => Some(h),
                _ => None,
            })
            .collect();
        let (key, guarded) = (rng.gen_range(2..=5), rng.gen_range(2..=4));
        mark_township(&mut ledgers_here, key, guarded, beijing_day(now), rng);
        for r in made_here {
            made.add(r);
        }
    }
}

/// Whether `day` is a working day: not a weekend, New Year's Day, the May
/// Day holiday or the National Day week (the days swapped around them are
/// not modelled).
fn working_day(day: NaiveDate) -> bool {
    let holiday = matches!((day.month(), day.day()), (1, 1) | (5, 1..=5) | (10, 1..=7));
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !holiday
}

/// The working days of `month_start`'s month from day `from` to day `to`.
fn working_days(month_start: NaiveDate, from: u32, to: u32) -> Vec<NaiveDate> {
    (from..=to).filter_map(|d| month_start.with_day(d)).filter(|d| working_day(*d)).collect()
}

/// The townships' reviews of last month (月研判, on one of the first four
/// working days of this month) and their reports on it: most submitted on
/// one of the five working days after the review (before the 20th), about
/// one in seven late (the 20th to the 27th), about one in seven never. Only what
/// happened by `now` is made: a review not held yet, or a report not
/// submitted yet, is not there.
fn reviews_and_reports(nodes: &[GridPath], people: &People, now: i64, rng: &mut StdRng, made: &mut Made) {
    let today = beijing_day(now);
    let this_month = today.with_day(1).unwrap_or(today);
    let last = this_month.pred_opt().unwrap_or(this_month).format("%Y-%m").to_string();
    let at = |day: NaiveDate, minutes: i64| beijing_midnight_ms(day) + minutes * MINUTE;
    for t in nodes.iter().filter(|p| p.level() == GridLevel::Township) {
        let Some(tc) = people.first(t, Role::TownshipChief) else { continue };
        let first_days = working_days(this_month, 1, 10);
        let Some(&review_day) = first_days.get(rng.gen_range(0..4)).or(first_days.first()) else { continue };
        let held = at(review_day, 9 * 60 + rng.gen_range(0..30));
        let fate = rng.gen_range(0..14);
        if held > now {
            continue;
        }
        made.add(Record::new(
            t.clone(),
            &tc.id,
            held,
            RecordBody::TownshipReview(TownshipReview {
                month: last.clone(),
                held_at: Some(held),
                attendees: vec!["镇长".into(), "综治办主任".into()],
                disputes_reviewed: IdSet::new(),
                decisions: "土地纠纷由司法所牵头，汛期隐患每周复查。".into(),
            }),
        ));
        let days = match fate {
            // Never submitted.
            0..=1 => continue,
            // Late.
            2..=3 => working_days(this_month, 20, 27),
            // Compiled and sent within a week of the review.
            _ => working_days(this_month, review_day.day() + 1, 19).into_iter().take(5).collect(),
        };
        // On the review's afternoon when no working day is left before the 20th.
        let (day, minutes) = match days.get(rng.gen_range(0..days.len().max(1))) {
            Some(d) => (*d, rng.gen_range(8 * 60 + 30..17 * 60 + 30)),
            None => (review_day, 16 * 60 + rng.gen_range(0..60)),
        };
        let submitted = at(day, minutes);
        if submitted <= now {
            made.reports.push(PlannedReport {
                township: t.clone(),
                by: tc.id.clone(),
                month: last.clone(),
                at: submitted,
            });
        }
    }
}

/// Log a refused demo record without its content: a household's
/// refusal names its members, and ledgers are never logged.
fn log_refused(by: &str, kind: RecordKind, o: &Outcome) {
    let Some(r) = o.rejections.first() else { return };
    if kind == RecordKind::Household {
        tracing::error!(by = %by, kind = kind.as_str(), reason = ?r.reason, "demo record refused");
    } else {
        tracing::error!(by = %by, kind = kind.as_str(), reason = ?r.reason, detail = %r.detail, "demo record refused");
    }
}

/// Load a month of records ending at `now` into `store`, each merged as its
/// author (from the author's demo phone, signed, for those who record on
/// one), then the agencies' case counts and last month's reports with the
/// figures their drafts gave when they were submitted. Fails if the rules
/// refuse any record (the generator's bug, not the county's), so a newcomer
/// never sees a half-loaded county silently.
pub fn load_month(store: &dyn ServerStore, now: i64, seed: u64) -> Result<MonthLoaded, StoreError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let made = make(now, &mut rng);
    let user_list = store.users()?;
    let users: HashMap<String, User> = user_list.iter().map(|u| (u.id.clone(), u.clone())).collect();
    let mut phones = DemoPhones::enroll(store, &user_list, day_start(now, 29), &mut rng)?;
    let mut loaded = MonthLoaded { phones: phones.len(), ..MonthLoaded::default() };
    for (author, records) in made.by_author {
        let Some(user) = users.get(&author) else { continue };
        for chunk in records.chunks(200) {
            let mut docs = Vec::with_capacity(chunk.len());
            for r in chunk {
                let mut doc = RecordDoc::create(r, phones.actor(&author))
                    .map_err(|e| StoreError::Corrupt(format!("demo record: {e}")))?;
                let changes = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
                docs.push(DocChanges { doc: *r.id.as_bytes(), changes });
            }
            let latest = chunk.iter().map(|r| r.updated_at).max().unwrap_or(now);
            for (o, r) in phones.send(store, user, docs, latest, now)?.iter().zip(chunk) {
                loaded.records += 1;
                if !o.rejections.is_empty() {
                    loaded.refused += 1;
                    log_refused(&author, r.kind(), o);
                }
            }
        }
    }
    for (id, steps) in made.later {
        let mut base: Option<(RecordDoc, Vec<automerge::ChangeHash>)> = None;
        for s in steps {
            let Some(user) = users.get(&s.by) else { continue };
            let actor = phones.actor(&s.by);
            let mut doc = match (&mut base, s.concurrent_with_previous) {
                // The same state the previous step started from.
                (Some((doc, _)), true) => doc.fork_as(actor),
                _ => {
                    let stored = store.snapshot(id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
                    RecordDoc::load(&stored.snapshot, actor)
                        .map_err(|e| StoreError::Corrupt(format!("demo record: {e}")))?
                }
            };
            let heads = doc.heads();
            let mut rec = doc.record().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let RecordBody::Dispute(d) = &mut rec.body {
                let e = next_event(&d.events, &s.by, s.at, s.action);
                d.events.push(e);
            }
            rec.updated_at = rec.updated_at.max(s.at);
            if !s.concurrent_with_previous {
                base = Some((doc.fork_as(ActorId::random()), heads.clone()));
            }
            doc.update(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let changes = doc.changes_since(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
            let docs = vec![DocChanges { doc: *id.as_bytes(), changes }];
            for o in phones.send(store, user, docs, s.at, now)? {
                if !o.rejections.is_empty() {
                    loaded.refused += 1;
                    log_refused(&s.by, RecordKind::Dispute, &o);
                }
            }
        }
    }
    loaded.case_counts = crate::demo_cases::load_case_counts(store, now, &mut rng)?.counts;
    // Each report is drafted from the records as they stood when it was
    // submitted, and merged at that moment: the server stamps a report's
    // submission with the time of the merge that submits it.
    let mut reports = made.reports;
    reports.sort_by_key(|r| r.at);
    for p in reports {
        let Some(user) = users.get(&p.by) else { continue };
        let draft = crate::reports::monthly(store, &p.township, &p.month, DEFAULT_BACKLOG_DAYS, p.at)
            .map_err(|e| match e {
                ReportError::Store(e) => e,
                other => StoreError::Corrupt(format!("demo report on {}: {other}", p.month)),
            })?
            .draft_figures;
        let narrative = narrative(&p.month, &draft);
        let report = Record::new(
            p.township.clone(),
            &p.by,
            p.at,
            RecordBody::MonthlyReport(MonthlyReport {
                month: p.month.clone(),
                figures: draft,
                narrative,
                submitted_at: Some(p.at),
                returned: None,
            }),
        );
        let mut doc = RecordDoc::create(&report, phones.actor(&p.by))
            .map_err(|e| StoreError::Corrupt(format!("demo record: {e}")))?;
        let changes = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
        let docs = vec![DocChanges { doc: *report.id.as_bytes(), changes }];
        for o in phones.send(store, user, docs, p.at, p.at)? {
            loaded.records += 1;
            if o.rejections.is_empty() {
                loaded.reports_submitted += 1;
            } else {
                loaded.refused += 1;
                log_refused(&p.by, RecordKind::MonthlyReport, &o);
            }
        }
    }
    phones.record_last_syncs(store, now, &mut rng)?;
    Ok(loaded)
}

/// The written part of a township's report, from its figures.
fn narrative(month: &str, f: &Figures) -> String {
    let get = |k: &str| f.get(k).copied().unwrap_or(0);
    let patrols = get("patrols.morning") + get("patrols.midday") + get("patrols.evening");
    let visits = get("visits.floating_population") + get("visits.key_person") + get("visits.special_place");
    let m = month.get(5..).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    format!(
        "{m}月，全镇各网格开展巡查{patrols}次、走访{visits}次；发现隐患{}处，已消除{}处，月末仍有{}处未消除，均已落实专人跟进。\
         排查矛盾纠纷{}件，化解{}件，上报{}件，积案{}件。下月继续按“一巡、二报、三查、四清”要求抓好网格日常工作。",
        get("hazards.found"),
        get("hazards.handled"),
        get("hazards.open"),
        get("disputes.found"),
        get("disputes.resolved"),
        get("disputes.escalated"),
        get("disputes.backlog"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ViewQuery;
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteServerStore;

    /// 2026-12-08 10:00, Beijing.
    const DEC_8: i64 = 1_796_695_200_000;

    fn fresh() -> (tempfile::TempDir, SqliteServerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteServerStore::open(dir.path().join("s.db")).unwrap();
        store.migrate().unwrap();
        crate::demo::load(&store).unwrap();
        (dir, store)
    }

    /// The demo county loaded once at [`DEC_8`], for every test that reads it.
    struct Loaded {
        _dir: tempfile::TempDir,
        store: SqliteServerStore,
        loaded: MonthLoaded,
    }

    fn county() -> &'static Loaded {
        static COUNTY: std::sync::OnceLock<Loaded> = std::sync::OnceLock::new();
        COUNTY.get_or_init(|| {
            let (dir, store) = fresh();
            let loaded = load_month(&store, DEC_8, 7).unwrap();
            Loaded { _dir: dir, store, loaded }
        })
    }

    fn records_of(store: &SqliteServerStore, kind: &str) -> Vec<Record> {
        store
            .records(&ViewQuery { sensitive: true, limit: Some(1_000_000), ..Default::default() })
            .unwrap()
            .into_iter()
            .filter(|v| v.kind.as_str() == kind)
            .map(|v| Record::from_json(&v.json).unwrap())
            .collect()
    }

    /// The month loads with nothing refused, and holds what the dashboard
    /// is meant to show: every kind, disputes at all three levels, one
    /// conflict waiting, hazards removed and open, last month's reports.
    #[test]
    fn a_month_loads_with_nothing_refused_and_every_kind_and_level() {
        let Loaded { store, loaded, .. } = county();
        assert_eq!(loaded.refused, 0);
        let all = store.records(&ViewQuery { sensitive: true, limit: Some(1_000_000), ..Default::default() }).unwrap();
        assert_eq!(all.len(), loaded.records);
        let count = |kind: RecordKind| all.iter().filter(|v| v.kind == kind).count();
        for kind in RecordKind::ALL {
            assert!(count(kind) > 0, "no {kind:?}");
        }
        assert!(count(RecordKind::Patrol) > 406 * 30, "about two patrols a day a group: {}", count(RecordKind::Patrol));
        let disputes: Vec<Dispute> = all
            .iter()
            .filter(|v| v.kind == RecordKind::Dispute)
            .filter_map(|v| match Record::from_json(&v.json).ok()?.body {
                RecordBody::Dispute(d) => Some(d),
                _ => None,
            })
            .collect();
        let states: Vec<DisputeState> = disputes.iter().map(Dispute::state).collect();
        for level in [DisputeLevel::Village, DisputeLevel::Township, DisputeLevel::County] {
            assert!(states.iter().any(|s| s.level == level), "no dispute at {level:?}");
        }
        assert_eq!(states.iter().filter(|s| s.status == DisputeStatus::Conflict).count(), 1);
        assert!(states.iter().any(|s| s.status == DisputeStatus::Resolved));
        let hazard_status: Vec<&str> =
            all.iter().filter(|v| v.kind == RecordKind::Hazard).map(|v| v.status.as_str()).collect();
        assert!(hazard_status.contains(&"resolved") && hazard_status.contains(&"open"));
        assert!(all.iter().any(|v| v.kind == RecordKind::MonthlyReport && v.status == "submitted"));
    }

    /// Seeded: the same day and seed make the same county (ids aside).
    #[test]
    fn the_same_seed_makes_the_same_month() {
        let shape = |seed| {
            let made = make(1_793_577_600_000, &mut StdRng::seed_from_u64(seed));
            made.by_author
                .values()
                .flatten()
                .map(|r| {
                    let mut j = r.to_json();
                    j["id"] = serde_json::Value::Null;
                    j.to_string()
                })
                .filter(|j| !j.contains("\"events\""))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(7), shape(7));
        assert_ne!(shape(7), shape(8));
    }

    /// The county centre's submissions page for November, seen on 8
    /// December: the townships that submitted did so on a working day
    /// between the 1st and now, after their review, and each report carries
    /// the figures its draft gave at that moment, which the county's view
    /// shows as submitted; the others are still pending (not due yet).
    #[test]
    fn last_months_reports_carry_their_figures_and_honest_submission_times() {
        let Loaded { store, loaded, .. } = county();
        let county_root = GridPath::county();
        let subs = crate::reports::submissions(store, &county_root, "2026-11", DEC_8).unwrap();
        assert_eq!(subs.townships.len(), 12);
        let dec_1 = beijing_midnight_ms(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        let submitted: Vec<_> = subs.townships.iter().filter(|t| t.submitted_at.is_some()).collect();
        assert_eq!(submitted.len(), loaded.reports_submitted);
        assert!(!submitted.is_empty(), "no township has submitted by the 8th");
        for t in &subs.townships {
            let Some(at) = t.submitted_at else {
                assert_eq!(t.status, crate::reports::SubmissionStatus::Pending, "{}", t.name);
                continue;
            };
            assert_eq!(t.status, crate::reports::SubmissionStatus::OnTime, "{}", t.name);
            assert!((dec_1..=DEC_8).contains(&at), "{} submitted at {at}", t.name);
            assert!(working_day(beijing_day(at)), "{} submitted on a holiday", t.name);
            let minutes = (at - beijing_midnight_ms(beijing_day(at))) / MINUTE;
            assert!((8 * 60..18 * 60).contains(&minutes), "{} submitted at minute {minutes}", t.name);
            let data = crate::reports::monthly(store, &t.township, "2026-11", DEFAULT_BACKLOG_DAYS, DEC_8).unwrap();
            let figures = data.submitted_figures.expect("the county sees the submitted figures");
            let then = crate::reports::monthly(store, &t.township, "2026-11", DEFAULT_BACKLOG_DAYS, at).unwrap();
            assert_eq!(figures, then.draft_figures, "{}: not the draft at its submission", t.name);
            assert!(figures["patrols.morning"] > 100, "{}: {figures:?}", t.name);
            assert!(figures.contains_key("disputes.backlog") && figures.len() >= 13, "{figures:?}");
            // Its review came first.
            let reviewed = records_of(store, "township_review")
                .into_iter()
                .filter(|r| r.grid == t.township)
                .any(|r| matches!(r.body, RecordBody::TownshipReview(ref v) if v.month == "2026-11" && v.held_at.is_some_and(|h| h < at)));
            assert!(reviewed, "{} reported before its review", t.name);
        }
        assert!(submitted.len() < 12, "every township submitted within a week: not how a county runs");
        // Each at its own moment, none when the demo was loaded.
        let mut minutes: Vec<i64> = submitted.iter().filter_map(|t| t.submitted_at).map(|at| at / MINUTE).collect();
        minutes.sort_unstable();
        minutes.dedup();
        assert_eq!(minutes.len(), submitted.len(), "two townships submitted in the same minute");
        assert!(submitted.iter().all(|t| t.submitted_at != Some(DEC_8)), "submitted when the demo was loaded");
    }

    /// On the 1st of a month no report on the last one is submitted yet;
    /// at the month's end some are late; none is ever after now.
    #[test]
    fn reports_are_never_submitted_after_now() {
        let dec_1_10am = 1_796_090_400_000;
        assert!(make(dec_1_10am, &mut StdRng::seed_from_u64(7)).reports.is_empty());
        let dec_31 = DEC_8 + 23 * DAY;
        let late = beijing_midnight_ms(NaiveDate::from_ymd_opt(2026, 12, 20).unwrap());
        let mut seen_late = false;
        for seed in 1..=4 {
            let reports = make(dec_31, &mut StdRng::seed_from_u64(seed)).reports;
            assert!(reports.iter().all(|r| r.at <= dec_31 && r.month == "2026-11"));
            seen_late |= reports.iter().any(|r| r.at >= late);
        }
        assert!(seen_late, "no township is ever late");
    }

    /// The four-none page of the demo: every village has the three
    /// agencies' counts for last year and this year; last year's shares
    /// are the seed's 2021 ones, this year's so far are alike.
    #[test]
    fn the_four_none_table_has_counts_for_both_years() {
        use crate::reports::FourNoneTarget;
        let Loaded { store, loaded, .. } = county();
        assert_eq!(loaded.case_counts, 121 * 3 * 2);
        let root = GridPath::county();
        let last = crate::reports::four_none(store, &root, 2025, DEFAULT_BACKLOG_DAYS, DEC_8).unwrap();
        let this = crate::reports::four_none(store, &root, 2026, DEFAULT_BACKLOG_DAYS, DEC_8).unwrap();
        for table in [&last, &this] {
            assert_eq!(table.villages.len(), 121);
            for v in &table.villages {
                assert!(v.public_security_cases.is_some() && v.criminal_cases.is_some() && v.lawsuits.is_some());
            }
        }
        let meeting = |t: &crate::reports::FourNoneTable, target: FourNoneTarget| {
            t.totals.iter().find(|x| x.target == target).map(|x| x.villages).unwrap()
        };
        assert_eq!(meeting(&last, FourNoneTarget::NoPublicSecurityCase), 90);
        assert_eq!(meeting(&last, FourNoneTarget::NoCriminalCase), 105);
        assert_eq!(meeting(&last, FourNoneTarget::NoLawsuit), 100);
        for (target, last_year) in [
            (FourNoneTarget::NoPublicSecurityCase, 90),
            (FourNoneTarget::NoCriminalCase, 105),
            (FourNoneTarget::NoLawsuit, 100),
        ] {
            let so_far = meeting(&this, target);
            // Eleven months in, about as many villages with cases as last year.
            assert!(so_far >= last_year - 8 && so_far <= 121, "{target:?}: {so_far}");
            assert!(so_far < 121, "{target:?}: no village had a case all year");
        }
        // The entries are the agencies' own.
        let counts = store.case_counts(2026).unwrap();
        assert!(counts.iter().all(|c| ["police", "procuratorate", "court"].contains(&c.entered_by.as_str())));
        assert!(counts.iter().all(|c| c.entered_at <= DEC_8));
        let entered =
            crate::store::AuditQuery { action: Some("enter_case_counts".into()), limit: 1000, ..Default::default() };
        assert_eq!(store.audit_log(&entered).unwrap().len(), 6, "each entry in the audit log");
    }

    /// The village leader's household ledgers: tens of households a group,
    /// each with two to six members with relations and valid, unique ID
    /// numbers, in 十户联防 groups; a few percent tenants (流动人口); in every
    /// township some key persons and some people under guardianship, each
    /// of those with a guardian of the household.
    #[test]
    fn households_have_members_with_id_numbers_categories_and_guardians() {
        let Loaded { store, .. } = county();
        let households = records_of(store, "household");
        let mut per_group: HashMap<GridPath, usize> = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        let mut by_category: HashMap<(String, &str), usize> = HashMap::new();
        let mut people = 0;
        for r in &households {
            let RecordBody::Household(h) = &r.body else { unreachable!() };
            *per_group.entry(r.grid.clone()).or_default() += 1;
            assert!((2..=6).contains(&h.members.len()), "{} members", h.members.len());
            assert!(h.ten_household_group.ends_with("联防组"));
            assert!(h.members.values().any(|m| m.relation == "户主" && m.name == h.head_name));
            for m in h.members.values() {
                people += 1;
                assert!(valid_id_number(&m.id_number), "an invalid ID number");
                assert!(ids.insert(m.id_number.clone()), "an ID number given twice");
                assert!(!m.relation.is_empty());
                let t = r.grid.township().unwrap_or_default().to_owned();
                *by_category.entry((t, m.category.label_zh())).or_default() += 1;
                if m.category == PersonCategory::UnderGuardianship {
                    let g = m.guardian.as_deref().expect("a guardian");
                    assert!(h.members.values().any(|o| o.name == g && o.id_number != m.id_number));
                }
            }
        }
        assert_eq!(per_group.len(), 406);
        assert!(per_group.values().all(|n| HOUSEHOLDS_PER_GROUP.contains(n)));
        let total = |c: PersonCategory| {
            by_category.iter().filter(|((_, k), _)| *k == c.label_zh()).map(|(_, n)| n).sum::<usize>()
        };
        let floating = total(PersonCategory::Floating) * 1000 / people;
        assert!((5..=60).contains(&floating), "流动人口 {floating}‰");
        assert!(total(PersonCategory::Resident) * 100 / people >= 90);
        for t in 1..=12 {
            let t = format!("t{t:02}");
            let of = |c: PersonCategory| by_category.get(&(t.clone(), c.label_zh())).copied().unwrap_or(0);
            assert!((2..=5).contains(&of(PersonCategory::KeyPerson)), "{t}: {}", of(PersonCategory::KeyPerson));
            assert!((2..=4).contains(&of(PersonCategory::UnderGuardianship)), "{t}");
        }
    }

    /// A demo record's provenance page: each change a phone made carries a
    /// valid signature of that person's enrolled phone, dated when it was
    /// made; the county centre's step on the web is a web change. The
    /// devices page lists the demo phones, each synced after its last
    /// change and never after now.
    #[test]
    fn demo_records_carry_their_phones_signatures() {
        use crate::provenance::{Verification, record_provenance};
        let Loaded { store, loaded, .. } = county();
        assert_eq!(loaded.phones, 406 + 121 + 121 + 28);
        let devices = store.devices().unwrap();
        assert_eq!(devices.len(), loaded.phones);
        for d in &devices {
            assert!(d.name.ends_with("（演示）"));
            let last = d.last_sync_at.expect("a demo phone has synced");
            assert!(d.created_at < last && last <= DEC_8);
        }
        let by_id: HashMap<&str, &crate::store::Device> = devices.iter().map(|d| (d.id.as_str(), d)).collect();
        let patrol = &records_of(store, "patrol")[0];
        let rows = record_provenance(store, patrol.id).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verification, Verification::Valid);
        assert_eq!(rows[0].user_id, patrol.author);
        assert_eq!(rows[0].time, patrol.created_at / 1000 * 1000);
        let device = by_id[rows[0].device_id.as_str()];
        assert!(device.last_sync_at.unwrap() >= patrol.created_at);
        for kind in ["household", "monthly_report", "township_review", "village_meeting", "hazard"] {
            let r = &records_of(store, kind)[0];
            let rows = record_provenance(store, r.id).unwrap();
            assert!(rows.iter().all(|c| c.verification == Verification::Valid), "{kind}");
        }
        // A dispute the county resolved: the phones' steps signed, the
        // county centre's a web change.
        let by_county = records_of(store, "dispute")
            .into_iter()
            .find(|r| matches!(&r.body, RecordBody::Dispute(d) if d.events.iter().any(|e| e.by == "county-admin")))
            .expect("a dispute the county resolved");
        let rows = record_provenance(store, by_county.id).unwrap();
        assert!(rows.len() >= 4);
        for c in &rows {
            let expected = if c.user_id == "county-admin" { Verification::Web } else { Verification::Valid };
            assert_eq!(c.verification, expected, "{}", c.user_id);
            assert!(c.time >= DEC_8 - 40 * DAY && c.time <= DEC_8, "a change dated {}", c.time);
        }
        assert!(rows.iter().any(|c| c.verification == Verification::Web));
    }
}
