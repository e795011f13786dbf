//! A private X.509 CA's certificate work, pure: CA keys (P-256, P-384, RSA 3072/4096), root and
//! intermediate certificates, PKCS#10 requests checked, and certificates issued under a
//! profile with AKI/SKI, CRL distribution point and AIA (OCSP and caIssuers).
//!
//! The `CaSigner` actor holds a CA's unsealed key and calls into this module; serial
//! uniqueness across restarts, revocation and storage are the actor's. Everything a caller can
//! get wrong is a [`CaError`] naming the field (the API's 400).
//!
//! # Layout
//! - [`profile`]: what a certificate of each kind may and must carry.
//! - [`csr`]: PKCS#10 requests, signature checked, keys and algorithms FIPS-approved.
//! - [`crl`]: revocation reasons and CRLs.
//! - [`ocsp`]: OCSP requests and signed responses.
//! - [`tsa`]: RFC 3161 time-stamp requests and tokens.
//! - [`der`]: the few DER encodings rcgen has no type for (AIA, policies, critical EKU).

pub mod crl;
pub mod csr;
mod der;
pub mod ocsp;
pub mod profile;
pub mod tsa;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints,
    SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::pki::{cert_err, to_time as time, unix};

pub use crl::{crl, CrlSpec, Reason, Revoked};
pub use csr::{Csr, San};
pub use profile::Profile;

/// Issued certificates start this long before the request, for clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(300);

/// A refusal of the caller's input, naming the field: the API answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CaError {
    /// The request field at fault (`csr`, `profile`, `validity`, `subject_alt_names`, ...).
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl CaError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// The key of a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyType {
    /// ECDSA P-256, signing with SHA-256.
    #[serde(rename = "P-256")]
    P256,
    /// ECDSA P-384, signing with SHA-384.
    #[serde(rename = "P-384")]
    P384,
    /// RSA 3072, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "RSA-3072")]
    Rsa3072,
    /// RSA 4096, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "RSA-4096")]
    Rsa4096,
}

impl KeyType {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// A new private key of this type, PKCS#8 DER.
    pub fn generate(self) -> Result<Zeroizing<Vec<u8>>, crate::Error> {
        let key = match self {
            KeyType::P256 | KeyType::P384 => KeyPair::generate_for(self.algorithm()),
            KeyType::Rsa3072 => {
                KeyPair::generate_rsa_for(self.algorithm(), rcgen::RsaKeySize::_3072)
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(self.algorithm(), rcgen::RsaKeySize::_4096)
            }
        }
        .map_err(cert_err("CA key"))?;
        Ok(Zeroizing::new(key.serialize_der()))
    }

    fn load(self, pkcs8: &[u8]) -> Result<KeyPair, crate::Error> {
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), self.algorithm())
            .map_err(cert_err("CA key"))
    }
}

/// The subject of a CA certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    /// CN.
    pub common_name: String,
    /// O, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

impl Subject {
    fn checked(&self) -> Result<DistinguishedName, CaError> {
        let mut dn = DistinguishedName::new();
        if let Some(o) = &self.organization {
            dn.push(
                DnType::OrganizationName,
                printable("subject.organization", o)?,
            );
        }
        dn.push(
            DnType::CommonName,
            printable("subject.common_name", &self.common_name)?,
        );
        Ok(dn)
    }
}

fn printable<'a>(field: &'static str, value: &'a str) -> Result<&'a str, CaError> {
    if value.trim().is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
        return Err(CaError::new(
            field,
            "1 to 64 characters, no control characters",
        ));
    }
    Ok(value)
}

/// What a new CA certificate says besides its subject and key.
#[derive(Debug, Clone)]
pub struct CaSpec {
    /// Its subject.
    pub subject: Subject,
    /// How long it is valid.
    pub validity: Duration,
    /// `pathLenConstraint`: how many CAs may follow it (none: unlimited).
    pub path_len: Option<u8>,
    /// Permitted DNS subtrees (name constraints); empty: none.
    pub permitted_dns: Vec<String>,
    /// Certificate policy OIDs (dotted); empty: none.
    pub policies: Vec<String>,
}

/// Where relying parties find a CA's CRL, OCSP responder and certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Urls {
    /// The CRL of the issuing CA (CRL distribution point).
    pub crl: Option<String>,
    /// The OCSP responder (AIA).
    pub ocsp: Option<String>,
    /// The issuing CA's certificate, DER (AIA caIssuers).
    pub ca_issuers: Option<String>,
}

