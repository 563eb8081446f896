//! Per-address rate limits for the endpoints anyone can call without a
//! token (`/v1/enroll`, the dashboard's sign-in): a token bucket per client
//! address, so one address cannot try enrollment codes or passwords fast,
//! or tie up the server with attempts. The same buckets keyed by device
//! id bound what one phone may ask the server to store and log
//! (`/v1/problems`).
//!
//! The client address is the TCP peer's, or, behind a reverse proxy, the
//! last value of the header the operator names (`--client-ip-header`).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

/// How many attempts an address may make.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Attempts allowed at once.
    pub burst: u32,
    /// Attempts regained per minute.
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refill at `per_s` tokens a second since it was last seen, up to `cap`.
    fn refill(&mut self, cap: f64, per_s: f64, now: Instant) {
        self.tokens = (self.tokens.min(cap) + now.saturating_duration_since(self.at).as_secs_f64() * per_s).min(cap);
        self.at = now;
    }
}

/// Token buckets by client address (or by another key: a device id).
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Most addresses remembered; beyond it, full buckets are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter at `rate` per key.
    pub fn new(rate: Rate) -> RateLimiter<K> {
        RateLimiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take one attempt for `ip` (the key) at `now`: `Err(wait)` if it has
    /// none left, with how long until it has one.
    pub fn take(&self, ip: K, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst.max(1));
        let per_s = f64::from(self.rate.per_minute.max(1)) / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            // Buckets that have refilled carry no information: drop them.
            map.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_s < burst);
            if map.len() >= MAX_ADDRESSES {
                map.clear();
            }
        }
        let b = map.entry(ip).or_insert(Bucket { tokens: burst, at: now });
        b.refill(burst, per_s, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_s))
        }
    }
}

/// What relayed bundles one device may bring to this node in an hour, as
/// their carrier and as their signer: changes and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayQuota {
    /// Changes a carrier may hand over per hour (and at once).
    pub carrier_changes: u64,
    /// Records a carrier's bundles may name per hour (and at once).
    pub carrier_records: u64,
    /// Changes signed by one device that may arrive by relay per hour.
    pub signer_changes: u64,
    /// Records one signer's relayed bundles may name per hour.
    pub signer_records: u64,
}

impl Default for RelayQuota {
    /// A full budget takes the largest bundle a phone writes (20,000
    /// changes); records are fewer: a month offline is a few hundred.
    fn default() -> Self {
        RelayQuota { carrier_changes: 40_000, carrier_records: 10_000, signer_changes: 20_000, signer_records: 5_000 }
    }
}

/// Why a relayed bundle is not taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRefusal {
    /// The carrier's or the signer's budget is spent for now: wait this long.
    Wait(Duration),
    /// The bundle is larger than a full budget: it can never be taken by relay.
    TooLarge,
}

/// Per-device relay budgets on this node ([`RelayQuota`]): token buckets
/// that refill continuously over an hour, one per carrier and one per
/// signer, each counting changes and records.
#[derive(Debug)]
pub struct RelayBudget {
    quota: RelayQuota,
    buckets: Mutex<HashMap<(bool, String), [Bucket; 2]>>,
}

