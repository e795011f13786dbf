//! Builds the supervision tree: root supervisor -> one supervisor per service -> the service's
//! actors, and hands back the typed handles the HTTP layer needs.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cryptoutil_storage::Store;
use ractor::SpawnErr;

use crate::audit::{AuditArgs, AuditHandle, AuditLog, AuditMsg};
use crate::authz::{Authz, AuthzArgs, AuthzConfig, AuthzHandle, AuthzMsg};
use crate::config::SupervisionConfig;
use crate::federation::{BreakerHandle, Federation, PeerSettings};
use crate::health::{Health, HealthArgs, HealthHandle, HealthMsg};
use crate::issuer_jwks::{
    IssuerJwks, IssuerJwksArgs, IssuerJwksHandle, IssuerJwksMsg, RemoteIssuer,
};
use crate::jose_keys::{JoseKeys, JoseKeysArgs, JoseKeysHandle, JoseKeysMsg};
use crate::kms::scheduler::{
    KmsScheduler, SchedulerArgs, SchedulerMsg, CHECK_INTERVAL as SCHEDULER_INTERVAL,
};
use crate::kms::KeyRingsHandle;
use crate::service::ServiceName;
use crate::sessions::{BrowserLogin, Sessions, SessionsArgs, SessionsHandle, SessionsMsg};
use crate::slot::Slot;
use crate::supervisor::child::{ActorSpec, ChildSpec};
use crate::supervisor::{SupervisorArgs, SupervisorHandle, SupervisorSpec};
use crate::vault::{Vault, VaultArgs, VaultHandle, VaultMsg};

/// How long a KMS key ring waits for work before it stops (it starts again on the next use).
const KEY_RING_IDLE: Duration = Duration::from_secs(300);

/// Handles to one service's actors.
#[derive(Clone, Debug)]
pub struct ServiceActors {
    /// Liveness.
    pub health: HealthHandle,
    /// The store's owner.
    pub vault: VaultHandle,
    /// The JOSE service's keys (the `jose` service only).
    pub jose: Option<JoseKeysHandle>,
    /// The cached key sets of the remote trusted issuers, in configuration order.
    pub issuer_jwks: Vec<IssuerJwksHandle>,
    /// identity-authz's tenants, clients and signing keys (`identity-authz` only).
    pub authz: Option<AuthzHandle>,
    /// identity-idp's way to identity-authz, whose sign-in requests its login pages complete
    /// (`identity-idp` only, when identity-authz runs in the same process).
    pub login: Option<AuthzHandle>,
    /// Browser sign-ins and sessions.
    pub sessions: SessionsHandle,
    /// The KMS's elastic keys and their key-ring actors (`kms` only).
    pub kms: Option<KeyRingsHandle>,
    /// The breakers of the federated peers this service calls.
    pub peers: Vec<BreakerHandle>,
}

/// What the tree needs besides stores.
#[derive(Debug, Clone, Default)]
pub struct SuiteArgs {
    /// Trusted issuers whose keys are fetched: every service gets an `IssuerJwks` actor for each.
    pub issuers: Vec<RemoteIssuer>,
    /// identity-authz's settings (required when it is started).
    pub authz: Option<AuthzConfig>,
    /// How each service signs browsers in (services without an entry have no browser sign-in).
    pub browser: BTreeMap<ServiceName, BrowserLogin>,
    /// The federated peers (`federation:`), each with a `Breaker` under `federation`.
    pub peers: Vec<PeerSettings>,
    /// The `iss` of identity-authz's tokens, when it is a federated peer.
    pub identity_issuer: String,
}

/// The running tree.
#[derive(Debug)]
pub struct Suite {
    /// The root supervisor.
    pub root: SupervisorHandle,
    /// Completes when the root stops (after shutdown, or after an escalation it cannot absorb).
    pub join: tokio::task::JoinHandle<()>,
    /// Per-service handles.
    pub services: BTreeMap<ServiceName, ServiceActors>,
    /// The federated peers, through their breakers.
    pub federation: Federation,
}

