//! identity-idp: signs users in for identity-authz's pending authorization requests. The `Idp`
//! actor keeps the sign-in sessions and the failure counters behind lockout; its handle runs a
//! sign-in (the request from identity-authz, the factors, the session, the code or the consent
//! page back from identity-authz), reaching identity-authz through its link
//! ([`crate::federation::identity::signin::AuthzLink`]): its handle in memory when both run in
//! one process, else the back channel through identity-authz's breaker.
//!
//! # Layout
//! - [`factors`]: one module per factor, and the `Factor` seam the ones with records of their
//!   own plug into.
//! - [`records`]: `FactorsHandle`: the factor records in identity-idp's store, audited.
//! - [`state`]: sessions, sign-ins waiting for a second factor, failure counters (pure).
//! - [`shared`]: the same in a store replicas share (PostgreSQL).
//! - [`msg`]: the actor's messages.
//! - [`handle`]: `IdpHandle`: the login and consent pages' calls.
//! - [`mail`]: where magic links go: an SMTP relay over TLS, or an outbox directory.
//! - [`revocation`]: the client certificates' revocation lists, as files kept current.

pub mod factors;
pub mod handle;
pub mod mail;
pub mod msg;
pub mod records;
pub mod revocation;
pub mod shared;
pub mod state;

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};

pub use handle::{IdpHandle, LinkAsked, LoginOutcome, LoginStart, LINK_PATH};
use msg::IdpMsg;
pub use records::{FactorsHandle, Owner};
pub use revocation::RevocationLists;
pub use state::{IdpState, LOGIN_FAILED, LOGIN_LOCKED};

use crate::error::Error;
use crate::federation::identity::signin::AuthzLink;
use crate::identity::authz::AuthzHandle;
use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::{Scope, ServiceName};
use crate::slot::Slot;

/// identity-idp's settings.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Lifetime of a sign-in session.
    pub session_ttl: Duration,
    /// The WebAuthn relying party the login and account pages are.
    pub webauthn: WebauthnRp,
    /// Where mail goes, and as whom.
    pub mail: MailSettings,
    /// Client-certificate sign-in, if it is on.
    pub certificates: Option<CertificateSignIn>,
}

/// Client-certificate sign-in: whose certificates sign users in, and how they name them.
#[derive(Debug, Clone)]
pub struct CertificateSignIn {
    /// Trust anchors of the certificates.
    pub roots: cryptoutil_protocols::tls::TrustRoots,
    /// Whether an email address in a certificate names the user whose login name it is (the
    /// CA vouches for addresses); otherwise only registered certificates sign in.
    pub email_login: bool,
    /// The issuers' revocation lists, if revocation is checked.
    pub revocation: Option<RevocationLists>,
}

impl CertificateSignIn {
    /// Why `chain` (leaf first, DER; not empty) signs no one in, if it does not: it must
    /// chain to the roots for client authentication, be valid now, not be revoked (when lists
    /// are configured: a list that no longer reads refuses every certificate), and its leaf
    /// must name client authentication.
    pub async fn refusal(&self, chain: &[Vec<u8>]) -> Option<&'static str> {
        let crls = match &self.revocation {
            None => std::sync::Arc::new(Vec::new()),
            Some(lists) => match lists.current().await {
                Ok(crls) => crls,
                Err(e) => {
                    tracing::error!(error = %e, "identity.certificate_crls do not read: \
                        certificate sign-in is refused until they do");
                    return Some("the revocation lists do not read");
                }
            },
        };
        if let Err(refusal) =
            cryptoutil_protocols::tls::client_chain_check(&self.roots, &crls, chain)
        {
            return Some(refusal.as_str());
        }
        let leaf = chain.first().map(Vec::as_slice).unwrap_or_default();
        if !cryptoutil_protocols::tls::client_auth_eku(leaf) {
            return Some("a certificate that does not name client authentication");
        }
        None
    }
}

/// Where identity-idp's mail (magic links) goes, and the `From:` address it carries.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The relay or the outbox.
    pub mailer: mail::Mailer,
    /// The sender.
    pub from: String,
}

/// The WebAuthn relying party identity-idp's pages are: its RP ID (a domain the pages' host
/// is or ends with), the name authenticators show, and the origins the pages are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnRp {
    /// The RP ID.
    pub rp_id: String,
    /// The name shown.
    pub rp_name: String,
    /// `https://host[:port]` of each origin the pages are served from.
    pub origins: Vec<String>,
}

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Idp;

/// Start arguments.
#[derive(Debug, Clone)]
pub struct IdpArgs {
    /// Settings.
    pub cfg: IdpConfig,
    /// identity-idp's store, when other replicas share it ([`shared`]); `None`: sessions and
    /// counters are this process's alone.
    pub shared: Option<std::sync::Arc<cryptoutil_storage::Store>>,
}

/// How often a replica sharing its store deletes expired sessions, sign-ins and failures.
const SWEEP: Duration = Duration::from_secs(60);

