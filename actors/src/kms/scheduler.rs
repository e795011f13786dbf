//! The `KmsScheduler` actor (`kms/scheduler`): every [`CHECK_INTERVAL`] it runs the rotation
//! policy and the destruction job ([`KeyRingsHandle::run_due`]) off its mailbox, one run at a
//! time. What it does is audited under [`super::SYSTEM_SUBJECT`]. Replicas sharing a store run
//! each interval's work once ([`crate::journal::run_once`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::KeyRingsHandle;

/// How often the scheduler looks for due rotations and destructions.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct KmsScheduler;

/// Start arguments: the key rings and the interval.
#[derive(Clone, Debug)]
pub struct SchedulerArgs {
    /// The KMS's key rings.
    pub rings: KeyRingsHandle,
    /// Time between runs.
    pub interval: Duration,
    /// The store other replicas share, if they do: only the replica that claims an interval
    /// runs it.
    pub shared: Option<Arc<cryptoutil_storage::Store>>,
}

/// Messages.
#[derive(Debug)]
pub enum SchedulerMsg {
    /// Look for due work.
    Tick,
    /// Fault injection.
    Crash,
}

/// A run is in progress.
#[derive(Debug)]
pub struct SchedulerState {
    args: SchedulerArgs,
    running: Arc<AtomicBool>,
}

impl Actor for KmsScheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        me.send_interval(args.interval, || SchedulerMsg::Tick);
        Ok(SchedulerState {
            args,
            running: Arc::default(),
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        st: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Tick => {
                let rings = st.args.rings.clone();
                if st.running.swap(true, Ordering::AcqRel) {
                    return Ok(()); // the previous run is still going
                }
                let running = Arc::clone(&st.running);
                let (shared, interval) = (st.args.shared.clone(), st.args.interval);
                tokio::spawn(async move {
                    let now = crate::now_unix();
                    let ours = match shared {
                        None => true,
                        Some(store) => {
                            let claimed = tokio::task::spawn_blocking(move || {
                                crate::journal::run_once(&store, "kms-scheduler", interval, now)
                            })
                            .await;
                            match claimed {
                                Ok(Ok(ours)) => {
                                    if !ours {
                                        tracing::debug!(
                                            "another replica runs this interval's kms work"
                                        );
                                    }
                                    ours
                                }
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "claiming the kms scheduler's run failed");
                                    false
                                }
                                Err(_) => false,
                            }
                        }
                    };
                    if ours {
                        match rings.run_due(now).await {
                            Ok((rotated, destroyed))
                                if !rotated.is_empty() || !destroyed.is_empty() =>
                            {
                                tracing::info!(?rotated, ?destroyed, "kms scheduler run");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "kms scheduler run failed"),
                        }
                    }
                    running.store(false, Ordering::Release);
                });
            }
            SchedulerMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: KmsScheduler crash requested");
                }
            }
        }
        Ok(())
    }
}
