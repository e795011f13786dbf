//! The reference applications' wiring. identity-rp and identity-spa sign in at identity-authz and
//! call identity-rs of this process or, elsewhere, those `identity.reference` names. When
//! identity-authz runs in this process their clients are registered on every start:
//! - identity-rp (`identity-rp`): confidential, `private_key_jwt` with a key drawn now and held
//!   in memory only (nothing to store or leak), back-channel logout to its own endpoint;
//! - identity-spa (`identity-spa`): public (PKCE, DPoP-bound tokens), its origin allowed by
//!   CORS on `/service/**` (the token endpoint, identity-rs);
//! - and those of `identity.reference_clients` (the applications in other processes, with
//!   identity-rp's public key from configuration, its private key in `identity.reference.rp_key`).

use std::sync::Arc;

use anyhow::anyhow;
use cryptoutil_actors::identity::authz::admin::{
    AdminOp, Caller, ReferenceClient, OPERATOR_TENANT,
};
use cryptoutil_actors::identity::authz::{AuthzConfig, AuthzHandle};
use cryptoutil_actors::identity::rp::RpSettings;
use cryptoutil_actors::identity::spa::SpaSettings;
use cryptoutil_actors::ServiceName;
use cryptoutil_http::identity::authz::oauth;
use cryptoutil_protocols::jose::{Jwk, JwsAlg};

use crate::config::{ReferenceAppsConfig, ReferenceClientConfig};

/// identity-rp's client id.
pub const RP_CLIENT_ID: &str = "identity-rp";
/// identity-spa's client id.
pub const SPA_CLIENT_ID: &str = "identity-spa";
/// What both ask for.
const SCOPE: &str = "openid notes:read notes:write";

/// What the reference applications sign in with: identity-authz and identity-rs in this
/// process, or as `identity.reference` names them.
pub struct Reference {
    issuer: String,
    /// Where identity-authz's endpoints are.
    authz_base: String,
    notes_url: String,
    resource: String,
}

impl Reference {
    /// identity-authz (with a login page) and identity-rs in this process, else the configured
    /// `identity.reference` (issuer and identity-rs's URL); `rs_resource`: identity-rs's
    /// configured resource URI.
    /// `public` gives the public URL of a service of this process.
    pub fn of(
        cfg: &ReferenceAppsConfig,
        authz: Option<&AuthzConfig>,
        public: impl Fn(ServiceName) -> Option<String>,
        rs_resource: Option<String>,
    ) -> Option<Self> {
        let local = (
            authz.filter(|a| a.login_url.is_some()),
            public(ServiceName::IdentityAuthz),
            public(ServiceName::IdentityRs),
        );
        let (issuer, authz_base, rs) = match local {
            (Some(authz), Some(a), Some(rs)) => (authz.issuer.clone(), a, rs),
            _ if !cfg.issuer.is_empty() && !cfg.rs_url.is_empty() => {
                let issuer = cfg.issuer.trim_end_matches('/').to_owned();
                (
                    issuer.clone(),
                    issuer,
                    cfg.rs_url.trim_end_matches('/').to_owned(),
                )
            }
            _ => return None,
        };
        Some(Self {
            issuer,
            authz_base,
            notes_url: format!("{rs}{}", cryptoutil_http::identity::rs::NOTES),
            resource: rs_resource.unwrap_or(rs),
        })
    }

    /// identity-rp's settings at `public` (its URL as browsers see it), with its configured
    /// key or, when none, one drawn now; trusting `roots_pem` for its calls.
    pub fn rp(&self, public: &str, key: &str, roots_pem: &str) -> anyhow::Result<RpSettings> {
        use cryptoutil_http::identity::rp as routes;
        let tls = cryptoutil_federation::tls::client_config_from_pem(roots_pem.as_bytes())
            .map_err(|e| anyhow!("identity-rp trust anchors: {e}"))?;
        let key = match key.trim() {
            "" => Jwk::generate(JwsAlg::ES256).map_err(|e| anyhow!("identity-rp key: {e}"))?,
            json => {
                let key = Jwk::parse(json).map_err(|e| {
                    anyhow!("invalid configuration: `identity.reference.rp_key`: {e}")
                })?;
                if !key.is_private() || key.jws_alg().is_err() {
                    return Err(anyhow!(
                        "invalid configuration: `identity.reference.rp_key`: a private signing \
                         JWK with its `alg` (cryptoutil pki client-key)"
                    ));
                }
                key
            }
        };
        let public = public.trim_end_matches('/');
        Ok(RpSettings {
            issuer: self.issuer.clone(),
            client_id: RP_CLIENT_ID.to_owned(),
            key: Arc::new(key),
            redirect_uri: format!("{public}{}", routes::CALLBACK),
            post_logout_uri: format!("{public}{}", routes::HOME),
            scope: SCOPE.to_owned(),
            notes_url: self.notes_url.clone(),
            resource: self.resource.clone(),
            client: cryptoutil_federation::HttpsClient::new(tls),
        })
    }

