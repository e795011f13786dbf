//! The `Authz` actor: identity-authz's tenants, OAuth clients, users and token signing keys,
//! persisted sealed through the key barrier (`identity_*_v1` tables), so a restart loses nothing
//! issued. Token requests are decided in the mailbox (a map lookup and an HMAC); the access token
//! is signed on the caller's task with the key the actor hands out. Key generation, password
//! hashing and store writes run on blocking threads and come back as `Merge` messages.

pub mod admin;
pub mod backchannel;
pub mod flow;
mod handle;
pub mod model;
mod msg;
mod state;
mod tokens;

use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

pub use handle::AuthzHandle;
pub use model::{
    AuthMethod, BootstrapCredentials, Client, ClientAuth, Tenant, TokenGrant, TokenRequest, User,
    API_SCOPES, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, DPOP_WINDOW, OIDC_SCOPES, REFRESH_TOKEN,
    TLS_CLIENT_AUTH,
};
pub use msg::{AuthzMsg, Then};
pub use state::{AuthzConfig, AuthzState, Loaded};

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Authz;

/// identity-authz's part of its service: the `Authz` actor.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::IdentityAuthz,
    build,
};

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), ractor::SpawnErr> {
    let config = ctx
        .args
        .settings
        .get::<AuthzConfig>()
        .cloned()
        .ok_or_else(|| {
            ractor::SpawnErr::StartupFailed("identity-authz needs its configuration".into())
        })?;
    let slot: crate::slot::Slot<AuthzMsg> = crate::slot::Slot::new("Authz");
    let args = AuthzArgs {
        store: Arc::clone(ctx.store),
        config,
        audit: ctx.audit.clone(),
    };
    parts.actor::<Authz>(ctx.service, "authz", &slot, args, || AuthzMsg::Crash);
    parts.handles.insert(AuthzHandle::new(
        slot,
        ctx.audit.clone(),
        ctx.config.ask_timeout,
    ));
    Ok(())
}

