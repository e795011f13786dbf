//! `IdpHandle`: a sign-in, step by step, on the caller's task: the pending request from
//! identity-authz, a session that serves it or the factors (PBKDF2 on a blocking thread), the
//! session, then the code or the consent page from identity-authz. The `Idp` actor only keeps
//! sessions and counters, so its mailbox never waits on a factor or on identity-authz.

use std::time::Duration;

use zeroize::Zeroizing;

use super::factors::password;
use super::msg::IdpMsg;
use super::state::{Check, Opened, LOGIN_FAILED, LOGIN_LOCKED};
use crate::ask::ask;
use crate::error::{Error, Unavailability};
use crate::identity::authz::AuthzHandle;
use crate::identity::signin::{LoginView, Next, Prompt};
use crate::slot::Slot;

/// What opening the login page does.
#[derive(Debug)]
pub enum LoginStart {
    /// Show the form.
    Form(LoginView),
    /// Already signed in (or `prompt=none`): straight back to the client.
    Redirect(String),
    /// Signed in, but the client's request needs the user's consent.
    Consent(LoginView),
}

/// The outcome of a submitted password.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in: back to the client or to the consent page; the session cookie to set and its
    /// lifetime.
    Done {
        /// Back to the client, or the consent page.
        next: Next,
        /// The sign-in session's cookie value.
        session: Zeroizing<String>,
        /// Seconds.
        max_age: u64,
    },
    /// Refused: the form again with a message that does not tell why.
    Failed {
        /// The message.
        message: &'static str,
        /// The form.
        view: LoginView,
    },
}

/// The login and consent pages' handle.
#[derive(Clone, Debug)]
pub struct IdpHandle {
    slot: Slot<IdpMsg>,
    authz: AuthzHandle,
    timeout: Duration,
}

impl IdpHandle {
    /// The `Idp` actor in `slot`, signing users in for `authz`.
    pub fn new(slot: Slot<IdpMsg>, authz: AuthzHandle, timeout: Duration) -> Self {
        Self {
            slot,
            authz,
            timeout,
        }
    }

    /// Opening the login page of the pending request `challenge`: the form, or straight back
    /// to the client when a live session of the request's tenant serves it (and `prompt=login`
    /// did not ask for a new sign-in); `prompt=none` without one goes back with
    /// `login_required`.
    pub async fn login_start(
        &self,
        challenge: String,
        cookie: Option<Zeroizing<String>>,
    ) -> Result<LoginStart, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let now = crate::now_unix();
        let session = match cookie {
            Some(cookie) if request.prompt != Prompt::Login => {
                let c = cookie.clone();
                let subject = ask(
                    &self.slot,
                    |reply| IdpMsg::Session { cookie: c, reply },
                    self.timeout,
                )
                .await?;
                subject
                    .filter(|s| request.served_by(s, now))
                    .map(|s| (cookie, s))
            }
            _ => None,
        };
        if let Some((cookie, subject)) = session {
            match self.authz.signed_in(challenge.clone(), subject).await? {
                Some(Next::Redirect(to)) => return Ok(LoginStart::Redirect(to)),
                Some(Next::Consent(view)) => return Ok(LoginStart::Consent(view)),
                None => {
                    // The user was removed or the session ended: forget it, sign in again.
                    if let Ok(idp) = self.slot.current() {
                        let _ = idp.cast(IdpMsg::End { cookie });
                    }
                }
            }
        }
        match request.prompt {
            Prompt::None => Ok(LoginStart::Redirect(
                self.authz.login_required(challenge).await?,
            )),
            Prompt::Default | Prompt::Login => Ok(LoginStart::Form(request.view)),
        }
    }

    /// A submitted username and password for the pending request `challenge`. Unknown names
    /// are checked against a dummy record and lock out like real ones, so neither message nor
    /// timing tells whether a name exists.
    pub async fn login(
        &self,
        challenge: String,
        tenant: Option<String>,
        username: String,
        presented: Zeroizing<String>,
    ) -> Result<LoginOutcome, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let tenant = request.tenant(tenant.as_deref());
        let view = request.view;
        let (t, u) = (tenant.clone(), username.clone());
        let check = ask(
            &self.slot,
            |reply| IdpMsg::Check {
                tenant: t,
                username: u,
                reply,
            },
            self.timeout,
        )
        .await?;
        let Check::Proceed { dummy } = check else {
            return Ok(LoginOutcome::Failed {
                message: LOGIN_LOCKED,
                view,
            });
        };
        let user = if username.len() <= 128 {
            self.authz
                .credential(tenant.clone(), username.clone())
                .await?
        } else {
            None
        };
        let record = user.as_ref().map_or(dummy, |u| u.password_hash.clone());
        let matched = tokio::task::spawn_blocking(move || password::matches(&presented, &record))
            .await
            .map_err(|_| Error::Unavailable {
                actor: "Idp",
                why: Unavailability::Stopped,
            })?;
        let Some(user) = user.filter(|_| matched) else {
            let message = ask(
                &self.slot,
                |reply| IdpMsg::Failed {
                    tenant,
                    username,
                    reply,
                },
                self.timeout,
            )
            .await?;
            return Ok(LoginOutcome::Failed { message, view });
        };
        let Opened {
            cookie,
            subject,
            max_age,
        } = ask(
            &self.slot,
            |reply| IdpMsg::Open { user, reply },
            self.timeout,
        )
        .await?;
        match self.authz.signed_in(challenge, subject).await? {
            Some(next) => Ok(LoginOutcome::Done {
                next,
                session: cookie,
                max_age,
            }),
            // Removed between the check and now.
            None => Ok(LoginOutcome::Failed {
                message: LOGIN_FAILED,
                view,
            }),
        }
    }

    /// The consent page's answer; where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        self.authz.consent(challenge, allow).await
    }
}
