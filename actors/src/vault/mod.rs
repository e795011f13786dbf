//! The `Vault` actor: the single owner of a service's store, so the redb writer lock is never
//! contended from async code. Store calls run in `spawn_blocking`; the reply is sent from that
//! task, so the mailbox never waits on disk.

mod handle;
mod msg;
mod state;

use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use handle::VaultHandle;
pub use msg::{Secret, VaultMsg};
pub use state::{VaultState, VaultStatus};

use crate::service::ServiceName;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Vault;

/// Start arguments: the unsealed store, shared with later incarnations.
#[derive(Debug, Clone)]
pub struct VaultArgs {
    /// The service.
    pub service: ServiceName,
    /// Its unsealed store.
    pub store: Arc<Store>,
}

impl Actor for Vault {
    type Msg = VaultMsg;
    type State = VaultState;
    type Arguments = VaultArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<VaultMsg>,
        args: VaultArgs,
    ) -> Result<VaultState, ActorProcessingErr> {
        Ok(VaultState::new(args.service, args.store))
    }

    async fn handle(
        &self,
        _me: ActorRef<VaultMsg>,
        msg: VaultMsg,
        st: &mut VaultState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            VaultMsg::Status { reply } => {
                let _ = reply.send(Ok(st.status()));
            }
            VaultMsg::PutSecret { key, value, reply } => {
                let store = st.store();
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(VaultState::put_secret(&store, &key, &value));
                });
            }
            VaultMsg::GetSecret { key, reply } => {
                let store = st.store();
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(VaultState::get_secret(&store, &key));
                });
            }
            VaultMsg::Crash => st.crash(),
        }
        Ok(())
    }
}
