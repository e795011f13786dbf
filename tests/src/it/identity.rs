//! identity-authz, client credentials end to end: first-start bootstrap (bootstrap.json, 0600),
//! discovery, the JWK Set, tokens by client_secret_basic and client_secret_post that the other
//! services accept (audience and scope checked per route), RFC 6749 errors, RFC 8707 resource
//! indicators, and nothing issued lost across a restart.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::Response;
use cryptoutil_protocols::jose::{b64, header, jwt, JwkSet, JwsAlg};
use hyper::Method;
use serde_json::Value;

use crate::TestApp;

const SERVICES: [ServiceName; 3] = [
    ServiceName::IdentityAuthz,
    ServiceName::Jose,
    ServiceName::Kms,
];
const ISSUER: &str = "https://issuer.identity.test";

pub(super) struct Bootstrap {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) secret: String,
    pub(super) password: String,
}

pub(super) fn bootstrap(data_dir: &Path) -> Bootstrap {
    let path = data_dir.join("bootstrap.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "bootstrap.json holds secrets");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(v["admin_user"]["username"].is_string() && v["admin_user"]["password"].is_string());
    Bootstrap {
        tenant: v["tenant"].as_str().unwrap().to_owned(),
        client_id: v["service_client"]["client_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret: v["service_client"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
        password: v["admin_user"]["password"].as_str().unwrap().to_owned(),
    }
}

async fn start(data: Option<&Path>) -> TestApp {
    TestApp::start(
        SERVICES.to_vec(),
        &[("CRYPTOUTIL_IDENTITY__ISSUER", ISSUER)],
        data,
    )
    .await
}

/// A token request: `basic` as (id, secret) or none; `form` as name=value pairs.
pub(super) async fn token_request(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, Response) {
    oauth_post(app, "token", basic, form).await
}

/// A form POST to `/service/oauth2/v1/<endpoint>`, with HTTP Basic client authentication when
/// `basic` is given.
pub(super) async fn oauth_post(
    app: &TestApp,
    endpoint: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, Response) {
    let url = format!(
        "{}/service/oauth2/v1/{endpoint}",
        app.public(ServiceName::IdentityAuthz)
    );
    let body: String = form
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace('%', "%25").replace('+', "%2B").replace(' ', "+")
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let auth = basic.map(|(id, secret)| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    });
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let r = app
        .client
        .send(Method::POST, &url, &headers, body.into())
        .await
        .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v, r)
}

pub(super) async fn get_with(app: &TestApp, service: ServiceName, path: &str, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    app.client
        .send(
            Method::GET,
            &format!("{}{path}", app.public(service)),
            &[("authorization", auth.as_str())],
            Default::default(),
        )
        .await
        .unwrap()
        .status
        .as_u16()
}

