//! Messages of the `Breaker` actor.

use std::time::Duration;

use cryptoutil_federation::breaker::Outcome;
use ractor::RpcReplyPort;

use super::state::{Admission, BreakerView};
use crate::error::Error;

/// What a `Breaker` does.
pub enum BreakerMsg {
    /// May a call go to the peer now? `retry`: a later try of a call that failed.
    Admit {
        /// A retry (spends the retry budget) or a first try (earns it).
        retry: bool,
        /// The answer.
        reply: RpcReplyPort<Result<Admission, Error>>,
    },
    /// An admitted call ended (sent by the caller, who made the call on its own task).
    Record {
        /// How it ended.
        outcome: Outcome,
        /// How long it took.
        elapsed: Duration,
    },
    /// Timer: poll the peer's health, if the breaker is still in opening `generation`.
    Poll {
        /// The opening the timer was set in.
        generation: u64,
    },
    /// Timer, every poll interval: poll the peer's health if the breaker is closed (a failed
    /// poll opens it).
    Watch,
    /// The poll task's result.
    Polled {
        /// The peer answered ready.
        healthy: bool,
    },
    /// What operators see.
    Describe {
        /// The view.
        reply: RpcReplyPort<Result<BreakerView, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
}
