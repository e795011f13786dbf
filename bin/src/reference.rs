//! The reference applications' wiring. When identity-authz, identity-idp and identity-rs run in
//! this process with identity-rp or identity-spa, each gets its client at identity-authz,
//! registered again on every start:
//! - identity-rp (`identity-rp`): confidential, `private_key_jwt` with a key drawn now and held
//!   in memory only (nothing to store or leak), back-channel logout to its own endpoint;
//! - identity-spa (`identity-spa`): public (PKCE, DPoP-bound tokens), its origin allowed by
//!   CORS on `/service/**` (the token endpoint, identity-rs).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::anyhow;
use cryptoutil_actors::identity::authz::admin::{
    AdminOp, Caller, ReferenceClient, OPERATOR_TENANT,
};
use cryptoutil_actors::identity::authz::AuthzConfig;
use cryptoutil_actors::identity::rp::RpSettings;
use cryptoutil_actors::identity::spa::SpaSettings;
use cryptoutil_actors::suite::Suite;
use cryptoutil_actors::ServiceName;
use cryptoutil_http::identity::authz::oauth;
use cryptoutil_protocols::jose::{Jwk, JwsAlg};

use crate::run::Endpoint;

/// identity-rp's client id.
pub const RP_CLIENT_ID: &str = "identity-rp";
/// identity-spa's client id.
pub const SPA_CLIENT_ID: &str = "identity-spa";
/// What both ask for.
const SCOPE: &str = "openid notes:read notes:write";

/// What the reference applications sign in with, when it all runs in this process.
pub struct Reference<'a> {
    authz: &'a AuthzConfig,
    authz_public: &'a str,
    rs: &'a Endpoint,
    resource: String,
}

impl<'a> Reference<'a> {
    /// identity-authz (with a login page) and identity-rs in this process; `rs_resource`:
    /// identity-rs's configured resource URI.
    pub fn of(
        authz: Option<&'a AuthzConfig>,
        endpoints: &'a BTreeMap<ServiceName, Endpoint>,
        rs_resource: Option<String>,
    ) -> Option<Self> {
        let authz = authz.filter(|a| a.login_url.is_some())?;
        let authz_public = &endpoints.get(&ServiceName::IdentityAuthz)?.public;
        let rs = endpoints.get(&ServiceName::IdentityRs)?;
        Some(Self {
            authz,
            authz_public,
            rs,
            resource: rs_resource.unwrap_or_else(|| rs.public.clone()),
        })
    }

    fn notes_url(&self) -> String {
        format!("{}{}", self.rs.public, cryptoutil_http::identity::rs::NOTES)
    }

    /// identity-rp's settings, trusting `roots_pem` for its calls.
    pub fn rp(&self, rp: &Endpoint, roots_pem: &str) -> anyhow::Result<RpSettings> {
        use cryptoutil_http::identity::rp as routes;
        let tls = cryptoutil_federation::tls::client_config_from_pem(roots_pem.as_bytes())
            .map_err(|e| anyhow!("identity-rp trust anchors: {e}"))?;
        let key = Jwk::generate(JwsAlg::ES256).map_err(|e| anyhow!("identity-rp key: {e}"))?;
        Ok(RpSettings {
            issuer: self.authz.issuer.clone(),
            client_id: RP_CLIENT_ID.to_owned(),
            key: Arc::new(key),
            redirect_uri: format!("{}{}", rp.public, routes::CALLBACK),
            post_logout_uri: format!("{}{}", rp.public, routes::HOME),
            scope: SCOPE.to_owned(),
            notes_url: self.notes_url(),
            resource: self.resource.clone(),
            client: cryptoutil_federation::HttpsClient::new(tls),
        })
    }

    /// identity-spa's settings.
    pub fn spa(&self, spa: &Endpoint) -> SpaSettings {
        SpaSettings {
            issuer: self.authz.issuer.clone(),
            authorization_endpoint: format!("{}{}", self.authz_public, oauth::AUTHORIZE),
            token_endpoint: format!("{}{}", self.authz_public, oauth::TOKEN),
            end_session_endpoint: format!("{}{}", self.authz_public, oauth::LOGOUT),
            client_id: SPA_CLIENT_ID.to_owned(),
            redirect_uri: format!("{}{}", spa.public, cryptoutil_http::identity::spa::HOME),
            scope: SCOPE.to_owned(),
            notes_url: self.notes_url(),
            resource: self.resource.clone(),
        }
    }
}

/// The host:port identity-authz may post identity-rp's logout tokens to although it is an
/// internal address (this process's own identity-rp, on loopback in the embedded suite).
pub fn rp_backchannel_host(endpoints: &BTreeMap<ServiceName, Endpoint>) -> Option<String> {
    let rp = endpoints.get(&ServiceName::IdentityRp)?;
    let url = cryptoutil_federation::client::HttpsUrl::parse(&rp.public).ok()?;
    Some(format!("{}:{}", url.host, url.port))
}

/// Registers the reference applications' clients (identity-rp's with this start's key).
pub async fn register(
    suite: &Suite,
    rp: Option<&RpSettings>,
    spa: Option<&SpaSettings>,
) -> anyhow::Result<()> {
    let Some(authz) = crate::run::local_authz(suite) else {
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
    for client in clients {
        let id = client.client_id.clone();
        authz
            .admin(
                Caller {
                    tenant: OPERATOR_TENANT.to_owned(),
                },
                AdminOp::ReferenceClient(client),
            )
            .await
            .map_err(|e| anyhow!("registering {id}'s client: {e}"))?;
    }
    Ok(())
}
