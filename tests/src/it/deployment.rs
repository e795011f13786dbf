//! What a multi-container deployment relies on, tested without containers: the metrics-only
//! listener (GET /metrics and nothing of the admin API, behind its own allow-list), the suite
//! CA of `cryptoutil pki issue` (judged by `openssl verify`) serving as static TLS material,
//! federation clients declared in configuration, and `healthcheck --method POST`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::{tls, HttpsClient, Method};
use serde_json::json;

use super::identity::{admin, bootstrap, client_token, token_call};
use crate::{run_cli, Process, TestApp};

fn metrics_url(app: &TestApp, service: ServiceName) -> String {
    app.endpoints[&service]
        .metrics
        .clone()
        .expect("a metrics listener")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_listener_serves_metrics_only_and_only_to_its_allow_list() {
    let on = [
        ("CRYPTOUTIL_SERVICES__JOSE__METRICS__ENABLED", "true"),
        (
            "CRYPTOUTIL_SERVICES__JOSE__METRICS__BIND_ADDRESS",
            "127.0.0.1",
        ),
    ];
    let app = TestApp::start(vec![ServiceName::Jose], &on, None).await;
    let base = metrics_url(&app, ServiceName::Jose);
    assert_ne!(base, app.admin(ServiceName::Jose));
    let r = app.client.get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("cryptoutil_fips_mode"), "{}", r.text());
    // Nothing of the admin API is there: not the metrics under their admin path, not shutdown.
    for (method, path) in [
        (Method::GET, "/admin/v1/metrics"),
        (Method::GET, "/admin/v1/healthz"),
        (Method::POST, "/admin/v1/shutdown"),
        (Method::GET, "/admin/v1/supervision"),
        (Method::POST, "/metrics"),
    ] {
        let r = app
            .client
            .send(
                method.clone(),
                &format!("{base}{path}"),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
        assert!(
            r.status == 404 || r.status == 405,
            "{method} {path}: {}",
            r.status
        );
    }
    let livez = format!("{}/admin/v1/livez", app.admin(ServiceName::Jose));
    assert_eq!(
        app.client.get(&livez).await.unwrap().status,
        200,
        "still up"
    );
    app.stop().await;

    // A client outside the allow-list: 403 before anything else.
    let mut elsewhere = on.to_vec();
    elsewhere.push(("CRYPTOUTIL_HTTP__METRICS__IP_ALLOWLIST", "[10.0.0.0/8]"));
    let app = TestApp::start(vec![ServiceName::Jose], &elsewhere, None).await;
    let base = metrics_url(&app, ServiceName::Jose);
    let r = app.client.get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status, 403);
    app.stop().await;

    // Off by default.
    let app = TestApp::start(vec![ServiceName::Jose], &[], None).await;
    assert!(app.endpoints[&ServiceName::Jose].metrics.is_none());
    app.stop().await;
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// `cryptoutil pki client-key`: a private JWK for the client (0600) and its public JWK Set for
/// identity-authz (no private member), which joserfc reads; never overwritten.
#[test]
fn pki_client_key_makes_a_private_jwk_and_its_public_set() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("secrets");
    let args = [
        "pki",
        "client-key",
        "--out",
        &path(&out),
        "--name",
        "identity-rp-client",
    ];
    let (code, stdout, err) = run_cli(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("identity-rp-client.jwk"), 0o600);
    assert_eq!(mode("identity-rp-client.pub.jwk"), 0o644);
    let private: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("identity-rp-client.jwk")).unwrap())
            .unwrap();
    let set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("identity-rp-client.pub.jwk")).unwrap())
            .unwrap();
    assert_eq!(
        (private["kty"].as_str(), private["alg"].as_str()),
        (Some("EC"), Some("ES256"))
    );
    assert!(private["d"].is_string());
    let public = &set["keys"][0];
    assert_eq!(
        (public["x"].clone(), public["kid"].clone()),
        (private["x"].clone(), private["kid"].clone())
    );
    assert!(
        public.get("d").is_none(),
        "the public set holds no private member: {set}"
    );
    // An independent reader: joserfc imports the set and the private key.
    let report = super::jose_interop::run(&[
        "import-jwk",
        &path(&out.join("identity-rp-client.jwk")),
        &path(&out.join("identity-rp-client.pub.jwk")),
    ]);
    assert_eq!(report["ok"], true, "{report}");
    let (code, _, err) = run_cli(&args, &[]);
    assert_eq!(code, 64, "never overwritten: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pki_issue_makes_a_suite_ca_openssl_accepts_and_services_serve_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("secrets");
    let (code, stdout, err) = run_cli(
        &[
            "pki",
            "issue",
            "--out",
            &path(&out),
            "--names",
            "kms,identity-authz",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("kms.key"), 0o600);
    assert_eq!(mode("suite-ca.pem"), 0o644);
    // openssl judges the chains: leaf + intermediate against the root, for TLS servers, with
    // the service's name.
    for name in ["kms", "identity-authz"] {
        let leaf = path(&out.join(format!("{name}.pem")));
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            &path(&out.join("suite-ca.pem")),
            "-untrusted",
            &leaf,
            "-purpose",
            "sslserver",
            "-verify_hostname",
            name,
            &leaf,
        ]);
        assert!(ok, "{name}: {text}");
    }
    // Nothing is overwritten; bad names are refused.
    for names in ["kms", "Bad_Name", "kms,kms", "suite-ca"] {
        let fresh = if names == "kms" {
            out.clone()
        } else {
            tmp.path().join("other")
        };
        let (code, _, err) = run_cli(
            &["pki", "issue", "--out", &path(&fresh), "--names", names],
            &[],
        );
        assert_eq!(code, 64, "{names}: {err}");
    }

    // A service serves with the issued leaf; a client trusting only the suite CA connects.
    let chain = format!("file://{}", path(&out.join("kms.pem")));
    let key = format!("file://{}", path(&out.join("kms.key")));
    let anchor = format!("[file://{}]", path(&out.join("suite-ca.pem")));
    let mut p = Process::spawn(
        &tmp.path().join("data"),
        &["serve", "kms"],
        &[
            ("CRYPTOUTIL_TLS__MODE", "static"),
            ("CRYPTOUTIL_TLS__CERT_CHAIN", &chain),
            ("CRYPTOUTIL_TLS__PRIVATE_KEY", &key),
            ("CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS", &anchor),
        ],
    );
    let endpoints = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(20)));
    let ca = std::fs::read(out.join("suite-ca.pem")).unwrap();
    let client = HttpsClient::new(tls::client_config_from_pem(&ca).unwrap());
    let r = client
        .get(&format!("{}/admin/v1/livez", endpoints["kms"].admin))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // healthcheck --method POST reaches the admin shutdown route (inside the host, as a
    // container's own health check would): the process drains and exits 0.
    let shutdown = format!("{}/admin/v1/shutdown", endpoints["kms"].admin);
    let ca_file = path(&out.join("suite-ca.pem"));
    let (code, _, err) = run_cli(
        &[
            "healthcheck",
            "--method",
            "POST",
            "--ca-file",
            &ca_file,
            &shutdown,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let status = tokio::task::block_in_place(|| p.wait_exit(Duration::from_secs(10)));
    assert!(status.success());
    let (code, _, _) = run_cli(&["healthcheck", "--method", "DELETE", &shutdown], &[]);
    assert_ne!(code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn federation_clients_from_configuration_are_resource_servers_whose_secret_is_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let secret_file = tmp.path().join("fed-secret");
    let secret = "a-federation-secret-of-forty-characters!!";
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let clients = format!(
        "[{{client_id: kms-federation, secret: \"file://{}\", scopes: [jose]}}]",
        secret_file.display()
    );
    // A fixed issuer: tokens from before the restart stay ours (the default is the bound URL,
    // whose port is dynamic here).
    let vars = [
        ("CRYPTOUTIL_IDENTITY__FEDERATION_CLIENTS", clients.as_str()),
        ("CRYPTOUTIL_IDENTITY__ISSUER", "https://issuer.test"),
    ];
    let services = vec![ServiceName::IdentityAuthz, ServiceName::Jose];
    let app = TestApp::start(services.clone(), &vars, Some(&data)).await;
    let boot = bootstrap(&data);
    // Another tenant's token, meant for jose: the configured client sees it active.
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let (s, _) = admin(
        &app,
        &operator,
        Method::POST,
        "/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, worker) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "w", "tenant": "acme", "scopes": ["jose"], "audiences": ["jose"]})),
    )
    .await;
    assert_eq!(s, 201, "{worker}");
    // The configuration's clients are known by their name: the admin API cannot take it (the
    // start that prunes them would remove such a client).
    let (s, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "federated service (configured)", "resource_server": true, "scopes": ["jose"]})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let w = client_token(
        &app,
        worker["client_id"].as_str().unwrap(),
        worker["client_secret"].as_str().unwrap(),
        "jose",
    )
    .await;
    let (s, v) = token_call(&app, "introspect", Some(("kms-federation", secret)), &w).await;
    assert_eq!(
        (s, v["active"].as_bool(), v["tenant"].as_str()),
        (200, Some(true), Some("acme")),
        "{v}"
    );
    let own = client_token(&app, "kms-federation", secret, "jose").await;
    assert!(!own.is_empty());
    app.stop().await;

    // The file is the truth: a new secret replaces the old one at the next start.
    let rotated = "another-federation-secret-of-forty-chars!";
    std::fs::write(&secret_file, rotated).unwrap();
    let app = TestApp::start(services.clone(), &vars, Some(&data)).await;
    let (s, _) = token_call(&app, "introspect", Some(("kms-federation", secret)), &w).await;
    assert_eq!(s, 401, "the old secret is refused");
    let (s, v) = token_call(&app, "introspect", Some(("kms-federation", rotated)), &w).await;
    assert_eq!((s, v["active"].as_bool()), (200, Some(true)));
    app.stop().await;

    // No longer declared: removed at the next start, its secret gets nothing more.
    let app = TestApp::start(
        services.clone(),
        &[("CRYPTOUTIL_IDENTITY__ISSUER", "https://issuer.test")],
        Some(&data),
    )
    .await;
    let (s, _) = token_call(&app, "introspect", Some(("kms-federation", rotated)), &w).await;
    assert_eq!(s, 401, "a client the configuration dropped is gone");
    app.stop().await;

    // A secret too short to be a generated one is refused at start, naming the key.
    std::fs::write(&secret_file, "short").unwrap();
    let (code, _, err) = run_cli(
        &[
            "--data-dir",
            &path(&tmp.path().join("other")),
            "serve",
            "identity-authz",
        ],
        &[("CRYPTOUTIL_IDENTITY__FEDERATION_CLIENTS", clients.as_str())],
    );
    assert_ne!(code, 0);
    assert!(err.contains("identity.federation_clients[0]"), "{err}");
}

/// Every document of `file` under deploy/kubernetes, as JSON values.
fn manifests(file: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize as _;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The Kubernetes manifests (no cluster here: what they say is checked, and their
/// configuration is loaded by the real binary): every service runs two replicas on
/// PostgreSQL, probed by `cryptoutil healthcheck` on the loopback admin listener, which no
/// container port, Service or NetworkPolicy exposes; a PodDisruptionBudget keeps one replica
/// up; every pod starts from a default deny; and `cryptoutil config check` accepts each
/// Deployment's environment (the admin listener's address is no setting: always 127.0.0.1).
#[test]
fn the_kubernetes_manifests_keep_admin_listeners_unreachable_and_are_valid_configuration() {
    use serde_json::Value;
    let kustomization = manifests("kustomization.yaml");
    let listed: Vec<&str> = kustomization[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let namespace = manifests("namespace.yaml");
    assert!(
        namespace.iter().any(|d| d["kind"] == "NetworkPolicy"
            && d["spec"]["podSelector"] == json!({})
            && d["spec"]["policyTypes"] == json!(["Ingress", "Egress"])
            && d["spec"].get("ingress").is_none()),
        "a default deny for every pod"
    );
    let material = tempfile::tempdir().unwrap();
    let secrets = material.path();
    let (code, _, err) = run_cli(
        &[
            "pki",
            "issue",
            "--out",
            secrets.join("pki").to_str().unwrap(),
            "--names",
            "identity-authz,identity-idp,jose,kms,ca",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(
        &[
            "unseal",
            "generate",
            "--threshold",
            "3",
            "--shares",
            "5",
            "--out",
            secrets.join("shares").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let services = ["identity-authz", "identity-idp", "jose", "kms", "ca"];
    for name in services {
        let file = format!("{name}.yaml");
        assert!(
            listed.contains(&file.as_str()),
            "{file} in kustomization.yaml"
        );
        let docs = manifests(&file);
        let of = |kind: &str| -> Value {
            docs.iter()
                .find(|d| d["kind"] == kind)
                .unwrap_or_else(|| panic!("{file}: no {kind}"))
                .clone()
        };
        let (deployment, service, pdb, policy) = (
            of("Deployment"),
            of("Service"),
            of("PodDisruptionBudget"),
            of("NetworkPolicy"),
        );
        let labels = &deployment["spec"]["selector"]["matchLabels"];
        assert_eq!(labels["app.kubernetes.io/name"], name);
        assert!(
            deployment["spec"]["replicas"].as_u64().unwrap() >= 2,
            "{name}"
        );
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        let container = &pod["containers"][0];
        assert_eq!(container["args"], json!(["serve", name]));
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        let env: Vec<(String, String)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let var = |suffix: &str| {
            env.iter()
                .find(|(k, _)| k.ends_with(suffix))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name}: no *{suffix}"))
        };
        let (public, admin): (u64, u64) = (
            var("__PUBLIC__PORT").parse().unwrap(),
            var("__ADMIN__PORT").parse().unwrap(),
        );
        assert_eq!(var("STORAGE__BACKEND"), "postgres");
        for (probe, route) in [("readinessProbe", "readyz"), ("livenessProbe", "livez")] {
            let command = &container[probe]["exec"]["command"];
            assert_eq!(command[0], "/cryptoutil", "{name} {probe}");
            assert_eq!(command[1], "healthcheck", "{name} {probe}");
            assert_eq!(
                command[2],
                format!("https://127.0.0.1:{admin}/admin/v1/{route}"),
                "{name} {probe}: the loopback admin listener"
            );
        }
        let ports = |list: &Value, key: &str| -> Vec<u64> {
            list.as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p[key].as_u64())
                .collect()
        };
        assert_eq!(
            ports(&container["ports"], "containerPort"),
            vec![public, 9400],
            "{name}"
        );
        assert_eq!(service["spec"]["selector"], *labels, "{name}");
        assert_eq!(ports(&service["spec"]["ports"], "port"), vec![public, 9400]);
        assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels, "{name}");
        assert_eq!(pdb["spec"]["minAvailable"], 1, "{name}");
        assert_eq!(policy["spec"]["podSelector"]["matchLabels"], *labels);
        let admitted: Vec<u64> = policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| ports(&rule["ports"], "port"))
            .collect();
        assert_eq!(
            admitted,
            vec![public, 9400],
            "{name}: nothing else admitted"
        );
        assert!(!admitted.contains(&admin));

        // The environment is configuration the binary accepts, with each mounted secret
        // replaced by real material of its kind.
        let file_for = |path: &str| -> String {
            let rel = path.trim_start_matches("/run/secrets/");
            let target = secrets.join("mounted").join(name).join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let content: Vec<u8> = match rel {
                "tls/tls.crt" => std::fs::read(secrets.join(format!("pki/{name}.pem"))).unwrap(),
                "tls/tls.key" => std::fs::read(secrets.join(format!("pki/{name}.key"))).unwrap(),
                "trust/trust.pem" | "postgres/ca.pem" => {
                    std::fs::read(secrets.join("pki/suite-ca.pem")).unwrap()
                }
                "postgres/url" => {
                    b"postgresql://cryptoutil:secret@postgresql.databases.svc:5432/cryptoutil"
                        .to_vec()
                }
                r if r.starts_with("unseal/share-") => std::fs::read(
                    secrets.join(format!("shares/{}.txt", r.trim_start_matches("unseal/"))),
                )
                .unwrap(),
                _ => b"0123456789abcdefghijklmnopqrstuvwxyzABCDEF".to_vec(),
            };
            std::fs::write(&target, content).unwrap();
            target.display().to_string()
        };
        let rewritten: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                while let Some(start) = v.find("/run/secrets/") {
                    let end = v[start..]
                        .find(['"', ',', ']', ' '])
                        .map_or(v.len(), |e| start + e);
                    let path = v[start..end].to_owned();
                    v.replace_range(start..end, &file_for(&path));
                }
                (k.clone(), v)
            })
            .collect();
        let vars: Vec<(&str, &str)> = rewritten
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (code, out, err) = run_cli(&["config", "check"], &vars);
        assert_eq!(code, 0, "{name}: {err}{out}");
        let checked: Value = {
            use serde::Deserialize as _;
            Value::deserialize(serde_norway::Deserializer::from_str(&out)).unwrap()
        };
        let key = name.replace('-', "_");
        let listeners = &checked["services"][key.as_str()];
        // The admin listener's address is not configuration at all: always 127.0.0.1.
        assert_eq!(listeners["admin"]["port"], admin, "{name}: {out}");
        assert!(
            listeners["admin"].get("bind_address").is_none(),
            "{name}: {out}"
        );
        assert_eq!(listeners["public"]["port"], public, "{name}");
        assert_eq!(checked["storage"]["backend"], "postgres", "{name}");
    }
}
