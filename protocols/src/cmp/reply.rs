//! Answers: a header that answers the request's (same transaction, its nonce echoed, a fresh
//! one of the server's), and the bodies a CMP server sends: `ip`/`cp`/`kup`, `rp`, `genp`,
//! `pkiconf`, `pollRep` and `error`. Protection is the caller's: [`Unprotected::protected_part`]
//! is what it MACs or signs, [`Unprotected::finish`] the message with it.

use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{DERWriter, Tag};

use super::{id_it, Failure, InfoType, IMPLICIT_CONFIRM};
use crate::ca::KeyType;

/// `PKIStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiStatus {
    /// `accepted`.
    Accepted = 0,
    /// `rejection`.
    Rejection = 2,
    /// `waiting`: ask again by polling.
    Waiting = 3,
}

/// `PKIStatusInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    /// The status.
    pub status: PkiStatus,
    /// A reason for people (`statusString`).
    pub text: Option<&'a str>,
    /// The failure bit.
    pub failure: Option<Failure>,
}

impl Status<'static> {
    /// `accepted`, nothing more.
    pub const ACCEPTED: Self = Self {
        status: PkiStatus::Accepted,
        text: None,
        failure: None,
    };
}

/// An answer's header.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// `pvno`, the request's.
    pub pvno: u8,
    /// The CA's name (Name DER): the answer's sender.
    pub sender: &'a [u8],
    /// The request's sender (GeneralName DER): the answer's recipient.
    pub recipient: &'a [u8],
    /// `messageTime`, Unix seconds.
    pub time: u64,
    /// `protectionAlg` (AlgorithmIdentifier DER).
    pub protection_alg: Option<&'a [u8]>,
    /// `senderKID`.
    pub sender_kid: Option<&'a [u8]>,
    /// The request's `transactionID`.
    pub transaction_id: &'a [u8],
    /// A fresh nonce.
    pub sender_nonce: &'a [u8],
    /// The request's `senderNonce`.
    pub recip_nonce: &'a [u8],
    /// Whether implicit confirmation is granted.
    pub implicit_confirm: bool,
}

