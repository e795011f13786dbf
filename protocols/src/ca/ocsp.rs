//! OCSP (RFC 6960), pure: requests parsed (their certificate ids and nonce; a request
//! signature is ignored, as RFC 6960 §4.1.2 allows), responses built and signed by a delegated
//! responder (a P-256 key with an `ocsp-signing` certificate from the CA), and the status-only
//! answers (`malformedRequest`, `unauthorized`, ...). DER is read and written with yasna.
//!
//! Certificate ids may use SHA-1 (what `openssl ocsp` and most clients send; an identifier,
//! not a signature) or SHA-256; responses echo the id as it came.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{ASN1Error, ASN1ErrorKind, DERWriter, Tag};

use super::Reason;
use crate::pki::{cert_err, to_time};

/// Largest request parsed (a handful of certificate ids and a nonce fit in far less).
pub const MAX_REQUEST: usize = 16 * 1024;
/// Most certificate ids answered in one request.
pub const MAX_IDS: usize = 16;

const SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OCSP_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];
const OCSP_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

/// The hash a certificate id names its issuer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdHash {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl IdHash {
    /// `data` hashed.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            IdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            IdHash::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// One certificate id of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The hash of the issuer's name and key.
    pub hash: IdHash,
    /// Hash of the issuer's DER-encoded subject name.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's public key (the BIT STRING's contents).
    pub issuer_key_hash: Vec<u8>,
    /// The certificate's serial (big-endian, without leading zero bytes).
    pub serial: Vec<u8>,
    /// The id's DER, echoed in the answer.
    pub der: Vec<u8>,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The certificates asked about (1 to [`MAX_IDS`]).
    pub ids: Vec<CertId>,
    /// The nonce extension's value (RFC 8954: 1 to 32 bytes), echoed in the answer.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request is refused (`malformedRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OCSP request: {0}")]
pub struct Malformed(pub &'static str);

/// Parses a DER `OCSPRequest`.
pub fn parse_request(der: &[u8]) -> Result<Request, Malformed> {
    if der.len() > MAX_REQUEST {
        return Err(Malformed("too large"));
    }
    if !crate::der::well_formed(der) {
        return Err(Malformed("not DER"));
    }
    let (ids, nonce) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_sequence(|r| {
                let version =
                    r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_u8()))?;
                if version.is_some_and(|v| v != 0) {
                    return Err(ASN1Error::new(ASN1ErrorKind::Invalid));
                }
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                let ids = r.next().collect_sequence_of(|r| {
                    r.read_sequence(|r| {
                        let id = r.next().read_der()?;
                        r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
                        Ok(id)
                    })
                })?;
                let nonce = r
                    .read_optional(|r| r.read_tagged(Tag::context(2), read_nonce))?
                    .flatten();
                Ok((ids, nonce))
            })?;
            r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            Ok(tbs)
        })
    })
    .map_err(|_| Malformed("not a DER OCSPRequest"))?;
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(Malformed("1 to 16 certificate ids"));
    }
    if let Some(n) = &nonce {
        if n.is_empty() || n.len() > 32 {
            return Err(Malformed("the nonce must be 1 to 32 bytes (RFC 8954)"));
        }
    }
    let ids = ids
        .into_iter()
        .map(|der| cert_id(&der).map_err(|_| Malformed("a certificate id does not parse")))
        .collect::<Result<_, _>>()?;
    Ok(Request { ids, nonce })
}

/// The nonce among request extensions, if any (other extensions are ignored, even critical
/// ones: RFC 6960 lets a responder ignore what it does not know).
fn read_nonce(r: yasna::BERReader<'_, '_>) -> Result<Option<Vec<u8>>, ASN1Error> {
    let mut nonce = None;
    r.read_sequence_of(|r| {
        r.read_sequence(|r| {
            let id = r.next().read_oid()?;
            r.read_optional(|r| r.read_bool())?;
            let value = r.next().read_bytes()?;
            if id == oid(OCSP_NONCE) {
                // RFC 8954: the value is an OCTET STRING; some clients send the raw bytes.
                let inner = crate::der::well_formed(&value)
                    .then(|| yasna::parse_der(&value, |r| r.read_bytes()).ok())
                    .flatten();
                nonce = Some(inner.unwrap_or(value));
            }
            Ok(())
        })
    })?;
    Ok(nonce)
}

