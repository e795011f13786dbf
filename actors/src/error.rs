//! The error enum of `cryptoutil-actors`.

/// What a call to an actor can return besides its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The actor is restarting, stopped, or did not answer in time (HTTP 503).
    #[error("{actor} is unavailable ({why})")]
    Unavailable {
        /// Which actor.
        actor: &'static str,
        /// timeout, stopped or restarting.
        why: Unavailability,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] cryptoutil_storage::Error),
    /// A supervision path names no actor.
    #[error("no supervised actor at {path}")]
    NoSuchActor {
        /// The path asked for.
        path: String,
    },
    /// No such key for this tenant (also what another tenant's key looks like: ids do not leak).
    #[error("key not found")]
    KeyNotFound,
    /// No such record in the caller's tenant (also what another tenant's record looks like).
    #[error("{what} not found")]
    NotFound {
        /// What kind of record.
        what: &'static str,
    },
    /// The request conflicts with the resource's state (a change in progress, a latest version
    /// that must stay, a key scheduled for deletion).
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicts.
        what: &'static str,
    },
    /// A stored record does not decode: our fault, never the caller's (HTTP 500, logged with
    /// its table and key, counted).
    #[error("stored record {table}/{key} is corrupt ({what})")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key (printable, or its length).
        key: String,
        /// What it should have been.
        what: &'static str,
    },
    /// Something of ours failed that the caller cannot fix (the random generator, encoding a
    /// record): HTTP 500.
    #[error("internal error: {what}")]
    Internal {
        /// What failed.
        what: &'static str,
    },
    /// A protocol's own credential (an enrollment secret, a client certificate) is missing or
    /// wrong: HTTP 401.
    #[error("unauthenticated: {why}")]
    Unauthenticated {
        /// Why.
        why: &'static str,
    },
    /// Authenticated, but not allowed.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why.
        reason: &'static str,
    },
    /// A JOSE operation failed on the caller's input (bad token, wrong algorithm, bad signature).
    #[error(transparent)]
    Jose(#[from] cryptoutil_protocols::jose::JoseError),
    /// A CA request asks for what is not allowed; the error names the field.
    #[error("bad request: {0}")]
    Refused(cryptoutil_protocols::ca::CaError),
    /// The request is not acceptable.
    #[error("bad request: {reason}")]
    BadRequest {
        /// Why.
        reason: &'static str,
    },
    /// An OAuth token request was refused (RFC 6749 §5.2).
    #[error("OAuth error: {}", .0.code())]
    OAuth(cryptoutil_protocols::oauth::TokenError),
    /// An authorization request was refused (RFC 6749 §4.1.2.1 codes; pushed requests).
    #[error("authorization request refused: {code}: {why}", code = .0.code(), why = .1)]
    Authorize(cryptoutil_protocols::oauth::AuthorizeError, &'static str),
    /// The operation's audit record could not be written, so the operation fails (HTTP 503).
    #[error("the audit log could not record this operation")]
    AuditFailed,
    /// Fault injection is off in this configuration.
    #[error("fault injection is disabled (admin.danger_fault_injection)")]
    FaultInjectionDisabled,
}

impl From<cryptoutil_protocols::ca::Error> for Error {
    fn from(e: cryptoutil_protocols::ca::Error) -> Self {
        match e {
            cryptoutil_protocols::ca::Error::Refused(refused) => Error::Refused(refused),
            cryptoutil_protocols::ca::Error::Internal(e) => {
                tracing::error!(error = %e, "certificate work failed");
                Error::Internal {
                    what: "certificate work",
                }
            }
        }
    }
}

impl Error {
    /// The stored record this error blames, if it is one that failed to decode or
    /// authenticate: its table and key.
    pub fn corrupt_record(&self) -> Option<(&'static str, &str)> {
        use cryptoutil_storage::Error as S;
        match self {
            Error::Corrupt { table, key, .. }
            | Error::Storage(S::Tampered {
                table,
                key_hint: key,
            })
            | Error::Storage(S::UnknownEnvelope {
                table,
                key_hint: key,
                ..
            }) => Some((table, key)),
            _ => None,
        }
    }

    /// Whether this is the database being unreachable or too slow (retry later, HTTP 503)
    /// rather than a failure of ours: what was being done, and why it failed.
    pub fn database_unavailable(&self) -> Option<(&'static str, &str)> {
        match self {
            Error::Storage(cryptoutil_storage::Error::Unavailable { op, reason }) => {
                Some((op, reason))
            }
            _ => None,
        }
    }

    /// A stored record of `table` under `key` that does not decode as `what`.
    pub fn corrupt(table: cryptoutil_storage::Table, key: &[u8], what: &'static str) -> Self {
        Error::Corrupt {
            table: table.name(),
            key: cryptoutil_storage::error::key_hint(key),
            what,
        }
    }
}

/// Why an actor could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    /// No reply within the call's timeout.
    Timeout,
    /// The actor stopped or dropped the reply.
    Stopped,
    /// The supervisor is between a crash and the restart.
    Restarting,
    /// A federated peer it needs cannot be reached (its breaker is open, or calls fail).
    Unreachable,
}

impl std::fmt::Display for Unavailability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unavailability::Timeout => "timeout",
            Unavailability::Stopped => "stopped",
            Unavailability::Restarting => "restarting",
            Unavailability::Unreachable => "unreachable",
        })
    }
}
