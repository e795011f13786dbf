//! Messages of the `Vault` actor.

use ractor::RpcReplyPort;
use zeroize::Zeroizing;

use super::VaultStatus;
use crate::error::Error;

/// Secret bytes in messages: zeroized when the message or reply is dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// What the `Vault` actor does.
pub enum VaultMsg {
    /// Report sealed state and the active content key.
    Status {
        /// The status.
        reply: RpcReplyPort<Result<VaultStatus, Error>>,
    },
    /// Seal and store a secret record.
    PutSecret {
        /// Record key.
        key: Vec<u8>,
        /// Plaintext.
        value: Secret,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Read and open a secret record.
    GetSecret {
        /// Record key.
        key: Vec<u8>,
        /// The plaintext, if present.
        reply: RpcReplyPort<Result<Option<Secret>, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
}
