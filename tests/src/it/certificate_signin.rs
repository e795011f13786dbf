//! Client-certificate sign-in: identity-idp's public listener asks every client for a
//! certificate; one that chains to `identity.certificate_ca` for client authentication signs
//! in the user it names (a registered fingerprint, or an email address that is a login name),
//! amr `sc`; a revoked one (its CA's list in `identity.certificate_crls`, re-read when it
//! changes) or an expired one does not. Judged by Python's TLS stack (OpenSSL through
//! requests) presenting certificates that `cryptography` made, and Authlib validating the ID
//! tokens (`tests/interop/certificate_signin.py`).

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::json;

use super::code_flow::{fixture_with, rp_client, Fixture, REDIRECT};
use super::identity::api;
use super::signin_factors::new_user;

#[tokio::test(flavor = "multi_thread")]
async fn certificates_from_the_configured_ca_sign_their_users_in_and_others_do_not() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().display().to_string();
    super::jose_interop::peer("certificate_signin.py", vec!["make".into(), dir.clone()]).await;
    let ca = format!("file://{}", certs.path().join("ca.pem").display());
    let crls = format!("[{}]", certs.path().join("ca.crl").display());
    let Fixture {
        _dir,
        data,
        app,
        operator,
        ..
    } = fixture_with(&[
        ("CRYPTOUTIL_IDENTITY__CERTIFICATE_CA", &ca),
        // This CA vouches for the addresses it certifies (the test made every one).
        ("CRYPTOUTIL_IDENTITY__CERTIFICATE_EMAIL_LOGIN", "true"),
        // The CA's revocation list, which the peer re-writes mid-test.
        ("CRYPTOUTIL_IDENTITY__CERTIFICATE_CRLS", &crls),
    ])
    .await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "lee@example.com").await;
    let max = new_user(&app, &operator, "max").await;
    new_user(&app, &operator, "nora").await;
    let idp = ServiceName::IdentityIdp;

    // max's certificate (no email in it) registered by its fingerprint; the same one for
    // another user, or something that is not a certificate, is refused.
    let pem = std::fs::read_to_string(certs.path().join("max.pem")).unwrap();
    let register = |user: &str, body: serde_json::Value| {
        let (app, operator) = (&app, &operator);
        let path = format!("/identity/users/{user}/factors");
        async move { api(app, idp, operator, Method::POST, &path, Some(body)).await }
    };
    let (status, v) = register("max", json!({"type": "certificate", "certificate": pem})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["fingerprint"].as_str().map(str::len), Some(43), "{v}");
    let (status, v) = register("nora", json!({"type": "certificate", "certificate": pem})).await;
    assert_eq!(status, 409, "{v}");
    // Another tenant may register it for its own user (fingerprints are per tenant).
    let acme = super::identity::tenant_token(&app, &operator, "acme", "identity").await;
    let (status, v) = super::identity::admin(
        &app,
        &acme,
        Method::POST,
        "/users",
        Some(json!({"username": "max", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api(
        &app,
        idp,
        &acme,
        Method::POST,
        "/identity/users/max/factors",
        Some(json!({"type": "certificate", "certificate": pem})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = register("nora", json!({"type": "certificate", "certificate": "x"})).await;
    assert_eq!(status, 400, "{v}");

    let args = vec![
        "run".to_owned(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
        data.join("tls/ca.pem").display().to_string(),
        client_id,
        secret,
        REDIRECT.to_owned(),
        dir,
        max,
    ];
    let report = super::jose_interop::peer_report("certificate_signin.py", args, 9).await;
    eprintln!("{report}");
    app.stop().await;
}
