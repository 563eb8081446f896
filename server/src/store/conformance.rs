//! One conformance suite every [`ServerStore`] backend must pass, a macro
//! per concern (store trait: `record_store_conformance!` tests
//! [`RecordStore`], and so on). A backend runs them all with
//! `conformance_tests!(make: expr)`, where `expr` builds a fresh, migrated,
//! empty store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::grid::{GridPath, Role};
use gridsync_core::model::*;

use super::*;
use crate::merge::{Outcome, Pusher, PusherActor};

pub fn user(id: &str, role: Role, grid: &str) -> User {
    User { id: id.into(), display_name: format!("用户{id}"), role, grid: GridPath::parse(grid).unwrap() }
}

pub fn device(id: &str, user: &str) -> Device {
    Device {
        id: id.into(),
        user_id: user.into(),
        name: "测试手机".into(),
        created_at: 0,
        last_sync_at: None,
        revoked_at: None,
        actor: None,
        public_key: None,
    }
}

pub fn patrol(grid: &str, author: &str) -> Record {
    Record::new(
        GridPath::parse(grid).unwrap(),
        author,
        1_700_000_000_000,
        RecordBody::Patrol(Patrol {
            slot: PatrolSlot::Morning,
            started_at: 1_700_000_000_000,
            ended_at: None,
            route: vec![],
            findings: "一切正常".into(),
            hazard_ids: BTreeMap::new(),
        }),
    )
}

pub fn household(grid: &str, author: &str) -> Record {
    Record::new(
        GridPath::parse(grid).unwrap(),
        author,
        1_700_000_000_000,
        RecordBody::Household(Household {
            head_name: "王建国".into(),
            address: "两当县城关镇".into(),
            ten_household_group: String::new(),
            members: BTreeMap::new(),
            machinery: BTreeMap::new(),
            vehicles: BTreeMap::new(),
            facilities: BTreeMap::new(),
            notes: String::new(),
        }),
    )
}

/// A hazard reported by `author`, removed (已消除) or not.
pub fn hazard(grid: &str, author: &str, removed: bool) -> Record {
    let mut events = vec![next_event(&[], author, 1_700_000_000_000, HazardAction::Reported { note: String::new() })];
    if removed {
        let e = next_event(&events, author, 1_700_000_100_000, HazardAction::Resolved { note: "已消除".into() });
        events.push(e);
    }
    Record::new(
        GridPath::parse(grid).unwrap(),
        author,
        1_700_000_000_000,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Fire,
            location: Location { text: "村口".into(), gps: None },
            description: "电线老化".into(),
            events,
        }),
    )
}

/// A record's changes as a phone would send them.
pub fn incoming(rec: &Record) -> IncomingDoc {
    let mut doc = RecordDoc::create(rec, ActorId::random()).unwrap();
    IncomingDoc::unsigned(rec.id, doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect())
}

/// Merge docs as `u` through `store`, returning the outcomes. The changes
/// come from test documents with random actors, so the actor rule is the
/// server's own (the per-device actor rule has its own tests).
pub fn push(store: &dyn ServerStore, dev: &str, u: &User, docs: &[IncomingDoc]) -> Vec<Outcome> {
    let pusher = Pusher { user: u.clone(), device_id: dev.into(), actor: PusherActor::Server };
    crate::sync::merge_records(store, &pusher, docs, 1_700_000_000_000).unwrap()
}

