//! RFC 7520 (the JOSE cookbook), sections 4 and 5: every example within our algorithm set
//! verifies or decrypts; the ones outside it (RSA1_5, zip, alg in an unprotected header) are
//! refused.

use serde_json::Value;

use super::jwe::{self, ContentAlg, KeyAlg};
use super::jwk::{Jwk, JwkSet};
use super::{b64, jws, JwsAlg};

fn cookbook() -> Value {
    serde_json::from_str(include_str!("../../testdata/rfc7520.json")).unwrap()
}

#[test]
fn section_4_signatures() {
    let t = cookbook();
    let payload = b64::decode(t["payload_4_b64"].as_str().unwrap(), "payload").unwrap();
    let cases = t["jws"].as_array().unwrap();
    assert_eq!(cases.len(), 17);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let alg = JwsAlg::parse(case["alg"].as_str().unwrap()).unwrap();
        let key = Jwk::from_value(&case["key"]).unwrap().pinned(alg).unwrap();
        let result = match case["form"].as_str().unwrap() {
            "compact" => jws::verify_compact(case["jws"].as_str().unwrap(), &key, &[alg]),
            _ => jws::verify_json(
                &case["jws"].to_string(),
                &JwkSet {
                    keys: vec![key.clone()],
                },
                &[alg],
            ),
        };
        match case["expect"].as_str().unwrap() {
            "valid" => assert_eq!(
                result.unwrap_or_else(|e| panic!("{name}: {e}")).payload,
                payload,
                "{name}"
            ),
            _ => assert!(result.is_err(), "{name} must be refused"),
        }
    }
}

#[test]
fn section_5_encryption() {
    let t = cookbook();
    let cases = t["jwe"].as_array().unwrap();
    assert_eq!(cases.len(), 29);
    let mut decrypted = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let alg_name = case["alg"].as_str().unwrap();
        let Ok(alg) = KeyAlg::parse(alg_name) else {
            assert_eq!(expect, "refused", "{name}: {alg_name} unsupported");
            continue;
        };
        let key = Jwk::from_value(&case["key"])
            .unwrap()
            .pinned_jwe(alg)
            .unwrap();
        let result = match case["form"].as_str().unwrap() {
            "compact" => jwe::decrypt_compact(
                case["jwe"].as_str().unwrap(),
                &key,
                &[alg],
                &ContentAlg::ALL,
            ),
            _ => jwe::decrypt_json(
                &case["jwe"].to_string(),
                &JwkSet {
                    keys: vec![key.clone()],
                },
                &[alg],
                &ContentAlg::ALL,
            ),
        };
        match expect {
            "valid" => {
                let d = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    b64::encode(&d.plaintext),
                    case["plaintext_b64"].as_str().unwrap(),
                    "{name}"
                );
                decrypted += 1;
            }
            _ => {
                let err = result.expect_err(name);
                assert!(
                    err.to_string().contains("zip") || err.to_string().contains("RSA1_5"),
                    "{name}: {err}"
                );
            }
        }
    }
    assert_eq!(
        decrypted, 25,
        "29 examples less 5.1 (RSA1_5) and the three of 5.9 (zip)"
    );
}
