//! OpenID Connect Back-Channel Logout 1.0 at identity-authz: a relying party registered with a
//! `backchannel_logout_uri` signs a user in; when the user logs out (RP-initiated logout), the
//! RP's endpoint receives a logout token, validated by an independent receiver
//! (`tests/interop/backchannel_receiver.py`: Python's TLS server, joserfc against the published
//! JWK Set) whose `sid` and `sub` are those of the RP's ID token. A URI that is not https is
//! refused at registration.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};

use super::code_flow::{query, redeem, rp_client, sign_in_with, Browser, REDIRECT};
use super::identity::{admin, bootstrap, claims, client_token};
use crate::{free_port, TestApp};

/// A CA trusted through `tls.extra_trusted_cas` and its leaf for 127.0.0.1: (CA PEM, leaf PEM,
/// leaf key PEM).
fn receiver_pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test RP CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_posts_a_logout_token_that_joserfc_validates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ca_pem, cert_pem, key_pem) = receiver_pki();
    let path = |name: &str| dir.path().join(name).display().to_string();
    for (name, pem) in [
        ("rp-ca.pem", &ca_pem),
        ("rp.pem", &cert_pem),
        ("rp.key", &key_pem),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let extra = format!("[file://{}]", path("rp-ca.pem"));
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::Kms,
        ],
        &[("CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS", extra.as_str())],
        Some(&data),
    )
    .await;
    let authz = app.public(ServiceName::IdentityAuthz).to_owned();
    let meta: Value = serde_json::from_slice(
        &app.client
            .get(&format!("{authz}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["backchannel_logout_session_supported"], true);

    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    // Only https endpoints are registered.
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "plain", "redirect_uris": [REDIRECT],
                    "backchannel_logout_uri": "http://127.0.0.1:1/logout"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let port = free_port();
    let uri = format!("https://127.0.0.1:{port}/logout");
    let (client_id, secret) = rp_client(
        &app,
        &operator,
        json!({"first_party": true, "backchannel_logout_uri": uri}),
    )
    .await;

    let mut receiver = Command::new(super::jose_interop::python())
        .arg(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("interop/backchannel_receiver.py"),
        )
        .args([
            port.to_string(),
            path("rp.pem"),
            path("rp.key"),
            authz.clone(),
            data.join("tls/ca.pem").display().to_string(),
            client_id.clone(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = tokio::task::block_in_place(|| lines.next())
        .unwrap()
        .unwrap();
    assert_eq!(first, "ready");

    // The user signs in, the client redeems its code.
    let mut b = Browser::new(&app);
    let back = sign_in_with(&mut b, &client_id, &[], "admin", &boot.password).await;
    let (status, tokens) =
        redeem(&app, (&client_id, &secret), &query(&back, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let id = claims(&id_token);

    // RP-initiated logout: the first client's endpoint gets the logout token.
    let logout = cryptoutil_protocols::oauth::with_query(
        &format!("{authz}/browser/oauth2/v1/logout"),
        &[("id_token_hint", id_token.as_str())],
    );
    let r = app.client.get(&logout).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let report = tokio::task::block_in_place(|| {
        let line = lines.next().unwrap().unwrap();
        receiver.wait().unwrap();
        line
    });
    let report: Value = serde_json::from_str(&report).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{report}");
    assert_eq!(results[0]["ok"], true, "{report}");
    assert_eq!(results[0]["detail"]["sid"], id["sid"]);
    assert_eq!(results[0]["detail"]["sub"], id["sub"]);
    assert_eq!(results[0]["detail"]["aud"], json!(client_id));
    let metrics = app.admin_metrics(ServiceName::IdentityAuthz).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("cryptoutil_identity_backchannel_logouts_total{outcome=\"delivered\"} 1")),
        "{metrics}"
    );
    app.stop().await;
}
