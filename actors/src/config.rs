//! `SupervisionConfig`: restart policy and call timeouts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `supervision:` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Restarts allowed within `restart_window` before the failure escalates to the parent.
    pub max_restarts: u32,
    /// The window `max_restarts` counts over.
    #[serde(with = "human_duration")]
    pub restart_window: Duration,
    /// Delay before the first restart; doubles for each further restart inside the window.
    #[serde(with = "human_duration")]
    pub backoff_initial: Duration,
    /// Upper bound of the restart delay.
    #[serde(with = "human_duration")]
    pub backoff_max: Duration,
    /// Timeout of every ask to an actor.
    #[serde(with = "human_duration")]
    pub ask_timeout: Duration,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            ask_timeout: Duration::from_secs(5),
        }
    }
}

/// Serde adapter for durations written as `250ms`, `5s`, `2m`.
pub mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration in its largest exact unit.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&cryptoutil_protocols::duration::format(*d))
    }

    /// Reads `<digits><unit>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        cryptoutil_protocols::duration::parse(&text).map_err(serde::de::Error::custom)
    }
}
