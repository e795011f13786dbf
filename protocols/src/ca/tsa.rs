//! RFC 3161 time stamps, pure: requests parsed, tokens built as CMS `SignedData` (RFC 5652)
//! over a `TSTInfo`, signed by a time-stamping key (P-256) whose certificate the CA issued
//! under the `time-stamping` profile, with the ESS signing-certificate-v2 attribute (RFC 5816)
//! that binds the token to that certificate. DER is read and written with yasna.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::Tag;

use crate::pki::{cert_err, to_time};

/// Largest request parsed.
pub const MAX_REQUEST: usize = 8 * 1024;

const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
const SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];
const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const TST_INFO: &[u64] = &[1, 2, 840, 113_549, 1, 9, 16, 1, 4];
const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
const SIGNING_CERTIFICATE_V2: &[u64] = &[1, 2, 840, 113_549, 1, 9, 16, 2, 47];

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

/// Why a request is refused: the `PKIFailureInfo` bit RFC 3161 §2.4.2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// `badAlg` (0): the imprint's hash is not SHA-256, SHA-384 or SHA-512.
    #[error("badAlg: the message imprint must be SHA-256, SHA-384 or SHA-512")]
    BadAlg = 0,
    /// `badRequest` (2): a version or extension this TSA does not take.
    #[error("badRequest")]
    BadRequest = 2,
    /// `badDataFormat` (5): the request does not parse, or the imprint has the wrong length.
    #[error("badDataFormat: not a DER TimeStampReq")]
    BadDataFormat = 5,
    /// `unacceptedPolicy` (15): a policy other than this TSA's.
    #[error("unacceptedPolicy")]
    UnacceptedPolicy = 15,
    /// `systemFailure` (25).
    #[error("systemFailure")]
    SystemFailure = 25,
}

/// A parsed `TimeStampReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The `MessageImprint`'s DER, echoed in the token.
    pub imprint: Vec<u8>,
    /// The requested policy's OID DER, if any.
    pub policy: Option<Vec<u8>>,
    /// The nonce's magnitude (big-endian), echoed.
    pub nonce: Option<Vec<u8>>,
    /// Whether the TSA certificate goes in the token.
    pub cert_req: bool,
}

/// Parses a DER `TimeStampReq`.
pub fn parse_request(der: &[u8]) -> Result<Request, Failure> {
    if der.len() > MAX_REQUEST || !crate::der::well_formed(der) {
        return Err(Failure::BadDataFormat);
    }
    let parsed = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let version = r.next().read_u8()?;
            let imprint = r.next().read_der()?;
            // The policy is kept as DER: a `2.25.<UUID>` arc is more than yasna's OIDs hold.
            let policy = r.read_optional(|r| {
                if r.lookahead_tag()? == yasna::tags::TAG_OID {
                    r.read_der()
                } else {
                    Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid))
                }
            })?;
            let nonce = r.read_optional(|r| r.read_bigint_bytes())?;
            let cert_req = r.read_default(false, |r| r.read_bool())?;
            let extensions =
                r.read_optional(|r| r.read_tagged_implicit(Tag::context(0), |r| r.read_der()))?;
            Ok((version, imprint, policy, nonce, cert_req, extensions))
        })
    });
    let (version, imprint, policy, nonce, cert_req, extensions) = match parsed {
        Ok(p) => p,
        Err(_) => return Err(Failure::BadDataFormat),
    };
    if version != 1 || extensions.is_some() {
        return Err(Failure::BadRequest);
    }
    check_imprint(&imprint)?;
    let nonce = match nonce {
        Some((_, false)) => return Err(Failure::BadDataFormat),
        Some((bytes, true)) => {
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            Some(bytes.get(skip..).unwrap_or_default().to_vec())
        }
        None => None,
    };
    Ok(Request {
        imprint,
        policy,
        nonce,
        cert_req,
    })
}

/// The imprint's hash is one this TSA takes, and its value has that hash's length.
fn check_imprint(imprint: &[u8]) -> Result<(), Failure> {
    let (alg, value) = yasna::parse_der(imprint, |r| {
        r.read_sequence(|r| {
            let alg = r.next().read_sequence(|r| {
                let id = r.next().read_oid()?;
                r.read_optional(|r| r.read_null())?;
                Ok(id)
            })?;
            Ok((alg, r.next().read_bytes()?))
        })
    })
    .map_err(|_| Failure::BadDataFormat)?;
    let len = if alg == oid(SHA256) {
        32
    } else if alg == oid(SHA384) {
        48
    } else if alg == oid(SHA512) {
        64
    } else {
        return Err(Failure::BadAlg);
    };
    if value.len() == len {
        Ok(())
    } else {
        Err(Failure::BadDataFormat)
    }
}

