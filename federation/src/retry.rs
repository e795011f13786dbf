//! Retries of failed peer calls (ARCHITECTURE §6): exponential backoff with jitter (1, 2, 4, 8,
//! 16 s by default, at most 5 retries), each retry's timeout 1.5 times the previous one, and a
//! retry budget shared by every caller of one peer so retries cannot multiply an outage.
//!
//! Everything here is pure: the time and the random draw are passed in.

use std::collections::VecDeque;
use std::time::Duration;

/// The retry settings of one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try (at most 5).
    pub max_retries: u32,
    /// The delay before the first retry; it doubles for each next one.
    pub initial_backoff: Duration,
    /// Upper bound of a delay before jitter.
    pub max_backoff: Duration,
    /// Each retry's timeout is the previous try's times this (at least 1).
    pub timeout_multiplier: f64,
    /// Retries may be at most this share of first tries over the budget's window (0 to 1).
    pub budget_ratio: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
            timeout_multiplier: 1.5,
            budget_ratio: 0.2,
        }
    }
}

/// How far a jittered delay strays from the schedule: ±25 %.
const JITTER: f64 = 0.25;

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry): `initial_backoff`
    /// doubled `retry - 1` times, capped at `max_backoff`, then moved by up to ±25 % by `unit`
    /// (a uniform draw in [0, 1)), so callers that failed together do not retry together.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
        base.mul_f64(factor)
    }

    /// The timeout of try number `attempt` (0 for the first try): `first` times
    /// `timeout_multiplier` per retry.
    pub fn attempt_timeout(&self, first: Duration, attempt: u32) -> Duration {
        let multiplier = self.timeout_multiplier.max(1.0);
        first.mul_f64(multiplier.powi(attempt.min(30) as i32))
    }
}

/// One second of the budget's window: first tries and retries started in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Second {
    at: u64,
    first: u32,
    retries: u32,
}

/// The retry budget of one peer: over the last `window`, retries may be at most `min_retries`
/// plus `ratio` times the first tries (Finagle's `RetryBudget`). While a peer is down every
/// first try fails; without a budget each would bring `max_retries` more calls with it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    ratio: f64,
    min_retries: u32,
    window_secs: u64,
    seconds: VecDeque<Second>,
}

/// The budget's window.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Retries allowed over the window whatever the traffic, so a quiet peer can still retry.
pub const BUDGET_MIN_RETRIES: u32 = 10;

impl RetryBudget {
    /// A budget of `ratio` retries a first try, plus `min_retries`, over `window`.
    pub fn new(ratio: f64, min_retries: u32, window: Duration) -> Self {
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            min_retries,
            window_secs: window.as_secs().max(1),
            seconds: VecDeque::new(),
        }
    }

    /// The default budget for `ratio` (10 s window, 10 retries minimum).
    pub fn with_ratio(ratio: f64) -> Self {
        Self::new(ratio, BUDGET_MIN_RETRIES, BUDGET_WINDOW)
    }

    fn current(&mut self, now: Duration) -> &mut Second {
        let at = now.as_secs();
        let oldest = at.saturating_sub(self.window_secs - 1);
        while self.seconds.front().is_some_and(|s| s.at < oldest) {
            self.seconds.pop_front();
        }
        if self.seconds.back().is_none_or(|s| s.at != at) {
            self.seconds.push_back(Second {
                at,
                first: 0,
                retries: 0,
            });
        }
        // INVARIANT: the line above leaves a bucket for `at` at the back.
        #[allow(clippy::expect_used)]
        self.seconds.back_mut().expect("a bucket for now")
    }

    /// A first try started at `now`: it earns `ratio` of a retry.
    pub fn first_try(&mut self, now: Duration) {
        let s = self.current(now);
        s.first = s.first.saturating_add(1);
    }

    /// May a retry start at `now`? If so it is counted.
    pub fn try_retry(&mut self, now: Duration) -> bool {
        self.current(now);
        let (first, retries) = self.seconds.iter().fold((0u64, 0u64), |(f, r), s| {
            (f + u64::from(s.first), r + u64::from(s.retries))
        });
        let allowed = f64::from(self.min_retries) + self.ratio * first as f64;
        if (retries + 1) as f64 <= allowed {
            let s = self.current(now);
            s.retries = s.retries.saturating_add(1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_default_schedule_is_1_2_4_8_16_seconds_and_timeouts_grow_one_and_a_half_times() {
        let p = RetryPolicy::default();
        let centre: Vec<u64> = (1..=5).map(|r| p.backoff(r, 0.5).as_secs()).collect();
        assert_eq!(centre, [1, 2, 4, 8, 16]);
        assert_eq!(p.backoff(6, 0.5), Duration::from_secs(16), "capped");
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(750));
        assert_eq!(p.backoff(5, 0.999_999).as_secs(), 19);
        let t = Duration::from_secs(2);
        assert_eq!(p.attempt_timeout(t, 0), t);
        assert_eq!(p.attempt_timeout(t, 1), Duration::from_secs(3));
        assert_eq!(p.attempt_timeout(t, 2), Duration::from_millis(4500));
    }

    #[test]
    fn the_budget_allows_the_minimum_then_a_share_of_first_tries_and_forgets_old_seconds() {
        let mut b = RetryBudget::new(0.2, 2, Duration::from_secs(10));
        let t = Duration::from_secs(100);
        assert!(b.try_retry(t) && b.try_retry(t), "the minimum");
        assert!(!b.try_retry(t));
        for _ in 0..10 {
            b.first_try(t);
        }
        assert!(b.try_retry(t) && b.try_retry(t), "20 % of 10 first tries");
        assert!(!b.try_retry(t));
        // Ten seconds on, the old second has left the window.
        let later = t + Duration::from_secs(10);
        assert!(b.try_retry(later) && b.try_retry(later));
        assert!(!b.try_retry(later));
    }

    proptest! {
        /// Jittered delays stay within ±25 % of the capped schedule.
        #[test]
        fn backoff_stays_near_the_schedule(retry in 1u32..12, unit in 0.0f64..1.0) {
            let p = RetryPolicy::default();
            let base = (1u64 << (retry - 1).min(4)) as f64;
            let d = p.backoff(retry, unit).as_secs_f64();
            prop_assert!(d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9, "{d} vs {base}");
        }

        /// However calls arrive, a retry is granted only while the retries of the last window,
        /// itself included, stay within the minimum plus the ratio of first tries in it: an
        /// outage cannot be multiplied.
        #[test]
        fn retries_never_exceed_the_budget(
            events in proptest::collection::vec((any::<bool>(), 0u64..1500), 1..600),
        ) {
            let mut b = RetryBudget::new(0.2, 3, Duration::from_secs(10));
            let mut now = Duration::ZERO;
            let mut log: Vec<(u64, bool)> = Vec::new();
            for (first, dt) in events {
                now += Duration::from_millis(dt);
                if first {
                    b.first_try(now);
                    log.push((now.as_secs(), true));
                    continue;
                }
                if !b.try_retry(now) {
                    continue;
                }
                log.push((now.as_secs(), false));
                let oldest = now.as_secs().saturating_sub(9);
                let recent = log.iter().filter(|(s, _)| *s >= oldest);
                let (f, r) = recent.fold((0u32, 0u32), |(f, r), (_, first)| {
                    if *first { (f + 1, r) } else { (f, r + 1) }
                });
                prop_assert!(f64::from(r) <= 3.0 + 0.2 * f64::from(f) + 1e-9);
            }
        }
    }
}
