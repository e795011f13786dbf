//! The jose service end to end over TLS: bearer JWTs from a trusted test issuer, keys per
//! tenant persisted through the barrier, sign/verify, encrypt/decrypt, JWT, export policy,
//! scopes, tenant isolation, restart survival, and jwcrypto judging the service's signatures.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::Response;
use cryptoutil_protocols::jose::{b64, jwt, Jwk, JwsAlg};
use hyper::Method;
use serde_json::{json, Value};

use crate::TestApp;

const ISSUER: &str = "https://issuer.test";

pub(super) struct Issuer {
    key: Jwk,
    iss: String,
    _dir: tempfile::TempDir,
    jwks_file: String,
}

impl Issuer {
    pub(super) fn new() -> Self {
        Self::named(ISSUER)
    }

    /// A test issuer whose tokens carry `iss`.
    pub(super) fn named(iss: &str) -> Self {
        let key = Jwk::generate(JwsAlg::ES256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer-jwks.json");
        // Like most issuers' JWKS, the key carries no `alg`: the service pins it by its curve.
        let mut public = key.to_public_value().unwrap();
        public.as_object_mut().unwrap().remove("alg");
        let jwks = json!({ "keys": [public] });
        std::fs::write(&path, jwks.to_string()).unwrap();
        Self {
            key,
            iss: iss.to_owned(),
            jwks_file: format!("file://{}", path.display()),
            _dir: dir,
        }
    }

    pub(super) fn vars(&self) -> String {
        format!("[{}]", self.entry())
    }

    /// Its entry of `auth.trusted_issuers`.
    pub(super) fn entry(&self) -> String {
        format!("{{issuer: \"{}\", jwks: \"{}\"}}", self.iss, self.jwks_file)
    }

    pub(super) fn token(&self, tenant: &str, aud: &str, scope: &str, exp_in: i64) -> String {
        self.sign(
            json!({"sub": "client-1", "aud": aud, "tenant": tenant, "scope": scope}),
            exp_in,
        )
    }

    /// A token of this issuer with `claims` (besides `iss`, `iat` and `exp`).
    pub(super) fn sign(&self, mut claims: Value, exp_in: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let o = claims.as_object_mut().unwrap();
        o.insert("iss".into(), json!(self.iss));
        o.insert("iat".into(), json!(now));
        o.insert("exp".into(), json!(now + exp_in));
        jwt::sign(&self.key, o, "at+jwt").unwrap()
    }

    /// The issuer's `iss`.
    pub(super) fn issuer(&self) -> &str {
        &self.iss
    }
}

pub(super) async fn start(issuer: &Issuer, data: Option<&Path>) -> TestApp {
    let vars = issuer.vars();
    TestApp::start(
        vec![ServiceName::Jose],
        &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", vars.as_str())],
        data,
    )
    .await
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, Response) {
    let url = format!(
        "{}/service/api/v1/jose{path}",
        app.public(ServiceName::Jose)
    );
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = app
        .client
        .send(method, &url, &headers, body.into())
        .await
        .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v, r)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_sign_verify_encrypt_decrypt_and_jwt() {
    let issuer = Issuer::new();
    let app = start(&issuer, None).await;
    let t = issuer.token("acme", "jose", "jose", 300);

    let (status, created, _) = call(
        &app,
        &t,
        Method::POST,
        "/jwks",
        Some(json!({"alg": "ES256", "use": "sig", "exportable": false})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let kid = created["kid"].as_str().unwrap().to_owned();
    assert!(created["jwk"].get("d").is_none() && created["jwk"]["kty"] == "EC");

    let (status, jwks, _) = call(&app, &t, Method::GET, "/jwks", None).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    assert!(jwks["keys"][0].get("d").is_none());

    let payload = b64::encode(b"hello jose");
    let (status, signed, _) = call(
        &app,
        &t,
        Method::POST,
        "/jws/sign",
        Some(json!({"kid": kid, "payload": payload})),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let jws = signed["jws"].as_str().unwrap().to_owned();
    let (status, verified, _) = call(
        &app,
        &t,
        Method::POST,
        "/jws/verify",
        Some(json!({"jws": jws})),
    )
    .await;
    assert_eq!(
        (
            status,
            &verified["valid"],
            &verified["kid"],
            &verified["payload"]
        ),
        (200, &json!(true), &json!(kid), &json!(payload))
    );
    let tampered = format!("{}x", &jws[..jws.len() - 1]);
    let (status, refused, _) = call(
        &app,
        &t,
        Method::POST,
        "/jws/verify",
        Some(json!({"jws": tampered})),
    )
    .await;
    assert_eq!(
        (status, &refused["valid"]),
        (400, &json!(false)),
        "{refused}"
    );

    for alg in ["A256KW", "RSA-OAEP-256", "ECDH-ES+A256KW", "dir"] {
        let (_, k, _) = call(
            &app,
            &t,
            Method::POST,
            "/jwks",
            Some(json!({"alg": alg, "use": "enc"})),
        )
        .await;
        let kid = k["kid"].as_str().unwrap();
        assert!(
            k["jwk"].get("k").is_none() && k["jwk"].get("d").is_none(),
            "{alg}: {k}"
        );
        let pt = b64::encode(b"secret bytes");
        let (status, e, _) = call(
            &app,
            &t,
            Method::POST,
            "/jwe/encrypt",
            Some(json!({"kid": kid, "plaintext": pt, "enc": "A128CBC-HS256"})),
        )
        .await;
        assert_eq!(status, 200, "{alg}: {e}");
        let (status, d, _) = call(
            &app,
            &t,
            Method::POST,
            "/jwe/decrypt",
            Some(json!({"jwe": e["jwe"]})),
        )
        .await;
        assert_eq!((status, &d["plaintext"]), (200, &json!(pt)), "{alg}");
    }

    let claims = json!({"sub": "alice", "exp": 4_000_000_000u64});
    let (status, j, _) = call(
        &app,
        &t,
        Method::POST,
        "/jwt/sign",
        Some(json!({"kid": kid, "claims": claims})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, v, _) = call(
        &app,
        &t,
        Method::POST,
        "/jwt/verify",
        Some(json!({"jwt": j["jwt"]})),
    )
    .await;
    assert_eq!((status, &v["claims"]["sub"]), (200, &json!("alice")));
    let expired = json!({"sub": "alice", "exp": 1000});
    let (_, j, _) = call(
        &app,
        &t,
        Method::POST,
        "/jwt/sign",
        Some(json!({"kid": kid, "claims": expired})),
    )
    .await;
    let (status, v, _) = call(
        &app,
        &t,
        Method::POST,
        "/jwt/verify",
        Some(json!({"jwt": j["jwt"]})),
    )
    .await;
    assert_eq!((status, &v["valid"]), (400, &json!(false)));

    // Refusals with clear errors.
    for bad in [
        json!({"alg": "RSA1_5"}),
        json!({"alg": "none"}),
        json!({"alg": "ES256", "use": "enc"}),
        json!({"alg": "PBES2-HS256+A128KW"}),
    ] {
        let (status, body, _) = call(&app, &t, Method::POST, "/jwks", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _, _) = call(
        &app,
        &t,
        Method::POST,
        "/jws/sign",
        Some(json!({"kid": kid, "payload": "not base64!"})),
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_scopes_tenants_and_export_policy() {
    let issuer = Issuer::new();
    let app = start(&issuer, None).await;
    let acme = issuer.token("acme", "jose", "jose", 300);
    let (_, k, _) = call(
        &app,
        &acme,
        Method::POST,
        "/jwks",
        Some(json!({"alg": "EdDSA"})),
    )
    .await;
    let kid = k["kid"].as_str().unwrap().to_owned();

    // Another tenant sees nothing: 404, not 403.
    let globex = issuer.token("globex", "jose", "jose", 300);
    let (status, body, r) = call(&app, &globex, Method::GET, &format!("/jwks/{kid}"), None).await;
    assert_eq!(status, 404, "{body} {}", r.text());
    let (status, _, _) = call(
        &app,
        &globex,
        Method::POST,
        "/jws/sign",
        Some(json!({"kid": kid, "payload": "AA"})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, list, _) = call(&app, &globex, Method::GET, "/jwks", None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 0);

    // Scope, audience, expiry, issuer key.
    let (status, _, r) = call(
        &app,
        &issuer.token("acme", "jose", "kms", 300),
        Method::GET,
        "/jwks",
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    for (case, token) in [
        ("audience", issuer.token("acme", "kms", "jose", 300)),
        ("expired", issuer.token("acme", "jose", "jose", -600)),
        (
            "unknown key",
            Issuer::new().token("acme", "jose", "jose", 300),
        ),
    ] {
        let (status, _, _) = call(&app, &token, Method::GET, "/jwks", None).await;
        assert_eq!(status, 401, "{case}");
    }
    let hs = Jwk::generate(JwsAlg::HS256).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = jwt::sign(&hs, json!({"iss": ISSUER, "aud": "jose", "tenant": "acme", "sub": "x", "scope": "jose", "exp": now + 60}).as_object().unwrap(), "JWT").unwrap();
    assert_eq!(
        call(&app, &forged, Method::GET, "/jwks", None).await.0,
        401,
        "symmetric tokens are refused"
    );
    // A bearer token on /browser is refused.
    let url = format!("{}/browser/api/v1/jose/jwks", app.public(ServiceName::Jose));
    let auth = format!("Bearer {acme}");
    assert_eq!(
        app.client
            .send(
                Method::GET,
                &url,
                &[("authorization", auth.as_str())],
                Default::default()
            )
            .await
            .unwrap()
            .status,
        401
    );

    // Export only when created exportable.
    let (status, _, _) = call(
        &app,
        &acme,
        Method::GET,
        &format!("/jwks/{kid}?export=true"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (_, e, _) = call(
        &app,
        &acme,
        Method::POST,
        "/jwks",
        Some(json!({"alg": "ES384", "exportable": true})),
    )
    .await;
    let ekid = e["kid"].as_str().unwrap();
    let (_, plain, _) = call(&app, &acme, Method::GET, &format!("/jwks/{ekid}"), None).await;
    assert!(plain.get("private_jwk").is_none(), "not without asking");
    let (status, exported, _) = call(
        &app,
        &acme,
        Method::GET,
        &format!("/jwks/{ekid}?export=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(exported["private_jwk"]["d"].is_string());

    // The inventory lists symmetric keys the JWK Set leaves out, never with their material.
    let (_, h, _) = call(
        &app,
        &acme,
        Method::POST,
        "/jwks",
        Some(json!({"alg": "HS256", "exportable": true})),
    )
    .await;
    let hkid = h["kid"].as_str().unwrap();
    let (status, inventory, _) = call(&app, &acme, Method::GET, "/keys", None).await;
    assert_eq!(status, 200);
    let listed: Vec<&Value> = inventory["keys"].as_array().unwrap().iter().collect();
    let hs = listed
        .iter()
        .find(|k| k["kid"] == hkid)
        .expect("the HMAC key is listed");
    assert_eq!(
        (
            hs["jwk"]["kty"].as_str(),
            hs["jwk"]["alg"].as_str(),
            hs["jwk"]["use"].as_str()
        ),
        (Some("oct"), Some("HS256"), Some("sig"))
    );
    assert!(
        !inventory.to_string().contains("\"k\""),
        "no symmetric material: {inventory}"
    );
    assert!(
        !inventory.to_string().contains("\"d\""),
        "no private material: {inventory}"
    );
    assert!(
        listed.iter().any(|k| k["kid"] == ekid)
            && listed.iter().all(|k| k.get("private_jwk").is_none())
    );
    let (_, jwks, _) = call(&app, &acme, Method::GET, "/jwks", None).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != hkid),
        "the JWK Set is public keys only"
    );

    let (status, _, _) = call(&app, &acme, Method::DELETE, &format!("/jwks/{kid}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, &acme, Method::GET, &format!("/jwks/{kid}"), None)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_survive_a_restart_and_jwcrypto_verifies_the_service_signatures() {
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = issuer.token("acme", "jose", "jose", 300);
    let app = start(&issuer, Some(&data)).await;
    let mut cases = Vec::new();
    for alg in ["ES256", "PS256", "RS384", "EdDSA", "ES512"] {
        let (_, k, _) = call(&app, &t, Method::POST, "/jwks", Some(json!({"alg": alg}))).await;
        let kid = k["kid"].as_str().unwrap().to_owned();
        let payload = b64::encode(format!("signed by the service with {alg}").as_bytes());
        let (_, s, _) = call(
            &app,
            &t,
            Method::POST,
            "/jws/sign",
            Some(json!({"kid": kid, "payload": payload})),
        )
        .await;
        cases.push((alg, kid, s["jws"].as_str().unwrap().to_owned(), payload));
    }
    app.stop().await;

    let app = start(&issuer, Some(&data)).await;
    let (_, jwks, _) = call(&app, &t, Method::GET, "/jwks", None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 5);
    let mut peer_cases = Vec::new();
    for (alg, kid, jws, payload) in &cases {
        let (status, v, _) = call(
            &app,
            &t,
            Method::POST,
            "/jws/verify",
            Some(json!({"jws": jws})),
        )
        .await;
        assert_eq!(
            (status, &v["payload"]),
            (200, &json!(payload)),
            "{alg} after restart"
        );
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone();
        peer_cases.push(json!({"name": format!("service {alg}"), "alg": alg, "jwk": jwk, "jws": jws, "payload_b64": payload}));
    }
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&peer_cases).unwrap()).unwrap();
    let report = super::jose_interop::run(&["verify", file.to_str().unwrap()]);
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] != true)
        .collect();
    assert!(
        failed.is_empty(),
        "jwcrypto rejected service signatures: {failed:#?}"
    );

    let url = format!(
        "{}/service/api/v1/openapi.yaml",
        app.public(ServiceName::Jose)
    );
    let spec = app.client.get(&url).await.unwrap();
    assert_eq!(spec.status, 200, "the OpenAPI document is public");
    assert_eq!(spec.text(), cryptoutil_http::jose::OPENAPI);
    app.stop().await;
}

/// The checked-in OpenAPI document and the route table describe the same API: every documented
/// operation is a route under both prefixes, and every API route is documented.
#[test]
fn the_openapi_document_matches_the_route_table() {
    openapi_matches_routes(
        cryptoutil_http::jose::OPENAPI,
        ServiceName::Jose,
        &["/jose/"],
    );
}

#[test]
fn the_kms_openapi_document_matches_the_route_table() {
    openapi_matches_routes(
        cryptoutil_http::kms::OPENAPI,
        ServiceName::Kms,
        &["/elastickeys", "/audit", "/importkey"],
    );
}

#[test]
fn the_identity_openapi_document_matches_the_route_table() {
    openapi_matches_routes(
        cryptoutil_http::identity::authz::OPENAPI,
        ServiceName::IdentityAuthz,
        // identity-idp's sign-in back channel (`/identity/signin`) is not the admin API.
        &[
            "/identity/tenants",
            "/identity/clients",
            "/identity/users",
            "/identity/audit",
        ],
    );
}

#[test]
fn the_ca_openapi_document_matches_the_route_table() {
    openapi_matches_routes(cryptoutil_http::ca::OPENAPI, ServiceName::Ca, &["/ca/"]);
}

#[test]
fn the_identity_rs_openapi_document_matches_the_route_table() {
    openapi_matches_routes_under(
        cryptoutil_http::identity::rs::OPENAPI,
        ServiceName::IdentityRs,
        &["/notes"],
        &["/service/api/v1"],
        5,
    );
}

/// Every (method, path) the document lists is a route under both prefixes, and back.
fn openapi_matches_routes(document: &str, service: ServiceName, api_prefixes: &[&str]) {
    openapi_matches_routes_under(
        document,
        service,
        api_prefixes,
        &["/service/api/v1", "/browser/api/v1"],
        10,
    );
}

/// Every (method, path) the document lists (at least `floor` of them) is a route under each of
/// `mounts`, and back.
fn openapi_matches_routes_under(
    document: &str,
    service: ServiceName,
    api_prefixes: &[&str],
    mounts: &[&str],
    floor: usize,
) {
    use cryptoutil_http::routes;
    let mut documented = std::collections::BTreeSet::new();
    let mut path = None;
    for line in document.lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if !line.starts_with("  ") {
            path = None;
        } else if let Some(p) = &path {
            for method in ["get", "post", "put", "patch", "delete"] {
                if line == format!("    {method}:") {
                    documented.insert((method.to_uppercase(), p.clone()));
                }
            }
        }
    }
    assert!(documented.len() >= floor, "{documented:?}");
    for prefix in mounts {
        let routed: std::collections::BTreeSet<(String, String)> = routes::table(service)
            .iter()
            .filter_map(|r| {
                let rest = r.path.strip_prefix(prefix)?;
                // OpenAPI has no catch-all: `{*request}` is documented as `{request}`.
                Some((
                    r.method.as_ref()?.as_str().to_owned(),
                    rest.replace("{*", "{"),
                ))
            })
            .filter(|(_, p)| api_prefixes.iter().any(|a| p.starts_with(a)) || p == "/openapi.yaml")
            .collect();
        assert_eq!(documented, routed, "{service} under {prefix}");
    }
}
