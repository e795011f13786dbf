//! identity-rs, the reference resource server, end to end over TLS.
//!
//! With tokens of a trusted test issuer (whose claims the test chooses): each user sees only
//! their notes, per-route scopes, the RFC 9470 step-up on delete, tokens of another audience
//! or expired, bad input, the RFC 9728 metadata, and notes surviving a restart.
//!
//! With identity-authz's real tokens, judged by independent clients
//! (`tests/interop/resource_server.py`: Authlib fetches the tokens, joserfc makes the DPoP
//! proofs, `requests` reads the challenges): plain and DPoP-bound tokens, a missing or replayed
//! proof, a DPoP-bound token sent as a bearer token, another audience, a missing scope, and a
//! password-only sign-in's token at the step-up route.

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::Response;
use hyper::Method;
use serde_json::{json, Value};

use super::code_flow::{query, rp_client, sign_in_with, Browser, REDIRECT, VERIFIER};
use super::identity::{api_response, bootstrap, client_token, token_request};
use super::jose_service::Issuer;
use crate::TestApp;

const PHR: &str = "urn:cryptoutil:acr:phr";
const MFA: &str = "urn:cryptoutil:acr:mfa";

/// identity-rs trusting `issuers`.
async fn start(issuers: &[&Issuer], data: &std::path::Path) -> TestApp {
    let entries: Vec<String> = issuers.iter().map(|i| i.entry()).collect();
    let vars = format!("[{}]", entries.join(", "));
    TestApp::start(
        vec![ServiceName::IdentityRs],
        &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", vars.as_str())],
        Some(data),
    )
    .await
}

fn now() -> u64 {
    cryptoutil_actors::now_unix()
}

/// A user's token for identity-rs, from a sign-in `age` seconds ago.
fn signed_in(issuer: &Issuer, tenant: &str, sub: &str, scope: &str, acr: &str, age: u64) -> String {
    issuer.sign(
        json!({"sub": sub, "tenant": tenant, "aud": "identity-rs", "scope": scope, "acr": acr,
               "auth_time": now() - age}),
        300,
    )
}

/// The same, from a sign-in just now.
fn user_token(issuer: &Issuer, tenant: &str, sub: &str, scope: &str, acr: &str) -> String {
    signed_in(issuer, tenant, sub, scope, acr, 5)
}

/// A bearer call of identity-rs's `/service/api/v1{path}`.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, Response) {
    api_response(app, ServiceName::IdentityRs, token, method, path, body).await
}

