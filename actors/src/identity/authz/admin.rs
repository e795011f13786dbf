//! The admin side of identity-authz: tenants, clients and users. Reads answer from the state;
//! writes are validated here, persisted on a blocking thread (password hashing too) and merged
//! back. Callers act within their own tenant; only the operator tenant (the one created at
//! bootstrap) may create tenants or act in another tenant.

use cryptoutil_protocols::ids::ClientId;
use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use cryptoutil_storage::backend::Write as StoreWrite;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::model::{
    random, AuthMethod, Client, Removal, Tenant, User, API_SCOPES, AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS, OIDC_SCOPES, REFRESH_TOKEN, TLS_CLIENT_AUTH,
};
use super::state::{now_unix, record_json, AuthzState, Loaded};
use crate::error::Error;
use crate::service::Scope;

/// The name of a client `identity.federation_clients` declares (one no longer declared is
/// removed at start).
pub const CONFIGURED_CLIENT_NAME: &str = "federated service (configured)";

/// The tenant bootstrap creates; its administrators administer every tenant.
pub const OPERATOR_TENANT: &str = "default";

/// Who asks: the token's tenant and scopes (scope `identity` is checked by the HTTP layer).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who asks (the token's subject; the service itself for registrations at start), as the
    /// audit log names it.
    pub who: String,
    /// The caller's tenant.
    pub tenant: String,
    /// The scopes the caller's token holds: outside the operator tenant, the most it grants.
    pub scopes: Vec<String>,
}

impl Caller {
    fn is_operator(&self) -> bool {
        self.tenant == OPERATOR_TENANT
    }

    /// Whether the caller may give a client API scope `scope`: the operator tenant (the root of
    /// trust, which administers every tenant) any; everyone else only what its token holds, so
    /// a tenant's client with `identity` cannot make itself a client with `kms`.
    fn may_grant(&self, scope: &str) -> bool {
        self.is_operator() || self.scopes.iter().any(|s| s == scope)
    }

    /// The tenant an operation acts in: the caller's own, or another one for the operator.
    fn target(&self, asked: Option<&str>) -> Result<String, Error> {
        match asked {
            None => Ok(self.tenant.clone()),
            Some(t) if t == self.tenant => Ok(t.to_owned()),
            Some(_) if self.is_operator() => Ok(asked.unwrap_or_default().to_owned()),
            Some(_) => Err(Error::Forbidden {
                reason: "only the operator tenant acts in other tenants",
            }),
        }
    }
}

/// `POST .../identity/tenants`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// `[a-z0-9-]{1,64}`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The assurance every sign-in of its users must reach (default: none).
    #[serde(default)]
    pub acr: Option<String>,
}

/// An `acr` policy as given: absent, or one of the values this service reaches.
fn policy_acr(acr: Option<String>) -> Result<Option<String>, Error> {
    match acr {
        None => Ok(None),
        Some(a) if crate::identity::signin::ACR_VALUES.contains(&a.as_str()) => Ok(Some(a)),
        Some(_) => Err(bad(
            "acr: urn:cryptoutil:acr:password, urn:cryptoutil:acr:mfa or urn:cryptoutil:acr:phr",
        )),
    }
}

/// `POST .../identity/clients`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Display name.
    pub name: String,
    /// Tenant (default: the caller's).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Scopes it may have (default: every API scope).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Services it may call (default: every service).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Token endpoint authentication methods (default: both secret methods; `private_key_jwt`
    /// needs `jwks`; a client with no secret method gets no secret).
    #[serde(default)]
    pub auth_methods: Option<Vec<String>>,
    /// Public keys for `private_key_jwt`, as a JWK Set.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// Grant types (default: `client_credentials`, or `authorization_code` and `refresh_token`
    /// when `redirect_uris` are given).
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Redirect URIs for the code flow, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party client: its users are not asked for consent (default: false).
    #[serde(default)]
    pub first_party: Option<bool>,
    /// For `tls_client_auth`: the DNS name or IP address its certificate must carry.
    #[serde(default)]
    pub tls_client_auth_san: Option<String>,
    /// A federated service that introspects tokens of every tenant for its audiences
    /// (operator tenant only; default: false).
    #[serde(default)]
    pub resource_server: Option<bool>,
    /// The assurance every sign-in through it must reach (`urn:cryptoutil:acr:password`,
    /// `...:mfa` or `...:phr`; default: what each request asks).
    #[serde(default)]
    pub acr: Option<String>,
    /// OpenID Connect Back-Channel Logout: where logout tokens are posted (https).
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
}

