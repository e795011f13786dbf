//! SCEP (RFC 8894), pure: a `pkiMessage` read (a CMS SignedData whose signer is the client's
//! certificate, self-signed or one the CA issued) and its signature checked, the
//! `pkcsPKIEnvelope` it carries opened by the CA's SCEP RA (a CMS EnvelopedData, its content
//! key sent with RSA PKCS#1 v1.5 key transport, the content AES-CBC), and the `CertRep`
//! written (signed by the RA; a certificate or CRL sealed to the client's certificate).
//!
//! What is read: `PKCSReq`, `RenewalReq`, `CertPoll`, `GetCert`, `GetCRL`, signed with
//! RSASSA-PKCS1-v1_5 or RSASSA-PSS over SHA-256, SHA-384 or SHA-512 (SHA-1 and MD5 are
//! refused: `badAlg`), enveloped with AES-128/192/256-CBC (DES and 3DES are refused). DER
//! only, every length checked by [`crate::der::well_formed`] before anything is read.

mod envelope;
#[cfg(test)]
mod tests;

pub use envelope::{seal, Ra};

use aws_lc_rs::digest;
use aws_lc_rs::signature;
use yasna::models::ObjectIdentifier;

use crate::cmp::protection::{self, Hash, SignatureAlg};
use crate::der;
use crate::Error;

/// What `GetCACaps` answers (RFC 8894 §3.5.2): AES, the SHA-2 digests, POST, renewal,
/// `SCEPStandard` (all of RFC 8894's mandatory set but SHA-1 and DES, which are refused).
pub const CAPS: &str = "AES\nPOSTPKIOperation\nRenewal\nSCEPStandard\nSHA-256\nSHA-384\nSHA-512\n";
/// Largest message read.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The media type of `PKIOperation` both ways.
pub const PKI_MESSAGE: &str = "application/x-pki-message";
/// The media type of `GetCACert` when it answers the RA and the CA (RFC 8894 §4.2.1.2).
pub const CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";

/// `messageType` (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The answer.
    CertRep,
    /// Renewal of a certificate the CA issued, signed by it.
    RenewalReq,
    /// Enrollment.
    PkcsReq,
    /// Polling for a pending request.
    CertPoll,
    /// A certificate by issuer and serial.
    GetCert,
    /// The CRL of the issuer of a certificate.
    GetCrl,
}

impl MessageType {
    fn number(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    fn from_number(text: &[u8]) -> Option<Self> {
        [
            MessageType::CertRep,
            MessageType::RenewalReq,
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::GetCert,
            MessageType::GetCrl,
        ]
        .into_iter()
        .find(|m| m.number().as_bytes() == text)
    }

    /// Its RFC 8894 name.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::CertRep => "CertRep",
            MessageType::RenewalReq => "RenewalReq",
            MessageType::PkcsReq => "PKCSReq",
            MessageType::CertPoll => "CertPoll",
            MessageType::GetCert => "GetCert",
            MessageType::GetCrl => "GetCRL",
        }
    }
}

/// `failInfo` (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Integrity check (signature, digest or decryption) failed.
    BadMessageCheck,
    /// Transaction not permitted or supported.
    BadRequest,
    /// The message time was not close enough to the system time.
    BadTime,
    /// No certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    fn number(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }
}

/// Why a request is refused: its `failInfo` and a reason (for the audit log; SCEP has no
/// field for text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The failInfo.
    pub fail: FailInfo,
    /// The reason, for people.
    pub reason: String,
}

impl Refusal {
    /// A refusal with `fail` because of `reason`.
    pub fn new(fail: FailInfo, reason: impl Into<String>) -> Self {
        Self {
            fail,
            reason: reason.into(),
        }
    }
}

