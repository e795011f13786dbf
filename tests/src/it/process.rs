//! The real binary as a process: graceful shutdown (SIGTERM and the admin route), exit 64 on
//! invalid configuration, startup time with an existing data dir, one service alone, the
//! healthcheck command, and M-of-N unseal shares.

use std::path::Path;
use std::time::Duration;

use cryptoutil_bin::run::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{run_cli, Process};

fn port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn dir_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// Opens a TLS connection to 127.0.0.1:`port` trusting the process's anchor.
async fn tls_connect(
    proc_: &Process,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let ca = std::fs::read(cryptoutil_bin::pki::anchor_path(&proc_.data_dir)).unwrap();
    let config = cryptoutil_federation::tls::client_config_from_pem(&ca).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

fn store_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "redb"))
        .collect();
    files.push(data.join("tls").join("pki.redb"));
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0_within_5s() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut p = Process::spawn(
        &data,
        &["suite"],
        &[("CRYPTOUTIL_ADMIN__DANGER_FAULT_INJECTION", "true")],
    );
    let endpoints = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(20)));
    let admin = port(&endpoints["kms"].admin);

    // A request whose body is still arriving when the signal comes.
    let body = br#"{"path":"kms/health"}"#;
    let mut tls = tls_connect(&p, admin).await;
    let head = format!(
        "POST /admin/v1/faults/crash HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = tokio::time::Instant::now();
    p.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls.write_all(&body[10..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 202"),
        "the in-flight request was cut off: {response:?}\n{}",
        p.log_text()
    );

    let status = tokio::task::block_in_place(|| p.wait_exit(Duration::from_secs(6)));
    assert!(status.success(), "exit status {status}:\n{}", p.log_text());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        !cryptoutil_bin::run::endpoints_path(&data).exists(),
        "stale endpoints.json left behind"
    );
    for file in store_files(&data) {
        assert!(
            !cryptoutil_storage::backend::needs_repair(&file).unwrap(),
            "{} was not closed cleanly",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_shutdown_route_exits_0_and_closes_every_store_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut p = Process::spawn(&data, &["suite"], &[]);
    let endpoints = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(20)));
    let r = p
        .client()
        .send(
            hyper::Method::POST,
            &format!("{}/admin/v1/shutdown", endpoints["identity-rp"].admin),
            &[("content-type", "application/json")],
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let started = tokio::time::Instant::now();
    let status = tokio::task::block_in_place(|| p.wait_exit(Duration::from_secs(6)));
    assert!(status.success(), "exit status {status}:\n{}", p.log_text());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(store_files(&data).len(), 9);
    for file in store_files(&data) {
        assert!(
            !cryptoutil_storage::backend::needs_repair(&file).unwrap(),
            "{} was not closed cleanly",
            file.display()
        );
    }
}

#[test]
fn invalid_configurations_exit_64_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dir_str(&tmp.path().join("data"));
    let file = tmp.path().join("bad.yaml");
    std::fs::write(&file, "services:\n  kms:\n    public:\n      prot: 1\n").unwrap();
    let file = dir_str(&file);
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", &file, "suite"],
            vec![],
            "services.kms.public.prot",
        ),
        (
            vec!["suite"],
            vec![("CRYPTOUTIL_SERVICES__JOSE__ADMIN__PORT", "70000")],
            "services.jose.admin.port",
        ),
        (
            vec!["suite"],
            vec![("CRYPTOUTIL_SERVICES__JOSE__ADMIN__PORT", "-1")],
            "services.jose.admin.port",
        ),
        (
            vec!["serve", "kms"],
            vec![("CRYPTOUTIL_TLS__PRIVATE_KEY", "file:///nonexistent/tls.key")],
            "tls.private_key",
        ),
        (
            vec!["config", "check"],
            vec![(
                "CRYPTOUTIL_BARRIER__UNSEAL__SHARES",
                "[/nonexistent/share-1.txt]",
            )],
            "barrier.unseal.shares[0]",
        ),
        (
            vec!["suite"],
            vec![("CRYPTOUTIL_NO_SUCH_KEY", "1")],
            "no_such_key",
        ),
    ];
    for (args, env, key) in cases {
        let mut full = vec!["--data-dir", &data];
        full.extend(args.iter().copied());
        let (code, _out, err) = run_cli(&full, &env);
        assert_eq!(code, 64, "{args:?} {env:?}: {err}");
        assert!(
            err.contains(&format!("`{key}`")),
            "{args:?} {env:?} should name {key}: {err}"
        );
    }
    assert!(
        !tmp.path().join("data").exists(),
        "an invalid configuration must not create the data dir"
    );
}

