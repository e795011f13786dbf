//! JWS algorithms (RFC 7518 §3, RFC 8037 §3.1).

use super::error::{JoseError, Result};

/// A JWS `alg` this library implements. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256, MGF1 SHA-256, salt 32.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// ECDSA P-256 SHA-256, r||s.
    ES256,
    /// ECDSA P-384 SHA-384, r||s.
    ES384,
    /// ECDSA P-521 SHA-512, r||s.
    ES512,
    /// EdDSA with Ed25519 (RFC 8037).
    EdDSA,
}

impl JwsAlg {
    /// Every algorithm.
    pub const ALL: [JwsAlg; 13] = [
        JwsAlg::HS256,
        JwsAlg::HS384,
        JwsAlg::HS512,
        JwsAlg::RS256,
        JwsAlg::RS384,
        JwsAlg::RS512,
        JwsAlg::PS256,
        JwsAlg::PS384,
        JwsAlg::PS512,
        JwsAlg::ES256,
        JwsAlg::ES384,
        JwsAlg::ES512,
        JwsAlg::EdDSA,
    ];

    /// Parses a registered name; `none` (any case) is refused as such.
    pub fn parse(name: &str) -> Result<Self> {
        if name.eq_ignore_ascii_case("none") {
            return Err(JoseError::AlgNone);
        }
        super::header::by_name(&Self::ALL, name, Self::as_str)
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::HS256 => "HS256",
            JwsAlg::HS384 => "HS384",
            JwsAlg::HS512 => "HS512",
            JwsAlg::RS256 => "RS256",
            JwsAlg::RS384 => "RS384",
            JwsAlg::RS512 => "RS512",
            JwsAlg::PS256 => "PS256",
            JwsAlg::PS384 => "PS384",
            JwsAlg::PS512 => "PS512",
            JwsAlg::ES256 => "ES256",
            JwsAlg::ES384 => "ES384",
            JwsAlg::ES512 => "ES512",
            JwsAlg::EdDSA => "EdDSA",
        }
    }
}

impl std::fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
