//! Messages of the `Idp` actor.

use ractor::RpcReplyPort;
use zeroize::Zeroizing;

use super::state::{Check, Opened};
use crate::error::Error;
use crate::identity::signin::{Credential, Subject};

/// What the `Idp` actor does.
pub enum IdpMsg {
    /// Who a sign-in session cookie stands for.
    Session {
        /// The cookie's value.
        cookie: Zeroizing<String>,
        /// The subject, while the session lasts.
        reply: RpcReplyPort<Result<Option<Subject>, Error>>,
    },
    /// Forget a session whose subject no longer stands.
    End {
        /// The cookie's value.
        cookie: Zeroizing<String>,
    },
    /// Before a factor runs: is the name locked out?
    Check {
        /// The tenant.
        tenant: String,
        /// The login name.
        username: String,
        /// Locked, or go on.
        reply: RpcReplyPort<Result<Check, Error>>,
    },
    /// A factor failed: count it against the name.
    Failed {
        /// The tenant.
        tenant: String,
        /// The login name.
        username: String,
        /// The message to show.
        reply: RpcReplyPort<Result<&'static str, Error>>,
    },
    /// The user passed their factors: open a session.
    Open {
        /// The user.
        user: Credential,
        /// The session.
        reply: RpcReplyPort<Result<Opened, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
}
