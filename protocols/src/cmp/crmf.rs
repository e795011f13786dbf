//! CRMF certificate requests (RFC 4211) as the Lightweight CMP Profile has them (RFC 9483
//! §4.1.1): one `CertReqMsg` whose template names at most a subject, a public key and
//! extensions (and a validity or issuer, which the label's profile and CA decide instead),
//! with a signature proof of possession over the `CertRequest` made with the requested key.

use super::protection::{verify, SignatureAlg};
use super::{elements, malformed, Failure, Refusal};
use crate::ca::csr::{self, Csr};
use crate::der::{expect, tlv};

fn template(reason: impl Into<String>) -> Refusal {
    Refusal::new(Failure::BadCertTemplate, reason)
}

/// The parts of a `CertReqMsg`.
struct Parts<'a> {
    /// The `CertRequest` TLV (what the proof of possession signs).
    request: &'a [u8],
    /// Its elements: `certReqId`, `certTemplate`, `controls`.
    fields: Vec<&'a [u8]>,
    /// The proof of possession TLV, if any.
    popo: Option<&'a [u8]>,
}

fn split(der: &[u8]) -> Result<Parts<'_>, Refusal> {
    let (contents, rest) = expect(der, 0x30).ok_or_else(|| malformed("CertReqMsg"))?;
    if !rest.is_empty() {
        return Err(malformed("CertReqMsg"));
    }
    let parts = elements(contents).ok_or_else(|| malformed("CertReqMsg"))?;
    let (&request, rest) = parts.split_first().ok_or_else(|| malformed("CertReqMsg"))?;
    // popo [0..3] and regInfo (a SEQUENCE, ignored).
    let popo = rest
        .iter()
        .copied()
        .find(|p| p.first().is_some_and(|t| t & 0xc0 == 0x80));
    let (fields, _) = expect(request, 0x30).ok_or_else(|| malformed("CertRequest"))?;
    let fields = elements(fields).ok_or_else(|| malformed("CertRequest"))?;
    Ok(Parts {
        request,
        fields,
        popo,
    })
}

/// The `certReqId` of a `CertReqMsg` (DER).
pub fn cert_req_id(der: &[u8]) -> Result<i64, Refusal> {
    let parts = split(der)?;
    let id = parts
        .fields
        .first()
        .ok_or_else(|| malformed("CertRequest"))?;
    yasna::parse_der(id, |r| r.read_i64()).map_err(|_| malformed("certReqId"))
}

/// Reads a `CertReqMsg` (DER) into a checked request: the template's key, subject and
/// extensions, checked like a PKCS#10 request's, after its signature proof of possession
/// verifies with that key.
pub fn read(der: &[u8]) -> Result<Csr, Refusal> {
    let Parts {
        request,
        fields,
        popo,
    } = split(der)?;
    let template_der = fields.get(1).ok_or_else(|| malformed("CertRequest"))?;
    let (contents, _) = expect(template_der, 0x30).ok_or_else(|| malformed("CertTemplate"))?;
    let (mut subject, mut public_key, mut extensions) = (None, None, None);
    for field in elements(contents).ok_or_else(|| malformed("CertTemplate"))? {
        let (tag, value, _) = tlv(field).ok_or_else(|| malformed("CertTemplate"))?;
        match tag {
            // version: v3 (2) if given.
            0x80 => {
                if value != [2] {
                    return Err(template("version must be v3 (2) if given"));
                }
            }
            0x81 => return Err(template("serialNumber is the CA's to choose")),
            0xa2 => return Err(template("signingAlg is the CA's to choose")),
            // issuer and validity: the label's CA and profile decide.
            0xa3 | 0xa4 => {}
            0xa5 => subject = Some(value),
            0xa6 => public_key = Some(reassemble(value)),
            0x87 | 0x88 => return Err(template("unique identifiers are not issued")),
            0xa9 => extensions = Some(reassemble(value)),
            _ => return Err(malformed("CertTemplate")),
        }
    }
    let public_key = public_key.ok_or_else(|| template("the template names no public key"))?;
    let checked = csr::from_parts(&public_key, subject, extensions.as_deref())
        .map_err(|e| template(format!("{}: {}", e.field, e.reason)))?;
    // Proof of possession: a signature over the CertRequest with the requested key.
    let popo = popo.ok_or_else(|| Refusal::new(Failure::BadPop, "no proof of possession"))?;
    let (tag, contents, _) = tlv(popo).ok_or_else(|| malformed("ProofOfPossession"))?;
    if tag != 0xa1 {
        return Err(Refusal::new(
            Failure::BadPop,
            "only a signature proves possession here (not raVerified or key encipherment)",
        ));
    }
    let parts = elements(contents).ok_or_else(|| malformed("POPOSigningKey"))?;
    let (alg, sig) = match parts.as_slice() {
        [alg, sig] => (*alg, *sig),
        _ => {
            return Err(Refusal::new(
                Failure::BadPop,
                "poposkInput is not taken: the template names the subject and key",
            ))
        }
    };
    let alg = SignatureAlg::parse(alg)?;
    let (bits, len) = yasna::parse_der(sig, |r| r.read_bitvec_bytes())
        .map_err(|_| malformed("the POPO signature"))?;
    if len != bits.len() * 8 || !verify(&public_key, alg, request, &bits) {
        return Err(Refusal::new(
            Failure::BadPop,
            "the proof of possession does not verify with the requested key",
        ));
    }
    Ok(checked)
}

/// An implicitly tagged SEQUENCE's contents as the SEQUENCE itself.
fn reassemble(contents: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(contents);
        })
    })
}
