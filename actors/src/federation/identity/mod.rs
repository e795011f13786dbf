//! identity-authz as a peer: RFC 7662 introspection of the access tokens a service is given,
//! authenticated as this process's OAuth client, and the validation that falls back
//! (`federation_fallback.identity_fallback_mode`) when it is unavailable.
//!
//! # Layout
//! - [`validation`]: `IdentityValidation`: introspect, or the fallback mode.
//! - [`signin`]: `AuthzLink`: identity-idp's calls to identity-authz, in memory or over the
//!   back channel.

pub mod signin;
pub mod validation;

pub use validation::IdentityValidation;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::federation::peer::{CallAuth, Peer, PeerRequest, Retries};
use crate::federation::{PeerError, INTROSPECT_PATH};
use cryptoutil_federation::{Bytes, Method};

/// identity-authz, reached at its public URL.
#[derive(Clone, Debug)]
pub struct IdentityPeer {
    peer: Peer,
    issuer: String,
}

/// Largest token sent for introspection (ours are far smaller).
const MAX_TOKEN: usize = 16 * 1024;

impl IdentityPeer {
    /// identity-authz at `peer`, whose tokens carry `issuer` as `iss`.
    pub fn new(peer: Peer, issuer: String) -> Self {
        Self { peer, issuer }
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The peer (breaker, base URL).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The token's claims if identity-authz says it is active, `None` if it says it is not.
    /// Unavailable (breaker open, failures, our own client refused): an error, and the caller
    /// falls back.
    pub async fn introspect(
        &self,
        token: &str,
        retries: Retries,
    ) -> Result<Option<Map<String, Value>>, PeerError> {
        let peer = self.peer.name().as_str();
        if token.len() > MAX_TOKEN {
            return Ok(None);
        }
        let credentials = self.peer.credentials().ok_or(PeerError::Credentials {
            peer,
            reason: "introspection needs federation.auth (client_credentials or mtls)".into(),
        })?;
        let (authorization, extra) = credentials.client_auth();
        let body = Zeroizing::new({
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            for (k, v) in &extra {
                form.append_pair(k, v);
            }
            form.finish()
        });
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if let Some(a) = authorization {
            headers.push(("authorization", a.to_string()));
        }
        let request = PeerRequest {
            method: Method::POST,
            path: INTROSPECT_PATH,
            headers,
            body: Bytes::from(body.as_bytes().to_vec()),
            auth: CallAuth::None,
        };
        let r = self.peer.call(&request, retries).await?;
        if !r.status.is_success() {
            // A 4xx here is our own client refused: identity-authz is up but useless to us.
            return Err(PeerError::Credentials {
                peer,
                reason: format!("introspection answered HTTP {}", r.status.as_u16()),
            });
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|_| PeerError::Failed {
            peer,
            reason: "introspection answer is not JSON".into(),
        })?;
        match v {
            Value::Object(map) if map.get("active") == Some(&Value::Bool(true)) => Ok(Some(map)),
            Value::Object(_) => Ok(None),
            _ => Err(PeerError::Failed {
                peer,
                reason: "introspection answer is not an object".into(),
            }),
        }
    }
}
