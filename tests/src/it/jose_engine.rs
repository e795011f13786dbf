//! The JOSE API with brought keys (`jwk` instead of `kid`), as the KMS uses it: Python jwcrypto
//! makes the keys; jwcrypto verifies what the service signs and opens what it encrypts, and the
//! service verifies and opens what jwcrypto makes. Keys without `alg`, forbidden algorithms and
//! requests naming both or neither key form are refused; nothing is stored.

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::b64;
use hyper::Method;
use serde_json::{json, Value};

use super::jose_interop::peer;
use super::jose_service::{start, Issuer};
use crate::TestApp;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    super::identity::api(
        app,
        ServiceName::Jose,
        token,
        Method::POST,
        &format!("/jose{path}"),
        Some(body),
    )
    .await
}

const JWCRYPTO: &str = r#"
import json, sys
from jwcrypto import jwk, jws, jwe
cmd = sys.argv[1]
if cmd == "keys":
    ec = jwk.JWK.generate(kty="EC", crv="P-256", alg="ES256", kid="ec-1")
    rsa = jwk.JWK.generate(kty="RSA", size=2048, alg="RSA-OAEP-256", kid="rsa-1")
    print(json.dumps({"ec": json.loads(ec.export_private()), "rsa": json.loads(rsa.export_private())}))
elif cmd == "check":
    keys = json.loads(sys.argv[2]); signed = sys.argv[3]; encrypted = sys.argv[4]
    ec = jwk.JWK(**keys["ec"]); rsa = jwk.JWK(**keys["rsa"])
    s = jws.JWS(); s.deserialize(signed); s.verify(ec, alg="ES256")
    assert s.payload == b"signed by the engine", s.payload
    e = jwe.JWE(); e.deserialize(encrypted, key=rsa)
    assert e.payload == b"sealed by the engine", e.payload
    assert json.loads(e.objects["protected"])["alg"] == "RSA-OAEP-256"
    mine = jws.JWS(b"signed by jwcrypto"); mine.add_signature(ec, alg="ES256", protected=json.dumps({"alg": "ES256"}))
    sealed = jwe.JWE(b"sealed by jwcrypto", json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM"}))
    sealed.add_recipient(rsa.public())
    print(json.dumps({"jws": mine.serialize(compact=True), "jwe": sealed.serialize(compact=True)}))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn brought_keys_interoperate_with_jwcrypto_and_bad_ones_are_refused() {
    let issuer = Issuer::new();
    let app = start(&issuer, None).await;
    let token = issuer.token("t1", "jose", "jose", 300);

    let keys: Value =
        serde_json::from_slice(&peer("-c", vec![JWCRYPTO.into(), "keys".into()]).await).unwrap();
    let (ec, rsa) = (&keys["ec"], &keys["rsa"]);
    let mut ec_public = ec.clone();
    ec_public.as_object_mut().unwrap().remove("d");

    let (s, v) = post(
        &app,
        &token,
        "/jws/sign",
        json!({"jwk": ec, "payload": b64::encode(b"signed by the engine")}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let signed = v["jws"].as_str().unwrap().to_owned();
    let mut rsa_public = rsa.clone();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        rsa_public.as_object_mut().unwrap().remove(member);
    }
    let (s, v) = post(
        &app,
        &token,
        "/jwe/encrypt",
        json!({"jwk": rsa_public, "plaintext": b64::encode(b"sealed by the engine")}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let encrypted = v["jwe"].as_str().unwrap().to_owned();

    // jwcrypto judges ours, and makes its own for us to check.
    let theirs: Value = serde_json::from_slice(
        &peer(
            "-c",
            vec![
                JWCRYPTO.into(),
                "check".into(),
                keys.to_string(),
                signed,
                encrypted,
            ],
        )
        .await,
    )
    .unwrap();
    let (s, v) = post(
        &app,
        &token,
        "/jws/verify",
        json!({"jwk": ec_public, "jws": theirs["jws"]}),
    )
    .await;
    assert_eq!((s, v["valid"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(
        b64::decode(v["payload"].as_str().unwrap(), "p").unwrap(),
        b"signed by jwcrypto"
    );
    let (s, v) = post(
        &app,
        &token,
        "/jwe/decrypt",
        json!({"jwk": rsa, "jwe": theirs["jwe"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        b64::decode(v["plaintext"].as_str().unwrap(), "p").unwrap(),
        b"sealed by jwcrypto"
    );

    // Refusals: a key without alg, a forbidden algorithm, both or neither key form, a wrong key.
    let mut no_alg = ec.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    let mut rsa1_5 = rsa.clone();
    rsa1_5["alg"] = json!("RSA1_5");
    let other_ec: Value =
        serde_json::from_slice(&peer("-c", vec![JWCRYPTO.into(), "keys".into()]).await).unwrap();
    for (path, body) in [
        ("/jws/sign", json!({"jwk": no_alg, "payload": "AA"})),
        ("/jwe/decrypt", json!({"jwk": rsa1_5, "jwe": theirs["jwe"]})),
        ("/jws/sign", json!({"jwk": ec, "kid": "k", "payload": "AA"})),
        ("/jws/sign", json!({"payload": "AA"})),
        (
            "/jws/verify",
            json!({"jwk": other_ec["ec"], "jws": theirs["jws"]}),
        ),
        (
            "/jwe/decrypt",
            json!({"jwk": other_ec["rsa"], "jwe": theirs["jwe"]}),
        ),
        (
            "/jwe/decrypt",
            json!({"jwk": rsa, "jwe": theirs["jwe"], "enc": "A128GCM"}),
        ),
    ] {
        let (s, v) = post(&app, &token, path, body.clone()).await;
        assert_eq!(s, 400, "{path} {body}: {v}");
    }
    // Without the jose scope, a brought key is no way around it; nothing was stored.
    let no_scope = issuer.token("t1", "jose", "kms", 300);
    let (s, _) = post(
        &app,
        &no_scope,
        "/jws/sign",
        json!({"jwk": ec, "payload": "AA"}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, v) = super::identity::api(
        &app,
        ServiceName::Jose,
        &token,
        Method::GET,
        "/jose/keys",
        None,
    )
    .await;
    assert_eq!(
        (s, v["keys"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    app.stop().await;
}
