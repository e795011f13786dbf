use serde_json::{Map, Value};

use super::*;
use crate::jose::jwk::KeyMaterial;

fn rfc() -> Value {
    serde_json::from_str(include_str!("../../../testdata/rfc7516.json")).unwrap()
}

fn key(v: &Value, alg: &str) -> Jwk {
    Jwk::from_value(v)
        .unwrap()
        .pinned_jwe(KeyAlg::parse(alg).unwrap())
        .unwrap()
}

#[test]
fn rfc7516_compact_examples_decrypt() {
    let t = rfc();
    for name in ["a1", "a3"] {
        let c = &t[name];
        let k = key(&c["jwk"], c["alg"].as_str().unwrap());
        let d = decrypt_compact(
            c["jwe"].as_str().unwrap(),
            &k,
            &KeyAlg::ALL,
            &ContentAlg::ALL,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            d.plaintext.as_slice(),
            c["plaintext"].as_str().unwrap().as_bytes(),
            "{name}"
        );
    }
}

#[test]
fn rfc7516_json_examples_decrypt_skipping_the_rsa1_5_recipient() {
    let t = rfc();
    for name in ["a4", "a5"] {
        let c = &t[name];
        let set = JwkSet {
            keys: vec![key(&c["jwk"], "A128KW").with_kid(c["kid"].as_str().unwrap())],
        };
        let d = decrypt_json(&c["jwe"].to_string(), &set, &KeyAlg::ALL, &ContentAlg::ALL)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            d.plaintext.as_slice(),
            c["plaintext"].as_str().unwrap().as_bytes()
        );
        assert_eq!(
            d.header["jku"], "https://server.example.com/keys.jwks",
            "shared unprotected header joins"
        );
    }
}

