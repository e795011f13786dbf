//! `federation:` and `federation_fallback:` (ARCHITECTURE §6): where the peers are, how this
//! process authenticates to them, how its circuit breakers and retries behave, and what each
//! service does while a peer is unavailable. No URL is built in: a peer is reached only when
//! its `*_enabled` is set and its `*_url` configured.

use std::time::Duration;

use cryptoutil_actors::config::human_duration;
use serde::{Deserialize, Serialize};

use super::Secret;
pub use cryptoutil_actors::federation::{CaFallback, IdentityFallback, JoseFallback};

/// `federation:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// identity-authz's public base URL (https).
    pub identity_url: String,
    /// Validate tokens and fetch keys through identity-authz at `identity_url`.
    pub identity_enabled: bool,
    /// Timeout of one call to identity-authz (the first try; retries grow it 1.5x each).
    #[serde(with = "human_duration")]
    pub identity_timeout: Duration,
    /// The `iss` of identity-authz's tokens. Empty: `identity_url`.
    pub identity_issuer: String,
    /// How long a token identity-authz called active is accepted without asking again (a token
    /// revoked meanwhile is refused at most this much later).
    #[serde(with = "human_duration")]
    pub identity_cache_ttl: Duration,
    /// The JOSE service's public base URL (https).
    pub jose_url: String,
    /// Perform JWE/JWS through the JOSE service.
    pub jose_enabled: bool,
    /// Timeout of one call to the JOSE service.
    #[serde(with = "human_duration")]
    pub jose_timeout: Duration,
    /// The CA's public base URL (https).
    pub ca_url: String,
    /// Obtain certificates from the CA.
    pub ca_enabled: bool,
    /// Timeout of one call to the CA.
    #[serde(with = "human_duration")]
    pub ca_timeout: Duration,
    /// How this process proves itself to peers.
    pub auth: PeerAuthConfig,
    /// Circuit breakers (one per peer).
    pub breaker: BreakerSettings,
    /// Retries of failed calls.
    pub retry: RetryConfig,
    /// How often each enabled peer is polled for readiness: while its breaker is closed (a
    /// failed poll opens it) and while it is open (a ready answer half-opens it).
    #[serde(with = "human_duration")]
    pub health_poll_interval: Duration,
    /// DEVELOPMENT ONLY: permits `identity_fallback_mode: allow_all`.
    pub danger_allow_all_fallback: bool,
}

impl Default for FederationConfig {
    fn default() -> Self {
        let timeout = Duration::from_secs(5);
        Self {
            identity_url: String::new(),
            identity_enabled: false,
            identity_timeout: timeout,
            identity_issuer: String::new(),
            identity_cache_ttl: Duration::from_secs(10),
            jose_url: String::new(),
            jose_enabled: false,
            jose_timeout: timeout,
            ca_url: String::new(),
            ca_enabled: false,
            ca_timeout: timeout,
            auth: PeerAuthConfig::default(),
            breaker: BreakerSettings::default(),
            retry: RetryConfig::default(),
            health_poll_interval: Duration::from_secs(30),
            danger_allow_all_fallback: false,
        }
    }
}

/// How this process authenticates to its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerAuthMode {
    /// No credential (peers that need none).
    #[default]
    None,
    /// A TLS client certificate.
    Mtls,
    /// An OAuth access token from the client-credentials grant.
    ClientCredentials,
}

/// `federation.auth:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerAuthConfig {
    /// Which credential.
    pub mode: PeerAuthMode,
    /// The OAuth client id at identity-authz (both modes: `mtls` authenticates it by its
    /// certificate, RFC 8705 `tls_client_auth`).
    pub client_id: String,
    /// mtls: the client certificate chain (PEM, usually `file://`).
    pub client_cert: String,
    /// mtls: its private key (PEM, `file://`).
    pub client_key: Secret,
    /// Trust anchors for the peers' certificates (PEM, `file://`); empty: this process's own.
    pub ca: String,
    /// client_credentials: the client secret (`file://`).
    pub client_secret: Secret,
    /// identity-authz's token endpoint (https). Empty: the one at `identity_url`.
    pub token_endpoint: String,
}

