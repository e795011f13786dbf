//! `KeyRingsHandle`: the KMS's typed handle. It creates and lists elastic keys and reaches each
//! one's `KeyRing` through the keyed supervisor, which owns the running rings. Every key
//! operation, refused ones included (an unknown key, another tenant's key), leaves an audit
//! record.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::ids::ElasticKeyId;
use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::Jwk;
use cryptoutil_storage::Store;
use ractor::RpcReplyPort;
use zeroize::Zeroizing;

use super::msg::{BatchOp, BatchResult, Caller, DataKey, KeyRingMsg, MAX_BATCH};
use super::state::{ElasticKey, KeyUpdate, NewElasticKey, Ring, VersionAction, VersionView};
use super::{store, RingKey, Rings};
use crate::ask::call;
use crate::audit::{AuditEntry, AuditHandle};
use crate::error::Error;
use crate::supervisor::keyed::KeyedHandle;

/// Who audit records name for what the KMS does by itself (rotation policy, destruction job).
pub const SYSTEM_SUBJECT: &str = "cryptoutil:kms-scheduler";

/// The KMS's elastic keys.
#[derive(Clone)]
pub struct KeyRingsHandle {
    store: Arc<Store>,
    audit: AuditHandle,
    rings: KeyedHandle<Rings>,
    import_key: Arc<tokio::sync::OnceCell<Arc<Jwk>>>,
    timeout: Duration,
}

impl std::fmt::Debug for KeyRingsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRingsHandle").finish_non_exhaustive()
    }
}

/// Blocking store work off the async task.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::ask::blocking("KeyRing", f).await
}

