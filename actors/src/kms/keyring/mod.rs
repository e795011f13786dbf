//! The `KeyRing` actor: one per elastic key in use, a child of the KMS's keyed supervisor
//! (`kms/keyrings`), started on demand and stopped after `idle` without messages. Crypto runs
//! through the KMS's [`Engine`]: in the mailbox when local (one key's operations are
//! microseconds), on a task of its own through the JOSE service. A change (rotation, import,
//! update, version change) is written with its audit record off the mailbox and comes back as
//! one [`KeyRingMsg::Written`], one change at a time.
//!
//! # Layout
//! - [`state`]: the domain ring (pure: plans changes, applies them, encrypts and signs).
//! - [`store`]: loading rings and sealing their changes (blocking).
//! - [`msg`]: the messages and the typed values they answer with.
//! - [`handle`]: `KeyRingsHandle`, the KMS's handle (dispatch only).

pub mod handle;
pub mod msg;
pub mod state;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::ids::{ElasticKeyId, TenantId};
use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

pub use msg::{
    Answer, BatchItem, BatchOp, BatchResult, Caller, DataKey, ItemError, KeyRingMsg, MAX_BATCH,
};
use state::{Change, Ring};

use super::engine::{Engine, Run};
use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::error::Error;
use crate::supervisor::keyed::Keyed;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct KeyRing;

/// Start arguments.
#[derive(Clone, Debug)]
pub struct KeyRingArgs {
    store: Arc<Store>,
    audit: AuditHandle,
    engine: Engine,
    tenant: TenantId,
    id: ElasticKeyId,
    idle: Duration,
    /// With a store other replicas share: how often the ring is read again.
    refresh: Option<Duration>,
}

/// The ring and its bookkeeping.
pub struct Running {
    args: KeyRingArgs,
    ring: Ring,
    last_used: Instant,
    /// A change is being written (one at a time).
    writing: bool,
    /// Changes applied here since the start (a reload read before one of them is stale).
    generation: u64,
    /// A reload is in flight.
    reloading: bool,
}

impl Actor for KeyRing {
    type Msg = KeyRingMsg;
    type State = Running;
    type Arguments = KeyRingArgs;

