//! The supervisor: one actor type for the root and for each service. It starts its children
//! linked, restarts a failed child after an exponential backoff, and escalates to its own parent
//! (by failing) when a child fails more than `max_restarts` times within `restart_window`.
//!
//! Children given at start are permanent: restarted whenever they stop. Children started later
//! ([`SupervisorHandle::start_child`], e.g. one actor per key, on demand) are transient:
//! restarted when they fail, forgotten when they stop on their own (idle). A supervisor that is
//! itself restarted starts its permanent children only; transient ones start again on demand.
//!
//! Root supervisor -> one supervisor per service -> domain actors (`Health`, `Vault`, ...).

pub mod child;
pub mod keyed;
pub mod policy;
pub mod tree;

use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::time::Instant;

use self::child::{BoxFuture, ChildSpec, ChildStats};
use self::policy::{Decision, History};
use self::tree::SupervisionNode;
use crate::config::SupervisionConfig;
use crate::error::Error;
use crate::slot::Slot;

/// The supervisor behaviour (empty, as every actor here).
#[derive(Debug, Default)]
pub struct Supervisor;

/// Messages a supervisor handles.
pub enum SupervisorMsg {
    /// Describe this supervisor's subtree.
    Snapshot {
        /// Where the tree goes.
        reply: RpcReplyPort<Result<SupervisionNode, Error>>,
    },
    /// Fault injection: make the child at `path` (relative to this supervisor) panic; an empty
    /// path makes this supervisor panic.
    Crash {
        /// Child names below this supervisor.
        path: Vec<String>,
        /// Answered once the crash message is sent, when the caller wants to know.
        reply: Option<RpcReplyPort<Result<(), Error>>>,
    },
    /// Internal: the backoff for child `id` has elapsed.
    Restart {
        /// The child's id.
        id: u64,
    },
    /// Start a transient child (a no-op if a child of that name is running or restarting).
    StartChild {
        /// The child.
        spec: Arc<dyn ChildSpec>,
        /// Answered once it runs.
        reply: RpcReplyPort<Result<(), Error>>,
    },
}

/// Whether a child comes back after it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always (the children given at start).
    Permanent,
    /// Only after a failure; a child that stops on its own is forgotten.
    Transient,
}

/// What a supervisor is started with.
#[derive(Clone)]
pub struct SupervisorArgs {
    /// Its name in the tree (`kms`, `root`).
    pub name: String,
    /// Its kind in the tree (`RootSupervisor`, `ServiceSupervisor`).
    pub kind: &'static str,
    /// The `service` metric label of its children (`kms`; `suite` for the root).
    pub service: &'static str,
    /// Its children, started in order.
    pub children: Vec<Arc<dyn ChildSpec>>,
    /// Restart policy and ask timeout.
    pub config: SupervisionConfig,
}

/// A supervisor's state: one entry per child.
pub struct SupervisorState {
    name: String,
    kind: &'static str,
    service: &'static str,
    config: SupervisionConfig,
    entries: Vec<Entry>,
    next_id: u64,
}

struct Entry {
    id: u64,
    restart: Restart,
    spec: Arc<dyn ChildSpec>,
    cell: Option<ActorCell>,
    history: History,
    state: ChildState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Running,
    Restarting,
    Failed,
}

impl ChildState {
    fn as_str(self) -> &'static str {
        match self {
            ChildState::Running => "running",
            ChildState::Restarting => "restarting",
            ChildState::Failed => "failed",
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut entries = Vec::with_capacity(args.children.len());
        for (id, spec) in (0u64..).zip(args.children) {
            let cell = spec.spawn(myself.get_cell()).await?;
            entries.push(Entry {
                id,
                restart: Restart::Permanent,
                spec,
                cell: Some(cell),
                history: History::default(),
                state: ChildState::Running,
            });
        }
        Ok(SupervisorState {
            name: args.name,
            kind: args.kind,
            service: args.service,
            config: args.config,
            next_id: entries.len() as u64,
            entries,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for e in &st.entries {
            e.spec.vacate();
        }
        myself
            .stop_children_and_wait(
                Some("supervisor stopping".into()),
                Some(st.config.ask_timeout),
            )
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Snapshot { reply } => st.snapshot(reply),
            SupervisorMsg::Crash { path, reply } => {
                let result = st.crash(&myself, &path);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            SupervisorMsg::Restart { id } => st.restart(&myself, id).await?,
            SupervisorMsg::StartChild { spec, reply } => {
                let _ = reply.send(st.start_child(&myself, spec).await);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                st.child_down(&myself, &cell, &err.to_string(), true)
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => st.child_down(
                &myself,
                &cell,
                reason.as_deref().unwrap_or("stopped"),
                false,
            ),
            _ => Ok(()),
        }
    }
}

// === impl SupervisorState ===

impl SupervisorState {
    fn child_down(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        cell: &ActorCell,
        why: &str,
        failed: bool,
    ) -> Result<(), ActorProcessingErr> {
        let actor = cell.get_id();
        let Some(index) = self
            .entries
            .iter()
            .position(|e| e.cell.as_ref().map(ActorCell::get_id) == Some(actor))
        else {
            return Ok(()); // an incarnation we already replaced
        };
        let Some(entry) = self.entries.get_mut(index) else {
            return Ok(());
        };
        entry.spec.vacate();
        entry.cell = None;
        if entry.restart == Restart::Transient && !failed {
            tracing::debug!(
                actor = entry.spec.name(),
                reason = why,
                "transient actor stopped"
            );
            self.entries.remove(index);
            return Ok(());
        }
        let id = entry.id;
        self.failed(myself, id, why)
    }

    /// Starts a transient child unless one of that name is there already.
    async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: Arc<dyn ChildSpec>,
    ) -> Result<(), Error> {
        if self.entries.iter().any(|e| e.spec.name() == spec.name()) {
            return Ok(());
        }
        let cell = spec
            .spawn(myself.get_cell())
            .await
            .map_err(|_| Error::Unavailable {
                actor: spec.kind(),
                why: crate::error::Unavailability::Stopped,
            })?;
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            restart: Restart::Transient,
            spec,
            cell: Some(cell),
            history: History::default(),
            state: ChildState::Running,
        });
        Ok(())
    }

