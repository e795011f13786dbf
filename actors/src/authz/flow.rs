//! The browser side of identity-authz: authorization requests (code flow, PKCE S256 only),
//! sign-in at identity-idp with backoff and lockout, single-use codes, sign-in sessions,
//! refresh-token families (rotated on every use; a reused token revokes its family), ID tokens,
//! userinfo and RP-initiated logout.
//!
//! Pending requests, codes, sessions and failure counters live in the actor's memory with TTLs
//! and bounds (a restart signs everyone out and voids unredeemed codes; nothing issued is lost).
//! Refresh-token families are persisted through the key barrier before a token is answered.

use std::collections::HashMap;

use cryptoutil_protocols::jose::{b64, jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::oauth::{self, AuthorizeError, TokenError};
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::msg::{TokenGrant, TokenRequest};
use super::state::{
    corrupt, oauth as refuse, record_json, AuthzState, Client, Loaded, AUTHORIZATION_CODE,
    REFRESH_TOKEN,
};
use crate::error::Error;

/// identity-authz's authorization endpoint.
pub const AUTHORIZE_PATH: &str = "/browser/oauth2/v1/authorize";
/// RP-initiated logout.
pub const LOGOUT_PATH: &str = "/browser/oauth2/v1/logout";
/// The authentication context of a password sign-in.
pub const ACR_PASSWORD: &str = "urn:cryptoutil:acr:password";

/// How long a browser has to sign in after the authorization request.
const PENDING_TTL: u64 = 600;
/// How long a pushed request (RFC 9126) may wait for its authorization request.
const PUSHED_TTL: u64 = 60;
/// How long a code may wait for redemption.
const CODE_TTL: u64 = 60;
/// How long a redeemed code is remembered, so a second use is recognised and punished.
const USED_CODE_MEMORY: u64 = 3600;
/// Bounds of the in-memory maps (past them, expired entries are dropped; if still full the
/// request is refused rather than memory grown).
const MAX_ENTRIES: usize = 100_000;
/// Failed sign-ins allowed before backoff starts.
const FREE_FAILURES: u32 = 5;
/// The first lockout, once the free failures are spent; it doubles with every further failure.
const FIRST_LOCKOUT: u64 = 30;
/// Longest lockout after repeated failures.
const MAX_LOCKOUT: u64 = 900;
/// Failures older than this are forgotten.
const FAILURE_MEMORY: u64 = 900;

/// The message for a wrong username or password: the same for an unknown user.
pub const LOGIN_FAILED: &str = "The username or password is incorrect.";
/// The message while a name is locked: the same for names that exist and names that do not.
pub const LOGIN_LOCKED: &str =
    "Too many failed attempts for this username. Wait a few minutes and try again.";

/// What `prompt` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompt {
    Default,
    None,
    Login,
}

/// An accepted authorization request.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<u64>,
}

/// Who signed in, and when.
#[derive(Debug, Clone)]
struct Subject {
    user_id: String,
    username: String,
    tenant: String,
    roles: Vec<String>,
    auth_time: u64,
    sid: String,
}

struct Pending {
    request: AuthRequest,
    /// Set once the user signed in and the request waits for consent.
    subject: Option<Subject>,
    expires: u64,
}

struct CodeGrant {
    request: AuthRequest,
    subject: Subject,
    expires: u64,
}

/// What a redeemed code produced (revoked if the code comes back).
struct UsedCode {
    forget_at: u64,
    jti: Option<(String, u64)>,
    family: Option<String>,
}

struct Session {
    subject: Subject,
    expires: u64,
}

#[derive(Default)]
struct Failures {
    count: u32,
    last: u64,
    locked_until: u64,
}

/// The in-memory part of the flow.
pub struct FlowState {
    pending: HashMap<String, Pending>,
    pushed: HashMap<String, Pending>,
    codes: HashMap<[u8; 32], CodeGrant>,
    used_codes: HashMap<[u8; 32], UsedCode>,
    sessions: HashMap<[u8; 32], Session>,
    failures: HashMap<(String, String), Failures>,
    /// A PBKDF2 record of a random password: unknown users are checked against it, so a
    /// wrong name costs the same time as a wrong password.
    dummy_hash: String,
}

impl FlowState {
    /// Blocking (one PBKDF2 run for the dummy record).
    pub fn new() -> Result<Self, Error> {
        let random = oauth::random_token(18).map_err(|_| corrupt("random"))?;
        Ok(Self {
            pending: HashMap::new(),
            pushed: HashMap::new(),
            codes: HashMap::new(),
            used_codes: HashMap::new(),
            sessions: HashMap::new(),
            failures: HashMap::new(),
            dummy_hash: oauth::hash_password(&random, oauth::PASSWORD_ITERATIONS)
                .map_err(|_| corrupt("random"))?,
        })
    }
}

/// Drops expired entries when `map` is full; false if it is still full.
fn room<K, V>(map: &mut HashMap<K, V>, live: impl Fn(&V) -> bool) -> bool {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| live(v));
    }
    map.len() < MAX_ENTRIES
}

