//! State of the `Sessions` actor: sign-ins under way (PKCE verifier, nonce, the browser they
//! belong to) and live sessions (the access token they stand for, their CSRF token), bounded and
//! expiring. Pure: the actor does the HTTPS exchange and the clock.

use std::collections::HashMap;

use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::Error;

/// How long a browser has to come back from the login page.
pub(super) const LOGIN_TTL: u64 = 600;
/// Most sign-ins under way and most sessions at once (past it, expired ones are dropped first).
pub(super) const MAX_ENTRIES: usize = 100_000;

/// How this service signs browsers in at identity-authz (a confidential code-flow client).
#[derive(Clone)]
pub struct BrowserLogin {
    /// identity-authz's issuer (`iss` of the callback, RFC 9207).
    pub issuer: String,
    /// Its authorization endpoint.
    pub authorize_url: String,
    /// Its token endpoint.
    pub token_url: String,
    /// Its end-session endpoint.
    pub logout_url: String,
    /// This service's client id.
    pub client_id: String,
    /// Its secret (in memory only).
    pub client_secret: Zeroizing<String>,
    /// `<public>/browser/auth/callback`.
    pub redirect_uri: String,
    /// `<public>/browser/`.
    pub post_logout_uri: String,
    /// The scopes asked for (`openid` and the service's API scope).
    pub scope: String,
    /// The client for the token endpoint (trusting identity-authz's TLS anchor).
    pub client: cryptoutil_federation::HttpsClient,
}

impl std::fmt::Debug for BrowserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserLogin")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// A sign-in under way.
pub(super) struct PendingLogin {
    verifier: Zeroizing<String>,
    nonce: String,
    binding: [u8; 32],
    return_to: String,
    expires: u64,
}

/// A live browser session.
pub(super) struct Session {
    /// The access token it stands for.
    pub access_token: Zeroizing<String>,
    /// The ID token (the logout hint).
    pub id_token: String,
    /// The CSRF token state-changing requests must carry.
    pub csrf: Zeroizing<String>,
    /// End (the access token's `exp`).
    pub expires: u64,
}

/// What starting a sign-in gives the browser.
#[derive(Debug)]
pub struct Begun {
    /// identity-authz's authorization URL.
    pub redirect: String,
    /// The value of the cookie that binds the sign-in to this browser.
    pub binding: Zeroizing<String>,
}

/// What the callback needs to exchange the code.
pub struct Exchange {
    /// The code.
    pub code: Zeroizing<String>,
    /// The PKCE verifier.
    pub verifier: Zeroizing<String>,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// Where the browser goes afterwards.
    pub return_to: String,
}

/// A new session, for the cookies.
#[derive(Debug)]
pub struct Started {
    /// The session cookie's value.
    pub cookie: Zeroizing<String>,
    /// The CSRF token (a script-readable cookie).
    pub csrf: Zeroizing<String>,
    /// Seconds the session lives.
    pub max_age: u64,
    /// Where to send the browser.
    pub return_to: String,
}

