//! PKCS#10 certification requests (RFC 2986): PEM or DER, the signature checked with the
//! request's own key, the key and the signature algorithm FIPS-approved (ECDSA P-256/P-384,
//! RSA 2048 to 8192 with SHA-2; no SHA-1, no Ed25519), the subject and the requested
//! subjectAltName kept; every other requested extension is ignored (the profile decides).

use std::net::IpAddr;

use rcgen::{DistinguishedName, DnType, DnValue, SanType};
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::X509Name;

use super::CaError;

/// A checked request.
#[derive(Debug, Clone)]
pub struct Csr {
    /// The subject public key info, DER, as requested.
    pub spki_der: Vec<u8>,
    /// The key's kind.
    pub key: RequestKey,
    /// The requested subject.
    pub subject: DistinguishedName,
    /// The same as text (`CN=www.example.com`), as the API shows it.
    pub subject_text: String,
    /// The requested subject alternative names.
    pub sans: Vec<San>,
    /// The OIDs (dotted) of every extension the request asks for.
    pub extensions: Vec<String>,
}

impl Csr {
    /// Whether the subject has no attribute but common names (or none at all).
    pub fn subject_is_common_name_only(&self) -> bool {
        self.subject
            .iter()
            .all(|(kind, _)| *kind == DnType::CommonName)
    }

    /// The subject's common name, if it has one.
    pub fn common_name(&self) -> Option<&str> {
        match self.subject.get(&DnType::CommonName)? {
            DnValue::Utf8String(s) => Some(s),
            DnValue::PrintableString(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// The key of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKey {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA of this many bits.
    Rsa(usize),
}

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// dNSName.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
    /// rfc822Name.
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
}

impl San {
    /// The kind, as profiles name it.
    pub fn kind(&self) -> &'static str {
        match self {
            San::Dns(_) => "dns",
            San::Ip(_) => "ip",
            San::Email(_) => "email",
            San::Uri(_) => "uri",
        }
    }

    pub(super) fn to_rcgen(&self) -> Result<SanType, super::Error> {
        let ia5 = |s: &str| {
            rcgen::string::Ia5String::try_from(s)
                .map_err(|_| CaError::new("subject_alt_names", format!("{s:?} is not IA5")))
        };
        Ok(match self {
            San::Dns(d) => SanType::DnsName(ia5(d)?),
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Email(e) => SanType::Rfc822Name(ia5(e)?),
            San::Uri(u) => SanType::URI(ia5(u)?),
        })
    }
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
/// Signature algorithms accepted on requests: sha256/384/512WithRSAEncryption, RSASSA-PSS,
/// ecdsa-with-SHA256/384.
const ALLOWED_SIGNATURES: [&str; 6] = [
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
    "1.2.840.113549.1.1.10",
    "1.2.840.10045.4.3.2",
    "1.2.840.10045.4.3.3",
];

fn refuse(reason: impl Into<String>) -> CaError {
    CaError::new("csr", reason)
}

/// Parses and checks a request given as PEM (`CERTIFICATE REQUEST`) or DER.
pub fn parse(input: &[u8]) -> Result<Csr, CaError> {
    let der = if input.starts_with(b"-----BEGIN") {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(input)
            .map_err(|e| refuse(format!("not a PEM certificate request: {e}")))?
            .as_ref()
            .to_vec()
    } else {
        input.to_vec()
    };
    let (rest, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| refuse(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(refuse("trailing bytes after the request"));
    }
    let alg = req.signature_algorithm.algorithm.to_id_string();
    if !ALLOWED_SIGNATURES.contains(&alg.as_str()) {
        return Err(refuse(format!(
            "signature algorithm {alg} is not allowed (ECDSA or RSA with SHA-256/384/512)"
        )));
    }
    let info = &req.certification_request_info;
    let key = request_key(&info.subject_pki)?;
    req.verify_signature()
        .map_err(|_| refuse("the request's signature does not verify with its key"))?;
    let subject = subject(&info.subject)?;
    let mut sans = Vec::new();
    if let Some(extensions) = req.requested_extensions() {
        for ext in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    sans.push(san_of(name)?);
                }
            }
        }
    }
    Ok(Csr {
        spki_der: info.subject_pki.raw.to_vec(),
        key,
        subject,
        subject_text: info.subject.to_string(),
        sans,
        extensions: requested_oids(&req),
    })
}