/// The DER of a dotted OID, whatever the size of its arcs (a `2.25.<UUID>` policy has a
/// 128-bit arc, more than yasna's u64 arcs hold).
pub fn oid_der(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| {
            if a.is_empty() || (a.len() > 1 && a.starts_with('0')) {
                None
            } else {
                a.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (first, second, rest) = match arcs.as_slice() {
        [a, b, rest @ ..] if *a <= 2 && (*a == 2 || *b < 40) => (*a, *b, rest),
        _ => return None,
    };
    let mut body: Vec<u8> = Vec::new();
    for arc in std::iter::once(first * 40 + second).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut n = arc >> 7;
        while n > 0 {
            groups.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        body.extend(groups.iter().rev());
    }
    let len = u8::try_from(body.len()).ok().filter(|l| *l < 0x80)?;
    let mut der = vec![0x06, len];
    der.extend(body);
    Some(der)
}

/// A `TimeStampResp` that refuses (`rejection`, with the failure's bit).
pub fn rejection(failure: Failure) -> Vec<u8> {
    let bit = failure as usize;
    let mut bits = vec![0u8; bit / 8 + 1];
    if let Some(byte) = bits.get_mut(bit / 8) {
        *byte |= 0x80 >> (bit % 8);
    }
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_u8(2);
                w.next().write_sequence_of(|w| {
                    w.next().write_utf8_string(&failure.to_string());
                });
                w.next().write_bitvec_bytes(&bits, bit + 1);
            });
        });
    })
}

/// A time-stamping authority: its key (P-256), its certificate and policy.
pub struct Tsa {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    issuer_der: Vec<u8>,
    serial: Vec<u8>,
    policy_der: Vec<u8>,
    /// The certificate's `notAfter`, Unix seconds.
    pub not_after: u64,
}

impl std::fmt::Debug for Tsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Tsa {
    /// The TSA of P-256 PKCS#8 `key` with certificate `cert_der` and policy `policy_der`.
    pub fn new(key_pkcs8: &[u8], cert_der: &[u8], policy_der: &[u8]) -> Result<Self, crate::Error> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8)
            .map_err(cert_err("TSA key"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| cert_err("TSA certificate")(e))?;
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        Ok(Self {
            key,
            issuer_der: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial().to_vec(),
            cert_der: cert_der.to_vec(),
            policy_der: policy_der.to_vec(),
            not_after,
        })
    }

    /// A `granted` `TimeStampResp` for `req`: serial `serial`, time `now` (accuracy one
    /// second); `unacceptedPolicy` if `req` names another policy.
    pub fn stamp(&self, req: &Request, serial: &[u8], now: u64) -> Result<Vec<u8>, crate::Error> {
        if req.policy.as_ref().is_some_and(|p| *p != self.policy_der) {
            return Ok(rejection(Failure::UnacceptedPolicy));
        }
        let gen_time = GeneralizedTime::from_datetime(to_time(now)?);
        let tst_info = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_der(&self.policy_der);
                w.next().write_der(&req.imprint);
                w.next().write_bigint_bytes(serial, true);
                w.next().write_generalized_time(&gen_time);
                w.next().write_sequence(|w| w.next().write_u8(1));
                if let Some(nonce) = &req.nonce {
                    w.next().write_bigint_bytes(nonce, true);
                }
            });
        });
        let tst_digest = digest::digest(&digest::SHA256, &tst_info);
        let cert_hash = digest::digest(&digest::SHA256, &self.cert_der);
        // The signed attributes, DER-sorted as a SET: signed as a SET, stored [0] IMPLICIT.
        let attrs: Vec<Vec<u8>> = vec![
            attribute(CONTENT_TYPE, |w| w.write_oid(&oid(TST_INFO))),
            attribute(MESSAGE_DIGEST, |w| w.write_bytes(tst_digest.as_ref())),
            attribute(SIGNING_CERTIFICATE_V2, |w| {
                w.write_sequence(|w| {
                    w.next().write_sequence_of(|w| {
                        w.next().write_sequence(|w| {
                            // hashAlgorithm DEFAULT sha256: omitted.
                            w.next().write_bytes(cert_hash.as_ref());
                            w.next().write_sequence(|w| {
                                w.next().write_sequence_of(|w| {
                                    w.next().write_tagged(Tag::context(4), |w| {
                                        w.write_der(&self.issuer_der);
                                    });
                                });
                                w.next().write_bigint_bytes(&self.serial, true);
                            });
                        });
                    });
                });
            }),
        ];
        let signed_set = yasna::construct_der(|w| {
            w.write_set_of(|w| {
                for a in &attrs {
                    w.next().write_der(a);
                }
            });
        });
        let signature = self
            .key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), &signed_set)
            .map_err(cert_err("time stamp signature"))?;
        // The same attributes under [0] IMPLICIT: the SET's tag byte replaced.
        let mut signed_attrs = signed_set.clone();
        if let Some(tag) = signed_attrs.first_mut() {
            *tag = 0xa0;
        }
        let signed_data = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(3);
                w.next().write_set_of(|w| {
                    w.next()
                        .write_sequence(|w| w.next().write_oid(&oid(SHA256)));
                });
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(TST_INFO));
                    w.next()
                        .write_tagged(Tag::context(0), |w| w.write_bytes(&tst_info));
                });
                if req.cert_req {
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_set_of(|w| w.next().write_der(&self.cert_der));
                    });
                }
                w.next().write_set_of(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_u8(1);
                        w.next().write_sequence(|w| {
                            w.next().write_der(&self.issuer_der);
                            w.next().write_bigint_bytes(&self.serial, true);
                        });
                        w.next()
                            .write_sequence(|w| w.next().write_oid(&oid(SHA256)));
                        w.next().write_der(&signed_attrs);
                        w.next()
                            .write_sequence(|w| w.next().write_oid(&oid(ECDSA_SHA256)));
                        w.next().write_bytes(signature.as_ref());
                    });
                });
            });
        });
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| w.next().write_u8(0));
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(SIGNED_DATA));
                    w.next()
                        .write_tagged(Tag::context(0), |w| w.write_der(&signed_data));
                });
            });
        }))
    }
}

