//! The errors of the JOSE library: structured, and never carrying key material.

/// What can go wrong parsing, signing or verifying JOSE objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// The input is larger than [`super::MAX_INPUT`].
    #[error("input of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Structurally wrong input.
    #[error("malformed {what}")]
    Malformed {
        /// Which part.
        what: &'static str,
    },
    /// `alg: none`: unsecured JWS are never accepted or produced.
    #[error("alg \"none\" is refused: unsecured JWS are not accepted")]
    AlgNone,
    /// An algorithm this library does not implement (or refuses, such as RSA1_5).
    #[error("unsupported algorithm {alg:?}")]
    UnsupportedAlg {
        /// The name given.
        alg: String,
    },
    /// The algorithm is not in the caller's allow-list.
    #[error("algorithm {alg} is not allowed here")]
    AlgNotAllowed {
        /// The token's algorithm.
        alg: &'static str,
    },
    /// The key has no pinned `alg`: keys must name the one algorithm they serve.
    #[error("the key has no pinned alg")]
    KeyNotPinned,
    /// The token's algorithm differs from the key's pinned one.
    #[error("the token's alg {token} does not match the key's alg {key}")]
    KeyAlgMismatch {
        /// The token's.
        token: &'static str,
        /// The key's.
        key: String,
    },
    /// The key's `use` forbids this operation.
    #[error("the key's use is {key_use}, not sig")]
    KeyUseMismatch {
        /// The key's use.
        key_use: &'static str,
    },
    /// The key type cannot serve the algorithm.
    #[error("a {kty} key cannot be used with {alg}")]
    KeyTypeMismatch {
        /// The key type.
        kty: &'static str,
        /// The algorithm.
        alg: &'static str,
    },
    /// The key is not acceptable (size, curve, inconsistent parameters).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why.
        reason: &'static str,
    },
    /// A private key operation was asked of a public key.
    #[error("the key has no private part")]
    NotPrivate,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A `crit` header names an extension this library does not understand.
    #[error("critical header {name:?} is not understood")]
    CritUnsupported {
        /// The extension.
        name: String,
    },
    /// No key matches the token's `kid`.
    #[error("no key for kid {kid:?}")]
    UnknownKid {
        /// The kid, if the token had one.
        kid: Option<String>,
    },
    /// A JWT claim fails validation.
    #[error("JWT claim {claim} is invalid: {reason}")]
    ClaimInvalid {
        /// The claim (or header member, for typ).
        claim: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The crypto module failed.
    #[error("crypto failure in {op}")]
    Crypto {
        /// The operation.
        op: &'static str,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, JoseError>;

/// Refuses inputs over the size bound.
pub(crate) fn bounded(input: &str) -> Result<&str> {
    if input.len() > super::MAX_INPUT {
        return Err(JoseError::TooLarge {
            len: input.len(),
            limit: super::MAX_INPUT,
        });
    }
    Ok(input)
}
