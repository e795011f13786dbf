//! Starting and stopping services: unseal, certificates, stores, the supervision tree, two TLS
//! listeners per service, `endpoints.json`; then drain on shutdown.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cryptoutil_actors::identity::authz::admin::{
    AdminAnswer, AdminOp, BrowserClient, Caller, ResourceServer, OPERATOR_TENANT,
};
use cryptoutil_actors::identity::authz::AuthzConfig;
use cryptoutil_actors::issuer_jwks::RemoteIssuer;
use cryptoutil_actors::sessions::BrowserLogin;
use cryptoutil_actors::suite::{self, Suite, SuiteArgs};
use cryptoutil_actors::ServiceName;
use cryptoutil_http::auth::{Authenticator, DenyAll, IdentityValidation, JwtBearer};
use cryptoutil_http::config::{AuthConfig, TrustedIssuer};
use cryptoutil_http::listener::Listener;
use cryptoutil_http::state::{AdminState, App, AppState, Readiness};
use cryptoutil_protocols::unseal::UnsealKey;
use cryptoutil_storage::unseal::{self, UnsealSource};
use cryptoutil_storage::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::config::{AppConfig, StorageBackend};
use crate::{files, pki};

/// Gauge: 1 when aws-lc-rs runs its FIPS 140-3 module.
pub const FIPS_MODE: &str = "cryptoutil_fips_mode";
/// When the certificate each service presents ends (Unix seconds).
pub const CERT_NOT_AFTER: &str = "cryptoutil_tls_certificate_not_after_seconds";

/// What to start.
#[derive(Debug)]
pub struct Options {
    /// The services, in start order.
    pub services: Vec<ServiceName>,
    /// The loaded configuration.
    pub config: AppConfig,
    /// The unseal key when it was rebuilt from shares an operator submitted (a sealed start);
    /// `None`: from the configuration.
    pub unseal: Option<UnsealKey>,
}

/// The URLs of one service, as written to `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `https://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `https://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// `https://HOST:PORT` of the metrics-only listener, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// `http://HOST:PORT` of the CA's plain-HTTP distribution listener, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
}

/// A service's listeners, bound and not yet serving.
struct Bound {
    service: ServiceName,
    public: Listener,
    admin: Listener,
    metrics: Option<Listener>,
    /// The CA's plain-HTTP distribution listener, when enabled.
    distribution: Option<Listener>,
}

/// Path of `endpoints.json`.
pub fn endpoints_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("endpoints.json")
}

/// Running services.
pub struct Running {
    /// URLs per service.
    pub endpoints: BTreeMap<ServiceName, Endpoint>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// PEM the clients should trust.
    pub anchor_pem: String,
    /// Whether aws-lc-rs runs its FIPS module.
    pub fips: bool,
    shutdown: Arc<watch::Sender<bool>>,
    listeners: JoinSet<()>,
    suite: Suite,
    stores: Vec<Arc<Store>>,
    readiness: Readiness,
    grace: Duration,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every run in the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Peer call durations as a histogram (Prometheus can aggregate it across
            // instances), from 1 ms to the longest escalated timeout.
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full(cryptoutil_actors::metrics::FEDERATION_DURATION.into()),
                        &buckets,
                    )
                    .unwrap_or_else(|_| PrometheusBuilder::new())
            };
            let handle = builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle());
            cryptoutil_actors::metrics::describe();
            cryptoutil_http::metrics::describe();
            metrics::describe_gauge!(
                FIPS_MODE,
                "1 when aws-lc-rs runs its FIPS 140-3 validated module."
            );
            handle
        })
        .clone()
}

