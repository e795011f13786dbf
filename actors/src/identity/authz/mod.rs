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
use std::time::Duration;

use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

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

/// How often a replica sharing its store with others reads administration again (tenants,
/// clients, users, signing keys, revocations, consents): how long it may act on a stale one.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Expired sign-in records are swept from a shared store every this many refreshes.
const SWEEP_EVERY: u64 = 60;

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
        shared: ctx.args.shared_store,
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
    /// Other replicas share the store ([`flow::shared`]).
    pub shared: bool,
}

impl Actor for Authz {
    type Msg = AuthzMsg;
    type State = AuthzState;
    type Arguments = AuthzArgs;

    async fn pre_start(
        &self,
        me: ActorRef<AuthzMsg>,
        args: AuthzArgs,
    ) -> Result<AuthzState, ActorProcessingErr> {
        let AuthzArgs {
            store,
            config,
            audit,
            shared,
        } = args;
        let mut state =
            tokio::task::spawn_blocking(move || AuthzState::load(store, config)).await??;
        state.audit = Some(audit);
        if shared {
            // Ended sessions are in the store: a restart of this replica forgets none.
            state.share();
            me.send_interval(REFRESH, || AuthzMsg::Tick);
        } else {
            state.started(crate::now_unix());
        }
        Ok(state)
    }

    async fn handle(
        &self,
        me: ActorRef<AuthzMsg>,
        msg: AuthzMsg,
        st: &mut AuthzState,
    ) -> Result<(), ActorProcessingErr> {
        if st.shared() {
            if let Some(fetch) = fetch_for(&msg) {
                let store = st.store();
                tokio::task::spawn_blocking(move || match flow::shared::read(&store, fetch) {
                    Ok(fetched) => {
                        let _ = me.cast(AuthzMsg::Fetched {
                            fetched: Box::new(fetched),
                            msg: Box::new(msg),
                        });
                    }
                    Err(e) => msg.refuse(e),
                });
                return Ok(());
            }
        }
        decide(&me, msg, st);
        if st.shared() {
            if let Ok(left) = st.take_journal() {
                if !left.is_empty() {
                    tracing::error!(writes = left.len(), "sign-in records left unwritten");
                }
            }
        }
        Ok(())
    }
}

/// What `msg` decides on, when replicas share the store; `None`: nothing to read first.
fn fetch_for(msg: &AuthzMsg) -> Option<flow::shared::Fetch> {
    use flow::shared::{
        code_key, ended_key, pending_key, pushed_key, took_part_prefix, unverified_sid, used_key,
    };
    let mut f = flow::shared::Fetch::default();
    match msg {
        AuthzMsg::Token { request, .. } => match request.grant_type.as_str() {
            AUTHORIZATION_CODE => {
                let digest =
                    cryptoutil_protocols::oauth::token_digest(request.code.as_deref()?.as_bytes());
                f.flow = vec![code_key(&digest), used_key(&digest)];
            }
            REFRESH_TOKEN => {
                let (id, _) = request.refresh_token.as_deref()?.split_once('.')?;
                f.families = vec![id.to_owned()];
            }
            _ => return None,
        },
        AuthzMsg::Revoke { token, .. } => {
            let (id, _) = token.split_once('.')?;
            f.families = vec![id.to_owned()];
        }
        AuthzMsg::Authorize { params, .. } => {
            let uri = params
                .iter()
                .find(|(k, v)| k == "request_uri" && !v.is_empty())
                .map(|(_, v)| v)?;
            f.flow = vec![pushed_key(uri)];
        }
        AuthzMsg::SignInRequest { challenge, .. }
        | AuthzMsg::LoginRequired { challenge, .. }
        | AuthzMsg::Consent { challenge, .. } => f.flow = vec![pending_key(challenge)],
        AuthzMsg::SignedIn {
            challenge, subject, ..
        } => f.flow = vec![pending_key(challenge), ended_key(&subject.sid)],
        AuthzMsg::Stands { subject, .. } => f.flow = vec![ended_key(&subject.sid)],
        AuthzMsg::Logout { id_token_hint, .. } => {
            let sid = unverified_sid(id_token_hint.as_deref()?)?;
            f.flow = vec![ended_key(&sid)];
            f.prefixes = vec![took_part_prefix(&sid)];
            f.all_families = true;
        }
        _ => return None,
    }
    Some(f)
}

