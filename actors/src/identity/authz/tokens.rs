//! Token decisions of the `Authz` actor: client authentication (secrets and private_key_jwt
//! assertions), the client-credentials grant, introspection and revocation.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::jose::{b64, jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::oauth::{self, TokenError};
use serde_json::{json, Map, Value};

use super::flow::{Persist, TokenDecision};
use super::model::{
    random, refuse, AuthMethod, Client, ClientAuth, TokenGrant, TokenRequest, ASSERTION_ALGS,
    AUTHORIZATION_CODE, CLIENT_CREDENTIALS, DPOP_WINDOW, REFRESH_TOKEN, TLS_CLIENT_AUTH,
};
use super::state::AuthzState;
use crate::error::Error;

/// Longest accepted lifetime of a client assertion (its `exp` from now): an hour, the default of
/// common client libraries (Authlib among them), plus a minute of clock skew.
const ASSERTION_MAX_LIFETIME: u64 = 3660;
/// Most used assertions remembered at once; past it (after dropping expired ones) new
/// assertions are refused rather than replays risked.
const USED_ASSERTIONS_MAX: usize = 100_000;
/// Most verified tokens remembered for introspection.
const VERIFIED_MAX: usize = 10_000;

impl AuthzState {
    /// Decides a token request at `now`: client authentication, then the grant.
    pub fn token(&mut self, req: &TokenRequest, now: u64) -> TokenDecision {
        let client = match self.authenticate(&req.client, now) {
            Ok(c) => c.clone(),
            Err(e) => return Err(e).into(),
        };
        if let Some(proof) = &req.dpop {
            if !self.fresh_dpop(proof, now) {
                return Err(refuse(TokenError::InvalidDpopProof)).into();
            }
        }
        let mut decision = match req.grant_type.as_str() {
            CLIENT_CREDENTIALS => self.client_credentials(&client, req, now).into(),
            AUTHORIZATION_CODE => self.code_grant(&client, req, now),
            REFRESH_TOKEN => self.refresh_grant(&client, req, now),
            "" => Err(refuse(TokenError::InvalidRequest)).into(),
            _ => Err(refuse(TokenError::UnsupportedGrantType)).into(),
        };
        // RFC 9449 §6: the access token carries the key's thumbprint.
        if let (Some(proof), Ok(grant)) = (&req.dpop, &mut decision.result) {
            grant
                .claims
                .insert("cnf".into(), json!({ "jkt": proof.jkt }));
            grant.token_type = "DPoP";
        }
        // RFC 8705 §3: a client that authenticated with its certificate gets tokens bound to it.
        let tls_client = req.client.method == AuthMethod::None
            && client.auth_methods.iter().any(|m| m == TLS_CLIENT_AUTH)
            && req.client.certs.is_some();
        if let (true, Some(leaf), Ok(grant)) = (
            tls_client,
            req.client.certs.as_ref().and_then(|c| c.first()),
            &mut decision.result,
        ) {
            let x5t = b64::encode(&oauth::token_digest(leaf));
            let cnf = grant.claims.entry("cnf").or_insert_with(|| json!({}));
            if let Some(o) = cnf.as_object_mut() {
                o.insert("x5t#S256".into(), json!(x5t));
            }
        }
        // A public client's refresh family is bound to the key too (RFC 9449 §5).
        let public = client
            .auth_methods
            .iter()
            .any(|m| m == AuthMethod::None.as_str());
        if let (Some(proof), true) = (&req.dpop, public) {
            for f in &mut decision.persist.families {
                if f.jkt.is_none() {
                    f.jkt = Some(proof.jkt.clone());
                    if let Some(live) = self.families.get_mut(&f.id) {
                        live.jkt = f.jkt.clone();
                    }
                }
            }
        }
        decision
    }

