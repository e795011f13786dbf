use serde_json::Value;

use super::*;

fn testdata() -> Value {
    serde_json::from_str(include_str!("../../../testdata/jwk.json")).unwrap()
}

#[test]
fn rfc7638_rsa_thumbprint() {
    let t = testdata();
    let key = Jwk::from_value(&t["rfc7638"]["jwk"]).unwrap();
    assert_eq!(key.thumbprint().unwrap(), t["rfc7638"]["thumbprint"]);
    assert_eq!(key.kid.as_deref(), Some("2011-04-29"));
    assert!(!key.is_private());
}

#[test]
fn rfc8037_ed25519_thumbprint_and_deterministic_signature() {
    let t = testdata();
    let key = Jwk::from_value(&t["rfc8037"]["jwk"])
        .unwrap()
        .pinned(JwsAlg::EdDSA)
        .unwrap();
    assert_eq!(
        key.public().unwrap().thumbprint().unwrap(),
        t["rfc8037"]["thumbprint"]
    );
    let payload = t["rfc8037"]["payload"].as_str().unwrap().as_bytes();
    let jws = crate::jose::jws::sign_compact(
        &Jwk {
            kid: None,
            ..key.clone()
        },
        payload,
        &serde_json::Map::new(),
    )
    .unwrap();
    assert_eq!(
        jws, t["rfc8037"]["jws"],
        "Ed25519 is deterministic: RFC 8037 A.4 byte for byte"
    );
}

#[test]
fn every_algorithm_generates_exports_and_reimports() {
    for alg in JwsAlg::ALL {
        let key = Jwk::generate(alg).unwrap();
        assert_eq!(key.jws_alg().unwrap(), alg);
        assert_eq!(key.kid.as_deref(), Some(key.thumbprint().unwrap().as_str()));
        let private = key.to_private_value().unwrap();
        let again = Jwk::parse(&private).unwrap();
        assert_eq!(
            again.thumbprint().unwrap(),
            key.thumbprint().unwrap(),
            "{alg}"
        );
        let sig = again.sign(b"m").unwrap();
        if alg.as_str().starts_with("HS") {
            assert!(
                key.to_public_value().is_err(),
                "oct keys have no public form"
            );
            key.verify(alg, b"m", &sig).unwrap();
            continue;
        }
        let public = key.to_public_value().unwrap();
        for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                public.get(private_member).is_none(),
                "{alg}: public JWK leaks {private_member}"
            );
        }
        let public = Jwk::from_value(&public).unwrap();
        assert!(!public.is_private());
        public.verify(alg, b"m", &sig).unwrap();
        assert_eq!(public.verify(alg, b"n", &sig), Err(JoseError::BadSignature));
    }
}

#[test]
fn generated_rsa_sizes_follow_the_hash() {
    for (alg, bytes) in [
        (JwsAlg::RS256, 256),
        (JwsAlg::PS384, 384),
        (JwsAlg::RS512, 512),
    ] {
        let key = Jwk::generate(alg).unwrap();
        match key.material() {
            KeyMaterial::Rsa { n, .. } => assert_eq!(n.len(), bytes, "{alg}"),
            _ => panic!("not RSA"),
        }
    }
}

#[test]
fn bad_keys_are_refused_with_reasons() {
    let cases = [
        (r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#, "2048"),
        (r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#, "length"),
        (r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#, "crv"),
        (r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#, "crv"),
        (r#"{"kty":"oct","k":""}"#, "empty"),
        (r#"{"kty":"oct","k":"AA","alg":"none"}"#, "none"),
        (r#"{"kty":"oct","k":"A A"}"#, "k"),
        (r#"{"kty":"XYZ"}"#, "kty"),
        (r#"{"kty":"oct","k":"AAAA","use":"wrap"}"#, "use"),
        ("[]", "object"),
        ("{", "JSON"),
    ];
    for (json, hint) in cases {
        let err = Jwk::parse(json).unwrap_err();
        assert!(err.to_string().contains(hint), "{json}: {err}");
    }
    // An EC point that is not on the curve.
    let mut bad = testdata()["rfc8037"]["jwk"].clone();
    bad = serde_json::json!({"kty":"EC","crv":"P-256","x": bad["x"], "y": bad["x"]});
    assert!(Jwk::from_value(&bad)
        .unwrap_err()
        .to_string()
        .contains("curve"));
}

#[test]
fn short_hmac_keys_cannot_be_pinned() {
    let key = Jwk::parse(r#"{"kty":"oct","k":"c2hvcnQ"}"#).unwrap();
    assert!(matches!(
        key.pinned(JwsAlg::HS256),
        Err(JoseError::InvalidKey { .. })
    ));
}

#[test]
fn debug_never_prints_key_bytes() {
    let key = Jwk::generate(JwsAlg::HS256).unwrap();
    let k = match key.material() {
        KeyMaterial::Oct { k } => b64::encode(k),
        _ => unreachable!(),
    };
    assert!(!format!("{key:?}").contains(&k));
}

#[test]
fn jwk_sets_skip_unknown_types_and_find_by_kid() {
    let set = JwkSet::parse(
        r#"{"keys":[{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"},
                    {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(set.find("ed").is_some());
    assert!(set.to_public_value().unwrap()["keys"][0].get("d").is_none());
}

proptest::proptest! {
    #[test]
    fn jwk_parsing_never_panics(s in ".{0,400}") {
        let _ = Jwk::parse(&s);
        let _ = JwkSet::parse(&s);
    }

    #[test]
    fn jwk_json_with_arbitrary_members_never_panics(kty in "(RSA|EC|OKP|oct|x)", a in "[A-Za-z0-9_-]{0,90}", b in "[A-Za-z0-9_-]{0,90}") {
        let json = format!(r#"{{"kty":"{kty}","crv":"P-256","n":"{a}","e":"{b}","x":"{a}","y":"{b}","k":"{a}","d":"{b}"}}"#);
        let _ = Jwk::parse(&json);
    }
}
