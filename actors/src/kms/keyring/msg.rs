//! Messages of the `KeyRing` actor, and the typed values they answer with. Every operation's
//! answer waits until its audit record is durable.

use std::sync::Arc;

use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::Jwk;
use ractor::RpcReplyPort;
use zeroize::Zeroizing;

use super::state::{Change, ElasticKey, KeyUpdate, Ring, VersionAction, VersionView};
use crate::error::Error;

pub use crate::caller::Caller;

/// A data key: its plaintext (for the caller to use and forget) and its JWE.
pub struct DataKey {
    /// 32 random bytes.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Their JWE under the latest material key.
    pub jwe: String,
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

impl BatchOp {
    /// The audit operation name.
    pub fn audit_name(self) -> &'static str {
        match self {
            BatchOp::Encrypt => "batch-encrypt",
            BatchOp::Decrypt => "batch-decrypt",
            BatchOp::Sign => "batch-sign",
            BatchOp::Verify => "batch-verify",
        }
    }
}

/// Most items in one batch.
pub const MAX_BATCH: usize = 1000;

/// What one batch item produced.
pub enum BatchItem {
    /// An encryption's JWE.
    Jwe(String),
    /// A decryption's plaintext.
    Plaintext(Zeroizing<Vec<u8>>),
    /// A signature's JWS.
    Jws(String),
    /// A valid signature's payload.
    Verified(Vec<u8>),
}

/// Why one batch item failed (the others go on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError(pub String);

/// One batch item's result.
pub type BatchResult = Result<BatchItem, ItemError>;

/// Answers the caller of a written change from the ring it left (or with why it was not
/// written): one shape for rotations, imports, updates and version changes.
pub struct Answer(Box<dyn AnswerFn>);

/// What an [`Answer`] does with the changed ring.
trait AnswerFn: FnOnce(Result<&Ring, Error>) + Send {}
impl<F: FnOnce(Result<&Ring, Error>) + Send> AnswerFn for F {}

impl Answer {
    /// Answers `reply` with what `read` takes from the changed ring.
    pub fn with<T: Send + 'static>(
        reply: RpcReplyPort<Result<T, Error>>,
        read: fn(&Ring) -> T,
    ) -> Self {
        Answer(Box::new(move |ring| {
            let _ = reply.send(ring.map(read));
        }))
    }

    /// Answers now.
    pub fn send(self, ring: Result<&Ring, Error>) {
        (self.0)(ring)
    }
}

/// What a key ring does.
pub enum KeyRingMsg {
    /// JWE with the latest material key.
    Encrypt {
        /// Who asks.
        who: String,
        /// What to encrypt.
        plaintext: Zeroizing<Vec<u8>>,
        /// The compact JWE.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Opens a JWE.
    Decrypt {
        /// Who asks.
        who: String,
        /// The compact JWE.
        jwe: String,
        /// The plaintext.
        reply: RpcReplyPort<Result<Zeroizing<Vec<u8>>, Error>>,
    },
    /// JWS with the latest material key.
    Sign {
        /// Who asks.
        who: String,
        /// What to sign.
        payload: Vec<u8>,
        /// The compact JWS.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Verifies a JWS.
    Verify {
        /// Who asks.
        who: String,
        /// The compact JWS.
        jws: String,
        /// Its payload, if valid.
        reply: RpcReplyPort<Result<Verified, Error>>,
    },
    /// A data key under the latest material key.
    DataKey {
        /// Who asks.
        who: String,
        /// The data key.
        reply: RpcReplyPort<Result<DataKey, Error>>,
    },
    /// Many items of one operation; a result per item.
    Batch {
        /// Who asks.
        who: String,
        /// The operation.
        op: BatchOp,
        /// The items (plaintexts, payloads, or tokens as UTF-8).
        items: Vec<Zeroizing<Vec<u8>>>,
        /// A result per item, in order.
        reply: RpcReplyPort<Result<Vec<BatchResult>, Error>>,
    },
    /// The elastic key.
    Key {
        /// Its record.
        reply: RpcReplyPort<Result<ElasticKey, Error>>,
    },
    /// The material keys' metadata.
    Versions {
        /// Newest first.
        reply: RpcReplyPort<Result<Vec<VersionView>, Error>>,
    },
    /// The public keys of the usable asymmetric versions.
    PublicKeys {
        /// Public JWKs.
        reply: RpcReplyPort<Result<Vec<Jwk>, Error>>,
    },
    /// A new latest material key.
    Rotate {
        /// Who asks.
        who: String,
        /// Its version.
        reply: RpcReplyPort<Result<u32, Error>>,
    },
    /// Imports key material (a JWE under the import key) as the new latest version.
    Import {
        /// Who asks.
        who: String,
        /// The JWE of the private JWK.
        jwe: String,
        /// The service's import key.
        import_key: Arc<Jwk>,
        /// The new version.
        reply: RpcReplyPort<Result<u32, Error>>,
    },
    /// The private JWK of a version (latest if `None`), encrypted to a recipient's public key.
    Export {
        /// Who asks.
        who: String,
        /// Which version.
        version: Option<u32>,
        /// The recipient's public JWK.
        recipient: Box<Jwk>,
        /// The compact JWE.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Changes the elastic key's settings.
    Update {
        /// Who asks.
        who: String,
        /// What changes.
        update: KeyUpdate,
        /// The updated key.
        reply: RpcReplyPort<Result<ElasticKey, Error>>,
    },
    /// Soft-deletes the elastic key.
    Delete {
        /// Who asks.
        who: String,
        /// The updated key.
        reply: RpcReplyPort<Result<ElasticKey, Error>>,
    },
    /// Enables, disables or destroys one material key version.
    ChangeVersion {
        /// Who asks.
        who: String,
        /// The version.
        version: u32,
        /// What to do.
        action: VersionAction,
        /// The versions after.
        reply: RpcReplyPort<Result<Vec<VersionView>, Error>>,
    },
    /// Destroys the soft-deleted elastic key and all its material (its destruction time `now`
    /// has come); the ring stops once it is written.
    Destroy {
        /// Who asks.
        who: String,
        /// The job's clock: the key must be due at it.
        now: u64,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Internal: a change was committed with its audit record (or was not).
    Written {
        /// The change, or why it was not written.
        change: Result<Change, Error>,
        /// Whom to answer once it is applied.
        answer: Answer,
    },
    /// Internal: stop if idle since the last message.
    IdleCheck,
    /// Internal (a store shared with other replicas): read the ring from the store again, so
    /// what another replica changed (a rotation, a version's state, a deletion) is seen here.
    Refresh,
    /// Internal: the ring as the store holds it, read when `generation` changes had been
    /// applied here (a later change of ours makes it stale: dropped).
    Reloaded {
        /// The ring's change count when the read started.
        generation: u64,
        /// The ring, or why it could not be read.
        ring: Result<Ring, Error>,
    },
    /// Fault injection.
    Crash,
}
