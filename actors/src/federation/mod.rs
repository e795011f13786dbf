//! Federation between services (ARCHITECTURE §6): one `Breaker` actor per configured peer
//! under a `FederationSupervisor`, and the typed ways to reach each peer through its breaker.
//!
//! # Layout
//! - [`breaker`]: the `Breaker` actor (timers, health polls, metrics) and its handle.
//! - [`ca`]: the CA's EST enrollment, the seam for certificates from the CA.
//! - [`peer`]: [`Peer`]: calls through the breaker with retries, backoff and the retry budget.
//! - [`credentials`]: this process's OAuth client toward identity-authz, and its tokens.
//! - [`identity`]: identity-authz's token introspection, and the fallback while it is away.
//! - [`jose`]: the JOSE service as the KMS's crypto engine, `internal_crypto` as its fallback.

pub mod breaker;
pub mod ca;
pub mod credentials;
pub mod identity;
pub mod jose;
pub mod peer;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::breaker::BreakerConfig;
use cryptoutil_federation::retry::RetryPolicy;
use cryptoutil_federation::HttpsClient;
use ractor::SpawnErr;

pub use breaker::{BreakerHandle, BreakerView};
pub use ca::CaPeer;
pub use credentials::Credentials;
pub use identity::{IdentityPeer, IdentityValidation};
pub use jose::JoseEngine;
pub use peer::{Peer, PeerRequest, Retries};

use crate::config::SupervisionConfig;
use crate::service::ServiceName;
use crate::slot::Slot;
use crate::supervisor::child::{ActorSpec, ChildSpec};
use crate::supervisor::{SupervisorArgs, SupervisorSpec};

/// The readiness route peers poll (authenticated like any `/service` route).
pub const HEALTH_PATH: &str = "/service/api/v1/health";
/// identity-authz's RFC 7662 introspection endpoint.
pub const INTROSPECT_PATH: &str = "/service/oauth2/v1/introspect";
/// identity-authz's token endpoint.
pub const TOKEN_PATH: &str = "/service/oauth2/v1/token";
/// identity-authz's JWK Set.
pub const JWKS_PATH: &str = "/service/oauth2/v1/jwks";

/// A federated peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerName {
    /// identity-authz.
    Identity,
    /// The JOSE service.
    Jose,
    /// The CA.
    Ca,
}

impl PeerName {
    /// The name in configuration keys and the metrics' `service` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerName::Identity => "identity",
            PeerName::Jose => "jose",
            PeerName::Ca => "ca",
        }
    }

    /// Does `service` call this peer? Every service but identity-authz validates tokens with
    /// identity-authz, the KMS performs JWE/JWS through JOSE, and every service may obtain its
    /// certificates from the CA.
    pub fn used_by(self, service: ServiceName) -> bool {
        match self {
            PeerName::Identity => service != ServiceName::IdentityAuthz,
            PeerName::Jose => service == ServiceName::Kms,
            PeerName::Ca => true,
        }
    }
}

/// Why a peer could not give an answer. Every variant sends the caller to its fallback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The breaker refused the call.
    #[error("{peer} is not called: circuit breaker {reason}")]
    Rejected {
        /// The peer.
        peer: &'static str,
        /// open, half_open_full, retry_budget, breaker unavailable.
        reason: &'static str,
    },
    /// The peer failed (connect error, timeout, 429, 5xx, garbage), retries included.
    #[error("{peer} failed: {reason}")]
    Failed {
        /// The peer.
        peer: &'static str,
        /// What happened last.
        reason: String,
    },
    /// This process's own credentials toward the peer were refused or could not be had.
    #[error("credentials for {peer}: {reason}")]
    Credentials {
        /// The peer.
        peer: &'static str,
        /// Why.
        reason: String,
    },
}

/// What a service does while identity-authz is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityFallback {
    /// Tokens keep validating against the cached JWK Set until they expire.
    #[default]
    LocalValidation,
    /// Every token is refused.
    RejectAll,
    /// Every request passes (development only; logged on every use).
    AllowAll,
}

/// What the KMS does while the JOSE service is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoseFallback {
    /// The service's own JOSE code.
    #[default]
    InternalCrypto,
}

/// What a service does while the CA is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaFallback {
    /// Certificates from its own dynamic PKI.
    #[default]
    SelfSigned,
    /// The certificates it last obtained.
    Cached,
}

impl IdentityFallback {
    /// The configuration and metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityFallback::LocalValidation => "local_validation",
            IdentityFallback::RejectAll => "reject_all",
            IdentityFallback::AllowAll => "allow_all",
        }
    }
}

