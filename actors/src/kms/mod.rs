//! The KMS product: elastic keys, each a ring of material keys of one algorithm, one supervised
//! `KeyRing` actor per key in use (started on demand as transient children of the KMS service
//! supervisor), the scheduler of rotations and destructions, and the service's audit log.

pub mod keyring;
pub mod ring;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use ractor::SpawnErr;

pub use keyring::{
    BatchOp, Caller, KeyRing, KeyRingMsg, KeyRingsHandle, MAX_BATCH, SYSTEM_SUBJECT,
};
pub use ring::{ElasticKey, KeyRingState, KeyUpdate, KmsAlg, NewElasticKey, VersionAction};

use crate::audit::{AuditArgs, AuditHandle, AuditLog, AuditMsg};
use crate::product::{Product, ServiceBuild, ServiceParts};
use crate::service::ServiceName;
use crate::slot::Slot;
use crate::supervisor::child::ActorSpec;
use scheduler::{KmsScheduler, SchedulerArgs, SchedulerMsg, CHECK_INTERVAL};

/// How long a key ring waits for work before it stops (it starts again on the next use).
const KEY_RING_IDLE: Duration = Duration::from_secs(300);

/// The KMS's part of the `kms` service.
#[derive(Debug)]
pub struct KmsProduct;

impl Product for KmsProduct {
    fn service(&self) -> ServiceName {
        ServiceName::Kms
    }

    fn build(&self, ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
        let name = ctx.service.as_str();
        let slot: Slot<AuditMsg> = Slot::new("AuditLog");
        let audit_args = AuditArgs::open(Arc::clone(ctx.store), name)
            .map_err(|e| SpawnErr::StartupFailed(format!("{name} audit log: {e}").into()))?;
        let audit = AuditHandle::new(slot.clone(), &audit_args, ctx.config.ask_timeout);
        parts.children.push(Arc::new(ActorSpec::new(
            format!("{name}/audit"),
            "AuditLog",
            slot,
            move || (AuditLog, audit_args.clone()),
            || AuditMsg::Crash,
        )));
        let mut rings = KeyRingsHandle::new(
            Arc::clone(ctx.store),
            audit.clone(),
            ctx.supervisor.clone(),
            name,
            KEY_RING_IDLE,
            ctx.config.ask_timeout,
        );
        if let Some(jose) = ctx.federation.jose.clone() {
            rings = rings.with_jose(crate::federation::JoseEngine::new(jose));
        }
        let scheduler_args = SchedulerArgs {
            rings: rings.clone(),
            interval: CHECK_INTERVAL,
        };
        parts.children.push(Arc::new(ActorSpec::new(
            format!("{name}/scheduler"),
            "KmsScheduler",
            Slot::<SchedulerMsg>::new("KmsScheduler"),
            move || (KmsScheduler, scheduler_args.clone()),
            || SchedulerMsg::Crash,
        )));
        parts.handles.insert(rings);
        parts.audit = Some(audit);
        Ok(())
    }
}
