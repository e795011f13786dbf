//! identity-spa, the reference single-page app: static pages (`http/src/identity/spa/`) and
//! what they are told about their client, as one settings value. It has no actor: the app runs
//! in the browser, and the browser holds its tokens (in memory, bound to a DPoP key).

use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

/// identity-spa's part of the suite: its settings, for its routes.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::IdentitySpa,
    build,
};

/// What the page is told (`/browser/spa/config.json`): its public client and where to go.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpaSettings {
    /// identity-authz's issuer.
    pub issuer: String,
    /// Its authorization endpoint.
    pub authorization_endpoint: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its end-session endpoint.
    pub end_session_endpoint: String,
    /// The public client's id.
    pub client_id: String,
    /// `<public>/browser/spa/`.
    pub redirect_uri: String,
    /// The scopes asked for.
    pub scope: String,
    /// identity-rs's notes collection URL.
    pub notes_url: String,
    /// identity-rs's resource URI (RFC 8707 `resource`).
    pub resource: String,
}

impl SpaSettings {
    /// The origins the page talks to besides its own (its CSP's `connect-src`).
    pub fn connect_origins(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.issuer, &self.token_endpoint, &self.notes_url]
            .iter()
            .filter_map(|u| origin(u))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `scheme://authority` of an absolute URL.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), ractor::SpawnErr> {
    if let Some(settings) = ctx.args.settings.get::<SpaSettings>() {
        parts.handles.insert(settings.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            super::origin("https://127.0.0.1:8443/service/x?y").as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(
            super::origin("https://authz.example").as_deref(),
            Some("https://authz.example")
        );
        assert_eq!(super::origin("nope"), None);
    }
}
