//! The KMS performing its JWE/JWS through a real JOSE service (`federation.jose_enabled`),
//! in-process on 127.0.0.1: identity-authz and JOSE in one app, the KMS in another, federated
//! to both, the JOSE service behind the fault proxy. Every algorithm goes through JOSE while it
//! answers; when it stops answering (connections refused, then swallowed as by a paused
//! container) the KMS keeps serving with `internal_crypto` and its breaker opens; when it
//! returns the breaker closes and the KMS goes back to JOSE. What JOSE made, the internal code
//! opens, and the other way round.

use std::time::Duration;

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::b64;
use hyper::Method;
use serde_json::{json, Value};

use super::federation::metric;
use super::identity::{admin, bootstrap, client_token};
use crate::fault_proxy::{Fault, FaultProxy};
use crate::{eventually, TestApp};

async fn kms(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    super::identity::api(app, ServiceName::Kms, token, method, path, body).await
}

async fn kms_metrics(app: &TestApp) -> String {
    let url = format!("{}/admin/v1/metrics", app.admin(ServiceName::Kms));
    app.client.get(&url).await.unwrap().text()
}

async fn jose_state(app: &TestApp) -> String {
    let url = format!("{}/admin/v1/healthz", app.admin(ServiceName::Kms));
    let v: Value = serde_json::from_slice(&app.client.get(&url).await.unwrap().body).unwrap();
    v["peers"]["jose"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

/// The KMS's metrics once `ready` holds of them (calls reach the breaker as casts, so their
/// counters may trail the answers by a moment); the last reading if it never does.
async fn kms_metrics_once(app: &TestApp, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let m = kms_metrics(app).await;
        if ready(&m) || tokio::time::Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn jose_calls(m: &str) -> f64 {
    metric(
        m,
        "federation_request_duration_seconds_count",
        &[("service", "jose")],
    )
}

fn fallbacks(m: &str) -> f64 {
    metric(
        m,
        "federation_fallback_total",
        &[("service", "jose"), ("mode", "internal_crypto")],
    )
}

/// One operation of each kind for the key `id` of `algorithm`; all must succeed. Returns a
/// token it made (a JWE or a JWS) for the cross checks.
async fn exercise(app: &TestApp, token: &str, id: &str, algorithm: &str) -> String {
    let data = b64::encode(format!("data for {algorithm}").as_bytes());
    if encrypts(algorithm) {
        let (s, v) = kms(
            app,
            token,
            Method::POST,
            &format!("/elastickeys/{id}/encrypt"),
            Some(json!({"plaintext": data})),
        )
        .await;
        assert_eq!(s, 200, "{algorithm} encrypt: {v}");
        let jwe = v["jwe"].as_str().unwrap().to_owned();
        let (s, v) = kms(
            app,
            token,
            Method::POST,
            &format!("/elastickeys/{id}/decrypt"),
            Some(json!({"jwe": jwe})),
        )
        .await;
        assert_eq!(
            (s, v["plaintext"].as_str()),
            (200, Some(data.as_str())),
            "{algorithm} decrypt: {v}"
        );
        let (s, v) = kms(
            app,
            token,
            Method::POST,
            &format!("/elastickeys/{id}/datakey"),
            Some(json!({})),
        )
        .await;
        assert_eq!(s, 200, "{algorithm} datakey: {v}");
        jwe
    } else {
        let (s, v) = kms(
            app,
            token,
            Method::POST,
            &format!("/elastickeys/{id}/sign"),
            Some(json!({"payload": data})),
        )
        .await;
        assert_eq!(s, 200, "{algorithm} sign: {v}");
        let jws = v["jws"].as_str().unwrap().to_owned();
        let (s, v) = kms(
            app,
            token,
            Method::POST,
            &format!("/elastickeys/{id}/verify"),
            Some(json!({"jws": jws})),
        )
        .await;
        assert_eq!(
            (s, v["valid"].as_bool()),
            (200, Some(true)),
            "{algorithm} verify: {v}"
        );
        jws
    }
}

fn encrypts(algorithm: &str) -> bool {
    matches!(
        algorithm,
        "A256GCM" | "A256KW" | "RSA-OAEP-256" | "ECDH-ES+A256KW"
    )
}

/// Opens or verifies `made` (a JWE or JWS of key `id` of `algorithm`).
async fn check(app: &TestApp, token: &str, id: &str, algorithm: &str, made: &str) {
    let (path, body) = if encrypts(algorithm) {
        ("decrypt", json!({ "jwe": made }))
    } else {
        ("verify", json!({ "jws": made }))
    };
    let (s, v) = kms(
        app,
        token,
        Method::POST,
        &format!("/elastickeys/{id}/{path}"),
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{path}: {v}");
}

const ALGORITHMS: [&str; 10] = [
    "A256GCM",
    "A256KW",
    "RSA-OAEP-256",
    "ECDH-ES+A256KW",
    "ES256",
    "ES384",
    "PS256",
    "EdDSA",
    "HS256",
    "HS512",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_kms_uses_the_jose_service_falls_back_to_internal_crypto_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let peers_data = dir.path().join("peers");
    // Every request comes from 127.0.0.1, the KMS's calls to JOSE too: no rate limit here.
    let unlimited = [
        (
            "CRYPTOUTIL_HTTP__SERVICE__RATE_LIMIT__REQUESTS_PER_SECOND",
            "1000000",
        ),
        ("CRYPTOUTIL_HTTP__SERVICE__RATE_LIMIT__BURST", "1000000"),
    ];
    let peers = TestApp::start(
        vec![ServiceName::IdentityAuthz, ServiceName::Jose],
        &unlimited,
        Some(&peers_data),
    )
    .await;
    let boot = bootstrap(&peers_data);
    let operator = client_token(&peers, &boot.client_id, &boot.secret, "identity").await;
    let (s, client) = admin(
        &peers,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "kms federation", "resource_server": true, "scopes": ["jose"]})),
    )
    .await;
    assert_eq!(s, 201, "{client}");
    let anchor = format!(
        "file://{}",
        cryptoutil_bin::pki::anchor_path(&peers_data).display()
    );
    let proxy = FaultProxy::to_url(peers.public(ServiceName::Jose)).await;
    let authz = peers.public(ServiceName::IdentityAuthz).to_owned();
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[
            ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
            ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", authz.as_str()),
            ("CRYPTOUTIL_FEDERATION__JOSE_ENABLED", "true"),
            ("CRYPTOUTIL_FEDERATION__JOSE_URL", proxy.url.as_str()),
            ("CRYPTOUTIL_FEDERATION__JOSE_TIMEOUT", "500ms"),
            ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID",
                client["client_id"].as_str().unwrap(),
            ),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
                client["client_secret"].as_str().unwrap(),
            ),
            ("CRYPTOUTIL_FEDERATION__AUTH__CA", anchor.as_str()),
            ("CRYPTOUTIL_FEDERATION__BREAKER__FAILURE_THRESHOLD", "3"),
            ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "1s"),
            ("CRYPTOUTIL_FEDERATION__BREAKER__HALF_OPEN_PROBES", "2"),
            ("CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL", "200ms"),
            unlimited[0],
            unlimited[1],
        ],
        None,
    )
    .await;
    let token = client_token(&peers, &boot.client_id, &boot.secret, "kms").await;

    let mut keys = Vec::new();
    for algorithm in ALGORITHMS {
        let (s, v) = kms(
            &app,
            &token,
            Method::POST,
            "/elastickeys",
            Some(json!({"name": algorithm, "algorithm": algorithm})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        keys.push((algorithm, v["id"].as_str().unwrap().to_owned()));
    }

    // Through JOSE: every operation is a call to the JOSE service, none falls back.
    let before = kms_metrics(&app).await;
    let mut by_jose = Vec::new();
    for (algorithm, id) in &keys {
        by_jose.push(exercise(&app, &token, id, algorithm).await);
    }
    let ops = 3.0 * 4.0 + 2.0 * 6.0;
    let after = kms_metrics_once(&app, |m| jose_calls(m) - jose_calls(&before) >= ops).await;
    assert!(jose_calls(&after) - jose_calls(&before) >= ops, "{after}");
    assert_eq!(fallbacks(&after), fallbacks(&before), "nothing fell back");
    assert_eq!(jose_state(&app).await, "closed");
    // A refusal by JOSE is the same refusal the internal code gives.
    let (_, aes) = &keys[0];
    let mut tampered = by_jose[0].clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let (s, v) = kms(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{aes}/decrypt"),
        Some(json!({"jwe": tampered})),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // JOSE gone (refused, then swallowed as a paused container is): internal_crypto serves.
    let mut by_internal = Vec::new();
    for fault in [Fault::Refuse, Fault::Blackhole] {
        proxy.set(fault).await;
        assert!(
            eventually(Duration::from_secs(15), || async {
                exercise(&app, &token, &keys[4].1, keys[4].0).await;
                jose_state(&app).await == "open"
            })
            .await,
            "{fault:?}: the breaker did not open"
        );
        let before = kms_metrics(&app).await;
        by_internal.clear();
        for (algorithm, id) in &keys {
            by_internal.push(exercise(&app, &token, id, algorithm).await);
        }
        let after = kms_metrics(&app).await;
        assert!(
            fallbacks(&after) - fallbacks(&before) >= ops,
            "{fault:?}: {after}"
        );
        // What JOSE made, the internal code opens and verifies.
        for ((algorithm, id), made) in keys.iter().zip(&by_jose) {
            check(&app, &token, id, algorithm, made).await;
        }
        let tree = {
            let url = format!("{}/admin/v1/supervision", app.admin(ServiceName::Kms));
            app.client.get(&url).await.unwrap().text()
        };
        assert!(
            tree.contains("federation/jose") && tree.contains("breaker=open"),
            "{tree}"
        );

        proxy.set(Fault::Pass).await;
        assert!(
            eventually(Duration::from_secs(15), || async {
                exercise(&app, &token, &keys[4].1, keys[4].0).await;
                jose_state(&app).await == "closed"
            })
            .await,
            "{fault:?}: the breaker did not close"
        );
    }
    // Back on JOSE: what the internal code made during the outage, JOSE opens and verifies.
    let before = kms_metrics(&app).await;
    for ((algorithm, id), made) in keys.iter().zip(&by_internal) {
        check(&app, &token, id, algorithm, made).await;
    }
    let n = keys.len() as f64;
    let after = kms_metrics_once(&app, |m| jose_calls(m) - jose_calls(&before) >= n).await;
    assert!(jose_calls(&after) - jose_calls(&before) >= n);
    assert_eq!(fallbacks(&after), fallbacks(&before));
    // Two transitions each way per outage.
    let t = |from, to| {
        metric(
            &after,
            "federation_circuit_breaker_transitions_total",
            &[("service", "jose"), ("from", from), ("to", to)],
        )
    };
    assert_eq!((t("closed", "open"), t("half_open", "closed")), (2.0, 2.0));
    app.stop().await;
    peers.stop().await;
}