/// Starts `opts.services` and returns once every listener serves and `endpoints.json` is written.
pub async fn start(opts: Options) -> anyhow::Result<Running> {
    let cfg = opts.config;
    let fips = cryptoutil_protocols::fips::enabled();
    if cryptoutil_protocols::fips::COMPILED_FOR_FIPS && !fips {
        return Err(anyhow!(
            "built with the fips feature but aws-lc-rs is not in FIPS mode"
        ));
    }
    let metrics = metrics_handle();
    metrics::gauge!(FIPS_MODE).set(if fips { 1.0 } else { 0.0 });

    let data_dir = cfg.data_dir.clone();
    unseal::create_private_dir(&data_dir)?;
    let _ = std::fs::remove_file(endpoints_path(&data_dir)); // never leave stale ports for tools

    let (mut tls, stores) = {
        let (cfg, services, key) = (cfg.clone(), opts.services.clone(), opts.unseal);
        tokio::task::spawn_blocking(move || open_everything(&cfg, &services, key))
            .await
            .context("startup task")??
    };

    // Bind every listener first: identity-authz's URL is the issuer the others trust.
    let mut bound = Vec::with_capacity(opts.services.len());
    let mut endpoints = BTreeMap::new();
    for service in &opts.services {
        let service_cfg = cfg.services.of(*service);
        let server_tls = tls
            .servers
            .get(service)
            .cloned()
            .ok_or_else(|| anyhow!("no TLS configuration for {service}"))?;
        let public_addr = SocketAddr::new(service_cfg.public.bind_address, service_cfg.public.port);
        let admin_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), service_cfg.admin.port);
        let public = Listener::bind(public_addr, Arc::clone(&server_tls))
            .await
            .with_context(|| format!("binding the {service} public listener on {public_addr}"))?;
        let admin = Listener::bind(admin_addr, Arc::clone(&server_tls))
            .await
            .with_context(|| format!("binding the {service} admin listener on {admin_addr}"))?;
        let metrics_listener = if service_cfg.metrics.enabled {
            let addr = SocketAddr::new(service_cfg.metrics.bind_address, service_cfg.metrics.port);
            Some(
                Listener::bind(addr, server_tls)
                    .await
                    .with_context(|| format!("binding the {service} metrics listener on {addr}"))?,
            )
        } else {
            None
        };
        let distribution = if service_cfg.distribution.enabled && *service == ServiceName::Ca {
            let dist = &service_cfg.distribution;
            let addr = SocketAddr::new(dist.bind_address, dist.port);
            Some(Listener::bind_plain(addr).await.with_context(|| {
                format!("binding the {service} distribution listener on {addr}")
            })?)
        } else {
            None
        };
        endpoints.insert(
            *service,
            Endpoint {
                public: url(public.local_addr()),
                admin: url(admin.local_addr()),
                metrics: metrics_listener.as_ref().map(|l| url(l.local_addr())),
                distribution: distribution
                    .as_ref()
                    .map(|l| url(l.local_addr()).replacen("https://", "http://", 1)),
            },
        );
        bound.push(Bound {
            service: *service,
            public,
            admin,
            metrics: metrics_listener,
            distribution,
        });
    }

    let (authz, mut auth_cfg) = identity_setup(&cfg, &endpoints, &tls.anchor_pem)?;
    crate::federation::trust_identity(&cfg.federation, &mut auth_cfg);
    let browser = browser_logins(authz.as_ref(), &endpoints, &tls.anchor_pem)?;
    let reference_cfg = &cfg.identity.reference;
    let (rp, spa) = match crate::reference::Reference::of(
        reference_cfg,
        authz.as_ref(),
        |service| endpoints.get(&service).map(|e| e.public.clone()),
        resource_uri(&cfg, ServiceName::IdentityRs),
    ) {
        Some(reference) => {
            // Their URLs as browsers see them: configured, else as bound.
            let public = |service: ServiceName, configured: &str| {
                endpoints.get(&service).map(|e| match configured {
                    "" => e.public.clone(),
                    url => url.to_owned(),
                })
            };
            (
                match public(ServiceName::IdentityRp, &reference_cfg.rp_url) {
                    Some(url) => Some(reference.rp(
                        &url,
                        reference_cfg.rp_key.expose(),
                        &trusted_roots(&cfg, &tls.anchor_pem),
                    )?),
                    None => None,
                },
                public(ServiceName::IdentitySpa, &reference_cfg.spa_url)
                    .map(|url| reference.spa(&url)),
            )
        }
        None => (None, None),
    };
    let mut settings = cryptoutil_actors::product::HandlesBuilder::default();
    if let Some(rp) = &rp {
        settings.insert(rp.clone());
    }
    if let Some(spa) = &spa {
        settings.insert(spa.clone());
    }
    // The single-page app's page calls identity-authz's token endpoint and identity-rs from
    // its origin: those two (only) allow it by CORS.
    let mut spa_cors = cfg.http.clone();
    if let Some(origin) = spa
        .as_ref()
        .and_then(|s| cryptoutil_actors::identity::spa::origin(&s.redirect_uri))
    {
        spa_cors.service.cors_allowed_origins.push(origin);
    }
    if let Some(authz) = authz {
        settings.insert(authz);
    }
    settings.insert(cryptoutil_actors::identity::idp::IdpConfig {
        session_ttl: cfg.identity.session_ttl,
        webauthn: webauthn_rp(&cfg.identity, &endpoints)?,
        mail: mail_settings(
            &cfg.identity,
            &cfg.data_dir,
            endpoints.contains_key(&ServiceName::IdentityIdp),
        )?,
        certificates: match cfg.identity.certificate_ca.trim() {
            "" if !cfg.identity.certificate_crls.is_empty() => {
                return Err(anyhow!(
                    "invalid configuration: `identity.certificate_crls` needs \
                     `identity.certificate_ca` (the certificates they revoke)"
                ))
            }
            "" => None,
            pem => {
                let roots = cryptoutil_protocols::tls::roots_from_pem(pem).map_err(|e| {
                    anyhow!("invalid configuration: `identity.certificate_ca`: {e}")
                })?;
                let revocation = match cfg.identity.certificate_crls.as_slice() {
                    [] => None,
                    paths => Some(
                        cryptoutil_actors::identity::idp::RevocationLists::new(
                            paths.iter().map(PathBuf::from).collect(),
                            &roots,
                        )
                        .map_err(|e| {
                            anyhow!("invalid configuration: `identity.certificate_crls`: {e}")
                        })?,
                    ),
                };
                Some(cryptoutil_actors::identity::idp::CertificateSignIn {
                    roots,
                    email_login: cfg.identity.certificate_email_login,
                    revocation,
                })
            }
        },
    });
    settings.insert(cryptoutil_actors::identity::rs::RsSettings {
        authorization_servers: auth_cfg
            .trusted_issuers
            .iter()
            .map(|t| t.issuer.clone())
            .collect(),
        resource: resource_uri(&cfg, ServiceName::IdentityRs),
    });
    settings.insert(cryptoutil_actors::ca::CaSettings {
        distribution_base_url: Some(if cfg.ca.distribution_base_url.is_empty() {
            endpoints
                .get(&ServiceName::Ca)
                .map(|e| e.distribution.clone().unwrap_or_else(|| e.public.clone()))
                .unwrap_or_default()
        } else {
            cfg.ca.distribution_base_url.clone()
        })
        .filter(|u| !u.is_empty()),
        crl_lifetime: cfg.ca.crl_lifetime,
        ocsp_lifetime: cfg.ca.ocsp_lifetime,
        tsa_policy: cfg.ca.tsa_policy.clone(),
        acme_http01_port: cfg.ca.acme.http01_port,
        acme_dns_resolver: crate::config::dns_resolver(&cfg.ca.acme.dns_resolver)?,
        scep_pkcs1v15_key_transport: cfg.ca.scep.allow_rsa_pkcs1v15_key_transport,
    });
    let args = SuiteArgs {
        issuers: remote_issuers(&auth_cfg, &tls.anchor_pem)?,
        settings: settings.build(),
        browser,
        peers: crate::federation::peers(&cfg.federation, &tls.anchor_pem)?,
        identity_issuer: cfg.federation.identity_issuer(),
        enrollment: crate::enroll::plan(&cfg, &tls.certs, &tls.own, tls.store.as_ref())?,
        audit: cfg.audit,
        audit_dir: Some(data_dir.clone()),
        shared_store: cfg.storage.backend == StorageBackend::Postgres,
    };
    let suite = suite::start(stores.clone(), &args, &cfg.supervision)
        .await
        .map_err(|e| anyhow!("starting actors: {e}"))?;
    bootstrap(&suite, &data_dir).await?;
    register_browser_clients(&suite, &args.browser).await?;
    register_federation_clients(&suite, &cfg.identity.federation_clients).await?;
    crate::reference::register(
        local_authz(&suite),
        rp.as_ref(),
        spa.as_ref(),
        &cfg.identity.reference_clients,
    )
    .await?;

    let shutdown = Arc::new(watch::channel(false).0);
    let readiness = Readiness::default();
    let mut listeners = JoinSet::new();
    let scrapers = cryptoutil_http::middleware::ip_allow::IpAllowlist::new(
        cfg.http.metrics.ip_allowlist.clone(),
    );
    for Bound {
        service,
        public,
        admin,
        metrics: metrics_listener,
        distribution,
    } in bound
    {
        let actors = suite
            .services
            .get(&service)
            .ok_or_else(|| anyhow!("no actors for {service}"))?;
        // Tokens must name this service in `aud`, so each service gets its own authenticator.
        let auth: Arc<dyn Authenticator> = if auth_cfg.trusted_issuers.is_empty() {
            Arc::new(DenyAll)
        } else {
            let mut bearer = JwtBearer::new(&auth_cfg, service.as_str(), &actors.issuer_jwks)
                .map_err(|e| anyhow!("invalid configuration: {e}"))?
                .with_sessions(actors.sessions.clone());
            // identity-authz validates its own tokens; every other service asks it.
            if let Some(identity) = &suite.federation.identity {
                if service != ServiceName::IdentityAuthz {
                    bearer = bearer.with_identity(IdentityValidation::new(
                        identity.clone(),
                        cfg.federation_fallback.identity_fallback_mode,
                        cfg.federation.identity_cache_ttl,
                        cfg.federation.retry.deadline,
                        actors.audit.clone(),
                    ));
                }
            }
            Arc::new(bearer)
        };
        let app = AppState::new(App {
            service,
            actors: actors.clone(),
            readiness: readiness.clone(),
            auth,
        });
        let admin_state = AdminState {
            app: app.clone(),
            root: suite.root.clone(),
            metrics: metrics.clone(),
            shutdown: Arc::clone(&shutdown),
            fips,
            fault_injection: cfg.admin.danger_fault_injection,
        };
        let (grace, limits) = (cfg.shutdown_grace_period, cfg.http.connections);
        if let Some(listener) = distribution {
            listeners.spawn(listener.serve(
                cryptoutil_http::ca::distribution_router(app.clone()),
                shutdown.subscribe(),
                grace,
                limits,
            ));
        }
        listeners.spawn(public.serve(
            cryptoutil_http::routes::router(
                app,
                match service {
                    ServiceName::IdentityAuthz | ServiceName::IdentityRs => &spa_cors,
                    _ => &cfg.http,
                },
            ),
            shutdown.subscribe(),
            grace,
            limits,
        ));
        if let Some(listener) = metrics_listener {
            listeners.spawn(listener.serve(
                cryptoutil_http::admin::metrics_router(admin_state.clone(), scrapers.clone()),
                shutdown.subscribe(),
                grace,
                limits,
            ));
        }
        listeners.spawn(admin.serve(
            cryptoutil_http::admin::router(
                admin_state,
                cryptoutil_http::admin::AdminGuard::new(cfg.admin.token.expose()),
            ),
            shutdown.subscribe(),
            grace,
            limits,
        ));
    }
    if let Some(renewal) = tls.renewal.take() {
        listeners.spawn(renewal.run(shutdown.subscribe()));
    }
    listeners.spawn(certificate_expiry(tls.certs.clone(), shutdown.subscribe()));
    for peer in suite.federation.peers() {
        tracing::info!(
            peer = peer.name().as_str(),
            url = peer.base(),
            "federated peer"
        );
    }
    if cfg.federation_fallback.identity_fallback_mode
        == cryptoutil_actors::federation::IdentityFallback::AllowAll
        && cfg.federation.identity_enabled
    {
        tracing::error!(
            "DEVELOPMENT ONLY: identity_fallback_mode is allow_all: while identity-authz is \
             unavailable, tokens are accepted WITHOUT verification"
        );
    }
    if cfg.admin.token.expose().is_empty() {
        tracing::warn!(
            "admin.token is not set: any local process can use the admin listeners (shutdown, \
             audit records, metrics); set one for anything but development"
        );
    }
    if cfg.admin.danger_fault_injection {
        tracing::warn!(
            "admin.danger_fault_injection is on: POST /admin/v1/faults/crash can crash actors"
        );
    }

    readiness.set_ready();
    for service in endpoints.keys() {
        cryptoutil_http::metrics::service_ready(service.as_str(), true);
    }
    let json = serde_json::to_vec_pretty(
        &endpoints
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect::<BTreeMap<_, _>>(),
    )?;
    files::write_atomic(&endpoints_path(&data_dir), &json, 0o644)?;
    for (service, e) in &endpoints {
        tracing::info!(%service, public = %e.public, admin = %e.admin, "ready");
    }
    tracing::info!(
        endpoints = %endpoints_path(&data_dir).display(),
        trust_anchor = %pki::anchor_path(&data_dir).display(),
        fips,
        "all services ready"
    );
    Ok(Running {
        endpoints,
        data_dir,
        anchor_pem: tls.anchor_pem,
        fips,
        shutdown,
        listeners,
        suite,
        stores: stores
            .into_iter()
            .map(|(_, s)| s)
            .chain(tls.store.clone())
            .collect(),
        readiness,
        grace: cfg.shutdown_grace_period,
    })
}

