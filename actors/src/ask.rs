//! The one helper every handle calls: a timeout on every ask, and timeouts, dead actors and
//! dropped replies all turned into [`Error::Unavailable`], which `http` renders as 503.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};

use crate::error::{Error, Unavailability};
use crate::slot::Slot;

/// Asks the actor currently in `slot` and waits at most `timeout` for its reply.
pub async fn ask<M, T, F>(slot: &Slot<M>, build: F, timeout: Duration) -> Result<T, Error>
where
    M: Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<Result<T, Error>>) -> M,
{
    let actor = slot.current()?;
    call(&actor, slot.kind(), build, timeout).await
}

/// Asks `actor` directly (for callers that hold an `ActorRef`, such as supervisors).
pub async fn call<M, T, F>(
    actor: &ActorRef<M>,
    kind: &'static str,
    build: F,
    timeout: Duration,
) -> Result<T, Error>
where
    M: Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<Result<T, Error>>) -> M,
{
    let unavailable = |why| Error::Unavailable { actor: kind, why };
    match actor.call(build, Some(timeout)).await {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(unavailable(Unavailability::Timeout)),
        Ok(CallResult::SenderError) | Err(_) => Err(unavailable(Unavailability::Stopped)),
    }
}

/// Runs blocking store or key work off the async task; a task that died is `actor`
/// unavailable (stopped).
pub(crate) async fn blocking<T: Send + 'static>(
    actor: &'static str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Unavailable {
            actor,
            why: Unavailability::Stopped,
        })?
}
