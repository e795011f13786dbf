//! The typed handle to an `IssuerJwks` actor.

use std::sync::Arc;
use std::time::Duration;

use super::{IssuerJwksMsg, Published, Snapshot};
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle: reads the published set directly, asks only to refresh.
#[derive(Clone, Debug)]
pub struct IssuerJwksHandle {
    slot: Slot<IssuerJwksMsg>,
    snapshot: Snapshot,
    issuer: String,
    max_age: Duration,
    timeout: Duration,
}

impl IssuerJwksHandle {
    /// A handle for `issuer`'s keys published in `snapshot`; a refresh waits at most `timeout`.
    pub fn new(
        slot: Slot<IssuerJwksMsg>,
        snapshot: Snapshot,
        issuer: String,
        max_age: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            slot,
            snapshot,
            issuer,
            max_age,
            timeout,
        }
    }

    /// The issuer (`iss`) these keys belong to.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The last good set, if one was ever fetched.
    pub fn current(&self) -> Option<Arc<Published>> {
        super::state::read(&self.snapshot)
    }

    /// Is `published` older than the maximum age?
    pub fn is_stale(&self, published: &Published) -> bool {
        published.fetched_at.elapsed() > self.max_age
    }

    /// Asks for a fresher set and returns what is published afterwards (possibly the same set,
    /// when the refresh was rate limited or failed).
    pub async fn refresh(&self) -> Result<Option<Arc<Published>>, Error> {
        crate::ask::ask(
            &self.slot,
            |reply| IssuerJwksMsg::Refresh { reply },
            self.timeout,
        )
        .await?;
        Ok(self.current())
    }
}
