//! `AppConfig`: the crates' own config structs combined, loaded in layers (embedded defaults,
//! the user's file, `CRYPTOUTIL_*` environment, command-line flags) with the source of every
//! value remembered, so an error names the key and who set it.

pub mod federation;
mod layers;

use std::path::PathBuf;
use std::time::Duration;

use cryptoutil_actors::config::human_duration;
use cryptoutil_actors::{ServiceName, SupervisionConfig};
use cryptoutil_http::config::{
    AdminConfig, AdminListenConfig, AuthConfig, DistributionListenConfig, HttpConfig, ListenConfig,
    MetricsListenConfig,
};
use cryptoutil_storage::BarrierConfig;
use serde::{Deserialize, Serialize};

pub use cryptoutil_protocols::secret::Secret;
pub use layers::{load, ConfigError, Flags, Loaded, Source};

/// The embedded defaults (`config/defaults.yaml`).
pub const DEFAULTS_YAML: &str = include_str!("../../../config/defaults.yaml");
/// Environment variables with this prefix are configuration.
pub const ENV_PREFIX: &str = "CRYPTOUTIL_";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Stores, trust anchor, endpoints.json, dev unseal shares.
    pub data_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// Listener certificates.
    pub tls: TlsConfig,
    /// The key barrier.
    pub barrier: BarrierConfig,
    /// Where the services' stores live: redb files in `data_dir`, or PostgreSQL.
    pub storage: StorageConfig,
    /// Restart policy.
    pub supervision: SupervisionConfig,
    /// Middleware stacks.
    pub http: HttpConfig,
    /// Trusted token issuers.
    pub auth: AuthConfig,
    /// identity-authz.
    pub identity: IdentityConfig,
    /// The CA.
    pub ca: CaConfig,
    /// Admin API options.
    pub admin: AdminConfig,
    /// How long shutdown waits for in-flight requests.
    #[serde(with = "human_duration")]
    pub shutdown_grace_period: Duration,
    /// Listeners per service.
    pub services: ServicesConfig,
    /// Peers, peer authentication, breakers and retries.
    pub federation: federation::FederationConfig,
    /// What each service does while a peer is unavailable.
    pub federation_fallback: federation::FallbackConfig,
    /// The audit files: `max_bytes` a segment holds before it is closed, `retain` closed
    /// segments kept (0: all).
    pub audit: cryptoutil_actors::audit::file::Segments,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./cryptoutil-data"),
            log: LogConfig::default(),
            tls: TlsConfig::default(),
            barrier: BarrierConfig::default(),
            storage: StorageConfig::default(),
            supervision: SupervisionConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            identity: IdentityConfig::default(),
            ca: CaConfig::default(),
            admin: AdminConfig::default(),
            shutdown_grace_period: Duration::from_secs(5),
            services: ServicesConfig::default(),
            federation: federation::FederationConfig::default(),
            federation_fallback: federation::FallbackConfig::default(),
            audit: cryptoutil_actors::audit::file::Segments::default(),
        }
    }
}

/// `storage:`: where each service keeps its store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `redb` (one file per service in `data_dir`, the embedded default) or `postgres`.
    pub backend: StorageBackend,
    /// The database, with `backend: postgres`.
    pub postgres: PostgresConfig,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// One redb file per service in the data directory.
    #[default]
    Redb,
    /// One schema per service in a PostgreSQL database that replicas share.
    Postgres,
}

