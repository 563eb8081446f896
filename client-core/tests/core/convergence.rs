//! Convergence of record documents: for every record kind, replicas of one
//! record edited concurrently on different phones end up identical whatever
//! order they are merged in, and nobody's edit, appended event or attached
//! photo is lost (the first photo on each phone makes the record's
//! `attachments` map, so the maps are made concurrently).

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, ChangeHash};
use gridsync_core::doc::RecordDoc;
use gridsync_core::events::Event;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{
    Asset, Dispute, DisputeAction, DisputeCategory, DisputeLevel, DisputeStatus, GeoPoint, GridWeekNote, Hazard,
    HazardAction, HazardCategory, Household, Location, Member, MonthlyReport, Patrol, PatrolSlot, PersonCategory,
    Record, RecordBody, RecordKind, TownshipReview, VillageMeeting, Visit, VisitTarget, next_event,
};
use gridsync_core::model::{Attachment, sha256_hex, takes_photos};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

/// 2024-05-01 08:00 in Beijing, in ms since the epoch.
const T0: i64 = 1_714_521_600_000;
const MINUTE: i64 = 60_000;

const TEXTS: [&str; 6] =
    ["村口桥梁护栏松动", "巡查正常", "两户因宅基地边界争执", "已通知村委会", "电线老化", "道路塌方"];
const NAMES: [&str; 6] = ["王秀英", "李建国", "张桂兰", "刘志强", "陈玉梅", "赵德明"];
/// Valid resident ID numbers (GB 11643 check digit correct).
const ID_NUMBERS: [&str; 3] = ["11010519491231002X", "620123199001011235", "622927198507153413"];

fn text(v: u8) -> String {
    format!("{}{}", TEXTS[usize::from(v) % TEXTS.len()], v)
}

fn grid() -> GridPath {
    GridPath::parse("t01/v03/g2").unwrap()
}

fn member(name: &str, category: PersonCategory) -> Member {
    Member {
        name: name.into(),
        relation: "户主".into(),
        category,
        id_number: String::new(),
        guardian: (category == PersonCategory::UnderGuardianship).then(|| "王建军".to_owned()),
    }
}

/// A freshly recorded record of `kind`, as a grid manager would save it.
fn base_record(kind: RecordKind) -> Record {
    let body = match kind {
        RecordKind::Patrol => RecordBody::Patrol(Patrol {
            slot: PatrolSlot::Morning,
            started_at: T0,
            ended_at: None,
            route: vec![GeoPoint { lat: 33.93, lon: 106.31 }],
            findings: String::new(),
            hazard_ids: BTreeMap::new(),
        }),
        RecordKind::Hazard => RecordBody::Hazard(Hazard {
            category: HazardCategory::Building,
            location: Location { text: "三组李家后山".into(), gps: None },
            description: "房屋后墙开裂".into(),
            events: vec![Event {
                id: Uuid::new_v4().to_string(),
                at: T0,
                by: "gm1".into(),
                parents: vec![],
                action: HazardAction::Reported { note: String::new() },
            }],
        }),
        RecordKind::Visit => RecordBody::Visit(Visit {
            target: VisitTarget::FloatingPopulation,
            subject: "出租房（张家）".into(),
            household_id: None,
            visited_at: T0,
            findings: String::new(),
            follow_up_needed: false,
        }),
        RecordKind::Household => {
            let mut members = BTreeMap::new();
            for (i, (name, cat)) in [
                ("李建国", PersonCategory::Resident),
                ("张桂兰", PersonCategory::Resident),
                ("李小军", PersonCategory::UnderGuardianship),
                ("李小红", PersonCategory::Floating),
            ]
            .into_iter()
            .enumerate()
            {
                members.insert(format!("m{i}"), member(name, cat));
            }
            RecordBody::Household(Household {
                head_name: "李建国".into(),
                address: "两当县站儿巷镇三组12号".into(),
                ten_household_group: String::new(),
                members,
                machinery: BTreeMap::new(),
                vehicles: BTreeMap::new(),
                facilities: BTreeMap::new(),
                notes: String::new(),
            })
        }
        RecordKind::Dispute => RecordBody::Dispute(Dispute {
            parties: vec!["张三".into(), "李四".into()],
            category: DisputeCategory::Land,
            summary: "两户因宅基地边界争执".into(),
            found_at: T0,
            events: vec![Event {
                id: Uuid::new_v4().to_string(),
                at: T0,
                by: "gm1".into(),
                parents: vec![],
                action: DisputeAction::Found { note: String::new() },
            }],
        }),
        RecordKind::VillageMeeting => RecordBody::VillageMeeting(VillageMeeting {
            held_at: T0,
            attendees: vec!["王秀英".into(), "李建国".into()],
            grid_summaries: BTreeMap::from([(
                "t01/v03/g1".to_owned(),
                GridWeekNote { figures: BTreeMap::from([("patrols.morning".to_owned(), 5)]), note: String::new() },
            )]),
            disputes_reviewed: BTreeMap::new(),
            decisions: String::new(),
        }),
        RecordKind::TownshipReview => RecordBody::TownshipReview(TownshipReview {
            month: "2024-04".into(),
            held_at: None,
            attendees: vec!["张桂兰".into()],
            disputes_reviewed: BTreeMap::new(),
            decisions: String::new(),
        }),
        RecordKind::MonthlyReport => RecordBody::MonthlyReport(MonthlyReport {
            month: "2024-04".into(),
            figures: BTreeMap::from([("patrols.morning".to_owned(), 120), ("disputes.found".to_owned(), 3)]),
            narrative: String::new(),
            submitted_at: None,
            returned: None,
        }),
    };
    Record::new(grid().ancestor(kind.grid_level()), "gm1", T0, body)
}

