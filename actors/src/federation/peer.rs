//! One federated peer as callers use it: its base URL, a pooled TLS 1.3 client, its breaker,
//! the retry policy, and this process's credentials. [`Peer::call`] asks the breaker, makes the
//! call on the caller's task, reports the outcome, and retries upstream failures with backoff
//! while the breaker, the retry budget and the deadline allow.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::breaker::Outcome;
use cryptoutil_federation::retry::RetryPolicy;
use cryptoutil_federation::{Bytes, HttpsClient, Method, Response};
use tokio::time::Instant;

use super::breaker::{Admission, BreakerHandle, Probe};
use super::credentials::Credentials;
use super::{PeerError, PeerName, HEALTH_PATH};
use crate::supervisor::child::BoxFuture;

/// How a call may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// One try: the caller has an equivalent fallback, which answers at once where a retry
    /// would only make the caller wait for the same answer.
    None,
    /// Retry upstream failures on the policy's schedule while a next try can start within
    /// this much time from the call's start.
    Within(Duration),
}

/// How a request proves who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAuth {
    /// `Authorization: Bearer` with this process's access token (from identity-authz).
    Bearer,
    /// Nothing added (the request carries its own client authentication, or needs none).
    None,
}

/// One request to a peer.
#[derive(Debug, Clone)]
pub struct PeerRequest<'a> {
    /// Method.
    pub method: Method,
    /// Path and query below the peer's base URL.
    pub path: &'a str,
    /// Extra headers.
    pub headers: Vec<(&'a str, String)>,
    /// Body.
    pub body: Bytes,
    /// Credentials to add.
    pub auth: CallAuth,
}

impl<'a> PeerRequest<'a> {
    /// A JSON POST with the bearer token.
    pub fn json(path: &'a str, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            path,
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from(body.to_string()),
            auth: CallAuth::Bearer,
        }
    }
}

/// A peer, cloneable.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

struct Inner {
    name: PeerName,
    base: String,
    client: HttpsClient,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerHandle,
    credentials: Option<Arc<Credentials>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.inner.name)
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// Reports `Abandoned` for a try whose future was dropped before its outcome was known (the
/// caller's own request went away), so a half-open probe's place is freed.
struct InFlight<'a> {
    breaker: &'a BreakerHandle,
    started: Instant,
    done: bool,
}

impl InFlight<'_> {
    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.record(outcome, self.started.elapsed());
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .record(Outcome::Abandoned, self.started.elapsed());
        }
    }
}

