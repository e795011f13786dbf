//! Revocation: RFC 5280 reason codes by their ASN.1 names, full CRLs (RFC 5280 §5) with a
//! CRL number and the issuer's AKI, and delta CRLs (§5.2.4: a critical delta CRL indicator
//! naming the complete CRL they update, `removeFromCRL` for released holds), which rcgen has
//! no type for and are built here with yasna. No issuing distribution point: a full CRL covers
//! everything its CA issued, and OpenSSL refuses a CRL with one for a certificate without a
//! distribution point (the root itself, under `-crl_check_all`: "different CRL scope").

use std::time::{Duration, SystemTime};

use rcgen::RevocationReason;

use super::{CaError, Error, IssuingCa};
use crate::pki::{cert_err, to_time as time, unix};

/// Why a certificate was revoked (RFC 5280 §5.3.1), named as the ASN.1 module names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// `unspecified` (the CRL entry then carries no reason code, as RFC 5280 recommends).
    Unspecified,
    /// `keyCompromise`.
    KeyCompromise,
    /// `cACompromise`.
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// `affiliationChanged`.
    AffiliationChanged,
    /// `superseded`.
    Superseded,
    /// `cessationOfOperation`.
    CessationOfOperation,
    /// `certificateHold`: the only reversible one (released by the CA).
    CertificateHold,
    /// `privilegeWithdrawn`.
    PrivilegeWithdrawn,
    /// `aACompromise`.
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl Reason {
    /// Every reason a caller may give, by name.
    pub const NAMES: [&'static str; 9] = [
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    ];

    /// The reason named `name` (its ASN.1 name), or a refusal naming `reason`.
    pub fn parse(name: &str) -> Result<Self, CaError> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
            CaError::new(
                "reason",
                format!(
                    "unknown revocation reason (one of {})",
                    Self::NAMES.join(", ")
                ),
            )
        })
    }

    /// The reason of CRLReason `code` a certificate's subscriber may give (RFC 5280 §5.3.1;
    /// 7 is unused, `removeFromCRL` (8) is no revocation, and a hold (6) or an authority's
    /// compromise (2, 10) is the CA's to declare).
    pub fn subscriber(code: u64) -> Option<Self> {
        Some(match code {
            0 => Reason::Unspecified,
            1 => Reason::KeyCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            9 => Reason::PrivilegeWithdrawn,
            _ => return None,
        })
    }

    /// Its ASN.1 name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    /// Its `CRLReason` code.
    pub fn code(self) -> u8 {
        self.rcgen().map_or(0, |r| r as u8)
    }

    fn rcgen(self) -> Option<RevocationReason> {
        Some(match self {
            Reason::Unspecified => return None,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::CertificateHold => RevocationReason::CertificateHold,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            Reason::AaCompromise => RevocationReason::AaCompromise,
        })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Its serial number (big-endian, positive).
    pub serial: Vec<u8>,
    /// When the CA revoked it (Unix seconds).
    pub time: u64,
    /// Why.
    pub reason: Reason,
}

/// What a CRL says besides its entries.
#[derive(Debug, Clone)]
pub struct CrlSpec {
    /// The CRL number: it must grow with every CRL the CA signs (RFC 5280 §5.2.3).
    pub number: u64,
    /// `thisUpdate`.
    pub this_update: SystemTime,
    /// `nextUpdate` is this long after `thisUpdate`.
    pub lifetime: Duration,
    /// Where the CA's delta CRL is (a complete CRL's freshest CRL extension), if published.
    pub delta_url: Option<String>,
}

/// A full CRL (DER) of `revoked`, signed by `ca`.
pub fn crl(ca: &IssuingCa<'_>, spec: &CrlSpec, revoked: &[Revoked]) -> Result<Vec<u8>, Error> {
    super::Signer::new(ca)?.crl(spec, revoked)
}

/// A full CRL (DER) of `revoked`, signed by `signer`: built here like the delta CRLs, so both
/// carry the same AKI (the CA's subject key identifier), and it names its delta CRL's location
/// (freshest CRL) when the CA publishes one, which is what lets relying parties use deltas.
pub(super) fn sign(
    signer: &super::Signer,
    spec: &CrlSpec,
    revoked: &[Revoked],
) -> Result<Vec<u8>, Error> {
    let changes: Vec<Change> = revoked
        .iter()
        .map(|r| Change {
            serial: r.serial.clone(),
            time: r.time,
            reason: Some(r.reason),
        })
        .collect();
    sign_list(signer, spec, &changes, None)
}

/// One change a delta CRL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The certificate's serial (big-endian, positive).
    pub serial: Vec<u8>,
    /// When it changed (Unix seconds).
    pub time: u64,
    /// Revoked (or held) for this reason; none: released from hold (`removeFromCRL`).
    pub reason: Option<Reason>,
}

const ID_CE_CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
const ID_CE_DELTA_CRL_INDICATOR: &[u64] = &[2, 5, 29, 27];
const ID_CE_AUTHORITY_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 35];
const ID_CE_CRL_REASONS: &[u64] = &[2, 5, 29, 21];
const ID_CE_FRESHEST_CRL: &[u64] = &[2, 5, 29, 46];
/// `removeFromCRL`.
const REMOVE_FROM_CRL: i64 = 8;