/// A `pkiMessage` read, its signature not yet checked ([`Request::verify`]).
#[derive(Debug, Clone)]
pub struct Request {
    /// What it asks.
    pub message_type: MessageType,
    /// `transactionID` (a PrintableString: the characters as sent).
    pub transaction_id: String,
    /// `senderNonce` (the answer's `recipientNonce`).
    pub sender_nonce: Vec<u8>,
    /// The signer's certificate (DER): self-signed for a first `PKCSReq`, else one the CA
    /// issued. Answers are sealed to its key.
    pub signer: Vec<u8>,
    /// The `pkcsPKIEnvelope` (a CMS ContentInfo holding an EnvelopedData, DER).
    pub envelope: Vec<u8>,
    /// `recipientNonce`, if present (a `CertRep`'s).
    pub recipient_nonce: Option<Vec<u8>>,
    hash: Hash,
    pss: bool,
    signed_attrs: Vec<u8>,
    signature: Vec<u8>,
    message_digest: Vec<u8>,
}

// OIDs (arcs).
pub(crate) use crate::cms::{content_info, ENVELOPED_DATA};

pub(crate) const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
pub(crate) const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
const SIGNING_TIME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 5];
const CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113_549, 1, 9, 7];
const MESSAGE_TYPE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 2];
const PKI_STATUS: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 3];
const FAIL_INFO: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 4];
const SENDER_NONCE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 5];
const RECIPIENT_NONCE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 6];
const TRANS_ID: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 7];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
const SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];
pub(crate) const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const RSA_PSS: &[u64] = &[1, 2, 840, 113_549, 1, 1, 10];
const MGF1: &[u64] = &[1, 2, 840, 113_549, 1, 1, 8];
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];
const SHA384_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 12];
const SHA512_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 13];

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OID: u8 = 0x06;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
const PRINTABLE_STRING: u8 = 0x13;
pub(crate) const EXPLICIT_0: u8 = 0xa0;
const IMPLICIT_1: u8 = 0xa1;

/// Whether `b` may be in a PrintableString (X.680 §41.4).
fn printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// The DER contents of an OID with `arcs`.
pub(crate) fn oid_contents(arcs: &[u64]) -> Vec<u8> {
    let der = yasna::construct_der(|w| w.write_oid(&ObjectIdentifier::from_slice(arcs)));
    der.get(2..).map(<[u8]>::to_vec).unwrap_or_default()
}

pub(crate) fn is_oid(contents: &[u8], arcs: &[u64]) -> bool {
    contents == oid_contents(arcs).as_slice()
}

/// A cursor over consecutive DER elements.
pub(crate) struct Elements<'a>(pub(crate) &'a [u8]);

impl<'a> Elements<'a> {
    /// The next element: (tag, contents, the whole element).
    pub(crate) fn next_any(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let (tag, contents, rest) = der::tlv(self.0)?;
        let whole = self.0.get(..self.0.len() - rest.len())?;
        self.0 = rest;
        Some((tag, contents, whole))
    }

    /// The contents of the next element, which must be a `tag`.
    pub(crate) fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.take_whole(tag).map(|(c, _)| c)
    }

    /// The next element, which must be a `tag`: (contents, whole).
    pub(crate) fn take_whole(&mut self, tag: u8) -> Option<(&'a [u8], &'a [u8])> {
        match der::tlv(self.0) {
            Some((t, _, _)) if t == tag => self.next_any().map(|(_, c, w)| (c, w)),
            _ => None,
        }
    }

    /// The tag of the next element.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn unreadable(reason: &str) -> Error {
    Error::Certificate {
        what: "SCEP message",
        reason: reason.to_owned(),
    }
}

/// A signed attribute's first value: (tag, contents).
type Attribute<'a> = (u8, &'a [u8]);

/// The attributes of a `[0] IMPLICIT SET OF Attribute` (contents): (OID contents, first value).
fn attributes(mut contents: &[u8]) -> Option<Vec<(&[u8], Attribute<'_>)>> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (tag, attr, rest) = der::tlv(contents)?;
        if tag != SEQUENCE {
            return None;
        }
        let mut e = Elements(attr);
        let oid = e.take(OID)?;
        let mut values = Elements(e.take(SET)?);
        let (vtag, value, _) = values.next_any()?;
        out.push((oid, (vtag, value)));
        contents = rest;
    }
    Some(out)
}