    /// Child `id` died or could not be started: restart it after a backoff, or escalate
    /// once it has failed more than the policy allows.
    fn failed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: u64,
        why: &str,
    ) -> Result<(), ActorProcessingErr> {
        let (service, cfg) = (self.service, self.config.clone());
        let Some(entry) = self.entries.iter_mut().find(|e| e.id == id) else {
            return Ok(());
        };
        match entry.history.on_failure(Instant::now(), &cfg) {
            Decision::RestartAfter(delay) => {
                entry.state = ChildState::Restarting;
                tracing::warn!(
                    actor = entry.spec.name(),
                    kind = entry.spec.kind(),
                    reason = why,
                    ?delay,
                    "actor failed; restarting after a backoff"
                );
                myself.send_after(delay, move || SupervisorMsg::Restart { id });
                Ok(())
            }
            Decision::Escalate => {
                entry.state = ChildState::Failed;
                crate::metrics::actor_escalated(service, entry.spec.kind());
                tracing::error!(
                    actor = entry.spec.name(),
                    kind = entry.spec.kind(),
                    reason = why,
                    "restart bound reached; escalating"
                );
                let message = format!(
                    "{} failed {} times within {:?}: {why}",
                    entry.spec.name(),
                    cfg.max_restarts,
                    cfg.restart_window
                );
                self.abandon_children(myself);
                Err(message.into())
            }
        }
    }

    async fn restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: u64,
    ) -> Result<(), ActorProcessingErr> {
        let service = self.service;
        let Some(entry) = self.entries.iter_mut().find(|e| e.id == id) else {
            return Ok(());
        };
        if entry.state != ChildState::Restarting {
            return Ok(());
        }
        match entry.spec.spawn(myself.get_cell()).await {
            Ok(cell) => {
                entry.cell = Some(cell);
                entry.state = ChildState::Running;
                entry.spec.stats().record_restart();
                crate::metrics::actor_restarted(service, entry.spec.kind());
                tracing::info!(
                    actor = entry.spec.name(),
                    kind = entry.spec.kind(),
                    "actor restarted"
                );
                Ok(())
            }
            Err(err) => {
                // A failed start counts as another failure of the same child.
                let reason = err.to_string();
                self.failed(myself, id, &reason)
            }
        }
    }

    /// Before this supervisor fails, its children are stopped so the parent's fresh
    /// incarnation does not run beside orphans.
    fn abandon_children(&mut self, myself: &ActorRef<SupervisorMsg>) {
        for e in &mut self.entries {
            e.spec.vacate();
            e.cell = None;
        }
        myself.stop_children(Some("supervisor escalating".into()));
    }

    fn crash(&mut self, myself: &ActorRef<SupervisorMsg>, path: &[String]) -> Result<(), Error> {
        let Some((first, rest)) = path.split_first() else {
            self.abandon_children(myself);
            // INVARIANT: fault injection only, reachable when admin.danger_fault_injection is on;
            // the panic unwinds into ractor, which reports it to this supervisor's parent.
            #[allow(clippy::panic)]
            {
                panic!(
                    "fault injection: supervisor {} panics on request",
                    self.name
                );
            }
        };
        let entry = self
            .entries
            .iter()
            .find(|e| {
                e.spec.name() == first.as_str()
                    || e.spec.name().rsplit('/').next() == Some(first.as_str())
            })
            .ok_or_else(|| Error::NoSuchActor {
                path: format!("{}/{}", self.name, path.join("/")),
            })?;
        entry.spec.crash(rest)
    }

    fn snapshot(&self, reply: RpcReplyPort<Result<SupervisionNode, Error>>) {
        // Child supervisors are asked from a task, so this mailbox never waits on another actor.
        let pending: Vec<(Arc<dyn ChildSpec>, ChildState)> = self
            .entries
            .iter()
            .map(|e| (Arc::clone(&e.spec), e.state))
            .collect();
        let (name, kind) = (self.name.clone(), self.kind);
        let timeout = self.config.ask_timeout / 2;
        tokio::spawn(async move {
            let mut children = Vec::with_capacity(pending.len());
            for (spec, state) in pending {
                children.push(SupervisionNode {
                    name: spec.name().to_owned(),
                    kind: spec.kind().to_owned(),
                    state: state.as_str().to_owned(),
                    restarts: spec.stats().restarts(),
                    detail: spec.detail(),
                    children: spec.subtree(timeout).await,
                });
            }
            let node = SupervisionNode {
                name,
                kind: kind.into(),
                state: "running".into(),
                restarts: 0,
                detail: None,
                children,
            };
            let _ = reply.send(Ok(node));
        });
    }
}

