//! Child specs: how a supervisor starts, restarts, crashes (for fault injection) and describes
//! each of its children, whatever the child's message type.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, Message, SpawnErr};

use super::tree::SupervisionNode;
use crate::error::Error;
use crate::slot::Slot;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a supervisor needs to know about one child.
pub trait ChildSpec: Send + Sync + 'static {
    /// The child's name in the tree (`kms/health`).
    fn name(&self) -> &str;
    /// The child's kind, also the `actor_kind` metric label.
    fn kind(&self) -> &'static str;
    /// Spawns a new incarnation linked to `supervisor` and publishes it to handles.
    fn spawn(&self, supervisor: ActorCell) -> BoxFuture<'_, Result<ActorCell, SpawnErr>>;
    /// Withdraws the dead incarnation from handles.
    fn vacate(&self);
    /// Fault injection: makes the child (or, for a supervisor, the child at `path` below it)
    /// panic inside its message handler.
    fn crash(&self, path: &[String]) -> Result<(), Error>;
    /// Counters that outlive each incarnation.
    fn stats(&self) -> &ChildStats;
    /// What the child reports of its own state in the tree (see [`SupervisionNode::detail`]).
    fn detail(&self) -> Option<String> {
        None
    }
    /// The child's own children, for supervisors; empty for plain actors.
    fn subtree(&self, _timeout: Duration) -> BoxFuture<'_, Vec<SupervisionNode>> {
        Box::pin(async { Vec::new() })
    }
}

/// Per-child counters kept in the spec, so they survive restarts of the child and of its
/// supervisor.
#[derive(Debug, Default)]
pub struct ChildStats {
    restarts: AtomicU64,
}

impl ChildStats {
    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// A child spec for any actor type: a factory for its behaviour and arguments, the slot its
/// handles read, and the message that makes it panic.
pub struct ActorSpec<A: Actor> {
    name: String,
    kind: &'static str,
    slot: Slot<A::Msg>,
    make: Arc<dyn Fn() -> (A, A::Arguments) + Send + Sync>,
    crash_msg: fn() -> A::Msg,
    stats: ChildStats,
    detail: Option<Detail>,
}

/// Reads what an actor reports of its state, without asking it (the tree stays readable while
/// the actor is busy).
pub type Detail = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl<A: Actor> ActorSpec<A> {
    /// A spec named `name` of kind `kind`.
    pub fn new(
        name: String,
        kind: &'static str,
        slot: Slot<A::Msg>,
        make: impl Fn() -> (A, A::Arguments) + Send + Sync + 'static,
        crash_msg: fn() -> A::Msg,
    ) -> Self {
        Self {
            name,
            kind,
            slot,
            make: Arc::new(make),
            crash_msg,
            stats: ChildStats::default(),
            detail: None,
        }
    }

    /// A spec whose every incarnation starts with a clone of `args`; its kind is the slot's.
    pub fn cloning(
        name: String,
        slot: Slot<A::Msg>,
        args: A::Arguments,
        crash_msg: fn() -> A::Msg,
    ) -> Self
    where
        A: Default,
        A::Arguments: Clone + Sync,
    {
        let kind = slot.kind();
        Self::new(
            name,
            kind,
            slot,
            move || (A::default(), args.clone()),
            crash_msg,
        )
    }

    /// The same spec reporting `detail` in the tree.
    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = Some(detail);
        self
    }
}

impl<A: Actor> ChildSpec for ActorSpec<A>
where
    A::Msg: Message,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn spawn(&self, supervisor: ActorCell) -> BoxFuture<'_, Result<ActorCell, SpawnErr>> {
        Box::pin(async move {
            let (behaviour, args) = (self.make)();
            let (actor, _join): (ActorRef<A::Msg>, _) =
                Actor::spawn_linked(None, behaviour, args, supervisor).await?;
            self.slot.fill(actor.clone());
            Ok(actor.get_cell())
        })
    }

    fn vacate(&self) {
        self.slot.vacate();
    }

    fn stats(&self) -> &ChildStats {
        &self.stats
    }

    fn detail(&self) -> Option<String> {
        self.detail.as_ref().and_then(|d| d())
    }

    fn crash(&self, path: &[String]) -> Result<(), Error> {
        if !path.is_empty() {
            return Err(Error::NoSuchActor {
                path: format!("{}/{}", self.name, path.join("/")),
            });
        }
        let actor = self.slot.current()?;
        actor
            .cast((self.crash_msg)())
            .map_err(|_| Error::Unavailable {
                actor: self.kind,
                why: crate::error::Unavailability::Stopped,
            })
    }
}
