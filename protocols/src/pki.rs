//! The dynamic TLS PKI: a private root CA, an intermediate CA below it, and one leaf per
//! service, all ECDSA (P-384 for the CAs, P-256 for leaves) with SHA-2.
//!
//! Pure: the caller passes the current time in and persists what comes out. Private keys leave
//! this module only as PKCS#8 DER in [`Zeroizing`] buffers, for the caller to wrap at rest.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::Error;

const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(5 * 365 * 86_400);
/// Leaves live 90 days by default (`tls.leaf_lifetime`; Mozilla's "modern" profile wants at
/// most 90); [`needs_renewal`] renews them two thirds into their life, while the service runs.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(90 * 86_400);
/// Certificates are back-dated this much to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(3600);

static CA_ALG: &SignatureAlgorithm = &rcgen::PKCS_ECDSA_P384_SHA384;
static LEAF_ALG: &SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

/// A certificate with its PKCS#8 private key.
pub struct Issued {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// Unix time after which the certificate is no longer valid.
    pub not_after_unix: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("not_after_unix", &self.not_after_unix)
            .finish()
    }
}

/// The suite's private CA pair. `name` distinguishes suites (it is in both subjects).
#[derive(Debug)]
pub struct CaPair {
    /// Self-signed root: the trust anchor written to `<data-dir>/tls/ca.pem`.
    pub root: Issued,
    /// Intermediate signed by the root; it signs the leaves.
    pub intermediate: Issued,
}

/// Creates a new root and intermediate named after `name`.
pub fn generate_ca(name: &str, now: SystemTime) -> Result<CaPair, Error> {
    let root_key = new_key(CA_ALG, "root key")?;
    let root_params = ca_params(
        &format!("cryptoutil root CA {name}"),
        None,
        now,
        ROOT_LIFETIME,
    )?;
    let root_cert = root_params
        .self_signed(&root_key)
        .map_err(cert_err("root"))?;
    let root_issuer = Issuer::new(root_params, &root_key);

    let int_key = new_key(CA_ALG, "intermediate key")?;
    let int_params = ca_params(&intermediate_cn(name), Some(0), now, INTERMEDIATE_LIFETIME)?;
    let int_cert = int_params
        .signed_by(&int_key, &root_issuer)
        .map_err(cert_err("intermediate"))?;
    Ok(CaPair {
        root: issued(root_cert.der().to_vec(), &root_key, now, ROOT_LIFETIME),
        intermediate: issued(
            int_cert.der().to_vec(),
            &int_key,
            now,
            INTERMEDIATE_LIFETIME,
        ),
    })
}

