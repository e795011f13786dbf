//! The typed handle to the `Authz` actor.

use std::time::Duration;

use serde_json::Value;

use zeroize::Zeroizing;

use super::{AuthzMsg, BootstrapCredentials, ClientAuth, TokenGrant, TokenRequest};
use crate::ask::ask;
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle.
#[derive(Clone, Debug)]
pub struct AuthzHandle {
    slot: Slot<AuthzMsg>,
    timeout: Duration,
}

impl AuthzHandle {
    /// A handle reading `slot`, asking with `timeout`.
    pub fn new(slot: Slot<AuthzMsg>, timeout: Duration) -> Self {
        Self { slot, timeout }
    }

    /// Decides a token request; `Error::OAuth` carries the RFC 6749 error.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenGrant, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Token { request, reply },
            self.timeout,
        )
        .await
    }

    /// RFC 7662 introspection.
    pub async fn introspect(
        &self,
        client: ClientAuth,
        token: Zeroizing<String>,
    ) -> Result<Value, Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Introspect {
                client,
                token,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// RFC 7009 revocation; returns once durable.
    pub async fn revoke(&self, client: ClientAuth, token: Zeroizing<String>) -> Result<(), Error> {
        ask(
            &self.slot,
            |reply| AuthzMsg::Revoke {
                client,
                token,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// An admin operation on tenants, clients or users.
    pub async fn admin(
        &self,
        caller: super::admin::Caller,
        op: super::admin::AdminOp,
    ) -> Result<Value, Error> {
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
