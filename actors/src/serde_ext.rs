//! Serde helpers for request bodies.

use serde::{Deserialize, Deserializer};

/// For an `Option` field the API documents as non-null (with `#[serde(default,
/// deserialize_with = "non_null")]`): absent is `None`, a value is `Some`, and `null` is
/// refused like any other value of the wrong type, instead of meaning "absent".
pub fn non_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Body {
        #[serde(default, deserialize_with = "super::non_null")]
        period: Option<u64>,
    }

    #[test]
    fn absent_is_none_a_value_is_some_and_null_is_refused() {
        let parse = |text: &str| serde_json::from_str::<Body>(text);
        assert_eq!(parse("{}").unwrap().period, None);
        assert_eq!(parse(r#"{"period": 3600}"#).unwrap().period, Some(3600));
        let err = parse(r#"{"period": null}"#).unwrap_err().to_string();
        assert!(err.contains("invalid type: null"), "{err}");
    }
}