fn find<'a>(attrs: &[(&[u8], Attribute<'a>)], arcs: &[u64]) -> Option<Attribute<'a>> {
    let want = oid_contents(arcs);
    attrs
        .iter()
        .find(|(oid, _)| *oid == want.as_slice())
        .map(|(_, v)| *v)
}

/// A string attribute's value: a PrintableString, or any other string a client may use.
fn string_attr<'a>(
    attrs: &[(&[u8], Attribute<'a>)],
    arcs: &[u64],
    what: &str,
) -> Result<&'a [u8], Error> {
    match find(attrs, arcs) {
        Some((0x13 | 0x0c | 0x16 | 0x14, v)) => Ok(v),
        _ => Err(unreadable(&format!("no {what} attribute"))),
    }
}

/// An AlgorithmIdentifier's OID contents.
fn algorithm_oid(alg: &[u8]) -> Option<&[u8]> {
    Elements(alg).take(OID)
}

impl Request {
    /// Reads a `pkiMessage` (DER): its structure, its SCEP attributes and its signer's
    /// certificate (named by the SignerInfo's issuer and serial, among the message's
    /// certificates). Its signature is checked by [`Request::verify`].
    pub fn parse(der_bytes: &[u8]) -> Result<Request, Error> {
        let request = Self::read(der_bytes)?;
        if request.message_type == MessageType::CertRep {
            return Err(unreadable("a CertRep is an answer, not a request"));
        }
        Ok(request)
    }

