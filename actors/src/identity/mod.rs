//! The Identity product: identity-authz (OAuth 2.1 / OpenID Connect authorization server) and
//! identity-idp (sign-in), each a folder of its own, and the reference applications.
//!
//! # Layout
//! - [`authz`]: the `Authz` actor: tenants, clients, users, grants, tokens and signing keys.
//! - [`idp`]: the `Idp` actor: sign-in (factors, sessions, lockout) for identity-authz's requests.
//! - [`rs`]: identity-rs, the reference resource server (per-user notes).
//! - [`signin`]: what the two tell each other about a sign-in.

pub mod authz;
pub mod idp;
pub mod rs;
pub mod signin;
