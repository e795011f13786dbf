//! RFC 8705: `tls_client_auth` at identity-authz (the client's certificate chains to the
//! configured anchors and names its registered SAN) and certificate-bound access tokens
//! (`cnf.x5t#S256`) that every service accepts only over a connection presenting that
//! certificate. Python `requests` (OpenSSL) is the independent TLS client for the token request.

use std::sync::Arc;

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::{HttpsClient, Method};
use cryptoutil_protocols::jose::b64;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{json, Value};

use super::identity::{admin, bootstrap, claims, client_token};
use crate::TestApp;

struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A client CA and a function issuing client certificates for a SAN.
fn client_ca() -> (String, impl Fn(&str) -> Issued) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test client CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = ca_cert.pem();
    let issue = move |san: &str| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    };
    (ca_pem, issue)
}

/// A TLS 1.3 client trusting the suite's anchor that presents `cert`.
fn mtls_client(anchor_pem: &str, cert: &Issued) -> HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(anchor_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(cryptoutil_protocols::tls::provider())
        .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls_pki_types::CertificateDer::from(cert.der.clone())],
            rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_der.clone().into()),
        )
        .unwrap();
    HttpsClient::new(Arc::new(config))
}

async fn token(client: &HttpsClient, app: &TestApp, client_id: &str) -> (u16, Value) {
    token_for(client, app, client_id, "").await
}