/// Publishes when each service's presented certificate ends ([`CERT_NOT_AFTER`]), at start and
/// every minute (renewals and certificates from the CA replace it), until shutdown.
async fn certificate_expiry(
    certs: BTreeMap<ServiceName, Arc<cryptoutil_http::tls::ServerCert>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        for (service, cert) in &certs {
            let not_after = cert
                .leaf()
                .and_then(|leaf| cryptoutil_protocols::pki::validity(leaf.as_ref()).ok());
            if let Some((_, not_after)) = not_after {
                #[allow(clippy::cast_precision_loss)] // seconds until the year 2^53
                metrics::gauge!(CERT_NOT_AFTER, "service" => service.as_str())
                    .set(not_after as f64);
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Each service's unsealed store.
type Stores = Vec<(ServiceName, Arc<Store>)>;

/// The trusted issuers whose keys are fetched from a `jwks_uri`, in configuration order, each
/// with a TLS 1.3 client trusting its `jwks_ca` or, by default, this process's own anchor.
fn remote_issuers(auth: &AuthConfig, own_anchor: &str) -> anyhow::Result<Vec<RemoteIssuer>> {
    let refresh = &auth.jwks_refresh;
    let mut out = Vec::new();
    for (i, t) in auth.trusted_issuers.iter().enumerate() {
        let Some(url) = &t.jwks_uri else { continue };
        let bad =
            |what: String| anyhow!("invalid configuration: `auth.trusted_issuers[{i}].{what}");
        cryptoutil_federation::client::HttpsUrl::parse(url)
            .map_err(|e| bad(format!("jwks_uri`: {e}")))?;
        let anchors = t.jwks_ca.as_deref().unwrap_or(own_anchor);
        let tls = cryptoutil_federation::tls::client_config_from_pem(anchors.as_bytes())
            .map_err(|e| bad(format!("jwks_ca`: {e}")))?;
        out.push(RemoteIssuer {
            issuer: t.issuer.clone(),
            url: url.clone(),
            client: cryptoutil_federation::HttpsClient::new(tls),
            min_refresh_interval: refresh.min_interval,
            max_age: refresh.max_age,
            fetch_timeout: refresh.timeout,
        });
    }
    Ok(out)
}

/// identity-authz's settings when it runs in this process, and the token issuers the services
/// trust: the configured ones plus, unless `identity.trust_local_issuer` is off or it is already
/// listed, identity-authz itself (its JWK Set fetched over TLS like any issuer's).
/// The TLS anchors this process trusts for its own calls: its anchor and
/// `tls.extra_trusted_cas`, as one PEM bundle.
fn trusted_roots(cfg: &AppConfig, anchor_pem: &str) -> String {
    std::iter::once(anchor_pem)
        .chain(cfg.tls.extra_trusted_cas.iter().map(String::as_str))
        .map(|pem| format!("{}\n", pem.trim_end()))
        .collect()
}

/// `service`'s configured resource URI (`identity.resource_uris`), without a trailing slash.
fn resource_uri(cfg: &AppConfig, service: ServiceName) -> Option<String> {
    cfg.identity
        .resource_uris
        .get(service.as_str())
        .map(|u| u.trim_end_matches('/').to_owned())
}

fn identity_setup(
    cfg: &AppConfig,
    endpoints: &BTreeMap<ServiceName, Endpoint>,
    anchor_pem: &str,
) -> anyhow::Result<(Option<AuthzConfig>, AuthConfig)> {
    let mut auth = cfg.auth.clone();
    let Some(local) = endpoints.get(&ServiceName::IdentityAuthz) else {
        return Ok((None, auth));
    };
    let issuer = match cfg.identity.issuer.trim_end_matches('/') {
        "" => local.public.clone(),
        configured => configured.to_owned(),
    };
    let pepper = match cfg.identity.pepper.expose() {
        "" => None,
        p if p.trim().len() < 32 => {
            return Err(anyhow!(
                "invalid configuration: `identity.pepper`: at least 32 bytes are required"
            ))
        }
        p => Some(Zeroizing::new(p.trim().as_bytes().to_vec())),
    };
    // Every service is an audience; its resource URI is the configured one, else (in this
    // process) its public URL.
    let resources = ServiceName::ALL
        .iter()
        .map(|s| {
            let uri = resource_uri(cfg, *s).unwrap_or_else(|| {
                endpoints
                    .get(s)
                    .map_or_else(|| format!("urn:cryptoutil:{s}"), |e| e.public.clone())
            });
            (s.as_str().to_owned(), uri)
        })
        .collect();
    if cfg.identity.trust_local_issuer && !auth.trusted_issuers.iter().any(|t| t.issuer == issuer) {
        auth.trusted_issuers.push(TrustedIssuer {
            issuer: issuer.clone(),
            jwks: None,
            jwks_uri: Some(format!(
                "{}{}",
                local.public,
                cryptoutil_http::identity::authz::oauth::JWKS
            )),
            jwks_ca: None,
            require_low_s: true,
        });
    }
    let login_url = match cfg.identity.login_url.as_str() {
        "" => endpoints
            .get(&ServiceName::IdentityIdp)
            .map(|e| format!("{}{}", e.public, cryptoutil_http::identity::idp::LOGIN)),
        url => {
            cryptoutil_federation::client::HttpsUrl::parse(url)
                .map_err(|e| anyhow!("invalid configuration: `identity.login_url`: {e}"))?;
            Some(url.to_owned())
        }
    };
    let mtls_roots = match cfg.identity.mtls_ca.trim() {
        "" => None,
        pem => Some(
            cryptoutil_protocols::tls::roots_from_pem(pem)
                .map_err(|e| anyhow!("invalid configuration: `identity.mtls_ca`: {e}"))?,
        ),
    };
    // Logout tokens go to clients over TLS 1.3, trusting what the deployment trusts: its
    // anchor and `tls.extra_trusted_cas`.
    let roots = trusted_roots(cfg, anchor_pem);
    // This process's own identity-rp is allowed although it listens on loopback.
    let mut allowed_hosts = cfg.identity.backchannel_allowed_hosts.clone();
    allowed_hosts.extend(crate::reference::rp_backchannel_host(
        endpoints
            .get(&ServiceName::IdentityRp)
            .map(|e| e.public.as_str()),
    ));
    let backchannel = cryptoutil_federation::tls::client_config_from_pem(roots.as_bytes())
        .map(
            |tls| cryptoutil_actors::identity::authz::backchannel::Sender {
                client: cryptoutil_federation::HttpsClient::new(tls),
                allowed_hosts,
            },
        )
        .map_err(|e| anyhow!("back-channel logout client: {e}"))?;
    let authz = AuthzConfig {
        issuer,
        mtls_roots,
        access_token_ttl: cfg.identity.access_token_ttl,
        pepper,
        resources,
        login_url,
        refresh_token_ttl: cfg.identity.refresh_token_ttl,
        backchannel: Some(backchannel),
    };
    Ok((Some(authz), auth))
}

/// Where identity-idp's mail goes: `identity.smtp`'s relay, or the outbox.
fn mail_settings(
    identity: &crate::config::IdentityConfig,
    data_dir: &std::path::Path,
    idp_here: bool,
) -> anyhow::Result<cryptoutil_actors::identity::idp::MailSettings> {
    use cryptoutil_actors::identity::idp::mail::{Mailer, Smtp, SmtpTls};
    let smtp = &identity.smtp;
    let from = cryptoutil_protocols::mail::address(&smtp.from)
        .map_err(|e| anyhow!("invalid configuration: `identity.smtp.from`: {e}"))?;
    let host = smtp.host.trim();
    let mailer = if host.is_empty() {
        let dir = match identity.outbox.trim() {
            "" => data_dir.join("outbox"),
            dir => PathBuf::from(dir),
        };
        if idp_here {
            tracing::warn!(
            outbox = %dir.display(),
            "no identity.smtp.host: magic links are written to the outbox (development only: \
             anyone who reads it signs in as the link's user)"
            );
        }
        Mailer::Outbox(dir)
    } else {
        if smtp.ca.trim().is_empty() {
            return Err(anyhow!(
                "invalid configuration: `identity.smtp.ca`: the relay's trust anchors (PEM, \
                 usually file://) are required with `identity.smtp.host`"
            ));
        }
        let tls_config = cryptoutil_federation::tls::client_config_from_pem(smtp.ca.as_bytes())
            .map_err(|e| anyhow!("invalid configuration: `identity.smtp.ca`: {e}"))?;
        let credentials = match (smtp.username.trim(), smtp.password.expose()) {
            ("", "") => None,
            (user, password) if !user.is_empty() && !password.is_empty() => Some((
                user.to_owned(),
                zeroize::Zeroizing::new(password.to_owned()),
            )),
            _ => {
                return Err(anyhow!(
                    "invalid configuration: `identity.smtp.username` and `identity.smtp.password` \
                     go together"
                ))
            }
        };
        Mailer::Smtp(std::sync::Arc::new(Smtp {
            host: host.to_owned(),
            port: smtp.port,
            tls: match smtp.tls {
                crate::config::SmtpTlsMode::Starttls => SmtpTls::StartTls,
                crate::config::SmtpTlsMode::Implicit => SmtpTls::Implicit,
            },
            tls_config,
            credentials,
            helo: "cryptoutil.invalid".into(),
            timeout: smtp.timeout,
        }))
    };
    Ok(cryptoutil_actors::identity::idp::MailSettings { mailer, from })
}

/// identity-idp as a WebAuthn relying party: `identity.webauthn`, its empty fields filled from
/// `identity.login_url` (when its host is a name) or `localhost` with identity-idp's public port
/// (an IP address cannot be an RP ID).
fn webauthn_rp(
    identity: &crate::config::IdentityConfig,
    endpoints: &BTreeMap<ServiceName, Endpoint>,
) -> anyhow::Result<cryptoutil_actors::identity::idp::WebauthnRp> {
    use cryptoutil_federation::client::HttpsUrl;
    let cfg = &identity.webauthn;
    let is_name = |h: &str| h.parse::<IpAddr>().is_err() && !h.is_empty();
    let login = match identity.login_url.as_str() {
        "" => None,
        url => Some(
            HttpsUrl::parse(url)
                .map_err(|e| anyhow!("invalid configuration: `identity.login_url`: {e}"))?,
        ),
    }
    .filter(|u| is_name(&u.host));
    let rp_id = match cfg.rp_id.trim() {
        "" => login
            .as_ref()
            .map_or_else(|| "localhost".to_owned(), |u| u.host.to_ascii_lowercase()),
        id if is_name(id) && !id.contains(['/', ':']) && !id.ends_with('.') => {
            id.to_ascii_lowercase()
        }
        id => anyhow::bail!(
            "invalid configuration: `identity.webauthn.rp_id`: {id:?} is not a domain name"
        ),
    };
    let origin = |host: &str, port: u16| match port {
        443 => format!("https://{host}"),
        p => format!("https://{host}:{p}"),
    };
    let on_rp = |host: &str| host == rp_id || host.ends_with(&format!(".{rp_id}"));
    let mut origins = Vec::new();
    for (i, o) in cfg.origins.iter().enumerate() {
        let u = HttpsUrl::parse(o)
            .map_err(|e| anyhow!("invalid configuration: `identity.webauthn.origins[{i}]`: {e}"))?;
        let host = u.host.to_ascii_lowercase();
        if !on_rp(&host) || u.path.len() > 1 {
            anyhow::bail!(
                "invalid configuration: `identity.webauthn.origins[{i}]`: {o:?} is not an \
                 origin on the RP ID {rp_id:?}"
            );
        }
        origins.push(origin(&host, u.port));
    }
    if origins.is_empty() {
        if let Some(u) = login.as_ref() {
            let host = u.host.to_ascii_lowercase();
            if !on_rp(&host) {
                anyhow::bail!(
                    "invalid configuration: `identity.login_url` is not on the WebAuthn RP ID \
                     {rp_id:?}: set `identity.webauthn.origins`"
                );
            }
            origins.push(origin(&host, u.port));
        } else if let Some(e) = endpoints.get(&ServiceName::IdentityIdp) {
            let port = HttpsUrl::parse(&e.public).map(|u| u.port).unwrap_or(443);
            origins.push(origin(&rp_id, port));
        }
    }
    Ok(cryptoutil_actors::identity::idp::WebauthnRp {
        rp_id,
        rp_name: cfg.rp_name.clone(),
        origins,
    })
}

/// How each service signs browsers in, when identity-authz and identity-idp run in this process:
/// as a confidential code-flow client `browser-<service>` whose secret is drawn now and lives
/// in memory only (registered again on every start). Without them: no browser sign-in.
fn browser_logins(
    authz: Option<&AuthzConfig>,
    endpoints: &BTreeMap<ServiceName, Endpoint>,
    anchor: &str,
) -> anyhow::Result<BTreeMap<ServiceName, BrowserLogin>> {
    let mut out = BTreeMap::new();
    let (Some(authz), Some(local)) = (authz, endpoints.get(&ServiceName::IdentityAuthz)) else {
        return Ok(out);
    };
    if authz.login_url.is_none() {
        return Ok(out);
    }
    let tls = cryptoutil_federation::tls::client_config_from_pem(anchor.as_bytes())
        .map_err(|e| anyhow!("browser sign-in trust anchor: {e}"))?;
    let client = cryptoutil_federation::HttpsClient::new(tls);
    for (service, e) in endpoints {
        let secret =
            cryptoutil_protocols::oauth::random_token(32).map_err(|e| anyhow!("random: {e}"))?;
        let scope = match service.api_scope() {
            // The CA's pages serve the RA too (enrollment secrets, decisions).
            Some(s @ cryptoutil_actors::Scope::Ca) => {
                format!("openid {s} {}", cryptoutil_actors::Scope::CaRa)
            }
            Some(s) => format!("openid {s}"),
            None => "openid".to_owned(),
        };
        out.insert(
            *service,
            BrowserLogin {
                issuer: authz.issuer.clone(),
                authorize_url: format!(
                    "{}{}",
                    local.public,
                    cryptoutil_http::identity::authz::oauth::AUTHORIZE
                ),
                token_url: format!(
                    "{}{}",
                    local.public,
                    cryptoutil_http::identity::authz::oauth::TOKEN
                ),
                logout_url: format!(
                    "{}{}",
                    local.public,
                    cryptoutil_http::identity::authz::oauth::LOGOUT
                ),
                client_id: format!("browser-{service}"),
                client_secret: secret,
                redirect_uri: format!("{}{}", e.public, cryptoutil_http::browser::CALLBACK),
                post_logout_uri: format!("{}/browser/", e.public),
                scope,
                client: client.clone(),
            },
        );
    }
    Ok(out)
}

/// identity-authz's actor, when it runs in this process.
pub(crate) fn local_authz(
    suite: &Suite,
) -> Option<&cryptoutil_actors::identity::authz::AuthzHandle> {
    suite
        .services
        .get(&ServiceName::IdentityAuthz)
        .and_then(|a| a.get::<cryptoutil_actors::identity::authz::AuthzHandle>())
}

/// Registers every service's browser client (with this start's secret and URLs).
async fn register_browser_clients(
    suite: &Suite,
    logins: &BTreeMap<ServiceName, BrowserLogin>,
) -> anyhow::Result<()> {
    let Some(authz) = local_authz(suite) else {
        return Ok(());
    };
    let caller = Caller {
        who: "identity-authz".to_owned(),
        tenant: OPERATOR_TENANT.to_owned(),
        scopes: Vec::new(),
    };
    for (service, login) in logins {
        let scopes = login.scope.split(' ').map(str::to_owned).collect();
        authz
            .admin(
                caller.clone(),
                AdminOp::BrowserClient(BrowserClient {
                    service: service.as_str().to_owned(),
                    secret: login.client_secret.clone(),
                    redirect_uri: login.redirect_uri.clone(),
                    post_logout_uri: login.post_logout_uri.clone(),
                    scopes,
                }),
            )
            .await
            .map_err(|e| anyhow!("registering the {service} browser client: {e}"))?;
    }
    Ok(())
}

/// Registers the configured federation clients (resource servers) with their secrets.
async fn register_federation_clients(
    suite: &Suite,
    clients: &[crate::config::FederationClient],
) -> anyhow::Result<()> {
    let Some(authz) = local_authz(suite) else {
        return Ok(());
    };
    let caller = Caller {
        who: "identity-authz".to_owned(),
        tenant: OPERATOR_TENANT.to_owned(),
        scopes: Vec::new(),
    };
    for (i, c) in clients.iter().enumerate() {
        authz
            .admin(
                caller.clone(),
                AdminOp::ResourceServer(ResourceServer {
                    client_id: c.client_id.clone(),
                    secret: Zeroizing::new(c.secret.expose().trim().to_owned()),
                    scopes: c.scopes.clone(),
                }),
            )
            .await
            .map_err(|e| {
                anyhow!("invalid configuration: `identity.federation_clients[{i}]`: {e}")
            })?;
    }
    // One the configuration no longer declares is removed: its secret gets nothing more.
    let AdminAnswer::Clients(registered) = authz
        .admin(caller.clone(), AdminOp::ListClients)
        .await
        .map_err(|e| anyhow!("listing the federation clients: {e}"))?
    else {
        return Ok(());
    };
    for gone in registered.iter().filter(|c| {
        c.resource_server
            && c.name == cryptoutil_actors::identity::authz::admin::CONFIGURED_CLIENT_NAME
            && !clients.iter().any(|d| d.client_id == c.client_id)
    }) {
        let id = cryptoutil_protocols::ids::ClientId::parse(&gone.client_id)
            .map_err(|e| anyhow!("federation client {}: {e}", gone.client_id))?;
        authz
            .admin(caller.clone(), AdminOp::DeleteClient(id))
            .await
            .map_err(|e| anyhow!("removing the federation client {}: {e}", gone.client_id))?;
        tracing::warn!(client = %gone.client_id, "a federation client no longer configured was removed");
    }
    Ok(())
}

/// Path of `bootstrap.json`.
pub fn bootstrap_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("bootstrap.json")
}

/// On identity-authz's first start: a tenant, a service client and an admin user, whose
/// credentials go to `<data-dir>/bootstrap.json` (0600), the only place they are ever shown.
async fn bootstrap(suite: &Suite, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let Some(authz) = local_authz(suite) else {
        return Ok(());
    };
    let Some(creds) = authz
        .bootstrap()
        .await
        .map_err(|e| anyhow!("identity bootstrap: {e}"))?
    else {
        return Ok(());
    };
    let json = Zeroizing::new(serde_json::to_vec_pretty(&serde_json::json!({
        "tenant": creds.tenant,
        "service_client": {
            "client_id": creds.client_id,
            "client_secret": creds.client_secret.as_str(),
        },
        "admin_user": {
            "username": creds.username,
            "password": creds.password.as_str(),
        },
    }))?);
    let path = bootstrap_path(data_dir);
    files::write_atomic(&path, &json, 0o600)?;
    tracing::warn!(
        file = %path.display(),
        "identity bootstrapped: a tenant, a service client and an admin user; their credentials \
         are in this file (0600) and nowhere else: move them to a secret store and delete it"
    );
    Ok(())
}

/// Blocking part of startup: unseal, certificates, stores.
fn open_everything(
    cfg: &AppConfig,
    services: &[ServiceName],
    submitted: Option<UnsealKey>,
) -> anyhow::Result<(pki::TlsSetup, Stores)> {
    let (key, source) = match submitted {
        Some(key) => (key, UnsealSource::Submitted),
        None => unseal::load_key(&cfg.barrier.unseal, &cfg.data_dir)?,
    };
    match source {
        UnsealSource::Submitted => {
            tracing::info!("barrier unsealed from shares an operator submitted")
        }
        UnsealSource::Development { path, created } => tracing::warn!(
            share = %path.display(),
            created,
            "DEVELOPMENT SETUP: the unseal key is one share kept in the data directory; anyone who can \
             read that directory can decrypt every store. Configure barrier.unseal.shares for production."
        ),
        UnsealSource::Shares { count, threshold } => {
            tracing::info!(count, threshold, "barrier unsealed from share files")
        }
    }
    let tls = pki::provision(cfg, services, &key)?;
    let mut stores = Vec::with_capacity(services.len());
    for &service in services {
        let store = open_store(cfg, service, &key)
            .with_context(|| format!("opening the {service} store"))?;
        stores.push((service, Arc::new(store)));
    }
    Ok((tls, stores))
}

/// Where a service's store lives.
pub enum StoreAt {
    /// A redb file of the data directory.
    File(std::path::PathBuf),
    /// A schema of the PostgreSQL database.
    Postgres {
        /// The connection options.
        options: cryptoutil_storage::PgOptions,
        /// The service's schema.
        schema: String,
    },
}

/// Where `service`'s store lives under `cfg.storage` (the dynamic PKI's store stays a file of
/// each process: it holds that process's own listener keys).
pub fn store_at(cfg: &AppConfig, service: ServiceName) -> StoreAt {
    match cfg.storage.backend {
        StorageBackend::Redb => StoreAt::File(cfg.data_dir.join(format!("{service}.redb"))),
        StorageBackend::Postgres => StoreAt::Postgres {
            options: cfg.storage.postgres.options(),
            schema: service.as_str().replace('-', "_"),
        },
    }
}

/// Opens (creating if new) `service`'s store and unseals its barrier with `key`.
pub fn open_store(
    cfg: &AppConfig,
    service: ServiceName,
    key: &UnsealKey,
) -> Result<Store, cryptoutil_storage::Error> {
    match store_at(cfg, service) {
        StoreAt::File(path) => Store::open_redb(&path, key),
        StoreAt::Postgres { options, schema } => {
            let backend = cryptoutil_storage::PostgresBackend::open(&options, &schema)?;
            Store::open(Box::new(backend), key, &format!("postgres schema {schema}"))
        }
    }
}

pub(crate) fn url(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => format!("https://127.0.0.1:{}", addr.port()),
        IpAddr::V6(v6) if v6.is_unspecified() => format!("https://[::1]:{}", addr.port()),
        IpAddr::V4(_) => format!("https://{addr}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{}", addr.port()),
    }
}

impl Running {
    /// Asks for a graceful shutdown (as SIGTERM or `POST /admin/v1/shutdown` do).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A sender that triggers shutdown, for signal handlers.
    pub fn shutdown_trigger(&self) -> Arc<watch::Sender<bool>> {
        Arc::clone(&self.shutdown)
    }

    /// Waits for shutdown (requested, or forced by a supervision tree that gave up), drains the
    /// listeners, stops the actors and closes the stores.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut requested = self.shutdown.subscribe();
        let tree_failed = tokio::select! {
            _ = requested.wait_for(|stop| *stop) => false,
            _ = &mut self.suite.join => true,
        };
        if tree_failed {
            tracing::error!("the root supervisor stopped: shutting down");
            self.shutdown.send_replace(true);
        }
        tracing::info!("shutting down: draining in-flight requests");
        self.readiness.set_draining();
        for service in self.endpoints.keys() {
            cryptoutil_http::metrics::service_ready(service.as_str(), false);
        }
        let _ = std::fs::remove_file(endpoints_path(&self.data_dir));
        let drain = async { while self.listeners.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace + Duration::from_millis(250), drain)
            .await
            .is_err()
        {
            self.listeners.abort_all();
        }
        self.suite.root.stop(self.grace).await;
        drop(self.suite);
        for store in self.stores.drain(..) {
            // The last reference closes the redb file cleanly.
            if let Err(still_shared) = Arc::try_unwrap(store) {
                tracing::warn!(
                    store = still_shared.name(),
                    "store still referenced at shutdown"
                );
            }
        }
        tracing::info!("shutdown complete");
        if tree_failed {
            return Err(anyhow!("the supervision tree failed"));
        }
        Ok(())
    }
}
