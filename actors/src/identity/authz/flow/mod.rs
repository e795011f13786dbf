//! The browser side of identity-authz: authorization requests (code flow, PKCE S256 only),
//! the pending requests identity-idp signs users in for, consent, single-use codes,
//! refresh-token families (rotated on every use; a reused token revokes its family), ID tokens,
//! userinfo and RP-initiated logout. Sign-in itself (factors, sessions, lockout) is
//! identity-idp's.
//!
//! Pending requests and codes live in the actor's memory with TTLs and bounds (a restart voids
//! unredeemed codes; nothing issued is lost). Refresh-token families are persisted through the
//! key barrier before a token is answered. When replicas share the store, the in-flight records
//! live there too (see [`shared`]).

use std::collections::{BTreeSet, HashMap};

use cryptoutil_protocols::oauth::AuthorizeError;
use serde::{Deserialize, Serialize};

use super::model::TokenGrant;
use crate::error::Error;
use crate::identity::signin::{LoginView, Prompt, Subject};

/// How long a browser has to sign in after the authorization request.
const PENDING_TTL: u64 = 600;
/// How long a pushed request (RFC 9126) may wait for its authorization request.
const PUSHED_TTL: u64 = 60;
/// How long a code may wait for redemption.
const CODE_TTL: u64 = 60;
/// How long a redeemed code is remembered, so a second use is recognised and punished.
const USED_CODE_MEMORY: u64 = 3600;
/// Bounds of the in-memory maps (past them, expired entries are dropped; if still full the
/// request is refused rather than memory grown).
pub(in crate::identity::authz) const MAX_ENTRIES: usize = 100_000;
/// An accepted authorization request.
#[derive(Debug, Clone, Serialize)]
struct AuthRequest {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<u64>,
    /// The assurance `acr_values` asks for.
    acr: Option<&'static str>,
}

/// An [`AuthRequest`] as read back from a shared store: its `acr` as text, taken as the known
/// value it names (an unknown one as none).
#[derive(Deserialize)]
struct StoredRequest {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<u64>,
    acr: Option<String>,
}

impl<'de> Deserialize<'de> for AuthRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = StoredRequest::deserialize(d)?;
        Ok(Self {
            client_id: r.client_id,
            tenant: r.tenant,
            redirect_uri: r.redirect_uri,
            scopes: r.scopes,
            audiences: r.audiences,
            state: r.state,
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            prompt: r.prompt,
            max_age: r.max_age,
            acr: r
                .acr
                .as_deref()
                .and_then(crate::identity::signin::known_acr),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Pending {
    request: AuthRequest,
    /// Set once the user signed in and the request waits for consent.
    subject: Option<Subject>,
    expires: u64,
}

#[derive(Serialize, Deserialize)]
struct CodeGrant {
    request: AuthRequest,
    subject: Subject,
    expires: u64,
}

/// What a redeemed code produced (revoked if the code comes back).
#[derive(Serialize, Deserialize)]
struct UsedCode {
    forget_at: u64,
    jti: Option<(String, u64)>,
    family: Option<String>,
}

/// The in-memory part of the flow.
#[derive(Default)]
pub struct FlowState {
    pending: HashMap<String, Pending>,
    pushed: HashMap<String, Pending>,
    codes: HashMap<[u8; 32], CodeGrant>,
    used_codes: HashMap<[u8; 32], UsedCode>,
    /// Sign-in sessions that ended (RP-initiated logout): when, by sid. identity-idp's sessions
    /// of these sids no longer sign anyone in.
    pub(in crate::identity::authz) ended: HashMap<String, u64>,
    /// Sessions begun before this time no longer sign anyone in either: identity-authz knows
    /// of no logout before it started, nor of those it forgot to make room.
    ended_before: u64,
    /// The clients each sign-in session (by sid) issued tokens to, and when it last did, for
    /// back-channel logout. Kept in memory; clients holding a refresh family are also found
    /// through it (durable).
    pub(in crate::identity::authz) participants: HashMap<String, (u64, BTreeSet<String>)>,
    /// Replicas share the store: every change above is also written there, made durable
    /// before the decision is answered (and read from there before it is decided on).
    pub(in crate::identity::authz) journal: crate::journal::Journal,
}

pub(in crate::identity::authz) use crate::bounded::forget_older_half;

/// Drops expired entries when `map` is full; false if it is still full.
fn room<K, V>(map: &mut HashMap<K, V>, live: impl Fn(&V) -> bool) -> bool {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| live(v));
    }
    map.len() < MAX_ENTRIES
}

