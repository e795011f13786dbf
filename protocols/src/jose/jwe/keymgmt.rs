//! Key management (RFC 7518 §4): how the CEK reaches each recipient.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_128, AES_256};
use aws_lc_rs::rsa::{self, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::{pbkdf2, rand};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::alg::{ContentAlg, KeyAlg};
use super::kdf::concat_kdf;
use crate::jose::b64;
use crate::jose::der;
use crate::jose::error::{JoseError, Result};
use crate::jose::jwk::{Curve, KeyMaterial, RsaPrivate};

/// PBES2 iteration count we use when encrypting (PBKDF2-HMAC-SHA-2, OWASP 2023 level).
pub const PBES2_ITERATIONS: u32 = 600_000;
/// Iteration bounds we accept when decrypting: below is too weak, above is a denial of service.
pub const PBES2_MIN_ITERATIONS: u32 = 1_000;
/// Upper bound of accepted PBES2 iterations.
pub const PBES2_MAX_ITERATIONS: u32 = 1_200_000;

/// The CEK, the encrypted key for this recipient, and header members the recipient needs.
pub(crate) struct Delivery {
    pub(crate) cek: Zeroizing<Vec<u8>>,
    pub(crate) encrypted_key: Vec<u8>,
    pub(crate) header: Map<String, Value>,
}

fn crypto(op: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> JoseError {
    move |_| JoseError::Crypto { op }
}

fn failed() -> JoseError {
    JoseError::Crypto {
        op: "decrypt (key unwrap failed)",
    }
}

/// Is `alg` a direct one (the key determines the CEK; one recipient only)?
pub(crate) fn is_direct(alg: KeyAlg) -> bool {
    matches!(alg, KeyAlg::Dir | KeyAlg::EcdhEs)
}

/// Delivers a CEK to one recipient. `shared_cek` is the CEK of a multi-recipient message; direct
/// algorithms cannot take one.
pub(crate) fn deliver(
    alg: KeyAlg,
    enc: ContentAlg,
    m: &KeyMaterial,
    shared_cek: Option<&[u8]>,
    p2c: Option<u32>,
) -> Result<Delivery> {
    super::alg::check_key_fits(m, alg, Some(enc))?;
    if is_direct(alg) && shared_cek.is_some() {
        return Err(JoseError::Malformed {
            what: "recipients (dir and ECDH-ES allow only one)",
        });
    }
    // Direct algorithms derive or are the CEK: no random one to draw (a draw costs about as
    // much as sealing 1 KiB).
    let cek = match shared_cek {
        Some(c) => Zeroizing::new(c.to_vec()),
        None if is_direct(alg) => Zeroizing::new(Vec::new()),
        None => random(enc.key_len())?,
    };
    let mut header = Map::new();
    let (cek, encrypted_key) = match (alg, m) {
        (KeyAlg::Dir, KeyMaterial::Oct { k }) => (Zeroizing::new(k.to_vec()), Vec::new()),
        (KeyAlg::A128KW | KeyAlg::A256KW, KeyMaterial::Oct { k }) => {
            let wrapped = aes_kw_wrap(k, &cek)?;
            (cek, wrapped)
        }
        (KeyAlg::A128GCMKW | KeyAlg::A256GCMKW, KeyMaterial::Oct { k }) => {
            let alg_gcm = if k.len() == 16 {
                &AES_128_GCM
            } else {
                &AES_256_GCM
            };
            let key = LessSafeKey::new(
                UnboundKey::new(alg_gcm, k).map_err(crypto("key encryption key"))?,
            );
            let mut iv = [0u8; 12];
            rand::fill(&mut iv).map_err(crypto("random"))?;
            let mut buf = cek.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::empty(),
                    &mut buf,
                )
                .map_err(crypto("wrap"))?;
            header.insert("iv".into(), Value::String(b64::encode(&iv)));
            header.insert("tag".into(), Value::String(b64::encode(tag.as_ref())));
            (cek, buf)
        }
        (
            KeyAlg::RsaOaep | KeyAlg::RsaOaep256 | KeyAlg::RsaOaep384 | KeyAlg::RsaOaep512,
            KeyMaterial::Rsa { n, e, .. },
        ) => {
            let public = PublicEncryptingKey::from_der(&der::rsa_spki(n, e)).map_err(|_| {
                JoseError::InvalidKey {
                    reason: "RSA public key",
                }
            })?;
            let key = OaepPublicEncryptingKey::new(public).map_err(crypto("RSA key"))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key
                .encrypt(oaep(alg), &cek, &mut out, None)
                .map_err(crypto("RSA-OAEP encrypt"))?
                .len();
            out.truncate(len);
            (cek, out)
        }
        (
            KeyAlg::EcdhEs | KeyAlg::EcdhEsA128KW | KeyAlg::EcdhEsA256KW,
            KeyMaterial::Ec { crv, x, y, .. },
        ) => {
            let agreement_alg = ecdh(*crv)?;
            let ephemeral = PrivateKey::generate(agreement_alg).map_err(crypto("ephemeral key"))?;
            let epk_point = ephemeral
                .compute_public_key()
                .map_err(crypto("ephemeral key"))?;
            let peer = UnparsedPublicKey::new(agreement_alg, KeyMaterial::ec_point(x, y));
            let z = agreement::agree(&ephemeral, peer, JoseError::Crypto { op: "ECDH" }, |z| {
                Ok(Zeroizing::new(z.to_vec()))
            })?;
            header.insert("epk".into(), epk_json(*crv, epk_point.as_ref())?);
            ecdh_finish(alg, enc, &z, &[], &[], cek)?
        }
        (KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW, KeyMaterial::Oct { k }) => {
            let mut p2s = [0u8; 16];
            rand::fill(&mut p2s).map_err(crypto("random"))?;
            let p2c = p2c.unwrap_or(PBES2_ITERATIONS);
            if !(PBES2_MIN_ITERATIONS..=PBES2_MAX_ITERATIONS).contains(&p2c) {
                return Err(JoseError::Malformed {
                    what: "p2c (outside the accepted range)",
                });
            }
            let kek = pbes2_kek(alg, k, &p2s, p2c)?;
            header.insert("p2s".into(), Value::String(b64::encode(&p2s)));
            header.insert("p2c".into(), Value::from(p2c));
            let wrapped = aes_kw_wrap(&kek, &cek)?;
            (cek, wrapped)
        }
        _ => {
            return Err(JoseError::KeyTypeMismatch {
                kty: m.kty(),
                alg: alg.as_str(),
            })
        }
    };
    Ok(Delivery {
        cek,
        encrypted_key,
        header,
    })
}

/// Recovers the CEK for `enc` from `encrypted_key` and the JOSE `header` with the recipient's key.
pub(crate) fn recover(
    alg: KeyAlg,
    enc: ContentAlg,
    m: &KeyMaterial,
    encrypted_key: &[u8],
    header: &Map<String, Value>,
) -> Result<Zeroizing<Vec<u8>>> {
    super::alg::check_key_fits(m, alg, Some(enc))?;
    let cek = match (alg, m) {
        (KeyAlg::Dir, KeyMaterial::Oct { k }) => {
            if !encrypted_key.is_empty() {
                return Err(JoseError::Malformed {
                    what: "JWE encrypted key (must be empty for dir)",
                });
            }
            Zeroizing::new(k.to_vec())
        }
        (KeyAlg::A128KW | KeyAlg::A256KW, KeyMaterial::Oct { k }) => {
            aes_kw_unwrap(k, encrypted_key)?
        }
        (KeyAlg::A128GCMKW | KeyAlg::A256GCMKW, KeyMaterial::Oct { k }) => {
            let iv: [u8; 12] = header_bytes(header, "iv")?
                .try_into()
                .map_err(|_| failed())?;
            let tag = header_bytes(header, "tag")?;
            let alg_gcm = if k.len() == 16 {
                &AES_128_GCM
            } else {
                &AES_256_GCM
            };
            let key = LessSafeKey::new(UnboundKey::new(alg_gcm, k).map_err(|_| failed())?);
            let mut buf = Zeroizing::new([encrypted_key, &tag].concat());
            let len = key
                .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
                .map_err(|_| failed())?
                .len();
            buf.truncate(len);
            buf
        }
        (
            KeyAlg::RsaOaep | KeyAlg::RsaOaep256 | KeyAlg::RsaOaep384 | KeyAlg::RsaOaep512,
            KeyMaterial::Rsa { private, .. },
        ) => rsa_oaep_decrypt(
            alg,
            private.as_ref().ok_or(JoseError::NotPrivate)?,
            encrypted_key,
        )?,
        (
            KeyAlg::EcdhEs | KeyAlg::EcdhEsA128KW | KeyAlg::EcdhEsA256KW,
            KeyMaterial::Ec { crv, private, .. },
        ) => {
            let private = private.as_ref().ok_or(JoseError::NotPrivate)?;
            let agreement_alg = ecdh(*crv)?;
            let epk = header
                .get("epk")
                .and_then(Value::as_object)
                .ok_or(JoseError::Malformed { what: "JWE epk" })?;
            let epk = KeyMaterial::from_object(epk)?;
            let point = match &epk {
                KeyMaterial::Ec {
                    crv: c,
                    x,
                    y,
                    private: None,
                } if c == crv => KeyMaterial::ec_point(x, y),
                _ => {
                    return Err(JoseError::InvalidKey {
                        reason: "epk is not a public key on the recipient's curve",
                    })
                }
            };
            let z = ecdh_z(agreement_alg, &private.d, &point)?;
            let apu = optional_bytes(header, "apu")?;
            let apv = optional_bytes(header, "apv")?;
            if is_direct(alg) {
                if !encrypted_key.is_empty() {
                    return Err(JoseError::Malformed {
                        what: "JWE encrypted key (must be empty for ECDH-ES)",
                    });
                }
                concat_kdf(&z, enc.as_str(), &apu, &apv, enc.key_len())
            } else {
                let kek = concat_kdf(&z, alg.as_str(), &apu, &apv, kw_len(alg));
                aes_kw_unwrap(&kek, encrypted_key)?
            }
        }
        (KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW, KeyMaterial::Oct { k }) => {
            let p2s = header_bytes(header, "p2s")?;
            if p2s.len() < 8 {
                return Err(JoseError::Malformed {
                    what: "JWE p2s (at least 8 bytes)",
                });
            }
            let p2c = header
                .get("p2c")
                .and_then(Value::as_u64)
                .ok_or(JoseError::Malformed { what: "JWE p2c" })?;
            let p2c = u32::try_from(p2c)
                .ok()
                .filter(|c| (PBES2_MIN_ITERATIONS..=PBES2_MAX_ITERATIONS).contains(c));
            let p2c = p2c.ok_or(JoseError::Malformed {
                what: "JWE p2c (outside the accepted range)",
            })?;
            let kek = pbes2_kek(alg, k, &p2s, p2c)?;
            aes_kw_unwrap(&kek, encrypted_key)?
        }
        _ => {
            return Err(JoseError::KeyTypeMismatch {
                kty: m.kty(),
                alg: alg.as_str(),
            })
        }
    };
    if cek.len() != enc.key_len() {
        return Err(failed());
    }
    Ok(cek)
}

/// RSAES-OAEP decryption (no label) with the hash of `alg`.
pub(crate) fn rsa_oaep_decrypt(
    alg: KeyAlg,
    private: &RsaPrivate,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = &private.decrypting;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let len = key
        .decrypt(oaep(alg), ciphertext, &mut out, None)
        .map_err(|_| failed())?
        .len();
    out.truncate(len);
    Ok(out)
}

/// The ECDH shared secret of private scalar `d` and the peer's uncompressed `point` (points off
/// the curve are refused by aws-lc).
pub(crate) fn ecdh_z(
    alg: &'static agreement::Algorithm,
    d: &[u8],
    point: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let mine = PrivateKey::from_private_key(alg, d).map_err(|_| JoseError::InvalidKey {
        reason: "EC private key",
    })?;
    agreement::agree(&mine, UnparsedPublicKey::new(alg, point), failed(), |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
}

/// For ECDH-ES: the derived CEK itself; for ECDH-ES+AxxxKW: the CEK wrapped by the derived KEK.
fn ecdh_finish(
    alg: KeyAlg,
    enc: ContentAlg,
    z: &[u8],
    apu: &[u8],
    apv: &[u8],
    cek: Zeroizing<Vec<u8>>,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    if is_direct(alg) {
        return Ok((
            concat_kdf(z, enc.as_str(), apu, apv, enc.key_len()),
            Vec::new(),
        ));
    }
    let kek = concat_kdf(z, alg.as_str(), apu, apv, kw_len(alg));
    let wrapped = aes_kw_wrap(&kek, &cek)?;
    Ok((cek, wrapped))
}

fn kw_len(alg: KeyAlg) -> usize {
    match alg {
        KeyAlg::EcdhEsA128KW | KeyAlg::A128KW | KeyAlg::Pbes2Hs256A128KW => 16,
        _ => 32,
    }
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut k = Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut k).map_err(crypto("random"))?;
    Ok(k)
}

pub(crate) fn aes_kw_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>> {
    let cipher = if kek.len() == 16 { &AES_128 } else { &AES_256 };
    let kek = AesKek::new(cipher, kek).map_err(crypto("key wrap"))?;
    let mut out = vec![0u8; cek.len() + 8];
    let len = kek.wrap(cek, &mut out).map_err(crypto("key wrap"))?.len();
    out.truncate(len);
    Ok(out)
}

pub(crate) fn aes_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = if kek.len() == 16 { &AES_128 } else { &AES_256 };
    let kek = AesKek::new(cipher, kek).map_err(|_| failed())?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = kek.unwrap(wrapped, &mut out).map_err(|_| failed())?.len();
    out.truncate(len);
    Ok(out)
}