/// `POST .../identity/users`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// `[A-Za-z0-9._@-]{1,128}`.
    pub username: String,
    /// At least 12 characters; generated (and returned once) when absent.
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// `admin` and/or `user` (default: `user`).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Tenant (default: the caller's).
    #[serde(default)]
    pub tenant: Option<String>,
}

impl AdminOp {
    /// The audit log's name of a change, and what it names before it is validated (`None`:
    /// a read, not audited).
    pub fn audited(&self) -> Option<(&'static str, String)> {
        Some(match self {
            AdminOp::ListTenants
            | AdminOp::ListClients
            | AdminOp::GetClient(_)
            | AdminOp::ListUsers => return None,
            AdminOp::CreateTenant(t) => ("create-tenant", t.id.clone()),
            AdminOp::TenantPolicy { tenant, .. } => ("tenant-policy", tenant.clone()),
            AdminOp::CreateClient(c) => ("create-client", c.name.clone()),
            AdminOp::DeleteClient(id) => ("delete-client", id.as_str().to_owned()),
            AdminOp::CreateUser(u) => ("create-user", u.username.clone()),
            AdminOp::DeleteUser(name) => ("delete-user", name.clone()),
            AdminOp::BrowserClient(c) => ("register-client", format!("browser-{}", c.service)),
            AdminOp::ResourceServer(c) => ("register-client", c.client_id.clone()),
            AdminOp::ReferenceClient(c) => ("register-client", c.client_id.clone()),
        })
    }
}

/// What an admin call does.
pub enum AdminOp {
    /// Tenants visible to the caller.
    ListTenants,
    /// A new tenant (operator only).
    CreateTenant(NewTenant),
    /// Sets (or with `None` clears) the `acr` every sign-in of a tenant's users must reach
    /// (the operator, or the tenant's own administrator).
    TenantPolicy {
        /// The tenant.
        tenant: String,
        /// Its policy.
        acr: Option<String>,
    },
    /// Clients of the caller's tenant.
    ListClients,
    /// One client.
    GetClient(ClientId),
    /// A new client; its secret is returned once.
    CreateClient(NewClient),
    /// Remove a client (its tokens stay valid until they expire).
    DeleteClient(ClientId),
    /// Users of the caller's tenant.
    ListUsers,
    /// A new user.
    CreateUser(NewUser),
    /// Remove a user.
    DeleteUser(String),
    /// Register (or re-register, on every start) a service's browser sign-in client with the
    /// secret the service holds in memory (operator only; not reachable over HTTP).
    BrowserClient(BrowserClient),
    /// Register (or replace) a federated service's client from configuration (operator only).
    ResourceServer(ResourceServer),
    /// Register (or re-register, on every start) a reference application's client: identity-rp's
    /// with the public key it holds in memory, identity-spa's public one (operator only; not
    /// reachable over HTTP).
    ReferenceClient(ReferenceClient),
}

/// A reference application's client (identity-rp, identity-spa): a code-flow client of the
/// operator tenant that may refresh; users of any tenant sign in through it. With `jwks` it is
/// confidential (`private_key_jwt`), without a public client (PKCE, DPoP-bound refresh tokens).
pub struct ReferenceClient {
    /// `[a-z0-9-]{1,64}`.
    pub client_id: String,
    /// Its public keys (a JWK Set), for `private_key_jwt`; none: a public client.
    pub jwks: Option<Value>,
    /// Its redirect URI.
    pub redirect_uri: String,
    /// Where RP-initiated logout returns.
    pub post_logout_uri: String,
    /// Its back-channel logout URI, if it has one.
    pub backchannel_logout_uri: Option<String>,
    /// Scopes (`openid` and what it calls identity-rs with).
    pub scopes: Vec<String>,
    /// The services its access tokens are for.
    pub audiences: Vec<String>,
}

/// A service's browser sign-in client: `browser-<service>` in the operator tenant, code flow
/// only, its audience the service alone.
pub struct BrowserClient {
    /// The service.
    pub service: String,
    /// The secret the service authenticates with (only its MAC is stored).
    pub secret: Zeroizing<String>,
    /// `<public>/browser/auth/callback`.
    pub redirect_uri: String,
    /// `<public>/browser/`.
    pub post_logout_uri: String,
    /// Scopes (`openid` and the service's API scope).
    pub scopes: Vec<String>,
}

