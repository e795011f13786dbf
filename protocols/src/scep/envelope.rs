//! The CMS EnvelopedData SCEP carries both ways (RFC 5652 §6): opened by the CA's SCEP RA
//! (RSA PKCS#1 v1.5 key transport to the RA's certificate, AES-CBC content), sealed to a
//! client's certificate; and the RA's `CertRep`, signed with its RSA key.
//!
//! A content key that does not decrypt is replaced by a random one (implicit rejection), so
//! a bad key and a bad padding of the content fail alike: the answer is no padding oracle.

use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{digest, hmac};
use yasna::models::ObjectIdentifier;
use zeroize::Zeroizing;

use super::{
    is_oid, names, reply_attributes, Elements, FailInfo, Refusal, Reply, Status, DATA,
    ENVELOPED_DATA, EXPLICIT_0, INTEGER, OCTET_STRING, OID, RSA_ENCRYPTION, SEQUENCE, SET,
    SIGNED_DATA,
};
use crate::cmp::protection::Hash;
use crate::Error;

const AES128_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 2];
const AES192_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 22];
use crate::cms::AES256_CBC;
/// `[0] IMPLICIT OCTET STRING`, primitive and constructed.
const IMPLICIT_0_PRIMITIVE: u8 = 0x80;

fn ciphers() -> [(&'static [u64], &'static aws_lc_rs::cipher::Algorithm, usize); 3] {
    [
        (AES128_CBC, &AES_128, 16),
        (AES192_CBC, &AES_192, 24),
        (AES256_CBC, &AES_256, 32),
    ]
}

/// A CA's SCEP RA: an RSA key (it decrypts what clients send and signs the answers) and its
/// certificate from the CA.
pub struct Ra {
    signing: RsaKeyPair,
    decrypting: Pkcs1PrivateDecryptingKey,
    /// Keys the content key that replaces one that does not decrypt (derived from the RA's
    /// private key, so the same bad key always becomes the same replacement).
    rejection: hmac::Key,
    cert: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    /// When its certificate expires, Unix seconds.
    pub not_after: u64,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ra")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn internal(what: &'static str) -> impl Fn() -> Error {
    move || Error::Certificate {
        what,
        reason: "unusable".to_owned(),
    }
}

impl Ra {
    /// Loads an RA from its key (RSA, PKCS#8) and certificate (DER).
    pub fn new(key_pkcs8: &[u8], cert: &[u8]) -> Result<Self, Error> {
        let signing = RsaKeyPair::from_pkcs8(key_pkcs8).map_err(|_| internal("SCEP RA key")())?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(key_pkcs8)
            .ok()
            .and_then(|k| Pkcs1PrivateDecryptingKey::new(k).ok())
            .ok_or_else(internal("SCEP RA key"))?;
        let (issuer, serial) = names(cert).ok_or_else(internal("SCEP RA certificate"))?;
        let summary = crate::ca::summary(cert)?;
        let mut seed = digest::Context::new(&digest::SHA256);
        seed.update(b"cryptoutil SCEP implicit rejection\0");
        seed.update(key_pkcs8);
        let rejection = hmac::Key::new(hmac::HMAC_SHA256, seed.finish().as_ref());
        if super::spki_of(cert).is_none_or(|spki| {
            !spki
                .windows(signing.public_key().as_ref().len())
                .any(|w| w == signing.public_key().as_ref())
        }) {
            return Err(internal("SCEP RA certificate (not the key's)")());
        }
        Ok(Self {
            cert: cert.to_vec(),
            issuer: issuer.to_vec(),
            serial: serial.to_vec(),
            signing,
            decrypting,
            rejection,
            not_after: summary.not_after,
        })
    }