/// `storage.postgres`: the database every replica shares, reached over TLS 1.3 only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgresql://user:password@host:5432/database` (secret: usually `file://`).
    pub url: Secret,
    /// PEM CA certificates the server's certificate must chain to (usually `file://`); its
    /// name is checked against the URL's host.
    pub trust_anchors: String,
    /// A PEM client certificate chain presented to the server (pg_hba.conf `cert`); empty:
    /// none (a password in the URL then authenticates).
    pub client_cert_chain: String,
    /// Its PEM private key (secret: `file://`).
    pub client_key: Secret,
    /// Connections per service at most.
    pub pool_size: usize,
    /// How long connecting may take.
    #[serde(with = "human_duration")]
    pub connect_timeout: Duration,
    /// How long one statement may run (the server cancels it then); a call waits at most
    /// `connect_timeout + statement_timeout` before answering 503.
    #[serde(with = "human_duration")]
    pub statement_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            trust_anchors: String::new(),
            client_cert_chain: String::new(),
            client_key: Secret::default(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresConfig {
    /// The storage crate's options.
    pub fn options(&self) -> cryptoutil_storage::PgOptions {
        let client_cert = (!self.client_cert_chain.trim().is_empty()).then(|| {
            (
                self.client_cert_chain.clone(),
                zeroize::Zeroizing::new(self.client_key.expose().to_owned()),
            )
        });
        cryptoutil_storage::PgOptions {
            url: zeroize::Zeroizing::new(self.url.expose().to_owned()),
            trust_anchors_pem: self.trust_anchors.clone(),
            client_cert,
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            statement_timeout: self.statement_timeout,
        }
    }
}

/// `ca:`: the CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaConfig {
    /// Base URL of the CA's distribution routes that certificates name (CRL distribution point,
    /// OCSP, AIA caIssuers), e.g. `http://pki.example.com`. Empty: the distribution listener's
    /// URL as bound when it is enabled, else the CA's public (HTTPS) base URL as bound.
    pub distribution_base_url: String,
    /// How long a CRL is valid; it is signed anew once half of it has passed.
    #[serde(with = "human_duration")]
    pub crl_lifetime: Duration,
    /// How long an OCSP answer is valid; a cached one is served until half of it has passed.
    #[serde(with = "human_duration")]
    pub ocsp_lifetime: Duration,
    /// The policy OID (dotted) of the time stamps the CAs' TSAs sign.
    pub tsa_policy: String,
    /// ACME.
    pub acme: AcmeConfig,
    /// SCEP.
    pub scep: ScepConfig,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            distribution_base_url: String::new(),
            crl_lifetime: Duration::from_secs(86_400),
            ocsp_lifetime: Duration::from_secs(3600),
            tsa_policy: cryptoutil_actors::ca::DEFAULT_TSA_POLICY.to_owned(),
            acme: AcmeConfig::default(),
            scep: ScepConfig::default(),
        }
    }
}

/// `ca.acme:`: the ACME server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// The port http-01 validation connects to on the name being validated (RFC 8555 §8.3:
    /// 80; another one lets tests and non-root clients answer).
    pub http01_port: u16,
    /// The resolver dns-01 validation asks for TXT records (`ip:port`, or an IP address for
    /// port 53): one the CA trusts (a local validating resolver). Empty: dns-01 is not offered.
    pub dns_resolver: String,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            http01_port: 80,
            dns_resolver: String::new(),
        }
    }
}

/// The resolver of `ca.acme.dns_resolver` (`ip:port`, or an IP address for port 53); empty:
/// none, and dns-01 is not offered (a resolver the CA trusts must be named, not guessed).
pub fn dns_resolver(text: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    use std::net::{IpAddr, SocketAddr};
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let addr = text
        .parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            anyhow::anyhow!("ca.acme.dns_resolver: {text:?} is not an IP address or ip:port")
        })?;
    Ok(Some(addr))
}

/// `ca.scep:`: the SCEP server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScepConfig {
    /// Serve SCEP (RFC 8894), whose clients send their content keys with RSA PKCS#1 v1.5 key
    /// transport, outside the FIPS-approved set. Off: every SCEP operation but GetCACaps
    /// answers 403 with the reason.
    pub allow_rsa_pkcs1v15_key_transport: bool,
}

