//! Message protection (RFC 4210 §5.1.3, algorithms of RFC 9481): the password-based MAC of
//! RFC 4211 §4.4 (PBM), PBMAC1 (RFC 8018, PBKDF2 with HMAC-SHA-2), and signatures (ECDSA and
//! RSA PKCS#1 v1.5 with SHA-2). A MAC's iteration count comes from the sender, so it is
//! bounded before any work is done.

use aws_lc_rs::{digest, hmac, pbkdf2, signature};
use yasna::models::ObjectIdentifier;
use zeroize::Zeroizing;

use super::{Failure, Refusal};
use crate::ca::csr::RequestKey;

const PBM: &[u64] = &[1, 2, 840, 113_533, 7, 66, 13];
const PBMAC1: &[u64] = &[1, 2, 840, 113_549, 1, 5, 14];
const PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
const SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];
/// hmac-sha1 as RFC 4210 and OpenSSL name it (IPsec's OID), and PKCS#5's hmacWithSHA1.
const HMAC_SHA1: &[u64] = &[1, 3, 6, 1, 5, 5, 8, 1, 2];
const HMAC_WITH_SHA1: &[u64] = &[1, 2, 840, 113_549, 2, 7];
const HMAC_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const HMAC_SHA384: &[u64] = &[1, 2, 840, 113_549, 2, 10];
const HMAC_SHA512: &[u64] = &[1, 2, 840, 113_549, 2, 11];
const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
const ECDSA_SHA512: &[u64] = &[1, 2, 840, 10045, 4, 3, 4];
const RSA_SHA256: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];
const RSA_SHA384: &[u64] = &[1, 2, 840, 113_549, 1, 1, 12];
const RSA_SHA512: &[u64] = &[1, 2, 840, 113_549, 1, 1, 13];

/// Fewest iterations a MAC's key derivation may ask for (RFC 4211 §4.4: at least 100).
pub const MIN_ITERATIONS: u32 = 100;
/// Most: the sender chooses, and every iteration is work done before it is authenticated.
pub const MAX_ITERATIONS: u32 = 20_000;

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

fn bad_alg(reason: impl Into<String>) -> Refusal {
    Refusal::new(Failure::BadAlg, reason)
}

/// How a message says it is protected.
#[derive(Debug, Clone)]
pub enum Protection {
    /// A MAC keyed by a shared secret.
    Mac(Mac),
    /// A signature (the signer's certificate first in `extraCerts`).
    Signature(SignatureAlg),
}

/// The hash of a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// A signature algorithm taken on messages and proofs of possession.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// ECDSA with this hash.
    Ecdsa(Hash),
    /// RSASSA-PKCS1-v1_5 with this hash.
    Rsa(Hash),
}

impl SignatureAlg {
    /// Reads an AlgorithmIdentifier (DER) naming a signature algorithm.
    pub fn parse(alg_der: &[u8]) -> Result<Self, Refusal> {
        let (id, _) = algorithm(alg_der)?;
        let table = [
            (ECDSA_SHA256, SignatureAlg::Ecdsa(Hash::Sha256)),
            (ECDSA_SHA384, SignatureAlg::Ecdsa(Hash::Sha384)),
            (ECDSA_SHA512, SignatureAlg::Ecdsa(Hash::Sha512)),
            (RSA_SHA256, SignatureAlg::Rsa(Hash::Sha256)),
            (RSA_SHA384, SignatureAlg::Rsa(Hash::Sha384)),
            (RSA_SHA512, SignatureAlg::Rsa(Hash::Sha512)),
        ];
        table
            .iter()
            .find(|(arcs, _)| id == oid(arcs))
            .map(|(_, alg)| *alg)
            .ok_or_else(|| {
                bad_alg(format!(
                    "signature algorithm {} is not taken (ECDSA or RSA PKCS#1 v1.5 with SHA-2)",
                    dotted(&id)
                ))
            })
    }
}

fn dotted(id: &ObjectIdentifier) -> String {
    id.components()
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// An AlgorithmIdentifier (DER): its OID and its parameters' DER, if any.
fn algorithm(der: &[u8]) -> Result<(ObjectIdentifier, Option<Vec<u8>>), Refusal> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let id = r.next().read_oid()?;
            let params = r.read_optional(|r| r.read_der())?;
            Ok((id, params))
        })
    })
    .map_err(|_| {
        Refusal::new(
            Failure::BadDataFormat,
            "an AlgorithmIdentifier does not parse",
        )
    })
}

