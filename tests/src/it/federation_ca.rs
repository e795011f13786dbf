//! The CA seam (`federation.ca_enabled`) against a fake CA that is really `openssl`: it checks
//! our PKCS#10 request (`openssl req -verify`), issues with `openssl x509 -req` and answers the
//! EST `/simpleenroll` with `openssl crl2pkcs7` output. The KMS presents the dynamic
//! certificate while the CA fails (`self_signed`), the CA's certificate from the next handshake
//! once it answers, and after a restart with the CA down the CA's certificate again (`cached`)
//! or the dynamic one (`self_signed`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cryptoutil_actors::ServiceName;
use cryptoutil_federation::{tls, HttpsClient};

use super::federation::metric;
use crate::fake_peer::{Behaviour, FakePeer};
use crate::{eventually, TestApp};

const SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An EST CA made of openssl commands behind a fake HTTPS peer.
struct OpensslCa {
    peer: FakePeer,
    root_pem: String,
    _dir: tempfile::TempDir,
}

impl OpensslCa {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().to_owned();
        openssl(
            &path,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=openssl EST CA",
            ],
        );
        let root_pem = std::fs::read_to_string(path.join("ca.pem")).unwrap();
        let peer = FakePeer::start("{}").await;
        peer.route(
            "/token",
            200,
            r#"{"access_token":"ca-token","expires_in":300}"#,
        );
        peer.route("/service/api/v1/health", 200, r#"{"status":"ready"}"#);
        let serial = Arc::new(AtomicUsize::new(0));
        peer.route_with(
            SIMPLEENROLL,
            Arc::new(move |body| {
                let n = serial.fetch_add(1, Ordering::SeqCst);
                let text: Vec<u8> = body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                let Ok(der) = base64::engine::general_purpose::STANDARD.decode(text) else {
                    return (400, "not base64".into());
                };
                let (csr, leaf) = (format!("req-{n}.der"), format!("leaf-{n}.pem"));
                std::fs::write(path.join(&csr), der).unwrap();
                // The independent judge of our request: its signature must verify.
                openssl(
                    &path,
                    &["req", "-in", &csr, "-inform", "DER", "-verify", "-noout"],
                );
                openssl(
                    &path,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        &csr,
                        "-inform",
                        "DER",
                        "-CA",
                        "ca.pem",
                        "-CAkey",
                        "ca.key",
                        "-days",
                        "90",
                        "-copy_extensions",
                        "copyall",
                        "-out",
                        &leaf,
                    ],
                );
                let cms = openssl(
                    &path,
                    &[
                        "crl2pkcs7",
                        "-nocrl",
                        "-certfile",
                        &leaf,
                        "-certfile",
                        "ca.pem",
                        "-outform",
                        "DER",
                    ],
                );
                (200, base64::engine::general_purpose::STANDARD.encode(cms))
            }),
        );
        Self {
            peer,
            root_pem,
            _dir: dir,
        }
    }
}

async fn kms(ca: &OpensslCa, data: &Path, mode: &str) -> TestApp {
    let anchor = data.parent().unwrap().join("ca-peer.pem");
    std::fs::write(&anchor, &ca.peer.ca_pem).unwrap();
    let anchor = format!("file://{}", anchor.display());
    let token = format!("{}/token", ca.peer.base);
    TestApp::start(
        vec![ServiceName::Kms],
        &[
            ("CRYPTOUTIL_FEDERATION__CA_ENABLED", "true"),
            ("CRYPTOUTIL_FEDERATION__CA_URL", &ca.peer.base),
            ("CRYPTOUTIL_FEDERATION__CA_TIMEOUT", "2s"),
            ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
            ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "kms-at-the-ca"),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
                "not-a-real-secret",
            ),
            ("CRYPTOUTIL_FEDERATION__AUTH__TOKEN_ENDPOINT", &token),
            ("CRYPTOUTIL_FEDERATION__AUTH__CA", &anchor),
            ("CRYPTOUTIL_FEDERATION__RETRY__INITIAL_BACKOFF", "20ms"),
            ("CRYPTOUTIL_FEDERATION__RETRY__MAX_RETRIES", "2"),
            ("CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL", "200ms"),
            // Health is polled while closed too: a CA that fails opens the breaker at once,
            // and it half-opens one open timeout after the CA is back.
            ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "1s"),
            ("CRYPTOUTIL_FEDERATION_FALLBACK__CA_FALLBACK_MODE", mode),
        ],
        Some(data),
    )
    .await
}

