//! Key material per `kty`, its JSON parameters, and validation on import: a private key is
//! loaded into aws-lc-rs once (which checks its consistency) and kept ready to sign.

use std::sync::Arc;

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::jose::b64;
use crate::jose::der::{self, RsaComponents};
use crate::jose::error::{JoseError, Result};

/// Elliptic curves of EC and OKP keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// Ed25519 (OKP).
    Ed25519,
}

impl Curve {
    /// The registered `crv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
        }
    }

    /// Length of a coordinate (and of `d`).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    pub(crate) fn ecdsa_signing(self) -> Option<&'static signature::EcdsaSigningAlgorithm> {
        match self {
            Curve::P256 => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            Curve::P384 => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            Curve::P521 => Some(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
            Curve::Ed25519 => None,
        }
    }
}

/// A private key loaded into aws-lc-rs, ready to sign.
pub(crate) enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The private half of an RSA key, loaded into aws-lc-rs and ready to sign.
pub struct RsaPrivate {
    pub(crate) components: RsaComponents,
    pub(crate) signer: Signer,
    /// The same key loaded for RSA-OAEP decryption (loaded once: parsing an RSA key costs more
    /// than a decryption).
    pub(crate) decrypting: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
}

/// The private scalar (EC) or seed (Ed25519), loaded into aws-lc-rs and ready to sign.
pub struct ScalarPrivate {
    pub(crate) d: Zeroizing<Vec<u8>>,
    pub(crate) signer: Signer,
}

/// The key itself.
#[derive(Clone)]
pub enum KeyMaterial {
    /// RSA: modulus and exponent, and optionally the private part.
    Rsa {
        /// Modulus, big-endian, minimal.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
        /// Private part (CRT components) and its loaded signer.
        private: Option<Arc<RsaPrivate>>,
    },
    /// EC on a NIST curve: uncompressed point coordinates and optionally `d`.
    Ec {
        /// The curve.
        crv: Curve,
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
        /// Private scalar and its loaded signer.
        private: Option<Arc<ScalarPrivate>>,
    },
    /// OKP Ed25519: public key and optionally the seed.
    Okp {
        /// Public key.
        x: Vec<u8>,
        /// Seed and its loaded signer.
        private: Option<Arc<ScalarPrivate>>,
    },
    /// A symmetric key.
    Oct {
        /// Key bytes.
        k: Zeroizing<Vec<u8>>,
    },
}

