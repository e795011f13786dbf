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
    client_chain_check(roots, &[], chain).is_ok()
}

/// Certificate revocation lists (RFC 5280 §5) from PEM (`X509 CRL` blocks) or one DER list,
/// checked to be what the verifier of certificates from `roots` reads; an error names what
/// failed.
pub fn crls_from_bytes(bytes: &[u8], roots: &TrustRoots) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    let ders: Vec<Vec<u8>> = if pem {
        rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?
    } else {
        vec![bytes.to_vec()]
    };
    if ders.is_empty() {
        return Err("no certificate revocation list in the PEM".into());
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .with_crls(
            ders.iter()
                .map(|c| rustls_pki_types::CertificateRevocationListDer::from(c.clone())),
        )
        .build()
        .map_err(|e| {
            format!(
                "not a certificate revocation list that reads ({e}; RFC 5280 §5.2: version 2, \
                 a CRL number and an authority key identifier)"
            )
        })?;
    Ok(ders)
}

/// Of `lists` (DER, each read by [`crls_from_bytes`]), the newest of each issuer: the highest
/// CRL number, then the latest `thisUpdate`. The verifier consults the first list of an issuer
/// it finds, so an older one kept beside a newer one would hide the newer's revocations.
pub fn newest_per_issuer(lists: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    use x509_parser::prelude::FromDer as _;
    use x509_parser::revocation_list::CertificateRevocationList;
    type Key = (Vec<u8>, (Vec<u8>, i64));
    let mut newest: Vec<(Key, Vec<u8>)> = Vec::new();
    for der in lists {
        let Ok((_, crl)) = CertificateRevocationList::from_der(&der) else {
            continue;
        };
        let issuer = crl.issuer().as_raw().to_vec();
        // A CRL number's big-endian bytes, padded so that byte order is number order.
        let number = crl
            .crl_number()
            .map(|n| n.to_bytes_be())
            .unwrap_or_default();
        let mut padded = vec![0u8; 20usize.saturating_sub(number.len())];
        padded.extend(number);
        let rank = (padded, crl.last_update().timestamp());
        drop(crl);
        match newest.iter_mut().find(|((i, _), _)| *i == issuer) {
            Some(entry) if entry.0 .1 < rank => *entry = ((issuer, rank), der),
            Some(_) => {}
            None => newest.push(((issuer, rank), der)),
        }
    }
    newest.into_iter().map(|(_, der)| der).collect()
}

/// Why [`client_chain_check`] refused a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainRefusal {
    /// No certificate.
    Missing,
    /// It does not chain to the roots for client authentication, or is not valid now.
    Untrusted,
    /// A revocation list of its issuer lists it.
    Revoked,
    /// Revocation lists were given, but none of its issuer's that is current.
    RevocationUnknown,
}

impl ChainRefusal {
    /// What the audit log says.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainRefusal::Missing => "no certificate presented",
            ChainRefusal::Untrusted => "a certificate that does not chain to identity.certificate_ca",
            ChainRefusal::Revoked => "a revoked certificate",
            ChainRefusal::RevocationUnknown => {
                "a certificate whose revocation status is unknown (no current revocation list of its issuer)"
            }
        }
    }
}

/// [`client_chain_valid`], and with `crls` (DER) not revoked: the leaf's issuer must have a
/// current list among them (its `nextUpdate` not passed) that does not list the leaf. Only
/// the leaf is checked (an intermediate's revocation is its root's list, rarely published
/// where clients are).
pub fn client_chain_check(
    roots: &TrustRoots,
    crls: &[Vec<u8>],
    chain: &[Vec<u8>],
) -> Result<(), ChainRefusal> {
    use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(ChainRefusal::Missing);
    };
    let leaf = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let mut builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider());
    if !crls.is_empty() {
        builder = builder
            .with_crls(
                crls.iter()
                    .map(|c| CertificateRevocationListDer::from(c.clone())),
            )
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration();
    }
    let verifier = builder.build().map_err(|_| ChainRefusal::Untrusted)?;
    match verifier.verify_client_cert(&leaf, &intermediates, UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) => {
            Err(ChainRefusal::Revoked)
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownRevocationStatus
            | rustls::CertificateError::ExpiredRevocationList
            | rustls::CertificateError::ExpiredRevocationListContext { .. },
        )) => Err(ChainRefusal::RevocationUnknown),
        Err(_) => Err(ChainRefusal::Untrusted),
    }
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