/// Start arguments.
#[derive(Debug, Clone)]
pub struct AuthzArgs {
    /// identity-authz's store.
    pub store: Arc<Store>,
    /// Its settings.
    pub config: AuthzConfig,
    /// Its audit log: administration is recorded in the same transaction as the change.
    pub audit: AuditHandle,
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
        let AuthzArgs {
            store,
            config,
            audit,
        } = args;
        let mut state =
            tokio::task::spawn_blocking(move || AuthzState::load(store, config)).await??;
        state.audit = Some(audit);
        state.started(crate::now_unix());
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
                let decision = st.token(&request, crate::now_unix());
                if decision.persist.is_empty() {
                    let _ = reply.send(decision.result);
                } else {
                    persist_then(
                        &me,
                        st,
                        decision.persist,
                        Then::Token(reply, decision.result),
                    );
                }
            }
            AuthzMsg::Push {
                client,
                params,
                reply,
            } => {
                let _ = reply.send(st.push_request(&client, &params, crate::now_unix()));
            }
            AuthzMsg::Authorize { params, reply } => {
                let _ = reply.send(Ok(st.authorize(&params, crate::now_unix())));
            }
            AuthzMsg::SignInRequest { challenge, reply } => {
                let _ = reply.send(st.sign_in_request(&challenge, crate::now_unix()));
            }
            AuthzMsg::Credential {
                tenant,
                username,
                reply,
            } => {
                let _ = reply.send(Ok(st.credential(&tenant, &username)));
            }
            AuthzMsg::SignedIn {
                challenge,
                subject,
                reply,
            } => {
                let _ = reply.send(st.signed_in(&challenge, subject, crate::now_unix()));
            }
            AuthzMsg::Stands { subject, reply } => {
                let _ = reply.send(Ok(st.stands(&subject)));
            }
            AuthzMsg::LoginRequired { challenge, reply } => {
                let _ = reply.send(st.login_required(&challenge, crate::now_unix()));
            }
            AuthzMsg::Consent {
                challenge,
                allow,
                reply,
            } => match st.consent(&challenge, allow, crate::now_unix()) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok((to, persist)) if persist.is_empty() => {
                    let _ = reply.send(Ok(to));
                }
                Ok((to, persist)) => persist_then(&me, st, persist, Then::Consent(reply, to)),
            },
            AuthzMsg::Userinfo { token, reply } => {
                let _ = reply.send(st.userinfo(&token, crate::now_unix()));
            }
            AuthzMsg::Logout {
                id_token_hint,
                post_logout_redirect_uri,
                state,
                reply,
            } => match st.logout(
                id_token_hint.as_deref(),
                post_logout_redirect_uri.as_deref(),
                state.as_deref(),
                crate::now_unix(),
            ) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(out) => {
                    // The session is over whatever the write below does: its clients hear now.
                    backchannel::deliver(st.cfg.backchannel.as_ref(), out.notices);
                    if out.persist.is_empty() {
                        let _ = reply.send(Ok(out.redirect));
                    } else {
                        persist_then(&me, st, out.persist, Then::Logout(reply, out.redirect));
                    }
                }
            },
            AuthzMsg::Introspect {
                client,
                token,
                reply,
            } => {
                let _ = reply.send(st.introspect(&client, &token, crate::now_unix()));
            }
            AuthzMsg::Revoke {
                client,
                token,
                reply,
            } => match st.revocation(&client, &token, crate::now_unix()) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(persist) if persist.is_empty() => {
                    let _ = reply.send(Ok(()));
                }
                Ok(persist) => persist_then(&me, st, persist, Then::Revoke(reply)),
            },
            AuthzMsg::Admin { caller, op, reply } => {
                let audited = op.audited();
                match (st.admin(&caller, op), audited) {
                    (Ok(admin::Step::Answer(answer)), _) => {
                        let _ = reply.send(Ok(*answer));
                    }
                    (Err(e), None) => {
                        let _ = reply.send(Err(e));
                    }
                    // A refused change is recorded, then refused.
                    (Err(e), Some((name, key))) => match &st.audit {
                        Some(audit) => {
                            let entry = AuditEntry::new(&caller.who, &caller.tenant, &key, name)
                                .outcome(&Err::<(), _>(&e));
                            audit.submit(
                                entry,
                                Vec::new(),
                                Completion::new(move |written| {
                                    let _ = reply.send(written.and(Err(e)));
                                }),
                            );
                        }
                        None => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    (Ok(admin::Step::Write(write)), audited) => {
                        let (store, audit) = (st.store(), st.audit.clone());
                        let name = audited.map_or("admin", |(name, _)| name);
                        tokio::task::spawn_blocking(move || {
                            let prepared = match AuthzState::prepare_admin(&store, *write) {
                                Ok(p) => p,
                                Err(e) => {
                                    let _ = reply.send(Err(e));
                                    return;
                                }
                            };
                            let admin::PreparedAdmin {
                                writes,
                                loaded,
                                answer,
                                removal,
                                tenant,
                                key,
                            } = prepared;
                            // The change and its record commit together, or neither does.
                            let done = Completion::new(move |written| match written {
                                Ok(()) => {
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
                            });
                            match audit {
                                Some(audit) => audit.submit(
                                    AuditEntry::new(&caller.who, &tenant, &key, name),
                                    writes,
                                    done,
                                ),
                                None => done.finish_with(store.apply(writes).map_err(Into::into)),
                            }
                        });
                    }
                }
            }
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
                let _ = reply.send(Ok(st.jwks(crate::now_unix())));
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
                    let retire = current.as_ref().map(|k| (k, crate::now_unix()));
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
                    Then::Token(reply, result) => {
                        let _ = reply.send(result);
                    }
                    Then::Logout(reply, redirect) => {
                        let _ = reply.send(Ok(redirect));
                    }
                    Then::Consent(reply, to) => {
                        let _ = reply.send(Ok(to));
                    }
                }
            }
            AuthzMsg::Crash => st.crash(),
        }
        Ok(())
    }
}

/// Makes `persist` durable off the mailbox, then merges and answers `then` (or fails it).
/// The state already reflects the decision (a rotated family, a revoked one): if the write
/// fails the caller gets an error and, for a rotation, the old token then counts as reused, so
/// a storage failure fails closed.
fn persist_then(me: &ActorRef<AuthzMsg>, st: &AuthzState, persist: flow::Persist, then: Then) {
    let (me, store) = (me.clone(), st.store());
    tokio::task::spawn_blocking(move || match AuthzState::persist_flow(&store, &persist) {
        Ok(loaded) => {
            let _ = me.cast(AuthzMsg::Merge {
                loaded: Box::new(loaded),
                then,
            });
        }
        Err(e) => then.fail(e),
    });
}

#[cfg(test)]
mod tests;
