//! A supervisor of keyed children started on demand: one actor per key, such as a KMS key ring
//! per elastic key in use (and, next, a CA signer per issuing CA). It owns the directory of
//! its running children: handles read the directory without a mailbox hop and ask the
//! supervisor only to start a child that is not running. A child that fails is restarted after
//! the policy's backoff (and escalates like any child past the bound); a child that stops on
//! its own (idle, destroyed) leaves the directory and the tree.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::time::Instant;

use super::child::{BoxFuture, ChildSpec, ChildStats};
use super::policy::{Decision, History};
use super::tree::SupervisionNode;
use crate::config::SupervisionConfig;
use crate::error::{Error, Unavailability};
use crate::slot::Slot;

/// What a keyed supervisor starts: the children's actor, their key, and how to make one.
pub trait Keyed: Send + Sync + 'static {
    /// The children's behaviour.
    type Child: Actor;
    /// What tells children apart.
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;

    /// The children's kind in the tree and in metrics (`KeyRing`).
    fn kind(&self) -> &'static str;
    /// A child's name in the tree (`kms/keyring/<id>`).
    fn name(&self, key: &Self::Key) -> String;
    /// Blocking (runs off the mailbox): whether `key` exists; children start only for keys
    /// that do, so an unknown key starts nothing.
    fn exists(&self, key: &Self::Key) -> Result<bool, Error>;
    /// A child's behaviour and start arguments.
    fn make(&self, key: &Self::Key) -> (Self::Child, <Self::Child as Actor>::Arguments);
    /// The message that makes a child panic (fault injection).
    fn crash_message(&self) -> <Self::Child as Actor>::Msg;
}

type ChildMsg<K> = <<K as Keyed>::Child as Actor>::Msg;
type Directory<K> = Arc<RwLock<HashMap<<K as Keyed>::Key, ActorRef<ChildMsg<K>>>>>;

/// Messages of a keyed supervisor.
pub enum KeyedMsg<K: Keyed> {
    /// The running child of `key`, started if needed; `KeyNotFound` if the key does not exist.
    Open {
        /// The key.
        key: K::Key,
        /// The child.
        reply: RpcReplyPort<Result<ActorRef<ChildMsg<K>>, Error>>,
    },
    /// Internal: whether `key` exists was checked off the mailbox.
    Checked {
        /// The key.
        key: K::Key,
        /// Whether it exists.
        exists: Result<bool, Error>,
        /// Whom to answer.
        reply: RpcReplyPort<Result<ActorRef<ChildMsg<K>>, Error>>,
    },
    /// Forget the child of `key` now (it stops on its own, for good: a destroyed key), so the
    /// next open finds the key gone instead of a stopping actor.
    Forget {
        /// The key.
        key: K::Key,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Internal: a failed child's backoff has elapsed.
    Restart {
        /// The key.
        key: K::Key,
    },
    /// The subtree, for the supervision tree.
    Snapshot {
        /// The children's nodes.
        reply: RpcReplyPort<Result<Vec<SupervisionNode>, Error>>,
    },
    /// Fault injection: the child whose name ends with `name` panics.
    Crash {
        /// The last part of the child's name (its key).
        name: String,
    },
}

/// The behaviour (empty).
pub struct KeyedSupervisor<K>(PhantomData<fn() -> K>);

impl<K> Default for KeyedSupervisor<K> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// Start arguments.
pub struct KeyedArgs<K: Keyed> {
    keyed: Arc<K>,
    directory: Directory<K>,
    service: &'static str,
    config: SupervisionConfig,
}

impl<K: Keyed> Clone for KeyedArgs<K> {
    fn clone(&self) -> Self {
        Self {
            keyed: Arc::clone(&self.keyed),
            directory: Arc::clone(&self.directory),
            service: self.service,
            config: self.config.clone(),
        }
    }
}

/// One child.
struct Child<K: Keyed> {
    actor: Option<ActorRef<ChildMsg<K>>>,
    history: History,
    restarts: u64,
}

/// The children by key.
pub struct KeyedState<K: Keyed> {
    args: KeyedArgs<K>,
    children: HashMap<K::Key, Child<K>>,
}

impl<K: Keyed> Actor for KeyedSupervisor<K> {
    type Msg = KeyedMsg<K>;
    type State = KeyedState<K>;
    type Arguments = KeyedArgs<K>;

