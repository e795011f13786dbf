//! What identity-idp and identity-authz tell each other about a sign-in: the pending
//! authorization request the login page serves, the user record a factor checks, who signed
//! in, and where the browser goes next. Both sides read this module; it reads neither. The
//! types travel as JSON on the back channel when identity-idp runs in its own process
//! ([`crate::federation::identity::signin`]); a password record never does.

use serde::{Deserialize, Serialize};

/// What the authorization request's `prompt` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Sign in if there is no session.
    Default,
    /// Never show a page: back to the client with `login_required` unless a session serves.
    None,
    /// Sign in again, whatever session there is.
    Login,
}

/// What the login (or consent) page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginView {
    /// The client's display name.
    pub client_name: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The tenant signed into.
    pub tenant: String,
    /// Where the form may send the browser afterwards (for the page's CSP `form-action`).
    pub redirect_origin: String,
    /// Who is signed in (on the consent page).
    pub username: Option<String>,
    /// The form asks for a tenant (the client admits users of any tenant).
    pub any_tenant: bool,
}

/// A pending authorization request, as the login page needs it.
#[derive(Debug, Clone)]
pub struct SignInRequest {
    /// The page.
    pub view: LoginView,
    /// What `prompt` asked for.
    pub prompt: Prompt,
    /// `max_age`: a session older than this does not serve.
    pub max_age: Option<u64>,
    /// The assurance the request needs (from `acr_values`): a session below it does not
    /// serve, and a sign-in must reach it.
    pub acr: Option<&'static str>,
}

/// A [`SignInRequest`] on the wire: its `acr` a string, which reads back only as one this
/// service reaches (an unknown one fails the read: a requirement is never dropped).
#[derive(Serialize, Deserialize)]
struct WireRequest {
    view: LoginView,
    prompt: Prompt,
    max_age: Option<u64>,
    acr: Option<String>,
}

impl TryFrom<WireRequest> for SignInRequest {
    type Error = &'static str;

    fn try_from(w: WireRequest) -> Result<Self, Self::Error> {
        let acr = match w.acr.as_deref() {
            None => None,
            Some(a) => Some(known_acr(a).ok_or("an acr this service does not reach")?),
        };
        Ok(Self {
            view: w.view,
            prompt: w.prompt,
            max_age: w.max_age,
            acr,
        })
    }
}

impl Serialize for SignInRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRequest {
            view: self.view.clone(),
            prompt: self.prompt,
            max_age: self.max_age,
            acr: self.acr.map(str::to_owned),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SignInRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(WireRequest::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl SignInRequest {
    /// The tenant a sign-in is for: the one the form names when the client admits any tenant,
    /// else the request's.
    pub fn tenant(&self, asked: Option<&str>) -> String {
        match asked.filter(|t| !t.is_empty() && t.len() <= 64) {
            Some(t) if self.view.any_tenant => t.to_owned(),
            _ => self.view.tenant.clone(),
        }
    }

    /// Whether a session of `subject` may serve this request at `now`.
    pub fn served_by(&self, subject: &Subject, now: u64) -> bool {
        self.admits(subject, now) && self.assured(&subject.amr)
    }

    /// Whether a session of `subject` is one this request could build on: its tenant, and
    /// recent enough (it may still need a step up).
    pub fn admits(&self, subject: &Subject, now: u64) -> bool {
        (subject.tenant == self.view.tenant || self.view.any_tenant)
            && self
                .max_age
                .is_none_or(|m| now.saturating_sub(subject.auth_time) <= m)
    }

    /// Whether a sign-in with `amr` reaches the assurance the request needs.
    pub fn assured(&self, amr: &[String]) -> bool {
        self.acr
            .is_none_or(|needed| acr_rank(acr_of(amr)) >= acr_rank(needed))
    }

    /// Whether the request needs a phishing-resistant sign-in (WebAuthn).
    pub fn needs_key(&self) -> bool {
        self.acr == Some(ACR_PHR)
    }
}

/// A user as a factor checks them (no `Debug`: it holds the password record, which is never
/// serialized: across the back channel identity-authz checks the password itself).
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential {
    /// The user's `sub`.
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// Tenant.
    pub tenant: String,
    /// Roles.
    pub roles: Vec<String>,
    /// The PBKDF2 record of the password (empty where it did not come along).
    #[serde(skip)]
    pub password_hash: String,
}

/// Who signed in, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The user's `sub`.
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// Tenant.
    pub tenant: String,
    /// Roles (only administrators get the `identity` scope).
    pub roles: Vec<String>,
    /// When they signed in.
    pub auth_time: u64,
    /// The sign-in session's id (RP-initiated logout ends it).
    pub sid: String,
    /// How they signed in: RFC 8176 `amr` values (`pwd`, `otp`, `mfa`, ...).
    pub amr: Vec<String>,
}

/// `acr` of a sign-in with the password alone.
pub const ACR_PASSWORD: &str = "urn:cryptoutil:acr:password";
/// `acr` of a sign-in with two factors or more.
pub const ACR_MFA: &str = "urn:cryptoutil:acr:mfa";
/// `acr` of a phishing-resistant sign-in: a passkey or a security key (WebAuthn: the
/// browser binds its answer to the origin) or a client certificate (bound to the TLS
/// connection), with a second factor or user verification.
pub const ACR_PHR: &str = "urn:cryptoutil:acr:phr";
/// `amr` values of factors bound to the origin or the connection, which a phisher relaying
/// the user's answers cannot replay: WebAuthn (`hwk`, `swk`) and a client certificate in the
/// TLS handshake (`sc`).
pub const PHISHING_RESISTANT: [&str; 3] = ["hwk", "swk", "sc"];
/// Every `acr` this service reaches, weakest first (discovery's `acr_values_supported`).
pub const ACR_VALUES: [&str; 3] = [ACR_PASSWORD, ACR_MFA, ACR_PHR];

/// The rank of `acr` among [`ACR_VALUES`] (an unknown one ranks above all: nothing reaches it).
pub fn acr_rank(acr: &str) -> usize {
    ACR_VALUES
        .iter()
        .position(|a| *a == acr)
        .unwrap_or(ACR_VALUES.len())
}

/// `acr` if it is one this service reaches.
pub fn known_acr(acr: &str) -> Option<&'static str> {
    ACR_VALUES.iter().find(|a| **a == acr).copied()
}

/// The stronger of two required assurances.
pub fn stronger(a: Option<&'static str>, b: Option<&'static str>) -> Option<&'static str> {
    [a, b].into_iter().flatten().max_by_key(|x| acr_rank(x))
}

/// The assurance an `acr_values` request parameter asks for: the weakest of the values this
/// service knows (each is acceptable, OpenID Connect Core §3.1.2.1), `None` when it names none.
pub fn required_acr(acr_values: &str) -> Option<&'static str> {
    acr_values
        .split(' ')
        .filter_map(|v| ACR_VALUES.iter().find(|a| **a == v).copied())
        .min_by_key(|a| acr_rank(a))
}

impl Subject {
    /// The `acr` its sign-in reached.
    pub fn acr(&self) -> &'static str {
        acr_of(&self.amr)
    }
}

/// The `acr` a sign-in with `amr` reached.
pub fn acr_of(amr: &[String]) -> &'static str {
    let has = |v: &str| amr.iter().any(|a| a == v);
    if has("mfa") && PHISHING_RESISTANT.into_iter().any(has) {
        ACR_PHR
    } else if has("mfa") {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// After a sign-in: back to the client, or first the consent page.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// The client's redirect URI with the code (or an error).
    Redirect(String),
    /// Ask the user to allow the client's request.
    Consent(LoginView),
}
