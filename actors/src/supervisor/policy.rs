//! The restart policy as a pure function of (history, now, config): no clock reads, no I/O.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::SupervisionConfig;

/// What to do about a child that just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart it after this delay.
    RestartAfter(Duration),
    /// Too many failures in the window: fail the supervisor so its parent decides.
    Escalate,
}

/// Failures of one child inside the restart window.
#[derive(Debug, Default, Clone)]
pub struct History {
    recent: VecDeque<Instant>,
}

impl History {
    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant, cfg: &SupervisionConfig) -> Decision {
        while let Some(first) = self.recent.front() {
            if now.saturating_duration_since(*first) > cfg.restart_window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= cfg.max_restarts as usize {
            return Decision::Escalate;
        }
        let exponent = u32::try_from(self.recent.len()).unwrap_or(u32::MAX).min(16);
        self.recent.push_back(now);
        let delay = cfg
            .backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(cfg.backoff_max);
        Decision::RestartAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SupervisionConfig {
        SupervisionConfig {
            max_restarts: 3,
            restart_window: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            ask_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_is_capped_and_the_bound_escalates() {
        let mut h = History::default();
        let now = Instant::now();
        assert_eq!(
            h.on_failure(now, &cfg()),
            Decision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            h.on_failure(now, &cfg()),
            Decision::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            h.on_failure(now, &cfg()),
            Decision::RestartAfter(Duration::from_millis(300))
        );
        assert_eq!(h.on_failure(now, &cfg()), Decision::Escalate);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_are_forgotten() {
        let mut h = History::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                h.on_failure(start, &cfg()),
                Decision::RestartAfter(_)
            ));
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(
            h.on_failure(later, &cfg()),
            Decision::RestartAfter(Duration::from_millis(100))
        );
    }
}
