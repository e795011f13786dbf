//! CMP (RFC 4210 with the updates of RFC 9480, the Lightweight CMP Profile of RFC 9483),
//! pure: a `PKIMessage` read (header, body, protection, extraCerts) and answers written;
//! CRMF certificate requests (RFC 4211) read into the CA's checked request with their proof
//! of possession verified ([`crmf`]); MAC and signature protection ([`protection`]).
//!
//! What is read: `ir`, `cr`, `kur` (one request each, as RFC 9483 has it), `p10cr`, `rr`
//! (one certificate), `genm`, `certConf`, `pollReq`, and an `error` from the client; any
//! other body is named so the server can refuse it. DER only, read with yasna behind
//! [`crate::der::well_formed`].

pub mod crmf;
pub mod protection;
pub mod reply;

#[cfg(test)]
mod tests;

use yasna::models::ObjectIdentifier;
use yasna::Tag;

/// Largest message read.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The media type of CMP over HTTP (RFC 6712).
pub const CONTENT_TYPE: &str = "application/pkixcmp";

/// `PKIFailureInfo` bits (RFC 4210 §5.2.3, RFC 9480).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Unrecognized or unsupported algorithm.
    BadAlg = 0,
    /// Integrity check (MAC or signature) failed.
    BadMessageCheck = 1,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data is not in the expected format.
    BadDataFormat = 5,
    /// The authority named is not this one.
    WrongAuthority = 6,
    /// The proof of possession failed.
    BadPop = 9,
    /// The certificate is revoked already.
    CertRevoked = 10,
    /// The certificate was confirmed already.
    CertConfirmed = 11,
    /// The recipient nonce is missing or wrong.
    BadRecipientNonce = 13,
    /// The sender nonce is missing or too short.
    BadSenderNonce = 18,
    /// The certificate template is not acceptable.
    BadCertTemplate = 19,
    /// The signer is not trusted.
    SignerNotTrusted = 20,
    /// The transaction id is in use.
    TransactionIdInUse = 21,
    /// The protocol version is not supported.
    UnsupportedVersion = 22,
    /// The sender may not do this.
    NotAuthorized = 23,
    /// The system is not available now.
    SystemUnavail = 24,
    /// The system failed.
    SystemFailure = 25,
}

/// Why a message is refused: its failure bit and a reason for `statusString`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The failure bit.
    pub failure: Failure,
    /// The reason, for people.
    pub reason: String,
}

impl Refusal {
    /// A refusal for `failure` because of `reason`.
    pub fn new(failure: Failure, reason: impl Into<String>) -> Self {
        Self {
            failure,
            reason: reason.into(),
        }
    }
}

/// What a CMP message needs of a certificate: its subject (Name DER), its subject key
/// identifier and its public key (SubjectPublicKeyInfo DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject, Name DER.
    pub name: Vec<u8>,
    /// The subject key identifier, if the certificate has one.
    pub key_id: Option<Vec<u8>>,
    /// The public key, SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

/// The [`Identity`] of a certificate (DER), if it parses.
pub fn identity(cert_der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let key_id = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    Some(Identity {
        name: cert.subject().as_raw().to_vec(),
        key_id,
        spki: cert.public_key().raw.to_vec(),
    })
}

/// A fresh 128-bit nonce (or transaction id).
pub fn nonce() -> Result<Vec<u8>, crate::Error> {
    let mut out = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| crate::Error::Random)?;
    Ok(out)
}

fn malformed(what: &str) -> Refusal {
    Refusal::new(Failure::BadDataFormat, format!("{what} does not parse"))
}

const IT: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 4];

/// `id-it-<n>`.
pub(crate) fn id_it(n: u64) -> ObjectIdentifier {
    let mut arcs = IT.to_vec();
    arcs.push(n);
    ObjectIdentifier::from_slice(&arcs)
}

/// `id-it-implicitConfirm`.
pub const IMPLICIT_CONFIRM: u64 = 13;

