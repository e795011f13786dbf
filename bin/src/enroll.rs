//! Where each service's TLS certificate lives, for the `Enrollment` actors that take it from
//! the CA (`federation.ca_enabled`): the listeners' swappable certificate and the PKI store
//! (`tls/pki.redb`), which keeps what the CA issued with its key sealed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::anyhow;
use cryptoutil_actors::federation::ca::enroll::{
    CaLeaf, CertificateHome, EnrollmentPlan, ServiceCertificate,
};
use cryptoutil_actors::ServiceName;
use cryptoutil_http::tls::ServerCert;
use cryptoutil_storage::Store;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::AppConfig;
use crate::pki;

/// One service's certificate: its listeners and its place in the PKI store.
#[derive(Debug)]
struct ServiceCertificates {
    service: ServiceName,
    cert: Arc<ServerCert>,
    store: Arc<Store>,
    /// The service's own certificate.
    own: pki::OwnCert,
}

impl CertificateHome for ServiceCertificates {
    fn presented_leaf(&self) -> Option<Vec<u8>> {
        self.cert.leaf().map(|c| c.to_vec())
    }

    fn present(&self, leaf: &CaLeaf) -> Result<(), String> {
        self.cert
            .replace(
                leaf.chain
                    .iter()
                    .cloned()
                    .map(CertificateDer::from)
                    .collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.to_vec())),
            )
            .map_err(|e| e.to_string())
    }

    fn present_own(&self) -> Result<(), String> {
        let own = self.own.get();
        let (chain, key) = &*own;
        if self.cert.leaf().as_deref() == chain.first().map(|c| c.as_ref()) {
            return Ok(());
        }
        self.cert
            .replace(chain.clone(), key.clone_key())
            .map_err(|e| e.to_string())
    }

    fn cached(&self, now: SystemTime) -> Result<Option<CaLeaf>, String> {
        pki::cached_ca_leaf(&self.store, self.service, now).map_err(|e| e.to_string())
    }

    fn keep(&self, leaf: &CaLeaf) -> Result<(), String> {
        pki::store_ca_leaf(&self.store, self.service, leaf).map_err(|e| e.to_string())
    }
}

/// Certificates from the CA for every service of this process, when the CA is a federated
/// peer; it needs the dynamic PKI's store.
pub fn plan(
    cfg: &AppConfig,
    certs: &BTreeMap<ServiceName, Arc<ServerCert>>,
    own: &BTreeMap<ServiceName, pki::OwnCert>,
    store: Option<&Arc<Store>>,
) -> anyhow::Result<Option<EnrollmentPlan>> {
    if !cfg.federation.ca_enabled {
        return Ok(None);
    }
    let store = store.ok_or_else(|| {
        anyhow!("`federation.ca_enabled` needs the PKI store (tls/pki.redb), which was not opened")
    })?;
    let certificates = certs
        .iter()
        .map(|(service, cert)| {
            let (dns, ips) = pki::leaf_names(cfg, *service);
            let own = own
                .get(service)
                .cloned()
                .ok_or_else(|| anyhow!("no own certificate for {service}"))?;
            let home = ServiceCertificates {
                service: *service,
                cert: Arc::clone(cert),
                store: Arc::clone(store),
                own,
            };
            let home: Arc<dyn CertificateHome> = Arc::new(home);
            Ok((*service, ServiceCertificate { home, dns, ips }))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(EnrollmentPlan {
        certificates,
        mode: cfg.federation_fallback.ca_fallback_mode,
        retry_after: cfg.federation.health_poll_interval,
    }))
}
