//! Records of every kind, as a grid manager makes them on a round.

use std::collections::BTreeMap;

use gridsync_core::events::Event;
use gridsync_core::grid::GridPath;
use gridsync_core::model::*;
use rand::Rng;
use rand::rngs::StdRng;
use uuid::Uuid;

/// Start of the simulated day (2026-11-02 08:00 Beijing), ms.
pub const DAY0: i64 = 1_793_577_600_000;

/// A patrol in `slot` on day `day`.
pub fn patrol(grid: &GridPath, author: &str, day: i64, slot: PatrolSlot) -> Record {
    let hour = match slot {
        PatrolSlot::Morning => 0,
        PatrolSlot::Midday => 4,
        PatrolSlot::Evening => 10,
    };
    let start = DAY0 + day * 86_400_000 + hour * 3_600_000;
    Record::new(
        grid.clone(),
        author,
        start,
        RecordBody::Patrol(Patrol {
            slot,
            started_at: start,
            ended_at: Some(start + 45 * 60_000),
            route: vec![GeoPoint { lat: 33.94, lon: 106.30 }, GeoPoint { lat: 33.95, lon: 106.31 }],
            findings: "巡查村道、河道及重点户，未发现异常。".into(),
            hazard_ids: BTreeMap::new(),
        }),
    )
}

/// A hazard with its report event.
pub fn hazard(grid: &GridPath, author: &str, day: i64) -> Record {
    let at = DAY0 + day * 86_400_000 + 3_600_000;
    let events: Vec<Event<HazardAction>> =
        vec![next_event(&[], author, at, HazardAction::Reported { note: "巡查发现".into() })];
    Record::new(
        grid.clone(),
        author,
        at,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Geological,
            location: Location { text: "二组后山滑坡点".into(), gps: Some(GeoPoint { lat: 33.95, lon: 106.3 }) },
            description: "连日降雨后山体出现裂缝，下方有三户村民。".into(),
            events,
        }),
    )
}

/// A visit.
pub fn visit(grid: &GridPath, author: &str, day: i64, target: VisitTarget) -> Record {
    let at = DAY0 + day * 86_400_000 + 5 * 3_600_000;
    Record::new(
        grid.clone(),
        author,
        at,
        RecordBody::Visit(Visit {
            target,
            subject: "出租房 李家院".into(),
            household_id: None,
            visited_at: at,
            findings: "登记租住人员两人，证件齐全。".into(),
            follow_up_needed: false,
        }),
    )
}

/// A household ledger with members.
pub fn household(grid: &GridPath, author: &str, rng: &mut StdRng) -> Record {
    let mut members = BTreeMap::new();
    let n = rng.gen_range(1..5);
    for i in 0..n {
        members.insert(
            Uuid::new_v4().to_string(),
            Member {
                name: gridsync_server::demo::person_name(rng.gen_range(0..400) + i),
                relation: if i == 0 { "户主".into() } else { "家庭成员".into() },
                category: PersonCategory::Resident,
                id_number: String::new(),
                guardian: None,
            },
        );
    }
    Record::new(
        grid.clone(),
        author,
        DAY0,
        RecordBody::Household(Household {
            head_name: gridsync_server::demo::person_name(rng.gen_range(0..400)),
            address: format!("两当县{}号", rng.gen_range(1..300)),
            ten_household_group: "第一联防组".into(),
            members,
            machinery: BTreeMap::new(),
            vehicles: BTreeMap::new(),
            facilities: BTreeMap::new(),
            notes: String::new(),
        }),
    )
}

/// A dispute just found by a grid manager.
pub fn dispute(grid: &GridPath, author: &str, day: i64) -> Record {
    let at = DAY0 + day * 86_400_000 + 2 * 3_600_000;
    let events: Vec<Event<DisputeAction>> =
        vec![next_event(&[], author, at, DisputeAction::Found { note: "村民反映".into() })];
    Record::new(
        grid.clone(),
        author,
        at,
        RecordBody::Dispute(Dispute {
            parties: vec!["张某".into(), "李某".into()],
            category: DisputeCategory::Land,
            summary: "两户因承包地地界发生争执。".into(),
            found_at: at,
            events,
        }),
    )
}

/// Append a handling step to a hazard record.
pub fn hazard_step(rec: &mut Record, by: &str, at: i64, note: &str) {
    if let RecordBody::Hazard(h) = &mut rec.body {
        let e = next_event(&h.events, by, at, HazardAction::Step { note: note.into() });
        h.events.push(e);
    }
    rec.updated_at = at;
}

/// Append an action to a dispute record.
pub fn dispute_act(rec: &mut Record, by: &str, at: i64, action: DisputeAction) {
    if let RecordBody::Dispute(d) = &mut rec.body {
        let e = next_event(&d.events, by, at, action);
        d.events.push(e);
    }
    rec.updated_at = at;
}

/// One day of a grid manager's records (3 patrols, a hazard with a
/// handling update, 2 visits, a household), as in the evening scenario.
pub fn day_of_records(grid: &GridPath, author: &str, day: i64, rng: &mut StdRng) -> Vec<Record> {
    let mut hz = hazard(grid, author, day);
    hazard_step(&mut hz, author, DAY0 + day * 86_400_000 + 2 * 3_600_000, "已设置警示标志，通知三户转移");
    vec![
        patrol(grid, author, day, PatrolSlot::Morning),
        patrol(grid, author, day, PatrolSlot::Midday),
        patrol(grid, author, day, PatrolSlot::Evening),
        hz,
        visit(grid, author, day, VisitTarget::FloatingPopulation),
        visit(grid, author, day, VisitTarget::SpecialPlace),
        household(grid, author, rng),
    ]
}

/// A JPEG of `n + 21` bytes, different for each `seed`; with an Exif
/// segment carrying a GPS position (and longer) when `gps`.
pub fn photo_jpeg(n: usize, seed: u32, gps: bool) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0];
    if gps {
        let exif = b"Exif\0\0GPSLatitude 33.9N GPSLongitude 106.3E";
        b.extend_from_slice(&[0xFF, 0xE1]);
        b.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        b.extend_from_slice(exif);
    }
    b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x06]);
    b.extend_from_slice(&seed.to_be_bytes());
    // Entropy-coded data never holds a bare 0xFF.
    b.extend((0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8 & 0x7F));
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}
