//! JSON Web Signature (RFC 7515): compact, flattened JSON and general JSON serializations.
//!
//! Verification takes an explicit algorithm allow-list; the key's pinned `alg` must also equal
//! the token's, so an RSA public key can never be used as an HMAC secret and no key serves two
//! algorithms. `alg` must be in the protected header. `crit` extensions are not understood, so
//! any `crit` is refused (RFC 7515 §4.1.11), as is `b64` (RFC 7797).

use serde_json::{Map, Value};

use super::alg::JwsAlg;
use super::b64;
use super::error::{bounded, JoseError, Result};
use super::header;
use super::jwk::{Jwk, JwkSet};

/// A verified JWS.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The JOSE header (protected and unprotected members together).
    pub header: Map<String, Value>,
    /// The payload.
    pub payload: Vec<u8>,
    /// The algorithm that verified.
    pub alg: JwsAlg,
    /// The `kid` of the header, if any.
    pub kid: Option<String>,
}

/// Signs `payload` in the compact serialization with `key`'s pinned algorithm. `extra` members
/// join the protected header; `alg` and `kid` come from the key.
pub fn sign_compact(key: &Jwk, payload: &[u8], extra: &Map<String, Value>) -> Result<String> {
    let protected = protected_header(key, extra)?;
    let input = format!("{protected}.{}", b64::encode(payload));
    let signature = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64::encode(&signature)))
}

/// Verifies a compact JWS with `key`, accepting only algorithms in `allowed`.
pub fn verify_compact(token: &str, key: &Jwk, allowed: &[JwsAlg]) -> Result<Verified> {
    verify_compact_with(token, allowed, |_| Some(key))
}

/// Verifies a compact JWS with the key of `set` its `kid` names (or the only key, when the token
/// has no `kid` and the set has exactly one).
pub fn verify_compact_in(token: &str, set: &JwkSet, allowed: &[JwsAlg]) -> Result<Verified> {
    verify_compact_with(token, allowed, |kid| set.resolve(kid))
}

fn verify_compact_with<'k>(
    token: &str,
    allowed: &[JwsAlg],
    key_for: impl Fn(Option<&str>) -> Option<&'k Jwk>,
) -> Result<Verified> {
    let unverified = UnverifiedCompact::parse(token)?;
    unverified.verify_with(allowed, key_for)
}

/// A compact JWS split and decoded once, NOT verified: its protected header, `kid` and payload
/// may be read to choose how to verify it (which keys), then it is verified without being
/// decoded again.
#[derive(Debug, Clone)]
pub struct UnverifiedCompact<'a> {
    input: &'a str,
    header: Map<String, Value>,
    kid: Option<String>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> UnverifiedCompact<'a> {
    /// Splits and decodes `token` (three base64url parts, a JSON object header).
    pub fn parse(token: &'a str) -> Result<Self> {
        let token = bounded(token)?;
        let mut parts = token.split('.');
        let (Some(protected), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed {
                what: "compact JWS (expected three parts)",
            });
        };
        let header = parse_protected(protected)?;
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let input_len = protected.len() + 1 + payload.len();
        let input = token.get(..input_len).ok_or(JoseError::Malformed {
            what: "compact JWS",
        })?;
        Ok(Self {
            input,
            header,
            kid,
            payload: b64::decode(payload, "JWS payload")?,
            signature: b64::decode(signature, "JWS signature")?,
        })
    }

    /// The protected header's `kid`, NOT verified.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The payload, NOT verified.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the signature is the high-S twin of an ECDSA signature (by the header's `alg`,
    /// NOT verified): a copy anyone can make of a low-S one without the key. See
    /// [`crate::jose::jwk::is_high_s`].
    pub fn high_s(&self) -> bool {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| JwsAlg::parse(a).ok())
            .is_some_and(|alg| super::jwk::is_high_s(alg, &self.signature))
    }

    /// Verifies the signature with the key `key_for` picks by `kid`, its `alg` in `allowed`.
    pub fn verify_with<'k>(
        &self,
        allowed: &[JwsAlg],
        key_for: impl Fn(Option<&str>) -> Option<&'k Jwk>,
    ) -> Result<Verified> {
        let alg = check_header(&self.header, None, allowed)?;
        let key = key_for(self.kid()).ok_or_else(|| JoseError::UnknownKid {
            kid: self.kid.clone(),
        })?;
        key.verify(alg, self.input.as_bytes(), &self.signature)?;
        Ok(Verified {
            header: self.header.clone(),
            payload: self.payload.clone(),
            alg,
            kid: self.kid.clone(),
        })
    }
}

/// Signs `payload` for several signers in the general JSON serialization, or for exactly one in
/// the flattened one. Each signer may add an unprotected header.
pub fn sign_json(
    payload: &[u8],
    signers: &[(&Jwk, Option<Map<String, Value>>)],
    flattened: bool,
) -> Result<Value> {
    if signers.is_empty() || (flattened && signers.len() != 1) {
        return Err(JoseError::Malformed {
            what: "signer list",
        });
    }
    let payload_b64 = b64::encode(payload);
    let mut signatures = Vec::with_capacity(signers.len());
    for (key, unprotected) in signers {
        let protected = protected_header(key, &Map::new())?;
        let signature = key.sign(format!("{protected}.{payload_b64}").as_bytes())?;
        let mut entry = Map::new();
        entry.insert("protected".into(), Value::String(protected));
        if let Some(h) = unprotected {
            entry.insert("header".into(), Value::Object(h.clone()));
        }
        entry.insert("signature".into(), Value::String(b64::encode(&signature)));
        signatures.push(entry);
    }
    if flattened {
        let mut top = signatures.pop().unwrap_or_default();
        top.insert("payload".into(), Value::String(payload_b64));
        return Ok(Value::Object(top));
    }
    Ok(serde_json::json!({ "payload": payload_b64, "signatures": signatures }))
}