/// Verifies `sig` over `data` with the key `spki_der` (a SubjectPublicKeyInfo the CA takes:
/// P-256, P-384, RSA 2048 to 8192) and the algorithm `alg`.
pub fn verify(spki_der: &[u8], alg: SignatureAlg, data: &[u8], sig: &[u8]) -> bool {
    use x509_parser::prelude::FromDer as _;
    let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der) else {
        return false;
    };
    let Ok(key) = crate::ca::csr::request_key(&spki) else {
        return false;
    };
    let params: &'static dyn signature::VerificationAlgorithm = match (key, alg) {
        (RequestKey::P256, SignatureAlg::Ecdsa(Hash::Sha256)) => &signature::ECDSA_P256_SHA256_ASN1,
        (RequestKey::P256, SignatureAlg::Ecdsa(Hash::Sha384)) => &signature::ECDSA_P256_SHA384_ASN1,
        (RequestKey::P384, SignatureAlg::Ecdsa(Hash::Sha256)) => &signature::ECDSA_P384_SHA256_ASN1,
        (RequestKey::P384, SignatureAlg::Ecdsa(Hash::Sha384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (RequestKey::Rsa(_), SignatureAlg::Rsa(Hash::Sha256)) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (RequestKey::Rsa(_), SignatureAlg::Rsa(Hash::Sha384)) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (RequestKey::Rsa(_), SignatureAlg::Rsa(Hash::Sha512)) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        _ => return false,
    };
    signature::UnparsedPublicKey::new(params, spki.subject_public_key.data.as_ref())
        .verify(data, sig)
        .is_ok()
}

/// The key derivation of a MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Derivation {
    /// PBM: a one-way function iterated over `secret || salt`.
    Pbm(&'static digest::Algorithm),
    /// PBMAC1: PBKDF2 with HMAC of this hash, a key of this many bytes.
    Pbkdf2(Hash, usize),
}

/// A MAC's parameters, as a message names them.
#[derive(Debug, Clone)]
pub struct Mac {
    derivation: Derivation,
    salt: Vec<u8>,
    iterations: u32,
    mac: hmac::Algorithm,
}

fn hmac_of(id: &ObjectIdentifier) -> Option<hmac::Algorithm> {
    if *id == oid(HMAC_SHA1) || *id == oid(HMAC_WITH_SHA1) {
        Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY)
    } else if *id == oid(HMAC_SHA256) {
        Some(hmac::HMAC_SHA256)
    } else if *id == oid(HMAC_SHA384) {
        Some(hmac::HMAC_SHA384)
    } else if *id == oid(HMAC_SHA512) {
        Some(hmac::HMAC_SHA512)
    } else {
        None
    }
}

fn hmac_oid(mac: hmac::Algorithm) -> &'static [u64] {
    if mac == hmac::HMAC_SHA256 {
        HMAC_SHA256
    } else if mac == hmac::HMAC_SHA384 {
        HMAC_SHA384
    } else if mac == hmac::HMAC_SHA512 {
        HMAC_SHA512
    } else {
        HMAC_SHA1
    }
}

fn iterations(count: u64) -> Result<u32, Refusal> {
    u32::try_from(count)
        .ok()
        .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
        .ok_or_else(|| {
            bad_alg(format!(
                "iteration count {count} is outside {MIN_ITERATIONS} to {MAX_ITERATIONS}"
            ))
        })
}