/// A CA able to sign: its certificate and its key.
pub struct IssuingCa<'a> {
    /// The CA's certificate, DER.
    pub cert_der: &'a [u8],
    /// Its private key, PKCS#8 DER.
    pub key_pkcs8: &'a [u8],
    /// Its key type.
    pub key_type: KeyType,
}

/// A new self-signed root: its certificate (DER) with the `key_pkcs8` of `key_type`.
pub fn root(
    spec: &CaSpec,
    key_type: KeyType,
    key_pkcs8: &[u8],
    serial: &[u8; 16],
    now: SystemTime,
) -> Result<Vec<u8>, Error> {
    let key = key_type.load(key_pkcs8)?;
    let mut params = ca_params(spec, serial, now)?;
    params.not_after = time(unix(now).saturating_add(spec.validity.as_secs()))?;
    let cert = params.self_signed(&key).map_err(cert_err("root"))?;
    Ok(cert.der().to_vec())
}

/// A new intermediate (DER) with `key_pkcs8` of `key_type`, signed by `parent`. It expires no
/// later than its parent.
pub fn intermediate(
    spec: &CaSpec,
    key_type: KeyType,
    key_pkcs8: &[u8],
    parent: &IssuingCa<'_>,
    urls: &Urls,
    serial: &[u8; 16],
    now: SystemTime,
) -> Result<Vec<u8>, Error> {
    Signer::new(parent)?.intermediate(spec, key_type, key_pkcs8, urls, serial, now)
}

/// One certificate to issue from a checked request.
#[derive(Debug)]
pub struct Issue<'a> {
    /// The request (its key and names).
    pub csr: &'a Csr,
    /// The profile it is issued under.
    pub profile: &'a Profile,
    /// How long it should be valid (none: the profile's default).
    pub validity: Option<Duration>,
    /// Its serial: 16 random bytes, top bit clear (the caller keeps it unique).
    pub serial: &'a [u8; 16],
    /// Distribution URLs of the issuing CA.
    pub urls: &'a Urls,
}

/// Issues `req` from `ca`: checks the request against the profile and the CA's own name
/// constraints, then signs. The certificate (DER) expires no later than the CA.
pub fn issue(ca: &IssuingCa<'_>, req: &Issue<'_>, now: SystemTime) -> Result<Vec<u8>, Error> {
    Ok(Signer::new(ca)?.issue(req, now)?.der)
}

/// A certificate just signed, and what the API shows of it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub der: Vec<u8>,
    /// Its subject, serial and validity.
    pub summary: Summary,
}