    /// Reads any `pkiMessage`, a `CertRep` too.
    pub(crate) fn read(der_bytes: &[u8]) -> Result<Request, Error> {
        if der_bytes.len() > MAX_MESSAGE {
            return Err(unreadable("larger than 64 KiB"));
        }
        if !der::well_formed(der_bytes) {
            return Err(unreadable("not DER"));
        }
        let bad = || unreadable("not a CMS SignedData as SCEP sends it");
        let mut info = Elements(Elements(der_bytes).take(SEQUENCE).ok_or_else(bad)?);
        if !is_oid(info.take(OID).ok_or_else(bad)?, SIGNED_DATA) {
            return Err(unreadable("not a CMS SignedData"));
        }
        let explicit = info.take(EXPLICIT_0).ok_or_else(bad)?;
        let mut signed = Elements(Elements(explicit).take(SEQUENCE).ok_or_else(bad)?);
        signed.take(INTEGER).ok_or_else(bad)?;
        signed.take(SET).ok_or_else(bad)?;
        let mut encap = Elements(signed.take(SEQUENCE).ok_or_else(bad)?);
        if !is_oid(encap.take(OID).ok_or_else(bad)?, DATA) {
            return Err(unreadable("the signed content is not id-data"));
        }
        let content = match encap.take(EXPLICIT_0) {
            Some(c) => Elements(c)
                .take(OCTET_STRING)
                .ok_or_else(|| unreadable("the content is not one OCTET STRING"))?,
            None => &[][..],
        };
        let mut certs = Vec::new();
        if signed.peek() == Some(EXPLICIT_0) {
            let mut list = Elements(signed.take(EXPLICIT_0).ok_or_else(bad)?);
            while let Some((tag, _, whole)) = list.next_any() {
                if tag == SEQUENCE {
                    certs.push(whole);
                }
            }
        }
        if signed.peek() == Some(IMPLICIT_1) {
            signed.take(IMPLICIT_1);
        }
        let mut infos = Elements(signed.take(SET).ok_or_else(bad)?);
        let info_der = infos.take(SEQUENCE).ok_or_else(bad)?;
        if !infos.is_empty() {
            return Err(unreadable("more than one signer"));
        }
        let mut si = Elements(info_der);
        si.take(INTEGER).ok_or_else(bad)?;
        let mut sid = Elements(
            si.take(SEQUENCE)
                .ok_or_else(|| unreadable("the signer is not named by issuer and serial"))?,
        );
        let (_, issuer) = sid.take_whole(SEQUENCE).ok_or_else(bad)?;
        let serial = sid.take(INTEGER).ok_or_else(bad)?;
        let digest_alg = si.take(SEQUENCE).ok_or_else(bad)?;
        let (attrs_contents, attrs_whole) = si
            .take_whole(EXPLICIT_0)
            .ok_or_else(|| unreadable("no signed attributes"))?;
        let signature_alg = si.take(SEQUENCE).ok_or_else(bad)?;
        let signature = si.take(OCTET_STRING).ok_or_else(bad)?;

        let attrs = attributes(attrs_contents).ok_or_else(bad)?;
        let message_type =
            MessageType::from_number(string_attr(&attrs, MESSAGE_TYPE, "messageType")?)
                .ok_or_else(|| unreadable("an unknown messageType"))?;
        let transaction_id = std::str::from_utf8(string_attr(&attrs, TRANS_ID, "transactionID")?)
            .ok()
            .filter(|t| !t.is_empty() && t.len() <= 128 && t.bytes().all(printable))
            .ok_or_else(|| unreadable("a transactionID of 1 to 128 PrintableString characters"))?
            .to_owned();
        let sender_nonce = match find(&attrs, SENDER_NONCE) {
            Some((OCTET_STRING, n)) if n.len() == 16 => n.to_vec(),
            _ => return Err(unreadable("no 16-byte senderNonce")),
        };
        let recipient_nonce = match find(&attrs, RECIPIENT_NONCE) {
            Some((OCTET_STRING, n)) => Some(n.to_vec()),
            _ => None,
        };
        if !matches!(find(&attrs, CONTENT_TYPE), Some((OID, c)) if is_oid(c, DATA)) {
            return Err(unreadable("the contentType attribute is not id-data"));
        }
        let message_digest = match find(&attrs, MESSAGE_DIGEST) {
            Some((OCTET_STRING, d)) => d.to_vec(),
            _ => return Err(unreadable("no messageDigest attribute")),
        };

        let signer = certs
            .iter()
            .find(|c| names(c).is_some_and(|(i, s)| i == issuer && s == serial))
            .ok_or_else(|| unreadable("the signer's certificate is not in the message"))?
            .to_vec();
        let hash_oid = algorithm_oid(digest_alg).ok_or_else(bad)?;
        let hash = [
            (SHA256, Hash::Sha256),
            (SHA384, Hash::Sha384),
            (SHA512, Hash::Sha512),
        ]
        .into_iter()
        .find(|(arcs, _)| is_oid(hash_oid, arcs))
        .map(|(_, h)| h);
        let sig_oid = algorithm_oid(signature_alg).ok_or_else(bad)?;
        let pss = is_oid(sig_oid, RSA_PSS);
        let pkcs1 = [
            (RSA_ENCRYPTION, None),
            (SHA256_WITH_RSA, Some(Hash::Sha256)),
            (SHA384_WITH_RSA, Some(Hash::Sha384)),
            (SHA512_WITH_RSA, Some(Hash::Sha512)),
        ]
        .into_iter()
        .find(|(arcs, _)| is_oid(sig_oid, arcs));
        let hash = match (hash, pss, pkcs1) {
            (Some(h), true, None) if pss_params_fit(signature_alg, h) => Some(h),
            (Some(h), false, Some((_, None))) => Some(h),
            (Some(h), false, Some((_, Some(named)))) if named == h => Some(h),
            _ => None,
        };
        let mut signed_attrs = attrs_whole.to_vec();
        // Signed over as a SET OF (RFC 5652 §5.4), not with its [0] IMPLICIT tag.
        if let Some(first) = signed_attrs.first_mut() {
            *first = SET;
        }
        Ok(Request {
            message_type,
            transaction_id,
            sender_nonce,
            recipient_nonce,
            signer,
            envelope: content.to_vec(),
            // An algorithm outside the set is refused by `verify` (badAlg), signed.
            hash: hash.unwrap_or(Hash::Sha256),
            pss: pss || hash.is_none(),
            signed_attrs,
            signature: signature.to_vec(),
            message_digest: if hash.is_some() {
                message_digest
            } else {
                Vec::new()
            },
        })
    }