    /// Its certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// What `read` makes of the content of a `pkcsPKIEnvelope` encrypted to this RA. Every
    /// failure but an unsupported algorithm (which the envelope names in the clear) is the
    /// same `badMessageCheck`, whether the envelope is not for this RA, its content key or
    /// padding is wrong, or the content is not what `read` expects: the answer tells a
    /// client that forges envelopes nothing about the plaintext (no padding oracle).
    pub fn open_with<T>(
        &self,
        envelope: &[u8],
        read: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<T, Refusal> {
        let uniform = || {
            Refusal::new(
                FailInfo::BadMessageCheck,
                "the pkcsPKIEnvelope does not open to what the message carries",
            )
        };
        match self.open(envelope) {
            Ok(content) => read(&content).ok_or_else(uniform),
            Err(r) if r.fail == FailInfo::BadAlg => Err(r),
            Err(_) => Err(uniform()),
        }
    }

    fn open(&self, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refusal> {
        let bad = || Refusal::new(FailInfo::BadRequest, "the pkcsPKIEnvelope does not parse");
        if !crate::der::well_formed(envelope) {
            return Err(bad());
        }
        let mut info = Elements(Elements(envelope).take(SEQUENCE).ok_or_else(bad)?);
        if !is_oid(info.take(OID).ok_or_else(bad)?, ENVELOPED_DATA) {
            return Err(Refusal::new(
                FailInfo::BadRequest,
                "the pkcsPKIEnvelope is not an EnvelopedData",
            ));
        }
        let mut env = Elements(
            Elements(info.take(EXPLICIT_0).ok_or_else(bad)?)
                .take(SEQUENCE)
                .ok_or_else(bad)?,
        );
        env.take(INTEGER).ok_or_else(bad)?;
        if env.peek() == Some(EXPLICIT_0) {
            env.take(EXPLICIT_0); // originatorInfo
        }
        let mut recipients = Elements(env.take(SET).ok_or_else(bad)?);
        let mut ours = None;
        while let Some((tag, ri, _)) = recipients.next_any() {
            if tag != SEQUENCE {
                continue; // not a KeyTransRecipientInfo
            }
            let mut ri = Elements(ri);
            ri.take(INTEGER).ok_or_else(bad)?;
            let Some(rid) = ri.take(SEQUENCE) else {
                continue; // named by subject key identifier: not ours
            };
            let mut rid = Elements(rid);
            let named = rid.take_whole(SEQUENCE).map(|(_, w)| w) == Some(self.issuer.as_slice())
                && rid.take(INTEGER) == Some(self.serial.as_slice());
            if named {
                let alg = ri.take(SEQUENCE).ok_or_else(bad)?;
                let key = ri.take(OCTET_STRING).ok_or_else(bad)?;
                ours = Some((alg, key));
            }
        }
        let (alg, encrypted_key) = ours.ok_or_else(|| {
            Refusal::new(
                FailInfo::BadMessageCheck,
                "the pkcsPKIEnvelope is not encrypted to this CA's SCEP RA certificate",
            )
        })?;
        if !Elements(alg)
            .take(OID)
            .is_some_and(|o| is_oid(o, RSA_ENCRYPTION))
        {
            return Err(Refusal::new(
                FailInfo::BadAlg,
                "key transport is RSA PKCS #1 v1.5 (rsaEncryption)",
            ));
        }
        let mut content = Elements(env.take(SEQUENCE).ok_or_else(bad)?);
        content.take(OID).ok_or_else(bad)?;
        let mut cipher = Elements(content.take(SEQUENCE).ok_or_else(bad)?);
        let cipher_oid = cipher.take(OID).ok_or_else(bad)?;
        let (_, algorithm, key_len) = ciphers()
            .into_iter()
            .find(|(arcs, _, _)| is_oid(cipher_oid, arcs))
            .ok_or_else(|| {
                Refusal::new(
                    FailInfo::BadAlg,
                    "the content is encrypted with AES-CBC (DES and 3DES are refused)",
                )
            })?;
        let iv: [u8; 16] = cipher
            .take(OCTET_STRING)
            .and_then(|iv| iv.try_into().ok())
            .ok_or_else(bad)?;
        let mut ciphertext = match content.next_any() {
            Some((IMPLICIT_0_PRIMITIVE, c, _)) => c.to_vec(),
            Some((EXPLICIT_0, mut parts, _)) => {
                let mut all = Vec::new();
                while let Some((OCTET_STRING, part, rest)) = crate::der::tlv(parts) {
                    all.extend_from_slice(part);
                    parts = rest;
                }
                all
            }
            _ => return Err(bad()),
        };
        // Implicit rejection: a key that does not decrypt, or is not the cipher's length,
        // becomes one derived from it and the RA's key (the same every time it is sent), and
        // the content then fails like under any wrong key.
        let mut buffer = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let replacement = hmac::sign(&self.rejection, encrypted_key);
        let mut key = Zeroizing::new(
            replacement
                .as_ref()
                .get(..key_len)
                .ok_or_else(bad)?
                .to_vec(),
        );
        if let Ok(k) = self.decrypting.decrypt(encrypted_key, &mut buffer) {
            if k.len() == key_len {
                key.copy_from_slice(k);
            }
        }
        let undecryptable =
            || Refusal::new(FailInfo::BadMessageCheck, "the envelope does not decrypt");
        let key = UnboundCipherKey::new(algorithm, &key).map_err(|_| undecryptable())?;
        let decrypting = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| undecryptable())?;
        let plain = decrypting
            .decrypt(
                &mut ciphertext,
                DecryptionContext::Iv128(FixedLength::from(iv)),
            )
            .map_err(|_| undecryptable())?;
        let out = Zeroizing::new(plain.to_vec());
        zeroize::Zeroize::zeroize(&mut ciphertext);
        Ok(out)
    }

    /// A `CertRep` (DER): signed by this RA with the request's hash and RSASSA-PKCS1-v1_5,
    /// its certificate included; a SUCCESS's content sealed (AES-256-CBC) to the request's
    /// signer.
    pub fn reply(&self, reply: &Reply<'_>) -> Result<Vec<u8>, Error> {
        let content = match &reply.status {
            Status::Success(inner) => {
                seal(inner, &reply.request.signer).map_err(|r| Error::Certificate {
                    what: "SCEP reply",
                    reason: r.reason,
                })?
            }
            Status::Pending | Status::Failure(_) => Vec::new(),
        };
        let nonce = crate::cmp::nonce()?;
        let mut attrs = reply_attributes(reply, &content, &nonce)?;
        let hash = reply.request.hash();
        let params = match hash {
            Hash::Sha256 => &signature::RSA_PKCS1_SHA256,
            Hash::Sha384 => &signature::RSA_PKCS1_SHA384,
            Hash::Sha512 => &signature::RSA_PKCS1_SHA512,
        };
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign(
                params,
                &aws_lc_rs::rand::SystemRandom::new(),
                &attrs,
                &mut sig,
            )
            .map_err(|_| Error::Certificate {
                what: "SCEP reply",
                reason: "signing failed".to_owned(),
            })?;
        // In the SignerInfo, the SET OF is [0] IMPLICIT.
        if let Some(first) = attrs.first_mut() {
            *first = EXPLICIT_0;
        }
        let hash_arcs = super::hash_arcs(hash);
        // SHA-2 identifiers without parameters (RFC 5754 §2), rsaEncryption with NULL.
        let algorithm = |w: yasna::DERWriter<'_>, arcs: &[u64]| {
            w.write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(arcs));
                if arcs == RSA_ENCRYPTION {
                    w.next().write_null();
                }
            });
        };
        let sid = issuer_and_serial(&self.issuer, &self.serial);
        Ok(super::content_info(SIGNED_DATA, |w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_set(|w| algorithm(w.next(), hash_arcs));
                w.next().write_sequence(|w| {
                    w.next().write_oid(&ObjectIdentifier::from_slice(DATA));
                    if !content.is_empty() {
                        w.next().write_tagged(yasna::Tag::context(0), |w| {
                            w.write_bytes(&content);
                        });
                    }
                });
                w.next().write_tagged_implicit(yasna::Tag::context(0), |w| {
                    w.write_set(|w| w.next().write_der(&self.cert));
                });
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_u8(1);
                        w.next().write_der(&sid);
                        algorithm(w.next(), hash_arcs);
                        w.next().write_der(&attrs);
                        algorithm(w.next(), RSA_ENCRYPTION);
                        w.next().write_bytes(&sig);
                    });
                });
            });
        }))
    }
}

