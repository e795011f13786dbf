//! The `KeyRing` actor: one per elastic key in use, a transient child of the KMS service
//! supervisor, started on demand by [`KeyRingsHandle`] and stopped after `idle` without
//! messages. Crypto runs in the mailbox (one key's operations are microseconds); a rotation's
//! write runs on a blocking thread and comes back as a message, one rotation at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_storage::{Store, Table};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::ring::{ElasticKey, KeyRingState, KeyUpdate, NewElasticKey, Rotation};
use crate::ask::ask;
use crate::error::Error;
use crate::slot::Slot;
use crate::supervisor::child::ActorSpec;
use crate::supervisor::SupervisorHandle;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct KeyRing;

/// Start arguments.
#[derive(Clone, Debug)]
pub struct KeyRingArgs {
    store: Arc<Store>,
    tenant: String,
    id: String,
    idle: Duration,
}

/// The operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp {
    /// Items are plaintexts.
    Encrypt,
    /// Items are compact JWEs (UTF-8).
    Decrypt,
    /// Items are payloads.
    Sign,
    /// Items are compact JWSs (UTF-8).
    Verify,
}

/// Most items in one batch.
pub const MAX_BATCH: usize = 1000;

/// A data key: its plaintext and its JWE.
pub type DataKey = (Zeroizing<Vec<u8>>, String);

/// What a key ring does.
pub enum KeyRingMsg {
    /// JWE with the latest material key.
    Encrypt(Zeroizing<Vec<u8>>, RpcReplyPort<Result<String, Error>>),
    /// Opens a JWE.
    Decrypt(String, RpcReplyPort<Result<Zeroizing<Vec<u8>>, Error>>),
    /// JWS with the latest material key.
    Sign(Vec<u8>, RpcReplyPort<Result<String, Error>>),
    /// Verifies a JWS.
    Verify(String, RpcReplyPort<Result<Verified, Error>>),
    /// A new latest material key; its version.
    Rotate(RpcReplyPort<Result<u32, Error>>),
    /// The rotation's write finished.
    Rotated(
        Box<Result<Rotation, Error>>,
        RpcReplyPort<Result<u32, Error>>,
    ),
    /// The elastic key, its versions and its public JWKS.
    Describe(RpcReplyPort<Result<Value, Error>>),
    /// Changes the elastic key's settings; the updated key.
    Update(KeyUpdate, RpcReplyPort<Result<ElasticKey, Error>>),
    /// Soft-deletes the elastic key; the updated key.
    Delete(RpcReplyPort<Result<ElasticKey, Error>>),
    /// An update or deletion is written.
    KeyWritten(
        Box<Result<ElasticKey, Error>>,
        RpcReplyPort<Result<ElasticKey, Error>>,
    ),
    /// A data key: (plaintext, JWE).
    DataKey(RpcReplyPort<Result<DataKey, Error>>),
    /// Many items of one operation; a result per item.
    Batch(
        BatchOp,
        Vec<Zeroizing<Vec<u8>>>,
        RpcReplyPort<Result<Vec<Value>, Error>>,
    ),
    /// Internal: stop if idle since the last message.
    IdleCheck,
    /// Fault injection.
    Crash,
}

/// The ring and its bookkeeping.
pub struct KeyRingActorState {
    args: KeyRingArgs,
    ring: KeyRingState,
    last_used: Instant,
    /// A rotation, update or deletion is being written (one at a time).
    writing: bool,
}

impl Actor for KeyRing {
    type Msg = KeyRingMsg;
    type State = KeyRingActorState;
    type Arguments = KeyRingArgs;

