//! Yubico OTP (amr `otp`), validated here rather than by a validation server: an operator or
//! the user imports what the token was programmed with (its public id, private id and
//! AES-128 key, as `ykman otp yubiotp` or the personalization tool print them); at sign-in
//! the OTP the token types is decrypted with the key, its CRC and private id checked, and its
//! counters (usage, then session) must pass those of the last OTP accepted, so an OTP is
//! accepted once and an older one never.
//!
//! A token (its public id, private id and key together) is held by one record only (the
//! lookup index, on their SHA-256): one token enrolled for two users would let an OTP spent by
//! one be replayed against the other. The public id alone is not the key: it is in every OTP
//! the token types, and whoever saw one must not be able to claim it first.

use cryptoutil_protocols::yubico::{self, Otp, YubicoKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder, Presented, Verdict,
};
use crate::error::Error;

/// The Yubico OTP factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct YubicoOtp;

/// A Yubico OTP record's state.
#[derive(Serialize, Deserialize)]
struct State {
    /// The token's public id, lowercase modhex.
    public_id: String,
    /// Its private id, hex.
    private_id: Zeroizing<String>,
    /// Its AES-128 key, hex.
    aes_key: Zeroizing<String>,
    /// The position ([`yubico::Token::position`]) of the last OTP accepted.
    last: Option<u32>,
}

fn param<'a>(
    params: &'a Map<String, Value>,
    name: &str,
    refusal: &'static str,
) -> Result<&'a str, Error> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or(Error::BadRequest { reason: refusal })
}

fn bad(e: yubico::YubicoError) -> Error {
    Error::BadRequest {
        reason: match e {
            yubico::YubicoError::PublicId => {
                "public_id: 2 to 32 modhex characters (cbdefghijklnrtuv), an even number"
            }
            yubico::YubicoError::PrivateId => "private_id: 12 hex digits",
            yubico::YubicoError::Key => "aes_key: 32 hex digits",
            yubico::YubicoError::Format => {
                "otp: what the token typed (its public id and 32 modhex characters)"
            }
            yubico::YubicoError::Crc => "otp: not an OTP of this key and private id",
        },
    }
}

fn corrupt() -> Error {
    Error::Corrupt {
        table: "identity_factors_v1",
        key: "(factor state)".into(),
        what: "Yubico OTP key",
    }
}

/// What `presented` proves against `st`: the position of an OTP of this record's token, or
/// `None` when it is not one (another token's, a typo, not an OTP at all).
fn open(st: &State, presented: &str) -> Result<Option<u32>, Error> {
    let Ok(otp) = Otp::parse(presented) else {
        return Ok(None);
    };
    if otp.public_id != st.public_id {
        return Ok(None);
    }
    let key = YubicoKey::from_hex(&st.aes_key).map_err(|_| corrupt())?;
    let private_id = yubico::private_id(&st.private_id).map_err(|_| corrupt())?;
    let Ok(token) = key.open(&otp) else {
        return Ok(None);
    };
    if !cryptoutil_protocols::oauth::constant_time_eq(&token.private_id, &private_id) {
        return Ok(None);
    }
    Ok(Some(token.position()))
}

impl Factor for YubicoOtp {
    fn kind(&self) -> FactorKind {
        FactorKind::YubicoOtp
    }

