//! identity-idp's link to identity-authz: the calls a sign-in makes (the pending request, the
//! user, the password, whether a session still stands, the code or the consent page, the
//! tenant's policy). In one process the link is identity-authz's handle, in memory. When
//! identity-idp runs in its own process it is a back channel: `POST
//! /service/api/v1/identity/signin` on identity-authz's public listener, over verified TLS 1.3,
//! with this process's access token, through identity-authz's breaker like every federated
//! call. The token must carry the scope `identity-idp` ([`crate::Scope::SignIn`]), which only a
//! client of `identity.federation_clients` (the operator's configuration) can hold: whoever
//! holds it finishes sign-ins for any user. There is no fallback: a sign-in that cannot reach
//! identity-authz fails at once with a clear 503 (`Unavailable`, `unreachable`).
//!
//! Both sides run the same code: identity-authz answers a call by making it on its own handle
//! ([`answer`] over [`AuthzLink::Local`]). A password record never travels: across the back
//! channel identity-authz checks the password itself, against a dummy record for names no
//! user has, so neither answer nor timing tells whether a name exists.

use std::sync::OnceLock;
use std::time::Duration;

use cryptoutil_federation::{Bytes, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Unavailability};
use crate::federation::peer::{CallAuth, Peer, PeerRequest, Retries};
use crate::identity::authz::admin::{AdminAnswer, AdminOp, Caller, UserView};
use crate::identity::authz::AuthzHandle;
use crate::identity::idp::factors::password;
use crate::identity::signin::{known_acr, Credential, Next, SignInRequest, Subject};

/// identity-authz's back channel for identity-idp.
pub const SIGNIN_PATH: &str = "/service/api/v1/identity/signin";

/// How long a call that changes nothing may retry upstream failures.
const READ_RETRIES: Retries = Retries::Within(Duration::from_secs(3));

/// identity-authz as identity-idp reaches it.
#[derive(Clone, Debug)]
pub enum AuthzLink {
    /// In this process.
    Local(AuthzHandle),
    /// In another process, through its breaker.
    Remote(Peer),
}

/// One call on the back channel (`{"op": ..., ...}`).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SignInCall {
    /// The pending request `challenge` names.
    Request {
        /// The login page's challenge.
        challenge: String,
    },
    /// The user `username` of `tenant` (without the password record).
    User {
        /// Tenant.
        tenant: String,
        /// Login name.
        username: String,
    },
    /// Whether `password` is the password of `username` of `tenant`.
    Password {
        /// Tenant.
        tenant: String,
        /// Login name.
        username: String,
        /// What was typed.
        password: Zeroizing<String>,
    },
    /// Whether `subject`'s session still stands at identity-authz.
    Stands {
        /// Who.
        subject: Subject,
    },
    /// `subject` signed in for `challenge`: the code, or first the consent page.
    SignedIn {
        /// The pending request.
        challenge: String,
        /// Who.
        subject: Subject,
    },
    /// `prompt=none` without a session: back to the client with `login_required`.
    LoginRequired {
        /// The pending request.
        challenge: String,
    },
    /// The consent page's answer.
    Consent {
        /// The pending request.
        challenge: String,
        /// Allowed or denied.
        allow: bool,
    },
    /// The users of `tenant`.
    Users {
        /// Tenant.
        tenant: String,
    },
    /// The `acr` every sign-in of `tenant`'s users must reach.
    Policy {
        /// Tenant.
        tenant: String,
    },
}

/// A password check: the user the name names, if any, and whether the password is theirs.
#[derive(Serialize, Deserialize)]
pub struct PasswordChecked {
    /// The user (without the password record).
    pub user: Option<Credential>,
    /// Whether the password matched (never for a name no user has).
    pub matched: bool,
}

impl AuthzLink {
    /// The pending request `challenge` names (`NotFound` once it expired or was used).
    pub async fn sign_in_request(&self, challenge: String) -> Result<SignInRequest, Error> {
        match self {
            Self::Local(a) => a.sign_in_request(challenge).await,
            Self::Remote(p) => remote(p, &SignInCall::Request { challenge }, READ_RETRIES).await,
        }
    }