    async fn pre_start(
        &self,
        me: ActorRef<KeyRingMsg>,
        args: KeyRingArgs,
    ) -> Result<KeyRingActorState, ActorProcessingErr> {
        let (store, tenant, id) = (
            Arc::clone(&args.store),
            args.tenant.clone(),
            args.id.clone(),
        );
        let ring =
            tokio::task::spawn_blocking(move || KeyRingState::load(&store, &tenant, &id)).await??;
        me.send_interval(args.idle.max(Duration::from_millis(10)) / 2, || {
            KeyRingMsg::IdleCheck
        });
        Ok(KeyRingActorState {
            args,
            ring,
            last_used: Instant::now(),
            writing: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<KeyRingMsg>,
        msg: KeyRingMsg,
        st: &mut KeyRingActorState,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(msg, KeyRingMsg::IdleCheck) {
            st.last_used = Instant::now();
        }
        match msg {
            KeyRingMsg::Encrypt(plaintext, reply) => {
                let _ = reply.send(st.ring.encrypt(&plaintext));
            }
            KeyRingMsg::Decrypt(jwe, reply) => {
                let _ = reply.send(st.ring.decrypt(&jwe));
            }
            KeyRingMsg::Sign(payload, reply) => {
                let _ = reply.send(st.ring.sign(&payload));
            }
            KeyRingMsg::Verify(jws, reply) => {
                let _ = reply.send(st.ring.verify(&jws));
            }
            KeyRingMsg::Describe(reply) => {
                let _ = reply.send(Ok(serde_json::json!({
                    "key": st.ring.key,
                    "materialkeys": st.ring.versions(),
                    "jwks": st.ring.jwks(),
                })));
            }
            KeyRingMsg::Rotate(reply) => {
                if st.writing {
                    let _ = reply.send(Err(Error::Conflict {
                        what: "rotation in progress",
                    }));
                    return Ok(());
                }
                match st.ring.plan_rotation(&st.args.store, crate::now_unix()) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok((rotation, writes)) => {
                        st.writing = true;
                        let store = Arc::clone(&st.args.store);
                        tokio::task::spawn_blocking(move || {
                            let done = store.apply(writes).map(|()| rotation).map_err(Error::from);
                            let _ = me.cast(KeyRingMsg::Rotated(Box::new(done), reply));
                        });
                    }
                }
            }
            KeyRingMsg::Rotated(done, reply) => {
                st.writing = false;
                let _ = reply.send((*done).map(|r| st.ring.apply_rotation(r)));
            }
            KeyRingMsg::Batch(op, items, reply) => {
                let _ = reply.send(Ok(items
                    .iter()
                    .map(|i| batch_item(&st.ring, op, i))
                    .collect()));
            }
            KeyRingMsg::DataKey(reply) => {
                let _ = reply.send(st.ring.data_key());
            }
            KeyRingMsg::Update(update, reply) => {
                let planned = st.ring.plan_update(&st.args.store, update);
                write_key(&me, st, planned, reply);
            }
            KeyRingMsg::Delete(reply) => {
                let planned = st.ring.plan_deletion(&st.args.store, crate::now_unix());
                write_key(&me, st, planned, reply);
            }
            KeyRingMsg::KeyWritten(done, reply) => {
                st.writing = false;
                let _ = reply.send((*done).inspect(|key| st.ring.set_key(key.clone())));
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

/// One item of a batch: `{"jwe"}`, `{"plaintext"}`, `{"jws"}`, `{"valid", "payload"}`, or
/// `{"error"}` (an item's failure does not fail the batch).
fn batch_item(ring: &KeyRingState, op: BatchOp, item: &[u8]) -> Value {
    use cryptoutil_protocols::jose::b64;
    let text = || {
        std::str::from_utf8(item).map_err(|_| Error::BadRequest {
            reason: "not UTF-8",
        })
    };
    let result = match op {
        BatchOp::Encrypt => ring
            .encrypt(item)
            .map(|jwe| serde_json::json!({ "jwe": jwe })),
        BatchOp::Decrypt => text()
            .and_then(|t| ring.decrypt(t))
            .map(|p| serde_json::json!({ "plaintext": b64::encode(&p) })),
        BatchOp::Sign => ring.sign(item).map(|jws| serde_json::json!({ "jws": jws })),
        BatchOp::Verify => text()
            .and_then(|t| ring.verify(t))
            .map(|v| serde_json::json!({ "valid": true, "payload": b64::encode(&v.payload) })),
    };
    result.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// Writes a planned change of the elastic key off the mailbox (one write at a time, like a
/// rotation), then applies it.
fn write_key(
    me: &ActorRef<KeyRingMsg>,
    st: &mut KeyRingActorState,
    planned: Result<(ElasticKey, cryptoutil_storage::backend::Write), Error>,
    reply: RpcReplyPort<Result<ElasticKey, Error>>,
) {
    if st.writing {
        let _ = reply.send(Err(Error::Conflict {
            what: "a change in progress",
        }));
        return;
    }
    match planned {
        Err(e) => {
            let _ = reply.send(Err(e));
        }
        Ok((key, write)) => {
            st.writing = true;
            let (me, store) = (me.clone(), Arc::clone(&st.args.store));
            tokio::task::spawn_blocking(move || {
                let done = store.apply(vec![write]).map(|()| key).map_err(Error::from);
                let _ = me.cast(KeyRingMsg::KeyWritten(Box::new(done), reply));
            });
        }
    }
}

/// The slot of each key ring ever reached, by (tenant, id).
type RingSlots = HashMap<(String, String), Slot<KeyRingMsg>>;

/// The KMS's elastic keys: creates and lists them, and reaches each one's `KeyRing`, starting
/// it under the service supervisor when it is not running.
#[derive(Clone)]
pub struct KeyRingsHandle {
    store: Arc<Store>,
    supervisor: SupervisorHandle,
    service: &'static str,
    slots: Arc<Mutex<RingSlots>>,
    idle: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for KeyRingsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRingsHandle")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl KeyRingsHandle {
    /// The key rings of `service`, kept under `supervisor`, stopped after `idle`.
    pub fn new(
        store: Arc<Store>,
        supervisor: SupervisorHandle,
        service: &'static str,
        idle: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            supervisor,
            service,
            slots: Arc::default(),
            idle,
            timeout,
        }
    }

    /// Creates an elastic key (and its first material key) in `tenant`.
    pub async fn create(&self, tenant: String, spec: NewElasticKey) -> Result<ElasticKey, Error> {
        let store = Arc::clone(&self.store);
        let ring = tokio::task::spawn_blocking(move || {
            KeyRingState::create(&store, &tenant, spec, crate::now_unix())
        })
        .await
        .map_err(|_| Error::Unavailable {
            actor: "KeyRing",
            why: crate::error::Unavailability::Stopped,
        })??;
        Ok(ring.key)
    }

    /// The elastic keys of `tenant`.
    pub async fn list(&self, tenant: String) -> Result<Vec<ElasticKey>, Error> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let prefix = format!("{tenant}/");
            let mut keys = Vec::new();
            for (_, plain) in store.scan_sealed(Table::KmsElasticKeys, prefix.as_bytes())? {
                keys.push(serde_json::from_slice::<ElasticKey>(&plain).map_err(|_| {
                    Error::BadRequest {
                        reason: "stored elastic key",
                    }
                })?);
            }
            Ok(keys)
        })
        .await
        .map_err(|_| Error::Unavailable {
            actor: "KeyRing",
            why: crate::error::Unavailability::Stopped,
        })?
    }

    /// The running ring of (`tenant`, `id`), started if needed; `KeyNotFound` for a key that
    /// does not exist in that tenant.
    async fn ring(&self, tenant: &str, id: &str) -> Result<Slot<KeyRingMsg>, Error> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid || tenant.contains('/') {
            return Err(Error::KeyNotFound);
        }
        let key = (tenant.to_owned(), id.to_owned());
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .entry(key)
                .or_insert_with(|| Slot::new("KeyRing"))
                .clone()
        };
        if slot.current().is_ok() {
            return Ok(slot);
        }
        let (store, t, i) = (Arc::clone(&self.store), tenant.to_owned(), id.to_owned());
        let exists = tokio::task::spawn_blocking(move || {
            store
                .get_sealed(Table::KmsElasticKeys, format!("{t}/{i}").as_bytes())
                .map(|r| r.is_some())
        })
        .await
        .map_err(|_| Error::Unavailable {
            actor: "KeyRing",
            why: crate::error::Unavailability::Stopped,
        })??;
        if !exists {
            return Err(Error::KeyNotFound);
        }
        let args = KeyRingArgs {
            store: Arc::clone(&self.store),
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            idle: self.idle,
        };
        let spec = ActorSpec::new(
            format!("{}/keyring/{id}", self.service),
            "KeyRing",
            slot.clone(),
            move || (KeyRing, args.clone()),
            || KeyRingMsg::Crash,
        );
        self.supervisor.start_child(Arc::new(spec)).await?;
        Ok(slot)
    }