pub(super) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64::decode(payload, "payload").unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_tokens_work_across_services_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(Some(&data)).await;
    let boot = bootstrap(&data);
    let authz = app.public(ServiceName::IdentityAuthz).to_owned();

    // Discovery at both well-known paths, and the JWK Set it names.
    let mut jwks_uri = String::new();
    for path in ["openid-configuration", "oauth-authorization-server"] {
        let r = app
            .client
            .get(&format!("{authz}/.well-known/{path}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let meta: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(meta["issuer"], ISSUER);
        assert_eq!(
            meta["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        jwks_uri = meta["jwks_uri"].as_str().unwrap().replace(ISSUER, &authz);
    }
    let r = app.client.get(&jwks_uri).await.unwrap();
    assert_eq!(r.headers["content-type"], "application/jwk-set+json");
    let set = JwkSet::parse(&r.text()).unwrap();
    assert!(!r.text().contains("\"d\""), "public keys only");

    // client_secret_basic and client_secret_post.
    let (status, basic, resp) = token_request(
        &app,
        Some((&boot.client_id, &boot.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{basic}");
    assert_eq!(resp.headers["cache-control"], "no-store");
    assert_eq!(basic["token_type"], "Bearer");
    assert_eq!(basic["expires_in"], 900);
    let (status, post, _) = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &boot.client_id),
            ("client_secret", &boot.secret),
            ("scope", "jose"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{post}");
    assert_eq!(post["scope"], "jose");

    // The token: an RFC 9068 JWT whose signature the published set verifies.
    let token = basic["access_token"].as_str().unwrap().to_owned();
    let kid = header::compact_kid(&token).unwrap();
    let key = set.find(&kid).expect("the signing key is published");
    let verified = jwt::verify(
        &token,
        &JwkSet {
            keys: vec![key.clone()],
        },
        &[JwsAlg::ES256],
        &jwt::Validation {
            issuer: Some(ISSUER.into()),
            audience: Some("jose".into()),
            typ: Some("at+jwt".into()),
            leeway: std::time::Duration::from_secs(5),
            require_exp: true,
        },
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let c = verified.unwrap();
    assert_eq!(c["tenant"], boot.tenant.as_str());
    assert_eq!(c["client_id"], boot.client_id.as_str());
    assert_eq!(c["sub"], boot.client_id.as_str());
    assert!(c["jti"].is_string() && c["iat"].is_u64());

    // Services accept it (audience and scope per route).
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", &token).await,
        200
    );
    assert_eq!(
        get_with(&app, ServiceName::Kms, "/service/api/v1/health", &token).await,
        200
    );
    let jose_only = post["access_token"].as_str().unwrap();
    assert_eq!(
        get_with(
            &app,
            ServiceName::Jose,
            "/service/api/v1/jose/jwks",
            jose_only
        )
        .await,
        200
    );

    // RFC 8707: a token for the JOSE service only is refused by KMS.
    let jose_url = app.public(ServiceName::Jose).to_owned();
    let (status, narrow, _) = token_request(
        &app,
        Some((&boot.client_id, &boot.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", &jose_url),
            ("scope", "jose kms"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{narrow}");
    let narrow = narrow["access_token"].as_str().unwrap();
    assert_eq!(claims(narrow)["aud"], "jose");
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", narrow).await,
        200
    );
    assert_eq!(
        get_with(&app, ServiceName::Kms, "/service/api/v1/health", narrow).await,
        401
    );
    // A token without the jose scope is authenticated but not authorized there.
    let (_, kms_only, _) = token_request(
        &app,
        Some((&boot.client_id, &boot.secret)),
        &[("grant_type", "client_credentials"), ("scope", "kms")],
    )
    .await;
    let kms_only = kms_only["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(
            &app,
            ServiceName::Jose,
            "/service/api/v1/jose/jwks",
            &kms_only
        )
        .await,
        403
    );

    // A restart (same issuer, same data directory): the client and the signing key persisted,
    // bootstrap.json is not rewritten, tokens issued before still validate.
    let before = std::fs::read(data.join("bootstrap.json")).unwrap();
    app.stop().await;
    let app = start(Some(&data)).await;
    assert_eq!(std::fs::read(data.join("bootstrap.json")).unwrap(), before);
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", &token).await,
        200
    );
    let (status, again, _) = token_request(
        &app,
        Some((&boot.client_id, &boot.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        header::compact_kid(again["access_token"].as_str().unwrap()).unwrap(),
        kid
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_endpoint_refuses_bad_requests_with_rfc6749_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(Some(&data)).await;
    let boot = bootstrap(&data);
    let (id, secret) = (boot.client_id.as_str(), boot.secret.as_str());
    let cc = ("grant_type", "client_credentials");

    // Wrong secret and unknown client: the same answer, 401 with a Basic challenge.
    let (s1, wrong, r1) = token_request(&app, Some((id, "not-the-secret")), &[cc]).await;
    let (s2, unknown, _) = token_request(&app, Some(("no-such-client", secret)), &[cc]).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown, "no client enumeration");
    assert_eq!(wrong["error"], "invalid_client");
    assert!(r1.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(r1.headers["cache-control"], "no-store");
    let (s, v, _) = token_request(&app, None, &[cc]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "no credentials"
    );

    for (form, basic, code) in [
        // Two authentication methods at once.
        (
            vec![cc, ("client_id", id), ("client_secret", secret)],
            true,
            "invalid_request",
        ),
        // Repeated parameter.
        (vec![cc, cc], true, "invalid_request"),
        (
            vec![
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            true,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "implicit")],
            true,
            "unsupported_grant_type",
        ),
        (vec![], true, "invalid_request"),
        (vec![cc, ("scope", "jose admin")], true, "invalid_scope"),
        (vec![cc, ("scope", "bad\"scope")], true, "invalid_scope"),
        (
            vec![cc, ("resource", "https://elsewhere.example/")],
            true,
            "invalid_target",
        ),
        (
            vec![cc, ("client_id", "someone-else")],
            true,
            "invalid_request",
        ),
    ] {
        let (status, v, _) = token_request(&app, basic.then_some((id, secret)), &form).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(code)),
            "{form:?}: {v}"
        );
    }

    // Not a form.
    let url = format!(
        "{}/service/oauth2/v1/token",
        app.public(ServiceName::IdentityAuthz)
    );
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // A token is refused by /browser (bearer on the cookie stack).
    let (_, ok, _) = token_request(&app, Some((id, secret)), &[cc]).await;
    let token = ok["access_token"].as_str().unwrap();
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/browser/api/v1/jose/jwks", token).await,
        401
    );
    app.stop().await;
}

/// Authlib, an independent OAuth client, discovers the server, fetches tokens with both client
/// authentication methods, validates them with joserfc against the published JWK Set and uses
/// them on the JOSE service, introspects and revokes, authenticates a key-only client with an
/// Authlib-signed private_key_jwt assertion; a wrong secret gets invalid_client.
#[tokio::test(flavor = "multi_thread")]
async fn authlib_fetches_validates_and_uses_client_credentials_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The issuer as bound: Authlib follows the metadata's URLs.
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let boot = bootstrap(&data);
    let ca = data.join("tls/ca.pem");
    let args = vec![
        "client-credentials".to_owned(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
        ca.display().to_string(),
        boot.client_id.clone(),
        boot.secret.clone(),
        app.public(ServiceName::Jose).to_owned(),
    ];
    super::jose_interop::peer_report("oauth_interop.py", args, 6).await;
    app.stop().await;
}

/// Introspection or revocation (`endpoint`) of `token`: status and JSON body.
pub(super) async fn token_call(
    app: &TestApp,
    endpoint: &str,
    basic: Option<(&str, &str)>,
    token: &str,
) -> (u16, Value) {
    let (status, v, _) = oauth_post(app, endpoint, basic, &[("token", token)]).await;
    (status, v)
}

/// RFC 7662 and RFC 7009: an authenticated client introspects its tenant's tokens; a revoked
/// token is inactive, also after a restart; revoking what is not revocable is not an error.
#[tokio::test(flavor = "multi_thread")]
async fn introspection_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(Some(&data)).await;
    let boot = bootstrap(&data);
    let me = Some((boot.client_id.as_str(), boot.secret.as_str()));
    let (_, t, _) = token_request(
        &app,
        me,
        &[("grant_type", "client_credentials"), ("scope", "jose")],
    )
    .await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let (_, other, _) = token_request(&app, me, &[("grant_type", "client_credentials")]).await;
    let other = other["access_token"].as_str().unwrap().to_owned();

    let (status, active) = token_call(&app, "introspect", me, &token).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["active"], true);
    assert_eq!(active["scope"], "jose");
    assert_eq!(active["client_id"], boot.client_id.as_str());
    assert_eq!(active["tenant"], boot.tenant.as_str());
    assert_eq!(active["token_type"], "Bearer");
    assert!(active["exp"].is_u64() && active["iss"] == ISSUER);
    // A forged signature, a garbage string: inactive, nothing more.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "not-a-token"] {
        assert_eq!(
            token_call(&app, "introspect", me, bad).await,
            (200, serde_json::json!({"active": false}))
        );
    }
    // Only authenticated clients may ask.
    let (status, v) = token_call(&app, "introspect", None, &token).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));
    let (status, v) =
        token_call(&app, "introspect", Some((&boot.client_id, "wrong")), &token).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));
    let (status, v) = token_call(&app, "introspect", me, "").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Revoke one token: it turns inactive, the other stays active.
    assert_eq!(token_call(&app, "revoke", me, &token).await.0, 200);
    assert_eq!(
        token_call(&app, "introspect", me, &token).await.1["active"],
        false
    );
    assert_eq!(
        token_call(&app, "introspect", me, &other).await.1["active"],
        true
    );
    // Again, and garbage: still 200 (RFC 7009 §2.2).
    assert_eq!(token_call(&app, "revoke", me, &token).await.0, 200);
    assert_eq!(token_call(&app, "revoke", me, "not-a-token").await.0, 200);
    assert_eq!(token_call(&app, "revoke", None, &other).await.0, 401);

    // The revocation is durable.
    app.stop().await;
    let app = start(Some(&data)).await;
    assert_eq!(
        token_call(&app, "introspect", me, &token).await.1["active"],
        false
    );
    assert_eq!(
        token_call(&app, "introspect", me, &other).await.1["active"],
        true
    );
    app.stop().await;
}

