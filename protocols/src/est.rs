//! RFC 7030 (Enrollment over Secure Transport) messages, as a client uses them: the
//! `/simpleenroll` request body (a base64 PKCS#10 request) and the answer, a base64 CMS
//! "certs-only" message (RFC 7030 §4.2.3, RFC 5652 §5: a SignedData without signers that only
//! carries certificates). No I/O: the caller sends and receives.

use base64::Engine as _;

use crate::der;
use crate::Error;

/// `/.well-known/est/simpleenroll` (RFC 7030 §3.2.2).
pub const SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";
/// The request's media type (RFC 7030 §4.2.1).
pub const CSR_MEDIA_TYPE: &str = "application/pkcs10";

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const EXPLICIT_0: u8 = 0xa0;
const IMPLICIT_0_SET: u8 = 0xa0;
/// 1.2.840.113549.1.7.2 (id-signedData).
const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// Largest answer parsed.
const MAX_BODY: usize = 256 * 1024;

fn bad(reason: &str) -> Error {
    Error::Certificate {
        what: "EST answer",
        reason: reason.to_owned(),
    }
}

/// The `/simpleenroll` body for a DER PKCS#10 request: base64 (RFC 7030 §4.2.1 sends it with
/// `Content-Transfer-Encoding: base64`).
pub fn request_body(csr_der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(csr_der)
}

/// The certificates (DER, in the order they came) of a `/simpleenroll` answer: base64 of a
/// CMS ContentInfo holding a SignedData whose `certificates` are the issued certificate and,
/// usually, its chain. Line breaks and spaces in the base64 are ignored.
pub fn certs_only(body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    if body.len() > MAX_BODY {
        return Err(bad("too large"));
    }
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|_| bad("not base64"))?;
    certificates(&der)
}

/// RFC 5652 §3 ContentInfo { contentType id-signedData, [0] EXPLICIT SignedData }, §5.1
/// SignedData { version, digestAlgorithms SET, encapContentInfo, [0] IMPLICIT certificates,
/// ... }: the certificates, each a whole SEQUENCE.
pub fn certificates(der: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let malformed = || bad("not a CMS certs-only message");
    let (info, rest) = der::expect(der, SEQUENCE).ok_or_else(malformed)?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    let (content_type, rest) = der::expect(info, OID).ok_or_else(malformed)?;
    if content_type != SIGNED_DATA {
        return Err(bad("not SignedData"));
    }
    let (explicit, _) = der::expect(rest, EXPLICIT_0).ok_or_else(malformed)?;
    let (signed, _) = der::expect(explicit, SEQUENCE).ok_or_else(malformed)?;
    let (_version, rest) = der::expect(signed, INTEGER).ok_or_else(malformed)?;
    let (_digests, rest) = der::expect(rest, SET).ok_or_else(malformed)?;
    let (_encap, rest) = der::expect(rest, SEQUENCE).ok_or_else(malformed)?;
    let (mut certs, _) = der::expect(rest, IMPLICIT_0_SET).ok_or_else(|| bad("no certificates"))?;
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (tag, _, next) = der::tlv(certs).ok_or_else(malformed)?;
        if tag != SEQUENCE {
            return Err(bad("a certificate is not a SEQUENCE"));
        }
        let whole = certs
            .get(..certs.len() - next.len())
            .ok_or_else(malformed)?;
        out.push(whole.to_vec());
        certs = next;
    }
    if out.is_empty() {
        return Err(bad("no certificates"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl crl2pkcs7 -nocrl -certfile leaf.pem -certfile ca.pem -outform DER | base64`:
    /// a leaf and its CA, as an EST server answers.
    const OPENSSL_CERTS_ONLY: &str = include_str!("../testdata/est-certs-only.b64");
    /// The same two certificates as PEM, in the same order.
    const OPENSSL_CERTS_PEM: &str = include_str!("../testdata/est-certs-only.pem");

    #[test]
    fn openssl_s_certs_only_message_gives_its_certificates_in_order() {
        use rustls_pki_types::pem::PemObject as _;
        let certs = certs_only(OPENSSL_CERTS_ONLY.as_bytes()).unwrap();
        let expected: Vec<Vec<u8>> =
            rustls_pki_types::CertificateDer::pem_slice_iter(OPENSSL_CERTS_PEM.as_bytes())
                .map(|c| c.unwrap().to_vec())
                .collect();
        assert_eq!(expected.len(), 2);
        assert_eq!(certs, expected);
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        let good = base64::engine::general_purpose::STANDARD
            .decode(
                OPENSSL_CERTS_ONLY
                    .bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect::<Vec<u8>>(),
            )
            .unwrap();
        for cut in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
            assert!(certificates(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_type = good.clone();
        let at = wrong_type
            .windows(SIGNED_DATA.len())
            .position(|w| w == SIGNED_DATA)
            .unwrap();
        wrong_type[at + SIGNED_DATA.len() - 1] = 0x01; // id-data
        assert!(certificates(&wrong_type).is_err());
        assert!(certs_only(b"not base64!").is_err());
        assert!(certs_only(&vec![b'A'; MAX_BODY + 1]).is_err());
    }
}
