//! Dual listeners: TLS 1.3 only (judged by `openssl s_client`), admin on 127.0.0.1 only,
//! endpoints.json, the trust anchor, admin routes.

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

use cryptoutil_actors::ServiceName;

use crate::TestApp;

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("https://")
        .parse()
        .expect("host:port")
}

/// Runs `openssl s_client` with `version_flag` against `target`; (success, output).
fn s_client(target: SocketAddr, version_flag: &str, ca: &std::path::Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &target.to_string(),
            version_flag,
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listener_refuses_tls12_and_accepts_tls13_per_openssl() {
    let app = TestApp::suite(&[]).await;
    let ca = cryptoutil_bin::pki::anchor_path(&app.data_dir);
    let targets: Vec<SocketAddr> = app
        .endpoints
        .values()
        .flat_map(|e| [addr(&e.public), addr(&e.admin)])
        .collect();
    assert_eq!(targets.len(), 16);
    let ca2 = ca.clone();
    let results = tokio::task::spawn_blocking(move || {
        targets
            .into_iter()
            .map(|t| {
                (
                    t,
                    s_client(t, "-tls1_2", &ca2),
                    s_client(t, "-tls1_3", &ca2),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (target, (ok12, out12), (ok13, out13)) in results {
        assert!(!ok12, "{target} accepted TLS 1.2:\n{out12}");
        assert!(
            out12.contains("alert protocol version") || out12.contains("no protocols available"),
            "{target}:\n{out12}"
        );
        assert!(ok13, "{target} refused TLS 1.3:\n{out13}");
        assert!(
            out13.contains("TLSv1.3") && out13.contains("Verify return code: 0 (ok)"),
            "{target}:\n{out13}"
        );
    }
    app.stop().await;
}

/// Local addresses (hex) of listening TCP sockets on `port`, from /proc/net/tcp and tcp6.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            if *state == "0A" && local.ends_with(&format!(":{port:04X}")) {
                out.push((*local).to_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_listeners_accept_on_127_0_0_1_only() {
    let app = TestApp::suite(&[]).await;
    for (service, e) in &app.endpoints {
        let admin = addr(&e.admin);
        assert_eq!(admin.ip(), IpAddr::from([127, 0, 0, 1]), "{service}");
        // The kernel's own table: exactly one listening socket, bound to 127.0.0.1 (0100007F),
        // not 0.0.0.0 and not ::.
        assert_eq!(
            listening_addresses(admin.port()),
            vec![format!("0100007F:{:04X}", admin.port())],
            "{service}"
        );
        assert!(std::net::TcpStream::connect(admin).is_ok());
        // Other loopback addresses are refused too. (The host's other interfaces are not probed:
        // tests send nothing beyond loopback; the kernel table above already proves the bind.)
        for ip in [IpAddr::from([127, 0, 0, 2]), "::1".parse().unwrap()] {
            let err = std::net::TcpStream::connect_timeout(
                &SocketAddr::new(ip, admin.port()),
                std::time::Duration::from_secs(1),
            );
            assert!(err.is_err(), "{service} admin port answered on {ip}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_json_anchor_and_admin_routes() {
    let app = TestApp::suite(&[]).await;
    let written = cryptoutil_bin::client::endpoints(&app.data_dir).unwrap();
    let names: Vec<&str> = written.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ca",
            "identity-authz",
            "identity-idp",
            "identity-rp",
            "identity-rs",
            "identity-spa",
            "jose",
            "kms"
        ]
    );
    for (name, e) in &written {
        assert!(
            e.public.starts_with("https://127.0.0.1:") && e.admin.starts_with("https://127.0.0.1:"),
            "{name}"
        );
    }
    let pem = std::fs::read_to_string(cryptoutil_bin::pki::anchor_path(&app.data_dir)).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    for service in ServiceName::ALL {
        let admin = app.admin(service);
        let livez = app
            .client
            .get(&format!("{admin}/admin/v1/livez"))
            .await
            .unwrap();
        assert_eq!(livez.status, 200, "{service}");
        let readyz = app
            .client
            .get(&format!("{admin}/admin/v1/readyz"))
            .await
            .unwrap();
        assert_eq!(readyz.status, 200, "{service}");
        let healthz = app
            .client
            .get(&format!("{admin}/admin/v1/healthz"))
            .await
            .unwrap();
        assert_eq!(healthz.status, 200, "{service}");
        let h: serde_json::Value = serde_json::from_slice(&healthz.body).unwrap();
        assert_eq!(h["service"], service.as_str());
        assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(h["sealed"], false);
        assert_eq!(h["fips"], cryptoutil_protocols::fips::enabled());
        assert!(h["peers"].is_object());
    }
    let metrics = app
        .client
        .get(&format!("{}/admin/v1/metrics", app.admin(ServiceName::Kms)))
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text();
    assert!(text.contains("# TYPE cryptoutil_fips_mode gauge"), "{text}");
    assert!(
        text.contains("cryptoutil_service_ready{service=\"kms\"} 1"),
        "{text}"
    );
    // Fault injection is off by default: the route does not exist.
    let crash = app
        .client
        .send(
            hyper::Method::POST,
            &format!("{}/admin/v1/faults/crash", app.admin(ServiceName::Kms)),
            &[("content-type", "application/json")],
            "{\"path\":\"kms/health\"}".into(),
        )
        .await
        .unwrap();
    assert_eq!(crash.status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_certificates_persist_and_carry_the_configured_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[("CRYPTOUTIL_TLS__HOSTNAMES", "[kms.example.test]")],
        Some(&data),
    )
    .await;
    let anchor = std::fs::read(cryptoutil_bin::pki::anchor_path(&data)).unwrap();
    // The leaf verifies for its configured DNS name, through rustls with only our anchor.
    let config = cryptoutil_federation::tls::client_config_from_pem(&anchor).unwrap();
    let port = addr(app.public(ServiceName::Kms)).port();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("kms.example.test").unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("SAN kms.example.test");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let wrong = rustls_pki_types::ServerName::try_from("other.example.test").unwrap();
    assert!(tokio_rustls::TlsConnector::from(config)
        .connect(wrong, tcp)
        .await
        .is_err());
    app.stop().await;
    // A second start reuses the CA: the trust anchor does not change.
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[("CRYPTOUTIL_TLS__HOSTNAMES", "[kms.example.test]")],
        Some(&data),
    )
    .await;
    assert_eq!(
        std::fs::read(cryptoutil_bin::pki::anchor_path(&data)).unwrap(),
        anchor
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn static_certificates_from_file_secrets() {
    use cryptoutil_protocols::pki;
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now();
    let ca = pki::generate_ca("operator", now).unwrap();
    let leaf = pki::issue_leaf(
        "operator",
        &ca.intermediate.key_pkcs8,
        "kms",
        &["kms.static.test".into()],
        &["127.0.0.1".parse().unwrap()],
        now,
        pki::LEAF_LIFETIME,
    )
    .unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        format!("file://{}", p.display())
    };
    let chain = write(
        "chain.pem",
        &(pki::cert_pem(&leaf.cert_der) + &pki::cert_pem(&ca.intermediate.cert_der)),
    );
    let key = write("key.pem", &pki::private_key_pem(&leaf.key_pkcs8));
    let root_pem = pki::cert_pem(&ca.root.cert_der);
    let root = write("root.pem", &root_pem);
    let extra = format!("[{root}]");
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[
            ("CRYPTOUTIL_TLS__MODE", "static"),
            ("CRYPTOUTIL_TLS__CERT_CHAIN", &chain),
            ("CRYPTOUTIL_TLS__PRIVATE_KEY", &key),
            ("CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS", &extra),
        ],
        None,
    )
    .await;
    // The operator's root is the anchor written for clients, and the served chain verifies to it.
    assert_eq!(
        std::fs::read_to_string(cryptoutil_bin::pki::anchor_path(&app.data_dir)).unwrap(),
        root_pem
    );
    let livez = app
        .client
        .get(&format!("{}/admin/v1/livez", app.admin(ServiceName::Kms)))
        .await
        .unwrap();
    assert_eq!(livez.status, 200);
    assert!(
        !app.data_dir.join("tls").join("pki.redb").exists(),
        "static mode makes no CA"
    );
    app.stop().await;
}
