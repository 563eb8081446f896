//! The demo county's phones: everyone who records on a phone (grid
//! managers, village leaders, supervisors, township chiefs) gets one,
//! enrolled weeks before the demo's month with a one-time code as a real
//! phone is ([`ServerStore::redeem_enrollment`]), with its own Ed25519 key and
//! Automerge actor. The demo's records are written under the author's
//! phone's actor, each batch is signed with its key and checked
//! ([`crate::signatures::verify_docs`]), and merged as that device
//! ([`crate::sync::merge_as_device`]), so a record's provenance page shows a
//! valid device signature for every change a phone made. What the county
//! centre does on the dashboard stays a web change, as it would be.
//!
//! The phones' codes, tokens and keys are random and thrown away once the
//! demo is loaded: no one can sync as a demo phone, nothing of them is
//! printed or logged, and the enrollment codes `serve --demo` prints are
//! new codes for new devices. The devices page shows each demo phone named
//! as one (`…（演示）`) with its last sync a little after the last change it
//! sent.

use std::collections::HashMap;

use automerge::ActorId;
use gridsync_core::grid::Role;
use gridsync_core::protocol::{DocChanges, sign_docs};
use gridsync_core::signing::DeviceKey;
use rand::Rng;
use rand::rngs::StdRng;
use uuid::Uuid;

use crate::auth;
use crate::merge::Outcome;
use crate::store::{Device, DeviceAuth, IncomingDoc, Redeemed, ServerStore, StoreError, StoreResult, User};
use crate::sync::{merge_as_device, merge_records, web_pusher};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// Phones a county buys its staff, as a device list shows them.
const MODELS: [&str; 6] = ["华为畅享60", "荣耀Play8T", "Redmi 13C", "OPPO A2", "vivo Y36", "华为nova 11"];

/// Whether a user of this role records on a phone.
fn records_on_a_phone(role: Role) -> bool {
    matches!(role, Role::GridManager | Role::VillageLeader | Role::Supervisor | Role::TownshipChief)
}

/// One enrolled demo phone.
struct Phone {
    auth: DeviceAuth,
    device: Uuid,
    key: DeviceKey,
    actor: ActorId,
    /// The latest time (the phone's clock) of any change it sent.
    last_change: Option<i64>,
}

/// The demo's phones by user id, and how records reach the server from
/// them (or from the web, for users without one).
pub struct DemoPhones {
    phones: HashMap<String, Phone>,
}

/// Failures of the demo's own making (a bug here, not in the county).
fn demo_bug(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("demo phones: {what}"))
}

impl DemoPhones {
    /// Enroll a phone for every user in `users` who records on one, each
    /// between 20 and 120 days before `before`, during office hours.
    pub fn enroll(store: &dyn ServerStore, users: &[User], before: i64, rng: &mut StdRng) -> StoreResult<DemoPhones> {
        let mut phones = HashMap::new();
        for user in users.iter().filter(|u| records_on_a_phone(u.role)) {
            let enrolled =
                before - rng.gen_range(20..=120) * DAY - rng.gen_range(0..8) * HOUR - rng.gen_range(0..60) * MINUTE;
            let key = DeviceKey::generate().map_err(demo_bug)?;
            let actor = ActorId::random();
            let device = Uuid::new_v4();
            let code = auth::hash_secret(&auth::normalize_code(&auth::new_enrollment_code()));
            store.create_enrollment(&code, &user.id, enrolled + 72 * HOUR)?;
            let d = Device {
                id: device.to_string(),
                user_id: user.id.clone(),
                name: format!("{}（演示）", MODELS[rng.gen_range(0..MODELS.len())]),
                created_at: enrolled,
                last_sync_at: None,
                revoked_at: None,
                actor: Some(actor.to_bytes().to_vec()),
                public_key: Some(key.public().to_vec()),
            };
            match store.redeem_enrollment(&code, &d, &auth::hash_secret(&auth::new_token()), enrolled)? {
                Redeemed::Enrolled(_) => {}
                other => return Err(demo_bug(format!("enrolling {}: {other:?}", user.id))),
            }
            let auth = store.device(&d.id)?.ok_or_else(|| demo_bug("an enrolled device is not stored"))?;
            phones.insert(user.id.clone(), Phone { auth, device, key, actor, last_change: None });
        }
        Ok(DemoPhones { phones })
    }

    /// How many phones were enrolled.
    pub fn len(&self) -> usize {
        self.phones.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty()
    }

    /// Whether `user_id` records on a demo phone.
    pub fn has_phone(&self, user_id: &str) -> bool {
        self.phones.contains_key(user_id)
    }

    /// The actor `user_id` writes under: its phone's, or a fresh one for a
    /// change made on the web.
    pub fn actor(&self, user_id: &str) -> ActorId {
        self.phones.get(user_id).map_or_else(ActorId::random, |p| p.actor.clone())
    }

    /// Send `docs` as `user` at server time `now`, their latest change made
    /// at `latest` (the phone's clock): from the user's phone, signed and
    /// checked and merged as that device; from the web otherwise.
    pub fn send(
        &mut self,
        store: &dyn ServerStore,
        user: &User,
        docs: Vec<DocChanges>,
        latest: i64,
        now: i64,
    ) -> StoreResult<Vec<Outcome>> {
        let Some(phone) = self.phones.get_mut(&user.id) else {
            let incoming: Vec<IncomingDoc> =
                docs.into_iter().map(|d| IncomingDoc::unsigned(Uuid::from_bytes(d.doc), d.changes)).collect();
            return merge_records(store, &web_pusher(user), &incoming, now);
        };
        let signature = sign_docs(&phone.key, &phone.device, &docs);
        let verified = crate::signatures::verify_docs(&phone.auth.device, docs, &signature);
        if !verified.refused.is_empty() {
            return Err(demo_bug("a demo phone's own signature does not verify"));
        }
        phone.last_change = Some(phone.last_change.map_or(latest, |t| t.max(latest)));
        merge_as_device(store, &phone.auth, &verified.incoming, now)
    }

    /// Record each phone's last sync, never after `now`: a few minutes to
    /// two hours after the last change it sent (a grid manager syncs once
    /// home in the evening, a chief at the office); a phone that sent
    /// nothing (a supervisor reads) synced within the last three days, or,
    /// for one in twenty, a week or more ago.
    pub fn record_last_syncs(&self, store: &dyn ServerStore, now: i64, rng: &mut StdRng) -> StoreResult<()> {
        // In user order, so the same seed gives the same times.
        let mut users: Vec<&String> = self.phones.keys().collect();
        users.sort();
        for user in users {
            let phone = &self.phones[user];
            let at = match phone.last_change {
                Some(t) => t + rng.gen_range(5..=120) * MINUTE,
                None if rng.gen_bool(0.05) => now - rng.gen_range(8..=20) * DAY,
                None => now - rng.gen_range(1..=72) * HOUR,
            };
            store.touch_device(&phone.auth.device.id, at.clamp(phone.auth.device.created_at, now))?;
        }
        Ok(())
    }
}