    async fn pre_start(
        &self,
        me: ActorRef<KeyRingMsg>,
        args: KeyRingArgs,
    ) -> Result<Running, ActorProcessingErr> {
        let (store, tenant, id) = (
            Arc::clone(&args.store),
            args.tenant.clone(),
            args.id.clone(),
        );
        let ring = tokio::task::spawn_blocking(move || store::load(&store, &tenant, &id)).await??;
        me.send_interval(args.idle.max(Duration::from_millis(10)) / 2, || {
            KeyRingMsg::IdleCheck
        });
        if let Some(every) = args.refresh {
            me.send_interval(every.max(Duration::from_millis(10)), || KeyRingMsg::Refresh);
        }
        Ok(Running {
            args,
            ring,
            last_used: Instant::now(),
            writing: false,
            generation: 0,
            reloading: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<KeyRingMsg>,
        msg: KeyRingMsg,
        st: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(
            msg,
            KeyRingMsg::IdleCheck | KeyRingMsg::Refresh | KeyRingMsg::Reloaded { .. }
        ) {
            st.last_used = Instant::now();
        }
        let latest = Some(st.ring.key.latest);
        match msg {
            KeyRingMsg::Encrypt {
                who,
                plaintext,
                reply,
            } => {
                let run = st.args.engine.encrypt(&st.ring, plaintext);
                st.finish(st.entry(&who, "encrypt", latest), run, reply);
            }
            KeyRingMsg::Decrypt { who, jwe, reply } => {
                let entry = st.entry(&who, "decrypt", st.ring.token_version(&jwe));
                let run = st.args.engine.decrypt(&st.ring, jwe);
                st.finish(entry, run, reply);
            }
            KeyRingMsg::Sign {
                who,
                payload,
                reply,
            } => {
                let run = st.args.engine.sign(&st.ring, payload);
                st.finish(st.entry(&who, "sign", latest), run, reply);
            }
            KeyRingMsg::Verify { who, jws, reply } => {
                let entry = st.entry(&who, "verify", st.ring.token_version(&jws));
                let run = st.args.engine.verify(&st.ring, jws);
                st.finish(entry, run, reply);
            }
            KeyRingMsg::DataKey { who, reply } => {
                let run = st.args.engine.data_key(&st.ring);
                st.finish(st.entry(&who, "datakey", latest), run, reply);
            }
            KeyRingMsg::Batch {
                who,
                op,
                items,
                reply,
            } => {
                let results: Vec<BatchResult> =
                    items.iter().map(|i| batch_item(&st.ring, op, i)).collect();
                let failed = results.iter().filter(|r| r.is_err()).count();
                let mut entry = st.entry(&who, op.audit_name(), latest);
                if failed > 0 {
                    entry.error = Some(format!("{failed} of {} items failed", results.len()));
                }
                st.audited(entry, Ok(results), reply);
            }
            KeyRingMsg::Key { reply } => {
                let _ = reply.send(Ok(st.ring.key.clone()));
            }
            KeyRingMsg::Versions { reply } => {
                let _ = reply.send(Ok(st.ring.versions()));
            }
            KeyRingMsg::PublicKeys { reply } => {
                let _ = reply.send(Ok(st.ring.public_keys()));
            }
            KeyRingMsg::Rotate { who, reply } => {
                let planned = st.ring.plan_rotation(crate::now_unix());
                let answer = Answer::with(reply, |ring| ring.key.latest);
                st.write(&me, st.entry(&who, "rotate", None), planned, answer);
            }
            KeyRingMsg::Import {
                who,
                jwe,
                import_key,
                reply,
            } => {
                let planned = Ring::open_import(&jwe, &import_key)
                    .and_then(|jwk| st.ring.plan_import(crate::now_unix(), jwk));
                let answer = Answer::with(reply, |ring| ring.key.latest);
                st.write(&me, st.entry(&who, "import", None), planned, answer);
            }
            KeyRingMsg::Export {
                who,
                version,
                recipient,
                reply,
            } => {
                let entry = st.entry(&who, "export", version.or(latest));
                st.audited(entry, st.ring.export(version, &recipient), reply);
            }
            KeyRingMsg::Update { who, update, reply } => {
                let planned = st.ring.plan_update(update);
                let answer = Answer::with(reply, |ring| ring.key.clone());
                st.write(&me, st.entry(&who, "update", None), planned, answer);
            }
            KeyRingMsg::Delete { who, reply } => {
                let planned = Ok(st.ring.plan_deletion(crate::now_unix()));
                let answer = Answer::with(reply, |ring| ring.key.clone());
                st.write(&me, st.entry(&who, "delete", None), planned, answer);
            }
            KeyRingMsg::ChangeVersion {
                who,
                version,
                action,
                reply,
            } => {
                let planned = st.ring.plan_version(version, action);
                let answer = Answer::with(reply, Ring::versions);
                let entry = st.entry(&who, action.audit_name(), Some(version));
                st.write(&me, entry, planned, answer);
            }
            KeyRingMsg::Written { change, answer } => {
                st.writing = false;
                match change {
                    Ok(change) => {
                        st.ring.apply(change);
                        st.generation += 1;
                        answer.send(Ok(&st.ring));
                    }
                    Err(e) => {
                        // The change may have lost to one this ring never saw (a restart
                        // raced it): stop, so the next use loads the ring from the store.
                        me.stop(Some("change not written; reload".into()));
                        answer.send(Err(e));
                    }
                }
            }
            KeyRingMsg::Destroy { who, now, reply } => st.destroy(&me, &who, now, reply),
            KeyRingMsg::Refresh => {
                if !st.writing && !st.reloading {
                    st.reloading = true;
                    let (store, tenant, id) = (
                        Arc::clone(&st.args.store),
                        st.args.tenant.clone(),
                        st.args.id.clone(),
                    );
                    let (me, generation) = (me.clone(), st.generation);
                    tokio::task::spawn_blocking(move || {
                        let ring = store::load(&store, &tenant, &id);
                        let _ = me.cast(KeyRingMsg::Reloaded { generation, ring });
                    });
                }
            }
            KeyRingMsg::Reloaded { generation, ring } => {
                st.reloading = false;
                if !st.writing && generation == st.generation {
                    match ring {
                        Ok(ring) => st.ring = ring,
                        Err(Error::KeyNotFound) => {
                            me.stop(Some("destroyed through another replica".into()));
                        }
                        Err(e) => {
                            tracing::warn!(key = %st.args.id, error = %e, "key ring not read again; the next refresh tries");
                        }
                    }
                }
            }
            KeyRingMsg::IdleCheck => {
                if !st.writing && st.last_used.elapsed() >= st.args.idle {
                    me.stop(Some("idle".into()));
                }
            }
            KeyRingMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: KeyRing crash requested");
                }
            }
        }
        Ok(())
    }
}