/// One DER element.
pub(super) fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// `IssuerAndSerialNumber` (DER) from a Name (DER) and a serial's INTEGER contents.
fn issuer_and_serial(issuer: &[u8], serial: &[u8]) -> Vec<u8> {
    let mut inner = issuer.to_vec();
    inner.extend_from_slice(&tlv(INTEGER, serial));
    tlv(SEQUENCE, &inner)
}

/// `content` sealed to `recipient` (a certificate with an RSA key): a CMS ContentInfo
/// holding an EnvelopedData (DER), AES-256-CBC, the key sent with RSA PKCS#1 v1.5.
pub fn seal(content: &[u8], recipient: &[u8]) -> Result<Vec<u8>, Refusal> {
    let no_rsa = || {
        Refusal::new(
            FailInfo::BadAlg,
            "the signer's certificate has no RSA key to send the answer's key to",
        )
    };
    let (issuer, serial) = names(recipient).ok_or_else(no_rsa)?;
    let spki = super::spki_of(recipient).ok_or_else(no_rsa)?;
    let public = PublicEncryptingKey::from_der(&spki)
        .ok()
        .and_then(|k| Pkcs1PublicEncryptingKey::new(k).ok())
        .ok_or_else(no_rsa)?;
    let failed = || Refusal::new(FailInfo::BadRequest, "sealing the answer failed");
    let encrypted = crate::cms::Encrypted::new(content).map_err(|_| failed())?;
    let mut encrypted_key = vec![0u8; public.ciphertext_size()];
    let encrypted_key = public
        .encrypt(encrypted.key.as_slice(), &mut encrypted_key)
        .map_err(|_| failed())?
        .to_vec();
    let rid = issuer_and_serial(issuer, serial);
    Ok(super::content_info(ENVELOPED_DATA, |w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_set(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_u8(0);
                    w.next().write_der(&rid);
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&ObjectIdentifier::from_slice(RSA_ENCRYPTION));
                        w.next().write_null();
                    });
                    w.next().write_bytes(&encrypted_key);
                });
            });
            encrypted.write_info(w.next(), DATA);
        });
    }))
}
