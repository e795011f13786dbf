//! Recovery codes (amr `otp`): ten one-time codes made at enrollment and shown once, for the
//! day the phone or token is lost. Each is 60 random bits as 12 base32 characters, written
//! `xxxx-xxxx-xxxx` (case, dashes and spaces ignored when typed); the record keeps only their
//! salted SHA-256 digests and which were used. A code is accepted once; a user has one set at
//! a time (remove it to make a new one).

use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::{oauth, otp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder, Presented, Verdict,
};
use crate::error::Error;

/// Codes in a set.
pub const CODES: usize = 10;
/// Random bytes per code (60 bits used: 12 base32 characters).
const CODE_BYTES: usize = 8;
/// Base32 characters per code.
const CODE_LEN: usize = 12;

/// The recovery-codes factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveryCodes;

#[derive(Serialize, Deserialize)]
struct State {
    /// Random, per set: each digest is SHA-256 of `<salt>:<code>`.
    salt: String,
    /// The codes' digests (base64url) and whether each was used.
    codes: Vec<(String, bool)>,
}

fn digest(salt: &str, code: &str) -> String {
    b64::encode(&oauth::token_digest(format!("{salt}:{code}").as_bytes()))
}

/// `typed` as a code is kept: 12 lowercase base32 characters, or nothing.
fn normalized(typed: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let base32 = |c: char| c.is_ascii_lowercase() || ('2'..='7').contains(&c);
    (code.len() == CODE_LEN && code.chars().all(base32)).then_some(code)
}

impl Factor for RecoveryCodes {
    fn kind(&self) -> FactorKind {
        FactorKind::RecoveryCodes
    }

    fn enroll(&self, params: &Map<String, Value>, _holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &[])?;
        let random = || {
            let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
            oauth::fill_random(bytes.as_mut_slice()).map_err(|_| Error::Internal {
                what: "random generator",
            })?;
            Ok::<_, Error>(bytes)
        };
        let salt = b64::encode(random()?.as_slice());
        let mut shown = Vec::with_capacity(CODES);
        let mut codes = Vec::with_capacity(CODES);
        for _ in 0..CODES {
            let b32 = otp::base32_encode(random()?.as_slice());
            let code: Zeroizing<String> = Zeroizing::new(
                b32.chars()
                    .take(CODE_LEN)
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
            );
            codes.push((digest(&salt, &code), false));
            let grouped: Vec<String> = code
                .as_bytes()
                .chunks(4)
                .map(|g| String::from_utf8_lossy(g).into_owned())
                .collect();
            shown.push(grouped.join("-"));
        }
        let state = write_state(&State { salt, codes })?;
        let mut answer = Map::new();
        answer.insert("codes".into(), json!(shown));
        Ok(Enrolled {
            state,
            shown: answer,
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

impl RecoveryCodes {
    /// Checks a typed code against `state`: the state to keep when it is accepted.
    pub fn check(
        state: &str,
        presented: &str,
        _now: u64,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        let Some(code) = normalized(presented) else {
            return Ok(None);
        };
        let mut st: State = read_state(state)?;
        let presented = digest(&st.salt, &code);
        // Every unused code is compared, in constant time.
        let mut found = None;
        for (i, (stored, used)) in st.codes.iter().enumerate() {
            let same = oauth::constant_time_eq(stored.as_bytes(), presented.as_bytes());
            if same && !used && found.is_none() {
                found = Some(i);
            }
        }
        let Some(slot) = found.and_then(|i| st.codes.get_mut(i)) else {
            return Ok(None);
        };
        slot.1 = true;
        write_state(&st).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_codes_each_sign_in_once() {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "alice",
            tenant: "default",
            ceremony: None,
        };
        let enrolled = RecoveryCodes.enroll(&Map::new(), &holder).unwrap();
        let codes: Vec<String> = enrolled.shown["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 14 && c.matches('-').count() == 2),
            "{codes:?}"
        );
        assert!(
            !enrolled.state.contains(&codes[0].replace('-', "")),
            "stored hashed"
        );
        // Typed in capitals without dashes: accepted once.
        let typed = codes[3].replace('-', "").to_uppercase();
        let state = RecoveryCodes::check(&enrolled.state, &typed, 0)
            .unwrap()
            .unwrap();
        assert!(
            RecoveryCodes::check(&state, &codes[3], 0)
                .unwrap()
                .is_none(),
            "used"
        );
        assert!(RecoveryCodes::check(&state, &codes[4], 0)
            .unwrap()
            .is_some());
        assert!(RecoveryCodes::check(&state, "aaaa-aaaa-aaaa", 0)
            .unwrap()
            .is_none());
        assert!(RecoveryCodes::check(&state, "123456", 0).unwrap().is_none());
        assert!(RecoveryCodes
            .enroll(json!({"count": 5}).as_object().unwrap(), &holder)
            .is_err());
    }
}
