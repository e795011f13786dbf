//! The `Breaker` actor under paused time: its timers, its health polls and its answers, with a
//! scripted probe instead of a network peer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoutil_federation::breaker::{BreakerConfig, Outcome};
use proptest::prelude::*;
use ractor::Actor;
use tokio::time::Instant;

use super::*;
use crate::slot::Slot;

/// Answers polls from a script (then `fallback`), remembering when each poll came.
struct Scripted {
    answers: Mutex<VecDeque<bool>>,
    fallback: bool,
    polls: Mutex<Vec<Instant>>,
}

impl Probe for Scripted {
    fn healthy(self: Arc<Self>) -> BoxFuture<'static, bool> {
        self.polls.lock().unwrap().push(Instant::now());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(self.fallback);
        Box::pin(async move { answer })
    }
}

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 2,
        window: Duration::from_secs(60),
        failure_rate: 0.5,
        min_requests: 1000,
        open_timeout: Duration::from_secs(5),
        half_open_probes: 2,
        health_gate: true,
    }
}

async fn spawn(answers: &[bool], fallback: bool) -> (BreakerHandle, Arc<Scripted>) {
    let probe = Arc::new(Scripted {
        answers: Mutex::new(answers.iter().copied().collect()),
        fallback,
        polls: Mutex::new(Vec::new()),
    });
    let slot: Slot<BreakerMsg> = Slot::new("Breaker");
    let gauge = SharedGauge::default();
    let args = BreakerArgs {
        peer: PeerName::Identity,
        config: config(),
        budget_ratio: 0.2,
        poll_interval: Duration::from_secs(30),
        probe: Arc::clone(&probe) as Arc<dyn Probe>,
        gauge: Arc::clone(&gauge),
    };
    let (actor, _join) = Actor::spawn(None, Breaker, args).await.unwrap();
    slot.fill(actor);
    let handle = BreakerHandle::new(slot, PeerName::Identity, gauge, Duration::from_secs(1));
    (handle, probe)
}

async fn fail(b: &BreakerHandle) {
    assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
    b.record(Outcome::UpstreamFailure, Duration::from_millis(3));
}