impl Protection {
    /// Reads a message's `protectionAlg` (an AlgorithmIdentifier, DER).
    pub fn parse(alg_der: &[u8]) -> Result<Self, Refusal> {
        let (id, params) = algorithm(alg_der)?;
        let bad = || Refusal::new(Failure::BadDataFormat, "MAC parameters do not parse");
        if id == oid(PBM) {
            let params = params.ok_or_else(bad)?;
            let (salt, owf, count, mac) = yasna::parse_der(&params, |r| {
                r.read_sequence(|r| {
                    let salt = r.next().read_bytes()?;
                    let owf = r.next().read_der()?;
                    let count = r.next().read_u64()?;
                    let mac = r.next().read_der()?;
                    Ok((salt, owf, count, mac))
                })
            })
            .map_err(|_| bad())?;
            let (owf, _) = algorithm(&owf)?;
            let owf = if owf == oid(SHA256) {
                &digest::SHA256
            } else if owf == oid(SHA384) {
                &digest::SHA384
            } else if owf == oid(SHA512) {
                &digest::SHA512
            } else {
                return Err(bad_alg(
                    "the PBM one-way function must be SHA-256, SHA-384 or SHA-512",
                ));
            };
            let (mac, _) = algorithm(&mac)?;
            let mac = hmac_of(&mac)
                .ok_or_else(|| bad_alg("the PBM MAC must be HMAC-SHA1 or HMAC-SHA-2"))?;
            return Ok(Protection::Mac(Mac {
                derivation: Derivation::Pbm(owf),
                salt,
                iterations: iterations(count)?,
                mac,
            }));
        }
        if id == oid(PBMAC1) {
            let params = params.ok_or_else(bad)?;
            let (kdf, scheme) = yasna::parse_der(&params, |r| {
                r.read_sequence(|r| Ok((r.next().read_der()?, r.next().read_der()?)))
            })
            .map_err(|_| bad())?;
            let (kdf_id, kdf_params) = algorithm(&kdf)?;
            if kdf_id != oid(PBKDF2) {
                return Err(bad_alg("PBMAC1's key derivation must be PBKDF2"));
            }
            let (salt, count, key_len, prf) = yasna::parse_der(&kdf_params.ok_or_else(bad)?, |r| {
                r.read_sequence(|r| {
                    let salt = r.next().read_bytes()?;
                    let count = r.next().read_u64()?;
                    let key_len = r.read_optional(|r| r.read_u64())?;
                    let prf = r.read_optional(|r| r.read_der())?;
                    Ok((salt, count, key_len, prf))
                })
            })
            .map_err(|_| bad())?;
            // RFC 9481 §6.1.1: the PRF is HMAC with SHA-2 (PKCS#5's default, HMAC-SHA1, is not taken).
            let prf = match prf {
                Some(prf) => algorithm(&prf)?.0,
                None => oid(HMAC_WITH_SHA1),
            };
            let prf = if prf == oid(HMAC_SHA256) {
                (Hash::Sha256, 32)
            } else if prf == oid(HMAC_SHA384) {
                (Hash::Sha384, 48)
            } else if prf == oid(HMAC_SHA512) {
                (Hash::Sha512, 64)
            } else {
                return Err(bad_alg("PBKDF2's PRF must be HMAC-SHA-256, -384 or -512"));
            };
            let key_len = match key_len {
                None => prf.1,
                Some(n) => usize::try_from(n)
                    .ok()
                    .filter(|n| (16..=64).contains(n))
                    .ok_or_else(|| bad_alg("PBKDF2's key length must be 16 to 64 bytes"))?,
            };
            let (scheme, _) = algorithm(&scheme)?;
            let mac = hmac_of(&scheme)
                .filter(|m| *m != hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY)
                .ok_or_else(|| bad_alg("PBMAC1's MAC must be HMAC-SHA-256, -384 or -512"))?;
            if salt.len() < 8 {
                return Err(bad_alg("PBKDF2's salt must be at least 8 bytes"));
            }
            return Ok(Protection::Mac(Mac {
                derivation: Derivation::Pbkdf2(prf.0, key_len),
                salt,
                iterations: iterations(count)?,
                mac,
            }));
        }
        SignatureAlg::parse(alg_der).map(Protection::Signature)
    }
}

impl Mac {
    fn key(&self, secret: &[u8]) -> Zeroizing<Vec<u8>> {
        match self.derivation {
            Derivation::Pbm(owf) => {
                let mut ctx = digest::Context::new(owf);
                ctx.update(secret);
                ctx.update(&self.salt);
                let mut key = Zeroizing::new(ctx.finish().as_ref().to_vec());
                for _ in 1..self.iterations {
                    key = Zeroizing::new(digest::digest(owf, &key).as_ref().to_vec());
                }
                key
            }
            Derivation::Pbkdf2(prf, len) => {
                let mut key = Zeroizing::new(vec![0u8; len]);
                let rounds =
                    std::num::NonZeroU32::new(self.iterations).unwrap_or(std::num::NonZeroU32::MIN);
                let prf = match prf {
                    Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
                    Hash::Sha384 => pbkdf2::PBKDF2_HMAC_SHA384,
                    Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
                };
                pbkdf2::derive(prf, rounds, &self.salt, secret, &mut key);
                key
            }
        }
    }

