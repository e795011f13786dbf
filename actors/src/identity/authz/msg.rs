//! Messages of the `Authz` actor, and what they carry.

use ractor::RpcReplyPort;
use serde_json::Value;
use zeroize::Zeroizing;

use super::flow::AuthorizeOutcome;
use super::model::{BootstrapCredentials, ClientAuth, TokenGrant, TokenRequest};
use super::state::Loaded;
use crate::error::Error;
use crate::identity::signin::{Credential, Next, SignInRequest, Subject};

/// What the `Authz` actor does.
pub enum AuthzMsg {
    /// Authenticate the client and decide a token request.
    Token {
        /// The request.
        request: TokenRequest,
        /// The grant, or `Error::OAuth`.
        reply: RpcReplyPort<Result<TokenGrant, Error>>,
    },
    /// RFC 7662 introspection by an authenticated client.
    Introspect {
        /// The asking client.
        client: ClientAuth,
        /// The token.
        token: Zeroizing<String>,
        /// `{"active": ...}` or `Error::OAuth(InvalidClient)`.
        reply: RpcReplyPort<Result<Value, Error>>,
    },
    /// RFC 7009 revocation by an authenticated client.
    Revoke {
        /// The asking client.
        client: ClientAuth,
        /// The token.
        token: Zeroizing<String>,
        /// Answered once a revocation is durable (or nothing was to revoke).
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Tenants, clients and users.
    Admin {
        /// Who asks.
        caller: super::admin::Caller,
        /// What.
        op: super::admin::AdminOp,
        /// The answer.
        reply: RpcReplyPort<Result<super::admin::AdminAnswer, Error>>,
    },
    /// An admin write is durable: merge it (and drop what it removed), then answer.
    AdminDone {
        /// Records to add.
        loaded: Box<Loaded>,
        /// A record to forget.
        removal: Option<super::model::Removal>,
        /// The answer.
        answer: super::admin::AdminAnswer,
        /// Whom to answer.
        reply: RpcReplyPort<Result<super::admin::AdminAnswer, Error>>,
    },
    /// The public JWK Set of the signing keys (current and still-overlapping retired ones).
    Jwks {
        /// `{"keys": [...]}`.
        reply: RpcReplyPort<Result<Value, Error>>,
    },
    /// OpenID Connect Discovery / RFC 8414 metadata.
    Metadata {
        /// The document.
        reply: RpcReplyPort<Result<Value, Error>>,
    },
    /// On first start (no tenant yet): create a tenant, a service client and an admin user.
    Bootstrap {
        /// `Some` the first time only.
        reply: RpcReplyPort<Result<Option<BootstrapCredentials>, Error>>,
    },
    /// Make a new signing key current; the old one stays published for the overlap.
    RotateSigningKey {
        /// The new key's kid.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Blocking work done: merge its records into the state.
    Merge {
        /// What was persisted.
        loaded: Box<Loaded>,
        /// Answered after the merge.
        then: Then,
    },
    /// The authorization endpoint.
    Authorize {
        /// Its query parameters (each at most once).
        params: Vec<(String, String)>,
        /// Where the browser goes.
        reply: RpcReplyPort<Result<AuthorizeOutcome, Error>>,
    },
    /// RFC 9126: a pushed authorization request.
    Push {
        /// The client.
        client: ClientAuth,
        /// The authorization request's parameters (client authentication removed).
        params: Vec<(String, String)>,
        /// The `request_uri` and its lifetime.
        reply: RpcReplyPort<Result<(String, u64), Error>>,
    },
    /// identity-idp opens the login page of the pending request `challenge`.
    SignInRequest {
        /// The pending request's id.
        challenge: String,
        /// What the page shows.
        reply: RpcReplyPort<Result<SignInRequest, Error>>,
    },
    /// identity-idp's factor checks a user.
    Credential {
        /// The tenant.
        tenant: String,
        /// The login name.
        username: String,
        /// The user, if there is one.
        reply: RpcReplyPort<Result<Option<Credential>, Error>>,
    },
    /// identity-idp signed `subject` in for `challenge`.
    SignedIn {
        /// The pending request's id.
        challenge: String,
        /// Who.
        subject: Subject,
        /// The code or the consent page; `None` if the subject no longer stands.
        reply: RpcReplyPort<Result<Option<Next>, Error>>,
    },
    /// Whether a session of `subject` still stands (not ended by a logout, its user the same),
    /// before identity-idp builds a step up on it.
    Stands {
        /// Who.
        subject: Subject,
        /// Whether it stands.
        reply: RpcReplyPort<Result<bool, Error>>,
    },
    /// `prompt=none` without a session.
    LoginRequired {
        /// The pending request's id.
        challenge: String,
        /// Back to the client with `login_required`.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// The consent page's answer.
    Consent {
        /// The pending request's id.
        challenge: String,
        /// Allowed or denied.
        allow: bool,
        /// Where the browser goes (answered once the consent is durable).
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// OpenID Connect userinfo for a bearer access token.
    Userinfo {
        /// The access token.
        token: Zeroizing<String>,
        /// The claims.
        reply: RpcReplyPort<Result<Value, Error>>,
    },
    /// RP-initiated logout.
    Logout {
        /// `id_token_hint`.
        id_token_hint: Option<String>,
        /// `post_logout_redirect_uri`.
        post_logout_redirect_uri: Option<String>,
        /// `state`.
        state: Option<String>,
        /// Where to send the browser, if anywhere; answered once revocations are durable.
        reply: RpcReplyPort<Result<Option<String>, Error>>,
    },
    /// Fault injection: panic inside the handler.
    Crash,
    /// Replicas share the store: `msg`, with the records it decides on as the store holds them.
    Fetched {
        /// What was read.
        fetched: Box<super::flow::shared::Fetched>,
        /// The message to decide now.
        msg: Box<AuthzMsg>,
    },
    /// Replicas share the store: time to read administration again (and now and then to sweep
    /// expired sign-in records).
    Tick,
    /// What a [`AuthzMsg::Tick`] read; dropped if the state changed since (`changes`).
    Reloaded {
        /// The state's change count when the read began.
        changes: u64,
        /// Tenants, clients, users, keys, revocations and consents; `None`: the read failed.
        loaded: Option<Box<Loaded>>,
    },
}

impl AuthzMsg {
    /// Answers the waiting caller, if any, with `e` (what it needed could not be read).
    pub fn refuse(self, e: Error) {
        match self {
            AuthzMsg::Token { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::Introspect { reply, .. } | AuthzMsg::Userinfo { reply, .. } => {
                drop(reply.send(Err(e)))
            }
            AuthzMsg::Revoke { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::Authorize { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::Push { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::SignInRequest { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::SignedIn { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::Stands { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::LoginRequired { reply, .. } | AuthzMsg::Consent { reply, .. } => {
                drop(reply.send(Err(e)))
            }
            AuthzMsg::Logout { reply, .. } => drop(reply.send(Err(e))),
            AuthzMsg::Fetched { msg, .. } => msg.refuse(e),
            _ => tracing::warn!(error = %e, "an identity-authz message failed unanswered"),
        }
    }
}

/// Whom to answer after a [`AuthzMsg::Merge`].
pub enum Then {
    /// A bootstrap.
    Bootstrap(
        RpcReplyPort<Result<Option<BootstrapCredentials>, Error>>,
        BootstrapCredentials,
    ),
    /// A rotation.
    Rotate(RpcReplyPort<Result<String, Error>>, String),
    /// A revocation.
    Revoke(RpcReplyPort<Result<(), Error>>),
    /// A token decision whose writes are durable.
    Token(
        RpcReplyPort<Result<TokenGrant, Error>>,
        Result<TokenGrant, Error>,
    ),
    /// A logout whose revocations are durable.
    Logout(RpcReplyPort<Result<Option<String>, Error>>, Option<String>),
    /// A consent that is durable: where the browser goes.
    Consent(RpcReplyPort<Result<String, Error>>, String),
}

impl Then {
    /// Answers the waiting caller with `e` (the write failed).
    pub fn fail(self, e: Error) {
        match self {
            Then::Bootstrap(r, _) => {
                let _ = r.send(Err(e));
            }
            Then::Rotate(r, _) => {
                let _ = r.send(Err(e));
            }
            Then::Revoke(r) => {
                let _ = r.send(Err(e));
            }
            Then::Token(r, _) => {
                let _ = r.send(Err(e));
            }
            Then::Logout(r, _) => {
                let _ = r.send(Err(e));
            }
            Then::Consent(r, _) => {
                let _ = r.send(Err(e));
            }
        }
    }
}
