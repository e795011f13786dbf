//! JSON Web Tokens (RFC 7519): signed (JWS), encrypted (JWE) and nested (a signed JWT inside a
//! JWE with `cty: JWT`, RFC 7519 §5.2), with claim validation against a clock the caller passes.

use std::time::Duration;

use serde_json::{Map, Value};

use super::alg::JwsAlg;
use super::error::{JoseError, Result};
use super::jwe::{self, ContentAlg, KeyAlg};
use super::jwk::{Jwk, JwkSet};
use super::jws;

/// A claims set.
pub type Claims = Map<String, Value>;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Validation {
    /// `iss` must equal this, when set.
    pub issuer: Option<String>,
    /// `aud` (a string or an array) must contain this, when set.
    pub audience: Option<String>,
    /// The header's `typ` must equal this (case-insensitively, `application/` optional), when set.
    pub typ: Option<String>,
    /// Tolerated clock skew for exp, nbf and iat.
    pub leeway: Duration,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            typ: None,
            leeway: Duration::from_secs(60),
            require_exp: true,
        }
    }
}

/// Signs `claims` as a compact JWS with `key`'s pinned algorithm and header `typ`.
pub fn sign(key: &Jwk, claims: &Claims, typ: &str) -> Result<String> {
    let mut header = Map::new();
    header.insert("typ".into(), Value::String(typ.into()));
    jws::sign_compact(
        key,
        Value::Object(claims.clone()).to_string().as_bytes(),
        &header,
    )
}

/// Encrypts `claims` (no signature) to `key`.
pub fn encrypt(key: &Jwk, enc: ContentAlg, claims: &Claims, typ: &str) -> Result<String> {
    let mut header = Map::new();
    header.insert("typ".into(), Value::String(typ.into()));
    jwe::encrypt_compact(
        key,
        enc,
        Value::Object(claims.clone()).to_string().as_bytes(),
        &header,
    )
}

/// Signs with `signing_key`, then encrypts the signed JWT to `encryption_key` (`cty: JWT`).
pub fn nest(
    signing_key: &Jwk,
    encryption_key: &Jwk,
    enc: ContentAlg,
    claims: &Claims,
    typ: &str,
) -> Result<String> {
    let inner = sign(signing_key, claims, typ)?;
    let mut header = Map::new();
    header.insert("cty".into(), Value::String("JWT".into()));
    jwe::encrypt_compact(encryption_key, enc, inner.as_bytes(), &header)
}

/// Verifies a signed JWT and validates its claims at `now_unix` (seconds since the epoch).
pub fn verify(
    token: &str,
    keys: &JwkSet,
    allowed: &[JwsAlg],
    v: &Validation,
    now_unix: u64,
) -> Result<Claims> {
    Unverified::parse(token)?.verify(keys, allowed, v, now_unix)
}

/// A signed JWT decoded once, NOT verified: its claims and `kid` may be read to choose how to
/// verify it (which issuer's keys), then [`Self::verify`] checks signature and claims without
/// decoding the token again.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    jws: jws::UnverifiedCompact<'a>,
    claims: Claims,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes a compact JWT; its payload must be a JSON object.
    pub fn parse(token: &'a str) -> Result<Self> {
        let jws = jws::UnverifiedCompact::parse(token)?;
        let claims = parse_claims(jws.payload())?;
        Ok(Self { jws, claims })
    }

    /// The claims, NOT verified.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The header's `kid`, NOT verified.
    pub fn kid(&self) -> Option<&str> {
        self.jws.kid()
    }

    /// Whether its signature is the high-S twin of an ECDSA signature, NOT verified (see
    /// [`jws::UnverifiedCompact::high_s`]).
    pub fn high_s(&self) -> bool {
        self.jws.high_s()
    }

    /// Verifies the signature with the key of `keys` its `kid` names (alg in `allowed`), then
    /// `typ` and the claims against `v` at `now_unix`; the verified claims.
    pub fn verify(
        &self,
        keys: &JwkSet,
        allowed: &[JwsAlg],
        v: &Validation,
        now_unix: u64,
    ) -> Result<Claims> {
        let verified = self.jws.verify_with(allowed, |kid| keys.resolve(kid))?;
        check_typ(&verified.header, v)?;
        validate(&self.claims, v, now_unix)?;
        Ok(self.claims.clone())
    }
}

/// Keys and algorithms for decrypting a JWT.
#[derive(Debug, Clone, Copy)]
pub struct Decryption<'a> {
    /// Recipient keys.
    pub keys: &'a JwkSet,
    /// Allowed key management algorithms.
    pub algs: &'a [KeyAlg],
    /// Allowed content encryption algorithms.
    pub encs: &'a [ContentAlg],
}