fn cert_id(der: &[u8]) -> Result<CertId, ASN1Error> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let hash_oid = r.next().read_sequence(|r| {
                let id = r.next().read_oid()?;
                r.read_optional(|r| r.read_null())?;
                Ok(id)
            })?;
            let hash = if hash_oid == oid(SHA1) {
                IdHash::Sha1
            } else if hash_oid == oid(SHA256) {
                IdHash::Sha256
            } else {
                return Err(ASN1Error::new(ASN1ErrorKind::Invalid));
            };
            let issuer_name_hash = r.next().read_bytes()?;
            let issuer_key_hash = r.next().read_bytes()?;
            let (serial, positive) = r.next().read_bigint_bytes()?;
            if !positive {
                return Err(ASN1Error::new(ASN1ErrorKind::Invalid));
            }
            let skip = serial.iter().take_while(|b| **b == 0).count();
            Ok(CertId {
                hash,
                issuer_name_hash,
                issuer_key_hash,
                serial: serial.get(skip..).unwrap_or_default().to_vec(),
                der: der.to_vec(),
            })
        })
    })
}

/// How a CA is named in certificate ids: its subject's and key's hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    /// SHA-1 of the subject name and of the key.
    pub sha1: (Vec<u8>, Vec<u8>),
    /// SHA-256 of the subject name and of the key.
    pub sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    /// The hashes of CA certificate `cert_der`.
    pub fn of(cert_der: &[u8]) -> Result<Self, crate::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| cert_err("CA certificate")(e))?;
        let name = cert.subject().as_raw();
        let key = cert.public_key().subject_public_key.data.as_ref();
        Ok(Self {
            sha1: (IdHash::Sha1.digest(name), IdHash::Sha1.digest(key)),
            sha256: (IdHash::Sha256.digest(name), IdHash::Sha256.digest(key)),
        })
    }

    /// Whether `id` names this issuer.
    pub fn names(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash {
            IdHash::Sha1 => &self.sha1,
            IdHash::Sha256 => &self.sha256,
        };
        *name == id.issuer_name_hash && *key == id.issuer_key_hash
    }
}

/// A certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked (or on hold) at `time` (Unix seconds).
    Revoked {
        /// When.
        time: u64,
        /// Why (no reason code for `unspecified`).
        reason: Reason,
    },
    /// Not issued by this CA, as far as it knows.
    Unknown,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Single<'a> {
    /// The id asked about.
    pub id: &'a CertId,
    /// Its status.
    pub status: Status,
    /// `thisUpdate`, Unix seconds.
    pub this_update: u64,
    /// `nextUpdate`, Unix seconds.
    pub next_update: u64,
}

/// `OCSPResponseStatus` values other than `successful`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 1: the request does not parse.
    MalformedRequest = 1,
    /// 2: the responder failed.
    InternalError = 2,
    /// 3: try again later.
    TryLater = 3,
    /// 6: this responder does not answer for the issuer asked about.
    Unauthorized = 6,
}

/// An `OCSPResponse` that carries only a refusal.
pub fn refusal(status: Refusal) -> Vec<u8> {
    yasna::construct_der(|w| w.write_sequence(|w| w.next().write_enum(status as i64)))
}

