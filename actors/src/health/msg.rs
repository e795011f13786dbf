//! Messages of the `Health` actor.

use ractor::RpcReplyPort;

use super::HealthReport;
use crate::error::Error;

/// What the `Health` actor does.
pub enum HealthMsg {
    /// Report liveness.
    Check {
        /// The report.
        reply: RpcReplyPort<Result<HealthReport, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
}
