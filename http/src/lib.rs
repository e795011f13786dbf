//! HTTP for cryptoutil: per-service routers, the two middleware stacks, dual TLS 1.3 listeners
//! and the admin endpoints.
//!
//! Handlers are thin: extract, parse, ask an actor through its typed handle, respond. `http`
//! never touches storage or federation; it holds actor handles only.
//!
//! # Layout
//! - [`route`]: one row of a route table (what products write).
//! - [`routes`]: the public route table of a service, composed from the registered products,
//!   and the router built from it.
//! - [`kms`], [`jose`], [`identity`], [`ca`]: each product's routes and handlers, one folder
//!   per product (identity: one per service).
//! - [`audit`]: a service's audit records (tenant's on /service, all and verify on admin).
//! - [`browser`]: browser sign-in on every service (the service as identity-authz's client).
//! - [`pages`]: server-rendered pages and the query/form parsing they share.
//! - [`ui`]: the browser UIs' shared assets (static, compiled in), under `/browser/ui/`.
//! - [`auth`]: the credential seam: `Authenticator`, and the middleware that applies it.
//! - [`middleware`]: IP allowlist, per-client rate limit, browser security headers.
//! - [`admin`]: `/admin/v1/*` on the loopback-only listener.
//! - [`listener`]: a TLS 1.3 listener with graceful shutdown.
//! - [`sealed`]: what the listeners answer while the process is sealed, and `/admin/v1/unseal`.
//! - [`tls`]: server TLS configurations.
//! - [`state`]: `AppState`, `AdminState`, readiness.
//! - [`metrics`]: metric names and the functions that change them.
//! - [`config`]: `HttpConfig`, `ListenConfig`.
//! - [`error`]: `ApiError`, and the one `IntoResponse`.
//! - [`extract`]: request extractors whose refusals are `ApiError`s (JSON bodies).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod browser;
pub mod ca;
pub mod config;
mod dpop;
pub mod error;
pub mod extract;
pub mod identity;
pub mod jose;
pub mod kms;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod route;
pub mod routes;
pub mod sealed;
pub mod state;
pub mod tls;
pub mod ui;

pub use error::ApiError;
