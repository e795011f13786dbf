//! Outbound clients to peer services, and the pure parts of federation: the circuit breaker's
//! state machine and the retry policy. Every outbound call is HTTPS with TLS 1.3 only, verified
//! against explicit trust anchors. The `Breaker` actors that own timers, health polls and
//! metrics live in `cryptoutil-actors` (`federation`), beside the supervision tree they join.
//!
//! # Layout
//! - [`breaker`]: the circuit breaker's state machine, a pure function of (state, event, now,
//!   config), and which outcomes count against a peer.
//! - [`retry`]: backoff with jitter, timeout growth per retry, the retry budget.
//! - [`client`]: a minimal HTTPS/1.1 client on rustls + aws-lc-rs, pooled on request.
//! - [`tls`]: TLS 1.3-only client configurations.
//! - [`error`]: the crate's error enum, with the failure's [`error::Source`].

pub mod breaker;
pub mod client;
pub mod error;
pub mod retry;
pub mod tls;

pub use client::{HttpsClient, Response};
pub use error::{Error, Source};
pub use hyper::body::Bytes;
pub use hyper::{Method, StatusCode};
