//! This process's credentials toward its peers (`federation.auth`): an OAuth client of
//! identity-authz that authenticates with its secret (`client_credentials`) or with its TLS
//! client certificate (`mtls`, RFC 8705 `tls_client_auth`). Access tokens from the
//! client-credentials grant are cached and renewed at 80 % of their lifetime; one request at a
//! time fetches them. Token requests bypass the breakers: they are rare (one per token
//! lifetime), and a health poll of identity-authz needs one while its breaker is open.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cryptoutil_federation::{Bytes, HttpsClient, Method};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// An access token, shared by the callers that use it.
pub type Token = Arc<Zeroizing<String>>;

/// How the client proves itself to identity-authz.
pub enum ClientProof {
    /// `client_secret_basic`.
    Secret(Zeroizing<String>),
    /// `tls_client_auth`: the certificate in the client's TLS configuration.
    Certificate,
}

/// This process's OAuth client.
pub struct Credentials {
    client_id: String,
    /// The `scope` its token requests ask for (`None`: what the client has by default).
    scope: Option<String>,
    proof: ClientProof,
    token_endpoint: String,
    client: HttpsClient,
    cached: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The token, when to renew it, when it expires.
    token: Option<(Token, Instant, Instant)>,
    failed_at: Option<Instant>,
    /// A renewal runs in the background (the current token still serves meanwhile).
    renewing: bool,
}

/// Least time between two failed token requests (a dead identity-authz is not hammered).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Client `client_id` proving itself with `proof` at `token_endpoint`, over `client`
    /// (whose TLS configuration carries the certificate for [`ClientProof::Certificate`]).
    pub fn new(
        client_id: String,
        proof: ClientProof,
        token_endpoint: String,
        client: HttpsClient,
    ) -> Self {
        Self {
            client_id,
            scope: None,
            proof,
            token_endpoint,
            client,
            cached: tokio::sync::Mutex::default(),
        }
    }

    /// The same client, its tokens asking for `scope` alone (cached apart): a token meant for
    /// one peer's route that no other peer should ever see.
    pub fn with_scope(&self, scope: &str) -> Self {
        let proof = match &self.proof {
            ClientProof::Secret(s) => ClientProof::Secret(s.clone()),
            ClientProof::Certificate => ClientProof::Certificate,
        };
        Self {
            client_id: self.client_id.clone(),
            scope: Some(scope.to_owned()),
            proof,
            token_endpoint: self.token_endpoint.clone(),
            client: self.client.clone(),
            cached: tokio::sync::Mutex::default(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Client authentication for a request to identity-authz's own endpoints (token,
    /// introspection): the `Authorization` header value, if any, and the form fields to add.
    pub fn client_auth(&self) -> (Option<Zeroizing<String>>, Vec<(&'static str, String)>) {
        match &self.proof {
            ClientProof::Secret(secret) => {
                // RFC 6749 §2.3.1: both parts form-encoded before base64.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = Zeroizing::new(format!("{}:{}", enc(&self.client_id), enc(secret)));
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                (Some(Zeroizing::new(format!("Basic {b64}"))), Vec::new())
            }
            ClientProof::Certificate => (None, vec![("client_id", self.client_id.clone())]),
        }
    }

    /// A valid access token: the cached one, or a new one from the token endpoint. A token due
    /// for renewal but still valid keeps serving while one renewal runs in the background (a
    /// slow identity-authz delays no call); only without a valid token do callers wait, for
    /// one request between them.
    pub async fn token(self: &Arc<Self>) -> Result<Token, String> {
        let mut cache = self.cached.lock().await;
        let now = Instant::now();
        let valid = cache
            .token
            .as_ref()
            .filter(|(_, _, expires)| now < *expires)
            .map(|(t, renew_at, _)| (Arc::clone(t), now >= *renew_at));
        let recently_failed = cache
            .failed_at
            .is_some_and(|t| now.saturating_duration_since(t) < RETRY_AFTER_FAILURE);
        match valid {
            Some((token, false)) => Ok(token),
            Some((token, true)) => {
                if !cache.renewing && !recently_failed {
                    cache.renewing = true;
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        let fetched = this.fetch().await;
                        let mut cache = this.cached.lock().await;
                        cache.renewing = false;
                        let _ = this.keep(&mut cache, fetched);
                    });
                }
                Ok(token)
            }
            None if recently_failed => Err("the last token request failed".into()),
            None => {
                let fetched = self.fetch().await;
                self.keep(&mut cache, fetched)
            }
        }
    }

    /// Caches a fetched token, or remembers the failure.
    fn keep(
        &self,
        cache: &mut Cache,
        fetched: Result<(Zeroizing<String>, Duration), String>,
    ) -> Result<Token, String> {
        let now = Instant::now();
        match fetched {
            Ok((token, lifetime)) => {
                let token: Token = Arc::new(token);
                let renew_at = now + lifetime.mul_f64(0.8);
                cache.token = Some((Arc::clone(&token), renew_at, now + lifetime));
                cache.failed_at = None;
                Ok(token)
            }
            Err(reason) => {
                cache.failed_at = Some(now);
                tracing::warn!(token_endpoint = %self.token_endpoint, %reason, "peer token request failed");
                Err(reason)
            }
        }
    }

    /// Forgets the cached token (a peer refused it).
    pub async fn invalidate(&self) {
        self.cached.lock().await.token = None;
    }

    async fn fetch(&self) -> Result<(Zeroizing<String>, Duration), String> {
        let (authorization, extra) = self.client_auth();
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            for (k, v) in &extra {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(a) = &authorization {
            headers.push(("authorization", a.as_str()));
        }
        let r = self
            .client
            .send(
                Method::POST,
                &self.token_endpoint,
                &headers,
                Bytes::from(body),
            )
            .await
            .map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!(
                "token endpoint answered HTTP {}",
                r.status.as_u16()
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|_| "token response is not JSON".to_owned())?;
        let token = v
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .ok_or("token response without access_token")?;
        let lifetime = v
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(60)
            .max(1);
        Ok((
            Zeroizing::new(token.to_owned()),
            Duration::from_secs(lifetime),
        ))
    }
}