#[test]
fn config_check_prints_the_merged_configuration_with_secrets_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let value = format!("file://{}", key.display());
    let (code, out, err) = run_cli(
        &["--data-dir", &dir_str(tmp.path()), "config", "check"],
        &[
            ("CRYPTOUTIL_TLS__PRIVATE_KEY", value.as_str()),
            ("CRYPTOUTIL_SERVICES__KMS__PUBLIC__PORT", "18080"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("TOPSECRET"), "{out}");
    assert!(out.contains("private_key: <redacted>"), "{out}");
    assert!(out.contains("port: 18080"), "{out}");
}

#[test]
fn the_suite_is_ready_within_2s_with_an_existing_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut first = Process::spawn(&data, &["suite"], &[]);
    first.wait_ready(Duration::from_secs(20));
    first.sigterm();
    assert!(first.wait_exit(Duration::from_secs(6)).success());

    let started = tokio::time::Instant::now();
    let mut second = Process::spawn(&data, &["suite"], &[]);
    let endpoints = second.wait_ready(Duration::from_secs(10));
    let elapsed = started.elapsed();
    assert_eq!(endpoints.len(), 8);
    assert!(
        elapsed < Duration::from_secs(2),
        "ready after {elapsed:?}:\n{}",
        second.log_text()
    );
    let log = second.log_text();
    assert!(
        log.contains("DEVELOPMENT SETUP"),
        "the dev unseal share must be announced loudly:\n{log}"
    );
    assert!(
        !log.contains("generated the suite's private TLS CA"),
        "the CA is reused:\n{log}"
    );
    second.sigterm();
    assert!(second.wait_exit(Duration::from_secs(6)).success());
}

#[test]
fn one_service_alone_and_the_healthcheck_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut p = Process::spawn(&data, &["serve", "jose"], &[]);
    let endpoints: std::collections::BTreeMap<String, Endpoint> =
        p.wait_ready(Duration::from_secs(20));
    assert_eq!(endpoints.keys().collect::<Vec<_>>(), ["jose"]);
    let d = dir_str(&data);
    let livez = format!("{}/admin/v1/livez", endpoints["jose"].admin);
    assert_eq!(
        run_cli(&["--data-dir", &d, "healthcheck", &livez], &[]).0,
        0
    );
    let protected = format!("{}/service/api/v1/info", endpoints["jose"].public);
    assert_eq!(
        run_cli(&["--data-dir", &d, "healthcheck", &protected], &[]).0,
        1,
        "401 is not healthy"
    );
    let closed = "https://127.0.0.1:1/admin/v1/livez";
    assert_eq!(
        run_cli(&["--data-dir", &d, "healthcheck", closed], &[]).0,
        1
    );
    let (code, _, err) = run_cli(&["--data-dir", &d, "serve", "nope"], &[]);
    assert_eq!(code, 64, "{err}");
    p.sigterm();
    assert!(p.wait_exit(Duration::from_secs(6)).success());
}

