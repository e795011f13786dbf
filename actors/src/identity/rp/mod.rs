//! identity-rp, the reference relying party: a server-side web application (the
//! backend-for-frontend pattern) that signs users in at identity-authz the way a customer's
//! application would, over HTTPS and nothing else. Copy this folder and
//! `http/src/identity/rp/` to see how.
//!
//! - **Sign-in**: authorization code with PKCE S256, the request pushed first (PAR, RFC 9126)
//!   so the browser carries only a `request_uri`; the client authenticates with
//!   `private_key_jwt` (RFC 7523: a short-lived assertion signed by a key that never leaves
//!   this process); the answer's `iss` is checked (RFC 9207, mix-up), the ID token's
//!   signature against the issuer's published keys, its `iss`, `aud`, `exp` and `nonce`.
//! - **Tokens never reach the browser**: the browser holds an opaque session cookie; the
//!   access and refresh tokens stay in the [`RelyingParty`] actor's memory. identity-rs is
//!   called with the user's access token (its audience asked for with `resource`, RFC 8707);
//!   an expiring token is refreshed first, one request of a session at a time (rotation: each
//!   refresh token is spent once). One exception, by the protocol: RP-initiated logout sends
//!   the ID token (not an access or refresh token) through the browser as `id_token_hint`.
//! - **Logout**: RP-initiated logout sends the browser to identity-authz's end-session
//!   endpoint with the ID token as hint; **back-channel logout** (OpenID Connect Back-Channel
//!   Logout 1.0) ends the sessions a verified logout token names, once per `jti`.
//!
//! # Layout
//! - [`state`]: sign-ins, sessions and used logout tokens (pure).
//! - [`client`]: the handle, and everything that goes over the network: discovery and keys,
//!   PAR, the token endpoint, logout tokens, identity-rs.

pub mod client;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::HttpsClient;
use cryptoutil_protocols::jose::Jwk;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

pub use client::{Provider, RpHandle, SignInStart};
pub use state::{Opened, Redeem, RpState, SessionView, SignIn, Tokens};

/// identity-rp's part of the suite: the `RelyingParty` actor, when it has a client.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::IdentityRp,
    build,
};

/// How identity-rp signs users in: its client at identity-authz and where identity-rs is.
#[derive(Clone)]
pub struct RpSettings {
    /// identity-authz's issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The `private_key_jwt` key (private; in memory only).
    pub key: Arc<Jwk>,
    /// `<public>/browser/rp/callback`.
    pub redirect_uri: String,
    /// `<public>/browser/rp/`.
    pub post_logout_uri: String,
    /// The scopes asked for.
    pub scope: String,
    /// identity-rs's notes collection URL.
    pub notes_url: String,
    /// identity-rs's resource URI (RFC 8707 `resource`).
    pub resource: String,
    /// Trusts identity-authz's and identity-rs's TLS anchors.
    pub client: HttpsClient,
}

impl std::fmt::Debug for RpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let Some(settings) = ctx.args.settings.get::<RpSettings>().cloned() else {
        return Ok(());
    };
    let slot: crate::slot::Slot<RpMsg> = crate::slot::Slot::new("RelyingParty");
    parts.actor::<RelyingParty>(ctx.service, "rp", &slot, (), || RpMsg::Crash);
    parts.handles.insert(RpHandle::new(
        slot,
        ctx.config.ask_timeout,
        Arc::new(settings),
    ));
    Ok(())
}

/// The behaviour (empty). Its state is [`RpState`]; every message is answered from memory,
/// never after a network call (the handle makes those on the caller's task).
#[derive(Debug, Default)]
pub struct RelyingParty;

/// Messages.
pub enum RpMsg {
    /// Start a sign-in.
    Begin(RpcReplyPort<Result<SignIn, Error>>),
    /// The callback: the sign-in `state` names, if it is this browser's.
    Take {
        /// `state`.
        state: String,
        /// The binding cookie.
        binding: Option<Zeroizing<String>>,
        /// The PKCE verifier and nonce.
        reply: RpcReplyPort<Result<Redeem, Error>>,
    },
    /// A verified sign-in becomes a session.
    Open {
        /// `sub`.
        sub: String,
        /// `sid`.
        sid: Option<String>,
        /// Its tokens.
        tokens: Box<Tokens>,
        /// The cookie.
        reply: RpcReplyPort<Result<Opened, Error>>,
    },
    /// The session a cookie names.
    Lookup {
        /// The cookie's value.
        cookie: Zeroizing<String>,
        /// The session.
        reply: RpcReplyPort<Result<Option<SessionView>, Error>>,
    },
    /// Ends a session.
    End {
        /// The cookie's value.
        cookie: Zeroizing<String>,
        /// Its tokens.
        reply: RpcReplyPort<Result<Option<Arc<tokio::sync::Mutex<Tokens>>>, Error>>,
    },
    /// A verified logout token.
    LoggedOut {
        /// `sid`.
        sid: Option<String>,
        /// `sub`.
        sub: Option<String>,
        /// `jti`.
        jti: String,
        /// `exp`.
        exp: u64,
        /// How many sessions ended.
        reply: RpcReplyPort<Result<usize, Error>>,
    },
    /// Fault injection.
    Crash,
}

impl Actor for RelyingParty {
    type Msg = RpMsg;
    type State = RpState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<RpMsg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RpState::default())
    }

    async fn handle(
        &self,
        _me: ActorRef<RpMsg>,
        msg: RpMsg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = crate::now_unix();
        match msg {
            RpMsg::Begin(reply) => {
                let _ = reply.send(st.begin(now));
            }
            RpMsg::Take {
                state,
                binding,
                reply,
            } => {
                let _ = reply.send(st.take(&state, binding.as_deref().map(|b| b.as_str()), now));
            }
            RpMsg::Open {
                sub,
                sid,
                tokens,
                reply,
            } => {
                let _ = reply.send(st.open(sub, sid, *tokens, now));
            }
            RpMsg::Lookup { cookie, reply } => {
                let _ = reply.send(Ok(st.lookup(&cookie, now)));
            }
            RpMsg::End { cookie, reply } => {
                let _ = reply.send(Ok(st.end(&cookie)));
            }
            RpMsg::LoggedOut {
                sid,
                sub,
                jti,
                exp,
                reply,
            } => {
                let ended = st.logged_out(sid.as_deref(), sub.as_deref(), &jti, exp, now);
                if let Ok(n) = ended {
                    tracing::info!(sessions = n, "back-channel logout");
                }
                let _ = reply.send(ended);
            }
            RpMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: RelyingParty crash requested");
                }
            }
        }
        Ok(())
    }
}

/// The longest identity-rp waits for identity-authz or identity-rs.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);