/// `identity:`: identity-authz.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The issuer URL tokens carry (`iss`) and discovery announces. Empty: identity-authz's
    /// public base URL as bound (with dynamic ports it changes on every start).
    pub issuer: String,
    /// Key of the client-secret MACs, at least 32 bytes (usually `file://`). Empty: generated
    /// on first start and kept sealed in the identity-authz store (development).
    pub pepper: Secret,
    /// Lifetime of access tokens.
    #[serde(with = "human_duration")]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh-token family, counted from the sign-in (rotation does not extend
    /// it).
    #[serde(with = "human_duration")]
    pub refresh_token_ttl: Duration,
    /// Lifetime of a sign-in session at identity-idp.
    #[serde(with = "human_duration")]
    pub session_ttl: Duration,
    /// identity-idp's login page. Empty: identity-idp's `/browser/login` in this process.
    pub login_url: String,
    /// Trust anchors (PEM, usually `file://`) for `tls_client_auth` client certificates
    /// (RFC 8705). Empty: that method is unavailable.
    pub mtls_ca: String,
    /// Services in this process trust identity-authz (in this process) as a token issuer.
    pub trust_local_issuer: bool,
    /// The federated services' clients, registered as resource servers of the operator tenant
    /// on every start (their secrets usually `file://` Docker secrets shared with the service).
    pub federation_clients: Vec<FederationClient>,
    /// identity-idp as a WebAuthn relying party (security keys and passkeys).
    pub webauthn: WebauthnConfig,
    /// Where identity-idp sends magic links. No `host`: into [`outbox`](Self::outbox).
    pub smtp: SmtpConfig,
    /// Trust anchors (PEM, usually `file://`) of the client certificates that sign users in
    /// at identity-idp (typically the CA product's issuing CA). Empty: certificate sign-in is
    /// off.
    pub certificate_ca: String,
    /// Whether an email address in such a certificate signs in the user whose login name it
    /// is (only for a CA that vouches for the addresses it certifies, e.g. a profile that
    /// restricts them); otherwise only certificates registered for a user sign in.
    pub certificate_email_login: bool,
    /// Paths of the certificate revocation lists (PEM or DER) of those certificates' issuers,
    /// re-read whenever one changes (a job keeps them current, e.g. from the CA product's
    /// CRL distribution point). With any, a certificate is refused unless its issuer has a
    /// current list that does not list it. Empty: revocation is not checked.
    pub certificate_crls: Vec<String>,
    /// The directory magic links are written to when no SMTP relay is configured (one `.eml`
    /// file each, mode 0600: development only). Empty: `<data_dir>/outbox`.
    pub outbox: String,
    /// Each service's resource URI (`https://...`) by service name, where clients know it by
    /// another URL than this process's public one (another process, a load balancer):
    /// identity-authz maps an RFC 8707 `resource` naming it to that service's audience, and
    /// identity-rs publishes its own as the RFC 9728 `resource`. A service of this process
    /// without an entry is its public URL; any service is also `urn:cryptoutil:<name>`.
    pub resource_uris: std::collections::BTreeMap<String, String>,
    /// Hosts (`host` or `host:port`) that clients' `backchannel_logout_uri`s may name although
    /// they are, or resolve to, loopback, private or other internal addresses (relying
    /// parties inside the deployment's own network). Others are refused: tenant
    /// administrators register those URIs, and identity-authz must not post into its own
    /// network for them.
    pub backchannel_allowed_hosts: Vec<String>,
    /// identity-authz: the reference applications' clients when they run in other processes
    /// (Compose), registered on every start. In one process with them they need none.
    pub reference_clients: Vec<ReferenceClientConfig>,
    /// identity-rp and identity-spa in a process without identity-authz: where they sign in.
    pub reference: ReferenceAppsConfig,
}

/// `identity.reference_clients[]`: a reference application's client at identity-authz.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceClientConfig {
    /// `identity-rp` or `identity-spa`.
    pub client_id: String,
    /// Its public JWK Set for `private_key_jwt` (usually `file://`); empty: a public client.
    #[serde(default)]
    pub jwks: String,
    /// Its redirect URI.
    pub redirect_uri: String,
    /// Where RP-initiated logout returns.
    pub post_logout_uri: String,
    /// Its back-channel logout URI; empty: none.
    #[serde(default)]
    pub backchannel_logout_uri: String,
}

/// `identity.reference`: identity-rp and identity-spa away from identity-authz.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferenceAppsConfig {
    /// identity-authz's issuer (its endpoints are under it).
    pub issuer: String,
    /// identity-rs's public URL (the notes API, and its RFC 8707 resource).
    pub rs_url: String,
    /// identity-rp's public URL as browsers see it.
    pub rp_url: String,
    /// identity-spa's public URL as browsers see it.
    pub spa_url: String,
    /// identity-rp's `private_key_jwt` key, a private JWK (`file://`, from
    /// `cryptoutil pki client-key`).
    pub rp_key: Secret,
}

