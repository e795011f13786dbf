//! The KMS (issue 5): elastic keys, each a ring of material keys of one algorithm. This step
//! holds the ring's state and its persistence; the supervised `KeyRing` actors (one per
//! elastic key, started on demand as transient children) and the HTTP API build on it.

pub mod keyring;
pub mod ring;
pub mod scheduler;

pub use keyring::{
    BatchOp, Caller, KeyRing, KeyRingMsg, KeyRingsHandle, MAX_BATCH, SYSTEM_SUBJECT,
};
pub use ring::{ElasticKey, KeyRingState, KeyUpdate, KmsAlg, NewElasticKey, VersionAction};
