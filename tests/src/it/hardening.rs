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

/// The high-S twin of an ES256 JWT: the same token with `s` replaced by `n - s`, a signature
/// that verifies as well and that anyone can make without the key.
fn high_s_twin(token: &str) -> String {
    use cryptoutil_protocols::jose::{b64, jwk::ecdsa_twin};
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = b64::decode(sig, "signature").unwrap();
    assert_eq!(sig.len(), 64, "ES256");
    format!("{signed}.{}", b64::encode(&ecdsa_twin(&sig).unwrap()))
}

/// ECDSA's malleability (issue 20, LOW): identity-authz signs low-S only, and its tokens'
/// high-S twins are refused by the services that trust it (KMS here), by its own introspection,
/// and by a static issuer entry with `require_low_s`; without it (the default for issuers not
/// of the suite, most of which sign either half) the twin is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn high_s_twins_of_tokens_are_refused_where_the_issuer_signs_low_s() {
    use super::identity::get_with;
    use cryptoutil_protocols::jose::jwk::is_high_s;
    use cryptoutil_protocols::jose::{b64, JwsAlg};
    const KEYS: &str = "/service/api/v1/elastickeys";
    let low = |token: &str| {
        let sig = b64::decode(token.rsplit_once('.').unwrap().1, "signature").unwrap();
        !is_high_s(JwsAlg::ES256, &sig)
    };

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![ServiceName::IdentityAuthz, ServiceName::Kms],
        &[],
        Some(&data),
    )
    .await;
    let boot = super::identity::bootstrap(&data);
    let me = Some((boot.client_id.as_str(), boot.secret.as_str()));
    for _ in 0..8 {
        let token = super::identity::client_token(&app, &boot.client_id, &boot.secret, "kms").await;
        assert!(low(&token), "identity-authz signs low-S");
        let twin = high_s_twin(&token);
        assert!(!low(&twin));
        for (what, t, want) in [("token", &token, 200), ("twin", &twin, 401)] {
            assert_eq!(
                get_with(&app, ServiceName::Kms, KEYS, t).await,
                want,
                "{what}"
            );
        }
        let (status, v) = super::identity::token_call(&app, "introspect", me, &twin).await;
        assert_eq!(
            (status, v["active"].clone()),
            (200, serde_json::json!(false))
        );
        let (status, v) = super::identity::token_call(&app, "introspect", me, &token).await;
        assert_eq!(
            (status, v["active"].clone()),
            (200, serde_json::json!(true))
        );
    }
    app.stop().await;

    // A static issuer: the twin passes by default and is refused with require_low_s.
    let issuer = super::jose_service::Issuer::new();
    for (require, twin_status) in [(false, 200), (true, 401)] {
        let entry = format!(
            "[{}]",
            issuer
                .entry()
                .replace('}', &format!(", require_low_s: {require}}}"))
        );
        let app = TestApp::start(
            vec![ServiceName::Jose],
            &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", entry.as_str())],
            None,
        )
        .await;
        let token = issuer.token("acme", "jose", "jose", 300);
        for (t, want) in [(token.clone(), 200), (high_s_twin(&token), twin_status)] {
            let status = get_with(&app, ServiceName::Jose, "/service/api/v1/jose/jwks", &t).await;
            assert_eq!(status, want, "require_low_s {require}");
        }
        app.stop().await;
    }
}

