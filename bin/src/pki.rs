//! Listener certificates: the dynamic private CA (generated on first start, persisted through the
//! key barrier in `<data-dir>/tls/pki.redb`, trust anchor written to `<data-dir>/tls/ca.pem`) or
//! static PEM material from configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use cryptoutil_actors::federation::ca::enroll::CaLeaf;
use cryptoutil_actors::federation::CaFallback;
use cryptoutil_actors::ServiceName;
use cryptoutil_http::tls::ServerCert;
use cryptoutil_protocols::pki;
use cryptoutil_protocols::unseal::UnsealKey;
use cryptoutil_storage::{Store, Table};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::config::{AppConfig, TlsMode};
use crate::files;

/// The listener TLS configurations and the trust anchor clients need.
pub struct TlsSetup {
    /// One server configuration per service (dynamic mode issues one leaf each).
    pub servers: BTreeMap<ServiceName, Arc<ServerConfig>>,
    /// Each service's certificate, replaceable while it serves (by one from the CA).
    pub certs: BTreeMap<ServiceName, Arc<ServerCert>>,
    /// PEM of the certificates a client should trust (written to `<data-dir>/tls/ca.pem`).
    pub anchor_pem: String,
    /// The dynamic PKI's store (dynamic mode), also where certificates from the CA are kept.
    pub store: Option<Arc<Store>>,
    /// Each service's own certificate: the dynamic PKI's leaf, or with `federation.ca_enabled`
    /// the configured one. What serves again once a certificate from the CA is about to expire.
    pub own: BTreeMap<ServiceName, OwnCert>,
    /// Dynamic mode: what renews the leaves while the services run.
    pub renewal: Option<Renewal>,
}

/// A service's own certificate chain and key, replaced when the dynamic PKI renews it.
pub type OwnCert = Arc<OwnSlot>;

/// Holds a service's own certificate chain and key (see [`OwnCert`]).
pub struct OwnSlot(RwLock<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>);

impl std::fmt::Debug for OwnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnSlot")
    }
}

impl OwnSlot {
    fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> OwnCert {
        Arc::new(Self(RwLock::new(Arc::new((chain, key)))))
    }

    /// The chain (leaf first) and key now.
    pub fn get(&self) -> Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new((chain, key));
    }
}

/// Path of the trust anchor.
pub fn anchor_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("tls").join("ca.pem")
}