    /// The user `username` of `tenant`, for a factor other than the password to check (the
    /// password record comes along only in this process).
    pub async fn credential(
        &self,
        tenant: String,
        username: String,
    ) -> Result<Option<Credential>, Error> {
        match self {
            Self::Local(a) => a.credential(tenant, username).await,
            Self::Remote(p) => {
                remote(p, &SignInCall::User { tenant, username }, READ_RETRIES).await
            }
        }
    }

    /// Checks `presented` as the password of `username` of `tenant`; a name no user has is
    /// checked against `dummy` (a record nothing matches) in this process, against
    /// identity-authz's own across the back channel.
    pub async fn password(
        &self,
        tenant: String,
        username: String,
        presented: Zeroizing<String>,
        dummy: String,
    ) -> Result<PasswordChecked, Error> {
        match self {
            Self::Local(a) => {
                let user = if username.len() <= 128 {
                    a.credential(tenant, username).await?
                } else {
                    None
                };
                let record = user.as_ref().map_or(dummy, |u| u.password_hash.clone());
                let matched =
                    tokio::task::spawn_blocking(move || password::matches(&presented, &record))
                        .await
                        .map_err(|_| Error::Unavailable {
                            actor: "Idp",
                            why: Unavailability::Stopped,
                        })?;
                Ok(PasswordChecked { user, matched })
            }
            Self::Remote(p) => {
                let call = SignInCall::Password {
                    tenant,
                    username,
                    password: presented,
                };
                remote(p, &call, Retries::None).await
            }
        }
    }

    /// Whether `subject`'s session still stands (no logout or restart ended it).
    pub async fn stands(&self, subject: Subject) -> Result<bool, Error> {
        match self {
            Self::Local(a) => a.stands(subject).await,
            Self::Remote(p) => remote(p, &SignInCall::Stands { subject }, READ_RETRIES).await,
        }
    }

    /// `subject` signed in for `challenge`: the code or the consent page, `None` when the
    /// user was removed or the session ended.
    pub async fn signed_in(
        &self,
        challenge: String,
        subject: Subject,
    ) -> Result<Option<Next>, Error> {
        match self {
            Self::Local(a) => a.signed_in(challenge, subject).await,
            Self::Remote(p) => {
                let call = SignInCall::SignedIn { challenge, subject };
                remote(p, &call, Retries::None).await
            }
        }
    }

    /// Back to the client of `challenge` with `login_required`.
    pub async fn login_required(&self, challenge: String) -> Result<String, Error> {
        match self {
            Self::Local(a) => a.login_required(challenge).await,
            Self::Remote(p) => {
                remote(p, &SignInCall::LoginRequired { challenge }, Retries::None).await
            }
        }
    }

    /// The consent page's answer: where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        match self {
            Self::Local(a) => a.consent(challenge, allow).await,
            Self::Remote(p) => {
                remote(p, &SignInCall::Consent { challenge, allow }, Retries::None).await
            }
        }
    }

    /// The users of `tenant`, as identity-authz's admin API lists them.
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserView>, Error> {
        match self {
            Self::Local(a) => {
                let caller = Caller {
                    who: "identity-idp".to_owned(),
                    tenant: tenant.to_owned(),
                    scopes: Vec::new(),
                };
                match a.admin(caller, AdminOp::ListUsers).await? {
                    AdminAnswer::Users(users) => Ok(users),
                    _ => Ok(Vec::new()),
                }
            }
            Self::Remote(p) => {
                let tenant = tenant.to_owned();
                remote(p, &SignInCall::Users { tenant }, READ_RETRIES).await
            }
        }
    }

    /// The `acr` every sign-in of `tenant`'s users must reach, if its administrator set one.
    pub async fn tenant_acr(&self, tenant: &str) -> Result<Option<&'static str>, Error> {
        let acr: Option<String> = match self {
            Self::Local(a) => {
                let caller = Caller {
                    who: "identity-idp".to_owned(),
                    tenant: tenant.to_owned(),
                    scopes: Vec::new(),
                };
                match a.admin(caller, AdminOp::ListTenants).await? {
                    AdminAnswer::Tenants(tenants) => tenants
                        .into_iter()
                        .find(|t| t.id == tenant)
                        .and_then(|t| t.acr),
                    _ => None,
                }
            }
            Self::Remote(p) => {
                let tenant = tenant.to_owned();
                remote(p, &SignInCall::Policy { tenant }, READ_RETRIES).await?
            }
        };
        Ok(acr.as_deref().and_then(known_acr))
    }
}