    /// Checks the digest and signature algorithms (SHA-2, RSA), the content's digest and the
    /// signature by the signer's certificate.
    pub fn verify(&self) -> Result<(), Refusal> {
        if self.message_digest.is_empty() {
            return Err(Refusal::new(
                FailInfo::BadAlg,
                "signatures are RSA (PKCS #1 v1.5, or PSS with MGF1 of the same hash and a salt \
                 as long as the hash) with SHA-256, SHA-384 or SHA-512",
            ));
        }
        if digest::digest(digest_of(self.hash), &self.envelope).as_ref()
            != self.message_digest.as_slice()
        {
            return Err(Refusal::new(
                FailInfo::BadMessageCheck,
                "the messageDigest is not the content's digest",
            ));
        }
        let spki = spki_of(&self.signer).ok_or_else(|| {
            Refusal::new(
                FailInfo::BadMessageCheck,
                "the signer's certificate does not parse",
            )
        })?;
        let ok = if self.pss {
            verify_pss(&spki, self.hash, &self.signed_attrs, &self.signature)
        } else {
            protection::verify(
                &spki,
                SignatureAlg::Rsa(self.hash),
                &self.signed_attrs,
                &self.signature,
            )
        };
        if !ok {
            return Err(Refusal::new(
                FailInfo::BadMessageCheck,
                "the signature does not verify with the signer's RSA key",
            ));
        }
        Ok(())
    }

    /// The hash the request was signed with (its answer is signed with it too).
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

pub(crate) fn digest_of(hash: Hash) -> &'static digest::Algorithm {
    match hash {
        Hash::Sha256 => &digest::SHA256,
        Hash::Sha384 => &digest::SHA384,
        Hash::Sha512 => &digest::SHA512,
    }
}

pub(crate) fn hash_arcs(hash: Hash) -> &'static [u64] {
    match hash {
        Hash::Sha256 => SHA256,
        Hash::Sha384 => SHA384,
        Hash::Sha512 => SHA512,
    }
}

/// Whether RSASSA-PSS parameters (the contents of the AlgorithmIdentifier, RFC 4055 §3.1)
/// name `hash`, MGF1 with `hash` and a salt as long as the hash (what is verified here).
fn pss_params_fit(alg: &[u8], hash: Hash) -> bool {
    let digest_oid = |alg: &[u8]| Elements(alg).take(OID).map(<[u8]>::to_vec);
    let wanted = oid_contents(hash_arcs(hash));
    let mut e = Elements(alg);
    let (Some(_), Some(params)) = (e.take(OID), e.take(SEQUENCE)) else {
        return false; // absent parameters are SHA-1's
    };
    let mut p = Elements(params);
    let named_hash = p
        .take(EXPLICIT_0)
        .and_then(|h| Elements(h).take(SEQUENCE))
        .and_then(digest_oid);
    let mgf = p
        .take(0xa1)
        .and_then(|m| Elements(m).take(SEQUENCE))
        .and_then(|m| {
            let mut m = Elements(m);
            let mgf1 = m.take(OID).is_some_and(|o| is_oid(o, MGF1));
            m.take(SEQUENCE).and_then(digest_oid).filter(|_| mgf1)
        });
    let salt = p
        .take(0xa2)
        .and_then(|s| Elements(s).take(INTEGER))
        .and_then(|s| match s {
            [n] => Some(usize::from(*n)),
            _ => None,
        });
    let trailer_ok = match p.take(0xa3) {
        None => true,
        Some(t) => Elements(t).take(INTEGER) == Some(&[1][..]),
    };
    named_hash.as_deref() == Some(wanted.as_slice())
        && mgf.as_deref() == Some(wanted.as_slice())
        && salt == Some(digest_of(hash).output_len())
        && trailer_ok
        && p.is_empty()
}