/// Starts the root supervisor with one service supervisor per entry of `stores`.
pub async fn start(
    stores: Vec<(ServiceName, Arc<Store>)>,
    args: &SuiteArgs,
    cfg: &SupervisionConfig,
) -> Result<Suite, SpawnErr> {
    let mut services = BTreeMap::new();
    let mut service_specs: Vec<Arc<dyn ChildSpec>> = Vec::new();
    let mut federation = Federation::default();
    if !args.peers.is_empty() {
        let (spec, peers) =
            crate::federation::supervisor(args.peers.clone(), &args.identity_issuer, cfg)?;
        service_specs.push(spec);
        federation = peers;
    }
    let jose = federation
        .jose
        .clone()
        .map(crate::federation::JoseEngine::new);
    for (service, store) in stores {
        let (spec, mut actors) = service_tree(service, store, args, jose.clone(), cfg)?;
        actors.peers = federation.breakers_of(service);
        service_specs.push(spec);
        services.insert(service, actors);
    }
    let authz = services
        .get(&ServiceName::IdentityAuthz)
        .and_then(|a: &ServiceActors| a.authz.clone());
    if let Some(idp) = services.get_mut(&ServiceName::IdentityIdp) {
        idp.login = authz;
    }
    let args = SupervisorArgs {
        name: "root".into(),
        kind: "RootSupervisor",
        service: "suite",
        children: service_specs,
        config: cfg.clone(),
    };
    let (root, join) = SupervisorHandle::spawn_root(args).await?;
    Ok(Suite {
        root,
        join,
        services,
        federation,
    })
}

