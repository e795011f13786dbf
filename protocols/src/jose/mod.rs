//! JOSE on aws-lc-rs primitives: JWK (RFC 7517/7518/7638, RFC 8037 for Ed25519), JWS
//! (RFC 7515), JWE (RFC 7516) and JWT (RFC 7519): signed, encrypted and nested.
//!
//! Rules every entry point keeps:
//! - Inputs are bounded ([`MAX_INPUT`]) and parsed without panics or recursion beyond serde_json's
//!   own depth limit.
//! - `alg: none` is refused by name; an algorithm is used only if it is in the caller's
//!   allow-list **and** equals the key's pinned `alg`, so one key never serves two algorithms.
//! - Secret key bytes live in `Zeroizing` buffers and never print.

pub mod alg;
pub mod b64;
pub(crate) mod der;
pub mod error;
pub mod header;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod jwt;

pub use alg::JwsAlg;
pub use error::JoseError;
pub use jwk::{Jwk, JwkSet, KeyUse};

#[cfg(test)]
mod cookbook_tests;
#[cfg(test)]
mod wycheproof_tests;

/// Largest serialized JWS, JWE, JWK or JWK Set accepted (1 MiB).
pub const MAX_INPUT: usize = 1024 * 1024;