/// An answer's body.
#[derive(Debug, Clone)]
pub enum Reply<'a> {
    /// `ip` (1), `cp` (3) or `kup` (8): one certificate response.
    Cert {
        /// The body's tag number.
        tag: u8,
        /// The request's `certReqId`.
        cert_req_id: i64,
        /// Where it stands.
        status: Status<'a>,
        /// The certificate, if issued.
        cert: Option<&'a [u8]>,
        /// Trust anchors for the client (`caPubs`).
        ca_pubs: &'a [&'a [u8]],
    },
    /// `rp`: the revocation's status.
    Rp(Status<'a>),
    /// `genp`: (infoType, infoValue DER) pairs.
    Genp(Vec<GenpItem>),
    /// `pkiconf`.
    PkiConf,
    /// `pollRep`: ask again after this many seconds.
    PollRep {
        /// The request's `certReqId`.
        cert_req_id: i64,
        /// Seconds to wait.
        check_after: u64,
    },
    /// `error`.
    Error(Status<'a>),
}

/// One `InfoTypeAndValue` of a `genp`: its type and its value's DER (none: absent).
pub type GenpItem = (ObjectIdentifier, Option<Vec<u8>>);

/// The tag numbers of `ip`, `cp` and `kup`.
pub const IP: u8 = 1;
/// `cp`.
pub const CP: u8 = 3;
/// `kup`.
pub const KUP: u8 = 8;

/// An answer before its protection.
#[derive(Debug, Clone)]
pub struct Unprotected {
    header: Vec<u8>,
    body: Vec<u8>,
}

fn free_text(w: DERWriter<'_>, text: &str) {
    w.write_sequence_of(|w| w.next().write_utf8_string(text));
}

fn status_info(w: DERWriter<'_>, status: &Status<'_>) {
    w.write_sequence(|w| {
        w.next().write_i64(status.status as i64);
        if let Some(text) = status.text {
            free_text(w.next(), text);
        }
        if let Some(failure) = status.failure {
            let bit = failure as usize;
            let mut bytes = vec![0u8; bit / 8 + 1];
            if let Some(byte) = bytes.get_mut(bit / 8) {
                *byte = 0x80 >> (bit % 8);
            }
            w.next().write_bitvec_bytes(&bytes, bit + 1);
        }
    });
}

impl Unprotected {
    /// The answer `reply` under `head`.
    pub fn new(head: &Head<'_>, reply: &Reply<'_>) -> Result<Self, crate::Error> {
        let time = GeneralizedTime::from_datetime(crate::pki::to_time(head.time)?);
        let header = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(head.pvno);
                w.next()
                    .write_tagged(Tag::context(4), |w| w.write_der(head.sender));
                w.next().write_der(head.recipient);
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_generalized_time(&time));
                if let Some(alg) = head.protection_alg {
                    w.next().write_tagged(Tag::context(1), |w| w.write_der(alg));
                }
                if let Some(kid) = head.sender_kid {
                    w.next()
                        .write_tagged(Tag::context(2), |w| w.write_bytes(kid));
                }
                w.next()
                    .write_tagged(Tag::context(4), |w| w.write_bytes(head.transaction_id));
                w.next()
                    .write_tagged(Tag::context(5), |w| w.write_bytes(head.sender_nonce));
                w.next()
                    .write_tagged(Tag::context(6), |w| w.write_bytes(head.recip_nonce));
                if head.implicit_confirm {
                    w.next().write_tagged(Tag::context(8), |w| {
                        w.write_sequence_of(|w| {
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&id_it(IMPLICIT_CONFIRM));
                                w.next().write_null();
                            });
                        });
                    });
                }
            });
        });
        let body = yasna::construct_der(|w| match reply {
            Reply::Cert {
                tag,
                cert_req_id,
                status,
                cert,
                ca_pubs,
            } => w.write_tagged(Tag::context(u64::from(*tag)), |w| {
                w.write_sequence(|w| {
                    if !ca_pubs.is_empty() {
                        w.next().write_tagged(Tag::context(1), |w| {
                            w.write_sequence_of(|w| {
                                for c in *ca_pubs {
                                    w.next().write_der(c);
                                }
                            });
                        });
                    }
                    w.next().write_sequence_of(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_i64(*cert_req_id);
                            status_info(w.next(), status);
                            if let Some(cert) = cert {
                                w.next().write_sequence(|w| {
                                    w.next()
                                        .write_tagged(Tag::context(0), |w| w.write_der(cert));
                                });
                            }
                        });
                    });
                });
            }),
            Reply::Rp(status) => w.write_tagged(Tag::context(12), |w| {
                w.write_sequence(|w| {
                    w.next()
                        .write_sequence_of(|w| status_info(w.next(), status));
                });
            }),
            Reply::Genp(items) => w.write_tagged(Tag::context(22), |w| {
                w.write_sequence_of(|w| {
                    for (kind, value) in items {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(kind);
                            if let Some(value) = value {
                                w.next().write_der(value);
                            }
                        });
                    }
                });
            }),
            Reply::PkiConf => w.write_tagged(Tag::context(19), |w| w.write_null()),
            Reply::PollRep {
                cert_req_id,
                check_after,
            } => w.write_tagged(Tag::context(26), |w| {
                w.write_sequence_of(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_i64(*cert_req_id);
                        w.next().write_u64(*check_after);
                    });
                });
            }),
            Reply::Error(status) => w.write_tagged(Tag::context(23), |w| {
                w.write_sequence(|w| status_info(w.next(), status));
            }),
        });
        Ok(Self { header, body })
    }

    /// What the protection covers (`ProtectedPart`).
    pub fn protected_part(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&self.header);
                w.next().write_der(&self.body);
            });
        })
    }

    /// The `PKIMessage`, with `protection` (none: unprotected) and `extra_certs`.
    pub fn finish(&self, protection: Option<&[u8]>, extra_certs: &[&[u8]]) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&self.header);
                w.next().write_der(&self.body);
                if let Some(p) = protection {
                    w.next()
                        .write_tagged(Tag::context(0), |w| w.write_bitvec_bytes(p, p.len() * 8));
                }
                if !extra_certs.is_empty() {
                    w.next().write_tagged(Tag::context(1), |w| {
                        w.write_sequence_of(|w| {
                            for c in extra_certs {
                                w.next().write_der(c);
                            }
                        });
                    });
                }
            });
        })
    }
}

