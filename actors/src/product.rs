//! Products: what each one adds to the supervisor of the service it runs in. [`crate::suite`]
//! builds every service from the same common actors plus the products registered in
//! [`PRODUCTS`]; it never branches on a service's name. A new product is a folder of its own
//! (`actors/src/<product>/`) whose `Product` is listed once in [`PRODUCTS`].

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::SpawnErr;

use crate::audit::AuditHandle;
use crate::config::SupervisionConfig;
use crate::federation::Federation;
use crate::service::ServiceName;
use crate::suite::{ServiceActors, SuiteArgs};
use crate::supervisor::child::ChildSpec;

/// Every product, each listed once: the service it runs in comes from the product.
pub const PRODUCTS: [&dyn Product; 5] = [
    &crate::identity::authz::AuthzProduct,
    &crate::identity::idp::IdpProduct,
    &crate::jose::JoseProduct,
    &crate::kms::KmsProduct,
    &crate::ca::CaProduct,
];

/// One product's part of a service.
pub trait Product: Sync {
    /// The service it runs in.
    fn service(&self) -> ServiceName;
    /// Adds its actors to the service's supervisor and the handles its routes need.
    fn build(&self, ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr>;
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
    /// The service's audit log, when a product keeps one.
    pub audit: Option<AuditHandle>,
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
