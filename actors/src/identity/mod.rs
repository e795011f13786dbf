//! The Identity product: identity-authz (OAuth 2.1 / OpenID Connect authorization server) and
//! identity-idp (sign-in), each a folder of its own, and the reference applications.
//!
//! # Layout
//! - [`authz`]: the `Authz` actor: tenants, clients, users, grants, tokens and signing keys.
//! - [`idp`]: the `Idp` actor: sign-in (factors, sessions, lockout) for identity-authz's requests.
//! - [`rp`]: identity-rp, the reference relying party (a server-side web application).
//! - [`rs`]: identity-rs, the reference resource server (per-user notes).
//! - [`spa`]: identity-spa, the reference single-page app (its settings; the app is static).
//! - [`signin`]: what the two tell each other about a sign-in.

pub mod authz;
pub mod idp;
pub mod rp;
pub mod rs;
pub mod signin;
pub mod spa;
