//! Content encryption: AES-GCM (RFC 7518 §5.3) and AES-CBC with HMAC-SHA-2 (§5.2).

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::{constant_time, hmac, rand};
use zeroize::Zeroizing;

use super::alg::ContentAlg;
use crate::jose::error::{JoseError, Result};

/// IV, ciphertext and tag of one encryption.
pub(crate) struct Sealed {
    pub(crate) iv: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) tag: Vec<u8>,
}

fn crypto(op: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> JoseError {
    move |_| JoseError::Crypto { op }
}

/// Encrypts `plaintext` under `cek` with additional authenticated data `aad`.
pub(crate) fn encrypt(enc: ContentAlg, cek: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Sealed> {
    if cek.len() != enc.key_len() {
        return Err(JoseError::InvalidKey {
            reason: "CEK length does not match enc",
        });
    }
    match gcm(enc) {
        Some(alg) => {
            let key = LessSafeKey::new(UnboundKey::new(alg, cek).map_err(crypto("content key"))?);
            let mut iv = [0u8; 12];
            rand::fill(&mut iv).map_err(crypto("random"))?;
            let mut buf = plaintext.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(aad),
                    &mut buf,
                )
                .map_err(crypto("encrypt"))?;
            Ok(Sealed {
                iv: iv.to_vec(),
                ciphertext: buf,
                tag: tag.as_ref().to_vec(),
            })
        }
        None => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(cbc(enc), enc_key).map_err(crypto("content key"))?,
            )
            .map_err(crypto("content key"))?;
            let mut iv = [0u8; 16];
            rand::fill(&mut iv).map_err(crypto("random"))?;
            let mut buf = plaintext.to_vec();
            key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
                .map_err(crypto("encrypt"))?;
            let tag = cbc_tag(enc, mac_key, aad, &iv, &buf);
            Ok(Sealed {
                iv: iv.to_vec(),
                ciphertext: buf,
                tag,
            })
        }
    }
}

/// Authenticates and decrypts. Any failure is the same error, so nothing leaks which check failed.
pub(crate) fn decrypt(
    enc: ContentAlg,
    cek: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let failed = || JoseError::Crypto {
        op: "decrypt (authentication failed)",
    };
    if cek.len() != enc.key_len() {
        return Err(failed());
    }
    match gcm(enc) {
        Some(alg) => {
            let iv: [u8; 12] = iv.try_into().map_err(|_| failed())?;
            if tag.len() != 16 {
                return Err(failed());
            }
            let key = LessSafeKey::new(UnboundKey::new(alg, cek).map_err(|_| failed())?);
            let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + tag.len()));
            buf.extend_from_slice(ciphertext);
            buf.extend_from_slice(tag);
            let len = key
                .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
                .map_err(|_| failed())?
                .len();
            buf.truncate(len);
            Ok(buf)
        }
        None => {
            let iv: [u8; 16] = iv.try_into().map_err(|_| failed())?;
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let expected = cbc_tag(enc, mac_key, aad, &iv, ciphertext);
            // Verify the tag before touching the ciphertext (no padding oracle).
            constant_time::verify_slices_are_equal(&expected, tag).map_err(|_| failed())?;
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(cbc(enc), enc_key).map_err(|_| failed())?,
            )
            .map_err(|_| failed())?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let len = key
                .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                .map_err(|_| failed())?
                .len();
            buf.truncate(len);
            Ok(buf)
        }
    }
}

fn gcm(enc: ContentAlg) -> Option<&'static aead::Algorithm> {
    match enc {
        ContentAlg::A128GCM => Some(&aead::AES_128_GCM),
        ContentAlg::A192GCM => Some(&aead::AES_192_GCM),
        ContentAlg::A256GCM => Some(&aead::AES_256_GCM),
        ContentAlg::A128CbcHs256 | ContentAlg::A192CbcHs384 | ContentAlg::A256CbcHs512 => None,
    }
}

fn cbc(enc: ContentAlg) -> &'static aws_lc_rs::cipher::Algorithm {
    match enc {
        ContentAlg::A192CbcHs384 | ContentAlg::A192GCM => &AES_192,
        ContentAlg::A256CbcHs512 | ContentAlg::A256GCM => &AES_256,
        ContentAlg::A128CbcHs256 | ContentAlg::A128GCM => &AES_128,
    }
}

/// RFC 7518 §5.2.2.1: HMAC(MAC_KEY, AAD || IV || ciphertext || AL), first half kept.
fn cbc_tag(enc: ContentAlg, mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let h = match enc {
        ContentAlg::A192CbcHs384 => hmac::HMAC_SHA384,
        ContentAlg::A256CbcHs512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(h, mac_key));
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&((aad.len() as u64).wrapping_mul(8)).to_be_bytes());
    let full = ctx.sign();
    full.as_ref().get(..mac_key.len()).unwrap_or(&[]).to_vec()
}
