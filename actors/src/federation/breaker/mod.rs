//! The `Breaker` actor: one per federated peer, a child of the `FederationSupervisor`. It owns
//! the peer's circuit breaker (the pure machine in `cryptoutil_federation::breaker`), its retry
//! budget, the health-poll timers and the `federation_*` metrics. It never calls the peer
//! inside `handle`: callers ask [`BreakerHandle::admit`], make the call on their own task and
//! report the outcome with [`BreakerHandle::record`]; a health poll runs on a spawned task and
//! comes back as [`BreakerMsg::Polled`].
//!
//! While the breaker is closed the peer's health is polled every `poll_interval` even when
//! calls succeed; a failed poll logs a warning and opens the breaker, so the fallback serves.
//! When the breaker opens, a poll is due after `open_timeout`, then every `poll_interval`
//! while the peer stays unhealthy; a healthy poll half-opens the breaker and the next calls are
//! its probes. Polls go on while half-open, each good one counting as a good probe, so the
//! breaker of a peer no one calls closes too.

mod handle;
mod msg;
mod state;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::breaker::{BreakerConfig, Outcome};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

pub use handle::BreakerHandle;
pub use msg::BreakerMsg;
pub use state::{
    gauge_name, Admission, BreakerState, BreakerView, Rejection, SharedGauge, Transition,
};

use super::PeerName;
use crate::supervisor::child::BoxFuture;

/// Asks a peer whether it is ready (`GET /service/api/v1/health` for real peers).
pub trait Probe: Send + Sync + 'static {
    /// True when the peer answered ready (the future runs on a task of its own).
    fn healthy(self: Arc<Self>) -> BoxFuture<'static, bool>;
}

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Breaker;

/// Start arguments.
#[derive(Clone)]
pub struct BreakerArgs {
    /// The peer.
    pub peer: PeerName,
    /// The state machine's settings.
    pub config: BreakerConfig,
    /// Retries may be this share of first tries.
    pub budget_ratio: f64,
    /// Time between health polls (while closed, and while the breaker stays open).
    pub poll_interval: Duration,
    /// How a poll asks the peer.
    pub probe: Arc<dyn Probe>,
    /// Mirrors the state for handles and the supervision tree.
    pub gauge: SharedGauge,
}

impl std::fmt::Debug for BreakerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerArgs")
            .field("peer", &self.peer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The actor's state: its arguments, the breaker, and the clock the machine counts from.
pub struct BreakerActorState {
    args: BreakerArgs,
    breaker: BreakerState,
    epoch: Instant,
}

impl BreakerActorState {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Polls the peer's health on a task of its own; the answer comes back as `Polled`.
    fn poll(&self, me: &ActorRef<BreakerMsg>) {
        let probe = Arc::clone(&self.args.probe);
        let me = me.clone();
        tokio::spawn(async move {
            let healthy = probe.healthy().await;
            let _ = me.cast(BreakerMsg::Polled { healthy });
        });
    }

    /// Metrics, logs and the first poll timer of a transition.
    fn after(&self, me: &ActorRef<BreakerMsg>, t: Option<Transition>) {
        let Some(t) = t else { return };
        let peer = self.args.peer.as_str();
        crate::metrics::breaker_transitioned(peer, t.from, t.to, t.gauge);
        if t.to == "open" {
            tracing::warn!(
                peer,
                from = t.from,
                "circuit breaker opened: calls go to the fallback"
            );
            let generation = self.breaker.generation();
            me.send_after(self.breaker.config().open_timeout, move || {
                BreakerMsg::Poll { generation }
            });
        } else {
            tracing::info!(peer, from = t.from, to = t.to, "circuit breaker transition");
        }
    }
}

impl Actor for Breaker {
    type Msg = BreakerMsg;
    type State = BreakerActorState;
    type Arguments = BreakerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<BreakerMsg>,
        args: BreakerArgs,
    ) -> Result<BreakerActorState, ActorProcessingErr> {
        me.send_after(args.poll_interval, || BreakerMsg::Watch);
        let breaker = BreakerState::new(
            args.config.clone(),
            args.budget_ratio,
            Arc::clone(&args.gauge),
        );
        crate::metrics::breaker_state(args.peer.as_str(), 0);
        Ok(BreakerActorState {
            args,
            breaker,
            epoch: Instant::now(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<BreakerMsg>,
        msg: BreakerMsg,
        st: &mut BreakerActorState,
    ) -> Result<(), ActorProcessingErr> {
        let peer = st.args.peer.as_str();
        match msg {
            BreakerMsg::Admit { retry, reply } => {
                let now = st.now();
                let (admission, t) = st.breaker.admit(retry, now);
                st.after(&me, t);
                if let Admission::Reject(why) = admission {
                    crate::metrics::peer_rejected(peer, why.as_str());
                }
                let _ = reply.send(Ok(admission));
            }
            BreakerMsg::Record { outcome, elapsed } => {
                if outcome != Outcome::Abandoned {
                    let failed = outcome == Outcome::UpstreamFailure;
                    crate::metrics::peer_call(peer, elapsed.as_secs_f64(), failed);
                }
                let now = st.now();
                let t = st.breaker.record(outcome, now);
                st.after(&me, t);
            }
            BreakerMsg::Poll { generation } => {
                if st.breaker.start_poll(generation) {
                    st.poll(&me);
                }
            }
            BreakerMsg::Watch => {
                if st.breaker.start_watch() {
                    st.poll(&me);
                }
                me.send_after(st.args.poll_interval, || BreakerMsg::Watch);
            }
            BreakerMsg::Polled { healthy } => {
                crate::metrics::health_polled(peer, if healthy { "ok" } else { "failed" });
                if !healthy {
                    tracing::warn!(
                        peer,
                        state = st.breaker.view(st.now()).state,
                        "health poll failed"
                    );
                }
                let now = st.now();
                let (t, still_open) = st.breaker.polled(healthy, now);
                let reopened = t.is_some_and(|t| t.to == "open");
                st.after(&me, t);
                // A reopening set its own timer; otherwise an open breaker polls again.
                if still_open && !reopened {
                    let generation = st.breaker.generation();
                    me.send_after(st.args.poll_interval, move || BreakerMsg::Poll {
                        generation,
                    });
                }
            }
            BreakerMsg::Describe { reply } => {
                let _ = reply.send(Ok(st.breaker.view(st.now())));
            }
            BreakerMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: Breaker crash requested");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
