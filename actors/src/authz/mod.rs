//! The `Authz` actor: identity-authz's tenants, OAuth clients, users and token signing keys,
//! persisted sealed through the key barrier (`identity_*_v1` tables), so a restart loses nothing
//! issued. Token requests are decided in the mailbox (a map lookup and an HMAC); the access token
//! is signed on the caller's task with the key the actor hands out. Key generation, password
//! hashing and store writes run on blocking threads and come back as `Merge` messages.

pub mod admin;
mod handle;
mod msg;
mod state;
mod tokens;

use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use handle::AuthzHandle;
pub use msg::{
    AuthMethod, AuthzMsg, BootstrapCredentials, ClientAuth, Then, TokenGrant, TokenRequest,
};
pub use state::{
    AuthzConfig, AuthzState, Client, Loaded, Tenant, User, API_SCOPES, CLIENT_CREDENTIALS,
};

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Authz;

/// Start arguments.
#[derive(Debug, Clone)]
pub struct AuthzArgs {
    /// identity-authz's store.
    pub store: Arc<Store>,
    /// Its settings.
    pub config: AuthzConfig,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Actor for Authz {
    type Msg = AuthzMsg;
    type State = AuthzState;
    type Arguments = AuthzArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<AuthzMsg>,
        args: AuthzArgs,
    ) -> Result<AuthzState, ActorProcessingErr> {
        let state = tokio::task::spawn_blocking(move || AuthzState::load(args.store, args.config))
            .await??;
        Ok(state)
    }

    async fn handle(
        &self,
        me: ActorRef<AuthzMsg>,
        msg: AuthzMsg,
        st: &mut AuthzState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AuthzMsg::Token { request, reply } => {
                let _ = reply.send(st.token(&request, now_unix()));
            }
            AuthzMsg::Introspect {
                client,
                token,
                reply,
            } => {
                let _ = reply.send(st.introspect(&client, &token, now_unix()));
            }
            AuthzMsg::Revoke {
                client,
                token,
                reply,
            } => match st.revocation(&client, &token, now_unix()) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(None) => {
                    let _ = reply.send(Ok(()));
                }
                Ok(Some((jti, exp))) => {
                    let store = st.store();
                    tokio::task::spawn_blocking(move || {
                        match AuthzState::persist_revocation(&store, &jti, exp) {
                            Ok(loaded) => {
                                let _ = me.cast(AuthzMsg::Merge {
                                    loaded: Box::new(loaded),
                                    then: Then::Revoke(reply),
                                });
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    });
                }
            },
            AuthzMsg::Admin { caller, op, reply } => match st.admin(&caller, op) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(admin::Step::Answer(answer)) => {
                    let _ = reply.send(Ok(answer));
                }
                Ok(admin::Step::Write(write)) => {
                    let store = st.store();
                    tokio::task::spawn_blocking(move || {
                        match AuthzState::persist_admin(&store, *write) {
                            Ok((loaded, answer, removal)) => {
                                let _ = me.cast(AuthzMsg::AdminDone {
                                    loaded: Box::new(loaded),
                                    removal,
                                    answer,
                                    reply,
                                });
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    });
                }
            },
            AuthzMsg::AdminDone {
                loaded,
                removal,
                answer,
                reply,
            } => {
                st.merge(*loaded);
                if let Some(r) = removal {
                    st.remove(r);
                }
                let _ = reply.send(Ok(answer));
            }
            AuthzMsg::Jwks { reply } => {
                let _ = reply.send(Ok(st.jwks(now_unix())));
            }
            AuthzMsg::Metadata { reply } => {
                let _ = reply.send(Ok(st.metadata()));
            }
            AuthzMsg::Bootstrap { reply } => {
                if !st.needs_bootstrap() {
                    let _ = reply.send(Ok(None));
                    return Ok(());
                }
                let (store, pepper) = (st.store(), st.pepper());
                let audiences = st.audiences();
                tokio::task::spawn_blocking(move || {
                    match AuthzState::bootstrap_records(&store, &pepper, audiences) {
                        Ok((loaded, creds)) => {
                            let _ = me.cast(AuthzMsg::Merge {
                                loaded: Box::new(loaded),
                                then: Then::Bootstrap(reply, creds),
                            });
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                });
            }
            AuthzMsg::RotateSigningKey { reply } => {
                let store = st.store();
                let current = st.current_key();
                tokio::task::spawn_blocking(move || {
                    let retire = current.as_ref().map(|k| (k, now_unix()));
                    match AuthzState::new_signing_key(&store, retire) {
                        Ok(loaded) => {
                            let kid = loaded.first_kid();
                            let _ = me.cast(AuthzMsg::Merge {
                                loaded: Box::new(loaded),
                                then: Then::Rotate(reply, kid),
                            });
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                });
            }
            AuthzMsg::Merge { loaded, then } => {
                st.merge(*loaded);
                match then {
                    Then::Bootstrap(reply, creds) => {
                        let _ = reply.send(Ok(Some(creds)));
                    }
                    Then::Rotate(reply, kid) => {
                        let _ = reply.send(Ok(kid));
                    }
                    Then::Revoke(reply) => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            AuthzMsg::Crash => st.crash(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
