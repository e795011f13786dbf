//! `BarrierConfig`: where the unseal shares come from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `barrier:` in the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BarrierConfig {
    /// `barrier.unseal`.
    pub unseal: UnsealConfig,
}

/// `barrier.unseal`: M-of-N share files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnsealConfig {
    /// Share files (Docker secrets); each holds one share line. At least the threshold must be
    /// given; more are checked for consistency.
    pub shares: Vec<PathBuf>,
    /// Development only: with no shares configured, generate one share on first start into
    /// `<data-dir>/unseal/dev-share-1.txt` (mode 0600) and use it. Loudly logged. On by default
    /// so the embedded default starts with no setup; production configs turn it off.
    pub dev_generate: bool,
}

impl Default for UnsealConfig {
    fn default() -> Self {
        Self {
            shares: Vec::new(),
            dev_generate: true,
        }
    }
}