// === impl Running ===

impl Running {
    fn entry(&self, who: &str, op: &'static str, version: Option<u32>) -> AuditEntry {
        AuditEntry::new(who, self.args.tenant.as_str(), self.args.id.as_str(), op).version(version)
    }

    /// Answers `result` once its audit record is durable; if the record cannot be written, the
    /// caller gets that failure instead of the result.
    fn audited<T: Send + 'static>(
        &self,
        entry: AuditEntry,
        result: Result<T, Error>,
        reply: RpcReplyPort<Result<T, Error>>,
    ) {
        audited(&self.args.audit, entry, result, reply);
    }

    /// Audits and answers an engine's run: now, or when the JOSE service has answered (on a
    /// task of its own, so the mailbox never waits on the network).
    fn finish<T: Send + 'static>(
        &self,
        entry: AuditEntry,
        run: Run<T>,
        reply: RpcReplyPort<Result<T, Error>>,
    ) {
        match run {
            Run::Now(result) => self.audited(entry, result, reply),
            Run::Later(call) => {
                let audit = self.args.audit.clone();
                tokio::spawn(async move {
                    let result = call.await;
                    audited(&audit, entry, result, reply);
                });
            }
        }
    }

    /// Commits a planned change with its audit record (one change at a time), then applies it
    /// and answers (`Written`); a plan that failed, or came while another change is being
    /// written, is audited as a failure.
    fn write(
        &mut self,
        me: &ActorRef<KeyRingMsg>,
        entry: AuditEntry,
        planned: Result<Change, Error>,
        answer: Answer,
    ) {
        let planned = if self.writing {
            Err(Error::Conflict {
                what: "another change of this key is being written",
            })
        } else {
            planned.and_then(|change| {
                store::writes(&self.args.store, &self.ring, &change).map(|w| (change, w))
            })
        };
        match planned {
            Err(e) => {
                let entry = entry.outcome(&Err::<(), _>(&e));
                self.args.audit.submit(
                    entry,
                    Vec::new(),
                    Completion::new(move |audited| answer.send(Err(audited.err().unwrap_or(e)))),
                );
            }
            Ok((change, writes)) => {
                self.writing = true;
                let entry = match &change {
                    Change::NewVersion { material, .. } => entry.version(Some(material.version)),
                    _ => entry,
                };
                let me = me.clone();
                self.args.audit.submit(
                    entry,
                    writes,
                    Completion::new(move |done| {
                        let change = done.map(|()| change);
                        let _ = me.cast(KeyRingMsg::Written { change, answer });
                    }),
                );
            }
        }
    }

    /// Destroys a soft-deleted key whose time has come, with its audit record; the ring stops
    /// either way (its memory no longer matches the store).
    fn destroy(
        &mut self,
        me: &ActorRef<KeyRingMsg>,
        who: &str,
        now: u64,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        let entry = self.entry(who, "destroy", None);
        if self.writing || !self.ring.key.destruction_due(now) {
            let refused = Err(Error::Conflict {
                what: "the elastic key is not due for destruction",
            });
            self.audited(entry, refused, reply);
            return;
        }
        self.writing = true;
        let stopping = me.clone();
        self.args.audit.submit(
            entry,
            store::destruction(&self.ring),
            Completion::new(move |done| {
                stopping.stop(Some("destroyed".into()));
                let _ = reply.send(done);
            }),
        );
    }
}

