//! The `Sessions` actor: a service's browser sign-ins and sessions. A service signs browsers in
//! as a confidential OAuth client of identity-authz (code flow, PKCE S256, a nonce, the
//! sign-in bound to the browser by a cookie); the code is exchanged over TLS at the token
//! endpoint on a task of its own (the mailbox never waits on the network). A session stands for
//! the access token it was given: every request through it is validated like a bearer token,
//! and it ends when that token expires. Sessions live in memory: a restart signs browsers out
//! (the identity-idp session signs them in again without a password).

mod state;

use std::time::Duration;

use cryptoutil_federation::Method;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use zeroize::Zeroizing;

pub use state::{safe_return_to, Begun, BrowserLogin, Exchange, SessionsState, Started};

use crate::ask::ask;
use crate::error::Error;
use crate::slot::Slot;

/// A live session's access token and CSRF token.
pub type SessionTokens = (Zeroizing<String>, Zeroizing<String>);

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Sessions;

/// Start arguments.
#[derive(Clone, Debug)]
pub struct SessionsArgs {
    /// How to sign in (`None`: no identity-authz to sign in at).
    pub login: Option<BrowserLogin>,
}

/// Messages.
pub enum SessionsMsg {
    /// Start a sign-in.
    Begin {
        /// Where to go afterwards (a local /browser/ path).
        return_to: Option<String>,
        /// The authorization URL and the binding cookie.
        reply: RpcReplyPort<Result<Begun, Error>>,
    },
    /// The browser is back with a code.
    Callback {
        /// The callback's query parameters.
        params: Vec<(String, String)>,
        /// The binding cookie.
        binding: Option<Zeroizing<String>>,
        /// The new session.
        reply: RpcReplyPort<Result<Started, Error>>,
    },
    /// The token endpoint answered.
    Exchanged {
        /// What was exchanged.
        exchange: Exchange,
        /// The answer (JSON) or why not.
        answer: Result<Value, Error>,
        /// Whom to answer.
        reply: RpcReplyPort<Result<Started, Error>>,
    },
    /// The session a cookie names.
    Lookup {
        /// The cookie's value.
        cookie: Zeroizing<String>,
        /// (access token, CSRF token).
        reply: RpcReplyPort<Result<Option<SessionTokens>, Error>>,
    },
    /// Sign out: the session ends; the answer is identity-authz's logout URL.
    End {
        /// The cookie's value.
        cookie: Zeroizing<String>,
        /// Where to send the browser.
        reply: RpcReplyPort<Result<String, Error>>,
    },
    /// Fault injection.
    Crash,
}

fn no_login() -> Error {
    Error::NotFound {
        what: "browser sign-in (no identity-authz configured)",
    }
}

impl Actor for Sessions {
    type Msg = SessionsMsg;
    type State = (SessionsArgs, SessionsState);
    type Arguments = SessionsArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SessionsMsg>,
        args: SessionsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((args, SessionsState::default()))
    }

    async fn handle(
        &self,
        me: ActorRef<SessionsMsg>,
        msg: SessionsMsg,
        (args, st): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionsMsg::Begin { return_to, reply } => {
                let answer = match &args.login {
                    Some(l) => st.begin(l, return_to.as_deref(), crate::now_unix()),
                    None => Err(no_login()),
                };
                let _ = reply.send(answer);
            }
            SessionsMsg::Callback {
                params,
                binding,
                reply,
            } => {
                let Some(login) = args.login.clone() else {
                    let _ = reply.send(Err(no_login()));
                    return Ok(());
                };
                match st.callback(
                    &login,
                    &params,
                    binding.as_deref().map(|b| b.as_str()),
                    crate::now_unix(),
                ) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(exchange) => {
                        tokio::spawn(async move {
                            let answer = redeem(&login, &exchange).await;
                            let _ = me.cast(SessionsMsg::Exchanged {
                                exchange,
                                answer,
                                reply,
                            });
                        });
                    }
                }
            }
            SessionsMsg::Exchanged {
                exchange,
                answer,
                reply,
            } => {
                let started = match (&args.login, answer) {
                    (Some(l), Ok(v)) => st.start(l, &exchange, &v, crate::now_unix()),
                    (None, _) => Err(no_login()),
                    (_, Err(e)) => Err(e),
                };
                let _ = reply.send(started);
            }
            SessionsMsg::Lookup { cookie, reply } => {
                let _ = reply.send(Ok(st.lookup(&cookie, crate::now_unix())));
            }
            SessionsMsg::End { cookie, reply } => {
                let hint = st.end(&cookie);
                let answer = match (&args.login, hint) {
                    (Some(l), Some(hint)) => Ok(cryptoutil_protocols::oauth::with_query(
                        &l.logout_url,
                        &[
                            ("id_token_hint", hint.as_str()),
                            ("post_logout_redirect_uri", l.post_logout_uri.as_str()),
                        ],
                    )),
                    (Some(l), None) => Ok(l.post_logout_uri.clone()),
                    (None, _) => Err(no_login()),
                };
                let _ = reply.send(answer);
            }
            SessionsMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: Sessions crash requested");
                }
            }
        }
        Ok(())
    }
}