/// Read the feed to its end, waiting up to 10 s until `at_least` changes
/// are visible (PostgreSQL hides rows while older transactions run).
pub fn drain(store: &dyn ServerStore, scope: &ReadScope, exclude: &str, at_least: usize) -> Vec<(Uuid, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cursor = Cursor::default();
    let mut out = Vec::new();
    loop {
        let page = store.read_feed(cursor, scope, exclude, 64 * 1024).unwrap();
        assert!(page.next >= cursor, "cursor went backwards");
        cursor = page.next;
        out.extend(page.changes);
        if page.more {
            continue;
        }
        if out.len() >= at_least || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn acked(o: &Outcome) -> bool {
    o.all_acked() && !o.acked.is_empty()
}

pub fn setup(store: &dyn ServerStore) {
    for u in [
        user("gm1", Role::GridManager, "t01/v01/g1"),
        user("gm2", Role::GridManager, "t01/v01/g2"),
        user("gm3", Role::GridManager, "t01/v02/g1"),
        user("vl1", Role::VillageLeader, "t01/v01"),
        user("tc1", Role::TownshipChief, "t01"),
        user("tc2", Role::TownshipChief, "t02"),
        user("county", Role::CountyStaff, ""),
    ] {
        store.add_user(&u).unwrap();
    }
}

/// A hazard in `grid` by `author` with photos `(hash, by)` attached.
pub fn hazard_with_photos(grid: &str, author: &str, photos: &[(&str, &str)]) -> Record {
    let events = vec![next_event(&[], author, 1_700_000_000_000, HazardAction::Reported { note: "巡查发现".into() })];
    let mut r = Record::new(
        GridPath::parse(grid).unwrap(),
        author,
        1_700_000_000_000,
        RecordBody::Hazard(Hazard {
            category: HazardCategory::Geological,
            location: Location { text: "二组后山".into(), gps: None },
            description: "山体裂缝".into(),
            events,
        }),
    );
    for (hash, by) in photos {
        let a =
            Attachment { mime: "image/jpeg".into(), size: 5000, at: 1, by: (*by).into(), event: None, thumb_of: None };
        r.attachments.insert((*hash).into(), a);
    }
    r
}

/// A hazard of gm1's to which gm1 and vl1 attached a first photo each at
/// once (`a…` and `b…`), pushed by each as their phones would: the
/// record's two `attachments` maps are in conflict in the stored document.
pub fn photos_attached_at_once(s: &dyn ServerStore) -> Record {
    let rec = hazard_with_photos("t01/v01/g1", "gm1", &[]);
    let mut a = RecordDoc::create(&rec, ActorId::random()).unwrap();
    let mut b = a.fork_as(ActorId::random());
    let base = a.heads();
    for (doc, hash, by) in [(&mut a, 'a', "gm1"), (&mut b, 'b', "vl1")] {
        let mut r = doc.record().unwrap();
        let photo =
            Attachment { mime: "image/jpeg".into(), size: 5000, at: 2, by: by.into(), event: None, thumb_of: None };
        r.attachments.insert(hash.to_string().repeat(64), photo);
        r.updated_at += 1;
        doc.update(&r).unwrap();
    }
    let bytes = |d: &mut RecordDoc, from: &[automerge::ChangeHash]| -> Vec<Vec<u8>> {
        d.changes_since(from).iter().map(|c| c.raw_bytes().to_vec()).collect()
    };
    let gm1 = s.user("gm1").unwrap().unwrap();
    let vl1 = s.user("vl1").unwrap().unwrap();
    assert!(push(s, "d1", &gm1, &[IncomingDoc::unsigned(rec.id, bytes(&mut a, &[]))]).iter().all(acked));
    assert!(push(s, "d2", &vl1, &[IncomingDoc::unsigned(rec.id, bytes(&mut b, &base))]).iter().all(acked));
    rec
}

/// Every concern's conformance tests for one backend: `make` builds a
/// fresh, migrated, empty store (or `None` when the backend's database is
/// not configured); each concern's tests run in a module of their own.
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_tests {
    ($(#[$meta:meta])* make: $make:expr) => {
        use $crate::store::conformance::*;
        use $crate::store::*;
        use gridsync_core::grid::{GridPath, Role};
        use std::collections::HashSet;

        fn make_opt() -> Option<Box<dyn ServerStore>> {
            $make
        }

        /// A fresh store; a backend that needs a database which is not
        /// configured fails the test it was asked to run (its tests are
        /// `#[ignore]`d, so they run only when asked).
        fn make() -> Box<dyn ServerStore> {
            make_opt().expect("this backend's tests need GRIDSYNC_TEST_POSTGRES_URL (see README)")
        }

        mod schema {
            use super::*;
            $crate::schema_store_conformance!($(#[$meta])*);
        }

        mod accounts {
            use super::*;
            $crate::account_store_conformance!($(#[$meta])*);
        }

        mod devices {
            use super::*;
            $crate::device_store_conformance!($(#[$meta])*);
        }

        mod records {
            use super::*;
            $crate::record_store_conformance!($(#[$meta])*);
        }

        mod case_counts {
            use super::*;
            $crate::case_count_store_conformance!($(#[$meta])*);
        }

        mod sessions {
            use super::*;
            $crate::session_store_conformance!($(#[$meta])*);
        }

        mod audit {
            use super::*;
            $crate::audit_store_conformance!($(#[$meta])*);
        }

        mod photos {
            use super::*;
            $crate::photo_store_conformance!($(#[$meta])*);
        }
    };
}

/// The [`SchemaStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! schema_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn the_database_answers_commits_a_probe_and_migrates_again_harmlessly() {
            let s = make();
            s.ping().unwrap();
            s.probe_write(1).unwrap();
            s.probe_write(2).unwrap();
            s.migrate().unwrap();
            assert_eq!(s.change_count().unwrap(), 0, "a fresh store holds no change");
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&patrol("t01/v01/g1", "gm1"))]).iter().all(acked));
            assert_eq!(s.change_count().unwrap(), 1);
            s.migrate().unwrap();
            assert_eq!(s.change_count().unwrap(), 1, "migrating a current schema keeps what it holds");
            s.ping().unwrap();
        }
    };
}

/// The [`AccountStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! account_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn users_and_grid_nodes() {
            let s = make();
            s.put_grid_nodes(&[GridNode { path: GridPath::parse("t01").unwrap(), name: "城关镇".into() }]).unwrap();
            s.put_grid_nodes(&[GridNode { path: GridPath::parse("t01").unwrap(), name: "城关镇(新)".into() }]).unwrap();
            assert_eq!(s.grid_nodes().unwrap()[0].name, "城关镇(新)");
            let u = user("gm1", Role::GridManager, "t01/v01/g1");
            s.add_user(&u).unwrap();
            assert!(matches!(s.add_user(&u), Err(StoreError::Conflict(_))));
            assert_eq!(s.user("gm1").unwrap(), Some(u));
            assert_eq!(s.user("nobody").unwrap(), None);
            assert_eq!(s.users().unwrap().len(), 1);
        }

        /// Records are judged before the writer is taken: a record another
        /// request changed meanwhile must be judged again, or its stored
        /// state would lose that request's acknowledged changes.

        #[test]
        $(#[$meta])*
        fn accounts_change_role_grid_agency_and_deactivate() {
            let s = make();
            s.add_user(&user("gm1", Role::GridManager, "t01/v01/g1")).unwrap();
            s.add_user(&user("police", Role::AgencyStaff, "")).unwrap();
            let a = s.account("gm1").unwrap().unwrap();
            assert_eq!((a.agency, a.deactivated_at), (None, None));
            assert_eq!(s.accounts().unwrap().len(), 2);
            assert!(s.account("nobody").unwrap().is_none());
            s.set_agency("police", Some(Agency::Police)).unwrap();
            assert_eq!(s.account("police").unwrap().unwrap().agency, Some(Agency::Police));
            assert!(matches!(s.set_agency("nobody", None), Err(StoreError::NotFound(_))));
            let session = |h: &[u8]| WebSession {
                token_hash: h.to_vec(),
                user_id: "gm1".into(),
                csrf: "c".into(),
                created_at: 0,
                expires_at: i64::MAX,
            };
            s.create_enrollment(b"c1", "gm1", i64::MAX).unwrap();
            assert!(matches!(s.redeem_enrollment(b"c1", &device("d1", "gm1"), b"t1", 1).unwrap(), Redeemed::Enrolled(_)));
            s.create_web_session(&session(b"s1")).unwrap();
            // A new name alone keeps the phone and the session.
            let mut u = s.user("gm1").unwrap().unwrap();
            u.display_name = "王秀英".into();
            s.update_user(&u, 5).unwrap();
            assert_eq!(s.user("gm1").unwrap().unwrap().display_name, "王秀英");
            assert!(s.device_by_token(b"t1").unwrap().unwrap().device.revoked_at.is_none());
            assert!(s.web_session(b"s1", 10).unwrap().is_some());
            // A new grid revokes the phone and ends the session.
            u.grid = GridPath::parse("t01/v01/g2").unwrap();
            s.update_user(&u, 6).unwrap();
            assert_eq!(s.user("gm1").unwrap().unwrap().grid.to_string(), "t01/v01/g2");
            assert_eq!(s.device_by_token(b"t1").unwrap().unwrap().device.revoked_at, Some(6));
            assert!(s.web_session(b"s1", 10).unwrap().is_none());
            assert!(matches!(s.update_user(&user("nobody", Role::GridManager, "t01/v01/g1"), 1), Err(StoreError::NotFound(_))));
            // Deactivating ends sessions, revokes devices and voids codes.
            s.create_enrollment(b"c2", "gm1", i64::MAX).unwrap();
            s.create_enrollment(b"c3", "gm1", i64::MAX).unwrap();
            assert!(matches!(s.redeem_enrollment(b"c2", &device("d2", "gm1"), b"t2", 1).unwrap(), Redeemed::Enrolled(_)));
            s.create_web_session(&session(b"s2")).unwrap();
            s.set_active("gm1", false, 20).unwrap();
            assert_eq!(s.account("gm1").unwrap().unwrap().deactivated_at, Some(20));
            assert!(s.web_session(b"s2", 30).unwrap().is_none());
            assert_eq!(s.device_by_token(b"t2").unwrap().unwrap().device.revoked_at, Some(20));
            assert_eq!(s.redeem_enrollment(b"c3", &device("d3", "gm1"), b"t3", 30).unwrap(), Redeemed::InvalidCode);
            assert!(matches!(s.create_enrollment(b"c4", "gm1", i64::MAX), Err(StoreError::NotFound(_))));
            s.set_active("gm1", false, 40).unwrap();
            assert_eq!(s.account("gm1").unwrap().unwrap().deactivated_at, Some(20), "the first deactivation stays");
            s.set_active("gm1", true, 50).unwrap();
            assert_eq!(s.account("gm1").unwrap().unwrap().deactivated_at, None);
            s.create_enrollment(b"c5", "gm1", i64::MAX).unwrap();
            assert!(matches!(s.set_active("nobody", false, 1), Err(StoreError::NotFound(_))));
        }
    };
}

/// The [`DeviceStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! device_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn enrollment_codes_work_once_and_expire() {
            let s = make();
            s.add_user(&user("gm1", Role::GridManager, "t01/v01/g1")).unwrap();
            assert!(matches!(s.create_enrollment(b"x", "nobody", 10), Err(StoreError::NotFound(_))));
            s.create_enrollment(b"code1", "gm1", 1_000).unwrap();
            s.create_enrollment(b"code2", "gm1", 1_000).unwrap();
            let got = s.redeem_enrollment(b"code1", &device("d1", "gm1"), b"tok1", 500).unwrap();
            assert!(matches!(got, Redeemed::Enrolled(u) if u.id == "gm1"));
            let invalid = |r: Redeemed| r == Redeemed::InvalidCode;
            assert!(invalid(s.redeem_enrollment(b"code1", &device("d2", "gm1"), b"tok2", 500).unwrap()), "used twice");
            assert!(invalid(s.redeem_enrollment(b"code2", &device("d3", "gm1"), b"tok3", 1_000).unwrap()), "expired");
            assert!(invalid(s.redeem_enrollment(b"nope", &device("d4", "gm1"), b"tok4", 1).unwrap()));
            let auth = s.device_by_token(b"tok1").unwrap().unwrap();
            assert_eq!((auth.device.id.as_str(), auth.user.id.as_str()), ("d1", "gm1"));
            assert!(s.device_by_token(b"tok2").unwrap().is_none());
            s.touch_device("d1", 700).unwrap();
            assert!(s.revoke_device("d1", 800).unwrap());
            assert!(!s.revoke_device("zzz", 800).unwrap());
            let d = &s.devices().unwrap()[0];
            assert_eq!((d.last_sync_at, d.revoked_at), (Some(700), Some(800)));
            assert_eq!(s.device_by_token(b"tok1").unwrap().unwrap().device.revoked_at, Some(800));
            // By id: revoked devices too (a relay names its signer), with the user.
            let by_id = s.device("d1").unwrap().unwrap();
            assert_eq!((by_id.device.revoked_at, by_id.user.id.as_str()), (Some(800), "gm1"));
            assert!(s.device("d2").unwrap().is_none(), "never enrolled");
        }

        #[test]
        $(#[$meta])*
        fn device_keys_server_secrets_and_the_change_log() {
            let s = make();
            s.add_user(&user("gm1", Role::GridManager, "t01/v01/g1")).unwrap();
            s.create_enrollment(b"k1", "gm1", 10_000).unwrap();
            s.create_enrollment(b"k2", "gm1", 10_000).unwrap();
            let keyed = Device { public_key: Some(vec![1; 32]), ..device("d1", "gm1") };
            assert!(matches!(s.redeem_enrollment(b"k1", &keyed, b"t1", 1).unwrap(), Redeemed::Enrolled(_)));
            assert!(matches!(s.redeem_enrollment(b"k2", &device("d2", "gm1"), b"t2", 1).unwrap(), Redeemed::Enrolled(_)));
            let key_of = |t: &[u8]| s.device_by_token(t).unwrap().unwrap().device.public_key;
            assert_eq!((key_of(b"t1"), key_of(b"t2")), (Some(vec![1; 32]), None));
            assert_eq!(s.set_device_key("d1", &[1; 32]).unwrap(), KeyRegistered::Same);
            assert_eq!(s.set_device_key("d1", &[2; 32]).unwrap(), KeyRegistered::Conflict);
            assert_eq!(s.set_device_key("d2", &[3; 32]).unwrap(), KeyRegistered::Registered);
            assert_eq!(s.set_device_key("d2", &[4; 32]).unwrap(), KeyRegistered::Conflict);
            assert_eq!(s.set_device_key("nope", &[4; 32]).unwrap(), KeyRegistered::UnknownDevice);
            assert_eq!(key_of(b"t2"), Some(vec![3; 32]));
            assert!(s.devices().unwrap().iter().all(|d| d.public_key.is_some()));
            // The first secret stored is the one every later caller gets.
            assert_eq!(s.server_secret("relay", b"first", 1).unwrap(), b"first".to_vec());
            assert_eq!(s.server_secret("relay", b"second", 2).unwrap(), b"first".to_vec());
            // Changes are logged in order with their origin and signature.
            let rec = patrol("t01/v01/g1", "gm1");
            let mut inc = incoming(&rec);
            let hash = gridsync_core::doc::parse_change(&inc.changes[0]).unwrap().hash().0;
            let mut manifest = gridsync_core::signing::Manifest::new();
            manifest.push(&rec.id, &[hash]);
            inc.batch = Some(std::sync::Arc::new(SignedBatch { signature: Signature([9; 64]), manifest: manifest.clone() }));
            assert!(push(s.as_ref(), "d1", &user("gm1", Role::GridManager, "t01/v01/g1"), &[inc]).iter().all(acked));
            let log = s.change_log(rec.id).unwrap();
            assert_eq!(log.len(), 1);
            assert_eq!((log[0].hash, log[0].origin.as_str(), log[0].signature), (hash, "d1", Some(Signature([9; 64]))));
            assert!(s.change_log(uuid::Uuid::new_v4()).unwrap().is_empty());
            assert_eq!(s.signed_batch(&Signature([9; 64])).unwrap(), Some(manifest));
            assert_eq!(s.signed_batch(&Signature([8; 64])).unwrap(), None);
        }

        #[test]
        $(#[$meta])*
        fn an_actor_id_belongs_to_one_device_of_one_user() {
            let s = make();
            s.add_user(&user("gm1", Role::GridManager, "t01/v01/g1")).unwrap();
            s.add_user(&user("gm2", Role::GridManager, "t01/v01/g2")).unwrap();
            for c in [&b"c1"[..], b"c2", b"c3", b"c4"] {
                s.create_enrollment(c, if c == b"c3" { "gm2" } else { "gm1" }, 10_000).unwrap();
            }
            let with_actor = |id: &str, user: &str, a: &[u8]| Device { actor: Some(a.to_vec()), ..device(id, user) };
            assert!(matches!(s.redeem_enrollment(b"c1", &with_actor("d1", "gm1", b"A"), b"t1", 1).unwrap(), Redeemed::Enrolled(_)));
            // The same phone enrolling again as the same user takes its actor along.
            assert!(matches!(s.redeem_enrollment(b"c2", &with_actor("d2", "gm1", b"A"), b"t2", 1).unwrap(), Redeemed::Enrolled(_)));
            let actor_of = |t: &[u8]| s.device_by_token(t).unwrap().unwrap().device.actor;
            assert_eq!((actor_of(b"t1"), actor_of(b"t2")), (None, Some(b"A".to_vec())));
            // Another user's phone cannot claim it, and its code stays usable.
            assert_eq!(s.redeem_enrollment(b"c3", &with_actor("d3", "gm2", b"A"), b"t3", 1).unwrap(), Redeemed::ActorInUse);
            assert!(matches!(s.redeem_enrollment(b"c3", &with_actor("d3", "gm2", b"B"), b"t3", 1).unwrap(), Redeemed::Enrolled(_)));
            // A device without an actor claims a free one, once.
            assert!(matches!(s.redeem_enrollment(b"c4", &device("d4", "gm1"), b"t4", 1).unwrap(), Redeemed::Enrolled(_)));
            assert!(!s.claim_actor("d4", b"B").unwrap(), "held by d3");
            assert!(s.claim_actor("d4", b"C").unwrap());
            assert!(s.claim_actor("d4", b"C").unwrap(), "claiming again is harmless");
            assert!(!s.claim_actor("d4", b"D").unwrap(), "a device has one actor");
            assert!(!s.claim_actor("nobody", b"E").unwrap());
            assert_eq!(actor_of(b"t4"), Some(b"C".to_vec()));
        }
    };
}

/// The [`RecordStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! record_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn concurrent_edits_of_one_record_all_reach_its_stored_state() {
            use gridsync_core::doc::RecordDoc;
            let s = make();
            setup(s.as_ref());
            let gm = user("gm1", Role::GridManager, "t01/v01/g1");
            for round in 0..4 {
                let rec = household("t01/v01/g1", "gm1");
                let mut base = RecordDoc::create(&rec, automerge::ActorId::random()).unwrap();
                let first = IncomingDoc::unsigned(
                    rec.id,
                    base.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                );
                assert!(acked(&push(s.as_ref(), "d0", &gm, &[first])[0]));
                let heads = base.heads();
                let edits: Vec<IncomingDoc> = (0..8)
                    .map(|i| {
                        let mut d = base.fork_as(automerge::ActorId::random());
                        let mut r = rec.clone();
                        if let gridsync_core::model::RecordBody::Household(h) = &mut r.body {
                            h.notes = format!("第{round}轮第{i}次走访");
                        }
                        r.updated_at += 1 + i;
                        d.update(&r).unwrap();
                        IncomingDoc::unsigned(
                            rec.id,
                            d.changes_since(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                        )
                    })
                    .collect();
                let store = s.as_ref();
                let acks: Vec<Vec<[u8; 32]>> = std::thread::scope(|sc| {
                    let threads: Vec<_> = edits
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            let gm = gm.clone();
                            sc.spawn(move || push(store, &format!("d{i}"), &gm, std::slice::from_ref(e)))
                        })
                        .collect();
                    threads.into_iter().map(|t| t.join().unwrap().remove(0).acked).collect()
                });
                let stored = s.snapshot(rec.id).unwrap().unwrap();
                let mut doc = RecordDoc::load(&stored.snapshot, automerge::ActorId::random()).unwrap();
                for (i, hashes) in acks.iter().enumerate() {
                    assert!(!hashes.is_empty(), "round {round}: edit {i} was refused");
                    for h in hashes {
                        let h = automerge::ChangeHash(*h);
                        assert!(
                            doc.automerge().get_change_by_hash(&h).is_some(),
                            "round {round}: edit {i} was acknowledged but is not in the stored record"
                        );
                    }
                }
            }
        }

        #[test]
        $(#[$meta])*
        fn each_change_is_stored_once_and_resending_is_harmless() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let rec = patrol("t01/v01/g1", "gm1");
            let inc = incoming(&rec);
            let out = push(s.as_ref(), "d1", &gm1, std::slice::from_ref(&inc));
            assert!(acked(&out[0]));
            assert_eq!(s.change_count().unwrap(), inc.changes.len() as u64);
            let out = push(s.as_ref(), "d1", &gm1, &[inc.clone(), inc.clone()]);
            assert!(out.iter().all(acked));
            assert_eq!(s.change_count().unwrap(), inc.changes.len() as u64);
            let view = s.record(rec.id).unwrap().unwrap();
            assert_eq!((view.kind, view.author.as_str()), (RecordKind::Patrol, "gm1"));
            assert_eq!(view.json["data"]["findings"], "一切正常");
            let county = s.user("county").unwrap().unwrap();
            assert_eq!(drain(s.as_ref(), &ReadScope::of(&county), "other", 1).len(), inc.changes.len());
        }

        /// One request holding an edit chain of a stored record, new
        /// records (one of them sensitive) and one out of the user's
        /// scope: each accepted record is stored, the refused one is not,
        /// and the feed gives each record's changes in the order they
        /// were made.

        #[test]
        $(#[$meta])*
        fn a_request_of_many_records_stores_each_and_feeds_changes_in_order() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let a = patrol("t01/v01/g1", "gm1");
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&a)]).iter().all(acked));
            let stored = s.snapshot(a.id).unwrap().unwrap();
            let mut doc = gridsync_core::doc::RecordDoc::load(&stored.snapshot, automerge::ActorId::random()).unwrap();
            let heads = doc.heads();
            let mut edited = a.clone();
            for note in ["第一次补记", "第二次补记"] {
                if let gridsync_core::model::RecordBody::Patrol(p) = &mut edited.body {
                    p.findings = note.into();
                }
                assert!(doc.update(&edited).unwrap());
            }
            let edits = doc.changes_since(&heads);
            let b = patrol("t01/v01/g1", "gm1");
            let hh = household("t01/v01/g1", "gm1");
            let elsewhere = patrol("t01/v02/g1", "gm1");
            let out = push(
                s.as_ref(),
                "d1",
                &gm1,
                &[
                    IncomingDoc::unsigned(a.id, edits.iter().map(|c| c.raw_bytes().to_vec()).collect()),
                    incoming(&b),
                    incoming(&hh),
                    incoming(&elsewhere),
                ],
            );
            assert!(out[..3].iter().all(acked), "{out:?}");
            assert_eq!(out[3].rejections[0].reason, gridsync_core::protocol::RejectReason::OutOfScope);
            assert_eq!(s.record(a.id).unwrap().unwrap().json["data"]["findings"], "第二次补记");
            assert!(s.record(b.id).unwrap().is_some());
            assert!(s.snapshot(hh.id).unwrap().unwrap().sensitive);
            assert!(s.record(elsewhere.id).unwrap().is_none());
            let county = s.user("county").unwrap().unwrap();
            let feed = drain(s.as_ref(), &ReadScope::of(&county), "other", 4);
            let hashes: Vec<automerge::ChangeHash> =
                feed.iter().map(|(_, bytes)| gridsync_core::doc::parse_change(bytes).unwrap().hash()).collect();
            let at = |h: automerge::ChangeHash| hashes.iter().position(|x| *x == h).expect("in the feed");
            assert!(at(edits[0].hash()) < at(edits[1].hash()), "a record's changes in the order made");
            // The household is sensitive: not in the county's feed.
            assert_eq!(feed.len(), 4, "a's creation and two edits, and b");

            // A record named twice in one request, created then edited:
            // the edit is judged on what the creation wrote.
            let c = patrol("t01/v01/g1", "gm1");
            let mut doc = gridsync_core::doc::RecordDoc::create(&c, automerge::ActorId::random()).unwrap();
            let created: Vec<Vec<u8>> = doc.changes_since(&[]).iter().map(|x| x.raw_bytes().to_vec()).collect();
            let heads = doc.heads();
            let mut edited = c.clone();
            if let gridsync_core::model::RecordBody::Patrol(p) = &mut edited.body {
                p.findings = "同一请求中的补记".into();
            }
            assert!(doc.update(&edited).unwrap());
            let edit: Vec<Vec<u8>> = doc.changes_since(&heads).iter().map(|x| x.raw_bytes().to_vec()).collect();
            let out = push(s.as_ref(), "d1", &gm1, &[IncomingDoc::unsigned(c.id, created), IncomingDoc::unsigned(c.id, edit)]);
            assert!(out.iter().all(acked), "{out:?}");
            assert_eq!(s.record(c.id).unwrap().unwrap().json["data"]["findings"], "同一请求中的补记");
        }

        /// A request of as many records as a request may hold (20,000,
        /// one change each), more than PostgreSQL's shared lock table holds
        /// at its defaults (6,400 slots, about 12,000 in practice), is
        /// stored whole: it is merged in parts, not in one transaction
        /// that runs out of shared memory and takes other merges with it.

        #[test]
        $(#[$meta])*
        fn a_request_of_thousands_of_records_is_stored_whole() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let n = gridsync_core::protocol::DecodeLimits::default().max_changes;
            let records: Vec<_> = (0..n).map(|_| patrol("t01/v01/g1", "gm1")).collect();
            let docs: Vec<IncomingDoc> = records.iter().map(incoming).collect();
            let out = push(s.as_ref(), "d1", &gm1, &docs);
            assert_eq!(out.iter().filter(|o| acked(o)).count(), records.len());
            for r in [&records[0], &records[n / 2], &records[n - 1]] {
                assert!(s.record(r.id).unwrap().is_some());
            }
            let county = s.user("county").unwrap().unwrap();
            assert_eq!(drain(s.as_ref(), &ReadScope::of(&county), "other", n).len(), n);
        }

        #[test]
        $(#[$meta])*
        fn rejected_records_write_nothing() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let other_village = patrol("t01/v02/g1", "gm1");
            let out = push(s.as_ref(), "d1", &gm1, &[incoming(&other_village)]);
            assert_eq!(out[0].rejections[0].reason, gridsync_core::protocol::RejectReason::OutOfScope);
            assert!(out[0].acked.is_empty());
            let garbage = IncomingDoc::unsigned(uuid::Uuid::new_v4(), vec![vec![1, 2, 3]]);
            let out = push(s.as_ref(), "d1", &gm1, &[garbage]);
            assert!(!acked(&out[0]));
            assert_eq!(s.change_count().unwrap(), 0);
            assert!(s.record(other_village.id).unwrap().is_none());
        }

        #[test]
        $(#[$meta])*
        fn feed_honours_scope_sensitivity_and_origin() {
            let s = make();
            setup(s.as_ref());
            let u = |id: &str| s.user(id).unwrap().unwrap();
            let p1 = incoming(&patrol("t01/v01/g1", "gm1"));
            let p2 = incoming(&patrol("t01/v01/g2", "gm2"));
            let p3 = incoming(&patrol("t01/v02/g1", "gm3"));
            let h1 = incoming(&household("t01/v01/g1", "gm1"));
            assert!(push(s.as_ref(), "d1", &u("gm1"), &[p1.clone(), h1.clone()]).iter().all(acked));
            assert!(push(s.as_ref(), "d2", &u("gm2"), std::slice::from_ref(&p2)).iter().all(acked));
            assert!(push(s.as_ref(), "d3", &u("gm3"), std::slice::from_ref(&p3)).iter().all(acked));
            let docs = |user: &str, exclude: &str, n: usize| -> HashSet<uuid::Uuid> {
                drain(s.as_ref(), &ReadScope::of(&u(user)), exclude, n).into_iter().map(|(d, _)| d).collect()
            };
            assert_eq!(docs("gm1", "x", 2), HashSet::from([p1.doc_id, h1.doc_id]));
            assert_eq!(docs("gm1", "d1", 0), HashSet::new(), "own changes are not echoed back");
            assert_eq!(docs("vl1", "x", 3), HashSet::from([p1.doc_id, p2.doc_id, h1.doc_id]));
            assert_eq!(docs("tc1", "x", 3), HashSet::from([p1.doc_id, p2.doc_id, p3.doc_id]), "township: no household");
            assert_eq!(docs("tc2", "x", 0), HashSet::new());
            assert_eq!(docs("county", "x", 3), HashSet::from([p1.doc_id, p2.doc_id, p3.doc_id]));
        }

        #[test]
        $(#[$meta])*
        fn feed_pages_are_bounded_and_resume() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let docs: Vec<IncomingDoc> = (0..40).map(|_| incoming(&patrol("t01/v01/g1", "gm1"))).collect();
            assert!(push(s.as_ref(), "d1", &gm1, &docs).iter().all(acked));
            let total: usize = docs.iter().flat_map(|d| &d.changes).map(Vec::len).sum();
            let scope = ReadScope::of(&gm1);
            drain(s.as_ref(), &scope, "x", 40);
            let mut cursor = Cursor::default();
            let mut seen = Vec::new();
            let mut pages = 0;
            loop {
                let page = s.read_feed(cursor, &scope, "x", total / 4).unwrap();
                pages += 1;
                assert!(page.changes.iter().map(|c| c.1.len()).sum::<usize>() <= total / 4 + 1024);
                cursor = Cursor::from_bytes(&page.next.to_bytes()).unwrap();
                seen.extend(page.changes.into_iter().map(|c| c.0));
                if !page.more {
                    break;
                }
            }
            assert!((4..=6).contains(&pages), "{pages} pages");
            // One transaction's rows may come in the backend's lock order;
            // what matters is every change exactly once.
            let mut want: Vec<uuid::Uuid> = docs.iter().map(|d| d.doc_id).collect();
            want.sort();
            seen.sort();
            assert_eq!(seen, want, "every change exactly once");
            let after = s.read_feed(cursor, &scope, "x", 1 << 20).unwrap();
            assert!(after.changes.is_empty() && !after.more);
        }

        #[test]
        $(#[$meta])*
        fn records_view_filters() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&patrol("t01/v01/g1", "gm1")), incoming(&household("t01/v01/g1", "gm1"))]).iter().all(acked));
            let q = |kind: Option<&str>, sensitive: bool, under: &str| {
                s.records(&ViewQuery {
                    under: Some(GridPath::parse(under).unwrap()),
                    kind: kind.map(|k| RecordKind::parse(k).unwrap()),
                    sensitive,
                    ..Default::default()
                })
                .unwrap()
                .len()
            };
            assert_eq!(q(None, true, "t01"), 2);
            assert_eq!(q(None, false, "t01"), 1);
            assert_eq!(q(Some("household"), true, "t01/v01/g1"), 1);
            assert_eq!(q(None, true, "t02"), 0);
        }

        /// A list's total and the dashboard's counts come from the
        /// database, whatever a page shows: paging gives every record once,
        /// and the open filter is the figures' own definition of open.

        #[test]
        $(#[$meta])*
        fn records_are_counted_paged_and_tallied() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let gm3 = s.user("gm3").unwrap().unwrap();
            let mine: Vec<IncomingDoc> = (0..7).map(|i| incoming(&hazard("t01/v01/g1", "gm1", i % 3 == 0))).collect();
            assert!(push(s.as_ref(), "d1", &gm1, &mine).iter().all(acked));
            assert!(push(s.as_ref(), "d3", &gm3, &[incoming(&hazard("t01/v02/g1", "gm3", false))]).iter().all(acked));
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&patrol("t01/v01/g1", "gm1"))]).iter().all(acked));
            let q = ViewQuery {
                under: Some(GridPath::parse("t01/v01").unwrap()),
                kind: Some(RecordKind::Hazard),
                live: true,
                ..Default::default()
            };
            assert_eq!(s.count_records(&q).unwrap(), 7);
            assert_eq!(s.count_records(&ViewQuery { open: Some(true), ..q.clone() }).unwrap(), 4);
            assert_eq!(s.count_records(&ViewQuery { open: Some(false), ..q.clone() }).unwrap(), 3);
            assert_eq!(s.count_records(&ViewQuery { status: Some("resolved".into()), ..q.clone() }).unwrap(), 3);
            let mut seen = HashSet::new();
            for page in 0..4 {
                let rows = s
                    .records(&ViewQuery { limit: Some(2), offset: page * 2, open_first: true, ..q.clone() })
                    .unwrap();
                assert_eq!(rows.len(), [2, 2, 2, 1][page as usize]);
                if page < 2 {
                    assert!(rows.iter().all(|r| r.status != "resolved"), "open ones first");
                }
                seen.extend(rows.into_iter().map(|r| r.id));
            }
            assert_eq!(seen.len(), 7, "every record once over the pages");
            let tally = s.tally(&GridPath::parse("t01").unwrap(), &[RecordKind::Hazard]).unwrap();
            let count = |node: &str, status: &str| {
                tally
                    .iter()
                    .filter(|t| t.node == GridPath::parse(node).unwrap() && t.status == status && t.kind == RecordKind::Hazard)
                    .map(|t| t.count)
                    .sum::<u64>()
            };
            assert_eq!((count("t01/v01", "open"), count("t01/v01", "resolved"), count("t01/v02", "open")), (4, 3, 1));
            assert!(tally.iter().all(|t| t.kind == RecordKind::Hazard), "only the kinds asked for");
        }

        #[test]
        $(#[$meta])*
        fn snapshots_are_what_the_next_merge_starts_from() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let rec = patrol("t01/v01/g1", "gm1");
            assert!(s.snapshot(rec.id).unwrap().is_none());
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&rec)]).iter().all(acked));
            let stored = s.snapshot(rec.id).unwrap().unwrap();
            assert!(!stored.sensitive);
            let mut doc = gridsync_core::doc::RecordDoc::load(&stored.snapshot, automerge::ActorId::random()).unwrap();
            assert_eq!(doc.record().unwrap(), rec);
            // An edit built on the snapshot merges as a diff.
            let heads = doc.heads();
            let mut edited = rec.clone();
            if let gridsync_core::model::RecordBody::Patrol(p) = &mut edited.body {
                p.findings = "发现一处隐患".into();
            }
            assert!(doc.update(&edited).unwrap());
            let ch = doc.changes_since(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
            assert!(push(s.as_ref(), "d1", &gm1, &[IncomingDoc::unsigned(rec.id, ch)]).iter().all(acked));
            assert_eq!(s.record(rec.id).unwrap().unwrap().json["data"]["findings"], "发现一处隐患");
            let hh = household("t01/v01/g1", "gm1");
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&hh)]).iter().all(acked));
            assert!(s.snapshot(hh.id).unwrap().unwrap().sensitive);
        }

        #[test]
        $(#[$meta])*
        fn concurrent_merges_of_one_record_lose_nothing() {
            let s = make();
            let s: std::sync::Arc<dyn ServerStore> = s.into();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let rec = patrol("t01/v01/g1", "gm1");
            let mut base = gridsync_core::doc::RecordDoc::create(&rec, automerge::ActorId::random()).unwrap();
            let first = IncomingDoc::unsigned(rec.id, base.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect());
            assert!(push(s.as_ref(), "d0", &gm1, &[first]).iter().all(acked));
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let s = s.clone();
                    let gm1 = gm1.clone();
                    let mut fork = base.fork_as(automerge::ActorId::random());
                    let mut rec = rec.clone();
                    std::thread::spawn(move || {
                        for i in 0..5 {
                            let heads = fork.heads();
                            if let gridsync_core::model::RecordBody::Patrol(p) = &mut rec.body {
                                p.findings = format!("线程{t}第{i}次");
                                p.hazard_ids.insert(uuid::Uuid::new_v4().to_string(), true);
                            }
                            fork.update(&rec).unwrap();
                            let ch = fork.changes_since(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
                            let out = push(s.as_ref(), &format!("d{t}"), &gm1, &[IncomingDoc::unsigned(rec.id, ch)]);
                            assert!(acked(&out[0]), "{out:?}");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(s.change_count().unwrap(), 1 + 4 * 5);
            let view = s.record(rec.id).unwrap().unwrap();
            assert_eq!(view.json["data"]["hazard_ids"].as_object().unwrap().len(), 20, "every linked hazard kept");
        }

        /// Uploads begin only within the user's budgets: the declared bytes
        /// under way, and those begun in a day (finished ones count until
        /// the day has passed); another user's budget is their own.

        #[test]
        $(#[$meta])*
        fn stored_docs_are_the_committed_state_and_a_merge_may_record_the_sync() {
            let s = make();
            setup(s.as_ref());
            let gm1 = s.user("gm1").unwrap().unwrap();
            let rec = patrol("t01/v01/g1", "gm1");
            let missing = uuid::Uuid::new_v4();
            assert_eq!(s.stored_docs(&[rec.id, missing]).unwrap(), vec![None, None]);
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&rec)]).iter().all(acked));
            let got = s.stored_docs(&[missing, rec.id]).unwrap();
            assert_eq!(got.len(), 2, "one answer per id, in order");
            assert!(got[0].is_none());
            assert_eq!(got[1], s.snapshot(rec.id).unwrap(), "what the next merge starts from");

            s.create_enrollment(b"code-1", "gm1", i64::MAX).unwrap();
            assert!(matches!(
                s.redeem_enrollment(b"code-1", &device("dev1", "gm1"), b"token-1", 1).unwrap(),
                Redeemed::Enrolled(_)
            ));
            let synced = |s: &dyn ServerStore| s.device("dev1").unwrap().unwrap().device.last_sync_at;
            s.merge_batch("dev1", None, &[], &mut |_, _, _| DocDecision::Reject).unwrap();
            assert_eq!(synced(s.as_ref()), None, "a merge without synced_at records no sync");
            s.merge_batch("dev1", Some(42), &[], &mut |_, _, _| DocDecision::Reject).unwrap();
            assert_eq!(synced(s.as_ref()), Some(42), "synced_at is recorded with the merge");
            let again = incoming(&patrol("t01/v01/g1", "gm1"));
            let out = s.merge_batch("dev1", Some(43), &[again], &mut |_, _, _| DocDecision::Reject).unwrap();
            assert!(matches!(out.as_slice(), [DocDecision::Reject]));
            assert_eq!(synced(s.as_ref()), Some(43));
            assert_eq!(s.change_count().unwrap(), 1, "a refused record writes nothing");
        }
    };
}

