//! The `Backend` trait: tables of byte keys and byte values with atomic batches. redb is the
//! embedded implementation; [`crate::postgres`] is the second, for replicas sharing one
//! database, with the barrier and repositories above both unchanged.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::Error;
use crate::tables::Table;

/// One write in a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Insert or replace.
    Put {
        /// Target table.
        table: Table,
        /// Record key.
        key: Vec<u8>,
        /// Record value (already sealed where secret).
        value: Vec<u8>,
    },
    /// Insert; the whole batch fails with [`Error::Exists`] if the key is already there.
    Create {
        /// Target table.
        table: Table,
        /// Record key.
        key: Vec<u8>,
        /// Record value (already sealed where secret).
        value: Vec<u8>,
    },
    /// Remove if present.
    Delete {
        /// Target table.
        table: Table,
        /// Record key.
        key: Vec<u8>,
    },
}

/// Key/value pairs, as `scan` returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One key/value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Synchronous storage: call it from `spawn_blocking`, never from an async task directly.
pub trait Backend: Send + Sync + 'static {
    /// Reads one value.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    /// Lists `(key, value)` pairs whose key starts with `prefix`, in key order.
    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, Error>;
    /// At most `limit` `(key, value)` pairs whose key is at least `from`, in key order.
    fn range(&self, table: Table, from: &[u8], limit: usize) -> Result<Entries, Error>;
    /// The pair with the greatest key, if the table holds any.
    fn last(&self, table: Table) -> Result<Option<Entry>, Error>;
    /// Applies every write or none, durably (the commit is on disk when this returns).
    fn apply(&self, writes: Vec<Write>) -> Result<(), Error>;

    /// Reads the pair with the greatest key of `table` and applies what `build` makes of it,
    /// with no other `apply_after_last` on `table` in between, whoever shares the store (an
    /// append-only log whose next record depends on the last: the audit chain). `build`
    /// failing applies nothing. By default, for a store only one process opens: [`Self::last`]
    /// then [`Self::apply`] (its one caller per table is serialized by its owner).
    fn apply_after_last(
        &self,
        table: Table,
        build: &mut dyn FnMut(Option<Entry>) -> Result<Vec<Write>, Error>,
    ) -> Result<(), Error> {
        let last = self.last(table)?;
        self.apply(build(last)?)
    }
}

/// The most memory redb's page cache of one file holds (redb's default is 1 GiB per file,
/// which a busy CA reaches in minutes and the eight services of a suite would hold eight times).
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// redb: one file per service, commits fsynced before they return.
pub struct RedbBackend {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbBackend {
    /// Opens or creates the file and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                what: "creating directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        // Created owner-only before redb opens it: the contents are sealed, but their size and
        // layout are nobody else's business either.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| Error::Io {
                    what: "creating database file",
                    path: path.to_owned(),
                    source,
                })?;
        }
        let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&repaired);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |_| flag.store(true, std::sync::atomic::Ordering::Relaxed))
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                    path: path.to_owned(),
                },
                other => Error::Database {
                    op: "open",
                    source: other.into(),
                },
            })?;
        if repaired.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(path = %path.display(), "database was not closed cleanly; redb repaired it");
        }
        let txn = db
            .begin_write()
            .map_err(|e| Error::db("begin write")(e.into()))?;
        for table in Table::ALL {
            txn.open_table(table.definition())
                .map_err(|e| Error::db("create table")(e.into()))?;
        }
        txn.commit().map_err(|e| Error::db("commit")(e.into()))?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// True when the redb file at `path` was not closed cleanly (it would need a repair). Opens and
/// closes the file without repairing or changing it.
pub fn needs_repair(path: &Path) -> Result<bool, Error> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::clone(&flag);
    let result = Database::builder()
        .set_repair_callback(move |session| {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
            session.abort();
        })
        .open(path);
    match result {
        Ok(db) => {
            drop(db);
            Ok(flag.load(std::sync::atomic::Ordering::Relaxed))
        }
        Err(redb::DatabaseError::RepairAborted) => Ok(true),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(Error::Locked {
            path: path.to_owned(),
        }),
        Err(other) => Err(Error::Database {
            op: "open",
            source: other.into(),
        }),
    }
}

impl RedbBackend {
    fn read(
        &self,
        table: Table,
    ) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::db("begin read")(e.into()))?;
        txn.open_table(table.definition())
            .map_err(|e| Error::db("open table")(e.into()))
    }
}

impl Backend for RedbBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let t = self.read(table)?;
        let value = t.get(key).map_err(|e| Error::db("get")(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, Error> {
        let t = self.read(table)?;
        let mut out = Vec::new();
        for entry in t
            .range(prefix..)
            .map_err(|e| Error::db("range")(e.into()))?
        {
            let (k, v) = entry.map_err(|e| Error::db("range")(e.into()))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn range(&self, table: Table, from: &[u8], limit: usize) -> Result<Entries, Error> {
        let t = self.read(table)?;
        let mut out = Vec::new();
        for entry in t
            .range(from..)
            .map_err(|e| Error::db("range")(e.into()))?
            .take(limit)
        {
            let (k, v) = entry.map_err(|e| Error::db("range")(e.into()))?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn last(&self, table: Table) -> Result<Option<Entry>, Error> {
        let t = self.read(table)?;
        let last = t.last().map_err(|e| Error::db("last")(e.into()))?;
        Ok(last.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| Error::db("begin write")(e.into()))?;
        for w in writes {
            match w {
                Write::Put { table, key, value } => {
                    let mut t = txn
                        .open_table(table.definition())
                        .map_err(|e| Error::db("open table")(e.into()))?;
                    t.insert(key.as_slice(), value.as_slice())
                        .map_err(|e| Error::db("insert")(e.into()))?;
                }
                Write::Create { table, key, value } => {
                    let mut t = txn
                        .open_table(table.definition())
                        .map_err(|e| Error::db("open table")(e.into()))?;
                    let old = t
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| Error::db("insert")(e.into()))?;
                    if old.is_some() {
                        // Dropping the transaction uncommitted aborts every write of the batch.
                        return Err(Error::Exists {
                            table: table.name(),
                            key_hint: crate::error::key_hint(&key),
                        });
                    }
                }
                Write::Delete { table, key } => {
                    let mut t = txn
                        .open_table(table.definition())
                        .map_err(|e| Error::db("open table")(e.into()))?;
                    t.remove(key.as_slice())
                        .map_err(|e| Error::db("remove")(e.into()))?;
                }
            }
        }
        txn.commit().map_err(|e| Error::db("commit")(e.into()))
    }
}