/// An issuing CA ready to sign: its key loaded and its certificate read once, for as many
/// signatures as its holder (the `CaSigner` actor) makes.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    limits: Limits,
    key_type: KeyType,
    /// The CA's subject, DER (a hand-built CRL's issuer).
    name_der: Vec<u8>,
    /// The CA's subject key identifier (a hand-built CRL's AKI).
    ski: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// `ca` prepared: its key loaded, its certificate's limits read.
    pub fn new(ca: &IssuingCa<'_>) -> Result<Self, Error> {
        let limits = parent_limits(ca.cert_der)?;
        let key = ca.key_type.load(ca.key_pkcs8)?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca.cert_der), key)
            .map_err(cert_err("issuing CA certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der)
            .map_err(|e| cert_err("CA certificate")(e))?;
        let ski = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_else(|| {
                crate::sha256(cert.public_key().subject_public_key.data.as_ref())[..20].to_vec()
            });
        Ok(Self {
            issuer,
            limits,
            key_type: ca.key_type,
            name_der: cert.subject().as_raw().to_vec(),
            ski,
        })
    }

    /// A new intermediate (DER) with `key_pkcs8` of `key_type`; it expires no later than this
    /// CA.
    pub fn intermediate(
        &self,
        spec: &CaSpec,
        key_type: KeyType,
        key_pkcs8: &[u8],
        urls: &Urls,
        serial: &[u8; 16],
        now: SystemTime,
    ) -> Result<Vec<u8>, Error> {
        let limits = &self.limits;
        if limits.path_len == Some(0) {
            return Err(Error::Refused(CaError::new(
                "parent",
                "the parent CA's path length constraint is 0: it may not sign CAs",
            )));
        }
        if let (Some(parent_len), Some(len)) = (limits.path_len, spec.path_len) {
            if len >= parent_len {
                return Err(Error::Refused(CaError::new(
                    "path_len",
                    format!("must be less than the parent's ({parent_len})"),
                )));
            }
        }
        let key = key_type.load(key_pkcs8)?;
        let mut params = ca_params(spec, serial, now)?;
        if spec.path_len.is_none() {
            if let Some(parent_len) = limits.path_len {
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(parent_len - 1));
            }
        }
        let (cert, _) = self.sign(params, &key, urls, spec.validity, now, "intermediate")?;
        Ok(cert)
    }

    /// Issues `req`: checks the request against the profile and this CA's name constraints,
    /// then signs. The certificate expires no later than the CA.
    pub fn issue(&self, req: &Issue<'_>, now: SystemTime) -> Result<Issued, Error> {
        let limits = &self.limits;
        let profile = req.profile;
        profile.check(req.csr).map_err(Error::Refused)?;
        for san in &req.csr.sans {
            if let San::Dns(name) = san {
                if !limits.permits_dns(name) {
                    return Err(Error::Refused(CaError::new(
                        "subject_alt_names",
                        format!("{name} is outside the CA's name constraints"),
                    )));
                }
            }
        }
        if profile.is_ca && limits.path_len == Some(0) {
            return Err(Error::Refused(CaError::new(
                "profile",
                "this CA's path length constraint is 0: it may not issue sub-CAs",
            )));
        }
        let validity = req.validity.unwrap_or(profile.default_validity);
        if validity.is_zero() || validity > profile.max_validity {
            return Err(Error::Refused(CaError::new(
                "validity",
                format!(
                    "at most {} days for profile {}",
                    profile.max_validity.as_secs() / 86_400,
                    profile.name
                ),
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = req.csr.subject.clone();
        params.subject_alt_names = req
            .csr
            .sans
            .iter()
            .map(San::to_rcgen)
            .collect::<Result<_, _>>()?;
        profile.apply(&mut params, req.csr);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(req.serial));
        params.not_before = time(unix(now).saturating_sub(BACKDATE.as_secs()))?;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let public = rcgen::SubjectPublicKeyInfo::from_der(&req.csr.spki_der)
            .map_err(cert_err("request key"))?;
        let subject = req.csr.subject_text.clone();
        let (der, (not_before, not_after)) =
            self.sign(params, &public, req.urls, validity, now, "certificate")?;
        Ok(Issued {
            der,
            summary: Summary {
                subject,
                serial: serial_hex(req.serial),
                not_before,
                not_after,
            },
        })
    }

    /// Signs `data` with the CA's key (a CMP answer's protection), with the algorithm
    /// [`signature_algorithm_der`] names for its key type.
    pub fn protect(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        use rcgen::SigningKey as _;
        let signature = self
            .issuer
            .key()
            .sign(data)
            .map_err(cert_err("CMP protection"))?;
        Ok(signature)
    }

    /// A CRL of `revoked` (DER).
    pub fn crl(&self, spec: &crl::CrlSpec, revoked: &[crl::Revoked]) -> Result<Vec<u8>, Error> {
        crl::sign(self, spec, revoked)
    }

    /// A delta CRL (DER) of `changes` since the complete CRL numbered `base`.
    pub fn delta_crl(
        &self,
        spec: &crl::CrlSpec,
        base: u64,
        changes: &[crl::Change],
    ) -> Result<Vec<u8>, Error> {
        crl::sign_delta(self, spec, base, changes)
    }

    /// Signs `params` for `public`: AKI from this CA's SKI, the distribution URLs, and a
    /// `notAfter` no later than this CA's. The certificate and its (notBefore, notAfter).
    fn sign(
        &self,
        mut params: CertificateParams,
        public: &impl rcgen::PublicKeyData,
        urls: &Urls,
        validity: Duration,
        now: SystemTime,
        what: &'static str,
    ) -> Result<(Vec<u8>, (u64, u64)), Error> {
        let not_after = unix(now)
            .saturating_add(validity.as_secs())
            .min(self.limits.not_after);
        params.not_after = time(not_after)?;
        params.use_authority_key_identifier_extension = true;
        add_urls(&mut params, urls);
        let not_before = u64::try_from(params.not_before.unix_timestamp()).unwrap_or(0);
        let cert = params
            .signed_by(public, &self.issuer)
            .map_err(cert_err(what))?;
        Ok((cert.der().to_vec(), (not_before, not_after)))
    }
}

/// The signature algorithm (AlgorithmIdentifier DER) a CA with a `key` key signs with.
pub fn signature_algorithm_der(key: KeyType) -> Vec<u8> {
    yasna::construct_der(|w| crl::write_alg(w, key))
}

/// A validity as the API takes it: `<n>y` (365-day years), `<n>d`, `<n>h` or `<n>m`.
pub fn parse_validity(field: &'static str, text: &str) -> Result<Duration, CaError> {
    let bad = || {
        CaError::new(
            field,
            "a whole number of years, days, hours or minutes: 10y, 90d, 12h",
        )
    };
    if let Some(years) = text.strip_suffix('y') {
        if years.is_empty() || years.len() > 3 || !years.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let years: u64 = years.parse().map_err(|_| bad())?;
        return Ok(Duration::from_secs(years * 365 * 86_400));
    }
    match crate::duration::parse(text) {
        Ok(d) if d.as_secs() >= 60 && d.subsec_nanos() == 0 => Ok(d),
        _ => Err(bad()),
    }
}

/// What the API shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its subject, RFC 4514 text.
    pub subject: String,
    /// Its serial, lowercase hex without leading zero bytes.
    pub serial: String,
    /// `notBefore`, Unix seconds.
    pub not_before: u64,
    /// `notAfter`, Unix seconds.
    pub not_after: u64,
}

/// The [`Summary`] of a certificate (DER).
pub fn summary(cert_der: &[u8]) -> Result<Summary, crate::Error> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| cert_err("certificate")(e))?;
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    Ok(Summary {
        subject: cert.subject().to_string(),
        serial: serial_hex(cert.raw_serial()),
        not_before: secs(cert.validity().not_before),
        not_after: secs(cert.validity().not_after),
    })
}