/// What `genp` answers are made of: the label's CA.
#[derive(Debug, Clone, Copy)]
pub struct CaInfo<'a> {
    /// Its chain, the issuing CA first, the root last.
    pub chain: &'a [&'a [u8]],
    /// Its current CRL, if it has one.
    pub crl: Option<&'a [u8]>,
    /// Its key type (the key a certificate request template suggests).
    pub key: KeyType,
}

const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const P384: &[u64] = &[1, 3, 132, 0, 34];
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const REG_CTRL_ALG_ID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 5, 1, 11];
const REG_CTRL_RSA_KEY_LEN: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 5, 1, 12];

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

fn ec_alg(w: DERWriter<'_>, curve: &[u64]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(EC_PUBLIC_KEY));
        w.next().write_oid(&oid(curve));
    });
}

/// The `genp` answer to `asked` (RFC 9483 §4.3): the CA certificates, no root CA update
/// (this CA has no root key rollover: the value is absent), a certificate request template
/// suggesting the CA's key type, the current CRL (for `crlStatusList` and `currentCRL`), the
/// key types this CA certifies; what it does not know is listed in `unsupportedOIDs`.
pub fn genp(asked: &[InfoType], ca: &CaInfo<'_>) -> Vec<GenpItem> {
    let mut out = Vec::new();
    let mut unsupported = Vec::new();
    for kind in asked {
        match kind {
            InfoType::CaCerts => out.push((
                id_it(17),
                Some(yasna::construct_der(|w| {
                    w.write_sequence_of(|w| {
                        for c in ca.chain {
                            w.next().write_der(c);
                        }
                    });
                })),
            )),
            InfoType::RootCaCert => out.push((id_it(18), None)),
            InfoType::CertReqTemplate => out.push((
                id_it(19),
                Some(yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        w.next().write_sequence(|_| {});
                        w.next().write_sequence_of(|w| {
                            w.next().write_sequence(|w| match ca.key {
                                KeyType::P256 | KeyType::P384 => {
                                    w.next().write_oid(&oid(REG_CTRL_ALG_ID));
                                    let curve = if ca.key == KeyType::P256 { P256 } else { P384 };
                                    ec_alg(w.next(), curve);
                                }
                                KeyType::Rsa3072 | KeyType::Rsa4096 => {
                                    w.next().write_oid(&oid(REG_CTRL_RSA_KEY_LEN));
                                    w.next().write_u32(3072);
                                }
                            });
                        });
                    });
                })),
            )),
            InfoType::CrlStatusList => out.push((
                id_it(23),
                ca.crl.map(|crl| {
                    yasna::construct_der(|w| w.write_sequence_of(|w| w.next().write_der(crl)))
                }),
            )),
            InfoType::CurrentCrl => out.push((id_it(6), ca.crl.map(<[u8]>::to_vec))),
            InfoType::SignKeyPairTypes => out.push((
                id_it(2),
                Some(yasna::construct_der(|w| {
                    w.write_sequence_of(|w| {
                        ec_alg(w.next(), P256);
                        ec_alg(w.next(), P384);
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(RSA_ENCRYPTION));
                            w.next().write_null();
                        });
                    });
                })),
            )),
            InfoType::Other(id) => unsupported.push(id.clone()),
        }
    }
    if !unsupported.is_empty() {
        out.push((
            id_it(7),
            Some(yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for id in &unsupported {
                        w.next().write_oid(id);
                    }
                });
            })),
        ));
    }
    out
}
