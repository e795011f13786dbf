//! identity-idp's side of a pending request: what the login page shows, the user record a
//! factor checks, who signed in (then the code, or first the consent page), `prompt=none`
//! without a session, and the consent page's answer.

use cryptoutil_protocols::oauth::{self, AuthorizeError};

use super::*;
use crate::error::Error;
use crate::identity::authz::model::random;
use crate::identity::authz::state::AuthzState;
use crate::identity::signin::{Credential, Next, SignInRequest};
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

    /// The pending request `challenge` names, as the login page needs it.
    pub fn sign_in_request(&self, challenge: &str, now: u64) -> Result<SignInRequest, Error> {
        let pending = self.pending(challenge, now)?;
        Ok(SignInRequest {
            view: self.view(pending),
            prompt: pending.request.prompt,
            max_age: pending.request.max_age,
            acr: pending.request.acr,
        })
    }

    /// The user `username` of `tenant`, for a factor to check.
    pub fn credential(&self, tenant: &str, username: &str) -> Option<Credential> {
        self.users
            .get(&(tenant.to_owned(), username.to_owned()))
            .map(|u| Credential {
                user_id: u.id.clone(),
                username: u.username.clone(),
                tenant: u.tenant.clone(),
                roles: u.roles.clone(),
                password_hash: u.password_hash.clone(),
            })
    }

    /// `subject` signed in for the pending request `challenge` (identity-idp checked the
    /// factors, or a session of theirs serves): the code, or first the consent page. `None`
    /// when the subject no longer stands (the user was removed or replaced, or the session
    /// was ended by a logout): identity-idp then asks for a sign-in again.
    pub fn signed_in(
        &mut self,
        challenge: &str,
        mut subject: Subject,
        now: u64,
    ) -> Result<Option<Next>, Error> {
        let request = self.pending(challenge, now)?.request.clone();
        if !self.stands(&subject) {
            return Ok(None);
        }
        // What identity-idp says (over the back channel, from another process) decides who,
        // never what they may do: the roles are the user record's, and the tenant one the
        // client admits.
        if subject.tenant != request.tenant && !self.any_tenant(&request) {
            tracing::warn!(sub = %subject.user_id, "a sign-in for another tenant was refused");
            return Ok(None);
        }
        if let Some(user) = self
            .users
            .get(&(subject.tenant.clone(), subject.username.clone()))
        {
            subject.roles = user.roles.clone();
        }
        // identity-idp reaches the assurance the request needs (and the user's tenant's
        // policy: a client may admit users of any tenant) before it signs in; a subject below
        // it is not signed in here either.
        let policy = self
            .tenants
            .get(&subject.tenant)
            .and_then(|t| t.acr.as_deref())
            .and_then(crate::identity::signin::known_acr);
        let needed = crate::identity::signin::stronger(request.acr, policy);
        let below = needed.is_some_and(|needed| {
            crate::identity::signin::acr_rank(subject.acr())
                < crate::identity::signin::acr_rank(needed)
        });
        if below {
            tracing::warn!(sub = %subject.user_id, "a sign-in below the request's acr was refused");
            return Ok(None);
        }
        self.flow.pending.remove(challenge);
        self.forget(&shared::pending_key(challenge));
        tracing::info!(tenant = %subject.tenant, sub = %subject.user_id, "signed in");
        self.after_sign_in(challenge, request, subject, now)
            .map(Some)
    }

    /// Whether a session of `subject` still stands: not ended by a logout or a restart, and
    /// its user the same.
    pub fn stands(&self, subject: &Subject) -> bool {
        let user = self
            .users
            .get(&(subject.tenant.clone(), subject.username.clone()));
        !self.ended(subject) && user.is_some_and(|u| u.id == subject.user_id)
    }

    /// `prompt=none` and no session serves: back to the client with `login_required`.
    pub fn login_required(&mut self, challenge: &str, now: u64) -> Result<String, Error> {
        let request = self.pending(challenge, now)?.request.clone();
        self.flow.pending.remove(challenge);
        self.forget(&shared::pending_key(challenge));
        Ok(self.error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            AuthorizeError::LoginRequired,
            "nobody is signed in",
        ))
    }

    /// identity-authz (re)started at `now`: it remembers no logout from before, so no session
    /// begun before then signs anyone in (they sign in again, as when sessions lived here).
    pub fn started(&mut self, now: u64) {
        self.flow.ended_before = self.flow.ended_before.max(now);
    }

    /// Whether `subject`'s session ended: logged out, or begun before what is remembered.
    fn ended(&self, subject: &Subject) -> bool {
        subject.auth_time < self.flow.ended_before || self.flow.ended.contains_key(&subject.sid)
    }

    /// RP-initiated logout ended the sign-in session `sid`. Never skipped: when the record is
    /// full, the older half of it is forgotten and every session begun by then ends with it.
    pub(in crate::identity::authz) fn end_session(&mut self, sid: &str, now: u64) {
        let flow = &mut self.flow;
        if flow.ended.len() >= MAX_ENTRIES {
            let forget_to = forget_older_half(&mut flow.ended, |at| *at);
            flow.ended_before = flow.ended_before.max(forget_to + 1);
        }
        flow.ended.insert(sid.to_owned(), now);
        self.keep_ended(sid, now);
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
        bound_by_roles(&mut request, &subject);
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
        if request.prompt == crate::identity::signin::Prompt::None {
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
        self.keep(
            &shared::pending_key(challenge),
            pending.expires,
            &pending,
            false,
        );
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
        let pending = self.flow.pending.remove(challenge);
        self.forget(&shared::pending_key(challenge));
        let pending = match pending {
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
        bound_by_roles(&mut request, &subject);
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
        let digest = oauth::token_digest(code.as_bytes());
        let grant = CodeGrant {
            request,
            subject,
            expires: now + CODE_TTL,
        };
        self.keep(&shared::code_key(&digest), grant.expires, &grant, false);
        self.flow.codes.insert(digest, grant);
        Ok(redirect)
    }
}

/// Roles bound the API scopes: only administrators get `identity` (checked again where a code
/// is issued, whatever path led there).
fn bound_by_roles(request: &mut AuthRequest, subject: &Subject) {
    if !subject.roles.iter().any(|r| r == "admin") {
        request.scopes.retain(|s| s != Scope::Identity.as_str());
    }
}