/// A federated service's client as the configuration declares it (`identity.federation_clients`):
/// a resource server of the operator tenant that authenticates with its secret, registered
/// again on every start so the secret file is the truth.
pub struct ResourceServer {
    /// `[a-z0-9-]{1,64}`.
    pub client_id: String,
    /// Its secret (only the MAC is stored).
    pub secret: Zeroizing<String>,
    /// Scopes its own tokens may carry (`jose` for the KMS's calls to the JOSE service).
    pub scopes: Vec<String>,
}

/// What an admin call comes to.
pub enum Step {
    /// A read's answer.
    Answer(Box<AdminAnswer>),
    /// A validated write to persist.
    Write(Box<Write>),
}

impl Step {
    fn write(w: Write) -> Self {
        Step::Write(Box::new(w))
    }
}

/// A validated write, to persist off the mailbox.
pub enum Write {
    /// A tenant.
    Tenant(Tenant),
    /// A client, and the secret to return once.
    Client(Box<Client>, Zeroizing<String>),
    /// A user with the password to hash (returned when generated).
    User(NewUser, String, Option<Zeroizing<String>>),
    /// Remove a client (its tenant, its id).
    DeleteClient(String, String),
    /// Remove a user.
    DeleteUser(String, String),
}

fn bad(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

/// A client's `jwks` for `private_key_jwt`: public keys only, each usable for signatures.
fn public_signing_keys(jwks: Value) -> Result<Value, Error> {
    let private = jwks
        .get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| {
            keys.iter()
                .any(|k| ["d", "k", "p", "q"].iter().any(|m| k.get(m).is_some()))
        });
    if private || crate::issuer_jwks::parse_issuer_set(&jwks.to_string()).is_err() {
        return Err(bad(
            "jwks: a JWK Set of public signing keys (EC, OKP, or RSA with alg)",
        ));
    }
    Ok(jwks)
}

fn valid_id(id: &str, max: usize, extra: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || extra.contains(&b)
        })
}

/// A client as the admin API shows it (never its secret's MAC).
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// `client_id`.
    pub client_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
    /// Services whose audience it may be granted.
    pub audiences: Vec<String>,
    /// Token endpoint authentication methods.
    pub auth_methods: Vec<String>,
    /// Public keys for private_key_jwt.
    pub jwks: Option<Value>,
    /// Redirect URIs of the code flow.
    pub redirect_uris: Vec<String>,
    /// Allowed `post_logout_redirect_uri`s.
    pub post_logout_redirect_uris: Vec<String>,
    /// A client of this deployment (no consent asked).
    pub first_party: bool,
    /// For `tls_client_auth`: the name its certificate must carry.
    pub tls_client_auth_san: Option<String>,
    /// A federated service that introspects other tenants' tokens for its audiences.
    pub resource_server: bool,
    /// The assurance every sign-in through it must reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Where logout tokens are posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Creation time.
    pub created: u64,
    /// Its secret, shown once when it is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Zeroizing<String>>,
}

impl ClientView {
    fn of(c: &Client) -> Self {
        Self {
            client_id: c.client_id.clone(),
            tenant: c.tenant.clone(),
            name: c.name.clone(),
            grant_types: c.grant_types.clone(),
            scopes: c.scopes.clone(),
            audiences: c.audiences.clone(),
            auth_methods: c.auth_methods.clone(),
            jwks: c.jwks.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            first_party: c.first_party,
            tls_client_auth_san: c.tls_client_auth_san.clone(),
            resource_server: c.resource_server,
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            acr: c.acr.clone(),
            created: c.created,
            client_secret: None,
        }
    }
}

/// A user as the admin API shows it (never the password record).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    /// The user's `sub`.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Tenant.
    pub tenant: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Creation time.
    pub created: u64,
    /// A generated password, shown once when the user is created without one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<Zeroizing<String>>,
}

impl UserView {
    fn of(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            tenant: u.tenant.clone(),
            roles: u.roles.clone(),
            created: u.created,
            password: None,
        }
    }
}

/// What an admin call answers; the HTTP layer writes it as JSON.
#[derive(Debug, Clone)]
pub enum AdminAnswer {
    /// The tenants the caller may see.
    Tenants(Vec<Tenant>),
    /// One tenant (created).
    Tenant(Tenant),
    /// The clients of the caller's tenant, by `client_id`.
    Clients(Vec<ClientView>),
    /// One client (with its secret when just created).
    Client(Box<ClientView>),
    /// The users of the caller's tenant, by name.
    Users(Vec<UserView>),
    /// One user (with a generated password when just created).
    User(UserView),
    /// Removed.
    Removed,
}

