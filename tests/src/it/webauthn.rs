//! WebAuthn security keys and passkeys at identity-idp, judged by a real browser and a second
//! implementation: headless Chromium's virtual authenticators register a passkey and a
//! security key on the account page and sign in with each (the passkey without a username),
//! py_webauthn verifies the same ceremonies and reads the options, Authlib validates the ID
//! tokens (`tests/interop/browser_webauthn.py`). identity-idp's pages are served as
//! `https://localhost:<port>` (an RP ID is a domain, never an IP address).
//!
//! Without a browser: the pages' refusals (no session, no CSRF token, another origin, a
//! ceremony answered with garbage or without its cookie) and the admin API's refusal to enroll
//! a WebAuthn credential without a ceremony.

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};

use super::code_flow::{hidden, location, query, Browser};
use super::identity::{admin, api, bootstrap, client_token};
use super::signin_factors::{new_user, PASSWORD};
use crate::{free_port, TestApp};

/// identity-authz and identity-idp, the latter on `https://localhost:<port>`; the data
/// directory, the operator's token and the idp origin.
async fn start() -> (tempfile::TempDir, TestApp, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port().to_string();
    let origin = format!("https://localhost:{port}");
    let login = format!("{origin}/browser/login");
    let app = TestApp::start(
        vec![ServiceName::IdentityAuthz, ServiceName::IdentityIdp],
        &[
            ("CRYPTOUTIL_SERVICES__IDENTITY_IDP__PUBLIC__PORT", &port),
            ("CRYPTOUTIL_IDENTITY__LOGIN_URL", &login),
        ],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    (dir, app, operator, origin)
}

/// Chromium registers and uses a passkey and a security key; py_webauthn verifies the same
/// ceremonies; Authlib validates the ID tokens' `amr`.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_registers_and_signs_in_with_passkeys_and_security_keys() {
    let (dir, app, operator, origin) = start().await;
    new_user(&app, &operator, "carol").await;
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({
            "name": "WebAuthn RP",
            "redirect_uris": [format!("{origin}/browser/account")],
        })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let args = vec![
        app.public(ServiceName::IdentityAuthz).to_owned(),
        origin,
        dir.path().join("data/tls/ca.pem").display().to_string(),
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
        "carol".to_owned(),
        PASSWORD.to_owned(),
    ];
    let report = super::jose_interop::peer_report("browser_webauthn.py", args, 10).await;
    eprintln!("{report}");
    app.stop().await;
}

/// The account page and the WebAuthn endpoints refuse what a browser of the user would not
/// send; the admin API cannot enroll a credential (only a ceremony can).
#[tokio::test(flavor = "multi_thread")]
async fn the_webauthn_pages_refuse_without_their_session_token_or_ceremony() {
    let (_dir, app, operator, origin) = start().await;
    new_user(&app, &operator, "dave").await;
    // The tests' client speaks to 127.0.0.1; the pages answer any host.
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let mut b = Browser::new(&app);
    let r = b.get(&format!("{idp}/browser/account")).await;
    assert_eq!(r.status, 401, "no session: {}", r.text());
    assert!(r.text().contains("/browser/auth/login?return_to="));
    // Without the page's CSRF cookie and field, and from another origin: 403.
    let r = b
        .post(
            &format!("{idp}/browser/account/webauthn/options"),
            &[("csrf", "x"), ("kind", "passkey")],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 403);
    // The admin API has no ceremony to check a credential against.
    let (status, v) = api(
        &app,
        ServiceName::IdentityIdp,
        &operator,
        Method::POST,
        "/identity/users/dave/factors",
        Some(json!({"type": "webauthn", "name": "k", "credential": {}})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    // A passkey answer without its ceremony cookie, and garbage: the same refusal, no code.
    let (client_id, _) = super::code_flow::rp_client(&app, &operator, json!({})).await;
    let r = b
        .get(&super::code_flow::authorize_url(&app, &client_id, &[]))
        .await;
    let login = location(&r).unwrap();
    assert!(
        login.starts_with(&format!("{origin}/browser/login?challenge=")),
        "{login}"
    );
    let challenge = query(&login, "challenge").unwrap();
    let page = b
        .get(&format!("{idp}/browser/login?challenge={challenge}"))
        .await
        .text();
    assert!(page.contains("id=\"webauthn-passkey\""), "{page}");
    let mut csrf = hidden(&page, "csrf");
    let url = format!("{idp}/browser/login/webauthn");
    for credential in [
        "{}",
        "not json",
        &json!({"id": "AA", "rawId": "AA", "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"}})
        .to_string(),
    ] {
        let r = b
            .post(
                &url,
                &[
                    ("challenge", &challenge),
                    ("csrf", &csrf),
                    ("purpose", "passkey"),
                    ("credential", credential),
                ],
                Some(&idp),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(location(&r).is_none());
        assert!(r.text().contains("did not sign you in"), "{}", r.text());
        // The form again, with a fresh CSRF token.
        csrf = hidden(&r.text(), "csrf");
    }
    // The options of a passkey ceremony: a challenge, no credentials listed, UV required.
    let r = b
        .post(
            &format!("{idp}/browser/login/webauthn/options"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("purpose", "passkey"),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["publicKey"]["rpId"], "localhost", "{v}");
    assert_eq!(v["publicKey"]["userVerification"], "required");
    assert!(b.cookie("__Host-cryptoutil-idp-passkey").is_some());
    // A security key step without a waiting sign-in: 404.
    let r = b
        .post(
            &format!("{idp}/browser/login/webauthn/options"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("purpose", "step"),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    app.stop().await;
}