impl KeyRingsHandle {
    /// The KMS's rings, reached through `rings`, audited to `audit`.
    pub fn new(
        store: Arc<Store>,
        audit: AuditHandle,
        rings: KeyedHandle<Rings>,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            audit,
            rings,
            import_key: Arc::default(),
            timeout,
        }
    }

    /// Creates an elastic key (and its first material key) in the caller's tenant; the key and
    /// its audit record commit together.
    pub async fn create(&self, who: &Caller, spec: NewElasticKey) -> Result<ElasticKey, Error> {
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        let planned = blocking(move || {
            let (mut ring, first) =
                Ring::create(tenant, store::new_id()?, spec, crate::now_unix())?;
            let writes = store::writes(&store, &ring, &first)?;
            ring.apply(first);
            Ok((ring.key, writes))
        })
        .await;
        match planned {
            Err(e) => {
                let entry = AuditEntry::new(&who.subject, who.tenant.as_str(), "", "create");
                self.audit.refused(entry, e).await
            }
            Ok((key, writes)) => {
                let entry =
                    AuditEntry::new(&who.subject, who.tenant.as_str(), key.id.as_str(), "create")
                        .version(Some(key.latest));
                self.audit.append(entry, writes).await?;
                Ok(key)
            }
        }
    }

    /// The elastic keys of the caller's tenant.
    pub async fn list(&self, who: &Caller) -> Result<Vec<ElasticKey>, Error> {
        let (store, prefix) = (Arc::clone(&self.store), format!("{}/", who.tenant));
        blocking(move || store::scan_keys(&store, &prefix)).await
    }

    /// Asks the ring of `id` in the caller's tenant; a key that is not there (or is another
    /// tenant's) is audited as a failed `op` and answered `KeyNotFound`.
    async fn ask<T: Send + 'static>(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        op: &'static str,
        build: impl FnOnce(String, RpcReplyPort<Result<T, Error>>) -> KeyRingMsg,
    ) -> Result<T, Error> {
        let key = RingKey {
            tenant: who.tenant.clone(),
            id: id.clone(),
        };
        match self.rings.open(&key).await {
            Ok(ring) => {
                let subject = who.subject.clone();
                call(&ring, "KeyRing", |r| build(subject, r), self.timeout).await
            }
            Err(e) => {
                let entry = AuditEntry::new(&who.subject, who.tenant.as_str(), id.as_str(), op);
                self.audit.refused(entry, e).await
            }
        }
    }

    /// Asks the ring without an audit record (reads that use no key material).
    async fn read<T: Send + 'static>(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> KeyRingMsg,
    ) -> Result<T, Error> {
        let key = RingKey {
            tenant: who.tenant.clone(),
            id: id.clone(),
        };
        let ring = self.rings.open(&key).await?;
        call(&ring, "KeyRing", build, self.timeout).await
    }

    /// JWE of `plaintext` with the latest material key.
    pub async fn encrypt(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<String, Error> {
        self.ask(who, id, "encrypt", |who, reply| KeyRingMsg::Encrypt {
            who,
            plaintext,
            reply,
        })
        .await
    }

    /// Opens a JWE.
    pub async fn decrypt(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        jwe: String,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.ask(who, id, "decrypt", |who, reply| KeyRingMsg::Decrypt {
            who,
            jwe,
            reply,
        })
        .await
    }

    /// JWS of `payload` with the latest material key.
    pub async fn sign(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        payload: Vec<u8>,
    ) -> Result<String, Error> {
        self.ask(who, id, "sign", |who, reply| KeyRingMsg::Sign {
            who,
            payload,
            reply,
        })
        .await
    }

    /// Verifies a JWS.
    pub async fn verify(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        jws: String,
    ) -> Result<Verified, Error> {
        self.ask(who, id, "verify", |who, reply| KeyRingMsg::Verify {
            who,
            jws,
            reply,
        })
        .await
    }

    /// A data key: its plaintext and its JWE under the latest material key.
    pub async fn data_key(&self, who: &Caller, id: &ElasticKeyId) -> Result<DataKey, Error> {
        self.ask(who, id, "datakey", |who, reply| KeyRingMsg::DataKey {
            who,
            reply,
        })
        .await
    }

    /// Many items of one operation, a result per item.
    pub async fn batch(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        op: BatchOp,
        items: Vec<Zeroizing<Vec<u8>>>,
    ) -> Result<Vec<BatchResult>, Error> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(Error::BadRequest {
                reason: "items: 1 to 1000",
            });
        }
        self.ask(who, id, op.audit_name(), |who, reply| KeyRingMsg::Batch {
            who,
            op,
            items,
            reply,
        })
        .await
    }

    /// A new latest material key; its version.
    pub async fn rotate(&self, who: &Caller, id: &ElasticKeyId) -> Result<u32, Error> {
        self.ask(who, id, "rotate", |who, reply| KeyRingMsg::Rotate {
            who,
            reply,
        })
        .await
    }

    /// Changes the elastic key's settings; the updated key.
    pub async fn update(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        update: KeyUpdate,
    ) -> Result<ElasticKey, Error> {
        self.ask(who, id, "update", |who, reply| KeyRingMsg::Update {
            who,
            update,
            reply,
        })
        .await
    }

    /// Soft-deletes the elastic key; the updated key (with `destroy_at`).
    pub async fn delete(&self, who: &Caller, id: &ElasticKeyId) -> Result<ElasticKey, Error> {
        self.ask(who, id, "delete", |who, reply| KeyRingMsg::Delete {
            who,
            reply,
        })
        .await
    }

    /// Enables, disables or destroys one material key version; the versions after.
    pub async fn version(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        version: u32,
        action: VersionAction,
    ) -> Result<Vec<VersionView>, Error> {
        self.ask(who, id, action.audit_name(), |who, reply| {
            KeyRingMsg::ChangeVersion {
                who,
                version,
                action,
                reply,
            }
        })
        .await
    }

    /// The service's import key (RSA-OAEP-256, private), made and sealed in the store on first
    /// use. Key material to import is sent as a JWE to its public half.
    pub async fn import_key(&self) -> Result<Arc<Jwk>, Error> {
        let store = Arc::clone(&self.store);
        self.import_key
            .get_or_try_init(|| async move {
                blocking(move || store::load_or_make_import_key(&store))
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Imports key material (BYOK): `jwe` is a compact JWE (RSA-OAEP-256, A256GCM) of a private
    /// JWK, made with [`Self::import_key`]'s public half; it becomes the latest version.
    pub async fn import(&self, who: &Caller, id: &ElasticKeyId, jwe: String) -> Result<u32, Error> {
        let import_key = self.import_key().await?;
        self.ask(who, id, "import", |who, reply| KeyRingMsg::Import {
            who,
            jwe,
            import_key,
            reply,
        })
        .await
    }

    /// Exports a version's private JWK (latest if `None`) as a JWE to `recipient`, if the
    /// elastic key is exportable.
    pub async fn export(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
        version: Option<u32>,
        recipient: Jwk,
    ) -> Result<String, Error> {
        self.ask(who, id, "export", |who, reply| KeyRingMsg::Export {
            who,
            version,
            recipient: Box::new(recipient),
            reply,
        })
        .await
    }

    /// The elastic key (not audited: no key is used).
    pub async fn key(&self, who: &Caller, id: &ElasticKeyId) -> Result<ElasticKey, Error> {
        self.read(who, id, |reply| KeyRingMsg::Key { reply }).await
    }

    /// Its material keys' metadata (not audited).
    pub async fn versions(
        &self,
        who: &Caller,
        id: &ElasticKeyId,
    ) -> Result<Vec<VersionView>, Error> {
        self.read(who, id, |reply| KeyRingMsg::Versions { reply })
            .await
    }

    /// The public keys of its usable asymmetric versions (not audited).
    pub async fn public_keys(&self, who: &Caller, id: &ElasticKeyId) -> Result<Vec<Jwk>, Error> {
        self.read(who, id, |reply| KeyRingMsg::PublicKeys { reply })
            .await
    }

    /// The rotation policy and the destruction job, for every tenant's keys at `now`: rotates
    /// keys whose period has passed since their latest version and destroys soft-deleted keys
    /// whose time has come. Returns (rotated, destroyed) key ids; a key that fails is logged and
    /// tried again at the next run.
    pub async fn run_due(&self, now: u64) -> Result<(Vec<ElasticKeyId>, Vec<ElasticKeyId>), Error> {
        let store = Arc::clone(&self.store);
        let keys = blocking(move || store::scan_keys(&store, "")).await?;
        let (mut rotated, mut destroyed) = (Vec::new(), Vec::new());
        for key in keys {
            let who = Caller {
                tenant: key.tenant.clone(),
                subject: SYSTEM_SUBJECT.to_owned(),
            };
            if key.destruction_due(now) {
                let done = self
                    .ask(&who, &key.id, "destroy", |who, reply| KeyRingMsg::Destroy {
                        who,
                        now,
                        reply,
                    })
                    .await;
                match done {
                    Ok(()) => {
                        // The ring is stopping: the next caller must find the key gone.
                        let ring = RingKey {
                            tenant: key.tenant.clone(),
                            id: key.id.clone(),
                        };
                        let _ = self.rings.forget(&ring).await;
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
}
