//! The circuit breaker's state machine (ARCHITECTURE §6), a pure function of (state, event,
//! now, config): no clock, no I/O, no metrics. The `Breaker` actor (issue 6) owns timers, the
//! peer calls and the metrics, and feeds this machine what happened.
//!
//! Closed -> Open after `failure_threshold` consecutive upstream failures, or when the failure
//! rate over the last `window` reaches `failure_rate` (with at least `min_requests` outcomes in
//! it). Open -> HalfOpen once `open_timeout` has passed: on a successful health poll when
//! `health_gate` is set, else on the first request after the timeout (admitted as a probe).
//! HalfOpen admits at most `half_open_probes` requests at a time; that many successes close the
//! breaker, one upstream failure opens it again. Only upstream failures count (connection
//! errors, timeouts, 5xx): a caller's own 4xx is an answer from a live peer.

use std::collections::VecDeque;
use std::time::Duration;

/// The settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive upstream failures that open a closed breaker.
    pub failure_threshold: u32,
    /// The span the failure rate is measured over.
    pub window: Duration,
    /// Failure rate (0 to 1) over the window that opens a closed breaker.
    pub failure_rate: f64,
    /// Outcomes the window must hold before its rate counts.
    pub min_requests: u32,
    /// How long an open breaker refuses everything.
    pub open_timeout: Duration,
    /// Requests a half-open breaker admits at a time, and successes that close it.
    pub half_open_probes: u32,
    /// Open -> HalfOpen needs a successful health poll (not just a request) after the timeout.
    pub health_gate: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(60),
            failure_rate: 0.5,
            min_requests: 20,
            open_timeout: Duration::from_secs(30),
            half_open_probes: 3,
            health_gate: true,
        }
    }
}

/// Most outcomes the rate window remembers (older ones fall out first).
const WINDOW_CAP: usize = 4096;

/// The state, with what each state needs to decide.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Traffic flows; failures are counted.
    Closed {
        /// Upstream failures in a row.
        consecutive: u32,
        /// Recent outcomes: (when, failed).
        window: VecDeque<(Duration, bool)>,
    },
    /// Nothing is admitted until `since + open_timeout`.
    Open {
        /// When it opened.
        since: Duration,
    },
    /// A few probes test the peer.
    HalfOpen {
        /// Probes admitted and not yet answered.
        in_flight: u32,
        /// Probes that succeeded.
        succeeded: u32,
    },
}

impl Default for State {
    fn default() -> Self {
        State::Closed {
            consecutive: 0,
            window: VecDeque::new(),
        }
    }
}

impl State {
    /// The metric value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(&self) -> u8 {
        match self {
            State::Closed { .. } => 0,
            State::HalfOpen { .. } => 1,
            State::Open { .. } => 2,
        }
    }

    /// The state's name for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::HalfOpen { .. } => "half_open",
            State::Open { .. } => "open",
        }
    }
}

/// How a call to the peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx or 3xx answer.
    Success,
    /// A 4xx answer: the caller's mistake, the peer is fine.
    CallerError,
    /// Connection error, timeout or 5xx.
    UpstreamFailure,
    /// The caller gave up before an answer (its own deadline, a dropped request): says nothing
    /// about the peer, but frees a half-open probe's place.
    Abandoned,
}

impl Outcome {
    /// An answer's outcome: 2xx and 3xx succeed; 429 and 5xx are the peer failing (it cannot
    /// serve); any other 4xx is the caller's own mistake.
    pub fn of_status(status: hyper::StatusCode) -> Self {
        if status.is_server_error() || status == hyper::StatusCode::TOO_MANY_REQUESTS {
            Outcome::UpstreamFailure
        } else if status.is_client_error() {
            Outcome::CallerError
        } else {
            Outcome::Success
        }
    }

    /// A failed call's outcome: only failures of the peer count ([`crate::Source::Upstream`]:
    /// refused, reset, timed out, TLS); a bad request or local configuration says nothing
    /// about the peer.
    pub fn of_error(error: &crate::Error) -> Self {
        match error.source_kind() {
            crate::Source::Upstream => Outcome::UpstreamFailure,
            crate::Source::Downstream | crate::Source::Internal => Outcome::Abandoned,
        }
    }
}

/// What happens to a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A caller wants to call the peer.
    Request,
    /// An admitted call ended.
    Completed(Outcome),
    /// A health poll of the peer answered ready.
    HealthOk,
    /// A health poll failed (while Closed too: it opens the breaker).
    HealthFailed,
}