/// The [`CaseCountStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! case_count_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn case_counts_are_replaced_and_read_by_year() {
            let s = make();
            setup(s.as_ref());
            s.add_user(&user("police", Role::AgencyStaff, "")).unwrap();
            let c = |v: &str, year: i32, kind: CaseKind, count: u32, at: i64| CaseCount {
                village: GridPath::parse(v).unwrap(),
                year,
                kind,
                count,
                entered_by: "police".into(),
                entered_at: at,
            };
            s.put_case_counts(&[
                c("t01/v02", 2021, CaseKind::PublicSecurity, 2, 1),
                c("t01/v01", 2021, CaseKind::PublicSecurity, 0, 1),
                c("t01/v01", 2021, CaseKind::Lawsuit, 1, 1),
                c("t01/v01", 2022, CaseKind::Criminal, 4, 1),
            ])
            .unwrap();
            s.put_case_counts(&[c("t01/v01", 2021, CaseKind::Lawsuit, 3, 2)]).unwrap();
            let got = s.case_counts(2021).unwrap();
            assert_eq!(
                got,
                vec![
                    c("t01/v01", 2021, CaseKind::Lawsuit, 3, 2),
                    c("t01/v01", 2021, CaseKind::PublicSecurity, 0, 1),
                    c("t01/v02", 2021, CaseKind::PublicSecurity, 2, 1),
                ]
            );
            assert_eq!(s.case_counts(2022).unwrap().len(), 1);
            assert!(s.case_counts(2020).unwrap().is_empty());
            // All or nothing: an unknown user fails the whole batch.
            let mut bad = c("t01/v02", 2020, CaseKind::Criminal, 1, 3);
            bad.entered_by = "nobody".into();
            assert!(s.put_case_counts(&[c("t01/v02", 2020, CaseKind::Lawsuit, 1, 3), bad]).is_err());
            assert!(s.case_counts(2020).unwrap().is_empty());
        }
    };
}

