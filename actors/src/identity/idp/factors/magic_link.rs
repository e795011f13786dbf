//! Magic links (amr `otp`): a sign-in link mailed to the address the record holds, in place
//! of the password. A challenge makes the link's secret (256 random bits; the record keeps
//! only its SHA-256) bound to the browser that asked (the SHA-256 of a cookie it was given)
//! and to the pending authorization request, valid for [`LINK_TTL`] seconds; the record holds
//! [`PENDING`] links at once (a full record drops the asking browser's own oldest link first,
//! else the oldest of all: one other browser asking again and again never pushes out the
//! link the user waits for; [`PENDING`] other browsers within its time, rationed per
//! address, do). A link opened in the browser that asked is spent, whatever follows; one
//! opened elsewhere is refused and audited but stays for its own browser (its secret alone
//! opens nothing); an expired one is dropped.
//!
//! An address is held by one record of a tenant (the lookup index): the login page's "email
//! me a link" finds the user by it.

use cryptoutil_protocols::{mail, oauth};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    only_params, read_state, write_state, Challenge, Enrolled, Factor, FactorKind, Holder,
    Presented, Verdict,
};
use crate::error::Error;

/// How long a link signs in (the ceiling is 10 minutes).
pub const LINK_TTL: u64 = 600;
/// Links a record holds at once.
pub const PENDING: usize = 3;

/// The magic-link factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct MagicLink;

/// A magic-link record's state.
#[derive(Serialize, Deserialize)]
struct State {
    tenant: String,
    /// The address, lowercase.
    address: String,
    /// The links sent last, oldest first, until each is opened or expires.
    #[serde(default)]
    pending: Vec<Pending>,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    /// SHA-256 of the secret, base64url.
    secret: String,
    /// SHA-256 of the asking browser's cookie, base64url.
    bind: String,
    /// The pending authorization request.
    challenge: String,
    /// Unix seconds.
    expires: u64,
}

/// What a challenge is asked with, and what opening the link presents.
#[derive(Deserialize)]
struct Asked {
    bind: Zeroizing<String>,
    challenge: String,
    #[serde(default)]
    secret: Option<Zeroizing<String>>,
}

fn digest(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(oauth::token_digest(text.as_bytes()))
}

fn eq(a: &str, b: &str) -> bool {
    oauth::constant_time_eq(a.as_bytes(), b.as_bytes())
}

impl Factor for MagicLink {
    fn kind(&self) -> FactorKind {
        FactorKind::MagicLink
    }

    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["address"])?;
        let address = params
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| mail::address(a).ok())
            .ok_or(Error::BadRequest {
                reason: "address: an email address (local@domain)",
            })?;
        let mut shown = Map::new();
        shown.insert("address".into(), json!(address));
        Ok(Enrolled {
            state: write_state(&State {
                tenant: holder.tenant.to_owned(),
                address,
                pending: Vec::new(),
            })?,
            shown,
        })
    }

    fn challenge(
        &self,
        state: &str,
        request: &Value,
        now: u64,
    ) -> Result<Option<Challenge>, Error> {
        let mut st: State = read_state(state)?;
        let asked: Asked =
            serde_json::from_value(request.clone()).map_err(|_| Error::Internal {
                what: "a magic link's request",
            })?;
        let secret = oauth::random_token(32).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        st.pending.retain(|p| p.expires > now);
        let bind = digest(&asked.bind);
        // Full: this browser's oldest link goes first, else the oldest of all.
        if st.pending.len() >= PENDING {
            let at = st
                .pending
                .iter()
                .position(|p| eq(&p.bind, &bind))
                .unwrap_or(0);
            if at < st.pending.len() {
                st.pending.remove(at);
            }
        }
        st.pending.push(Pending {
            secret: digest(&secret),
            bind,
            challenge: asked.challenge,
            expires: now.saturating_add(LINK_TTL),
        });
        Ok(Some(Challenge {
            keep: write_state(&st)?,
            secret,
            to: st.address.clone(),
        }))
    }

    fn verify(&self, state: &str, presented: &Presented<'_>, now: u64) -> Result<Verdict, Error> {
        let mut st: State = read_state(state)?;
        let Ok(opened) = serde_json::from_str::<Asked>(presented.input) else {
            return Ok(Verdict::Reject);
        };
        let Some(secret) = opened.secret else {
            return Ok(Verdict::Reject);
        };
        let presented = digest(&secret);
        let Some(at) = st.pending.iter().position(|p| eq(&p.secret, &presented)) else {
            return Ok(Verdict::Reject);
        };
        let pending = st.pending.remove(at);
        if pending.expires <= now {
            return Ok(Verdict::Refuse {
                keep: Some(write_state(&st)?),
                why: "a magic link opened after it expired",
            });
        }
        if !eq(&pending.bind, &digest(&opened.bind)) {
            // Not spent: it stays for the browser that asked.
            return Ok(Verdict::Refuse {
                keep: None,
                why: "a magic link opened in another browser than the one that asked",
            });
        }
        let keep = write_state(&st)?;
        if pending.challenge != opened.challenge {
            return Ok(Verdict::Refuse {
                keep: Some(keep),
                why: "a magic link opened for another sign-in",
            });
        }
        Ok(Verdict::Accept {
            keep,
            amr: "otp",
            verified_user: false,
        })
    }

    fn lookup(&self, state: &str) -> Option<Vec<u8>> {
        read_state::<State>(state)
            .ok()
            .map(|st| lookup_key(&st.tenant, &st.address))
    }
}

