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
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_s).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_s))
        }
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