/// RFC 5929 §4.1 `tls-server-end-point` channel binding of server certificate `leaf` (DER):
/// its hash under the hash of its own signature algorithm (SHA-256 for SHA-1 and MD5, which
/// §4.1 upgrades). `None` for an unparseable certificate or a signature algorithm without a
/// single hash (Ed25519), where no binding is defined.
pub fn server_end_point(leaf: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    use x509_parser::oid_registry as oids;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (_, cert) = X509Certificate::from_der(leaf).ok()?;
    let alg = &cert.signature_algorithm.algorithm;
    let hash = if *alg == oids::OID_SIG_ECDSA_WITH_SHA384 || *alg == oids::OID_PKCS1_SHA384WITHRSA {
        &digest::SHA384
    } else if *alg == oids::OID_SIG_ECDSA_WITH_SHA512 || *alg == oids::OID_PKCS1_SHA512WITHRSA {
        &digest::SHA512
    } else if *alg == oids::OID_SIG_ECDSA_WITH_SHA256
        || *alg == oids::OID_PKCS1_SHA256WITHRSA
        || *alg == oids::OID_PKCS1_SHA1WITHRSA
        || *alg == oids::OID_PKCS1_MD5WITHRSAENC
    {
        &digest::SHA256
    } else {
        return None;
    };
    Some(digest::digest(hash, leaf).as_ref().to_vec())
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

    /// RFC 5929 §4.1: the binding hashes the certificate with its signature's own hash.
    #[test]
    fn the_server_end_point_binding_follows_the_signature_hash() {
        use aws_lc_rs::digest;
        for (alg, hash) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, &digest::SHA256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, &digest::SHA384),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["db.test".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let der = cert.der().to_vec();
            assert_eq!(
                super::server_end_point(&der),
                Some(digest::digest(hash, &der).as_ref().to_vec())
            );
        }
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_owned()])
            .unwrap()
            .self_signed(&ed)
            .unwrap();
        assert_eq!(super::server_end_point(cert.der()), None);
        assert_eq!(super::server_end_point(b"not a certificate"), None);
    }

    /// A CA (a name of its own) and a client certificate it signed.
    struct TestCa {
        roots: super::TrustRoots,
        leaf: Vec<u8>,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    /// The leaf's serial.
    const LEAF_SERIAL: [u8; 2] = [0x42, 0x17];

    fn test_ca() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose, SerialNumber,
        };
        static CAS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {n}"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        leaf.serial_number = Some(SerialNumber::from(LEAF_SERIAL.to_vec()));
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        TestCa {
            roots: super::roots_from_pem(&ca_cert.pem()).unwrap(),
            leaf: leaf.der().to_vec(),
            issuer,
        }
    }

    impl TestCa {
        /// Its list number `number` (PEM; a higher number is also a later `thisUpdate`),
        /// current until `next_update_days` from now (negative: stale), naming the leaf when
        /// `revoke_leaf`.
        fn list(&self, number: u64, revoke_leaf: bool, next_update_days: i64) -> String {
            use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason};
            use rcgen::{RevokedCertParams, SerialNumber};
            let now = time::OffsetDateTime::now_utc();
            let revoked_certs = if revoke_leaf {
                vec![RevokedCertParams {
                    serial_number: SerialNumber::from(LEAF_SERIAL.to_vec()),
                    revocation_time: now,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }]
            } else {
                Vec::new()
            };
            let earlier = time::Duration::minutes(10 - i64::try_from(number).unwrap());
            CertificateRevocationListParams {
                this_update: now - time::Duration::days(2) - earlier,
                next_update: now + time::Duration::days(next_update_days),
                crl_number: SerialNumber::from(number),
                issuing_distribution_point: None,
                revoked_certs,
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&self.issuer)
            .unwrap()
            .pem()
            .unwrap()
        }

        /// `pem`, read as lists of certificates from this CA.
        fn read(&self, pem: &str) -> Vec<Vec<u8>> {
            super::crls_from_bytes(pem.as_bytes(), &self.roots).unwrap()
        }

        /// The leaf checked against `crls`.
        fn check(&self, crls: &[Vec<u8>]) -> Result<(), super::ChainRefusal> {
            super::client_chain_check(&self.roots, crls, std::slice::from_ref(&self.leaf))
        }
    }

    #[test]
    fn a_current_list_admits_what_it_does_not_name_and_refuses_what_it_does() {
        use super::ChainRefusal;
        let ca = test_ca();
        assert_eq!(ca.check(&ca.read(&ca.list(1, false, 1))), Ok(()));
        assert_eq!(ca.check(&[]), Ok(()));
        let ca = test_ca();
        assert_eq!(
            ca.check(&ca.read(&ca.list(1, true, 1))),
            Err(ChainRefusal::Revoked)
        );
        // Without the list, the same certificate passes: revocation is what refused it.
        assert_eq!(ca.check(&[]), Ok(()));
    }

    #[test]
    fn of_two_lists_of_one_issuer_the_newer_counts_in_either_order() {
        use super::{newest_per_issuer, ChainRefusal};
        let ca = test_ca();
        let older = ca.read(&ca.list(1, false, 1));
        let newer = ca.read(&ca.list(2, true, 1));
        for lists in [
            [older.clone(), newer.clone()].concat(),
            [newer.clone(), older.clone()].concat(),
        ] {
            let kept = newest_per_issuer(lists);
            assert_eq!(kept.len(), 1);
            assert_eq!(ca.check(&kept), Err(ChainRefusal::Revoked));
        }
        // Without the choice, the verifier takes the first: the older one hides the revocation.
        assert_eq!(ca.check(&[older, newer].concat()), Ok(()));
    }

    #[test]
    fn a_stale_list_or_another_issuer_s_leaves_the_status_unknown() {
        use super::{crls_from_bytes, ChainRefusal};
        let ca = test_ca();
        assert_eq!(
            ca.check(&ca.read(&ca.list(1, false, -1))),
            Err(ChainRefusal::RevocationUnknown)
        );
        // Another CA's list only: nothing says this leaf stands.
        let other = test_ca();
        let ca = test_ca();
        assert_eq!(
            ca.check(&ca.read(&other.list(1, false, 1))),
            Err(ChainRefusal::RevocationUnknown)
        );
        assert!(crls_from_bytes(b"not a list", &ca.roots).is_err());
        assert!(crls_from_bytes(
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            &ca.roots
        )
        .is_err());
    }
}
