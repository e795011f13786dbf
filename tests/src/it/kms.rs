//! The KMS API (issue 5, first step) end to end: elastic keys, encryption across a rotation
//! and a restart, signatures that jwcrypto verifies with the elastic key's JWKS, tenant
//! isolation (404, not 403), scopes.

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::b64;
use hyper::Method;
use serde_json::{json, Value};

use super::identity::{bootstrap, client_token, tenant_token};
use crate::TestApp;

const SERVICES: [ServiceName; 2] = [ServiceName::IdentityAuthz, ServiceName::Kms];

pub(super) async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    super::identity::api(app, ServiceName::Kms, token, method, path, body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn elastic_keys_encrypt_sign_rotate_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let boot = bootstrap(&data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;

    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "orders", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let enc_id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["latest"], 1);
    let plaintext = b64::encode(b"card 4111");
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/encrypt"),
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let jwe1 = v["jwe"].as_str().unwrap().to_owned();
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/rotate"),
        None,
    )
    .await;
    assert_eq!((status, v["version"].as_u64()), (200, Some(2)), "{v}");
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/encrypt"),
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    let jwe2 = v["jwe"].as_str().unwrap().to_owned();
    for jwe in [&jwe1, &jwe2] {
        let (status, v) = call(
            &app,
            &token,
            Method::POST,
            &format!("/elastickeys/{enc_id}/decrypt"),
            Some(json!({"jwe": jwe})),
        )
        .await;
        assert_eq!(
            (status, v["plaintext"].as_str()),
            (200, Some(plaintext.as_str())),
            "{v}"
        );
    }
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/elastickeys/{enc_id}/materialkeys"),
        None,
    )
    .await;
    assert_eq!(v["materialkeys"].as_array().unwrap().len(), 2, "{v}");

    // Signatures: jwcrypto verifies them with the elastic key's JWKS.
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "invoices", "algorithm": "ES256"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let sig_id = v["id"].as_str().unwrap().to_owned();
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{sig_id}/sign"),
        Some(json!({"payload": b64::encode(b"invoice 7")})),
    )
    .await;
    let jws = v["jws"].as_str().unwrap().to_owned();
    let (_, jwks) = call(
        &app,
        &token,
        Method::GET,
        &format!("/elastickeys/{sig_id}/jwks"),
        None,
    )
    .await;
    let script = r#"