/// A serial as the API names it: lowercase hex of its bytes without leading zero bytes.
pub fn serial_hex(serial: &[u8]) -> String {
    let skip = serial.iter().take_while(|b| **b == 0).count();
    match serial.get(skip..) {
        Some(rest) if !rest.is_empty() => crate::hex(rest),
        _ => "00".to_owned(),
    }
}

/// The bytes of a serial named in lowercase hex (`None` unless it is 1 to 20 bytes of
/// lowercase hex with no leading zero byte, the form [`serial_hex`] writes).
pub fn parse_serial(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 || text.len() > 40 || text.starts_with("00") {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// The names of a certificate whose key the service makes, as the API takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// dNSName entries.
    #[serde(default)]
    pub dns: Vec<String>,
    /// iPAddress entries.
    #[serde(default)]
    pub ip: Vec<std::net::IpAddr>,
    /// rfc822Name entries.
    #[serde(default)]
    pub email: Vec<String>,
    /// uniformResourceIdentifier entries.
    #[serde(default)]
    pub uri: Vec<String>,
}

/// A new key of `key_type` (PKCS#8) made here, and a request for it with `subject` and `names`,
/// checked like any request (so the same profile checks apply to it). For certificates whose
/// key the service makes and returns only encrypted to the caller.
pub fn server_request(
    key_type: KeyType,
    subject: &Subject,
    names: &Names,
) -> Result<(Zeroizing<Vec<u8>>, Csr), Error> {
    let sans: Vec<San> = names
        .dns
        .iter()
        .map(|d| San::Dns(d.clone()))
        .chain(names.ip.iter().map(|ip| San::Ip(*ip)))
        .chain(names.email.iter().map(|e| San::Email(e.clone())))
        .chain(names.uri.iter().map(|u| San::Uri(u.clone())))
        .collect();
    let (key, der) = signed_request(key_type, subject.checked()?, &sans)?;
    Ok((key, csr::parse(&der)?))
}

/// A key the service makes for a client that asked with request `like` (EST serverkeygen):
/// of the same kind (RSA of at most 3072 bits becomes 3072, larger 4096), and a request with
/// `like`'s subject and subject alternative names signed by it: (PKCS#8, PKCS#10 DER).
pub fn server_request_like(like: &Csr) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
    let key_type = match like.key {
        csr::RequestKey::P256 => KeyType::P256,
        csr::RequestKey::P384 => KeyType::P384,
        csr::RequestKey::Rsa(bits) if bits <= 3072 => KeyType::Rsa3072,
        csr::RequestKey::Rsa(_) => KeyType::Rsa4096,
    };
    signed_request(key_type, like.subject.clone(), &like.sans)
}