/// How a certification request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PKCS#10 (RFC 2986), PEM or DER.
    #[default]
    Pkcs10,
    /// A CRMF `CertReqMsg` (RFC 4211), DER, with a signature proof of possession.
    Crmf,
}

impl Format {
    /// Whether it is PKCS#10 (the default, left out of records).
    pub fn is_pkcs10(&self) -> bool {
        *self == Format::Pkcs10
    }
}

/// A request carried in another format's parts (a CRMF certificate template, RFC 4211): the
/// key (SubjectPublicKeyInfo DER), the subject (Name DER; none: an empty subject) and the
/// requested extensions (Extensions DER), checked like a PKCS#10 request's parts. The caller
/// has verified the proof of possession of the key.
pub fn from_parts(
    spki_der: &[u8],
    subject_der: Option<&[u8]>,
    extensions_der: Option<&[u8]>,
) -> Result<Csr, CaError> {
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| CaError::new("publicKey", "not a SubjectPublicKeyInfo"))?;
    if !rest.is_empty() {
        return Err(CaError::new("publicKey", "trailing bytes after the key"));
    }
    let key = request_key(&spki)?;
    let empty = [0x30, 0x00];
    let (rest, name) = X509Name::from_der(subject_der.unwrap_or(&empty))
        .map_err(|_| CaError::new("subject", "not a distinguished name"))?;
    if !rest.is_empty() {
        return Err(CaError::new("subject", "trailing bytes after the name"));
    }
    let mut sans = Vec::new();
    let mut extensions = Vec::new();
    if let Some(der) = extensions_der {
        let (mut rest, _) = crate::der::expect(der, 0x30)
            .filter(|(_, after)| after.is_empty())
            .map(|(contents, _)| (contents, ()))
            .ok_or_else(|| CaError::new("extensions", "not a sequence of extensions"))?;
        while !rest.is_empty() {
            let (after, ext) = x509_parser::extensions::X509Extension::from_der(rest)
                .map_err(|_| CaError::new("extensions", "an extension does not parse"))?;
            extensions.push(ext.oid.to_id_string());
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    sans.push(san_of(name)?);
                }
            }
            rest = after;
        }
    }
    Ok(Csr {
        spki_der: spki.raw.to_vec(),
        key,
        subject: subject(&name)?,
        subject_text: name.to_string(),
        sans,
        extensions,
    })
}

/// The OIDs of the extensions a request asks for (its extensionRequest attribute).
fn requested_oids(
    req: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> Vec<String> {
    use x509_parser::cri_attributes::ParsedCriAttribute;
    req.certification_request_info
        .iter_attributes()
        .filter_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| r.extensions.iter().map(|e| e.oid.to_id_string()))
        .collect()
}

pub(crate) fn request_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<RequestKey, CaError> {
    let alg = spki.algorithm.algorithm.to_id_string();
    if alg == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o: Oid<'_>| o.to_id_string());
        return match curve.as_deref() {
            Some(OID_P256) => Ok(RequestKey::P256),
            Some(OID_P384) => Ok(RequestKey::P384),
            other => Err(refuse(format!(
                "EC curve {} is not allowed (P-256 or P-384)",
                other.unwrap_or("missing")
            ))),
        };
    }
    if alg == OID_RSA_ENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                let modulus = rsa.modulus;
                let significant = modulus.iter().skip_while(|b| **b == 0).count();
                significant * 8
            }
            _ => return Err(refuse("unreadable RSA public key")),
        };
        if !(2048..=8192).contains(&bits) {
            return Err(refuse(format!(
                "RSA keys of {bits} bits are not allowed (2048 to 8192)"
            )));
        }
        return Ok(RequestKey::Rsa(bits));
    }
    Err(refuse(format!(
        "key algorithm {alg} is not allowed (ECDSA P-256/P-384 or RSA)"
    )))
}