fn pbes2_kek(
    alg: KeyAlg,
    password: &[u8],
    p2s: &[u8],
    iterations: u32,
) -> Result<Zeroizing<Vec<u8>>> {
    let (prf, len) = match alg {
        KeyAlg::Pbes2Hs256A128KW => (pbkdf2::PBKDF2_HMAC_SHA256, 16),
        _ => (pbkdf2::PBKDF2_HMAC_SHA512, 32),
    };
    let mut salt = alg.as_str().as_bytes().to_vec();
    salt.push(0);
    salt.extend_from_slice(p2s);
    let mut kek = Zeroizing::new(vec![0u8; len]);
    let iterations = NonZeroU32::new(iterations).ok_or(JoseError::Malformed { what: "JWE p2c" })?;
    pbkdf2::derive(prf, iterations, &salt, password, &mut kek);
    Ok(kek)
}

fn oaep(alg: KeyAlg) -> &'static rsa::OaepAlgorithm {
    match alg {
        KeyAlg::RsaOaep => &rsa::OAEP_SHA1_MGF1SHA1,
        KeyAlg::RsaOaep384 => &rsa::OAEP_SHA384_MGF1SHA384,
        KeyAlg::RsaOaep512 => &rsa::OAEP_SHA512_MGF1SHA512,
        _ => &rsa::OAEP_SHA256_MGF1SHA256,
    }
}