/// A persisted refresh-token family: one login's chain of refresh tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct Family {
    /// Its id (the first part of every token of the family).
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The user's name (the family dies with the user).
    pub username: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Granted audiences.
    pub audiences: Vec<String>,
    /// When the user signed in.
    pub auth_time: u64,
    /// The sign-in session (logout revokes the family).
    pub sid: String,
    /// Rotations so far.
    pub generation: u64,
    /// SHA-256 of the current token's secret part, base64url.
    pub secret_digest: String,
    /// End of the family (rotation does not extend it).
    pub expires: u64,
    /// Revoked (reuse, logout, revocation, code reuse).
    pub revoked: bool,
    /// The last access token issued from it (`jti`, `exp`), revoked with the family.
    pub last_jti: Option<(String, u64)>,
    /// For a public client that used DPoP: the key every refresh must prove (RFC 9449 §5).
    #[serde(default)]
    pub jkt: Option<String>,
}

/// Records to make durable before answering.
#[derive(Default)]
pub struct Persist {
    /// Families to write.
    pub families: Vec<Family>,
    /// Consents to write.
    pub consents: Vec<ConsentRecord>,
    /// Access tokens to revoke (`jti`, `exp`).
    pub revoked: Vec<(String, u64)>,
}

impl Persist {
    /// Revokes `family` (and the last access token it issued), to be written.
    fn revoke_family(&mut self, family: &mut Family) {
        family.revoked = true;
        if let Some(jti) = &family.last_jti {
            if !self.revoked.contains(jti) {
                self.revoked.push(jti.clone());
            }
        }
        self.families.push(family.clone());
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty() && self.revoked.is_empty() && self.consents.is_empty()
    }
}

/// A token decision and what must be durable before it is answered.
pub struct TokenDecision {
    /// The grant or the refusal.
    pub result: Result<TokenGrant, Error>,
    /// Writes.
    pub persist: Persist,
}

impl From<Result<TokenGrant, Error>> for TokenDecision {
    fn from(result: Result<TokenGrant, Error>) -> Self {
        Self {
            result,
            persist: Persist::default(),
        }
    }
}

/// Why an authorization request is refused.
enum Rejection {
    /// Before client and redirect URI are trusted: a page, no redirect.
    Page(&'static str),
    /// Back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: AuthorizeError,
        why: &'static str,
    },
}

/// What the authorization endpoint does.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Send the browser here: the login page, or back to the client with an error.
    Redirect(String),
    /// Show an error page and redirect nowhere: the client or its redirect URI is unknown.
    Refuse(&'static str),
}

/// What the login page shows.
#[derive(Debug, Clone)]
pub struct LoginView {
    /// The client's display name.
    pub client_name: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The tenant signed into.
    pub tenant: String,
    /// Where the form may send the browser afterwards (for the page's CSP `form-action`).
    pub redirect_origin: String,
    /// Who is signed in (on the consent page).
    pub username: Option<String>,
    /// The form asks for a tenant (the client admits users of any tenant).
    pub any_tenant: bool,
}

/// After a sign-in: back to the client, or first the consent page.
#[derive(Debug)]
pub enum Next {
    /// The client's redirect URI with the code (or an error).
    Redirect(String),
    /// Ask the user to allow the client's request.
    Consent(LoginView),
}

/// A user's consent to a third-party client's scopes (persisted).
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// Every scope granted so far.
    pub scopes: Vec<String>,
    /// When last granted.
    pub granted: u64,
}

/// What opening the login page does.
#[derive(Debug)]
pub enum LoginStart {
    /// Show the form.
    Form(LoginView),
    /// Already signed in (or `prompt=none`): straight back to the client.
    Redirect(String),
    /// Signed in, but the client's request needs the user's consent.
    Consent(LoginView),
}

/// The outcome of a submitted password.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in: back to the client; the session cookie to set and its lifetime.
    Done {
        /// Back to the client, or the consent page.
        next: Next,
        /// The sign-in session's cookie value.
        session: Zeroizing<String>,
        /// Seconds.
        max_age: u64,
    },
    /// Refused: the form again with a message that does not tell why.
    Failed {
        /// The message.
        message: &'static str,
        /// The form.
        view: LoginView,
    },
}

/// Where a password is checked (off the mailbox).
pub enum LoginCheck {
    /// Answer now (locked out).
    Answer(LoginOutcome),
    /// Verify the password against this PBKDF2 record (a dummy one for unknown users).
    Verify {
        /// The record.
        hash: String,
        /// Whether the user exists (a dummy check never succeeds).
        exists: bool,
    },
}

/// The result of RP-initiated logout.
pub struct LogoutOutcome {
    /// Where to send the browser, if the client registered that URI.
    pub redirect: Option<String>,
    /// Families to revoke.
    pub persist: Persist,
}

fn text<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn origin_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            format!("{scheme}://{authority}")
        }
        None => String::new(),
    }
}

