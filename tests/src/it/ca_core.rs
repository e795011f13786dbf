//! The CA's certificate work (`cryptoutil_protocols::ca`), judged by tools no one here wrote:
//! `openssl verify` walks every profile's certificate up to its root with the profile's
//! purpose, and pkilint's `lint_pkix_cert` finds no ERROR or FATAL in any of them, the CAs
//! included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use cryptoutil_protocols::ca::{self, profile, CaSpec, Issue, IssuingCa, KeyType, Subject, Urls};
use cryptoutil_protocols::pki::cert_pem;
use rcgen::{CertificateParams, KeyPair, SanType};

use super::ca_service::run;
use super::jose_interop::python;

fn spec(cn: &str, path_len: Option<u8>) -> CaSpec {
    CaSpec {
        subject: Subject {
            common_name: cn.into(),
            organization: Some("cryptoutil".into()),
        },
        validity: Duration::from_secs(5 * 365 * 86_400),
        path_len,
        permitted_dns: Vec::new(),
        policies: vec!["1.3.6.1.4.1.55555.1.1".into()],
    }
}

fn request(key: &KeyPair, cn: &str, sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().der().to_vec()
}

/// pkilint's `lint_pkix_cert` on `file`: passes when no finding is ERROR or FATAL.
fn pkilint(file: &Path) -> (bool, String) {
    let bin = python().parent().unwrap().join("lint_pkix_cert");
    run(Command::new(bin).args(["lint", "-s", "ERROR"]).arg(file))
}

#[test]
fn every_profile_issues_what_openssl_verifies_and_pkilint_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let write = |name: &str, der: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, cert_pem(der)).unwrap();
        path
    };
    let urls = Urls {
        crl: Some("http://ca.example.test/crl/issuing.crl".into()),
        ocsp: Some("http://ca.example.test/ocsp".into()),
        ca_issuers: Some("http://ca.example.test/issuing.der".into()),
    };

    let root_key = KeyType::P384.generate().unwrap();
    let root_der = ca::root(
        &spec("cryptoutil test root", Some(1)),
        KeyType::P384,
        &root_key,
        &ca::random_serial().unwrap(),
        now,
    )
    .unwrap();
    let root = IssuingCa {
        cert_der: &root_der,
        key_pkcs8: &root_key,
        key_type: KeyType::P384,
    };
    let int_key = KeyType::Rsa3072.generate().unwrap();
    let int_der = ca::intermediate(
        &spec("cryptoutil test issuing", None),
        KeyType::Rsa3072,
        &int_key,
        &root,
        &Urls {
            crl: Some("http://ca.example.test/crl/root.crl".into()),
            ocsp: None,
            ca_issuers: Some("http://ca.example.test/root.der".into()),
        },
        &ca::random_serial().unwrap(),
        now,
    )
    .unwrap();
    let issuing = IssuingCa {
        cert_der: &int_der,
        key_pkcs8: &int_key,
        key_type: KeyType::Rsa3072,
    };
    let root_pem = write("root.pem", &root_der);
    let int_pem = write("issuing.pem", &int_der);

    let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let dns = |n: &str| SanType::DnsName(n.try_into().unwrap());
    let cases: Vec<(&str, &KeyPair, Vec<SanType>, &str)> = vec![
        (
            "tls-server",
            &ec,
            vec![
                dns("svc.example.test"),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            "sslserver",
        ),
        (
            "tls-server",
            &rsa,
            vec![dns("rsa.example.test")],
            "sslserver",
        ),
        (
            "tls-client",
            &ec,
            vec![dns("client.example.test")],
            "sslclient",
        ),
        ("code-signing", &ec, Vec::new(), "any"),
        (
            "email",
            &ec,
            vec![SanType::Rfc822Name(
                "someone@example.test".try_into().unwrap(),
            )],
            "smimesign",
        ),
        ("ocsp-signing", &ec, Vec::new(), "ocsphelper"),
        ("time-stamping", &ec, Vec::new(), "timestampsign"),
    ];
    let mut files = vec![root_pem.clone(), int_pem.clone()];
    for (i, (profile_name, key, sans, purpose)) in cases.into_iter().enumerate() {
        let csr = ca::csr::parse(&request(key, &format!("{profile_name} {i}"), sans)).unwrap();
        let profile = profile::builtin(profile_name).unwrap();
        let der = ca::issue(
            &issuing,
            &Issue {
                csr: &csr,
                profile: &profile,
                validity: None,
                serial: &ca::random_serial().unwrap(),
                urls: &urls,
            },
            now,
        )
        .unwrap();
        let leaf = write(&format!("{i}-{profile_name}.pem"), &der);
        let (ok, text) = run(Command::new("openssl")
            .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
            .arg(&root_pem)
            .arg("-untrusted")
            .arg(&int_pem)
            .arg(&leaf));
        assert!(
            ok,
            "{profile_name}: openssl verify -purpose {purpose}:\n{text}"
        );
        files.push(leaf);
    }
    // A sub-CA, from the root (the issuing CA's path length is 0).
    let sub_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let csr = ca::csr::parse(&request(&sub_key, "cryptoutil test sub-CA", Vec::new())).unwrap();
    let sub = ca::issue(
        &root,
        &Issue {
            csr: &csr,
            profile: &profile::builtin("sub-ca").unwrap(),
            validity: None,
            serial: &ca::random_serial().unwrap(),
            urls: &urls,
        },
        now,
    )
    .unwrap();
    let sub_pem = write("sub-ca.pem", &sub);
    let (ok, text) = run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(&root_pem)
        .arg(&sub_pem));
    assert!(ok, "sub-ca: {text}");
    files.push(sub_pem);

    for file in files {
        let (ok, text) = pkilint(&file);
        assert!(ok, "pkilint {}:\n{text}", file.display());
    }
}
