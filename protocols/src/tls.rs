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
