//! What a product is to the suite: the [`ProductActors`] it exports (what it adds to the supervisor
//! of the service it runs in), what it is built from ([`ServiceBuild`], [`SuiteArgs`]) and what
//! it hands back ([`ServiceParts`], the handles its routes read from [`ServiceActors`]).
//! [`crate::suite`] composes the registered products; it never branches on a service's name.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::{Actor, SpawnErr};

use crate::audit::AuditHandle;
use crate::config::SupervisionConfig;
use crate::federation::{BreakerHandle, Federation, PeerSettings};
use crate::health::HealthHandle;
use crate::issuer_jwks::{IssuerJwksHandle, RemoteIssuer};
use crate::service::ServiceName;
use crate::sessions::{BrowserLogin, SessionsHandle};
use crate::slot::Slot;
use crate::supervisor::child::{ActorSpec, ChildSpec};
use crate::vault::VaultHandle;

/// One product's part of a service: the service it runs in, and what it adds to that
/// service's supervisor and handles. Each product exports one (`ACTORS`); the suite lists them.
#[derive(Debug, Clone, Copy)]
pub struct ProductActors {
    /// The service it runs in.
    pub service: ServiceName,
    /// Adds its actors to the service's supervisor and the handles its routes need.
    pub build: fn(&ServiceBuild<'_>, &mut ServiceParts) -> Result<(), SpawnErr>,
}

/// What a product is built from.
pub struct ServiceBuild<'a> {
    /// The service.
    pub service: ServiceName,
    /// Its store.
    pub store: &'a Arc<Store>,
    /// The suite's settings.
    pub args: &'a SuiteArgs,
    /// Restart policy and ask timeout.
    pub config: &'a SupervisionConfig,
    /// The federated peers, through their breakers.
    pub federation: &'a Federation,
    /// Services of this process built before this one (in [`ServiceName::ALL`] order).
    pub built: &'a BTreeMap<ServiceName, ServiceActors>,
    /// The service's hash-chained audit log (every service keeps one).
    pub audit: &'a AuditHandle,
}

impl ServiceBuild<'_> {
    /// A handle another service of this process registered (identity-idp reaches
    /// identity-authz in memory when both run here).
    pub fn handle_of<T: Any + Clone + Send + Sync>(&self, service: ServiceName) -> Option<T> {
        self.built.get(&service).and_then(|a| a.get::<T>()).cloned()
    }
}

/// What products add to a service.
#[derive(Default)]
pub struct ServiceParts {
    /// Children of the service's supervisor, started in order after the common ones.
    pub children: Vec<Arc<dyn ChildSpec>>,
    /// Typed handles for the product's routes.
    pub handles: HandlesBuilder,
}

impl ServiceParts {
    /// Adds actor `A` to the service's supervisor as `<service>/<name>`, every incarnation
    /// started from a clone of `args` and published in `slot`.
    pub fn actor<A>(
        &mut self,
        service: ServiceName,
        name: &str,
        slot: &Slot<A::Msg>,
        args: A::Arguments,
        crash: fn() -> A::Msg,
    ) where
        A: Actor + Default,
        A::Arguments: Clone + Sync,
    {
        let name = format!("{service}/{name}");
        let spec = ActorSpec::<A>::cloning(name, slot.clone(), args, crash);
        self.children.push(Arc::new(spec));
    }
}

/// Handles by type, filled while a service is built.
#[derive(Default)]
pub struct HandlesBuilder(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl HandlesBuilder {
    /// Registers `handle` (one per type: a second replaces the first).
    pub fn insert<T: Any + Clone + Send + Sync>(&mut self, handle: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(handle));
    }

    /// The frozen set.
    pub fn build(self) -> Handles {
        Handles(Arc::new(self.0))
    }
}

/// A service's product handles by type: `handles.get::<KeyRingsHandle>()`.
#[derive(Clone, Default)]
pub struct Handles(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Handles {
    /// The handle of type `T`, if a product of this service registered one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles")
            .field("count", &self.0.len())
            .finish()
    }
}

/// Handles to one service's actors.
#[derive(Clone, Debug)]
pub struct ServiceActors {
    /// Liveness.
    pub health: HealthHandle,
    /// The store's owner.
    pub vault: VaultHandle,
    /// The cached key sets of the remote trusted issuers, in configuration order.
    pub issuer_jwks: Vec<IssuerJwksHandle>,
    /// Browser sign-ins and sessions.
    pub sessions: SessionsHandle,
    /// The service's hash-chained audit log.
    pub audit: AuditHandle,
    /// The breakers of the federated peers this service calls.
    pub peers: Vec<BreakerHandle>,
    /// The handles its products registered, by type.
    pub products: Handles,
}

impl ServiceActors {
    /// The handle of type `T` a product of this service registered.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.products.get::<T>()
    }
}

/// Products' settings by type, as the binary read them from the configuration.
pub type Settings = Handles;

/// What the tree needs besides stores.
#[derive(Debug, Clone, Default)]
pub struct SuiteArgs {
    /// Trusted issuers whose keys are fetched: every service gets an `IssuerJwks` actor for each.
    pub issuers: Vec<RemoteIssuer>,
    /// Products' own settings by type (identity-authz's `AuthzConfig`, ...).
    pub settings: Settings,
    /// How each service signs browsers in (services without an entry have no browser sign-in).
    pub browser: BTreeMap<ServiceName, BrowserLogin>,
    /// The federated peers (`federation:`), each with a `Breaker` under `federation`.
    pub peers: Vec<PeerSettings>,
    /// The `iss` of identity-authz's tokens, when it is a federated peer.
    pub identity_issuer: String,
    /// Certificates from the CA, when it is a federated peer.
    pub enrollment: Option<crate::federation::ca::enroll::EnrollmentPlan>,
    /// The audit files' segment size and retention (`audit:`).
    pub audit: crate::audit::file::Segments,
    /// The directory of the audit files (`<dir>/<service>.audit`); `None`: beside each
    /// store's file (`<store>.audit`), which only a redb store has.
    pub audit_dir: Option<std::path::PathBuf>,
    /// The stores are shared with other replicas of the services (PostgreSQL): audit records
    /// all go to the store, key rings reload what other replicas changed.
    pub shared_store: bool,
}
