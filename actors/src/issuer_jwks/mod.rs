//! The `IssuerJwks` actor: the cached JWK Set of one trusted token issuer that publishes its keys
//! at a URL (identity-authz, or any OIDC issuer). The set is fetched on first need, refreshed
//! when a token names a `kid` the set lacks or when the set is older than its maximum age, at
//! most once per minimum interval however many tokens ask (unknown `kid`s are cheap for an
//! attacker to send), and one fetch serves every caller waiting for it.
//!
//! Handles read the published set without asking (a shared snapshot that outlives restarts of
//! the actor, so a crash loses no keys); only a refresh goes through the mailbox. The fetch runs
//! on its own task and comes back as a message: the mailbox never waits on the network. A failed
//! fetch keeps the last good set, so tokens signed with known keys keep validating while the
//! issuer is unreachable.

mod handle;
mod msg;
mod state;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_federation::HttpsClient;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

pub use handle::IssuerJwksHandle;
pub use msg::IssuerJwksMsg;
pub use state::{parse_issuer_set, pin_issuer_key, Decision, IssuerJwksState, Published, Snapshot};

use crate::service::ServiceName;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct IssuerJwks;

/// One issuer whose keys are fetched from a URL.
#[derive(Clone, Debug)]
pub struct RemoteIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Its `jwks_uri` (https only).
    pub url: String,
    /// The client that fetches it (trust anchors, timeout).
    pub client: HttpsClient,
    /// Least time between two fetches.
    pub min_refresh_interval: Duration,
    /// Age after which the set is fetched again before use.
    pub max_age: Duration,
    /// Bound on one fetch, also what a caller waits at most.
    pub fetch_timeout: Duration,
}

/// Start arguments.
#[derive(Clone, Debug)]
pub struct IssuerJwksArgs {
    /// The service whose tokens these keys validate (metric label).
    pub service: ServiceName,
    /// The issuer.
    pub remote: RemoteIssuer,
    /// Where the set is published; shared with the handles.
    pub snapshot: Snapshot,
}

impl Actor for IssuerJwks {
    type Msg = IssuerJwksMsg;
    type State = (
        IssuerJwksArgs,
        IssuerJwksState<ractor::RpcReplyPort<Result<(), crate::Error>>>,
    );
    type Arguments = IssuerJwksArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<IssuerJwksMsg>,
        args: IssuerJwksArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let state = IssuerJwksState::new(args.remote.min_refresh_interval);
        Ok((args, state))
    }

    async fn handle(
        &self,
        me: ActorRef<IssuerJwksMsg>,
        msg: IssuerJwksMsg,
        (args, st): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let service = args.service.as_str();
        match msg {
            IssuerJwksMsg::Refresh { reply } => match st.on_refresh(Instant::now(), reply) {
                Decision::Fetch => {
                    let remote = args.remote.clone();
                    tokio::spawn(async move {
                        let result = fetch(&remote).await;
                        let _ = me.cast(IssuerJwksMsg::Fetched(result));
                    });
                }
                Decision::Wait => {}
                Decision::Limited(reply) => {
                    crate::metrics::jwks_fetch(service, "rate_limited");
                    let _ = reply.send(Ok(()));
                }
            },
            IssuerJwksMsg::Fetched(result) => {
                match result {
                    Ok(set) => {
                        crate::metrics::jwks_fetch(service, "ok");
                        tracing::info!(
                            service,
                            issuer = %args.remote.issuer,
                            keys = set.keys.len(),
                            "issuer JWKS fetched"
                        );
                        state::publish(&args.snapshot, set, Instant::now());
                    }
                    Err(reason) => {
                        crate::metrics::jwks_fetch(service, "error");
                        tracing::warn!(
                            service,
                            issuer = %args.remote.issuer,
                            url = %args.remote.url,
                            %reason,
                            "issuer JWKS fetch failed; keeping the last good set"
                        );
                    }
                }
                for waiter in st.on_fetched() {
                    let _ = waiter.send(Ok(()));
                }
            }
            IssuerJwksMsg::Crash => st.crash(),
        }
        Ok(())
    }
}

/// One GET of the issuer's JWKS, parsed and pinned.
async fn fetch(remote: &RemoteIssuer) -> Result<Arc<cryptoutil_protocols::jose::JwkSet>, String> {
    let client = remote.client.clone().with_timeout(remote.fetch_timeout);
    let response = client.get(&remote.url).await.map_err(|e| e.to_string())?;
    if !response.status.is_success() {
        return Err(format!("HTTP {}", response.status.as_u16()));
    }
    let text = std::str::from_utf8(&response.body).map_err(|_| "body is not UTF-8".to_owned())?;
    parse_issuer_set(text).map(Arc::new)
}
