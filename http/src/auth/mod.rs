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

use cryptoutil_actors::audit::{AuditEntry, AuditHandle};
use cryptoutil_actors::bearer::{Expectation, IssuerKeys, Rejected, TrustedIssuer};
use cryptoutil_actors::issuer_jwks::{pin_issuer_key, IssuerJwksHandle};
use cryptoutil_actors::sessions::SessionsHandle;
use cryptoutil_protocols::jose::{jwt, JwkSet};

use crate::error::ApiError;
pub use crate::error::{AuthFailure, Realm};

pub use cryptoutil_actors::bearer::Principal;
pub use cryptoutil_actors::federation::IdentityValidation;

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
    issuers: Vec<TrustedIssuer>,
    identity: Option<IdentityValidation>,
    sessions: Option<SessionsHandle>,
    expect: Expectation,
    /// Tokens already verified, by SHA-256 of the token, until their `exp` (or, for tokens of a
    /// federated identity-authz, for its cache time): a signature check or an introspection
    /// costs more than most requests it guards. Bounded; cleared when full.
    verified: std::sync::Mutex<HashMap<[u8; 32], (Principal, u64)>>,
}

/// Most verified tokens remembered at once.
const VERIFIED_CACHE_MAX: usize = 10_000;

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
            issuers.push(TrustedIssuer {
                issuer: t.issuer.clone(),
                keys,
                require_low_s: t.require_low_s,
            });
        }
        Ok(Self {
            issuers,
            identity: None,
            sessions: None,
            expect: Expectation {
                audience: audience.to_owned(),
                leeway: cfg.leeway,
            },
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
    pub fn with_identity(mut self, identity: IdentityValidation) -> Self {
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
        // Parsed once: the issuer is read from it, and it is verified without decoding again.
        let unverified = jwt::Unverified::parse(token).map_err(|_| AuthFailure::Invalid)?;
        let trusted = self.issuer_of(&unverified)?;
        let (principal, until) = match &self.identity {
            Some(identity) if identity.issuer() == trusted.issuer => {
                identity
                    .validate(token, &unverified, trusted, &self.expect, now)
                    .await
            }
            _ => trusted.verify(&unverified, &self.expect, now).await,
        }
        .map_err(|r| match r {
            Rejected::Invalid => AuthFailure::Invalid,
            Rejected::IssuerUnavailable => AuthFailure::IssuerUnavailable,
        })?;
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

    /// The trusted issuer the token's `iss` names, read unverified only to pick its keys.
    fn issuer_of(&self, token: &jwt::Unverified<'_>) -> Result<&TrustedIssuer, AuthFailure> {
        let iss = token
            .claims()
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .ok_or(AuthFailure::Invalid)?;
        self.issuers
            .iter()
            .find(|t| t.issuer == iss)
            .ok_or(AuthFailure::Invalid)
    }
}

/// What the HTTP layer asks of a [`Principal`].
pub trait PrincipalExt {
    /// The principal the credential middleware put on an authenticated request.
    fn of(parts: &axum::http::request::Parts) -> Result<&Self, ApiError>;

    /// 403 unless the principal holds `scope`.
    fn require_scope(&self, scope: cryptoutil_actors::Scope) -> Result<(), ApiError>;
}

impl PrincipalExt for Principal {
    fn of(parts: &axum::http::request::Parts) -> Result<&Self, ApiError> {
        parts.extensions.get::<Principal>().ok_or(ApiError::Actor(
            cryptoutil_actors::Error::Internal {
                what: "an authenticated route without its principal",
            },
        ))
    }

    fn require_scope(&self, scope: cryptoutil_actors::Scope) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope.as_str()) {
            Ok(())
        } else {
            Err(crate::error::ApiError::InsufficientScope {
                scope: scope.as_str(),
                dpop: self.jkt.is_some(),
            })
        }
    }
}