/// One field that a person may edit: where it sits in the record's JSON,
/// and how the app changes it (`v` picks the new value).
struct Slot {
    pointer: &'static str,
    edit: fn(&mut Record, u8),
}

macro_rules! body {
    ($r:expr, $variant:ident) => {
        match &mut $r.body {
            RecordBody::$variant(b) => b,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

fn slots(kind: RecordKind) -> Vec<Slot> {
    match kind {
        RecordKind::Patrol => vec![
            Slot {
                pointer: "/data/slot",
                edit: |r, v| {
                    body!(r, Patrol).slot = [PatrolSlot::Midday, PatrolSlot::Evening][usize::from(v % 2)];
                },
            },
            Slot { pointer: "/data/findings", edit: |r, v| body!(r, Patrol).findings = text(v) },
            Slot {
                pointer: "/data/ended_at",
                edit: |r, v| body!(r, Patrol).ended_at = Some(T0 + i64::from(v) * MINUTE + MINUTE),
            },
            Slot {
                pointer: "/data/route",
                edit: |r, v| {
                    body!(r, Patrol).route = (0..=v % 4)
                        .map(|i| GeoPoint { lat: 33.9 + f64::from(i) * 0.001, lon: 106.3 + f64::from(v) * 0.0001 })
                        .collect();
                },
            },
        ],
        RecordKind::Hazard => vec![
            Slot {
                pointer: "/data/category",
                edit: |r, v| {
                    body!(r, Hazard).category =
                        [HazardCategory::Fire, HazardCategory::Geological, HazardCategory::Flood][usize::from(v % 3)];
                },
            },
            Slot { pointer: "/data/location/text", edit: |r, v| body!(r, Hazard).location.text = text(v) },
            Slot {
                pointer: "/data/location/gps",
                edit: |r, v| {
                    body!(r, Hazard).location.gps = Some(GeoPoint { lat: 33.9, lon: 106.3 + f64::from(v) * 0.001 })
                },
            },
            Slot { pointer: "/data/description", edit: |r, v| body!(r, Hazard).description = text(v) },
        ],
        RecordKind::Visit => vec![
            Slot {
                pointer: "/data/target",
                edit: |r, v| {
                    body!(r, Visit).target = [VisitTarget::KeyPerson, VisitTarget::SpecialPlace][usize::from(v % 2)];
                },
            },
            Slot { pointer: "/data/subject", edit: |r, v| body!(r, Visit).subject = text(v) },
            Slot {
                pointer: "/data/household_id",
                edit: |r, _| body!(r, Visit).household_id = Some(Uuid::new_v4().to_string()),
            },
            Slot { pointer: "/data/visited_at", edit: |r, v| body!(r, Visit).visited_at = T0 + i64::from(v) * MINUTE },
            Slot { pointer: "/data/findings", edit: |r, v| body!(r, Visit).findings = text(v) },
            Slot { pointer: "/data/follow_up_needed", edit: |r, _| body!(r, Visit).follow_up_needed = true },
        ],
        RecordKind::Household => vec![
            Slot {
                pointer: "/data/head_name",
                edit: |r, v| body!(r, Household).head_name = NAMES[usize::from(v) % 6].into(),
            },
            Slot { pointer: "/data/address", edit: |r, v| body!(r, Household).address = text(v) },
            Slot {
                pointer: "/data/ten_household_group",
                edit: |r, v| body!(r, Household).ten_household_group = text(v),
            },
            Slot { pointer: "/data/notes", edit: |r, v| body!(r, Household).notes = text(v) },
            // Two people editing different fields of the same member.
            Slot {
                pointer: "/data/members/m0/name",
                edit: |r, v| body!(r, Household).members.get_mut("m0").unwrap().name = NAMES[usize::from(v) % 6].into(),
            },
            Slot {
                pointer: "/data/members/m0/relation",
                edit: |r, v| body!(r, Household).members.get_mut("m0").unwrap().relation = format!("关系{v}"),
            },
            Slot {
                pointer: "/data/members/m0/id_number",
                edit: |r, v| {
                    body!(r, Household).members.get_mut("m0").unwrap().id_number =
                        ID_NUMBERS[usize::from(v) % 3].into();
                },
            },
            Slot {
                pointer: "/data/members/m1/category",
                edit: |r, _| body!(r, Household).members.get_mut("m1").unwrap().category = PersonCategory::KeyPerson,
            },
            Slot {
                pointer: "/data/members/m2/guardian",
                edit: |r, v| {
                    body!(r, Household).members.get_mut("m2").unwrap().guardian = Some(NAMES[usize::from(v) % 6].into())
                },
            },
            // A member moved away: removed from the ledger.
            Slot {
                pointer: "/data/members/m3",
                edit: |r, _| {
                    body!(r, Household).members.remove("m3");
                },
            },
        ],
        RecordKind::Dispute => vec![
            Slot { pointer: "/data/summary", edit: |r, v| body!(r, Dispute).summary = text(v) },
            Slot {
                pointer: "/data/parties",
                edit: |r, v| {
                    body!(r, Dispute).parties =
                        (0..=v % 3).map(|i| NAMES[(usize::from(v) + usize::from(i)) % 6].to_owned()).collect();
                },
            },
            Slot {
                pointer: "/data/category",
                edit: |r, v| {
                    body!(r, Dispute).category =
                        [DisputeCategory::Neighbour, DisputeCategory::Debt][usize::from(v % 2)];
                },
            },
            Slot { pointer: "/data/found_at", edit: |r, v| body!(r, Dispute).found_at = T0 - i64::from(v) * MINUTE },
        ],
        RecordKind::VillageMeeting => vec![
            Slot { pointer: "/data/decisions", edit: |r, v| body!(r, VillageMeeting).decisions = text(v) },
            Slot {
                pointer: "/data/attendees",
                edit: |r, v| {
                    body!(r, VillageMeeting).attendees =
                        (0..=v % 3).map(|i| NAMES[(usize::from(v) + usize::from(i)) % 6].to_owned()).collect();
                },
            },
            Slot {
                pointer: "/data/held_at",
                edit: |r, v| body!(r, VillageMeeting).held_at = T0 + i64::from(v) * MINUTE,
            },
            // Two grid managers' notes are edited by different people at once.
            Slot {
                pointer: "/data/grid_summaries/t01~1v03~1g1/note",
                edit: |r, v| {
                    if let Some(n) = body!(r, VillageMeeting).grid_summaries.get_mut("t01/v03/g1") {
                        n.note = text(v);
                    }
                },
            },
            Slot {
                pointer: "/data/grid_summaries/t01~1v03~1g2",
                edit: |r, v| {
                    body!(r, VillageMeeting).grid_summaries.insert(
                        "t01/v03/g2".into(),
                        GridWeekNote {
                            figures: BTreeMap::from([("hazards.open".to_owned(), i64::from(v))]),
                            note: text(v),
                        },
                    );
                },
            },
        ],
        RecordKind::TownshipReview => vec![
            Slot { pointer: "/data/decisions", edit: |r, v| body!(r, TownshipReview).decisions = text(v) },
            Slot {
                pointer: "/data/attendees",
                edit: |r, v| body!(r, TownshipReview).attendees = vec![NAMES[usize::from(v) % 6].to_owned()],
            },
            Slot {
                pointer: "/data/held_at",
                edit: |r, v| body!(r, TownshipReview).held_at = Some(T0 + i64::from(v) * MINUTE),
            },
        ],
        RecordKind::MonthlyReport => vec![
            Slot { pointer: "/data/narrative", edit: |r, v| body!(r, MonthlyReport).narrative = text(v) },
            Slot {
                pointer: "/data/figures/patrols.morning",
                edit: |r, v| {
                    body!(r, MonthlyReport).figures.insert("patrols.morning".into(), i64::from(v));
                },
            },
            Slot {
                pointer: "/data/figures/disputes.found",
                edit: |r, v| {
                    body!(r, MonthlyReport).figures.insert("disputes.found".into(), i64::from(v) + 1);
                },
            },
            Slot {
                pointer: "/data/submitted_at",
                edit: |r, v| body!(r, MonthlyReport).submitted_at = Some(T0 + i64::from(v) * MINUTE),
            },
        ],
    }
}

/// One change a person makes on their phone, saved with `RecordDoc::update`.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Edit the field in slot `i` to value `v`.
    Field(usize, u8),
    /// Append an event (hazards, disputes) or add a keyed entry (patrol
    /// hazard links, household members and machinery); `v` picks which.
    Append(u8),
}

#[derive(Debug, Clone)]
struct Plan {
    replicas: usize,
    /// Per slot: the replica that edits it (`>= replicas`: nobody does).
    owners: Vec<usize>,
    values: Vec<u8>,
    /// Per replica: what it appends.
    appends: Vec<Vec<u8>>,
    /// Whether replica 1 receives replica 0's first changes before editing
    /// (so some events are causally after others, not all concurrent).
    pre_sync: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        2usize..=3,
        prop::collection::vec(0usize..4, 10),
        prop::collection::vec(any::<u8>(), 10),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4), 3),
        any::<bool>(),
    )
        .prop_map(|(replicas, owners, values, appends, pre_sync)| Plan {
            replicas,
            owners,
            values,
            appends,
            pre_sync,
        })
}

