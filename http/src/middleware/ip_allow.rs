//! IP allowlist: a client outside every configured network gets 403 before anything else runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::error::ApiError;

/// The networks of one stack.
#[derive(Clone, Debug)]
pub struct IpAllowlist(Arc<Vec<IpNet>>);

impl IpAllowlist {
    /// From configuration.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    /// Is `ip` inside one of the networks?
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Middleware.
pub async fn enforce(
    State(list): State<IpAllowlist>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match super::client_ip(&req) {
        Some(ip) if list.allows(ip) => Ok(next.run(req).await),
        _ => Err(ApiError::IpNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_by_network() {
        let list = IpAllowlist::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(list.allows("10.1.2.3".parse().unwrap()));
        assert!(list.allows("::1".parse().unwrap()));
        assert!(!list.allows("11.0.0.1".parse().unwrap()));
    }
}