fn verify_pss(spki_der: &[u8], hash: Hash, data: &[u8], sig: &[u8]) -> bool {
    use x509_parser::prelude::FromDer as _;
    let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der) else {
        return false;
    };
    let params: &'static dyn signature::VerificationAlgorithm = match hash {
        Hash::Sha256 => &signature::RSA_PSS_2048_8192_SHA256,
        Hash::Sha384 => &signature::RSA_PSS_2048_8192_SHA384,
        Hash::Sha512 => &signature::RSA_PSS_2048_8192_SHA512,
    };
    signature::UnparsedPublicKey::new(params, spki.subject_public_key.data.as_ref())
        .verify(data, sig)
        .is_ok()
}

/// A certificate's (issuer Name DER, serial INTEGER contents).
pub(crate) fn names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut c = Elements(Elements(cert).take(SEQUENCE)?);
    let mut tbs = Elements(c.take(SEQUENCE)?);
    if tbs.peek() == Some(EXPLICIT_0) {
        tbs.take(EXPLICIT_0)?;
    }
    let serial = tbs.take(INTEGER)?;
    tbs.take(SEQUENCE)?; // signature algorithm
    let (_, issuer) = tbs.take_whole(SEQUENCE)?;
    Some((issuer, serial))
}

/// A certificate's public key (SubjectPublicKeyInfo DER), if it parses.
pub(crate) fn spki_of(cert: &[u8]) -> Option<Vec<u8>> {
    crate::cmp::identity(cert).map(|i| i.spki)
}

/// A short name for a key (SubjectPublicKeyInfo DER): the first 16 bytes of its SHA-256, hex.
pub fn key_name(spki: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, spki);
    crate::hex(hash.as_ref().get(..16).unwrap_or_default())
}

/// The `challengePassword` of a PKCS#10 request (DER), if it has one.
pub fn challenge_password(csr: &[u8]) -> Option<String> {
    let mut req = Elements(Elements(csr).take(SEQUENCE)?);
    let mut info = Elements(req.take(SEQUENCE)?);
    info.take(INTEGER)?;
    info.take(SEQUENCE)?; // subject
    info.take(SEQUENCE)?; // subjectPKInfo
    let attrs = attributes(info.take(EXPLICIT_0)?)?;
    match find(&attrs, CHALLENGE_PASSWORD)? {
        (0x13 | 0x0c | 0x16 | 0x14 | 0x1e, value) => String::from_utf8(value.to_vec())
            .ok()
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// What a `GetCert`/`GetCRL` (`IssuerAndSerialNumber`) or a `CertPoll` (`IssuerAndSubject`)
/// names: (issuer Name DER, serial magnitude or subject Name DER).
pub fn issuer_and(der_bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if !der::well_formed(der_bytes) {
        return None;
    }
    let mut seq = Elements(Elements(der_bytes).take(SEQUENCE)?);
    let (_, issuer) = seq.take_whole(SEQUENCE)?;
    let second = match seq.next_any()? {
        (INTEGER, serial, _) => {
            let trimmed: &[u8] = match serial {
                [0, rest @ ..] if !rest.is_empty() => rest,
                s => s,
            };
            trimmed.to_vec()
        }
        (SEQUENCE, _, subject) => subject.to_vec(),
        _ => return None,
    };
    Some((issuer.to_vec(), second))
}

/// How a `CertRep` ends.
#[derive(Debug, Clone)]
pub enum Status {
    /// SUCCESS: `content` (a degenerate SignedData: the certificate, or the CRL) sealed to
    /// the request's signer.
    Success(Vec<u8>),
    /// PENDING: the RA has not decided; the client polls.
    Pending,
    /// FAILURE with this failInfo.
    Failure(FailInfo),
}

/// A `CertRep` to write.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    /// The request answered.
    pub request: &'a Request,
    /// Its outcome.
    pub status: Status,
    /// Now, Unix seconds (`signingTime`).
    pub now: u64,
}

/// A degenerate SignedData carrying one CRL (DER) and nothing else: a `GetCRL` answer's
/// content (RFC 8894 §3.3.4).
pub fn crl_only_message(crl: &[u8]) -> Vec<u8> {
    content_info(SIGNED_DATA, |w| {
        w.write_sequence(|w| {
            w.next().write_u8(1);
            w.next().write_set(|_| {});
            w.next().write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(DATA));
            });
            w.next().write_tagged_implicit(yasna::Tag::context(1), |w| {
                w.write_set(|w| w.next().write_der(crl));
            });
            w.next().write_set(|_| {});
        });
    })
}