/// Verifies a JSON JWS (general or flattened): succeeds with the first signature whose key is
/// found in `set`, whose header keeps the rules and which verifies; when none does, the error
/// of the last one is returned.
pub fn verify_json(json: &str, set: &JwkSet, allowed: &[JwsAlg]) -> Result<Verified> {
    let value: Value = serde_json::from_str(bounded(json)?)
        .map_err(|_| JoseError::Malformed { what: "JWS JSON" })?;
    let top = value
        .as_object()
        .ok_or(JoseError::Malformed { what: "JWS JSON" })?;
    let payload_b64 = top
        .get("payload")
        .and_then(Value::as_str)
        .ok_or(JoseError::Malformed {
            what: "JWS payload",
        })?;
    let entries: Vec<&Map<String, Value>> = match (top.get("signatures"), top.get("signature")) {
        (Some(Value::Array(list)), None) => list
            .iter()
            .map(|v| {
                v.as_object().ok_or(JoseError::Malformed {
                    what: "JWS signatures",
                })
            })
            .collect::<Result<_>>()?,
        (None, Some(_)) => vec![top],
        _ => {
            return Err(JoseError::Malformed {
                what: "JWS JSON (signatures or signature)",
            })
        }
    };
    if entries.is_empty() {
        return Err(JoseError::Malformed {
            what: "JWS signatures (empty)",
        });
    }
    let mut last = JoseError::UnknownKid { kid: None };
    for entry in entries {
        let protected =
            entry
                .get("protected")
                .and_then(Value::as_str)
                .ok_or(JoseError::Malformed {
                    what: "JWS protected",
                })?;
        let unprotected = match entry.get("header") {
            None => None,
            Some(Value::Object(h)) => Some(h),
            Some(_) => return Err(JoseError::Malformed { what: "JWS header" }),
        };
        let mut header = parse_protected(protected)?;
        // A signature we may not check (alg outside the allow-list, unprotected alg, crit) is
        // skipped like one whose key we lack; another signature may still be acceptable.
        let alg = match check_header(&header, unprotected, allowed) {
            Ok(alg) => alg,
            Err(e) => {
                last = e;
                continue;
            }
        };
        if let Some(h) = unprotected {
            header.extend(h.clone());
        }
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let Some(key) = set.resolve(kid.as_deref()) else {
            last = JoseError::UnknownKid { kid };
            continue;
        };
        let signature = b64::decode(
            entry.get("signature").and_then(Value::as_str).unwrap_or(""),
            "JWS signature",
        )?;
        match key.verify(
            alg,
            format!("{protected}.{payload_b64}").as_bytes(),
            &signature,
        ) {
            Ok(()) => {
                return Ok(Verified {
                    header,
                    payload: b64::decode(payload_b64, "JWS payload")?,
                    alg,
                    kid,
                })
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The protected header of `key` (alg, kid) with `extra`, base64url.
fn protected_header(key: &Jwk, extra: &Map<String, Value>) -> Result<String> {
    let alg = key.jws_alg()?;
    if extra.contains_key("crit") || extra.contains_key("b64") {
        return Err(JoseError::CritUnsupported {
            name: "crit/b64".into(),
        });
    }
    let alg = ("alg", alg.as_str());
    match &key.kid {
        Some(kid) => header::encode_protected(&[alg, ("kid", kid)], &[extra]),
        None => header::encode_protected(&[alg], &[extra]),
    }
}

fn parse_protected(b64_header: &str) -> Result<Map<String, Value>> {
    let bytes = b64::decode(b64_header, "JWS protected header")?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JoseError::Malformed {
            what: "JWS protected header (not a JSON object)",
        }),
    }
}

/// RFC 7515 §4 and §5.2: `alg` protected and allowed, no unknown `crit`, no header member both
/// protected and unprotected.
fn check_header(
    protected: &Map<String, Value>,
    unprotected: Option<&Map<String, Value>>,
    allowed: &[JwsAlg],
) -> Result<JwsAlg> {
    if let Some(h) = unprotected {
        if h.keys().any(|k| protected.contains_key(k)) {
            return Err(JoseError::Malformed {
                what: "JWS header (member both protected and unprotected)",
            });
        }
        if h.contains_key("alg") || h.contains_key("crit") {
            return Err(JoseError::Malformed {
                what: "JWS header (alg and crit must be protected)",
            });
        }
    }
    let alg = match protected.get("alg") {
        Some(Value::String(name)) => JwsAlg::parse(name)?,
        _ => return Err(JoseError::Malformed { what: "JWS alg" }),
    };
    super::header::refuse_crit(protected)?;
    if protected.contains_key("b64") {
        return Err(JoseError::CritUnsupported { name: "b64".into() });
    }
    if !allowed.contains(&alg) {
        return Err(JoseError::AlgNotAllowed { alg: alg.as_str() });
    }
    Ok(alg)
}

#[cfg(test)]
mod tests;
