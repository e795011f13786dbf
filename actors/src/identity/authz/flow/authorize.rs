//! The authorization endpoint and pushed authorization requests (RFC 9126): checking a
//! request, refusing without redirecting until client and redirect URI are trusted.

use cryptoutil_protocols::oauth::{self, AuthorizeError};

use super::*;
use crate::error::Error;
use crate::identity::authz::model::{random, Client, ClientAuth, AUTHORIZATION_CODE};
use crate::identity::authz::state::AuthzState;
use crate::identity::signin;

impl AuthzState {
    pub(super) fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        e: AuthorizeError,
        why: &str,
    ) -> String {
        let mut params = vec![("error", e.code()), ("error_description", why)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", self.cfg.issuer.as_str()));
        oauth::with_query(redirect_uri, &params)
    }

    /// Checks an authorization request's parameters (RFC 6749 §4.1.1, RFC 7636, OpenID Connect
    /// Core §3.1.2). Until client and redirect URI are verified a failure is a page, never a
    /// redirect (RFC 9700 §4.1: no open redirector).
    pub(super) fn validate_request(
        &self,
        params: &[(String, String)],
    ) -> Result<AuthRequest, Rejection> {
        let Some(client) = text(params, "client_id").and_then(|id| self.clients.get(id)) else {
            return Err(Rejection::Page("The application (client_id) is not known."));
        };
        let Some(redirect_uri) = text(params, "redirect_uri")
            .filter(|r| client.redirect_uris.iter().any(|u| u == r))
            .map(str::to_owned)
        else {
            return Err(Rejection::Page(
                "The redirect_uri is missing or is not registered for this application.",
            ));
        };
        let client = client.clone();
        let state = text(params, "state").map(str::to_owned);
        let fail = |_: &Self, error, why| {
            Err(Rejection::Redirect {
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                error,
                why,
            })
        };
        if state.as_ref().is_some_and(|s| s.len() > 1024) {
            return fail(self, AuthorizeError::InvalidRequest, "state is too long");
        }
        if text(params, "response_type") != Some("code") {
            return fail(
                self,
                AuthorizeError::UnsupportedResponseType,
                "response_type must be code",
            );
        }
        if !client.allows(AUTHORIZATION_CODE) {
            return fail(
                self,
                AuthorizeError::UnauthorizedClient,
                "the client may not use the code flow",
            );
        }
        if ["request", "request_uri", "response_mode"]
            .iter()
            .any(|p| text(params, p).is_some_and(|v| *p != "response_mode" || v != "query"))
        {
            return fail(
                self,
                AuthorizeError::InvalidRequest,
                "request objects and response modes other than query are not supported",
            );
        }
        let challenge = text(params, "code_challenge").unwrap_or_default();
        if !oauth::pkce_method_accepted(text(params, "code_challenge_method"))
            || !oauth::valid_code_challenge(challenge)
        {
            return fail(
                self,
                AuthorizeError::InvalidRequest,
                "PKCE is required: code_challenge with code_challenge_method=S256",
            );
        }
        let scopes = match text(params, "scope").map(oauth::parse_scope) {
            None => client.scopes.clone(),
            Some(Some(asked)) if asked.iter().all(|a| client.scopes.contains(a)) => asked,
            Some(_) => {
                return fail(
                    self,
                    AuthorizeError::InvalidScope,
                    "a requested scope is not allowed to the client",
                )
            }
        };
        let audiences = match text(params, "resource") {
            None => client.audiences.clone(),
            Some(r) => match self.audience_of(r, &client) {
                Some(a) => vec![a],
                None => {
                    return fail(
                        self,
                        AuthorizeError::InvalidRequest,
                        "the resource is not an audience of the client",
                    )
                }
            },
        };
        let nonce = text(params, "nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return fail(self, AuthorizeError::InvalidRequest, "nonce is too long");
        }
        let prompt = match text(params, "prompt") {
            None => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some(_) => {
                return fail(
                    self,
                    AuthorizeError::InvalidRequest,
                    "prompt: none or login (consent and select_account are not supported)",
                )
            }
        };
        let max_age = match text(params, "max_age").map(str::parse::<u64>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return fail(self, AuthorizeError::InvalidRequest, "max_age: seconds"),
        };
        // What the request asks, raised to what the client and the tenant require.
        let asked = text(params, "acr_values").and_then(signin::required_acr);
        let policy = client.acr.as_deref().and_then(signin::known_acr);
        let tenant_policy = self
            .tenants
            .get(&client.tenant)
            .and_then(|t| t.acr.as_deref())
            .and_then(signin::known_acr);
        // (A client that admits users of any tenant gets their tenant's policy applied once
        // identity-idp knows who signs in, and again here at code issuance.)
        let acr = signin::stronger(signin::stronger(asked, policy), tenant_policy);
        Ok(AuthRequest {
            client_id: client.client_id.clone(),
            tenant: client.tenant.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes,
            audiences,
            state,
            nonce,
            code_challenge: challenge.to_owned(),
            prompt,
            max_age,
            acr,
        })
    }

    /// The authorization endpoint: a request by value, or by reference to one the client
    /// pushed (RFC 9126: `request_uri`, single use, the same `client_id`). Valid requests send
    /// the browser to identity-idp's login page; invalid ones get a page or go back to the
    /// client with `error`, `state` and `iss`.
    pub fn authorize(&mut self, params: &[(String, String)], now: u64) -> AuthorizeOutcome {
        let request = match text(params, "request_uri") {
            Some(uri) => {
                let pushed = self.flow.pushed.remove(uri);
                self.forget(&shared::pushed_key(uri));
                let pushed = pushed
                    .filter(|p| p.expires > now)
                    .filter(|p| text(params, "client_id") == Some(p.request.client_id.as_str()));
                match pushed {
                    Some(p) => p.request,
                    None => {
                        return AuthorizeOutcome::Refuse(
                            "The request_uri is unknown, expired, already used, or another \
                             application's.",
                        )
                    }
                }
            }
            None => match self.validate_request(params) {
                Ok(r) => r,
                Err(Rejection::Page(why)) => return AuthorizeOutcome::Refuse(why),
                Err(Rejection::Redirect {
                    redirect_uri,
                    state,
                    error,
                    why,
                }) => {
                    return AuthorizeOutcome::Redirect(self.error_redirect(
                        &redirect_uri,
                        state.as_deref(),
                        error,
                        why,
                    ))
                }
            },
        };
        let fail = |st: &Self, error, why| {
            AuthorizeOutcome::Redirect(st.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                error,
                why,
            ))
        };
        let Some(login_url) = self.cfg.login_url.clone() else {
            return fail(
                self,
                AuthorizeError::ServerError,
                "no login page is configured for this server",
            );
        };
        if !room(&mut self.flow.pending, |p| p.expires > now) {
            return fail(
                self,
                AuthorizeError::ServerError,
                "too many pending sign-ins",
            );
        }
        let Ok(id) = oauth::random_token(32) else {
            return fail(self, AuthorizeError::ServerError, "randomness failed");
        };
        let pending = Pending {
            request,
            subject: None,
            expires: now + PENDING_TTL,
        };
        self.keep(&shared::pending_key(&id), pending.expires, &pending, false);
        self.flow.pending.insert(id.to_string(), pending);
        AuthorizeOutcome::Redirect(oauth::with_query(&login_url, &[("challenge", id.as_str())]))
    }

    /// RFC 9126: an authenticated client pushes its authorization request; the answer is the
    /// `request_uri` to send the browser with (single use, 60 s). The same checks as at the
    /// authorization endpoint, answered as JSON errors.
    pub fn push_request(
        &mut self,
        auth: &ClientAuth,
        params: &[(String, String)],
        now: u64,
    ) -> Result<(String, u64), Error> {
        let client_id = self.authenticate(auth, now)?.client_id.clone();
        if text(params, "client_id").is_some_and(|c| c != client_id)
            || text(params, "request_uri").is_some()
        {
            return Err(Error::Authorize(
                AuthorizeError::InvalidRequest,
                "client_id must be the authenticated client's; request_uri is not allowed here",
            ));
        }
        let mut params = params.to_vec();
        params.retain(|(k, _)| k != "client_id");
        params.push(("client_id".into(), client_id));
        let request = self.validate_request(&params).map_err(|r| match r {
            Rejection::Page(why) => Error::Authorize(AuthorizeError::InvalidRequest, why),
            Rejection::Redirect { error, why, .. } => Error::Authorize(error, why),
        })?;
        if !room(&mut self.flow.pushed, |p| p.expires > now) {
            return Err(Error::Authorize(
                AuthorizeError::ServerError,
                "too many pushed requests",
            ));
        }
        let id = random(32)?;
        let uri = format!("urn:ietf:params:oauth:request_uri:{}", id.as_str());
        let pushed = Pending {
            request,
            subject: None,
            expires: now + PUSHED_TTL,
        };
        self.keep(&shared::pushed_key(&uri), pushed.expires, &pushed, false);
        self.flow.pushed.insert(uri.clone(), pushed);
        Ok((uri, PUSHED_TTL))
    }

    /// The service a `resource` (RFC 8707) names, if the client may have it.
    pub(in crate::identity::authz) fn audience_of(
        &self,
        resource: &str,
        client: &Client,
    ) -> Option<String> {
        self.cfg
            .resources
            .iter()
            .find(|(name, uri)| {
                resource.trim_end_matches('/') == uri.trim_end_matches('/')
                    || resource == format!("urn:cryptoutil:{name}")
            })
            .map(|(name, _)| name.clone())
            .filter(|name| client.audiences.contains(name))
    }
}
