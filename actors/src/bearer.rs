//! Bearer access tokens of trusted issuers, checked locally: the principal a token's claims
//! name, and verification of a token (parsed once, as [`jwt::Unverified`]) with its issuer's
//! keys, static from the configuration or fetched and cached by an `IssuerJwks` actor. The
//! HTTP credential seam and identity-authz's federated validation both use it.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::ids::TenantId;
use cryptoutil_protocols::jose::{jwt, JwkSet, JwsAlg};
use serde_json::{Map, Value};

use crate::issuer_jwks::IssuerJwksHandle;

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The issuer of its credential (`iss`): a subject is unique within its issuer only.
    pub issuer: String,
    /// Subject (user or client id).
    pub subject: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// For a browser session: SHA-256 of its CSRF token.
    pub csrf: Option<[u8; 32]>,
    /// For a DPoP-bound token (`cnf.jkt`): the thumbprint of the key every request must prove.
    pub jkt: Option<String>,
    /// For a certificate-bound token (`cnf.x5t#S256`, RFC 8705 §3): the SHA-256 of the client
    /// certificate every request's connection must present.
    pub x5t: Option<String>,
    /// For a token of a user's sign-in: how strongly the user signed in (`acr`, RFC 9470).
    pub acr: Option<String>,
    /// For a token of a user's sign-in: when the user signed in (`auth_time`).
    pub auth_time: Option<u64>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// It does not verify, or its claims do not name a principal.
    Invalid,
    /// Its issuer's keys cannot be had (never fetched, issuer unreachable): it can be neither
    /// accepted nor refused.
    IssuerUnavailable,
}

/// Token algorithms accepted from issuers: asymmetric only (a shared HMAC key would let every
/// service mint tokens).
pub const BEARER_ALGS: [JwsAlg; 10] = {
    use JwsAlg::*;
    [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA,
    ]
};

/// Where one issuer's keys come from.
pub enum IssuerKeys {
    /// A set given in the configuration.
    Static(Arc<JwkSet>),
    /// A set fetched from the issuer and cached by an actor.
    Remote(IssuerJwksHandle),
}

/// A trusted issuer and its keys.
pub struct TrustedIssuer {
    /// Its `iss`.
    pub issuer: String,
    /// Its keys.
    pub keys: IssuerKeys,
    /// Whether an ECDSA token whose signature is the high-S twin of its pair is refused (the
    /// issuer signs low-S only, as identity-authz does).
    pub require_low_s: bool,
}

/// What a token must be for one service.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The service's name, which tokens must carry in `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

impl TrustedIssuer {
    /// Verifies `token` with this issuer's keys (static, or the cached set) and its claims
    /// (issuer, audience, time); the principal and its `exp`.
    pub async fn verify(
        &self,
        token: &jwt::Unverified<'_>,
        expect: &Expectation,
        now: u64,
    ) -> Result<(Principal, u64), Rejected> {
        if self.require_low_s && token.high_s() {
            return Err(Rejected::Invalid);
        }
        let set = match &self.keys {
            IssuerKeys::Static(set) => Arc::clone(set),
            IssuerKeys::Remote(handle) => remote_keys(handle, token.kid()).await?,
        };
        let v = jwt::Validation {
            issuer: Some(self.issuer.clone()),
            audience: Some(expect.audience.clone()),
            typ: None,
            leeway: expect.leeway,
            require_exp: true,
        };
        let claims = token
            .verify(&set, &BEARER_ALGS, &v, now)
            .map_err(|_| Rejected::Invalid)?;
        principal_of(&claims)
    }

    /// Keeps a fetched key set warm (a refresh when it is stale; refreshes are rate-limited by
    /// the key-set actor), so local validation has keys when they are needed.
    pub fn warm(&self) {
        let IssuerKeys::Remote(handle) = &self.keys else {
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
}

/// The principal an access token's (verified or introspected) claims name, and its `exp`: a
/// `tenant`, a subject (`sub` or `client_id`), the scopes, any key binding (`cnf`) and, for a
/// user's token, how and when the user signed in (`acr`, `auth_time`).
pub fn principal_of(claims: &Map<String, Value>) -> Result<(Principal, u64), Rejected> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(Rejected::Invalid)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let tenant = claims
        .get("tenant")
        .and_then(Value::as_str)
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(Rejected::Invalid)?;
    let subject = text("sub")
        .or_else(|| text("client_id"))
        .ok_or(Rejected::Invalid)?;
    let scopes = text("scope")
        .map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let cnf = |member: &str| {
        claims
            .get("cnf")
            .and_then(|c| c.get(member))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok((
        Principal {
            issuer: text("iss").unwrap_or_default(),
            subject,
            tenant,
            scopes,
            csrf: None,
            jkt: cnf("jkt"),
            x5t: cnf("x5t#S256"),
            acr: text("acr"),
            auth_time: claims.get("auth_time").and_then(Value::as_u64),
        },
        exp,
    ))
}

/// The fetched set to verify a token of `kid` with: the cached one when it is fresh and
/// resolves the `kid`, else whatever a refresh leaves published (the actor rate-limits
/// refreshes, so tokens with made-up `kid`s cannot turn into a stream of fetches). With nothing
/// ever fetched the answer is "unavailable": the token may well be valid.
async fn remote_keys(
    handle: &IssuerJwksHandle,
    kid: Option<&str>,
) -> Result<Arc<JwkSet>, Rejected> {
    if let Some(published) = handle.current() {
        if !handle.is_stale(&published) && published.set.resolve(kid).is_some() {
            return Ok(Arc::clone(&published.set));
        }
    }
    // A dead or wedged actor must not lock everyone out while a good set is cached.
    let published = match handle.refresh().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(issuer = handle.issuer(), %e, "issuer key refresh unavailable");
            handle.current()
        }
    };
    published
        .map(|p| Arc::clone(&p.set))
        .ok_or(Rejected::IssuerUnavailable)
}