impl Actor for Idp {
    type Msg = IdpMsg;
    type State = IdpState;
    type Arguments = IdpArgs;

    async fn pre_start(
        &self,
        me: ActorRef<IdpMsg>,
        args: IdpArgs,
    ) -> Result<IdpState, ActorProcessingErr> {
        let ttl = args.cfg.session_ttl;
        let mut st = tokio::task::spawn_blocking(move || IdpState::new(ttl)).await??;
        if let Some(store) = args.shared {
            st.share(store);
            me.send_interval(SWEEP, || IdpMsg::Sweep);
        }
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<IdpMsg>,
        msg: IdpMsg,
        st: &mut IdpState,
    ) -> Result<(), ActorProcessingErr> {
        if let (Some(store), Some(fetch)) = (st.journal_store(), fetch_for(&msg)) {
            tokio::task::spawn_blocking(move || match shared::read(&store, fetch) {
                Ok(fetched) => {
                    let _ = me.cast(IdpMsg::Fetched {
                        fetched: Box::new(fetched),
                        msg: Box::new(msg),
                    });
                }
                Err(e) => msg.refuse(e),
            });
            return Ok(());
        }
        decide(&me, msg, st);
        Ok(())
    }
}

/// What `msg` decides on; `None`: nothing to read first.
fn fetch_for(msg: &IdpMsg) -> Option<shared::Fetch> {
    use state::{ceremony_key, session_key, step_key};
    let mut f = shared::Fetch::default();
    let digest = |s: &str| cryptoutil_protocols::oauth::token_digest(s.as_bytes());
    match msg {
        IdpMsg::Session { cookie, .. } => f.keys = vec![session_key(&digest(cookie))],
        IdpMsg::Check {
            tenant, username, ..
        }
        | IdpMsg::Failed {
            tenant, username, ..
        }
        | IdpMsg::Ration {
            tenant,
            name: username,
            ..
        } => f.names = vec![(tenant.clone(), username.clone())],
        IdpMsg::Open { user, .. } => f.names = vec![(user.tenant.clone(), user.username.clone())],
        IdpMsg::Attempt { token, .. } | IdpMsg::Finish { token, .. } => {
            let d = digest(token);
            f.keys = vec![step_key(&d)];
            f.step_user = Some(d);
        }
        IdpMsg::Waiting { token, .. } => f.keys = vec![step_key(&digest(token))],
        IdpMsg::TakeCeremony { key, .. } => f.keys = vec![ceremony_key(&digest(key))],
        _ => return None,
    }
    Some(f)
}

/// Decides `msg` on what the state holds; with a shared store, answers once what it changed
/// is durable.
fn decide(me: &ActorRef<IdpMsg>, msg: IdpMsg, st: &mut IdpState) {
    let now = crate::now_unix();
    match msg {
        IdpMsg::Fetched { fetched, msg } => match shared::absorb(st, *fetched, now) {
            Ok(()) => decide(me, *msg, st),
            Err(e) => msg.refuse(e),
        },
        IdpMsg::Sweep => {
            let Some(store) = st.journal_store() else {
                return;
            };
            tokio::task::spawn_blocking(move || {
                let now = crate::now_unix();
                // Once per interval, by whichever replica claims it.
                if !crate::journal::run_once(&store, "identity-idp-sweep", SWEEP, now)
                    .unwrap_or(false)
                {
                    return;
                }
                match shared::sweep(&store, now) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(records = n, "expired sign-in records swept"),
                    Err(e) => tracing::warn!(error = %e, "sweeping sign-in records failed"),
                }
            });
        }
        IdpMsg::Session { cookie, reply } => {
            let _ = reply.send(Ok(st.session(&cookie, now)));
        }
        IdpMsg::End { cookie } => {
            st.end(&cookie);
            settle(st, None::<RpcReplyPort<Result<(), Error>>>, Ok(()));
        }
        IdpMsg::Check {
            tenant,
            username,
            reply,
        } => {
            let _ = reply.send(Ok(st.check(&tenant, &username, now)));
        }
        IdpMsg::Failed {
            tenant,
            username,
            reply,
        } => {
            let message = st.failed(&tenant, &username, now);
            settle(st, Some(reply), Ok(message));
        }
        IdpMsg::Open { user, amr, reply } => {
            let opened = st.open(&user, amr, now);
            settle(st, Some(reply), opened);
        }
        IdpMsg::Begin {
            user,
            challenge,
            amr,
            sid,
            reply,
        } => {
            let token = st.begin(&user, &challenge, amr, sid, now);
            settle(st, Some(reply), token);
        }
        IdpMsg::Attempt {
            token,
            challenge,
            reply,
        } => {
            let attempt = st.attempt(&token, &challenge, now);
            let writes = match st.take_journal() {
                Ok(writes) => writes,
                Err(e) => return drop(reply.send(Err(e))),
            };
            let Some(store) = st.journal_store().filter(|_| !writes.is_empty()) else {
                return drop(reply.send(Ok(attempt)));
            };
            // The attempt's number was claimed first elsewhere (another replica, or a request
            // whose read preceded this one's write): read again and decide again. Each retry
            // follows an attempt that was spent, so there are at most STEP_ATTEMPTS of them.
            let me = me.clone();
            tokio::task::spawn_blocking(move || match store.apply(writes) {
                Ok(()) => drop(reply.send(Ok(attempt))),
                Err(cryptoutil_storage::Error::Exists { .. }) => {
                    let again = IdpMsg::Attempt {
                        token,
                        challenge,
                        reply,
                    };
                    if let Err(e) = me.cast(again) {
                        tracing::warn!(error = %e, "a sign-in attempt could not be decided again");
                    }
                }
                Err(e) => drop(reply.send(Err(e.into()))),
            });
        }
        IdpMsg::Finish {
            token,
            challenge,
            amr,
            reply,
        } => {
            let opened = st.finish(&token, &challenge, amr, now);
            settle(st, Some(reply), opened);
        }
        IdpMsg::Waiting {
            token,
            challenge,
            reply,
        } => {
            let _ = reply.send(Ok(st.waiting(&token, &challenge, now)));
        }
        IdpMsg::Ration {
            tenant,
            name,
            reply,
        } => {
            let may = st.ration(&tenant, &name, now);
            settle(st, Some(reply), Ok(may));
        }
        IdpMsg::Ceremony { key, bind, reply } => {
            let challenge = st.ceremony(&key, &bind, now);
            settle(st, Some(reply), challenge);
        }
        IdpMsg::TakeCeremony { key, bind, reply } => {
            let taken = st.take_ceremony(&key, &bind, now);
            settle(st, Some(reply), Ok(taken));
        }
        IdpMsg::Crash => st.crash(),
    }
}

