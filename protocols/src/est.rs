//! RFC 7030 (Enrollment over Secure Transport) messages, as a client and the CA's server use
//! them: request and answer bodies (base64 DER, `Content-Transfer-Encoding: base64`), the
//! `/simpleenroll` answer and `/cacerts`, a CMS "certs-only" message (RFC 7030 §4.1.3, §4.2.3;
//! RFC 5652 §5: a SignedData without signers that only carries certificates), and the
//! `/csrattrs` answer. No I/O: the caller sends and receives.

use base64::Engine as _;
use yasna::models::ObjectIdentifier;
use yasna::Tag;

use crate::ca::KeyType;
use crate::der;
use crate::Error;

/// `/.well-known/est/simpleenroll` (RFC 7030 §3.2.2).
pub const SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";
/// The request's media type (RFC 7030 §4.2.1).
pub const CSR_MEDIA_TYPE: &str = "application/pkcs10";
/// Largest request body a server reads (a PKCS#10 request, base64): 64 KiB.
pub const MAX_REQUEST: usize = 64 * 1024;

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

const SIGNED_DATA_ARCS: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
const SECP256R1: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];
const SECP384R1: &[u64] = &[1, 3, 132, 0, 34];
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];
const ECDSA_WITH_SHA384: &[u64] = &[1, 2, 840, 10_045, 4, 3, 3];
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];

fn bad(what: &'static str, reason: &str) -> Error {
    Error::Certificate {
        what,
        reason: reason.to_owned(),
    }
}

/// `der` as an EST body: base64 in lines of 64 characters, each ended by a line feed (what
/// `base64 -d` and every EST client read).
pub fn body(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The DER inside an EST body of at most `max` bytes: base64, line breaks and other white
/// space ignored.
pub fn decode_body(body: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    let what = "EST body";
    if body.len() > max {
        return Err(bad(what, "too large"));
    }
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(bad(what, "empty"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|_| bad(what, "not base64 (EST bodies are base64-encoded DER)"))
}

/// The certificates (DER, in the order they came) of a `/simpleenroll` answer: base64 of a
/// CMS ContentInfo holding a SignedData whose `certificates` are the issued certificate and,
/// usually, its chain.
pub fn certs_only(body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    certificates(&decode_body(body, MAX_BODY).map_err(|e| match e {
        Error::Certificate { reason, .. } => bad("EST answer", &reason),
        other => other,
    })?)
}

/// RFC 5652 §3 ContentInfo { contentType id-signedData, [0] EXPLICIT SignedData }, §5.1
/// SignedData { version, digestAlgorithms SET, encapContentInfo, [0] IMPLICIT certificates,
/// ... }: the certificates, each a whole SEQUENCE.
pub fn certificates(der: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |reason: &str| bad("EST answer", reason);
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

/// A certs-only CMS message (DER) carrying `certs` (DER) in the order given (the issued
/// certificate first, then its chain, as clients read it) and no signer: version 1, no digest
/// algorithms, `id-data` content without eContent, no signer infos.
pub fn certs_only_message<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let certs: Vec<&[u8]> = certs.into_iter().collect();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(SIGNED_DATA_ARCS));
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_set(|_| {});
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(DATA));
                    });
                    // [0] IMPLICIT SET OF in the order given: a SEQUENCE has the same content
                    // rules, and keeps it.
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            for cert in &certs {
                                w.next().write_der(cert);
                            }
                        });
                    });
                    w.next().write_set(|_| {});
                });
            });
        });
    })
}

/// The private key of a `/serverkeygen` answer sealed to the key of the client's request
/// (`spki_der`): a CMS EnvelopedData (RFC 7030 §4.4.2, asymmetric case; see [`crate::cms`])
/// of an `AsymmetricKeyPackage` (RFC 5958) holding the one key, PKCS#8.
pub fn sealed_key(pkcs8: &[u8], spki_der: &[u8]) -> Result<Vec<u8>, Error> {
    let package = zeroize::Zeroizing::new(yasna::construct_der(|w| {
        w.write_sequence(|w| w.next().write_der(pkcs8));
    }));
    crate::cms::seal_to_key(crate::cms::KEY_PACKAGE, &package, spki_der)
}

/// The boundary between the parts of a `/serverkeygen` answer: `-` and `.` are outside the
/// base64 alphabet, so no part's content holds it (RFC 2046 §5.1.1).
const SERVER_KEY_BOUNDARY: &str = "cryptoutil-est.server-generated-key";
/// The media type of a `/serverkeygen` answer (RFC 7030 §4.4.2).
pub const SERVER_KEY_MEDIA_TYPE: &str =
    "multipart/mixed; boundary=cryptoutil-est.server-generated-key";

/// The body of a `/serverkeygen` answer (RFC 7030 §4.4.2): a `multipart/mixed` of the sealed
/// key (`application/pkcs7-mime; smime-type=server-generated-key`) and the certificate with
/// its chain (a certs-only message), each base64 in CRLF-ended lines.
pub fn server_key_body(sealed_key: &[u8], certs_only: &[u8]) -> String {
    let part = |media_type: &str, der: &[u8]| {
        format!(
            "--{SERVER_KEY_BOUNDARY}\r\nContent-Type: {media_type}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            body(der).trim_end().replace('\n', "\r\n")
        )
    };
    let mut out = part(
        "application/pkcs7-mime; smime-type=server-generated-key",
        sealed_key,
    );
    out.push_str(&part(
        "application/pkcs7-mime; smime-type=certs-only",
        certs_only,
    ));
    out.push_str(&format!("--{SERVER_KEY_BOUNDARY}--\r\n"));
    out
}

