//! The credential seam. `/service/**` takes bearer tokens, `/browser/**` a session cookie; a
//! bearer token is refused on `/browser/**` and a cookie on `/service/**`. State-changing
//! `/browser/**` requests also need the session's CSRF token. Without a trusted issuer the
//! `Authenticator` is [`DenyAll`]: every route not on the public allow-list answers 401.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use cryptoutil_actors::issuer_jwks::{pin_issuer_key, IssuerJwksHandle};
use cryptoutil_actors::sessions::SessionsHandle;
use cryptoutil_protocols::ids::TenantId;
use cryptoutil_protocols::jose::{b64, jwt, JwkSet, JwsAlg};

use crate::error::ApiError;
pub use crate::error::{AuthFailure, Realm};

pub mod federated;

pub use federated::IdentityValidation;

/// The browser session cookie of `service`: HttpOnly, Secure, SameSite=Strict, path `/`.
/// `__Host-` binds it to the host; the service is in the name because cookies do not isolate
/// ports, and in one process every service shares 127.0.0.1.
pub fn session_cookie(service: &str) -> String {
    format!("__Host-cryptoutil-{service}-session")
}

/// The script-readable cookie carrying the session's CSRF token, which state-changing
/// `/browser` requests must echo in `X-CSRF-Token`.
pub fn csrf_cookie(service: &str) -> String {
    format!("__Host-cryptoutil-{service}-csrf")
}

/// The header a state-changing `/browser` request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject (user or client id).
    pub subject: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// For a browser session: SHA-256 of its CSRF token.
    pub csrf: Option<[u8; 32]>,
    /// For a DPoP-bound token (`cnf.jkt`): the thumbprint of the key every request must prove.
    pub jkt: Option<String>,
    /// For a certificate-bound token (`cnf.x5t#S256`, RFC 8705 §3): the SHA-256 of the client
    /// certificate every request's connection must present.
    pub x5t: Option<String>,
}

/// What an [`Authenticator`] returns: a boxed future, so the trait stays object-safe and a
/// validation may wait (for an issuer's key set to be fetched).
pub type AuthFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Principal, AuthFailure>> + Send + 'a>,
>;

/// Validates credentials. Implementations must compare secrets in constant time.
pub trait Authenticator: Send + Sync + 'static {
    /// Validates an OAuth bearer access token.
    fn bearer<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
    /// Validates a browser session cookie value.
    fn session<'a>(&'a self, cookie: &'a str) -> AuthFuture<'a>;
}

/// Accepts nothing: the authenticator until identity-authz issues credentials.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl Authenticator for DenyAll {
    fn bearer<'a>(&'a self, _token: &'a str) -> AuthFuture<'a> {
        Box::pin(async { Err(AuthFailure::Invalid) })
    }

    fn session<'a>(&'a self, _cookie: &'a str) -> AuthFuture<'a> {
        Box::pin(async { Err(AuthFailure::Invalid) })
    }
}

/// Validates bearer tokens as JWTs from trusted issuers: signature with an asymmetric algorithm,
/// `iss`, `exp`/`nbf`/`iat` with leeway, and `aud` naming this service. The token must carry a
/// `tenant` claim; `scope` (space-separated) becomes the principal's scopes. An issuer's keys are
/// a static set from the configuration or a set fetched from its `jwks_uri` by an
/// [`IssuerJwks`](cryptoutil_actors::issuer_jwks) actor. A browser session stands for the access
/// token its sign-in obtained: `session` looks it up and validates that token the same way.
pub struct JwtBearer {
    issuers: Vec<(String, IssuerKeys)>,
    identity: Option<federated::IdentityValidation>,
    sessions: Option<SessionsHandle>,
    audience: String,
    leeway: std::time::Duration,
    /// Tokens already verified, by SHA-256 of the token, until their `exp` (or, for tokens of a
    /// federated identity-authz, for its cache time): a signature check or an introspection
    /// costs more than most requests it guards. Bounded; cleared when full.
    verified: std::sync::Mutex<HashMap<[u8; 32], (Principal, u64)>>,
}

