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

/// The base64url of a protected header: the `fixed` string members first, then every member of
/// `maps` not already written (an earlier source wins over a later one). Written straight into
/// one buffer, not through a `Map`: this runs on every sign and encrypt, and building a map of
/// owned strings cost more than sealing 1 KiB.
pub(crate) fn encode_protected(
    fixed: &[(&str, &str)],
    maps: &[&Map<String, Value>],
) -> Result<String> {
    let unserializable = |_| JoseError::Malformed {
        what: "header member (not serializable)",
    };
    let mut json = Vec::with_capacity(128);
    let mut written: Vec<&str> = Vec::with_capacity(fixed.len() + 4);
    let members = fixed
        .iter()
        .map(|(name, value)| (*name, Member::Str(value)))
        .chain(
            maps.iter()
                .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), Member::Json(v)))),
        );
    for (name, value) in members {
        if written.contains(&name) {
            continue;
        }
        json.push(if written.is_empty() { b'{' } else { b',' });
        serde_json::to_writer(&mut json, name).map_err(unserializable)?;
        json.push(b':');
        match value {
            Member::Str(s) => serde_json::to_writer(&mut json, s),
            Member::Json(v) => serde_json::to_writer(&mut json, v),
        }
        .map_err(unserializable)?;
        written.push(name);
    }
    if written.is_empty() {
        json.push(b'{');
    }
    json.push(b'}');
    Ok(b64::encode(&json))
}

enum Member<'a> {
    Str(&'a str),
    Json(&'a Value),
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::encode_protected;
    use crate::jose::b64;

    fn decoded(b64_json: &str) -> Value {
        serde_json::from_slice(&b64::decode(b64_json, "test").unwrap()).unwrap()
    }

    #[test]
    fn fixed_members_win_then_earlier_maps_and_strings_are_escaped() {
        let Value::Object(first) = json!({"alg": "forged", "iv": "a", "x": 1}) else {
            unreachable!()
        };
        let Value::Object(second) = json!({"iv": "b", "cty": "JWT", "q\"\\": [true]}) else {
            unreachable!()
        };
        let out = encode_protected(&[("alg", "dir"), ("kid", "k\"1\n")], &[&first, &second]);
        let out = out.unwrap();
        // Parsing would hide a duplicate member (the last one wins): count on the raw text.
        let raw = String::from_utf8(b64::decode(&out, "test").unwrap()).unwrap();
        assert_eq!(raw.matches("\"alg\"").count(), 1, "{raw}");
        assert_eq!(raw.matches("\"iv\"").count(), 1, "{raw}");
        assert_eq!(
            decoded(&out),
            json!({"alg": "dir", "kid": "k\"1\n", "iv": "a", "x": 1, "cty": "JWT", "q\"\\": [true]})
        );
        assert_eq!(
            decoded(&encode_protected(&[], &[&Map::new()]).unwrap()),
            json!({})
        );
    }
}