/// Answers `result` once its audit record is durable (see [`Running::audited`]).
fn audited<T: Send + 'static>(
    audit: &AuditHandle,
    entry: AuditEntry,
    result: Result<T, Error>,
    reply: RpcReplyPort<Result<T, Error>>,
) {
    let entry = entry.outcome(&result);
    audit.submit(
        entry,
        Vec::new(),
        Completion::new(move |audited| {
            let _ = reply.send(audited.and(result));
        }),
    );
}

/// One item of a batch (an item's failure does not fail the batch).
fn batch_item(ring: &Ring, op: BatchOp, item: &[u8]) -> BatchResult {
    let text = || {
        std::str::from_utf8(item).map_err(|_| Error::BadRequest {
            reason: "not UTF-8",
        })
    };
    let result = match op {
        BatchOp::Encrypt => ring.encrypt(item).map(BatchItem::Jwe),
        BatchOp::Decrypt => text()
            .and_then(|t| ring.decrypt(t))
            .map(BatchItem::Plaintext),
        BatchOp::Sign => ring.sign(item).map(BatchItem::Jws),
        BatchOp::Verify => text()
            .and_then(|t| ring.verify(t))
            .map(|v| BatchItem::Verified(v.payload)),
    };
    result.map_err(|e| ItemError(e.to_string()))
}

// === the keyed supervisor's view of key rings ===

/// How the KMS's keyed supervisor (`kms/keyrings`) starts key rings.
pub struct Rings {
    /// The KMS's store.
    pub store: Arc<Store>,
    /// Its audit log.
    pub audit: AuditHandle,
    /// Where crypto runs.
    pub engine: Engine,
    /// The service name, for the tree.
    pub service: &'static str,
    /// How long a ring waits for work before it stops.
    pub idle: Duration,
    /// With a store other replicas share: how often each ring reads itself again (what
    /// another replica changed is seen here within this time).
    pub refresh: Option<Duration>,
}

impl Keyed for Rings {
    type Child = KeyRing;
    type Key = RingKey;

    fn kind(&self) -> &'static str {
        "KeyRing"
    }

    fn name(&self, key: &RingKey) -> String {
        format!("{}/keyring/{}", self.service, key.id)
    }

    fn exists(&self, key: &RingKey) -> Result<bool, Error> {
        store::exists(&self.store, &key.tenant, &key.id)
    }

    fn make(&self, key: &RingKey) -> (KeyRing, KeyRingArgs) {
        (
            KeyRing,
            KeyRingArgs {
                store: Arc::clone(&self.store),
                audit: self.audit.clone(),
                engine: self.engine.clone(),
                tenant: key.tenant.clone(),
                id: key.id.clone(),
                idle: self.idle,
                refresh: self.refresh,
            },
        )
    }

    fn crash_message(&self) -> KeyRingMsg {
        KeyRingMsg::Crash
    }
}

/// A ring's key: the elastic key id within its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RingKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The elastic key.
    pub id: ElasticKeyId,
}

impl std::fmt::Display for RingKey {
    /// The id alone: what the tree and fault injection name a ring by.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id.as_str())
    }
}

#[cfg(test)]
mod tests;
