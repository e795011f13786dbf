//! The KMS product: elastic keys, each a ring of material keys of one algorithm; one supervised
//! `KeyRing` actor per key in use, started on demand under the KMS's keyed supervisor
//! (`kms/keyrings`); the scheduler of rotations and destructions; the service's audit log.
//!
//! # Layout
//! - [`keyring`]: the `KeyRing` actor: its domain ring, persistence, messages and handle.
//! - [`alg`]: `KmsAlg`, what an elastic key does (a new algorithm is one variant there).
//! - [`engine`]: where JWE and JWS run (here, or through the JOSE service).
//! - [`scheduler`]: the `KmsScheduler` actor (rotation policy, destruction job).

pub mod alg;
pub mod engine;
pub mod keyring;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use ractor::SpawnErr;

pub use alg::KmsAlg;
pub use engine::Engine;
pub use keyring::handle::{KeyRingsHandle, SYSTEM_SUBJECT};
pub use keyring::state::{
    ElasticKey, KeyUpdate, NewElasticKey, VersionAction, VersionView, MAX_PAYLOAD,
};
pub use keyring::{
    BatchItem, BatchOp, BatchResult, Caller, DataKey, ItemError, KeyRing, KeyRingMsg, MAX_BATCH,
};

use crate::audit::AuditHandle;
use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;
use crate::slot::Slot;
use crate::supervisor::keyed::KeyedSpec;
use scheduler::{KmsScheduler, SchedulerArgs, SchedulerMsg, CHECK_INTERVAL};

/// How long a key ring waits for work before it stops (it starts again on the next use).
const KEY_RING_IDLE: Duration = Duration::from_secs(300);

/// With a store other replicas share, how often a key ring reads itself again: a rotation,
/// version change or deletion made through another replica is used here within this time.
pub const KEY_RING_REFRESH: Duration = Duration::from_secs(1);

/// The KMS's part of the `kms` service: its audit log, the keyed supervisor of key rings and
/// the scheduler.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::Kms,
    build,
};

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let name = ctx.service.as_str();
    let audit = ctx.audit.clone();
    let engine = match ctx.federation.jose.clone() {
        Some(jose) => Engine::Jose(crate::federation::JoseEngine::new(
            jose,
            audit.clone(),
            name,
        )),
        None => Engine::Local,
    };
    let (rings, keyed) = key_rings(ctx, audit.clone(), engine, KEY_RING_IDLE);
    parts.children.push(Arc::new(keyed));
    let scheduler_args = SchedulerArgs {
        rings: rings.clone(),
        interval: CHECK_INTERVAL,
        shared: ctx
            .args
            .shared_store
            .then(|| std::sync::Arc::clone(ctx.store)),
    };
    let scheduler = Slot::<SchedulerMsg>::new("KmsScheduler");
    parts.actor::<KmsScheduler>(ctx.service, "scheduler", &scheduler, scheduler_args, || {
        SchedulerMsg::Crash
    });
    parts.handles.insert(rings);
    Ok(())
}

/// The KMS's keyed supervisor of key rings and the handle that reaches them.
fn key_rings(
    ctx: &ServiceBuild<'_>,
    audit: AuditHandle,
    engine: Engine,
    idle: Duration,
) -> (KeyRingsHandle, KeyedSpec<keyring::Rings>) {
    let name = ctx.service.as_str();
    let keyed = KeyedSpec::new(
        format!("{name}/keyrings"),
        "KeyRingSupervisor",
        name,
        keyring::Rings {
            store: Arc::clone(ctx.store),
            audit: audit.clone(),
            engine,
            service: name,
            idle,
            refresh: ctx.args.shared_store.then_some(KEY_RING_REFRESH),
        },
        ctx.config.clone(),
    );
    let handle = KeyRingsHandle::new(
        Arc::clone(ctx.store),
        audit,
        keyed.handle(ctx.config.ask_timeout),
        ctx.config.ask_timeout,
    );
    (handle, keyed)
}