/// What the caller of [`step`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Call the peer.
    Admit,
    /// Do not call the peer: use the fallback.
    Reject,
    /// Nothing to do (a completion or a health poll).
    Noted,
}

/// The next state and the decision for `event` at `now`.
pub fn step(state: State, event: Event, now: Duration, cfg: &BreakerConfig) -> (State, Decision) {
    match (state, event) {
        (closed @ State::Closed { .. }, Event::Request) => (closed, Decision::Admit),
        (closed @ State::Closed { .. }, Event::Completed(Outcome::Abandoned)) => {
            (closed, Decision::Noted)
        }
        (
            State::Closed {
                consecutive,
                mut window,
            },
            Event::Completed(outcome),
        ) => {
            let failed = outcome == Outcome::UpstreamFailure;
            window.push_back((now, failed));
            while window.len() > WINDOW_CAP
                || window
                    .front()
                    .is_some_and(|(t, _)| now.saturating_sub(*t) > cfg.window)
            {
                window.pop_front();
            }
            let consecutive = if failed { consecutive + 1 } else { 0 };
            let failures = window.iter().filter(|(_, f)| *f).count();
            let rate_trips = window.len() >= cfg.min_requests as usize
                && !window.is_empty()
                && failures as f64 / window.len() as f64 >= cfg.failure_rate;
            if failed && (consecutive >= cfg.failure_threshold || rate_trips) {
                (State::Open { since: now }, Decision::Noted)
            } else {
                (
                    State::Closed {
                        consecutive,
                        window,
                    },
                    Decision::Noted,
                )
            }
        }
        (closed @ State::Closed { .. }, Event::HealthOk) => (closed, Decision::Noted),
        // Health is watched while calls succeed too: a failed poll opens the breaker, so the
        // fallback serves before callers meet the failure.
        (State::Closed { .. }, Event::HealthFailed) => {
            (State::Open { since: now }, Decision::Noted)
        }
        (State::Open { since }, event) => {
            let elapsed = now.saturating_sub(since) >= cfg.open_timeout;
            match event {
                Event::Request if elapsed && !cfg.health_gate => (
                    State::HalfOpen {
                        in_flight: 1,
                        succeeded: 0,
                    },
                    Decision::Admit,
                ),
                Event::Request => (State::Open { since }, Decision::Reject),
                Event::HealthOk if elapsed => (
                    State::HalfOpen {
                        in_flight: 0,
                        succeeded: 0,
                    },
                    Decision::Noted,
                ),
                // Late completions of calls admitted before it opened change nothing.
                _ => (State::Open { since }, Decision::Noted),
            }
        }
        (
            State::HalfOpen {
                in_flight,
                succeeded,
            },
            event,
        ) => match event {
            // A completion with no probe out is a late answer to a call admitted before the
            // breaker opened: it says nothing about the peer now.
            Event::Completed(_) if in_flight == 0 => (
                State::HalfOpen {
                    in_flight,
                    succeeded,
                },
                Decision::Noted,
            ),
            Event::Request if in_flight < cfg.half_open_probes => (
                State::HalfOpen {
                    in_flight: in_flight + 1,
                    succeeded,
                },
                Decision::Admit,
            ),
            Event::Request => (
                State::HalfOpen {
                    in_flight,
                    succeeded,
                },
                Decision::Reject,
            ),
            Event::Completed(Outcome::UpstreamFailure) | Event::HealthFailed => {
                (State::Open { since: now }, Decision::Noted)
            }
            Event::Completed(Outcome::Abandoned) => (
                State::HalfOpen {
                    in_flight: in_flight.saturating_sub(1),
                    succeeded,
                },
                Decision::Noted,
            ),
            Event::Completed(_) => {
                let succeeded = succeeded + 1;
                if succeeded >= cfg.half_open_probes {
                    (State::default(), Decision::Noted)
                } else {
                    (
                        State::HalfOpen {
                            in_flight: in_flight.saturating_sub(1),
                            succeeded,
                        },
                        Decision::Noted,
                    )
                }
            }
            // A good health poll counts as a good probe, so a half-open breaker of a peer no
            // one calls still closes (health is polled while half-open too).
            Event::HealthOk => {
                let succeeded = succeeded + 1;
                if succeeded >= cfg.half_open_probes {
                    (State::default(), Decision::Noted)
                } else {
                    (
                        State::HalfOpen {
                            in_flight,
                            succeeded,
                        },
                        Decision::Noted,
                    )
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg(health_gate: bool) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            failure_rate: 0.5,
            min_requests: 10,
            open_timeout: Duration::from_secs(5),
            half_open_probes: 2,
            health_gate,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_whole_cycle_closed_open_half_open_closed() {
        let c = cfg(false);
        let mut s = State::default();
        for _ in 0..3 {
            let (next, d) = step(s, Event::Request, secs(1), &c);
            assert_eq!(d, Decision::Admit);
            s = step(
                next,
                Event::Completed(Outcome::UpstreamFailure),
                secs(1),
                &c,
            )
            .0;
        }
        assert_eq!(s, State::Open { since: secs(1) });
        assert_eq!(
            step(s.clone(), Event::Request, secs(5), &c).1,
            Decision::Reject
        );
        let (s, d) = step(s, Event::Request, secs(6), &c);
        assert_eq!((s.name(), d), ("half_open", Decision::Admit));
        let (s, d) = step(s, Event::Request, secs(6), &c);
        assert_eq!(d, Decision::Admit);
        assert_eq!(
            step(s.clone(), Event::Request, secs(6), &c).1,
            Decision::Reject
        );
        let s = step(s, Event::Completed(Outcome::Success), secs(7), &c).0;
        let s = step(s, Event::Completed(Outcome::CallerError), secs(7), &c).0;
        assert_eq!(s, State::default(), "two probe answers close it");
    }

    #[test]
    fn with_the_health_gate_only_a_health_poll_after_the_timeout_half_opens() {
        let c = cfg(true);
        let open = State::Open { since: secs(0) };
        assert_eq!(
            step(open.clone(), Event::Request, secs(60), &c).1,
            Decision::Reject
        );
        assert_eq!(step(open.clone(), Event::HealthOk, secs(4), &c).0, open);
        let (s, _) = step(open, Event::HealthOk, secs(5), &c);
        assert_eq!(s.gauge(), 1);
        let (s, d) = step(s, Event::Request, secs(5), &c);
        assert_eq!(d, Decision::Admit);
        let (s, _) = step(s, Event::Completed(Outcome::UpstreamFailure), secs(6), &c);
        assert_eq!(s, State::Open { since: secs(6) }, "a failed probe reopens");
    }

    #[test]
    fn a_failed_health_poll_opens_a_closed_breaker_and_a_good_one_changes_nothing() {
        for gate in [false, true] {
            let c = cfg(gate);
            let (s, d) = step(State::default(), Event::HealthOk, secs(5), &c);
            assert_eq!((s.name(), d), ("closed", Decision::Noted));
            let (s, d) = step(s, Event::HealthFailed, secs(6), &c);
            assert_eq!(
                (s.clone(), d),
                (State::Open { since: secs(6) }, Decision::Noted)
            );
            let (_, d) = step(s, Event::Request, secs(7), &c);
            assert_eq!(d, Decision::Reject, "the fallback serves");
        }
    }

    #[test]
    fn good_health_polls_close_a_half_open_breaker_no_one_calls() {
        let c = cfg(true);
        let (s, _) = step(State::Open { since: secs(0) }, Event::HealthOk, secs(5), &c);
        assert_eq!(s.name(), "half_open");
        let (s, _) = step(s, Event::HealthOk, secs(6), &c);
        assert_eq!(s.name(), "half_open", "one of two");
        let (s, _) = step(s, Event::HealthOk, secs(7), &c);
        assert_eq!(s, State::default());
        // A failed poll in between reopens it.
        let (s, _) = step(State::Open { since: secs(0) }, Event::HealthOk, secs(5), &c);
        let (s, _) = step(s, Event::HealthFailed, secs(6), &c);
        assert_eq!(s, State::Open { since: secs(6) });
    }

    #[test]
    fn an_abandoned_probe_frees_its_place_without_counting_as_a_success() {
        let c = cfg(false);
        let s = State::HalfOpen {
            in_flight: 2,
            succeeded: 0,
        };
        assert_eq!(
            step(s.clone(), Event::Request, secs(1), &c).1,
            Decision::Reject
        );
        let (s, _) = step(s, Event::Completed(Outcome::Abandoned), secs(1), &c);
        assert_eq!(
            s,
            State::HalfOpen {
                in_flight: 1,
                succeeded: 0
            }
        );
        assert_eq!(step(s, Event::Request, secs(1), &c).1, Decision::Admit);
        let closed = State::default();
        let (after, _) = step(
            closed.clone(),
            Event::Completed(Outcome::Abandoned),
            secs(1),
            &c,
        );
        assert_eq!(after, closed, "nothing enters the rate window");
    }

    #[test]
    fn a_high_failure_rate_opens_without_a_run_of_failures() {
        let c = cfg(false);
        let mut s = State::default();
        // Alternating: never 3 in a row, but half of the window fails.
        for i in 0..10u64 {
            let outcome = if i % 2 == 0 {
                Outcome::UpstreamFailure
            } else {
                Outcome::Success
            };
            s = step(s, Event::Completed(outcome), secs(i), &c).0;
        }
        assert_eq!(s.name(), "closed", "the 10th outcome was a success");
        s = step(s, Event::Completed(Outcome::UpstreamFailure), secs(10), &c).0;
        assert_eq!(s, State::Open { since: secs(10) });
    }

    #[test]
    fn answers_are_classified_by_whose_fault_they_are() {
        use hyper::StatusCode;
        for (status, outcome) in [
            (200, Outcome::Success),
            (204, Outcome::Success),
            (302, Outcome::Success),
            (400, Outcome::CallerError),
            (401, Outcome::CallerError),
            (404, Outcome::CallerError),
            (429, Outcome::UpstreamFailure),
            (500, Outcome::UpstreamFailure),
            (503, Outcome::UpstreamFailure),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(Outcome::of_status(status), outcome, "{status}");
        }
        let refused = crate::Error::Connect {
            authority: "x:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(Outcome::of_error(&refused), Outcome::UpstreamFailure);
        let bad_url = crate::Error::Url {
            url: "x".into(),
            reason: "r",
        };
        assert_eq!(Outcome::of_error(&bad_url), Outcome::Abandoned);
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Request),
            Just(Event::Completed(Outcome::Success)),
            Just(Event::Completed(Outcome::CallerError)),
            Just(Event::Completed(Outcome::UpstreamFailure)),
            Just(Event::Completed(Outcome::Abandoned)),
            Just(Event::HealthOk),
            Just(Event::HealthFailed),
        ]
    }

    proptest! {
        /// Over any sequence of events at non-decreasing times: never Closed -> HalfOpen; an
        /// Open breaker admits nothing before its timeout; HalfOpen admits at most its probes
        /// at a time; only the four transitions of the design happen.
        #[test]
        fn invariants_hold_for_any_history(
            steps in proptest::collection::vec((event(), 0u64..3000), 1..400),
            gate in any::<bool>(),
        ) {
            let c = cfg(gate);
            let mut s = State::default();
            let mut now = Duration::ZERO;
            for (e, dt) in steps {
                now += Duration::from_millis(dt);
                let before = s.clone();
                let (after, d) = step(s, e, now, &c);
                if let (State::Closed { .. }, State::HalfOpen { .. }) = (&before, &after) {
                    prop_assert!(false, "Closed -> HalfOpen");
                }
                if let State::Open { since } = before {
                    if now.saturating_sub(since) < c.open_timeout {
                        prop_assert_ne!(d, Decision::Admit, "Open admitted before its timeout");
                        prop_assert_ne!(after.name(), "half_open");
                    }
                }
                if let State::HalfOpen { in_flight, .. } = after {
                    prop_assert!(in_flight <= c.half_open_probes, "HalfOpen over its probes");
                }
                if let (State::Open { .. }, State::Closed { .. }) = (&before, &after) {
                    prop_assert!(false, "Open -> Closed without probes");
                }
                s = after;
            }
        }

        /// A caller's own errors never open the breaker, however many.
        #[test]
        fn caller_errors_never_open_it(n in 1usize..500, gate in any::<bool>()) {
            let c = cfg(gate);
            let mut s = State::default();
            for i in 0..n {
                s = step(s, Event::Request, Duration::from_millis(i as u64), &c).0;
                s = step(s, Event::Completed(Outcome::CallerError), Duration::from_millis(i as u64), &c).0;
            }
            prop_assert_eq!(s.name(), "closed");
        }

        /// `failure_threshold` upstream failures in a row always open a closed breaker.
        #[test]
        fn a_run_of_upstream_failures_opens_it(successes in 0usize..50, gate in any::<bool>()) {
            let c = cfg(gate);
            let mut s = State::default();
            for i in 0..successes {
                s = step(s, Event::Completed(Outcome::Success), Duration::from_millis(i as u64), &c).0;
            }
            for _ in 0..c.failure_threshold {
                s = step(s, Event::Completed(Outcome::UpstreamFailure), secs(100), &c).0;
            }
            prop_assert_eq!(s, State::Open { since: secs(100) });
        }
    }
}