fn dispute_action(v: u8, events: &[Event<DisputeAction>]) -> DisputeAction {
    let note = text(v);
    match v % 8 {
        0 | 1 => DisputeAction::FollowUp { note },
        2 => DisputeAction::Classified {
            category: [DisputeCategory::Neighbour, DisputeCategory::Family, DisputeCategory::Land]
                [usize::from(v / 8 % 3)],
            note,
        },
        3 => DisputeAction::PlanSet { plan: note, team: vec!["王秀英".into(), "李建国".into()] },
        4 => DisputeAction::Stabilized { note },
        5 => DisputeAction::Escalated {
            to: [DisputeLevel::Township, DisputeLevel::County][usize::from(v / 8 % 2)],
            note,
        },
        6 => DisputeAction::Resolved { note },
        // Settle by keeping some event this replica has seen.
        _ => DisputeAction::Settled { kept: events[usize::from(v / 8) % events.len()].id.clone(), note },
    }
}

/// Apply one op to `doc`, as the app does: read the record, change it, save
/// the difference. Returns the id of what was appended, if anything.
fn apply_op(kind: RecordKind, doc: &mut RecordDoc, op: Op, who: &str, now: i64) -> Option<String> {
    let mut rec = doc.record().unwrap();
    let mut appended = None;
    match op {
        // A photo: the first one on each phone makes the `attachments` map.
        Op::Append(v) if takes_photos(kind) && v % 4 == 3 => {
            let hash = sha256_hex(Uuid::new_v4().as_bytes());
            let a = Attachment {
                mime: "image/jpeg".into(),
                size: 1000,
                at: now,
                by: who.into(),
                event: None,
                thumb_of: None,
            };
            rec.attachments.insert(hash.clone(), a);
            appended = Some(hash);
        }
        Op::Field(i, v) => (slots(kind)[i].edit)(&mut rec, v),
        Op::Append(v) => match &mut rec.body {
            RecordBody::Patrol(p) => {
                let id = Uuid::new_v4().to_string();
                p.hazard_ids.insert(id.clone(), true);
                appended = Some(id);
            }
            RecordBody::Hazard(h) => {
                let action = match v % 3 {
                    0 => HazardAction::Reported { note: text(v) },
                    1 => HazardAction::Step { note: text(v) },
                    _ => HazardAction::Resolved { note: text(v) },
                };
                let e = next_event(&h.events, who, now, action);
                appended = Some(e.id.clone());
                h.events.push(e);
            }
            RecordBody::Visit(_) | RecordBody::MonthlyReport(_) => {}
            RecordBody::VillageMeeting(VillageMeeting { disputes_reviewed: ids, .. })
            | RecordBody::TownshipReview(TownshipReview { disputes_reviewed: ids, .. }) => {
                let id = Uuid::new_v4().to_string();
                ids.insert(id.clone(), true);
                appended = Some(id);
            }
            RecordBody::Household(h) => {
                let id = Uuid::new_v4().to_string();
                if v % 2 == 0 {
                    h.members.insert(id.clone(), member(NAMES[usize::from(v) % 6], PersonCategory::Resident));
                } else {
                    h.machinery
                        .insert(id.clone(), Asset { description: "拖拉机".into(), identifier: format!("甘K{v}") });
                }
                appended = Some(id);
            }
            RecordBody::Dispute(d) => {
                let action = dispute_action(v, &d.events);
                let e = next_event(&d.events, who, now, action);
                appended = Some(e.id.clone());
                d.events.push(e);
            }
        },
    }
    rec.updated_at = now;
    doc.update(&rec).unwrap();
    appended
}