/// The index key that finds `address`'s record in `tenant`.
pub fn lookup_key(tenant: &str, address: &str) -> Vec<u8> {
    format!("{tenant}/{address}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolled() -> Zeroizing<String> {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "alice",
            tenant: "default",
            ceremony: None,
        };
        let e = MagicLink
            .enroll(
                json!({"address": "Alice@Example.com"}).as_object().unwrap(),
                &holder,
            )
            .unwrap();
        assert_eq!(e.shown["address"], "alice@example.com");
        assert_eq!(
            MagicLink.lookup(&e.state).unwrap(),
            b"default/alice@example.com".to_vec()
        );
        e.state
    }

    fn open(state: &str, secret: &str, bind: &str, challenge: &str, now: u64) -> Verdict {
        let input = json!({"secret": secret, "bind": bind, "challenge": challenge}).to_string();
        let presented = Presented {
            input: &input,
            ceremony: None,
        };
        MagicLink.verify(state, &presented, now).unwrap()
    }

    fn ask(state: &str, now: u64) -> Challenge {
        MagicLink
            .challenge(state, &json!({"bind": "cookie", "challenge": "req"}), now)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_link_signs_in_once_in_the_browser_that_asked_within_its_time() {
        let state = enrolled();
        let sent = ask(&state, 1000);
        assert_eq!(sent.to, "alice@example.com");
        assert!(
            !sent.keep.contains(sent.secret.as_str()),
            "only its digest is kept"
        );
        // Before: nothing pending, nothing opens.
        assert!(matches!(
            open(&state, &sent.secret, "cookie", "req", 1001),
            Verdict::Reject
        ));
        let Verdict::Accept { keep, amr, .. } =
            open(&sent.keep, &sent.secret, "cookie", "req", 1001)
        else {
            panic!("accepted")
        };
        assert_eq!(amr, "otp");
        assert!(matches!(
            open(&keep, &sent.secret, "cookie", "req", 1002),
            Verdict::Reject
        ));
        // Another request, too late: refused, and spent.
        for (challenge, now) in [("other", 1001), ("req", 1000 + LINK_TTL)] {
            let sent = ask(&state, 1000);
            let Verdict::Refuse {
                keep: Some(keep), ..
            } = open(&sent.keep, &sent.secret, "cookie", challenge, now)
            else {
                panic!("refused")
            };
            assert!(matches!(
                open(&keep, &sent.secret, "cookie", "req", 1001),
                Verdict::Reject
            ));
        }
        // Another browser: refused, and not spent: the browser that asked still signs in.
        let sent = ask(&state, 1000);
        assert!(matches!(
            open(&sent.keep, &sent.secret, "other", "req", 1001),
            Verdict::Refuse { keep: None, .. }
        ));
        assert!(matches!(
            open(&sent.keep, &sent.secret, "cookie", "req", 1001),
            Verdict::Accept { .. }
        ));
        // Links of several requests stand side by side, the last PENDING of them; a wrong
        // secret opens nothing.
        let mut sent = vec![ask(&state, 1000)];
        for _ in 0..PENDING {
            let next = ask(&sent.last().unwrap().keep, 1000);
            sent.push(next);
        }
        let last = &sent.last().unwrap().keep;
        assert!(matches!(
            open(last, &sent[0].secret, "cookie", "req", 1001),
            Verdict::Reject
        ));
        assert!(matches!(
            open(last, "garbage", "cookie", "req", 1001),
            Verdict::Reject
        ));
        for older in &sent[1..] {
            assert!(matches!(
                open(last, &older.secret, "cookie", "req", 1001),
                Verdict::Accept { .. }
            ));
        }
        // One other browser asking again and again does not push out this browser's link.
        let mine = ask(&state, 1000);
        let mut keep = mine.keep.clone();
        for _ in 0..5 {
            keep = MagicLink
                .challenge(&keep, &json!({"bind": "other", "challenge": "req"}), 1000)
                .unwrap()
                .unwrap()
                .keep;
        }
        assert!(matches!(
            open(&keep, &mine.secret, "cookie", "req", 1001),
            Verdict::Accept { .. }
        ));
    }

    #[test]
    fn only_an_address_enrolls() {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "alice",
            tenant: "default",
            ceremony: None,
        };
        for bad in [
            json!({}),
            json!({"address": "alice"}),
            json!({"address": "a@b.c", "x": 1}),
        ] {
            assert!(
                MagicLink.enroll(bad.as_object().unwrap(), &holder).is_err(),
                "{bad}"
            );
        }
    }
}
