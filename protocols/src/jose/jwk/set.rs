//! JWK Sets (RFC 7517 §5).

use serde_json::Value;

use super::Jwk;
use crate::jose::error::{bounded, JoseError, Result};

/// A set of keys, looked up by `kid`.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses `{"keys": [...]}`. Keys of types we do not implement are skipped, as RFC 7517 §5
    /// asks; a malformed key of a known type is an error.
    pub fn parse(json: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(bounded(json)?).map_err(|_| JoseError::Malformed {
                what: "JWK Set JSON",
            })?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JoseError::Malformed {
                what: "JWK Set keys",
            })?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match Jwk::from_value(key) {
                Ok(k) => out.push(k),
                Err(JoseError::UnsupportedAlg { .. }) => {}
                Err(JoseError::InvalidKey {
                    reason: "unsupported kty" | "unsupported crv",
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self { keys: out })
    }

    /// The public JWK Set JSON (private parameters never included).
    pub fn to_public_value(&self) -> Result<Value> {
        let keys = self
            .keys
            .iter()
            .filter(|k| k.kty() != "oct")
            .map(Jwk::to_public_value)
            .collect::<Result<Vec<_>>>()?;
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// The key a token's `kid` names; without a `kid`, the only key of a one-key set.
    pub fn resolve(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.find(kid),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }

    /// The key with `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}