/// Where one issuer's keys come from.
pub enum IssuerKeys {
    /// A set given in the configuration.
    Static(Arc<JwkSet>),
    /// A set fetched from the issuer and cached by an actor.
    Remote(IssuerJwksHandle),
}

/// Most verified tokens remembered at once.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Token algorithms accepted from issuers: asymmetric only (a shared HMAC key would let every
/// service mint tokens).
const BEARER_ALGS: [JwsAlg; 10] = {
    use JwsAlg::*;
    [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA,
    ]
};

impl JwtBearer {
    /// For the service named `audience`: the configured issuers in order, each with a static set
    /// (`jwks`) or, for those with a `jwks_uri`, the next handle of `remote`.
    pub fn new(
        cfg: &crate::config::AuthConfig,
        audience: &str,
        remote: &[IssuerJwksHandle],
    ) -> Result<Self, String> {
        let mut remote = remote.iter();
        let mut issuers = Vec::with_capacity(cfg.trusted_issuers.len());
        for (i, t) in cfg.trusted_issuers.iter().enumerate() {
            let keys = match (&t.jwks, &t.jwks_uri) {
                (Some(jwks), None) => {
                    let mut set = JwkSet::parse(jwks)
                        .map_err(|e| format!("auth.trusted_issuers[{i}].jwks: {e}"))?;
                    set.keys = set
                        .keys
                        .into_iter()
                        .map(|k| {
                            pin_issuer_key(k)
                                .map_err(|e| format!("auth.trusted_issuers[{i}].jwks: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if set.keys.is_empty() {
                        return Err(format!(
                            "auth.trusted_issuers[{i}].jwks holds no usable key"
                        ));
                    }
                    IssuerKeys::Static(Arc::new(set))
                }
                (None, Some(_)) => IssuerKeys::Remote(
                    remote
                        .next()
                        .filter(|h| h.issuer() == t.issuer)
                        .cloned()
                        .ok_or_else(|| {
                            format!(
                                "auth.trusted_issuers[{i}]: no key-set actor for {}",
                                t.issuer
                            )
                        })?,
                ),
                _ => {
                    return Err(format!(
                        "auth.trusted_issuers[{i}]: set exactly one of jwks and jwks_uri"
                    ))
                }
            };
            issuers.push((t.issuer.clone(), keys));
        }
        Ok(Self {
            issuers,
            identity: None,
            sessions: None,
            audience: audience.to_owned(),
            leeway: cfg.leeway,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }
}

impl Authenticator for JwtBearer {
    fn bearer<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(self.bearer_token(token))
    }

    fn session<'a>(&'a self, cookie: &'a str) -> AuthFuture<'a> {
        Box::pin(self.session_cookie(cookie))
    }
}

impl JwtBearer {
    /// Tokens of identity-authz's issuer are validated by identity-authz (introspection), with
    /// `identity`'s fallback while it is unavailable.
    pub fn with_identity(mut self, identity: federated::IdentityValidation) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Browser sessions of this service are looked up in `sessions`.
    pub fn with_sessions(mut self, sessions: SessionsHandle) -> Self {
        self.sessions = Some(sessions);
        self
    }

    async fn session_cookie(&self, cookie: &str) -> Result<Principal, AuthFailure> {
        let sessions = self.sessions.as_ref().ok_or(AuthFailure::Invalid)?;
        if cookie.len() > 256 {
            return Err(AuthFailure::Invalid);
        }
        let (access, csrf) = sessions
            .lookup(zeroize::Zeroizing::new(cookie.to_owned()))
            .await
            .map_err(|e| {
                tracing::warn!(%e, "session lookup failed");
                AuthFailure::Invalid
            })?
            .ok_or(AuthFailure::Invalid)?;
        let mut principal = self.bearer_token(&access).await?;
        principal.csrf = Some(cryptoutil_protocols::oauth::token_digest(csrf.as_bytes()));
        Ok(principal)
    }

    async fn bearer_token(&self, token: &str) -> Result<Principal, AuthFailure> {
        let now = cryptoutil_actors::now_unix();
        let digest = cryptoutil_protocols::oauth::token_digest(token.as_bytes());
        {
            let cache = self
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((principal, exp)) = cache.get(&digest) {
                if now < *exp {
                    return Ok(principal.clone());
                }
            }
        }
        let (issuer, keys, unverified) = self.issuer_of(token)?;
        let (principal, until) = match &self.identity {
            Some(identity) if identity.issuer() == issuer => {
                identity
                    .validate(self, token, &unverified, keys, now)
                    .await?
            }
            _ => self.verify_locally(token, issuer, keys, now).await?,
        };
        if until > now {
            let mut cache = self
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, (principal.clone(), until));
        }
        Ok(principal)
    }

    /// Verifies the token's signature with the issuer's keys (static, or the cached set) and
    /// its claims; the principal and its `exp`.
    pub(crate) async fn verify_locally(
        &self,
        token: &str,
        issuer: &str,
        keys: &IssuerKeys,
        now: u64,
    ) -> Result<(Principal, u64), AuthFailure> {
        let set = match keys {
            IssuerKeys::Static(set) => Arc::clone(set),
            IssuerKeys::Remote(handle) => remote_keys(handle, token).await?,
        };
        self.verify_token(token, issuer, &set, now)
    }

    /// The service these tokens must name in `aud`.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// The trusted issuer the token's `iss` names, read unverified only to pick its keys, and
    /// the unverified claims (for the checks that may spare a federated identity-authz a call).
    fn issuer_of(
        &self,
        token: &str,
    ) -> Result<
        (
            &str,
            &IssuerKeys,
            serde_json::Map<String, serde_json::Value>,
        ),
        AuthFailure,
    > {
        let claims = unverified_claims(token).ok_or(AuthFailure::Invalid)?;
        let iss = claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .ok_or(AuthFailure::Invalid)?;
        let (issuer, keys) = self
            .issuers
            .iter()
            .find(|(i, _)| i == iss)
            .map(|(i, k)| (i.as_str(), k))
            .ok_or(AuthFailure::Invalid)?;
        Ok((issuer, keys, claims))
    }

    /// Full verification: signature, issuer, audience, time claims; returns the principal and `exp`.
    fn verify_token(
        &self,
        token: &str,
        issuer: &str,
        keys: &JwkSet,
        now: u64,
    ) -> Result<(Principal, u64), AuthFailure> {
        let v = jwt::Validation {
            issuer: Some(issuer.to_owned()),
            audience: Some(self.audience.clone()),
            typ: None,
            leeway: self.leeway,
            require_exp: true,
        };
        let claims =
            jwt::verify(token, keys, &BEARER_ALGS, &v, now).map_err(|_| AuthFailure::Invalid)?;
        principal_of(&claims)
    }
}

/// A compact JWS's payload as JSON claims, NOT verified: only to choose how to verify it.
fn unverified_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = b64::decode(payload, "payload").ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The principal an access token's (verified or introspected) claims name, and its `exp`: a
/// `tenant`, a subject (`sub` or `client_id`), the scopes, and any key binding (`cnf`).
pub(crate) fn principal_of(
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Principal, u64), AuthFailure> {
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .ok_or(AuthFailure::Invalid)?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let tenant = claims
        .get("tenant")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(AuthFailure::Invalid)?;
    let subject = text("sub")
        .or_else(|| text("client_id"))
        .ok_or(AuthFailure::Invalid)?;
    let scopes = text("scope")
        .map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let cnf = |member: &str| {
        claims
            .get("cnf")
            .and_then(|c| c.get(member))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Ok((
        Principal {
            subject,
            tenant,
            scopes,
            csrf: None,
            jkt: cnf("jkt"),
            x5t: cnf("x5t#S256"),
        },
        exp,
    ))
}

/// The fetched set to verify `token` with: the cached one when it is fresh and resolves the
/// token's `kid`, else whatever a refresh leaves published (the actor rate-limits refreshes, so
/// tokens with made-up `kid`s cannot turn into a stream of fetches). With nothing ever fetched
/// the answer is 503: the token may well be valid.
async fn remote_keys(handle: &IssuerJwksHandle, token: &str) -> Result<Arc<JwkSet>, AuthFailure> {
    let kid = cryptoutil_protocols::jose::header::compact_kid(token);
    if let Some(published) = handle.current() {
        if !handle.is_stale(&published) && published.set.resolve(kid.as_deref()).is_some() {
            return Ok(Arc::clone(&published.set));
        }
    }
    // A dead or wedged actor must not lock everyone out while a good set is cached.
    let published = match handle.refresh().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(issuer = handle.issuer(), %e, "issuer key refresh unavailable");
            handle.current()
        }
    };
    published
        .map(|p| Arc::clone(&p.set))
        .ok_or(AuthFailure::IssuerUnavailable)
}

impl Principal {
    /// The principal the credential middleware put on an authenticated request.
    pub fn of(parts: &axum::http::request::Parts) -> Result<&Self, ApiError> {
        parts.extensions.get::<Principal>().ok_or(ApiError::Actor(
            cryptoutil_actors::Error::Internal {
                what: "an authenticated route without its principal",
            },
        ))
    }

    /// 403 unless the principal holds `scope`.
    pub fn require_scope(
        &self,
        scope: cryptoutil_actors::Scope,
    ) -> Result<(), crate::error::ApiError> {
        if self.scopes.iter().any(|s| s == scope.as_str()) {
            Ok(())
        } else {
            Err(crate::error::ApiError::InsufficientScope {
                scope: scope.as_str(),
            })
        }
    }
}

/// The public allow-list of one stack, and the authenticator for everything else.
#[derive(Clone)]
pub struct AuthGate {
    realm: Realm,
    public: Arc<HashSet<(Method, &'static str)>>,
    auth: Arc<dyn Authenticator>,
    cookie: Arc<str>,
    /// DPoP proofs seen, (jkt, jti) -> forget-at: each proof is accepted once.
    proofs: Arc<std::sync::Mutex<HashMap<(String, String), u64>>>,
}

/// Most DPoP proofs remembered at once per gate.
const PROOFS_MAX: usize = 100_000;

impl AuthGate {
    /// A gate of `service` for `realm` letting `public` (method, route path) pairs through
    /// unauthenticated.
    pub fn new(
        service: &str,
        realm: Realm,
        public: HashSet<(Method, &'static str)>,
        auth: Arc<dyn Authenticator>,
    ) -> Self {
        Self {
            realm,
            public: Arc::new(public),
            auth,
            cookie: session_cookie(service).into(),
            proofs: Arc::default(),
        }
    }

    /// RFC 9449 §7: a DPoP-bound token comes with the `DPoP` scheme and a fresh proof by its
    /// key for this request (method, URI, `ath`); an unbound token never with the `DPoP`
    /// scheme.
    fn check_binding(
        &self,
        req: &RequestParts<'_>,
        scheme: Scheme,
        token: &str,
        principal: &Principal,
    ) -> Result<(), AuthFailure> {
        match (scheme, &principal.jkt) {
            (Scheme::Bearer, None) => Ok(()),
            (Scheme::Bearer, Some(_)) | (Scheme::Dpop, None) => Err(AuthFailure::Invalid),
            (Scheme::Dpop, Some(jkt)) => {
                let proof =
                    crate::dpop::proof(req.headers, req.uri, req.method.as_str(), Some(token))
                        .ok()
                        .flatten()
                        .filter(|p| p.jkt == *jkt)
                        .ok_or(AuthFailure::Invalid)?;
                let now = cryptoutil_actors::now_unix();
                let mut seen = self
                    .proofs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if seen.len() >= PROOFS_MAX {
                    seen.retain(|_, forget| *forget > now);
                }
                let key = (proof.jkt, proof.jti);
                if seen.len() >= PROOFS_MAX || seen.contains_key(&key) {
                    return Err(AuthFailure::Invalid);
                }
                let window = cryptoutil_actors::identity::authz::DPOP_WINDOW;
                seen.insert(key, proof.iat + 2 * window);
                Ok(())
            }
        }
    }

    /// Public routes are literal paths, compared with the raw request path before routing.
    fn is_public(&self, method: &Method, path: &str) -> bool {
        self.public
            .iter()
            .any(|(pm, pp)| pm == method && *pp == path)
    }

    /// Authenticates a request for this gate's realm.
    pub async fn authenticate(&self, req: &RequestParts<'_>) -> Result<Principal, AuthFailure> {
        let headers = req.headers;
        let bearer = bearer_token(headers);
        let cookie = cookie_value(headers, &self.cookie);
        match self.realm {
            Realm::Service => match (bearer, cookie) {
                (Some(Ok((scheme, token))), _) => {
                    let principal = self.auth.bearer(token).await?;
                    self.check_binding(req, scheme, token, &principal)?;
                    // RFC 8705 §3: a certificate-bound token only over a connection that
                    // presents that certificate.
                    if let Some(x5t) = &principal.x5t {
                        if req.peer.and_then(|p| p.thumbprint()).as_ref() != Some(x5t) {
                            return Err(AuthFailure::Invalid);
                        }
                    }
                    Ok(principal)
                }
                (Some(Err(())), _) => Err(AuthFailure::Invalid),
                (None, Some(_)) => Err(AuthFailure::WrongKind),
                (None, None) => Err(AuthFailure::Missing),
            },
            Realm::Browser => match (headers.contains_key(header::AUTHORIZATION), cookie) {
                (true, _) => Err(AuthFailure::WrongKind),
                (false, Some(value)) => self.auth.session(value).await,
                (false, None) => Err(AuthFailure::Missing),
            },
        }
    }
}

/// Middleware: public routes pass; every other request needs a valid credential of the realm.
pub async fn require_credentials(
    State(gate): State<AuthGate>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if gate.is_public(req.method(), req.uri().path()) {
        return Ok(next.run(req).await);
    }
    let principal = gate
        .authenticate(&RequestParts {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            peer: req.extensions().get::<crate::tls::PeerCertificates>(),
        })
        .await
        .map_err(|failure| match failure {
            AuthFailure::IssuerUnavailable => ApiError::IssuerUnavailable,
            failure => ApiError::Unauthorized {
                realm: gate.realm,
                failure,
            },
        })?;
    // A session's state-changing request must echo its CSRF token (synchronizer token: the
    // session holds it, a cookie only carries it to the page's script).
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if gate.realm == Realm::Browser && unsafe_method {
        let echoed = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| cryptoutil_protocols::oauth::token_digest(v.as_bytes()));
        let ok = match (principal.csrf, echoed) {
            (Some(expected), Some(got)) => {
                cryptoutil_protocols::oauth::constant_time_eq(&expected, &got)
            }
            _ => false,
        };
        if !ok {
            return Err(ApiError::Csrf);
        }
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// What authentication reads of a request (the request itself is not `Sync`).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Method.
    pub method: &'a Method,
    /// URI (with the authority under HTTP/2).
    pub uri: &'a axum::http::Uri,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The connection's client certificate chain, if it presented one.
    pub peer: Option<&'a crate::tls::PeerCertificates>,
}

/// How an access token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// RFC 6750.
    Bearer,
    /// RFC 9449: with a proof of possession in the `DPoP` header.
    Dpop,
}

/// `Authorization: Bearer <token>` or `DPoP <token>`: Some(Ok) for a well-formed one, Some(Err)
/// for another scheme or a malformed value, None when absent.
fn bearer_token(headers: &HeaderMap) -> Option<Result<(Scheme, &str), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, token) = t.split_once(' ').ok_or(())?;
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Scheme::Dpop
        } else {
            return Err(());
        };
        if token.trim().is_empty() {
            return Err(());
        }
        Ok((scheme, token.trim()))
    }))
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}