/// The subject, attribute by attribute (common ones by name, others by OID).
fn subject(name: &X509Name<'_>) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let value = attr
                .as_str()
                .map_err(|_| CaError::new("subject", format!("{oid} is not a string")))?;
            if value.chars().any(char::is_control) || value.len() > 256 {
                return Err(CaError::new("subject", format!("{oid} has a bad value")));
            }
            let kind = match oid.as_str() {
                "2.5.4.3" => DnType::CommonName,
                "2.5.4.10" => DnType::OrganizationName,
                "2.5.4.11" => DnType::OrganizationalUnitName,
                "2.5.4.6" => DnType::CountryName,
                "2.5.4.8" => DnType::StateOrProvinceName,
                "2.5.4.7" => DnType::LocalityName,
                _ => {
                    let arcs: Option<Vec<u64>> = attr.attr_type().iter().map(|i| i.collect());
                    DnType::CustomDnType(arcs.ok_or_else(|| {
                        CaError::new("subject", format!("attribute {oid} is not supported"))
                    })?)
                }
            };
            let value = if kind == DnType::CountryName {
                if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(CaError::new("subject", "C must be two capital letters"));
                }
                DnValue::PrintableString(
                    value
                        .try_into()
                        .map_err(|_| CaError::new("subject", "C must be printable"))?,
                )
            } else {
                DnValue::Utf8String(value.to_owned())
            };
            dn.push(kind, value);
        }
    }
    Ok(dn)
}

/// The subject alternative names of a certificate (DER), as a request would name them.
pub fn certificate_sans(cert_der: &[u8]) -> Result<Vec<San>, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| CaError::new("certificate", "does not parse"))?;
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                out.push(san_of(name)?);
            }
        }
    }
    Ok(out)
}

fn san_of(name: &GeneralName<'_>) -> Result<San, CaError> {
    let field = "subject_alt_names";
    Ok(match name {
        GeneralName::DNSName(d) => {
            check_dns(field, d)?;
            San::Dns(d.to_ascii_lowercase())
        }
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => San::Ip(IpAddr::from(
                <[u8; 4]>::try_from(*bytes).map_err(|_| bad_ip())?,
            )),
            16 => San::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*bytes).map_err(|_| bad_ip())?,
            )),
            _ => return Err(bad_ip()),
        },
        GeneralName::RFC822Name(e) => {
            let ok = e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && check_dns(field, domain).is_ok()
            }) && e.is_ascii();
            if !ok {
                return Err(CaError::new(
                    field,
                    format!("{e:?} is not an email address"),
                ));
            }
            San::Email((*e).to_owned())
        }
        GeneralName::URI(u) => {
            if !u.is_ascii() || !u.contains(':') || u.chars().any(|c| c.is_ascii_control()) {
                return Err(CaError::new(field, format!("{u:?} is not a URI")));
            }
            San::Uri((*u).to_owned())
        }
        _ => {
            return Err(CaError::new(
                field,
                "only DNS, IP, email and URI names are supported",
            ))
        }
    })
}

fn bad_ip() -> CaError {
    CaError::new("subject_alt_names", "an IP address must be 4 or 16 bytes")
}

/// A DNS name: LDH labels of 1 to 63, at most 253 in all, an optional leading `*.` wildcard.
pub(super) fn check_dns(field: &'static str, name: &str) -> Result<(), CaError> {
    let host = name.strip_prefix("*.").unwrap_or(name);
    let ok = !host.is_empty()
        && name.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(CaError::new(field, format!("{name:?} is not a DNS name")))
    }
}
