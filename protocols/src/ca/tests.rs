use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair, SanType};
use x509_parser::extensions::ParsedExtension;

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn spec(cn: &str, path_len: Option<u8>) -> CaSpec {
    CaSpec {
        subject: Subject {
            common_name: cn.into(),
            organization: Some("cryptoutil tests".into()),
        },
        validity: 3650 * DAY,
        path_len,
        permitted_dns: Vec::new(),
        policies: Vec::new(),
    }
}

/// A request for `sans`, signed with a new key of `alg`.
fn request(alg: &'static rcgen::SignatureAlgorithm, sans: Vec<SanType>) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "svc.example.test");
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

struct Ca {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    key_type: KeyType,
}

impl Ca {
    fn issuing(&self) -> IssuingCa<'_> {
        IssuingCa {
            cert_der: &self.cert,
            key_pkcs8: &self.key,
            key_type: self.key_type,
        }
    }
}

fn new_root(key_type: KeyType, spec: &CaSpec) -> Ca {
    let key = key_type.generate().unwrap();
    let cert = root(
        spec,
        key_type,
        &key,
        &random_serial().unwrap(),
        SystemTime::now(),
    )
    .unwrap();
    Ca {
        cert,
        key,
        key_type,
    }
}

fn new_intermediate(parent: &Ca, key_type: KeyType, spec: &CaSpec) -> Result<Ca, Error> {
    let key = key_type.generate().unwrap();
    let cert = intermediate(
        spec,
        key_type,
        &key,
        &parent.issuing(),
        &Urls::default(),
        &random_serial().unwrap(),
        SystemTime::now(),
    )?;
    Ok(Ca {
        cert,
        key,
        key_type,
    })
}

fn urls() -> Urls {
    Urls {
        crl: Some("http://ca.example.test/crl".into()),
        ocsp: Some("http://ca.example.test/ocsp".into()),
        ca_issuers: Some("http://ca.example.test/ca.der".into()),
    }
}

fn issue_with(
    ca: &Ca,
    csr: &[u8],
    profile: &str,
    validity: Option<Duration>,
) -> Result<Vec<u8>, Error> {
    let csr = csr::parse(csr)?;
    let profile = profile::builtin(profile).unwrap();
    issue(
        &ca.issuing(),
        &Issue {
            csr: &csr,
            profile: &profile,
            validity,
            serial: &random_serial().unwrap(),
            urls: &urls(),
        },
        SystemTime::now(),
    )
}

fn refusal(result: Result<Vec<u8>, Error>) -> CaError {
    match result {
        Err(Error::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_leaf_from_a_request_carries_the_profile_the_chain_and_the_urls() {
    let root_ca = new_root(KeyType::P384, &spec("Root", Some(1)));
    let issuing = new_intermediate(&root_ca, KeyType::P256, &spec("Issuing", None)).unwrap();
    let csr = request(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        vec![dns("svc.example.test")],
    );
    let der = issue_with(&issuing, &csr, "tls-server", None).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let (_, int) = x509_parser::parse_x509_certificate(&issuing.cert).unwrap();
    assert_eq!(cert.issuer(), int.subject());
    // The intermediate inherited path length 0 from its parent's 1.
    let bc = int.basic_constraints().unwrap().unwrap().value;
    assert_eq!((bc.ca, bc.path_len_constraint), (true, Some(0)));
    let mut seen = Vec::new();
    for ext in cert.extensions() {
        seen.push(ext.oid.to_id_string());
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(eku) => assert!(eku.server_auth && !eku.client_auth),
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                let ski = int
                    .extensions()
                    .iter()
                    .find_map(|e| match e.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                        _ => None,
                    });
                assert_eq!(aki.key_identifier.as_ref().map(|k| k.0.to_vec()), ski);
            }
            _ => {}
        }
    }
    for oid in [
        "2.5.29.15",         // key usage
        "2.5.29.37",         // extended key usage
        "2.5.29.35",         // AKI
        "2.5.29.14",         // SKI
        "2.5.29.31",         // CRL distribution points
        "1.3.6.1.5.5.7.1.1", // AIA
        "2.5.29.17",         // SAN
    ] {
        assert!(seen.iter().any(|s| s == oid), "{oid} missing from {seen:?}");
    }
    assert!(cert.verify_signature(Some(int.public_key())).is_ok());
    // 90 days by default; at most the profile's maximum.
    let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(life, 90 * 86_400 + 300);
    let e = refusal(issue_with(&issuing, &csr, "tls-server", Some(398 * DAY)));
    assert_eq!(e.field, "validity");
}