/// The code exchange at identity-authz's token endpoint (client_secret_basic, over TLS).
async fn redeem(login: &BrowserLogin, ex: &Exchange) -> Result<Value, Error> {
    use cryptoutil_protocols::oauth::form_encode;
    let body = Zeroizing::new(format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        form_encode(&ex.code),
        form_encode(&login.redirect_uri),
        form_encode(&ex.verifier)
    ));
    let auth = cryptoutil_protocols::oauth::basic_header(&login.client_id, &login.client_secret);
    let unavailable = || Error::Unavailable {
        actor: "identity-authz token endpoint",
        why: crate::error::Unavailability::Timeout,
    };
    let response = login
        .client
        .clone()
        .with_timeout(Duration::from_secs(10))
        .send(
            Method::POST,
            &login.token_url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", auth.as_str()),
            ],
            body.as_bytes().to_vec().into(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(%e, "browser sign-in: the token endpoint is unreachable");
            unavailable()
        })?;
    if !response.status.is_success() {
        tracing::warn!(status = response.status.as_u16(), body = %response.text(), "browser sign-in: code refused");
        return Err(Error::BadRequest {
            reason: "identity-authz refused the code",
        });
    }
    serde_json::from_slice(&response.body).map_err(|_| Error::BadRequest {
        reason: "the token endpoint's answer is not JSON",
    })
}

/// Cloneable, restart-proof handle.
#[derive(Clone, Debug)]
pub struct SessionsHandle {
    slot: Slot<SessionsMsg>,
    timeout: Duration,
}

impl SessionsHandle {
    /// A handle reading `slot`.
    pub fn new(slot: Slot<SessionsMsg>, timeout: Duration) -> Self {
        Self { slot, timeout }
    }

    /// Starts a sign-in.
    pub async fn begin(&self, return_to: Option<String>) -> Result<Begun, Error> {
        ask(
            &self.slot,
            |reply| SessionsMsg::Begin { return_to, reply },
            self.timeout,
        )
        .await
    }

    /// Completes a sign-in (waits for the code exchange).
    pub async fn callback(
        &self,
        params: Vec<(String, String)>,
        binding: Option<Zeroizing<String>>,
    ) -> Result<Started, Error> {
        ask(
            &self.slot,
            |reply| SessionsMsg::Callback {
                params,
                binding,
                reply,
            },
            self.timeout.max(Duration::from_secs(12)),
        )
        .await
    }

    /// The session a cookie names.
    pub async fn lookup(&self, cookie: Zeroizing<String>) -> Result<Option<SessionTokens>, Error> {
        ask(
            &self.slot,
            |reply| SessionsMsg::Lookup { cookie, reply },
            self.timeout,
        )
        .await
    }

    /// Ends a session; where to send the browser.
    pub async fn end(&self, cookie: Zeroizing<String>) -> Result<String, Error> {
        ask(
            &self.slot,
            |reply| SessionsMsg::End { cookie, reply },
            self.timeout,
        )
        .await
    }
}