fn oid(arcs: &[u64]) -> yasna::models::ObjectIdentifier {
    yasna::models::ObjectIdentifier::from_slice(arcs)
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4).
fn write_time(w: yasna::DERWriter<'_>, secs: u64) -> Result<(), Error> {
    let at = time(secs)?;
    if at.year() < 2050 {
        w.write_utctime(&yasna::models::UTCTime::from_datetime(at));
    } else {
        w.write_generalized_time(&yasna::models::GeneralizedTime::from_datetime(at));
    }
    Ok(())
}

pub(super) fn write_alg(w: yasna::DERWriter<'_>, key_type: super::KeyType) {
    use super::KeyType;
    w.write_sequence(|w| match key_type {
        KeyType::P256 => w.next().write_oid(&oid(&[1, 2, 840, 10045, 4, 3, 2])),
        KeyType::P384 => w.next().write_oid(&oid(&[1, 2, 840, 10045, 4, 3, 3])),
        KeyType::Rsa3072 | KeyType::Rsa4096 => {
            w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 1, 11]));
            w.next().write_null();
        }
    });
}

/// A delta CRL (DER) of `changes` since complete CRL `base`, signed by `signer`.
pub(super) fn sign_delta(
    signer: &super::Signer,
    spec: &CrlSpec,
    base: u64,
    changes: &[Change],
) -> Result<Vec<u8>, Error> {
    if base >= spec.number {
        return Err(Error::Refused(CaError::new(
            "crl",
            "a delta CRL is numbered after its base",
        )));
    }
    sign_list(signer, spec, changes, Some(base))
}

/// A CRL of `changes` (a complete one, or a delta of complete CRL `delta_of`).
fn sign_list(
    signer: &super::Signer,
    spec: &CrlSpec,
    changes: &[Change],
    delta_of: Option<u64>,
) -> Result<Vec<u8>, Error> {
    use rcgen::SigningKey as _;
    if spec.lifetime.is_zero() {
        return Err(Error::Refused(CaError::new(
            "crl_lifetime",
            "must be more than zero",
        )));
    }
    let this_update = unix(spec.this_update);
    let next_update = this_update.saturating_add(spec.lifetime.as_secs());
    let mut failed = None;
    let extension = |w: yasna::DERWriter<'_>, id: &[u64], critical: bool, value: Vec<u8>| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(id));
            if critical {
                w.next().write_bool(true);
            }
            w.next().write_bytes(&value);
        });
    };
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(1);
            write_alg(w.next(), signer.key_type);
            w.next().write_der(&signer.name_der);
            for t in [this_update, next_update] {
                if let Err(e) = write_time(w.next(), t) {
                    failed = Some(e);
                }
            }
            if !changes.is_empty() {
                w.next().write_sequence_of(|w| {
                    for c in changes {
                        w.next().write_sequence(|w| {
                            w.next().write_bigint_bytes(&c.serial, true);
                            if let Err(e) = write_time(w.next(), c.time) {
                                failed = Some(e);
                            }
                            let code = match c.reason {
                                None => Some(REMOVE_FROM_CRL),
                                Some(Reason::Unspecified) => None,
                                Some(r) => Some(i64::from(r.code())),
                            };
                            if let Some(code) = code {
                                w.next().write_sequence_of(|w| {
                                    let value = yasna::construct_der(|w| w.write_enum(code));
                                    extension(w.next(), ID_CE_CRL_REASONS, false, value);
                                });
                            }
                        });
                    }
                });
            }
            w.next().write_tagged(yasna::Tag::context(0), |w| {
                w.write_sequence_of(|w| {
                    let aki = yasna::construct_der(|w| {
                        w.write_sequence(|w| {
                            w.next().write_tagged_implicit(yasna::Tag::context(0), |w| {
                                w.write_bytes(&signer.ski);
                            });
                        });
                    });
                    extension(w.next(), ID_CE_AUTHORITY_KEY_IDENTIFIER, false, aki);
                    let number = yasna::construct_der(|w| w.write_u64(spec.number));
                    extension(w.next(), ID_CE_CRL_NUMBER, false, number);
                    if let Some(base) = delta_of {
                        let base = yasna::construct_der(|w| w.write_u64(base));
                        extension(w.next(), ID_CE_DELTA_CRL_INDICATOR, true, base);
                    } else if let Some(url) = &spec.delta_url {
                        // FreshestCRL ::= CRLDistributionPoints: one point, one URI.
                        let value = yasna::construct_der(|w| {
                            w.write_sequence(|w| {
                                w.next().write_sequence(|w| {
                                    w.next().write_tagged(yasna::Tag::context(0), |w| {
                                        w.write_tagged_implicit(yasna::Tag::context(0), |w| {
                                            w.write_sequence(|w| {
                                                w.next().write_tagged_implicit(
                                                    yasna::Tag::context(6),
                                                    |w| w.write_ia5_string(url),
                                                );
                                            });
                                        });
                                    });
                                });
                            });
                        });
                        extension(w.next(), ID_CE_FRESHEST_CRL, false, value);
                    }
                });
            });
        });
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let signature = signer
        .issuer
        .key()
        .sign(&tbs)
        .map_err(cert_err("CRL signature"))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            write_alg(w.next(), signer.key_type);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        });
    }))
}