/// Builds the TLS setup for `services`. Blocking (key generation, redb): call from a blocking
/// thread.
pub fn provision(
    cfg: &AppConfig,
    services: &[ServiceName],
    unseal: &UnsealKey,
) -> anyhow::Result<TlsSetup> {
    let setup = match cfg.tls.mode {
        TlsMode::Dynamic => dynamic(cfg, services, unseal)?,
        TlsMode::Static => static_material(cfg, services, unseal)?,
    };
    for (i, pem) in cfg.tls.extra_trusted_cas.iter().enumerate() {
        let count = CertificateDer::pem_slice_iter(pem.as_bytes())
            .filter(Result::is_ok)
            .count();
        if count == 0 {
            return Err(anyhow!(
                "tls.extra_trusted_cas[{i}] holds no PEM certificate"
            ));
        }
    }
    files::write_atomic(
        &anchor_path(&cfg.data_dir),
        setup.anchor_pem.as_bytes(),
        0o644,
    )?;
    Ok(setup)
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct LeafMeta {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    not_after_unix: u64,
}

const CA_NAME: &[u8] = b"ca/name";
const ROOT_CERT: &[u8] = b"ca/root/cert";
const ROOT_KEY: &[u8] = b"ca/root/key";
const INT_CERT: &[u8] = b"ca/intermediate/cert";
const INT_KEY: &[u8] = b"ca/intermediate/key";

/// The PKI store, `<data-dir>/tls/pki.redb`.
fn open_store(cfg: &AppConfig, unseal: &UnsealKey) -> anyhow::Result<Store> {
    let path = cfg.data_dir.join("tls").join("pki.redb");
    Store::open_redb(&path, unseal).with_context(|| format!("opening {}", path.display()))
}

/// Each service's listener configuration and swappable certificate: the certificate the CA
/// issued last when `federation.ca_enabled` and `cached` and one is kept, else `own(service)`.
#[allow(clippy::type_complexity)]
fn present(
    cfg: &AppConfig,
    services: &[ServiceName],
    store: &Store,
    now: SystemTime,
    mut own: impl FnMut(
        ServiceName,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<(
    BTreeMap<ServiceName, Arc<ServerConfig>>,
    BTreeMap<ServiceName, Arc<ServerCert>>,
    BTreeMap<ServiceName, OwnCert>,
)> {
    let cached_mode =
        cfg.federation.ca_enabled && cfg.federation_fallback.ca_fallback_mode == CaFallback::Cached;
    let mut servers = BTreeMap::new();
    let mut certs = BTreeMap::new();
    let mut owns = BTreeMap::new();
    for &service in services {
        let (chain, key) = own(service)?;
        let mine: OwnCert = OwnSlot::new(chain, key);
        let cached = if cached_mode {
            cached_ca_leaf(store, service, now)?
        } else {
            None
        };
        let (chain, key) = match cached {
            Some(cached) => {
                tracing::info!(%service, "presenting the certificate the CA issued last (cached)");
                (
                    cached.chain.into_iter().map(CertificateDer::from).collect(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cached.key.to_vec())),
                )
            }
            None => {
                let mine = mine.get();
                (mine.0.clone(), mine.1.clone_key())
            }
        };
        let (server, cert) = cryptoutil_http::tls::swappable_server_config(chain, key)?;
        servers.insert(service, server);
        certs.insert(service, cert);
        owns.insert(service, mine);
    }
    Ok((servers, certs, owns))
}

fn dynamic(
    cfg: &AppConfig,
    services: &[ServiceName],
    unseal: &UnsealKey,
) -> anyhow::Result<TlsSetup> {
    let store = open_store(cfg, unseal)?;
    let now = SystemTime::now();
    let name = match store.get_plain(Table::Pki, CA_NAME)? {
        Some(name) => String::from_utf8_lossy(&name).into_owned(),
        None => create_ca(&store, now)?,
    };
    let root = store
        .get_plain(Table::Pki, ROOT_CERT)?
        .ok_or_else(|| anyhow!("PKI store lacks the root certificate"))?;
    let int_cert = store
        .get_plain(Table::Pki, INT_CERT)?
        .ok_or_else(|| anyhow!("PKI store lacks the intermediate"))?;
    let life = cfg.tls.leaf_lifetime;
    let (servers, certs, own) = present(cfg, services, &store, now, |service| {
        let (dns, ips) = leaf_names(cfg, service);
        let (leaf, key, _) = leaf_for(&store, &name, service, dns, ips, now, life)?;
        Ok(own_chain(leaf, &key, &int_cert))
    })?;
    let store = Arc::new(store);
    let renewal = Renewal {
        store: Arc::clone(&store),
        ca_name: name,
        int_cert,
        life,
        leaves: services
            .iter()
            .filter_map(|s| {
                let (dns, ips) = leaf_names(cfg, *s);
                Some(RenewedLeaf {
                    service: *s,
                    dns,
                    ips,
                    cert: Arc::clone(certs.get(s)?),
                    own: Arc::clone(own.get(s)?),
                })
            })
            .collect(),
    };
    Ok(TlsSetup {
        servers,
        certs,
        anchor_pem: pki::cert_pem(&root),
        store: Some(store),
        own,
        renewal: Some(renewal),
    })
}

/// A leaf and the intermediate as a chain, with the leaf's key.
fn own_chain(
    leaf: Vec<u8>,
    key: &[u8],
    int_cert: &[u8],
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![
            CertificateDer::from(leaf),
            CertificateDer::from(int_cert.to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
    )
}

/// One service's dynamic leaf, as [`Renewal`] keeps it fresh.
struct RenewedLeaf {
    service: ServiceName,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    /// What its listeners present.
    cert: Arc<ServerCert>,
    /// The service's own certificate (which a certificate from the CA may be presented
    /// instead of).
    own: OwnCert,
}

/// Renews the dynamic PKI's leaves while the services run: each two thirds into its life
/// (`tls.leaf_lifetime`, 90 days by default), kept sealed in the PKI store like the first. The
/// new leaf becomes the service's own certificate and is presented from the next handshake
/// on, unless a certificate from the CA is presented instead (it takes over again when that
/// one ends).
pub struct Renewal {
    store: Arc<Store>,
    ca_name: String,
    int_cert: Vec<u8>,
    life: Duration,
    leaves: Vec<RenewedLeaf>,
}

/// Checks at least this often, whatever the leaves' lifetimes say (clocks jump, hosts sleep).
const RENEWAL_CHECK_MAX: Duration = Duration::from_secs(3600);

impl Renewal {
    /// Renews every leaf due at `now`; when the next one is due (unix seconds). Blocking.
    fn renew_due(&self, now: SystemTime) -> anyhow::Result<u64> {
        let mut next = u64::MAX;
        for l in &self.leaves {
            let current = l.own.get();
            let (leaf, key, not_after) = leaf_for(
                &self.store,
                &self.ca_name,
                l.service,
                l.dns.clone(),
                l.ips.clone(),
                now,
                self.life,
            )?;
            let old = current.0.first().map(|c| c.to_vec());
            if old.as_deref() != Some(leaf.as_slice()) {
                let (chain, key) = own_chain(leaf.clone(), &key, &self.int_cert);
                // Presented now only where the old own certificate was (not over the CA's).
                if let Some(old) = &old {
                    l.cert
                        .replace_if(old, chain.clone(), key.clone_key())
                        .map_err(|e| {
                            anyhow!("presenting the renewed leaf of {}: {e}", l.service)
                        })?;
                }
                l.own.set(chain, key);
                tracing::info!(service = %l.service, "renewed the TLS leaf certificate");
            }
            next = next.min(pki::leaf_renew_at(not_after, self.life));
        }
        Ok(next)
    }

    /// Renews the leaves when they are due until `shutdown`; a failure is logged and tried
    /// again a minute later.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            let renewal = Arc::clone(&this);
            let wait = match tokio::task::spawn_blocking(move || {
                renewal.renew_due(SystemTime::now())
            })
            .await
            {
                Ok(Ok(next)) => {
                    let now = SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    Duration::from_secs(next.saturating_sub(now).max(1)).min(RENEWAL_CHECK_MAX)
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "renewing TLS leaf certificates failed; trying again in a minute");
                    Duration::from_secs(60)
                }
                Err(e) => {
                    tracing::error!(error = %e, "the TLS leaf renewal task failed; trying again in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// The names a service's leaf carries: its name and `tls.hostnames` (DNS), 127.0.0.1 and the
/// public bind address unless unspecified (IP).
pub fn leaf_names(cfg: &AppConfig, service: ServiceName) -> (Vec<String>, Vec<IpAddr>) {
    let listen = &cfg.services.of(service).public;
    let mut dns = vec![service.as_str().to_owned()];
    dns.extend(
        cfg.tls
            .hostnames
            .iter()
            .filter(|h| h.as_str() != service.as_str())
            .cloned(),
    );
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if !listen.bind_address.is_unspecified() && !ips.contains(&listen.bind_address) {
        ips.push(listen.bind_address);
    }
    (dns, ips)
}

fn ca_leaf_keys(service: ServiceName) -> (Vec<u8>, Vec<u8>) {
    (
        format!("ca-leaf/{service}/chain").into_bytes(),
        format!("ca-leaf/{service}/key").into_bytes(),
    )
}

/// The last certificate the CA issued for `service`, unless it is in the last tenth of its
/// life at `now`.
pub fn cached_ca_leaf(
    store: &Store,
    service: ServiceName,
    now: SystemTime,
) -> anyhow::Result<Option<CaLeaf>> {
    let (chain_key, key_key) = ca_leaf_keys(service);
    let (Some(chain), Some(key)) = (
        store.get_plain(Table::Pki, &chain_key)?,
        store.get_sealed(Table::Pki, &key_key)?,
    ) else {
        return Ok(None);
    };
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&chain)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    let Some((not_before, not_after)) = chain.first().and_then(|leaf| pki::validity(leaf).ok())
    else {
        return Ok(None);
    };
    // It serves until the last tenth of its life (the `Enrollment` actor renews it when it
    // is due, or presents the service's own certificate then).
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if cryptoutil_actors::federation::ca::enroll::expiring(not_before, not_after, now) {
        return Ok(None);
    }
    Ok(Some(CaLeaf {
        chain,
        key,
        not_after,
    }))
}

/// Keeps what the CA issued for `service` (the key sealed by the barrier), in one transaction.
pub fn store_ca_leaf(store: &Store, service: ServiceName, leaf: &CaLeaf) -> anyhow::Result<()> {
    let (chain_key, key_key) = ca_leaf_keys(service);
    let pem: String = leaf.chain.iter().map(|c| pki::cert_pem(c)).collect();
    store.apply(vec![
        store.sealed_write(Table::Pki, &key_key, &leaf.key)?,
        plain(&chain_key, pem.into_bytes()),
    ])?;
    Ok(())
}

fn create_ca(store: &Store, now: SystemTime) -> anyhow::Result<String> {
    let mut id = [0u8; 6];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow!("random generator failure"))?;
    let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let ca = pki::generate_ca(&name, now)?;
    // One transaction: a crash leaves no half-made CA behind.
    store.apply(vec![
        store.sealed_write(Table::Pki, ROOT_KEY, &ca.root.key_pkcs8)?,
        store.sealed_write(Table::Pki, INT_KEY, &ca.intermediate.key_pkcs8)?,
        plain(ROOT_CERT, ca.root.cert_der),
        plain(INT_CERT, ca.intermediate.cert_der),
        plain(CA_NAME, name.clone().into_bytes()),
    ])?;
    tracing::info!(ca = %name, "generated the suite's private TLS CA (root and intermediate)");
    Ok(name)
}

/// The service's leaf, its key and its `notAfter` (Unix seconds): the stored one while it
/// names the same hosts and is not due ([`pki::needs_renewal`]), else a new one, stored.
fn leaf_for(
    store: &Store,
    ca_name: &str,
    service: ServiceName,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    now: SystemTime,
    life: Duration,
) -> anyhow::Result<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>, u64)> {
    let (meta_key, cert_key, priv_key) = (
        format!("leaf/{service}/meta").into_bytes(),
        format!("leaf/{service}/cert").into_bytes(),
        format!("leaf/{service}/key").into_bytes(),
    );
    if let (Some(meta), Some(cert), Some(key)) = (
        store.get_plain(Table::Pki, &meta_key)?,
        store.get_plain(Table::Pki, &cert_key)?,
        store.get_sealed(Table::Pki, &priv_key)?,
    ) {
        if let Ok(meta) = serde_json::from_slice::<LeafMeta>(&meta) {
            if meta.dns == dns
                && meta.ips == ips
                && !pki::needs_renewal(meta.not_after_unix, life, now)
            {
                return Ok((cert, key, meta.not_after_unix));
            }
        }
    }
    let int_key = store
        .get_sealed(Table::Pki, INT_KEY)?
        .ok_or_else(|| anyhow!("PKI store lacks the intermediate key"))?;
    let leaf = pki::issue_leaf(ca_name, &int_key, service.as_str(), &dns, &ips, now, life)?;
    let meta = serde_json::to_vec(&LeafMeta {
        dns,
        ips,
        not_after_unix: leaf.not_after_unix,
    })?;
    store.apply(vec![
        store.sealed_write(Table::Pki, &priv_key, &leaf.key_pkcs8)?,
        plain(&cert_key, leaf.cert_der.clone()),
        plain(&meta_key, meta),
    ])?;
    tracing::info!(%service, "issued a TLS leaf certificate");
    Ok((leaf.cert_der, leaf.key_pkcs8, leaf.not_after_unix))
}

fn plain(key: &[u8], value: Vec<u8>) -> cryptoutil_storage::backend::Write {
    cryptoutil_storage::backend::Write::Put {
        table: Table::Pki,
        key: key.to_vec(),
        value,
    }
}

/// Static material: one certificate for every service, unless they take theirs from the CA
/// (`federation.ca_enabled`): then each service presents the static one until the CA issues
/// its own (or, `cached`, the one the CA issued last), and the PKI store keeps what the CA
/// issued.
/// `tls.cert_chain` and `tls.private_key`, parsed.
fn static_chain(
    cfg: &AppConfig,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cfg.tls.cert_chain.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("tls.cert_chain: {e}"))?;
    if chain.is_empty() {
        return Err(anyhow!("tls.cert_chain holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(cfg.tls.private_key.expose().as_bytes())
        .map_err(|e| anyhow!("tls.private_key: {e}"))?;
    Ok((chain, key))
}

/// Where a sealed process's listeners' ephemeral CA is written (dynamic mode).
pub fn sealed_anchor_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("sealed-ca.pem")
}

/// What the listeners present while the process is sealed (the dynamic PKI's keys are behind
/// the barrier): the static certificate, or in dynamic mode a leaf of an ephemeral CA made for
/// this sealed run, naming every service's names, whose root is written to
/// [`sealed_anchor_path`] (public) for the operator's tools.
pub fn sealed_tls(cfg: &AppConfig, services: &[ServiceName]) -> anyhow::Result<Arc<ServerConfig>> {
    let (chain, key) = match cfg.tls.mode {
        TlsMode::Static => static_chain(cfg)?,
        TlsMode::Dynamic => {
            let now = SystemTime::now();
            let mut id = [0u8; 6];
            aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow!("random generator failure"))?;
            let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let ca = pki::generate_ca(&format!("sealed {name}"), now)?;
            let (mut dns, mut ips) = (vec!["localhost".to_owned()], Vec::new());
            for service in services {
                let (d, i) = leaf_names(cfg, *service);
                dns.extend(
                    d.into_iter()
                        .filter(|n| !dns.contains(n))
                        .collect::<Vec<_>>(),
                );
                ips.extend(
                    i.into_iter()
                        .filter(|a| !ips.contains(a))
                        .collect::<Vec<_>>(),
                );
            }
            let leaf = pki::issue_leaf(
                &format!("sealed {name}"),
                &ca.intermediate.key_pkcs8,
                "cryptoutil (sealed)",
                &dns,
                &ips,
                now,
                Duration::from_secs(86_400),
            )?;
            let dir = cfg.data_dir.join("tls");
            cryptoutil_storage::unseal::create_private_dir(&dir)?;
            files::write_atomic(
                &sealed_anchor_path(&cfg.data_dir),
                pki::cert_pem(&ca.root.cert_der).as_bytes(),
                0o644,
            )?;
            (
                vec![
                    CertificateDer::from(leaf.cert_der),
                    CertificateDer::from(ca.intermediate.cert_der.clone()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_pkcs8.to_vec())),
            )
        }
    };
    cryptoutil_http::tls::server_config(chain, key).context("the sealed listeners' certificate")
}

fn static_material(
    cfg: &AppConfig,
    services: &[ServiceName],
    unseal: &UnsealKey,
) -> anyhow::Result<TlsSetup> {
    let (chain, key) = static_chain(cfg)?;
    let anchor_pem = if cfg.tls.extra_trusted_cas.is_empty() {
        chain.last().map(|c| pki::cert_pem(c)).unwrap_or_default()
    } else {
        cfg.tls
            .extra_trusted_cas
            .iter()
            .map(|pem| format!("{}\n", pem.trim_end()))
            .collect()
    };
    if !cfg.federation.ca_enabled {
        let (server, cert) = cryptoutil_http::tls::swappable_server_config(chain.clone(), key)
            .context("tls.cert_chain / tls.private_key")?;
        return Ok(TlsSetup {
            servers: services.iter().map(|s| (*s, Arc::clone(&server))).collect(),
            certs: services.iter().map(|s| (*s, Arc::clone(&cert))).collect(),
            anchor_pem,
            store: None,
            own: BTreeMap::new(),
            renewal: None,
        });
    }
    let store = open_store(cfg, unseal)?;
    let (servers, certs, own) = present(cfg, services, &store, SystemTime::now(), |_| {
        Ok((chain.clone(), key.clone_key()))
    })?;
    Ok(TlsSetup {
        servers,
        certs,
        anchor_pem,
        store: Some(Arc::new(store)),
        own,
        renewal: None,
    })
}

/// The trust anchor `cryptoutil pki issue` writes.
pub const SUITE_CA_FILE: &str = "suite-ca.pem";

/// `cryptoutil pki issue`: a new suite CA and a leaf per name in `out` (see the CLI help).
/// Nothing is overwritten: an existing file makes the command fail before anything is written.
pub fn issue_suite_files(out: &Path, names: &[String]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if let Some(bad) = names.iter().find(|n| !valid(n)) {
        return Err(anyhow!("{bad:?} is not a lowercase DNS name"));
    }
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() || names.iter().any(|n| n == "suite-ca") {
        return Err(anyhow!("names must be distinct and not suite-ca"));
    }
    let mut paths = vec![out.join(SUITE_CA_FILE)];
    for name in names {
        paths.push(out.join(format!("{name}.pem")));
        paths.push(out.join(format!("{name}.key")));
    }
    if let Some(existing) = paths.iter().find(|f| f.exists()) {
        return Err(anyhow!(
            "{} exists; nothing was written",
            existing.display()
        ));
    }
    let now = SystemTime::now();
    let mut id = [0u8; 6];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow!("random generator failure"))?;
    let ca_name: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let ca = pki::generate_ca(&ca_name, now)?;
    let intermediate = pki::cert_pem(&ca.intermediate.cert_der);
    files::write_atomic(
        &out.join(SUITE_CA_FILE),
        pki::cert_pem(&ca.root.cert_der).as_bytes(),
        0o644,
    )?;
    for name in names {
        let dns = vec![name.clone(), "localhost".to_owned()];
        let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let leaf = pki::issue_leaf(
            &ca_name,
            &ca.intermediate.key_pkcs8,
            name,
            &dns,
            &ips,
            now,
            pki::LEAF_LIFETIME,
        )?;
        let chain = format!("{}{intermediate}", pki::cert_pem(&leaf.cert_der));
        files::write_atomic(&out.join(format!("{name}.pem")), chain.as_bytes(), 0o644)?;
        let key = pki::private_key_pem(&leaf.key_pkcs8);
        files::write_atomic(&out.join(format!("{name}.key")), key.as_bytes(), 0o600)?;
    }
    Ok(paths)
}

/// `cryptoutil pki client-key`: an ES256 key as `<name>.jwk` (private, 0600) and
/// `<name>.pub.jwk` (its public JWK Set, 0644) in `out`; nothing is written if either exists.
pub fn client_key_files(out: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    use cryptoutil_protocols::jose::{Jwk, JwsAlg};
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(anyhow!("--name: letters, digits, '-' and '_' only"));
    }
    let (private, public) = (
        out.join(format!("{name}.jwk")),
        out.join(format!("{name}.pub.jwk")),
    );
    if let Some(existing) = [&private, &public].into_iter().find(|f| f.exists()) {
        return Err(anyhow!(
            "{} exists; nothing was written",
            existing.display()
        ));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let key = Jwk::generate(JwsAlg::ES256).map_err(|e| anyhow!("generating the key: {e}"))?;
    let set = serde_json::json!({
        "keys": [key.to_public_value().map_err(|e| anyhow!("the public key: {e}"))?]
    });
    let secret = key
        .to_private_value()
        .map_err(|e| anyhow!("the private key: {e}"))?;
    crate::files::write_atomic(&private, secret.as_bytes(), 0o600)?;
    crate::files::write_atomic(&public, set.to_string().as_bytes(), 0o644)?;
    Ok(vec![private, public])
}
