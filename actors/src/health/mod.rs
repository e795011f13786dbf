//! The `Health` actor: a service's liveness, answered from its mailbox so a wedged or dead
//! actor system shows up in `/admin/v1/livez` and `/admin/v1/healthz`.

mod handle;
mod msg;
mod state;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

pub use handle::HealthHandle;
pub use msg::HealthMsg;
pub use state::{HealthReport, HealthState};

use crate::service::ServiceName;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Health;

/// Start arguments.
#[derive(Debug, Clone)]
pub struct HealthArgs {
    /// The service this actor reports for.
    pub service: ServiceName,
}

impl Actor for Health {
    type Msg = HealthMsg;
    type State = HealthState;
    type Arguments = HealthArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<HealthMsg>,
        args: HealthArgs,
    ) -> Result<HealthState, ActorProcessingErr> {
        Ok(HealthState::new(args.service, Instant::now()))
    }

    async fn handle(
        &self,
        _me: ActorRef<HealthMsg>,
        msg: HealthMsg,
        st: &mut HealthState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HealthMsg::Check { reply } => {
                let _ = reply.send(Ok(st.check(Instant::now())));
            }
            HealthMsg::Crash => st.crash(),
        }
        Ok(()) // request errors travel in the reply; Err here would kill the actor
    }
}