/// identity-authz's answer to a back-channel call, made on its own handle: the JSON the
/// calling [`AuthzLink::Remote`] reads.
pub async fn answer(authz: &AuthzHandle, call: SignInCall) -> Result<Value, Error> {
    let link = AuthzLink::Local(authz.clone());
    match call {
        SignInCall::Request { challenge } => json(link.sign_in_request(challenge).await?),
        SignInCall::User { tenant, username } => json(link.credential(tenant, username).await?),
        SignInCall::Password {
            tenant,
            username,
            password,
        } => {
            let dummy = dummy().await?;
            json(link.password(tenant, username, password, dummy).await?)
        }
        SignInCall::Stands { subject } => json(link.stands(subject).await?),
        SignInCall::SignedIn { challenge, subject } => {
            json(link.signed_in(challenge, subject).await?)
        }
        SignInCall::LoginRequired { challenge } => json(link.login_required(challenge).await?),
        SignInCall::Consent { challenge, allow } => json(link.consent(challenge, allow).await?),
        SignInCall::Users { tenant } => json(link.users(&tenant).await?),
        SignInCall::Policy { tenant } => json(link.tenant_acr(&tenant).await?),
    }
}

/// An answer as the back channel carries it.
fn json(answer: impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(answer).map_err(|_| Error::Internal {
        what: "encoding a sign-in answer",
    })
}

/// identity-authz's dummy password record for names no user has (one PBKDF2 run, the first
/// time a back-channel password check needs it).
async fn dummy() -> Result<String, Error> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(d) = DUMMY.get() {
        return Ok(d.clone());
    }
    let made = tokio::task::spawn_blocking(password::dummy_record)
        .await
        .map_err(|_| Error::Internal {
            what: "making the dummy password record",
        })??;
    Ok(DUMMY.get_or_init(|| made).clone())
}

fn unreachable() -> Error {
    Error::Unavailable {
        actor: "identity-authz",
        why: Unavailability::Unreachable,
    }
}

/// One back-channel call through the breaker, its answer read as `T`.
async fn remote<T: DeserializeOwned>(
    peer: &Peer,
    call: &SignInCall,
    retries: Retries,
) -> Result<T, Error> {
    let body = Zeroizing::new(serde_json::to_vec(call).map_err(|_| Error::Internal {
        what: "encoding a sign-in call",
    })?);
    let request = PeerRequest {
        method: Method::POST,
        path: SIGNIN_PATH,
        headers: vec![("content-type", "application/json".to_owned())],
        body: Bytes::copy_from_slice(&body),
        auth: CallAuth::Bearer,
    };
    let r = peer.call(&request, retries).await.map_err(|e| {
        tracing::warn!(error = %e, "identity-authz's sign-in back channel is unavailable");
        unreachable()
    })?;
    match r.status.as_u16() {
        200 => serde_json::from_slice(&r.body).map_err(|_| {
            tracing::error!(
                "identity-authz's sign-in answer is not what the back channel promises"
            );
            unreachable()
        }),
        404 => Err(Error::NotFound {
            what: "sign-in request",
        }),
        // A call identity-authz does not take (a version that reads it otherwise): not a
        // reason to try again.
        400 => {
            tracing::error!(
                "identity-authz refused a sign-in call as malformed: are both the same version?"
            );
            Err(Error::BadRequest {
                reason: "identity-authz refused the sign-in call",
            })
        }
        status => {
            tracing::error!(
                status,
                "identity-authz refused a sign-in call: does this process's client \
                 (federation.auth) hold the scope identity-idp?"
            );
            Err(unreachable())
        }
    }
}
