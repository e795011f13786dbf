//! The relying party's handle: the actor's state through its mailbox, and every network call
//! on the caller's task (discovery and the issuer's keys, PAR, the token endpoint, identity-rs),
//! so the mailbox never waits on the network.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use cryptoutil_federation::Method;
use cryptoutil_protocols::jose::{jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::oauth::{form_encode, with_query};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::state::{Opened, SessionView, Tokens};
use super::{RpMsg, RpSettings, NETWORK_TIMEOUT};
use crate::ask::ask;
use crate::error::{Error, Unavailability};
use crate::slot::Slot;

/// How long the issuer's metadata and keys are used before they are fetched again.
const PROVIDER_MAX_AGE: Duration = Duration::from_secs(3600);
/// Least time between two fetches because a token named a key the set lacks.
const KEY_REFRESH_MIN: Duration = Duration::from_secs(30);
/// How long a failed discovery is the answer before identity-authz is asked again.
const FAILURE_MEMORY: Duration = Duration::from_secs(3);
/// An access token this close to its `exp` is refreshed before use.
const REFRESH_MARGIN: u64 = 30;
/// The algorithms identity-authz signs with.
const ID_TOKEN_ALGS: [JwsAlg; 3] = [JwsAlg::ES256, JwsAlg::ES384, JwsAlg::PS256];
/// The event a logout token carries (OpenID Connect Back-Channel Logout 1.0 §2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What discovery says, with the issuer's keys.
#[derive(Debug)]
pub struct Provider {
    /// `pushed_authorization_request_endpoint`.
    pub par: String,
    /// `authorization_endpoint`.
    pub authorize: String,
    /// `token_endpoint`.
    pub token: String,
    /// `end_session_endpoint`.
    pub end_session: Option<String>,
    /// The issuer's signing keys.
    pub keys: JwkSet,
    fetched: Instant,
}

/// Where to send the browser to sign in, and the cookie that binds the sign-in to it.
pub struct SignInStart {
    /// identity-authz's authorization URL (`client_id` and `request_uri` only).
    pub redirect: String,
    /// The binding cookie's value.
    pub binding: Zeroizing<String>,
}

fn unavailable(actor: &'static str) -> Error {
    Error::Unavailable {
        actor,
        why: Unavailability::Unreachable,
    }
}

fn refused(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

/// Cloneable, restart-proof handle.
#[derive(Clone)]
pub struct RpHandle {
    slot: Slot<RpMsg>,
    timeout: Duration,
    settings: Arc<RpSettings>,
    provider: Arc<RwLock<Option<Arc<Provider>>>>,
    /// One fetch at a time, and when the last one failed (so callers queued behind it do not
    /// each wait out another timeout).
    fetching: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for RpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpHandle")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RpHandle {
    /// A handle of the actor in `slot`.
    pub fn new(slot: Slot<RpMsg>, timeout: Duration, settings: Arc<RpSettings>) -> Self {
        Self {
            slot,
            timeout,
            settings,
            provider: Arc::default(),
            fetching: Arc::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RpSettings {
        &self.settings
    }

    /// The issuer's origin (the pages' CSP lets forms go there: logout).
    pub fn issuer_origin(&self) -> String {
        let issuer = self.settings.issuer.trim_end_matches('/');
        match issuer.find("://") {
            Some(i) => match issuer[i + 3..].find('/') {
                Some(j) => issuer[..i + 3 + j].to_owned(),
                None => issuer.to_owned(),
            },
            None => issuer.to_owned(),
        }
    }

    /// Starts a sign-in: the authorization request is pushed (PAR) with the client's
    /// assertion; the browser goes to identity-authz with the `request_uri` alone.
    pub async fn sign_in(&self) -> Result<SignInStart, Error> {
        let s = &self.settings;
        let sign_in = ask(&self.slot, RpMsg::Begin, self.timeout).await?;
        let provider = self.provider(false).await?;
        let assertion = self.assertion()?;
        let form = form(&[
            ("response_type", "code"),
            ("client_id", &s.client_id),
            ("redirect_uri", &s.redirect_uri),
            ("scope", &s.scope),
            ("state", &sign_in.state),
            ("nonce", &sign_in.nonce),
            ("code_challenge", &sign_in.challenge),
            ("code_challenge_method", "S256"),
            ("resource", &s.resource),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ]);
        let pushed = self.post_form(&provider.par, &form).await?;
        let request_uri = pushed
            .get("request_uri")
            .and_then(Value::as_str)
            .ok_or(refused("identity-authz's PAR answer has no request_uri"))?;
        Ok(SignInStart {
            redirect: with_query(
                &provider.authorize,
                &[("client_id", &s.client_id), ("request_uri", request_uri)],
            ),
            binding: sign_in.binding,
        })
    }

    /// The callback: this browser's sign-in, from our issuer (RFC 9207 `iss`), its code
    /// redeemed with the PKCE verifier and a fresh assertion, the ID token verified; a session.
    pub async fn callback(
        &self,
        params: &[(String, String)],
        binding: Option<Zeroizing<String>>,
    ) -> Result<Opened, Error> {
        let s = &self.settings;
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let state = get("state").unwrap_or_default().to_owned();
        let redeem = ask(
            &self.slot,
            |reply| RpMsg::Take {
                state,
                binding,
                reply,
            },
            self.timeout,
        )
        .await?;
        if get("iss") != Some(s.issuer.as_str()) {
            return Err(refused("the answer did not come from our issuer"));
        }
        if let Some(e) = get("error") {
            tracing::info!(error = e, "sign-in refused by identity-authz");
            return Err(refused("identity-authz refused the sign-in"));
        }
        let code = get("code").ok_or(refused("no code in the answer"))?;
        let answer = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &s.redirect_uri),
                ("code_verifier", &redeem.verifier),
            ])
            .await?;
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or(refused("no ID token"))?;
        let claims = self.verify(id_token, "JWT", "the ID token").await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(redeem.nonce.as_str()) {
            return Err(refused("the ID token's nonce is not this sign-in's"));
        }
        // OpenID Connect Core 3.1.3.7 (3, 4): audiences besides this client are not trusted
        // here, and an `azp` must name this client.
        let only_us = match claims.get("aud") {
            Some(Value::String(a)) => *a == s.client_id,
            Some(Value::Array(list)) => {
                list.len() == 1 && list.first().and_then(Value::as_str) == Some(&s.client_id)
            }
            _ => false,
        };
        let azp_ok = claims
            .get("azp")
            .is_none_or(|a| a.as_str() == Some(s.client_id.as_str()));
        if !only_us || !azp_ok {
            return Err(refused("the ID token is not for this client alone"));
        }
        let sub = text(&claims, "sub").ok_or(refused("the ID token names no user"))?;
        let tokens = tokens_of(&answer, None, id_token.to_owned())?;
        ask(
            &self.slot,
            |reply| RpMsg::Open {
                sub,
                sid: text(&claims, "sid"),
                tokens: Box::new(tokens),
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// The live session a cookie names.
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionView>, Error> {
        if cookie.is_empty() || cookie.len() > 256 {
            return Ok(None);
        }
        let cookie = Zeroizing::new(cookie.to_owned());
        ask(
            &self.slot,
            |reply| RpMsg::Lookup { cookie, reply },
            self.timeout,
        )
        .await
    }

    /// Calls identity-rs for the session's user: `method` on the notes collection, refreshing
    /// an expiring access token first. A 401 (the token revoked or the sign-in ended at
    /// identity-authz) gets one refresh and one retry; a refused refresh is
    /// [`Error::Unauthenticated`] (the pages end the session). (status, JSON body).
    pub async fn notes(
        &self,
        session: &SessionView,
        method: Method,
        body: Option<Value>,
    ) -> Result<(u16, Value), Error> {
        let mut force = false;
        loop {
            let access = self.access_token(session, force).await?;
            let auth = Zeroizing::new(format!("Bearer {}", access.as_str()));
            let mut headers = vec![("authorization", auth.as_str())];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            let payload = body
                .as_ref()
                .map(|b| b.to_string().into_bytes())
                .unwrap_or_default();
            let r = self
                .http()
                .send(
                    method.clone(),
                    &self.settings.notes_url,
                    &headers,
                    payload.into(),
                )
                .await
                .map_err(|e| {
                    tracing::warn!(%e, "identity-rs is unreachable");
                    unavailable("identity-rs")
                })?;
            if r.status.as_u16() == 401 && !force {
                force = true;
                continue;
            }
            let value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            return Ok((r.status.as_u16(), value));
        }
    }

    /// The session's access token, refreshed first when it is about to expire or `force`d.
    /// One refresh of a session at a time, and each runs to its end on a task of its own: a
    /// request that goes away mid-refresh (a reload) must not leave the spent refresh token
    /// stored, which identity-authz would take for a stolen one at its next use.
    async fn access_token(
        &self,
        session: &SessionView,
        force: bool,
    ) -> Result<Zeroizing<String>, Error> {
        let tokens = Arc::clone(&session.tokens);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tokens = tokens.lock_owned().await;
            if !force && tokens.access_exp > crate::now_unix() + REFRESH_MARGIN {
                return Ok(tokens.access.clone());
            }
            let refresh = tokens.refresh.clone().ok_or(Error::Unauthenticated {
                why: "the session's access token expired and it has no refresh token",
            })?;
            let answer = this
                .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                .await
                .map_err(|e| match e {
                    Error::BadRequest { .. } => Error::Unauthenticated {
                        why: "identity-authz refused the refresh token (signed out?)",
                    },
                    other => other,
                })?;
            // The sign-in's ID token stays the logout hint (a refresh answer's is not checked).
            *tokens = tokens_of(&answer, Some(refresh), tokens.id_token.clone())?;
            Ok(tokens.access.clone())
        })
        .await
        .map_err(|_| Error::Internal {
            what: "the refresh task",
        })?
    }

    /// Ends the session a cookie names; where to send the browser (identity-authz's end-session
    /// endpoint with the ID token as hint, or straight home when it is unreachable).
    pub async fn sign_out(&self, cookie: &str) -> Result<String, Error> {
        let s = &self.settings;
        let cookie = Zeroizing::new(cookie.to_owned());
        let ended = ask(
            &self.slot,
            |reply| RpMsg::End { cookie, reply },
            self.timeout,
        )
        .await?;
        let Some(tokens) = ended else {
            return Ok(s.post_logout_uri.clone());
        };
        let hint = tokens.lock().await.id_token.clone();
        match self.provider(false).await {
            Ok(p) => match &p.end_session {
                Some(url) => Ok(with_query(
                    url,
                    &[
                        ("id_token_hint", &hint),
                        ("post_logout_redirect_uri", &s.post_logout_uri),
                        ("client_id", &s.client_id),
                    ],
                )),
                None => Ok(s.post_logout_uri.clone()),
            },
            Err(_) => Ok(s.post_logout_uri.clone()),
        }
    }

    /// A logout token from identity-authz (OpenID Connect Back-Channel Logout 1.0 §2.6):
    /// signed by the issuer (`typ` logout+jwt), for this client, the logout event, `sid` or
    /// `sub`, a `jti`, no `nonce`; ends the sessions it names. How many ended.
    pub async fn back_channel_logout(&self, token: &str) -> Result<usize, Error> {
        if token.len() > 16 * 1024 {
            return Err(refused("logout token too long"));
        }
        let claims = self.verify(token, "logout+jwt", "the logout token").await?;
        let has_event = claims
            .get("events")
            .and_then(|e| e.get(LOGOUT_EVENT))
            .is_some_and(Value::is_object);
        let (sid, sub, jti) = (
            text(&claims, "sid"),
            text(&claims, "sub"),
            text(&claims, "jti"),
        );
        if !has_event
            || claims.contains_key("nonce")
            || (sid.is_none() && sub.is_none())
            || claims.get("iat").and_then(Value::as_u64).is_none()
        {
            return Err(refused("not a logout token"));
        }
        let jti = jti.ok_or(refused("the logout token has no jti"))?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        ask(
            &self.slot,
            |reply| RpMsg::LoggedOut {
                sid,
                sub,
                jti,
                exp,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// A token signed by the issuer with `typ`, for this client, unexpired; its claims. A key
    /// the cached set lacks sends for the set again (at most every [`KEY_REFRESH_MIN`]).
    async fn verify(
        &self,
        token: &str,
        typ: &str,
        what: &'static str,
    ) -> Result<Map<String, Value>, Error> {
        let s = &self.settings;
        let unverified = jwt::Unverified::parse(token).map_err(|_| refused(what))?;
        // identity-authz signs low-S: the high-S twin of its signature is a copy.
        if unverified.high_s() {
            tracing::warn!(what, "token refused: high-S ECDSA signature");
            return Err(refused(what));
        }
        let mut provider = self.provider(false).await?;
        if provider.keys.resolve(unverified.kid()).is_none() {
            provider = self.provider(true).await?;
        }
        let v = jwt::Validation {
            issuer: Some(s.issuer.clone()),
            audience: Some(s.client_id.clone()),
            typ: Some(typ.to_owned()),
            leeway: Duration::from_secs(60),
            require_exp: true,
        };
        unverified
            .verify(&provider.keys, &ID_TOKEN_ALGS, &v, crate::now_unix())
            .map_err(|e| {
                tracing::warn!(%e, what, "token refused");
                refused(what)
            })
    }

    /// The HTTPS client for identity-authz and identity-rs, bounded by [`NETWORK_TIMEOUT`].
    fn http(&self) -> cryptoutil_federation::HttpsClient {
        self.settings.client.clone().with_timeout(NETWORK_TIMEOUT)
    }

    /// A grant at identity-authz's token endpoint, authenticated with a fresh client
    /// assertion; its JSON answer.
    async fn token_request(&self, grant: &[(&str, &str)]) -> Result<Value, Error> {
        let provider = self.provider(false).await?;
        let assertion = self.assertion()?;
        let mut fields = grant.to_vec();
        fields.extend([
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ]);
        self.post_form(&provider.token, &form(&fields)).await
    }

    /// A client assertion (RFC 7523 §3): this client as `iss` and `sub`, the issuer as `aud`,
    /// a fresh `jti`, valid one minute.
    fn assertion(&self) -> Result<String, Error> {
        let s = &self.settings;
        let now = crate::now_unix();
        let jti = cryptoutil_protocols::oauth::random_token(18).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let claims = json!({
            "iss": s.client_id, "sub": s.client_id, "aud": s.issuer,
            "jti": jti.as_str(), "iat": now, "exp": now + 60,
        });
        let Value::Object(claims) = claims else {
            return Err(Error::Internal {
                what: "client assertion",
            });
        };
        jwt::sign(&s.key, &claims, "JWT").map_err(|_| Error::Internal {
            what: "signing the client assertion",
        })
    }

    /// POSTs a form to identity-authz; its JSON answer. Unreachable: unavailable (the pages say
    /// "sign-in unavailable"); refused: a bad request naming no secret.
    async fn post_form(&self, url: &str, body: &Zeroizing<String>) -> Result<Value, Error> {
        let r = self
            .http()
            .send(
                Method::POST,
                url,
                &[("content-type", "application/x-www-form-urlencoded")],
                body.as_bytes().to_vec().into(),
            )
            .await
            .map_err(|e| {
                tracing::warn!(%e, "identity-authz is unreachable");
                unavailable("identity-authz")
            })?;
        if r.status.is_server_error() || matches!(r.status.as_u16(), 408 | 429) {
            tracing::warn!(status = r.status.as_u16(), "identity-authz failed");
            return Err(unavailable("identity-authz"));
        }
        let value: Value = serde_json::from_slice(&r.body)
            .map_err(|_| refused("identity-authz answered no JSON"))?;
        if !r.status.is_success() {
            tracing::warn!(status = r.status.as_u16(), error = ?value.get("error"), "identity-authz refused a request");
            return Err(refused("identity-authz refused the request"));
        }
        Ok(value)
    }

    /// Discovery and keys, cached for [`PROVIDER_MAX_AGE`]; `keys_stale`: a token named a key
    /// the set lacks (fetched again unless that was under [`KEY_REFRESH_MIN`] ago). One fetch
    /// at a time; a failed fetch keeps a set already held.
    async fn provider(&self, keys_stale: bool) -> Result<Arc<Provider>, Error> {
        let usable = |p: &Arc<Provider>| {
            let age = p.fetched.elapsed();
            age < PROVIDER_MAX_AGE && (!keys_stale || age < KEY_REFRESH_MIN)
        };
        if let Some(p) = self.cached().filter(usable) {
            return Ok(p);
        }
        let mut failed = self.fetching.lock().await;
        if let Some(p) = self.cached().filter(usable) {
            return Ok(p);
        }
        let fetched = match *failed {
            Some(at) if at.elapsed() < FAILURE_MEMORY => Err(unavailable("identity-authz")),
            _ => self.fetch_provider().await,
        };
        match fetched {
            Ok(p) => {
                *failed = None;
                let p = Arc::new(p);
                *self
                    .provider
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&p));
                Ok(p)
            }
            Err(e) => {
                if failed.is_none_or(|at| at.elapsed() >= FAILURE_MEMORY) {
                    *failed = Some(Instant::now());
                }
                match self.cached() {
                    Some(p) if keys_stale => Ok(p),
                    _ => Err(e),
                }
            }
        }
    }

    fn cached(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// OpenID Connect Discovery 1.0: the metadata at the issuer's well-known URL (its `issuer`
    /// must be ours, §4.3), then its JWK Set.
    async fn fetch_provider(&self) -> Result<Provider, Error> {
        let s = &self.settings;
        let client = self.http();
        let get = |url: String| {
            let client = client.clone();
            async move {
                let r = client.get(&url).await.map_err(|e| {
                    tracing::warn!(%e, %url, "identity-authz is unreachable");
                    unavailable("identity-authz")
                })?;
                if !r.status.is_success() {
                    tracing::warn!(status = r.status.as_u16(), %url, "identity-authz discovery failed");
                    return Err(unavailable("identity-authz"));
                }
                Ok(r)
            }
        };
        let meta: Value = serde_json::from_slice(
            &get(format!(
                "{}/.well-known/openid-configuration",
                s.issuer.trim_end_matches('/')
            ))
            .await?
            .body,
        )
        .map_err(|_| refused("identity-authz's metadata is not JSON"))?;
        let url = |name: &str| {
            meta.get(name)
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("https://"))
                .map(str::to_owned)
        };
        if meta.get("issuer").and_then(Value::as_str) != Some(s.issuer.as_str()) {
            return Err(refused("the metadata names another issuer"));
        }
        let missing = || refused("identity-authz's metadata lacks an endpoint");
        let jwks_uri = url("jwks_uri").ok_or_else(missing)?;
        let keys = crate::issuer_jwks::parse_issuer_set(&get(jwks_uri).await?.text())
            .map_err(|_| refused("identity-authz's key set is unusable"))?;
        Ok(Provider {
            par: url("pushed_authorization_request_endpoint").ok_or_else(missing)?,
            authorize: url("authorization_endpoint").ok_or_else(missing)?,
            token: url("token_endpoint").ok_or_else(missing)?,
            end_session: url("end_session_endpoint"),
            keys,
            fetched: Instant::now(),
        })
    }
}

/// RFC 7523 §2.2.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form(fields: &[(&str, &str)]) -> Zeroizing<String> {
    Zeroizing::new(
        fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// The tokens of a token endpoint answer with the sign-in's verified `id_token`; a refresh
/// answer without a new refresh token keeps `previous` (rotation is identity-authz's choice).
fn tokens_of(
    answer: &Value,
    previous: Option<Zeroizing<String>>,
    id_token: String,
) -> Result<Tokens, Error> {
    let access = answer
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or(refused("no access token"))?;
    let expires_in = answer
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(86_400);
    let refresh = answer
        .get("refresh_token")
        .and_then(Value::as_str)
        .map(|r| Zeroizing::new(r.to_owned()))
        .or(previous);
    Ok(Tokens {
        access: Zeroizing::new(access.to_owned()),
        access_exp: crate::now_unix() + expires_in,
        refresh,
        id_token,
    })
}
