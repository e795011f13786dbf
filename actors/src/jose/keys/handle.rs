//! The typed handle to the `JoseKeys` actor.

use cryptoutil_protocols::ids::{Kid, TenantId};
use std::time::Duration;

use cryptoutil_protocols::jose::jwe::ContentAlg;
use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::jwt::Claims;
use serde_json::Value;
use zeroize::Zeroizing;

use super::msg::JoseKeysMsg;
use super::state::{KeySpec, KeyView};
use crate::ask::ask;
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle.
#[derive(Clone, Debug)]
pub struct JoseKeysHandle {
    slot: Slot<JoseKeysMsg>,
    timeout: Duration,
}

impl JoseKeysHandle {
    /// A handle reading `slot`, asking with `timeout`.
    pub fn new(slot: Slot<JoseKeysMsg>, timeout: Duration) -> Self {
        Self { slot, timeout }
    }

    /// Creates a key.
    pub async fn create(&self, tenant: TenantId, spec: KeySpec) -> Result<KeyView, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Create {
                tenant,
                spec,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// The tenant's JWK Set.
    pub async fn list(&self, tenant: TenantId) -> Result<Value, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::List { tenant, reply },
            self.timeout,
        )
        .await
    }

    /// Every key of the tenant as metadata (symmetric keys included, no secret material).
    pub async fn inventory(&self, tenant: TenantId) -> Result<Vec<KeyView>, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Inventory { tenant, reply },
            self.timeout,
        )
        .await
    }

    /// One key (with the private JWK when `export` and exportable).
    pub async fn get(&self, tenant: TenantId, kid: Kid, export: bool) -> Result<KeyView, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Get {
                tenant,
                kid,
                export,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Deletes a key.
    pub async fn delete(&self, tenant: TenantId, kid: Kid) -> Result<(), Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Delete { tenant, kid, reply },
            self.timeout,
        )
        .await
    }

    /// Signs: the actor hands out the key and the signature is computed on the caller's task,
    /// so concurrent requests sign on every core instead of queueing on one mailbox.
    pub async fn sign(
        &self,
        tenant: TenantId,
        kid: Kid,
        payload: Vec<u8>,
    ) -> Result<String, Error> {
        let key = ask(
            &self.slot,
            |reply| JoseKeysMsg::Key { tenant, kid, reply },
            self.timeout,
        )
        .await?;
        super::JoseKeysState::sign_with(&key, &payload)
    }

    /// Verifies.
    pub async fn verify(&self, tenant: TenantId, jws: String) -> Result<Verified, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Verify { tenant, jws, reply },
            self.timeout,
        )
        .await
    }

    /// Encrypts.
    pub async fn encrypt(
        &self,
        tenant: TenantId,
        kid: Kid,
        enc: Option<ContentAlg>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Encrypt {
                tenant,
                kid,
                enc,
                plaintext,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Decrypts.
    pub async fn decrypt(
        &self,
        tenant: TenantId,
        jwe: String,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::Decrypt { tenant, jwe, reply },
            self.timeout,
        )
        .await
    }

    /// Signs a JWT.
    pub async fn jwt_sign(
        &self,
        tenant: TenantId,
        kid: Kid,
        claims: Claims,
    ) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::JwtSign {
                tenant,
                kid,
                claims,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Verifies a JWT at `now_unix`.
    pub async fn jwt_verify(
        &self,
        tenant: TenantId,
        token: String,
        now_unix: u64,
    ) -> Result<Claims, Error> {
        ask(
            &self.slot,
            |reply| JoseKeysMsg::JwtVerify {
                tenant,
                token,
                now_unix,
                reply,
            },
            self.timeout,
        )
        .await
    }
}
