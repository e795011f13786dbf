//! The Identity product: identity-authz (OAuth 2.1 / OpenID Connect authorization server) and
//! identity-idp (sign-in), each a folder of its own.
//!
//! # Layout
//! - [`authz`]: the `Authz` actor: tenants, clients, users, grants, tokens and signing keys.
//! - [`idp`]: identity-idp: the login and consent pages' way to the authorization server.

pub mod authz;
pub mod idp;