impl AuthzState {
    /// A `backchannel_logout_uri` a client may register: absolute https without a fragment,
    /// and not an internal address literal (or `localhost`) unless its host is on
    /// `identity.backchannel_allowed_hosts` (names are checked again when a token is sent).
    fn check_backchannel_uri(&self, uri: &str) -> Result<(), &'static str> {
        let url = cryptoutil_federation::client::HttpsUrl::parse(uri)
            .ok()
            .filter(|_| oauth::valid_redirect_uri(uri))
            .ok_or("backchannel_logout_uri: an absolute https URI, no fragment")?;
        let allowed = self
            .cfg
            .backchannel
            .as_ref()
            .is_some_and(|s| s.allows(&url.host, url.port));
        let internal = url.host.eq_ignore_ascii_case("localhost")
            || url
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(super::backchannel::internal);
        if internal && !allowed {
            return Err(
                "backchannel_logout_uri: an internal address (allow its host with \
                 identity.backchannel_allowed_hosts)",
            );
        }
        Ok(())
    }

    /// Answers a read, or validates a write for the actor to persist.
    pub fn admin(&self, caller: &Caller, op: AdminOp) -> Result<Step, Error> {
        match op {
            AdminOp::ListTenants => {
                let tenants: Vec<&Tenant> = self
                    .tenants()
                    .filter(|t| caller.is_operator() || t.id == caller.tenant)
                    .collect();
                Ok(Step::Answer(Box::new(AdminAnswer::Tenants(
                    tenants.into_iter().cloned().collect(),
                ))))
            }
            AdminOp::CreateTenant(t) => {
                if !caller.is_operator() {
                    return Err(Error::Forbidden {
                        reason: "only the operator tenant creates tenants",
                    });
                }
                if !valid_id(&t.id, 64, b"") {
                    return Err(bad("tenant id: 1-64 of a-z, 0-9, -"));
                }
                if self.tenants().any(|x| x.id == t.id) {
                    return Err(Error::Conflict {
                        what: "a tenant with this id exists",
                    });
                }
                let acr = policy_acr(t.acr)?;
                Ok(Step::write(Write::Tenant(Tenant {
                    name: if t.name.is_empty() {
                        t.id.clone()
                    } else {
                        t.name
                    },
                    id: t.id,
                    created: now_unix(),
                    acr,
                })))
            }
            AdminOp::TenantPolicy { tenant, acr } => {
                let tenant = caller.target(Some(&tenant))?;
                let mut t = self
                    .tenants()
                    .find(|t| t.id == tenant)
                    .cloned()
                    .ok_or(Error::NotFound { what: "tenant" })?;
                t.acr = policy_acr(acr)?;
                Ok(Step::write(Write::Tenant(t)))
            }
            AdminOp::ListClients => {
                let mut clients: Vec<ClientView> = self
                    .clients()
                    .filter(|c| c.tenant == caller.tenant)
                    .map(ClientView::of)
                    .collect();
                clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                Ok(Step::Answer(Box::new(AdminAnswer::Clients(clients))))
            }
            AdminOp::GetClient(id) => self
                .clients()
                .find(|c| {
                    c.client_id == id.as_str()
                        && (c.tenant == caller.tenant || caller.is_operator())
                })
                .map(|c| Step::Answer(Box::new(AdminAnswer::Client(Box::new(ClientView::of(c))))))
                .ok_or(Error::NotFound { what: "client" }),
            AdminOp::CreateClient(spec) => {
                let tenant = caller.target(spec.tenant.as_deref())?;
                if !self.tenants().any(|t| t.id == tenant) {
                    return Err(Error::NotFound { what: "tenant" });
                }
                let code_flow = !spec.redirect_uris.is_empty();
                let grant_types = spec.grant_types.clone().unwrap_or_else(|| {
                    if code_flow {
                        vec![AUTHORIZATION_CODE.into(), REFRESH_TOKEN.into()]
                    } else {
                        vec![CLIENT_CREDENTIALS.into()]
                    }
                });
                let known = [CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN];
                let has = |g: &str| grant_types.iter().any(|x| x == g);
                if grant_types.is_empty()
                    || !grant_types.iter().all(|g| known.contains(&g.as_str()))
                {
                    return Err(bad(
                        "grant_types: client_credentials, authorization_code, refresh_token",
                    ));
                }
                if has(REFRESH_TOKEN) && !has(AUTHORIZATION_CODE) {
                    return Err(bad("refresh_token needs authorization_code"));
                }
                if has(AUTHORIZATION_CODE) != code_flow {
                    return Err(bad("authorization_code needs redirect_uris, and only it"));
                }
                let uris_ok = |uris: &[String]| {
                    uris.len() <= 10 && uris.iter().all(|u| oauth::valid_redirect_uri(u))
                };
                if !uris_ok(&spec.redirect_uris) || !uris_ok(&spec.post_logout_redirect_uris) {
                    return Err(bad(
                        "redirect URIs: at most 10, absolute https (or http on a loopback host), \
                         no fragment",
                    ));
                }
                if let Some(uri) = spec.backchannel_logout_uri.as_deref() {
                    self.check_backchannel_uri(uri).map_err(bad)?;
                }
                // By default the API scopes the caller may grant (and, for code flow, the OIDC
                // ones, which are no privilege).
                let scopes = spec.scopes.unwrap_or_else(|| {
                    let oidc = if code_flow { &OIDC_SCOPES[..] } else { &[] };
                    API_SCOPES
                        .iter()
                        .filter(|s| caller.may_grant(s))
                        .chain(oidc)
                        .map(|s| (*s).to_owned())
                        .collect()
                });
                let allowed =
                    |s: &str| API_SCOPES.contains(&s) || (code_flow && OIDC_SCOPES.contains(&s));
                if scopes.is_empty() || !scopes.iter().all(|s| allowed(s)) {
                    return Err(bad(
                        "scopes: a non-empty subset of kms, jose, ca, ca-ra, identity, notes:read, \
                         notes:write (and openid, profile for code-flow clients)",
                    ));
                }
                if scopes
                    .iter()
                    .any(|s| API_SCOPES.contains(&s.as_str()) && !caller.may_grant(s))
                {
                    return Err(Error::Forbidden {
                        reason: "scopes: a tenant's caller grants only scopes its own token holds",
                    });
                }
                let audiences = spec.audiences.unwrap_or_else(|| self.audiences());
                if audiences.is_empty() || !audiences.iter().all(|a| self.audiences().contains(a)) {
                    return Err(bad("audiences: a non-empty subset of the services"));
                }
                let secret_methods = [
                    AuthMethod::ClientSecretBasic.as_str(),
                    AuthMethod::ClientSecretPost.as_str(),
                ];
                let auth_methods = spec
                    .auth_methods
                    .unwrap_or_else(|| secret_methods.iter().map(|m| (*m).to_owned()).collect());
                let jwt_method = AuthMethod::PrivateKeyJwt.as_str();
                let none = AuthMethod::None.as_str();
                let tls = TLS_CLIENT_AUTH;
                if auth_methods.is_empty()
                    || !auth_methods.iter().all(|m| {
                        secret_methods.contains(&m.as_str())
                            || m == jwt_method
                            || m == none
                            || m == tls
                    })
                {
                    return Err(bad(
                        "auth_methods: client_secret_basic, client_secret_post, private_key_jwt, \
                         tls_client_auth, none",
                    ));
                }
                let uses_tls = auth_methods.iter().any(|m| m == tls);
                let san_ok = spec
                    .tls_client_auth_san
                    .as_deref()
                    .is_some_and(|s| !s.is_empty() && s.len() <= 253);
                if uses_tls != san_ok {
                    return Err(bad(
                        "tls_client_auth needs tls_client_auth_san (a DNS name or IP address), \
                         and only it",
                    ));
                }
                if uses_tls && self.cfg.mtls_roots.is_none() {
                    return Err(bad(
                        "tls_client_auth is unavailable: identity.mtls_ca is not configured",
                    ));
                }
                if auth_methods.iter().any(|m| m == none)
                    && (auth_methods.len() > 1 || has(CLIENT_CREDENTIALS))
                {
                    return Err(bad(
                        "none (a public client) is its only method and excludes client_credentials",
                    ));
                }
                let jwks = match (auth_methods.iter().any(|m| m == jwt_method), spec.jwks) {
                    (false, None) => None,
                    (false, Some(_)) => return Err(bad("jwks is for private_key_jwt clients")),
                    (true, None) => return Err(bad("private_key_jwt needs jwks")),
                    (true, Some(jwks)) => Some(public_signing_keys(jwks)?),
                };
                if spec.name.is_empty() || spec.name.len() > 128 {
                    return Err(bad("name: 1-128 characters"));
                }
                // The configuration's clients are known by it (one no longer configured is
                // removed at start).
                if spec.name == CONFIGURED_CLIENT_NAME {
                    return Err(bad("name: reserved for identity.federation_clients"));
                }
                let resource_server = spec.resource_server.unwrap_or(false);
                let acr = policy_acr(spec.acr)?;
                if resource_server && (tenant != OPERATOR_TENANT || !caller.is_operator()) {
                    return Err(Error::Forbidden {
                        reason: "resource servers (cross-tenant introspection) are the operator's",
                    });
                }
                let has_secret = auth_methods
                    .iter()
                    .any(|m| secret_methods.contains(&m.as_str()));
                let secret = if has_secret {
                    random(oauth::CLIENT_SECRET_BYTES)?
                } else {
                    Zeroizing::new(String::new())
                };
                let client = Client {
                    client_id: format!("client-{}", random(12)?.as_str()),
                    tenant,
                    name: spec.name,
                    secret_mac: if has_secret {
                        b64::encode(&oauth::client_secret_mac(&self.pepper(), &secret))
                    } else {
                        String::new()
                    },
                    grant_types,
                    scopes,
                    audiences,
                    auth_methods,
                    jwks,
                    first_party: spec.first_party.unwrap_or(false),
                    any_tenant: false,
                    resource_server,
                    tls_client_auth_san: spec.tls_client_auth_san,
                    redirect_uris: spec.redirect_uris,
                    post_logout_redirect_uris: spec.post_logout_redirect_uris,
                    acr,
                    backchannel_logout_uri: spec.backchannel_logout_uri,
                    created: now_unix(),
                };
                Ok(Step::write(Write::Client(Box::new(client), secret)))
            }
            AdminOp::BrowserClient(b) => {
                if !caller.is_operator() || !self.audiences().contains(&b.service) {
                    return Err(Error::Forbidden {
                        reason: "browser clients are the operator's, for known services",
                    });
                }
                if !oauth::valid_redirect_uri(&b.redirect_uri)
                    || !oauth::valid_redirect_uri(&b.post_logout_uri)
                {
                    return Err(bad("browser client: invalid redirect URI"));
                }
                let client = Client {
                    client_id: format!("browser-{}", b.service),
                    tenant: OPERATOR_TENANT.into(),
                    name: format!("{} (browser sign-in)", b.service),
                    secret_mac: b64::encode(&oauth::client_secret_mac(&self.pepper(), &b.secret)),
                    grant_types: vec![AUTHORIZATION_CODE.into()],
                    scopes: b.scopes,
                    audiences: vec![b.service],
                    auth_methods: vec![AuthMethod::ClientSecretBasic.as_str().into()],
                    jwks: None,
                    first_party: true,
                    any_tenant: true,
                    resource_server: false,
                    tls_client_auth_san: None,
                    redirect_uris: vec![b.redirect_uri],
                    post_logout_redirect_uris: vec![b.post_logout_uri],
                    acr: None,
                    backchannel_logout_uri: None,
                    created: now_unix(),
                };
                Ok(Step::write(Write::Client(
                    Box::new(client),
                    Zeroizing::new(String::new()),
                )))
            }
            AdminOp::ReferenceClient(rp) => {
                if !caller.is_operator() {
                    return Err(Error::Forbidden {
                        reason: "the reference applications' clients are the operator's",
                    });
                }
                let known = |s: &str| API_SCOPES.contains(&s) || OIDC_SCOPES.contains(&s);
                if !valid_id(&rp.client_id, 64, b"")
                    || !oauth::valid_redirect_uri(&rp.redirect_uri)
                    || !oauth::valid_redirect_uri(&rp.post_logout_uri)
                    || rp.scopes.iter().any(|s| !known(s))
                    || rp.audiences.iter().any(|a| !self.audiences().contains(a))
                {
                    return Err(bad(
                        "reference client: invalid client id, URI, scope or audience",
                    ));
                }
                if let Some(uri) = &rp.backchannel_logout_uri {
                    self.check_backchannel_uri(uri).map_err(bad)?;
                }
                let (method, jwks) = match rp.jwks {
                    Some(jwks) => (AuthMethod::PrivateKeyJwt, Some(public_signing_keys(jwks)?)),
                    None => (AuthMethod::None, None),
                };
                let client = Client {
                    client_id: rp.client_id.clone(),
                    tenant: OPERATOR_TENANT.into(),
                    name: format!("{} (reference application)", rp.client_id),
                    secret_mac: String::new(),
                    grant_types: vec![AUTHORIZATION_CODE.into(), REFRESH_TOKEN.into()],
                    scopes: rp.scopes,
                    audiences: rp.audiences,
                    auth_methods: vec![method.as_str().into()],
                    jwks,
                    first_party: true,
                    any_tenant: true,
                    resource_server: false,
                    tls_client_auth_san: None,
                    redirect_uris: vec![rp.redirect_uri],
                    post_logout_redirect_uris: vec![rp.post_logout_uri],
                    acr: None,
                    backchannel_logout_uri: rp.backchannel_logout_uri,
                    created: now_unix(),
                };
                Ok(Step::write(Write::Client(
                    Box::new(client),
                    Zeroizing::new(String::new()),
                )))
            }
            AdminOp::ResourceServer(r) => {
                if !caller.is_operator() {
                    return Err(Error::Forbidden {
                        reason: "resource servers are the operator's",
                    });
                }
                if !valid_id(&r.client_id, 64, b"") || r.secret.len() < 32 {
                    return Err(bad(
                        "federation client: id [a-z0-9-]{1,64}, secret of at least 32 characters",
                    ));
                }
                // Besides the API scopes, the sign-in back channel's: the operator's
                // configuration is the only way to it.
                let known = |s: &str| API_SCOPES.contains(&s) || s == Scope::SignIn.as_str();
                if r.scopes.iter().any(|s| !known(s)) {
                    return Err(bad("federation client: unknown scope"));
                }
                let client = Client {
                    client_id: r.client_id,
                    tenant: OPERATOR_TENANT.into(),
                    name: CONFIGURED_CLIENT_NAME.into(),
                    secret_mac: b64::encode(&oauth::client_secret_mac(&self.pepper(), &r.secret)),
                    grant_types: vec![CLIENT_CREDENTIALS.into()],
                    scopes: r.scopes,
                    audiences: self.audiences(),
                    auth_methods: vec![AuthMethod::ClientSecretBasic.as_str().into()],
                    jwks: None,
                    first_party: true,
                    any_tenant: false,
                    resource_server: true,
                    tls_client_auth_san: None,
                    redirect_uris: Vec::new(),
                    post_logout_redirect_uris: Vec::new(),
                    acr: None,
                    backchannel_logout_uri: None,
                    created: now_unix(),
                };
                Ok(Step::write(Write::Client(
                    Box::new(client),
                    Zeroizing::new(String::new()),
                )))
            }
            AdminOp::DeleteClient(id) => {
                let tenant = self
                    .clients()
                    .find(|c| {
                        c.client_id == id.as_str()
                            && (c.tenant == caller.tenant || caller.is_operator())
                    })
                    .map(|c| c.tenant.clone())
                    .ok_or(Error::NotFound { what: "client" })?;
                Ok(Step::write(Write::DeleteClient(tenant, id.to_string())))
            }
            AdminOp::ListUsers => {
                let mut users: Vec<UserView> = self
                    .users()
                    .filter(|u| u.tenant == caller.tenant)
                    .map(UserView::of)
                    .collect();
                users.sort_by(|a, b| a.username.cmp(&b.username));
                Ok(Step::Answer(Box::new(AdminAnswer::Users(users))))
            }
            AdminOp::CreateUser(mut spec) => {
                let tenant = caller.target(spec.tenant.as_deref())?;
                if !self.tenants().any(|t| t.id == tenant) {
                    return Err(Error::NotFound { what: "tenant" });
                }
                if !valid_id(&spec.username.to_ascii_lowercase(), 128, b"._@") {
                    return Err(bad("username: 1-128 of letters, digits, . _ @ -"));
                }
                if self
                    .users()
                    .any(|u| u.tenant == tenant && u.username == spec.username)
                {
                    return Err(Error::Conflict {
                        what: "a user with this name exists",
                    });
                }
                let roles = spec.roles.clone().unwrap_or_else(|| vec!["user".into()]);
                if roles.is_empty() || !roles.iter().all(|r| r == "admin" || r == "user") {
                    return Err(bad("roles: admin and/or user"));
                }
                spec.roles = Some(roles);
                let generated = match &spec.password {
                    Some(p) if p.chars().count() < 12 || p.len() > oauth::MAX_CREDENTIAL_LEN => {
                        return Err(bad("password: 12 to 512 characters"))
                    }
                    Some(_) => None,
                    None => {
                        let p = random(18)?;
                        spec.password = Some(p.clone());
                        Some(p)
                    }
                };
                Ok(Step::write(Write::User(spec, tenant, generated)))
            }
            AdminOp::DeleteUser(username) => {
                if !self
                    .users()
                    .any(|u| u.tenant == caller.tenant && u.username == username)
                {
                    return Err(Error::NotFound { what: "user" });
                }
                Ok(Step::write(Write::DeleteUser(
                    caller.tenant.clone(),
                    username,
                )))
            }
        }
    }

    /// Blocking: persists a validated write; returns what to merge and the answer.
    pub fn persist_admin(
        store: &Store,
        write: Write,
    ) -> Result<(Loaded, AdminAnswer, Option<Removal>), Error> {
        let prepared = Self::prepare_admin(store, write)?;
        store.apply(prepared.writes)?;
        Ok((prepared.loaded, prepared.answer, prepared.removal))
    }

    /// Blocking: the store writes of a validated write (committed with its audit record),
    /// what to merge once they are durable, and the answer.
    pub fn prepare_admin(store: &Store, write: Write) -> Result<PreparedAdmin, Error> {
        let (writes, (loaded, answer, removal), (tenant, key)) = match write {
            Write::Tenant(t) => {
                let put = store.sealed_write(
                    Table::IdentityTenants,
                    t.id.as_bytes(),
                    &record_json(&t)?,
                )?;
                let subject = (t.id.clone(), t.id.clone());
                let answer = AdminAnswer::Tenant(t.clone());
                (vec![put], (Loaded::with_tenant(t), answer, None), subject)
            }
            Write::Client(c, secret) => {
                let put = store.sealed_write(
                    Table::IdentityClients,
                    c.client_id.as_bytes(),
                    &record_json(&c)?,
                )?;
                let subject = (c.tenant.clone(), c.client_id.clone());
                let mut view = ClientView::of(&c);
                view.client_secret = Some(secret).filter(|s| !s.is_empty());
                (
                    vec![put],
                    (
                        Loaded::with_client(*c),
                        AdminAnswer::Client(Box::new(view)),
                        None,
                    ),
                    subject,
                )
            }
            Write::User(spec, tenant, generated) => {
                let password = spec.password.unwrap_or_default();
                let user = User {
                    id: format!("user-{}", random(12)?.as_str()),
                    tenant,
                    username: spec.username,
                    password_hash: oauth::hash_password(&password, oauth::PASSWORD_ITERATIONS)
                        .map_err(|_| Error::Internal {
                            what: "random generator",
                        })?,
                    roles: spec.roles.unwrap_or_default(),
                    created: now_unix(),
                };
                let key = format!("{}/{}", user.tenant, user.username);
                let put = store.sealed_write(
                    Table::IdentityUsers,
                    key.as_bytes(),
                    &record_json(&user)?,
                )?;
                let subject = (user.tenant.clone(), key);
                let mut view = UserView::of(&user);
                view.password = generated;
                (
                    vec![put],
                    (Loaded::with_user(user), AdminAnswer::User(view), None),
                    subject,
                )
            }
            Write::DeleteClient(tenant, id) => (
                vec![StoreWrite::Delete {
                    table: Table::IdentityClients,
                    key: id.as_bytes().to_vec(),
                }],
                (
                    Loaded::default(),
                    AdminAnswer::Removed,
                    Some(Removal::Client(id.clone())),
                ),
                (tenant, id),
            ),
            Write::DeleteUser(tenant, username) => {
                let key = format!("{tenant}/{username}");
                (
                    vec![StoreWrite::Delete {
                        table: Table::IdentityUsers,
                        key: key.as_bytes().to_vec(),
                    }],
                    (
                        Loaded::default(),
                        AdminAnswer::Removed,
                        Some(Removal::User(tenant.clone(), username)),
                    ),
                    (tenant, key),
                )
            }
        };
        Ok(PreparedAdmin {
            writes,
            loaded,
            answer,
            removal,
            tenant,
            key,
        })
    }
}

/// A validated admin write made ready to commit: [`AuthzState::prepare_admin`].
pub struct PreparedAdmin {
    /// The store writes.
    pub writes: Vec<StoreWrite>,
    /// What to merge once they are durable.
    pub loaded: Loaded,
    /// The answer.
    pub answer: AdminAnswer,
    /// What to forget once they are durable.
    pub removal: Option<Removal>,
    /// The tenant the change is in, for the audit record.
    pub tenant: String,
    /// What it changed (a tenant id, client id or `tenant/username`), for the audit record.
    pub key: String,
}
