use serde_json::json;

use super::*;

fn claims(v: Value) -> Claims {
    v.as_object().unwrap().clone()
}

/// RFC 7519 §3.1 is RFC 7515 A.1: iss "joe", exp 1300819380, HS256.
#[test]
fn rfc7519_example_validates_before_exp_and_not_after() {
    let t: Value = serde_json::from_str(include_str!("../../../testdata/rfc7515.json")).unwrap();
    let case = &t["compact"][0];
    let key = Jwk::from_value(&case["jwk"])
        .unwrap()
        .pinned(JwsAlg::HS256)
        .unwrap();
    let set = JwkSet { keys: vec![key] };
    let token = case["jws"].as_str().unwrap();
    let v = Validation {
        issuer: Some("joe".into()),
        typ: Some("JWT".into()),
        leeway: Duration::ZERO,
        ..Validation::default()
    };
    let c = verify(token, &set, &[JwsAlg::HS256], &v, 1_300_819_379).unwrap();
    assert_eq!(c["http://example.com/is_root"], true);
    assert_eq!(
        verify(token, &set, &[JwsAlg::HS256], &v, 1_300_819_380).unwrap_err(),
        JoseError::ClaimInvalid {
            claim: "exp",
            reason: "expired"
        }
    );
    let other_issuer = Validation {
        issuer: Some("mallory".into()),
        ..v.clone()
    };
    assert!(matches!(
        verify(token, &set, &[JwsAlg::HS256], &other_issuer, 1_300_819_000),
        Err(JoseError::ClaimInvalid { claim: "iss", .. })
    ));
}

#[test]
fn time_claims_honour_the_leeway() {
    let v = Validation {
        leeway: Duration::from_secs(30),
        ..Validation::default()
    };
    let c = claims(json!({"exp": 1000, "nbf": 900, "iat": 900}));
    validate(&c, &v, 1029).unwrap();
    assert!(matches!(
        validate(&c, &v, 1030),
        Err(JoseError::ClaimInvalid { claim: "exp", .. })
    ));
    validate(&c, &v, 871).unwrap();
    assert!(matches!(
        validate(&c, &v, 869),
        Err(JoseError::ClaimInvalid { claim: "nbf", .. })
    ));
    let future = claims(json!({"exp": 5000, "iat": 2000}));
    assert!(matches!(
        validate(&future, &v, 1000),
        Err(JoseError::ClaimInvalid { claim: "iat", .. })
    ));
    assert!(matches!(
        validate(&claims(json!({})), &v, 0),
        Err(JoseError::ClaimInvalid {
            claim: "exp",
            reason: "missing"
        })
    ));
    assert!(matches!(
        validate(&claims(json!({"exp": "soon"})), &v, 0),
        Err(JoseError::ClaimInvalid { claim: "exp", .. })
    ));
    validate(
        &claims(json!({})),
        &Validation {
            require_exp: false,
            ..v
        },
        0,
    )
    .unwrap();
}

#[test]
fn audience_is_a_string_or_an_array() {
    let v = Validation {
        audience: Some("kms".into()),
        require_exp: false,
        ..Validation::default()
    };
    validate(&claims(json!({"aud": "kms"})), &v, 0).unwrap();
    validate(&claims(json!({"aud": ["jose", "kms"]})), &v, 0).unwrap();
    for bad in [json!({"aud": "jose"}), json!({"aud": ["jose"]}), json!({})] {
        assert!(matches!(
            validate(&claims(bad), &v, 0),
            Err(JoseError::ClaimInvalid { claim: "aud", .. })
        ));
    }
}

#[test]
fn typ_is_checked_when_asked() {
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let set = JwkSet {
        keys: vec![key.public().unwrap()],
    };
    let c = claims(json!({"sub": "a", "exp": 2000}));
    let token = sign(&key, &c, "at+jwt").unwrap();
    let v = |typ: &str| Validation {
        typ: Some(typ.into()),
        ..Validation::default()
    };
    verify(
        &token,
        &set,
        &[JwsAlg::ES256],
        &v("application/at+jwt"),
        1000,
    )
    .unwrap();
    assert!(matches!(
        verify(&token, &set, &[JwsAlg::ES256], &v("JWT"), 1000),
        Err(JoseError::ClaimInvalid { claim: "typ", .. })
    ));
}

#[test]
fn nested_and_encrypted_tokens() {
    let signer = Jwk::generate(JwsAlg::PS256).unwrap();
    let recipient = Jwk::generate_jwe(KeyAlg::EcdhEsA256KW, ContentAlg::A256GCM).unwrap();
    let verify_set = JwkSet {
        keys: vec![signer.public().unwrap()],
    };
    let dec_set = JwkSet {
        keys: vec![recipient.clone()],
    };
    let d = Decryption {
        keys: &dec_set,
        algs: &[KeyAlg::EcdhEsA256KW],
        encs: &[ContentAlg::A256GCM],
    };
    let c = claims(json!({"sub": "alice", "exp": 2000, "aud": "jose"}));
    let v = Validation {
        audience: Some("jose".into()),
        ..Validation::default()
    };
    let nested = nest(
        &signer,
        &recipient.public().unwrap(),
        ContentAlg::A256GCM,
        &c,
        "JWT",
    )
    .unwrap();
    assert_eq!(
        decrypt(&nested, d, Some((&verify_set, &[JwsAlg::PS256])), &v, 1000).unwrap()["sub"],
        "alice"
    );
    assert!(
        decrypt(&nested, d, None, &v, 1000).is_err(),
        "a nested token needs its verification keys"
    );
    assert!(matches!(
        decrypt(&nested, d, Some((&verify_set, &[JwsAlg::PS256])), &v, 3000),
        Err(JoseError::ClaimInvalid { claim: "exp", .. })
    ));
    let other_signer = JwkSet {
        keys: vec![Jwk::generate(JwsAlg::PS256).unwrap().public().unwrap()],
    };
    assert!(decrypt(
        &nested,
        d,
        Some((&other_signer, &[JwsAlg::PS256])),
        &v,
        1000
    )
    .is_err());

    let encrypted = encrypt(&recipient.public().unwrap(), ContentAlg::A256GCM, &c, "JWT").unwrap();
    assert_eq!(
        decrypt(&encrypted, d, None, &v, 1000).unwrap()["aud"],
        "jose"
    );
    assert!(matches!(
        decrypt(
            &encrypted,
            d,
            Some((&verify_set, &[JwsAlg::PS256])),
            &v,
            1000
        ),
        Err(JoseError::ClaimInvalid { claim: "cty", .. })
    ));
}

#[test]
fn claims_must_be_an_object() {
    let key = Jwk::generate(JwsAlg::HS256).unwrap();
    let token = jws::sign_compact(&key, b"[1,2]", &Map::new()).unwrap();
    let set = JwkSet { keys: vec![key] };
    assert!(matches!(
        verify(&token, &set, &[JwsAlg::HS256], &Validation::default(), 0),
        Err(JoseError::Malformed { .. })
    ));
}
