//! The relying party's state as plain functions of itself and the clock: sign-ins under way
//! (state, PKCE verifier, nonce, the browser they belong to), live sessions (whose tokens stay
//! here and never reach the browser) and the logout tokens already used. Bounded and expiring.

use std::collections::HashMap;
use std::sync::Arc;

use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use zeroize::Zeroizing;

use crate::error::Error;

/// How long a browser has to come back from identity-authz.
pub const SIGN_IN_TTL: u64 = 600;
/// The longest a session lives, however often its tokens are refreshed.
pub const SESSION_TTL: u64 = 8 * 3600;
/// Most sign-ins under way, sessions and remembered logout tokens at once. Past it the older
/// half goes (never a refusal: a stranger filling the table must not lock everyone out).
pub const MAX_ENTRIES: usize = 100_000;
/// Most sessions of one user (`sub`) at once; a new one ends that user's oldest.
pub const MAX_SESSIONS_PER_USER: usize = 16;

/// A session's tokens: held by the relying party only, refreshed one caller at a time (the
/// lock keeps two requests of one session from spending the same refresh token, which
/// identity-authz would take for a stolen token and answer by revoking the family).
pub struct Tokens {
    /// The access token identity-rs is called with.
    pub access: Zeroizing<String>,
    /// Its `exp` as the token endpoint gave it (`expires_in` from then).
    pub access_exp: u64,
    /// The refresh token, replaced at every refresh (rotation).
    pub refresh: Option<Zeroizing<String>>,
    /// The ID token: the logout hint for identity-authz.
    pub id_token: String,
}

/// A sign-in under way.
struct Pending {
    verifier: Zeroizing<String>,
    nonce: String,
    binding: [u8; 32],
    expires: u64,
}

/// A live session.
struct Session {
    sub: String,
    sid: Option<String>,
    csrf: Zeroizing<String>,
    tokens: Arc<tokio::sync::Mutex<Tokens>>,
    expires: u64,
}

/// What a new sign-in sends to identity-authz and leaves in the browser.
pub struct SignIn {
    /// `state` (names the sign-in).
    pub state: String,
    /// `nonce` (the ID token must carry it).
    pub nonce: String,
    /// The PKCE S256 challenge.
    pub challenge: String,
    /// The binding cookie's value (ties the callback to this browser).
    pub binding: Zeroizing<String>,
}

/// What the callback needs to redeem the code.
pub struct Redeem {
    /// The PKCE verifier.
    pub verifier: Zeroizing<String>,
    /// The nonce the ID token must carry.
    pub nonce: String,
}

/// A session as a request sees it.
#[derive(Clone)]
pub struct SessionView {
    /// The user (`sub`).
    pub sub: String,
    /// The identity-authz session it came from (`sid`).
    pub sid: Option<String>,
    /// The CSRF token forms must carry.
    pub csrf: Zeroizing<String>,
    /// Its tokens.
    pub tokens: Arc<tokio::sync::Mutex<Tokens>>,
}

/// A new session, for the cookie.
pub struct Opened {
    /// The session cookie's value (only its digest is kept).
    pub cookie: Zeroizing<String>,
    /// Seconds the cookie lives.
    pub max_age: u64,
}

fn refused(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

/// Drops what expired by `now` from a full record and, if it is still full, its older half.
fn make_room<K: Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    until: impl Fn(&V) -> u64,
    now: u64,
) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| until(v) > now);
    }
    if map.len() >= MAX_ENTRIES {
        crate::bounded::forget_older_half(map, until);
    }
}

fn random(bytes: usize) -> Result<Zeroizing<String>, Error> {
    oauth::random_token(bytes).map_err(|_| Error::Internal {
        what: "random generator",
    })
}

/// The relying party's sign-ins, sessions and used logout tokens.
#[derive(Default)]
pub struct RpState {
    pending: HashMap<String, Pending>,
    sessions: HashMap<[u8; 32], Session>,
    logout_jtis: HashMap<String, u64>,
}

