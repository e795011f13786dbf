//! Messages of the `IssuerJwks` actor.

use std::sync::Arc;

use cryptoutil_protocols::jose::JwkSet;
use ractor::RpcReplyPort;

use crate::error::Error;

/// What the `IssuerJwks` actor does.
pub enum IssuerJwksMsg {
    /// Fetch the set again unless a fetch is running (then wait for it) or the last one was too
    /// recent (then answer at once). The reply carries nothing: the caller reads the snapshot.
    Refresh {
        /// Answered when the set is as fresh as it is going to get.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// The fetch task's result.
    Fetched(Result<Arc<JwkSet>, String>),
    /// Fault injection: panic inside the handler.
    Crash,
}