    /// A proof's `jti` not seen before (remembered for the proof window; bounded, and full
    /// means refused rather than a replay risked).
    fn fresh_dpop(&mut self, proof: &cryptoutil_protocols::dpop::Proof, now: u64) -> bool {
        let key = (proof.jkt.clone(), proof.jti.clone());
        if self.used_dpop.len() >= USED_ASSERTIONS_MAX {
            self.used_dpop.retain(|_, exp| *exp > now);
        }
        if self.used_dpop.len() >= USED_ASSERTIONS_MAX || self.used_dpop.contains_key(&key) {
            return false;
        }
        let forget_at = proof.iat + 2 * DPOP_WINDOW;
        let claim = crate::identity::authz::flow::shared::replay_key('d', &key.0, &key.1);
        self.keep(&claim, forget_at, &(), true);
        self.used_dpop.insert(key, forget_at);
        true
    }

    /// The client credentials grant: scope and audience within the client's.
    fn client_credentials(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: u64,
    ) -> Result<TokenGrant, Error> {
        if !client.allows(CLIENT_CREDENTIALS) {
            return Err(refuse(TokenError::UnauthorizedClient));
        }
        let scopes = match &req.scope {
            // The sign-in back channel's and identity-rs's scopes only when asked for by name:
            // a client's token for its other peers never carries them.
            None => client
                .scopes
                .iter()
                .filter(|s| !crate::service::Scope::asked_by_name_only(s))
                .cloned()
                .collect(),
            Some(s) => {
                let asked = oauth::parse_scope(s).ok_or(refuse(TokenError::InvalidScope))?;
                if asked.is_empty() || !asked.iter().all(|a| client.scopes.contains(a)) {
                    return Err(refuse(TokenError::InvalidScope));
                }
                asked
            }
        };
        let audiences: Vec<String> = match &req.resource {
            None => client.audiences.clone(),
            Some(resource) => vec![self
                .audience_of(resource, client)
                .ok_or(refuse(TokenError::InvalidTarget))?],
        };
        self.access_grant(
            client,
            &client.client_id,
            &client.tenant,
            &scopes,
            &audiences,
            now,
        )
    }