/// A delegated responder: its key (P-256) and its `ocsp-signing` certificate from the CA.
pub struct Responder {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    key_hash: Vec<u8>,
    /// The responder certificate's `notAfter`, Unix seconds.
    pub not_after: u64,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// The responder of P-256 PKCS#8 `key` with certificate `cert_der`.
    pub fn new(key_pkcs8: &[u8], cert_der: &[u8]) -> Result<Self, crate::Error> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8)
            .map_err(cert_err("OCSP responder key"))?;
        let not_after = super::summary(cert_der)?.not_after;
        let key_hash = IdHash::Sha1.digest(key.public_key().as_ref());
        Ok(Self {
            key,
            cert_der: cert_der.to_vec(),
            key_hash,
            not_after,
        })
    }

    /// A signed `successful` response of `singles`, echoing `nonce`, produced at `now`.
    pub fn respond(
        &self,
        singles: &[Single<'_>],
        nonce: Option<&[u8]>,
        now: u64,
    ) -> Result<Vec<u8>, crate::Error> {
        let time = |secs: u64| -> Result<GeneralizedTime, crate::Error> {
            Ok(GeneralizedTime::from_datetime(to_time(secs)?))
        };
        let produced = time(now)?;
        let mut times = Vec::with_capacity(singles.len());
        for s in singles {
            let revoked = match s.status {
                Status::Revoked { time: t, .. } => Some(time(t)?),
                _ => None,
            };
            times.push((time(s.this_update)?, time(s.next_update)?, revoked));
        }
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                // responderID byKey [2]: SHA-1 of the responder's public key.
                w.next()
                    .write_tagged(Tag::context(2), |w| w.write_bytes(&self.key_hash));
                w.next().write_generalized_time(&produced);
                w.next().write_sequence_of(|w| {
                    for (s, (this, next, revoked)) in singles.iter().zip(&times) {
                        w.next().write_sequence(|w| {
                            w.next().write_der(&s.id.der);
                            write_status(w.next(), s.status, revoked.as_ref());
                            w.next().write_generalized_time(this);
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_generalized_time(next));
                        });
                    }
                });
                if let Some(nonce) = nonce {
                    w.next().write_tagged(Tag::context(1), |w| {
                        w.write_sequence_of(|w| {
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&oid(OCSP_NONCE));
                                let value = yasna::construct_der(|w| w.write_bytes(nonce));
                                w.next().write_bytes(&value);
                            });
                        });
                    });
                }
            });
        });
        let signature = self
            .key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), &tbs)
            .map_err(cert_err("OCSP response signature"))?;
        let basic = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                w.next()
                    .write_sequence(|w| w.next().write_oid(&oid(ECDSA_SHA256)));
                w.next()
                    .write_bitvec_bytes(signature.as_ref(), signature.as_ref().len() * 8);
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| w.next().write_der(&self.cert_der));
                });
            });
        });
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_enum(0);
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&oid(OCSP_BASIC));
                        w.next().write_bytes(&basic);
                    });
                });
            });
        }))
    }
}

fn write_status(w: DERWriter<'_>, status: Status, revoked: Option<&GeneralizedTime>) {
    match (status, revoked) {
        (Status::Good, _) => w.write_tagged_implicit(Tag::context(0), |w| w.write_null()),
        (Status::Revoked { reason, .. }, Some(at)) => {
            w.write_tagged_implicit(Tag::context(1), |w| {
                w.write_sequence(|w| {
                    w.next().write_generalized_time(at);
                    if reason != Reason::Unspecified {
                        w.next().write_tagged(Tag::context(0), |w| {
                            w.write_enum(i64::from(reason.code()));
                        });
                    }
                });
            });
        }
        (Status::Unknown, _) | (Status::Revoked { .. }, None) => {
            w.write_tagged_implicit(Tag::context(2), |w| w.write_null());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_the_fuzzer_found_is_malformed_not_a_panic() {
        let found: &[u8] = &[
            48, 129, 135, 48, 129, 132, 48, 129, 129, 48, 60, 48, 137, 0, 255, 255, 255, 255, 255,
            255, 255, 250, 0, 26, 4, 20, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0,
            0, 53, 18, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0,
            0, 7, 0, 0, 0, 0, 0, 0, 0, 127, 255, 255, 255, 0, 0, 0, 0, 129, 168, 155, 128, 222,
            213, 46, 30, 117, 12, 185, 82, 45, 76, 145, 218, 114, 249, 4, 20, 169, 178, 217, 216,
            0, 2, 2, 103, 18, 52, 162, 35, 48, 33, 48, 31, 6, 9, 43, 6, 1, 5, 5, 7, 1, 35, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 69, 103, 137,
        ];
        assert_eq!(parse_request(found), Err(Malformed("not DER")));
        assert!(super::super::tsa::parse_request(found).is_err());
    }
}
