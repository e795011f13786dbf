//! Storage for cryptoutil: redb repositories behind the key barrier.
//!
//! Everything secret is encrypted before it reaches a table: unseal key -> root key ->
//! intermediate key -> content key -> record, all AES-256-GCM. The unseal key is rebuilt from
//! M-of-N share files; the root key is stored only wrapped by it.
//!
//! # Layout
//! - [`backend`]: the `Backend` trait (tables of byte keys and values) and its redb implementation.
//! - [`postgres`]: the PostgreSQL implementation, for replicas sharing one database.
//! - [`barrier`]: the key hierarchy and the sealing of records.
//! - [`store`]: `Store`, one per service: a backend with an unsealed barrier.
//! - [`unseal`]: reading share files, and the development share a first run generates.
//! - [`tables`]: every table name, with its version.
//! - [`config`]: the barrier configuration, `BarrierConfig`.
//! - [`error`]: the crate's error enum.

pub mod backend;
pub mod barrier;
pub mod config;
pub mod error;
pub mod postgres;
pub mod store;
pub mod tables;
pub mod unseal;

pub use backend::{Backend, RedbBackend};
pub use barrier::Barrier;
pub use config::BarrierConfig;
pub use error::Error;
pub use postgres::{PgOptions, PostgresBackend};
pub use store::Store;
pub use tables::Table;
