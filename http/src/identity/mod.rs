//! Identity's routes, one folder per service.
//!
//! # Layout
//! - [`authz`]: identity-authz (OAuth 2.1 / OpenID Connect authorization server).
//! - [`idp`]: identity-idp (sign-in).
//! - [`rs`]: identity-rs (the reference resource server).

pub mod authz;
pub mod idp;
pub mod rs;
