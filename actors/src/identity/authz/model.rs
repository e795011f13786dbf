//! identity-authz's model: its records (tenants, clients, users), the shape of a token request
//! and of what it grants, and the names the protocol fixes (grant types, scopes, paths). A
//! leaf: every other file of identity-authz reads it, it reads none of them.

use std::sync::Arc;

use cryptoutil_protocols::jose::{Jwk, JwsAlg};
use cryptoutil_protocols::oauth::{self, TokenError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::service::Scope;

/// Scopes of the suite's APIs (a route checks the one of its service).
pub const API_SCOPES: [&str; 7] = [
    Scope::ALL[0].as_str(),
    Scope::ALL[1].as_str(),
    Scope::ALL[2].as_str(),
    Scope::ALL[3].as_str(),
    Scope::ALL[4].as_str(),
    Scope::ALL[5].as_str(),
    Scope::ALL[6].as_str(),
];
/// OpenID Connect scopes a code-flow client may have besides the API scopes.
pub const OIDC_SCOPES: [&str; 2] = ["openid", "profile"];
/// The client credentials grant.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The authorization code grant (with PKCE S256, always).
pub const AUTHORIZATION_CODE: &str = "authorization_code";
/// The refresh token grant (rotated on every use).
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Algorithms accepted on client assertions: asymmetric only.
pub const ASSERTION_ALGS: [JwsAlg; 10] = {
    use JwsAlg::*;
    [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA,
    ]
};

/// RFC 8705's PKI client authentication method.
pub const TLS_CLIENT_AUTH: &str = "tls_client_auth";

/// How old (or how far ahead) a DPoP proof may be, in seconds.
pub const DPOP_WINDOW: u64 = 60;

/// identity-authz's authorization endpoint.
pub const AUTHORIZE_PATH: &str = "/browser/oauth2/v1/authorize";
/// RP-initiated logout.
pub const LOGOUT_PATH: &str = "/browser/oauth2/v1/logout";
pub use crate::identity::signin::{ACR_MFA, ACR_PASSWORD};

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// The assurance every sign-in of its users must reach (an `acr` value), whatever the
    /// request or the client asks; a user's last factor that reaches it is not removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

/// An OAuth client.
#[derive(Clone, Serialize, Deserialize)]
pub struct Client {
    /// `client_id`.
    pub client_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// HMAC-SHA256 of the secret under the pepper, base64url.
    pub secret_mac: String,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Scopes it may be granted (also the default when it asks for none).
    pub scopes: Vec<String>,
    /// Services whose audience it may be granted.
    pub audiences: Vec<String>,
    /// Authentication methods it may use at the token endpoint.
    pub auth_methods: Vec<String>,
    /// Public keys for private_key_jwt (a JWK Set), when it uses that method.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// Redirect URIs of the code flow (exact match).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A client of this deployment (the services' browser sign-in, or one an administrator
    /// marked so): its users are not asked for consent.
    #[serde(default)]
    pub first_party: bool,
    /// Users of any tenant may sign in through it (the services' browser sign-in clients);
    /// the tokens carry the user's tenant.
    #[serde(default)]
    pub any_tenant: bool,
    /// A service of this deployment that validates other tenants' tokens for its audiences
    /// (federated services introspecting the tokens they are given): introspection answers
    /// for tokens of any tenant whose `aud` names one of its `audiences`. Operator only.
    #[serde(default)]
    pub resource_server: bool,
    /// For `tls_client_auth`: the DNS name or IP address its certificate must carry as a
    /// subject alternative name (RFC 8705 `tls_client_auth_san_dns` / `_san_ip`).
    #[serde(default)]
    pub tls_client_auth_san: Option<String>,
    /// Allowed `post_logout_redirect_uri`s (exact match).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The assurance every sign-in through it must reach (an `acr` value), whatever its
    /// requests ask.
    #[serde(default)]
    pub acr: Option<String>,
    /// Where identity-authz posts a logout token when a sign-in session it took part in ends
    /// (OpenID Connect Back-Channel Logout 1.0; https).
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Creation time.
    pub created: u64,
}

impl Client {
    /// Whether it may use `grant`.
    pub fn allows(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// A human user.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    /// Stable subject identifier (`sub`), never reused.
    #[serde(default)]
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Login name.
    pub username: String,
    /// PBKDF2-HMAC-SHA256 record.
    pub password_hash: String,
    /// Roles (`admin`).
    pub roles: Vec<String>,
    /// Creation time.
    pub created: u64,
}

/// A record removed from the store, to remove from the state too.
pub enum Removal {
    /// A client.
    Client(String),
    /// A user (tenant, username).
    User(String, String),
}

/// How the client authenticated at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with a key the client registered (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// No secret: a public client (`client_id` only), or a `tls_client_auth` client whose
    /// TLS client certificate is its credential.
    None,
}

impl AuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

/// A client's credentials as presented.
pub struct ClientAuth {
    /// `client_id` (may be empty with private_key_jwt: the assertion names the client).
    pub client_id: String,
    /// The secret or, for private_key_jwt, the client assertion; zeroized on drop.
    pub secret: Zeroizing<String>,
    /// How it was presented.
    pub method: AuthMethod,
    /// The TLS client certificate chain of the connection (leaf first, DER), if any.
    pub certs: Option<std::sync::Arc<Vec<Vec<u8>>>>,
}

/// A token request after parsing.
pub struct TokenRequest {
    /// The authenticated-to-be client.
    pub client: ClientAuth,
    /// `grant_type`.
    pub grant_type: String,
    /// `scope`, if given.
    pub scope: Option<String>,
    /// `resource` (RFC 8707), if given.
    pub resource: Option<String>,
    /// `code` (authorization_code).
    pub code: Option<Zeroizing<String>>,
    /// `redirect_uri` (authorization_code).
    pub redirect_uri: Option<String>,
    /// `code_verifier` (authorization_code, PKCE).
    pub code_verifier: Option<Zeroizing<String>>,
    /// `refresh_token` (refresh_token).
    pub refresh_token: Option<Zeroizing<String>>,
    /// A verified DPoP proof (RFC 9449): the tokens are bound to its key.
    pub dpop: Option<cryptoutil_protocols::dpop::Proof>,
}

/// What to sign: the current signing key and the access token's claims. Signing happens on the
/// caller's task, not in the mailbox.
pub struct TokenGrant {
    /// The signing key (private, pinned).
    pub key: Arc<Jwk>,
    /// Claims of the access token.
    pub claims: Map<String, Value>,
    /// Seconds until `exp`.
    pub expires_in: u64,
    /// The granted scope, space-separated.
    pub scope: String,
    /// The access token's `jti` and `exp`.
    pub jti: Option<(String, u64)>,
    /// `Bearer`, or `DPoP` for a token bound to a DPoP key.
    pub token_type: &'static str,
    /// A refresh token (code and refresh grants, when the client may refresh).
    pub refresh_token: Option<Zeroizing<String>>,
    /// Claims of the ID token (when `openid` was granted); `at_hash` is added by the signer.
    pub id_token: Option<Map<String, Value>>,
}

/// Credentials created on first start, for `<data-dir>/bootstrap.json`.
#[derive(Clone)]
pub struct BootstrapCredentials {
    /// The tenant id.
    pub tenant: String,
    /// The service client's id.
    pub client_id: String,
    /// Its secret (shown once; only a MAC is stored).
    pub client_secret: Zeroizing<String>,
    /// The admin user's name.
    pub username: String,
    /// The admin user's password (shown once; only a PBKDF2 hash is stored).
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for BootstrapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapCredentials")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `n` random bytes as base64url text (a failing random generator is our fault: 500).
pub(crate) fn random(n: usize) -> Result<Zeroizing<String>, Error> {
    oauth::random_token(n).map_err(|_| Error::Internal {
        what: "random generator",
    })
}

/// An RFC 6749 §5.2 refusal.
pub(crate) fn refuse(e: TokenError) -> Error {
    Error::OAuth(e)
}
