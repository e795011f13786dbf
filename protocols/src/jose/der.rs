//! Just enough DER for RSA keys: read a PKCS#8-wrapped PKCS#1 RSAPrivateKey (what aws-lc-rs
//! generates) into its components, and write a PKCS#1 RSAPrivateKey from JWK components (what
//! aws-lc-rs imports). Every read is bounds-checked.

use zeroize::Zeroizing;

use super::error::{JoseError, Result};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

/// RSA private key components, big-endian, minimal (no leading zero octets).
pub(crate) struct RsaComponents {
    pub(crate) n: Vec<u8>,
    pub(crate) e: Vec<u8>,
    pub(crate) d: Zeroizing<Vec<u8>>,
    pub(crate) p: Zeroizing<Vec<u8>>,
    pub(crate) q: Zeroizing<Vec<u8>>,
    pub(crate) dp: Zeroizing<Vec<u8>>,
    pub(crate) dq: Zeroizing<Vec<u8>>,
    pub(crate) qi: Zeroizing<Vec<u8>>,
}

fn malformed() -> JoseError {
    JoseError::Malformed { what: "DER" }
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    crate::der::expect(input, tag).ok_or_else(malformed)
}

fn unsigned(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    int.get(start..).unwrap_or(&[]).to_vec()
}

/// Reads PKCS#8 PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey } }.
pub(crate) fn rsa_from_pkcs8(pkcs8: &[u8]) -> Result<RsaComponents> {
    let (info, _) = expect(pkcs8, SEQUENCE)?;
    let (_version, rest) = expect(info, INTEGER)?;
    let (_algorithm, rest) = expect(rest, SEQUENCE)?;
    let (private, _) = expect(rest, OCTET_STRING)?;
    let (key, _) = expect(private, SEQUENCE)?;
    let mut fields = Vec::with_capacity(9);
    let mut rest = key;
    for _ in 0..9 {
        let (int, next) = expect(rest, INTEGER)?;
        fields.push(Zeroizing::new(unsigned(int)));
        rest = next;
    }
    let mut it = fields.into_iter().skip(1); // version
    let mut next = || it.next().ok_or_else(malformed);
    Ok(RsaComponents {
        n: next()?.to_vec(),
        e: next()?.to_vec(),
        d: next()?,
        p: next()?,
        q: next()?,
        dp: next()?,
        dq: next()?,
        qi: next()?,
    })
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

fn push_uint(out: &mut Vec<u8>, value: &[u8]) {
    let value = value
        .get(value.iter().position(|b| *b != 0).unwrap_or(value.len())..)
        .unwrap_or(&[]);
    let pad = value.first().is_none_or(|b| b & 0x80 != 0);
    out.push(INTEGER);
    push_len(out, value.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(value);
}

/// Writes PKCS#1 RSAPrivateKey (version 0, two primes).
pub(crate) fn rsa_private_key(c: &RsaComponents) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(c.n.len() * 5));
    push_uint(&mut body, &[0]);
    for part in [
        &c.n[..],
        &c.e[..],
        &c.d[..],
        &c.p[..],
        &c.q[..],
        &c.dp[..],
        &c.dq[..],
        &c.qi[..],
    ] {
        push_uint(&mut body, part);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    out.push(SEQUENCE);
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn wrap_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// PKCS#8 PrivateKeyInfo around the PKCS#1 key (what aws-lc-rs RSA decryption imports).
pub(crate) fn rsa_pkcs8(c: &RsaComponents) -> Zeroizing<Vec<u8>> {
    let pkcs1 = rsa_private_key(c);
    let mut body = Zeroizing::new(vec![INTEGER, 1, 0]);
    body.extend_from_slice(RSA_ALGORITHM);
    body.extend_from_slice(&Zeroizing::new(wrap_tlv(OCTET_STRING, &pkcs1)));
    Zeroizing::new(wrap_tlv(SEQUENCE, &body))
}

/// SubjectPublicKeyInfo of an RSA public key (what aws-lc-rs RSA encryption imports).
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(n.len() + e.len() + 8);
    push_uint(&mut key, n);
    push_uint(&mut key, e);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&wrap_tlv(SEQUENCE, &key));
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend_from_slice(&wrap_tlv(0x03, &bits));
    wrap_tlv(SEQUENCE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_lying_lengths_are_errors_not_panics() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0xff, 0xff, 0],
            &[0x30, 0x03, 0x02, 0x01],
        ] {
            assert!(rsa_from_pkcs8(input).is_err());
        }
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        let mut out = Vec::new();
        push_uint(&mut out, &[0, 0, 0x80]);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80]);
        let mut out = Vec::new();
        push_uint(&mut out, &[0]);
        assert_eq!(out, [0x02, 0x01, 0x00]);
    }
}
