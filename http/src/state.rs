//! What handlers see: actor handles and immutable runtime facts, nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cryptoutil_actors::suite::ServiceActors;
use cryptoutil_actors::supervisor::SupervisorHandle;
use cryptoutil_actors::ServiceName;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::auth::Authenticator;

/// State of a service's public router: shared, so the per-request clone axum makes is one
/// reference count.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    /// The state of `app`.
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// What a service's handlers see.
pub struct App {
    /// Which service this is.
    pub service: ServiceName,
    /// Its actors.
    pub actors: ServiceActors,
    /// Set once every listener of the process is serving.
    pub readiness: Readiness,
    /// The credential seam.
    pub auth: Arc<dyn Authenticator>,
}

/// State of a service's admin router.
#[derive(Clone)]
pub struct AdminState {
    /// The public side's state (service, actors, readiness).
    pub app: AppState,
    /// The root of the process's supervision tree.
    pub root: SupervisorHandle,
    /// Renders `/admin/v1/metrics`.
    pub metrics: PrometheusHandle,
    /// Flipped to true by `POST /admin/v1/shutdown`.
    pub shutdown: Arc<watch::Sender<bool>>,
    /// Whether aws-lc-rs runs its FIPS 140-3 module.
    pub fips: bool,
    /// Whether `POST /admin/v1/faults/crash` is mounted.
    pub fault_injection: bool,
}

/// A flag the process sets once all its listeners serve.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks ready.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Marks not ready (draining).
    pub fn set_draining(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Is it?
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
