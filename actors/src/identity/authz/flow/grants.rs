//! The grants of a signed-in user (authorization code, refresh token with rotation), refresh
//! revocation, userinfo, RP-initiated logout, and making the flow's records durable.

use cryptoutil_protocols::jose::{b64, jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::oauth::{self, TokenError};
use cryptoutil_storage::{Store, Table};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::*;
use crate::error::Error;
use crate::identity::authz::model::{
    random, refuse, Client, TokenRequest, AUTHORIZATION_CODE, REFRESH_TOKEN,
};
use crate::identity::authz::state::{record_json, AuthzState, Loaded};

impl AuthzState {
    /// The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6). A code is single-use: a
    /// second presentation revokes what the first one produced (RFC 9700 §4.5).
    pub(in crate::identity::authz) fn code_grant(
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
        let grant = self.flow.codes.remove(&digest);
        self.forget(&shared::code_key(&digest));
        let Some(grant) = grant else {
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
            let used = UsedCode {
                forget_at: now + USED_CODE_MEMORY,
                jti: g.jti.clone(),
                family: decision.persist.families.first().map(|f| f.id.clone()),
            };
            // Created: of two replicas redeeming one code at once, one is refused.
            self.keep(&shared::used_key(&digest), used.forget_at, &used, true);
            self.flow.used_codes.retain(|_, u| u.forget_at > now);
            if self.flow.used_codes.len() < MAX_ENTRIES {
                self.flow.used_codes.insert(digest, used);
            }
        }
        decision
    }

    /// The refresh token grant: rotated on every use; presenting a rotated-out token of a
    /// family revokes the whole family (RFC 9700 §4.14.2).
    pub(in crate::identity::authz) fn refresh_grant(
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
            amr: if family.amr.is_empty() {
                vec!["pwd".to_owned()]
            } else {
                family.amr.clone()
            },
        };
        let audiences = family.audiences.clone();
        self.user_tokens(client, &subject, scopes, audiences, None, Some(family), now)
    }

    /// An access token for a user (and a refresh token, rotating `family` or starting one, when
    /// the client may refresh; an ID token when `openid` was granted).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn user_tokens(
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
        // RFC 9068 §2.2.1: how and when the user signed in, so a resource server can ask for
        // a stronger sign-in (RFC 9470 step-up) without introspecting.
        grant
            .claims
            .insert("auth_time".into(), json!(subject.auth_time));
        grant.claims.insert("acr".into(), json!(subject.acr()));
        grant.claims.insert("amr".into(), json!(subject.amr));
        self.took_part(&subject.sid, &client.client_id, now);
        let mut persist = Persist::default();
        if client.allows(REFRESH_TOKEN) {
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
                amr: subject.amr.clone(),
                generation: 0,
                secret_digest: String::new(),
                expires: now + self.cfg.refresh_token_ttl.as_secs(),
                revoked: false,
                last_jti: None,
                jkt: None,
                version: 0,
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
            id.insert("acr".into(), json!(subject.acr()));
            id.insert("amr".into(), json!(subject.amr));
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
    pub(in crate::identity::authz) fn revoke_refresh(
        &mut self,
        client_id: &str,
        token: &str,
    ) -> Persist {
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
        let notices = self.logout_notices(&sid, &field("sub"), now);
        self.end_session(&sid, now);
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
        Ok(LogoutOutcome {
            redirect,
            persist,
            notices,
        })
    }

    /// Remembers that session `sid` issued tokens to `client_id` at `now`. Bounded: when the
    /// record is full, the sessions least recently used (older than the median) are forgotten
    /// first; their clients with a refresh family are still found through it.
    fn took_part(&mut self, sid: &str, client_id: &str, now: u64) {
        let participants = &mut self.flow.participants;
        if participants.len() >= MAX_ENTRIES && !participants.contains_key(sid) {
            forget_older_half(participants, |(at, _)| *at);
        }
        let (at, clients) = participants.entry(sid.to_owned()).or_default();
        *at = now;
        clients.insert(client_id.to_owned());
        self.keep_took_part(sid, client_id, now);
    }

    /// What goes to every client of session `sid` (user `sub`) that registered a
    /// `backchannel_logout_uri` (OpenID Connect Back-Channel Logout 1.0 §2.4): the clients it
    /// issued tokens to since this process started, and those holding one of its live refresh
    /// families. Nothing for a session that already ended, or with back-channel logout off. The
    /// tokens are signed (and given their `jti`) where they are sent, off the actor.
    fn logout_notices(&mut self, sid: &str, sub: &str, now: u64) -> Vec<LogoutNotice> {
        let ended = self.flow.ended.contains_key(sid);
        let participants = self.flow.participants.remove(sid);
        for client_id in participants.iter().flat_map(|(_, c)| c) {
            self.forget(&shared::took_part_key(sid, client_id));
        }
        let key = self.keys.last().map(|k| std::sync::Arc::clone(&k.jwk));
        let (Some(key), false, true) = (key, ended, self.cfg.backchannel.is_some()) else {
            return Vec::new();
        };
        let mut clients = participants.map(|(_, c)| c).unwrap_or_default();
        clients.extend(
            self.families
                .values()
                .filter(|f| f.sid == sid && f.user_id == sub && !f.revoked)
                .map(|f| f.client_id.clone()),
        );
        clients
            .into_iter()
            .filter_map(|client_id| {
                let uri = self
                    .clients
                    .get(&client_id)?
                    .backchannel_logout_uri
                    .clone()?;
                let mut claims = Map::new();
                claims.insert("iss".into(), json!(self.cfg.issuer));
                claims.insert("aud".into(), json!(client_id));
                claims.insert("iat".into(), json!(now));
                claims.insert("exp".into(), json!(now + LOGOUT_TOKEN_TTL));
                claims.insert("sub".into(), json!(sub));
                claims.insert("sid".into(), json!(sid));
                claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
                Some(LogoutNotice {
                    client_id,
                    uri,
                    claims,
                    key: std::sync::Arc::clone(&key),
                })
            })
            .collect()
    }

    /// Blocking: makes families, consents, revocations and the flow's journal durable, in one
    /// transaction. With a `shared` store each family write is a new version that only one
    /// replica can write ([`shared::family_writes`]).
    pub fn persist_flow(store: &Store, persist: Persist, shared: bool) -> Result<Loaded, Error> {
        let mut writes = Vec::with_capacity(
            2 * persist.families.len()
                + persist.revoked.len()
                + persist.consents.len()
                + persist.flow.len(),
        );
        if shared {
            shared::family_writes(store, &persist.families, &mut writes)?;
        } else {
            for f in &persist.families {
                writes.push(store.sealed_write(
                    Table::IdentityRefresh,
                    f.id.as_bytes(),
                    &record_json(f)?,
                )?);
            }
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
        writes.extend(persist.flow);
        store.apply(writes)?;
        Ok(Loaded::with_revocations(persist.revoked))
    }
}
