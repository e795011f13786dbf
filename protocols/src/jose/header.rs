//! Header rules shared by JWS and JWE, and name lookups shared by the algorithm enums.

use serde_json::{Map, Value};

use super::b64;
use super::error::{JoseError, Result};

/// RFC 7515 §4.1.11 / RFC 7516 §4.1.13: we understand no extension, so any `crit` is refused,
/// naming the first extension listed.
pub(crate) fn refuse_crit(header: &Map<String, Value>) -> Result<()> {
    match header.get("crit") {
        None => Ok(()),
        Some(crit) => {
            let name = crit
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or("crit");
            Err(JoseError::CritUnsupported {
                name: name.chars().take(64).collect(),
            })
        }
    }
}

/// The `kid` of a compact serialization's protected header, read without verifying anything
/// (only to choose a key; the caller then verifies or decrypts with it).
pub fn compact_kid(token: &str) -> Option<String> {
    let header = b64::decode(token.split('.').next()?, "protected header").ok()?;
    let value: Value = serde_json::from_slice(&header).ok()?;
    value.get("kid")?.as_str().map(str::to_owned)
}

/// The member of `all` whose registered name is `name`, or `UnsupportedAlg` (name truncated).
pub(crate) fn by_name<T: Copy>(all: &[T], name: &str, as_str: fn(T) -> &'static str) -> Result<T> {
    all.iter()
        .copied()
        .find(|a| as_str(*a) == name)
        .ok_or_else(|| JoseError::UnsupportedAlg {
            alg: name.chars().take(32).collect(),
        })
}