/// The same with form parameters `extra` (`&name=value...`, encoded).
async fn token_for(
    client: &HttpsClient,
    app: &TestApp,
    client_id: &str,
    extra: &str,
) -> (u16, Value) {
    let url = format!(
        "{}/service/oauth2/v1/token",
        app.public(ServiceName::IdentityAuthz)
    );
    let body = format!("grant_type=client_credentials&client_id={client_id}{extra}");
    let r = client
        .send(
            Method::POST,
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into(),
        )
        .await
        .unwrap();
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn jose_keys(client: &HttpsClient, app: &TestApp, token: &str) -> u16 {
    let url = format!("{}/service/api/v1/jose/jwks", app.public(ServiceName::Jose));
    get_status(client, &url, token).await
}

/// The status of a GET of `url` with `token`.
async fn get_status(client: &HttpsClient, url: &str, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    client
        .send(
            Method::GET,
            url,
            &[("authorization", auth.as_str())],
            Default::default(),
        )
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_client_auth_issues_certificate_bound_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ca_pem, issue) = client_ca();
    let ca_path = dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    let ca_uri = format!("file://{}", ca_path.display());
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::Jose,
            ServiceName::IdentityRs,
        ],
        &[("CRYPTOUTIL_IDENTITY__MTLS_CA", ca_uri.as_str())],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let anchor = std::fs::read_to_string(data.join("tls/ca.pem")).unwrap();
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({
            "name": "worker", "auth_methods": ["tls_client_auth"],
            "tls_client_auth_san": "worker.example", "scopes": ["jose", "notes:read"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert!(
        v.get("client_secret").is_none(),
        "a certificate client has no secret"
    );
    let id = v["client_id"].as_str().unwrap().to_owned();

    // The right certificate: a token bound to it.
    let worker = issue("worker.example");
    let with_cert = mtls_client(&anchor, &worker);
    let (status, v) = token(&with_cert, &app, &id).await;
    assert_eq!(status, 200, "{v}");
    let at = v["access_token"].as_str().unwrap().to_owned();
    let x5t = b64::encode(&cryptoutil_protocols::oauth::token_digest(&worker.der));
    assert_eq!(claims(&at)["cnf"]["x5t#S256"], json!(x5t));
    assert_eq!(jose_keys(&with_cert, &app, &at).await, 200);
    // Without the certificate, or with another one from the same CA: refused.
    assert_eq!(jose_keys(&app.client, &app, &at).await, 401);
    let twin = mtls_client(&anchor, &issue("worker.example"));
    assert_eq!(
        jose_keys(&twin, &app, &at).await,
        401,
        "another key, same name"
    );
    // identity-rs, the reference resource server, holds a token (its scope asked for by name)
    // to the certificate too.
    let (status, v) = token_for(&with_cert, &app, &id, "&scope=notes%3Aread").await;
    assert_eq!(status, 200, "{v}");
    let notes_token = v["access_token"].as_str().unwrap().to_owned();
    assert!(claims(&notes_token)["cnf"]["x5t#S256"] == json!(x5t));
    let notes = format!(
        "{}/service/api/v1/notes",
        app.public(ServiceName::IdentityRs)
    );
    assert_eq!(get_status(&with_cert, &notes, &notes_token).await, 200);
    assert_eq!(get_status(&app.client, &notes, &notes_token).await, 401);
    assert_eq!(get_status(&twin, &notes, &notes_token).await, 401);
    assert_eq!(
        get_status(&with_cert, &notes, &at).await,
        403,
        "a token asked for without a scope lacks notes:read"
    );

    // Client authentication failures: no certificate, a wrong SAN, a self-signed certificate.
    let (status, v) = token(&app.client, &app, &id).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));
    let (status, _) = token(&mtls_client(&anchor, &issue("other.example")), &app, &id).await;
    assert_eq!(status, 401, "wrong SAN");
    let (_, stranger) = client_ca();
    let (status, _) = token(
        &mtls_client(&anchor, &stranger("worker.example")),
        &app,
        &id,
    )
    .await;
    assert_eq!(status, 401, "a certificate from another CA");

    // An independent TLS client (Python requests over OpenSSL) presents the certificate; the
    // thumbprint it computes from the DER is the token's cnf.
    let cert_path = dir.path().join("worker.pem");
    let key_path = dir.path().join("worker.key");
    std::fs::write(&cert_path, &worker.cert_pem).unwrap();
    std::fs::write(&key_path, &worker.key_pem).unwrap();
    let script = r#"
import base64, hashlib, json, ssl, sys
import requests
url, client_id, cert, key, ca = sys.argv[1:]
r = requests.post(url, data={"grant_type": "client_credentials", "client_id": client_id},
                  cert=(cert, key), verify=ca, timeout=10)
assert r.status_code == 200, (r.status_code, r.text)
payload = r.json()["access_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
der = ssl.PEM_cert_to_DER_cert(open(cert).read())
x5t = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
assert claims["cnf"]["x5t#S256"] == x5t, (claims["cnf"], x5t)
print("ok")
"#;
    let url = format!(
        "{}/service/oauth2/v1/token",
        app.public(ServiceName::IdentityAuthz)
    );
    let args = [
        url,
        id.clone(),
        cert_path.display().to_string(),
        key_path.display().to_string(),
        data.join("tls/ca.pem").display().to_string(),
    ];
    super::jose_interop::peer("-c", [vec![script.to_owned()], args.to_vec()].concat()).await;
    app.stop().await;
}

/// Federation with `federation.auth.mode: mtls`: the KMS introspects at identity-authz as a
/// `tls_client_auth` resource server, proving itself by its certificate alone; a certificate
/// identity-authz does not accept is this process's own problem (4xx): the KMS falls back to
/// local validation and its breaker stays closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_federated_kms_introspects_with_its_client_certificate() {
    use super::federation::metric;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("idp");
    let (ca_pem, issue) = client_ca();
    let ca_path = dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    let ca_uri = format!("file://{}", ca_path.display());
    let idp = TestApp::start(
        vec![ServiceName::IdentityAuthz],
        &[("CRYPTOUTIL_IDENTITY__MTLS_CA", ca_uri.as_str())],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let operator = client_token(&idp, &boot.client_id, &boot.secret, "identity").await;
    let (status, v) = admin(
        &idp,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({
            "name": "kms peer", "auth_methods": ["tls_client_auth"], "resource_server": true,
            "tls_client_auth_san": "kms-peer.example", "scopes": ["jose"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let user_token = client_token(&idp, &boot.client_id, &boot.secret, "kms").await;
    let anchor = format!("file://{}", data.join("tls/ca.pem").display());
    let authz = idp.public(ServiceName::IdentityAuthz).to_owned();

    for (san, accepted) in [("kms-peer.example", true), ("someone-else.example", false)] {
        let cert = issue(san);
        let (cert_path, key_path) = (
            dir.path().join(format!("{san}.pem")),
            dir.path().join(format!("{san}.key")),
        );
        std::fs::write(&cert_path, &cert.cert_pem).unwrap();
        std::fs::write(&key_path, &cert.key_pem).unwrap();
        let (cert_uri, key_uri) = (
            format!("file://{}", cert_path.display()),
            format!("file://{}", key_path.display()),
        );
        let kms = TestApp::start(
            vec![ServiceName::Kms],
            &[
                ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
                ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", authz.as_str()),
                ("CRYPTOUTIL_FEDERATION__IDENTITY_CACHE_TTL", "0s"),
                ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "mtls"),
                ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", id.as_str()),
                (
                    "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_CERT",
                    cert_uri.as_str(),
                ),
                ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_KEY", key_uri.as_str()),
                ("CRYPTOUTIL_FEDERATION__AUTH__CA", anchor.as_str()),
            ],
            None,
        )
        .await;
        // Refused, the KMS validates locally: it fetches identity-authz's (public) JWK Set.
        for _ in 0..4 {
            let (s, v) = super::identity::api(
                &kms,
                ServiceName::Kms,
                &user_token,
                Method::GET,
                "/elastickeys",
                None,
            )
            .await;
            assert_eq!(s, 200, "{san}: {v}");
        }
        // Outcomes reach the breaker as casts: the counters may trail the answers a little.
        let metrics_url = format!("{}/admin/v1/metrics", kms.admin(ServiceName::Kms));
        let read = || async { kms.client.get(&metrics_url).await.unwrap().text() };
        let calls_of = |m: &str| {
            metric(
                m,
                "federation_request_duration_seconds_count",
                &[("service", "identity")],
            )
        };
        assert!(
            crate::eventually(std::time::Duration::from_secs(3), || async {
                calls_of(&read().await) >= 4.0
            })
            .await,
            "{san}: {}",
            read().await
        );
        let m = read().await;
        let fallbacks = metric(&m, "federation_fallback_total", &[("service", "identity")]);
        let failures = metric(
            &m,
            "federation_request_failures_total",
            &[("service", "identity")],
        );
        assert_eq!(
            failures, 0.0,
            "{san}: a refused client is not a failing peer"
        );
        if accepted {
            assert_eq!(fallbacks, 0.0, "{san}: {m}");
        } else {
            assert!(fallbacks >= 4.0, "{san}: {m}");
        }
        let url = format!("{}/admin/v1/healthz", kms.admin(ServiceName::Kms));
        let h: Value = serde_json::from_slice(&kms.client.get(&url).await.unwrap().body).unwrap();
        assert_eq!(h["peers"]["identity"]["state"], "closed", "{san}");
        kms.stop().await;
    }
    idp.stop().await;
}