    async fn call<T: Send + 'static>(
        &self,
        tenant: &str,
        id: &str,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> KeyRingMsg,
    ) -> Result<T, Error> {
        let slot = self.ring(tenant, id).await?;
        ask(&slot, build, self.timeout).await
    }

    /// JWE of `plaintext` with the latest material key.
    pub async fn encrypt(
        &self,
        tenant: &str,
        id: &str,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<String, Error> {
        self.call(tenant, id, |r| KeyRingMsg::Encrypt(plaintext, r))
            .await
    }

    /// Opens a JWE.
    pub async fn decrypt(
        &self,
        tenant: &str,
        id: &str,
        jwe: String,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.call(tenant, id, |r| KeyRingMsg::Decrypt(jwe, r)).await
    }

    /// JWS of `payload` with the latest material key.
    pub async fn sign(&self, tenant: &str, id: &str, payload: Vec<u8>) -> Result<String, Error> {
        self.call(tenant, id, |r| KeyRingMsg::Sign(payload, r))
            .await
    }

    /// Verifies a JWS.
    pub async fn verify(&self, tenant: &str, id: &str, jws: String) -> Result<Verified, Error> {
        self.call(tenant, id, |r| KeyRingMsg::Verify(jws, r)).await
    }

    /// Rotates; the new version.
    pub async fn rotate(&self, tenant: &str, id: &str) -> Result<u32, Error> {
        self.call(tenant, id, KeyRingMsg::Rotate).await
    }

    /// Changes an elastic key's settings.
    pub async fn update(
        &self,
        tenant: &str,
        id: &str,
        update: KeyUpdate,
    ) -> Result<ElasticKey, Error> {
        self.call(tenant, id, |r| KeyRingMsg::Update(update, r))
            .await
    }

    /// Soft-deletes an elastic key (destruction after [`super::ring::DELETION_DELAY`]).
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<ElasticKey, Error> {
        self.call(tenant, id, KeyRingMsg::Delete).await
    }

    /// Many items of one operation, a result per item (at most [`MAX_BATCH`]).
    pub async fn batch(
        &self,
        tenant: &str,
        id: &str,
        op: BatchOp,
        items: Vec<Zeroizing<Vec<u8>>>,
    ) -> Result<Vec<Value>, Error> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(Error::BadRequest {
                reason: "items: 1 to 1000",
            });
        }
        self.call(tenant, id, |r| KeyRingMsg::Batch(op, items, r))
            .await
    }

    /// A data key: its plaintext and its JWE under the latest material key.
    pub async fn data_key(&self, tenant: &str, id: &str) -> Result<DataKey, Error> {
        self.call(tenant, id, KeyRingMsg::DataKey).await
    }

    /// The elastic key, its material keys' metadata and its public JWKS.
    pub async fn describe(&self, tenant: &str, id: &str) -> Result<Value, Error> {
        self.call(tenant, id, KeyRingMsg::Describe).await
    }
}

