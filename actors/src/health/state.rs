//! State of the `Health` actor: synchronous methods, testable without spawning.

use serde::Serialize;
use tokio::time::Instant;

use crate::service::ServiceName;

/// Liveness of one service as its `Health` actor sees it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The service.
    pub service: ServiceName,
    /// Seconds since this incarnation of the actor started.
    pub uptime_seconds: u64,
    /// Checks answered by this incarnation.
    pub checks: u64,
}

/// The actor's state.
#[derive(Debug)]
pub struct HealthState {
    service: ServiceName,
    started: Instant,
    checks: u64,
}

impl HealthState {
    /// Fresh state for `service` started at `now`.
    pub fn new(service: ServiceName, now: Instant) -> Self {
        Self {
            service,
            started: now,
            checks: 0,
        }
    }

    /// Answers a check at `now`.
    pub fn check(&mut self, now: Instant) -> HealthReport {
        self.checks = self.checks.saturating_add(1);
        HealthReport {
            service: self.service,
            uptime_seconds: now.saturating_duration_since(self.started).as_secs(),
            checks: self.checks,
        }
    }

    /// Fault injection: panic, so supervision can be seen restarting the actor.
    pub fn crash(&self) {
        // INVARIANT: reachable only through the admin fault-injection route, which exists only
        // when admin.danger_fault_injection is on.
        #[allow(clippy::panic)]
        {
            panic!(
                "fault injection: {} health actor panics on request",
                self.service
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_checks_and_uptime() {
        let start = Instant::now();
        let mut st = HealthState::new(ServiceName::Kms, start);
        assert_eq!(st.check(start).checks, 1);
        let r = st.check(start + Duration::from_secs(3));
        assert_eq!((r.checks, r.uptime_seconds), (2, 3));
    }
}
