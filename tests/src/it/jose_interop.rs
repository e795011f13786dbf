//! JOSE interop, both ways, with Python jwcrypto as the independent judge: it verifies every
//! JWS we produce (compact and flattened JSON, all 13 algorithms), and we verify every JWS it
//! produces. jwcrypto lives in the venv `scripts/test` creates (`.venv`); the test fails, not
//! skips, without it.

use std::path::PathBuf;
use std::process::Command;

use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::jws;
use cryptoutil_protocols::jose::{b64, Jwk, JwkSet, JwsAlg};
use serde_json::{json, Map, Value};

pub(super) fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let python = std::env::var_os("JOSE_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or(venv);
    let ok = Command::new(&python)
        .args([
            "-c",
            "import jwcrypto, authlib, joserfc, requests, selenium",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import the Python peers: run scripts/test (it creates .venv from \
         tests/interop/requirements.txt)",
        python.display()
    );
    python
}

/// Runs a peer script of `tests/interop` (or `-c CODE`) with `args` off the async threads;
/// fails with its output unless it exits 0.
pub(super) async fn peer(script: &str, args: Vec<String>) -> Vec<u8> {
    let first = if script == "-c" {
        PathBuf::from("-c")
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("interop")
            .join(script)
    };
    let label = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(first)
            .args(&args)
            .output()
            .expect("run python")
    })
    .await
    .expect("python task");
    assert!(
        out.status.success(),
        "{label}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a peer script that prints `{"results": [{"case", "ok", "detail"}]}` and asserts that
/// it ran `cases` cases and all passed.
pub(super) async fn peer_report(script: &str, args: Vec<String>, cases: usize) -> Value {
    let stdout = peer(script, args).await;
    let report: Value = serde_json::from_slice(&stdout).expect("a JSON report");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), cases, "{script}: {report}");
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "{script}: {failed:#?}");
    report
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/jose_interop.py")
}

pub(super) fn run(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "jose_interop.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from jose_interop.py")
}

const PAYLOAD: &[u8] = "ours \u{2713} {\"n\":2}".as_bytes();

#[test]
fn jwcrypto_verifies_every_algorithm_we_sign() {
    let mut cases = Vec::new();
    for alg in JwsAlg::ALL {
        let key = Jwk::generate(alg).unwrap();
        let jwk: Value = if alg.as_str().starts_with("HS") {
            serde_json::from_str(&key.to_private_value().unwrap()).unwrap()
        } else {
            key.to_public_value().unwrap()
        };
        let compact = jws::sign_compact(&key, PAYLOAD, &Map::new()).unwrap();
        let flattened = jws::sign_json(PAYLOAD, &[(&key, None)], true)
            .unwrap()
            .to_string();
        for (form, token) in [("compact", compact), ("flattened JSON", flattened)] {
            cases.push(json!({"name": format!("{alg} {form}"), "alg": alg.as_str(), "jwk": jwk, "jws": token, "payload_b64": b64::encode(PAYLOAD)}));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let report = run(&["verify", path.to_str().unwrap()]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 26);
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "jwcrypto rejected: {failed:#?}");
}

#[test]
fn we_verify_every_algorithm_jwcrypto_signs() {
    let algs: Vec<&str> = JwsAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut args = vec!["produce"];
    args.extend(algs.iter().copied());
    let cases = run(&args);
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 26);
    for case in cases {
        let alg = JwsAlg::parse(case["alg"].as_str().unwrap()).unwrap();
        let key = Jwk::from_value(&case["jwk"])
            .unwrap()
            .pinned(alg)
            .unwrap()
            .with_kid(format!("peer-{alg}"));
        let token = case["jws"].as_str().unwrap();
        let verified = if token.starts_with('{') {
            jws::verify_json(
                token,
                &JwkSet {
                    keys: vec![key.clone()],
                },
                &[alg],
            )
        } else {
            jws::verify_compact(token, &key, &[alg])
        }
        .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(
            b64::encode(&verified.payload),
            case["payload_b64"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        // The peer's token with an algorithm outside our allow-list is refused.
        let others: Vec<JwsAlg> = JwsAlg::ALL.into_iter().filter(|a| *a != alg).collect();
        if !token.starts_with('{') {
            assert!(jws::verify_compact(token, &key, &others).is_err());
        }
    }
}

fn all_pairs() -> Vec<(KeyAlg, ContentAlg)> {
    KeyAlg::ALL
        .iter()
        .flat_map(|a| ContentAlg::ALL.iter().map(move |e| (*a, *e)))
        .collect()
}

#[test]
fn jwcrypto_decrypts_every_alg_and_enc_we_encrypt() {
    let mut cases = Vec::new();
    for (alg, enc) in all_pairs() {
        let key = Jwk::generate_jwe(alg, enc).unwrap();
        let private: Value = serde_json::from_str(&key.to_private_value().unwrap()).unwrap();
        let encrypt_to = if matches!(
            alg,
            KeyAlg::RsaOaep
                | KeyAlg::RsaOaep256
                | KeyAlg::RsaOaep384
                | KeyAlg::RsaOaep512
                | KeyAlg::EcdhEs
                | KeyAlg::EcdhEsA128KW
                | KeyAlg::EcdhEsA256KW
        ) {
            key.public().unwrap()
        } else {
            key.clone()
        };
        // jwcrypto refuses PBES2 counts above 16384 (its DoS guard); our default is 600,000.
        let mut extra = Map::new();
        if matches!(alg, KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW) {
            extra.insert("p2c".into(), json!(16384));
        }
        let compact = jwe::encrypt_compact(&encrypt_to, enc, PAYLOAD, &extra).unwrap();
        let flattened = jwe::encrypt_json(&[&encrypt_to], enc, PAYLOAD, &extra, None, true)
            .unwrap()
            .to_string();
        for (form, token) in [("compact", compact), ("flattened JSON", flattened)] {
            cases.push(json!({"name": format!("{} {} {form}", alg.as_str(), enc.as_str()), "jwk": private, "jwe": token, "plaintext_b64": b64::encode(PAYLOAD)}));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwe-cases.json");
    std::fs::write(&path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let report = run(&["jwe-decrypt", path.to_str().unwrap()]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 14 * 6 * 2);
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "jwcrypto could not decrypt: {failed:#?}");
}

#[test]
fn we_decrypt_every_alg_and_enc_jwcrypto_encrypts() {
    let pairs: Vec<String> = all_pairs()
        .iter()
        .map(|(a, e)| format!("{}:{}", a.as_str(), e.as_str()))
        .collect();
    let mut args = vec!["jwe-produce"];
    args.extend(pairs.iter().map(String::as_str));
    let cases = run(&args);
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 14 * 6 * 2);
    for case in cases {
        let alg = KeyAlg::parse(case["alg"].as_str().unwrap()).unwrap();
        let enc = ContentAlg::parse(case["enc"].as_str().unwrap()).unwrap();
        let key = Jwk::from_value(&case["jwk"])
            .unwrap()
            .pinned_jwe(alg)
            .unwrap();
        let token = case["jwe"].as_str().unwrap();
        let decrypted = if token.starts_with('{') {
            jwe::decrypt_json(token, &JwkSet { keys: vec![key] }, &[alg], &[enc])
        } else {
            jwe::decrypt_compact(token, &key, &[alg], &[enc])
        }
        .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(
            b64::encode(&decrypted.plaintext),
            case["plaintext_b64"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}