#[test]
fn every_key_type_makes_a_working_root() {
    for key_type in [KeyType::P256, KeyType::P384, KeyType::Rsa3072] {
        let ca = new_root(key_type, &spec("Root", None));
        let (_, cert) = x509_parser::parse_x509_certificate(&ca.cert).unwrap();
        assert!(cert.verify_signature(None).is_ok(), "{key_type:?}");
        let csr = request(&rcgen::PKCS_ECDSA_P384_SHA384, vec![dns("a.example.test")]);
        issue_with(&ca, &csr, "tls-server", None).unwrap();
    }
}

#[test]
fn requests_with_bad_signatures_garbage_or_forbidden_names_are_refused_by_field() {
    let ca = new_root(KeyType::P256, &spec("Root", None));
    let good = request(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        vec![dns("svc.example.test")],
    );
    // A flipped bit in the signature (the last byte of the DER).
    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    for bad in [
        tampered,
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        assert_eq!(
            refusal(issue_with(&ca, &bad, "tls-server", None)).field,
            "csr"
        );
    }
    let email = request(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        vec![SanType::Rfc822Name("a@example.test".try_into().unwrap())],
    );
    let e = refusal(issue_with(&ca, &email, "tls-server", None));
    assert_eq!(e.field, "subject_alt_names");
    assert!(e.reason.contains("email"), "{e}");
    // No name at all for a server.
    let none = request(&rcgen::PKCS_ECDSA_P256_SHA256, Vec::new());
    assert_eq!(
        refusal(issue_with(&ca, &none, "tls-server", None)).field,
        "subject_alt_names"
    );
    // PEM works as well as DER.
    let pem = crate::pki::cert_pem(&good).replace("CERTIFICATE", "CERTIFICATE REQUEST");
    assert!(issue_with(&ca, pem.as_bytes(), "tls-server", None).is_ok());
}

#[test]
fn name_constraints_and_path_length_bind_what_a_ca_may_sign() {
    let mut constrained = spec("Constrained", Some(0));
    constrained.permitted_dns = vec!["example.test".into()];
    constrained.policies = vec!["1.3.6.1.4.1.55555.1".into()];
    let root_ca = new_root(KeyType::P256, &constrained);
    let inside = request(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        vec![dns("a.b.example.test")],
    );
    assert!(issue_with(&root_ca, &inside, "tls-server", None).is_ok());
    let outside = request(&rcgen::PKCS_ECDSA_P256_SHA256, vec![dns("evil.test")]);
    let e = refusal(issue_with(&root_ca, &outside, "tls-server", None));
    assert_eq!(e.field, "subject_alt_names");
    // Path length 0: no CA below it, neither by creation nor by the sub-ca profile.
    let err = new_intermediate(&root_ca, KeyType::P256, &spec("Below", None));
    assert!(matches!(
        err,
        Err(Error::Refused(CaError {
            field: "parent",
            ..
        }))
    ));
    let e = refusal(issue_with(&root_ca, &inside, "sub-ca", None));
    assert_eq!(e.field, "profile");
    let mut bad = spec("Bad", None);
    bad.policies = vec!["not.an.oid".into()];
    let key = KeyType::P256.generate().unwrap();
    let err = root(
        &bad,
        KeyType::P256,
        &key,
        &random_serial().unwrap(),
        SystemTime::now(),
    );
    assert!(matches!(
        err,
        Err(Error::Refused(CaError {
            field: "policies",
            ..
        }))
    ));
}

#[test]
fn serials_are_sixteen_positive_bytes_and_differ() {
    let a = random_serial().unwrap();
    let b = random_serial().unwrap();
    assert_ne!(a, b);
    assert!(a[0] & 0x80 == 0 && a[0] != 0);
}

#[test]
fn serials_grow_with_time_and_keep_eighty_random_bits() {
    let t = UNIX_EPOCH + Duration::from_millis(1_796_000_000_000);
    let (a, b) = (serial_at(t).unwrap(), serial_at(t).unwrap());
    let later = serial_at(t + Duration::from_millis(1)).unwrap();
    assert_eq!(a[..6], 1_796_000_000_000u64.to_be_bytes()[2..]);
    assert_eq!(a[..6], b[..6]);
    assert_ne!(a[6..], b[6..], "the random part differs");
    assert!(a < later && b < later, "a later millisecond sorts after");
    assert_eq!(serial_hex(&a).len(), 32);
    assert!(
        serial_hex(&a) < serial_hex(&later),
        "and so does its hex (the record key)"
    );
}