/// Lets the actor and its spawned poll tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn opens_polls_after_the_timeout_then_every_interval_half_opens_and_closes() {
    let (b, probe) = spawn(&[false, true], true).await;
    let t0 = Instant::now();
    fail(&b).await;
    fail(&b).await;
    settle().await;
    assert_eq!(b.state(), "open");
    assert_eq!(
        b.admit(false).await.unwrap(),
        Admission::Reject(Rejection::Open)
    );

    tokio::time::sleep(Duration::from_millis(4900)).await;
    settle().await;
    assert!(
        probe.polls.lock().unwrap().is_empty(),
        "no poll before the open timeout"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(
        probe.polls.lock().unwrap().len(),
        1,
        "a poll at the open timeout"
    );
    assert_eq!(b.state(), "open", "the first poll failed");

    tokio::time::sleep(Duration::from_secs(29)).await;
    settle().await;
    assert_eq!(probe.polls.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    let polls = probe.polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 2, "the next poll one interval later");
    let gap = polls[1] - polls[0];
    assert!(
        gap >= Duration::from_secs(30) && gap < Duration::from_secs(31),
        "{gap:?}"
    );
    assert_eq!(b.state(), "half_open");

    // Half-open: two probes at a time; their successes close it.
    assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
    assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
    assert_eq!(
        b.admit(false).await.unwrap(),
        Admission::Reject(Rejection::HalfOpenFull)
    );
    b.record(Outcome::Success, Duration::from_millis(2));
    b.record(Outcome::Success, Duration::from_millis(2));
    settle().await;
    assert_eq!(b.state(), "closed");
    let view = b.describe().await.unwrap();
    assert_eq!((view.state, view.consecutive_failures), ("closed", Some(0)));
    assert!(t0.elapsed() >= Duration::from_secs(35));
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_and_polling_starts_over() {
    let (b, probe) = spawn(&[true], false).await;
    fail(&b).await;
    fail(&b).await;
    tokio::time::sleep(Duration::from_millis(5100)).await;
    settle().await;
    assert_eq!(b.state(), "half_open");
    assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
    b.record(Outcome::UpstreamFailure, Duration::from_millis(1));
    settle().await;
    assert_eq!(b.state(), "open");
    let reopened = Instant::now();
    tokio::time::sleep(Duration::from_millis(5100)).await;
    settle().await;
    let polls = probe.polls.lock().unwrap().clone();
    assert_eq!(
        polls.len(),
        2,
        "a new poll one open timeout after reopening"
    );
    assert!(polls[1] - reopened >= Duration::from_secs(5));
    assert_eq!(b.state(), "open", "the peer is still down");
}

#[tokio::test(start_paused = true)]
async fn a_caller_s_own_errors_never_open_it() {
    let (b, probe) = spawn(&[], true).await;
    for _ in 0..50 {
        assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
        b.record(Outcome::CallerError, Duration::from_millis(1));
    }
    settle().await;
    assert_eq!(b.state(), "closed");
    tokio::time::sleep(Duration::from_millis(60_100)).await;
    settle().await;
    assert_eq!(
        probe.polls.lock().unwrap().len(),
        2,
        "a closed breaker polls every interval; healthy polls keep it closed"
    );
    assert_eq!(b.state(), "closed");
}

/// Health is watched while closed: every poll interval, however well calls go; a failed poll
/// opens the breaker without any call failing, and the open breaker's own polls take over.
#[tokio::test(start_paused = true)]
async fn a_closed_breaker_polls_every_interval_and_a_failed_poll_opens_it() {
    let (b, probe) = spawn(&[true, false], false).await;
    let t0 = Instant::now();
    for _ in 0..5 {
        assert_eq!(b.admit(false).await.unwrap(), Admission::Admit);
        b.record(Outcome::Success, Duration::from_millis(1));
    }
    tokio::time::sleep(Duration::from_millis(29_900)).await;
    settle().await;
    assert!(
        probe.polls.lock().unwrap().is_empty(),
        "none before an interval"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(probe.polls.lock().unwrap().len(), 1);
    assert_eq!(b.state(), "closed", "a healthy poll changes nothing");
    tokio::time::sleep(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(probe.polls.lock().unwrap().len(), 2);
    assert_eq!(b.state(), "open", "the second poll failed");
    assert_eq!(
        b.admit(false).await.unwrap(),
        Admission::Reject(Rejection::Open),
        "the fallback serves"
    );
    // Open: the next poll one open timeout later (not a watch poll besides it).
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    let polls = probe.polls.lock().unwrap().clone();
    assert_eq!(
        polls.len(),
        3,
        "{:?}",
        polls.iter().map(|p| *p - t0).collect::<Vec<_>>()
    );
    assert!(polls[2] - polls[1] >= Duration::from_secs(5));
    assert_eq!(b.state(), "open");
}

#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Call(Outcome),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..8000).prop_map(Step::Wait),
        Just(Step::Call(Outcome::Success)),
        Just(Step::Call(Outcome::CallerError)),
        Just(Step::Call(Outcome::UpstreamFailure)),
        Just(Step::Call(Outcome::Abandoned)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The actor under paused time, over any history: it never admits a call while open, and
    /// while open it never polls the peer sooner than the open timeout after it last opened
    /// (polls while last seen closed are the watch's).
    #[test]
    fn the_actor_keeps_the_machine_s_promises(
        steps in proptest::collection::vec(step(), 1..80),
        health in proptest::collection::vec(any::<bool>(), 0..10),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let (b, probe) = spawn(&health, false).await;
            let mut openings: Vec<Instant> = Vec::new();
            let mut closings: Vec<Instant> = Vec::new();
            let mut was_open = false;
            let mut was_closed = true;
            let mut seen = Instant::now();
            for s in steps {
                match s {
                    Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    Step::Call(outcome) => {
                        let before = b.state();
                        let admission = b.admit(false).await.unwrap();
                        if before == "open" {
                            prop_assert_ne!(admission, Admission::Admit, "admitted while open");
                        }
                        if admission == Admission::Admit {
                            b.record(outcome, Duration::from_millis(1));
                        }
                    }
                }
                settle().await;
                let open = b.state() == "open";
                if open && !was_open {
                    // Opened by a failed watch poll during a wait: at that poll, not now.
                    let by_poll = probe.polls.lock().unwrap().iter().filter(|p| **p > seen).max().copied();
                    openings.push(by_poll.unwrap_or_else(Instant::now));
                }
                seen = Instant::now();
                was_open = open;
                let closed = b.state() == "closed";
                if closed && !was_closed {
                    closings.push(Instant::now());
                }
                was_closed = closed;
            }
            let polls = probe.polls.lock().unwrap().clone();
            for p in polls {
                // Strictly before: a watch poll that opened the breaker is its own opening.
                let opened = openings.iter().filter(|o| **o < p).max();
                let closed = closings.iter().filter(|c| **c <= p).max();
                let Some(opened) = opened else { continue };
                if closed.is_some_and(|c| c >= opened) {
                    continue;
                }
                let waited = p - *opened;
                prop_assert!(waited >= config().open_timeout, "polled {waited:?} after opening");
            }
            Ok(())
        })?;
    }
}