/// HEAD (issue 20, LOW): a public GET route is a public HEAD route (it was 401), and no HEAD
/// answer carries a body, over HTTP/1.1 or h2 (hyper sent refusals' bodies on h2, a protocol
/// error for clients), refusals included.
#[tokio::test(flavor = "multi_thread")]
async fn head_is_get_without_a_body_on_both_protocols() {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;

    let app = TestApp::start(vec![ServiceName::Kms], &[], None).await;
    let public = app.public(ServiceName::Kms).to_owned();
    // (path, the GET status, the HEAD status)
    let cases = [
        ("/browser/", 200),
        ("/service/api/v1/openapi.yaml", 200),
        ("/service/api/v1/elastickeys", 401),
    ];
    for (path, want) in cases {
        let url = format!("{public}{path}");
        let get = app.client.get(&url).await.unwrap();
        assert_eq!(get.status, want, "GET {path}");
        assert!(!get.body.is_empty(), "GET {path} has a body");
        let head = app
            .client
            .send(Method::HEAD, &url, &[], Default::default())
            .await
            .unwrap();
        assert_eq!(head.status, want, "HEAD {path} over HTTP/1.1");
        assert!(head.body.is_empty());
        assert_eq!(
            head.headers.get("content-type"),
            get.headers.get("content-type"),
            "HEAD {path}: the GET answer's headers"
        );
    }

    let tls = tls_connect(&app, &public, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (path, want) in cases {
        let req = hyper::Request::builder()
            .method(Method::HEAD)
            .uri(format!("{public}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let r = sender.send_request(req).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "HEAD {path} over h2");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body.is_empty(),
            "HEAD {path} over h2 sent {} bytes",
            body.len()
        );
    }
    app.stop().await;
}

/// Grants (issue 20, LOW): a tenant's client with scope `identity` gives new clients only the
/// scopes its own token holds (it made clients with `kms` before); the operator tenant, the
/// root of trust, is not bounded.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_grants_only_the_scopes_its_token_holds() {
    use super::identity::{admin, bootstrap, client_token, tenant_token};
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(vec![ServiceName::IdentityAuthz], &[], Some(&data)).await;
    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let acme = tenant_token(&app, &operator, "acme", "identity").await;

    for scopes in [json!(["kms"]), json!(["identity", "jose"])] {
        let (status, v) = admin(
            &app,
            &acme,
            Method::POST,
            "/clients",
            Some(json!({"name": "wider", "scopes": scopes})),
        )
        .await;
        assert_eq!(status, 403, "{scopes}: {v}");
        assert!(v.to_string().contains("scopes"), "{v}");
    }
    let (status, v) = admin(
        &app,
        &acme,
        Method::POST,
        "/clients",
        Some(json!({"name": "same", "scopes": ["identity"]})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Unsaid scopes: those the caller holds, not every API scope.
    let (status, v) = admin(
        &app,
        &acme,
        Method::POST,
        "/clients",
        Some(json!({"name": "default"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["scopes"], json!(["identity"]));
    // A client refused made nothing.
    let (_, list) = admin(&app, &acme, Method::GET, "/clients", None).await;
    let names: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"wider"), "{names:?}");

    // The operator's token with `identity` alone still makes a tenant's kms client.
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "acme kms", "tenant": "acme", "scopes": ["kms"]})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    app.stop().await;
}

/// The leaf a listener presents now (DER).
async fn presented_leaf(app: &TestApp, base: &str) -> Vec<u8> {
    let tls = tls_connect(app, base, &[b"http/1.1"]).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// sslyze's Mozilla "modern" check (issue 20): dynamic leaves live 90 days, not 397, and are
/// renewed while the service runs, two thirds into their life (here a life of 30 s), presented
/// from the next handshake on; clients trusting the suite's anchor notice nothing.
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_leaves_live_90_days_and_are_renewed_while_running() {
    use cryptoutil_protocols::pki::validity;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let app = TestApp::start(vec![ServiceName::Kms], &[], None).await;
    let public = app.public(ServiceName::Kms).to_owned();
    let (not_before, not_after) = validity(&presented_leaf(&app, &public).await).unwrap();
    // Back-dated an hour for clock skew.
    assert_eq!(not_after - not_before, 90 * 86_400 + 3600);
    app.stop().await;

    let app = TestApp::start(
        vec![ServiceName::Kms, ServiceName::Jose],
        &[("CRYPTOUTIL_TLS__LEAF_LIFETIME", "30s")],
        None,
    )
    .await;
    let public = app.public(ServiceName::Kms).to_owned();
    let first = presented_leaf(&app, &public).await;
    let (_, first_end) = validity(&first).unwrap();
    let due = first_end - 10;
    let renewed = loop {
        let leaf = presented_leaf(&app, &public).await;
        if leaf != first {
            break leaf;
        }
        assert!(now() < first_end, "not renewed before it expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        now() >= due,
        "renewed at {} before it was due at {due}",
        now()
    );
    let (_, renewed_end) = validity(&renewed).unwrap();
    assert!(
        renewed_end >= first_end + 15,
        "{first_end} -> {renewed_end}"
    );
    // Every service of the process, and requests go on over the new certificate.
    let jose = app.public(ServiceName::Jose).to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while validity(&presented_leaf(&app, &jose).await).unwrap().1 < first_end + 15 {
        assert!(
            Instant::now() < deadline,
            "jose's leaf was not renewed with the KMS's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = app.client.get(&format!("{public}/browser/")).await.unwrap();
    assert_eq!(r.status, 200);
    app.stop().await;
}

/// The REST APIs answer every error as JSON (issue 20, schemathesis's finding): the
/// framework's own rejections (a method the route lacks, a query that does not parse) came as
/// plain text or empty bodies.
#[tokio::test(flavor = "multi_thread")]
async fn framework_rejections_on_the_rest_apis_are_json() {
    let issuer = super::jose_service::Issuer::new();
    let issuers = issuer.vars();
    let app = TestApp::start(
        vec![ServiceName::Jose, ServiceName::Ca],
        &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", issuers.as_str())],
        None,
    )
    .await;
    let jose = format!("Bearer {}", issuer.token("acme", "jose", "jose", 300));
    let ca = format!("Bearer {}", issuer.token("acme", "ca", "ca ca-ra", 300));
    let cases = [
        (
            Method::PUT,
            format!("{}/service/api/v1/jose/jwks", app.public(ServiceName::Jose)),
            &jose,
            405,
            "method_not_allowed",
        ),
        (
            Method::GET,
            format!(
                "{}/service/api/v1/ca/ra/requests?bogus=1",
                app.public(ServiceName::Ca)
            ),
            &ca,
            400,
            "bad_request",
        ),
    ];
    for (method, url, auth, status, code) in cases {
        let r = app
            .client
            .send(
                method.clone(),
                &url,
                &[("authorization", auth.as_str())],
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, status, "{method} {url}: {}", r.text());
        assert_eq!(
            r.headers["content-type"], "application/json",
            "{method} {url}"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A public listener's 404 outside both stacks carries the headers of an API answer.
    let r = app
        .client
        .get(&format!("{}/", app.public(ServiceName::Jose)))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(
        r.headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    app.stop().await;
}

/// The audit log of `service` as the admin listener reads it (every tenant), and whether its
/// chain verifies.
async fn audit_of(app: &TestApp, service: ServiceName) -> (Vec<serde_json::Value>, bool) {
    let admin = app.admin(service);
    let read = |url: String| async move {
        let r = app.client.get(&url).await.unwrap();
        assert_eq!(r.status, 200, "{url}");
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
    };
    let page = read(format!("{admin}/admin/v1/audit?limit=1000")).await;
    let verify = read(format!("{admin}/admin/v1/audit/verify")).await;
    (
        page["records"].as_array().unwrap().clone(),
        verify["valid"] == serde_json::Value::Bool(true),
    )
}

/// `(op, outcome, key)` of each record.
fn ops(records: &[serde_json::Value]) -> Vec<(String, String, String)> {
    records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("op"), s("outcome"), s("key"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn security_events_are_audited_in_each_services_chain() {
    use super::identity::{admin, bootstrap, client_token, token_call, token_request};
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::Jose,
        ],
        &[],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let grant = [("grant_type", "client_credentials"), ("scope", "identity")];
    let (status, _, _) =
        token_request(&app, Some((&boot.client_id, "not-the-secret")), &grant).await;
    assert_eq!(status, 401);
    let (status, made) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "audited"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["client_id"].as_str().unwrap().to_owned();
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "bad", "scopes": ["nope"]})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = admin(
        &app,
        &operator,
        Method::DELETE,
        &format!("/clients/{id}"),
        None,
    )
    .await;
    assert!(status == 204 || status == 200, "{status} {v}");
    let (status, _) = token_call(
        &app,
        "introspect",
        Some((&boot.client_id, "not-the-secret")),
        &operator,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = token_call(
        &app,
        "revoke",
        Some((&boot.client_id, &boot.secret)),
        &operator,
    )
    .await;
    assert_eq!(status, 200);
    // A refused credential at another service.
    let jose = app.public(ServiceName::Jose).to_owned();
    let r = app
        .client
        .send(
            Method::GET,
            &format!("{jose}/service/api/v1/jose/keys"),
            &[("authorization", "Bearer e30.e30.c2ln")],
            Vec::new().into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    let (records, valid) = audit_of(&app, ServiceName::IdentityAuthz).await;
    assert!(valid, "identity-authz's chain verifies");
    let seen = ops(&records);
    let has = |op: &str, outcome: &str, key: &str| {
        seen.iter()
            .any(|(o, out, k)| o == op && out == outcome && k.starts_with(key))
    };
    assert!(has("token", "ok", "client_credentials:"), "{seen:?}");
    assert!(has("token", "error", "client_credentials"), "{seen:?}");
    assert!(has("create-client", "ok", &id), "{seen:?}");
    assert!(has("create-client", "error", "bad"), "{seen:?}");
    assert!(has("delete-client", "ok", &id), "{seen:?}");
    assert!(has("introspect", "error", ""), "{seen:?}");
    assert!(has("revoke", "ok", ""), "{seen:?}");
    assert!(has("register-client", "ok", "browser-"), "{seen:?}");
    let issued = records
        .iter()
        .find(|r| r["op"] == "token" && r["outcome"] == "ok")
        .unwrap();
    assert_eq!(issued["who"], json!(boot.client_id), "{issued}");
    assert_eq!(issued["tenant"], json!(boot.tenant), "{issued}");
    // No secret reaches the log.
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains(&boot.secret)
            && !text.contains("not-the-secret")
            && !text.contains(&operator)
    );

    let (records, valid) = audit_of(&app, ServiceName::Jose).await;
    assert!(valid, "jose's chain verifies");
    assert!(
        ops(&records).iter().any(|(o, out, k)| o == "authenticate"
            && out == "error"
            && k == "service GET /service/api/v1/jose/keys"),
        "{records:?}"
    );
    app.stop().await;
}
