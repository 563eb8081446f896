//! Records as a grid manager would enter them, shared by the store and
//! crash tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use gridsync_core::events::Event;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{
    Asset, Dispute, DisputeAction, DisputeCategory, GeoPoint, Hazard, HazardAction, HazardCategory, Household,
    Location, Member, MonthlyReport, Patrol, PatrolSlot, PersonCategory, Record, RecordBody, RecordKind,
    TownshipReview, VillageMeeting, Visit, VisitTarget,
};
use uuid::Uuid;

/// 2024-05-01 08:00 in Beijing, in ms since the epoch.
pub const T0: i64 = 1_714_521_600_000;
/// One day in ms.
pub const DAY: i64 = 86_400_000;

/// Parse a grid path.
pub fn grid(s: &str) -> GridPath {
    GridPath::parse(s).unwrap()
}

/// A household member.
pub fn member(name: &str, relation: &str, category: PersonCategory) -> Member {
    Member {
        name: name.into(),
        relation: relation.into(),
        category,
        id_number: String::new(),
        guardian: (category == PersonCategory::UnderGuardianship).then(|| "李建军".to_owned()),
    }
}

/// A first event of a history.
pub fn first_event<A>(by: &str, at: i64, action: A) -> Event<A> {
    Event { id: Uuid::new_v4().to_string(), at, by: by.into(), parents: vec![], action }
}

/// A valid record of `kind` in `grid`, entered at `at`.
pub fn sample(kind: RecordKind, grid_path: &str, at: i64) -> Record {
    let body = match kind {
        RecordKind::Patrol => RecordBody::Patrol(Patrol {
            slot: PatrolSlot::Evening,
            started_at: at,
            ended_at: Some(at + 3_600_000),
            route: vec![GeoPoint { lat: 33.934, lon: 106.305 }, GeoPoint { lat: 33.936, lon: 106.309 }],
            findings: "巡查正常".into(),
            hazard_ids: BTreeMap::new(),
        }),
        RecordKind::Hazard => RecordBody::Hazard(Hazard {
            category: HazardCategory::Geological,
            location: Location { text: "三组后山".into(), gps: Some(GeoPoint { lat: 33.93, lon: 106.31 }) },
            description: "雨后山体有落石".into(),
            events: vec![first_event("gm1", at, HazardAction::Reported { note: String::new() })],
        }),
        RecordKind::Visit => RecordBody::Visit(Visit {
            target: VisitTarget::FloatingPopulation,
            subject: "出租房（张家院子）".into(),
            household_id: None,
            visited_at: at,
            findings: "租户三人，已登记".into(),
            follow_up_needed: false,
        }),
        RecordKind::Household => {
            let mut members = BTreeMap::new();
            members.insert("m1".to_owned(), member("李建国", "户主", PersonCategory::Resident));
            members.insert("m2".to_owned(), member("王秀英", "配偶", PersonCategory::Resident));
            members.insert("m3".to_owned(), member("李小军", "子女", PersonCategory::UnderGuardianship));
            let mut machinery = BTreeMap::new();
            machinery.insert("a1".to_owned(), Asset { description: "手扶拖拉机".into(), identifier: String::new() });
            RecordBody::Household(Household {
                head_name: "李建国".into(),
                address: "两当县站儿巷镇三组12号".into(),
                ten_household_group: "第三联防组".into(),
                members,
                machinery,
                vehicles: BTreeMap::new(),
                facilities: BTreeMap::new(),
                notes: String::new(),
            })
        }
        RecordKind::Dispute => RecordBody::Dispute(Dispute {
            parties: vec!["张三".into(), "李四".into()],
            category: DisputeCategory::Land,
            summary: "两户因宅基地边界争执".into(),
            found_at: at,
            events: vec![first_event("gm1", at, DisputeAction::Found { note: String::new() })],
        }),
        RecordKind::VillageMeeting => RecordBody::VillageMeeting(VillageMeeting {
            held_at: at,
            attendees: vec!["李建国".into(), "王秀英".into()],
            grid_summaries: BTreeMap::new(),
            disputes_reviewed: BTreeMap::new(),
            decisions: "宅基地纠纷由村调委会调解".into(),
        }),
        RecordKind::TownshipReview => RecordBody::TownshipReview(TownshipReview {
            month: "2024-04".into(),
            held_at: Some(at),
            attendees: vec!["张桂兰".into()],
            disputes_reviewed: BTreeMap::new(),
            decisions: "两起纠纷指定专人化解".into(),
        }),
        RecordKind::MonthlyReport => RecordBody::MonthlyReport(MonthlyReport {
            month: "2024-04".into(),
            figures: BTreeMap::from([("patrols.morning".to_owned(), 90)]),
            narrative: "本月社会治安总体平稳".into(),
            submitted_at: None,
            returned: None,
        }),
    };
    // Weekly meetings belong to the village, monthly reviews and reports to
    // the township.
    Record::new(grid(grid_path).ancestor(kind.grid_level()), "gm1", at, body)
}