#[cfg(test)]
mod tests {
    use cryptoutil_protocols::unseal;

    use super::*;
    use crate::supervisor::SupervisorArgs;
    use crate::SupervisionConfig;

    async fn eventually(mut check: impl AsyncFnMut() -> bool) {
        for _ in 0..300 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rings_start_on_demand_survive_a_crash_and_stop_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        let store = Arc::new(Store::open_redb(&dir.path().join("kms.redb"), &unseal).unwrap());
        let config = SupervisionConfig {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ask_timeout: Duration::from_secs(5),
        };
        let (sup, _join) = SupervisorHandle::spawn_root(SupervisorArgs {
            name: "kms".into(),
            kind: "ServiceSupervisor",
            service: "kms",
            children: Vec::new(),
            config,
        })
        .await
        .unwrap();
        let rings = KeyRingsHandle::new(
            Arc::clone(&store),
            sup.clone(),
            "kms",
            Duration::from_millis(300),
            Duration::from_secs(5),
        );
        let spec = NewElasticKey {
            name: "payments".into(),
            algorithm: "ES256".into(),
            description: String::new(),
            exportable: false,
            rotation_period: None,
        };
        let key = rings.create("t1".into(), spec).await.unwrap();
        let children = async || sup.snapshot().await.unwrap().children;
        assert!(children().await.is_empty(), "no ring until one is used");
        let jws = rings.sign("t1", &key.id, b"pay".to_vec()).await.unwrap();
        let kids = children().await;
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].name, format!("kms/keyring/{}", key.id));
        assert_eq!(kids[0].kind, "KeyRing");

        // Tenant isolation and unknown ids: not found, no actor started.
        assert!(matches!(
            rings.sign("t2", &key.id, b"x".to_vec()).await,
            Err(Error::KeyNotFound)
        ));
        assert!(matches!(
            rings.sign("t1", "ek-nope", b"x".to_vec()).await,
            Err(Error::KeyNotFound)
        ));
        assert_eq!(children().await.len(), 1);

        // A crash: the supervisor restarts the ring, which reloads its keys.
        sup.crash(vec![key.id.clone()]).await.unwrap();
        eventually(async || {
            children().await.first().is_some_and(|k| k.restarts >= 1)
                && rings.verify("t1", &key.id, jws.clone()).await.is_ok()
        })
        .await;
        assert_eq!(rings.rotate("t1", &key.id).await.unwrap(), 2);
        let jws2 = rings.sign("t1", &key.id, b"pay".to_vec()).await.unwrap();

        // Idle: the ring stops and leaves the tree; the next use starts it again.
        eventually(async || children().await.is_empty()).await;
        assert!(rings.verify("t1", &key.id, jws).await.is_ok());
        assert!(rings.verify("t1", &key.id, jws2).await.is_ok());
        let listed = rings.list("t1".into()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].latest, 2);
        assert!(rings.list("t2".into()).await.unwrap().is_empty());
        sup.stop(Duration::from_secs(1)).await;
    }
}