impl RpState {
    /// A new sign-in: fresh `state`, `nonce`, PKCE verifier and binding cookie.
    pub fn begin(&mut self, now: u64) -> Result<SignIn, Error> {
        make_room(&mut self.pending, |p| p.expires, now);
        let (state, verifier, nonce, binding) =
            (random(24)?, random(48)?, random(18)?, random(32)?);
        let challenge = b64::encode(&oauth::token_digest(verifier.as_bytes()));
        self.pending.insert(
            state.to_string(),
            Pending {
                verifier,
                nonce: nonce.to_string(),
                binding: oauth::token_digest(binding.as_bytes()),
                expires: now + SIGN_IN_TTL,
            },
        );
        Ok(SignIn {
            state: state.to_string(),
            nonce: nonce.to_string(),
            challenge,
            binding,
        })
    }

    /// The sign-in `state` names, if it is pending and belongs to the browser holding
    /// `binding`; consumed once bound, whatever follows.
    pub fn take(&mut self, state: &str, binding: Option<&str>, now: u64) -> Result<Redeem, Error> {
        let unknown = || refused("unknown or expired sign-in; start again");
        let pending = self
            .pending
            .get(state)
            .filter(|p| p.expires > now)
            .ok_or_else(unknown)?;
        let bound = binding.is_some_and(|b| {
            oauth::constant_time_eq(&oauth::token_digest(b.as_bytes()), &pending.binding)
        });
        if !bound {
            return Err(refused("this sign-in was started in another browser"));
        }
        let pending = self.pending.remove(state).ok_or_else(unknown)?;
        Ok(Redeem {
            verifier: pending.verifier,
            nonce: pending.nonce,
        })
    }

    /// A session for `sub` (identity-authz session `sid`) holding `tokens`.
    pub fn open(
        &mut self,
        sub: String,
        sid: Option<String>,
        tokens: Tokens,
        now: u64,
    ) -> Result<Opened, Error> {
        make_room(&mut self.sessions, |s| s.expires, now);
        let mut theirs: Vec<([u8; 32], u64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.sub == sub)
            .map(|(k, s)| (*k, s.expires))
            .collect();
        if theirs.len() >= MAX_SESSIONS_PER_USER {
            theirs.sort_unstable_by_key(|(_, expires)| *expires);
            for (k, _) in theirs.iter().take(theirs.len() + 1 - MAX_SESSIONS_PER_USER) {
                self.sessions.remove(k);
            }
        }
        let cookie = random(32)?;
        self.sessions.insert(
            oauth::token_digest(cookie.as_bytes()),
            Session {
                sub,
                sid,
                csrf: random(32)?,
                tokens: Arc::new(tokio::sync::Mutex::new(tokens)),
                expires: now + SESSION_TTL,
            },
        );
        Ok(Opened {
            cookie,
            max_age: SESSION_TTL,
        })
    }

