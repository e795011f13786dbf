//! State of the `Authz` actor: tenants, clients, users and signing keys, with synchronous
//! methods the handler calls and blocking functions that persist through the key barrier.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::jose::{b64, Jwk, JwsAlg};
use cryptoutil_protocols::oauth;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::model::{
    random, AuthMethod, BootstrapCredentials, Client, Removal, Tenant, User, API_SCOPES,
    ASSERTION_ALGS, AUTHORIZATION_CODE, AUTHORIZE_PATH, CLIENT_CREDENTIALS, LOGOUT_PATH,
    OIDC_SCOPES, REFRESH_TOKEN, TLS_CLIENT_AUTH,
};
use crate::audit::AuditHandle;
use crate::error::Error;
pub(crate) use crate::now_unix;
pub(crate) use crate::record::encode as record_json;

const PEPPER_KEY: &[u8] = b"pepper";

/// Settings of identity-authz.
#[derive(Clone)]
pub struct AuthzConfig {
    /// The issuer: identity-authz's public base URL.
    pub issuer: String,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// The pepper for client-secret MACs, from a secret file; `None`: generated and kept sealed
    /// in the store (development).
    pub pepper: Option<Zeroizing<Vec<u8>>>,
    /// Audiences a client may be granted: service name -> its resource URI (RFC 8707).
    pub resources: BTreeMap<String, String>,
    /// identity-idp's login page, where authorization requests send the browser; `None`: the
    /// code flow answers `server_error` (no login page in this deployment).
    pub login_url: Option<String>,
    /// Lifetime of a refresh-token family (from the login; rotation does not extend it).
    pub refresh_token_ttl: Duration,
    /// Trust anchors for `tls_client_auth` client certificates (RFC 8705); `None`: the method
    /// is unavailable.
    pub mtls_roots: Option<cryptoutil_protocols::tls::TrustRoots>,
    /// Where logout tokens are posted from (a client trusting the deployment's anchors, and
    /// the hosts exempt from the internal-address check); `None`: back-channel logout is off.
    pub backchannel: Option<super::backchannel::Sender>,
}

impl std::fmt::Debug for AuthzConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzConfig")
            .field("issuer", &self.issuer)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("resources", &self.resources)
            .field("login_url", &self.login_url)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("mtls_roots", &self.mtls_roots.as_ref().map(|r| r.len()))
            .field("backchannel", &self.backchannel.is_some())
            .finish()
    }
}

/// A token signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) jwk: Arc<Jwk>,
    created: u64,
    retired: Option<u64>,
}

/// Records read or written by blocking work, merged into the state by the actor.
#[derive(Default)]
pub struct Loaded {
    tenants: Vec<Tenant>,
    clients: Vec<Client>,
    users: Vec<User>,
    keys: Vec<SigningKey>,
    pepper: Option<Zeroizing<Vec<u8>>>,
    revoked: Vec<(String, u64)>,
    pub(super) families: Vec<super::flow::Family>,
    pub(super) consents: Vec<super::flow::ConsentRecord>,
}

impl Loaded {
    /// Just a tenant.
    pub fn with_tenant(t: Tenant) -> Self {
        Self {
            tenants: vec![t],
            ..Self::default()
        }
    }

    /// Just a client.
    pub fn with_client(c: Client) -> Self {
        Self {
            clients: vec![c],
            ..Self::default()
        }
    }

    /// Just a revocation (`jti`, `exp`).
    pub fn with_revocation(jti: &str, exp: u64) -> Self {
        Self {
            revoked: vec![(jti.to_owned(), exp)],
            ..Self::default()
        }
    }

    /// Revocations (`jti`, `exp`).
    pub fn with_revocations(revoked: Vec<(String, u64)>) -> Self {
        Self {
            revoked,
            ..Self::default()
        }
    }

    /// Just a user.
    pub fn with_user(u: User) -> Self {
        Self {
            users: vec![u],
            ..Self::default()
        }
    }

    /// The kid of the first signing key in here (the new one, after a rotation).
    pub fn first_kid(&self) -> String {
        self.keys
            .first()
            .and_then(|k| k.jwk.kid.clone())
            .unwrap_or_default()
    }
}