fn challenge(r: &Response) -> String {
    r.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The notes collection, under `/service/api/v1`.
const NOTES: &str = "/notes";

#[tokio::test(flavor = "multi_thread")]
async fn each_user_keeps_their_own_notes_behind_scopes_and_a_step_up() {
    let issuer = Issuer::new();
    let other_issuer = Issuer::named("https://other-issuer.test");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(&[&issuer, &other_issuer], &data).await;
    let rw = "notes:read notes:write";
    let alice = user_token(&issuer, "acme", "alice", rw, MFA);

    let (status, created, _) = call(
        &app,
        &alice,
        Method::POST,
        NOTES,
        Some(json!({"title": " groceries ", "body": "milk"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "groceries", "the title is trimmed");
    let id = created["id"].as_str().unwrap().to_owned();
    let one = format!("{NOTES}/{id}");
    let (status, list, _) = call(&app, &alice, Method::GET, NOTES, None).await;
    assert_eq!((status, list["notes"].clone()), (200, json!([created])));
    let (status, got, _) = call(&app, &alice, Method::GET, &one, None).await;
    assert_eq!((status, &got), (200, &created));

    // Another user of the tenant, the same `sub` in another tenant, and the same `sub` and
    // tenant from another trusted issuer: none of alice's notes.
    for (iss, tenant, sub) in [
        (&issuer, "acme", "bob"),
        (&issuer, "other", "alice"),
        (&other_issuer, "acme", "alice"),
    ] {
        let t = user_token(iss, tenant, sub, rw, PHR);
        let who = format!("{} {tenant}/{sub}", iss.issuer());
        let (status, list, _) = call(&app, &t, Method::GET, NOTES, None).await;
        assert_eq!((status, list), (200, json!({"notes": []})), "{who}");
        let (status, _, _) = call(&app, &t, Method::GET, &one, None).await;
        assert_eq!(status, 404, "{who}");
        let (status, _, _) = call(&app, &t, Method::DELETE, &one, None).await;
        assert_eq!(status, 404, "{who}");
    }

    // Per-route scopes: read-only cannot write, write-only cannot read.
    let reader = user_token(&issuer, "acme", "alice", "notes:read", PHR);
    let (status, _, r) = call(
        &app,
        &reader,
        Method::POST,
        NOTES,
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, 403);
    let www = challenge(&r);
    assert!(
        www.contains(r#"error="insufficient_scope""#) && www.contains("notes:write"),
        "{www}"
    );
    let writer = user_token(&issuer, "acme", "alice", "notes:write", PHR);
    let (status, _, r) = call(&app, &writer, Method::GET, NOTES, None).await;
    assert_eq!(status, 403);
    assert!(challenge(&r).contains("notes:read"));

    // Delete needs a recent phishing-resistant sign-in: the RFC 9470 challenge for a weaker
    // or an older one; the stronger token deletes (after the restart below).
    let (status, body, r) = call(&app, &alice, Method::DELETE, &one, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "insufficient_user_authentication");
    let www = challenge(&r);
    assert!(
        www.starts_with("Bearer ")
            && www.contains(r#"error="insufficient_user_authentication""#)
            && www.contains(&format!(r#"acr_values="{PHR}""#))
            && www.contains(r#"max_age="900""#),
        "{www}"
    );
    let stale = signed_in(&issuer, "acme", "alice", rw, PHR, 3600);
    let (status, _, r) = call(&app, &stale, Method::DELETE, &one, None).await;
    assert_eq!(status, 401, "an hour-old sign-in steps up");
    assert!(challenge(&r).contains("insufficient_user_authentication"));
    let client_only = issuer.sign(
        json!({"sub": "client-1", "tenant": "acme", "aud": "identity-rs", "scope": rw}),
        300,
    );
    let (status, _, _) = call(&app, &client_only, Method::DELETE, &one, None).await;
    assert_eq!(status, 401, "a token without acr steps up too");
    let (status, _, _) = call(&app, &alice, Method::GET, &one, None).await;
    assert_eq!(status, 200, "the refused delete deleted nothing");

    // Tokens that are not for identity-rs, or expired: invalid_token.
    let elsewhere = issuer.sign(
        json!({"sub": "alice", "tenant": "acme", "aud": "kms", "scope": rw, "acr": PHR}),
        300,
    );
    let expired = issuer.sign(
        json!({"sub": "alice", "tenant": "acme", "aud": "identity-rs", "scope": rw, "acr": PHR}),
        -600,
    );
    for (case, t) in [("another audience", &elsewhere), ("expired", &expired)] {
        let (status, _, r) = call(&app, t, Method::GET, NOTES, None).await;
        assert_eq!(status, 401, "{case}");
        assert!(challenge(&r).contains(r#"error="invalid_token""#), "{case}");
    }
    // No credentials: both schemes are offered.
    let r = app
        .client
        .get(&format!(
            "{}/service/api/v1{NOTES}",
            app.public(ServiceName::IdentityRs)
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let www = challenge(&r);
    assert!(
        www.starts_with("Bearer realm=") && www.contains("DPoP algs=\"ES256"),
        "{www}"
    );

    // Bad input: a clear 400 or 415, nothing kept.
    let strong = user_token(&issuer, "acme", "alice", rw, PHR);
    for (case, body) in [
        ("empty title", json!({"title": "  "})),
        ("long title", json!({"title": "t".repeat(201)})),
        ("unknown field", json!({"title": "t", "owner": "bob"})),
        (
            "long body",
            json!({"title": "t", "body": "b".repeat(16 * 1024 + 1)}),
        ),
    ] {
        let (status, v, _) = call(&app, &strong, Method::POST, NOTES, Some(body)).await;
        assert_eq!(status, 400, "{case}: {v}");
    }
    let url = format!(
        "{}/service/api/v1{NOTES}",
        app.public(ServiceName::IdentityRs)
    );
    let auth = format!("Bearer {strong}");
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[("authorization", auth.as_str())],
            r#"{"title":"t"}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    for id in ["AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAA", "a.b"] {
        let (status, _, _) = call(&app, &strong, Method::GET, &format!("{NOTES}/{id}"), None).await;
        assert_eq!(status, 404, "{id}");
    }
    let (_, list, _) = call(&app, &strong, Method::GET, NOTES, None).await;
    assert_eq!(list["notes"].as_array().unwrap().len(), 1, "nothing kept");

    // RFC 9728 metadata: the resource is the origin addressed, its issuer the trusted one.
    let base = app.public(ServiceName::IdentityRs).to_owned();
    let r = app
        .client
        .get(&format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let meta: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(meta["resource"], base.trim_end_matches('/'));
    assert_eq!(
        meta["authorization_servers"],
        json!([issuer.issuer(), other_issuer.issuer()])
    );
    assert_eq!(
        meta["scopes_supported"],
        json!(["notes:read", "notes:write"])
    );
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);

    // The notes survive a restart; then the strong token deletes.
    app.stop().await;
    let app = start(&[&issuer, &other_issuer], &data).await;
    let (status, got, _) = call(&app, &alice, Method::GET, &one, None).await;
    assert_eq!((status, &got), (200, &created));
    let (status, _, _) = call(&app, &strong, Method::DELETE, &one, None).await;
    assert_eq!(status, 204);
    let (status, _, _) = call(&app, &strong, Method::GET, &one, None).await;
    assert_eq!(status, 404);
    let (status, _, _) = call(&app, &strong, Method::DELETE, &one, None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// identity-authz's own tokens at identity-rs, judged by Authlib, joserfc and `requests`; and a
/// password-only sign-in (a code-flow token with `acr` password) asked to step up.
#[tokio::test(flavor = "multi_thread")]
async fn authlib_and_joserfc_use_identity_authz_tokens_at_the_resource_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::IdentityRs,
            ServiceName::Kms,
        ],
        &[],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let args = vec![
        app.public(ServiceName::IdentityAuthz).to_owned(),
        app.public(ServiceName::IdentityRs).to_owned(),
        app.public(ServiceName::Kms).to_owned(),
        data.join("tls/ca.pem").display().to_string(),
        boot.client_id.clone(),
        boot.secret.clone(),
    ];
    super::jose_interop::peer_report("resource_server.py", args, 8).await;

    // A user signed in with a password only: the token reads and writes, and is asked to step
    // up (acr phr) to delete.
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let (client_id, secret) = rp_client(
        &app,
        &operator,
        json!({"first_party": true, "scopes": ["openid", "notes:read", "notes:write"]}),
    )
    .await;
    let mut b = Browser::new(&app);
    let scope = [("scope", "openid notes:read notes:write")];
    let back = sign_in_with(&mut b, &client_id, &scope, "admin", &boot.password).await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let code = query(&back, "code").unwrap();
    let (status, tokens, _) = token_request(
        &app,
        Some((client_id.as_str(), secret.as_str())),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", app.public(ServiceName::IdentityRs)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let (status, created, _) = call(
        &app,
        token,
        Method::POST,
        NOTES,
        Some(json!({"title": "t"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let one = format!("{NOTES}/{}", created["id"].as_str().unwrap());
    let (status, body, r) = call(&app, token, Method::DELETE, &one, None).await;
    assert_eq!(status, 401, "{body}");
    let www = challenge(&r);
    assert!(
        www.contains(r#"error="insufficient_user_authentication""#)
            && www.contains(&format!(r#"acr_values="{PHR}""#)),
        "{www}"
    );
    app.stop().await;
}