fn ecdh(crv: Curve) -> Result<&'static agreement::Algorithm> {
    match crv {
        Curve::P256 => Ok(&agreement::ECDH_P256),
        Curve::P384 => Ok(&agreement::ECDH_P384),
        Curve::P521 => Ok(&agreement::ECDH_P521),
        Curve::Ed25519 => Err(JoseError::InvalidKey {
            reason: "ECDH-ES needs a NIST curve",
        }),
    }
}

fn epk_json(crv: Curve, point: &[u8]) -> Result<Value> {
    let len = crv.field_len();
    let coords = point
        .get(1..)
        .filter(|c| c.len() == 2 * len)
        .ok_or(JoseError::Crypto {
            op: "ephemeral key",
        })?;
    let (x, y) = coords.split_at(len);
    Ok(
        serde_json::json!({ "kty": "EC", "crv": crv.as_str(), "x": b64::encode(x), "y": b64::encode(y) }),
    )
}

fn header_bytes(header: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>> {
    let text = header
        .get(name)
        .and_then(Value::as_str)
        .ok_or(JoseError::Malformed { what: name })?;
    b64::decode(text, name)
}

fn optional_bytes(header: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>> {
    match header.get(name) {
        None => Ok(Vec::new()),
        Some(_) => header_bytes(header, name),
    }
}