/// `federation.breaker:` (see `cryptoutil_federation::breaker`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive upstream failures that open the breaker.
    pub failure_threshold: u32,
    /// Failure rate (0 < rate <= 1) over `window` that opens it.
    pub failure_rate: f64,
    /// The rate's window.
    #[serde(with = "human_duration")]
    pub window: Duration,
    /// Outcomes the window needs before its rate counts.
    pub min_requests: u32,
    /// How long an open breaker refuses calls before it probes.
    #[serde(with = "human_duration")]
    pub open_timeout: Duration,
    /// Probes a half-open breaker admits at a time, and successes that close it.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let c = cryptoutil_federation::breaker::BreakerConfig::default();
        Self {
            failure_threshold: c.failure_threshold,
            failure_rate: c.failure_rate,
            window: c.window,
            min_requests: c.min_requests,
            open_timeout: c.open_timeout,
            half_open_probes: c.half_open_probes,
        }
    }
}

impl BreakerSettings {
    /// The state machine's configuration (opening waits for a health poll).
    pub fn machine(&self) -> cryptoutil_federation::breaker::BreakerConfig {
        cryptoutil_federation::breaker::BreakerConfig {
            failure_threshold: self.failure_threshold,
            window: self.window,
            failure_rate: self.failure_rate,
            min_requests: self.min_requests,
            open_timeout: self.open_timeout,
            half_open_probes: self.half_open_probes,
            health_gate: true,
        }
    }
}

/// `federation.retry:`: exponential backoff with jitter (1, 2, 4, 8, 16 s by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first try (at most 5).
    pub max_retries: u32,
    /// Delay before the first retry; doubles for each next one.
    #[serde(with = "human_duration")]
    pub initial_backoff: Duration,
    /// Upper bound of a delay.
    #[serde(with = "human_duration")]
    pub max_backoff: Duration,
    /// Each retry's timeout is the previous one times this (at least 1).
    pub timeout_multiplier: f64,
    /// Retries may be at most this share of first tries (0 to 1), so retries cannot multiply
    /// an outage.
    pub budget_ratio: f64,
    /// The most a request waits for a peer, retries included, where no fallback gives the same
    /// answer (identity under `reject_all`). Calls whose fallback gives the same answer
    /// (`local_validation`, `internal_crypto`) do not retry: the fallback answers at once.
    #[serde(with = "human_duration")]
    pub deadline: Duration,
}

impl RetryConfig {
    /// The retry policy of the federation crate.
    pub fn policy(&self) -> cryptoutil_federation::retry::RetryPolicy {
        cryptoutil_federation::retry::RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            timeout_multiplier: self.timeout_multiplier,
            budget_ratio: self.budget_ratio,
        }
    }
}

impl FederationConfig {
    /// The `iss` of identity-authz's tokens.
    pub fn identity_issuer(&self) -> String {
        match self.identity_issuer.trim_end_matches('/') {
            "" => self.identity_url.trim_end_matches('/').to_owned(),
            issuer => issuer.to_owned(),
        }
    }

    /// identity-authz's token endpoint.
    pub fn token_endpoint(&self) -> String {
        match self.auth.token_endpoint.as_str() {
            "" => format!(
                "{}{}",
                self.identity_url.trim_end_matches('/'),
                cryptoutil_actors::federation::TOKEN_PATH
            ),
            endpoint => endpoint.to_owned(),
        }
    }

    /// Is any peer enabled?
    pub fn any_enabled(&self) -> bool {
        self.identity_enabled || self.jose_enabled || self.ca_enabled
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        let p = cryptoutil_federation::retry::RetryPolicy::default();
        Self {
            max_retries: p.max_retries,
            initial_backoff: p.initial_backoff,
            max_backoff: p.max_backoff,
            timeout_multiplier: p.timeout_multiplier,
            budget_ratio: p.budget_ratio,
            deadline: Duration::from_secs(5),
        }
    }
}

/// `federation_fallback:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// identity-authz unavailable.
    pub identity_fallback_mode: IdentityFallback,
    /// The JOSE service unavailable.
    pub jose_fallback_mode: JoseFallback,
    /// The CA unavailable.
    pub ca_fallback_mode: CaFallback,
}