// === SupervisorSpec: a supervisor as the child of another ===

/// A child spec that starts a [`Supervisor`] with its own children.
pub struct SupervisorSpec {
    args: SupervisorArgs,
    slot: Slot<SupervisorMsg>,
    stats: ChildStats,
}

impl SupervisorSpec {
    /// A supervisor named `args.name` of kind `args.kind`.
    pub fn new(args: SupervisorArgs) -> Self {
        let slot = Slot::new(args.kind);
        Self {
            args,
            slot,
            stats: ChildStats::default(),
        }
    }

    /// A handle to whichever incarnation is current.
    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle {
            slot: self.slot.clone(),
            timeout: self.args.config.ask_timeout,
        }
    }
}

impl ChildSpec for SupervisorSpec {
    fn name(&self) -> &str {
        &self.args.name
    }

    fn kind(&self) -> &'static str {
        self.args.kind
    }

    fn spawn(&self, parent: ActorCell) -> BoxFuture<'_, Result<ActorCell, SpawnErr>> {
        Box::pin(async move {
            let (actor, _join) =
                Actor::spawn_linked(None, Supervisor, self.args.clone(), parent).await?;
            self.slot.fill(actor.clone());
            Ok(actor.get_cell())
        })
    }

    fn vacate(&self) {
        self.slot.vacate();
    }

    fn crash(&self, path: &[String]) -> Result<(), Error> {
        let actor = self.slot.current()?;
        actor
            .cast(SupervisorMsg::Crash {
                path: path.to_vec(),
                reply: None,
            })
            .map_err(|_| Error::Unavailable {
                actor: self.args.kind,
                why: crate::error::Unavailability::Stopped,
            })
    }

    fn stats(&self) -> &ChildStats {
        &self.stats
    }

    fn subtree(&self, timeout: Duration) -> BoxFuture<'_, Vec<SupervisionNode>> {
        let handle = SupervisorHandle {
            slot: self.slot.clone(),
            timeout,
        };
        Box::pin(async move {
            handle
                .snapshot()
                .await
                .map(|n| n.children)
                .unwrap_or_default()
        })
    }
}

// === SupervisorHandle ===

/// The typed handle to a supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    slot: Slot<SupervisorMsg>,
    timeout: Duration,
}

impl SupervisorHandle {
    /// Spawns a top-level (root) supervisor and returns its handle and join handle.
    pub async fn spawn_root(
        args: SupervisorArgs,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), SpawnErr> {
        let timeout = args.config.ask_timeout;
        let slot = Slot::new(args.kind);
        let (actor, join) = Actor::spawn(None, Supervisor, args).await?;
        slot.fill(actor);
        Ok((Self { slot, timeout }, join))
    }

    /// The live tree below this supervisor.
    pub async fn snapshot(&self) -> Result<SupervisionNode, Error> {
        crate::ask::ask(
            &self.slot,
            |reply| SupervisorMsg::Snapshot { reply },
            self.timeout,
        )
        .await
    }

    /// Fault injection: make the actor at `path` (e.g. `["kms", "health"]`) panic.
    pub async fn crash(&self, path: Vec<String>) -> Result<(), Error> {
        crate::ask::ask(
            &self.slot,
            |reply| SupervisorMsg::Crash {
                path,
                reply: Some(reply),
            },
            self.timeout,
        )
        .await
    }

    /// Starts `spec` as a transient child (restarted on failure, forgotten when it stops on
    /// its own); a no-op if a child of that name is already there.
    pub async fn start_child(&self, spec: Arc<dyn ChildSpec>) -> Result<(), Error> {
        crate::ask::ask(
            &self.slot,
            |reply| SupervisorMsg::StartChild { spec, reply },
            self.timeout,
        )
        .await
    }

    /// Stops the supervisor and its subtree, waiting at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        if let Ok(actor) = self.slot.current() {
            let _ = actor
                .stop_and_wait(Some("shutdown".into()), Some(grace))
                .await;
        }
        self.slot.vacate();
    }
}

#[cfg(test)]
mod tests;
