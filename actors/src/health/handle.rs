//! The typed handle to a `Health` actor.

use std::time::Duration;

use super::{HealthMsg, HealthReport};
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle.
#[derive(Clone, Debug)]
pub struct HealthHandle {
    slot: Slot<HealthMsg>,
    timeout: Duration,
}

impl HealthHandle {
    /// A handle reading `slot`, asking with `timeout`.
    pub fn new(slot: Slot<HealthMsg>, timeout: Duration) -> Self {
        Self { slot, timeout }
    }

    /// Asks the actor for its report.
    pub async fn check(&self) -> Result<HealthReport, Error> {
        crate::ask::ask(&self.slot, |reply| HealthMsg::Check { reply }, self.timeout).await
    }
}
