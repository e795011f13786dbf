//! From `federation:` to the peers the actors reach: one pooled TLS 1.3 client (presenting this
//! process's certificate in `mtls` mode), this process's OAuth client, and one
//! [`PeerSettings`] per enabled peer.

use std::sync::Arc;

use anyhow::anyhow;
use cryptoutil_actors::federation::credentials::{ClientProof, Credentials};
use cryptoutil_actors::federation::{PeerName, PeerSettings, JWKS_PATH};
use cryptoutil_federation::HttpsClient;
use cryptoutil_http::config::{AuthConfig, TrustedIssuer};
use zeroize::Zeroizing;

use crate::config::federation::{FederationConfig, PeerAuthMode};

/// Idle connections kept per peer.
const POOL_IDLE: usize = 64;

fn invalid(key: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid configuration: `{key}`: {e}")
}

/// The enabled peers; `own_anchor` is trusted when `federation.auth.ca` is empty.
pub fn peers(f: &FederationConfig, own_anchor: &str) -> anyhow::Result<Vec<PeerSettings>> {
    if !f.any_enabled() {
        return Ok(Vec::new());
    }
    let anchors = match f.auth.ca.trim() {
        "" => own_anchor,
        pem => pem,
    };
    let tls = match f.auth.mode {
        PeerAuthMode::Mtls => cryptoutil_federation::tls::client_config_with_cert(
            anchors.as_bytes(),
            f.auth.client_cert.as_bytes(),
            f.auth.client_key.expose().as_bytes(),
        )
        .map_err(|e| invalid("federation.auth", e))?,
        PeerAuthMode::None | PeerAuthMode::ClientCredentials => {
            cryptoutil_federation::tls::client_config_from_pem(anchors.as_bytes())
                .map_err(|e| invalid("federation.auth.ca", e))?
        }
    };
    let client = HttpsClient::new(tls).pooled(POOL_IDLE);
    let token_client = client.clone().with_timeout(f.identity_timeout);
    let credentials = match f.auth.mode {
        PeerAuthMode::None => None,
        PeerAuthMode::ClientCredentials => Some(ClientProof::Secret(Zeroizing::new(
            f.auth.client_secret.expose().trim().to_owned(),
        ))),
        PeerAuthMode::Mtls => Some(ClientProof::Certificate),
    }
    .map(|proof| {
        Arc::new(Credentials::new(
            f.auth.client_id.clone(),
            proof,
            f.token_endpoint(),
            token_client,
        ))
    });
    let mut out = Vec::new();
    for (name, enabled, url, timeout) in [
        (
            PeerName::Identity,
            f.identity_enabled,
            &f.identity_url,
            f.identity_timeout,
        ),
        (PeerName::Jose, f.jose_enabled, &f.jose_url, f.jose_timeout),
        (PeerName::Ca, f.ca_enabled, &f.ca_url, f.ca_timeout),
    ] {
        if !enabled {
            continue;
        }
        cryptoutil_federation::client::HttpsUrl::parse(url)
            .map_err(|e| invalid(&format!("federation.{}_url", name.as_str()), e))?;
        out.push(PeerSettings {
            name,
            base: url.trim_end_matches('/').to_owned(),
            client: client.clone(),
            timeout,
            retry: f.retry.policy(),
            breaker: f.breaker.machine(),
            poll_interval: f.health_poll_interval,
            credentials: credentials.clone(),
        });
    }
    Ok(out)
}

/// With identity-authz federated, its issuer is trusted (unless listed already), its JWK Set
/// fetched from `identity_url` for `local_validation`.
pub fn trust_identity(f: &FederationConfig, auth: &mut AuthConfig) {
    if !f.identity_enabled {
        return;
    }
    let issuer = f.identity_issuer();
    if auth.trusted_issuers.iter().any(|t| t.issuer == issuer) {
        return;
    }
    auth.trusted_issuers.push(TrustedIssuer {
        issuer,
        jwks: None,
        jwks_uri: Some(format!(
            "{}{JWKS_PATH}",
            f.identity_url.trim_end_matches('/')
        )),
        jwks_ca: match f.auth.ca.trim() {
            "" => None,
            pem => Some(pem.to_owned()),
        },
        require_low_s: true,
    });
}
