//! CMS EnvelopedData (RFC 5652 §6) sealed to a bare public key, as EST `serverkeygen` answers
//! (RFC 7030 §4.4.2): AES-256-CBC content under a fresh key, that key sent to the recipient's
//! RSA key by RSAES-OAEP with SHA-256 (RFC 8017, parameters as RFC 4055 writes them) or to its
//! P-256/P-384 key by ephemeral-static ECDH (RFC 5753 `dhSinglePass-stdDH-sha256kdf-scheme`
//! and `-sha384kdf-`, the X9.63 KDF, AES-256 key wrap of RFC 3394). The recipient has no
//! certificate: it is named by a key identifier (the leftmost 160 bits of the SHA-256 of its
//! key, RFC 7093 §2), and `openssl cms -decrypt -inkey` finds it by trying its key.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256};
use aws_lc_rs::digest;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap as _, AES_256 as KW_AES_256};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use x509_parser::prelude::FromDer as _;
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};
use zeroize::Zeroizing;

use crate::Error;

fn sealing(reason: &str) -> Error {
    Error::Certificate {
        what: "envelope",
        reason: reason.to_owned(),
    }
}

pub(crate) const ENVELOPED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 3];
pub(crate) const AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const AES256_WRAP: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 45];
const RSAES_OAEP: &[u64] = &[1, 2, 840, 113_549, 1, 1, 7];
const MGF1: &[u64] = &[1, 2, 840, 113_549, 1, 1, 8];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const P256: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];
const P384: &[u64] = &[1, 3, 132, 0, 34];
const ECDH_SHA256_KDF: &[u64] = &[1, 3, 132, 1, 11, 1];
const ECDH_SHA384_KDF: &[u64] = &[1, 3, 132, 1, 11, 2];
/// `id-ct-KP-aKeyPackage` (RFC 5958): an `AsymmetricKeyPackage`, what a sealed private key is.
pub const KEY_PACKAGE: &[u64] = &[2, 16, 840, 1, 101, 2, 1, 2, 78, 5];

/// A content-encryption key and what it encrypted: AES-256-CBC (PKCS#7 padding) under a fresh
/// key and IV.
pub(crate) struct Encrypted {
    /// The content key.
    pub key: Zeroizing<[u8; 32]>,
    /// The IV.
    pub iv: [u8; 16],
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
}

impl Encrypted {
    /// `content` encrypted under a fresh key.
    pub(crate) fn new(content: &[u8]) -> Result<Self, Error> {
        let failed = |_| sealing("content encryption");
        let mut key = Zeroizing::new([0u8; 32]);
        let mut iv = [0u8; 16];
        aws_lc_rs::rand::fill(key.as_mut_slice()).map_err(failed)?;
        aws_lc_rs::rand::fill(&mut iv).map_err(failed)?;
        let cipher = UnboundCipherKey::new(&AES_256, key.as_slice()).map_err(failed)?;
        // Room for the padding: the buffer never grows, so no copy of the content is left
        // behind in a freed allocation.
        let mut ciphertext = Vec::with_capacity(content.len() + 16);
        ciphertext.extend_from_slice(content);
        PaddedBlockEncryptingKey::cbc_pkcs7(cipher)
            .and_then(|k| {
                k.less_safe_encrypt(
                    &mut ciphertext,
                    EncryptionContext::Iv128(FixedLength::from(iv)),
                )
            })
            .map_err(failed)?;
        Ok(Self {
            key,
            iv,
            ciphertext,
        })
    }

    /// Writes the `EncryptedContentInfo` of content of type `content_type`.
    pub(crate) fn write_info(&self, w: DERWriter<'_>, content_type: &[u64]) {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(content_type));
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(AES256_CBC));
                w.next().write_bytes(&self.iv);
            });
            w.next().write_tagged_implicit(Tag::context(0), |w| {
                w.write_bytes(&self.ciphertext);
            });
        });
    }
}

/// The key a content key is sent to.
enum Recipient {
    Rsa(OaepPublicEncryptingKey),
    Ec {
        agreement: &'static agreement::Algorithm,
        kdf: (&'static [u64], &'static digest::Algorithm),
        point: Vec<u8>,
    },
}

fn recipient(spki_der: &[u8]) -> Result<(Recipient, Vec<u8>), Error> {
    let unsupported = || sealing("a key to seal to: RSA, P-256 or P-384");
    let (rest, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| unsupported())?;
    if !rest.is_empty() {
        return Err(unsupported());
    }
    let key_bits = spki.subject_public_key.data.to_vec();
    let algorithm = spki.algorithm.algorithm.iter().ok_or_else(unsupported)?;
    let algorithm: Vec<u64> = algorithm.collect();
    let recipient = if algorithm == RSA_ENCRYPTION {
        let public = PublicEncryptingKey::from_der(spki_der).map_err(|_| unsupported())?;
        Recipient::Rsa(OaepPublicEncryptingKey::new(public).map_err(|_| unsupported())?)
    } else if algorithm == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(unsupported)?;
        let curve: Vec<u64> = curve.iter().ok_or_else(unsupported)?.collect();
        let (agreement, kdf) = if curve == P256 {
            (&agreement::ECDH_P256, (ECDH_SHA256_KDF, &digest::SHA256))
        } else if curve == P384 {
            (&agreement::ECDH_P384, (ECDH_SHA384_KDF, &digest::SHA384))
        } else {
            return Err(unsupported());
        };
        Recipient::Ec {
            agreement,
            kdf,
            point: key_bits.clone(),
        }
    } else {
        return Err(unsupported());
    };
    // RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the key's bits.
    let id = digest::digest(&digest::SHA256, &key_bits)
        .as_ref()
        .get(..20)
        .unwrap_or_default()
        .to_vec();
    Ok((recipient, id))
}

