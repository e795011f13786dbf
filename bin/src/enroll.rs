//! Certificates from the CA (`federation.ca_enabled`): for each service of this process a
//! task asks the CA for a certificate (EST `/simpleenroll` with a fresh key), presents it from
//! the next handshake on, and keeps it (the key sealed) in the PKI store; it asks again when
//! the certificate is due for renewal. While the CA is unavailable the service presents what
//! `ca_fallback_mode` says: `self_signed`, the dynamic PKI's certificate, or `cached`, the one
//! the CA issued last (chosen at start, see `pki`), and the task tries again after
//! `federation.health_poll_interval`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use cryptoutil_actors::federation::{CaFallback, CaPeer};
use cryptoutil_actors::ServiceName;
use cryptoutil_http::tls::ServerCert;
use cryptoutil_storage::Store;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::AppConfig;
use crate::pki::{self, CaLeaf};

/// How long one enrollment may retry before the fallback stands until the next attempt.
const ENROLL_DEADLINE: Duration = Duration::from_secs(60);
/// How often a certificate is checked for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);

/// What an enrollment task needs.
struct Enroller {
    service: ServiceName,
    ca: CaPeer,
    cert: Arc<ServerCert>,
    store: Arc<Store>,
    dns: Vec<String>,
    ips: Vec<std::net::IpAddr>,
    mode: CaFallback,
    retry_after: Duration,
}

/// Starts one enrollment task per service; they end when aborted (at shutdown).
pub fn start(
    cfg: &AppConfig,
    ca: &CaPeer,
    certs: &std::collections::BTreeMap<ServiceName, Arc<ServerCert>>,
    store: Option<&Arc<Store>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let store = store.ok_or_else(|| {
        anyhow!("invalid configuration: `federation.ca_enabled` needs `tls.mode: dynamic`")
    })?;
    let mut tasks = Vec::new();
    for (service, cert) in certs {
        let (dns, ips) = pki::leaf_names(cfg, *service);
        let enroller = Enroller {
            service: *service,
            ca: ca.clone(),
            cert: Arc::clone(cert),
            store: Arc::clone(store),
            dns,
            ips,
            mode: cfg.federation_fallback.ca_fallback_mode,
            retry_after: cfg.federation.health_poll_interval,
        };
        tasks.push(tokio::spawn(enroller.run()));
    }
    Ok(tasks)
}

impl Enroller {
    async fn run(self) {
        let service = self.service;
        // A cached certificate from the CA serves until it is due for renewal.
        let mut due = !self.presents_cached().await;
        loop {
            let wait = if due || self.renewal_due() {
                match self.enroll().await {
                    Ok(()) => {
                        tracing::info!(%service, "presenting the certificate the CA issued");
                        due = false;
                        RENEWAL_CHECK
                    }
                    Err(e) => {
                        cryptoutil_actors::metrics::fallback_used("ca", self.mode.as_str());
                        tracing::warn!(
                            %service,
                            fallback = self.mode.as_str(),
                            error = %e,
                            "no certificate from the CA: presenting the fallback certificate"
                        );
                        due = true;
                        self.retry_after
                    }
                }
            } else {
                RENEWAL_CHECK
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Is the presented certificate due for renewal?
    fn renewal_due(&self) -> bool {
        self.cert
            .leaf()
            .and_then(|leaf| cryptoutil_protocols::pki::not_after(&leaf).ok())
            .is_none_or(|t| cryptoutil_protocols::pki::needs_renewal(t, SystemTime::now()))
    }

    /// Does the listener present the certificate the CA issued last (`cached` mode, chosen
    /// at start)?
    async fn presents_cached(&self) -> bool {
        let (Some(presented), CaFallback::Cached) = (self.cert.leaf(), self.mode) else {
            return false;
        };
        let (store, service) = (Arc::clone(&self.store), self.service);
        let cached = tokio::task::spawn_blocking(move || {
            pki::cached_ca_leaf(&store, service, SystemTime::now())
        })
        .await;
        matches!(cached, Ok(Ok(Some(c))) if c.chain.first().map(Vec::as_slice) == Some(presented.as_ref()))
    }

    /// One enrollment: a new key and request, the CA's chain presented and kept.
    async fn enroll(&self) -> anyhow::Result<()> {
        let (service, dns, ips) = (self.service, self.dns.clone(), self.ips.clone());
        let (csr, key) = tokio::task::spawn_blocking(move || {
            cryptoutil_protocols::pki::leaf_request(service.as_str(), &dns, &ips)
        })
        .await??;
        let chain = self.ca.enroll(&csr, ENROLL_DEADLINE).await?;
        let leaf = chain
            .first()
            .ok_or_else(|| anyhow!("the CA sent no certificate"))?;
        let not_after = cryptoutil_protocols::pki::not_after(leaf)?;
        if cryptoutil_protocols::pki::needs_renewal(not_after, SystemTime::now()) {
            return Err(anyhow!(
                "the CA issued a certificate that is already due for renewal"
            ));
        }
        self.cert.replace(
            chain.iter().cloned().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )?;
        let store = Arc::clone(&self.store);
        let kept = CaLeaf {
            chain,
            key,
            not_after,
        };
        // Presented already; only `cached` after a restart misses it if this fails.
        match tokio::task::spawn_blocking(move || pki::store_ca_leaf(&store, service, &kept)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%service, error = %e, "the CA's certificate was not kept"),
            Err(e) => tracing::warn!(%service, error = %e, "the CA's certificate was not kept"),
        }
        Ok(())
    }
}
