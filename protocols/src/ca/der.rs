//! The few DER encodings rcgen has no type for: Authority Information Access, certificate
//! policies, a critical time-stamping EKU, and id-pkix-ocsp-nocheck's NULL.

use super::CaError;

/// id-pe-authorityInfoAccess.
pub(super) const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ce-certificatePolicies.
pub(super) const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
/// id-ce-extKeyUsage.
pub(super) const EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
/// id-pkix-ocsp-nocheck.
pub(super) const OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
const AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
const AD_CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];
const KP_TIME_STAMPING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 8];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => (0, &[][..]),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(((v & 0x7f) as u8) | 0x80);
            v >>= 7;
        }
        chunk.reverse();
        body.extend_from_slice(&chunk);
    }
    tlv(0x06, &body)
}

/// Parses a dotted OID (`1.3.6.1.4.1.99999.1`): at least two arcs, the first 0 to 2.
pub(super) fn parse_oid(field: &'static str, dotted: &str) -> Result<Vec<u64>, CaError> {
    let arcs: Option<Vec<u64>> = dotted.split('.').map(|a| a.parse().ok()).collect();
    match arcs {
        Some(arcs) if matches!(arcs.as_slice(), [first, second, ..] if *first <= 2 && (*first == 2 || *second < 40)) => {
            Ok(arcs)
        }
        _ => Err(CaError::new(field, format!("{dotted:?} is not an OID"))),
    }
}

/// AuthorityInfoAccessSyntax with an OCSP and a caIssuers URI.
pub(super) fn authority_info_access(ocsp: Option<&str>, ca_issuers: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for (method, uri) in [(AD_OCSP, ocsp), (AD_CA_ISSUERS, ca_issuers)] {
        if let Some(uri) = uri {
            let access = [oid(method), tlv(0x86, uri.as_bytes())].concat();
            body.extend(tlv(0x30, &access));
        }
    }
    tlv(0x30, &body)
}

/// certificatePolicies: one PolicyInformation per OID, without qualifiers.
pub(super) fn policies(dotted: &[String]) -> Result<Vec<u8>, CaError> {
    let mut body = Vec::new();
    for p in dotted {
        body.extend(tlv(0x30, &oid(&parse_oid("policies", p)?)));
    }
    Ok(tlv(0x30, &body))
}

/// ExtKeyUsageSyntax with id-kp-timeStamping only.
pub(super) fn eku_time_stamping() -> Vec<u8> {
    tlv(0x30, &oid(KP_TIME_STAMPING))
}

/// NULL.
pub(super) fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_and_lengths_encode_as_der() {
        // 1.3.6.1.5.5.7.48.1 = 06 08 2b 06 01 05 05 07 30 01
        assert_eq!(oid(AD_OCSP), [0x06, 0x08, 0x2b, 6, 1, 5, 5, 7, 0x30, 1]);
        // 2.5.29.32 = 06 03 55 1d 20; an arc above 127: 1.2.840 = 06 03 2a 86 48
        assert_eq!(oid(CERTIFICATE_POLICIES), [0x06, 3, 0x55, 0x1d, 0x20]);
        assert_eq!(oid(&[1, 2, 840]), [0x06, 3, 0x2a, 0x86, 0x48]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(long.get(..4), Some(&[0x04, 0x82, 0x01, 0x2c][..]));
        assert!(parse_oid("p", "1.3.6.1.4.1.99999.1").is_ok());
        for bad in ["", "1", "3.1", "1.40", "1..2", "a.b"] {
            assert!(parse_oid("p", bad).is_err(), "{bad}");
        }
    }
}
