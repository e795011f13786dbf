//! Identity's routes, one folder per service.
//!
//! # Layout
//! - [`authz`]: identity-authz (OAuth 2.1 / OpenID Connect authorization server).
//! - [`idp`]: identity-idp (sign-in).
//! - [`rp`]: identity-rp (the reference relying party).
//! - [`rs`]: identity-rs (the reference resource server).
//! - [`spa`]: identity-spa (the reference single-page app).

pub mod authz;
pub mod idp;
pub mod rp;
pub mod rs;
pub mod spa;