/// The signed attributes of a `CertRep` (DER, as a SET OF: what the RA signs), with the
/// digest of `content` (the sealed envelope; empty when there is none).
pub(crate) fn reply_attributes(
    reply: &Reply<'_>,
    content: &[u8],
    sender_nonce: &[u8],
) -> Result<Vec<u8>, Error> {
    let (status, fail) = match &reply.status {
        Status::Success(_) => ("0", None),
        Status::Pending => ("3", None),
        Status::Failure(f) => ("2", Some(*f)),
    };
    let now = time::OffsetDateTime::from_unix_timestamp(i64::try_from(reply.now).unwrap_or(0))
        .map_err(|_| Error::Certificate {
            what: "SCEP reply",
            reason: "time out of range".to_owned(),
        })?;
    // UTCTime until 2049, GeneralizedTime from 2050 (RFC 5652 §11.3).
    let utc = yasna::models::UTCTime::from_datetime_opt(now);
    let general =
        yasna::models::GeneralizedTime::from_datetime_opt(now).ok_or(Error::Certificate {
            what: "SCEP reply",
            reason: "time out of range".to_owned(),
        })?;
    let digest = digest::digest(digest_of(reply.request.hash), content);
    let printable = |w: yasna::DERWriter<'_>, text: &str| {
        w.write_printable_string(text);
    };
    let attr = |arcs: &'static [u64], value: &dyn Fn(yasna::DERWriter<'_>)| {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(arcs));
                w.next().write_set(|w| value(w.next()));
            });
        })
    };
    let mut attrs = vec![
        attr(CONTENT_TYPE, &|w| {
            w.write_oid(&ObjectIdentifier::from_slice(DATA));
        }),
        attr(SIGNING_TIME, &|w| match &utc {
            Some(t) => w.write_utctime(t),
            None => w.write_generalized_time(&general),
        }),
        attr(MESSAGE_DIGEST, &|w| w.write_bytes(digest.as_ref())),
        attr(MESSAGE_TYPE, &|w| {
            printable(w, MessageType::CertRep.number())
        }),
        attr(PKI_STATUS, &|w| printable(w, status)),
        // As sent (checked to be PrintableString characters when read).
        attr(TRANS_ID, &|w| {
            w.write_der(&envelope::tlv(
                PRINTABLE_STRING,
                reply.request.transaction_id.as_bytes(),
            ))
        }),
        attr(SENDER_NONCE, &|w| w.write_bytes(sender_nonce)),
        attr(RECIPIENT_NONCE, &|w| {
            w.write_bytes(&reply.request.sender_nonce)
        }),
    ];
    if let Some(f) = fail {
        attrs.push(attr(FAIL_INFO, &|w| printable(w, f.number())));
    }
    Ok(yasna::construct_der(|w| {
        // DER: yasna writes a SET OF in the order of its elements' encodings.
        w.write_set_of(|w| {
            for a in &attrs {
                w.next().write_der(a);
            }
        });
    }))
}
