//! HOTP (RFC 4226, amr `otp`): a counter shared with a token; a code is looked for from the
//! next unused counter up to [`LOOK_AHEAD`] ahead (presses that never reached us), and the
//! counter moves past the one found, so a code is accepted once. A token pressed further
//! ahead than that is resynchronised by two consecutive codes within [`RESYNC_WINDOW`]
//! (RFC 4226 §7.4): the sign-in page takes them as one entry, separated by a space.

use cryptoutil_protocols::otp::{OtpAlg, OtpKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::totp::{alg_param, digits_param, key_of, new_otp};
use super::{
    number_param, only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder,
    Presented, Verdict,
};
use crate::error::Error;

/// Counters looked at beyond the next one at sign-in.
pub const LOOK_AHEAD: u64 = 10;
/// Counters two consecutive codes are looked for in to resynchronise.
pub const RESYNC_WINDOW: u64 = 100;

/// The HOTP factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hotp;

#[derive(Serialize, Deserialize)]
struct State {
    alg: OtpAlg,
    digits: u8,
    /// The secret, base32.
    secret: Zeroizing<String>,
    /// The next counter not used.
    next: u64,
}

impl Factor for Hotp {
    fn kind(&self) -> FactorKind {
        FactorKind::Hotp
    }

    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["algorithm", "digits", "counter"])?;
        let alg = alg_param(params)?;
        let digits = digits_param(params)?;
        let counter = number_param(
            params,
            "counter",
            0,
            0..=u64::from(u32::MAX),
            "counter: 0 to 2^32-1",
        )?;
        let new = new_otp(alg, digits, OtpKind::Hotp { counter }, holder)?;
        let state = write_state(&State {
            alg,
            digits,
            secret: new.secret,
            next: counter,
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

impl Hotp {
    /// Checks a typed code against `state`: the state to keep when it is accepted.
    pub fn check(
        state: &str,
        presented: &str,
        _now: u64,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        let mut st: State = read_state(state)?;
        let key = key_of(st.alg, st.digits, &st.secret)?;
        let mut codes = presented.split_whitespace();
        let found = match (codes.next(), codes.next(), codes.next()) {
            (Some(code), None, None) => key.verify_hotp(code, st.next, LOOK_AHEAD),
            (Some(first), Some(second), None) => {
                key.resync_hotp(first, second, st.next, RESYNC_WINDOW)
            }
            _ => None,
        };
        match found {
            None => Ok(None),
            Some(counter) => {
                st.next = counter.saturating_add(1);
                write_state(&st).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_count_once_and_two_in_a_row_resynchronise() {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "bob",
            tenant: "default",
            ceremony: None,
        };
        let enrolled = Hotp
            .enroll(
                serde_json::json!({"counter": 5}).as_object().unwrap(),
                &holder,
            )
            .unwrap();
        let key = key_of(OtpAlg::Sha1, 6, enrolled.shown["secret"].as_str().unwrap()).unwrap();
        // Counter 7 (two presses lost): accepted, then counters up to 7 are spent.
        let state = Hotp::check(&enrolled.state, &key.hotp(7), 0)
            .unwrap()
            .unwrap();
        assert!(
            Hotp::check(&state, &key.hotp(7), 0).unwrap().is_none(),
            "replayed"
        );
        assert!(
            Hotp::check(&state, &key.hotp(6), 0).unwrap().is_none(),
            "older"
        );
        // Far ahead: one code is refused, two consecutive ones resynchronise.
        assert!(Hotp::check(&state, &key.hotp(60), 0).unwrap().is_none());
        let pair = format!("{} {}", key.hotp(60).as_str(), key.hotp(61).as_str());
        let state = Hotp::check(&state, &pair, 0).unwrap().unwrap();
        assert!(Hotp::check(&state, &key.hotp(61), 0).unwrap().is_none());
        assert!(Hotp::check(&state, &key.hotp(62), 0).unwrap().is_some());
    }
}