    /// The MAC of `data` keyed by `secret`.
    pub fn compute(&self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.mac, &self.key(secret));
        hmac::sign(&key, data).as_ref().to_vec()
    }

    /// Whether `tag` is the MAC of `data` keyed by `secret` (compared in constant time).
    pub fn verify(&self, secret: &[u8], data: &[u8], tag: &[u8]) -> bool {
        let key = hmac::Key::new(self.mac, &self.key(secret));
        hmac::verify(&key, data, tag).is_ok()
    }

    /// The MAC keyed by `secret`: the key derived once, for checking a request and
    /// protecting its answer with the same parameters (the sender's salt and iteration
    /// count: the answer costs no second derivation).
    pub fn keyed(&self, secret: &[u8]) -> KeyedMac {
        KeyedMac {
            key: hmac::Key::new(self.mac, &self.key(secret)),
            algorithm: self.algorithm_der(),
        }
    }

    /// Its AlgorithmIdentifier (DER), for a header's `protectionAlg`.
    pub fn algorithm_der(&self) -> Vec<u8> {
        let hash_oid = |h: &'static digest::Algorithm| {
            if *h == digest::SHA384 {
                SHA384
            } else if *h == digest::SHA512 {
                SHA512
            } else {
                SHA256
            }
        };
        yasna::construct_der(|w| {
            w.write_sequence(|w| match self.derivation {
                Derivation::Pbm(owf) => {
                    w.next().write_oid(&oid(PBM));
                    w.next().write_sequence(|w| {
                        w.next().write_bytes(&self.salt);
                        w.next()
                            .write_sequence(|w| w.next().write_oid(&oid(hash_oid(owf))));
                        w.next().write_u32(self.iterations);
                        w.next()
                            .write_sequence(|w| w.next().write_oid(&oid(hmac_oid(self.mac))));
                    });
                }
                Derivation::Pbkdf2(prf, len) => {
                    let prf_oid = match prf {
                        Hash::Sha256 => HMAC_SHA256,
                        Hash::Sha384 => HMAC_SHA384,
                        Hash::Sha512 => HMAC_SHA512,
                    };
                    w.next().write_oid(&oid(PBMAC1));
                    w.next().write_sequence(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(PBKDF2));
                            w.next().write_sequence(|w| {
                                w.next().write_bytes(&self.salt);
                                w.next().write_u32(self.iterations);
                                w.next().write_u64(len as u64);
                                w.next().write_sequence(|w| {
                                    w.next().write_oid(&oid(prf_oid));
                                    w.next().write_null();
                                });
                            });
                        });
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(hmac_oid(self.mac)));
                            w.next().write_null();
                        });
                    });
                }
            });
        })
    }
}

/// A MAC with its key derived ([`Mac::keyed`]).
pub struct KeyedMac {
    key: hmac::Key,
    algorithm: Vec<u8>,
}

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedMac").finish_non_exhaustive()
    }
}

impl KeyedMac {
    /// Whether `tag` is the MAC of `data` (compared in constant time).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, data, tag).is_ok()
    }

    /// The MAC of `data`.
    pub fn compute(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, data).as_ref().to_vec()
    }

    /// Its AlgorithmIdentifier (DER): the parameters it was derived with.
    pub fn algorithm_der(&self) -> &[u8] {
        &self.algorithm
    }
}

/// The digest a certificate's hash in `certConf` is made with: the `hashAlg` the message
/// names (CMP 2021), else the hash of the certificate's own signature algorithm (RFC 4210
/// §5.3.18). None: a hash this CA does not make.
pub fn cert_hash(cert_der: &[u8], hash_alg_der: Option<&[u8]>) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer as _;
    let hash = match hash_alg_der {
        Some(der) => {
            let (id, _) = algorithm(der).ok()?;
            if id == oid(SHA256) {
                &digest::SHA256
            } else if id == oid(SHA384) {
                &digest::SHA384
            } else if id == oid(SHA512) {
                &digest::SHA512
            } else {
                return None;
            }
        }
        None => {
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).ok()?;
            match cert.signature_algorithm.algorithm.to_id_string().as_str() {
                "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => &digest::SHA256,
                "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => &digest::SHA384,
                "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => &digest::SHA512,
                _ => return None,
            }
        }
    };
    Some(digest::digest(hash, cert_der).as_ref().to_vec())
}
