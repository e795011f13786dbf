//! The typed handle to the `Authz` actor.

use std::time::Duration;

use serde_json::Value;

use zeroize::Zeroizing;

use super::flow::AuthorizeOutcome;
use super::model::{BootstrapCredentials, ClientAuth, TokenGrant, TokenRequest};
use super::msg::AuthzMsg;
use crate::ask::ask;
use crate::audit::{AuditEntry, AuditHandle};
use crate::error::Error;
use crate::identity::signin::{Credential, Next, SignInRequest, Subject};
use crate::slot::Slot;

/// Cloneable, restart-proof handle. Token grants and refusals, revocations and refused
/// introspections are audited before the caller hears the answer: a grant that cannot be
/// recorded is not handed out.
#[derive(Clone, Debug)]
pub struct AuthzHandle {
    slot: Slot<AuthzMsg>,
    audit: AuditHandle,
    timeout: Duration,
}

impl AuthzHandle {
    /// A handle reading `slot`, recording in `audit`, asking with `timeout`.
    pub fn new(slot: Slot<AuthzMsg>, audit: AuditHandle, timeout: Duration) -> Self {
        Self {
            slot,
            audit,
            timeout,
        }
    }

    /// Records `entry` with the outcome of `result`, then answers `result` (or the audit
    /// log's failure).
    async fn audited<T>(&self, entry: AuditEntry, result: Result<T, Error>) -> Result<T, Error> {
        self.audit
            .append(entry.outcome(&result), Vec::new())
            .await?;
        result
    }

    /// Decides a token request; `Error::OAuth` carries the RFC 6749 error. Audited as
    /// `token` (`refresh` for the refresh grant): who it was issued to, its tenant, and
    /// `<grant_type>:<jti>` (the grant type alone when refused).
    pub async fn token(&self, request: TokenRequest) -> Result<TokenGrant, Error> {
        let op = match request.grant_type.as_str() {
            super::model::REFRESH_TOKEN => "refresh",
            _ => "token",
        };
        let (client, grant_type) = (request.client.client_id.clone(), request.grant_type.clone());
        let result = ask(
            &self.slot,
            |reply| AuthzMsg::Token { request, reply },
            self.timeout,
        )
        .await;
        let entry = match &result {
            Ok(grant) => {
                let claim = |name: &str| {
                    grant
                        .claims
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                };
                let jti = grant.jti.as_ref().map_or("", |(jti, _)| jti.as_str());
                AuditEntry::new(
                    claim("sub"),
                    claim("tenant"),
                    &format!("{grant_type}:{jti}"),
                    op,
                )
            }
            Err(_) => AuditEntry::new(&client, "", &grant_type, op),
        };
        self.audited(entry, result).await
    }

    /// RFC 7662 introspection; a refused asker is audited (`introspect`).
    pub async fn introspect(
        &self,
        client: ClientAuth,
        token: Zeroizing<String>,
    ) -> Result<Value, Error> {
        let asker = client.client_id.clone();
        let result = ask(
            &self.slot,
            |reply| AuthzMsg::Introspect {
                client,
                token,
                reply,
            },
            self.timeout,
        )
        .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(e) => {
                self.audited(AuditEntry::new(&asker, "", "", "introspect"), Err(e))
                    .await
            }
        }
    }

    /// RFC 7009 revocation; returns once durable, and audited (`revoke`).
    pub async fn revoke(&self, client: ClientAuth, token: Zeroizing<String>) -> Result<(), Error> {
        let asker = client.client_id.clone();
        let result = ask(
            &self.slot,
            |reply| AuthzMsg::Revoke {
                client,
                token,
                reply,
            },
            self.timeout,
        )
        .await;
        self.audited(AuditEntry::new(&asker, "", "", "revoke"), result)
            .await
    }

    /// An admin operation on tenants, clients or users.
    pub async fn admin(
        &self,
        caller: super::admin::Caller,
        op: super::admin::AdminOp,
    ) -> Result<super::admin::AdminAnswer, Error> {
        // Creating a user hashes its password (600,000 PBKDF2 iterations).
        ask(
            &self.slot,
            |reply| AuthzMsg::Admin { caller, op, reply },
            self.timeout.max(Duration::from_secs(30)),
        )
        .await
    }

    /// The public JWK Set.
    pub async fn jwks(&self) -> Result<Value, Error> {
        ask(&self.slot, |reply| AuthzMsg::Jwks { reply }, self.timeout).await
    }

    /// Discovery metadata.
    pub async fn metadata(&self) -> Result<Value, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Metadata { reply },
            self.timeout,
        )
        .await
    }

    /// First-start provisioning; `Some` only the first time.
    pub async fn bootstrap(&self) -> Result<Option<BootstrapCredentials>, Error> {
        // Hashing the admin password (600,000 PBKDF2 iterations) takes a while on a busy machine.
        ask(
            &self.slot,
            |reply| AuthzMsg::Bootstrap { reply },
            self.timeout.max(Duration::from_secs(30)),
        )
        .await
    }

    /// The authorization endpoint.
    pub async fn authorize(
        &self,
        params: Vec<(String, String)>,
    ) -> Result<AuthorizeOutcome, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Authorize { params, reply },
            self.timeout,
        )
        .await
    }

    /// RFC 9126: pushes an authorization request; the `request_uri` and its lifetime.
    pub async fn push(
        &self,
        client: ClientAuth,
        params: Vec<(String, String)>,
    ) -> Result<(String, u64), Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Push {
                client,
                params,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// The pending request `challenge`, as identity-idp's login page needs it.
    pub async fn sign_in_request(&self, challenge: String) -> Result<SignInRequest, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::SignInRequest { challenge, reply },
            self.timeout,
        )
        .await
    }

    /// The user `username` of `tenant`, for a factor to check.
    pub async fn credential(
        &self,
        tenant: String,
        username: String,
    ) -> Result<Option<Credential>, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Credential {
                tenant,
                username,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Whether a session of `subject` still stands (not logged out, its user the same).
    pub async fn stands(&self, subject: Subject) -> Result<bool, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Stands { subject, reply },
            self.timeout,
        )
        .await
    }

    /// `subject` signed in for `challenge`: the code or the consent page; `None` when the
    /// subject no longer stands.
    pub async fn signed_in(
        &self,
        challenge: String,
        subject: Subject,
    ) -> Result<Option<Next>, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::SignedIn {
                challenge,
                subject,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// `prompt=none` without a session: where the browser goes.
    pub async fn login_required(&self, challenge: String) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::LoginRequired { challenge, reply },
            self.timeout,
        )
        .await
    }

    /// The consent page's answer; where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Consent {
                challenge,
                allow,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// OpenID Connect userinfo.
    pub async fn userinfo(&self, token: Zeroizing<String>) -> Result<Value, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Userinfo { token, reply },
            self.timeout,
        )
        .await
    }

    /// RP-initiated logout; the redirect, if any.
    pub async fn logout(
        &self,
        id_token_hint: Option<String>,
        post_logout_redirect_uri: Option<String>,
        state: Option<String>,
    ) -> Result<Option<String>, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Logout {
                id_token_hint,
                post_logout_redirect_uri,
                state,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Rotates the signing key; returns the new kid.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::RotateSigningKey { reply },
            self.timeout,
        )
        .await
    }
}
