//! `IdpHandle`: a sign-in, step by step, on the caller's task: the pending request from
//! identity-authz, a session that serves it or the factors (PBKDF2 on a blocking thread; then,
//! for a user who enrolled one, a one-time code checked against their factor records), the
//! session, then the code or the consent page from identity-authz. The `Idp` actor only keeps
//! sessions, waiting sign-ins and counters, so its mailbox never waits on a factor or on
//! identity-authz. Every sign-in and every refusal is audited.

use std::time::Duration;

use cryptoutil_protocols::webauthn::{self, AuthenticationResponse, Descriptor, Expected, Kind};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::factors::FactorKind;
use super::msg::IdpMsg;
use super::records::{FactorsHandle, Owner, Passed};
use super::state::{Attempt, Check, Opened, LOGIN_FAILED, LOGIN_LOCKED};
use super::{MailSettings, WebauthnRp};
use crate::ask::ask;
use crate::error::Error;
use crate::federation::identity::signin::{AuthzLink, PasswordChecked};
use crate::identity::signin::{acr_rank, LoginView, Next, Prompt, Subject, ACR_PASSWORD, ACR_PHR};
use crate::slot::Slot;

mod certificate;
mod link;

pub use certificate::CERTIFICATE_FAILED;
pub use link::{LinkAsked, LINK_PATH};

/// What opening the login page does (its `Debug` names the variant only: it may hold a
/// cookie value).
pub enum LoginStart {
    /// Show the form.
    Form(LoginView),
    /// Already signed in (or `prompt=none`): straight back to the client.
    Redirect(String),
    /// Signed in, but the client's request needs the user's consent.
    Consent(LoginView),
    /// Signed in, but below the assurance the request needs (`acr_values`): a step up, the
    /// next factor of a sign-in that starts from the session's.
    StepUp(LoginOutcome),
}

impl std::fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Form(_) => "Form",
            Self::Redirect(_) => "Redirect",
            Self::Consent(_) => "Consent",
            Self::StepUp(_) => "StepUp",
        })
    }
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
        /// The user has a security key (the page offers it).
        keys: bool,
    },
    /// A wrong or used code: the code form again.
    CodeFailed {
        /// The message.
        message: &'static str,
        /// The page.
        view: LoginView,
        /// The user has a security key.
        keys: bool,
    },
}

