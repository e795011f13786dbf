//! The typed handle to a `Breaker` actor.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cryptoutil_federation::breaker::Outcome;

use super::msg::BreakerMsg;
use super::state::{gauge_name, Admission, BreakerView, SharedGauge};
use super::PeerName;
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle to one peer's breaker.
#[derive(Clone, Debug)]
pub struct BreakerHandle {
    slot: Slot<BreakerMsg>,
    peer: PeerName,
    gauge: SharedGauge,
    timeout: Duration,
}

impl BreakerHandle {
    /// A handle to the breaker of `peer` in `slot`, whose state is mirrored in `gauge`.
    pub fn new(
        slot: Slot<BreakerMsg>,
        peer: PeerName,
        gauge: SharedGauge,
        timeout: Duration,
    ) -> Self {
        Self {
            slot,
            peer,
            gauge,
            timeout,
        }
    }

    /// The peer.
    pub fn peer(&self) -> PeerName {
        self.peer
    }

    /// `closed`, `half_open` or `open`, read without asking the actor.
    pub fn state(&self) -> &'static str {
        gauge_name(self.gauge.load(Ordering::Relaxed))
    }

    /// May a call (`retry`: a later try of a failed one) go to the peer now?
    pub async fn admit(&self, retry: bool) -> Result<Admission, Error> {
        crate::ask::ask(
            &self.slot,
            |reply| BreakerMsg::Admit { retry, reply },
            self.timeout,
        )
        .await
    }

    /// Reports how an admitted call ended (never waits; a breaker that is restarting misses it).
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        if let Ok(actor) = self.slot.current() {
            let _ = actor.cast(BreakerMsg::Record { outcome, elapsed });
        }
    }

    /// What operators see.
    pub async fn describe(&self) -> Result<BreakerView, Error> {
        crate::ask::ask(
            &self.slot,
            |reply| BreakerMsg::Describe { reply },
            self.timeout,
        )
        .await
    }
}