impl JoseFallback {
    /// The configuration and metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            JoseFallback::InternalCrypto => "internal_crypto",
        }
    }
}

impl CaFallback {
    /// The configuration and metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaFallback::SelfSigned => "self_signed",
            CaFallback::Cached => "cached",
        }
    }
}

/// How to reach one peer, as the configuration says.
#[derive(Clone)]
pub struct PeerSettings {
    /// Which peer.
    pub name: PeerName,
    /// Its public base URL (`https://host:port`).
    pub base: String,
    /// A pooled TLS 1.3 client trusting the peer (and presenting this process's certificate
    /// in `mtls` mode).
    pub client: HttpsClient,
    /// Timeout of a first try.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// The breaker.
    pub breaker: BreakerConfig,
    /// Health polls while open.
    pub poll_interval: Duration,
    /// This process's OAuth client, if configured.
    pub credentials: Option<Arc<Credentials>>,
}

impl std::fmt::Debug for PeerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSettings")
            .field("name", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The peers of this process, as callers reach them.
#[derive(Clone, Debug, Default)]
pub struct Federation {
    /// identity-authz, when `federation.identity_enabled`.
    pub identity: Option<IdentityPeer>,
    /// The JOSE service, when `federation.jose_enabled`.
    pub jose: Option<Peer>,
    /// The CA, when `federation.ca_enabled`.
    pub ca: Option<Peer>,
}

impl Federation {
    /// Every configured peer.
    pub fn peers(&self) -> Vec<&Peer> {
        let identity = self.identity.as_ref().map(IdentityPeer::peer);
        identity
            .into_iter()
            .chain(self.jose.as_ref())
            .chain(self.ca.as_ref())
            .collect()
    }

    /// The breakers of the peers `service` calls.
    pub fn breakers_of(&self, service: ServiceName) -> Vec<BreakerHandle> {
        self.peers()
            .into_iter()
            .filter(|p| p.name().used_by(service))
            .map(|p| p.breaker().clone())
            .collect()
    }
}

/// The `FederationSupervisor` with one `Breaker` child per peer (`federation/identity`, ...),
/// and the peers reached through them. `identity_issuer` is the `iss` identity-authz's tokens
/// carry.
pub fn supervisor(
    peers: Vec<PeerSettings>,
    identity_issuer: &str,
    cfg: &SupervisionConfig,
) -> Result<(Arc<dyn ChildSpec>, Federation), SpawnErr> {
    let mut children: Vec<Arc<dyn ChildSpec>> = Vec::new();
    let mut federation = Federation::default();
    for p in peers {
        let slot: Slot<breaker::BreakerMsg> = Slot::new("Breaker");
        let gauge = breaker::SharedGauge::default();
        let probe = Peer::probe(
            p.name,
            &p.base,
            p.client.clone(),
            p.timeout,
            p.credentials.clone(),
        );
        let args = breaker::BreakerArgs {
            peer: p.name,
            config: p.breaker.clone(),
            budget_ratio: p.retry.budget_ratio,
            poll_interval: p.poll_interval,
            probe,
            gauge: Arc::clone(&gauge),
        };
        let detail_gauge = Arc::clone(&gauge);
        let spec = ActorSpec::new(
            format!("federation/{}", p.name.as_str()),
            "Breaker",
            slot.clone(),
            move || (breaker::Breaker, args.clone()),
            || breaker::BreakerMsg::Crash,
        )
        .with_detail(Arc::new(move || {
            let state =
                breaker::gauge_name(detail_gauge.load(std::sync::atomic::Ordering::Relaxed));
            Some(format!("breaker={state}"))
        }));
        children.push(Arc::new(spec));
        let handle = BreakerHandle::new(slot, p.name, gauge, cfg.ask_timeout);
        let peer = Peer::new(
            p.name,
            &p.base,
            p.client,
            p.timeout,
            p.retry,
            handle,
            p.credentials,
        );
        match p.name {
            PeerName::Identity => {
                federation.identity = Some(IdentityPeer::new(peer, identity_issuer.to_owned()))
            }
            PeerName::Jose => federation.jose = Some(peer),
            PeerName::Ca => federation.ca = Some(peer),
        }
    }
    let spec = SupervisorSpec::new(SupervisorArgs {
        name: "federation".into(),
        kind: "FederationSupervisor",
        service: "federation",
        children,
        config: cfg.clone(),
    });
    Ok((Arc::new(spec), federation))
}
