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
    /// identity-authz's sign-in back channel (identity-idp in its own process). Never an API
    /// scope: only a client of `identity.federation_clients` can hold it.
    SignIn,
}

impl Scope {
    /// Every API scope.
    pub const ALL: [Scope; 5] = [
        Scope::Kms,
        Scope::Jose,
        Scope::Ca,
        Scope::CaRa,
        Scope::Identity,
    ];

    /// The scope as tokens carry it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Kms => "kms",
            Scope::Jose => "jose",
            Scope::Ca => "ca",
            Scope::CaRa => "ca-ra",
            Scope::Identity => "identity",
            Scope::SignIn => "identity-idp",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
