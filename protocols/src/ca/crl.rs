//! Revocation: RFC 5280 reason codes by their ASN.1 names, and full CRLs (RFC 5280 §5) with a
//! CRL number and the issuer's AKI. No issuing distribution point: a full CRL covers
//! everything its CA issued, and OpenSSL refuses a CRL with one for a certificate without a
//! distribution point (the root itself, under `-crl_check_all`: "different CRL scope").

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};

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
}

/// A full CRL (DER) of `revoked`, signed by `ca`.
pub fn crl(ca: &IssuingCa<'_>, spec: &CrlSpec, revoked: &[Revoked]) -> Result<Vec<u8>, Error> {
    super::Signer::new(ca)?.crl(spec, revoked)
}

/// A full CRL (DER) of `revoked`, signed by `issuer`.
pub(super) fn sign(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    spec: &CrlSpec,
    revoked: &[Revoked],
) -> Result<Vec<u8>, Error> {
    if spec.lifetime.is_zero() {
        return Err(Error::Refused(CaError::new(
            "crl_lifetime",
            "must be more than zero",
        )));
    }
    let this_update = unix(spec.this_update);
    let params = CertificateRevocationListParams {
        this_update: time(this_update)?,
        next_update: time(this_update.saturating_add(spec.lifetime.as_secs()))?,
        crl_number: SerialNumber::from(spec.number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: time(r.time)?,
                    reason_code: r.reason.rcgen(),
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, Error>>()?,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(cert_err("CRL"))?;
    Ok(crl.der().to_vec())
}
