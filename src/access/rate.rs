//! Rate limits: one token bucket per client (an API token's name, or the
//! client address without tokens), refilled continuously.
//!
//! A bucket holds `per_minute` calls and refills at `per_minute / 60` a
//! second, so a burst up to the limit passes and a sustained rate above it
//! does not. The map of buckets is itself bounded: past [`MAX_CLIENTS`],
//! buckets that are full again (idle clients) are forgotten; if none is, the
//! caller is refused rather than the map grown.

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked at once, per limit.
pub const MAX_CLIENTS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimit {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimit {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call for `client`; `Err(wait)` says how long until the
    /// next one is allowed.
    pub fn take(&self, client: &str) -> Result<(), Duration> {
        self.take_at(client, Instant::now())
    }

    fn take_at(&self, client: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(client) && buckets.len() >= MAX_CLIENTS {
            buckets.retain(|_, b| level(b, now, capacity, per_sec) < capacity);
            if buckets.len() >= MAX_CLIENTS {
                return Err(Duration::from_secs(60));
            }
        }
        let b = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        b.tokens = level(b, now, capacity, per_sec);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

fn level(b: &Bucket, now: Instant, capacity: f64, per_sec: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * per_sec).min(capacity)
}

/// Whole seconds for a `Retry-After` header (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limit = RateLimit::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(limit.take_at("a", t0).is_ok());
        }
        let wait = limit.take_at("a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert_eq!(retry_after_secs(wait), 1);
        // Another client has its own bucket.
        assert!(limit.take_at("b", t0).is_ok());
        // One call a second comes back.
        assert!(limit.take_at("a", t0 + Duration::from_millis(1001)).is_ok());
        assert!(
            limit
                .take_at("a", t0 + Duration::from_millis(1002))
                .is_err()
        );
    }

    #[test]
    fn zero_is_off_and_the_map_is_bounded() {
        let off = RateLimit::new(0);
        for _ in 0..1000 {
            assert!(off.take("x").is_ok());
        }
        let limit = RateLimit::new(1);
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS {
            limit.take_at(&i.to_string(), t0).unwrap();
        }
        // Every bucket is in use: a new client is refused, not added.
        assert!(limit.take_at("new", t0).is_err());
        assert_eq!(lock(&limit.buckets).len(), MAX_CLIENTS);
        // A minute later they are full again and forgotten.
        assert!(limit.take_at("new", t0 + Duration::from_secs(61)).is_ok());
        assert_eq!(lock(&limit.buckets).len(), 1);
    }
}
