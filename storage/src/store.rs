//! `Store`: one per service, a backend with an unsealed barrier in front of it.

use std::path::Path;
use std::sync::RwLock;

use cryptoutil_protocols::unseal::UnsealKey;
use zeroize::Zeroizing;

use crate::backend::{Backend, RedbBackend, Write};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::tables::Table;

/// Opened records: key and plaintext (zeroized on drop).
pub type OpenedRecords = Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>;

/// One opened record: key and plaintext.
pub type OpenedRecord = (Vec<u8>, Zeroizing<Vec<u8>>);

/// Records opened one by one: key and plaintext, or why that record does not open.
pub type OpenedEach = Vec<(Vec<u8>, Result<Zeroizing<Vec<u8>>, Error>)>;

/// A service's storage. Synchronous: actors call it from `spawn_blocking`.
pub struct Store {
    backend: Box<dyn Backend>,
    barrier: RwLock<Barrier>,
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

impl Store {
    /// Opens (or creates) the redb file at `path` and unseals its barrier.
    pub fn open_redb(path: &Path, unseal: &UnsealKey) -> Result<Self, Error> {
        let backend = RedbBackend::open(path)?;
        Self::open(Box::new(backend), unseal, &path.display().to_string())
    }

    /// Unseals the barrier of any backend; `name` appears in errors and logs.
    pub fn open(backend: Box<dyn Backend>, unseal: &UnsealKey, name: &str) -> Result<Self, Error> {
        let barrier = Barrier::unseal(backend.as_ref(), unseal, name)?;
        Ok(Self {
            backend,
            barrier: RwLock::new(barrier),
            name: name.to_owned(),
        })
    }

    /// Seals `plaintext` and stores it durably under `table`/`key`.
    pub fn put_sealed(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<(), Error> {
        let write = self.sealed_write(table, key, plaintext)?;
        self.backend.apply(vec![write])
    }

    /// Reads and opens a sealed record.
    pub fn get_sealed(
        &self,
        table: Table,
        key: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        match self.backend.get(table, key)? {
            None => Ok(None),
            Some(envelope) => self.barrier().open(table, key, &envelope).map(Some),
        }
    }

    /// Seals `plaintext` for `table`/`key` without storing it (for records kept outside the
    /// backend, such as the audit log's file); [`Store::open_envelope`] opens it.
    pub fn seal(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        self.barrier().seal(table, key, plaintext)
    }

    /// Opens what [`Store::seal`] sealed for the same `table`/`key`.
    pub fn open_envelope(
        &self,
        table: Table,
        key: &[u8],
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.barrier().open(table, key, envelope)
    }

    /// A sealed put for an atomic batch passed to [`Store::apply`].
    pub fn sealed_write(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<Write, Error> {
        let value = self.barrier().seal(table, key, plaintext)?;
        Ok(Write::Put {
            table,
            key: key.to_vec(),
            value,
        })
    }

    /// A sealed insert for [`Store::apply`] that fails the whole batch if `key` already exists.
    pub fn sealed_create(
        &self,
        table: Table,
        key: &[u8],
        plaintext: &[u8],
    ) -> Result<Write, Error> {
        let value = self.barrier().seal(table, key, plaintext)?;
        Ok(Write::Create {
            table,
            key: key.to_vec(),
            value,
        })
    }

    /// At most `limit` sealed records of `table` from key `from` on, in key order, each opened
    /// on its own (one that fails authentication does not hide the others).
    pub fn range_opened(
        &self,
        table: Table,
        from: &[u8],
        limit: usize,
    ) -> Result<OpenedEach, Error> {
        let barrier = self.barrier();
        Ok(self
            .backend
            .range(table, from, limit)?
            .into_iter()
            .map(|(k, v)| {
                let plain = barrier.open(table, &k, &v);
                (k, plain)
            })
            .collect())
    }

    /// The sealed record of `table` with the greatest key, opened.
    pub fn last_sealed(&self, table: Table) -> Result<Option<OpenedRecord>, Error> {
        match self.backend.last(table)? {
            None => Ok(None),
            Some((k, v)) => {
                let plain = self.barrier().open(table, &k, &v)?;
                Ok(Some((k, plain)))
            }
        }
    }

    /// Stores a value that is not secret (metadata, public certificates) as it is.
    pub fn put_plain(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.backend.apply(vec![Write::Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        }])
    }

    /// Reads a value stored with [`Store::put_plain`].
    pub fn get_plain(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.backend.get(table, key)
    }

    /// Every sealed record of `table` whose key starts with `prefix`, opened: (key, plaintext).
    pub fn scan_sealed(&self, table: Table, prefix: &[u8]) -> Result<OpenedRecords, Error> {
        let barrier = self.barrier();
        self.backend
            .scan(table, prefix)?
            .into_iter()
            .map(|(k, v)| barrier.open(table, &k, &v).map(|plain| (k, plain)))
            .collect()
    }

    /// [`Backend::apply_after_last`]: `build` gets the last record of `table` opened (`None`
    /// for an empty table) and returns the writes, applied with no other such append to
    /// `table` in between, whichever process of the shared store makes it.
    pub fn apply_after_last(
        &self,
        table: Table,
        build: &mut dyn FnMut(Option<OpenedRecord>) -> Result<Vec<Write>, Error>,
    ) -> Result<(), Error> {
        self.backend.apply_after_last(table, &mut |last| {
            let opened = match last {
                None => None,
                Some((k, v)) => {
                    let plain = self.barrier().open(table, &k, &v)?;
                    Some((k, plain))
                }
            };
            build(opened)
        })
    }

    /// Deletes a record durably.
    pub fn delete(&self, table: Table, key: &[u8]) -> Result<(), Error> {
        self.backend.apply(vec![Write::Delete {
            table,
            key: key.to_vec(),
        }])
    }

    /// Applies writes atomically and durably.
    pub fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.backend.apply(writes)
    }

    /// Adds a content key for new records; older records keep opening.
    pub fn rotate_content_key(&self) -> Result<u32, Error> {
        let mut barrier = self
            .barrier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        barrier.rotate_content_key(self.backend.as_ref())
    }

    /// The content key new records are sealed with.
    pub fn active_content_key(&self) -> u32 {
        self.barrier().active_content_key()
    }

    /// The store's name (its file path for redb).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn barrier(&self) -> std::sync::RwLockReadGuard<'_, Barrier> {
        // A panic while holding the lock cannot leave the barrier half-changed: rotation
        // changes memory only after the durable write succeeded.
        self.barrier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