/// Everything identity-authz knows.
pub struct AuthzState {
    pub(super) cfg: AuthzConfig,
    pub(super) store: Arc<Store>,
    pub(super) pepper: Zeroizing<Vec<u8>>,
    pub(super) tenants: BTreeMap<String, Tenant>,
    pub(super) clients: HashMap<String, Client>,
    pub(super) users: HashMap<(String, String), User>,
    /// Oldest first; the last one signs.
    pub(super) keys: Vec<SigningKey>,
    /// Revoked access tokens by `jti`, until their `exp`.
    pub(super) revoked: HashMap<String, u64>,
    /// Access tokens whose signature and issuer were verified, by SHA-256, with their claims
    /// (introspection of one token is typically repeated). Bounded; cleared when full.
    pub(super) verified: HashMap<[u8; 32], Arc<Map<String, Value>>>,
    /// Client assertions already used, (client_id, jti) -> exp: each is accepted once.
    pub(super) used_assertions: HashMap<(String, String), u64>,
    /// DPoP proofs already used at the token endpoint, (jkt, jti) -> forget-at.
    pub(super) used_dpop: HashMap<(String, String), u64>,
    /// The browser side of the code flow: pending requests, codes, sessions, lockouts.
    pub(super) flow: super::flow::FlowState,
    /// Refresh-token families by id (persisted).
    pub(super) families: HashMap<String, super::flow::Family>,
    /// Scopes each user granted each third-party client, (user id, client_id) -> scopes
    /// (persisted).
    pub(super) consents: HashMap<(String, String), Vec<String>>,
    /// identity-authz's audit log (the actor sets it; `None` only in unit tests of the state).
    pub(super) audit: Option<AuditHandle>,
    /// Merges of administration so far: a reload read before the last one is stale.
    pub(super) changes: u64,
    /// A reload (shared store) is under way.
    pub(super) reloading: bool,
    /// Reload ticks so far (shared store).
    pub(super) ticks: u64,
}

