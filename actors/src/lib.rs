//! The supervision tree and the domain actors of cryptoutil.
//!
//! Each actor follows one anatomy: an empty behaviour struct, `Msg` / `State` / `Args` types,
//! `handle` that only dispatches to synchronous `State` methods, and a typed `Handle` whose every
//! call has a timeout. Handles reach their actor through a [`slot::Slot`] that the supervisor
//! refills after a restart, so a handle held by an HTTP router survives its actor's crash.
//!
//! # Layout
//! - [`supervisor`]: the generic restarting supervisor, child specs, restart policy, tree nodes.
//! - [`audit`]: the `AuditLog` actor: a service's hash-chained audit log, group-committed.
//! - [`bearer`]: bearer tokens of trusted issuers checked locally, and the principal they name.
//! - [`product`]: what each product adds to its service, and the one list of products.
//! - [`kms`], [`jose`], [`identity`], [`ca`]: the products, one folder each.
//! - [`federation`]: `Breaker` actors per federated peer, and calls to peers through them.
//! - [`health`]: the `Health` actor: a service's liveness and readiness.
//! - [`issuer_jwks`]: the `IssuerJwks` actor: a trusted issuer's JWK Set, fetched and cached.
//! - [`sessions`]: the `Sessions` actor: a service's browser sign-ins and sessions.
//! - [`vault`]: the `Vault` actor: owner of a service's store (sealed state, sealed records).
//! - [`service`]: the eight service names and the API scopes.
//! - [`suite`]: builds the root -> service -> actor tree and returns the handles.
//! - [`slot`]: the shared cell a handle reads its current actor from.
//! - [`ask`]: the one call helper: timeout, dead actor and reply errors become `Unavailable`.
//! - [`metrics`]: metric names and the small functions that change them.
//! - [`config`]: the restart policy and timeouts, `SupervisionConfig`.
//! - [`error`]: the crate's error enum.

pub mod ask;
pub mod audit;
pub mod bearer;
mod bounded;
pub mod ca;
pub mod caller;
pub mod config;
pub mod error;
pub mod federation;
pub mod health;
pub mod identity;
pub mod import_key;
pub mod issuer_jwks;
pub mod jose;
pub mod journal;
pub mod kms;
pub mod metrics;
pub mod product;
mod record;
pub mod serde_ext;
pub mod service;
pub mod sessions;
pub mod slot;
pub mod suite;
pub mod supervisor;
pub mod vault;

pub use config::SupervisionConfig;

/// Now, in Unix seconds (0 if the clock reads before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since 1970 (0 before it; saturating far after).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
pub use error::{Error, Unavailability};
pub use service::{Scope, ServiceName};