    /// An RFC 9068 access token's claims for `sub`, with the current signing key.
    pub(super) fn access_grant(
        &self,
        client: &Client,
        sub: &str,
        tenant: &str,
        scopes: &[String],
        audiences: &[String],
        now: u64,
    ) -> Result<TokenGrant, Error> {
        let key = self
            .keys
            .last()
            .map(|k| Arc::clone(&k.jwk))
            .ok_or(Error::Unavailable {
                actor: "Authz",
                why: crate::error::Unavailability::Restarting,
            })?;
        let ttl = self.cfg.access_token_ttl.as_secs();
        let jti = random(16)?;
        let scope = scopes.join(" ");
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.cfg.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("client_id".into(), json!(client.client_id));
        claims.insert(
            "aud".into(),
            match audiences {
                [one] => json!(one),
                many => json!(many),
            },
        );
        claims.insert("scope".into(), json!(scope));
        claims.insert("tenant".into(), json!(tenant));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl));
        claims.insert("jti".into(), json!(jti.as_str()));
        Ok(TokenGrant {
            key,
            claims,
            expires_in: ttl,
            scope,
            jti: Some((jti.to_string(), now + ttl)),
            token_type: "Bearer",
            refresh_token: None,
            id_token: None,
        })
    }

    /// RFC 7662: the token's claims when it is ours (signature by a published key, issuer,
    /// not expired, not revoked) and of the introspecting client's tenant, else inactive. Only
    /// authenticated clients may ask.
    pub fn introspect(&mut self, auth: &ClientAuth, token: &str, now: u64) -> Result<Value, Error> {
        let client = self.authenticate(auth, now)?;
        let proved = auth.method != AuthMethod::None
            || client.auth_methods.iter().any(|m| m == TLS_CLIENT_AUTH);
        if !proved {
            // Public clients do not introspect (RFC 7662 §4: only authorized callers).
            return Err(refuse(TokenError::InvalidClient));
        }
        let tenant = client.tenant.clone();
        let audiences = client.resource_server.then(|| client.audiences.clone());
        let inactive = json!({ "active": false });
        let Some(claims) = self.live_claims(token, now) else {
            return Ok(inactive);
        };
        let visible = match &audiences {
            // A resource server sees the tokens meant for it, whatever their tenant.
            Some(own) => audience_of(&claims).iter().any(|a| own.contains(a)),
            None => claims.get("tenant").and_then(Value::as_str) == Some(tenant.as_str()),
        };
        if !visible {
            return Ok(inactive);
        }
        let mut out = (*claims).clone();
        out.insert("active".into(), json!(true));
        out.insert("token_type".into(), json!("Bearer"));
        Ok(Value::Object(out))
    }

    /// RFC 7009: what to revoke, if `token` is a live access token or refresh token issued to
    /// the authenticated client (a refresh token takes its whole family and the family's last
    /// access token). Anything else (expired, foreign, another client's, garbage) is not an
    /// error to the caller, who cannot act on it: nothing to persist.
    pub fn revocation(
        &mut self,
        auth: &ClientAuth,
        token: &str,
        now: u64,
    ) -> Result<Persist, Error> {
        let client_id = self.authenticate(auth, now)?.client_id.clone();
        if token.split('.').count() == 2 {
            return Ok(self.revoke_refresh(&client_id, token));
        }
        let mut persist = Persist::default();
        let Some(claims) = self.verified_claims(token, now) else {
            return Ok(persist);
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if let (Some(owner), Some(jti)) = (text("client_id"), text("jti")) {
            if owner == client_id && now < exp {
                persist.revoked.push((jti, exp));
            }
        }
        Ok(persist)
    }

    /// Claims of an access token that is ours, unexpired and not revoked.
    pub(super) fn live_claims(&mut self, token: &str, now: u64) -> Option<Arc<Map<String, Value>>> {
        let claims = self.verified_claims(token, now)?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (now < exp && !self.revoked.contains_key(jti)).then_some(claims)
    }

    /// Claims of a token signed by one of our published keys with our issuer (expiry is the
    /// caller's to check), cached by the token's SHA-256.
    fn verified_claims(&mut self, token: &str, now: u64) -> Option<Arc<Map<String, Value>>> {
        if token.len() > 16 * 1024 {
            return None;
        }
        let digest = oauth::token_digest(token.as_bytes());
        if let Some(claims) = self.verified.get(&digest) {
            return Some(Arc::clone(claims));
        }
        // The published keys as they are, not serialized and parsed again on every new token.
        let set = JwkSet {
            keys: self.published(now).cloned().collect(),
        };
        let v = jwt::Validation {
            issuer: Some(self.cfg.issuer.clone()),
            audience: None,
            typ: Some("at+jwt".into()),
            leeway: Duration::ZERO,
            require_exp: true,
        };
        let parsed = jwt::Unverified::parse(token).ok()?;
        // Ours are signed low-S: the high-S twin of one is a copy, not a token we issued.
        if parsed.high_s() {
            return None;
        }
        let claims = Arc::new(parsed.verify(&set, &[JwsAlg::ES256], &v, now).ok()?);
        if self.verified.len() >= VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.insert(digest, Arc::clone(&claims));
        Some(claims)
    }

    /// The client if `auth` proves it; the same work and the same error whether the client is
    /// unknown or the secret wrong, so neither timing nor message tells which.
    pub(super) fn authenticate(&mut self, auth: &ClientAuth, now: u64) -> Result<&Client, Error> {
        if auth.method == AuthMethod::None {
            let client = self
                .clients
                .get(&auth.client_id)
                .ok_or(refuse(TokenError::InvalidClient))?;
            let has = |m: &str| client.auth_methods.iter().any(|x| x == m);
            // RFC 8705 §2.1: the connection's certificate chains to the configured anchors
            // and names the registered subject alternative name.
            if has(TLS_CLIENT_AUTH) {
                let ok = match (
                    &self.cfg.mtls_roots,
                    &auth.certs,
                    &client.tls_client_auth_san,
                ) {
                    (Some(roots), Some(chain), Some(san)) => {
                        cryptoutil_protocols::tls::client_chain_matches(roots, chain, san)
                    }
                    _ => false,
                };
                if ok {
                    return Ok(client);
                }
            }
            // A public client: nothing to prove; its grants are PKCE-bound codes and rotated
            // refresh tokens.
            if has(AuthMethod::None.as_str()) {
                return Ok(client);
            }
            return Err(refuse(TokenError::InvalidClient));
        }
        if auth.method == AuthMethod::PrivateKeyJwt {
            let client_id = self.check_assertion(auth, now)?;
            return self
                .clients
                .get(&client_id)
                .ok_or(refuse(TokenError::InvalidClient));
        }
        let client = self.clients.get(&auth.client_id);
        let stored = client
            .and_then(|c| b64::decode(&c.secret_mac, "mac").ok())
            .and_then(|m| <[u8; 32]>::try_from(m.as_slice()).ok())
            .unwrap_or([0u8; 32]);
        let secret_ok = oauth::client_secret_matches(&self.pepper, &auth.secret, &stored);
        match client {
            Some(c)
                if secret_ok
                    && auth.secret.len() <= oauth::MAX_CREDENTIAL_LEN
                    && c.auth_methods.iter().any(|m| m == auth.method.as_str()) =>
            {
                Ok(c)
            }
            _ => Err(refuse(TokenError::InvalidClient)),
        }
    }

    /// RFC 7523 §3: a client assertion signed by a key the client registered, `iss` = `sub` =
    /// the client, `aud` naming this server, `exp` at most an hour ahead, a `jti` never seen
    /// before (remembered until `exp`; a restart forgets them, so a replay window is bounded by
    /// that lifetime). Every failure is the same `invalid_client`.
    fn check_assertion(&mut self, auth: &ClientAuth, now: u64) -> Result<String, Error> {
        let refused = || refuse(TokenError::InvalidClient);
        let assertion = auth.secret.as_str();
        if assertion.len() > 16 * 1024 {
            return Err(refused());
        }
        let unverified: Value = assertion
            .split('.')
            .nth(1)
            .and_then(|p| b64::decode(p, "assertion").ok())
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(refused)?;
        let client_id = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(refused)?
            .to_owned();
        if !auth.client_id.is_empty() && auth.client_id != client_id {
            return Err(refused());
        }
        let client = self.clients.get(&client_id).ok_or_else(refused)?;
        if !client
            .auth_methods
            .iter()
            .any(|m| m == AuthMethod::PrivateKeyJwt.as_str())
        {
            return Err(refused());
        }
        let set = client
            .jwks
            .as_ref()
            .and_then(|j| crate::issuer_jwks::parse_issuer_set(&j.to_string()).ok())
            .ok_or_else(refused)?;
        let v = jwt::Validation {
            issuer: Some(client_id.clone()),
            audience: None,
            typ: None,
            leeway: Duration::from_secs(30),
            require_exp: true,
        };
        let claims =
            jwt::verify(assertion, &set, &ASSERTION_ALGS, &v, now).map_err(|_| refused())?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let issuer = self.cfg.issuer.trim_end_matches('/').to_owned();
        let token_endpoint = format!("{issuer}/service/oauth2/v1/token");
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == issuer || *a == token_endpoint,
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| a == issuer || a == token_endpoint),
            _ => false,
        };
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
        let (true, Some(jti), true) = (
            aud_ok && text("sub").as_deref() == Some(client_id.as_str()),
            jti,
            exp <= now + ASSERTION_MAX_LIFETIME,
        ) else {
            return Err(refused());
        };
        if self.used_assertions.len() >= USED_ASSERTIONS_MAX {
            self.used_assertions.retain(|_, e| *e > now);
        }
        if self.used_assertions.len() >= USED_ASSERTIONS_MAX {
            return Err(refused());
        }
        let key = (client_id.clone(), jti);
        if self.used_assertions.contains_key(&key) {
            return Err(refused());
        }
        let claim = crate::identity::authz::flow::shared::replay_key('a', &key.0, &key.1);
        self.keep(&claim, exp, &(), true);
        self.used_assertions.insert(key, exp);
        Ok(client_id)
    }
}

/// The `aud` claim as a list (RFC 7519 §4.1.3: a string or an array of strings).
fn audience_of(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