/// `identity.smtp`: the relay magic links go through, over TLS 1.3.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Its host name (its certificate must name it). Empty: no relay, the outbox.
    pub host: String,
    /// Its port (587 for STARTTLS, 465 for implicit TLS).
    pub port: u16,
    /// `starttls` (required: a relay that does not offer it gets nothing) or `implicit`.
    pub tls: SmtpTlsMode,
    /// `AUTH PLAIN` user name (with `password`), or empty.
    pub username: String,
    /// Its password (`file://`).
    pub password: Secret,
    /// The `From:` address.
    pub from: String,
    /// The relay's trust anchors (PEM, usually `file://`; for a public relay the system's
    /// bundle, `file:///etc/ssl/certs/ca-certificates.crt`). Required with `host`.
    pub ca: String,
    /// How long one message may take.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
}

/// `identity.smtp.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    /// STARTTLS before anything else.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTlsMode::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "no-reply@cryptoutil.invalid".into(),
            ca: String::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `identity.webauthn`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnConfig {
    /// The RP ID: a domain that identity-idp's pages are served from (or a parent of it).
    /// Empty: the host of `identity.login_url` when it is a name, else `localhost`.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// The origins (`https://host[:port]`) identity-idp's pages are served from. Empty: the
    /// origin of `identity.login_url` when its host is a name, else `https://<rp_id>:<port>`
    /// with identity-idp's public port.
    pub origins: Vec<String>,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        Self {
            rp_id: String::new(),
            rp_name: "cryptoutil".into(),
            origins: Vec::new(),
        }
    }
}

/// `identity.federation_clients[]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationClient {
    /// The client id (`[a-z0-9-]{1,64}`).
    pub client_id: String,
    /// Its secret, at least 32 characters (`file://`).
    pub secret: Secret,
    /// Scopes its own tokens may carry (default: `jose`, what the KMS needs to call JOSE).
    #[serde(default = "jose_scope")]
    pub scopes: Vec<String>,
}

fn jose_scope() -> Vec<String> {
    vec!["jose".into()]
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            pepper: Secret::default(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(24 * 3600),
            session_ttl: Duration::from_secs(8 * 3600),
            login_url: String::new(),
            mtls_ca: String::new(),
            trust_local_issuer: true,
            federation_clients: Vec::new(),
            webauthn: WebauthnConfig::default(),
            smtp: SmtpConfig::default(),
            certificate_ca: String::new(),
            certificate_email_login: false,
            certificate_crls: Vec::new(),
            outbox: String::new(),
            resource_uris: std::collections::BTreeMap::new(),
            backchannel_allowed_hosts: Vec::new(),
            reference_clients: Vec::new(),
            reference: ReferenceAppsConfig::default(),
        }
    }
}

/// `log:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `cryptoutil_http=debug,info`).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// `tls:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Dynamic or static certificates.
    pub mode: TlsMode,
    /// DNS SANs of every leaf (besides the service name and 127.0.0.1).
    pub hostnames: Vec<String>,
    /// Static mode: PEM chain, leaf first.
    pub cert_chain: String,
    /// Static mode: PEM private key.
    pub private_key: Secret,
    /// PEM CA certificates outbound clients trust besides our own anchor.
    pub extra_trusted_cas: Vec<String>,
    /// Dynamic mode: how long a leaf lives (renewed two thirds into it, while running).
    #[serde(with = "human_duration")]
    pub leaf_lifetime: std::time::Duration,
}

/// The bounds of `tls.leaf_lifetime`: at most Mozilla's "modern" 366 days; at least 30 s (for
/// tests of the renewal).
pub const LEAF_LIFETIME_BOUNDS: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(30),
    std::time::Duration::from_secs(366 * 86_400),
);

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::Dynamic,
            hostnames: vec!["localhost".into()],
            cert_chain: String::new(),
            private_key: Secret::default(),
            extra_trusted_cas: Vec::new(),
            leaf_lifetime: cryptoutil_protocols::pki::LEAF_LIFETIME,
        }
    }
}