/// Issues a TLS server leaf for `dns_names` and `ips` from the intermediate of suite `name`,
/// valid for `life` from `now`.
pub fn issue_leaf(
    name: &str,
    intermediate_key_pkcs8: &[u8],
    common_name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    now: SystemTime,
    life: Duration,
) -> Result<Issued, Error> {
    let int_key = load_key(intermediate_key_pkcs8, CA_ALG, "intermediate key")?;
    // The issuer's subject and key identifier are derived from the same params and key as at
    // generation, so the leaf's issuer and AKI match the stored intermediate.
    let int_params = ca_params(&intermediate_cn(name), Some(0), now, INTERMEDIATE_LIFETIME)?;
    let issuer = Issuer::new(int_params, &int_key);

    let leaf_key = new_key(LEAF_ALG, "leaf key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    for dns in dns_names {
        let ia5 = dns.as_str().try_into().map_err(cert_err("leaf SAN"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    set_validity(&mut params, now, life)?;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&leaf_key, &issuer)
        .map_err(cert_err("leaf"))?;
    Ok(issued(cert.der().to_vec(), &leaf_key, now, life))
}

/// A certification request (PKCS#10, DER) for a TLS server leaf of `common_name` with
/// `dns_names` and `ips`, and its new private key (PKCS#8): what a service sends its CA
/// (EST `/simpleenroll`) when the CA, not the dynamic PKI, issues its certificate.
pub fn leaf_request(
    common_name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), Error> {
    let key = new_key(LEAF_ALG, "leaf key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    for dns in dns_names {
        let ia5 = dns.as_str().try_into().map_err(cert_err("request SAN"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let csr = params
        .serialize_request(&key)
        .map_err(cert_err("request"))?;
    Ok((csr.der().to_vec(), Zeroizing::new(key.serialize_der())))
}

/// The `notBefore` and `notAfter` of a DER X.509 certificate (RFC 5280 §4.1.2.5), in Unix
/// seconds.
pub fn validity(cert_der: &[u8]) -> Result<(u64, u64), Error> {
    let bad = || Error::Certificate {
        what: "certificate",
        reason: "not an X.509 certificate".into(),
    };
    let (cert, _) = crate::der::expect(cert_der, 0x30).ok_or_else(bad)?;
    let (mut tbs, _) = crate::der::expect(cert, 0x30).ok_or_else(bad)?;
    // [0] version (optional), serialNumber, signature, issuer, then validity.
    if tbs.first() == Some(&0xa0) {
        tbs = crate::der::tlv(tbs).ok_or_else(bad)?.2;
    }
    for _ in 0..3 {
        tbs = crate::der::tlv(tbs).ok_or_else(bad)?.2;
    }
    let (validity, _) = crate::der::expect(tbs, 0x30).ok_or_else(bad)?;
    let (tag, time, rest) = crate::der::tlv(validity).ok_or_else(bad)?;
    let not_before = unix_time(tag, time).ok_or_else(bad)?;
    let (tag, time, _) = crate::der::tlv(rest).ok_or_else(bad)?;
    Ok((not_before, unix_time(tag, time).ok_or_else(bad)?))
}

/// A UTCTime (tag 0x17) or GeneralizedTime (0x18) of RFC 5280's forms, in Unix seconds.
fn unix_time(tag: u8, time: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    let full = match (tag, digits.len()) {
        // UTCTime YYMMDDHHMMSSZ: 50-99 are 19xx (RFC 5280 §4.1.2.5.1).
        (0x17, 12) => {
            let yy: u32 = digits.get(..2)?.parse().ok()?;
            format!("{}{digits}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => digits.to_owned(),
        _ => return None,
    };
    let field = |range: std::ops::Range<usize>| -> Option<u32> { full.get(range)?.parse().ok() };
    let month = time::Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(field(0..4)?).ok()?,
        month,
        u8::try_from(field(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(field(8..10)?).ok()?,
        u8::try_from(field(10..12)?).ok()?,
        u8::try_from(field(12..14)?).ok()?,
    )
    .ok()?;
    let unix = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(unix).ok()
}

/// When a certificate valid from `not_before` to `not_after` (Unix seconds) is renewed: two
/// thirds into its lifetime (a 90-day certificate 30 days before it expires, one of a few
/// minutes a third of its life early), which leaves a third of it to ride out a CA outage.
pub fn renew_at(not_before: u64, not_after: u64) -> u64 {
    not_before.saturating_add(not_after.saturating_sub(not_before) / 3 * 2)
}

/// When a certificate valid from `not_before` to `not_after` (Unix seconds) enters the last
/// tenth of its life: from then a certificate the suite's CA issued is no longer presented (the
/// service's own is, until a new one comes).
pub fn last_tenth(not_before: u64, not_after: u64) -> u64 {
    not_after.saturating_sub(not_after.saturating_sub(not_before) / 10)
}

/// When a dynamic leaf of `life` expiring at `not_after` is renewed: two thirds into `life`
/// (counted without the hour it is back-dated, which would dwarf a short life).
pub fn leaf_renew_at(not_after: u64, life: Duration) -> u64 {
    not_after.saturating_sub(life.as_secs() / 3)
}

/// True when a dynamic leaf expiring at `not_after` (Unix seconds) should be replaced at `now`
/// by one of `life`: it is two thirds into its life ([`leaf_renew_at`]), or it lives longer
/// than `life` allows (issued before the lifetime was shortened).
pub fn needs_renewal(not_after: u64, life: Duration, now: SystemTime) -> bool {
    let now = unix(now);
    now >= leaf_renew_at(not_after, life) || not_after > now.saturating_add(life.as_secs())
}

/// PEM armour for one DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem("CERTIFICATE", der)
}

/// PEM armour for one DER PKCS#10 request (`CERTIFICATE REQUEST`).
pub fn csr_pem(der: &[u8]) -> String {
    pem("CERTIFICATE REQUEST", der)
}

/// PEM armour for a PKCS#8 private key (`PRIVATE KEY`), zeroized when dropped.
pub fn private_key_pem(pkcs8: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(pem("PRIVATE KEY", pkcs8))
}

/// RFC 7468 textual encoding: base64 in 64-column lines between BEGIN and END labels.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn intermediate_cn(name: &str) -> String {
    format!("cryptoutil intermediate CA {name}")
}

fn ca_params(
    cn: &str,
    path_len: Option<u8>,
    now: SystemTime,
    lifetime: Duration,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = path_len.is_some();
    set_validity(&mut params, now, lifetime)?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cryptoutil");
    dn.push(DnType::CommonName, cn);
    dn
}

fn set_validity(p: &mut CertificateParams, now: SystemTime, life: Duration) -> Result<(), Error> {
    let start = unix(now).saturating_sub(BACKDATE.as_secs());
    let end = unix(now).saturating_add(life.as_secs());
    p.not_before = to_time(start)?;
    p.not_after = to_time(end)?;
    Ok(())
}

pub(crate) fn to_time(secs: u64) -> Result<time::OffsetDateTime, Error> {
    let secs = i64::try_from(secs).map_err(|_| Error::Certificate {
        what: "validity",
        reason: "time out of range".into(),
    })?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| Error::Certificate {
        what: "validity",
        reason: e.to_string(),
    })
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_serial() -> Result<rcgen::SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    bytes[0] &= 0x7f; // positive INTEGER (RFC 5280 §4.1.2.2)
    bytes[0] |= 0x01; // and exactly 16 bytes long
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

fn new_key(alg: &'static SignatureAlgorithm, what: &'static str) -> Result<KeyPair, Error> {
    KeyPair::generate_for(alg).map_err(cert_err(what))
}

fn load_key(
    pkcs8: &[u8],
    alg: &'static SignatureAlgorithm,
    what: &'static str,
) -> Result<KeyPair, Error> {
    let der = PrivatePkcs8KeyDer::from(pkcs8);
    KeyPair::from_pkcs8_der_and_sign_algo(&der, alg).map_err(cert_err(what))
}

fn issued(cert_der: Vec<u8>, key: &KeyPair, now: SystemTime, life: Duration) -> Issued {
    Issued {
        cert_der,
        key_pkcs8: Zeroizing::new(key.serialize_der()),
        not_after_unix: unix(now).saturating_add(life.as_secs()),
    }
}

pub(crate) fn cert_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Certificate {
        what,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_chains_to_the_intermediate_and_renews_before_expiry() {
        let now = SystemTime::now();
        let ca = generate_ca("test", now).unwrap();
        let leaf = issue_leaf(
            "test",
            &ca.intermediate.key_pkcs8,
            "kms",
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
            now,
            LEAF_LIFETIME,
        )
        .unwrap();
        assert!(!leaf.cert_der.is_empty());
        let (not_before, not_after) = validity(&leaf.cert_der).unwrap();
        assert_eq!(not_after - (not_before + BACKDATE.as_secs()), 90 * 86_400);
        assert_eq!(not_after, leaf.not_after_unix);
        let renews = |at| needs_renewal(not_after, LEAF_LIFETIME, at);
        let day = Duration::from_secs(86_400);
        assert!(!renews(now));
        assert!(!renews(now + 59 * day));
        assert!(renews(now + 61 * day));
        // A shorter lifetime configured since: replaced at once.
        assert!(needs_renewal(not_after, 30 * day, now));
        // A short life is not swallowed by the hour of back-dating.
        let short = Duration::from_secs(30);
        let t = unix(now) + 30;
        assert!(!needs_renewal(t, short, now + Duration::from_secs(19)));
        assert!(needs_renewal(t, short, now + Duration::from_secs(21)));
        assert!(cert_pem(&ca.root.cert_der).starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!format!("{:?}", ca.root).contains("key"));
    }

    #[test]
    fn not_after_reads_ours_and_openssl_s_certificates() {
        use rustls_pki_types::pem::PemObject as _;
        let now = SystemTime::now();
        let ca = generate_ca("test", now).unwrap();
        let leaf = issue_leaf(
            "test",
            &ca.intermediate.key_pkcs8,
            "kms",
            &[],
            &[],
            now,
            LEAF_LIFETIME,
        )
        .unwrap();
        assert_eq!(validity(&leaf.cert_der).unwrap().1, leaf.not_after_unix);
        // `openssl x509 -noout -enddate`: notAfter=Nov 28 19:38:37 2036 GMT.
        let pem = include_str!("../testdata/est-certs-only.pem");
        let first = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(validity(&first).unwrap().1, 2_111_513_917);
        // notBefore=Dec  1 19:38:37 2026 GMT.
        assert_eq!(validity(&first).unwrap(), (1_796_153_917, 2_111_513_917));
        assert_eq!(renew_at(1_000, 1_300), 1_200);
        assert_eq!(renew_at(1_000, 999), 1_000);
        for cut in [0, 5, first.len() / 3] {
            assert!(validity(&first[..cut]).is_err());
        }
    }

    #[test]
    fn a_leaf_request_carries_its_names_and_a_fresh_key() {
        let (csr, key) =
            leaf_request("kms", &["kms".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
        let (csr2, key2) = leaf_request("kms", &["kms".into()], &[]).unwrap();
        assert!(csr.first() == Some(&0x30) && csr != csr2);
        assert_ne!(key.as_slice(), key2.as_slice());
        assert!(csr.windows(3).any(|w| w == b"kms"));
    }

    #[test]
    fn a_wrong_intermediate_key_is_an_error_not_a_panic() {
        let err = issue_leaf(
            "x",
            b"not a key",
            "kms",
            &[],
            &[],
            SystemTime::now(),
            LEAF_LIFETIME,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::Certificate {
                what: "intermediate key",
                ..
            }
        ));
    }
}
