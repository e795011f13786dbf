//! The `KeyRing` actor: one per elastic key in use, a transient child of the KMS service
//! supervisor, started on demand by [`KeyRingsHandle`] and stopped after `idle` without
//! messages. Crypto runs in the mailbox (one key's operations are microseconds); a rotation's
//! write runs on a blocking thread and comes back as a message, one rotation at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::Jwk;
use cryptoutil_storage::{Store, Table};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::ring::{
    ElasticKey, KeyRingState, KeyUpdate, NewElasticKey, Rotation, VersionAction, VersionChange,
};
use crate::ask::ask;
use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::error::Error;
use crate::federation::JoseEngine;
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
    audit: AuditHandle,
    jose: Option<JoseEngine>,
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

/// Who asks: every audit record names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's tenant: only its keys are visible.
    pub tenant: String,
    /// The client or user id.
    pub subject: String,
}

/// What a key ring does. Every operation's answer waits until its audit record is durable.
pub enum KeyRingMsg {
    /// JWE with the latest material key.
    Encrypt(
        String,
        Zeroizing<Vec<u8>>,
        RpcReplyPort<Result<String, Error>>,
    ),
    /// Opens a JWE.
    Decrypt(
        String,
        String,
        RpcReplyPort<Result<Zeroizing<Vec<u8>>, Error>>,
    ),
    /// JWS with the latest material key.
    Sign(String, Vec<u8>, RpcReplyPort<Result<String, Error>>),
    /// Verifies a JWS.
    Verify(String, String, RpcReplyPort<Result<Verified, Error>>),
    /// A new latest material key; its version.
    Rotate(String, RpcReplyPort<Result<u32, Error>>),
    /// The rotation and its audit record committed (or did not).
    Rotated(
        Box<Result<Rotation, Error>>,
        RpcReplyPort<Result<u32, Error>>,
    ),
    /// The elastic key, its versions and its public JWKS.
    Describe(RpcReplyPort<Result<Value, Error>>),
    /// Changes the elastic key's settings; the updated key.
    Update(String, KeyUpdate, RpcReplyPort<Result<ElasticKey, Error>>),
    /// Soft-deletes the elastic key; the updated key.
    Delete(String, RpcReplyPort<Result<ElasticKey, Error>>),
    /// An update or deletion is written with its audit record (or is not).
    KeyWritten(
        Box<Result<ElasticKey, Error>>,
        RpcReplyPort<Result<ElasticKey, Error>>,
    ),
    /// A data key: (plaintext, JWE).
    DataKey(String, RpcReplyPort<Result<DataKey, Error>>),
    /// Enables, disables or destroys one material key version; the versions after.
    Version(
        String,
        u32,
        VersionAction,
        RpcReplyPort<Result<Vec<Value>, Error>>,
    ),
    /// A version change is written with its audit record (or is not).
    VersionWritten(
        Box<Result<VersionChange, Error>>,
        RpcReplyPort<Result<Vec<Value>, Error>>,
    ),
    /// Imports key material (a JWE under the import key) as the new latest version.
    Import(String, String, Arc<Jwk>, RpcReplyPort<Result<u32, Error>>),
    /// The private JWK of a version (latest if `None`), encrypted to a recipient's public key.
    Export(
        String,
        Option<u32>,
        Box<Jwk>,
        RpcReplyPort<Result<String, Error>>,
    ),
    /// Destroys the soft-deleted elastic key and all its material (its destruction time has
    /// come); the ring stops once it is written.
    /// (The time is the job's `now`: the key must be due at it.)
    Destroy(String, u64, RpcReplyPort<Result<(), Error>>),
    /// Many items of one operation; a result per item.
    Batch(
        String,
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

impl KeyRingActorState {
    fn entry(&self, who: &str, op: &'static str, version: Option<u32>) -> AuditEntry {
        AuditEntry::new(who, &self.args.tenant, &self.args.id, op).version(version)
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

    /// Runs a prepared operation on the JOSE service on a task of its own (the mailbox never
    /// waits on the network), then audits and answers it; a preparation that failed is
    /// audited and answered here.
    fn remote<J, T, F, Fut>(
        &self,
        jose: JoseEngine,
        entry: AuditEntry,
        job: Result<J, Error>,
        reply: RpcReplyPort<Result<T, Error>>,
        run: F,
    ) where
        J: Send + 'static,
        T: Send + 'static,
        F: FnOnce(JoseEngine, J) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, Error>> + Send,
    {
        match job {
            Err(e) => self.audited(entry, Err(e), reply),
            Ok(job) => {
                let audit = self.args.audit.clone();
                tokio::spawn(async move {
                    let result = run(jose, job).await;
                    audited(&audit, entry, result, reply);
                });
            }
        }
    }
}

/// Answers `result` once its audit record is durable (see [`KeyRingActorState::audited`]).
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
        let latest = Some(st.ring.key.latest);
        match msg {
            KeyRingMsg::Encrypt(who, plaintext, reply) => {
                let entry = st.entry(&who, "encrypt", latest);
                match st.args.jose.clone() {
                    None => st.audited(entry, st.ring.encrypt(&plaintext), reply),
                    Some(jose) => {
                        let job = st.ring.encryption_job(plaintext.len());
                        st.remote(jose, entry, job, reply, |jose, (key, enc)| async move {
                            jose.encrypt(&key, enc, &plaintext).await
                        });
                    }
                }
            }
            KeyRingMsg::Decrypt(who, jwe, reply) => {
                let entry = st.entry(&who, "decrypt", st.ring.token_version(&jwe));
                match st.args.jose.clone() {
                    None => st.audited(entry, st.ring.decrypt(&jwe), reply),
                    Some(jose) => {
                        let job = st.ring.decryption_job(&jwe);
                        st.remote(jose, entry, job, reply, |jose, (key, enc)| async move {
                            jose.decrypt(&key, enc, &jwe).await
                        });
                    }
                }
            }
            KeyRingMsg::Sign(who, payload, reply) => {
                let entry = st.entry(&who, "sign", latest);
                match st.args.jose.clone() {
                    None => st.audited(entry, st.ring.sign(&payload), reply),
                    Some(jose) => {
                        let job = st.ring.signing_job(payload.len());
                        st.remote(jose, entry, job, reply, |jose, key| async move {
                            jose.sign(&key, &payload).await
                        });
                    }
                }
            }
            KeyRingMsg::Verify(who, jws, reply) => {
                let entry = st.entry(&who, "verify", st.ring.token_version(&jws));
                match st.args.jose.clone() {
                    None => st.audited(entry, st.ring.verify(&jws), reply),
                    Some(jose) => {
                        let job = st.ring.verification_job(&jws);
                        st.remote(jose, entry, job, reply, |jose, key| async move {
                            jose.verify(&key, &jws).await
                        });
                    }
                }
            }
            KeyRingMsg::DataKey(who, reply) => {
                let entry = st.entry(&who, "datakey", latest);
                match st.args.jose.clone() {
                    None => st.audited(entry, st.ring.data_key(), reply),
                    Some(jose) => {
                        let job = KeyRingState::random_data_key()
                            .and_then(|dk| st.ring.encryption_job(dk.len()).map(|job| (dk, job)));
                        st.remote(
                            jose,
                            entry,
                            job,
                            reply,
                            |jose, (dk, (key, enc))| async move {
                                let jwe = jose.encrypt(&key, enc, &dk).await?;
                                Ok((dk, jwe))
                            },
                        );
                    }
                }
            }
            KeyRingMsg::Batch(who, op, items, reply) => {
                let results: Vec<Value> =
                    items.iter().map(|i| batch_item(&st.ring, op, i)).collect();
                let failed = results.iter().filter(|r| r.get("error").is_some()).count();
                let mut entry = st.entry(&who, op.audit_name(), latest);
                if failed > 0 {
                    entry.error = Some(format!("{failed} of {} items failed", results.len()));
                }
                st.audited(entry, Ok(results), reply);
            }
            KeyRingMsg::Describe(reply) => {
                let _ = reply.send(Ok(serde_json::json!({
                    "key": st.ring.key,
                    "materialkeys": st.ring.versions(),
                    "jwks": st.ring.jwks(),
                })));
            }
            KeyRingMsg::Rotate(who, reply) => {
                let planned = if st.writing {
                    Err(Error::Conflict {
                        what: "rotation in progress",
                    })
                } else {
                    st.ring.plan_rotation(&st.args.store, crate::now_unix())
                };
                write_version(&me, st, st.entry(&who, "rotate", None), planned, reply);
            }
            KeyRingMsg::Import(who, token, import_key, reply) => {
                let planned = if st.writing {
                    Err(Error::Conflict {
                        what: "a change in progress",
                    })
                } else {
                    KeyRingState::open_import(&token, &import_key)
                        .and_then(|jwk| st.ring.plan_import(&st.args.store, crate::now_unix(), jwk))
                };
                write_version(&me, st, st.entry(&who, "import", None), planned, reply);
            }
            KeyRingMsg::Export(who, version, recipient, reply) => {
                let entry = st.entry(&who, "export", version.or(latest));
                st.audited(entry, st.ring.export(version, &recipient), reply);
            }
            KeyRingMsg::Rotated(done, reply) => {
                st.writing = false;
                if done.is_err() {
                    // The rotation may have lost to one this ring never saw (a restart raced
                    // it): stop, so the next use loads the ring from the store.
                    me.stop(Some("rotation not written; reload".into()));
                }
                let _ = reply.send((*done).map(|r| st.ring.apply_rotation(r)));
            }
            KeyRingMsg::Update(who, update, reply) => {
                let planned = st.ring.plan_update(&st.args.store, update);
                write_key(&me, st, st.entry(&who, "update", None), planned, reply);
            }
            KeyRingMsg::Delete(who, reply) => {
                let planned = st.ring.plan_deletion(&st.args.store, crate::now_unix());
                write_key(&me, st, st.entry(&who, "delete", None), planned, reply);
            }
            KeyRingMsg::KeyWritten(done, reply) => {
                st.writing = false;
                if done.is_err() {
                    me.stop(Some("change not written; reload".into()));
                }
                let _ = reply.send((*done).inspect(|key| st.ring.set_key(key.clone())));
            }
            KeyRingMsg::Version(who, version, action, reply) => {
                if st.writing {
                    let _ = reply.send(Err(Error::Conflict {
                        what: "a change in progress",
                    }));
                    return Ok(());
                }
                let entry = st.entry(&who, action.audit_name(), Some(version));
                match st.ring.plan_version(&st.args.store, version, action) {
                    Err(e) => st.audited(entry, Err(e), reply),
                    Ok((change, writes)) => {
                        st.writing = true;
                        st.args.audit.submit(
                            entry,
                            writes,
                            Completion::new(move |done| {
                                let done = done.map(|()| change);
                                let _ = me.cast(KeyRingMsg::VersionWritten(Box::new(done), reply));
                            }),
                        );
                    }
                }
            }
            KeyRingMsg::VersionWritten(done, reply) => {
                st.writing = false;
                match *done {
                    Ok(change) => {
                        st.ring.apply_version(change);
                        let _ = reply.send(Ok(st.ring.versions()));
                    }
                    Err(e) => {
                        me.stop(Some("change not written; reload".into()));
                        let _ = reply.send(Err(e));
                    }
                }
            }
            KeyRingMsg::Destroy(who, now, reply) => {
                let entry = st.entry(&who, "destroy", None);
                if st.writing || !st.ring.key.destruction_due(now) {
                    let refused = Err(Error::Conflict {
                        what: "the elastic key is not due for destruction",
                    });
                    st.audited(entry, refused, reply);
                    return Ok(());
                }
                st.writing = true;
                let stopping = me.clone();
                st.args.audit.submit(
                    entry,
                    st.ring.plan_destruction(),
                    Completion::new(move |done| {
                        // Written or not, this ring's memory no longer matches the store.
                        stopping.stop(Some("destroyed".into()));
                        let _ = reply.send(done);
                    }),
                );
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

impl BatchOp {
    fn audit_name(self) -> &'static str {
        match self {
            BatchOp::Encrypt => "batch-encrypt",
            BatchOp::Decrypt => "batch-decrypt",
            BatchOp::Sign => "batch-sign",
            BatchOp::Verify => "batch-verify",
        }
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

/// Commits a planned new latest version (a rotation or an import) with its audit record, then
/// makes it current (`Rotated`); a plan that failed is audited as a failure.
fn write_version(
    me: &ActorRef<KeyRingMsg>,
    st: &mut KeyRingActorState,
    entry: AuditEntry,
    planned: Result<(Rotation, Vec<cryptoutil_storage::backend::Write>), Error>,
    reply: RpcReplyPort<Result<u32, Error>>,
) {
    match planned {
        Err(e) => st.audited(entry, Err(e), reply),
        Ok((rotation, writes)) => {
            st.writing = true;
            let me = me.clone();
            st.args.audit.submit(
                entry.version(Some(rotation.version())),
                writes,
                Completion::new(move |done| {
                    let done = done.map(|()| rotation);
                    let _ = me.cast(KeyRingMsg::Rotated(Box::new(done), reply));
                }),
            );
        }
    }
}

/// Commits a planned change of the elastic key with its audit record (one change at a time,
/// like a rotation), then applies it.
fn write_key(
    me: &ActorRef<KeyRingMsg>,
    st: &mut KeyRingActorState,
    entry: AuditEntry,
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
        Err(e) => st.audited(entry, Err(e), reply),
        Ok((key, write)) => {
            st.writing = true;
            let me = me.clone();
            st.args.audit.submit(
                entry,
                vec![write],
                Completion::new(move |done| {
                    let done = done.map(|()| key);
                    let _ = me.cast(KeyRingMsg::KeyWritten(Box::new(done), reply));
                }),
            );
        }
    }
}

/// Where the import key is sealed.
const IMPORT_KEY_RECORD: &[u8] = b"kms/import-key/v1";

/// Blocking: the stored import key, or a new one stored (if two race, the first write wins
/// and both use it).
fn load_or_make_import_key(store: &Store) -> Result<Jwk, Error> {
    use cryptoutil_protocols::jose::jwe::{ContentAlg, KeyAlg};
    for _ in 0..2 {
        if let Some(plain) = store.get_sealed(Table::Records, IMPORT_KEY_RECORD)? {
            let text = std::str::from_utf8(&plain).map_err(|_| Error::BadRequest {
                reason: "stored import key",
            })?;
            return Ok(Jwk::parse(text)?);
        }
        let jwk = Jwk::generate_jwe(KeyAlg::RsaOaep256, ContentAlg::A256GCM)?;
        let private = jwk.to_private_value()?;
        let write = store.sealed_create(Table::Records, IMPORT_KEY_RECORD, private.as_bytes())?;
        match store.apply(vec![write]) {
            Ok(()) => return Ok(jwk),
            Err(cryptoutil_storage::Error::Exists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict { what: "import key" })
}

/// Who audit records name for what the KMS does by itself (rotation policy, destruction job).
pub const SYSTEM_SUBJECT: &str = "cryptoutil:kms-scheduler";

/// The slot of each key ring ever reached, by (tenant, id).
type RingSlots = HashMap<(String, String), Slot<KeyRingMsg>>;

/// The KMS's elastic keys: creates and lists them, and reaches each one's `KeyRing`, starting
/// it under the service supervisor when it is not running. Every key operation, refused ones
/// included (an unknown key, another tenant's key), leaves an audit record.
#[derive(Clone)]
pub struct KeyRingsHandle {
    store: Arc<Store>,
    audit: AuditHandle,
    jose: Option<JoseEngine>,
    import_key: Arc<tokio::sync::OnceCell<Arc<Jwk>>>,
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

fn stopped<T>(_: T) -> Error {
    Error::Unavailable {
        actor: "KeyRing",
        why: crate::error::Unavailability::Stopped,
    }
}

impl KeyRingsHandle {
    /// The key rings of `service`, kept under `supervisor`, audited to `audit`, stopped after
    /// `idle`.
    pub fn new(
        store: Arc<Store>,
        audit: AuditHandle,
        supervisor: SupervisorHandle,
        service: &'static str,
        idle: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            audit,
            jose: None,
            import_key: Arc::default(),
            supervisor,
            service,
            slots: Arc::default(),
            idle,
            timeout,
        }
    }

    /// Performs JWE/JWS through the JOSE service (`federation.jose_enabled`), its own JOSE code
    /// being the fallback; batches, imports and exports stay internal.
    pub fn with_jose(mut self, jose: JoseEngine) -> Self {
        self.jose = Some(jose);
        self
    }

    /// The service's audit log.
    pub fn audit(&self) -> &AuditHandle {
        &self.audit
    }

    /// Creates an elastic key (and its first material key) in the caller's tenant; the key and
    /// its audit record commit together.
    pub async fn create(&self, who: &Caller, spec: NewElasticKey) -> Result<ElasticKey, Error> {
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        let planned = tokio::task::spawn_blocking(move || {
            KeyRingState::plan_create(&store, &tenant, spec, crate::now_unix())
        })
        .await
        .map_err(stopped)?;
        match planned {
            Err(e) => {
                let entry = AuditEntry::new(&who.subject, &who.tenant, "", "create");
                self.audit
                    .append(entry.outcome(&Err::<(), _>(&e)), Vec::new())
                    .await?;
                Err(e)
            }
            Ok((ring, writes)) => {
                let entry = AuditEntry::new(&who.subject, &who.tenant, &ring.key.id, "create")
                    .version(Some(ring.key.latest));
                self.audit.append(entry, writes).await?;
                Ok(ring.key)
            }
        }
    }

    /// The elastic keys of the caller's tenant.
    pub async fn list(&self, who: &Caller) -> Result<Vec<ElasticKey>, Error> {
        self.scan_keys(format!("{}/", who.tenant)).await
    }

    /// The elastic keys whose record key starts with `prefix` (`<tenant>/`, or every tenant's
    /// with an empty prefix).
    async fn scan_keys(&self, prefix: String) -> Result<Vec<ElasticKey>, Error> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            store
                .scan_sealed(Table::KmsElasticKeys, prefix.as_bytes())?
                .into_iter()
                .map(|(_, plain)| {
                    serde_json::from_slice::<ElasticKey>(&plain).map_err(|_| Error::BadRequest {
                        reason: "stored elastic key",
                    })
                })
                .collect()
        })
        .await
        .map_err(stopped)?
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
        .map_err(stopped)??;
        if !exists {
            return Err(Error::KeyNotFound);
        }
        let args = KeyRingArgs {
            store: Arc::clone(&self.store),
            audit: self.audit.clone(),
            jose: self.jose.clone(),
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

    /// Asks the ring of `id` in the caller's tenant; a key that is not there (or is another
    /// tenant's) is audited as a failed `op` and answered `KeyNotFound`.
    async fn call<T: Send + 'static>(
        &self,
        who: &Caller,
        id: &str,
        op: &'static str,
        build: impl FnOnce(String, RpcReplyPort<Result<T, Error>>) -> KeyRingMsg,
    ) -> Result<T, Error> {
        match self.ring(&who.tenant, id).await {
            Ok(slot) => ask(&slot, |r| build(who.subject.clone(), r), self.timeout).await,
            Err(e) => {
                let entry = AuditEntry::new(&who.subject, &who.tenant, id, op);
                self.audit
                    .append(entry.outcome(&Err::<(), _>(&e)), Vec::new())
                    .await?;
                Err(e)
            }
        }
    }

    /// JWE of `plaintext` with the latest material key.
    pub async fn encrypt(
        &self,
        who: &Caller,
        id: &str,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<String, Error> {
        self.call(who, id, "encrypt", |w, r| {
            KeyRingMsg::Encrypt(w, plaintext, r)
        })
        .await
    }

    /// Opens a JWE.
    pub async fn decrypt(
        &self,
        who: &Caller,
        id: &str,
        jwe: String,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.call(who, id, "decrypt", |w, r| KeyRingMsg::Decrypt(w, jwe, r))
            .await
    }

    /// JWS of `payload` with the latest material key.
    pub async fn sign(&self, who: &Caller, id: &str, payload: Vec<u8>) -> Result<String, Error> {
        self.call(who, id, "sign", |w, r| KeyRingMsg::Sign(w, payload, r))
            .await
    }

    /// Verifies a JWS.
    pub async fn verify(&self, who: &Caller, id: &str, jws: String) -> Result<Verified, Error> {
        self.call(who, id, "verify", |w, r| KeyRingMsg::Verify(w, jws, r))
            .await
    }

    /// Rotates; the new version.
    pub async fn rotate(&self, who: &Caller, id: &str) -> Result<u32, Error> {
        self.call(who, id, "rotate", KeyRingMsg::Rotate).await
    }

    /// Changes an elastic key's settings.
    pub async fn update(
        &self,
        who: &Caller,
        id: &str,
        update: KeyUpdate,
    ) -> Result<ElasticKey, Error> {
        self.call(who, id, "update", |w, r| KeyRingMsg::Update(w, update, r))
            .await
    }

    /// Soft-deletes an elastic key (destruction after [`super::ring::DELETION_DELAY`]).
    pub async fn delete(&self, who: &Caller, id: &str) -> Result<ElasticKey, Error> {
        self.call(who, id, "delete", KeyRingMsg::Delete).await
    }

    /// Many items of one operation, a result per item (at most [`MAX_BATCH`]).
    pub async fn batch(
        &self,
        who: &Caller,
        id: &str,
        op: BatchOp,
        items: Vec<Zeroizing<Vec<u8>>>,
    ) -> Result<Vec<Value>, Error> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(Error::BadRequest {
                reason: "items: 1 to 1000",
            });
        }
        self.call(who, id, op.audit_name(), |w, r| {
            KeyRingMsg::Batch(w, op, items, r)
        })
        .await
    }

    /// Enables, disables or destroys material key `version`; the versions after.
    pub async fn version(
        &self,
        who: &Caller,
        id: &str,
        version: u32,
        action: VersionAction,
    ) -> Result<Vec<Value>, Error> {
        self.call(who, id, action.audit_name(), |w, r| {
            KeyRingMsg::Version(w, version, action, r)
        })
        .await
    }

    /// The service's import key (RSA-OAEP-256, private), made and sealed in the store on first
    /// use. Key material to import is sent as a JWE to its public half.
    pub async fn import_key(&self) -> Result<Arc<Jwk>, Error> {
        let store = Arc::clone(&self.store);
        self.import_key
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || load_or_make_import_key(&store))
                    .await
                    .map_err(stopped)?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Imports key material (BYOK): `jwe` is a compact JWE (RSA-OAEP-256, A256GCM) of a private
    /// JWK, made with [`Self::import_key`]'s public half; it becomes the latest version.
    pub async fn import(&self, who: &Caller, id: &str, jwe: String) -> Result<u32, Error> {
        let import_key = self.import_key().await?;
        self.call(who, id, "import", |w, r| {
            KeyRingMsg::Import(w, jwe, import_key, r)
        })
        .await
    }

    /// Exports a version's private JWK (latest if `None`) as a JWE to `recipient`, if the
    /// elastic key is exportable.
    pub async fn export(
        &self,
        who: &Caller,
        id: &str,
        version: Option<u32>,
        recipient: Jwk,
    ) -> Result<String, Error> {
        self.call(who, id, "export", |w, r| {
            KeyRingMsg::Export(w, version, Box::new(recipient), r)
        })
        .await
    }

    /// The rotation policy and the destruction job, for every tenant's keys at `now`: rotates
    /// keys whose period has passed since their latest version and destroys soft-deleted keys
    /// whose time has come. Returns (rotated, destroyed) key ids; a key that fails is logged and
    /// tried again at the next run.
    pub async fn run_due(&self, now: u64) -> Result<(Vec<String>, Vec<String>), Error> {
        let keys = self.scan_keys(String::new()).await?;
        let (mut rotated, mut destroyed) = (Vec::new(), Vec::new());
        for key in keys {
            let who = Caller {
                tenant: key.tenant.clone(),
                subject: SYSTEM_SUBJECT.to_owned(),
            };
            if key.destruction_due(now) {
                match self
                    .call(&who, &key.id, "destroy", |w, r| {
                        KeyRingMsg::Destroy(w, now, r)
                    })
                    .await
                {
                    Ok(()) => {
                        // The ring is stopping; the next caller must find the key gone.
                        self.slots
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&(key.tenant.clone(), key.id.clone()));
                        destroyed.push(key.id);
                    }
                    Err(e) => {
                        tracing::warn!(key = %key.id, error = %e, "destruction failed; retried at the next run")
                    }
                }
            } else if key.rotation_due(now) {
                match self.rotate(&who, &key.id).await {
                    Ok(_) => rotated.push(key.id),
                    Err(e) => {
                        tracing::warn!(key = %key.id, error = %e, "automatic rotation failed; retried at the next run")
                    }
                }
            }
        }
        Ok((rotated, destroyed))
    }

    /// A data key: its plaintext and its JWE under the latest material key.
    pub async fn data_key(&self, who: &Caller, id: &str) -> Result<DataKey, Error> {
        self.call(who, id, "datakey", KeyRingMsg::DataKey).await
    }

    /// The elastic key, its material keys' metadata and its public JWKS (not audited: no key
    /// is used).
    pub async fn describe(&self, who: &Caller, id: &str) -> Result<Value, Error> {
        let slot = self.ring(&who.tenant, id).await?;
        ask(&slot, KeyRingMsg::Describe, self.timeout).await
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

    struct Env {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        sup: SupervisorHandle,
        rings: KeyRingsHandle,
        audit: AuditHandle,
    }

    async fn env() -> Env {
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
        let audit_slot = Slot::new("AuditLog");
        let audit_args = crate::audit::AuditArgs::open(Arc::clone(&store), "kms").unwrap();
        let audit = AuditHandle::new(audit_slot.clone(), &audit_args, Duration::from_secs(5));
        sup.start_child(Arc::new(ActorSpec::new(
            "kms/audit".into(),
            "AuditLog",
            audit_slot.clone(),
            move || (crate::audit::AuditLog, audit_args.clone()),
            || crate::audit::AuditMsg::Crash,
        )))
        .await
        .unwrap();
        let rings = KeyRingsHandle::new(
            Arc::clone(&store),
            audit.clone(),
            sup.clone(),
            "kms",
            Duration::from_millis(300),
            Duration::from_secs(5),
        );
        Env {
            _dir: dir,
            store,
            sup,
            rings,
            audit,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rings_start_on_demand_survive_a_crash_and_stop_when_idle() {
        let Env {
            _dir,
            store: _,
            sup,
            rings,
            audit,
        } = env().await;
        let spec = NewElasticKey {
            name: "payments".into(),
            algorithm: "ES256".into(),
            description: String::new(),
            exportable: false,
            rotation_period: None,
        };
        let (t1, t2) = (
            Caller {
                tenant: "t1".into(),
                subject: "alice".into(),
            },
            Caller {
                tenant: "t2".into(),
                subject: "mallory".into(),
            },
        );
        let key = rings.create(&t1, spec).await.unwrap();
        let rings_running = async || {
            sup.snapshot()
                .await
                .unwrap()
                .children
                .into_iter()
                .filter(|c| c.kind == "KeyRing")
                .collect::<Vec<_>>()
        };
        let children = rings_running;
        assert!(children().await.is_empty(), "no ring until one is used");
        let jws = rings.sign(&t1, &key.id, b"pay".to_vec()).await.unwrap();
        let kids = children().await;
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].name, format!("kms/keyring/{}", key.id));
        assert_eq!(kids[0].kind, "KeyRing");

        // Tenant isolation and unknown ids: not found, no actor started.
        assert!(matches!(
            rings.sign(&t2, &key.id, b"x".to_vec()).await,
            Err(Error::KeyNotFound)
        ));
        assert!(matches!(
            rings.sign(&t1, "ek-nope", b"x".to_vec()).await,
            Err(Error::KeyNotFound)
        ));
        assert_eq!(children().await.len(), 1);

        // A crash: the supervisor restarts the ring, which reloads its keys.
        sup.crash(vec![key.id.clone()]).await.unwrap();
        eventually(async || {
            children().await.first().is_some_and(|k| k.restarts >= 1)
                && rings.verify(&t1, &key.id, jws.clone()).await.is_ok()
        })
        .await;
        assert_eq!(rings.rotate(&t1, &key.id).await.unwrap(), 2);
        let jws2 = rings.sign(&t1, &key.id, b"pay".to_vec()).await.unwrap();

        // Idle: the ring stops and leaves the tree; the next use starts it again.
        eventually(async || children().await.is_empty()).await;
        assert!(rings.verify(&t1, &key.id, jws).await.is_ok());
        assert!(rings.verify(&t1, &key.id, jws2).await.is_ok());
        let listed = rings.list(&t1).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].latest, 2);
        assert!(rings.list(&t2).await.unwrap().is_empty());

        // Every operation left a record: who, tenant, key, version, outcome; the chain holds.
        let log = audit.read(1, 100, None).await.unwrap().records;
        let ops: Vec<(&str, &str, &str, Option<u32>, &str)> = log
            .iter()
            .map(|r| {
                (
                    r.op.as_str(),
                    r.who.as_str(),
                    r.tenant.as_str(),
                    r.version,
                    r.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(ops[0], ("create", "alice", "t1", Some(1), "ok"));
        assert_eq!(ops[1], ("sign", "alice", "t1", Some(1), "ok"));
        assert_eq!(ops[2], ("sign", "mallory", "t2", None, "error"));
        assert_eq!(log[2].key, key.id);
        assert_eq!(ops[3], ("sign", "alice", "t1", None, "error"));
        assert!(ops.contains(&("rotate", "alice", "t1", Some(2), "ok")));
        assert!(ops.contains(&("verify", "alice", "t1", Some(2), "ok")));
        assert!(audit.verify().await.unwrap().valid);
        sup.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rotation_policy_version_changes_and_the_destruction_job() {
        let Env {
            _dir,
            store,
            sup,
            rings,
            audit,
        } = env().await;
        let alice = Caller {
            tenant: "t1".into(),
            subject: "alice".into(),
        };
        let spec = NewElasticKey {
            name: "rotating".into(),
            algorithm: "A256GCM".into(),
            description: String::new(),
            exportable: false,
            rotation_period: Some(3600),
        };
        let key = rings.create(&alice, spec).await.unwrap();
        let now = crate::now_unix();
        let v1 = rings
            .encrypt(&alice, &key.id, b"one".to_vec().into())
            .await
            .unwrap();

        // The policy: nothing before the period, one rotation after it.
        assert_eq!(rings.run_due(now).await.unwrap(), (vec![], vec![]));
        let (rotated, _) = rings.run_due(now + 3601).await.unwrap();
        assert_eq!(rotated, vec![key.id.clone()]);
        let described = rings.describe(&alice, &key.id).await.unwrap();
        assert_eq!(described["key"]["latest"], 2);
        assert!(described["key"]["rotated_at"].as_u64().unwrap() >= now);

        // Versions: the latest cannot be disabled or destroyed; v1 can, and then stops opening.
        let err = rings
            .version(&alice, &key.id, 2, VersionAction::Disable)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        rings
            .version(&alice, &key.id, 1, VersionAction::Disable)
            .await
            .unwrap();
        assert!(matches!(
            rings.decrypt(&alice, &key.id, v1.clone()).await,
            Err(Error::Forbidden { .. })
        ));
        rings
            .version(&alice, &key.id, 1, VersionAction::Enable)
            .await
            .unwrap();
        assert_eq!(
            rings
                .decrypt(&alice, &key.id, v1.clone())
                .await
                .unwrap()
                .as_slice(),
            b"one"
        );
        let versions = rings
            .version(&alice, &key.id, 1, VersionAction::Destroy)
            .await
            .unwrap();
        assert_eq!(versions[1]["destroyed"], true, "{versions:?}");
        assert!(matches!(
            rings.decrypt(&alice, &key.id, v1.clone()).await,
            Err(Error::Forbidden { .. })
        ));
        let prefix = format!("t1/{}/", key.id);
        assert_eq!(
            store
                .scan_sealed(Table::KmsMaterialKeys, prefix.as_bytes())
                .unwrap()
                .len(),
            1,
            "v1's material is gone from the store"
        );
        assert!(matches!(
            rings
                .version(&alice, &key.id, 9, VersionAction::Destroy)
                .await,
            Err(Error::NotFound { .. })
        ));

        // The destruction job: a soft-deleted key goes, material and all, once its time comes.
        let deleted = rings.delete(&alice, &key.id).await.unwrap();
        let at = deleted.destroy_at.unwrap();
        assert_eq!(rings.run_due(at - 1).await.unwrap(), (vec![], vec![]));
        assert_eq!(
            rings.run_due(at).await.unwrap(),
            (vec![], vec![key.id.clone()])
        );
        assert!(store
            .scan_sealed(Table::KmsMaterialKeys, prefix.as_bytes())
            .unwrap()
            .is_empty());
        assert!(matches!(
            rings.describe(&alice, &key.id).await,
            Err(Error::KeyNotFound)
        ));
        assert!(rings.list(&alice).await.unwrap().is_empty());

        let log = audit.read(1, 100, None).await.unwrap().records;
        let ops: Vec<(&str, &str, &str)> = log
            .iter()
            .map(|r| (r.op.as_str(), r.who.as_str(), r.outcome.as_str()))
            .collect();
        assert!(ops.contains(&("rotate", SYSTEM_SUBJECT, "ok")), "{ops:?}");
        assert!(
            ops.contains(&("disable-version", "alice", "error")),
            "{ops:?}"
        );
        assert!(ops.contains(&("destroy-version", "alice", "ok")), "{ops:?}");
        assert_eq!(ops.last(), Some(&("destroy", SYSTEM_SUBJECT, "ok")));
        assert!(audit.verify().await.unwrap().valid);
        sup.stop(Duration::from_secs(1)).await;
    }
}