#[test]
fn three_of_five_unseal_shares() {
    let tmp = tempfile::tempdir().unwrap();
    let shares_dir = tmp.path().join("shares");
    let (code, out, err) = run_cli(
        &[
            "unseal",
            "generate",
            "--threshold",
            "3",
            "--shares",
            "5",
            "--out",
            &dir_str(&shares_dir),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let shares: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(shares.len(), 5);
    let data = tmp.path().join("data");
    let list = |idx: &[usize]| {
        format!(
            "[{}]",
            idx.iter()
                .map(|i| shares[*i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let env_for = |value: &str| {
        vec![
            (
                "CRYPTOUTIL_BARRIER__UNSEAL__SHARES".to_owned(),
                value.to_owned(),
            ),
            (
                "CRYPTOUTIL_BARRIER__UNSEAL__DEV_GENERATE".to_owned(),
                "false".to_owned(),
            ),
        ]
    };

    // M-1 shares: the process starts sealed (a_process_short_of_shares_starts_sealed_and_an_
    // operator_unseals_it goes on from there) and stops cleanly on SIGTERM.
    let env = env_for(&list(&[0, 1]));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut p = Process::spawn(&data, &["serve", "kms"], &env_ref);
    p.wait_ready(Duration::from_secs(20));
    p.sigterm();
    assert!(
        p.wait_exit(Duration::from_secs(6)).success(),
        "{}",
        p.log_text()
    );
    assert!(p.log_text().contains("SEALED"), "{}", p.log_text());

    // Any M shares work, and different subsets open the same store.
    for subset in [[0usize, 1, 2], [2, 3, 4]] {
        let env = env_for(&list(&subset));
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut p = Process::spawn(&data, &["serve", "kms"], &env_ref);
        p.wait_ready(Duration::from_secs(20));
        assert!(
            !data.join("unseal").exists(),
            "no dev share when shares are configured"
        );
        p.sigterm();
        assert!(
            p.wait_exit(Duration::from_secs(6)).success(),
            "{}",
            p.log_text()
        );
    }

    // A wrong share is detected; with a fourth share the wrong one is named.
    let text = std::fs::read_to_string(&shares[1]).unwrap();
    let fields: Vec<&str> = text.trim().split('.').collect();
    let mut value = fields[4].to_owned();
    let flipped = if value.starts_with('A') { "B" } else { "A" };
    value.replace_range(0..1, flipped);
    let forged = [
        fields[0], fields[1], fields[2], fields[3], &value, fields[5],
    ]
    .join(".");
    let forged_path = tmp.path().join("forged-share-2.txt");
    std::fs::write(&forged_path, forged).unwrap();
    let with_forged = format!(
        "[{}, {}, {}, {}]",
        shares[0],
        forged_path.display(),
        shares[2],
        shares[3]
    );
    let env = env_for(&with_forged);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (code, _, err) = run_cli(&["--data-dir", &dir_str(&data), "serve", "kms"], &env_ref);
    assert_ne!(code, 0);
    assert!(
        err.contains("a share is wrong") && err.contains("suspect share index 2"),
        "{err}"
    );

    // Shares of another set do not open this data directory.
    let other_dir = tmp.path().join("other");
    let (code, out, _) = run_cli(
        &[
            "unseal",
            "generate",
            "--threshold",
            "1",
            "--shares",
            "1",
            "--out",
            &dir_str(&other_dir),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let env = env_for(&format!("[{}]", out.trim()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (code, _, err) = run_cli(&["--data-dir", &dir_str(&data), "serve", "kms"], &env_ref);
    assert_ne!(code, 0);
    assert!(err.contains("the unseal key does not open"), "{err}");
}

/// `cryptoutil unseal generate` into `dir`: the share lines (their files' paths).
fn share_set(dir: &Path, threshold: &str, total: &str) -> Vec<String> {
    let (code, out, err) = run_cli(
        &[
            "unseal",
            "generate",
            "--threshold",
            threshold,
            "--shares",
            total,
            "--out",
            &dir_str(dir),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|path| {
            std::fs::read_to_string(path.trim())
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_short_of_shares_starts_sealed_and_an_operator_unseals_it() {
    use cryptoutil_federation::{tls, HttpsClient};
    use serde_json::{json, Value};

    let tmp = tempfile::tempdir().unwrap();
    let shares = share_set(&tmp.path().join("shares"), "3", "5");
    let other = share_set(&tmp.path().join("other"), "3", "3");
    let data = tmp.path().join("data");
    let first = tmp.path().join("share-1.txt");
    std::fs::write(&first, &shares[0]).unwrap();
    let configured = format!("[{}]", first.display());
    let env = [
        ("CRYPTOUTIL_BARRIER__UNSEAL__SHARES", configured.as_str()),
        ("CRYPTOUTIL_BARRIER__UNSEAL__DEV_GENERATE", "false"),
    ];
    let mut p = Process::spawn(&data, &["serve", "kms"], &env);
    let endpoints = p.wait_ready(Duration::from_secs(20));
    let (public, admin) = (
        endpoints["kms"].public.clone(),
        endpoints["kms"].admin.clone(),
    );
    let sealed_ca = cryptoutil_bin::pki::sealed_anchor_path(&data);
    let client = HttpsClient::new(tls::client_config_from_file(&sealed_ca).unwrap())
        .with_timeout(Duration::from_secs(10));
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(&url).await.unwrap();
            (
                r.status.as_u16(),
                serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            )
        }
    };
    let submit = |share: String| {
        let (client, url) = (client.clone(), format!("{admin}/admin/v1/unseal"));
        async move {
            let body = json!({ "share": share }).to_string();
            let r = client
                .send(
                    hyper::Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    body.into_bytes().into(),
                )
                .await
                .unwrap();
            (
                r.status.as_u16(),
                serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            )
        }
    };

    // Sealed: crypto routes 503 with the reason, health says sealed, progress 1 of 3.
    let (status, v) = get(format!("{public}/service/api/v1/kms/keys")).await;
    assert_eq!((status, v["error"].as_str()), (503, Some("sealed")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("/admin/v1/unseal"),
        "{v}"
    );
    let (status, v) = get(format!("{admin}/admin/v1/healthz")).await;
    assert_eq!((status, v["status"].as_str()), (503, Some("sealed")), "{v}");
    assert_eq!(get(format!("{admin}/admin/v1/livez")).await.0, 200);
    assert_eq!(get(format!("{admin}/admin/v1/readyz")).await.0, 503);
    let (_, v) = get(format!("{admin}/admin/v1/unseal")).await;
    assert_eq!(v, json!({"sealed": true, "progress": 1, "threshold": 3}));
    assert_eq!(
        get(format!("{admin}/admin/v1/audit")).await.0,
        503,
        "nothing else works"
    );

    // Wrong shares are named and change nothing.
    let (status, v) = submit("cryptoutil-unseal-v1.garbage".into()).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("malformed"), "{v}");
    let (status, v) = submit(other[1].clone()).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("another share set"),
        "{v}"
    );
    let (status, v) = submit(shares[0].clone()).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("already given"),
        "{v}"
    );
    let (status, v) = submit(shares[3].clone()).await;
    assert_eq!(
        (status, v),
        (200, json!({"sealed": true, "progress": 2, "threshold": 3}))
    );
    let (status, v) = submit(shares[4].clone()).await;
    assert_eq!(
        (status, v),
        (200, json!({"sealed": false, "progress": 3, "threshold": 3}))
    );

    // Unsealed without a restart: the same process, the same ports, serving.
    let url = format!("{admin}/admin/v1/readyz");
    let anchor = cryptoutil_bin::pki::anchor_path(&data);
    let ready_at = |url: String| {
        let anchor = anchor.clone();
        async move {
            // The services' anchor is written once they start.
            let Ok(config) = tls::client_config_from_file(&anchor) else {
                return false;
            };
            let client = HttpsClient::new(config).with_timeout(Duration::from_secs(5));
            client.get(&url).await.is_ok_and(|r| r.status == 200)
        }
    };
    let ready = crate::eventually(Duration::from_secs(20), || ready_at(url.clone())).await;
    assert!(ready, "{}", p.log_text());
    assert!(p.child.try_wait().unwrap().is_none(), "the same process");
    assert_eq!(p.wait_ready(Duration::from_secs(1))["kms"].admin, admin);
    let metrics = p
        .client()
        .get(&format!("{admin}/admin/v1/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("cryptoutil_sealed{service=\"kms\"} 0"),
        "{metrics}"
    );
    p.sigterm();
    assert!(
        p.wait_exit(Duration::from_secs(6)).success(),
        "{}",
        p.log_text()
    );

    // Started again without shares: sealed; three shares of another split rebuild a key that
    // does not open this data, and progress starts over.
    let env = [("CRYPTOUTIL_BARRIER__UNSEAL__DEV_GENERATE", "false")];
    let mut p = Process::spawn(&data, &["serve", "kms"], &env);
    let endpoints = p.wait_ready(Duration::from_secs(20));
    let admin = endpoints["kms"].admin.clone();
    let client = HttpsClient::new(tls::client_config_from_file(&sealed_ca).unwrap())
        .with_timeout(Duration::from_secs(10));
    let submit = |share: &str| {
        let (client, url) = (client.clone(), format!("{admin}/admin/v1/unseal"));
        let body = json!({ "share": share }).to_string();
        async move {
            let r = client
                .send(
                    hyper::Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    body.into_bytes().into(),
                )
                .await
                .unwrap();
            (
                r.status.as_u16(),
                serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            )
        }
    };
    let (_, v) = client
        .get(&format!("{admin}/admin/v1/unseal"))
        .await
        .map(|r| (0, serde_json::from_slice::<Value>(&r.body).unwrap()))
        .unwrap();
    assert_eq!(v, json!({"sealed": true, "progress": 0, "threshold": null}));
    submit(&other[0]).await;
    submit(&other[1]).await;
    let (status, v) = submit(&other[2]).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("does not open"),
        "{v}"
    );
    for share in &shares[1..4] {
        let (status, v) = submit(share).await;
        assert_eq!(status, 200, "{v}");
    }
    let url = format!("{admin}/admin/v1/readyz");
    let ready = crate::eventually(Duration::from_secs(20), || ready_at(url.clone())).await;
    assert!(ready, "{}", p.log_text());
    p.sigterm();
    assert!(
        p.wait_exit(Duration::from_secs(6)).success(),
        "{}",
        p.log_text()
    );
}
