//! The `Breaker` actor's state: the pure state machine of `cryptoutil_federation::breaker`, the
//! peer's retry budget, and the bookkeeping of health polls. Synchronous methods with the time
//! passed in, so tests drive every transition without spawning anything.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::breaker::{self, BreakerConfig, Decision, Event, Outcome, State};
use cryptoutil_federation::retry::RetryBudget;
use serde::Serialize;

/// May a call go to the peer?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call it.
    Admit,
    /// Do not: use the fallback.
    Reject(Rejection),
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The breaker is open.
    Open,
    /// The breaker is half-open and its probes are all out.
    HalfOpenFull,
    /// A retry, and the peer's retry budget is spent.
    RetryBudget,
}

impl Rejection {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Open => "open",
            Rejection::HalfOpenFull => "half_open_full",
            Rejection::RetryBudget => "retry_budget",
        }
    }
}

/// A change of the state's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state it left.
    pub from: &'static str,
    /// The state it entered.
    pub to: &'static str,
    /// The gauge value of `to`.
    pub gauge: u8,
}

/// What operators see of a breaker (`/admin/v1/healthz`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerView {
    /// `closed`, `half_open` or `open`.
    pub state: &'static str,
    /// Seconds since it entered that state.
    pub seconds_in_state: u64,
    /// Upstream failures in a row (closed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
}

/// The state's gauge value (0 closed, 1 half-open, 2 open), shared with handles and the
/// supervision tree, which read it without asking the actor.
pub type SharedGauge = Arc<AtomicU8>;

/// The name of a gauge value.
pub fn gauge_name(gauge: u8) -> &'static str {
    match gauge {
        0 => "closed",
        1 => "half_open",
        _ => "open",
    }
}

/// The actor's state.
#[derive(Debug)]
pub struct BreakerState {
    cfg: BreakerConfig,
    machine: State,
    budget: RetryBudget,
    /// Counts the times the breaker opened: a poll timer set for an earlier opening is stale.
    generation: u64,
    polling: bool,
    changed_at: Duration,
    shared: SharedGauge,
}

impl BreakerState {
    /// Closed, with `cfg` and a retry budget of `budget_ratio`.
    pub fn new(cfg: BreakerConfig, budget_ratio: f64, shared: SharedGauge) -> Self {
        shared.store(0, Ordering::Relaxed);
        Self {
            cfg,
            machine: State::default(),
            budget: RetryBudget::with_ratio(budget_ratio),
            generation: 0,
            polling: false,
            changed_at: Duration::ZERO,
            shared,
        }
    }

    /// The machine's configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// Which opening the breaker is in (see [`BreakerState::start_poll`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Is the breaker open?
    pub fn is_open(&self) -> bool {
        matches!(self.machine, State::Open { .. })
    }

    fn apply(&mut self, event: Event, now: Duration) -> (Decision, Option<Transition>) {
        let from = self.machine.name();
        let (next, decision) =
            breaker::step(std::mem::take(&mut self.machine), event, now, &self.cfg);
        self.machine = next;
        let to = self.machine.name();
        if from == to {
            return (decision, None);
        }
        if self.is_open() {
            self.generation += 1;
        }
        self.changed_at = now;
        let gauge = self.machine.gauge();
        self.shared.store(gauge, Ordering::Relaxed);
        (decision, Some(Transition { from, to, gauge }))
    }

    /// A caller wants to call the peer at `now` (`retry`: after a failed try of the same call).
    /// Retries spend the retry budget; first tries earn it.
    pub fn admit(&mut self, retry: bool, now: Duration) -> (Admission, Option<Transition>) {
        if retry {
            if !self.budget.try_retry(now) {
                return (Admission::Reject(Rejection::RetryBudget), None);
            }
        } else {
            self.budget.first_try(now);
        }
        let half_open = matches!(self.machine, State::HalfOpen { .. });
        match self.apply(Event::Request, now) {
            (Decision::Admit, t) => (Admission::Admit, t),
            (_, t) if half_open => (Admission::Reject(Rejection::HalfOpenFull), t),
            (_, t) => (Admission::Reject(Rejection::Open), t),
        }
    }

    /// An admitted call ended with `outcome`.
    pub fn record(&mut self, outcome: Outcome, now: Duration) -> Option<Transition> {
        self.apply(Event::Completed(outcome), now).1
    }