fn https(url: &str) -> bool {
    url.strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

/// Problems of `federation:` and `federation_fallback:`, each with its key.
pub(super) fn validate(f: &FederationConfig, fb: &FallbackConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, why: &str| problems.push((key.to_owned(), why.to_owned()));
    for (peer, url, enabled, timeout) in [
        (
            "identity",
            &f.identity_url,
            f.identity_enabled,
            f.identity_timeout,
        ),
        ("jose", &f.jose_url, f.jose_enabled, f.jose_timeout),
        ("ca", &f.ca_url, f.ca_enabled, f.ca_timeout),
    ] {
        if (enabled || !url.is_empty()) && !https(url) {
            problem(
                &format!("federation.{peer}_url"),
                "must be an https:// URL when the peer is enabled or named",
            );
        }
        if timeout.is_zero() {
            problem(
                &format!("federation.{peer}_timeout"),
                "must be greater than 0",
            );
        }
    }
    let needs_auth = f.identity_enabled || f.jose_enabled;
    match f.auth.mode {
        PeerAuthMode::None if needs_auth => problem(
            "federation.auth.mode",
            "identity and JOSE peers need client_credentials or mtls (introspection and the \
             JOSE API authenticate this process)",
        ),
        PeerAuthMode::None => {}
        PeerAuthMode::Mtls | PeerAuthMode::ClientCredentials => {
            if f.auth.client_id.is_empty() {
                problem(
                    "federation.auth.client_id",
                    "the OAuth client id is required",
                );
            }
            if f.auth.token_endpoint.is_empty() && f.identity_url.is_empty() {
                problem(
                    "federation.auth.token_endpoint",
                    "needed when federation.identity_url is not set",
                );
            } else if !f.auth.token_endpoint.is_empty() && !https(&f.auth.token_endpoint) {
                problem("federation.auth.token_endpoint", "must be an https:// URL");
            }
        }
    }
    match f.auth.mode {
        PeerAuthMode::None => {}
        PeerAuthMode::Mtls => {
            if f.auth.client_cert.trim().is_empty() {
                problem(
                    "federation.auth.client_cert",
                    "mtls needs a PEM certificate chain",
                );
            }
            if f.auth.client_key.expose().trim().is_empty() {
                problem("federation.auth.client_key", "mtls needs a PEM private key");
            }
        }
        PeerAuthMode::ClientCredentials => {
            if f.auth.client_secret.expose().is_empty() {
                problem(
                    "federation.auth.client_secret",
                    "client_credentials needs a client secret (file://)",
                );
            }
        }
    }
    let b = &f.breaker;
    if b.failure_threshold == 0 {
        problem("federation.breaker.failure_threshold", "must be at least 1");
    }
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        problem(
            "federation.breaker.failure_rate",
            "must be greater than 0 and at most 1",
        );
    }
    if b.half_open_probes == 0 {
        problem("federation.breaker.half_open_probes", "must be at least 1");
    }
    if b.open_timeout.is_zero() || b.window.is_zero() {
        problem(
            "federation.breaker",
            "open_timeout and window must be greater than 0",
        );
    }
    let r = &f.retry;
    if r.max_retries > 5 {
        problem("federation.retry.max_retries", "at most 5");
    }
    if r.timeout_multiplier < 1.0 {
        problem("federation.retry.timeout_multiplier", "must be at least 1");
    }
    if !(0.0..=1.0).contains(&r.budget_ratio) {
        problem("federation.retry.budget_ratio", "must be between 0 and 1");
    }
    if r.deadline.is_zero() {
        problem("federation.retry.deadline", "must be greater than 0");
    }
    if f.health_poll_interval.is_zero() {
        problem("federation.health_poll_interval", "must be greater than 0");
    }
    if fb.identity_fallback_mode == IdentityFallback::AllowAll && !f.danger_allow_all_fallback {
        problem(
            "federation_fallback.identity_fallback_mode",
            "allow_all lets every request through while identity-authz is down; it needs \
             federation.danger_allow_all_fallback: true (development only)",
        );
    }
    problems
}