/// Where listener certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// A private CA generated on first start and persisted through the barrier.
    Dynamic,
    /// PEM files supplied by the operator.
    Static,
}

/// `services:`: one entry per service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesConfig {
    /// kms.
    pub kms: ServiceConfig,
    /// jose.
    pub jose: ServiceConfig,
    /// ca.
    pub ca: ServiceConfig,
    /// identity-authz.
    pub identity_authz: ServiceConfig,
    /// identity-idp.
    pub identity_idp: ServiceConfig,
    /// identity-rs.
    pub identity_rs: ServiceConfig,
    /// identity-rp.
    pub identity_rp: ServiceConfig,
    /// identity-spa.
    pub identity_spa: ServiceConfig,
}

impl ServicesConfig {
    /// The entry of `service`, to change.
    pub fn of_mut(&mut self, service: ServiceName) -> &mut ServiceConfig {
        match service {
            ServiceName::Kms => &mut self.kms,
            ServiceName::Jose => &mut self.jose,
            ServiceName::Ca => &mut self.ca,
            ServiceName::IdentityAuthz => &mut self.identity_authz,
            ServiceName::IdentityIdp => &mut self.identity_idp,
            ServiceName::IdentityRs => &mut self.identity_rs,
            ServiceName::IdentityRp => &mut self.identity_rp,
            ServiceName::IdentitySpa => &mut self.identity_spa,
        }
    }

    /// One service's listeners.
    pub fn of(&self, service: ServiceName) -> &ServiceConfig {
        match service {
            ServiceName::Kms => &self.kms,
            ServiceName::Jose => &self.jose,
            ServiceName::Ca => &self.ca,
            ServiceName::IdentityAuthz => &self.identity_authz,
            ServiceName::IdentityIdp => &self.identity_idp,
            ServiceName::IdentityRs => &self.identity_rs,
            ServiceName::IdentityRp => &self.identity_rp,
            ServiceName::IdentitySpa => &self.identity_spa,
        }
    }
}

/// One service's listeners.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Public listener.
    pub public: ListenConfig,
    /// Admin listener (always 127.0.0.1).
    pub admin: AdminListenConfig,
    /// Metrics-only listener (off unless enabled).
    pub metrics: MetricsListenConfig,
    /// The CA's plain-HTTP distribution listener (off unless enabled; `ca` only).
    pub distribution: DistributionListenConfig,
}

