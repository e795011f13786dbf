//! Messages of the `Idp` actor.

use ractor::RpcReplyPort;
use zeroize::Zeroizing;

use super::state::{Attempt, Check, Opened};
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
    /// The user passed their password and has another factor: wait for it.
    Begin {
        /// The user.
        user: Credential,
        /// The pending request.
        challenge: String,
        /// The factors passed so far.
        amr: Vec<String>,
        /// The session's `sid`, for a step up.
        sid: Option<String>,
        /// The waiting sign-in's token.
        reply: RpcReplyPort<Result<Zeroizing<String>, Error>>,
    },
    /// A code is about to be checked for a waiting sign-in: spend an attempt.
    Attempt {
        /// Its token.
        token: Zeroizing<String>,
        /// The pending request it is for.
        challenge: String,
        /// The user, or why not.
        reply: RpcReplyPort<Result<Attempt, Error>>,
    },
    /// A waiting sign-in passed its factor: open a session.
    Finish {
        /// Its token.
        token: Zeroizing<String>,
        /// The pending request it is for.
        challenge: String,
        /// The factor's `amr`.
        amr: &'static str,
        /// The session.
        reply: RpcReplyPort<Result<Opened, Error>>,
    },
    /// The user passed their factors: open a session.
    Open {
        /// The user.
        user: Credential,
        /// How (RFC 8176 `amr`).
        amr: Vec<String>,
        /// The session.
        reply: RpcReplyPort<Result<Opened, Error>>,
    },
    /// The user of a waiting sign-in (nothing spent).
    Waiting {
        /// Its token.
        token: Zeroizing<String>,
        /// The pending request it is for.
        challenge: String,
        /// The user and what they passed so far (`amr`), while it waits.
        reply: RpcReplyPort<Result<Option<super::state::Waiting>, Error>>,
    },
    /// One rationed use under `name` (checked and counted at once): whether it may go ahead.
    Ration {
        /// The tenant.
        tenant: String,
        /// What is rationed (`mail:<address>`).
        name: String,
        /// Whether it may.
        reply: RpcReplyPort<Result<bool, Error>>,
    },
    /// Start a WebAuthn ceremony: a new challenge under `key`, bound to `bind`.
    Ceremony {
        /// The page's token or cookie, with what the ceremony is for.
        key: Zeroizing<String>,
        /// What it is bound to.
        bind: String,
        /// The challenge.
        reply: RpcReplyPort<Result<Vec<u8>, Error>>,
    },
    /// Take a WebAuthn ceremony's challenge (once).
    TakeCeremony {
        /// As started.
        key: Zeroizing<String>,
        /// As started.
        bind: String,
        /// The challenge, if the ceremony is live.
        reply: RpcReplyPort<Result<Option<Vec<u8>>, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
    /// Replicas share the store: `msg`, with the records it decides on as the store holds them.
    Fetched {
        /// What was read.
        fetched: Box<super::shared::Fetched>,
        /// The message to decide now.
        msg: Box<IdpMsg>,
    },
    /// Replicas share the store: delete what expired.
    Sweep,
}

impl IdpMsg {
    /// Answers the waiting caller, if any, with `e` (what it needed could not be read).
    pub fn refuse(self, e: Error) {
        match self {
            IdpMsg::Session { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Check { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Failed { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Begin { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Attempt { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Finish { reply, .. } | IdpMsg::Open { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Waiting { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Ration { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Ceremony { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::TakeCeremony { reply, .. } => drop(reply.send(Err(e))),
            IdpMsg::Fetched { msg, .. } => msg.refuse(e),
            IdpMsg::End { .. } | IdpMsg::Crash | IdpMsg::Sweep => {
                tracing::warn!(error = %e, "an identity-idp message failed unanswered")
            }
        }
    }
}