/// A message's header, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `pvno`: 2 (cmp2000) or 3 (cmp2021).
    pub pvno: u8,
    /// The sender (GeneralName DER).
    pub sender: Vec<u8>,
    /// The recipient (GeneralName DER).
    pub recipient: Vec<u8>,
    /// `protectionAlg` (AlgorithmIdentifier DER).
    pub protection_alg: Option<Vec<u8>>,
    /// `senderKID`: for a MAC, the reference of the shared secret.
    pub sender_kid: Option<Vec<u8>>,
    /// `transactionID`.
    pub transaction_id: Vec<u8>,
    /// `senderNonce`.
    pub sender_nonce: Vec<u8>,
    /// `recipNonce`.
    pub recip_nonce: Option<Vec<u8>>,
    /// Whether `generalInfo` asks for implicit confirmation.
    pub implicit_confirm: bool,
}

/// One certificate request (`CertReqMsg`), its id read; [`crmf::read`] checks the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReqMessage {
    /// The whole `CertReqMsg`, DER.
    pub der: Vec<u8>,
    /// Its `certReqId`.
    pub cert_req_id: i64,
}

/// One certificate to revoke (`RevDetails`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevDetails {
    /// Its serial number (magnitude, big-endian).
    pub serial: Option<Vec<u8>>,
    /// Its issuer (Name DER).
    pub issuer: Option<Vec<u8>>,
    /// The `CRLReason` code asked for.
    pub reason: Option<u8>,
}

/// What a `genm` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoType {
    /// `id-it-caCerts` (RFC 9483 §4.3.1).
    CaCerts,
    /// `id-it-rootCaCert` (§4.3.2): a root CA update.
    RootCaCert,
    /// `id-it-certReqTemplate` (§4.3.3).
    CertReqTemplate,
    /// `id-it-crlStatusList` (§4.3.4).
    CrlStatusList,
    /// `id-it-currentCRL` (RFC 4210).
    CurrentCrl,
    /// `id-it-signKeyPairTypes` (RFC 4210).
    SignKeyPairTypes,
    /// Anything else: its OID.
    Other(ObjectIdentifier),
}

/// One certificate's confirmation (`CertStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertStatus {
    /// `certHash`.
    pub cert_hash: Vec<u8>,
    /// `certReqId`.
    pub cert_req_id: i64,
    /// Whether the client accepts the certificate (no `statusInfo`, or `accepted`).
    pub accepted: bool,
    /// `hashAlg` (AlgorithmIdentifier DER, CMP 2021).
    pub hash_alg: Option<Vec<u8>>,
}

/// A message's body, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Initialization request.
    Ir(CertReqMessage),
    /// Certification request.
    Cr(CertReqMessage),
    /// Key update request.
    Kur(CertReqMessage),
    /// A PKCS#10 request (DER).
    P10cr(Vec<u8>),
    /// Revocation request.
    Rr(RevDetails),
    /// General message.
    Genm(Vec<InfoType>),
    /// Certificate confirmation.
    CertConf(Vec<CertStatus>),
    /// Polling request: the `certReqId`s.
    PollReq(Vec<i64>),
    /// An error the client reports.
    Error,
    /// Any other body: its tag number.
    Other(u8),
}

impl Body {
    /// Its name in RFC 4210.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ir(_) => "ir",
            Body::Cr(_) => "cr",
            Body::Kur(_) => "kur",
            Body::P10cr(_) => "p10cr",
            Body::Rr(_) => "rr",
            Body::Genm(_) => "genm",
            Body::CertConf(_) => "certConf",
            Body::PollReq(_) => "pollReq",
            Body::Error => "error",
            Body::Other(_) => "unsupported",
        }
    }
}

/// A `PKIMessage`, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Its body.
    pub body: Body,
    /// The DER its protection covers (`ProtectedPart`: header and body as received).
    pub protected_part: Vec<u8>,
    /// Its protection (the BIT STRING's bytes).
    pub protection: Option<Vec<u8>>,
    /// `extraCerts`, DER; for signature protection the signer's certificate comes first.
    pub extra_certs: Vec<Vec<u8>>,
}