impl KeyMaterial {
    /// `kty`.
    pub fn kty(&self) -> &'static str {
        match self {
            KeyMaterial::Rsa { .. } => "RSA",
            KeyMaterial::Ec { .. } => "EC",
            KeyMaterial::Okp { .. } => "OKP",
            KeyMaterial::Oct { .. } => "oct",
        }
    }

    /// Holds a private or secret part?
    pub fn is_private(&self) -> bool {
        match self {
            KeyMaterial::Rsa { private, .. } => private.is_some(),
            KeyMaterial::Ec { private, .. } | KeyMaterial::Okp { private, .. } => private.is_some(),
            KeyMaterial::Oct { .. } => true,
        }
    }

    /// The public part (oct keys have none).
    pub fn public(&self) -> Result<Self> {
        Ok(match self {
            KeyMaterial::Rsa { n, e, .. } => KeyMaterial::Rsa {
                n: n.clone(),
                e: e.clone(),
                private: None,
            },
            KeyMaterial::Ec { crv, x, y, .. } => KeyMaterial::Ec {
                crv: *crv,
                x: x.clone(),
                y: y.clone(),
                private: None,
            },
            KeyMaterial::Okp { x, .. } => KeyMaterial::Okp {
                x: x.clone(),
                private: None,
            },
            KeyMaterial::Oct { .. } => {
                return Err(JoseError::InvalidKey {
                    reason: "oct keys have no public part",
                })
            }
        })
    }

    /// The uncompressed SEC1 point of an EC key.
    pub(crate) fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        point
    }

    pub(crate) fn signer(&self) -> Option<&Signer> {
        match self {
            KeyMaterial::Rsa { private, .. } => private.as_ref().map(|p| &p.signer),
            KeyMaterial::Ec { private, .. } | KeyMaterial::Okp { private, .. } => {
                private.as_ref().map(|p| &p.signer)
            }
            KeyMaterial::Oct { .. } => None,
        }
    }

    // === JSON ===

    pub(crate) fn from_object(obj: &Map<String, Value>) -> Result<Self> {
        let kty = string(obj, "kty")?.ok_or(JoseError::Malformed { what: "kty" })?;
        match kty {
            "RSA" => rsa_from(obj),
            "EC" => ec_from(obj),
            "OKP" => okp_from(obj),
            "oct" => {
                let k = bytes(obj, "k")?.ok_or(JoseError::Malformed { what: "k" })?;
                if k.is_empty() {
                    return Err(JoseError::InvalidKey {
                        reason: "empty oct key",
                    });
                }
                Ok(KeyMaterial::Oct {
                    k: Zeroizing::new(k),
                })
            }
            _ => Err(JoseError::InvalidKey {
                reason: "unsupported kty",
            }),
        }
    }

    pub(crate) fn to_object(&self, private: bool) -> Map<String, Value> {
        let mut o = Map::new();
        let mut put = |name: &str, v: &[u8]| {
            o.insert(name.to_owned(), Value::String(b64::encode(v)));
        };
        match self {
            KeyMaterial::Rsa { n, e, private: p } => {
                put("n", n);
                put("e", e);
                if let (true, Some(p)) = (private, p) {
                    let c = &p.components;
                    for (name, v) in [
                        ("d", &c.d),
                        ("p", &c.p),
                        ("q", &c.q),
                        ("dp", &c.dp),
                        ("dq", &c.dq),
                        ("qi", &c.qi),
                    ] {
                        put(name, v);
                    }
                }
            }
            KeyMaterial::Ec {
                x, y, private: p, ..
            } => {
                put("x", x);
                put("y", y);
                if let (true, Some(p)) = (private, p) {
                    put("d", &p.d);
                }
            }
            KeyMaterial::Okp { x, private: p } => {
                put("x", x);
                if let (true, Some(p)) = (private, p) {
                    put("d", &p.d);
                }
            }
            KeyMaterial::Oct { k } => {
                if private {
                    put("k", k);
                }
            }
        }
        o.insert("kty".into(), Value::String(self.kty().into()));
        match self {
            KeyMaterial::Ec { crv, .. } => {
                o.insert("crv".into(), Value::String(crv.as_str().into()));
            }
            KeyMaterial::Okp { .. } => {
                o.insert("crv".into(), Value::String(Curve::Ed25519.as_str().into()));
            }
            KeyMaterial::Rsa { .. } | KeyMaterial::Oct { .. } => {}
        }
        o
    }

    /// RFC 7638 §3.2 required members, in lexical order.
    pub(crate) fn thumbprint_members(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(match self {
            KeyMaterial::Rsa { n, e, .. } => vec![
                ("e", b64::encode(e)),
                ("kty", "RSA".into()),
                ("n", b64::encode(n)),
            ],
            KeyMaterial::Ec { crv, x, y, .. } => vec![
                ("crv", crv.as_str().into()),
                ("kty", "EC".into()),
                ("x", b64::encode(x)),
                ("y", b64::encode(y)),
            ],
            KeyMaterial::Okp { x, .. } => vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64::encode(x)),
            ],
            KeyMaterial::Oct { k } => vec![("k", b64::encode(k)), ("kty", "oct".into())],
        })
    }

    // === construction from raw parts (generation) ===

    pub(crate) fn rsa_from_components(c: RsaComponents) -> Result<Self> {
        let pkcs1 = der::rsa_private_key(&c);
        let pair = RsaKeyPair::from_der(&pkcs1).map_err(|_| JoseError::InvalidKey {
            reason: "inconsistent RSA private key",
        })?;
        check_rsa_size(&c.n)?;
        let invalid = |_| JoseError::InvalidKey {
            reason: "inconsistent RSA private key",
        };
        let decrypting = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&der::rsa_pkcs8(&c))
            .map_err(|_| JoseError::InvalidKey {
                reason: "inconsistent RSA private key",
            })?;
        let decrypting =
            aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(decrypting).map_err(invalid)?;
        Ok(KeyMaterial::Rsa {
            n: c.n.clone(),
            e: c.e.clone(),
            private: Some(Arc::new(RsaPrivate {
                components: c,
                signer: Signer::Rsa(pair),
                decrypting,
            })),
        })
    }

    /// Imports an RSA private key from PKCS#8 DER (two primes).
    pub fn rsa_from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        Self::rsa_from_components(der::rsa_from_pkcs8(pkcs8)?)
    }

    pub(crate) fn ec_from_private(crv: Curve, d: Zeroizing<Vec<u8>>, point: &[u8]) -> Result<Self> {
        let alg = crv.ecdsa_signing().ok_or(JoseError::InvalidKey {
            reason: "not an EC curve",
        })?;
        let pair = EcdsaKeyPair::from_private_key_and_public_key(alg, &d, point).map_err(|_| {
            JoseError::InvalidKey {
                reason: "inconsistent EC private key",
            }
        })?;
        let len = crv.field_len();
        let coords = point
            .get(1..)
            .filter(|c| c.len() == 2 * len)
            .ok_or(JoseError::InvalidKey { reason: "EC point" })?;
        let (x, y) = coords.split_at(len);
        Ok(KeyMaterial::Ec {
            crv,
            x: x.to_vec(),
            y: y.to_vec(),
            private: Some(Arc::new(ScalarPrivate {
                d,
                signer: Signer::Ecdsa(pair),
            })),
        })
    }

    pub(crate) fn okp_from_private(seed: Zeroizing<Vec<u8>>, x: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, x).map_err(|_| {
            JoseError::InvalidKey {
                reason: "inconsistent Ed25519 private key",
            }
        })?;
        Ok(KeyMaterial::Okp {
            x: x.to_vec(),
            private: Some(Arc::new(ScalarPrivate {
                d: seed,
                signer: Signer::Ed25519(pair),
            })),
        })
    }
}