    /// identity-spa's settings at `public` (its URL as browsers see it).
    pub fn spa(&self, public: &str) -> SpaSettings {
        let base = &self.authz_base;
        SpaSettings {
            issuer: self.issuer.clone(),
            authorization_endpoint: format!("{base}{}", oauth::AUTHORIZE),
            token_endpoint: format!("{base}{}", oauth::TOKEN),
            end_session_endpoint: format!("{base}{}", oauth::LOGOUT),
            client_id: SPA_CLIENT_ID.to_owned(),
            redirect_uri: format!(
                "{}{}",
                public.trim_end_matches('/'),
                cryptoutil_http::identity::spa::HOME
            ),
            scope: SCOPE.to_owned(),
            notes_url: self.notes_url.clone(),
            resource: self.resource.clone(),
        }
    }
}

/// The host:port identity-authz may post identity-rp's logout tokens to although it is an
/// internal address (this process's own identity-rp, on loopback in the embedded suite).
pub fn rp_backchannel_host(rp_public: Option<&str>) -> Option<String> {
    let url = cryptoutil_federation::client::HttpsUrl::parse(rp_public?).ok()?;
    Some(format!("{}:{}", url.host, url.port))
}

/// Registers the reference applications' clients at identity-authz in this process: those of
/// this process's identity-rp (with this start's key) and identity-spa, and the configured ones
/// (`identity.reference_clients`, for applications in other processes).
pub async fn register(
    authz: Option<&AuthzHandle>,
    rp: Option<&RpSettings>,
    spa: Option<&SpaSettings>,
    configured: &[ReferenceClientConfig],
) -> anyhow::Result<()> {
    let Some(authz) = authz else {
        return Ok(());
    };
    let audiences = vec![ServiceName::IdentityRs.as_str().to_owned()];
    let mut clients = Vec::new();
    if let Some(rp) = rp {
        use cryptoutil_http::identity::rp as routes;
        let public = rp
            .key
            .to_public_value()
            .map_err(|e| anyhow!("identity-rp key: {e}"))?;
        let base = rp.post_logout_uri.trim_end_matches(routes::HOME);
        clients.push(ReferenceClient {
            client_id: rp.client_id.clone(),
            jwks: Some(serde_json::json!({ "keys": [public] })),
            redirect_uri: rp.redirect_uri.clone(),
            post_logout_uri: rp.post_logout_uri.clone(),
            backchannel_logout_uri: Some(format!("{base}{}", routes::BACKCHANNEL_LOGOUT)),
            scopes: rp.scope.split(' ').map(str::to_owned).collect(),
            audiences: audiences.clone(),
        });
    }
    if let Some(spa) = spa {
        clients.push(ReferenceClient {
            client_id: spa.client_id.clone(),
            jwks: None,
            redirect_uri: spa.redirect_uri.clone(),
            post_logout_uri: spa.redirect_uri.clone(),
            backchannel_logout_uri: None,
            scopes: spa.scope.split(' ').map(str::to_owned).collect(),
            audiences: audiences.clone(),
        });
    }
    for c in configured {
        let jwks = match c.jwks.trim() {
            "" => None,
            json => Some(serde_json::from_str(json).map_err(|e| {
                anyhow!(
                    "invalid configuration: `identity.reference_clients` {}: jwks: {e}",
                    c.client_id
                )
            })?),
        };
        let known = [RP_CLIENT_ID, SPA_CLIENT_ID];
        if !known.contains(&c.client_id.as_str()) {
            return Err(anyhow!(
                "invalid configuration: `identity.reference_clients`: client_id is identity-rp or \
                 identity-spa, not {}",
                c.client_id
            ));
        }
        clients.push(ReferenceClient {
            client_id: c.client_id.clone(),
            jwks,
            redirect_uri: c.redirect_uri.clone(),
            post_logout_uri: c.post_logout_uri.clone(),
            backchannel_logout_uri: Some(c.backchannel_logout_uri.clone())
                .filter(|u| !u.is_empty()),
            scopes: SCOPE.split(' ').map(str::to_owned).collect(),
            audiences: audiences.clone(),
        });
    }
    for client in clients {
        let id = client.client_id.clone();
        authz
            .admin(
                Caller {
                    who: "identity-authz".to_owned(),
                    tenant: OPERATOR_TENANT.to_owned(),
                    scopes: Vec::new(),
                },
                AdminOp::ReferenceClient(client),
            )
            .await
            .map_err(|e| anyhow!("registering {id}'s client: {e}"))?;
    }
    Ok(())
}
