//! Token validation through a federated identity-authz (ARCHITECTURE §6): a token of its issuer
//! is introspected (RFC 7662), so a revoked token is refused within `cache_ttl`; while
//! identity-authz is unavailable (its breaker open, calls failing, our client refused) the
//! service applies `federation_fallback.identity_fallback_mode`:
//!
//! - `local_validation`: the token's signature and claims are checked against the cached JWK
//!   Set, so tokens keep validating until they expire (revocations made meanwhile are not seen).
//! - `reject_all`: every such token is refused with 503 (it may well be valid).
//! - `allow_all` (development only; refused at start without
//!   `federation.danger_allow_all_fallback`): the token's claims are believed unverified, and
//!   every use is logged as an error.

use std::time::Duration;

use cryptoutil_actors::federation::{IdentityFallback, IdentityPeer, Retries};
use serde_json::{Map, Value};

use super::{principal_of, AuthFailure, IssuerKeys, JwtBearer, Principal};

/// How a service validates identity-authz's tokens when identity-authz is federated.
pub struct IdentityValidation {
    peer: IdentityPeer,
    mode: IdentityFallback,
    cache_ttl: Duration,
    deadline: Duration,
}

impl IdentityValidation {
    /// Through `peer`, falling back to `mode`; an active answer is trusted for `cache_ttl`
    /// (never past the token's `exp`). Modes without an equivalent answer (`reject_all`,
    /// `allow_all`) retry failed introspections within `deadline`.
    pub fn new(
        peer: IdentityPeer,
        mode: IdentityFallback,
        cache_ttl: Duration,
        deadline: Duration,
    ) -> Self {
        Self {
            peer,
            mode,
            cache_ttl,
            deadline,
        }
    }

    /// The issuer whose tokens go through identity-authz.
    pub fn issuer(&self) -> &str {
        self.peer.issuer()
    }

    /// The principal and until when it may be cached (Unix seconds).
    pub(crate) async fn validate(
        &self,
        bearer: &JwtBearer,
        token: &str,
        unverified: &Map<String, Value>,
        keys: &IssuerKeys,
        now: u64,
    ) -> Result<(Principal, u64), AuthFailure> {
        // An expired token is refused here: identity-authz would say the same.
        let exp = unverified.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp <= now {
            return Err(AuthFailure::Invalid);
        }
        let ttl = self.cache_ttl.as_secs();
        let retries = match self.mode {
            IdentityFallback::LocalValidation => Retries::None,
            IdentityFallback::RejectAll | IdentityFallback::AllowAll => {
                Retries::Within(self.deadline)
            }
        };
        let unavailable = match self.peer.introspect(token, retries).await {
            Ok(Some(claims)) => {
                let (principal, exp) = self.check(&claims, bearer.audience(), now)?;
                warm(keys);
                return Ok((principal, exp.min(now.saturating_add(ttl))));
            }
            Ok(None) => return Err(AuthFailure::Invalid),
            Err(e) => e,
        };
        cryptoutil_actors::metrics::fallback_used("identity", self.mode.as_str());
        match self.mode {
            IdentityFallback::LocalValidation => {
                tracing::debug!(%unavailable, "identity-authz unavailable: validating locally");
                let (principal, exp) = bearer
                    .verify_locally(token, self.issuer(), keys, now)
                    .await?;
                Ok((principal, exp.min(now.saturating_add(ttl))))
            }
            IdentityFallback::RejectAll => {
                tracing::debug!(%unavailable, "identity-authz unavailable: reject_all refuses");
                Err(AuthFailure::IssuerUnavailable)
            }
            IdentityFallback::AllowAll => {
                let (principal, _) = principal_of(unverified)?;
                tracing::error!(
                    %unavailable,
                    subject = %principal.subject,
                    tenant = %principal.tenant,
                    "DEVELOPMENT ONLY: identity_fallback_mode allow_all accepted a token WITHOUT \
                     verifying it"
                );
                // Never cached: the next request asks identity-authz again.
                Ok((principal, now))
            }
        }
    }

    /// An active introspection answer for this service: our issuer, our audience, not expired.
    fn check(
        &self,
        claims: &Map<String, Value>,
        audience: &str,
        now: u64,
    ) -> Result<(Principal, u64), AuthFailure> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Err(AuthFailure::Invalid);
        }
        let ours = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ours {
            return Err(AuthFailure::Invalid);
        }
        let (principal, exp) = principal_of(claims)?;
        if exp <= now {
            return Err(AuthFailure::Invalid);
        }
        Ok((principal, exp))
    }
}

/// Keeps the issuer's key set fetched while identity-authz answers, so `local_validation` has
/// keys when it stops answering (refreshes are rate-limited by the key-set actor).
fn warm(keys: &IssuerKeys) {
    let IssuerKeys::Remote(handle) = keys else {
        return;
    };
    let fresh = handle.current().is_some_and(|p| !handle.is_stale(&p));
    if !fresh {
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = handle.refresh().await;
        });
    }
}

impl std::fmt::Debug for IdentityValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityValidation")
            .field("issuer", &self.issuer())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