fn string<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::Malformed { what: name }),
    }
}

fn bytes(obj: &Map<String, Value>, name: &'static str) -> Result<Option<Vec<u8>>> {
    string(obj, name)?.map(|s| b64::decode(s, name)).transpose()
}

fn required(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>> {
    bytes(obj, name)?.ok_or(JoseError::Malformed { what: name })
}

fn check_rsa_size(n: &[u8]) -> Result<()> {
    let n = n
        .get(n.iter().position(|b| *b != 0).unwrap_or(n.len())..)
        .unwrap_or(&[]);
    if n.len() < 256 {
        return Err(JoseError::InvalidKey {
            reason: "RSA keys must be at least 2048 bits",
        });
    }
    if n.len() > 1024 {
        return Err(JoseError::InvalidKey {
            reason: "RSA keys above 8192 bits are refused",
        });
    }
    Ok(())
}

fn rsa_from(obj: &Map<String, Value>) -> Result<KeyMaterial> {
    if obj.contains_key("oth") {
        return Err(JoseError::InvalidKey {
            reason: "multi-prime RSA (oth) is not supported",
        });
    }
    let (n, e) = (required(obj, "n")?, required(obj, "e")?);
    check_rsa_size(&n)?;
    if e.is_empty() || e.len() > 8 {
        return Err(JoseError::InvalidKey {
            reason: "RSA exponent",
        });
    }
    let Some(d) = bytes(obj, "d")? else {
        return Ok(KeyMaterial::Rsa {
            n,
            e,
            private: None,
        });
    };
    let z = |name| required(obj, name).map(Zeroizing::new);
    let c = RsaComponents {
        n,
        e,
        d: Zeroizing::new(d),
        p: z("p")?,
        q: z("q")?,
        dp: z("dp")?,
        dq: z("dq")?,
        qi: z("qi")?,
    };
    KeyMaterial::rsa_from_components(c)
}

fn ec_from(obj: &Map<String, Value>) -> Result<KeyMaterial> {
    let crv = match string(obj, "crv")? {
        Some("P-256") => Curve::P256,
        Some("P-384") => Curve::P384,
        Some("P-521") => Curve::P521,
        Some(_) => {
            return Err(JoseError::InvalidKey {
                reason: "unsupported crv",
            })
        }
        None => return Err(JoseError::Malformed { what: "crv" }),
    };
    let (x, y) = (required(obj, "x")?, required(obj, "y")?);
    let len = crv.field_len();
    if x.len() != len || y.len() != len {
        return Err(JoseError::InvalidKey {
            reason: "EC coordinates have the wrong length",
        });
    }
    let point = KeyMaterial::ec_point(&x, &y);
    match bytes(obj, "d")? {
        Some(d) if d.len() == len => KeyMaterial::ec_from_private(crv, Zeroizing::new(d), &point),
        Some(_) => Err(JoseError::InvalidKey {
            reason: "EC d has the wrong length",
        }),
        None => {
            // Reject points not on the curve at import, not at first use.
            let verify_alg: &'static dyn signature::VerificationAlgorithm = match crv {
                Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                Curve::P521 | Curve::Ed25519 => &signature::ECDSA_P521_SHA512_FIXED,
            };
            signature::ParsedPublicKey::new(verify_alg, &point).map_err(|_| {
                JoseError::InvalidKey {
                    reason: "EC point is not on the curve",
                }
            })?;
            Ok(KeyMaterial::Ec {
                crv,
                x,
                y,
                private: None,
            })
        }
    }
}

fn okp_from(obj: &Map<String, Value>) -> Result<KeyMaterial> {
    match string(obj, "crv")? {
        Some("Ed25519") => {}
        Some(_) => {
            return Err(JoseError::InvalidKey {
                reason: "unsupported crv",
            })
        }
        None => return Err(JoseError::Malformed { what: "crv" }),
    }
    let x = required(obj, "x")?;
    if x.len() != 32 {
        return Err(JoseError::InvalidKey {
            reason: "Ed25519 public key length",
        });
    }
    match bytes(obj, "d")? {
        Some(d) if d.len() == 32 => KeyMaterial::okp_from_private(Zeroizing::new(d), &x),
        Some(_) => Err(JoseError::InvalidKey {
            reason: "Ed25519 seed length",
        }),
        None => Ok(KeyMaterial::Okp { x, private: None }),
    }
}