/// Decides `msg` on what the state holds.
fn decide(me: &ActorRef<AuthzMsg>, msg: AuthzMsg, st: &mut AuthzState) {
    let me = me.clone();
    match msg {
        AuthzMsg::Fetched { fetched, msg } => match st.absorb(*fetched) {
            Ok(()) => decide(&me, *msg, st),
            Err(e) => msg.refuse(e),
        },
        AuthzMsg::Tick => tick(&me, st),
        AuthzMsg::Reloaded { changes, loaded } => {
            st.reloading = false;
            match loaded {
                Some(loaded) if changes == st.changes => st.replace(*loaded),
                _ => {}
            }
        }
        AuthzMsg::Token { request, reply } => {
            let mut decision = st.token(&request, crate::now_unix());
            match st.take_journal() {
                Ok(journal) => decision.persist.flow = journal,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
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
            let pushed = st.push_request(&client, &params, crate::now_unix());
            settle(st, reply, pushed);
        }
        AuthzMsg::Authorize { params, reply } => {
            let outcome = st.authorize(&params, crate::now_unix());
            settle(st, reply, Ok(outcome));
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
            let next = st.signed_in(&challenge, subject, crate::now_unix());
            settle(st, reply, next);
        }
        AuthzMsg::Stands { subject, reply } => {
            let _ = reply.send(Ok(st.stands(&subject)));
        }
        AuthzMsg::LoginRequired { challenge, reply } => {
            let to = st.login_required(&challenge, crate::now_unix());
            settle(st, reply, to);
        }
        AuthzMsg::Consent {
            challenge,
            allow,
            reply,
        } => match st
            .consent(&challenge, allow, crate::now_unix())
            .and_then(|(to, mut persist)| {
                persist.flow = st.take_journal()?;
                Ok((to, persist))
            }) {
            Err(e) => settle(st, reply, Err(e)),
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
        } => match st
            .logout(
                id_token_hint.as_deref(),
                post_logout_redirect_uri.as_deref(),
                state.as_deref(),
                crate::now_unix(),
            )
            .and_then(|mut out| {
                out.persist.flow = st.take_journal()?;
                Ok(out)
            }) {
            Err(e) => settle(st, reply, Err(e)),
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
            let answer = st.introspect(&client, &token, crate::now_unix());
            settle(st, reply, answer);
        }
        AuthzMsg::Revoke {
            client,
            token,
            reply,
        } => match st
            .revocation(&client, &token, crate::now_unix())
            .and_then(|mut persist| {
                persist.flow = st.take_journal()?;
                Ok(persist)
            }) {
            Err(e) => settle(st, reply, Err(e)),
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
                return;
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
                    // A replica sharing the store bootstrapped it first.
                    Err(crate::Error::Storage(cryptoutil_storage::Error::Exists { .. })) => {
                        let _ = reply.send(Ok(None));
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
}

/// Answers `result` once the decision's journal (shared store only) is durable, or its failure
/// (a create-only clash: what another replica decided first).
fn settle<T: Send + 'static>(
    st: &mut AuthzState,
    reply: RpcReplyPort<Result<T, crate::Error>>,
    result: Result<T, crate::Error>,
) {
    match st.take_journal() {
        Ok(journal) => crate::journal::answer_when_written(
            st.store(),
            journal,
            result,
            |store, e| after_clash(store, e.into()),
            move |answer| drop(reply.send(answer)),
        ),
        Err(e) => drop(reply.send(Err(e))),
    }
}

/// Blocking: what a failed write answers. A create-only clash in a shared store is a refusal
/// (another replica redeemed the code, saw the proof, wrote the family first); a refresh
/// family two replicas rotated at once is revoked (its token was presented twice).
fn after_clash(store: &Store, e: crate::Error) -> crate::Error {
    use flow::shared::Clash;
    match flow::shared::clash(&e) {
        None => e,
        Some(Clash::Refused(why)) => crate::Error::OAuth(why),
        Some(Clash::Family(id)) => {
            tracing::warn!("refresh token presented twice at once: revoking its family");
            if let Err(e) = flow::shared::revoke_family(store, &id) {
                tracing::error!(error = %e, "revoking a refresh family failed");
            }
            crate::Error::OAuth(cryptoutil_protocols::oauth::TokenError::InvalidGrant)
        }
    }
}

/// Shared store: reads administration again (dropped if the state changes meanwhile), and
/// every [`SWEEP_EVERY`] ticks deletes expired sign-in records.
fn tick(me: &ActorRef<AuthzMsg>, st: &mut AuthzState) {
    if st.reloading {
        return;
    }
    st.reloading = true;
    st.ticks += 1;
    let (me, store, changes) = (me.clone(), st.store(), st.changes);
    let sweep = st.ticks % SWEEP_EVERY == 0;
    tokio::task::spawn_blocking(move || {
        let now = crate::now_unix();
        let sweep = sweep
            && crate::journal::run_once(&store, "identity-authz-sweep", REFRESH * 60, now)
                .unwrap_or(false);
        if sweep {
            match flow::shared::sweep(&store, now) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(records = n, "expired sign-in records swept"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired sign-in records failed"),
            }
        }
        let loaded = match AuthzState::read_admin(&store, now) {
            Ok(l) => Some(Box::new(l)),
            Err(e) => {
                tracing::warn!(error = %e, "reading identity-authz's records again failed");
                None
            }
        };
        let _ = me.cast(AuthzMsg::Reloaded { changes, loaded });
    });
}

/// Makes `persist` durable off the mailbox, then merges and answers `then` (or fails it).
/// The state already reflects the decision (a rotated family, a revoked one): if the write
/// fails the caller gets an error and, for a rotation, the old token then counts as reused, so
/// a storage failure fails closed.
fn persist_then(me: &ActorRef<AuthzMsg>, st: &AuthzState, persist: flow::Persist, then: Then) {
    let (me, store, shared) = (me.clone(), st.store(), st.shared());
    tokio::task::spawn_blocking(
        move || match AuthzState::persist_flow(&store, persist, shared) {
            Ok(loaded) => {
                let _ = me.cast(AuthzMsg::Merge {
                    loaded: Box::new(loaded),
                    then,
                });
            }
            Err(e) => then.fail(after_clash(&store, e)),
        },
    );
}

#[cfg(test)]
mod tests;
