//! `HttpConfig` and `ListenConfig`, owned here and combined by `bin` into the app config.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use cryptoutil_actors::config::human_duration;
use cryptoutil_protocols::secret::Secret;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `http:` in the configuration: the two middleware stacks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `/service/**`: bearer-token clients.
    pub service: StackConfig,
    /// `/browser/**`: cookie sessions and the UI.
    pub browser: BrowserConfig,
    /// The metrics-only listeners (`services.<service>.metrics`).
    pub metrics: MetricsStackConfig,
    /// How long connections may stay open doing nothing, and how many one address may hold:
    /// every listener (public, admin, metrics).
    pub connections: ConnectionConfig,
}

/// `http.connections`: what keeps idle, slow and piled-up connections from holding a listener.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// A connection with no request in progress for this long is closed, counted from accept
    /// (a client that completes TLS and sends nothing) and from the end of its last answer
    /// (keep-alive, HTTP/1.1 and HTTP/2 alike).
    #[serde(with = "human_duration")]
    pub idle_timeout: Duration,
    /// A request body must arrive whole within this time of its request head; a slower one is
    /// refused (400) and its connection closed.
    #[serde(with = "human_duration")]
    pub body_read_timeout: Duration,
    /// Connections one client address may hold open on one listener; more are closed at
    /// accept, before TLS.
    pub max_per_address: NonZeroU32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_per_address: NonZeroU32::MIN.saturating_add(255),
        }
    }
}

/// `http.metrics`: who may scrape a metrics-only listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsStackConfig {
    /// Client networks allowed (a Prometheus on a container network); others get 403.
    pub ip_allowlist: Vec<IpNet>,
}

impl Default for MetricsStackConfig {
    fn default() -> Self {
        Self {
            ip_allowlist: loopback(),
        }
    }
}

/// Middleware settings shared by both stacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackConfig {
    /// Client networks allowed; others get 403 before anything else runs.
    pub ip_allowlist: Vec<IpNet>,
    /// Per-client token bucket.
    pub rate_limit: RateLimitConfig,
    /// Origins (`https://host[:port]`) whose pages may call `/service/**` with a bearer or
    /// DPoP token (single-page apps; no cookies).
    pub cors_allowed_origins: Vec<String>,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            ip_allowlist: loopback(),
            rate_limit: RateLimitConfig::default(),
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `/browser/**` settings: the shared ones plus security headers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// Client networks allowed.
    pub ip_allowlist: Vec<IpNet>,
    /// Per-client token bucket.
    pub rate_limit: RateLimitConfig,
    /// The `Content-Security-Policy` header.
    pub content_security_policy: String,
    /// `Strict-Transport-Security` max-age.
    #[serde(with = "human_duration")]
    pub hsts_max_age: Duration,
    /// Origins (`https://host[:port]`) whose pages may call `/browser/**` with credentials.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            ip_allowlist: loopback(),
            rate_limit: RateLimitConfig::default(),
            content_security_policy:
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                                      form-action 'self'; object-src 'none'"
                    .into(),
            hsts_max_age: Duration::from_secs(2 * 365 * 86_400),
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// A token bucket per client: `burst` requests at once, refilled at `requests_per_second`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate.
    pub requests_per_second: NonZeroU32,
    /// Bucket size.
    pub burst: NonZeroU32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_second: NonZeroU32::MIN.saturating_add(199),
            burst: NonZeroU32::MIN.saturating_add(399),
        }
    }
}

/// A public listener: address and port (0 = dynamic).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Bind address of the public listener.
    pub bind_address: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
        }
    }
}

/// A metrics-only listener: `GET /metrics` and nothing else, for a Prometheus that cannot reach
/// the loopback-only admin listener (another container). Off unless enabled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsListenConfig {
    /// Serve it.
    pub enabled: bool,
    /// Bind address.
    pub bind_address: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
}

impl Default for MetricsListenConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
        }
    }
}

/// The CA's distribution listener (`services.ca.distribution`): plain HTTP serving only the
/// signed objects relying parties fetch before they can trust any TLS (CRLs, CA certificates,
/// OCSP). Off unless enabled; only the `ca` service has one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionListenConfig {
    /// Serve it.
    pub enabled: bool,
    /// Bind address.
    pub bind_address: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
}

impl Default for DistributionListenConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
        }
    }
}

/// The admin listener: the port only, since it always binds 127.0.0.1.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminListenConfig {
    /// Port; 0 picks a free one.
    pub port: u16,
}

/// `admin:` in the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Mounts `POST /admin/v1/faults/crash`, which makes a named actor panic. For chaos and
    /// supervision tests only.
    pub danger_fault_injection: bool,
    /// The bearer token every admin route but `livez`, `readyz` and `healthz` requires (usually
    /// `file://`; at least 32 characters). Empty: no token, only the loopback bind, the refusal
    /// of browser requests (an `Origin` header) and of non-JSON POSTs protect the admin API.
    pub token: Secret,
}

/// The least length of `admin.token`.
pub const ADMIN_TOKEN_MIN_LEN: usize = 32;

impl AdminConfig {
    /// Checks the token's length.
    pub fn validate(&self) -> Result<(), String> {
        let len = self.token.expose().len();
        if len > 0 && len < ADMIN_TOKEN_MIN_LEN {
            return Err(format!(
                "admin.token must be at least {ADMIN_TOKEN_MIN_LEN} characters (it has {len})"
            ));
        }
        Ok(())
    }
}

fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `auth:` in the configuration: who may issue the bearer tokens `/service/**` accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Issuers whose access tokens (JWTs) are trusted. Empty: every protected route answers 401.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Clock skew tolerated on exp, nbf and iat.
    #[serde(with = "human_duration")]
    pub leeway: Duration,
    /// How sets fetched from a `jwks_uri` are kept fresh.
    pub jwks_refresh: JwksRefreshConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            trusted_issuers: Vec::new(),
            leeway: Duration::from_secs(5),
            jwks_refresh: JwksRefreshConfig::default(),
        }
    }
}

/// One trusted token issuer and where its public keys come from: exactly one of `jwks` (a static
/// set) and `jwks_uri` (fetched, cached, refreshed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Its JWK Set as JSON (usually `file:///...`).
    #[serde(default)]
    pub jwks: Option<String>,
    /// The https URL of its JWK Set (identity-authz's, or any OIDC issuer's `jwks_uri`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PEM trust anchors for `jwks_uri` (usually `file:///...`); default: this process's own TLS
    /// trust anchor (in dynamic mode the suite's root CA, which issues identity-authz's
    /// certificate).
    #[serde(default)]
    pub jwks_ca: Option<String>,
    /// Refuse an ECDSA token whose signature is the high-S twin of its pair (a copy anyone can
    /// make without the key). On for the suite's own identity-authz, which signs low-S; off by
    /// default for other issuers, since most signers make either half.
    #[serde(default)]
    pub require_low_s: bool,
}

/// `auth.jwks_refresh`: fetched key sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwksRefreshConfig {
    /// Least time between two fetches of one issuer's set, however many tokens name a `kid` it
    /// lacks (the rate limit).
    #[serde(with = "human_duration")]
    pub min_interval: Duration,
    /// A set older than this is fetched again before use (a failed fetch keeps the old set).
    #[serde(with = "human_duration")]
    pub max_age: Duration,
    /// Bound on one fetch.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
}

impl Default for JwksRefreshConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
            timeout: Duration::from_secs(5),
        }
    }
}
