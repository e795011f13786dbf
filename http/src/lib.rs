//! HTTP for cryptoutil: per-service routers, the two middleware stacks, dual TLS 1.3 listeners
//! and the admin endpoints.
//!
//! Handlers are thin: extract, parse, ask an actor through its typed handle, respond. `http`
//! never touches storage or federation; it holds actor handles only.
//!
//! # Layout
//! - [`routes`]: the public route table of a service and the router built from it.
//! - [`jose`]: the JOSE service's API handlers and its OpenAPI document.
//! - [`identity`]: identity-authz's admin API (tenants, clients, users).
//! - [`kms`]: the KMS API (elastic keys, rotation, encrypt/decrypt, sign/verify).
//! - [`oauth`]: identity-authz's discovery, JWK Set, token, introspection, revocation and
//!   userinfo endpoints.
//! - [`browser`]: browser sign-in on every service (the service as identity-authz's client).
//! - [`login`]: the authorization endpoint and logout (identity-authz), the login page
//!   (identity-idp).
//! - [`ui`]: the browser UIs (static assets compiled in), under `/browser/ui/`.
//! - [`auth`]: the credential seam: `Authenticator`, and the middleware that applies it.
//! - [`middleware`]: IP allowlist, per-client rate limit, browser security headers.
//! - [`admin`]: `/admin/v1/*` on the loopback-only listener.
//! - [`listener`]: a TLS 1.3 listener with graceful shutdown.
//! - [`tls`]: server TLS configurations.
//! - [`state`]: `AppState`, `AdminState`, readiness.
//! - [`metrics`]: metric names and the functions that change them.
//! - [`config`]: `HttpConfig`, `ListenConfig`.
//! - [`error`]: `ApiError`, and the one `IntoResponse`.

pub mod admin;
pub mod auth;
pub mod browser;
pub mod config;
mod dpop;
pub mod error;
pub mod identity;
pub mod jose;
pub mod kms;
pub mod listener;
pub mod login;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod routes;
pub mod state;
pub mod tls;
pub mod ui;

pub use error::ApiError;