fn copy(doc: &mut RecordDoc) -> RecordDoc {
    RecordDoc::load(&doc.save(), ActorId::random()).unwrap()
}

fn sorted_heads(doc: &mut RecordDoc) -> Vec<ChangeHash> {
    let mut h = doc.heads();
    h.sort();
    h
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

/// Ids of appended entries (events, keyed entries, photos) present in a
/// merged record.
fn appended_ids(rec: &Record) -> Vec<String> {
    let mut ids = entry_ids(rec);
    ids.extend(rec.attachments.keys().cloned());
    ids
}

fn entry_ids(rec: &Record) -> Vec<String> {
    match &rec.body {
        RecordBody::Patrol(p) => p.hazard_ids.keys().cloned().collect(),
        RecordBody::Hazard(h) => h.events.iter().map(|e| e.id.clone()).collect(),
        RecordBody::Visit(_) | RecordBody::MonthlyReport(_) => vec![],
        RecordBody::VillageMeeting(m) => m.disputes_reviewed.keys().cloned().collect(),
        RecordBody::TownshipReview(t) => t.disputes_reviewed.keys().cloned().collect(),
        RecordBody::Household(h) => h.members.keys().chain(h.machinery.keys()).cloned().collect(),
        RecordBody::Dispute(d) => d.events.iter().map(|e| e.id.clone()).collect(),
    }
}

fn check_convergence(kind: RecordKind, plan: &Plan) -> Result<(), TestCaseError> {
    let base = base_record(kind);
    let mut origin = RecordDoc::create(&base, ActorId::random()).unwrap();
    let mut replicas: Vec<RecordDoc> = (0..plan.replicas).map(|_| origin.fork_as(ActorId::random())).collect();
    let n_slots = slots(kind).len();

    // Each replica's ops: the fields it owns, then its appends.
    let ops: Vec<Vec<Op>> = (0..plan.replicas)
        .map(|r| {
            let fields = (0..n_slots).filter(|&s| plan.owners[s] == r).map(|s| Op::Field(s, plan.values[s]));
            fields.chain(plan.appends[r].iter().map(|&v| Op::Append(v))).collect()
        })
        .collect();

    let mut appended: BTreeSet<String> = BTreeSet::new();
    let mut clock = T0;
    let mut run = |doc: &mut RecordDoc, r: usize, ops: &[Op]| {
        for op in ops {
            clock += MINUTE;
            appended.extend(apply_op(kind, doc, *op, &format!("user{r}"), clock));
        }
    };
    let mut start = vec![0; plan.replicas];
    if plan.pre_sync {
        // Replica 0 does half its work, replica 1 receives it, then both go
        // on offline: later steps are causally after the early ones.
        let half = ops[0].len() / 2;
        run(&mut replicas[0], 0, &ops[0][..half]);
        let (a, b) = replicas.split_at_mut(1);
        b[0].merge(&mut a[0]).unwrap();
        start[0] = half;
    }
    for (r, doc) in replicas.iter_mut().enumerate() {
        run(doc, r, &ops[r][start[r]..]);
    }

    let finals: Vec<Value> = replicas.iter().map(|d| d.to_json().unwrap()).collect();
    let updated_ats: BTreeSet<i64> = replicas.iter().map(|d| d.record().unwrap().updated_at).collect();

    // Merge in every order, and also by applying raw changes (the sync path).
    let mut merged: Vec<(String, RecordDoc)> = Vec::new();
    for order in permutations(plan.replicas) {
        let mut acc = copy(&mut replicas[order[0]]);
        for &i in &order[1..] {
            let mut other = copy(&mut replicas[i]);
            acc.merge(&mut other).unwrap();
        }
        merged.push((format!("merge {order:?}"), acc));
    }
    let mut by_changes = RecordDoc::empty(ActorId::random());
    for r in replicas.iter_mut().rev() {
        by_changes.apply(r.changes_since(&[])).unwrap();
    }
    merged.push(("apply changes in reverse".into(), by_changes));

    let (first_name, first) = &mut merged[0];
    let first_name = first_name.clone();
    let json = first.to_json().unwrap();
    let heads = sorted_heads(first);
    let rec = first.record().unwrap();
    let index = rec.index();
    for (name, doc) in merged.iter_mut().skip(1) {
        prop_assert_eq!(&doc.to_json().unwrap(), &json, "{} vs {}", name, first_name);
        prop_assert_eq!(sorted_heads(doc), heads.clone(), "heads of {}", name);
        let other = doc.record().unwrap();
        prop_assert_eq!(other.index(), index.clone(), "index of {}", name);
        if let (RecordBody::Dispute(a), RecordBody::Dispute(b)) = (&other.body, &rec.body) {
            prop_assert_eq!(a.state(), b.state());
        }
        prop_assert!(doc.missing_deps().is_empty());
    }

    // The merged record is valid, so the app can keep editing it.
    prop_assert!(rec.validate().is_ok(), "{:?}", rec.validate());

    // No field edit lost: each edited field holds its editor's value.
    let base_json = base.to_json();
    for (s, slot) in slots(kind).iter().enumerate() {
        let owner = plan.owners[s];
        if owner >= plan.replicas {
            prop_assert_eq!(json.pointer(slot.pointer), base_json.pointer(slot.pointer), "{}", slot.pointer);
        } else {
            prop_assert_eq!(json.pointer(slot.pointer), finals[owner].pointer(slot.pointer), "{}", slot.pointer);
        }
    }
    prop_assert!(updated_ats.contains(&rec.updated_at));

    // Every appended event and keyed entry is there, once.
    let ids = appended_ids(&rec);
    let unique: BTreeSet<&String> = ids.iter().collect();
    prop_assert_eq!(unique.len(), ids.len(), "duplicate entries: {:?}", ids);
    for id in &appended {
        prop_assert!(unique.contains(id), "appended {} lost", id);
    }
    let base_ids = appended_ids(&base);
    let removed_m3 = kind == RecordKind::Household && plan.owners[9] < plan.replicas;
    prop_assert_eq!(ids.len(), appended.len() + base_ids.len() - usize::from(removed_m3));

    // The status does not depend on the order of the events list.
    match &rec.body {
        RecordBody::Dispute(d) => {
            let mut reversed = d.clone();
            reversed.events.reverse();
            prop_assert_eq!(reversed.state(), d.state());
            prop_assert_eq!(index.has_conflict, !d.state().conflicts.is_empty());
            prop_assert_eq!(index.status == "conflict", !d.state().conflicts.is_empty());
        }
        RecordBody::Hazard(h) => {
            let mut reversed = h.clone();
            reversed.events.reverse();
            prop_assert_eq!(reversed.status(), h.status());
            prop_assert_eq!(index.status.as_str(), h.status().as_str());
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn patrols_converge(plan in plan()) {
        check_convergence(RecordKind::Patrol, &plan)?;
    }

    #[test]
    fn hazards_converge(plan in plan()) {
        check_convergence(RecordKind::Hazard, &plan)?;
    }

    #[test]
    fn visits_converge(plan in plan()) {
        check_convergence(RecordKind::Visit, &plan)?;
    }

    #[test]
    fn households_converge(plan in plan()) {
        check_convergence(RecordKind::Household, &plan)?;
    }

    #[test]
    fn disputes_converge(plan in plan()) {
        check_convergence(RecordKind::Dispute, &plan)?;
    }

    #[test]
    fn village_meetings_converge(plan in plan()) {
        check_convergence(RecordKind::VillageMeeting, &plan)?;
    }

    #[test]
    fn township_reviews_converge(plan in plan()) {
        check_convergence(RecordKind::TownshipReview, &plan)?;
    }

    #[test]
    fn monthly_reports_converge(plan in plan()) {
        check_convergence(RecordKind::MonthlyReport, &plan)?;
    }
}

fn dispute_of(doc: &RecordDoc) -> Dispute {
    match doc.record().unwrap().body {
        RecordBody::Dispute(d) => d,
        other => panic!("not a dispute: {other:?}"),
    }
}

/// Append `action` to the dispute in `doc` as `who` at `at`; returns the event id.
fn append(doc: &mut RecordDoc, who: &str, at: i64, action: DisputeAction) -> String {
    let mut rec = doc.record().unwrap();
    let d = body!(rec, Dispute);
    let e = next_event(&d.events, who, at, action);
    let id = e.id.clone();
    d.events.push(e);
    rec.updated_at = at;
    assert!(doc.update(&rec).unwrap());
    id
}

/// The grid manager adds a follow-up while the village leader classifies
/// the same dispute offline: after sync both see both steps and no conflict.
/// When one then resolves it while the other escalates it, both see it
/// waiting for the village leader's ruling, and the ruling clears it.
#[test]
fn dispute_edited_by_manager_and_leader_offline() {
    let mut manager = RecordDoc::create(&base_record(RecordKind::Dispute), ActorId::random()).unwrap();
    let mut leader = manager.fork_as(ActorId::random());

    let follow_up =
        append(&mut manager, "gm1", T0 + 60 * MINUTE, DisputeAction::FollowUp { note: "双方同意再协商".into() });
    let classified = append(
        &mut leader,
        "vl1",
        T0 + 30 * MINUTE,
        DisputeAction::Classified { category: DisputeCategory::Neighbour, note: "周例会甄别".into() },
    );
    manager.merge(&mut leader).unwrap();
    leader.merge(&mut manager).unwrap();
    assert_eq!(manager.to_json().unwrap(), leader.to_json().unwrap());
    let d = dispute_of(&manager);
    let ids: Vec<&str> = d.events.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.contains(&follow_up.as_str()) && ids.contains(&classified.as_str()), "{ids:?}");
    assert_eq!(d.events.len(), 3);
    let st = d.state();
    assert!(st.conflicts.is_empty(), "{:?}", st.conflicts);
    assert_eq!(st.status, DisputeStatus::InProgress);
    assert_eq!(st.category, DisputeCategory::Neighbour);
    assert_eq!(manager.record().unwrap().index().status, "in_progress");

    // Offline again: one resolves, the other escalates.
    let resolved =
        append(&mut manager, "gm1", T0 + 120 * MINUTE, DisputeAction::Resolved { note: "调解成功，双方签字".into() });
    let escalated = append(
        &mut leader,
        "vl1",
        T0 + 125 * MINUTE,
        DisputeAction::Escalated { to: DisputeLevel::Township, note: "村级无法化解".into() },
    );
    manager.merge(&mut leader).unwrap();
    leader.merge(&mut manager).unwrap();
    assert_eq!(manager.to_json().unwrap(), leader.to_json().unwrap());
    for doc in [&manager, &leader] {
        let st = dispute_of(doc).state();
        assert_eq!(st.status, DisputeStatus::Conflict);
        assert_eq!(st.conflicts.len(), 1, "{:?}", st.conflicts);
        let c = &st.conflicts[0];
        let mut pair = [resolved.clone(), escalated.clone()];
        pair.sort();
        assert_eq!([c.a.clone(), c.b.clone()], pair);
        assert!(c.reason_zh.contains("化解"), "{}", c.reason_zh);
        let ix = doc.record().unwrap().index();
        assert_eq!(ix.status, "conflict");
        assert!(ix.has_conflict);
    }

    // The village leader settles it by keeping the escalation.
    let settled = append(
        &mut leader,
        "vl1",
        T0 + 24 * 60 * MINUTE,
        DisputeAction::Settled { kept: escalated.clone(), note: "以上报为准".into() },
    );
    manager.merge(&mut leader).unwrap();
    let d = dispute_of(&manager);
    assert!(d.events.iter().any(|e| e.id == settled));
    assert!(d.events.iter().any(|e| e.id == resolved), "the overruled event stays in the history");
    let st = d.state();
    assert!(st.conflicts.is_empty(), "{:?}", st.conflicts);
    assert_eq!(st.status, DisputeStatus::Escalated);
    assert_eq!(st.level, DisputeLevel::Township);
    assert_eq!(st.resolved_at, None);
    let ix = manager.record().unwrap().index();
    assert_eq!((ix.status.as_str(), ix.has_conflict, ix.level), ("escalated", false, Some(DisputeLevel::Township)));
}

/// Two people who edit different fields of the same household member
/// offline both keep their change.
#[test]
fn different_fields_of_one_member_both_survive() {
    let mut a = RecordDoc::create(&base_record(RecordKind::Household), ActorId::random()).unwrap();
    let mut b = a.fork_as(ActorId::random());
    let mut ra = a.record().unwrap();
    body!(ra, Household).members.get_mut("m0").unwrap().name = "王秀英".into();
    ra.updated_at = T0 + MINUTE;
    a.update(&ra).unwrap();
    let mut rb = b.record().unwrap();
    body!(rb, Household).members.get_mut("m0").unwrap().id_number = ID_NUMBERS[1].into();
    rb.updated_at = T0 + 2 * MINUTE;
    b.update(&rb).unwrap();
    a.merge(&mut b).unwrap();
    let rec = a.record().unwrap();
    let RecordBody::Household(h) = &rec.body else { panic!() };
    let m = &h.members["m0"];
    assert_eq!((m.name.as_str(), m.id_number.as_str()), ("王秀英", ID_NUMBERS[1]));
    // `updated_at` is one register: concurrent saves keep one of the two times.
    assert!([T0 + MINUTE, T0 + 2 * MINUTE].contains(&rec.updated_at));
}

/// A member removed on one phone while another phone corrects the same
/// member's name stays removed: removal is a change to the household's
/// member map, the correction a change inside the removed entry.
#[test]
fn removal_of_a_member_wins_over_a_concurrent_edit_of_it() {
    let mut a = RecordDoc::create(&base_record(RecordKind::Household), ActorId::random()).unwrap();
    let mut b = a.fork_as(ActorId::random());
    let mut ra = a.record().unwrap();
    body!(ra, Household).members.remove("m3");
    ra.updated_at = T0 + MINUTE;
    a.update(&ra).unwrap();
    let mut rb = b.record().unwrap();
    body!(rb, Household).members.get_mut("m3").unwrap().name = "李小花".into();
    body!(rb, Household).members.insert("m9".into(), member("王秀英", PersonCategory::Resident));
    rb.updated_at = T0 + 2 * MINUTE;
    b.update(&rb).unwrap();
    let (sa, sb) = (a.save(), b.save());
    for (x, y) in [(&sa, &sb), (&sb, &sa)] {
        let mut x = RecordDoc::load(x, ActorId::random()).unwrap();
        let mut y = RecordDoc::load(y, ActorId::random()).unwrap();
        x.merge(&mut y).unwrap();
        let rec = x.record().unwrap();
        let RecordBody::Household(h) = &rec.body else { panic!() };
        assert!(!h.members.contains_key("m3"));
        assert_eq!(h.members["m9"].name, "王秀英");
        assert_eq!(h.members.len(), 4);
    }
}