/// The `/csrattrs` answer (RFC 7030 §4.5.2, a `CsrAttrs` SEQUENCE OF AttrOrOID) for requests to
/// a CA with key `ca_key`: the signature algorithm to sign the request with and the key to
/// certify (an EC key on the CA's curve; RSA 3072 under an RSA CA).
pub fn csr_attrs(ca_key: KeyType) -> Vec<u8> {
    let (signature, key, parameter): (&[u64], &[u64], Option<&[u64]>) = match ca_key {
        KeyType::P256 => (ECDSA_WITH_SHA256, EC_PUBLIC_KEY, Some(SECP256R1)),
        KeyType::P384 => (ECDSA_WITH_SHA384, EC_PUBLIC_KEY, Some(SECP384R1)),
        KeyType::Rsa3072 | KeyType::Rsa4096 => (SHA256_WITH_RSA, RSA_ENCRYPTION, None),
    };
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(signature));
            w.next().write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(key));
                w.next().write_set_of(|w| match parameter {
                    Some(curve) => w.next().write_oid(&ObjectIdentifier::from_slice(curve)),
                    None => w.next().write_u32(3072),
                });
            });
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_made_key_is_sealed_to_the_requests_key_in_two_parts() {
        use crate::ca::KeyType;
        for (kind, recipient_tag) in [
            (KeyType::P256, 0xa1),
            (KeyType::P384, 0xa1),
            (KeyType::Rsa3072, 0x30),
        ] {
            let client = kind.generate().unwrap();
            let spki = {
                use rcgen::PublicKeyData as _;
                rcgen::KeyPair::try_from(client.as_slice())
                    .unwrap()
                    .subject_public_key_info()
            };
            let key = KeyType::P256.generate().unwrap();
            let sealed = sealed_key(&key, &spki).unwrap();
            assert!(der::well_formed(&sealed));
            // ContentInfo { envelopedData, [0] { EnvelopedData { 2, SET { recipient } ... } } }
            let (contents, _) = der::expect(&sealed, SEQUENCE).unwrap();
            let (_, rest) = der::expect(contents, OID).unwrap();
            let (explicit, _) = der::expect(rest, EXPLICIT_0).unwrap();
            let (enveloped, _) = der::expect(explicit, SEQUENCE).unwrap();
            assert_eq!(&enveloped[..3], &[INTEGER, 1, 2]);
            let (recipients, encrypted) = der::expect(&enveloped[3..], SET).unwrap();
            assert_eq!(recipients.first(), Some(&recipient_tag), "{kind:?}");
            let (info, _) = der::expect(encrypted, SEQUENCE).unwrap();
            // The plaintext (a package of a P-256 PKCS#8) is nowhere in it.
            assert!(!info.windows(key.len()).any(|w| w == key.as_slice()));
            let text = server_key_body(&sealed, &certs_only_message([key.as_slice()]));
            assert!(SERVER_KEY_MEDIA_TYPE.ends_with(SERVER_KEY_BOUNDARY));
            assert_eq!(text.matches(SERVER_KEY_BOUNDARY).count(), 3);
            assert!(text.ends_with(&format!("--{SERVER_KEY_BOUNDARY}--\r\n")));
            assert!(text.contains(
                "smime-type=server-generated-key\r\nContent-Transfer-Encoding: base64\r\n\r\nMI"
            ));
        }
        // A key of another kind is refused.
        assert!(sealed_key(&[0x30, 0x00], &[0x30, 0x00]).is_err());
    }

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

    #[test]
    fn bodies_travel_as_base64_with_or_without_line_breaks() {
        let der: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let text = body(&der);
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_body(text.as_bytes(), MAX_REQUEST).unwrap(), der);
        let joined = text.replace('\n', "");
        assert_eq!(decode_body(joined.as_bytes(), MAX_REQUEST).unwrap(), der);
        assert!(decode_body(b"  \n", MAX_REQUEST).is_err());
        assert!(decode_body(b"not*base64", MAX_REQUEST).is_err());
        assert!(decode_body(&vec![b'A'; MAX_REQUEST + 4], MAX_REQUEST).is_err());
    }

    #[test]
    fn the_certs_only_message_we_make_keeps_its_order_and_reads_back() {
        use rustls_pki_types::pem::PemObject as _;
        let certs: Vec<Vec<u8>> =
            rustls_pki_types::CertificateDer::pem_slice_iter(OPENSSL_CERTS_PEM.as_bytes())
                .map(|c| c.unwrap().to_vec())
                .collect();
        for order in [[0, 1], [1, 0]] {
            let given: Vec<&[u8]> = order.iter().map(|&i| certs[i].as_slice()).collect();
            let message = certs_only_message(given.iter().copied());
            let read = certs_only(body(&message).as_bytes()).unwrap();
            assert_eq!(read, given);
        }
        // One certificate: the exact shape openssl writes (`crl2pkcs7 -nocrl`), byte for byte
        // but for the certificate itself.
        let one = certs_only_message([&[0x30, 0x03, 0x02, 0x01, 0x01][..]]);
        let expected = [
            0x30, 0x2a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
            0x1d, 0x30, 0x1b, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86,
            0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01,
            0x31, 0x00,
        ];
        assert_eq!(one, expected);
    }
}
