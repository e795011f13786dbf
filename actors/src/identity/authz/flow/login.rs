//! Sign-in at identity-idp: the login page's start, the password check with lockout, the
//! consent page, and the single-use code that sends the browser back.

use cryptoutil_protocols::oauth::{self, AuthorizeError};

use super::*;
use crate::error::Error;
use crate::identity::authz::model::random;
use crate::identity::authz::state::AuthzState;
use crate::service::Scope;

impl AuthzState {
    pub(super) fn pending(&self, challenge: &str, now: u64) -> Result<&Pending, Error> {
        self.flow
            .pending
            .get(challenge)
            .filter(|p| p.expires > now)
            .ok_or(Error::NotFound {
                what: "sign-in request",
            })
    }

    pub(super) fn view(&self, p: &Pending) -> LoginView {
        LoginView {
            client_name: self
                .clients
                .get(&p.request.client_id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            scopes: p.request.scopes.clone(),
            tenant: p.request.tenant.clone(),
            redirect_origin: origin_of(&p.request.redirect_uri),
            username: p.subject.as_ref().map(|s| s.username.clone()),
            any_tenant: self.any_tenant(&p.request),
        }
    }

    pub(super) fn any_tenant(&self, request: &AuthRequest) -> bool {
        self.clients
            .get(&request.client_id)
            .is_some_and(|c| c.any_tenant)
    }

    /// The tenant a sign-in is for: the one the form names when the client admits any tenant,
    /// else the client's.
    pub(super) fn sign_in_tenant(&self, request: &AuthRequest, asked: Option<&str>) -> String {
        match asked.filter(|t| !t.is_empty() && t.len() <= 64) {
            Some(t) if self.any_tenant(request) => t.to_owned(),
            _ => request.tenant.clone(),
        }
    }

    pub(super) fn session(&self, cookie: Option<&str>, now: u64) -> Option<&Session> {
        let cookie = cookie?;
        self.flow
            .sessions
            .get(&oauth::token_digest(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .filter(|s| {
                self.users
                    .get(&(s.subject.tenant.clone(), s.subject.username.clone()))
                    .is_some_and(|u| u.id == s.subject.user_id)
            })
    }

    /// Opening the login page: the form, or straight back to the client when a live session
    /// of the request's tenant satisfies it (and `prompt=login` did not ask for a new sign-in);
    /// `prompt=none` without one goes back with `login_required`.
    pub fn login_start(
        &mut self,
        challenge: &str,
        cookie: Option<&str>,
        now: u64,
    ) -> Result<LoginStart, Error> {
        let pending = self.pending(challenge, now)?;
        let request = pending.request.clone();
        let view = self.view(pending);
        let session = self
            .session(cookie, now)
            .filter(|s| s.subject.tenant == request.tenant || self.any_tenant(&request))
            .filter(|s| {
                request
                    .max_age
                    .is_none_or(|m| now.saturating_sub(s.subject.auth_time) <= m)
            })
            .map(|s| s.subject.clone());
        match (request.prompt, session) {
            (Prompt::Login, _) => Ok(LoginStart::Form(view)),
            (_, Some(subject)) => {
                self.flow.pending.remove(challenge);
                Ok(
                    match self.after_sign_in(challenge, request, subject, now)? {
                        Next::Redirect(to) => LoginStart::Redirect(to),
                        Next::Consent(view) => LoginStart::Consent(view),
                    },
                )
            }
            (Prompt::None, None) => {
                self.flow.pending.remove(challenge);
                Ok(LoginStart::Redirect(self.error_redirect(
                    &request.redirect_uri,
                    request.state.as_deref(),
                    AuthorizeError::LoginRequired,
                    "nobody is signed in",
                )))
            }
            (Prompt::Default, None) => Ok(LoginStart::Form(view)),
        }
    }

    /// Before checking a password: the request must be pending and the name not locked out.
    /// Unknown names get the dummy record, and lock out like real ones, so neither message nor
    /// timing tells whether a name exists.
    pub fn login_check(
        &mut self,
        challenge: &str,
        tenant: Option<&str>,
        username: &str,
        now: u64,
    ) -> Result<LoginCheck, Error> {
        let pending = self.pending(challenge, now)?;
        let tenant = self.sign_in_tenant(&pending.request, tenant);
        let view = self.view(pending);
        let key = (tenant.clone(), username.to_ascii_lowercase());
        if self
            .flow
            .failures
            .get(&key)
            .is_some_and(|f| f.locked_until > now)
        {
            return Ok(LoginCheck::Answer(LoginOutcome::Failed {
                message: LOGIN_LOCKED,
                view,
            }));
        }
        Ok(match self.users.get(&(tenant, username.to_owned())) {
            Some(u) if username.len() <= 128 => LoginCheck::Verify {
                hash: u.password_hash.clone(),
                exists: true,
            },
            _ => LoginCheck::Verify {
                hash: self.flow.dummy_hash.clone(),
                exists: false,
            },
        })
    }

    /// After the password check: a code and a session, or a failure counted against the name.
    pub fn login_finish(
        &mut self,
        challenge: &str,
        tenant: Option<&str>,
        username: &str,
        ok: bool,
        now: u64,
    ) -> Result<LoginOutcome, Error> {
        let pending = self.pending(challenge, now)?;
        let request = pending.request.clone();
        let view = self.view(pending);
        let tenant = self.sign_in_tenant(&request, tenant);
        let key = (tenant.clone(), username.to_ascii_lowercase());
        let user = self
            .users
            .get(&(tenant.clone(), username.to_owned()))
            .filter(|_| ok)
            .cloned();
        let Some(user) = user else {
            if !room(&mut self.flow.failures, |f| now < f.last + FAILURE_MEMORY) {
                return Ok(LoginOutcome::Failed {
                    message: LOGIN_LOCKED,
                    view,
                });
            }
            let f = self.flow.failures.entry(key).or_default();
            if now >= f.last + FAILURE_MEMORY {
                *f = Failures::default();
            }
            f.count += 1;
            f.last = now;
            if f.count >= FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES).min(10);
                f.locked_until = now + (FIRST_LOCKOUT << doublings).min(MAX_LOCKOUT);
            }
            tracing::info!(%tenant, failures = f.count, "sign-in failed");
            return Ok(LoginOutcome::Failed {
                message: LOGIN_FAILED,
                view,
            });
        };
        self.flow.failures.remove(&key);
        self.flow.pending.remove(challenge);
        if !room(&mut self.flow.sessions, |s| s.expires > now) {
            return Err(Error::Unavailable {
                actor: "Authz",
                why: crate::error::Unavailability::Timeout,
            });
        }
        let cookie = random(32)?;
        let sid = random(16)?;
        let subject = Subject {
            user_id: user.id.clone(),
            username: user.username.clone(),
            tenant: user.tenant.clone(),
            roles: user.roles.clone(),
            auth_time: now,
            sid: sid.to_string(),
        };
        let max_age = self.cfg.session_ttl.as_secs();
        self.flow.sessions.insert(
            oauth::token_digest(cookie.as_bytes()),
            Session {
                subject: subject.clone(),
                expires: now + max_age,
            },
        );
        tracing::info!(tenant = %user.tenant, sub = %user.id, "signed in");
        Ok(LoginOutcome::Done {
            next: self.after_sign_in(challenge, request, subject, now)?,
            session: cookie,
            max_age,
        })
    }

    /// After a sign-in: the code, unless a third-party client asks for scopes the user has not
    /// granted it yet; then the request waits (under the same challenge) for the consent page,
    /// or with `prompt=none` goes back with `consent_required`.
    pub(super) fn after_sign_in(
        &mut self,
        challenge: &str,
        mut request: AuthRequest,
        subject: Subject,
        now: u64,
    ) -> Result<Next, Error> {
        if !subject.roles.iter().any(|r| r == "admin") {
            request.scopes.retain(|s| s != Scope::Identity.as_str());
        }
        let first_party = self
            .clients
            .get(&request.client_id)
            .is_some_and(|c| c.first_party);
        let granted = self
            .consents
            .get(&(subject.user_id.clone(), request.client_id.clone()))
            .is_some_and(|g| request.scopes.iter().all(|s| g.contains(s)));
        if first_party || granted {
            return Ok(Next::Redirect(self.code_redirect(request, subject, now)?));
        }
        if request.prompt == Prompt::None {
            return Ok(Next::Redirect(self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::ConsentRequired,
                "the user has not consented to this request",
            )));
        }
        let pending = Pending {
            request,
            subject: Some(subject),
            expires: now + PENDING_TTL,
        };
        let view = self.view(&pending);
        self.flow.pending.insert(challenge.to_owned(), pending);
        Ok(Next::Consent(view))
    }

