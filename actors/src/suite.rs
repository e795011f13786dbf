//! Builds the supervision tree: root supervisor -> one supervisor per service -> the service's
//! actors, and hands back the typed handles the HTTP layer needs. Every service gets the same
//! common actors (`Health`, `Vault`, `Sessions`, an `IssuerJwks` per trusted issuer, an
//! `Enrollment` when its certificate comes from the CA, its `AuditLog`); what a
//! product adds comes from the products registered in [`PRODUCTS`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_storage::Store;
use ractor::SpawnErr;

use crate::audit::{AuditArgs, AuditHandle, AuditLog, AuditMsg};
use crate::config::SupervisionConfig;
use crate::federation::ca::enroll::{Enrollment, EnrollmentMsg};
use crate::federation::{CaPeer, Federation};
use crate::health::{Health, HealthArgs, HealthHandle, HealthMsg};
use crate::issuer_jwks::{IssuerJwks, IssuerJwksArgs, IssuerJwksHandle, IssuerJwksMsg};
use crate::product::{ProductActors, ServiceBuild, ServiceParts};
pub use crate::product::{ServiceActors, SuiteArgs};
use crate::service::ServiceName;
use crate::sessions::{Sessions, SessionsArgs, SessionsHandle, SessionsMsg};
use crate::slot::Slot;
use crate::supervisor::child::{ActorSpec, ChildSpec};
use crate::supervisor::{SupervisorArgs, SupervisorHandle, SupervisorSpec};
use crate::vault::{Vault, VaultArgs, VaultHandle, VaultMsg};