impl AuthzState {
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        e: AuthorizeError,
        why: &str,
    ) -> String {
        let mut params = vec![("error", e.code()), ("error_description", why)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", self.cfg.issuer.as_str()));
        oauth::with_query(redirect_uri, &params)
    }

    /// Checks an authorization request's parameters (RFC 6749 §4.1.1, RFC 7636, OpenID Connect
    /// Core §3.1.2). Until client and redirect URI are verified a failure is a page, never a
    /// redirect (RFC 9700 §4.1: no open redirector).
    fn validate_request(&self, params: &[(String, String)]) -> Result<AuthRequest, Rejection> {
        let Some(client) = text(params, "client_id").and_then(|id| self.clients.get(id)) else {
            return Err(Rejection::Page("The application (client_id) is not known."));
        };
        let Some(redirect_uri) = text(params, "redirect_uri")
            .filter(|r| client.redirect_uris.iter().any(|u| u == r))
            .map(str::to_owned)
        else {
            return Err(Rejection::Page(
                "The redirect_uri is missing or is not registered for this application.",
            ));
        };
        let client = client.clone();
        let state = text(params, "state").map(str::to_owned);
        let fail = |_: &Self, error, why| {
            Err(Rejection::Redirect {
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                error,
                why,
            })
        };
        if state.as_ref().is_some_and(|s| s.len() > 1024) {
            return fail(self, AuthorizeError::InvalidRequest, "state is too long");
        }
        if text(params, "response_type") != Some("code") {
            return fail(
                self,
                AuthorizeError::UnsupportedResponseType,
                "response_type must be code",
            );
        }
        if !client.allows(AUTHORIZATION_CODE) {
            return fail(
                self,
                AuthorizeError::UnauthorizedClient,
                "the client may not use the code flow",
            );
        }
        if ["request", "request_uri", "response_mode"]
            .iter()
            .any(|p| text(params, p).is_some_and(|v| *p != "response_mode" || v != "query"))
        {
            return fail(
                self,
                AuthorizeError::InvalidRequest,
                "request objects and response modes other than query are not supported",
            );
        }
        let challenge = text(params, "code_challenge").unwrap_or_default();
        if !oauth::pkce_method_accepted(text(params, "code_challenge_method"))
            || !oauth::valid_code_challenge(challenge)
        {
            return fail(
                self,
                AuthorizeError::InvalidRequest,
                "PKCE is required: code_challenge with code_challenge_method=S256",
            );
        }
        let scopes = match text(params, "scope").map(oauth::parse_scope) {
            None => client.scopes.clone(),
            Some(Some(asked)) if asked.iter().all(|a| client.scopes.contains(a)) => asked,
            Some(_) => {
                return fail(
                    self,
                    AuthorizeError::InvalidScope,
                    "a requested scope is not allowed to the client",
                )
            }
        };
        let audiences = match text(params, "resource") {
            None => client.audiences.clone(),
            Some(r) => match self.audience_of(r, &client) {
                Some(a) => vec![a],
                None => {
                    return fail(
                        self,
                        AuthorizeError::InvalidRequest,
                        "the resource is not an audience of the client",
                    )
                }
            },
        };
        let nonce = text(params, "nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return fail(self, AuthorizeError::InvalidRequest, "nonce is too long");
        }
        let prompt = match text(params, "prompt") {
            None => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some(_) => {
                return fail(
                    self,
                    AuthorizeError::InvalidRequest,
                    "prompt: none or login (consent and select_account are not supported)",
                )
            }
        };
        let max_age = match text(params, "max_age").map(str::parse::<u64>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return fail(self, AuthorizeError::InvalidRequest, "max_age: seconds"),
        };
        Ok(AuthRequest {
            client_id: client.client_id.clone(),
            tenant: client.tenant.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes,
            audiences,
            state,
            nonce,
            code_challenge: challenge.to_owned(),
            prompt,
            max_age,
        })
    }

    /// The authorization endpoint: a request by value, or by reference to one the client
    /// pushed (RFC 9126: `request_uri`, single use, the same `client_id`). Valid requests send
    /// the browser to identity-idp's login page; invalid ones get a page or go back to the
    /// client with `error`, `state` and `iss`.
    pub fn authorize(&mut self, params: &[(String, String)], now: u64) -> AuthorizeOutcome {
        let request = match text(params, "request_uri") {
            Some(uri) => {
                let pushed = self
                    .flow
                    .pushed
                    .remove(uri)
                    .filter(|p| p.expires > now)
                    .filter(|p| text(params, "client_id") == Some(p.request.client_id.as_str()));
                match pushed {
                    Some(p) => p.request,
                    None => {
                        return AuthorizeOutcome::Refuse(
                            "The request_uri is unknown, expired, already used, or another \
                             application's.",
                        )
                    }
                }
            }
            None => match self.validate_request(params) {
                Ok(r) => r,
                Err(Rejection::Page(why)) => return AuthorizeOutcome::Refuse(why),
                Err(Rejection::Redirect {
                    redirect_uri,
                    state,
                    error,
                    why,
                }) => {
                    return AuthorizeOutcome::Redirect(self.error_redirect(
                        &redirect_uri,
                        state.as_deref(),
                        error,
                        why,
                    ))
                }
            },
        };
        let fail = |st: &Self, error, why| {
            AuthorizeOutcome::Redirect(st.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                error,
                why,
            ))
        };
        let Some(login_url) = self.cfg.login_url.clone() else {
            return fail(
                self,
                AuthorizeError::ServerError,
                "no login page is configured for this server",
            );
        };
        if !room(&mut self.flow.pending, |p| p.expires > now) {
            return fail(
                self,
                AuthorizeError::ServerError,
                "too many pending sign-ins",
            );
        }
        let Ok(id) = oauth::random_token(32) else {
            return fail(self, AuthorizeError::ServerError, "randomness failed");
        };
        self.flow.pending.insert(
            id.to_string(),
            Pending {
                request,
                subject: None,
                expires: now + PENDING_TTL,
            },
        );
        AuthorizeOutcome::Redirect(oauth::with_query(&login_url, &[("challenge", id.as_str())]))
    }

    /// RFC 9126: an authenticated client pushes its authorization request; the answer is the
    /// `request_uri` to send the browser with (single use, 60 s). The same checks as at the
    /// authorization endpoint, answered as JSON errors.
    pub fn push_request(
        &mut self,
        auth: &super::msg::ClientAuth,
        params: &[(String, String)],
        now: u64,
    ) -> Result<(String, u64), Error> {
        let client_id = self.authenticate(auth, now)?.client_id.clone();
        if text(params, "client_id").is_some_and(|c| c != client_id)
            || text(params, "request_uri").is_some()
        {
            return Err(Error::Authorize(
                AuthorizeError::InvalidRequest,
                "client_id must be the authenticated client's; request_uri is not allowed here",
            ));
        }
        let mut params = params.to_vec();
        params.retain(|(k, _)| k != "client_id");
        params.push(("client_id".into(), client_id));
        let request = self.validate_request(&params).map_err(|r| match r {
            Rejection::Page(why) => Error::Authorize(AuthorizeError::InvalidRequest, why),
            Rejection::Redirect { error, why, .. } => Error::Authorize(error, why),
        })?;
        if !room(&mut self.flow.pushed, |p| p.expires > now) {
            return Err(Error::Authorize(
                AuthorizeError::ServerError,
                "too many pushed requests",
            ));
        }
        let id = oauth::random_token(32).map_err(|_| corrupt("random"))?;
        let uri = format!("urn:ietf:params:oauth:request_uri:{}", id.as_str());
        self.flow.pushed.insert(
            uri.clone(),
            Pending {
                request,
                subject: None,
                expires: now + PUSHED_TTL,
            },
        );
        Ok((uri, PUSHED_TTL))
    }

    /// The service a `resource` (RFC 8707) names, if the client may have it.
    pub(super) fn audience_of(&self, resource: &str, client: &Client) -> Option<String> {
        self.cfg
            .resources
            .iter()
            .find(|(name, uri)| {
                resource.trim_end_matches('/') == uri.trim_end_matches('/')
                    || resource == format!("urn:cryptoutil:{name}")
            })
            .map(|(name, _)| name.clone())
            .filter(|name| client.audiences.contains(name))
    }

    fn pending(&self, challenge: &str, now: u64) -> Result<&Pending, Error> {
        self.flow
            .pending
            .get(challenge)
            .filter(|p| p.expires > now)
            .ok_or(Error::NotFound {
                what: "sign-in request",
            })
    }

    fn view(&self, p: &Pending) -> LoginView {
        LoginView {
            client_name: self
                .clients
                .get(&p.request.client_id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            scopes: p.request.scopes.clone(),
            tenant: p.request.tenant.clone(),
            redirect_origin: origin_of(&p.request.redirect_uri),
            username: p.subject.as_ref().map(|s| s.username.clone()),
            any_tenant: self.any_tenant(&p.request),
        }
    }

    fn any_tenant(&self, request: &AuthRequest) -> bool {
        self.clients
            .get(&request.client_id)
            .is_some_and(|c| c.any_tenant)
    }

    /// The tenant a sign-in is for: the one the form names when the client admits any tenant,
    /// else the client's.
    fn sign_in_tenant(&self, request: &AuthRequest, asked: Option<&str>) -> String {
        match asked.filter(|t| !t.is_empty() && t.len() <= 64) {
            Some(t) if self.any_tenant(request) => t.to_owned(),
            _ => request.tenant.clone(),
        }
    }

    fn session(&self, cookie: Option<&str>, now: u64) -> Option<&Session> {
        let cookie = cookie?;
        self.flow
            .sessions
            .get(&oauth::token_digest(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .filter(|s| {
                self.users
                    .get(&(s.subject.tenant.clone(), s.subject.username.clone()))
                    .is_some_and(|u| u.id == s.subject.user_id)
            })
    }

    /// Opening the login page: the form, or straight back to the client when a live session
    /// of the request's tenant satisfies it (and `prompt=login` did not ask for a new sign-in);
    /// `prompt=none` without one goes back with `login_required`.
    pub fn login_start(
        &mut self,
        challenge: &str,
        cookie: Option<&str>,
        now: u64,
    ) -> Result<LoginStart, Error> {
        let pending = self.pending(challenge, now)?;
        let request = pending.request.clone();
        let view = self.view(pending);
        let session = self
            .session(cookie, now)
            .filter(|s| s.subject.tenant == request.tenant || self.any_tenant(&request))
            .filter(|s| {
                request
                    .max_age
                    .is_none_or(|m| now.saturating_sub(s.subject.auth_time) <= m)
            })
            .map(|s| s.subject.clone());
        match (request.prompt, session) {
            (Prompt::Login, _) => Ok(LoginStart::Form(view)),
            (_, Some(subject)) => {
                self.flow.pending.remove(challenge);
                Ok(
                    match self.after_sign_in(challenge, request, subject, now)? {
                        Next::Redirect(to) => LoginStart::Redirect(to),
                        Next::Consent(view) => LoginStart::Consent(view),
                    },
                )
            }
            (Prompt::None, None) => {
                self.flow.pending.remove(challenge);
                Ok(LoginStart::Redirect(self.error_redirect(
                    &request.redirect_uri,
                    request.state.as_deref(),
                    AuthorizeError::LoginRequired,
                    "nobody is signed in",
                )))
            }
            (Prompt::Default, None) => Ok(LoginStart::Form(view)),
        }
    }

    /// Before checking a password: the request must be pending and the name not locked out.
    /// Unknown names get the dummy record, and lock out like real ones, so neither message nor
    /// timing tells whether a name exists.
    pub fn login_check(
        &mut self,
        challenge: &str,
        tenant: Option<&str>,
        username: &str,
        now: u64,
    ) -> Result<LoginCheck, Error> {
        let pending = self.pending(challenge, now)?;
        let tenant = self.sign_in_tenant(&pending.request, tenant);
        let view = self.view(pending);
        let key = (tenant.clone(), username.to_ascii_lowercase());
        if self
            .flow
            .failures
            .get(&key)
            .is_some_and(|f| f.locked_until > now)
        {
            return Ok(LoginCheck::Answer(LoginOutcome::Failed {
                message: LOGIN_LOCKED,
                view,
            }));
        }
        Ok(match self.users.get(&(tenant, username.to_owned())) {
            Some(u) if username.len() <= 128 => LoginCheck::Verify {
                hash: u.password_hash.clone(),
                exists: true,
            },
            _ => LoginCheck::Verify {
                hash: self.flow.dummy_hash.clone(),
                exists: false,
            },
        })
    }

    /// After the password check: a code and a session, or a failure counted against the name.
    pub fn login_finish(
        &mut self,
        challenge: &str,
        tenant: Option<&str>,
        username: &str,
        ok: bool,
        now: u64,
    ) -> Result<LoginOutcome, Error> {
        let pending = self.pending(challenge, now)?;
        let request = pending.request.clone();
        let view = self.view(pending);
        let tenant = self.sign_in_tenant(&request, tenant);
        let key = (tenant.clone(), username.to_ascii_lowercase());
        let user = self
            .users
            .get(&(tenant.clone(), username.to_owned()))
            .filter(|_| ok)
            .cloned();
        let Some(user) = user else {
            if !room(&mut self.flow.failures, |f| now < f.last + FAILURE_MEMORY) {
                return Ok(LoginOutcome::Failed {
                    message: LOGIN_LOCKED,
                    view,
                });
            }
            let f = self.flow.failures.entry(key).or_default();
            if now >= f.last + FAILURE_MEMORY {
                *f = Failures::default();
            }
            f.count += 1;
            f.last = now;
            if f.count >= FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES).min(10);
                f.locked_until = now + (FIRST_LOCKOUT << doublings).min(MAX_LOCKOUT);
            }
            tracing::info!(%tenant, failures = f.count, "sign-in failed");
            return Ok(LoginOutcome::Failed {
                message: LOGIN_FAILED,
                view,
            });
        };
        self.flow.failures.remove(&key);
        self.flow.pending.remove(challenge);
        if !room(&mut self.flow.sessions, |s| s.expires > now) {
            return Err(Error::Unavailable {
                actor: "Authz",
                why: crate::error::Unavailability::Timeout,
            });
        }
        let cookie = oauth::random_token(32).map_err(|_| corrupt("random"))?;
        let sid = oauth::random_token(16).map_err(|_| corrupt("random"))?;
        let subject = Subject {
            user_id: user.id.clone(),
            username: user.username.clone(),
            tenant: user.tenant.clone(),
            roles: user.roles.clone(),
            auth_time: now,
            sid: sid.to_string(),
        };
        let max_age = self.cfg.session_ttl.as_secs();
        self.flow.sessions.insert(
            oauth::token_digest(cookie.as_bytes()),
            Session {
                subject: subject.clone(),
                expires: now + max_age,
            },
        );
        tracing::info!(tenant = %user.tenant, sub = %user.id, "signed in");
        Ok(LoginOutcome::Done {
            next: self.after_sign_in(challenge, request, subject, now)?,
            session: cookie,
            max_age,
        })
    }

    /// After a sign-in: the code, unless a third-party client asks for scopes the user has not
    /// granted it yet; then the request waits (under the same challenge) for the consent page,
    /// or with `prompt=none` goes back with `consent_required`.
    fn after_sign_in(
        &mut self,
        challenge: &str,
        mut request: AuthRequest,
        subject: Subject,
        now: u64,
    ) -> Result<Next, Error> {
        if !subject.roles.iter().any(|r| r == "admin") {
            request.scopes.retain(|s| s != "identity");
        }
        let first_party = self
            .clients
            .get(&request.client_id)
            .is_some_and(|c| c.first_party);
        let granted = self
            .consents
            .get(&(subject.user_id.clone(), request.client_id.clone()))
            .is_some_and(|g| request.scopes.iter().all(|s| g.contains(s)));
        if first_party || granted {
            return Ok(Next::Redirect(self.code_redirect(request, subject, now)?));
        }
        if request.prompt == Prompt::None {
            return Ok(Next::Redirect(self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::ConsentRequired,
                "the user has not consented to this request",
            )));
        }
        let pending = Pending {
            request,
            subject: Some(subject),
            expires: now + PENDING_TTL,
        };
        let view = self.view(&pending);
        self.flow.pending.insert(challenge.to_owned(), pending);
        Ok(Next::Consent(view))
    }

    /// The consent page's answer for a signed-in pending request: allowed, the scopes are
    /// recorded (to persist before answering) and the code issued; denied, `access_denied`.
    pub fn consent(
        &mut self,
        challenge: &str,
        allow: bool,
        now: u64,
    ) -> Result<(String, Persist), Error> {
        let waiting = self
            .pending(challenge, now)
            .ok()
            .and_then(|p| p.subject.clone())
            .is_some();
        let pending = match self.flow.pending.remove(challenge) {
            Some(p) if waiting => p,
            _ => {
                return Err(Error::NotFound {
                    what: "sign-in request",
                })
            }
        };
        let (request, Some(subject)) = (pending.request, pending.subject) else {
            return Err(Error::NotFound {
                what: "sign-in request",
            });
        };
        if !allow {
            tracing::info!(client = %request.client_id, "consent denied");
            let to = self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::AccessDenied,
                "the user denied the request",
            );
            return Ok((to, Persist::default()));
        }
        let key = (subject.user_id.clone(), request.client_id.clone());
        let mut scopes = self.consents.get(&key).cloned().unwrap_or_default();
        for s in &request.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        self.consents.insert(key, scopes.clone());
        let record = ConsentRecord {
            tenant: subject.tenant.clone(),
            user_id: subject.user_id.clone(),
            client_id: request.client_id.clone(),
            scopes,
            granted: now,
        };
        let to = self.code_redirect(request, subject, now)?;
        Ok((
            to,
            Persist {
                consents: vec![record],
                ..Persist::default()
            },
        ))
    }

    /// A fresh single-use code for `request`, as the redirect back to the client.
    fn code_redirect(
        &mut self,
        mut request: AuthRequest,
        subject: Subject,
        now: u64,
    ) -> Result<String, Error> {
        // Roles bound the API scopes: only administrators get `identity`.
        if !subject.roles.iter().any(|r| r == "admin") {
            request.scopes.retain(|s| s != "identity");
        }
        if !room(&mut self.flow.codes, |c| c.expires > now) {
            return Ok(self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::ServerError,
                "too many unredeemed codes",
            ));
        }
        let code = oauth::random_token(32).map_err(|_| corrupt("random"))?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s.as_str()));
        }
        params.push(("iss", self.cfg.issuer.as_str()));
        let redirect = oauth::with_query(&request.redirect_uri, &params);
        self.flow.codes.insert(
            oauth::token_digest(code.as_bytes()),
            CodeGrant {
                request,
                subject,
                expires: now + CODE_TTL,
            },
        );
        Ok(redirect)
    }

    /// The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6). A code is single-use: a
    /// second presentation revokes what the first one produced (RFC 9700 §4.5).
    pub(super) fn code_grant(
        &mut self,
        client: &Client,
        req: &TokenRequest,
        now: u64,
    ) -> TokenDecision {
        let invalid = || Err(refuse(TokenError::InvalidGrant)).into();
        if !client.allows(AUTHORIZATION_CODE) {
            return Err(refuse(TokenError::UnauthorizedClient)).into();
        }
        let (Some(code), Some(verifier)) = (&req.code, &req.code_verifier) else {
            return Err(refuse(TokenError::InvalidRequest)).into();
        };
        let digest = oauth::token_digest(code.as_bytes());
        if let Some(used) = self.flow.used_codes.remove(&digest) {
            tracing::warn!(client = %client.client_id, "authorization code reused: revoking what it issued");
            let mut persist = Persist::default();
            persist.revoked.extend(used.jti);
            if let Some(f) = used.family.and_then(|id| self.families.get_mut(&id)) {
                persist.revoke_family(f);
            }
            return TokenDecision {
                result: Err(refuse(TokenError::InvalidGrant)),
                persist,
            };
        }
        let Some(grant) = self.flow.codes.remove(&digest) else {
            return invalid();
        };
        let r = &grant.request;
        // A failed redemption burns the code: no guessing the verifier over several tries.
        if grant.expires <= now
            || r.client_id != client.client_id
            || req.redirect_uri.as_deref() != Some(r.redirect_uri.as_str())
            || !oauth::pkce_s256_matches(verifier, &r.code_challenge)
        {
            return invalid();
        }
        let audiences = match &req.resource {
            None => r.audiences.clone(),
            Some(res) => match self.audience_of(res, client) {
                Some(a) if r.audiences.contains(&a) => vec![a],
                _ => return Err(refuse(TokenError::InvalidTarget)).into(),
            },
        };
        let decision = self.user_tokens(
            client,
            &grant.subject,
            r.scopes.clone(),
            audiences,
            r.nonce.as_deref(),
            None,
            now,
        );
        if let Ok(g) = &decision.result {
            self.flow.used_codes.retain(|_, u| u.forget_at > now);
            if self.flow.used_codes.len() < MAX_ENTRIES {
                self.flow.used_codes.insert(
                    digest,
                    UsedCode {
                        forget_at: now + USED_CODE_MEMORY,
                        jti: g.jti.clone(),
                        family: decision.persist.families.first().map(|f| f.id.clone()),
                    },
                );
            }
        }
        decision
    }

    /// The refresh token grant: rotated on every use; presenting a rotated-out token of a
    /// family revokes the whole family (RFC 9700 §4.14.2).
    pub(super) fn refresh_grant(
        &mut self,
        client: &Client,
        req: &TokenRequest,
        now: u64,
    ) -> TokenDecision {
        let invalid = || Err(refuse(TokenError::InvalidGrant)).into();
        if !client.allows(REFRESH_TOKEN) {
            return Err(refuse(TokenError::UnauthorizedClient)).into();
        }
        let Some(token) = &req.refresh_token else {
            return Err(refuse(TokenError::InvalidRequest)).into();
        };
        let Some((family_id, secret)) = token.split_once('.') else {
            return invalid();
        };
        let Some(family) = self.families.get_mut(family_id) else {
            return invalid();
        };
        if family.client_id != client.client_id || family.revoked || family.expires <= now {
            return invalid();
        }
        if let Some(bound) = &family.jkt {
            if req.dpop.as_ref().map(|p| &p.jkt) != Some(bound) {
                return Err(refuse(TokenError::InvalidDpopProof)).into();
            }
        }
        let presented = b64::encode(&oauth::token_digest(secret.as_bytes()));
        if !oauth::constant_time_eq(presented.as_bytes(), family.secret_digest.as_bytes()) {
            tracing::warn!(client = %client.client_id, "refresh token reused: revoking its family");
            let mut persist = Persist::default();
            persist.revoke_family(family);
            return TokenDecision {
                result: Err(refuse(TokenError::InvalidGrant)),
                persist,
            };
        }
        let family = family.clone();
        let user = self
            .users
            .get(&(family.tenant.clone(), family.username.clone()))
            .filter(|u| u.id == family.user_id)
            .cloned();
        let Some(user) = user else {
            return invalid();
        };
        let scopes = match req.scope.as_deref().map(oauth::parse_scope) {
            None => family.scopes.clone(),
            Some(Some(asked)) if asked.iter().all(|a| family.scopes.contains(a)) => asked,
            Some(_) => return Err(refuse(TokenError::InvalidScope)).into(),
        };
        let subject = Subject {
            user_id: user.id.clone(),
            username: user.username.clone(),
            tenant: user.tenant.clone(),
            roles: user.roles.clone(),
            auth_time: family.auth_time,
            sid: family.sid.clone(),
        };
        let audiences = family.audiences.clone();
        self.user_tokens(client, &subject, scopes, audiences, None, Some(family), now)
    }

    /// An access token for a user (and a refresh token, rotating `family` or starting one, when
    /// the client may refresh; an ID token when `openid` was granted).
    #[allow(clippy::too_many_arguments)]
    fn user_tokens(
        &mut self,
        client: &Client,
        subject: &Subject,
        scopes: Vec<String>,
        audiences: Vec<String>,
        nonce: Option<&str>,
        family: Option<Family>,
        now: u64,
    ) -> TokenDecision {
        let mut grant = match self.access_grant(
            client,
            &subject.user_id,
            &subject.tenant,
            &scopes,
            &audiences,
            now,
        ) {
            Ok(g) => g,
            Err(e) => return Err(e).into(),
        };
        grant
            .claims
            .insert("auth_time".into(), json!(subject.auth_time));
        let mut persist = Persist::default();
        if client.allows(REFRESH_TOKEN) {
            let random = |n| oauth::random_token(n).map_err(|_| corrupt("random"));
            let (id, secret) = match (random(16), random(32)) {
                (Ok(i), Ok(s)) => (i, s),
                (Err(e), _) | (_, Err(e)) => return Err(e).into(),
            };
            let mut f = family.unwrap_or_else(|| Family {
                id: id.to_string(),
                client_id: client.client_id.clone(),
                tenant: subject.tenant.clone(),
                user_id: subject.user_id.clone(),
                username: subject.username.clone(),
                scopes: scopes.clone(),
                audiences: audiences.clone(),
                auth_time: subject.auth_time,
                sid: subject.sid.clone(),
                generation: 0,
                secret_digest: String::new(),
                expires: now + self.cfg.refresh_token_ttl.as_secs(),
                revoked: false,
                last_jti: None,
                jkt: None,
            });
            f.generation += 1;
            f.secret_digest = b64::encode(&oauth::token_digest(secret.as_bytes()));
            f.last_jti = grant.jti.clone();
            grant.refresh_token = Some(Zeroizing::new(format!("{}.{}", f.id, secret.as_str())));
            self.families.insert(f.id.clone(), f.clone());
            persist.families.push(f);
        }
        if scopes.iter().any(|s| s == "openid") {
            let mut id = Map::new();
            id.insert("iss".into(), json!(self.cfg.issuer));
            id.insert("sub".into(), json!(subject.user_id));
            id.insert("aud".into(), json!(client.client_id));
            id.insert("azp".into(), json!(client.client_id));
            id.insert("iat".into(), json!(now));
            id.insert(
                "exp".into(),
                json!(now + self.cfg.access_token_ttl.as_secs()),
            );
            id.insert("auth_time".into(), json!(subject.auth_time));
            if let Some(n) = nonce {
                id.insert("nonce".into(), json!(n));
            }
            id.insert("acr".into(), json!(ACR_PASSWORD));
            id.insert("amr".into(), json!(["pwd"]));
            id.insert("sid".into(), json!(subject.sid));
            if scopes.iter().any(|s| s == "profile") {
                id.insert("preferred_username".into(), json!(subject.username));
            }
            id.insert("tenant".into(), json!(subject.tenant));
            grant.id_token = Some(id);
        }
        TokenDecision {
            result: Ok(grant),
            persist,
        }
    }

    /// A refresh token issued to `client_id`, for RFC 7009 revocation: its family, revoked.
    pub(super) fn revoke_refresh(&mut self, client_id: &str, token: &str) -> Persist {
        let mut persist = Persist::default();
        let Some((family_id, secret)) = token.split_once('.') else {
            return persist;
        };
        let presented = b64::encode(&oauth::token_digest(secret.as_bytes()));
        if let Some(f) = self.families.get_mut(family_id) {
            if f.client_id == client_id
                && !f.revoked
                && oauth::constant_time_eq(presented.as_bytes(), f.secret_digest.as_bytes())
            {
                persist.revoke_family(f);
            }
        }
        persist
    }

    /// OpenID Connect userinfo: the claims of the access token's user, if the token is ours,
    /// live, and carries `openid`.
    pub fn userinfo(&mut self, token: &str, now: u64) -> Result<Value, Error> {
        let invalid = || refuse(TokenError::InvalidGrant);
        let claims = self.live_claims(token, now).ok_or_else(invalid)?;
        let scopes: Vec<&str> = claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(' ')
            .collect();
        if !scopes.contains(&"openid") {
            return Err(Error::Forbidden {
                reason: "insufficient_scope",
            });
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tenant = claims
            .get("tenant")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let user = self
            .users
            .values()
            .find(|u| u.id == sub && u.tenant == tenant)
            .ok_or_else(invalid)?;
        let mut out = Map::new();
        out.insert("sub".into(), json!(user.id));
        out.insert("tenant".into(), json!(user.tenant));
        if scopes.contains(&"profile") {
            out.insert("preferred_username".into(), json!(user.username));
        }
        Ok(Value::Object(out))
    }

    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the ID token hint names the
    /// session to end (expired hints are accepted: logging out late is still logging out).
    /// Its sessions end and its refresh families are revoked; the browser goes back to the
    /// client only to a registered `post_logout_redirect_uri`.
    pub fn logout(
        &mut self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        now: u64,
    ) -> Result<LogoutOutcome, Error> {
        let bad = Error::BadRequest {
            reason: "id_token_hint: an ID token this server issued is required",
        };
        let hint = id_token_hint.filter(|h| h.len() <= 16 * 1024).ok_or(bad)?;
        let set = JwkSet {
            keys: self.published(now).cloned().collect(),
        };
        let v = jwt::Validation {
            issuer: Some(self.cfg.issuer.clone()),
            audience: None,
            typ: Some("JWT".into()),
            leeway: std::time::Duration::from_secs(u64::MAX / 4),
            require_exp: true,
        };
        let claims =
            jwt::verify(hint, &set, &[JwsAlg::ES256], &v, now).map_err(|_| Error::BadRequest {
                reason: "id_token_hint: an ID token this server issued is required",
            })?;
        let field = |n: &str| {
            claims
                .get(n)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (sid, client_id) = (field("sid"), field("aud"));
        if sid.is_empty() {
            return Err(Error::BadRequest {
                reason: "id_token_hint: an ID token this server issued is required",
            });
        }
        self.flow.sessions.retain(|_, s| s.subject.sid != sid);
        let mut persist = Persist::default();
        for f in self.families.values_mut() {
            if f.sid == sid && !f.revoked {
                persist.revoke_family(f);
            }
        }
        tracing::info!(client = %client_id, "signed out (RP-initiated)");
        let redirect = post_logout_redirect_uri
            .filter(|uri| {
                self.clients
                    .get(&client_id)
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri))
            })
            .map(|uri| match state {
                Some(s) => oauth::with_query(uri, &[("state", s)]),
                None => uri.to_owned(),
            });
        Ok(LogoutOutcome { redirect, persist })
    }

    /// Blocking: makes families and revocations durable.
    pub fn persist_flow(store: &Store, persist: &Persist) -> Result<Loaded, Error> {
        let mut writes = Vec::with_capacity(
            persist.families.len() + persist.revoked.len() + persist.consents.len(),
        );
        for f in &persist.families {
            writes.push(store.sealed_write(
                Table::IdentityRefresh,
                f.id.as_bytes(),
                &record_json(f)?,
            )?);
        }
        for c in &persist.consents {
            writes.push(store.sealed_write(
                Table::IdentityConsents,
                format!("{}/{}/{}", c.tenant, c.user_id, c.client_id).as_bytes(),
                &record_json(c)?,
            )?);
        }
        for (jti, exp) in &persist.revoked {
            let record = json!({ "exp": exp }).to_string();
            writes.push(store.sealed_write(
                Table::IdentityRevoked,
                jti.as_bytes(),
                record.as_bytes(),
            )?);
        }
        store.apply(writes)?;
        Ok(Loaded::with_revocations(persist.revoked.clone()))
    }
}