    /// The consent page's answer for a signed-in pending request: allowed, the scopes are
    /// recorded (to persist before answering) and the code issued; denied, `access_denied`.
    pub fn consent(
        &mut self,
        challenge: &str,
        allow: bool,
        now: u64,
    ) -> Result<(String, Persist), Error> {
        let waiting = self
            .pending(challenge, now)
            .ok()
            .and_then(|p| p.subject.clone())
            .is_some();
        let pending = match self.flow.pending.remove(challenge) {
            Some(p) if waiting => p,
            _ => {
                return Err(Error::NotFound {
                    what: "sign-in request",
                })
            }
        };
        let (request, Some(subject)) = (pending.request, pending.subject) else {
            return Err(Error::NotFound {
                what: "sign-in request",
            });
        };
        if !allow {
            tracing::info!(client = %request.client_id, "consent denied");
            let to = self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::AccessDenied,
                "the user denied the request",
            );
            return Ok((to, Persist::default()));
        }
        let key = (subject.user_id.clone(), request.client_id.clone());
        let mut scopes = self.consents.get(&key).cloned().unwrap_or_default();
        for s in &request.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        self.consents.insert(key, scopes.clone());
        let record = ConsentRecord {
            tenant: subject.tenant.clone(),
            user_id: subject.user_id.clone(),
            client_id: request.client_id.clone(),
            scopes,
            granted: now,
        };
        let to = self.code_redirect(request, subject, now)?;
        Ok((
            to,
            Persist {
                consents: vec![record],
                ..Persist::default()
            },
        ))
    }

    /// A fresh single-use code for `request`, as the redirect back to the client.
    pub(super) fn code_redirect(
        &mut self,
        mut request: AuthRequest,
        subject: Subject,
        now: u64,
    ) -> Result<String, Error> {
        // Roles bound the API scopes: only administrators get `identity`.
        if !subject.roles.iter().any(|r| r == "admin") {
            request.scopes.retain(|s| s != Scope::Identity.as_str());
        }
        if !room(&mut self.flow.codes, |c| c.expires > now) {
            return Ok(self.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                AuthorizeError::ServerError,
                "too many unredeemed codes",
            ));
        }
        let code = random(32)?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s.as_str()));
        }
        params.push(("iss", self.cfg.issuer.as_str()));
        let redirect = oauth::with_query(&request.redirect_uri, &params);
        self.flow.codes.insert(
            oauth::token_digest(code.as_bytes()),
            CodeGrant {
                request,
                subject,
                expires: now + CODE_TTL,
            },
        );
        Ok(redirect)
    }
}
