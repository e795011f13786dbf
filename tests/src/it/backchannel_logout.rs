//! OpenID Connect Back-Channel Logout 1.0 at identity-authz: two relying parties registered
//! with a `backchannel_logout_uri` sign one user in (one with a refresh family, one with a code
//! only: found through the session's record of its clients); when the user logs out
//! (RP-initiated logout), each RP's endpoint receives one logout token, validated by an
//! independent receiver (`tests/interop/backchannel_receiver.py`: Python's TLS server, joserfc
//! against the published JWK Set), whose `sid` and `sub` are those of the ID token; the same
//! logout again sends nothing. At registration a URI that is not https, or names an internal
//! address not on `identity.backchannel_allowed_hosts`, is refused.

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
pub(super) fn receiver_pki() -> (String, String, String) {
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
async fn a_logout_posts_each_client_one_logout_token_that_joserfc_validates() {
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
    let port = free_port();
    let extra = format!("[file://{}]", path("rp-ca.pem"));
    let allowed = format!("[\"127.0.0.1:{port}\"]");
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::Kms,
        ],
        &[
            ("CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS", extra.as_str()),
            (
                "CRYPTOUTIL_IDENTITY__BACKCHANNEL_ALLOWED_HOSTS",
                allowed.as_str(),
            ),
        ],
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
    // Refused: not https; internal addresses not on the allow-list (another port, localhost).
    for bad in [
        format!("http://127.0.0.1:{port}/logout"),
        "https://127.0.0.1:9091/admin/v1/shutdown".to_owned(),
        format!("https://localhost:{port}/logout"),
        "https://169.254.169.254/latest".to_owned(),
    ] {
        let (status, v) = admin(
            &app,
            &operator,
            Method::POST,
            "/clients",
            Some(
                json!({"name": "bad", "redirect_uris": [REDIRECT], "backchannel_logout_uri": bad}),
            ),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let uri = format!("https://127.0.0.1:{port}/logout");
    let (with_refresh, secret) = rp_client(
        &app,
        &operator,
        json!({"first_party": true, "backchannel_logout_uri": uri}),
    )
    .await;
    let (code_only, code_secret) = rp_client(
        &app,
        &operator,
        json!({"first_party": true, "backchannel_logout_uri": uri,
               "grant_types": ["authorization_code"]}),
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
            format!("{with_refresh},{code_only}"),
            "2".to_owned(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = tokio::task::block_in_place(|| lines.next())
        .unwrap()
        .unwrap();
    assert_eq!(first, "ready");

    // The user signs in to the first client, then (single sign-on, the same session) to the
    // second; both redeem their codes.
    let mut b = Browser::new(&app);
    let back = sign_in_with(&mut b, &with_refresh, &[], "admin", &boot.password).await;
    let (status, tokens) = redeem(
        &app,
        (&with_refresh, &secret),
        &query(&back, "code").unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let id = claims(&id_token);
    let mut next = super::code_flow::authorize_url(&app, &code_only, &[]);
    let back = loop {
        let r = b.get(&next).await;
        assert_eq!(r.status, 303, "{}", r.text());
        next = super::code_flow::location(&r).unwrap();
        if next.starts_with(REDIRECT) {
            break next;
        }
    };
    let (status, tokens) = redeem(
        &app,
        (&code_only, &code_secret),
        &query(&back, "code").unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "a code-only client");
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["sid"],
        id["sid"]
    );

    // RP-initiated logout: each client's endpoint gets one logout token.
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
    assert_eq!(results.len(), 2, "one each, nothing more: {report}");
    let mut audiences = Vec::new();
    for r in results {
        assert_eq!(r["ok"], true, "{report}");
        assert_eq!(r["detail"]["sid"], id["sid"]);
        assert_eq!(r["detail"]["sub"], id["sub"]);
        audiences.push(r["detail"]["aud"].as_str().unwrap().to_owned());
    }
    audiences.sort();
    let mut expected = vec![with_refresh.clone(), code_only.clone()];
    expected.sort();
    assert_eq!(audiences, expected);

    // Counted; the same logout again ends nothing more and sends nothing.
    let counted = |outcome: &'static str| {
        let app = &app;
        async move {
            let metrics = app.admin_metrics(ServiceName::IdentityAuthz).await;
            let line =
                format!("cryptoutil_identity_backchannel_logouts_total{{outcome=\"{outcome}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(line.as_str()).map(|v| v.trim().to_owned()))
        }
    };
    assert!(
        crate::eventually(std::time::Duration::from_secs(10), || async {
            counted("delivered").await.as_deref() == Some("2")
        })
        .await
    );
    let r = app.client.get(&logout).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(counted("delivered").await.as_deref(), Some("2"));
    for other in ["failed", "refused", "dropped"] {
        assert_eq!(counted(other).await, None, "{other}");
    }
    app.stop().await;
}
