//! The one TLS policy of the suite, for servers and clients alike: TLS 1.3 only, AES-GCM cipher
//! suites, NIST curves (and the ML-KEM hybrid), on the aws-lc-rs provider. No ChaCha20, no
//! plain X25519: FIPS-approved algorithms only, in the default build as in the `fips` build.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// The protocol versions every listener and client accepts.
pub static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The crypto provider every rustls config is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..provider::default_provider()
    })
}

/// Trust anchors for client certificates (RFC 8705 `tls_client_auth`).
pub type TrustRoots = Arc<rustls::RootCertStore>;

/// Trust anchors from PEM; an error names what failed.
pub fn roots_from_pem(pem: &str) -> Result<TrustRoots, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(Arc::new(roots))
}

/// RFC 8705 §2.1.2 (PKI method): `chain` (leaf first, DER) chains to `roots` for client
/// authentication (extended key usage clientAuth, validity now) and its leaf's subject
/// alternative names include `san` (a DNS name or an IP address).
pub fn client_chain_matches(roots: &TrustRoots, chain: &[Vec<u8>], san: &str) -> bool {
    use rustls::pki_types::{CertificateDer, ServerName};
    let Some(leaf) = chain.first() else {
        return false;
    };
    if !client_chain_valid(roots, chain) {
        return false;
    }
    let leaf = CertificateDer::from(leaf.as_slice());
    let (Ok(parsed), Ok(name)) = (
        rustls::server::ParsedCertificate::try_from(&leaf),
        ServerName::try_from(san),
    ) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

/// `chain` (leaf first, DER) chains to `roots` for client authentication: extended key usage
/// clientAuth, every certificate valid now.
pub fn client_chain_valid(roots: &TrustRoots, chain: &[Vec<u8>]) -> bool {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let Some((leaf, rest)) = chain.split_first() else {
        return false;
    };
    let leaf = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let verifier = match rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::clone(roots),
        provider(),
    )
    .build()
    {
        Ok(v) => v,
        Err(_) => return false,
    };
    verifier
        .verify_client_cert(&leaf, &intermediates, UnixTime::now())
        .is_ok()
}

/// Whether certificate `leaf` (DER) names client authentication among its extended key
/// usages (present, not merely not forbidden: webpki admits a leaf without the extension).
pub fn client_auth_eku(leaf: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
}

/// The email addresses (rfc822Name subject alternative names) of certificate `leaf` (DER),
/// lowercased.
pub fn client_emails(leaf: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::RFC822Name(email) => Some(email.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_tls13_suites_are_offered() {
        let p = super::provider();
        assert!(p
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        assert_eq!(super::VERSIONS.len(), 1);
    }
}
