//! The middleware of the two stacks: IP allowlist, per-client rate limit, browser headers, CORS.

pub mod cors;
pub mod headers;
pub mod ip_allow;
pub mod rate_limit;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};

/// The client's address as the listener saw it (IPv4-mapped IPv6 folded to IPv4). None only
/// when a request did not come through a listener, which the stacks treat as not allowed.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}
