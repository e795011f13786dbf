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