/// What of a message could be read when the rest could not: enough to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The refusal.
    pub refusal: Refusal,
    /// Its header, if that much was read.
    pub header: Option<Box<Header>>,
}

impl Message {
    /// Reads a DER `PKIMessage`.
    pub fn parse(der: &[u8]) -> Result<Self, Box<Unreadable>> {
        let plain = |refusal| {
            Box::new(Unreadable {
                refusal,
                header: None,
            })
        };
        if der.len() > MAX_MESSAGE || !crate::der::well_formed(der) {
            return Err(plain(malformed("the PKIMessage")));
        }
        let (header_der, body_der, protection, extra_certs) = yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                let header = r.next().read_der()?;
                let body = r.next().read_der()?;
                let protection =
                    r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_bitvec_bytes()))?;
                let extra = r.read_optional(|r| {
                    r.read_tagged(Tag::context(1), |r| {
                        let mut certs = Vec::new();
                        r.read_sequence_of(|r| {
                            certs.push(r.read_der()?);
                            Ok(())
                        })?;
                        Ok(certs)
                    })
                })?;
                Ok((header, body, protection, extra))
            })
        })
        .map_err(|_| plain(malformed("the PKIMessage")))?;
        let header = parse_header(&header_der).map_err(plain)?;
        let body = parse_body(&body_der).map_err(|refusal| {
            Box::new(Unreadable {
                refusal,
                header: Some(Box::new(header.clone())),
            })
        })?;
        let protected_part = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&header_der);
                w.next().write_der(&body_der);
            });
        });
        Ok(Self {
            header,
            body,
            protected_part,
            protection: protection.map(|(bytes, _)| bytes),
            extra_certs: extra_certs.unwrap_or_default(),
        })
    }
}

fn parse_header(der: &[u8]) -> Result<Header, Refusal> {
    let read = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let pvno = r.next().read_u8()?;
            let sender = r.next().read_der()?;
            let recipient = r.next().read_der()?;
            let octets = |r: &mut yasna::BERReaderSeq<'_, '_>, n| {
                r.read_optional(|r| r.read_tagged(Tag::context(n), |r| r.read_bytes()))
            };
            let _time =
                r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_generalized_time()))?;
            let protection_alg =
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
            let sender_kid = octets(r, 2)?;
            let _recip_kid = octets(r, 3)?;
            let transaction_id = octets(r, 4)?;
            let sender_nonce = octets(r, 5)?;
            let recip_nonce = octets(r, 6)?;
            let _free_text =
                r.read_optional(|r| r.read_tagged(Tag::context(7), |r| r.read_der()))?;
            let mut implicit_confirm = false;
            r.read_optional(|r| {
                r.read_tagged(Tag::context(8), |r| {
                    r.read_sequence_of(|r| {
                        r.read_sequence(|r| {
                            let kind = r.next().read_oid()?;
                            let _value = r.read_optional(|r| r.read_der())?;
                            implicit_confirm |= kind == id_it(IMPLICIT_CONFIRM);
                            Ok(())
                        })
                    })
                })
            })?;
            Ok(Header {
                pvno,
                sender,
                recipient,
                protection_alg,
                sender_kid,
                transaction_id: transaction_id.unwrap_or_default(),
                sender_nonce: sender_nonce.unwrap_or_default(),
                recip_nonce,
                implicit_confirm,
            })
        })
    });
    let header = read.map_err(|_| malformed("the PKIHeader"))?;
    let pvno = header.pvno;
    if !(2..=3).contains(&pvno) {
        return Err(Refusal::new(
            Failure::UnsupportedVersion,
            format!("pvno {pvno}: this server speaks cmp2000 (2) and cmp2021 (3)"),
        ));
    }
    // RFC 9483 §3.1: 128 bits each.
    if !(16..=64).contains(&header.transaction_id.len()) {
        return Err(Refusal::new(
            Failure::BadRequest,
            "transactionID must be 16 to 64 bytes",
        ));
    }
    if !(16..=64).contains(&header.sender_nonce.len()) {
        return Err(Refusal::new(
            Failure::BadSenderNonce,
            "senderNonce must be 16 to 64 bytes",
        ));
    }
    Ok(header)
}