fn write_algorithm(w: DERWriter<'_>, oid: &[u64], params: impl FnOnce(DERWriter<'_>)) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        params(w.next());
    });
}

/// ANSI X9.63 KDF (SEC 1 §3.6.1) of one block: Hash(Z || 00000001 || SharedInfo), the first
/// 32 bytes (an AES-256 key-encryption key).
fn x963_kdf(hash: &'static digest::Algorithm, z: &[u8], shared_info: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut ctx = digest::Context::new(hash);
    ctx.update(z);
    ctx.update(&1u32.to_be_bytes());
    ctx.update(shared_info);
    Zeroizing::new(ctx.finish().as_ref().get(..32).unwrap_or_default().to_vec())
}

/// RFC 5753 §7.2 `ECC-CMS-SharedInfo` for an AES-256 key wrap, no user keying material.
fn shared_info() -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            // The wrap algorithm's parameters are absent (RFC 5753 §7.2, RFC 3565 §2.3.2).
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(AES256_WRAP));
            });
            w.next().write_tagged(Tag::context(2), |w| {
                w.write_bytes(&256u32.to_be_bytes());
            });
        });
    })
}

/// `content` (of CMS type `content_type`) sealed to the public key `spki_der`: a ContentInfo
/// holding an EnvelopedData, DER.
pub fn seal_to_key(
    content_type: &[u64],
    content: &[u8],
    spki_der: &[u8],
) -> Result<Vec<u8>, Error> {
    let (recipient, key_id) = recipient(spki_der)?;
    let encrypted = Encrypted::new(content)?;
    let failed = |_| sealing("sealing the content key");
    let info: Vec<u8> = match recipient {
        Recipient::Rsa(key) => {
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key
                .encrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    encrypted.key.as_slice(),
                    &mut out,
                    None,
                )
                .map_err(failed)?
                .len();
            out.truncate(len);
            // KeyTransRecipientInfo, version 2 (the recipient named by a key identifier).
            yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next().write_u8(2);
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_bytes(&key_id);
                    });
                    write_algorithm(w.next(), RSAES_OAEP, |w| {
                        // RSAES-OAEP-params: SHA-256, MGF1 with SHA-256, the empty label.
                        w.write_sequence(|w| {
                            w.next().write_tagged(Tag::context(0), |w| {
                                write_algorithm(w, SHA256, |w| w.write_null());
                            });
                            w.next().write_tagged(Tag::context(1), |w| {
                                write_algorithm(w, MGF1, |w| {
                                    write_algorithm(w, SHA256, |w| w.write_null());
                                });
                            });
                        });
                    });
                    w.next().write_bytes(&out);
                });
            })
        }
        Recipient::Ec {
            agreement: alg,
            kdf: (kdf_oid, hash),
            point,
        } => {
            let ephemeral = PrivateKey::generate(alg).map_err(failed)?;
            let ephemeral_point = ephemeral.compute_public_key().map_err(failed)?;
            let shared = shared_info();
            let kek = agreement::agree(
                &ephemeral,
                UnparsedPublicKey::new(alg, &point),
                sealing("ECDH with the recipient's key"),
                |z| Ok(x963_kdf(hash, z, &shared)),
            )?;
            let kek = AesKek::new(&KW_AES_256, &kek).map_err(failed)?;
            let mut wrapped = vec![0u8; encrypted.key.len() + 8];
            let wrapped = kek
                .wrap(encrypted.key.as_slice(), &mut wrapped)
                .map_err(failed)?
                .to_vec();
            // [1] KeyAgreeRecipientInfo, version 3: the ephemeral key as the originator's.
            yasna::construct_der(|w| {
                w.write_tagged_implicit(Tag::context(1), |w| {
                    w.write_sequence(|w| {
                        w.next().write_u8(3);
                        w.next().write_tagged(Tag::context(0), |w| {
                            w.write_tagged_implicit(Tag::context(1), |w| {
                                w.write_sequence(|w| {
                                    // Parameters absent: the recipient's key names the curve.
                                    write_algorithm(w.next(), EC_PUBLIC_KEY, |_| {});
                                    w.next().write_bitvec_bytes(
                                        ephemeral_point.as_ref(),
                                        ephemeral_point.as_ref().len() * 8,
                                    );
                                });
                            });
                        });
                        write_algorithm(w.next(), kdf_oid, |w| {
                            write_algorithm(w, AES256_WRAP, |_| {});
                        });
                        w.next().write_sequence(|w| {
                            w.next().write_sequence(|w| {
                                // rKeyId [0] IMPLICIT RecipientKeyIdentifier.
                                w.next().write_tagged_implicit(Tag::context(0), |w| {
                                    w.write_sequence(|w| {
                                        w.next().write_bytes(&key_id);
                                    });
                                });
                                w.next().write_bytes(&wrapped);
                            });
                        });
                    });
                });
            })
        }
    };
    Ok(content_info(ENVELOPED_DATA, |w| {
        w.write_sequence(|w| {
            // Version 2: a recipient info of version 2 or 3 (RFC 5652 §6.1).
            w.next().write_u8(2);
            w.next().write_set(|w| w.next().write_der(&info));
            encrypted.write_info(w.next(), content_type);
        });
    }))
}

/// A CMS ContentInfo (DER) of `content_type` whose `[0] EXPLICIT` content `inner` writes.
pub(crate) fn content_info(content_type: &[u64], inner: impl FnOnce(DERWriter<'_>)) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(content_type));
            w.next().write_tagged(Tag::context(0), inner);
        });
    })
}
