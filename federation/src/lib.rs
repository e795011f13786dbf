//! Outbound clients to peer services. Every outbound call is HTTPS with TLS 1.3 only, verified
//! against explicit trust anchors. Circuit-breaker actors, retries and fallbacks arrive with the
//! federation issue and build on [`client::HttpsClient`].
//!
//! # Layout
//! - [`breaker`]: the circuit breaker's state machine, a pure function of (state, event, now,
//!   config).
//! - [`client`]: a minimal HTTPS/1.1 client (one connection a request) on rustls + aws-lc-rs.
//! - [`tls`]: TLS 1.3-only client configurations.
//! - [`error`]: the crate's error enum, with the failure's [`error::Source`].

pub mod breaker;
pub mod client;
pub mod error;
pub mod tls;

pub use client::{HttpsClient, Response};
pub use error::{Error, Source};
pub use hyper::Method;
