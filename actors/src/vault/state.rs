//! State of the `Vault` actor.

use std::sync::Arc;

use cryptoutil_storage::{Store, Table};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::service::ServiceName;

/// What `/admin/v1/healthz` shows of a store.
#[derive(Debug, Clone, Serialize)]
pub struct VaultStatus {
    /// False once the barrier is unsealed (a running vault always holds an unsealed store).
    pub sealed: bool,
    /// The content key new records use.
    pub active_content_key: u32,
}

/// The actor's state.
#[derive(Debug)]
pub struct VaultState {
    service: ServiceName,
    store: Arc<Store>,
}

impl VaultState {
    /// State around an unsealed store.
    pub fn new(service: ServiceName, store: Arc<Store>) -> Self {
        Self { service, store }
    }

    /// Sealed state and active content key.
    pub fn status(&self) -> VaultStatus {
        VaultStatus {
            sealed: false,
            active_content_key: self.store.active_content_key(),
        }
    }

    /// The store, for blocking work off the mailbox.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// Blocking: seal and store.
    pub fn put_secret(store: &Store, key: &[u8], value: &[u8]) -> Result<(), Error> {
        Ok(store.put_sealed(Table::Records, key, value)?)
    }

    /// Blocking: read and open.
    pub fn get_secret(store: &Store, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        Ok(store.get_sealed(Table::Records, key)?)
    }

    /// Fault injection: panic, so supervision can be seen restarting the actor.
    pub fn crash(&self) {
        // INVARIANT: reachable only through the admin fault-injection route.
        #[allow(clippy::panic)]
        {
            panic!(
                "fault injection: {} vault actor panics on request",
                self.service
            );
        }
    }
}
