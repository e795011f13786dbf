//! Identifiers that arrive from outside (a token's `tenant` claim, a path segment, a form field),
//! parsed once at the edge: a value of these types is valid, so nothing downstream checks again.
//! They are cheap to clone (shared text), since every request carries them into actors and audit
//! records.

use std::fmt;
use std::sync::Arc;

/// Why an identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {rule}")]
pub struct IdError {
    /// Which identifier.
    pub what: &'static str,
    /// The rule it breaks.
    pub rule: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            #[doc = concat!("Parses ", $what, " (", $rule, ").")]
            pub fn parse(text: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok(Self(Arc::from(text)))
                } else {
                    Err(IdError {
                        what: $what,
                        rule: $rule,
                    })
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Characters of an identifier that ends up inside store keys and URLs.
fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

id_type!(
    /// A tenant, as tokens name it in their `tenant` claim. It prefixes store keys
    /// (`<tenant>/<id>`), so it never contains `/`.
    TenantId,
    "tenant",
    "1 to 128 bytes, no '/' and no control characters",
    |t| !t.is_empty() && t.len() <= 128 && !t.chars().any(|c| c == '/' || c.is_control())
);

id_type!(
    /// A KMS elastic key's id (`ek-` and random base64url, as the KMS makes them).
    ElasticKeyId,
    "elastic key id",
    "1 to 64 characters of [A-Za-z0-9_-]",
    |t| !t.is_empty() && t.len() <= 64 && t.bytes().all(url_safe)
);

id_type!(
    /// A CA's id (`ca-` and random base64url, as the CA makes them).
    CaId,
    "CA id",
    "1 to 64 characters of [A-Za-z0-9_-]",
    |t| !t.is_empty() && t.len() <= 64 && t.bytes().all(url_safe)
);

id_type!(
    /// An OAuth `client_id` of identity-authz.
    ClientId,
    "client_id",
    "1 to 128 printable ASCII characters",
    |t| !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic())
);

id_type!(
    /// A JOSE key id (`kid`) in a path or body.
    Kid,
    "kid",
    "1 to 128 printable ASCII characters",
    |t| !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic())
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_once_and_refuse_what_would_break_store_keys_or_urls() {
        assert_eq!(TenantId::parse("acme-1").unwrap().as_str(), "acme-1");
        // A trusted issuer's tenant may be a display name: what the KMS always accepted.
        for good in ["Acme Corp", "ünïcode", &"t".repeat(128)] {
            assert!(TenantId::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a/b", "x\n", "del\u{7f}", &"t".repeat(129)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ElasticKeyId::parse("ek-AbC_d-9").is_ok());
        for bad in ["", "ek/1", "ek.1", "../x", &"k".repeat(65)] {
            assert!(ElasticKeyId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClientId::parse("service-x").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(Kid::parse("key 1").is_err());
        let e = TenantId::parse("a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid tenant: 1 to 128 bytes, no '/' and no control characters"
        );
    }

    #[test]
    fn serde_parses_on_the_way_in() {
        let t: TenantId = serde_json::from_str("\"t1\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"t1\"");
        assert!(serde_json::from_str::<TenantId>("\"a/b\"").is_err());
    }
}
