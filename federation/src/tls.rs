//! TLS 1.3-only client configurations on the aws-lc-rs provider.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::Error;

/// A client configuration trusting exactly the certificates in `pem` (one or more).
pub fn client_config_from_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::TrustAnchors {
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| Error::TrustAnchors {
            reason: e.to_string(),
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::TrustAnchors {
            reason: "no certificate in PEM input".into(),
        });
    }
    client_config(roots)
}

/// Reads trust anchors from a PEM file.
pub fn client_config_from_file(path: &Path) -> Result<Arc<ClientConfig>, Error> {
    let pem = std::fs::read(path).map_err(|e| Error::TrustAnchors {
        reason: format!("{}: {e}", path.display()),
    })?;
    client_config_from_pem(&pem)
}

/// TLS 1.3 only, server certificates verified against `roots`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, Error> {
    let config = ClientConfig::builder_with_provider(cryptoutil_protocols::tls::provider())
        .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
