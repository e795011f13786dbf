//! `IdpHandle`: a sign-in, step by step, on the caller's task: the pending request from
//! identity-authz, a session that serves it or the factors (PBKDF2 on a blocking thread; then,
//! for a user who enrolled one, a one-time code checked against their factor records), the
//! session, then the code or the consent page from identity-authz. The `Idp` actor only keeps
//! sessions, waiting sign-ins and counters, so its mailbox never waits on a factor or on
//! identity-authz. Every sign-in and every refusal is audited.

use std::time::Duration;

use zeroize::Zeroizing;

use super::factors::password;
use super::msg::IdpMsg;
use super::records::{FactorsHandle, Owner};
use super::state::{Attempt, Check, Opened, LOGIN_FAILED, LOGIN_LOCKED};
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

/// The outcome of a submitted password or code (its `Debug` names the variant only: it holds
/// cookie values).
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
    /// The password passed and the user has another factor: ask for its code. The token
    /// names the waiting sign-in (a cookie of this browser, for [`STEP_TTL`] seconds).
    ///
    /// [`STEP_TTL`]: super::state::STEP_TTL
    NextFactor {
        /// The waiting sign-in.
        step: Zeroizing<String>,
        /// The page.
        view: LoginView,
    },
    /// A wrong or used code: the code form again.
    CodeFailed {
        /// The message.
        message: &'static str,
        /// The page.
        view: LoginView,
    },
}

/// How the audit log names a sign-in by a name that is no user's (or not yet known to be
/// one): `name-sha256:` and the first 16 hex digits of SHA-256 of `<tenant>/<name, lowercase>`,
/// so what was typed is not kept, yet repeated attempts on one name can be told apart.
fn name_ref(tenant: &str, username: &str) -> String {
    let digest = cryptoutil_protocols::oauth::token_digest(
        format!("{tenant}/{}", username.to_ascii_lowercase()).as_bytes(),
    );
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("name-sha256:{hex}")
}

impl std::fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Done { .. } => "Done",
            Self::Failed { .. } => "Failed",
            Self::NextFactor { .. } => "NextFactor",
            Self::CodeFailed { .. } => "CodeFailed",
        })
    }
}

/// The message for a wrong, used or expired one-time code.
pub const CODE_FAILED: &str = "The code is incorrect, or was used already.";
/// The message when the sign-in waiting for a code is gone (expired, too many wrong codes).
pub const STEP_EXPIRED: &str = "This sign-in expired. Enter your username and password again.";

/// The login and consent pages' handle.
#[derive(Clone, Debug)]
pub struct IdpHandle {
    slot: Slot<IdpMsg>,
    authz: AuthzHandle,
    factors: FactorsHandle,
    timeout: Duration,
}

impl IdpHandle {
    /// The `Idp` actor in `slot`, signing users in for `authz` with the factors of `factors`.
    pub fn new(
        slot: Slot<IdpMsg>,
        authz: AuthzHandle,
        factors: FactorsHandle,
        timeout: Duration,
    ) -> Self {
        Self {
            slot,
            authz,
            factors,
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
            self.factors
                .audit_sign_in(
                    &name_ref(&tenant, &username),
                    &tenant,
                    &["pwd".into()],
                    Some("locked out"),
                )
                .await?;
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
        // Who the log names: the user, or for a name no user has a digest of it (what was
        // typed there may be a password).
        let who = user
            .as_ref()
            .map_or_else(|| name_ref(&tenant, &username), |u| u.user_id.clone());
        let Some(user) = user.filter(|_| matched) else {
            self.factors
                .audit_sign_in(&who, &tenant, &["pwd".into()], Some("wrong password"))
                .await?;
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
        let amr = vec!["pwd".to_owned()];
        if self.factors.has_any(&user.tenant, &user.user_id).await? {
            let step = ask(
                &self.slot,
                |reply| IdpMsg::Begin {
                    user,
                    challenge,
                    amr,
                    reply,
                },
                self.timeout,
            )
            .await?;
            return Ok(LoginOutcome::NextFactor { step, view });
        }
        let opened = ask(
            &self.slot,
            |reply| IdpMsg::Open { user, amr, reply },
            self.timeout,
        )
        .await?;
        self.done(challenge, opened, view).await
    }

    /// The code of a second factor for the sign-in `step` waiting on the pending request
    /// `challenge`. Every code counts against the name like a wrong password until one is
    /// right (counted before it is checked, so codes sent at once are each counted), and
    /// [`STEP_ATTEMPTS`] end the waiting sign-in.
    ///
    /// [`STEP_ATTEMPTS`]: super::state::STEP_ATTEMPTS
    pub async fn second(
        &self,
        challenge: String,
        step: Zeroizing<String>,
        code: Zeroizing<String>,
    ) -> Result<LoginOutcome, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let view = request.view;
        let (token, c) = (step.clone(), challenge.clone());
        let attempt = ask(
            &self.slot,
            |reply| IdpMsg::Attempt {
                token,
                challenge: c,
                reply,
            },
            self.timeout,
        )
        .await?;
        let user = match attempt {
            Attempt::Check(user) => user,
            Attempt::Gone => {
                return Ok(LoginOutcome::Failed {
                    message: STEP_EXPIRED,
                    view,
                })
            }
            Attempt::Locked(user) => {
                self.factors
                    .audit_sign_in(
                        &user.user_id,
                        &user.tenant,
                        &["otp".into()],
                        Some("locked out"),
                    )
                    .await?;
                return Ok(LoginOutcome::CodeFailed {
                    message: LOGIN_LOCKED,
                    view,
                });
            }
        };
        let owner = Owner {
            tenant: user.tenant.clone(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        let code = code.trim();
        // The attempt is already counted: a refusal here needs nothing more.
        let passed = if code.is_empty() || code.len() > 64 {
            None
        } else {
            self.factors.check_code(&owner, code).await?
        };
        let Some(passed) = passed else {
            return Ok(LoginOutcome::CodeFailed {
                message: CODE_FAILED,
                view,
            });
        };
        let opened = ask(
            &self.slot,
            |reply| IdpMsg::Finish {
                token: step,
                challenge: challenge.clone(),
                amr: passed.amr,
                reply,
            },
            self.timeout,
        )
        .await?;
        self.done(challenge, opened, view).await
    }

    /// A session opened for the pending request `challenge`: audited, then the code or the
    /// consent page from identity-authz.
    async fn done(
        &self,
        challenge: String,
        opened: Opened,
        view: LoginView,
    ) -> Result<LoginOutcome, Error> {
        let Opened {
            cookie,
            subject,
            max_age,
        } = opened;
        self.factors
            .audit_sign_in(&subject.user_id, &subject.tenant, &subject.amr, None)
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

    /// The user `id` (their `sub` or login name) of `tenant`, as identity-authz's admin API
    /// lists them, for the factors' admin API.
    pub async fn user(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::identity::authz::admin::UserView>, Error> {
        use crate::identity::authz::admin::{AdminAnswer, AdminOp, Caller};
        let caller = Caller {
            tenant: tenant.to_owned(),
        };
        let AdminAnswer::Users(users) = self.authz.admin(caller, AdminOp::ListUsers).await? else {
            return Ok(None);
        };
        // A `sub` first: a login name may look like another user's `sub`.
        let by_id = users.iter().position(|u| u.id == id);
        let at = by_id.or_else(|| users.iter().position(|u| u.username == id));
        Ok(at.and_then(|i| users.into_iter().nth(i)))
    }

    /// The consent page's answer; where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        self.authz.consent(challenge, allow).await
    }
}