/// How the audit log names a sign-in by a name that is no user's (or not yet known to be
/// one): `name-sha256:` and the first 16 hex digits of SHA-256 of `<tenant>/<name, lowercase>`,
/// so what was typed is not kept, yet repeated attempts on one name can be told apart.
fn name_ref(tenant: &str, username: &str) -> String {
    let digest = cryptoutil_protocols::oauth::token_digest(
        format!("{tenant}/{}", username.to_ascii_lowercase()).as_bytes(),
    );
    let hex = cryptoutil_protocols::hex(digest.get(..8).unwrap_or_default());
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
/// The message when a passkey or security key did not sign in (unknown, refused, expired).
pub const KEY_FAILED: &str = "That passkey or security key did not sign you in. Try again.";
/// The message when the request needs a phishing-resistant sign-in and a code was given.
pub const KEY_NEEDED: &str =
    "This application needs your passkey or security key: a code is not enough.";
/// The message when the request needs more factors than the user has.
pub const FACTORS_NEEDED: &str = "This application needs a stronger sign-in than your account \
     has: add a passkey or security key (or a second factor) on your account page first.";
/// How long the account page's sign-in stays recent enough to change factors.
pub const RECENT_SIGN_IN: u64 = 900;
/// How long a browser may take for a WebAuthn ceremony (milliseconds).
const CEREMONY_TIMEOUT_MS: u64 = 120_000;

/// Whether `amr` holds a phishing-resistant factor (WebAuthn, a client certificate).
fn phishing_resistant(amr: &[String]) -> bool {
    amr.iter()
        .any(|a| crate::identity::signin::PHISHING_RESISTANT.contains(&a.as_str()))
}

/// What a typed second factor or a security key presents.
enum Given {
    Code(Zeroizing<String>),
    Key(Zeroizing<String>),
}

/// The login and consent pages' handle.
#[derive(Clone, Debug)]
pub struct IdpHandle {
    slot: Slot<IdpMsg>,
    authz: AuthzLink,
    factors: FactorsHandle,
    rp: WebauthnRp,
    mail: MailSettings,
    /// Magic links being made and sent at once (each may wait on the relay).
    sends: std::sync::Arc<tokio::sync::Semaphore>,
    /// Client-certificate sign-in, if it is on.
    certificates: Option<super::CertificateSignIn>,
    timeout: Duration,
}

impl IdpHandle {
    /// The `Idp` actor in `slot`, signing users in for `authz` with the factors of `factors`,
    /// the WebAuthn relying party `rp`, sending magic links through `mail`.
    pub fn new(
        slot: Slot<IdpMsg>,
        authz: AuthzLink,
        factors: FactorsHandle,
        rp: WebauthnRp,
        mail: MailSettings,
        certificates: Option<super::CertificateSignIn>,
        timeout: Duration,
    ) -> Self {
        Self {
            slot,
            authz,
            factors,
            rp,
            mail,
            sends: std::sync::Arc::new(tokio::sync::Semaphore::new(link::MAX_SENDS)),
            certificates,
            timeout,
        }
    }

    /// A sign-in of `user` for the pending request `challenge` that passed `amr` and waits
    /// for its next factor: the token that names it (the step cookie).
    async fn begin(
        &self,
        user: crate::identity::signin::Credential,
        challenge: String,
        amr: Vec<String>,
        sid: Option<String>,
    ) -> Result<Zeroizing<String>, Error> {
        ask(
            &self.slot,
            |reply| IdpMsg::Begin {
                user,
                challenge,
                amr,
                sid,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// Whether `username` of `tenant` is locked out (names that exist and names that do not
    /// alike), before a factor is checked.
    async fn lockout(&self, tenant: &str, username: &str) -> Result<Check, Error> {
        let (tenant, username) = (tenant.to_owned(), username.to_owned());
        ask(
            &self.slot,
            |reply| IdpMsg::Check {
                tenant,
                username,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// A failed factor, counted against `username` of `tenant`: the message to show.
    async fn count_failure(&self, tenant: &str, username: &str) -> Result<&'static str, Error> {
        let (tenant, username) = (tenant.to_owned(), username.to_owned());
        ask(
            &self.slot,
            |reply| IdpMsg::Failed {
                tenant,
                username,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// What a ceremony with challenge `challenge` must match.
    fn expected(&self, challenge: Vec<u8>, user_verification: bool) -> Expected {
        Expected {
            challenge,
            rp_id: self.rp.rp_id.clone(),
            origins: self.rp.origins.clone(),
            user_verification,
        }
    }

    async fn ceremony(&self, key: String, bind: &str) -> Result<Vec<u8>, Error> {
        let (key, bind) = (Zeroizing::new(key), bind.to_owned());
        ask(
            &self.slot,
            |reply| IdpMsg::Ceremony { key, bind, reply },
            self.timeout,
        )
        .await
    }

    async fn take_ceremony(&self, key: String, bind: &str) -> Result<Option<Vec<u8>>, Error> {
        let (key, bind) = (Zeroizing::new(key), bind.to_owned());
        ask(
            &self.slot,
            |reply| IdpMsg::TakeCeremony { key, bind, reply },
            self.timeout,
        )
        .await
    }

    /// `owner`'s WebAuthn credentials, as options list them.
    async fn keys_of(&self, tenant: &str, user_id: &str) -> Result<Vec<Descriptor>, Error> {
        Ok(self
            .factors
            .descriptors(tenant, user_id, FactorKind::Webauthn)
            .await?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
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
                    .filter(|s| request.admits(s, now))
                    .map(|s| (cookie, s))
            }
            _ => None,
        };
        // The session's tenant's policy raises what the request needs (a client may admit
        // users of any tenant).
        let mut request = request;
        if let Some((_, subject)) = &session {
            let policy = self.tenant_policy(&subject.tenant).await?;
            request.acr = crate::identity::signin::stronger(request.acr, policy);
        }
        // A session below the request's assurance: step up from it, if it still stands at
        // identity-authz (a logout or a restart ended it: sign in again) and the user has a
        // factor that reaches it (else they are told what to add).
        if let Some((cookie, subject)) = session
            .as_ref()
            .filter(|(_, s)| !request.assured(&s.amr) && request.prompt != Prompt::None)
        {
            if !self.authz.stands(subject.clone()).await? {
                if let Ok(idp) = self.slot.current() {
                    let _ = idp.cast(IdpMsg::End {
                        cookie: cookie.clone(),
                    });
                }
                return Ok(LoginStart::Form(request.view));
            }
            if self.lockout(&subject.tenant, &subject.username).await? == Check::Locked {
                return Ok(LoginStart::StepUp(LoginOutcome::Failed {
                    message: LOGIN_LOCKED,
                    view: request.view,
                }));
            }
            let keys = self
                .factors
                .has(&subject.tenant, &subject.user_id, FactorKind::Webauthn)
                .await?;
            let any = self
                .factors
                .has_any(&subject.tenant, &subject.user_id)
                .await?;
            if keys || (any && (!request.needs_key() || phishing_resistant(&subject.amr))) {
                let user = crate::identity::signin::Credential {
                    user_id: subject.user_id.clone(),
                    username: subject.username.clone(),
                    tenant: subject.tenant.clone(),
                    roles: subject.roles.clone(),
                    password_hash: String::new(),
                };
                let sid = Some(subject.sid.clone());
                let step = self
                    .begin(user, challenge, subject.amr.clone(), sid)
                    .await?;
                return Ok(LoginStart::StepUp(LoginOutcome::NextFactor {
                    step,
                    view: request.view,
                    keys,
                }));
            }
            return Ok(LoginStart::StepUp(LoginOutcome::Failed {
                message: FACTORS_NEEDED,
                view: request.view,
            }));
        }
        let session = session.filter(|(_, s)| request.assured(&s.amr));
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
        let (view, needed) = (request.view, request.acr);
        let Check::Proceed { dummy } = self.lockout(&tenant, &username).await? else {
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
        let PasswordChecked { user, matched } = self
            .authz
            .password(tenant.clone(), username.clone(), presented, dummy)
            .await?;
        // Who the log names: the user, or for a name no user has a digest of it (what was
        // typed there may be a password).
        let who = user
            .as_ref()
            .map_or_else(|| name_ref(&tenant, &username), |u| u.user_id.clone());
        let Some(user) = user.filter(|_| matched) else {
            self.factors
                .audit_sign_in(&who, &tenant, &["pwd".into()], Some("wrong password"))
                .await?;
            let message = self.count_failure(&tenant, &username).await?;
            return Ok(LoginOutcome::Failed { message, view });
        };
        self.after_first(user, challenge, vec!["pwd".to_owned()], view, needed)
            .await
    }

    /// `user` passed a first factor (`amr`: the password, or a magic link) for the pending
    /// request `challenge` that needs `needed`: the next factor's page when they have one,
    /// a refusal when the request needs more than they can give, else signed in.
    async fn after_first(
        &self,
        user: crate::identity::signin::Credential,
        challenge: String,
        amr: Vec<String>,
        view: LoginView,
        needed: Option<&'static str>,
    ) -> Result<LoginOutcome, Error> {
        // The user's tenant's policy too: a client may admit users of any tenant.
        let policy = self.tenant_policy(&user.tenant).await?;
        let needed = crate::identity::signin::stronger(needed, policy);
        let any = self.factors.has_any(&user.tenant, &user.user_id).await?;
        let keys = any
            && self
                .factors
                .has(&user.tenant, &user.user_id, FactorKind::Webauthn)
                .await?;
        // The request needs more than a password: a factor that reaches it, or a refusal
        // (audited) that says what to add.
        let password_enough = needed.is_none_or(|a| acr_rank(a) <= acr_rank(ACR_PASSWORD));
        // After a client certificate (phishing-resistant itself), any second factor reaches a
        // phishing-resistant sign-in.
        let resistant_first = phishing_resistant(&amr);
        let reachable = keys || (any && (needed != Some(ACR_PHR) || resistant_first));
        if !password_enough && !reachable {
            self.factors
                .audit_sign_in(
                    &user.user_id,
                    &user.tenant,
                    &amr,
                    Some("needs a stronger factor"),
                )
                .await?;
            return Ok(LoginOutcome::Failed {
                message: FACTORS_NEEDED,
                view,
            });
        }
        if any {
            let step = self.begin(user, challenge, amr, None).await?;
            return Ok(LoginOutcome::NextFactor { step, view, keys });
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
        self.second_given(challenge, step, Given::Code(code)).await
    }

    /// The security key's assertion (the browser's JSON) for the sign-in `step`, counted like
    /// a code; its challenge is the one [`step_options`](Self::step_options) sent.
    pub async fn second_key(
        &self,
        challenge: String,
        step: Zeroizing<String>,
        response: Zeroizing<String>,
    ) -> Result<LoginOutcome, Error> {
        self.second_given(challenge, step, Given::Key(response))
            .await
    }

    /// The assertion options for a security key, for the sign-in `step` waiting on the pending
    /// request `challenge`: the user's credentials allowed, a new challenge.
    pub async fn step_options(
        &self,
        challenge: String,
        step: Zeroizing<String>,
    ) -> Result<Value, Error> {
        self.authz.sign_in_request(challenge.clone()).await?;
        let (token, c) = (step.clone(), challenge.clone());
        let user = ask(
            &self.slot,
            |reply| IdpMsg::Waiting {
                token,
                challenge: c,
                reply,
            },
            self.timeout,
        )
        .await?
        .map(|(user, _)| user)
        .ok_or(Error::NotFound {
            what: "sign-in request",
        })?;
        let allow = self.keys_of(&user.tenant, &user.user_id).await?;
        if allow.is_empty() {
            return Err(Error::NotFound {
                what: "security key",
            });
        }
        let sent = self
            .ceremony(format!("step:{}", step.as_str()), &challenge)
            .await?;
        Ok(webauthn::request_options(
            &self.rp.rp_id,
            &sent,
            &allow,
            CEREMONY_TIMEOUT_MS,
        ))
    }

    async fn second_given(
        &self,
        challenge: String,
        step: Zeroizing<String>,
        given: Given,
    ) -> Result<LoginOutcome, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        // A code cannot reach a phishing-resistant sign-in (unless the first factor was a
        // client certificate), whether the request or the user's tenant needs one: refused
        // before it costs an attempt.
        let (token, c) = (step.clone(), challenge.clone());
        let waiting = ask(
            &self.slot,
            |reply| IdpMsg::Waiting {
                token,
                challenge: c,
                reply,
            },
            self.timeout,
        )
        .await?;
        let resistant_first = waiting
            .as_ref()
            .is_some_and(|(_, amr)| phishing_resistant(amr));
        let mut needs_key = request.needs_key() && !resistant_first;
        if let Some((user, _)) = waiting
            .as_ref()
            .filter(|_| !needs_key && !resistant_first && matches!(given, Given::Code(_)))
        {
            needs_key = self.tenant_policy(&user.tenant).await? == Some(ACR_PHR);
        }
        let view = request.view;
        if needs_key && matches!(given, Given::Code(_)) {
            return Ok(LoginOutcome::CodeFailed {
                message: KEY_NEEDED,
                view,
                keys: true,
            });
        }
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
                let keys = self
                    .factors
                    .has(&user.tenant, &user.user_id, FactorKind::Webauthn)
                    .await?;
                return Ok(LoginOutcome::CodeFailed {
                    message: LOGIN_LOCKED,
                    view,
                    keys,
                });
            }
        };
        let owner = Owner {
            tenant: user.tenant.clone(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        // The attempt is already counted: a refusal here needs nothing more.
        let passed = match given {
            Given::Code(code) => {
                let code = code.trim();
                if code.is_empty() || code.len() > 64 {
                    None
                } else {
                    self.factors.check_code(&owner, code).await?
                }
            }
            Given::Key(response) => {
                let sent = self
                    .take_ceremony(format!("step:{}", step.as_str()), &challenge)
                    .await?;
                match sent {
                    Some(sent) => {
                        let expected = self.expected(sent, false);
                        self.factors
                            .check_webauthn(&owner, &response, &expected)
                            .await?
                    }
                    None => None,
                }
            }
        };
        let Some(passed) = passed else {
            let keys = self
                .factors
                .has(&owner.tenant, &owner.user_id, FactorKind::Webauthn)
                .await?;
            return Ok(LoginOutcome::CodeFailed {
                message: CODE_FAILED,
                view,
                keys,
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
        let users = self.authz.users(tenant).await?;
        // A `sub` first: a login name may look like another user's `sub`.
        let by_id = users.iter().position(|u| u.id == id);
        let at = by_id.or_else(|| users.iter().position(|u| u.username == id));
        Ok(at.and_then(|i| users.into_iter().nth(i)))
    }

    /// Starts a passkey sign-in (no username) for the pending request `challenge`: the token
    /// naming the ceremony (a cookie of this browser) and the assertion options.
    pub async fn passkey_options(
        &self,
        challenge: String,
    ) -> Result<(Zeroizing<String>, Value), Error> {
        self.authz.sign_in_request(challenge.clone()).await?;
        let token = cryptoutil_protocols::oauth::random_token(32).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let sent = self
            .ceremony(format!("passkey:{}", token.as_str()), &challenge)
            .await?;
        let options = webauthn::request_options(&self.rp.rp_id, &sent, &[], CEREMONY_TIMEOUT_MS);
        Ok((token, options))
    }

    /// A passkey's assertion (the browser's JSON) for the pending request `challenge`, the
    /// ceremony `token` started: the credential names the user, its signature (with user
    /// verification) signs them in. Failures count against the user's name like a wrong
    /// password, and all look alike.
    pub async fn passkey(
        &self,
        challenge: String,
        token: Zeroizing<String>,
        response: Zeroizing<String>,
    ) -> Result<LoginOutcome, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let failed = |view| LoginOutcome::Failed {
            message: KEY_FAILED,
            view,
        };
        let sent = self
            .take_ceremony(format!("passkey:{}", token.as_str()), &challenge)
            .await?;
        let parsed = AuthenticationResponse::from_json(&response).ok();
        let (Some(sent), Some(parsed)) = (sent, parsed) else {
            return Ok(failed(request.view));
        };
        let id = webauthn::b64(&parsed.raw_id);
        let Some((tenant, user_id)) = self
            .factors
            .find(FactorKind::Webauthn, id.as_bytes())
            .await?
        else {
            let who = format!(
                "credential-sha256:{}",
                &cryptoutil_protocols::hex(&cryptoutil_protocols::sha256(id.as_bytes()))[..16]
            );
            self.factors
                .audit_sign_in(
                    &who,
                    &request.view.tenant,
                    &["hwk".into()],
                    Some("unknown passkey"),
                )
                .await?;
            return Ok(failed(request.view));
        };
        // A discoverable credential names its user (§7.2 step 6): the handle is required and
        // must be the one registered for the user the credential id found.
        let handle_ok = parsed
            .user_handle
            .as_deref()
            .is_some_and(|h| h == webauthn::user_handle(&tenant, &user_id).as_slice());
        // By `sub` only (a login name may look like a `sub`).
        let user = self
            .user(&tenant, &user_id)
            .await?
            .filter(|u| u.id == user_id);
        let user = match user {
            Some(u) if handle_ok && request.tenant(Some(&tenant)) == tenant => u,
            _ => {
                self.factors
                    .audit_sign_in(
                        &user_id,
                        &tenant,
                        &["hwk".into()],
                        Some("passkey not for this request"),
                    )
                    .await?;
                return Ok(failed(request.view));
            }
        };
        if self.lockout(&tenant, &user.username).await? == Check::Locked {
            self.factors
                .audit_sign_in(&user_id, &tenant, &["hwk".into()], Some("locked out"))
                .await?;
            return Ok(LoginOutcome::Failed {
                message: LOGIN_LOCKED,
                view: request.view,
            });
        }
        let owner = Owner {
            tenant: tenant.clone(),
            user_id: user_id.clone(),
            username: user.username.clone(),
        };
        let expected = self.expected(sent, true);
        let passed = self
            .factors
            .check_webauthn(&owner, &response, &expected)
            .await?;
        let Some(Passed {
            amr,
            verified_user: true,
            ..
        }) = passed
        else {
            self.count_failure(&tenant, &user.username).await?;
            return Ok(failed(request.view));
        };
        let credential = crate::identity::signin::Credential {
            user_id,
            username: user.username,
            tenant,
            roles: user.roles,
            password_hash: String::new(),
        };
        // The authenticator verified the user: possession and a PIN or biometric.
        let amr = vec![amr.to_owned(), "mfa".to_owned()];
        let opened = ask(
            &self.slot,
            |reply| IdpMsg::Open {
                user: credential,
                amr,
                reply,
            },
            self.timeout,
        )
        .await?;
        self.done(challenge, opened, request.view).await
    }

    /// Who the sign-in session `cookie` stands for (the account page's user).
    pub async fn account(&self, cookie: Zeroizing<String>) -> Result<Option<Subject>, Error> {
        ask(
            &self.slot,
            |reply| IdpMsg::Session { cookie, reply },
            self.timeout,
        )
        .await
    }

    /// The account page's user, signed in recently enough to change factors.
    async fn recent(&self, cookie: &Zeroizing<String>) -> Result<Subject, Error> {
        let subject = self
            .account(cookie.clone())
            .await?
            .ok_or(Error::Unauthenticated {
                why: "not signed in",
            })?;
        if crate::now_unix().saturating_sub(subject.auth_time) > RECENT_SIGN_IN {
            return Err(Error::Forbidden {
                reason: "sign in again to change your sign-in factors",
            });
        }
        // A user with factors changes them from a session that used one (a stolen password
        // alone cannot add a passkey or remove a factor).
        let multi = subject.amr.iter().any(|a| a == "mfa");
        if !multi
            && self
                .factors
                .has_any(&subject.tenant, &subject.user_id)
                .await?
        {
            return Err(Error::Forbidden {
                reason: "sign in with your second factor to change your sign-in factors",
            });
        }
        Ok(subject)
    }

    fn owner_of(subject: &Subject) -> Owner {
        Owner {
            tenant: subject.tenant.clone(),
            user_id: subject.user_id.clone(),
            username: subject.username.clone(),
        }
    }

    /// The account page's user's factors.
    pub async fn own_factors(
        &self,
        subject: &Subject,
    ) -> Result<Vec<super::factors::FactorInfo>, Error> {
        self.factors.list(&subject.tenant, &subject.user_id).await
    }

    /// Starts registering a passkey or a security key for the account page's user: the
    /// creation options (their credentials excluded).
    pub async fn register_options(
        &self,
        cookie: Zeroizing<String>,
        kind: Kind,
    ) -> Result<Value, Error> {
        let subject = self.recent(&cookie).await?;
        let exclude = self.keys_of(&subject.tenant, &subject.user_id).await?;
        let sent = self
            .ceremony(format!("register:{}", cookie.as_str()), kind_name(kind))
            .await?;
        let handle = webauthn::user_handle(&subject.tenant, &subject.user_id);
        let user = webauthn::UserEntity {
            handle: &handle,
            name: &subject.username,
            display_name: &subject.username,
        };
        Ok(webauthn::creation_options(
            &self.rp.rp_id,
            &self.rp.rp_name,
            user,
            &sent,
            kind,
            &exclude,
            CEREMONY_TIMEOUT_MS,
        ))
    }

    /// The browser's registration (`response`, JSON) of a credential named `name` for the
    /// ceremony the account page's user started: enrolled and audited.
    pub async fn register(
        &self,
        cookie: Zeroizing<String>,
        kind: Kind,
        name: &str,
        response: Zeroizing<String>,
    ) -> Result<Map<String, Value>, Error> {
        let subject = self.recent(&cookie).await?;
        let sent = self
            .take_ceremony(format!("register:{}", cookie.as_str()), kind_name(kind))
            .await?;
        let Some(sent) = sent else {
            let e = Error::BadRequest {
                reason: "the registration expired: start it again",
            };
            return self
                .factors
                .refuse(&subject.user_id, &Self::owner_of(&subject), e)
                .await;
        };
        let expected = self.expected(sent, kind == Kind::Passkey);
        let mut params = Map::new();
        params.insert("credential".into(), Value::String(response.to_string()));
        self.factors
            .enroll(
                &subject.user_id,
                &Self::owner_of(&subject),
                FactorKind::Webauthn,
                name,
                &params,
                Some(&expected),
            )
            .await
    }

    /// Enrolls a TOTP secret, a set of recovery codes or a YubiKey's Yubico OTP slot (with
    /// `params`: its ids, key and one OTP it typed, which proves the import) for the account
    /// page's user (named `name`): what is shown once (the secret and its `otpauth://` URI,
    /// or the codes).
    pub async fn enroll_own(
        &self,
        cookie: Zeroizing<String>,
        kind: FactorKind,
        name: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        let allowed = match kind {
            FactorKind::Totp | FactorKind::RecoveryCodes => params.is_empty(),
            FactorKind::YubicoOtp => params.get("otp").is_some_and(|o| o.is_string()),
            _ => false,
        };
        if !allowed {
            return Err(Error::BadRequest {
                reason: "type: totp, recovery_codes or yubico_otp (with an OTP it typed) here",
            });
        }
        let subject = self.recent(&cookie).await?;
        self.factors
            .enroll(
                &subject.user_id,
                &Self::owner_of(&subject),
                kind,
                name,
                params,
                None,
            )
            .await
    }

    /// Removes factor `id` of the account page's user (not the last that reaches their
    /// tenant's policy).
    pub async fn remove_own(&self, cookie: Zeroizing<String>, id: &str) -> Result<(), Error> {
        let subject = self.recent(&cookie).await?;
        let policy = self.tenant_policy(&subject.tenant).await?;
        self.factors
            .remove(&subject.user_id, &Self::owner_of(&subject), id, policy)
            .await
    }

    /// The `acr` every sign-in of `tenant`'s users must reach, if its administrator set one.
    pub async fn tenant_policy(&self, tenant: &str) -> Result<Option<&'static str>, Error> {
        self.authz.tenant_acr(tenant).await
    }

    /// The consent page's answer; where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        self.authz.consent(challenge, allow).await
    }
}

/// How a ceremony of `kind` is bound.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Passkey => "passkey",
        Kind::SecurityKey => "security-key",
    }
}