/// Does a client trusting only `anchor_pem` complete a TLS handshake with the KMS?
pub(super) async fn trusted_by(app: &TestApp, anchor_pem: &str) -> bool {
    let client = HttpsClient::new(tls::client_config_from_pem(anchor_pem.as_bytes()).unwrap())
        .with_timeout(Duration::from_secs(5));
    let url = format!("{}/browser/", app.public(ServiceName::Kms));
    client.get(&url).await.is_ok_and(|r| r.status == 200)
}

fn suite_anchor(data: &Path) -> String {
    std::fs::read_to_string(cryptoutil_bin::pki::anchor_path(data)).unwrap()
}

async fn ca_fallbacks(app: &TestApp, mode: &str) -> f64 {
    let url = format!("{}/admin/v1/metrics", app.admin(ServiceName::Kms));
    let m = app.client.get(&url).await.unwrap().text();
    metric(
        &m,
        "federation_fallback_total",
        &[("service", "ca"), ("mode", mode)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_come_from_the_ca_when_it_answers_and_the_fallback_serves_when_not() {
    let ca = OpensslCa::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // The CA fails: the dynamic certificate serves (self_signed), and it keeps asking.
    ca.peer.behave(Behaviour::Fail(503));
    let app = kms(&ca, &data, "self_signed").await;
    assert!(trusted_by(&app, &suite_anchor(&data)).await);
    assert!(!trusted_by(&app, &ca.root_pem).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            ca_fallbacks(&app, "self_signed").await >= 2.0
        })
        .await
    );

    // The CA answers: from the next handshake on, the CA's certificate.
    ca.peer.behave(Behaviour::Answer);
    assert!(
        eventually(Duration::from_secs(15), || async {
            trusted_by(&app, &ca.root_pem).await
        })
        .await,
        "the CA's certificate was never presented"
    );
    assert!(!trusted_by(&app, &suite_anchor(&data)).await);
    let enrollments = ca.peer.hits_of(SIMPLEENROLL);
    assert!(enrollments >= 1);
    // Enrollment is a supervised actor: operators see it in the tree.
    let url = format!("{}/admin/v1/supervision", app.admin(ServiceName::Kms));
    let tree: cryptoutil_actors::supervisor::tree::SupervisionNode =
        serde_json::from_slice(&app.client.get(&url).await.unwrap().body).unwrap();
    let node = tree.find("kms/enroll").expect("kms/enroll in the tree");
    assert_eq!(
        (node.kind.as_str(), node.state.as_str()),
        ("Enrollment", "running")
    );
    app.stop().await;

    // Restart with the CA down, cached: the CA's last certificate, and no new request.
    ca.peer.behave(Behaviour::Fail(503));
    let app = kms(&ca, &data, "cached").await;
    assert!(
        trusted_by(&app, &ca.root_pem).await,
        "the cached certificate is presented"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        ca.peer.hits_of(SIMPLEENROLL),
        enrollments,
        "not due: the CA is not asked"
    );
    app.stop().await;

    // Restart with the CA down, self_signed: the dynamic certificate again.
    let app = kms(&ca, &data, "self_signed").await;
    assert!(trusted_by(&app, &suite_anchor(&data)).await);
    assert!(!trusted_by(&app, &ca.root_pem).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            ca_fallbacks(&app, "self_signed").await >= 1.0
        })
        .await
    );
    app.stop().await;
}
