//! `Slot`: where a handle finds its actor. The supervisor fills it on every (re)start and empties
//! it when the actor dies, so handles cloned into routers stay valid across restarts.

use std::sync::{Arc, PoisonError, RwLock};

use ractor::{ActorRef, Message};

use crate::error::{Error, Unavailability};

/// A shared, replaceable reference to the current incarnation of one actor.
pub struct Slot<M: Message> {
    inner: Arc<RwLock<Option<ActorRef<M>>>>,
    kind: &'static str,
}

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            kind: self.kind,
        }
    }
}

impl<M: Message> std::fmt::Debug for Slot<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("kind", &self.kind).finish()
    }
}

impl<M: Message> Slot<M> {
    /// An empty slot for actors of `kind`.
    pub fn new(kind: &'static str) -> Self {
        Self {
            inner: Arc::new(RwLock::new(None)),
            kind,
        }
    }

    /// The current actor, or `Unavailable(Restarting)` between a crash and its restart.
    pub fn current(&self) -> Result<ActorRef<M>, Error> {
        // A poisoned lock still holds a valid Option: writers only swap it whole.
        let guard = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or(Error::Unavailable {
            actor: self.kind,
            why: Unavailability::Restarting,
        })
    }

    /// The actor kind, for errors and metrics.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub(crate) fn fill(&self, actor: ActorRef<M>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Some(actor);
    }

    pub(crate) fn vacate(&self) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
