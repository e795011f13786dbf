//! An independent relying party signs users in through identity-authz: Apache httpd with
//! mod_auth_openidc (Debian's), driven by headless Chromium (`tests/interop/apache_openidc.py`):
//! discovery, the code flow with PKCE and a nonce, `client_secret_basic`, the ID token
//! validated by mod_auth_openidc, the protected page served, its logout through identity-authz's
//! end-session endpoint, and identity-authz's back-channel logout (to mod_auth_openidc's
//! `?logout=backchannel`) ending its session when another client of the same sign-in logs out.

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::json;

use super::backchannel_logout::receiver_pki;
use super::code_flow::{fixture_with, Fixture};
use super::identity::admin;
use crate::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn apache_mod_auth_openidc_signs_in_through_identity_authz() {
    // Apache's certificate, from a CA identity-authz trusts for logout tokens; its host and
    // port allowed for them although it is loopback.
    let pki = tempfile::tempdir().unwrap();
    let (ca_pem, cert_pem, key_pem) = receiver_pki();
    let path = |name: &str| pki.path().join(name).display().to_string();
    for (name, pem) in [
        ("apache-ca.pem", &ca_pem),
        ("apache.pem", &cert_pem),
        ("apache.key", &key_pem),
    ] {
        std::fs::write(pki.path().join(name), pem).unwrap();
    }
    let port = free_port();
    let extra = format!("[file://{}]", path("apache-ca.pem"));
    let allowed = format!("[\"127.0.0.1:{port}\"]");
    let Fixture {
        _dir,
        data,
        app,
        boot,
        operator,
    } = fixture_with(&[
        ("CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS", extra.as_str()),
        (
            "CRYPTOUTIL_IDENTITY__BACKCHANNEL_ALLOWED_HOSTS",
            allowed.as_str(),
        ),
    ])
    .await;
    let base = format!("https://127.0.0.1:{port}");
    let client = |name: &str, redirect: String, backchannel: Option<String>| {
        let mut spec = json!({
            "name": name,
            "redirect_uris": [redirect],
            "post_logout_redirect_uris": [format!("{base}/bye.html")],
            "first_party": true,
        });
        if let Some(uri) = backchannel {
            spec["backchannel_logout_uri"] = json!(uri);
        }
        let (app, operator) = (&app, &operator);
        async move {
            let (status, v) = admin(app, operator, Method::POST, "/clients", Some(spec)).await;
            assert_eq!(status, 201, "{v}");
            (
                v["client_id"].as_str().unwrap().to_owned(),
                v["client_secret"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (apache_id, apache_secret) = client(
        "Apache mod_auth_openidc",
        format!("{base}/protected/redirect_uri"),
        Some(format!("{base}/protected/redirect_uri?logout=backchannel")),
    )
    .await;
    // Another client of the same sign-in (its code lands on a static page of Apache's).
    let (other_id, other_secret) = client("Another client", format!("{base}/bye.html"), None).await;
    let args = vec![
        port.to_string(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
        data.join("tls/ca.pem").display().to_string(),
        apache_id,
        apache_secret,
        "admin".to_owned(),
        boot.password.clone(),
        app.public(ServiceName::IdentityIdp).to_owned(),
        path("apache.pem"),
        path("apache.key"),
        other_id,
        other_secret,
    ];
    let report = super::jose_interop::peer_report("apache_openidc.py", args, 4).await;
    eprintln!("{report}");
    // Two logout tokens, each answered 200 by mod_auth_openidc: one for the session its own
    // logout ended (identity-authz tells every client of a session that ends), one for the
    // session the other client's logout ended.
    let metrics = app.admin_metrics(ServiceName::IdentityAuthz).await;
    assert!(
        metrics
            .contains("cryptoutil_identity_backchannel_logouts_total{outcome=\"delivered\"} 2\n"),
        "{metrics}"
    );
    app.stop().await;
}