/// One `Attribute` (a type and a SET of one value).
fn attribute(kind: &[u64], value: impl FnOnce(yasna::DERWriter<'_>)) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(kind));
            w.next().write_set(|w| value(w.next()));
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_with_uuid_arcs_encode_like_openssl() {
        // openssl asn1parse -genstr OID:1.2.840.113549 -> 06 06 2a 86 48 86 f7 0d
        assert_eq!(
            oid_der("1.2.840.113549").unwrap(),
            [0x06, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        let uuid = oid_der("2.25.116857771501124967086809086249885710883").unwrap();
        assert_eq!(&uuid[..3], &[0x06, 0x14, 0x69]);
        for bad in ["", "1", "3.1", "1.40", "1.2.x", "1.02"] {
            assert!(oid_der(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_constructed_policy_oid_is_a_bad_data_format() {
        // The fuzzer's find: the policy `26 08 ...` (an OID in constructed form) was kept as
        // the request's policy. DER has OIDs primitive only.
        let mut der = vec![
            0x30, 0x43, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
        ];
        der.extend([
            0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
        ]);
        der.extend([0x11; 32]);
        der.extend([0x26, 0x08, 0, 0, 0, 0, 0x45, 0, 0, 0, 0x01, 0x01, 0xff]);
        assert!(matches!(parse_request(&der), Err(Failure::BadDataFormat)));
        // The same request with the policy primitive (06 01 2a) parses and keeps it.
        let len = der.len();
        der.truncate(len - 13);
        der.extend([0x06, 0x01, 0x2a]);
        der[1] = u8::try_from(der.len() - 2).unwrap();
        assert_eq!(
            parse_request(&der).unwrap().policy,
            Some(vec![0x06, 0x01, 0x2a])
        );
    }

    #[test]
    fn a_rejection_names_its_failure_bit() {
        let der = rejection(Failure::BadAlg);
        let (status, bits) = yasna::parse_der(&der, |r| {
            r.read_sequence(|r| {
                r.next().read_sequence(|r| {
                    let status = r.next().read_u8()?;
                    r.next().read_der()?;
                    Ok((status, r.next().read_bitvec_bytes()?))
                })
            })
        })
        .unwrap();
        assert_eq!((status, bits), (2, (vec![0x80], 1)));
    }
}