    /// The live session a cookie names.
    pub fn lookup(&self, cookie: &str, now: u64) -> Option<SessionView> {
        self.sessions
            .get(&oauth::token_digest(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .map(|s| SessionView {
                sub: s.sub.clone(),
                sid: s.sid.clone(),
                csrf: s.csrf.clone(),
                tokens: Arc::clone(&s.tokens),
            })
    }

    /// Ends the session a cookie names; its tokens (the ID token is the logout hint).
    pub fn end(&mut self, cookie: &str) -> Option<Arc<tokio::sync::Mutex<Tokens>>> {
        self.sessions
            .remove(&oauth::token_digest(cookie.as_bytes()))
            .map(|s| s.tokens)
    }

    /// A verified logout token (OpenID Connect Back-Channel Logout 1.0 §2.6): unless its `jti`
    /// was seen, ends the sessions of identity-authz session `sid` or, without one, every
    /// session of `sub`; how many ended.
    pub fn logged_out(
        &mut self,
        sid: Option<&str>,
        sub: Option<&str>,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<usize, Error> {
        make_room(&mut self.logout_jtis, |until| *until, now);
        if self.logout_jtis.get(jti).is_some_and(|until| *until > now) {
            return Err(refused("this logout token was already used"));
        }
        self.logout_jtis.insert(jti.to_owned(), exp.max(now + 60));
        let before = self.sessions.len();
        self.sessions.retain(|_, s| match (sid, sub) {
            (Some(sid), Some(sub)) => !(s.sid.as_deref() == Some(sid) && s.sub == sub),
            (Some(sid), None) => s.sid.as_deref() != Some(sid),
            (None, Some(sub)) => s.sub != sub,
            (None, None) => true,
        });
        Ok(before - self.sessions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access: Zeroizing::new("at".into()),
            access_exp: 1_000,
            refresh: None,
            id_token: "id".into(),
        }
    }

    #[test]
    fn a_sign_in_belongs_to_its_browser_and_is_used_once() {
        let mut st = RpState::default();
        let s = st.begin(100).unwrap();
        assert_eq!(
            s.challenge.len(),
            43,
            "S256 of the verifier, base64url unpadded"
        );
        assert!(st.take(&s.state, Some("other browser"), 101).is_err());
        assert!(st.take(&s.state, None, 101).is_err());
        let r = st.take(&s.state, Some(&s.binding), 101).unwrap();
        assert_eq!(r.nonce, s.nonce);
        assert!(
            st.take(&s.state, Some(&s.binding), 101).is_err(),
            "used once"
        );
        let late = st.begin(100).unwrap();
        assert!(
            st.take(&late.state, Some(&late.binding), 100 + SIGN_IN_TTL)
                .is_err(),
            "expired"
        );
    }

    #[test]
    fn a_user_keeps_at_most_sixteen_sessions_and_the_oldest_goes() {
        let mut st = RpState::default();
        let first = st.open("u".into(), None, tokens(), 100).unwrap();
        let mut last = None;
        for i in 0..MAX_SESSIONS_PER_USER {
            last = Some(st.open("u".into(), None, tokens(), 101 + i as u64).unwrap());
        }
        let other = st.open("v".into(), None, tokens(), 100).unwrap();
        assert!(st.lookup(&first.cookie, 200).is_none(), "the oldest ended");
        assert!(st.lookup(&last.unwrap().cookie, 200).is_some());
        assert!(
            st.lookup(&other.cookie, 200).is_some(),
            "another user's stay"
        );
    }

    #[test]
    fn a_logout_token_ends_the_sessions_of_its_sid_once() {
        let mut st = RpState::default();
        let a = st
            .open("alice".into(), Some("sid-1".into()), tokens(), 100)
            .unwrap();
        let a2 = st
            .open("alice".into(), Some("sid-2".into()), tokens(), 100)
            .unwrap();
        let b = st
            .open("bob".into(), Some("sid-3".into()), tokens(), 100)
            .unwrap();
        assert_eq!(st.lookup(&a.cookie, 101).unwrap().sub, "alice");
        assert!(st.lookup("forged", 101).is_none());
        assert!(st.lookup(&a.cookie, 100 + SESSION_TTL).is_none(), "expires");
        assert_eq!(
            st.logged_out(Some("sid-1"), Some("alice"), "j1", 500, 101)
                .unwrap(),
            1
        );
        assert!(st.lookup(&a.cookie, 101).is_none());
        assert!(st.lookup(&a2.cookie, 101).is_some(), "another sid stays");
        assert!(
            st.logged_out(Some("sid-2"), Some("alice"), "j1", 500, 101)
                .is_err(),
            "a replayed jti"
        );
        assert!(st.lookup(&a2.cookie, 101).is_some());
        assert_eq!(
            st.logged_out(None, Some("alice"), "j2", 500, 101).unwrap(),
            1,
            "sub alone: every session of the user"
        );
        assert!(st.lookup(&b.cookie, 101).is_some(), "bob stays");
        assert_eq!(
            st.logged_out(Some("sid-3"), Some("mallory"), "j3", 500, 101)
                .unwrap(),
            0,
            "sid and sub must name the same session"
        );
        assert!(st.end(&b.cookie).is_some());
        assert!(st.lookup(&b.cookie, 101).is_none());
    }
}
