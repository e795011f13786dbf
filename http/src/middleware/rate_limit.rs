//! A token bucket per client: `burst` requests at once, refilled at `requests_per_second`.
//! Clients are told apart by address until Identity gives them names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use crate::config::RateLimitConfig;
use crate::error::ApiError;

/// Past this many tracked clients, full buckets are forgotten on the next insert.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One stack's limiter.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
    rate: f64,
    burst: f64,
}

impl RateLimiter {
    /// From configuration.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            buckets: Arc::new(Mutex::new(HashMap::new())),
            rate: f64::from(cfg.requests_per_second.get()),
            burst: f64::from(cfg.burst.get()),
        }
    }

    /// Takes a token for `client` at `now`, or says how long until one is available.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        // The lock is held for a few arithmetic operations; no await inside.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refill(b, now, rate, burst) < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = refill(bucket, now, self.rate, self.burst);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.updated = now;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

fn refill(b: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

/// Middleware.
pub async fn enforce(
    State(limiter): State<RateLimiter>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = super::client_ip(&req).ok_or(ApiError::IpNotAllowed)?;
    match limiter.admit(client, Instant::now()) {
        Ok(()) => Ok(next.run(req).await),
        Err(wait) => Err(ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn limiter(rps: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            requests_per_second: NonZeroU32::new(rps).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_per_client() {
        let l = limiter(2, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(l.admit(a, now).is_ok());
        }
        let wait = l.admit(a, now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.admit(b, now).is_ok(), "another client has its own bucket");
        assert!(l.admit(a, now + Duration::from_millis(500)).is_ok());
        assert!(l.admit(a, now + Duration::from_millis(500)).is_err());
    }
}
