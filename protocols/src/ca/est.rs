//! EST (RFC 7030) bodies: the certs-only CMS `SignedData` that `cacerts` and `simpleenroll`
//! answer (`application/pkcs7-mime; smime-type=certs-only`), the `csrattrs` answer, and the
//! base64 transfer encoding every EST body travels in (RFC 7030 §4: `Content-Transfer-Encoding:
//! base64`). DER is written with yasna.

use base64::Engine as _;
use yasna::models::ObjectIdentifier;
use yasna::Tag;

use super::{CaError, KeyType};

const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
const SECP256R1: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];
const SECP384R1: &[u64] = &[1, 3, 132, 0, 34];
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];
const ECDSA_WITH_SHA384: &[u64] = &[1, 2, 840, 10_045, 4, 3, 3];
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];

/// Longest EST request body we read (a PKCS#10 request, base64): 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// A degenerate ("certs-only") CMS `SignedData` (RFC 5652 §5, RFC 7030 §4.1.3) carrying
/// `certs` (DER) and no signer: version 1, no digest algorithms, `id-data` content without
/// eContent, no signer infos.
pub fn certs_only<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let certs: Vec<&[u8]> = certs.into_iter().collect();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(SIGNED_DATA));
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_set(|_| {});
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(DATA));
                    });
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_set_of(|w| {
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

/// The `csrattrs` answer (RFC 7030 §4.5.2, a `CsrAttrs` SEQUENCE OF AttrOrOID) for requests to
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

/// The DER inside an EST request body: base64 (RFC 7030 §4; line breaks and other white
/// space allowed), at most [`MAX_BODY`] bytes.
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>, CaError> {
    let refused = |reason: &str| CaError {
        field: "body",
        reason: reason.into(),
    };
    if body.len() > MAX_BODY {
        return Err(refused("longer than 64 KiB"));
    }
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(refused("empty: send a base64 PKCS#10 request"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| refused("not base64 (RFC 7030 bodies are base64-encoded DER)"))
}

/// `der` as an EST answer body: base64 in lines of 64 characters, each ended by CRLF.
pub fn encode_body(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_travel_as_base64_with_or_without_line_breaks() {
        let der: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let body = encode_body(&der);
        assert!(body.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_body(body.as_bytes()).unwrap(), der);
        assert_eq!(
            decode_body(body.replace("\r\n", "").as_bytes()).unwrap(),
            der
        );
        assert_eq!(decode_body(b"  \n").unwrap_err().field, "body");
        assert!(decode_body(b"not*base64").is_err());
        assert!(decode_body(&vec![b'A'; MAX_BODY + 4]).is_err());
    }

    #[test]
    fn certs_only_is_a_signed_data_without_signers() {
        let der = certs_only([&[0x30, 0x03, 0x02, 0x01, 0x01][..]]);
        // ContentInfo { signedData, [0] { SignedData { 1, {}, { data }, [0] { cert }, {} } } }
        let expected = [
            0x30, 0x2a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
            0x1d, 0x30, 0x1b, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86,
            0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01,
            0x31, 0x00,
        ];
        assert_eq!(der, expected);
    }
}
