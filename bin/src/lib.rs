//! The `cryptoutil` binary as a library, so integration tests start the real thing in-process.
//!
//! # Layout
//! - [`cli`]: the command line and the dispatch of subcommands.
//! - [`config`]: `AppConfig`, layered loading with provenance, redacted rendering.
//! - [`run`]: start services (unseal, certificates, stores, actors, listeners) and drain them.
//! - [`enroll`]: certificates from the CA, with the `ca_fallback_mode` while it is away.
//! - [`federation`]: the federated peers the configuration names, and their credentials.
//! - [`pki`]: dynamic and static listener certificates.
//! - [`client`]: the commands that talk to a running service (healthcheck, supervision).
//! - [`telemetry`]: logging setup.
//! - [`files`]: atomic file writes.

pub mod cli;
pub mod client;
pub mod config;
pub mod enroll;
pub mod federation;
pub mod files;
pub mod pki;
pub mod reference;
pub mod run;
pub mod sealed;
pub mod telemetry;

/// Exit status for an invalid configuration or command line (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