    /// A poll timer of opening `generation` fired: should a health poll start now? Only while
    /// that opening lasts and no poll is running.
    pub fn start_poll(&mut self, generation: u64) -> bool {
        if self.is_open() && generation == self.generation && !self.polling {
            self.polling = true;
            true
        } else {
            false
        }
    }

    /// The watch timer fired: should a health poll start now? While closed (a failed poll
    /// opens it) or half-open (good polls count as good probes, so a breaker no one calls
    /// closes), and no poll is running; an open breaker has its own poll timers.
    pub fn start_watch(&mut self) -> bool {
        if !self.is_open() && !self.polling {
            self.polling = true;
            true
        } else {
            false
        }
    }

    /// A health poll ended. Returns the transition, if any, and whether the breaker is still
    /// open (another poll is then due after the poll interval).
    pub fn polled(&mut self, healthy: bool, now: Duration) -> (Option<Transition>, bool) {
        self.polling = false;
        let event = if healthy {
            Event::HealthOk
        } else {
            Event::HealthFailed
        };
        let t = self.apply(event, now).1;
        (t, self.is_open())
    }

    /// What operators see.
    pub fn view(&self, now: Duration) -> BreakerView {
        BreakerView {
            state: self.machine.name(),
            seconds_in_state: now.saturating_sub(self.changed_at).as_secs(),
            consecutive_failures: match &self.machine {
                State::Closed { consecutive, .. } => Some(*consecutive),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 2,
            window: Duration::from_secs(10),
            failure_rate: 0.5,
            min_requests: 100,
            open_timeout: Duration::from_secs(5),
            half_open_probes: 1,
            health_gate: true,
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn transitions_are_reported_once_and_the_shared_gauge_follows() {
        let shared = SharedGauge::default();
        let mut b = BreakerState::new(cfg(), 0.2, Arc::clone(&shared));
        assert_eq!(b.admit(false, s(1)).0, Admission::Admit);
        assert_eq!(b.record(Outcome::UpstreamFailure, s(1)), None);
        let t = b.record(Outcome::UpstreamFailure, s(1)).unwrap();
        assert_eq!((t.from, t.to, t.gauge), ("closed", "open", 2));
        assert_eq!(shared.load(Ordering::Relaxed), 2);
        assert_eq!(b.generation(), 1);
        assert_eq!(b.admit(false, s(2)).0, Admission::Reject(Rejection::Open));
        // A poll timer of this opening starts one poll; a stale or second one does not.
        assert!(!b.start_poll(0));
        assert!(b.start_poll(1));
        assert!(!b.start_poll(1), "one poll at a time");
        assert_eq!(
            b.polled(false, s(6)),
            (None, true),
            "still open: poll again"
        );
        assert!(b.start_poll(1));
        let (t, open) = b.polled(true, s(7));
        assert_eq!(t.map(|t| t.to), Some("half_open"));
        assert!(!open);
        assert_eq!(b.admit(false, s(7)).0, Admission::Admit);
        assert_eq!(
            b.admit(false, s(7)).0,
            Admission::Reject(Rejection::HalfOpenFull)
        );
        let t = b.record(Outcome::Success, s(8)).unwrap();
        assert_eq!((t.from, t.to), ("half_open", "closed"));
        assert_eq!(shared.load(Ordering::Relaxed), 0);
        assert_eq!(b.view(s(10)).seconds_in_state, 2);
    }

    #[test]
    fn retries_spend_the_budget_and_are_refused_once_it_is_gone() {
        let mut b = BreakerState::new(cfg(), 0.0, SharedGauge::default());
        let mut admitted = 0;
        for _ in 0..50 {
            if b.admit(true, s(1)).0 == Admission::Admit {
                admitted += 1;
                b.record(Outcome::Success, s(1));
            }
        }
        assert_eq!(
            admitted,
            cryptoutil_federation::retry::BUDGET_MIN_RETRIES,
            "ratio 0: only the minimum"
        );
        assert_eq!(
            b.admit(true, s(1)).0,
            Admission::Reject(Rejection::RetryBudget)
        );
        assert_eq!(
            b.admit(false, s(1)).0,
            Admission::Admit,
            "first tries still go"
        );
    }
}
