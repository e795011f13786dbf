//! Messages of the `JoseKeys` actor.

use cryptoutil_protocols::ids::{Kid, TenantId};
use cryptoutil_protocols::jose::jwe::ContentAlg;
use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::jwt::Claims;
use ractor::RpcReplyPort;
use serde_json::Value;
use zeroize::Zeroizing;

use super::state::{KeySpec, KeyView, StoredKey};
use crate::error::Error;

/// What the `JoseKeys` actor does.
pub enum JoseKeysMsg {
    /// Generate, persist, then insert a key.
    Create {
        /// Tenant.
        tenant: TenantId,
        /// What to create.
        spec: KeySpec,
        /// The new key.
        reply: RpcReplyPort<Result<KeyView, Error>>,
    },
    /// Internal: a generated and persisted key joins the state.
    Insert {
        /// Tenant.
        tenant: TenantId,
        /// The key.
        key: StoredKey,
        /// Answer to the original Create.
        reply: RpcReplyPort<Result<KeyView, Error>>,
    },
    /// The tenant's JWK Set (public keys only).
    List {
        /// Tenant.
        tenant: TenantId,
        /// `{"keys": [...]}`.
        reply: RpcReplyPort<Result<Value, Error>>,
    },
    /// Every key of the tenant, symmetric ones included, as metadata (no secret material).
    Inventory {
        /// Tenant.
        tenant: TenantId,
        /// One view a key, by kid.
        reply: RpcReplyPort<Result<Vec<KeyView>, Error>>,
    },
    /// One key.
    Get {
        /// Tenant.
        tenant: TenantId,
        /// Key id.
        kid: Kid,
        /// Include the private JWK (refused unless exportable).
        export: bool,
        /// The key.
        reply: RpcReplyPort<Result<KeyView, Error>>,
    },
    /// Delete a key.
    Delete {
        /// Tenant.
        tenant: TenantId,
        /// Key id.
        kid: Kid,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Hand out a key (for signing on the caller's task, so signatures use every core rather
    /// than this one mailbox).
    Key {
        /// Tenant.
        tenant: TenantId,
        /// Key id.
        kid: Kid,
        /// The key (private material stays behind its Arc; nothing is copied out).
        reply: RpcReplyPort<Result<cryptoutil_protocols::jose::Jwk, Error>>,
    },
    /// Verify a compact JWS with the tenant's keys.
    Verify {
        /// Tenant.
        tenant: TenantId,
        /// The JWS.
        jws: String,
        /// Result.
        reply: RpcReplyPort<Result<Verified, Error>>,
    },
    /// Encrypt to a key (compact JWE).
    Encrypt {
        /// Tenant.
        tenant: TenantId,
        /// Key id.
        kid: Kid,
        /// Content encryption, default A256GCM.
        enc: Option<ContentAlg>,
        /// Plaintext.
        plaintext: Zeroizing<Vec<u8>>,
        /// The JWE.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Decrypt a compact JWE with the tenant's keys.
    Decrypt {
        /// Tenant.
        tenant: TenantId,
        /// The JWE.
        jwe: String,
        /// Plaintext.
        reply: RpcReplyPort<Result<Zeroizing<Vec<u8>>, Error>>,
    },
    /// Sign a claims set as a JWT.
    JwtSign {
        /// Tenant.
        tenant: TenantId,
        /// Key id.
        kid: Kid,
        /// Claims.
        claims: Claims,
        /// The JWT.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Verify a JWT and validate its time claims.
    JwtVerify {
        /// Tenant.
        tenant: TenantId,
        /// The JWT.
        token: String,
        /// The clock, seconds since the epoch.
        now_unix: u64,
        /// Claims.
        reply: RpcReplyPort<Result<Claims, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
}