impl AppConfig {
    /// Checks that go beyond types: each is reported with the key it concerns.
    pub(crate) fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.tls.mode == TlsMode::Static {
            if self.tls.cert_chain.trim().is_empty() {
                problems.push((
                    "tls.cert_chain".into(),
                    "static TLS needs a PEM certificate chain".into(),
                ));
            }
            if self.tls.private_key.expose().trim().is_empty() {
                problems.push((
                    "tls.private_key".into(),
                    "static TLS needs a PEM private key".into(),
                ));
            }
        }
        if self.audit.max_bytes < 4096 {
            problems.push((
                "audit.max_bytes".into(),
                "at least 4096 (a segment holds at least a few records)".into(),
            ));
        }
        let (least, most) = LEAF_LIFETIME_BOUNDS;
        if self.tls.leaf_lifetime < least || self.tls.leaf_lifetime > most {
            problems.push(("tls.leaf_lifetime".into(), "between 30s and 366d".into()));
        }
        for (i, host) in self.tls.hostnames.iter().enumerate() {
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                problems.push((
                    format!("tls.hostnames[{i}]"),
                    format!("{host:?} is not a DNS name"),
                ));
            }
        }
        for (i, path) in self.barrier.unseal.shares.iter().enumerate() {
            if !path.is_file() {
                problems.push((
                    format!("barrier.unseal.shares[{i}]"),
                    format!("share file {} does not exist", path.display()),
                ));
            }
        }
        if self.storage.backend == StorageBackend::Postgres {
            let pg = &self.storage.postgres;
            if pg.url.expose().trim().is_empty() {
                problems.push((
                    "storage.postgres.url".into(),
                    "backend postgres needs the database's URL (usually file://)".into(),
                ));
            }
            if pg.trust_anchors.trim().is_empty() {
                problems.push((
                    "storage.postgres.trust_anchors".into(),
                    "backend postgres needs the PEM CA certificates its server's certificate \
                     chains to"
                        .into(),
                ));
            }
            if pg.client_cert_chain.trim().is_empty() != pg.client_key.expose().trim().is_empty() {
                problems.push((
                    "storage.postgres.client_key".into(),
                    "client_cert_chain and client_key go together".into(),
                ));
            }
            if !(1..=256).contains(&pg.pool_size) {
                problems.push(("storage.postgres.pool_size".into(), "1 to 256".into()));
            }
            for (key, value) in [
                ("storage.postgres.connect_timeout", pg.connect_timeout),
                ("storage.postgres.statement_timeout", pg.statement_timeout),
            ] {
                if value < Duration::from_millis(100) || value > Duration::from_secs(600) {
                    problems.push((key.into(), "between 100ms and 10m".into()));
                }
            }
        }
        for (key, lifetime) in [
            ("ca.crl_lifetime", self.ca.crl_lifetime),
            ("ca.ocsp_lifetime", self.ca.ocsp_lifetime),
        ] {
            if lifetime < Duration::from_secs(120) {
                problems.push((key.into(), "at least 2m (renewed at half of it)".into()));
            }
        }
        if cryptoutil_protocols::ca::tsa::oid_der(&self.ca.tsa_policy).is_none() {
            problems.push((
                "ca.tsa_policy".into(),
                "a dotted OID (e.g. 1.3.6.1.4.1.<your PEN>.1)".into(),
            ));
        }
        for (name, uri) in &self.identity.resource_uris {
            if ServiceName::parse(name).is_none() {
                problems.push((
                    format!("identity.resource_uris.{name}"),
                    "not a service name (kms, jose, ca, identity-authz, identity-rs, ...)".into(),
                ));
            }
            let host = uri.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || uri.contains(['?', '#']) || uri.chars().any(char::is_whitespace) {
                problems.push((
                    format!("identity.resource_uris.{name}"),
                    "an https URL without query or fragment".into(),
                ));
            }
        }
        for service in ServiceName::ALL {
            if service != ServiceName::Ca && self.services.of(service).distribution.enabled {
                problems.push((
                    format!(
                        "services.{}.distribution.enabled",
                        service.as_str().replace('-', "_")
                    ),
                    "only the ca service has a distribution listener".into(),
                ));
            }
        }
        let base = &self.ca.distribution_base_url;
        if !(base.is_empty() || base.starts_with("https://") || base.starts_with("http://")) {
            problems.push((
                "ca.distribution_base_url".into(),
                "an http:// or https:// URL".into(),
            ));
        }
        if let Err(message) = self.admin.validate() {
            problems.push(("admin.token".into(), message));
        }
        for (key, value) in [
            (
                "http.connections.idle_timeout",
                self.http.connections.idle_timeout,
            ),
            (
                "http.connections.body_read_timeout",
                self.http.connections.body_read_timeout,
            ),
        ] {
            if value.is_zero() {
                problems.push((key.into(), "must be greater than 0".into()));
            }
        }
        if self.supervision.ask_timeout.is_zero() {
            problems.push((
                "supervision.ask_timeout".into(),
                "must be greater than 0".into(),
            ));
        }
        problems.extend(federation::validate(
            &self.federation,
            &self.federation_fallback,
        ));
        let mut ports: Vec<(u16, String)> = Vec::new();
        for service in ServiceName::ALL {
            let s = self.services.of(service);
            let key = service.config_key();
            let metrics_port = if s.metrics.enabled { s.metrics.port } else { 0 };
            for (port, which) in [
                (s.public.port, "public.port"),
                (s.admin.port, "admin.port"),
                (metrics_port, "metrics.port"),
            ] {
                if port == 0 {
                    continue;
                }
                let k = format!("services.{key}.{which}");
                if let Some((_, other)) = ports.iter().find(|(p, _)| *p == port) {
                    problems.push((k.clone(), format!("port {port} is also used by {other}")));
                }
                ports.push((port, k));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests;
