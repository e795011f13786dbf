//! The Identity product: identity-authz (OAuth 2.1 / OpenID Connect authorization server) and
//! identity-idp (sign-in), each a folder of its own.
//!
//! # Layout
//! - [`authz`]: the `Authz` actor: tenants, clients, users, grants, tokens and signing keys.
//! - [`idp`]: the `Idp` actor: sign-in (factors, sessions, lockout) for identity-authz's requests.
//! - [`signin`]: what the two tell each other about a sign-in.

pub mod authz;
pub mod idp;
pub mod signin;