/// A persisted refresh-token family: one login's chain of refresh tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct Family {
    /// Its id (the first part of every token of the family).
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The user's name (the family dies with the user).
    pub username: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Granted audiences.
    pub audiences: Vec<String>,
    /// When the user signed in.
    pub auth_time: u64,
    /// The sign-in session (logout revokes the family).
    pub sid: String,
    /// Rotations so far.
    pub generation: u64,
    /// SHA-256 of the current token's secret part, base64url.
    pub secret_digest: String,
    /// End of the family (rotation does not extend it).
    pub expires: u64,
    /// Revoked (reuse, logout, revocation, code reuse).
    pub revoked: bool,
    /// The last access token issued from it (`jti`, `exp`), revoked with the family.
    pub last_jti: Option<(String, u64)>,
    /// For a public client that used DPoP: the key every refresh must prove (RFC 9449 §5).
    #[serde(default)]
    pub jkt: Option<String>,
    /// How the user signed in (RFC 8176 `amr`; families from before it was kept: `pwd`).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Writes of this record so far (shared store: each write creates `family/<id>/<version>`,
    /// so of two replicas writing one version only one succeeds).
    #[serde(default)]
    pub version: u64,
}

/// Records to make durable before answering.
#[derive(Default)]
pub struct Persist {
    /// Families to write.
    pub families: Vec<Family>,
    /// The flow's own writes (shared store only: [`FlowState::journal`]).
    pub flow: Vec<cryptoutil_storage::backend::Write>,
    /// Consents to write.
    pub consents: Vec<ConsentRecord>,
    /// Access tokens to revoke (`jti`, `exp`).
    pub revoked: Vec<(String, u64)>,
}

impl Persist {
    /// Revokes `family` (and the last access token it issued), to be written.
    fn revoke_family(&mut self, family: &mut Family) {
        family.revoked = true;
        if let Some(jti) = &family.last_jti {
            if !self.revoked.contains(jti) {
                self.revoked.push(jti.clone());
            }
        }
        self.families.push(family.clone());
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
            && self.revoked.is_empty()
            && self.consents.is_empty()
            && self.flow.is_empty()
    }
}

/// A token decision and what must be durable before it is answered.
pub struct TokenDecision {
    /// The grant or the refusal.
    pub result: Result<TokenGrant, Error>,
    /// Writes.
    pub persist: Persist,
}

impl From<Result<TokenGrant, Error>> for TokenDecision {
    fn from(result: Result<TokenGrant, Error>) -> Self {
        Self {
            result,
            persist: Persist::default(),
        }
    }
}

/// Why an authorization request is refused.
enum Rejection {
    /// Before client and redirect URI are trusted: a page, no redirect.
    Page(&'static str),
    /// Back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: AuthorizeError,
        why: &'static str,
    },
}

/// What the authorization endpoint does.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Send the browser here: the login page, or back to the client with an error.
    Redirect(String),
    /// Show an error page and redirect nowhere: the client or its redirect URI is unknown.
    Refuse(&'static str),
}

/// A user's consent to a third-party client's scopes (persisted).
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// Every scope granted so far.
    pub scopes: Vec<String>,
    /// When last granted.
    pub granted: u64,
}

/// The result of RP-initiated logout.
pub struct LogoutOutcome {
    /// Where to send the browser, if the client registered that URI.
    pub redirect: Option<String>,
    /// Families to revoke.
    pub persist: Persist,
    /// Logout tokens to post to the session's clients (OpenID Connect Back-Channel Logout).
    pub notices: Vec<LogoutNotice>,
}

/// A logout token for one client's `backchannel_logout_uri`, to be given its `jti`, signed
/// (`typ` logout+jwt) and posted off the actor.
pub struct LogoutNotice {
    /// The client.
    pub client_id: String,
    /// Where to post it.
    pub uri: String,
    /// Its claims but `jti`.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The current token signing key.
    pub key: std::sync::Arc<cryptoutil_protocols::jose::Jwk>,
}

/// The event a logout token carries (OpenID Connect Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is good for.
pub const LOGOUT_TOKEN_TTL: u64 = 120;

fn text<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn origin_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            format!("{scheme}://{authority}")
        }
        None => String::new(),
    }
}

mod authorize;
mod grants;
pub mod shared;
mod signin;
