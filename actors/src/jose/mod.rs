//! The JOSE product: the `JoseKeys` actor (the JOSE service's keys per tenant) and the JOSE
//! engine it shares with the KMS's `internal_crypto`.
//!
//! # Layout
//! - [`keys`]: the `JoseKeys` actor.
//! - [`engine`]: JWE/JWS with a key brought by the caller (the JOSE API's `jwk` form).

pub mod engine;
pub mod keys;

use std::sync::Arc;

use ractor::SpawnErr;

pub use keys::{JoseKeys, JoseKeysArgs, JoseKeysHandle, JoseKeysMsg, KeySpec, KeyView};

use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;
use crate::slot::Slot;

/// The JOSE product's part of the `jose` service: the `JoseKeys` actor.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::Jose,
    build,
};

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let (service, store) = (ctx.service, Arc::clone(ctx.store));
    let slot: Slot<JoseKeysMsg> = Slot::new("JoseKeys");
    let args = JoseKeysArgs { service, store };
    parts.actor::<JoseKeys>(service, "keys", &slot, args, || JoseKeysMsg::Crash);
    parts
        .handles
        .insert(JoseKeysHandle::new(slot, ctx.config.ask_timeout));
    Ok(())
}