/// The [`SessionStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! session_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn web_passwords_lock_out_and_reset() {
            let s = make();
            s.add_user(&user("tc1", Role::TownshipChief, "t01")).unwrap();
            assert!(matches!(s.set_web_password("nobody", "$argon2id$x", 1), Err(StoreError::NotFound(_))));
            assert_eq!(s.web_password("tc1").unwrap(), None);
            assert!(s.begin_sign_in("tc1", 5, 3, 100).unwrap(), "no password: nothing to count");
            s.set_web_password("tc1", "$argon2id$a", 1).unwrap();
            // Each attempt counts before its password is checked.
            for i in 0..2 {
                assert!(s.begin_sign_in("tc1", 10 + i, 3, 100).unwrap());
            }
            let p = s.web_password("tc1").unwrap().unwrap();
            assert_eq!((p.hash.as_str(), p.failures, p.locked_until), ("$argon2id$a", 2, None));
            // The third still gets its check, and locks the account.
            assert!(s.begin_sign_in("tc1", 20, 3, 100).unwrap());
            let p = s.web_password("tc1").unwrap().unwrap();
            assert_eq!((p.failures, p.locked_until), (0, Some(120)));
            assert!(!s.begin_sign_in("tc1", 21, 3, 100).unwrap(), "locked");
            assert!(!s.begin_sign_in("tc1", 119, 3, 100).unwrap(), "still locked");
            assert!(s.begin_sign_in("tc1", 120, 3, 100).unwrap(), "the lock ended");
            s.clear_failed_sign_ins("tc1").unwrap();
            let p = s.web_password("tc1").unwrap().unwrap();
            assert_eq!((p.failures, p.locked_until), (0, None));
            assert!(s.begin_sign_in("tc1", 130, 3, 100).unwrap());
            // A new password clears the count and ends the user's sessions.
            s.create_web_session(&WebSession {
                token_hash: b"sess".to_vec(),
                user_id: "tc1".into(),
                csrf: "c".into(),
                created_at: 0,
                expires_at: 1_000,
            })
            .unwrap();
            s.set_web_password("tc1", "$argon2id$b", 140).unwrap();
            let p = s.web_password("tc1").unwrap().unwrap();
            assert_eq!((p.hash.as_str(), p.failures, p.locked_until), ("$argon2id$b", 0, None));
            assert_eq!(s.web_session(b"sess", 150).unwrap(), None, "the reset ended the session");
        }

        /// Forty sign-ins of one account at once: no more than the limit
        /// are let through to a password check.

        #[test]
        $(#[$meta])*
        fn parallel_sign_ins_cannot_all_get_through() {
            let s = make();
            s.add_user(&user("tc1", Role::TownshipChief, "t01")).unwrap();
            s.set_web_password("tc1", "$argon2id$a", 1).unwrap();
            let s: std::sync::Arc<dyn ServerStore> = std::sync::Arc::from(s);
            let allowed: usize = (0..40)
                .map(|_| {
                    let s = s.clone();
                    std::thread::spawn(move || usize::from(s.begin_sign_in("tc1", 10, 5, 60_000).unwrap()))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(allowed, 5);
        }

        #[test]
        $(#[$meta])*
        fn web_sessions_expire_and_end() {
            let s = make();
            s.add_user(&user("tc1", Role::TownshipChief, "t01")).unwrap();
            let mk = |h: &[u8], exp: i64| WebSession {
                token_hash: h.to_vec(),
                user_id: "tc1".into(),
                csrf: "c".into(),
                created_at: 0,
                expires_at: exp,
            };
            s.create_web_session(&mk(b"a", 100)).unwrap();
            s.create_web_session(&mk(b"b", 50)).unwrap();
            assert_eq!(s.web_session(b"a", 10).unwrap(), Some(mk(b"a", 100)));
            assert_eq!(s.web_session(b"a", 100).unwrap(), None);
            assert_eq!(s.web_session(b"zz", 10).unwrap(), None);
            s.delete_web_session(b"a", 60).unwrap();
            assert_eq!(s.web_session(b"a", 10).unwrap(), None);
            assert_eq!(s.web_session(b"b", 10).unwrap(), None, "expired sessions are dropped");
        }
    };
}

/// The [`AuditStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! audit_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn audit_log_appends_newest_first_and_pages_with_filters() {
            let s = make();
            let e = |at: i64, user: &str, action: &str, target: &str| AuditEntry {
                seq: 0,
                at,
                user_id: user.into(),
                action: action.into(),
                target: target.into(),
                ip: "127.0.0.1".into(),
            };
            s.append_audit(&e(1, "tc1", "sign_in", "")).unwrap();
            s.append_audit(&e(2, "tc1", "view_household", "h1")).unwrap();
            s.append_audit(&e(2, "tc1", "sign_out", "")).unwrap();
            for i in 0..520 {
                s.append_audit(&e(10 + i, "attacker", "sign_in_failed", "")).unwrap();
            }
            let strip = |v: Vec<AuditEntry>| v.into_iter().map(|x| (x.at, x.action)).collect::<Vec<_>>();
            let q = |f: &dyn Fn(&mut AuditQuery)| {
                let mut q = AuditQuery { limit: 100, ..Default::default() };
                f(&mut q);
                s.audit_log(&q).unwrap()
            };
            let newest = q(&|_| {});
            assert_eq!(newest.len(), 100);
            assert_eq!((newest[0].at, newest[0].action.as_str()), (529, "sign_in_failed"));
            // Paging reaches the oldest lines, however many came after them.
            let mut before = None;
            let mut all = Vec::new();
            loop {
                let page = q(&|q| q.before_seq = before);
                if page.is_empty() {
                    break;
                }
                before = page.last().map(|x| x.seq);
                all.extend(page);
            }
            assert_eq!(all.len(), 523);
            assert_eq!(strip(all.split_off(520)), vec![(2, "sign_out".into()), (2, "view_household".into()), (1, "sign_in".into())]);
            assert_eq!(strip(q(&|q| q.user = Some("tc1".into()))).len(), 3);
            assert_eq!(strip(q(&|q| q.target = Some("h1".into()))), vec![(2, "view_household".into())]);
            assert_eq!(q(&|q| q.action = Some("sign_in_failed".into())).len(), 100);
            assert_eq!(strip(q(&|q| {
                q.from = Some(2);
                q.until = Some(3);
            })), vec![(2, "sign_out".into()), (2, "view_household".into())]);
        }
    };
}