/// Answers `result` once the decision's writes (shared store only) are durable; a write
/// another replica made first (a sign-in finished, a challenge taken) answers that the
/// sign-in is gone.
fn settle<T: Send + 'static>(
    st: &mut IdpState,
    reply: Option<RpcReplyPort<Result<T, Error>>>,
    result: Result<T, Error>,
) {
    let answer = move |result| {
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    };
    match (st.take_journal(), st.journal_store()) {
        (Err(e), _) => answer(Err(e)),
        (Ok(writes), Some(store)) => crate::journal::answer_when_written(
            store,
            writes,
            result,
            |_, e| match e {
                cryptoutil_storage::Error::Exists { .. } => Error::NotFound {
                    what: "sign-in request",
                },
                e => e.into(),
            },
            answer,
        ),
        (Ok(_), None) => answer(result),
    }
}

/// identity-idp's part of its service: its audit log, the factor records and the `Idp` actor,
/// reaching identity-authz in memory when it runs in the same process, else over the back
/// channel when `federation.identity_enabled` names it (without either, sign-in is off and
/// the pages say why).
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::IdentityIdp,
    build,
};

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let authz = match ctx.handle_of::<AuthzHandle>(ServiceName::IdentityAuthz) {
        Some(local) => AuthzLink::Local(local),
        None => match &ctx.federation.identity {
            // The back channel's token asks for its scope alone and goes nowhere else; the
            // process's other tokens (introspection's health polls, the CA's enrollment)
            // never carry it.
            Some(peer) => {
                let peer = peer.peer();
                let credentials = peer
                    .credentials()
                    .map(|c| std::sync::Arc::new(c.with_scope(Scope::SignIn.as_str())));
                AuthzLink::Remote(peer.with_credentials(credentials))
            }
            None => return Ok(()),
        },
    };
    let cfg = ctx
        .args
        .settings
        .get::<IdpConfig>()
        .cloned()
        .ok_or_else(|| SpawnErr::StartupFailed("identity-idp needs its configuration".into()))?;
    let audit = ctx.audit.clone();
    let factors = FactorsHandle::new(
        std::sync::Arc::clone(ctx.store),
        audit.clone(),
        factors::Registry::standard(),
        "cryptoutil",
        ctx.config.ask_timeout,
    )
    .shared(ctx.args.shared_store);
    let slot: Slot<IdpMsg> = Slot::new("Idp");
    let (rp, mail, certificates) = (
        cfg.webauthn.clone(),
        cfg.mail.clone(),
        cfg.certificates.clone(),
    );
    let args = IdpArgs {
        cfg,
        shared: ctx
            .args
            .shared_store
            .then(|| std::sync::Arc::clone(ctx.store)),
    };
    parts.actor::<Idp>(ctx.service, "idp", &slot, args, || IdpMsg::Crash);
    parts.handles.insert(IdpHandle::new(
        slot,
        authz,
        factors.clone(),
        rp,
        mail,
        certificates,
        ctx.config.ask_timeout,
    ));
    parts.handles.insert(factors);
    Ok(())
}

#[cfg(test)]
mod tests;