    fn enroll(&self, params: &Map<String, Value>, _holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["public_id", "private_id", "aes_key", "otp"])?;
        let public_id = yubico::public_id(param(
            params,
            "public_id",
            "public_id: the token's, in modhex",
        )?)
        .map_err(bad)?;
        let private_id =
            yubico::private_id(param(params, "private_id", "private_id: 12 hex digits")?)
                .map_err(bad)?;
        let aes_key = Zeroizing::new(
            param(params, "aes_key", "aes_key: 32 hex digits")?
                .trim()
                .to_ascii_lowercase(),
        );
        YubicoKey::from_hex(&aes_key).map_err(bad)?;
        let mut st = State {
            public_id,
            private_id: Zeroizing::new(cryptoutil_protocols::hex(&private_id)),
            aes_key,
            last: None,
        };
        // An OTP typed at enrollment proves the import matches the token and spends every
        // OTP the token typed before it.
        if let Some(typed) = params.get("otp").filter(|v| !v.is_null()) {
            let typed = typed.as_str().ok_or(Error::BadRequest {
                reason: "otp: what the token typed",
            })?;
            let otp = Otp::parse(typed).map_err(bad)?;
            if otp.public_id != st.public_id {
                return Err(Error::BadRequest {
                    reason: "otp: typed by a token with another public id",
                });
            }
            st.last = Some(open(&st, typed)?.ok_or(bad(yubico::YubicoError::Crc))?);
        }
        let mut shown = Map::new();
        shown.insert("public_id".into(), json!(st.public_id));
        Ok(Enrolled {
            state: write_state(&st)?,
            shown,
        })
    }

    fn verify(&self, state: &str, presented: &Presented<'_>, _now: u64) -> Result<Verdict, Error> {
        let mut st: State = read_state(state)?;
        let Some(position) = open(&st, presented.input)? else {
            return Ok(Verdict::Reject);
        };
        if st.last.is_some_and(|last| position <= last) {
            return Ok(Verdict::Refuse {
                keep: None,
                why: "a Yubico OTP whose counters did not grow (replayed, or older than one used)",
            });
        }
        st.last = Some(position);
        Ok(super::code_verdict(Some(write_state(&st)?)))
    }

    fn lookup(&self, state: &str) -> Option<Vec<u8>> {
        read_state::<State>(state).ok().map(|st| {
            let token = Zeroizing::new(format!(
                "{}/{}/{}",
                st.public_id,
                st.private_id.as_str(),
                st.aes_key.as_str()
            ));
            cryptoutil_protocols::oauth::token_digest(token.as_bytes()).to_vec()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoutil_protocols::yubico::Token;

    const KEY: &str = "c4422890653076cde73d449b191b416a";
    const PRIVATE: [u8; 6] = [0x33, 0xc6, 0x9e, 0x7f, 0x24, 0x9e];

    fn otp(usage: u16, session: u8) -> String {
        let token = Token {
            private_id: PRIVATE,
            usage,
            timestamp: 0x1234,
            session,
            random: 7,
        };
        YubicoKey::from_hex(KEY)
            .unwrap()
            .seal("vvcccjgjgkhc", &token)
            .unwrap()
    }

    fn verify(state: &str, input: &str) -> Verdict {
        let presented = Presented {
            input,
            ceremony: None,
        };
        YubicoOtp.verify(state, &presented, 0).unwrap()
    }

    fn kept(v: Verdict) -> Zeroizing<String> {
        match v {
            Verdict::Accept { keep, amr, .. } => {
                assert_eq!(amr, "otp");
                keep
            }
            _ => panic!("not accepted"),
        }
    }

    fn enroll(extra: Value) -> Result<Enrolled, Error> {
        let mut params = json!({
            "public_id": "VVCCCJGJGKHC",
            "private_id": "33c69e7f249e",
            "aes_key": KEY,
        });
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let holder = Holder {
            issuer: "cryptoutil",
            account: "bob",
            tenant: "default",
            ceremony: None,
        };
        YubicoOtp.enroll(params.as_object().unwrap(), &holder)
    }

    #[test]
    fn otps_count_once_and_only_forward() {
        let enrolled = enroll(json!({})).unwrap();
        assert_eq!(enrolled.shown["public_id"], "vvcccjgjgkhc");
        assert!(enrolled.shown.get("aes_key").is_none());
        // The index names the token by its secrets, not by its public id alone.
        let lookup = YubicoOtp.lookup(&enrolled.state).unwrap();
        assert_eq!(lookup.len(), 32);
        let other = enroll(json!({"aes_key": "000102030405060708090a0b0c0d0e0f"})).unwrap();
        assert_ne!(YubicoOtp.lookup(&other.state).unwrap(), lookup);
        let state = kept(verify(&enrolled.state, &otp(5, 3)));
        // Replayed, older in the session, older usage: refused.
        for old in [otp(5, 3), otp(5, 2), otp(4, 200)] {
            assert!(matches!(verify(&state, &old), Verdict::Refuse { .. }));
        }
        // Later in the session, a new power-up (the flag bit ignored): accepted.
        let state = kept(verify(&state, &otp(5, 4)));
        let state = kept(verify(&state, &otp(0x8006, 0)));
        assert!(matches!(verify(&state, &otp(6, 0)), Verdict::Refuse { .. }));
        // Another token's public id, another key, a typo, a TOTP code: not this record's.
        let other_id = otp(9, 0).replacen("vv", "cc", 1);
        let other_key = YubicoKey::from_hex("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .seal(
                "vvcccjgjgkhc",
                &Token {
                    private_id: PRIVATE,
                    usage: 9,
                    timestamp: 0,
                    session: 0,
                    random: 0,
                },
            )
            .unwrap();
        let mut typo = otp(9, 0);
        typo.pop();
        typo.push('c');
        for wrong in [other_id, other_key, typo, "123456".to_owned()] {
            assert!(matches!(verify(&state, &wrong), Verdict::Reject), "{wrong}");
        }
        // Another private id under the same key.
        let forged = YubicoKey::from_hex(KEY)
            .unwrap()
            .seal(
                "vvcccjgjgkhc",
                &Token {
                    private_id: [0; 6],
                    usage: 9,
                    timestamp: 0,
                    session: 0,
                    random: 0,
                },
            )
            .unwrap();
        assert!(matches!(verify(&state, &forged), Verdict::Reject));
    }

    #[test]
    fn an_otp_at_enrollment_proves_the_import_and_spends_what_came_before() {
        let enrolled = enroll(json!({"otp": otp(3, 1)})).unwrap();
        assert!(matches!(
            verify(&enrolled.state, &otp(3, 1)),
            Verdict::Refuse { .. }
        ));
        kept(verify(&enrolled.state, &otp(3, 2)));
        for bad in [
            json!({"otp": otp(3, 1).replacen("vv", "cc", 1)}),
            json!({"otp": "cccccc"}),
            json!({"private_id": "000000000000", "otp": otp(3, 1)}),
            json!({"aes_key": "00"}),
            json!({"public_id": "abc"}),
            json!({"counter": 1}),
        ] {
            assert!(
                matches!(enroll(bad.clone()), Err(Error::BadRequest { .. })),
                "{bad}"
            );
        }
    }
}
