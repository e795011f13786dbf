//! OpenID Connect Back-Channel Logout 1.0 §2.5, the sending side: each logout token is given
//! its `jti`, signed (`typ` logout+jwt) and posted (`application/x-www-form-urlencoded`,
//! `logout_token=...`) to its client's `backchannel_logout_uri` over TLS 1.3, off the actor, a
//! few times with backoff until the client answers 2xx. The logout does not wait for it.
//!
//! The URIs are registered by tenant administrators, so identity-authz must not become their
//! way into the deployment's own network (§2.8; SSRF): a URI whose host is, or resolves to, a
//! loopback, private, link-local, shared, multicast or unspecified address is refused unless its
//! host is on `identity.backchannel_allowed_hosts`. At most [`IN_FLIGHT`] posts run at once;
//! past that, notices are dropped and counted. A client that cannot be reached is logged and
//! counted (never the token).

use std::net::IpAddr;
use std::time::Duration;

use cryptoutil_federation::client::HttpsUrl;
use cryptoutil_federation::{HttpsClient, Method};
use cryptoutil_protocols::jose::jwt;
use serde_json::json;
use tokio::sync::Semaphore;

use super::flow::LogoutNotice;

/// Attempts per notice.
const ATTEMPTS: u32 = 3;
/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Posts under way at once.
const IN_FLIGHT: usize = 32;
static PERMITS: Semaphore = Semaphore::const_new(IN_FLIGHT);

/// Where logout tokens go from: the client and the hosts exempt from the address check.
#[derive(Clone)]
pub struct Sender {
    /// Trusts the deployment's anchors.
    pub client: HttpsClient,
    /// `host` or `host:port` entries that may resolve to non-public addresses.
    pub allowed_hosts: Vec<String>,
}

impl Sender {
    /// Whether `host` (port `port`) is exempt from the address check.
    pub(super) fn allows(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
    }
}

/// Whether `ip` is an address a registered URI must not reach: loopback, private (RFC 1918,
/// RFC 4193), link-local, shared (RFC 6598), multicast, broadcast, unspecified or "this
/// network".
pub(super) fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments().first().copied().unwrap_or(0);
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Posts every notice on its own task (dropping, and counting, what exceeds [`IN_FLIGHT`]).
pub(super) fn deliver(sender: Option<&Sender>, notices: Vec<LogoutNotice>) {
    let Some(sender) = sender else {
        return;
    };
    for notice in notices {
        let Ok(permit) = PERMITS.try_acquire() else {
            crate::metrics::backchannel_logout("dropped");
            tracing::warn!(client = %notice.client_id, "back-channel logout dropped: too many under way");
            continue;
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            let outcome = post(&sender, notice).await;
            crate::metrics::backchannel_logout(outcome);
            drop(permit);
        });
    }
}

/// One notice to its URI: `delivered`, `refused` (an internal address) or `failed`.
async fn post(sender: &Sender, mut notice: LogoutNotice) -> &'static str {
    let warn = |why: &str| {
        tracing::warn!(client = %notice.client_id, uri = %notice.uri, error = %why,
            "back-channel logout not delivered");
    };
    let Ok(url) = HttpsUrl::parse(&notice.uri) else {
        warn("not an https URL");
        return "refused";
    };
    if !sender.allows(&url.host, url.port) {
        match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
            Ok(mut addrs) => {
                if addrs.any(|a| internal(a.ip())) {
                    warn("its host is an internal address (identity.backchannel_allowed_hosts)");
                    return "refused";
                }
            }
            Err(e) => {
                warn(&e.to_string());
                return "failed";
            }
        }
    }
    let Ok(jti) = cryptoutil_protocols::oauth::random_token(16) else {
        warn("random generator");
        return "failed";
    };
    notice.claims.insert("jti".into(), json!(jti.as_str()));
    let Ok(token) = jwt::sign(&notice.key, &notice.claims, "logout+jwt") else {
        warn("signing");
        return "failed";
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let client = sender.client.clone().with_timeout(TIMEOUT);
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        match client
            .send(
                Method::POST,
                &notice.uri,
                &headers,
                body.clone().into_bytes().into(),
            )
            .await
        {
            Ok(r) if r.status.is_success() => return "delivered",
            Ok(r) => last = format!("answered {}", r.status),
            Err(e) => last = e.to_string(),
        }
    }
    warn(&last);
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told_apart_from_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.30.0.5",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "2606:4700::1",
        ] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allowed_hosts_match_a_host_or_its_port() {
        let sender = Sender {
            client: HttpsClient::new(
                cryptoutil_federation::tls::client_config(rustls::RootCertStore::empty()).unwrap(),
            ),
            allowed_hosts: vec!["rp.internal".into(), "127.0.0.1:8443".into()],
        };
        assert!(sender.allows("rp.internal", 443));
        assert!(sender.allows("RP.internal", 8443));
        assert!(sender.allows("127.0.0.1", 8443));
        assert!(!sender.allows("127.0.0.1", 9091));
        assert!(!sender.allows("other.internal", 443));
    }
}
