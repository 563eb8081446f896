//! A month of made-up records for the demo county, so a newcomer's
//! dashboard shows what a working county looks like: patrols (some
//! townships keep up better than others), hazards reported and handled,
//! visits, household ledgers, disputes at every level (some escalated to
//! the township and the county, some resolved, one conflict waiting),
//! weekly village meetings, township reviews and last month's reports.
//!
//! Every record is made as its author would make it and enters through
//! [`crate::sync::merge_records`] as that user, so the rules judge each one
//! as they judge a phone's; a record they refused would be a bug here, and
//! the loader fails on it. Seeded: the same day gives the same county.

use std::collections::{BTreeMap, HashMap};

use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::events::Event;
use gridsync_core::grid::{GridLevel, GridPath, Role};
use gridsync_core::model::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::demo::demo_county;
use crate::store::{IncomingDoc, ServerStore, StoreError, User};
use crate::sync::{merge_records, web_pusher};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// What was loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MonthLoaded {
    /// Records merged.
    pub records: usize,
    /// Records the rules refused (always 0 unless the generator is wrong).
    pub refused: usize,
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
    let mut name_no = 0usize;
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
        // Household ledgers.
        for h in 0..2 {
            name_no += 1;
            let head = crate::demo::person_name(10_000 + name_no);
            let mut members = Members::new();
            members.insert(
                "m1".into(),
                Member {
                    name: crate::demo::person_name(20_000 + name_no),
                    relation: "配偶".into(),
                    category: PersonCategory::Resident,
                    id_number: String::new(),
                    guardian: None,
                },
            );
            made.add(Record::new(
                (*g).clone(),
                &gm.id,
                start + h * HOUR,
                RecordBody::Household(Household {
                    head_name: head,
                    address: format!("{}号", 10 + h),
                    ten_household_group: String::new(),
                    members,
                    machinery: Assets::new(),
                    vehicles: Assets::new(),
                    facilities: Assets::new(),
                    notes: String::new(),
                }),
            ));
        }
    }
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
    // Township reviews (月研判) and last month's reports.
    for t in nodes.iter().filter(|p| p.level() == GridLevel::Township) {
        let Some(tc) = first(t, Role::TownshipChief) else { continue };
        let last = beijing_day(start - DAY).format("%Y-%m").to_string();
        made.add(Record::new(
            t.clone(),
            &tc.id,
            start + 5 * DAY,
            RecordBody::TownshipReview(TownshipReview {
                month: last.clone(),
                held_at: Some(start + 5 * DAY),
                attendees: vec!["镇长".into(), "综治办主任".into()],
                disputes_reviewed: IdSet::new(),
                decisions: "土地纠纷由司法所牵头，汛期隐患每周复查。".into(),
            }),
        ));
        if rng.gen_bool(0.75) {
            made.add(Record::new(
                t.clone(),
                &tc.id,
                start + 10 * DAY,
                RecordBody::MonthlyReport(MonthlyReport {
                    month: last,
                    figures: Figures::new(),
                    narrative: "本月各村按要求开展巡查，排查化解矛盾纠纷，隐患整改有序推进。".into(),
                    submitted_at: Some(start + 10 * DAY),
                    returned: None,
                }),
            ));
        }
    }
}

/// Load a month of records ending at `now` into `store`, each merged as its
/// author. Fails if the rules refuse any (the generator's bug, not the
/// county's), so a newcomer never sees a half-loaded county silently.
pub fn load_month(store: &dyn ServerStore, now: i64, seed: u64) -> Result<MonthLoaded, StoreError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let made = make(now, &mut rng);
    let users: HashMap<String, User> = store.users()?.into_iter().map(|u| (u.id.clone(), u)).collect();
    let mut loaded = MonthLoaded::default();
    for (author, records) in made.by_author {
        let Some(user) = users.get(&author) else { continue };
        let pusher = web_pusher(user);
        for chunk in records.chunks(200) {
            let mut incoming = Vec::with_capacity(chunk.len());
            for r in chunk {
                let mut doc = RecordDoc::create(r, ActorId::random())
                    .map_err(|e| StoreError::Corrupt(format!("demo record: {e}")))?;
                let changes = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
                incoming.push(IncomingDoc::unsigned(r.id, changes));
            }
            for o in merge_records(store, &pusher, &incoming, now)? {
                loaded.records += 1;
                if !o.rejections.is_empty() {
                    loaded.refused += 1;
                    tracing::error!(author = %author, reason = ?o.rejections[0].reason, detail = %o.rejections[0].detail, "demo record refused");
                }
            }
        }
    }
    for (id, steps) in made.later {
        let mut base: Option<(RecordDoc, Vec<automerge::ChangeHash>)> = None;
        for s in steps {
            let Some(user) = users.get(&s.by) else { continue };
            let mut doc = match (&mut base, s.concurrent_with_previous) {
                // The same state the previous step started from.
                (Some((doc, _)), true) => doc.fork_as(ActorId::random()),
                _ => {
                    let stored = store.snapshot(id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
                    RecordDoc::load(&stored.snapshot, ActorId::random())
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
            let incoming = IncomingDoc::unsigned(id, changes);
            for o in merge_records(store, &web_pusher(user), std::slice::from_ref(&incoming), now)? {
                if !o.rejections.is_empty() {
                    loaded.refused += 1;
                    tracing::error!(by = %s.by, reason = ?o.rejections[0].reason, detail = %o.rejections[0].detail, "demo step refused");
                }
            }
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ViewQuery;
    use crate::store::sqlite::SqliteServerStore;

    fn fresh() -> (tempfile::TempDir, SqliteServerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteServerStore::open(dir.path().join("s.db")).unwrap();
        store.migrate().unwrap();
        crate::demo::load(&store).unwrap();
        (dir, store)
    }

    /// The month loads with nothing refused, and holds what the dashboard
    /// is meant to show: every kind, disputes at all three levels, one
    /// conflict waiting, hazards removed and open, last month's reports.
    #[test]
    fn a_month_loads_with_nothing_refused_and_every_kind_and_level() {
        let (_dir, store) = fresh();
        let now = 1_793_577_600_000; // 2026-11-02 08:00, Beijing
        let loaded = load_month(&store, now, 7).unwrap();
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
}