    async fn pre_start(
        &self,
        _me: ActorRef<KeyedMsg<K>>,
        args: KeyedArgs<K>,
    ) -> Result<KeyedState<K>, ActorProcessingErr> {
        // A new incarnation starts with no children: they start again on their next use.
        write(&args.directory).clear();
        Ok(KeyedState {
            args,
            children: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        me: ActorRef<KeyedMsg<K>>,
        st: &mut KeyedState<K>,
    ) -> Result<(), ActorProcessingErr> {
        write(&st.args.directory).clear();
        me.stop_children_and_wait(
            Some("supervisor stopping".into()),
            Some(st.args.config.ask_timeout),
        )
        .await;
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<KeyedMsg<K>>,
        msg: KeyedMsg<K>,
        st: &mut KeyedState<K>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KeyedMsg::Open { key, reply } => {
                if let Some(actor) = st.running(&key) {
                    let _ = reply.send(Ok(actor));
                    return Ok(());
                }
                let (keyed, me) = (Arc::clone(&st.args.keyed), me.clone());
                tokio::task::spawn_blocking(move || {
                    let exists = keyed.exists(&key);
                    let _ = me.cast(KeyedMsg::Checked { key, exists, reply });
                });
            }
            KeyedMsg::Checked { key, exists, reply } => {
                let answer = match (st.running(&key), exists) {
                    (Some(actor), _) => Ok(actor),
                    (None, Err(e)) => Err(e),
                    (None, Ok(false)) => Err(Error::KeyNotFound),
                    (None, Ok(true)) => st.start(&me, &key).await,
                };
                let _ = reply.send(answer);
            }
            KeyedMsg::Restart { key } => {
                if st.children.get(&key).is_some_and(|c| c.actor.is_none()) {
                    match st.start(&me, &key).await {
                        Ok(_) => {
                            if let Some(c) = st.children.get_mut(&key) {
                                c.restarts += 1;
                            }
                            crate::metrics::actor_restarted(st.args.service, st.args.keyed.kind());
                        }
                        Err(e) => st.failed(&me, key, &e.to_string())?,
                    }
                }
            }
            KeyedMsg::Forget { key, reply } => {
                st.down(&key);
                st.children.remove(&key);
                let _ = reply.send(Ok(()));
            }
            KeyedMsg::Snapshot { reply } => {
                let _ = reply.send(Ok(st.nodes()));
            }
            KeyedMsg::Crash { name } => {
                let found = st.children.iter().find(|(k, _)| k.to_string() == name);
                if let Some(actor) = found.and_then(|(_, c)| c.actor.as_ref()) {
                    let _ = actor.cast(st.args.keyed.crash_message());
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<KeyedMsg<K>>,
        event: SupervisionEvent,
        st: &mut KeyedState<K>,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(key) = st.key_of(&cell) {
                    st.down(&key);
                    st.failed(&me, key, &err.to_string())?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(key) = st.key_of(&cell) {
                    // Stopped on its own (idle, destroyed): forgotten until its next use.
                    tracing::debug!(
                        actor = %st.args.keyed.name(&key),
                        reason = reason.as_deref().unwrap_or("stopped"),
                        "keyed actor stopped"
                    );
                    st.down(&key);
                    st.children.remove(&key);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a caller hears when a child did not start: its own error where that says whose fault
/// it is (the key is gone; its stored record is corrupt: a 500 naming table and key, not a
/// 503 that invites a retry), else that the child is unavailable.
fn start_failure(e: &SpawnErr, kind: &'static str) -> Error {
    let own = match e {
        SpawnErr::StartupFailed(inner) => inner.downcast_ref::<Error>(),
        _ => None,
    };
    if let Some(err) = own {
        if let Error::KeyNotFound = err {
            return Error::KeyNotFound;
        }
        if let Some((table, key)) = err.corrupt_record() {
            let what = match err {
                Error::Corrupt { what, .. } => what,
                _ => "sealed record",
            };
            return Error::Corrupt {
                table,
                key: key.to_owned(),
                what,
            };
        }
    }
    Error::Unavailable {
        actor: kind,
        why: Unavailability::Stopped,
    }
}

/// Whether an actor still takes messages.
fn alive<M: ractor::Message>(actor: &ActorRef<M>) -> bool {
    ractor::ACTIVE_STATES.contains(&actor.get_status())
}

fn write<Key, M>(d: &RwLock<HashMap<Key, M>>) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, M>> {
    // A poisoned lock still holds a valid map: writers only insert and remove whole entries.
    d.write().unwrap_or_else(PoisonError::into_inner)
}

// === impl KeyedState ===

impl<K: Keyed> KeyedState<K> {
    /// The child of `key` if it runs (not one that is stopping on its own: its replacement
    /// starts now, and the old one's end is recognised as not the current child's).
    fn running(&self, key: &K::Key) -> Option<ActorRef<ChildMsg<K>>> {
        self.children
            .get(key)
            .and_then(|c| c.actor.clone())
            .filter(alive)
    }

    fn key_of(&self, cell: &ActorCell) -> Option<K::Key> {
        let id = cell.get_id();
        self.children
            .iter()
            .find(|(_, c)| c.actor.as_ref().map(|a| a.get_id()) == Some(id))
            .map(|(k, _)| k.clone())
    }

    /// Starts the child of `key`, linked to this supervisor, and publishes it.
    async fn start(
        &mut self,
        me: &ActorRef<KeyedMsg<K>>,
        key: &K::Key,
    ) -> Result<ActorRef<ChildMsg<K>>, Error> {
        let (behaviour, args) = self.args.keyed.make(key);
        let (actor, _join) = Actor::spawn_linked(None, behaviour, args, me.get_cell())
            .await
            .map_err(|e: SpawnErr| {
                tracing::warn!(actor = %self.args.keyed.name(key), error = %e, "start failed");
                start_failure(&e, self.args.keyed.kind())
            })?;
        let child = self.children.entry(key.clone()).or_insert_with(|| Child {
            actor: None,
            history: History::default(),
            restarts: 0,
        });
        child.actor = Some(actor.clone());
        write(&self.args.directory).insert(key.clone(), actor.clone());
        Ok(actor)
    }

    /// The child of `key` is gone: handles stop reaching it.
    fn down(&mut self, key: &K::Key) {
        write(&self.args.directory).remove(key);
        if let Some(c) = self.children.get_mut(key) {
            c.actor = None;
        }
    }

    /// Restart after the backoff, or escalate past the bound (this supervisor fails, its
    /// parent restarts it with no children).
    fn failed(
        &mut self,
        me: &ActorRef<KeyedMsg<K>>,
        key: K::Key,
        why: &str,
    ) -> Result<(), ActorProcessingErr> {
        let (service, kind, cfg) = (
            self.args.service,
            self.args.keyed.kind(),
            self.args.config.clone(),
        );
        let name = self.args.keyed.name(&key);
        let Some(child) = self.children.get_mut(&key) else {
            return Ok(());
        };
        match child.history.on_failure(Instant::now(), &cfg) {
            Decision::RestartAfter(delay) => {
                tracing::warn!(actor = %name, kind, reason = why, ?delay, "actor failed; restarting after a backoff");
                me.send_after(delay, move || KeyedMsg::Restart { key });
                Ok(())
            }
            Decision::Escalate => {
                crate::metrics::actor_escalated(service, kind);
                tracing::error!(actor = %name, kind, reason = why, "restart bound reached; escalating");
                write(&self.args.directory).clear();
                me.stop_children(Some("supervisor escalating".into()));
                Err(format!(
                    "{name} failed {} times within {:?}: {why}",
                    cfg.max_restarts, cfg.restart_window
                )
                .into())
            }
        }
    }

    fn nodes(&self) -> Vec<SupervisionNode> {
        let mut nodes: Vec<SupervisionNode> = self
            .children
            .iter()
            .map(|(key, c)| SupervisionNode {
                name: self.args.keyed.name(key),
                kind: self.args.keyed.kind().to_owned(),
                state: if c.actor.is_some() {
                    "running"
                } else {
                    "restarting"
                }
                .to_owned(),
                restarts: c.restarts,
                detail: None,
                children: Vec::new(),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }
}

// === KeyedSpec: the keyed supervisor as a child of a service supervisor ===

/// A child spec that starts a [`KeyedSupervisor`], and the handle that reaches its children.
pub struct KeyedSpec<K: Keyed> {
    name: String,
    kind: &'static str,
    args: KeyedArgs<K>,
    slot: Slot<KeyedMsg<K>>,
    stats: ChildStats,
}

impl<K: Keyed> KeyedSpec<K> {
    /// A keyed supervisor named `name` (`kms/keyrings`) of kind `kind`, for `service`.
    pub fn new(
        name: String,
        kind: &'static str,
        service: &'static str,
        keyed: K,
        config: SupervisionConfig,
    ) -> Self {
        Self {
            name,
            kind,
            args: KeyedArgs {
                keyed: Arc::new(keyed),
                directory: Arc::default(),
                service,
                config,
            },
            slot: Slot::new(kind),
            stats: ChildStats::default(),
        }
    }

    /// A handle to its children, asking with `timeout`.
    pub fn handle(&self, timeout: Duration) -> KeyedHandle<K> {
        KeyedHandle {
            directory: Arc::clone(&self.args.directory),
            supervisor: self.slot.clone(),
            timeout,
        }
    }
}

impl<K: Keyed> ChildSpec for KeyedSpec<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn spawn(&self, parent: ActorCell) -> BoxFuture<'_, Result<ActorCell, SpawnErr>> {
        Box::pin(async move {
            let (actor, _join) = Actor::spawn_linked(
                None,
                KeyedSupervisor::<K>::default(),
                self.args.clone(),
                parent,
            )
            .await?;
            self.slot.fill(actor.clone());
            Ok(actor.get_cell())
        })
    }

    fn vacate(&self) {
        self.slot.vacate();
        write(&self.args.directory).clear();
    }

    fn crash(&self, path: &[String]) -> Result<(), Error> {
        let actor = self.slot.current()?;
        let stopped = |_| Error::Unavailable {
            actor: self.kind,
            why: Unavailability::Stopped,
        };
        match path {
            [] => actor.stop(Some("fault injection".into())),
            [name] => actor
                .cast(KeyedMsg::Crash { name: name.clone() })
                .map_err(stopped)?,
            _ => {
                return Err(Error::NoSuchActor {
                    path: format!("{}/{}", self.name, path.join("/")),
                })
            }
        }
        Ok(())
    }

    fn stats(&self) -> &ChildStats {
        &self.stats
    }

    fn subtree(&self, timeout: Duration) -> BoxFuture<'_, Vec<SupervisionNode>> {
        let slot = self.slot.clone();
        Box::pin(async move {
            crate::ask::ask(&slot, |reply| KeyedMsg::Snapshot { reply }, timeout)
                .await
                .unwrap_or_default()
        })
    }
}

/// Reaches the children of a keyed supervisor.
pub struct KeyedHandle<K: Keyed> {
    directory: Directory<K>,
    supervisor: Slot<KeyedMsg<K>>,
    timeout: Duration,
}

impl<K: Keyed> Clone for KeyedHandle<K> {
    fn clone(&self) -> Self {
        Self {
            directory: Arc::clone(&self.directory),
            supervisor: self.supervisor.clone(),
            timeout: self.timeout,
        }
    }
}

impl<K: Keyed> std::fmt::Debug for KeyedHandle<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedHandle")
            .field("supervisor", &self.supervisor)
            .finish_non_exhaustive()
    }
}

impl<K: Keyed> KeyedHandle<K> {
    /// The running child of `key`: from the directory when it runs, else started by the
    /// supervisor; `KeyNotFound` for a key that does not exist.
    pub async fn open(&self, key: &K::Key) -> Result<ActorRef<ChildMsg<K>>, Error> {
        let running = self
            .directory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .filter(alive);
        match running {
            Some(actor) => Ok(actor),
            None => {
                self.ask(key, |key, reply| KeyedMsg::Open { key, reply })
                    .await
            }
        }
    }

    /// Forgets the child of `key`, which stops for good (see [`KeyedMsg::Forget`]).
    pub async fn forget(&self, key: &K::Key) -> Result<(), Error> {
        self.ask(key, |key, reply| KeyedMsg::Forget { key, reply })
            .await
    }

    async fn ask<T: Send + 'static>(
        &self,
        key: &K::Key,
        build: impl FnOnce(K::Key, RpcReplyPort<Result<T, Error>>) -> KeyedMsg<K>,
    ) -> Result<T, Error> {
        let key = key.clone();
        crate::ask::ask(&self.supervisor, |reply| build(key, reply), self.timeout).await
    }
}
