//! The credential seam. `/service/**` takes bearer tokens, `/browser/**` a session cookie; a
//! bearer token is refused on `/browser/**` and a cookie on `/service/**`. Until the Identity
//! issue wires real credentials, the only `Authenticator` is [`DenyAll`], so every route not on
//! the public allow-list answers 401.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The session cookie's name. `__Host-` binds it to this origin, Secure, path `/`.
pub const SESSION_COOKIE: &str = "__Host-cryptoutil-session";

/// Which stack a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// `/service/**`.
    Service,
    /// `/browser/**`.
    Browser,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential.
    Missing,
    /// A credential that did not validate.
    Invalid,
    /// The other stack's kind of credential (a bearer token on /browser, a cookie on /service).
    WrongKind,
}

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject (user or client id).
    pub subject: String,
    /// Tenant.
    pub tenant: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// Validates credentials. Implementations must compare secrets in constant time.
pub trait Authenticator: Send + Sync + 'static {
    /// Validates an OAuth bearer access token.
    fn bearer(&self, token: &str) -> Result<Principal, AuthFailure>;
    /// Validates a browser session cookie value.
    fn session(&self, cookie: &str) -> Result<Principal, AuthFailure>;
}

/// Accepts nothing: the authenticator until identity-authz issues credentials.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl Authenticator for DenyAll {
    fn bearer(&self, _token: &str) -> Result<Principal, AuthFailure> {
        Err(AuthFailure::Invalid)
    }

    fn session(&self, _cookie: &str) -> Result<Principal, AuthFailure> {
        Err(AuthFailure::Invalid)
    }
}

/// The public allow-list of one stack, and the authenticator for everything else.
#[derive(Clone)]
pub struct AuthGate {
    realm: Realm,
    public: Arc<HashSet<(Method, &'static str)>>,
    auth: Arc<dyn Authenticator>,
}

impl AuthGate {
    /// A gate for `realm` letting `public` (method, route path) pairs through unauthenticated.
    pub fn new(
        realm: Realm,
        public: HashSet<(Method, &'static str)>,
        auth: Arc<dyn Authenticator>,
    ) -> Self {
        Self {
            realm,
            public: Arc::new(public),
            auth,
        }
    }

    /// Public routes are literal paths, compared with the raw request path before routing.
    fn is_public(&self, method: &Method, path: &str) -> bool {
        self.public
            .iter()
            .any(|(pm, pp)| pm == method && *pp == path)
    }

    /// Authenticates headers for this gate's realm.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let bearer = bearer_token(headers);
        let cookie = session_cookie(headers);
        match self.realm {
            Realm::Service => match (bearer, cookie) {
                (Some(Ok(token)), _) => self.auth.bearer(token),
                (Some(Err(())), _) => Err(AuthFailure::Invalid),
                (None, Some(_)) => Err(AuthFailure::WrongKind),
                (None, None) => Err(AuthFailure::Missing),
            },
            Realm::Browser => match (headers.contains_key(header::AUTHORIZATION), cookie) {
                (true, _) => Err(AuthFailure::WrongKind),
                (false, Some(value)) => self.auth.session(value),
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
        .authenticate(req.headers())
        .map_err(|failure| ApiError::Unauthorized {
            realm: gate.realm,
            failure,
        })?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// `Authorization: Bearer <token>`: Some(Ok) for a well-formed one, Some(Err) for another scheme
/// or a malformed value, None when absent.
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, token) = t.split_once(' ').ok_or(())?;
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            Ok(token.trim())
        } else {
            Err(())
        }
    }))
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}
