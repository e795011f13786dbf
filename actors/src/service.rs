//! The eight services of the suite.

use serde::{Deserialize, Serialize};

/// One service of the suite. `as_str` is the name in `endpoints.json`, URLs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    /// Key management.
    Kms,
    /// JOSE API.
    Jose,
    /// Certificate authority.
    Ca,
    /// OAuth 2.1 / OIDC authorization server.
    IdentityAuthz,
    /// Identity provider (login, MFA).
    IdentityIdp,
    /// Reference resource server.
    IdentityRs,
    /// Reference relying party.
    IdentityRp,
    /// Reference single-page app.
    IdentitySpa,
}

impl ServiceName {
    /// All services, in suite start order.
    pub const ALL: [ServiceName; 8] = [
        ServiceName::IdentityAuthz,
        ServiceName::IdentityIdp,
        ServiceName::IdentityRs,
        ServiceName::IdentityRp,
        ServiceName::IdentitySpa,
        ServiceName::Jose,
        ServiceName::Kms,
        ServiceName::Ca,
    ];

    /// The kebab-case name (`identity-authz`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Kms => "kms",
            ServiceName::Jose => "jose",
            ServiceName::Ca => "ca",
            ServiceName::IdentityAuthz => "identity-authz",
            ServiceName::IdentityIdp => "identity-idp",
            ServiceName::IdentityRs => "identity-rs",
            ServiceName::IdentityRp => "identity-rp",
            ServiceName::IdentitySpa => "identity-spa",
        }
    }

    /// The configuration key (`identity_authz`), since `-` does not survive environment names.
    pub fn config_key(self) -> &'static str {
        match self {
            ServiceName::IdentityAuthz => "identity_authz",
            ServiceName::IdentityIdp => "identity_idp",
            ServiceName::IdentityRs => "identity_rs",
            ServiceName::IdentityRp => "identity_rp",
            ServiceName::IdentitySpa => "identity_spa",
            other => other.as_str(),
        }
    }

    /// The OAuth scope its API routes require, for services with an API.
    pub fn api_scope(self) -> Option<Scope> {
        match self {
            ServiceName::Kms => Some(Scope::Kms),
            ServiceName::Jose => Some(Scope::Jose),
            ServiceName::Ca => Some(Scope::Ca),
            ServiceName::IdentityAuthz => Some(Scope::Identity),
            ServiceName::IdentityIdp
            | ServiceName::IdentityRs
            | ServiceName::IdentityRp
            | ServiceName::IdentitySpa => None,
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OAuth scope of one API of the suite: the one place scope names are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The KMS API.
    Kms,
    /// The JOSE API.
    Jose,
    /// The CA API.
    Ca,
    /// The CA's RA: enrollment secrets and decisions on enrollment requests.
    CaRa,
    /// identity-authz's admin API.
    Identity,
    /// identity-rs (the reference resource server): reading the caller's notes.
    NotesRead,
    /// identity-rs: writing the caller's notes.
    NotesWrite,
    /// identity-authz's sign-in back channel (identity-idp in its own process). Never an API
    /// scope: only a client of `identity.federation_clients` can hold it.
    SignIn,
}

impl Scope {
    /// Every API scope.
    pub const ALL: [Scope; 7] = [
        Scope::Kms,
        Scope::Jose,
        Scope::Ca,
        Scope::CaRa,
        Scope::Identity,
        Scope::NotesRead,
        Scope::NotesWrite,
    ];

    /// Scopes a client-credentials token carries only when the request names them: the
    /// sign-in back channel's (whoever holds it finishes sign-ins), and the reference resource
    /// server's (a user's data: a token a client asks for without a `scope`, which every
    /// service accepts, must not also reach them).
    pub fn asked_by_name_only(scope: &str) -> bool {
        [Scope::SignIn, Scope::NotesRead, Scope::NotesWrite]
            .iter()
            .any(|s| s.as_str() == scope)
    }

    /// The scope as tokens carry it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Kms => "kms",
            Scope::Jose => "jose",
            Scope::Ca => "ca",
            Scope::CaRa => "ca-ra",
            Scope::Identity => "identity",
            Scope::NotesRead => "notes:read",
            Scope::NotesWrite => "notes:write",
            Scope::SignIn => "identity-idp",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