/// Whether request `path` is route `pattern`: the same segments, where a `{param}` segment
/// stands for one non-empty segment other than `.` and `..`, and a final `{*rest}` for one or
/// more segments (an OCSP GET request is base64, which may hold `/`).
pub(crate) fn public_path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('{') {
        return pattern == path;
    }
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) => {
                let ok = if w.starts_with("{*") {
                    return want.next().is_none() && !g.is_empty();
                } else if w.starts_with('{') && w.ends_with('}') {
                    !g.is_empty() && g != "." && g != ".."
                } else {
                    w == g
                };
                if !ok {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A request whose credential was refused, as the log and the audit record name it.
struct Refused {
    method: Method,
    path: String,
    client: Option<std::net::IpAddr>,
}

/// The public allow-list of one stack, and the authenticator for everything else.
#[derive(Clone)]
pub struct AuthGate {
    service: &'static str,
    realm: Realm,
    public: Arc<HashSet<(Method, &'static str)>>,
    auth: Arc<dyn Authenticator>,
    /// The service's audit log: presented credentials that are refused are recorded.
    audit: AuditHandle,
    cookie: Arc<str>,
    /// DPoP proofs seen, (jkt, jti) -> forget-at: each proof is accepted once.
    proofs: Arc<std::sync::Mutex<HashMap<(String, String), u64>>>,
}

/// Most DPoP proofs remembered at once per gate.
const PROOFS_MAX: usize = 100_000;

impl AuthGate {
    /// A gate of `service` for `realm` letting `public` (method, route path) pairs through
    /// unauthenticated, recording refused credentials in `audit`.
    pub fn new(
        service: &'static str,
        realm: Realm,
        public: HashSet<(Method, &'static str)>,
        auth: Arc<dyn Authenticator>,
        audit: AuditHandle,
    ) -> Self {
        Self {
            service,
            realm,
            public: Arc::new(public),
            auth,
            audit,
            cookie: session_cookie(service).into(),
            proofs: Arc::default(),
        }
    }

    /// Counts a refused credential and, when one was presented (not merely missing), logs
    /// and audits (`authenticate`, refused) who presented it where, never the credential
    /// itself. A record that cannot be written is logged; the request is refused either way.
    async fn refused(&self, req: Refused, failure: AuthFailure) {
        let realm = match self.realm {
            Realm::Service => "service",
            Realm::Browser => "browser",
        };
        let kind = match failure {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid | AuthFailure::InvalidDpopToken => "invalid",
            AuthFailure::InvalidProof => "invalid_dpop_proof",
            AuthFailure::WrongKind => "wrong_kind",
            AuthFailure::IssuerUnavailable => "issuer_unavailable",
        };
        crate::metrics::auth_failure(self.service, realm, kind);
        if failure != AuthFailure::Missing {
            let Refused {
                method,
                path,
                client,
            } = req;
            tracing::warn!(
                service = self.service,
                realm,
                failure = kind,
                %method,
                path,
                client = ?client,
                "authentication failed"
            );
            // An unavailable issuer is our outage, not the caller's failure (the fallback
            // taken is audited where it is taken).
            if failure != AuthFailure::IssuerUnavailable {
                let who = client.map_or_else(String::new, |ip| ip.to_string());
                let entry = AuditEntry::new(
                    &who,
                    "",
                    &format!("{realm} {method} {path}"),
                    "authenticate",
                )
                .outcome(&Err::<(), _>(kind));
                if let Err(e) = self.audit.append(entry, Vec::new()).await {
                    tracing::error!(service = self.service, error = %e, "a refused authentication could not be audited");
                }
            }
        }
    }

    /// RFC 9449 §7: a DPoP-bound token comes with the `DPoP` scheme and a fresh proof by its
    /// key for this request (method, URI, `ath`); an unbound token never with the `DPoP`
    /// scheme. A proof that is missing, malformed, replayed or not by the token's key is
    /// `InvalidProof` (`invalid_dpop_proof`).
    fn check_binding(
        &self,
        req: &RequestParts<'_>,
        scheme: Scheme,
        token: &str,
        principal: &Principal,
    ) -> Result<(), AuthFailure> {
        match (scheme, &principal.jkt) {
            (Scheme::Bearer, None) => Ok(()),
            (Scheme::Bearer, Some(_)) => Err(AuthFailure::Invalid),
            (Scheme::Dpop, None) => Err(AuthFailure::InvalidDpopToken),
            (Scheme::Dpop, Some(jkt)) => {
                let proof =
                    crate::dpop::proof(req.headers, req.uri, req.method.as_str(), Some(token))
                        .ok()
                        .flatten()
                        .filter(|p| p.jkt == *jkt)
                        .ok_or(AuthFailure::InvalidProof)?;
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
                    return Err(AuthFailure::InvalidProof);
                }
                let window = cryptoutil_actors::identity::authz::DPOP_WINDOW;
                seen.insert(key, proof.iat + 2 * window);
                Ok(())
            }
        }
    }

    /// Public routes are compared with the raw request path before routing: literally, but
    /// for `{param}` segments, each of which matches one non-empty segment; HEAD as GET.
    fn is_public(&self, method: &Method, path: &str) -> bool {
        // HEAD is GET without the body (RFC 9110 §9.3.2): a public GET is a public HEAD.
        self.public.iter().any(|(pm, pp)| {
            (pm == method || (*method == Method::HEAD && *pm == Method::GET))
                && public_path_matches(pp, path)
        })
    }

    /// Authenticates a request for this gate's realm.
    pub async fn authenticate(&self, req: &RequestParts<'_>) -> Result<Principal, AuthFailure> {
        let headers = req.headers;
        let bearer = bearer_token(headers);
        let cookie = cookie_value(headers, &self.cookie);
        match self.realm {
            Realm::Service => match (bearer, cookie) {
                (Some(Ok((scheme, token))), _) => {
                    let principal =
                        self.auth
                            .bearer(token)
                            .await
                            .map_err(|f| match (f, scheme) {
                                (AuthFailure::Invalid, Scheme::Dpop) => {
                                    AuthFailure::InvalidDpopToken
                                }
                                (f, _) => f,
                            })?;
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
    let authenticated = gate
        .authenticate(&RequestParts {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            peer: req.extensions().get::<crate::tls::PeerCertificates>(),
        })
        .await;
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(failure) => {
            // What the record names, taken before the await (a request is not `Sync`).
            let refused = Refused {
                method: req.method().clone(),
                path: req.uri().path().to_owned(),
                client: crate::middleware::client_ip(&req),
            };
            gate.refused(refused, failure).await;
            return Err(match failure {
                AuthFailure::IssuerUnavailable => ApiError::IssuerUnavailable,
                failure => ApiError::Unauthorized {
                    realm: gate.realm,
                    failure,
                },
            });
        }
    };
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
pub(crate) enum Scheme {
    /// RFC 6750.
    Bearer,
    /// RFC 9449: with a proof of possession in the `DPoP` header.
    Dpop,
}

/// `Authorization: Bearer <token>` or `DPoP <token>`: Some(Ok) for a well-formed one, Some(Err)
/// for another scheme or a malformed value, None when absent.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<Result<(Scheme, &str), ()>> {
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

/// More than one `Authorization` header: which one would be meant? Refused, never first-wins.
pub(crate) fn several_authorizations(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
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

#[cfg(test)]
mod tests {
    use super::public_path_matches as matches;

    #[test]
    fn public_patterns_match_one_segment_per_parameter_and_nothing_else() {
        let crl = "/service/api/v1/ca/cas/{ca}/crl";
        assert!(matches(crl, "/service/api/v1/ca/cas/ca-123/crl"));
        for other in [
            "/service/api/v1/ca/cas//crl",
            "/service/api/v1/ca/cas/../crl",
            "/service/api/v1/ca/cas/./crl",
            "/service/api/v1/ca/cas/a/b/crl",
            "/service/api/v1/ca/cas/a/crl/",
            "/service/api/v1/ca/cas/a/certificates",
            "/service/api/v1/ca/cas/a",
        ] {
            assert!(!matches(crl, other), "{other}");
        }
        assert!(matches("/browser/", "/browser/"));
        assert!(!matches("/browser/", "/browser"));
        let ocsp = "/service/api/v1/ca/ocsp/{*request}";
        assert!(matches(ocsp, "/service/api/v1/ca/ocsp/MEUw/Q+x"));
        assert!(!matches(ocsp, "/service/api/v1/ca/ocsp/"));
        assert!(!matches(ocsp, "/service/api/v1/ca/ocsp"));
        assert!(!matches("/x/{*rest}/y", "/x/a/y"), "a catch-all is last");
    }
}