import json, sys
from jwcrypto import jwk, jws
keys = jwk.JWKSet.from_json(sys.argv[2])
token = jws.JWS()
token.deserialize(sys.argv[1])
kid = token.jose_header["kid"]
token.verify(keys.get_key(kid), alg="ES256")
assert token.payload == b"invoice 7", token.payload
print("ok")
"#;
    super::jose_interop::peer("-c", vec![script.to_owned(), jws.clone(), jwks.to_string()]).await;
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{sig_id}/verify"),
        Some(json!({"jws": jws})),
    )
    .await;
    assert_eq!((status, v["valid"].as_bool()), (200, Some(true)), "{v}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/verify"),
        Some(json!({"jws": jws})),
    )
    .await;
    assert_eq!(status, 400, "an encryption key does not verify");

    // Batches: a result per item, in order; a bad item fails alone.
    let items: Vec<Value> = (0..5)
        .map(|i| json!({"plaintext": b64::encode(format!("item {i}").as_bytes())}))
        .collect();
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/batch/encrypt"),
        Some(json!({"items": items})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut jwes: Vec<Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"jwe": r["jwe"]}))
        .collect();
    jwes.push(json!({"jwe": "not.a.jwe.at.all"}));
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/batch/decrypt"),
        Some(json!({"items": jwes})),
    )
    .await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().take(5).enumerate() {
        assert_eq!(
            r["plaintext"].as_str(),
            Some(b64::encode(format!("item {i}").as_bytes()).as_str())
        );
    }
    assert!(results[5]["error"].is_string(), "{}", results[5]);
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{sig_id}/batch/sign"),
        Some(json!({"items": [{"payload": "YQ"}, {"payload": "Yg"}]})),
    )
    .await;
    let signed: Vec<Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"jws": r["jws"]}))
        .collect();
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{sig_id}/batch/verify"),
        Some(json!({"items": signed})),
    )
    .await;
    assert_eq!(v["results"][1]["payload"], "Yg", "{v}");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"plaintext": "YQ"})).collect();
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/batch/encrypt"),
        Some(json!({"items": too_many})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/batch/frobnicate"),
        Some(json!({"items": []})),
    )
    .await;
    assert_eq!(status, 404);

    // Data keys: 32 random bytes and their JWE under the latest version.
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/datakey"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let dk = v["plaintext"].as_str().unwrap().to_owned();
    assert_eq!(b64::decode(&dk, "dk").unwrap().len(), 32);
    let (_, opened) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/decrypt"),
        Some(json!({"jwe": v["jwe"]})),
    )
    .await;
    assert_eq!(opened["plaintext"].as_str(), Some(dk.as_str()));
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{enc_id}/datakey"),
        Some(json!({"wrapped_only": true})),
    )
    .await;
    assert!(v.get("plaintext").is_none() && v["jwe"].is_string(), "{v}");

    // Settings: a new name; disabled keys do nothing until enabled; the minimum decryption
    // version retires version 1.
    let (_, signing_dk) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{sig_id}/datakey"),
        Some(json!({})),
    )
    .await;
    assert!(
        signing_dk.get("jwe").is_none(),
        "a signing key makes no data keys"
    );
    let path = format!("/elastickeys/{enc_id}");
    let (status, v) = call(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"name": "orders-2", "enabled": false})),
    )
    .await;
    assert_eq!((status, v["name"].as_str()), (200, Some("orders-2")), "{v}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("{path}/encrypt"),
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    assert_eq!(status, 403, "disabled");
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"enabled": true, "min_decrypt_version": 2})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("{path}/decrypt"),
        Some(json!({"jwe": jwe1})),
    )
    .await;
    assert_eq!(status, 403, "version 1 is below the minimum");
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"min_decrypt_version": 9})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"min_decrypt_version": 1})),
    )
    .await;
    assert_eq!(status, 200);

    // Soft delete of another key: it stops working and shows its destruction time.
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "temp", "algorithm": "A256KW"})),
    )
    .await;
    let temp = format!("/elastickeys/{}", v["id"].as_str().unwrap());
    let (status, v) = call(&app, &token, Method::DELETE, &temp, None).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["destroy_at"].as_u64().is_some(), "{v}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("{temp}/encrypt"),
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &temp,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 403, "no change to a key scheduled for deletion");
    let (status, v) = call(&app, &token, Method::POST, &format!("{temp}/rotate"), None).await;
    assert_eq!(status, 403, "nor a rotation: {v}");
    assert_eq!(
        v["message"], "forbidden: the elastic key is scheduled for deletion",
        "{v}"
    );

    // Refusals: an algorithm outside the FIPS set, a token without the kms scope, another
    // tenant (404, like a key that does not exist).
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "x", "algorithm": "RSA1_5"})),
    )
    .await;
    assert_eq!(status, 400);
    let jose_only = client_token(&app, &boot.client_id, &boot.secret, "jose").await;
    let (status, _) = call(&app, &jose_only, Method::GET, "/elastickeys", None).await;
    assert!(status == 401 || status == 403, "{status}");
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let acme = tenant_token(&app, &operator, "acme", "kms").await;
    let (status, _) = call(
        &app,
        &acme,
        Method::GET,
        &format!("/elastickeys/{enc_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &acme,
        Method::POST,
        &format!("/elastickeys/{enc_id}/decrypt"),
        Some(json!({"jwe": jwe1})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, v) = call(&app, &acme, Method::GET, "/elastickeys", None).await;
    assert_eq!(v["elastickeys"], json!([]));
    app.stop().await;

    // A restart loses nothing: both versions still decrypt.
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    for jwe in [&jwe1, &jwe2] {
        let (status, v) = call(
            &app,
            &token,
            Method::POST,
            &format!("/elastickeys/{enc_id}/decrypt"),
            Some(json!({"jwe": jwe})),
        )
        .await;
        assert_eq!(
            (status, v["plaintext"].as_str()),
            (200, Some(plaintext.as_str())),
            "{v}"
        );
    }
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/elastickeys/{enc_id}"),
        None,
    )
    .await;
    assert_eq!(
        (v["name"].as_str(), v["latest"].as_u64()),
        (Some("orders-2"), Some(2)),
        "the rename persisted"
    );
    app.stop().await;
}

/// Reads the whole audit log from the admin listener.
async fn admin_audit(app: &TestApp, path: &str) -> Value {
    let url = format!("{}/admin/v1/{path}", app.admin(ServiceName::Kms));
    let resp = app.client.get(&url).await.unwrap();
    assert_eq!(resp.status, 200, "{path}");
    serde_json::from_slice(&resp.body).unwrap()
}

