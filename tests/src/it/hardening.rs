//! The two MEDIUM findings of the outside probe (issue 20), as an attacker on the same host
//! would try them: the admin API (shutdown, every tenant's audit records) without credentials or
//! from a web page, and connections held open by clients that send nothing, drip a body, or pile
//! up from one address.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use hyper::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::{run_cli, TestApp};

const TOKEN: &str = "an-admin-token-of-forty-characters-long!";

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

async fn status(app: &TestApp, method: Method, url: &str, headers: &[(&str, &str)]) -> u16 {
    let body = if method == Method::POST { "{}" } else { "" };
    let r = app
        .client
        .send(method, url, headers, body.as_bytes().to_vec().into())
        .await
        .unwrap();
    r.status.as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_admin_route_but_the_probes_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = token_file(tmp.path());
    let setting = format!("file://{}", file.display());
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[
            ("CRYPTOUTIL_ADMIN__TOKEN", &setting),
            ("CRYPTOUTIL_ADMIN__DANGER_FAULT_INJECTION", "true"),
        ],
        None,
    )
    .await;
    let admin = app.admin(ServiceName::Kms).to_owned();
    let json = ("content-type", "application/json");
    let good = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);

    for probe in ["livez", "readyz", "healthz"] {
        let url = format!("{admin}/admin/v1/{probe}");
        assert_eq!(status(&app, Method::GET, &url, &[]).await, 200, "{probe}");
    }
    let guarded = [
        (Method::GET, "metrics"),
        (Method::GET, "supervision"),
        (Method::GET, "audit"),
        (Method::GET, "audit/verify"),
        (Method::POST, "faults/crash"),
        (Method::POST, "shutdown"),
    ];
    for (method, path) in &guarded {
        let url = format!("{admin}/admin/v1/{path}");
        let r = app
            .client
            .send(method.clone(), &url, &[json], "{}".into())
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{method} {path} without a token");
        assert_eq!(
            r.headers["www-authenticate"],
            r#"Bearer realm="cryptoutil-admin""#
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "unauthorized");
        for refused in [
            vec![json, ("authorization", wrong.as_str())],
            vec![json, ("authorization", TOKEN)], // no scheme
            vec![
                json,
                ("authorization", good.as_str()),
                ("authorization", good.as_str()),
            ],
        ] {
            assert_eq!(
                status(&app, method.clone(), &url, &refused).await,
                401,
                "{method} {path} with {:?}",
                refused.len()
            );
        }
    }
    // The process is still up after all of that.
    assert_eq!(
        status(&app, Method::GET, &format!("{admin}/admin/v1/livez"), &[]).await,
        200
    );
    let auth = ("authorization", good.as_str());
    for path in ["metrics", "supervision", "audit", "audit/verify"] {
        let url = format!("{admin}/admin/v1/{path}");
        assert_eq!(
            status(&app, Method::GET, &url, &[auth]).await,
            200,
            "{path}"
        );
    }
    // Even with the token, a browser's request (Origin) and a POST that is not JSON are refused.
    let metrics = format!("{admin}/admin/v1/metrics");
    let origin = ("origin", "https://attacker.example");
    assert_eq!(
        status(&app, Method::GET, &metrics, &[auth, origin]).await,
        403
    );
    let shutdown = format!("{admin}/admin/v1/shutdown");
    let text = ("content-type", "text/plain");
    assert_eq!(
        status(&app, Method::POST, &shutdown, &[auth, text]).await,
        415
    );

    // The command-line tools send it: from a file, or from their own configuration.
    let ca = cryptoutil_bin::pki::anchor_path(&app.data_dir);
    let ca = ca.to_str().unwrap();
    let file = file.to_str().unwrap();
    let supervision = ["supervision", "--url", &admin, "--ca-file", ca];
    let (code, out, err) = run_cli(&[&supervision[..], &["--token-file", file]].concat(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kms"), "{out}");
    let (code, _, _) = run_cli(&supervision, &[]);
    assert_ne!(code, 0, "no token, no tree");
    let (code, _, err) = run_cli(&supervision, &[("CRYPTOUTIL_ADMIN__TOKEN", &setting)]);
    assert_eq!(code, 0, "the token from its configuration: {err}");
    let metrics_check = ["healthcheck", "--ca-file", ca, &metrics];
    let (code, _, _) = run_cli(&metrics_check, &[]);
    assert_ne!(code, 0);
    let (code, _, err) = run_cli(&[&metrics_check[..], &["--token-file", file]].concat(), &[]);
    assert_eq!(code, 0, "{err}");

    // With the token and JSON, shutdown is honoured.
    assert_eq!(
        status(&app, Method::POST, &shutdown, &[auth, json]).await,
        202
    );
    app.stop().await;

    // A token too short to resist guessing is a configuration error naming the key.
    let (code, _, err) = run_cli(
        &["config", "check"],
        &[("CRYPTOUTIL_ADMIN__TOKEN", "short")],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("admin.token"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_browsers_and_non_json_posts_are_still_refused() {
    let app = TestApp::start(vec![ServiceName::Kms], &[], None).await;
    let admin = app.admin(ServiceName::Kms).to_owned();
    let shutdown = format!("{admin}/admin/v1/shutdown");
    // A web page's "simple request": text/plain POST with an Origin header.
    let page = [
        ("origin", "https://attacker.example"),
        ("content-type", "text/plain"),
    ];
    assert_eq!(status(&app, Method::POST, &shutdown, &page).await, 403);
    assert_eq!(status(&app, Method::POST, &shutdown, &page[1..]).await, 415);
    assert_eq!(status(&app, Method::POST, &shutdown, &[]).await, 415);
    let audit = format!("{admin}/admin/v1/audit");
    assert_eq!(status(&app, Method::GET, &audit, &page[..1]).await, 403);
    assert_eq!(
        status(&app, Method::GET, &format!("{admin}/admin/v1/livez"), &[]).await,
        200,
        "still up"
    );
    app.stop().await;
}

/// A TLS client of `base` (`https://127.0.0.1:PORT`) offering `alpn`.
async fn tls_connect(
    app: &TestApp,
    base: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr: std::net::SocketAddr = base.trim_start_matches("https://").parse().unwrap();
    let anchor = std::fs::read(cryptoutil_bin::pki::anchor_path(&app.data_dir)).unwrap();
    let mut config =
        (*cryptoutil_federation::tls::client_config_from_pem(&anchor).unwrap()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Reads until the server closes (EOF or reset); what arrived, and when the close came.
async fn read_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    bound: Duration,
) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {bound:?}; read so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0) | Err(_)) => return (got, Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_do_nothing_or_drip_a_body_are_closed() {
    let app = TestApp::start(
        vec![ServiceName::IdentityAuthz],
        &[
            ("CRYPTOUTIL_HTTP__CONNECTIONS__IDLE_TIMEOUT", "1s"),
            ("CRYPTOUTIL_HTTP__CONNECTIONS__BODY_READ_TIMEOUT", "1s"),
        ],
        None,
    )
    .await;
    let public = app.public(ServiceName::IdentityAuthz).to_owned();
    let admin = app.admin(ServiceName::IdentityAuthz).to_owned();

    // TLS completed, then nothing: closed after the idle timeout, on both listeners and with
    // either protocol.
    for (base, alpn) in [
        (&public, &b"http/1.1"[..]),
        (&admin, &b"http/1.1"[..]),
        (&public, &b"h2"[..]),
    ] {
        let started = Instant::now();
        let mut tls = tls_connect(&app, base, &[alpn]).await.unwrap();
        if alpn == b"h2" {
            // The client preface and an empty SETTINGS frame, then silence.
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .unwrap();
        }
        let (_, closed) = read_until_closed(&mut tls, Duration::from_secs(10)).await;
        let open = closed - started;
        assert!(
            open >= Duration::from_millis(900) && open < Duration::from_secs(6),
            "{base} {}: open {open:?}",
            String::from_utf8_lossy(alpn)
        );
    }

    // Keep-alive: an answered request, then silence: closed about the timeout after the answer.
    let mut tls = tls_connect(&app, &public, &[b"http/1.1"]).await.unwrap();
    tls.write_all(b"GET /.well-known/openid-configuration HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answered = Instant::now();
    let (got, closed) = read_until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        closed - answered >= Duration::from_millis(900),
        "{:?}",
        closed - answered
    );

    // A body dripped one byte at a time to the token endpoint, which reads it before any
    // credential: refused once the body read timeout has passed, and the connection closed.
    let mut tls = tls_connect(&app, &public, &[b"http/1.1"]).await.unwrap();
    let started = Instant::now();
    tls.write_all(
        b"POST /service/oauth2/v1/token HTTP/1.1\r\nhost: localhost\r\n\
          content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"a").await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let (got, closed) = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    drip.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        closed - started < Duration::from_secs(5),
        "{:?}",
        closed - started
    );

    let metrics = app.admin_metrics(ServiceName::IdentityAuthz).await;
    assert!(
        metrics.contains("cryptoutil_http_connections_idle_closed_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cryptoutil_http_body_read_timeouts_total"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_holds_at_most_its_share_of_connections() {
    let app = TestApp::start(
        vec![ServiceName::Jose],
        &[("CRYPTOUTIL_HTTP__CONNECTIONS__MAX_PER_ADDRESS", "4")],
        None,
    )
    .await;
    let public = app.public(ServiceName::Jose).to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls_connect(&app, &public, &[b"http/1.1"]).await.unwrap());
    }
    // The fifth is closed at accept: its handshake never completes.
    let fifth = tokio::time::timeout(
        Duration::from_secs(5),
        tls_connect(&app, &public, &[b"http/1.1"]),
    )
    .await
    .expect("closed, not left hanging");
    assert!(fifth.is_err(), "a fifth connection from one address");
    // The others still serve, and a place comes back when one of them goes.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /service/api/v1/jose/jwks HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut first, Duration::from_secs(5)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    drop(first);
    let mut again = false;
    for _ in 0..50 {
        if tls_connect(&app, &public, &[b"http/1.1"]).await.is_ok() {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again, "a place freed by a closed connection is taken again");
    drop(held);
    let metrics = app.admin_metrics(ServiceName::Jose).await;
    assert!(
        metrics
            .contains(r#"cryptoutil_http_connections_refused_total{reason="per_address_limit"}"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_answers_are_not_cached_or_sniffed_one_authorization_only_and_expiry_is_strict() {
    let issuer = super::jose_service::Issuer::new();
    let issuers = issuer.vars();
    let app = TestApp::start(
        vec![ServiceName::Jose],
        &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", issuers.as_str())],
        None,
    )
    .await;
    let url = format!("{}/service/api/v1/jose/jwks", app.public(ServiceName::Jose));
    let good = format!("Bearer {}", issuer.token("acme", "jose", "jose", 300));
    // Expired ten seconds ago: past the 5 s leeway (it was a minute).
    let expired = format!("Bearer {}", issuer.token("acme", "jose", "jose", -10));
    let get = |headers: Vec<(&'static str, String)>| {
        let (app, url) = (&app, url.clone());
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.client
                .send(Method::GET, &url, &headers, Default::default())
                .await
                .unwrap()
        }
    };
    for (headers, want) in [
        (vec![("authorization", good.clone())], 200),
        (vec![("authorization", expired)], 401),
        (Vec::new(), 401),
        (
            vec![
                ("authorization", good.clone()),
                ("authorization", good.clone()),
            ],
            400,
        ),
    ] {
        let n = headers.len();
        let r = get(headers).await;
        assert_eq!(r.status, want, "{n} header(s): {}", r.text());
        assert_eq!(r.headers["cache-control"], "no-store", "{want}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{want}");
    }
    // The refused credentials are counted (and logged, without the token).
    let metrics = app.admin_metrics(ServiceName::Jose).await;
    for failure in ["invalid", "missing"] {
        let line = format!(
            r#"cryptoutil_auth_failures_total{{service="jose",realm="service",failure="{failure}"}}"#
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    app.stop().await;
}
