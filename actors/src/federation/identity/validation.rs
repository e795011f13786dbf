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

use cryptoutil_protocols::jose::jwt;
use serde_json::{Map, Value};

use super::IdentityPeer;
use crate::audit::{AuditEntry, AuditHandle};
use crate::bearer::{principal_of, Expectation, Principal, Rejected, TrustedIssuer};
use crate::federation::{IdentityFallback, Retries};

/// How a service validates identity-authz's tokens when identity-authz is federated.
pub struct IdentityValidation {
    peer: IdentityPeer,
    mode: IdentityFallback,
    cache_ttl: Duration,
    deadline: Duration,
    audit: AuditHandle,
}

impl IdentityValidation {
    /// Through `peer`, falling back to `mode`; an active answer is trusted for `cache_ttl`
    /// (never past the token's `exp`). Modes without an equivalent answer (`reject_all`,
    /// `allow_all`) retry failed introspections within `deadline`. Every fallback taken is
    /// recorded in `audit` (the service's log) before the request goes on; one that cannot be
    /// recorded is refused as unavailable.
    pub fn new(
        peer: IdentityPeer,
        mode: IdentityFallback,
        cache_ttl: Duration,
        deadline: Duration,
        audit: AuditHandle,
    ) -> Self {
        Self {
            peer,
            mode,
            cache_ttl,
            deadline,
            audit,
        }
    }

    /// The issuer whose tokens go through identity-authz.
    pub fn issuer(&self) -> &str {
        self.peer.issuer()
    }

    /// The principal of `token` (parsed as `unverified`, of `trusted`, identity-authz's
    /// issuer) and until when it may be cached (Unix seconds).
    pub async fn validate(
        &self,
        token: &str,
        unverified: &jwt::Unverified<'_>,
        trusted: &TrustedIssuer,
        expect: &Expectation,
        now: u64,
    ) -> Result<(Principal, u64), Rejected> {
        // An expired token is refused here: identity-authz would say the same.
        let claims = unverified.claims();
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp <= now {
            return Err(Rejected::Invalid);
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
                let (principal, exp) = self.check(&claims, &expect.audience, now)?;
                // Keeps the key set fetched while identity-authz answers, so
                // `local_validation` has keys when it stops answering.
                trusted.warm();
                return Ok((principal, exp.min(now.saturating_add(ttl))));
            }
            Ok(None) => return Err(Rejected::Invalid),
            Err(e) => e,
        };
        crate::metrics::fallback_used("identity", self.mode.as_str());
        let result = self.fallback(unverified, trusted, expect, now).await;
        // A refused token's subject and tenant are what it claims (unverified).
        let (who, tenant) = match &result {
            Ok((p, _)) => (p.subject.clone(), p.tenant.to_string()),
            Err(_) => {
                let claim = |name| claims.get(name).and_then(Value::as_str).unwrap_or_default();
                (claim("sub").to_owned(), claim("tenant").to_owned())
            }
        };
        let mut entry = AuditEntry::fallback(&who, &tenant, "identity", self.mode.as_str());
        if let Err(refused) = &result {
            entry = entry.outcome(&Err::<(), _>(match refused {
                Rejected::Invalid => "the token does not verify",
                Rejected::IssuerUnavailable => "refused while identity-authz is unavailable",
            }));
        }
        if let Err(e) = self.audit.append(entry, Vec::new()).await {
            tracing::warn!(%unavailable, error = %e, "a fallback could not be audited: refused");
            return Err(Rejected::IssuerUnavailable);
        }
        tracing::debug!(%unavailable, mode = self.mode.as_str(), "identity-authz unavailable");
        result.map(|(principal, exp)| (principal, exp.min(now.saturating_add(ttl))))
    }

    /// What `mode` makes of a token while identity-authz is unavailable.
    async fn fallback(
        &self,
        unverified: &jwt::Unverified<'_>,
        trusted: &TrustedIssuer,
        expect: &Expectation,
        now: u64,
    ) -> Result<(Principal, u64), Rejected> {
        match self.mode {
            IdentityFallback::LocalValidation => trusted.verify(unverified, expect, now).await,
            IdentityFallback::RejectAll => Err(Rejected::IssuerUnavailable),
            IdentityFallback::AllowAll => {
                let (principal, _) = principal_of(unverified.claims())?;
                tracing::error!(
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
    ) -> Result<(Principal, u64), Rejected> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Err(Rejected::Invalid);
        }
        let ours = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ours {
            return Err(Rejected::Invalid);
        }
        let (principal, exp) = principal_of(claims)?;
        if exp <= now {
            return Err(Rejected::Invalid);
        }
        Ok((principal, exp))
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