/// A new key of `key_type` and a PKCS#10 request for `subject` and `sans` it signs.
fn signed_request(
    key_type: KeyType,
    subject: rcgen::DistinguishedName,
    sans: &[San],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<_, _>>()?;
    let key = key_type.generate()?;
    let pair = key_type.load(&key)?;
    let request = params
        .serialize_request(&pair)
        .map_err(cert_err("server-made key request"))?;
    Ok((key, request.der().to_vec()))
}

/// A CA brought from elsewhere, checked: its certificate, the chain above it, its key.
pub struct Imported {
    /// Its key type.
    pub key_type: KeyType,
    /// Its certificate, DER.
    pub certificate: Vec<u8>,
    /// The certificates above it as given, its issuer first.
    pub chain: Vec<Vec<u8>>,
    /// Its private key, PKCS#8 DER.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// Checks a CA to import: a PEM bundle of its certificate (first), the certificates above it
/// (optional, issuer first) and its PKCS#8 private key. The certificate must be a CA's
/// (basicConstraints cA, keyCertSign when key usage is present), valid at `now`, with a key
/// of our set (P-256, P-384, RSA 3072 or 4096) that the private key matches.
pub fn import(bundle: &[u8], now: SystemTime) -> Result<Imported, Error> {
    use rustls_pki_types::pem::PemObject as _;
    let refuse = |reason: String| Error::Refused(CaError::new("jwe", reason));
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(bundle)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| refuse(format!("the bundle's certificates do not parse: {e}")))?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(bundle)
        .map(|k| Zeroizing::new(k.secret_pkcs8_der().to_vec()))
        .map_err(|_| refuse("the bundle has no PKCS#8 private key (PRIVATE KEY)".into()))?;
    let mut certs = certs.into_iter();
    let certificate = certs
        .next()
        .ok_or_else(|| refuse("the bundle has no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&certificate)
        .map_err(|e| refuse(format!("the CA certificate does not parse: {e}")))?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(refuse(
            "the certificate is not a CA's (basicConstraints cA)".into(),
        ));
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(refuse(
                "the CA certificate's key usage lacks keyCertSign".into(),
            ));
        }
    }
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    let at = unix(now);
    if at < secs(cert.validity().not_before) || at > secs(cert.validity().not_after) {
        return Err(refuse("the CA certificate is not valid now".into()));
    }
    let key_type = match csr::request_key(cert.public_key()).map_err(|e| refuse(e.reason))? {
        csr::RequestKey::P256 => KeyType::P256,
        csr::RequestKey::P384 => KeyType::P384,
        csr::RequestKey::Rsa(3072) => KeyType::Rsa3072,
        csr::RequestKey::Rsa(4096) => KeyType::Rsa4096,
        csr::RequestKey::Rsa(bits) => {
            return Err(refuse(format!(
                "RSA CA keys of {bits} bits are not allowed (3072 or 4096)"
            )))
        }
    };
    let pair = key_type.load(&key).map_err(|_| {
        refuse("the private key does not load for the certificate's key type".into())
    })?;
    if pair.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(refuse("the private key is not the certificate's".into()));
    }
    Ok(Imported {
        key_type,
        chain: certs.collect(),
        certificate,
        key,
    })
}

/// A new key (`key_type`, PKCS#8) for a CA's delegate (OCSP responder, time-stamping
/// authority: P-256; SCEP RA: RSA 3072)
/// and its certificate request (subject `common_name`), for the CA to issue under the
/// delegate's profile.
pub fn delegate_request(
    common_name: &str,
    key_type: KeyType,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, Csr), crate::Error> {
    let key = key_type.generate()?;
    let pair = key_type.load(&key)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let request = params
        .serialize_request(&pair)
        .map_err(cert_err("delegate request"))?;
    let csr = csr::parse(request.der()).map_err(|e| crate::Error::Certificate {
        what: "delegate request",
        reason: e.to_string(),
    })?;
    Ok((key, csr))
}

/// A new serial: [`serial_at`] now.
pub fn random_serial() -> Result<[u8; 16], crate::Error> {
    serial_at(SystemTime::now())
}