/// Every product, each registered once: the service it runs in comes from the product. A new
/// product is a folder of its own (`actors/src/<product>/`) and one line here.
pub const PRODUCTS: [ProductActors; 8] = [
    crate::identity::authz::ACTORS,
    crate::identity::idp::ACTORS,
    crate::identity::rp::ACTORS,
    crate::identity::rs::ACTORS,
    crate::identity::spa::ACTORS,
    crate::jose::ACTORS,
    crate::kms::ACTORS,
    crate::ca::ACTORS,
];

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
    mut stores: Vec<(ServiceName, Arc<Store>)>,
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
    // Built in suite order, so a service finds the handles of those it depends on.
    stores.sort_by_key(|(s, _)| ServiceName::ALL.iter().position(|a| a == s));
    for (service, store) in stores {
        let (spec, mut actors) = service_tree(service, &store, args, &federation, &services, cfg)?;
        actors.peers = federation.breakers_of(service);
        service_specs.push(spec);
        services.insert(service, actors);
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
    store: &Arc<Store>,
    args: &SuiteArgs,
    federation: &Federation,
    built: &BTreeMap<ServiceName, ServiceActors>,
    cfg: &SupervisionConfig,
) -> Result<(Arc<dyn ChildSpec>, ServiceActors), SpawnErr> {
    let name = service.as_str();
    let health_slot: Slot<HealthMsg> = Slot::new("Health");
    let vault_slot: Slot<VaultMsg> = Slot::new("Vault");
    let health = ActorSpec::<Health>::cloning(
        format!("{name}/health"),
        health_slot.clone(),
        HealthArgs { service },
        || HealthMsg::Crash,
    );
    let vault_args = VaultArgs {
        service,
        store: Arc::clone(store),
    };
    let vault = ActorSpec::<Vault>::cloning(
        format!("{name}/vault"),
        vault_slot.clone(),
        vault_args,
        || VaultMsg::Crash,
    );
    let sessions_slot: Slot<SessionsMsg> = Slot::new("Sessions");
    let sessions_args = SessionsArgs {
        login: args.browser.get(&service).cloned(),
    };
    let sessions = ActorSpec::<Sessions>::cloning(
        format!("{name}/sessions"),
        sessions_slot.clone(),
        sessions_args,
        || SessionsMsg::Crash,
    );
    let mut children: Vec<Arc<dyn ChildSpec>> =
        vec![Arc::new(health), Arc::new(vault), Arc::new(sessions)];
    let issuer_jwks = issuer_key_sets(service, args, cfg, &mut children);
    // Every service keeps a hash-chained audit log: its products' operations and the
    // service's own security events (fallbacks taken).
    let audit_slot: Slot<AuditMsg> = Slot::new("AuditLog");
    let audit_args = match &args.audit_dir {
        Some(dir) => AuditArgs::open_at(
            Arc::clone(store),
            name,
            args.audit,
            &dir.join(format!("{name}.audit")),
        ),
        None => AuditArgs::open_with(Arc::clone(store), name, args.audit),
    }
    .map(|audit| audit.shared(args.shared_store))
    .map_err(|e| SpawnErr::StartupFailed(format!("{name} audit log: {e}").into()))?;
    let audit = AuditHandle::new(audit_slot.clone(), &audit_args, cfg.ask_timeout);
    let enrollment = federation
        .ca
        .as_ref()
        .map(|ca| CaPeer::new(ca.clone()))
        .zip(args.enrollment.as_ref())
        .and_then(|(ca, plan)| plan.args(service, &ca, &audit));
    if let Some(enrollment) = enrollment {
        children.push(Arc::new(ActorSpec::<Enrollment>::cloning(
            format!("{name}/enroll"),
            Slot::<EnrollmentMsg>::new("Enrollment"),
            enrollment,
            || EnrollmentMsg::Crash,
        )));
    }
    children.push(Arc::new(ActorSpec::<AuditLog>::cloning(
        format!("{name}/audit"),
        audit_slot,
        audit_args,
        || AuditMsg::Crash,
    )));

    let ctx = ServiceBuild {
        service,
        store,
        args,
        config: cfg,
        federation,
        built,
        audit: &audit,
    };
    let mut parts = ServiceParts::default();
    for product in PRODUCTS.iter().filter(|p| p.service == service) {
        (product.build)(&ctx, &mut parts)?;
    }
    children.append(&mut parts.children);
    let spec = SupervisorSpec::new(SupervisorArgs {
        name: name.into(),
        kind: "ServiceSupervisor",
        service: name,
        children,
        config: cfg.clone(),
    });
    let actors = ServiceActors {
        health: HealthHandle::new(health_slot, cfg.ask_timeout),
        vault: VaultHandle::new(vault_slot, cfg.ask_timeout),
        issuer_jwks,
        sessions: SessionsHandle::new(sessions_slot, cfg.ask_timeout),
        audit,
        peers: Vec::new(),
        products: parts.handles.build(),
    };
    Ok((Arc::new(spec), actors))
}

/// One `IssuerJwks` actor per remote trusted issuer, in configuration order.
fn issuer_key_sets(
    service: ServiceName,
    args: &SuiteArgs,
    cfg: &SupervisionConfig,
    children: &mut Vec<Arc<dyn ChildSpec>>,
) -> Vec<IssuerJwksHandle> {
    let name = service.as_str();
    let mut handles = Vec::with_capacity(args.issuers.len());
    for (i, remote) in args.issuers.iter().enumerate() {
        let slot: Slot<IssuerJwksMsg> = Slot::new("IssuerJwks");
        let snapshot = Arc::default();
        let args = IssuerJwksArgs {
            service,
            remote: remote.clone(),
            snapshot: Arc::clone(&snapshot),
        };
        let spec = ActorSpec::<IssuerJwks>::cloning(
            format!("{name}/issuer-jwks/{i}"),
            slot.clone(),
            args,
            || IssuerJwksMsg::Crash,
        );
        children.push(Arc::new(spec));
        // A refresh waits for a whole fetch, which may take longer than an ordinary ask.
        let timeout = cfg
            .ask_timeout
            .max(remote.fetch_timeout + Duration::from_secs(1));
        handles.push(IssuerJwksHandle::new(
            slot,
            snapshot,
            remote.issuer.clone(),
            remote.max_age,
            timeout,
        ));
    }
    handles
}

#[cfg(test)]
mod tests;