/// Python (hashlib, json) recomputes every record's hash from its sorted compact JSON and
/// checks every link: the chain is verifiable without our code.
const CHAIN_CHECK: &str = r#"
import hashlib, json, sys
records = json.loads(sys.argv[1])
prev = "0" * 64
for i, r in enumerate(records, 1):
    assert r["seq"] == i, (i, r)
    assert r["prev"] == prev, (i, r)
    body = {k: v for k, v in r.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == r["hash"], (i, canonical)
    prev = r["hash"]
print(len(records))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_key_operation_is_audited_in_a_hash_chain_python_can_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let boot = bootstrap(&data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "audited", "algorithm": "A256GCM"})),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/encrypt"),
        Some(json!({"plaintext": b64::encode(b"x")})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let jwe = v["jwe"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/decrypt"),
        Some(json!({"jwe": format!("{jwe}x")})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/decrypt"),
        Some(json!({"jwe": jwe})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys/ek-doesnotexist/sign",
        Some(json!({"payload": "YQ"})),
    )
    .await;
    assert_eq!(status, 404);

    // The tenant's own view, through the public API.
    let (status, v) = call(&app, &token, Method::GET, "/audit?from=1&limit=100", None).await;
    assert_eq!(status, 200, "{v}");
    let mine: Vec<(String, Option<u64>, String)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["who"], boot.client_id.as_str());
            assert_eq!(r["tenant"], "default");
            (
                r["op"].as_str().unwrap().to_owned(),
                r["version"].as_u64(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |op: &str, version: Option<u64>, outcome: &str| {
        (op.to_owned(), version, outcome.to_owned())
    };
    assert_eq!(
        mine,
        vec![
            expect("create", Some(1), "ok"),
            expect("encrypt", Some(1), "ok"),
            expect("decrypt", Some(1), "error"),
            expect("rotate", Some(2), "ok"),
            expect("decrypt", Some(1), "ok"),
            expect("sign", None, "error"),
        ]
    );
    let (status, _) = call(&app, &token, Method::GET, "/audit?limit=0", None).await;
    assert_eq!(status, 400);
    let no_scope = client_token(&app, &boot.client_id, &boot.secret, "jose").await;
    let (status, _) = call(&app, &no_scope, Method::GET, "/audit", None).await;
    assert!(status == 401 || status == 403, "{status}");

    // The admin view: the whole chain, verified by the service and, independently, by Python.
    let verified = admin_audit(&app, "audit/verify").await;
    assert_eq!(
        (verified["valid"].as_bool(), verified["records"].as_u64()),
        (Some(true), Some(6)),
        "{verified}"
    );
    let all = admin_audit(&app, "audit?limit=1000").await;
    let out = super::jose_interop::peer(
        "-c",
        vec![CHAIN_CHECK.to_owned(), all["records"].to_string()],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "6");
    app.stop().await;

    // A restart continues the same chain.
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/encrypt"),
        Some(json!({"plaintext": b64::encode(b"y")})),
    )
    .await;
    assert_eq!(status, 200);
    let all = admin_audit(&app, "audit?limit=1000").await;
    let out = super::jose_interop::peer(
        "-c",
        vec![CHAIN_CHECK.to_owned(), all["records"].to_string()],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "7");
    assert_eq!(all["records"][6]["version"], 2);
    let verified = admin_audit(&app, "audit/verify").await;
    assert_eq!(verified["valid"], true, "{verified}");

    // One version at a time: disable v1 (403), enable it, destroy it (gone for good); the
    // latest cannot be disabled (409); every step is audited.
    let version = |v: u32| format!("/elastickeys/{id}/materialkeys/{v}");
    let decrypt_path = format!("/elastickeys/{id}/decrypt");
    let decrypt_v1 = || {
        call(
            &app,
            &token,
            Method::POST,
            &decrypt_path,
            Some(json!({"jwe": jwe})),
        )
    };
    let (status, v) = call(
        &app,
        &token,
        Method::PATCH,
        &version(1),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["materialkeys"][1]["disabled"], true, "{v}");
    assert_eq!(decrypt_v1().await.0, 403);
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &version(1),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(decrypt_v1().await.0, 200);
    let (status, _) = call(
        &app,
        &token,
        Method::PATCH,
        &version(2),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 409, "the latest version");
    let (status, v) = call(&app, &token, Method::DELETE, &version(1), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["materialkeys"][1]["destroyed"], true, "{v}");
    assert_eq!(decrypt_v1().await.0, 403);
    let (status, _) = call(&app, &token, Method::DELETE, &version(7), None).await;
    assert_eq!(status, 404);
    let all = admin_audit(&app, "audit?limit=1000").await;
    let ops: Vec<&str> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["op"].as_str().unwrap())
        .collect();
    assert!(
        ops.ends_with(&[
            "disable-version",
            "decrypt",
            "enable-version",
            "decrypt",
            "disable-version",
            "destroy-version",
            "decrypt",
            "destroy-version"
        ]),
        "{ops:?}"
    );
    let out = super::jose_interop::peer(
        "-c",
        vec![CHAIN_CHECK.to_owned(), all["records"].to_string()],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "15");
    app.stop().await;
}

/// jwcrypto makes the key to import and wraps it to our import key.
const BYOK_WRAP: &str = r#"
import json, sys
from jwcrypto import jwk, jwe
import_key = jwk.JWK(**json.loads(sys.argv[1]))
mine = jwk.JWK.generate(kty="EC", crv="P-256")
token = jwe.JWE(mine.export_private().encode(), json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM"}))
token.add_recipient(import_key)
recipient = jwk.JWK.generate(kty="RSA", size=2048)
public = json.loads(recipient.export_public())
public["alg"] = "RSA-OAEP-256"
print(json.dumps({"jwe": token.serialize(compact=True), "mine": json.loads(mine.export_private()),
                  "recipient": json.loads(recipient.export_private()), "recipient_public": public}))
"#;

/// jwcrypto checks our signature with its own key, and opens the export with its own key.
const BYOK_CHECK: &str = r#"
import json, sys
from jwcrypto import jwk, jws, jwe
keys = json.loads(sys.argv[1])
mine = jwk.JWK(**keys["mine"])
sig = jws.JWS()
sig.deserialize(sys.argv[2])
sig.verify(mine, alg="ES256")
assert sig.payload == b"imported", sig.payload
box = jwe.JWE()
box.deserialize(sys.argv[3], key=jwk.JWK(**keys["recipient"]))
assert box.jose_header["cty"] == "jwk+json", box.jose_header
exported = json.loads(box.payload)
assert exported["d"] == keys["mine"]["d"] and exported["x"] == keys["mine"]["x"], exported
print("ok")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn byok_import_and_export_with_jwcrypto_on_the_other_side() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let boot = bootstrap(&data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (status, v) = call(&app, &token, Method::GET, "/importkey", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["jwk"]["alg"], "RSA-OAEP-256", "{v}");
    assert!(v["jwk"].get("d").is_none(), "public half only");
    let wrapped: Value = serde_json::from_slice(
        &super::jose_interop::peer("-c", vec![BYOK_WRAP.to_owned(), v["jwk"].to_string()]).await,
    )
    .unwrap();

    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "byok", "algorithm": "ES256", "exportable": true})),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/import"),
        Some(json!({"jwe": wrapped["jwe"]})),
    )
    .await;
    assert_eq!((status, v["version"].as_u64()), (200, Some(2)), "{v}");
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/sign"),
        Some(json!({"payload": b64::encode(b"imported")})),
    )
    .await;
    let jws = v["jws"].as_str().unwrap().to_owned();
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/export"),
        Some(json!({"jwk": wrapped["recipient_public"]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let exported = v["jwe"].as_str().unwrap().to_owned();
    let out = super::jose_interop::peer(
        "-c",
        vec![BYOK_CHECK.to_owned(), wrapped.to_string(), jws, exported],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "ok");

    // Refusals: a key that is not exportable, a recipient key that is private or of the wrong
    // algorithm, an import that is not to our import key, a key of the wrong type.
    let (_, v) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "kept", "algorithm": "ES256"})),
    )
    .await;
    let kept = v["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{kept}/export"),
        Some(json!({"jwk": wrapped["recipient_public"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/export"),
        Some(json!({"jwk": wrapped["recipient"]})),
    )
    .await;
    assert_eq!(status, 400, "a private recipient key");
    let mut rsa1_5 = wrapped["recipient_public"].clone();
    rsa1_5["alg"] = json!("RSA1_5");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/export"),
        Some(json!({"jwk": rsa1_5})),
    )
    .await;
    assert_eq!(status, 400, "RSA1_5");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{kept}/import"),
        Some(json!({"jwe": "e30.x.y.z.w"})),
    )
    .await;
    assert_eq!(status, 400);
    let (_, enc) = call(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "aes", "algorithm": "A256GCM"})),
    )
    .await;
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{}/import", enc["id"].as_str().unwrap()),
        Some(json!({"jwe": wrapped["jwe"]})),
    )
    .await;
    assert_eq!(status, 400, "an EC key into an AES key: {v}");
    let all = admin_audit(&app, "audit?limit=1000").await;
    let ops: Vec<(&str, &str)> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["op"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert!(
        ops.contains(&("import", "ok")) && ops.contains(&("export", "ok")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&("export", "error")) && ops.contains(&("import", "error")),
        "{ops:?}"
    );
    app.stop().await;
}
