//! TLS 1.3-only client configurations on the aws-lc-rs provider.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::Error;

/// A client configuration trusting exactly the certificates in `pem` (one or more).
pub fn client_config_from_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    client_config(roots_from_pem(pem)?)
}

/// The certificates in `pem` (one or more) as trust anchors.
fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::TrustAnchors {
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| Error::TrustAnchors {
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(Error::TrustAnchors {
            reason: "no certificate in PEM input".into(),
        });
    }
    Ok(roots)
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

/// TLS 1.3 only, server certificates verified against the certificates in `anchors_pem`, and
/// this process's certificate chain (`chain_pem`, leaf first) and private key (`key_pem`,
/// PKCS#8, SEC1 or PKCS#1) presented to servers that ask for one.
pub fn client_config_with_cert(
    anchors_pem: &[u8],
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, Error> {
    use rustls_pki_types::PrivateKeyDer;
    let roots = roots_from_pem(anchors_pem)?;
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::ClientCertificate {
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::ClientCertificate {
            reason: "no certificate in the client chain".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::ClientCertificate {
        reason: format!("private key: {e}"),
    })?;
    let config = ClientConfig::builder_with_provider(cryptoutil_protocols::tls::provider())
        .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}