/// The complete TLVs of a DER `SEQUENCE OF`'s contents.
fn elements(contents: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        let (_, _, after) = crate::der::tlv(rest)?;
        out.push(rest.get(..rest.len() - after.len())?);
        rest = after;
    }
    Some(out)
}

/// The one element of a `SEQUENCE SIZE (1..MAX) OF` that RFC 9483 allows one of.
fn only_one<'a>(seq: &'a [u8], what: &str) -> Result<&'a [u8], Refusal> {
    let (contents, rest) = crate::der::expect(seq, 0x30)
        .filter(|(_, rest)| rest.is_empty())
        .ok_or_else(|| malformed(what))?;
    let _ = rest;
    match elements(contents)
        .ok_or_else(|| malformed(what))?
        .as_slice()
    {
        [one] => Ok(one),
        _ => Err(Refusal::new(
            Failure::BadRequest,
            format!("{what} must hold exactly one element (RFC 9483)"),
        )),
    }
}

fn cert_req_message(seq: &[u8]) -> Result<CertReqMessage, Refusal> {
    let der = only_one(seq, "CertReqMessages")?;
    Ok(CertReqMessage {
        der: der.to_vec(),
        cert_req_id: crmf::cert_req_id(der)?,
    })
}

fn parse_body(der: &[u8]) -> Result<Body, Refusal> {
    let (tag, contents, _) = crate::der::tlv(der).ok_or_else(|| malformed("the PKIBody"))?;
    if tag & 0xe0 != 0xa0 {
        return Err(malformed("the PKIBody"));
    }
    let number = tag & 0x1f;
    Ok(match number {
        0 => Body::Ir(cert_req_message(contents)?),
        2 => Body::Cr(cert_req_message(contents)?),
        7 => Body::Kur(cert_req_message(contents)?),
        4 => Body::P10cr(contents.to_vec()),
        11 => Body::Rr(rev_details(only_one(contents, "RevReqContent")?)?),
        21 => Body::Genm(genm(contents)?),
        24 => Body::CertConf(cert_conf(contents)?),
        25 => Body::PollReq(poll_req(contents)?),
        23 => Body::Error,
        n => Body::Other(n),
    })
}

fn rev_details(der: &[u8]) -> Result<RevDetails, Refusal> {
    let (contents, _) = crate::der::expect(der, 0x30).ok_or_else(|| malformed("RevDetails"))?;
    let parts = elements(contents).ok_or_else(|| malformed("RevDetails"))?;
    let (template, extensions) = match parts.as_slice() {
        [t] => (*t, None),
        [t, e] => (*t, Some(*e)),
        _ => return Err(malformed("RevDetails")),
    };
    let (fields, _) = crate::der::expect(template, 0x30).ok_or_else(|| malformed("certDetails"))?;
    let mut serial = None;
    let mut issuer = None;
    for field in elements(fields).ok_or_else(|| malformed("certDetails"))? {
        let (tag, value, _) = crate::der::tlv(field).ok_or_else(|| malformed("certDetails"))?;
        match tag {
            0x81 => {
                let bytes = value
                    .iter()
                    .skip_while(|b| **b == 0)
                    .copied()
                    .collect::<Vec<u8>>();
                serial = Some(bytes);
            }
            0xa3 => issuer = Some(value.to_vec()),
            _ => {}
        }
    }
    let mut reason = None;
    if let Some(extensions) = extensions {
        let (list, _) =
            crate::der::expect(extensions, 0x30).ok_or_else(|| malformed("crlEntryDetails"))?;
        for ext in elements(list).ok_or_else(|| malformed("crlEntryDetails"))? {
            let read = yasna::parse_der(ext, |r| {
                r.read_sequence(|r| {
                    let id = r.next().read_oid()?;
                    let _critical = r.read_default(false, |r| r.read_bool())?;
                    let value = r.next().read_bytes()?;
                    Ok((id, value))
                })
            })
            .map_err(|_| malformed("crlEntryDetails"))?;
            if read.0 == ObjectIdentifier::from_slice(&[2, 5, 29, 21]) {
                let code = yasna::parse_der(&read.1, |r| r.read_enum())
                    .map_err(|_| malformed("the reason code"))?;
                reason = Some(u8::try_from(code).map_err(|_| malformed("the reason code"))?);
            }
        }
    }
    Ok(RevDetails {
        serial,
        issuer,
        reason,
    })
}

