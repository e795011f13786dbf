//! The JWS signing primitives on aws-lc-rs: which key serves which algorithm, key generation,
//! signing and verification.

use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, UnparsedPublicKey,
};
use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

use super::material::{Curve, KeyMaterial, Signer};
use crate::jose::alg::JwsAlg;
use crate::jose::der;
use crate::jose::error::{JoseError, Result};

fn mismatch(m: &KeyMaterial, alg: JwsAlg) -> JoseError {
    JoseError::KeyTypeMismatch {
        kty: m.kty(),
        alg: alg.as_str(),
    }
}

fn hmac_alg(alg: JwsAlg) -> Option<(hmac::Algorithm, usize)> {
    match alg {
        JwsAlg::HS256 => Some((hmac::HMAC_SHA256, 32)),
        JwsAlg::HS384 => Some((hmac::HMAC_SHA384, 48)),
        JwsAlg::HS512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

fn ec_curve(alg: JwsAlg) -> Option<Curve> {
    match alg {
        JwsAlg::ES256 => Some(Curve::P256),
        JwsAlg::ES384 => Some(Curve::P384),
        JwsAlg::ES512 => Some(Curve::P521),
        _ => None,
    }
}

fn rsa_signing(alg: JwsAlg) -> Option<&'static dyn RsaEncoding> {
    match alg {
        JwsAlg::RS256 => Some(&signature::RSA_PKCS1_SHA256),
        JwsAlg::RS384 => Some(&signature::RSA_PKCS1_SHA384),
        JwsAlg::RS512 => Some(&signature::RSA_PKCS1_SHA512),
        JwsAlg::PS256 => Some(&signature::RSA_PSS_SHA256),
        JwsAlg::PS384 => Some(&signature::RSA_PSS_SHA384),
        JwsAlg::PS512 => Some(&signature::RSA_PSS_SHA512),
        _ => None,
    }
}

fn rsa_verification(alg: JwsAlg) -> Option<&'static signature::RsaParameters> {
    match alg {
        JwsAlg::RS256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        JwsAlg::RS384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        JwsAlg::RS512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        JwsAlg::PS256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
        JwsAlg::PS384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
        JwsAlg::PS512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// Can `m` serve `alg`? (Key type, curve, and for HMAC a key at least as long as the hash.)
pub(super) fn check_key_fits(m: &KeyMaterial, alg: JwsAlg) -> Result<()> {
    let fits = match m {
        KeyMaterial::Oct { k } => match hmac_alg(alg) {
            Some((_, min)) if k.len() < min => {
                return Err(JoseError::InvalidKey {
                    reason: "HMAC key shorter than the hash output (RFC 7518 §3.2)",
                })
            }
            Some(_) => true,
            None => false,
        },
        KeyMaterial::Rsa { .. } => rsa_signing(alg).is_some(),
        KeyMaterial::Ec { crv, .. } => ec_curve(alg) == Some(*crv),
        KeyMaterial::Okp { .. } => alg == JwsAlg::EdDSA,
    };
    if fits {
        Ok(())
    } else {
        Err(mismatch(m, alg))
    }
}

/// A fresh key for `alg`.
pub(super) fn generate(alg: JwsAlg) -> Result<KeyMaterial> {
    let failed = |_| JoseError::Crypto {
        op: "key generation",
    };
    if let Some((_, len)) = hmac_alg(alg) {
        let mut k = Zeroizing::new(vec![0u8; len]);
        aws_lc_rs::rand::fill(&mut k).map_err(failed)?;
        return Ok(KeyMaterial::Oct { k });
    }
    if let Some(crv) = ec_curve(alg) {
        let signing = crv.ecdsa_signing().ok_or(JoseError::Crypto {
            op: "key generation",
        })?;
        let pair = EcdsaKeyPair::generate(signing).map_err(failed)?;
        let d = pair.private_key().as_be_bytes().map_err(failed)?;
        let d = Zeroizing::new(d.as_ref().to_vec());
        return KeyMaterial::ec_from_private(crv, d, pair.public_key().as_ref());
    }
    if alg == JwsAlg::EdDSA {
        let pair = Ed25519KeyPair::generate().map_err(failed)?;
        let seed = pair.seed().map_err(failed)?.as_be_bytes().map_err(failed)?;
        return KeyMaterial::okp_from_private(
            Zeroizing::new(seed.as_ref().to_vec()),
            pair.public_key().as_ref(),
        );
    }
    let size = match alg {
        JwsAlg::RS384 | JwsAlg::PS384 => KeySize::Rsa3072,
        JwsAlg::RS512 | JwsAlg::PS512 => KeySize::Rsa4096,
        _ => KeySize::Rsa2048,
    };
    let pair = RsaKeyPair::generate(size).map_err(failed)?;
    let pkcs8 = pair.as_der().map_err(failed)?;
    KeyMaterial::rsa_from_components(der::rsa_from_pkcs8(pkcs8.as_ref())?)
}

/// Signs `msg` with `alg` (the caller checked the pin).
pub(super) fn sign(m: &KeyMaterial, alg: JwsAlg, msg: &[u8]) -> Result<Vec<u8>> {
    check_key_fits(m, alg)?;
    let failed = |_| JoseError::Crypto { op: "sign" };
    if let (KeyMaterial::Oct { k }, Some((h, _))) = (m, hmac_alg(alg)) {
        return Ok(hmac::sign(&hmac::Key::new(h, k), msg).as_ref().to_vec());
    }
    match m.signer().ok_or(JoseError::NotPrivate)? {
        Signer::Rsa(pair) => {
            let encoding = rsa_signing(alg).ok_or_else(|| mismatch(m, alg))?;
            let mut sig = vec![0u8; pair.public_modulus_len()];
            pair.sign(encoding, &SystemRandom::new(), msg, &mut sig)
                .map_err(failed)?;
            Ok(sig)
        }
        Signer::Ecdsa(pair) => {
            let mut sig = pair
                .sign(&SystemRandom::new(), msg)
                .map_err(failed)?
                .as_ref()
                .to_vec();
            super::low_s::normalise(&mut sig);
            Ok(sig)
        }
        Signer::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
    }
}

/// Verifies `sig` over `msg` with `alg`.
pub(super) fn verify(m: &KeyMaterial, alg: JwsAlg, msg: &[u8], sig: &[u8]) -> Result<()> {
    check_key_fits(m, alg)?;
    let ok = match m {
        KeyMaterial::Oct { k } => {
            let (h, _) = hmac_alg(alg).ok_or_else(|| mismatch(m, alg))?;
            let expected = hmac::sign(&hmac::Key::new(h, k), msg);
            constant_time::verify_slices_are_equal(expected.as_ref(), sig).is_ok()
        }
        KeyMaterial::Rsa { n, e, .. } => {
            let params = rsa_verification(alg).ok_or_else(|| mismatch(m, alg))?;
            PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(params, msg, sig)
            .is_ok()
        }
        KeyMaterial::Ec { crv, x, y, .. } => {
            let params: &'static dyn signature::VerificationAlgorithm = match crv {
                Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
                Curve::Ed25519 => return Err(mismatch(m, alg)),
            };
            UnparsedPublicKey::new(params, KeyMaterial::ec_point(x, y))
                .verify(msg, sig)
                .is_ok()
        }
        KeyMaterial::Okp { x, .. } => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(msg, sig)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(JoseError::BadSignature)
    }
}