#[test]
fn rsa1_5_and_zip_are_refused_with_clear_errors() {
    let t = rfc();
    let rsa = Jwk::from_value(&t["a2"]["jwk"]).unwrap();
    let err = decrypt_compact(
        t["a2"]["jwe"].as_str().unwrap(),
        &rsa,
        &KeyAlg::ALL,
        &ContentAlg::ALL,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("RSA1_5") && err.to_string().contains("refused"),
        "{err}"
    );
    assert!(KeyAlg::parse("RSA1_5").is_err());
    let k = Jwk::generate_jwe(KeyAlg::A256KW, ContentAlg::A256GCM).unwrap();
    let mut zip = Map::new();
    zip.insert("zip".into(), Value::String("DEF".into()));
    assert!(encrypt_compact(&k, ContentAlg::A256GCM, b"x", &zip)
        .unwrap_err()
        .to_string()
        .contains("zip"));
    let header = b64::encode(br#"{"alg":"A256KW","enc":"A256GCM","zip":"DEF"}"#);
    let token = format!("{header}.AA.AA.AA.AA");
    assert!(decrypt_compact(&token, &k, &KeyAlg::ALL, &ContentAlg::ALL)
        .unwrap_err()
        .to_string()
        .contains("zip"));
}

#[test]
fn every_alg_and_enc_round_trips_compact_and_json() {
    for alg in KeyAlg::ALL {
        for enc in ContentAlg::ALL {
            let k = Jwk::generate_jwe(alg, enc).unwrap();
            let pt = format!("{} {} plaintext", alg.as_str(), enc.as_str());
            let token = encrypt_compact(&k, enc, pt.as_bytes(), &Map::new()).unwrap();
            let d = decrypt_compact(&token, &k, &[alg], &[enc])
                .unwrap_or_else(|e| panic!("{} {}: {e}", alg.as_str(), enc.as_str()));
            assert_eq!(d.plaintext.as_slice(), pt.as_bytes());
            // Public keys encrypt (asymmetric algorithms), private keys decrypt.
            if matches!(
                k.material(),
                KeyMaterial::Rsa { .. } | KeyMaterial::Ec { .. }
            ) {
                let public = k.public().unwrap();
                let token = encrypt_compact(&public, enc, b"p", &Map::new()).unwrap();
                assert_eq!(
                    decrypt_compact(&token, &k, &[alg], &[enc])
                        .unwrap()
                        .plaintext
                        .as_slice(),
                    b"p"
                );
                assert!(matches!(
                    decrypt_compact(&token, &public, &[alg], &[enc]),
                    Err(JoseError::NotPrivate)
                ));
            }
            if alg == KeyAlg::Pbes2Hs256A128KW || alg == KeyAlg::Pbes2Hs512A256KW {
                continue; // 600k PBKDF2 iterations: one round trip per enc is enough
            }
            let flat =
                encrypt_json(&[&k], enc, b"json", &Map::new(), Some(b"extra aad"), true).unwrap();
            let set = JwkSet {
                keys: vec![k.clone()],
            };
            assert_eq!(
                decrypt_json(&flat.to_string(), &set, &[alg], &[enc])
                    .unwrap()
                    .plaintext
                    .as_slice(),
                b"json"
            );
        }
    }
}

#[test]
fn several_recipients_share_one_cek() {
    let a = Jwk::generate_jwe(KeyAlg::RsaOaep256, ContentAlg::A256GCM).unwrap();
    let b = Jwk::generate_jwe(KeyAlg::EcdhEsA256KW, ContentAlg::A256GCM).unwrap();
    let c = Jwk::generate_jwe(KeyAlg::A128GCMKW, ContentAlg::A256GCM).unwrap();
    let general = encrypt_json(
        &[&a.public().unwrap(), &b.public().unwrap(), &c],
        ContentAlg::A256GCM,
        b"to three",
        &Map::new(),
        None,
        false,
    )
    .unwrap();
    assert_eq!(general["recipients"].as_array().unwrap().len(), 3);
    for k in [&a, &b, &c] {
        let set = JwkSet {
            keys: vec![k.clone()],
        };
        let d = decrypt_json(&general.to_string(), &set, &KeyAlg::ALL, &ContentAlg::ALL).unwrap();
        assert_eq!(d.plaintext.as_slice(), b"to three");
        assert_eq!(d.kid, k.kid);
    }
    let dir = Jwk::generate_jwe(KeyAlg::Dir, ContentAlg::A256GCM).unwrap();
    assert!(
        encrypt_json(
            &[&a, &dir],
            ContentAlg::A256GCM,
            b"x",
            &Map::new(),
            None,
            false
        )
        .is_err(),
        "dir allows one recipient"
    );
}

#[test]
fn tampering_and_wrong_keys_fail() {
    let k = Jwk::generate_jwe(KeyAlg::A256KW, ContentAlg::A128CbcHs256).unwrap();
    let other = Jwk::generate_jwe(KeyAlg::A256KW, ContentAlg::A128CbcHs256).unwrap();
    let token = encrypt_compact(&k, ContentAlg::A128CbcHs256, b"secret", &Map::new()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert!(decrypt_compact(&token, &other, &KeyAlg::ALL, &ContentAlg::ALL).is_err());
    let flip = |s: &str| -> String {
        let mut bytes = b64::decode(s, "x").unwrap();
        if let Some(b) = bytes.first_mut() {
            *b ^= 1;
        }
        b64::encode(&bytes)
    };
    for i in 1..5 {
        let mut p: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
        p[i] = flip(&p[i]);
        assert!(
            decrypt_compact(&p.join("."), &k, &KeyAlg::ALL, &ContentAlg::ALL).is_err(),
            "part {i}"
        );
    }
    // The protected header is the AAD: changing it (even a member we ignore) fails.
    let header = b64::encode(
        format!(
            r#"{{"alg":"A256KW","enc":"A128CBC-HS256","kid":"{}","x":1}}"#,
            k.kid.clone().unwrap()
        )
        .as_bytes(),
    );
    let swapped = format!(
        "{header}.{}.{}.{}.{}",
        parts[1], parts[2], parts[3], parts[4]
    );
    assert!(decrypt_compact(&swapped, &k, &KeyAlg::ALL, &ContentAlg::ALL).is_err());
    assert!(matches!(
        decrypt_compact(&token, &k, &[KeyAlg::A128KW], &ContentAlg::ALL),
        Err(JoseError::AlgNotAllowed { .. })
    ));
    assert!(matches!(
        decrypt_compact(&token, &k, &KeyAlg::ALL, &[ContentAlg::A256GCM]),
        Err(JoseError::AlgNotAllowed { .. })
    ));
    let sig_key = Jwk::generate(crate::jose::JwsAlg::HS256).unwrap();
    assert!(decrypt_compact(&token, &sig_key, &KeyAlg::ALL, &ContentAlg::ALL).is_err());
    for broken in ["", "a.b.c.d", "a.b.c.d.e.f", &token[..token.len() - 3]] {
        assert!(
            decrypt_compact(broken, &k, &KeyAlg::ALL, &ContentAlg::ALL).is_err(),
            "{broken:?}"
        );
    }
}

#[test]
fn ecdh_refuses_an_epk_off_the_curve_or_on_another_curve() {
    let k = Jwk::generate_jwe(KeyAlg::EcdhEs, ContentAlg::A128GCM).unwrap();
    let token =
        encrypt_compact(&k.public().unwrap(), ContentAlg::A128GCM, b"x", &Map::new()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut header: Map<String, Value> =
        serde_json::from_slice(&b64::decode(parts[0], "h").unwrap()).unwrap();
    let x = header["epk"]["x"].clone();
    header["epk"]["y"] = x; // (x, x) is not on P-256
    let bad = format!(
        "{}.{}",
        b64::encode(Value::Object(header).to_string().as_bytes()),
        parts[1..].join(".")
    );
    assert!(decrypt_compact(&bad, &k, &KeyAlg::ALL, &ContentAlg::ALL).is_err());
}

#[test]
fn pbes2_iteration_counts_are_bounded() {
    let k = Jwk::generate_jwe(KeyAlg::Pbes2Hs256A128KW, ContentAlg::A128GCM).unwrap();
    let token = encrypt_compact(&k, ContentAlg::A128GCM, b"x", &Map::new()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut header: Map<String, Value> =
        serde_json::from_slice(&b64::decode(parts[0], "h").unwrap()).unwrap();
    assert_eq!(header["p2c"], keymgmt::PBES2_ITERATIONS);
    let mut weak = Map::new();
    weak.insert("p2c".into(), Value::from(10));
    assert!(
        encrypt_compact(&k, ContentAlg::A128GCM, b"x", &weak).is_err(),
        "a p2c below the floor is refused"
    );
    header["p2c"] = Value::from(100_000_000u64);
    let bad = format!(
        "{}.{}",
        b64::encode(Value::Object(header).to_string().as_bytes()),
        parts[1..].join(".")
    );
    assert!(decrypt_compact(&bad, &k, &KeyAlg::ALL, &ContentAlg::ALL)
        .unwrap_err()
        .to_string()
        .contains("p2c"));
}

proptest::proptest! {
    #[test]
    fn compact_parsing_never_panics(s in "[A-Za-z0-9_.-]{0,300}") {
        let k = Jwk::parse(r#"{"kty":"oct","k":"GawgguFyGrWKav7AX4VKUg","alg":"A128KW"}"#).unwrap();
        let _ = decrypt_compact(&s, &k, &KeyAlg::ALL, &ContentAlg::ALL);
    }

    #[test]
    fn json_parsing_never_panics(s in ".{0,300}") {
        let _ = decrypt_json(&s, &JwkSet::default(), &KeyAlg::ALL, &ContentAlg::ALL);
    }
}