impl Peer {
    /// `name` at `base` (`https://host:port`, no trailing slash) through `breaker`.
    pub fn new(
        name: PeerName,
        base: &str,
        client: HttpsClient,
        timeout: Duration,
        retry: RetryPolicy,
        breaker: BreakerHandle,
        credentials: Option<Arc<Credentials>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                base: base.trim_end_matches('/').to_owned(),
                client,
                timeout,
                retry,
                breaker,
                credentials,
            }),
        }
    }

    /// The peer.
    pub fn name(&self) -> PeerName {
        self.inner.name
    }

    /// Its base URL.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// Its breaker.
    pub fn breaker(&self) -> &BreakerHandle {
        &self.inner.breaker
    }

    /// This process's credentials, if configured.
    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        self.inner.credentials.as_ref()
    }

    /// The same peer (its breaker, client and retries) calling with `credentials` instead.
    pub fn with_credentials(&self, credentials: Option<Arc<Credentials>>) -> Self {
        let inner = &*self.inner;
        Self {
            inner: Arc::new(Inner {
                name: inner.name,
                base: inner.base.clone(),
                client: inner.client.clone(),
                timeout: inner.timeout,
                retry: inner.retry.clone(),
                breaker: inner.breaker.clone(),
                credentials,
            }),
        }
    }

    /// Calls the peer. A 2xx-4xx answer is returned for the caller to read (a 4xx is the
    /// caller's own mistake and does not count against the peer); connection errors, timeouts,
    /// 429 and 5xx are retried as `retries` allows, then returned as [`PeerError::Failed`]. A
    /// breaker that refuses the first try gives [`PeerError::Rejected`].
    pub async fn call(
        &self,
        req: &PeerRequest<'_>,
        retries: Retries,
    ) -> Result<Response, PeerError> {
        let inner = &*self.inner;
        let peer = inner.name.as_str();
        let started = Instant::now();
        let mut token_renewed = false;
        let mut attempt = 0u32;
        loop {
            match inner.breaker.admit(attempt > 0).await {
                Ok(Admission::Admit) => {}
                Ok(Admission::Reject(why)) if attempt == 0 => {
                    return Err(PeerError::Rejected {
                        peer,
                        reason: why.as_str(),
                    })
                }
                Ok(Admission::Reject(why)) => {
                    return Err(PeerError::Failed {
                        peer,
                        reason: format!("gave up after {attempt} tries ({})", why.as_str()),
                    })
                }
                Err(e) => {
                    return Err(PeerError::Rejected {
                        peer,
                        reason: if matches!(e, crate::Error::Unavailable { .. }) {
                            "breaker unavailable"
                        } else {
                            "breaker error"
                        },
                    })
                }
            }
            let flight = InFlight {
                breaker: &inner.breaker,
                started: Instant::now(),
                done: false,
            };
            let token = match (req.auth, &inner.credentials) {
                (CallAuth::Bearer, Some(c)) => match c.token().await {
                    Ok(t) => Some(t),
                    Err(reason) => {
                        // Our own credentials, not the peer: nothing to hold against it.
                        flight.finish(Outcome::Abandoned);
                        return Err(PeerError::Credentials { peer, reason });
                    }
                },
                _ => None,
            };
            let bearer = token.as_ref().map(|t| format!("Bearer {}", t.as_str()));
            let mut headers: Vec<(&str, &str)> =
                req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            if let Some(b) = &bearer {
                headers.push(("authorization", b.as_str()));
            }
            let timeout = inner.retry.attempt_timeout(inner.timeout, attempt);
            let url = format!("{}{}", inner.base, req.path);
            let result = inner
                .client
                .clone()
                .with_timeout(timeout)
                .send(req.method.clone(), &url, &headers, req.body.clone())
                .await;
            let outcome = match &result {
                Ok(r) => Outcome::of_status(r.status),
                Err(e) => Outcome::of_error(e),
            };
            flight.finish(outcome);
            let failure = match result {
                Ok(r)
                    if r.status == cryptoutil_federation::StatusCode::UNAUTHORIZED
                        && token.is_some()
                        && !token_renewed =>
                {
                    // The token may have been revoked or expired early: once, with a new one.
                    if let Some(c) = &inner.credentials {
                        c.invalidate().await;
                    }
                    token_renewed = true;
                    continue;
                }
                Ok(r) if outcome != Outcome::UpstreamFailure => return Ok(r),
                Ok(r) => format!("HTTP {}", r.status.as_u16()),
                Err(e) => e.to_string(),
            };
            let Retries::Within(deadline) = retries else {
                return Err(PeerError::Failed {
                    peer,
                    reason: failure,
                });
            };
            let retry = attempt + 1;
            let delay = inner.retry.backoff(retry, jitter());
            if retry > inner.retry.max_retries || started.elapsed() + delay > deadline {
                return Err(PeerError::Failed {
                    peer,
                    reason: format!("{failure} (after {retry} tries)"),
                });
            }
            tracing::debug!(peer, retry, ?delay, %failure, "retrying a failed peer call");
            tokio::time::sleep(delay).await;
            attempt = retry;
        }
    }

    /// A probe for this peer's breaker: `GET /service/api/v1/health` with this process's token,
    /// ready on 2xx. Without credentials a poll can only learn that the peer answers HTTP, so
    /// any answer below 500 counts as ready. Polls bypass the breaker: they are its own probes.
    pub fn probe(
        name: PeerName,
        base: &str,
        client: HttpsClient,
        timeout: Duration,
        credentials: Option<Arc<Credentials>>,
    ) -> Arc<dyn Probe> {
        Arc::new(HealthProbe {
            name,
            url: format!("{}{HEALTH_PATH}", base.trim_end_matches('/')),
            client: client.with_timeout(timeout),
            credentials,
        })
    }
}

struct HealthProbe {
    name: PeerName,
    url: String,
    client: HttpsClient,
    credentials: Option<Arc<Credentials>>,
}

impl HealthProbe {
    async fn poll(&self) -> Result<bool, String> {
        let Some(credentials) = &self.credentials else {
            let r = self
                .client
                .get(&self.url)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(r.status.as_u16() < 500);
        };
        let token = credentials.token().await?;
        let bearer = format!("Bearer {}", token.as_str());
        let r = self
            .client
            .send(
                Method::GET,
                &self.url,
                &[("authorization", &bearer)],
                Bytes::new(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.status.is_success())
    }
}

impl Probe for HealthProbe {
    fn healthy(self: Arc<Self>) -> BoxFuture<'static, bool> {
        Box::pin(async move {
            match self.poll().await {
                Ok(ready) => ready,
                Err(reason) => {
                    tracing::info!(peer = self.name.as_str(), %reason, "health poll failed");
                    false
                }
            }
        })
    }
}

/// A uniform draw in [0, 1) for backoff jitter (no need for a secret: it only spreads retries).
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if cryptoutil_protocols::oauth::fill_random(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}