impl RelayBudget {
    /// Budgets at `quota`.
    pub fn new(quota: RelayQuota) -> RelayBudget {
        RelayBudget { quota, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take `changes` and `records` from `carrier`'s and `signer`'s budgets
    /// at `now`, all or nothing.
    pub fn take(
        &self,
        carrier: &str,
        signer: &str,
        changes: u64,
        records: u64,
        now: Instant,
    ) -> Result<(), RelayRefusal> {
        let q = self.quota;
        let sides = [
            ((true, carrier.to_owned()), [q.carrier_changes, q.carrier_records]),
            ((false, signer.to_owned()), [q.signer_changes, q.signer_records]),
        ];
        let want = [changes, records];
        if sides.iter().any(|(_, caps)| caps.iter().zip(want).any(|(&cap, n)| n > cap.max(1))) {
            return Err(RelayRefusal::TooLarge);
        }
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES {
            map.clear();
        }
        let mut wait = Duration::ZERO;
        let mut filled = Vec::with_capacity(2);
        for (key, caps) in &sides {
            let mut b = map.get(key).copied().unwrap_or([Bucket { tokens: f64::MAX, at: now }; 2]);
            for (i, bucket) in b.iter_mut().enumerate() {
                let cap = caps[i].max(1) as f64;
                let per_s = cap / 3600.0;
                bucket.refill(cap, per_s, now);
                let short = want[i] as f64 - bucket.tokens;
                if short > 0.0 {
                    wait = wait.max(Duration::from_secs_f64(short / per_s));
                }
            }
            filled.push((key.clone(), b));
        }
        if !wait.is_zero() {
            return Err(RelayRefusal::Wait(wait));
        }
        for (key, mut b) in filled {
            for (i, bucket) in b.iter_mut().enumerate() {
                bucket.tokens -= want[i] as f64;
            }
            map.insert(key, b);
        }
        Ok(())
    }
}

/// The client address of a request: the last value of `header` when one is
/// configured and parses (set by the reverse proxy in front), else the TCP
/// peer.
pub fn client_ip(req: &HttpRequest, header: Option<&str>) -> Option<IpAddr> {
    if let Some(h) = header
        && let Some(v) = req.headers().get(h).and_then(|v| v.to_str().ok())
        && let Some(ip) = v.rsplit(',').next().and_then(|s| s.trim().parse().ok())
    {
        return Some(ip);
    }
    req.peer_addr().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_budgets_hold_per_carrier_and_per_signer_and_refill_over_the_hour() {
        let q = RelayQuota { carrier_changes: 100, carrier_records: 10, signer_changes: 60, signer_records: 10 };
        let b = RelayBudget::new(q);
        let t0 = Instant::now();
        assert_eq!(b.take("c1", "s1", 101, 1, t0), Err(RelayRefusal::TooLarge));
        assert_eq!(b.take("c1", "s1", 1, 11, t0), Err(RelayRefusal::TooLarge));
        assert!(b.take("c1", "s1", 60, 5, t0).is_ok());
        // The signer's changes are spent; the carrier still has 40.
        let Err(RelayRefusal::Wait(w)) = b.take("c2", "s1", 1, 1, t0) else { panic!("signer budget") };
        assert!(w > Duration::from_secs(59) && w <= Duration::from_secs(60), "{w:?}");
        assert!(b.take("c1", "s2", 40, 5, t0).is_ok());
        // The carrier's records are spent, for any signer.
        assert!(matches!(b.take("c1", "s3", 1, 1, t0), Err(RelayRefusal::Wait(_))));
        // Nothing was taken by a refusal: another carrier brings s2's changes.
        assert!(b.take("c3", "s2", 20, 5, t0).is_ok());
        // An hour refills every budget.
        assert!(b.take("c1", "s1", 60, 10, t0 + Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn an_address_gets_its_burst_then_waits_and_others_are_not_affected() {
        let l = RateLimiter::new(Rate { burst: 3, per_minute: 6 });
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.take(a, t0).is_ok());
        }
        let wait = l.take(a, t0).unwrap_err();
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
        assert!(l.take(b, t0).is_ok());
        assert!(l.take(a, t0 + Duration::from_secs(10)).is_ok(), "one attempt regained after 10 s");
        assert!(l.take(a, t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn devices_have_buckets_of_their_own() {
        let l: RateLimiter<String> = RateLimiter::new(Rate { burst: 2, per_minute: 6 });
        let t0 = Instant::now();
        assert!(l.take("d1".into(), t0).is_ok());
        assert!(l.take("d1".into(), t0).is_ok());
        assert!(l.take("d1".into(), t0).is_err());
        assert!(l.take("d2".into(), t0).is_ok());
    }
}
