//! TOTP (RFC 6238, amr `otp`): a secret shared with an authenticator app through an
//! `otpauth://` URI shown once at enrollment; SHA-1 (what every app supports, the default),
//! SHA-256 or SHA-512, 6 to 8 digits, a 30-second step unless enrolled otherwise. A code is
//! accepted once: the step of the last code accepted is kept, and no code of that step or
//! an earlier one is accepted again.

use cryptoutil_protocols::oauth;
use cryptoutil_protocols::otp::{self, OtpAlg, OtpKey, OtpKind, TotpClock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    number_param, only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder,
    Presented, Verdict,
};
use crate::error::Error;

/// The TOTP factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totp;

/// Steps accepted either side of now.
const SKEW: u64 = 1;

/// A TOTP record's state.
#[derive(Serialize, Deserialize)]
struct State {
    alg: OtpAlg,
    digits: u8,
    period: u64,
    /// The secret, base32.
    secret: Zeroizing<String>,
    /// The time step of the last code accepted.
    last_step: Option<u64>,
}

/// The `algorithm` parameter (`SHA1` unless given).
pub(super) fn alg_param(params: &Map<String, Value>) -> Result<OtpAlg, Error> {
    match params.get("algorithm") {
        None | Some(Value::Null) => Ok(OtpAlg::Sha1),
        Some(v) => v.as_str().and_then(OtpAlg::parse).ok_or(Error::BadRequest {
            reason: "algorithm: SHA1, SHA256 or SHA512",
        }),
    }
}

/// A new OTP secret and what its enrollment shows once.
pub(super) struct NewOtp {
    /// The secret, base32 (as the state keeps it).
    pub(super) secret: Zeroizing<String>,
    /// `otpauth_uri`, `secret`, `algorithm`, `digits`, and `period` or `counter`.
    pub(super) shown: Map<String, Value>,
}

/// A new random secret of the length `alg` calls for, for codes of `kind` with `digits`
/// digits, and what the enrollment shows of it.
pub(super) fn new_otp(
    alg: OtpAlg,
    digits: u8,
    kind: OtpKind,
    holder: &Holder<'_>,
) -> Result<NewOtp, Error> {
    let mut secret = Zeroizing::new(vec![0u8; otp::secret_len(alg)]);
    oauth::fill_random(&mut secret).map_err(|_| Error::Internal {
        what: "random generator",
    })?;
    let key = OtpKey::new(alg, digits, &secret).map_err(|_| Error::Internal { what: "OTP key" })?;
    let uri = key.uri(kind, holder.issuer, holder.account);
    let b32 = otp::base32_encode(&secret);
    let (name, value) = match kind {
        OtpKind::Totp { period } => ("period", period),
        OtpKind::Hotp { counter } => ("counter", counter),
    };
    let mut shown = Map::new();
    shown.insert("otpauth_uri".into(), json!(uri.as_str()));
    shown.insert("secret".into(), json!(b32.as_str()));
    shown.insert("algorithm".into(), json!(alg.name()));
    shown.insert("digits".into(), json!(digits));
    shown.insert(name.into(), json!(value));
    Ok(NewOtp { secret: b32, shown })
}

/// The key of a stored secret.
pub(super) fn key_of(alg: OtpAlg, digits: u8, secret_b32: &str) -> Result<OtpKey, Error> {
    let secret = otp::base32_decode(secret_b32).map_err(|_| corrupt())?;
    OtpKey::new(alg, digits, &secret).map_err(|_| corrupt())
}

fn corrupt() -> Error {
    Error::Corrupt {
        table: "identity_factors_v1",
        key: "(factor state)".into(),
        what: "OTP secret",
    }
}

/// The `digits` parameter (6 unless given).
pub(super) fn digits_param(params: &Map<String, Value>) -> Result<u8, Error> {
    let digits = number_param(params, "digits", 6, 6..=8, "digits: 6 to 8")?;
    u8::try_from(digits).map_err(|_| Error::BadRequest {
        reason: "digits: 6 to 8",
    })
}

impl Factor for Totp {
    fn kind(&self) -> FactorKind {
        FactorKind::Totp
    }

    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["algorithm", "digits", "period"])?;
        let alg = alg_param(params)?;
        let digits = digits_param(params)?;
        let period = number_param(params, "period", 30, 15..=120, "period: 15 to 120 seconds")?;
        let new = new_otp(alg, digits, OtpKind::Totp { period }, holder)?;
        let state = write_state(&State {
            alg,
            digits,
            period,
            secret: new.secret,
            last_step: None,
        })?;
        Ok(Enrolled {
            state,
            shown: new.shown,
        })
    }

    fn verify(&self, state: &str, presented: &Presented<'_>, now: u64) -> Result<Verdict, Error> {
        Ok(super::code_verdict(Self::check(
            state,
            presented.input,
            now,
        )?))
    }
}

impl Totp {
    /// Checks a typed code against `state`: the state to keep when it is accepted.
    pub fn check(
        state: &str,
        presented: &str,
        now: u64,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        let mut st: State = read_state(state)?;
        let key = key_of(st.alg, st.digits, &st.secret)?;
        let clock = TotpClock {
            period: st.period,
            skew: SKEW,
        };
        match key.verify_totp(presented, now, clock, st.last_step) {
            None => Ok(None),
            Some(step) => {
                st.last_step = Some(step);
                write_state(&st).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolled_secret_signs_in_once_per_code() {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "alice",
            tenant: "default",
            ceremony: None,
        };
        let params = json!({"algorithm": "SHA256", "digits": 8});
        let enrolled = Totp.enroll(params.as_object().unwrap(), &holder).unwrap();
        let secret = enrolled.shown["secret"].as_str().unwrap();
        assert!(enrolled.shown["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/cryptoutil:alice?secret="));
        let key = key_of(OtpAlg::Sha256, 8, secret).unwrap();
        let now = 1_800_000_000;
        let code = key.totp(now, 30);
        let after = Totp::check(&enrolled.state, &code, now).unwrap().unwrap();
        assert!(
            Totp::check(&after, &code, now + 10).unwrap().is_none(),
            "replayed"
        );
        assert!(Totp::check(&enrolled.state, "00000000", now)
            .unwrap()
            .is_none());
        let next = key.totp(now + 30, 30);
        assert!(Totp::check(&after, &next, now + 30).unwrap().is_some());
    }

    #[test]
    fn enrollment_parameters_are_checked() {
        let holder = Holder {
            issuer: "i",
            account: "a",
            tenant: "default",
            ceremony: None,
        };
        for bad in [
            json!({"digits": 9}),
            json!({"algorithm": "MD5"}),
            json!({"period": 5}),
            json!({"perod": 30}),
        ] {
            assert!(matches!(
                Totp.enroll(bad.as_object().unwrap(), &holder),
                Err(Error::BadRequest { .. })
            ));
        }
    }
}