impl std::fmt::Debug for AuthzState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzState")
            .field("issuer", &self.cfg.issuer)
            .field("tenants", &self.tenants.len())
            .field("clients", &self.clients.len())
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl AuthzState {
    /// Blocking: reads everything; generates the pepper (when none is configured) and the first
    /// signing key on a new store.
    pub fn load(store: Arc<Store>, cfg: AuthzConfig) -> Result<Self, Error> {
        let now = now_unix();
        let mut loaded = Self::read_admin(&store, now)?;
        let families = crate::record::scan::<super::flow::Family>(
            &store,
            Table::IdentityRefresh,
            b"",
            "family",
        )?;
        loaded.families = families.into_iter().filter(|f| f.expires > now).collect();
        let pepper = match (&cfg.pepper, loaded.pepper.take()) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => p,
            (None, None) => {
                tracing::warn!(
                    "DEVELOPMENT SETUP: no identity pepper configured; one was generated and is \
                     kept sealed in the identity-authz store. Configure identity.pepper \
                     (file://) for production."
                );
                // 256 random bits (as base64url text). Created: a replica sharing the store
                // that made one first wins, and this one reads it.
                let p = Zeroizing::new(random(32)?.as_bytes().to_vec());
                match store.apply(vec![store.sealed_create(
                    Table::IdentityKeys,
                    PEPPER_KEY,
                    &p,
                )?]) {
                    Ok(()) => p,
                    Err(cryptoutil_storage::Error::Exists { .. }) => store
                        .get_sealed(Table::IdentityKeys, PEPPER_KEY)?
                        .map(|p| Zeroizing::new(p.to_vec()))
                        .ok_or(Error::Internal {
                            what: "reading the pepper another replica made",
                        })?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let mut state = Self {
            cfg,
            store,
            pepper,
            tenants: BTreeMap::new(),
            clients: HashMap::new(),
            users: HashMap::new(),
            keys: Vec::new(),
            revoked: HashMap::new(),
            verified: HashMap::new(),
            used_assertions: HashMap::new(),
            used_dpop: HashMap::new(),
            flow: super::flow::FlowState::default(),
            families: HashMap::new(),
            consents: HashMap::new(),
            audit: None,
            changes: 0,
            reloading: false,
            ticks: 0,
        };
        state.merge(loaded);
        if state.keys.is_empty() {
            let first = Self::new_signing_key(&state.store, None)?;
            state.merge(first);
        }
        Ok(state)
    }

    /// Blocking: tenants, clients, users, signing keys (and the generated pepper), live
    /// revocations and consents: everything but refresh families.
    pub fn read_admin(store: &Store, now: u64) -> Result<Loaded, Error> {
        let mut loaded = Loaded {
            tenants: crate::record::scan(store, Table::IdentityTenants, b"", "tenant")?,
            clients: crate::record::scan(store, Table::IdentityClients, b"", "client")?,
            ..Loaded::default()
        };
        for mut user in crate::record::scan::<User>(store, Table::IdentityUsers, b"", "user")? {
            if user.id.is_empty() {
                // Records from before subjects had ids: a stable one from tenant and name.
                let digest =
                    oauth::token_digest(format!("{}/{}", user.tenant, user.username).as_bytes());
                user.id = format!("user-{}", b64::encode(&digest[..12]));
            }
            loaded.users.push(user);
        }
        loaded.consents = crate::record::scan(store, Table::IdentityConsents, b"", "consent")?;
        for (k, plain) in store.scan_sealed(Table::IdentityRevoked, b"")? {
            let exp = serde_json::from_slice::<Value>(&plain)
                .ok()
                .and_then(|v| v.get("exp").and_then(Value::as_u64))
                .ok_or_else(|| Error::corrupt(Table::IdentityRevoked, &k, "revocation"))?;
            if exp > now {
                loaded
                    .revoked
                    .push((String::from_utf8_lossy(&k).into_owned(), exp));
            }
        }
        for (k, plain) in store.scan_sealed(Table::IdentityKeys, b"")? {
            if k.as_slice() == PEPPER_KEY {
                loaded.pepper = Some(Zeroizing::new(plain.to_vec()));
                continue;
            }
            loaded.keys.push(signing_key_from_record(&k, &plain)?);
        }
        Ok(loaded)
    }

    /// What [`Self::read_admin`] read a moment ago replaces what this replica holds (other
    /// replicas added, changed or removed records meanwhile).
    pub fn replace(&mut self, loaded: Loaded) {
        self.tenants.clear();
        self.clients.clear();
        self.users.clear();
        self.consents.clear();
        if !loaded.keys.is_empty() {
            self.keys.clear();
        }
        let changes = self.changes;
        self.merge(loaded);
        self.changes = changes;
    }

    /// The store, for blocking work off the mailbox.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// The pepper, for blocking work that stores client secrets.
    pub fn pepper(&self) -> Zeroizing<Vec<u8>> {
        self.pepper.clone()
    }

    /// Every tenant.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// Every client.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    /// Every user.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Forgets a record the store no longer holds.
    pub fn remove(&mut self, removal: Removal) {
        match removal {
            Removal::Client(id) => {
                self.clients.remove(&id);
            }
            Removal::User(tenant, username) => {
                self.users.remove(&(tenant, username));
            }
        }
    }

    /// Every audience a client can be granted (the configured services).
    pub fn audiences(&self) -> Vec<String> {
        self.cfg.resources.keys().cloned().collect()
    }

    /// Whether first-start provisioning is due.
    pub fn needs_bootstrap(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The kid of the current signing key.
    pub fn current_kid(&self) -> Option<String> {
        self.keys.last().and_then(|k| k.jwk.kid.clone())
    }

    /// Adds what blocking work read or wrote.
    pub fn merge(&mut self, loaded: Loaded) {
        // What a reload replaces (revocations and families it leaves alone).
        if !(loaded.tenants.is_empty()
            && loaded.clients.is_empty()
            && loaded.users.is_empty()
            && loaded.keys.is_empty()
            && loaded.consents.is_empty())
        {
            self.changes += 1;
        }
        for t in loaded.tenants {
            self.tenants.insert(t.id.clone(), t);
        }
        for c in loaded.clients {
            self.clients.insert(c.client_id.clone(), c);
        }
        for u in loaded.users {
            self.users.insert((u.tenant.clone(), u.username.clone()), u);
        }
        for k in loaded.keys {
            self.keys.retain(|old| old.jwk.kid != k.jwk.kid);
            self.keys.push(k);
        }
        self.revoked.extend(loaded.revoked);
        for f in loaded.families {
            self.families.insert(f.id.clone(), f);
        }
        for c in loaded.consents {
            self.consents.insert((c.user_id, c.client_id), c.scopes);
        }
        // Current (never retired) last, then by creation.
        self.keys.sort_by_key(|k| (k.retired.is_none(), k.created));
    }

    /// Public keys of the current key and of retired keys still inside the overlap (a token
    /// signed just before a rotation stays verifiable until it expires).
    pub fn jwks(&self, now: u64) -> Value {
        let keys: Vec<Value> = self
            .published(now)
            .filter_map(|k| k.to_public_value().ok())
            .collect();
        json!({ "keys": keys })
    }

    /// The keys [`Self::jwks`] publishes at `now`, newest first.
    pub(super) fn published(&self, now: u64) -> impl Iterator<Item = &Jwk> {
        let overlap = self.cfg.access_token_ttl.as_secs() + 300;
        self.keys
            .iter()
            .rev()
            .filter(move |k| k.retired.is_none_or(|r| now < r + overlap))
            .map(|k| k.jwk.as_ref())
    }

    /// RFC 8414 / OpenID Connect Discovery metadata: only what is implemented.
    pub fn metadata(&self) -> Value {
        let issuer = self.cfg.issuer.trim_end_matches('/');
        let client_auth = [
            AuthMethod::ClientSecretBasic.as_str(),
            AuthMethod::ClientSecretPost.as_str(),
            AuthMethod::PrivateKeyJwt.as_str(),
        ];
        let mut token_auth = client_auth.to_vec();
        token_auth.push(AuthMethod::None.as_str());
        if self.cfg.mtls_roots.is_some() {
            token_auth.push(TLS_CLIENT_AUTH);
        }
        let scopes: Vec<&str> = API_SCOPES
            .iter()
            .chain(OIDC_SCOPES.iter())
            .copied()
            .collect();
        let mut doc = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/service/oauth2/v1/token"),
            "jwks_uri": format!("{issuer}/service/oauth2/v1/jwks"),
            "introspection_endpoint": format!("{issuer}/service/oauth2/v1/introspect"),
            "revocation_endpoint": format!("{issuer}/service/oauth2/v1/revoke"),
            "introspection_endpoint_auth_methods_supported": client_auth,
            "revocation_endpoint_auth_methods_supported": client_auth,
            "grant_types_supported": [CLIENT_CREDENTIALS],
            "token_endpoint_auth_methods_supported": token_auth,
            "tls_client_certificate_bound_access_tokens": true,
            "token_endpoint_auth_signing_alg_values_supported":
                ASSERTION_ALGS.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "scopes_supported": scopes,
            "response_types_supported": [],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "resource_indicators_supported": true,
            "dpop_signing_alg_values_supported": cryptoutil_protocols::dpop::PROOF_ALGS
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
        });
        if self.cfg.login_url.is_some() {
            let extra = json!({
                "authorization_endpoint": format!("{issuer}{}", AUTHORIZE_PATH),
                "pushed_authorization_request_endpoint":
                    format!("{issuer}/service/oauth2/v1/par"),
                "require_pushed_authorization_requests": false,
                "userinfo_endpoint": format!("{issuer}/service/oauth2/v1/userinfo"),
                "end_session_endpoint": format!("{issuer}{}", LOGOUT_PATH),
                "grant_types_supported": [CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
                "claims_supported": [
                    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                    "at_hash", "sid", "azp", "preferred_username", "tenant"
                ],
                "acr_values_supported": crate::identity::signin::ACR_VALUES,
                "prompt_values_supported": ["none", "login"],
                "claims_parameter_supported": false,
                "request_parameter_supported": false,
                "request_uri_parameter_supported": false,
                "backchannel_logout_supported": self.cfg.backchannel.is_some(),
                "backchannel_logout_session_supported": self.cfg.backchannel.is_some()
            });
            if let (Some(d), Value::Object(e)) = (doc.as_object_mut(), extra) {
                d.extend(e);
            }
        }
        doc
    }

    /// Blocking: a new ES256 signing key, persisted; `retire` (kid, at) marks the previous
    /// current key retired in the same write.
    pub fn new_signing_key(
        store: &Store,
        retire: Option<(&SigningKey, u64)>,
    ) -> Result<Loaded, Error> {
        let jwk = Jwk::generate(JwsAlg::ES256)?;
        let key = SigningKey {
            jwk: Arc::new(jwk),
            created: now_unix(),
            retired: None,
        };
        let mut writes = vec![signing_key_write(store, &key)?];
        let mut keys = vec![key];
        if let Some((old, at)) = retire {
            let retired = SigningKey {
                retired: Some(at),
                ..old.clone()
            };
            writes.push(signing_key_write(store, &retired)?);
            keys.push(retired);
        }
        store.apply(writes)?;
        Ok(Loaded {
            keys,
            ..Loaded::default()
        })
    }

    /// The current signing key, for a rotation.
    pub fn current_key(&self) -> Option<SigningKey> {
        self.keys.last().cloned()
    }

    /// Blocking: the first tenant, a service client allowed every API scope and audience, and
    /// an admin user, persisted in one write.
    pub fn bootstrap_records(
        store: &Store,
        pepper: &[u8],
        audiences: Vec<String>,
    ) -> Result<(Loaded, BootstrapCredentials), Error> {
        let now = now_unix();
        let tenant = Tenant {
            id: "default".into(),
            name: "Default tenant".into(),
            created: now,
            acr: None,
        };
        let client_id = format!("service-{}", random(9)?.as_str());
        let client_secret = random(oauth::CLIENT_SECRET_BYTES)?;
        let client = Client {
            client_id: client_id.clone(),
            tenant: tenant.id.clone(),
            name: "Bootstrap service client".into(),
            secret_mac: b64::encode(&oauth::client_secret_mac(pepper, &client_secret)),
            grant_types: vec![CLIENT_CREDENTIALS.into()],
            scopes: API_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            audiences,
            auth_methods: vec![
                AuthMethod::ClientSecretBasic.as_str().into(),
                AuthMethod::ClientSecretPost.as_str().into(),
            ],
            jwks: None,
            first_party: true,
            any_tenant: false,
            // Not a resource server: federated services get a client of their own (least
            // privilege; the operator creates it with `resource_server: true`).
            resource_server: false,
            tls_client_auth_san: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            acr: None,
            backchannel_logout_uri: None,
            created: now,
        };
        let password = random(18)?;
        let user = User {
            id: format!("user-{}", random(12)?.as_str()),
            tenant: tenant.id.clone(),
            username: "admin".into(),
            password_hash: oauth::hash_password(&password, oauth::PASSWORD_ITERATIONS).map_err(
                |_| Error::Internal {
                    what: "random generator",
                },
            )?,
            roles: vec!["admin".into()],
            created: now,
        };
        // The tenant is created: of replicas sharing a new store, one bootstraps.
        store.apply(vec![
            store.sealed_create(
                Table::IdentityTenants,
                tenant.id.as_bytes(),
                &record_json(&tenant)?,
            )?,
            store.sealed_write(
                Table::IdentityClients,
                client.client_id.as_bytes(),
                &record_json(&client)?,
            )?,
            store.sealed_write(
                Table::IdentityUsers,
                format!("{}/{}", user.tenant, user.username).as_bytes(),
                &record_json(&user)?,
            )?,
        ])?;
        let creds = BootstrapCredentials {
            tenant: tenant.id.clone(),
            client_id,
            client_secret,
            username: user.username.clone(),
            password,
        };
        Ok((
            Loaded {
                tenants: vec![tenant],
                clients: vec![client],
                users: vec![user],
                ..Loaded::default()
            },
            creds,
        ))
    }

    /// Fault injection.
    #[allow(clippy::panic)]
    pub fn crash(&self) {
        panic!("fault injection: Authz crash requested");
    }
}

/// A signing key as stored (sealed).
#[derive(Serialize, Deserialize)]
struct SigningKeyRecord {
    #[serde(with = "cryptoutil_protocols::jose::jwk::private_serde")]
    jwk: Jwk,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    retired: Option<u64>,
}

fn signing_key_write(
    store: &Store,
    key: &SigningKey,
) -> Result<cryptoutil_storage::backend::Write, Error> {
    let record = record_json(&SigningKeyRecord {
        jwk: (*key.jwk).clone(),
        created: key.created,
        retired: key.retired,
    })?;
    let kid = key.jwk.kid.clone().unwrap_or_default();
    Ok(store.sealed_write(Table::IdentityKeys, kid.as_bytes(), &record)?)
}

fn signing_key_from_record(key: &[u8], plain: &[u8]) -> Result<SigningKey, Error> {
    let record: SigningKeyRecord = serde_json::from_slice(plain)
        .map_err(|_| Error::corrupt(Table::IdentityKeys, key, "signing key"))?;
    Ok(SigningKey {
        jwk: Arc::new(record.jwk),
        created: record.created,
        retired: record.retired,
    })
}
