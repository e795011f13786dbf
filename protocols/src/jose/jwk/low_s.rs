//! ECDSA's malleability and its cure. For every valid signature `(r, s)` the pair
//! `(r, n - s)` verifies too, so anyone can make a second, different-looking copy of a signed
//! token without the key. Signatures made here are normalised to the low half (`s <= n / 2`,
//! "low-S"), and a verifier that knows its signer does so can refuse the other half
//! ([`is_high_s`]). Fixed-width JWS signatures (`r || s`, RFC 7518 §3.4) only.

use crate::jose::alg::JwsAlg;

/// The order `n` of P-256, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The order `n` of P-384, big-endian.
const P384_N: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// The order `n` of P-521, big-endian (66 bytes).
const P521_N: [u8; 66] = [
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xfa, 0x51, 0x86, 0x87, 0x83, 0xbf, 0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09,
    0xa5, 0xd0, 0x3b, 0xb5, 0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f, 0xb7, 0x1e, 0x91, 0x38,
    0x64, 0x09,
];

/// The curve order of a fixed-width ECDSA signature of `len` bytes (`r || s`).
fn order_for_len(len: usize) -> Option<&'static [u8]> {
    match len {
        64 => Some(&P256_N),
        96 => Some(&P384_N),
        132 => Some(&P521_N),
        _ => None,
    }
}

/// `n - s`, both big-endian of `n`'s width (`s < n`, as in any signature that verifies).
fn complement(n: &[u8], s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0u16;
    for ((o, &a), &b) in out.iter_mut().zip(n).zip(s).rev() {
        let sub = u16::from(b) + borrow;
        let (v, next) = if u16::from(a) >= sub {
            (u16::from(a) - sub, 0)
        } else {
            (u16::from(a) + 256 - sub, 1)
        };
        *o = u8::try_from(v).unwrap_or(0);
        borrow = next;
    }
    out
}

/// Whether the fixed-width signature `sig` has `s` in the high half (`s > n - s`). Anything
/// not shaped like an ECDSA signature is not high-S (its verification refuses it anyway).
fn sig_is_high_s(sig: &[u8]) -> bool {
    let Some(n) = order_for_len(sig.len()) else {
        return false;
    };
    let s = sig.get(n.len()..).unwrap_or_default();
    s > complement(n, s).as_slice()
}

/// Whether `sig`, a JWS signature with `alg`, is an ECDSA signature with a high `s`: the
/// malleated twin of a low-S signature. Not an ECDSA algorithm: false.
pub fn is_high_s(alg: JwsAlg, sig: &[u8]) -> bool {
    matches!(alg, JwsAlg::ES256 | JwsAlg::ES384 | JwsAlg::ES512) && sig_is_high_s(sig)
}

/// The other signature of the pair of the fixed-width ECDSA signature `sig`: `r || (n - s)`.
/// Not shaped like one: none.
pub fn ecdsa_twin(sig: &[u8]) -> Option<Vec<u8>> {
    let n = order_for_len(sig.len())?;
    let (r, s) = sig.split_at(n.len());
    Some([r, complement(n, s).as_slice()].concat())
}

/// Replaces a high `s` in the fixed-width ECDSA signature `sig` by `n - s`, so every signature
/// made here is the low-S one of its pair.
pub(super) fn normalise(sig: &mut [u8]) {
    let Some(n) = order_for_len(sig.len()) else {
        return;
    };
    if let Some(s) = sig.get_mut(n.len()..) {
        let low = complement(n, s);
        if *s > *low {
            s.copy_from_slice(&low);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};

    /// Each curve: the signer's raw signature and its twin `(r, n - s)` both verify with
    /// aws-lc-rs (so the constant is the curve's order), exactly one of them is high-S, and
    /// normalising gives the low one.
    #[test]
    fn twins_verify_and_exactly_one_is_high() {
        let cases: [(
            &'static signature::EcdsaSigningAlgorithm,
            &'static signature::EcdsaVerificationAlgorithm,
            JwsAlg,
        ); 3] = [
            (
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &signature::ECDSA_P256_SHA256_FIXED,
                JwsAlg::ES256,
            ),
            (
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &signature::ECDSA_P384_SHA384_FIXED,
                JwsAlg::ES384,
            ),
            (
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                &signature::ECDSA_P521_SHA512_FIXED,
                JwsAlg::ES512,
            ),
        ];
        let rng = SystemRandom::new();
        for (signing, verifying, alg) in cases {
            let pair = EcdsaKeyPair::generate(signing).unwrap();
            let public = UnparsedPublicKey::new(verifying, pair.public_key().as_ref().to_vec());
            let (mut seen_high, mut seen_low) = (false, false);
            for i in 0..64u8 {
                let msg = [i; 7];
                let sig = pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
                let twin = ecdsa_twin(&sig).unwrap();
                assert_ne!(sig, twin);
                public.verify(&msg, &sig).unwrap();
                public.verify(&msg, &twin).unwrap();
                assert_ne!(is_high_s(alg, &sig), is_high_s(alg, &twin), "{alg:?}");
                let mut normalised = sig.clone();
                normalise(&mut normalised);
                assert!(!is_high_s(alg, &normalised));
                public.verify(&msg, &normalised).unwrap();
                if is_high_s(alg, &sig) {
                    seen_high = true;
                    assert_eq!(normalised, twin);
                } else {
                    seen_low = true;
                    assert_eq!(normalised, sig);
                }
            }
            assert!(
                seen_high && seen_low,
                "{alg:?}: 64 signatures all on one side"
            );
        }
    }

    #[test]
    fn other_algorithms_and_shapes_are_never_high() {
        assert!(!is_high_s(JwsAlg::RS256, &[0xff; 64]));
        assert!(!is_high_s(JwsAlg::ES256, &[0xff; 63]));
        assert!(is_high_s(JwsAlg::ES256, &[0xff; 64]));
        let mut short = [0xffu8; 10];
        normalise(&mut short);
        assert_eq!(short, [0xff; 10]);
        assert_eq!(ecdsa_twin(&short), None);
    }
}
