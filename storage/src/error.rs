//! The error enum of `cryptoutil-storage`.

use std::path::PathBuf;

/// Everything that can go wrong below the repositories.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database engine failed.
    #[error("database {op} failed: {source}")]
    Database {
        /// What we were doing.
        op: &'static str,
        /// The engine's error.
        #[source]
        source: redb::Error,
    },
    /// Another process holds the database file.
    #[error("database {path} is in use by another process")]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An unseal share file is unusable.
    #[error("unseal share file {path}: {source}")]
    ShareFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: cryptoutil_protocols::unseal::ShareError,
    },
    /// The shares could not be combined into an unseal key.
    #[error(transparent)]
    Shares(#[from] cryptoutil_protocols::unseal::ShareError),
    /// The unseal key does not open this store's root key.
    #[error("the unseal key does not open {path}: the shares belong to another data directory")]
    WrongUnsealKey {
        /// The database file.
        path: PathBuf,
    },
    /// No unseal share is configured and development generation is off.
    #[error("no unseal shares configured: set barrier.unseal.shares, or barrier.unseal.dev_generate for a development setup")]
    NoShares,
    /// A record failed authentication: it was altered, moved, or written under another key.
    #[error("record {table}/{key_hint} failed authentication")]
    Tampered {
        /// The table.
        table: &'static str,
        /// The record key, printed only when it is printable ASCII.
        key_hint: String,
    },
    /// A record's envelope is not one this version writes.
    #[error("record {table}/{key_hint} has an unknown envelope version {version}")]
    UnknownEnvelope {
        /// The table.
        table: &'static str,
        /// The record key.
        key_hint: String,
        /// The version byte found.
        version: u8,
    },
    /// A content or intermediate key named by a record is missing.
    #[error("barrier key {kind} {id} is missing")]
    MissingKey {
        /// Which layer.
        kind: &'static str,
        /// Its id.
        id: u32,
    },
    /// A write that must create a record found one already there.
    #[error("record {table}/{key_hint} already exists")]
    Exists {
        /// The table.
        table: &'static str,
        /// The record key.
        key_hint: String,
    },
    /// The PostgreSQL server refused or failed a statement.
    #[error("database {op} failed: {source}")]
    Postgres {
        /// What we were doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database cannot be reached now (down, restarting, overloaded, too slow): the
    /// operation did not complete, or its outcome is unknown; retry later.
    #[error("the database is unavailable ({op}): {reason}")]
    Unavailable {
        /// What we were doing.
        op: &'static str,
        /// What failed.
        reason: String,
    },
    /// `storage.postgres` cannot be used as configured.
    #[error("storage.postgres: {reason}")]
    PostgresConfig {
        /// What is wrong.
        reason: String,
    },
    /// The database's schema was migrated by a newer cryptoutil than this one.
    #[error("schema {schema} is at version {found}, newer than the {supported} this binary knows: run the newer cryptoutil (or restore the database)")]
    SchemaTooNew {
        /// The store's schema.
        schema: String,
        /// The version found.
        found: i32,
        /// The newest version this binary knows.
        supported: i32,
    },
    /// The crypto module failed (random generator or cipher setup).
    #[error("crypto failure in {op}")]
    Crypto {
        /// What we were doing.
        op: &'static str,
    },
}

impl Error {
    pub(crate) fn db(op: &'static str) -> impl FnOnce(redb::Error) -> Self {
        move |source| Error::Database { op, source }
    }
}

/// A key rendered for messages: printable ASCII as is, anything else as its length.
pub fn key_hint(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()) => s.to_owned(),
        _ => format!("<{} bytes>", key.len()),
    }
}