/// Decrypts a JWE JWT. With `signed` set the token must be nested and its inner JWT verify with
/// those keys; without it, the claims are taken from an encrypted-only JWT (whose integrity then
/// rests on who can encrypt to the recipient key).
pub fn decrypt(
    token: &str,
    d: Decryption<'_>,
    signed: Option<(&JwkSet, &[JwsAlg])>,
    v: &Validation,
    now_unix: u64,
) -> Result<Claims> {
    let key = match token
        .split('.')
        .next()
        .map(|h| super::b64::decode(h, "JWE protected header"))
    {
        Some(Ok(h)) => {
            let kid = serde_json::from_slice::<Value>(&h)
                .ok()
                .and_then(|v| v.get("kid").and_then(Value::as_str).map(str::to_owned));
            match kid {
                Some(kid) => d.keys.find(&kid),
                None if d.keys.keys.len() == 1 => d.keys.keys.first(),
                None => None,
            }
        }
        _ => None,
    };
    let key = key.ok_or(JoseError::UnknownKid { kid: None })?;
    let decrypted = jwe::decrypt_compact(token, key, d.algs, d.encs)?;
    let nested = decrypted
        .header
        .get("cty")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("JWT"));
    match (nested, signed) {
        (true, Some((keys, allowed))) => {
            let inner = std::str::from_utf8(&decrypted.plaintext)
                .map_err(|_| JoseError::Malformed { what: "nested JWT" })?;
            verify(inner, keys, allowed, v, now_unix)
        }
        (false, None) => {
            check_typ(&decrypted.header, v)?;
            let claims = parse_claims(&decrypted.plaintext)?;
            validate(&claims, v, now_unix)?;
            Ok(claims)
        }
        (false, Some(_)) => Err(JoseError::ClaimInvalid {
            claim: "cty",
            reason: "a signed (nested) JWT is required",
        }),
        (true, None) => Err(JoseError::ClaimInvalid {
            claim: "cty",
            reason: "nested JWT but no verification keys given",
        }),
    }
}

fn parse_claims(payload: &[u8]) -> Result<Claims> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(JoseError::Malformed {
            what: "JWT claims (not a JSON object)",
        }),
    }
}

fn check_typ(header: &Map<String, Value>, v: &Validation) -> Result<()> {
    let Some(expected) = &v.typ else {
        return Ok(());
    };
    let norm = |t: &str| {
        t.strip_prefix("application/")
            .unwrap_or(t)
            .to_ascii_lowercase()
    };
    match header.get("typ").and_then(Value::as_str) {
        Some(t) if norm(t) == norm(expected) => Ok(()),
        Some(_) => Err(JoseError::ClaimInvalid {
            claim: "typ",
            reason: "unexpected token type",
        }),
        None => Err(JoseError::ClaimInvalid {
            claim: "typ",
            reason: "missing",
        }),
    }
}

/// RFC 7519 §4.1: exp, nbf, iat (NumericDate), iss, aud.
pub fn validate(claims: &Claims, v: &Validation, now: u64) -> Result<()> {
    let leeway = v.leeway.as_secs();
    let numeric = |name: &'static str| -> Result<Option<u64>> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or(JoseError::ClaimInvalid {
                    claim: name,
                    reason: "not a NumericDate",
                }),
            Some(_) => Err(JoseError::ClaimInvalid {
                claim: name,
                reason: "not a NumericDate",
            }),
        }
    };
    match numeric("exp")? {
        Some(exp) if now >= exp.saturating_add(leeway) => {
            return Err(JoseError::ClaimInvalid {
                claim: "exp",
                reason: "expired",
            })
        }
        None if v.require_exp => {
            return Err(JoseError::ClaimInvalid {
                claim: "exp",
                reason: "missing",
            })
        }
        _ => {}
    }
    if let Some(nbf) = numeric("nbf")? {
        if now.saturating_add(leeway) < nbf {
            return Err(JoseError::ClaimInvalid {
                claim: "nbf",
                reason: "not yet valid",
            });
        }
    }
    if let Some(iat) = numeric("iat")? {
        if now.saturating_add(leeway) < iat {
            return Err(JoseError::ClaimInvalid {
                claim: "iat",
                reason: "issued in the future",
            });
        }
    }
    if let Some(issuer) = &v.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(JoseError::ClaimInvalid {
                claim: "iss",
                reason: "not the expected issuer",
            });
        }
    }
    if let Some(audience) = &v.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience.as_str())),
            _ => false,
        };
        if !ok {
            return Err(JoseError::ClaimInvalid {
                claim: "aud",
                reason: "not for this audience",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