fn genm(der: &[u8]) -> Result<Vec<InfoType>, Refusal> {
    yasna::parse_der(der, |r| {
        let mut kinds = Vec::new();
        r.read_sequence_of(|r| {
            r.read_sequence(|r| {
                let id = r.next().read_oid()?;
                let _value = r.read_optional(|r| r.read_der())?;
                let known = [
                    (17, InfoType::CaCerts),
                    (20, InfoType::RootCaCert),
                    (19, InfoType::CertReqTemplate),
                    (22, InfoType::CrlStatusList),
                    (6, InfoType::CurrentCrl),
                    (2, InfoType::SignKeyPairTypes),
                ];
                let kind = known
                    .into_iter()
                    .find(|(n, _)| id == id_it(*n))
                    .map_or(InfoType::Other(id), |(_, kind)| kind);
                // Each type once: an answer is not a multiple of its request.
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
                Ok(())
            })
        })?;
        Ok(kinds)
    })
    .map_err(|_| malformed("GenMsgContent"))
    .and_then(|kinds: Vec<InfoType>| {
        if kinds.len() > MAX_INFO_TYPES {
            Err(Refusal::new(
                Failure::BadRequest,
                format!("a genm asks for at most {MAX_INFO_TYPES} info types"),
            ))
        } else {
            Ok(kinds)
        }
    })
}

/// Most distinct info types one `genm` may ask for (RFC 9483 §4.3 asks one at a time).
pub const MAX_INFO_TYPES: usize = 8;

fn cert_conf(der: &[u8]) -> Result<Vec<CertStatus>, Refusal> {
    yasna::parse_der(der, |r| {
        let mut statuses = Vec::new();
        r.read_sequence_of(|r| {
            r.read_sequence(|r| {
                let cert_hash = r.next().read_bytes()?;
                let cert_req_id = r.next().read_i64()?;
                let status = r.read_optional(|r| {
                    r.read_sequence(|r| {
                        let status = r.next().read_i64()?;
                        let _text = r.read_optional(|r| {
                            r.read_sequence_of(|r| r.read_utf8string().map(|_| ()))
                        })?;
                        let _fail = r.read_optional(|r| r.read_bitvec_bytes())?;
                        Ok(status)
                    })
                })?;
                let hash_alg =
                    r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
                statuses.push(CertStatus {
                    cert_hash,
                    cert_req_id,
                    accepted: status.is_none_or(|s| s == 0 || s == 1),
                    hash_alg,
                });
                Ok(())
            })
        })?;
        Ok(statuses)
    })
    .map_err(|_| malformed("CertConfirmContent"))
}

fn poll_req(der: &[u8]) -> Result<Vec<i64>, Refusal> {
    yasna::parse_der(der, |r| {
        let mut ids = Vec::new();
        r.read_sequence_of(|r| {
            r.read_sequence(|r| {
                ids.push(r.next().read_i64()?);
                Ok(())
            })
        })?;
        Ok(ids)
    })
    .map_err(|_| malformed("PollReqContent"))
}
