//! JWE algorithms (RFC 7518 §4 and §5). RSA1_5 is refused by name; A192KW and
//! ECDH-ES+A192KW are unsupported because aws-lc-rs has no AES-192 key wrap.

use crate::jose::error::{JoseError, Result};
use crate::jose::jwk::material::KeyMaterial;

/// Key management (`alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum KeyAlg {
    /// Direct use of a shared symmetric key as the CEK.
    Dir,
    /// AES-128 key wrap (RFC 3394).
    A128KW,
    /// AES-256 key wrap.
    A256KW,
    /// AES-128-GCM key encryption.
    A128GCMKW,
    /// AES-256-GCM key encryption.
    A256GCMKW,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
    RsaOaep,
    /// RSAES-OAEP with SHA-256.
    RsaOaep256,
    /// RSAES-OAEP with SHA-384.
    RsaOaep384,
    /// RSAES-OAEP with SHA-512.
    RsaOaep512,
    /// ECDH-ES direct key agreement (Concat KDF).
    EcdhEs,
    /// ECDH-ES with AES-128 key wrap.
    EcdhEsA128KW,
    /// ECDH-ES with AES-256 key wrap.
    EcdhEsA256KW,
    /// PBES2 with HMAC SHA-256 and AES-128 key wrap.
    Pbes2Hs256A128KW,
    /// PBES2 with HMAC SHA-512 and AES-256 key wrap.
    Pbes2Hs512A256KW,
}

impl KeyAlg {
    /// Every key management algorithm.
    pub const ALL: [KeyAlg; 14] = [
        KeyAlg::Dir,
        KeyAlg::A128KW,
        KeyAlg::A256KW,
        KeyAlg::A128GCMKW,
        KeyAlg::A256GCMKW,
        KeyAlg::RsaOaep,
        KeyAlg::RsaOaep256,
        KeyAlg::RsaOaep384,
        KeyAlg::RsaOaep512,
        KeyAlg::EcdhEs,
        KeyAlg::EcdhEsA128KW,
        KeyAlg::EcdhEsA256KW,
        KeyAlg::Pbes2Hs256A128KW,
        KeyAlg::Pbes2Hs512A256KW,
    ];

    /// Parses a registered name; RSA1_5 and `none` are refused with their own errors.
    pub fn parse(name: &str) -> Result<Self> {
        if name == "RSA1_5" {
            return Err(JoseError::UnsupportedAlg { alg: "RSA1_5 (refused: PKCS#1 v1.5 encryption is not FIPS-approved and invites padding oracles)".into() });
        }
        if name.eq_ignore_ascii_case("none") {
            return Err(JoseError::AlgNone);
        }
        crate::jose::header::by_name(&Self::ALL, name, Self::as_str)
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Dir => "dir",
            KeyAlg::A128KW => "A128KW",
            KeyAlg::A256KW => "A256KW",
            KeyAlg::A128GCMKW => "A128GCMKW",
            KeyAlg::A256GCMKW => "A256GCMKW",
            KeyAlg::RsaOaep => "RSA-OAEP",
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
            KeyAlg::RsaOaep384 => "RSA-OAEP-384",
            KeyAlg::RsaOaep512 => "RSA-OAEP-512",
            KeyAlg::EcdhEs => "ECDH-ES",
            KeyAlg::EcdhEsA128KW => "ECDH-ES+A128KW",
            KeyAlg::EcdhEsA256KW => "ECDH-ES+A256KW",
            KeyAlg::Pbes2Hs256A128KW => "PBES2-HS256+A128KW",
            KeyAlg::Pbes2Hs512A256KW => "PBES2-HS512+A256KW",
        }
    }
}

/// Content encryption (`enc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ContentAlg {
    /// AES-128-GCM.
    A128GCM,
    /// AES-192-GCM.
    A192GCM,
    /// AES-256-GCM.
    A256GCM,
    /// AES-128-CBC with HMAC-SHA-256 (truncated to 128 bits).
    A128CbcHs256,
    /// AES-192-CBC with HMAC-SHA-384.
    A192CbcHs384,
    /// AES-256-CBC with HMAC-SHA-512.
    A256CbcHs512,
}

impl ContentAlg {
    /// Every content encryption algorithm.
    pub const ALL: [ContentAlg; 6] = [
        ContentAlg::A128GCM,
        ContentAlg::A192GCM,
        ContentAlg::A256GCM,
        ContentAlg::A128CbcHs256,
        ContentAlg::A192CbcHs384,
        ContentAlg::A256CbcHs512,
    ];

    /// Parses a registered name.
    pub fn parse(name: &str) -> Result<Self> {
        crate::jose::header::by_name(&Self::ALL, name, Self::as_str)
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentAlg::A128GCM => "A128GCM",
            ContentAlg::A192GCM => "A192GCM",
            ContentAlg::A256GCM => "A256GCM",
            ContentAlg::A128CbcHs256 => "A128CBC-HS256",
            ContentAlg::A192CbcHs384 => "A192CBC-HS384",
            ContentAlg::A256CbcHs512 => "A256CBC-HS512",
        }
    }

    /// CEK length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentAlg::A128GCM => 16,
            ContentAlg::A192GCM => 24,
            ContentAlg::A256GCM | ContentAlg::A128CbcHs256 => 32,
            ContentAlg::A192CbcHs384 => 48,
            ContentAlg::A256CbcHs512 => 64,
        }
    }
}

/// Can `m` serve `alg` (for `enc`, which matters for dir)?
pub(crate) fn check_key_fits(m: &KeyMaterial, alg: KeyAlg, enc: Option<ContentAlg>) -> Result<()> {
    let mismatch = || JoseError::KeyTypeMismatch {
        kty: m.kty(),
        alg: alg.as_str(),
    };
    match (alg, m) {
        (KeyAlg::Dir, KeyMaterial::Oct { k }) => match enc {
            Some(enc) if k.len() != enc.key_len() => Err(JoseError::InvalidKey {
                reason: "dir key length does not match enc",
            }),
            _ => Ok(()),
        },
        (KeyAlg::A128KW | KeyAlg::A128GCMKW, KeyMaterial::Oct { k }) if k.len() == 16 => Ok(()),
        (KeyAlg::A256KW | KeyAlg::A256GCMKW, KeyMaterial::Oct { k }) if k.len() == 32 => Ok(()),
        (
            KeyAlg::A128KW | KeyAlg::A128GCMKW | KeyAlg::A256KW | KeyAlg::A256GCMKW,
            KeyMaterial::Oct { .. },
        ) => Err(JoseError::InvalidKey {
            reason: "AES key length does not match alg",
        }),
        (
            KeyAlg::RsaOaep | KeyAlg::RsaOaep256 | KeyAlg::RsaOaep384 | KeyAlg::RsaOaep512,
            KeyMaterial::Rsa { .. },
        ) => Ok(()),
        (KeyAlg::EcdhEs | KeyAlg::EcdhEsA128KW | KeyAlg::EcdhEsA256KW, KeyMaterial::Ec { .. }) => {
            Ok(())
        }
        (KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW, KeyMaterial::Oct { .. }) => Ok(()),
        _ => Err(mismatch()),
    }
}