/// A serial for a certificate signed at `now`: 16 bytes, positive and exactly 16 bytes long
/// once DER-encoded (RFC 5280 §4.1.2.2: at most 20), the first 6 the milliseconds since 1970
/// (big-endian) and the last 10 random (CA/B Forum: at least 64 bits from a CSPRNG; here 80).
///
/// The time first makes a CA's serials, and so the keys of its certificate records, grow in
/// issuance order: a new record lands at the right edge of the store's B-tree instead of in a
/// random leaf, so a commit of many issuances rewrites a few pages instead of one leaf and its
/// branch per certificate. The random part keeps serials unpredictable; uniqueness is still
/// the store's to enforce (a record is created, never replaced).
pub fn serial_at(now: SystemTime) -> Result<[u8; 16], crate::Error> {
    let mut bytes = [0u8; 16];
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (time, random) = bytes.split_at_mut(6);
    time.copy_from_slice(&millis.to_be_bytes()[2..]);
    aws_lc_rs::rand::fill(random).map_err(|_| crate::Error::Random)?;
    // Positive and 16 bytes long (until the year 6429, when the clock reaches 2^47 ms).
    if let Some(first) = bytes.first_mut() {
        *first &= 0x7f;
        *first |= 0x01;
    }
    Ok(bytes)
}

/// What a CA's own certificate allows below it.
struct Limits {
    path_len: Option<u8>,
    permitted_dns: Vec<String>,
    not_after: u64,
}

impl Limits {
    /// RFC 5280 §4.2.1.10: `example.com` permits it and its subdomains, `.example.com` only
    /// subdomains.
    fn permits_dns(&self, name: &str) -> bool {
        if self.permitted_dns.is_empty() {
            return true;
        }
        let name = name.to_ascii_lowercase();
        self.permitted_dns.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            if let Some(suffix) = c.strip_prefix('.') {
                name.ends_with(&format!(".{suffix}"))
            } else {
                name == c || name.ends_with(&format!(".{c}"))
            }
        })
    }
}

fn parent_limits(cert_der: &[u8]) -> Result<Limits, Error> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| cert_err("CA certificate")(e))?;
    let mut limits = Limits {
        path_len: None,
        permitted_dns: Vec::new(),
        not_after: u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                limits.path_len = bc
                    .path_len_constraint
                    .map(|n| u8::try_from(n).unwrap_or(u8::MAX));
            }
            ParsedExtension::NameConstraints(nc) => {
                for subtree in nc.permitted_subtrees.iter().flatten() {
                    if let GeneralName::DNSName(d) = subtree.base {
                        limits.permitted_dns.push((*d).to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(limits)
}

fn ca_params(
    spec: &CaSpec,
    serial: &[u8; 16],
    now: SystemTime,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = spec.subject.checked().map_err(Error::Refused)?;
    params.is_ca = IsCa::Ca(match spec.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    if !spec.permitted_dns.is_empty() {
        let mut permitted = Vec::with_capacity(spec.permitted_dns.len());
        for name in &spec.permitted_dns {
            csr::check_dns("permitted_dns", name.trim_start_matches('.'))?;
            permitted.push(GeneralSubtree::DnsName(name.clone()));
        }
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
    }
    if !spec.policies.is_empty() {
        let content = der::policies(&spec.policies).map_err(Error::Refused)?;
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                der::CERTIFICATE_POLICIES,
                content,
            ));
    }
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    params.not_before = time(unix(now).saturating_sub(BACKDATE.as_secs()))?;
    Ok(params)
}

fn add_urls(params: &mut CertificateParams, urls: &Urls) {
    if let Some(crl) = &urls.crl {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![crl.clone()],
        }];
    }
    if urls.ocsp.is_some() || urls.ca_issuers.is_some() {
        let content = der::authority_info_access(urls.ocsp.as_deref(), urls.ca_issuers.as_deref());
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                der::AUTHORITY_INFO_ACCESS,
                content,
            ));
    }
}

/// Failures of this module: the caller's input ([`Error::Refused`], 400) or ours.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request asks for what is not allowed.
    #[error(transparent)]
    Refused(#[from] CaError),
    /// Certificate work failed.
    #[error(transparent)]
    Internal(#[from] crate::Error),
}

#[cfg(test)]
mod tests;
