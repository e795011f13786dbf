//! The typed handle to a `Vault` actor.

use std::time::Duration;

use zeroize::Zeroizing;

use super::{VaultMsg, VaultStatus};
use crate::error::Error;
use crate::slot::Slot;

/// Cloneable, restart-proof handle.
#[derive(Clone, Debug)]
pub struct VaultHandle {
    slot: Slot<VaultMsg>,
    timeout: Duration,
}

impl VaultHandle {
    /// A handle reading `slot`, asking with `timeout`.
    pub fn new(slot: Slot<VaultMsg>, timeout: Duration) -> Self {
        Self { slot, timeout }
    }

    /// Sealed state of the store.
    pub async fn status(&self) -> Result<VaultStatus, Error> {
        crate::ask::ask(&self.slot, |reply| VaultMsg::Status { reply }, self.timeout).await
    }

    /// Seals and stores a secret record durably.
    pub async fn put_secret(&self, key: Vec<u8>, value: Zeroizing<Vec<u8>>) -> Result<(), Error> {
        crate::ask::ask(
            &self.slot,
            |reply| VaultMsg::PutSecret { key, value, reply },
            self.timeout,
        )
        .await
    }

    /// Reads a secret record.
    pub async fn get_secret(&self, key: Vec<u8>) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        crate::ask::ask(
            &self.slot,
            |reply| VaultMsg::GetSecret { key, reply },
            self.timeout,
        )
        .await
    }
}
