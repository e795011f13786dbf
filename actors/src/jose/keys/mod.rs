//! The `JoseKeys` actor: the JOSE service's keys, per tenant, persisted sealed through the key
//! barrier (`jose_keys_v1`). Signatures and encryptions run inline (short CPU work); key
//! generation and store writes run on blocking threads and come back as messages.

mod handle;
mod msg;
mod state;

use std::sync::Arc;

use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use handle::JoseKeysHandle;
pub use msg::JoseKeysMsg;
pub use state::{JoseKeysState, KeySpec, KeyView, StoredKey, MAX_PAYLOAD};

use crate::service::ServiceName;

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct JoseKeys;

/// Start arguments.
#[derive(Debug, Clone)]
pub struct JoseKeysArgs {
    /// The service.
    pub service: ServiceName,
    /// Its store.
    pub store: Arc<Store>,
}

impl Actor for JoseKeys {
    type Msg = JoseKeysMsg;
    type State = JoseKeysState;
    type Arguments = JoseKeysArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<JoseKeysMsg>,
        args: JoseKeysArgs,
    ) -> Result<JoseKeysState, ActorProcessingErr> {
        let store = Arc::clone(&args.store);
        let loaded =
            tokio::task::spawn_blocking(move || JoseKeysState::load(args.service, store)).await??;
        Ok(loaded)
    }

    async fn handle(
        &self,
        me: ActorRef<JoseKeysMsg>,
        msg: JoseKeysMsg,
        st: &mut JoseKeysState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            JoseKeysMsg::Create {
                tenant,
                spec,
                reply,
            } => {
                let store = st.store();
                tokio::task::spawn_blocking(move || {
                    match JoseKeysState::generate_and_persist(&store, &tenant, &spec) {
                        Ok(key) => {
                            let _ = me.cast(JoseKeysMsg::Insert { tenant, key, reply });
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                });
            }
            JoseKeysMsg::Insert { tenant, key, reply } => {
                let _ = reply.send(Ok(st.insert(&tenant, key)));
            }
            JoseKeysMsg::List { tenant, reply } => {
                let _ = reply.send(Ok(st.jwks(&tenant)));
            }
            JoseKeysMsg::Inventory { tenant, reply } => {
                let _ = reply.send(Ok(st.inventory(&tenant)));
            }
            JoseKeysMsg::Get {
                tenant,
                kid,
                export,
                reply,
            } => {
                let _ = reply.send(st.view(&tenant, &kid, export));
            }
            JoseKeysMsg::Delete { tenant, kid, reply } => match st.remove(&tenant, &kid) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(()) => {
                    let store = st.store();
                    tokio::task::spawn_blocking(move || {
                        let _ = reply.send(JoseKeysState::forget(&store, &tenant, &kid));
                    });
                }
            },
            JoseKeysMsg::Key { tenant, kid, reply } => {
                let _ = reply.send(st.key_for_signing(&tenant, &kid));
            }
            JoseKeysMsg::Verify { tenant, jws, reply } => {
                let _ = reply.send(st.verify(&tenant, &jws));
            }
            JoseKeysMsg::Encrypt {
                tenant,
                kid,
                enc,
                plaintext,
                reply,
            } => {
                let _ = reply.send(st.encrypt(&tenant, &kid, enc, &plaintext));
            }
            JoseKeysMsg::Decrypt { tenant, jwe, reply } => {
                let _ = reply.send(st.decrypt(&tenant, &jwe));
            }
            JoseKeysMsg::JwtSign {
                tenant,
                kid,
                claims,
                reply,
            } => {
                let _ = reply.send(st.jwt_sign(&tenant, &kid, &claims));
            }
            JoseKeysMsg::JwtVerify {
                tenant,
                token,
                now_unix,
                reply,
            } => {
                let _ = reply.send(st.jwt_verify(&tenant, &token, now_unix));
            }
            JoseKeysMsg::Crash => st.crash(),
        }
        Ok(())
    }
}
