use serde_json::{Map, Value};

use super::*;
use crate::jose::jwk::Jwk;

fn rfc() -> Value {
    serde_json::from_str(include_str!("../../../testdata/rfc7515.json")).unwrap()
}

fn rfc_key(v: &Value, alg: JwsAlg) -> Jwk {
    Jwk::from_value(v).unwrap().pinned(alg).unwrap()
}

#[test]
fn rfc7515_appendix_a_compact_examples_verify() {
    let t = rfc();
    for case in t["compact"].as_array().unwrap() {
        let alg = JwsAlg::parse(case["alg"].as_str().unwrap()).unwrap();
        let key = rfc_key(&case["jwk"], alg);
        let token = case["jws"].as_str().unwrap();
        let v =
            verify_compact(token, &key, &[alg]).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(v.alg, alg);
        assert!(!v.payload.is_empty());
        // And the public half alone verifies the asymmetric ones.
        if alg != JwsAlg::HS256 {
            verify_compact(token, &key.public().unwrap(), &[alg]).unwrap();
        }
        // One flipped signature bit fails.
        let mut bad = token.to_owned();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            verify_compact(&bad, &key, &[alg]).is_err(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn rfc7515_json_examples_verify() {
    let t = rfc();
    let mut set = JwkSet::default();
    for (kid, jwk) in t["general_json"]["keys"].as_object().unwrap() {
        let alg = if jwk["kty"] == "RSA" {
            JwsAlg::RS256
        } else {
            JwsAlg::ES256
        };
        set.keys.push(rfc_key(jwk, alg).with_kid(kid.clone()));
    }
    let general = t["general_json"]["jws"].to_string();
    let v = verify_json(&general, &set, &[JwsAlg::RS256, JwsAlg::ES256]).unwrap();
    assert_eq!(v.kid.as_deref(), Some("2010-12-29"));
    // Only ES256 allowed: the RS256 signature is skipped and the ES256 one carries it.
    let v = verify_json(&general, &set, &[JwsAlg::ES256]).unwrap();
    assert_eq!(
        v.kid.as_deref(),
        Some("e9bc097a-ce51-4036-9562-d2ade882db0d")
    );
    // Neither allowed: nothing verifies, and the error says why.
    assert!(matches!(
        verify_json(&general, &set, &[JwsAlg::HS256]),
        Err(JoseError::AlgNotAllowed { .. })
    ));
    let flattened = t["flattened_json"]["jws"].to_string();
    let v = verify_json(&flattened, &set, &[JwsAlg::ES256]).unwrap();
    assert_eq!(v.alg, JwsAlg::ES256);
}

#[test]
fn alg_none_and_unknown_crit_are_refused() {
    let t = rfc();
    let key = Jwk::generate(JwsAlg::HS256).unwrap();
    let none = t["none_unsecured"].as_str().unwrap();
    assert_eq!(
        verify_compact(none, &key, &JwsAlg::ALL).unwrap_err(),
        JoseError::AlgNone
    );
    let crit = t["crit_unknown"].as_str().unwrap();
    let err = verify_compact(crit, &key, &JwsAlg::ALL).unwrap_err();
    assert!(
        matches!(err, JoseError::AlgNone | JoseError::CritUnsupported { .. }),
        "{err}"
    );
    // crit with a real algorithm.
    let header = b64::encode(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
    let token = format!("{header}.e30.AAAA");
    assert!(matches!(
        verify_compact(&token, &key, &[JwsAlg::HS256]),
        Err(JoseError::CritUnsupported { .. })
    ));
}

#[test]
fn hs256_with_an_rsa_public_key_as_the_secret_is_refused() {
    let t = rfc();
    let rsa = rfc_key(&t["compact"][1]["jwk"], JwsAlg::RS256)
        .public()
        .unwrap();
    let n = match rsa.material() {
        crate::jose::jwk::KeyMaterial::Rsa { n, .. } => n.clone(),
        _ => unreachable!(),
    };
    // The classic confusion: HMAC keyed with the public key bytes.
    let forged_key = Jwk::from_material(crate::jose::jwk::KeyMaterial::Oct {
        k: zeroize::Zeroizing::new(n),
    })
    .pinned(JwsAlg::HS256)
    .unwrap();
    let forged = sign_compact(&forged_key, b"{\"admin\":true}", &Map::new()).unwrap();
    let err = verify_compact(&forged, &rsa, &[JwsAlg::RS256, JwsAlg::HS256]).unwrap_err();
    assert!(
        matches!(err, JoseError::KeyAlgMismatch { token: "HS256", .. }),
        "{err}"
    );
}

#[test]
fn tampering_wrong_keys_and_policy_violations_fail() {
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let other = Jwk::generate(JwsAlg::ES256).unwrap();
    let token = sign_compact(&key, b"payload", &Map::new()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    verify_compact(&token, &key, &[JwsAlg::ES256]).unwrap();
    assert_eq!(
        verify_compact(&token, &other, &[JwsAlg::ES256]).unwrap_err(),
        JoseError::BadSignature
    );
    assert!(matches!(
        verify_compact(&token, &key, &[JwsAlg::RS256]),
        Err(JoseError::AlgNotAllowed { .. })
    ));
    let tampered_payload = format!("{}.{}.{}", parts[0], b64::encode(b"payloaD"), parts[2]);
    assert_eq!(
        verify_compact(&tampered_payload, &key, &[JwsAlg::ES256]).unwrap_err(),
        JoseError::BadSignature
    );
    let header = b64::encode(
        format!(
            r#"{{"alg":"ES256","kid":"{}","x":1}}"#,
            key.kid.clone().unwrap()
        )
        .as_bytes(),
    );
    let tampered_header = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        verify_compact(&tampered_header, &key, &[JwsAlg::ES256]).unwrap_err(),
        JoseError::BadSignature
    );
    for broken in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        &token[..token.len() - 10],
        &format!("{token}="),
    ] {
        assert!(
            verify_compact(broken, &key, &[JwsAlg::ES256]).is_err(),
            "{broken:?}"
        );
    }
    let huge = "A".repeat(crate::jose::MAX_INPUT + 1);
    assert!(matches!(
        verify_compact(&huge, &key, &[JwsAlg::ES256]),
        Err(JoseError::TooLarge { .. })
    ));
    // An encryption key does not verify signatures.
    let mut enc = key.clone();
    enc.key_use = Some(crate::jose::jwk::KeyUse::Enc);
    assert!(matches!(
        verify_compact(&token, &enc, &[JwsAlg::ES256]),
        Err(JoseError::KeyUseMismatch { .. })
    ));
    // An unpinned key verifies nothing.
    let mut unpinned = key.clone();
    unpinned.alg = None;
    assert_eq!(
        verify_compact(&token, &unpinned, &[JwsAlg::ES256]).unwrap_err(),
        JoseError::KeyNotPinned
    );
}

#[test]
fn json_serializations_round_trip_with_several_signers() {
    let a = Jwk::generate(JwsAlg::PS256).unwrap();
    let b = Jwk::generate(JwsAlg::EdDSA).unwrap();
    let mut extra = Map::new();
    extra.insert("note".into(), Value::String("unprotected".into()));
    let general = sign_json(b"hello", &[(&a, Some(extra)), (&b, None)], false).unwrap();
    let set = JwkSet {
        keys: vec![a.public().unwrap(), b.public().unwrap()],
    };
    let v = verify_json(&general.to_string(), &set, &[JwsAlg::PS256, JwsAlg::EdDSA]).unwrap();
    assert_eq!(
        (v.payload.as_slice(), v.header["note"].as_str()),
        (&b"hello"[..], Some("unprotected"))
    );
    let only_b = JwkSet {
        keys: vec![b.public().unwrap()],
    };
    assert_eq!(
        verify_json(
            &general.to_string(),
            &only_b,
            &[JwsAlg::PS256, JwsAlg::EdDSA]
        )
        .unwrap()
        .alg,
        JwsAlg::EdDSA
    );
    let flat = sign_json(b"x", &[(&b, None)], true).unwrap();
    assert!(flat.get("signatures").is_none() && flat.get("signature").is_some());
    verify_json(&flat.to_string(), &only_b, &[JwsAlg::EdDSA]).unwrap();
    // A member both protected and unprotected is refused.
    let mut dup = flat.clone();
    dup["header"] = serde_json::json!({"alg": "EdDSA"});
    assert!(verify_json(&dup.to_string(), &only_b, &[JwsAlg::EdDSA]).is_err());
}

#[test]
fn every_algorithm_round_trips_through_a_jwk_set() {
    let keys: Vec<Jwk> = JwsAlg::ALL
        .iter()
        .map(|a| Jwk::generate(*a).unwrap())
        .collect();
    let set = JwkSet { keys: keys.clone() };
    for key in &keys {
        let token = sign_compact(key, b"x", &Map::new()).unwrap();
        let v = verify_compact_in(&token, &set, &JwsAlg::ALL).unwrap();
        assert_eq!(v.alg, key.jws_alg().unwrap());
    }
}

proptest::proptest! {
    #[test]
    fn compact_parsing_never_panics(s in "[A-Za-z0-9_.=-]{0,300}") {
        let key = Jwk::parse(r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","alg":"HS256"}"#).unwrap();
        let _ = verify_compact(&s, &key, &JwsAlg::ALL);
    }

    #[test]
    fn json_parsing_never_panics(s in ".{0,300}") {
        let _ = verify_json(&s, &JwkSet::default(), &JwsAlg::ALL);
    }
}