/// The [`PhotoStore`] tests, run by [`conformance_tests!`] in a module
/// that has `make()`.
#[macro_export]
#[doc(hidden)]
macro_rules! photo_store_conformance {
    ($(#[$meta:meta])*) => {
        #[test]
        $(#[$meta])*
        fn photo_uploads_are_held_to_each_users_budgets() {
            let s = make();
            let l = s.photo_ledger();
            let q = PhotoQuota { unfinished_bytes: 20_000, daily_bytes: 50_000 };
            let h = |c: char| c.to_string().repeat(64);
            let t = 1_700_000_000_000;
            assert_eq!(l.begin_photo_upload(&h('1'), "gm1", 8000, t, &q).unwrap(), UploadBegun::Started);
            assert_eq!(l.begin_photo_upload(&h('1'), "gm1", 8000, t + 1, &q).unwrap(), UploadBegun::Continuing);
            assert_eq!(l.begin_photo_upload(&h('2'), "gm1", 8000, t, &q).unwrap(), UploadBegun::Started);
            assert_eq!(l.begin_photo_upload(&h('3'), "gm1", 8000, t, &q).unwrap(), UploadBegun::OverUnfinished { held: 16_000 });
            assert_eq!(l.begin_photo_upload(&h('3'), "gm2", 8000, t, &q).unwrap(), UploadBegun::Started, "gm2's own budget");
            l.note_photo_upload(&h('1'), "gm1", 4000, t + 2).unwrap();
            let rows = l.photo_uploads().unwrap();
            assert_eq!(rows.iter().map(|r| (r.hash.as_str(), r.user_id.as_str(), r.received)).collect::<Vec<_>>(),
                [(h('1').as_str(), "gm1", 4000), (h('2').as_str(), "gm1", 0), (h('3').as_str(), "gm2", 0)]);
            l.finish_photo_upload(&h('1'), "gm1", 8000, t + 3).unwrap();
            l.drop_photo_upload(&h('2'), "gm1").unwrap();
            assert_eq!(l.photo_owners(&h('1')).unwrap(), ["gm1"]);
            // Under way: nothing; begun today: the finished 8,000.
            assert_eq!(l.begin_photo_upload(&h('4'), "gm1", 20_000, t, &q).unwrap(), UploadBegun::Started);
            l.finish_photo_upload(&h('4'), "gm1", 20_000, t + 4).unwrap();
            assert_eq!(l.begin_photo_upload(&h('5'), "gm1", 20_000, t, &q).unwrap(), UploadBegun::Started);
            l.finish_photo_upload(&h('5'), "gm1", 20_000, t + 5).unwrap();
            assert_eq!(l.begin_photo_upload(&h('6'), "gm1", 8000, t + 6, &q).unwrap(), UploadBegun::OverDaily { used: 48_000 });
            let tomorrow = t + 6 + photo_ledger::DAY_MS;
            assert_eq!(l.begin_photo_upload(&h('6'), "gm1", 8000, tomorrow, &q).unwrap(), UploadBegun::Started);
            let owners: Vec<(String, String)> =
                l.all_photo_owners().unwrap().into_iter().map(|o| (o.hash[..1].to_owned(), o.user_id)).collect();
            assert_eq!(owners, [("1".into(), "gm1".into()), ("4".into(), "gm1".into()), ("5".into(), "gm1".into())]);
            l.drop_photo_owners(&h('4'), Some("gm2")).unwrap();
            l.drop_photo_owners(&h('4'), Some("gm1")).unwrap();
            l.drop_photo_owners(&h('5'), None).unwrap();
            assert_eq!(l.all_photo_owners().unwrap().len(), 1);
        }

        /// A phone is asked for the photos live records say its user took
        /// and the user has not uploaded: not another's, not a deleted
        /// record's, not one the user owns.

        #[test]
        $(#[$meta])*
        fn the_photos_wanted_from_a_user_are_theirs_on_live_records_not_uploaded() {
            let s = make();
            setup(s.as_ref());
            let (ha, hb, hc) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
            let mine = hazard_with_photos("t01/v01/g1", "gm1", &[(&ha, "gm1"), (&hb, "gm1")]);
            let gone = hazard_with_photos("t01/v01/g1", "gm1", &[(&hc, "gm1")]);
            let theirs = hazard_with_photos("t01/v01/g2", "gm2", &[(&ha, "gm2")]);
            let gm1 = s.user("gm1").unwrap().unwrap();
            let gm2 = s.user("gm2").unwrap().unwrap();
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&mine)]).iter().all(acked));
            assert!(push(s.as_ref(), "d2", &gm2, &[incoming(&theirs)]).iter().all(acked));
            let mut doc = gridsync_core::doc::RecordDoc::create(&gone, automerge::ActorId::random()).unwrap();
            let mut deleted = gone.clone();
            deleted.deleted = true;
            deleted.updated_at += 1;
            doc.update(&deleted).unwrap();
            let all = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
            assert!(push(s.as_ref(), "d1", &gm1, &[IncomingDoc::unsigned(gone.id, all)]).iter().all(acked));
            let wanted = |u: &str| -> Vec<(String, i64)> {
                s.photo_ledger().photos_wanted(u, 10).unwrap().into_iter().map(|w| (w.hash[..1].to_owned(), w.size)).collect()
            };
            assert_eq!(wanted("gm1"), [("a".to_owned(), 5000), ("b".to_owned(), 5000)]);
            assert_eq!(wanted("gm2"), [("a".to_owned(), 5000)]);
            assert_eq!(s.photo_ledger().photos_wanted("gm1", 1).unwrap().len(), 1, "a page at most");
            s.photo_ledger().finish_photo_upload(&ha, "gm1", 5000, 1).unwrap();
            assert_eq!(wanted("gm1"), [("b".to_owned(), 5000)]);
            assert_eq!(wanted("gm2"), [("a".to_owned(), 5000)], "gm1's upload is not gm2's");
            assert_eq!(s.photo_ledger().photos_wanted("gm1", 10).unwrap()[0].record_id, mine.id);
        }

        #[test]
        $(#[$meta])*
        fn photo_holders_and_live_photos_follow_the_records_that_name_them() {
            let s = make();
            setup(s.as_ref());
            let (ha, hb) = ("a".repeat(64), "b".repeat(64));
            let gm1 = s.user("gm1").unwrap().unwrap();
            let gm3 = s.user("gm3").unwrap().unwrap();
            let mine = hazard_with_photos("t01/v01/g1", "gm1", &[(&ha, "gm1")]);
            let other = hazard_with_photos("t01/v02/g1", "gm3", &[(&ha, "gm3"), (&hb, "gm3")]);
            assert!(push(s.as_ref(), "d1", &gm1, &[incoming(&mine)]).iter().all(acked));
            let mut doc = gridsync_core::doc::RecordDoc::create(&other, automerge::ActorId::random()).unwrap();
            let all = |doc: &mut gridsync_core::doc::RecordDoc| {
                IncomingDoc::unsigned(other.id, doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect())
            };
            assert!(push(s.as_ref(), "d3", &gm3, &[all(&mut doc)]).iter().all(acked));

            let mut holders = s.photo_holders(&ha).unwrap();
            holders.sort_by_key(|h| h.attachment.by.clone());
            let seen: Vec<_> = holders
                .iter()
                .map(|h| (h.record_id, h.attachment.by.as_str(), h.grid.to_string(), h.attachment.size, h.deleted))
                .collect();
            assert_eq!(
                seen,
                [(mine.id, "gm1", "t01/v01/g1".to_owned(), 5000, false), (other.id, "gm3", "t01/v02/g1".to_owned(), 5000, false)]
            );
            assert_eq!(s.live_photos().unwrap(), HashSet::from([ha.clone(), hb.clone()]));
            assert!(s.photo_holders(&"c".repeat(64)).unwrap().is_empty());

            let mut deleted = other.clone();
            deleted.deleted = true;
            deleted.updated_at += 1;
            doc.update(&deleted).unwrap();
            assert!(push(s.as_ref(), "d3", &gm3, &[all(&mut doc)]).iter().all(acked));
            assert_eq!(s.live_photos().unwrap(), HashSet::from([ha.clone()]), "a deleted record keeps no photo alive");
            let b = s.photo_holders(&hb).unwrap();
            assert_eq!(b.len(), 1);
            assert!(b[0].deleted, "the deleted record still holds its reference (a restore brings it back)");
        }
    };
}