/// A JSON call with a bearer token.
pub(super) async fn admin(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let path = format!("/identity{path}");
    api(app, ServiceName::IdentityAuthz, token, method, &path, body).await
}

/// A JSON call to `/service/api/v1<path>` of `service` with a bearer token: status and body.
pub(super) async fn api(
    app: &TestApp,
    service: ServiceName,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, v, _) = api_response(app, service, token, method, path, body).await;
    (status, v)
}

/// A bearer call of `service`'s `/service/api/v1{path}`: status, JSON body and the response.
pub(super) async fn api_response(
    app: &TestApp,
    service: ServiceName,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, cryptoutil_federation::Response) {
    let url = format!("{}/service/api/v1{path}", app.public(service));
    let auth = format!("Bearer {token}");
    let r = app
        .client
        .send(
            method,
            &url,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.map(|b| b.to_string()).unwrap_or_default().into(),
        )
        .await
        .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v, r)
}

pub(super) async fn client_token(app: &TestApp, id: &str, secret: &str, scope: &str) -> String {
    let (status, v, _) = token_request(
        app,
        Some((id, secret)),
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

/// A new tenant `tenant`, made by `operator` (scope `identity`), and a token with `scope` of a
/// new client of it.
pub(super) async fn tenant_token(
    app: &TestApp,
    operator: &str,
    tenant: &str,
    scope: &str,
) -> String {
    use serde_json::json;
    let (status, v) = admin(
        app,
        operator,
        Method::POST,
        "/tenants",
        Some(json!({"id": tenant})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = admin(
        app,
        operator,
        Method::POST,
        "/clients",
        Some(json!({"name": format!("{tenant} {scope}"), "tenant": tenant, "scopes": [scope]})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    client_token(
        app,
        v["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
        scope,
    )
    .await
}

/// The admin API: the operator tenant creates a tenant and its clients; a tenant's admin sees
/// and manages only its own tenant; users get PBKDF2-hashed passwords; everything persists.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_manages_tenants_clients_and_users_within_tenants() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(Some(&data)).await;
    let boot = bootstrap(&data);
    let op = client_token(&app, &boot.client_id, &boot.secret, "identity").await;

    let (s, t) = admin(
        &app,
        &op,
        Method::POST,
        "/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        admin(
            &app,
            &op,
            Method::POST,
            "/tenants",
            Some(json!({"id": "acme"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        admin(
            &app,
            &op,
            Method::POST,
            "/tenants",
            Some(json!({"id": "Bad Id"}))
        )
        .await
        .0,
        400
    );
    let (_, tenants) = admin(&app, &op, Method::GET, "/tenants", None).await;
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 2);

    // An acme administrator client (created by the operator) and an acme worker client: the
    // administrator grants only scopes its token holds, so it holds jose too.
    let (s, acme_admin) = admin(
        &app,
        &op,
        Method::POST,
        "/clients",
        Some(json!({"name": "acme admin", "tenant": "acme", "scopes": ["identity", "jose"]})),
    )
    .await;
    assert_eq!(s, 201, "{acme_admin}");
    assert!(acme_admin["client_secret"].as_str().unwrap().len() >= 43);
    let acme_op = client_token(
        &app,
        acme_admin["client_id"].as_str().unwrap(),
        acme_admin["client_secret"].as_str().unwrap(),
        "identity jose",
    )
    .await;
    assert_eq!(claims(&acme_op)["tenant"], "acme");
    let (s, worker) = admin(
        &app,
        &acme_op,
        Method::POST,
        "/clients",
        Some(json!({"name": "worker", "scopes": ["jose"], "audiences": ["jose"]})),
    )
    .await;
    assert_eq!(s, 201, "{worker}");
    assert_eq!(worker["tenant"], "acme");
    let (wid, wsecret) = (
        worker["client_id"].as_str().unwrap().to_owned(),
        worker["client_secret"].as_str().unwrap().to_owned(),
    );
    let w = client_token(&app, &wid, &wsecret, "jose").await;
    assert_eq!(claims(&w)["aud"], "jose");
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", &w).await,
        200
    );
    let (s, v, _) = token_request(
        &app,
        Some((&wid, &wsecret)),
        &[("grant_type", "client_credentials"), ("scope", "kms")],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_scope")),
        "beyond its scopes"
    );

    // Tenant boundaries: acme sees acme only; the operator's client is a 404 to acme.
    let (_, listed) = admin(&app, &acme_op, Method::GET, "/clients", None).await;
    let ids: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(
        !listed.to_string().contains("secret_mac")
            && !listed.to_string().contains("\"client_secret\""),
        "no secrets or MACs in listings: {listed}"
    );
    let operator_client = format!("/clients/{}", boot.client_id);
    for (method, path, body, status) in [
        (Method::GET, operator_client.as_str(), None, 404),
        (Method::DELETE, operator_client.as_str(), None, 404),
        (Method::POST, "/tenants", Some(json!({"id": "evil"})), 403),
        (
            Method::POST,
            "/clients",
            Some(json!({"name": "x", "tenant": "default"})),
            403,
        ),
    ] {
        let (s, v) = admin(&app, &acme_op, method.clone(), path, body).await;
        assert_eq!(s, status, "acme {method} {path}: {v}");
    }
    let (_, tenants) = admin(&app, &acme_op, Method::GET, "/tenants", None).await;
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1);
    // A token for another audience is not valid here; without the identity scope a token is
    // authenticated, not authorized.
    assert_eq!(admin(&app, &w, Method::GET, "/clients", None).await.0, 401);
    let no_scope = client_token(&app, &boot.client_id, &boot.secret, "jose").await;
    assert_eq!(
        admin(&app, &no_scope, Method::GET, "/clients", None)
            .await
            .0,
        403
    );
    // The default tenant's client does not see acme tokens as active.
    let me = Some((boot.client_id.as_str(), boot.secret.as_str()));
    assert_eq!(
        token_call(&app, "introspect", me, &w).await,
        (200, json!({"active": false}))
    );
    // A resource server (a federated service's client, the operator's to create) sees the
    // tokens meant for its audiences in every tenant, and only those.
    let (s, v) = admin(
        &app,
        &acme_op,
        Method::POST,
        "/clients",
        Some(json!({"name": "rs", "resource_server": true})),
    )
    .await;
    assert_eq!(s, 403, "acme cannot make a resource server: {v}");
    for (audiences, active) in [(json!(["jose"]), true), (json!(["kms"]), false)] {
        let (s, rs) = admin(
            &app,
            &op,
            Method::POST,
            "/clients",
            Some(json!({"name": "rs", "resource_server": true, "audiences": audiences})),
        )
        .await;
        assert_eq!(s, 201, "{rs}");
        assert_eq!(rs["resource_server"], true);
        let rs = Some((
            rs["client_id"].as_str().unwrap(),
            rs["client_secret"].as_str().unwrap(),
        ));
        let (s, v) = token_call(&app, "introspect", rs, &w).await;
        assert_eq!(
            (s, v["active"].as_bool()),
            (200, Some(active)),
            "{audiences}: {v}"
        );
        if active {
            assert_eq!(v["tenant"], "acme");
        }
    }

    // Users: generated or given passwords, never shown again, stored as PBKDF2.
    let (s, alice) = admin(
        &app,
        &acme_op,
        Method::POST,
        "/users",
        Some(json!({"username": "alice", "roles": ["admin"]})),
    )
    .await;
    assert_eq!(s, 201, "{alice}");
    assert!(
        alice["password"].as_str().unwrap().len() >= 20,
        "generated and shown once"
    );
    let (s, bob) = admin(
        &app,
        &acme_op,
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 201);
    assert!(
        bob.get("password").is_none(),
        "a given password is not echoed"
    );
    for (refused, status) in [
        (
            json!({"username": "bob", "password": "another long one"}),
            409,
        ),
        (json!({"username": "carol", "password": "short"}), 400),
        (json!({"username": "dave", "roles": ["root"]}), 400),
        (json!({"username": "no spaces allowed"}), 400),
    ] {
        let (s, v) = admin(
            &app,
            &acme_op,
            Method::POST,
            "/users",
            Some(refused.clone()),
        )
        .await;
        assert_eq!(s, status, "{refused}: {v}");
    }
    let (_, users) = admin(&app, &acme_op, Method::GET, "/users", None).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    assert!(!users.to_string().contains("pbkdf2") && !users.to_string().contains("password"));
    assert_eq!(
        admin(&app, &acme_op, Method::DELETE, "/users/bob", None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin(&app, &acme_op, Method::DELETE, "/users/bob", None)
            .await
            .0,
        404
    );

    // Deleting a client ends its grants; what remains persists across a restart.
    assert_eq!(
        admin(
            &app,
            &acme_op,
            Method::DELETE,
            &format!("/clients/{wid}"),
            None
        )
        .await
        .0,
        204
    );
    let (s, _, _) = token_request(
        &app,
        Some((&wid, &wsecret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    app.stop().await;
    let app = start(Some(&data)).await;
    let acme_op = client_token(
        &app,
        acme_admin["client_id"].as_str().unwrap(),
        acme_admin["client_secret"].as_str().unwrap(),
        "identity",
    )
    .await;
    let (_, users) = admin(&app, &acme_op, Method::GET, "/users", None).await;
    assert_eq!(users["users"][0]["username"], "alice");
    let (s, _, _) = token_request(
        &app,
        Some((&wid, &wsecret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401, "the deletion persisted");
    app.stop().await;
}

/// RFC 7523 private_key_jwt: a client registered with public keys only (no secret) gets tokens
/// with a signed assertion; replays, other audiences, long-lived or foreign-signed assertions and
/// secret-based attempts are invalid_client.
#[tokio::test(flavor = "multi_thread")]
async fn private_key_jwt_clients_authenticate_with_single_use_assertions() {
    use cryptoutil_protocols::jose::Jwk;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(Some(&data)).await;
    let boot = bootstrap(&data);
    let op = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let stranger = Jwk::generate(JwsAlg::ES256).unwrap();
    let jwks = json!({ "keys": [key.to_public_value().unwrap()] });

    // Registration refuses private keys and missing keys.
    let private: Value = serde_json::from_str(&key.to_private_value().unwrap()).unwrap();
    for bad in [
        json!({"name": "k", "auth_methods": ["private_key_jwt"], "jwks": {"keys": [private]}}),
        json!({"name": "k", "auth_methods": ["private_key_jwt"]}),
        json!({"name": "k", "jwks": jwks}),
    ] {
        assert_eq!(
            admin(&app, &op, Method::POST, "/clients", Some(bad.clone()))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let (s, c) = admin(&app, &op, Method::POST, "/clients",
        Some(json!({"name": "signer", "auth_methods": ["private_key_jwt"], "jwks": jwks, "scopes": ["jose"]}))).await;
    assert_eq!(s, 201, "{c}");
    assert!(
        c.get("client_secret").is_none(),
        "no secret for a key-only client"
    );
    let id = c["client_id"].as_str().unwrap().to_owned();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let assertion = |signer: &Jwk, aud: &str, exp: u64, jti: &str| {
        let claims = json!({"iss": id, "sub": id, "aud": aud, "exp": exp, "iat": now, "jti": jti});
        jwt::sign(signer, claims.as_object().unwrap(), "JWT").unwrap()
    };
    let token_endpoint = format!("{ISSUER}/service/oauth2/v1/token");
    let form = |a: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "client_credentials".into()),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), a.to_owned()),
        ]
    };
    let send = |f: Vec<(String, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let (s, v, _) = token_request(app, None, &pairs).await;
            (s, v)
        }
    };

    let good = assertion(&key, &token_endpoint, now + 120, "one");
    let (s, v) = send(form(&good)).await;
    assert_eq!(s, 200, "{v}");
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(claims(t)["client_id"], id.as_str());
    assert_eq!(
        get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", t).await,
        200
    );
    // The issuer itself is an acceptable audience too.
    assert_eq!(
        send(form(&assertion(&key, ISSUER, now + 120, "two")))
            .await
            .0,
        200
    );

    for (case, a) in [
        ("replayed", good.clone()),
        (
            "another audience",
            assertion(&key, "https://elsewhere.example/token", now + 120, "three"),
        ),
        (
            "expired",
            assertion(&key, &token_endpoint, now - 300, "four"),
        ),
        (
            "too long-lived",
            assertion(&key, &token_endpoint, now + 7200, "five"),
        ),
        (
            "signed by another key",
            assertion(&stranger, &token_endpoint, now + 120, "six"),
        ),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let (s, v) = send(form(&a)).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("invalid_client")),
            "{case}: {v}"
        );
    }
    // A wrong assertion type; an assertion plus a secret.
    let mut f = form(&assertion(&key, &token_endpoint, now + 120, "seven"));
    f[1].1 = "urn:example:other".into();
    assert_eq!(send(f).await.1["error"], "invalid_request");
    let mut f = form(&assertion(&key, &token_endpoint, now + 120, "eight"));
    f.push(("client_secret".into(), "x".into()));
    assert_eq!(send(f).await.1["error"], "invalid_request");
    // The secret methods are not open to it.
    let (s, _, _) = token_request(
        &app,
        Some((&id, "")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    app.stop().await;
}