fn service_tree(
    service: ServiceName,
    store: Arc<Store>,
    args: &SuiteArgs,
    jose_engine: Option<crate::federation::JoseEngine>,
    cfg: &SupervisionConfig,
) -> Result<(Arc<dyn ChildSpec>, ServiceActors), SpawnErr> {
    let name = service.as_str();
    let health_slot: Slot<HealthMsg> = Slot::new("Health");
    let vault_slot: Slot<VaultMsg> = Slot::new("Vault");
    let health = ActorSpec::new(
        format!("{name}/health"),
        "Health",
        health_slot.clone(),
        move || (Health, HealthArgs { service }),
        || HealthMsg::Crash,
    );
    let vault_store = Arc::clone(&store);
    let kms_store = Arc::clone(&store);
    let vault = ActorSpec::new(
        format!("{name}/vault"),
        "Vault",
        vault_slot.clone(),
        move || {
            (
                Vault,
                VaultArgs {
                    service,
                    store: Arc::clone(&vault_store),
                },
            )
        },
        || VaultMsg::Crash,
    );
    let sessions_slot: Slot<SessionsMsg> = Slot::new("Sessions");
    let sessions_args = SessionsArgs {
        login: args.browser.get(&service).cloned(),
    };
    let sessions = ActorSpec::new(
        format!("{name}/sessions"),
        "Sessions",
        sessions_slot.clone(),
        move || (Sessions, sessions_args.clone()),
        || SessionsMsg::Crash,
    );
    let mut children: Vec<Arc<dyn ChildSpec>> =
        vec![Arc::new(health), Arc::new(vault), Arc::new(sessions)];
    let mut authz = None;
    if service == ServiceName::IdentityAuthz {
        let config = args.authz.clone().ok_or_else(|| {
            SpawnErr::StartupFailed("identity-authz needs its configuration".into())
        })?;
        let slot: Slot<AuthzMsg> = Slot::new("Authz");
        let authz_store = Arc::clone(&store);
        let spec = ActorSpec::new(
            format!("{name}/authz"),
            "Authz",
            slot.clone(),
            move || {
                (
                    Authz,
                    AuthzArgs {
                        store: Arc::clone(&authz_store),
                        config: config.clone(),
                    },
                )
            },
            || AuthzMsg::Crash,
        );
        children.push(Arc::new(spec));
        authz = Some(AuthzHandle::new(slot, cfg.ask_timeout));
    }
    let mut jose = None;
    if service == ServiceName::Jose {
        let slot: Slot<JoseKeysMsg> = Slot::new("JoseKeys");
        let spec = ActorSpec::new(
            format!("{name}/keys"),
            "JoseKeys",
            slot.clone(),
            move || {
                (
                    JoseKeys,
                    JoseKeysArgs {
                        service,
                        store: Arc::clone(&store),
                    },
                )
            },
            || JoseKeysMsg::Crash,
        );
        children.push(Arc::new(spec));
        jose = Some(JoseKeysHandle::new(slot, cfg.ask_timeout));
    }
    let mut audit = None;
    let rings_cell: Arc<OnceLock<KeyRingsHandle>> = Arc::default();
    if service == ServiceName::Kms {
        let slot: Slot<AuditMsg> = Slot::new("AuditLog");
        let audit_args = AuditArgs::open(Arc::clone(&kms_store), name)
            .map_err(|e| SpawnErr::StartupFailed(format!("{name} audit log: {e}").into()))?;
        let handle = AuditHandle::new(slot.clone(), &audit_args, cfg.ask_timeout);
        let spec = ActorSpec::new(
            format!("{name}/audit"),
            "AuditLog",
            slot.clone(),
            move || (AuditLog, audit_args.clone()),
            || AuditMsg::Crash,
        );
        children.push(Arc::new(spec));
        audit = Some(handle);
        let scheduler_args = SchedulerArgs {
            rings: Arc::clone(&rings_cell),
            interval: SCHEDULER_INTERVAL,
        };
        children.push(Arc::new(ActorSpec::new(
            format!("{name}/scheduler"),
            "KmsScheduler",
            Slot::<SchedulerMsg>::new("KmsScheduler"),
            move || (KmsScheduler, scheduler_args.clone()),
            || SchedulerMsg::Crash,
        )));
    }
    let mut issuer_jwks = Vec::with_capacity(args.issuers.len());
    for (i, remote) in args.issuers.iter().enumerate() {
        let slot: Slot<IssuerJwksMsg> = Slot::new("IssuerJwks");
        let snapshot = Arc::default();
        let args = IssuerJwksArgs {
            service,
            remote: remote.clone(),
            snapshot: Arc::clone(&snapshot),
        };
        let spec = ActorSpec::new(
            format!("{name}/issuer-jwks/{i}"),
            "IssuerJwks",
            slot.clone(),
            move || (IssuerJwks, args.clone()),
            || IssuerJwksMsg::Crash,
        );
        children.push(Arc::new(spec));
        // A refresh waits for a whole fetch, which may take longer than an ordinary ask.
        let timeout = cfg
            .ask_timeout
            .max(remote.fetch_timeout + Duration::from_secs(1));
        issuer_jwks.push(IssuerJwksHandle::new(
            slot,
            snapshot,
            remote.issuer.clone(),
            remote.max_age,
            timeout,
        ));
    }
    let args = SupervisorArgs {
        name: name.into(),
        kind: "ServiceSupervisor",
        service: name,
        children,
        config: cfg.clone(),
    };
    let spec = SupervisorSpec::new(args);
    let kms = audit.map(|audit| {
        let mut rings = KeyRingsHandle::new(
            kms_store,
            audit,
            spec.handle(),
            name,
            KEY_RING_IDLE,
            cfg.ask_timeout,
        );
        if let Some(engine) = jose_engine {
            rings = rings.with_jose(engine);
        }
        let _ = rings_cell.set(rings.clone());
        rings
    });
    let actors = ServiceActors {
        health: HealthHandle::new(health_slot, cfg.ask_timeout),
        vault: VaultHandle::new(vault_slot, cfg.ask_timeout),
        jose,
        issuer_jwks,
        authz,
        login: None,
        sessions: SessionsHandle::new(sessions_slot, cfg.ask_timeout),
        kms,
        peers: Vec::new(),
    };
    Ok((Arc::new(spec), actors))
}

#[cfg(test)]
mod tests;