fn refused(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

fn random(bytes: usize) -> Result<Zeroizing<String>, Error> {
    oauth::random_token(bytes).map_err(|_| refused("randomness failed"))
}

/// A local path under /browser/ (never another origin, never `//host`).
pub fn safe_return_to(to: Option<&str>) -> String {
    match to {
        Some(p)
            if p.starts_with("/browser/")
                && !p.contains("//")
                && !p.contains('\\')
                && p.len() <= 512
                && p.bytes().all(|b| b > b' ' && b < 0x7f) =>
        {
            p.to_owned()
        }
        _ => "/browser/".to_owned(),
    }
}

/// The sign-ins and sessions of one service.
#[derive(Default)]
pub struct SessionsState {
    pending: HashMap<String, PendingLogin>,
    sessions: HashMap<[u8; 32], Session>,
}

impl SessionsState {
    /// A new sign-in: the authorization URL (PKCE S256, state, nonce) and the binding cookie.
    pub fn begin(
        &mut self,
        login: &BrowserLogin,
        return_to: Option<&str>,
        now: u64,
    ) -> Result<Begun, Error> {
        if self.pending.len() >= MAX_ENTRIES {
            self.pending.retain(|_, p| p.expires > now);
        }
        if self.pending.len() >= MAX_ENTRIES {
            return Err(Error::Unavailable {
                actor: "Sessions",
                why: crate::error::Unavailability::Timeout,
            });
        }
        let (state, verifier, nonce, binding) =
            (random(24)?, random(48)?, random(18)?, random(32)?);
        let challenge = b64::encode(&oauth::token_digest(verifier.as_bytes()));
        let redirect = oauth::with_query(
            &login.authorize_url,
            &[
                ("response_type", "code"),
                ("client_id", &login.client_id),
                ("redirect_uri", &login.redirect_uri),
                ("scope", &login.scope),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        self.pending.insert(
            state.to_string(),
            PendingLogin {
                verifier,
                nonce: nonce.to_string(),
                binding: oauth::token_digest(binding.as_bytes()),
                return_to: safe_return_to(return_to),
                expires: now + LOGIN_TTL,
            },
        );
        Ok(Begun { redirect, binding })
    }

    /// The callback: the sign-in `state` names must be pending, belong to this browser (the
    /// binding cookie: a 256-bit value, so a mismatch leaves the sign-in to its owner), and
    /// come from our issuer; once bound it is consumed whatever follows.
    pub fn callback(
        &mut self,
        login: &BrowserLogin,
        params: &[(String, String)],
        binding: Option<&str>,
        now: u64,
    ) -> Result<Exchange, Error> {
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let state = get("state").unwrap_or_default();
        let pending = self
            .pending
            .get(state)
            .filter(|p| p.expires > now)
            .ok_or(refused("unknown or expired sign-in; start again"))?;
        let bound = binding.is_some_and(|b| {
            oauth::constant_time_eq(&oauth::token_digest(b.as_bytes()), &pending.binding)
        });
        if !bound {
            return Err(refused("this sign-in was started in another browser"));
        }
        let pending = self
            .pending
            .remove(state)
            .ok_or(refused("unknown or expired sign-in; start again"))?;
        if get("iss") != Some(login.issuer.as_str()) {
            return Err(refused("the answer did not come from our issuer"));
        }
        if let Some(e) = get("error") {
            tracing::info!(error = e, "sign-in refused by identity-authz");
            return Err(refused("identity-authz refused the sign-in"));
        }
        let code = get("code").ok_or(refused("no code in the answer"))?;
        Ok(Exchange {
            code: Zeroizing::new(code.to_owned()),
            verifier: pending.verifier,
            nonce: pending.nonce,
            return_to: pending.return_to,
        })
    }

    /// A session from the token endpoint's answer (received over TLS from the issuer itself,
    /// OpenID Connect Core §3.1.3.7: the ID token's nonce and audience are checked; the access
    /// token is validated on every use like any bearer token).
    pub fn start(
        &mut self,
        login: &BrowserLogin,
        exchange: &Exchange,
        answer: &Value,
        now: u64,
    ) -> Result<Started, Error> {
        let text = |n: &str| answer.get(n).and_then(Value::as_str);
        let access = text("access_token").ok_or(refused("no access token"))?;
        let id_token = text("id_token").ok_or(refused("no ID token"))?;
        let claims: Value = id_token
            .split('.')
            .nth(1)
            .and_then(|p| b64::decode(p, "ID token").ok())
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(refused("malformed ID token"))?;
        if claims.get("nonce").and_then(Value::as_str) != Some(exchange.nonce.as_str())
            || claims.get("aud").and_then(Value::as_str) != Some(login.client_id.as_str())
            || claims.get("iss").and_then(Value::as_str) != Some(login.issuer.as_str())
        {
            return Err(refused("the ID token does not match this sign-in"));
        }
        let expires_in = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(86_400);
        if expires_in == 0 {
            return Err(refused("the access token has no lifetime"));
        }
        if self.sessions.len() >= MAX_ENTRIES {
            self.sessions.retain(|_, s| s.expires > now);
        }
        if self.sessions.len() >= MAX_ENTRIES {
            return Err(Error::Unavailable {
                actor: "Sessions",
                why: crate::error::Unavailability::Timeout,
            });
        }
        let (cookie, csrf) = (random(32)?, random(32)?);
        self.sessions.insert(
            oauth::token_digest(cookie.as_bytes()),
            Session {
                access_token: Zeroizing::new(access.to_owned()),
                id_token: id_token.to_owned(),
                csrf: csrf.clone(),
                expires: now + expires_in,
            },
        );
        Ok(Started {
            cookie,
            csrf,
            max_age: expires_in,
            return_to: exchange.return_to.clone(),
        })
    }

    /// The live session a cookie names: (access token, CSRF token).
    pub fn lookup(&self, cookie: &str, now: u64) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
        self.sessions
            .get(&oauth::token_digest(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .map(|s| (s.access_token.clone(), s.csrf.clone()))
    }

    /// Ends a session; its ID token (the logout hint for identity-authz).
    pub fn end(&mut self, cookie: &str) -> Option<String> {
        self.sessions
            .remove(&oauth::token_digest(cookie.as_bytes()))
            .map(|s| s.id_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn login() -> BrowserLogin {
        BrowserLogin {
            issuer: "https://authz.test".into(),
            authorize_url: "https://authz.test/browser/oauth2/v1/authorize".into(),
            token_url: "https://authz.test/service/oauth2/v1/token".into(),
            logout_url: "https://authz.test/browser/oauth2/v1/logout".into(),
            client_id: "browser-jose".into(),
            client_secret: Zeroizing::new("s".into()),
            redirect_uri: "https://jose.test/browser/auth/callback".into(),
            post_logout_uri: "https://jose.test/browser/".into(),
            scope: "openid jose".into(),
            client: cryptoutil_federation::HttpsClient::new(std::sync::Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )),
        }
    }

    fn param(url: &str, name: &str) -> String {
        let q = url.split_once('?').unwrap().1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    }

    fn id_token(claims: Value) -> String {
        format!("e30.{}.sig", b64::encode(claims.to_string().as_bytes()))
    }

    #[test]
    fn a_sign_in_is_bound_to_its_browser_its_issuer_and_its_nonce() {
        let l = login();
        let mut st = SessionsState::default();
        let begun = st.begin(&l, Some("/browser/ui/jose/"), 100).unwrap();
        assert!(begun.redirect.contains("code_challenge_method=S256"));
        let state = param(&begun.redirect, "state");
        let nonce = param(&begun.redirect, "nonce");
        let params = |iss: &str| {
            vec![
                ("state".to_owned(), state.clone()),
                ("code".to_owned(), "c".to_owned()),
                ("iss".to_owned(), iss.to_owned()),
            ]
        };
        // Another browser (no or another binding cookie): refused; the owner may still finish,
        // once.
        assert!(st
            .callback(&l, &params("https://authz.test"), Some("other"), 101)
            .is_err());
        assert!(st
            .callback(&l, &params("https://authz.test"), None, 101)
            .is_err());
        assert!(st
            .callback(&l, &params("https://authz.test"), Some(&begun.binding), 101)
            .is_ok());
        assert!(st
            .callback(&l, &params("https://authz.test"), Some(&begun.binding), 101)
            .is_err());

        let begun = st.begin(&l, Some("https://evil.test/"), 100).unwrap();
        let state = param(&begun.redirect, "state");
        let p = vec![
            ("state".to_owned(), state.clone()),
            ("code".to_owned(), "c".to_owned()),
            ("iss".to_owned(), "https://mix-up.test".to_owned()),
        ];
        assert!(
            st.callback(&l, &p, Some(&begun.binding), 101).is_err(),
            "mix-up (RFC 9207)"
        );

        let begun = st.begin(&l, Some("//evil.test/x"), 100).unwrap();
        let state = param(&begun.redirect, "state");
        let nonce2 = param(&begun.redirect, "nonce");
        assert_ne!(nonce, nonce2);
        let p = vec![
            ("state".to_owned(), state),
            ("code".to_owned(), "c".to_owned()),
            ("iss".to_owned(), "https://authz.test".to_owned()),
        ];
        let ex = st.callback(&l, &p, Some(&begun.binding), 101).unwrap();
        assert_eq!(ex.return_to, "/browser/", "no open redirect after sign-in");
        let wrong_nonce = json!({
            "access_token": "at", "expires_in": 900,
            "id_token": id_token(json!({"nonce": "x", "aud": "browser-jose", "iss": "https://authz.test"})),
        });
        assert!(st.start(&l, &ex, &wrong_nonce, 102).is_err());
        let good = json!({
            "access_token": "at", "expires_in": 900,
            "id_token": id_token(json!({"nonce": nonce2, "aud": "browser-jose", "iss": "https://authz.test"})),
        });
        let started = st.start(&l, &ex, &good, 102).unwrap();
        let (at, csrf) = st.lookup(&started.cookie, 103).unwrap();
        assert_eq!((at.as_str(), csrf.as_str()), ("at", started.csrf.as_str()));
        assert!(
            st.lookup(&started.cookie, 102 + 900).is_none(),
            "ends with the access token"
        );
        assert!(st.lookup("forged", 103).is_none());
        assert!(st.end(&started.cookie).is_some());
        assert!(st.lookup(&started.cookie, 103).is_none());
    }
}
