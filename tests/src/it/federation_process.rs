//! Two real processes: `cryptoutil serve kms` federated to `cryptoutil serve identity-authz`.
//! The KMS validates tokens by introspection at identity-authz with a resource-server client of
//! its own. identity-authz is killed (-9): the KMS keeps serving valid tokens under
//! `local_validation` while its breaker opens; identity-authz starts again on the same port
//! and data: the breaker half-opens and closes.

use std::time::Duration;

use base64::Engine as _;
use cryptoutil_federation::{HttpsClient, Method};
use cryptoutil_protocols::jose::b64;
use serde_json::{json, Value};

use super::federation::metric;
use crate::{free_port, Process};

pub(super) async fn call(
    client: &HttpsClient,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    try_call(client, method, url, token, body)
        .await
        .expect("an answer")
}

/// [`call`], or `None` when no answer came (the connection failed: a process killed).
pub(super) async fn try_call(
    client: &HttpsClient,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = client
        .send(
            method,
            url,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.into(),
        )
        .await
        .ok()?;
    Some((
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

/// The state of the identity breaker of the process whose admin listener is `admin`, as its
/// `/admin/v1/healthz` says.
pub(super) async fn identity_breaker(client: &HttpsClient, admin: &str) -> String {
    let r = client
        .get(&format!("{admin}/admin/v1/healthz"))
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["peers"]["identity"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

pub(super) async fn client_token(
    client: &HttpsClient,
    authz: &str,
    id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let form = format!("grant_type=client_credentials&scope={scope}");
    let (status, v) = token_post(client, authz, (id, secret), form).await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

/// A token request at `authz` by client `id` with `form` (client_secret_basic): the status and
/// the answer.
pub(super) async fn token_post(
    client: &HttpsClient,
    authz: &str,
    (id, secret): (&str, &str),
    form: String,
) -> (u16, Value) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let r = client
        .send(
            Method::POST,
            &format!("{authz}/service/oauth2/v1/token"),
            &[
                ("authorization", &format!("Basic {basic}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.into(),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (u16::from(r.status), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn kms_keeps_serving_while_identity_authz_is_killed_and_its_breaker_closes_on_return() {
    let tmp = tempfile::tempdir().unwrap();
    let idp_data = tmp.path().join("idp");
    let port = free_port().to_string();
    let idp_env = [(
        "CRYPTOUTIL_SERVICES__IDENTITY_AUTHZ__PUBLIC__PORT",
        port.as_str(),
    )];
    let mut idp = Process::spawn(&idp_data, &["serve", "identity-authz"], &idp_env);
    let idp_endpoints = tokio::task::block_in_place(|| idp.wait_ready(Duration::from_secs(30)));
    let authz = idp_endpoints["identity-authz"].public.clone();
    let idp_client = idp.client();

    // The operator makes the KMS a resource-server client of its own.
    let boot: Value =
        serde_json::from_slice(&std::fs::read(idp_data.join("bootstrap.json")).unwrap()).unwrap();
    let (boot_id, boot_secret) = (
        boot["service_client"]["client_id"].as_str().unwrap(),
        boot["service_client"]["client_secret"].as_str().unwrap(),
    );
    let operator = client_token(&idp_client, &authz, boot_id, boot_secret, "identity").await;
    let (s, kms_client) = call(
        &idp_client,
        Method::POST,
        &format!("{authz}/service/api/v1/identity/clients"),
        &operator,
        Some(json!({"name": "kms federation", "resource_server": true, "scopes": ["jose"]})),
    )
    .await;
    assert_eq!(s, 201, "{kms_client}");
    let secret_file = tmp.path().join("kms-client-secret");
    std::fs::write(&secret_file, kms_client["client_secret"].as_str().unwrap()).unwrap();
    let secret_ref = format!("file://{}", secret_file.display());
    let ca_ref = format!(
        "file://{}",
        cryptoutil_bin::pki::anchor_path(&idp_data).display()
    );

    let kms_data = tmp.path().join("kms");
    let kms_env = [
        ("CRYPTOUTIL_LOG__LEVEL", "debug"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", authz.as_str()),
        // Generous: the whole suite runs beside this test on two cores, and a live
        // identity-authz that misses the timeout before the KMS has its keys is a 503.
        // The kill is seen at once (connections refused), not by this timeout.
        ("CRYPTOUTIL_FEDERATION__IDENTITY_TIMEOUT", "3s"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_CACHE_TTL", "0s"),
        ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
        (
            "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID",
            kms_client["client_id"].as_str().unwrap(),
        ),
        (
            "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
            secret_ref.as_str(),
        ),
        ("CRYPTOUTIL_FEDERATION__AUTH__CA", ca_ref.as_str()),
        ("CRYPTOUTIL_FEDERATION__BREAKER__FAILURE_THRESHOLD", "3"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "1s"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__HALF_OPEN_PROBES", "2"),
        ("CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL", "250ms"),
    ];
    let mut kms = Process::spawn(&kms_data, &["serve", "kms"], &kms_env);
    let kms_endpoints = tokio::task::block_in_place(|| kms.wait_ready(Duration::from_secs(30)));
    let (kms_public, kms_admin) = (
        kms_endpoints["kms"].public.clone(),
        kms_endpoints["kms"].admin.clone(),
    );
    let kms_client = kms.client();
    let state = || identity_breaker(&kms_client, &kms_admin);

    let token = client_token(&idp_client, &authz, boot_id, boot_secret, "kms").await;
    let (s, key) = call(
        &kms_client,
        Method::POST,
        &format!("{kms_public}/service/api/v1/elastickeys"),
        &token,
        Some(json!({"name": "orders", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(s, 201, "{key}\n{}", kms.log_text());
    let encrypt = format!(
        "{kms_public}/service/api/v1/elastickeys/{}/encrypt",
        key["id"].as_str().unwrap()
    );
    let body = json!({ "plaintext": b64::encode(b"order 42") });
    let mut served = 0u32;
    let encrypt_once = || {
        let (client, url, token, body) = (&kms_client, &encrypt, &token, body.clone());
        let kms = &kms;
        async move {
            let (s, v) = call(client, Method::POST, url, token, Some(body)).await;
            assert_eq!(s, 200, "{v}\n{}", kms.log_text());
        }
    };
    for _ in 0..5 {
        encrypt_once().await;
        served += 1;
    }
    assert_eq!(state().await, "closed");
    let metrics_url = format!("{kms_admin}/admin/v1/metrics");
    let introspected = || async {
        let m = kms_client.get(&metrics_url).await.unwrap().text();
        metric(
            &m,
            "federation_request_duration_seconds_count",
            &[("service", "identity")],
        )
    };
    // Outcomes reach the breaker as casts: its counters may trail the answers a moment.
    assert!(
        crate::eventually(Duration::from_secs(3), || async {
            introspected().await >= 5.0
        })
        .await,
        "every request was introspected: {}",
        introspected().await
    );

    // identity-authz dies: requests keep succeeding, the breaker opens.
    idp.kill9();
    let killed = tokio::time::Instant::now();
    let mut opened = None;
    while opened.is_none() {
        encrypt_once().await;
        served += 1;
        if state().await == "open" {
            opened = Some(killed.elapsed());
        }
        assert!(killed.elapsed() < Duration::from_secs(20), "never opened");
    }
    for _ in 0..10 {
        encrypt_once().await;
        served += 1;
    }

    // It comes back on the same port with the same data: half-open, then closed.
    let mut idp = Process::spawn(&idp_data, &["serve", "identity-authz"], &idp_env);
    tokio::task::block_in_place(|| idp.wait_ready(Duration::from_secs(30)));
    let back = tokio::time::Instant::now();
    let mut closed = None;
    while closed.is_none() {
        encrypt_once().await;
        served += 1;
        if state().await == "closed" {
            closed = Some(back.elapsed());
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "never closed:\n{}",
            kms.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = kms_client.get(&metrics_url).await.unwrap().text();
    let t = |from, to| {
        metric(
            &m,
            "federation_circuit_breaker_transitions_total",
            &[("service", "identity"), ("from", from), ("to", to)],
        )
    };
    assert_eq!(
        (
            t("closed", "open"),
            t("open", "half_open"),
            t("half_open", "closed")
        ),
        (1.0, 1.0, 1.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "federation_fallback_total",
            &[("service", "identity"), ("mode", "local_validation")]
        ) >= 10.0
    );
    // A token issued after the restart works too (the signing keys persisted).
    let fresh = client_token(&idp.client(), &authz, boot_id, boot_secret, "kms").await;
    let (s, _) = call(
        &kms_client,
        Method::POST,
        &encrypt,
        &fresh,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 200);
    eprintln!(
        "two processes: {served} requests, 0 failed; open {:?} after the kill, closed {:?} after \
         the restart was ready",
        opened.unwrap_or_default(),
        closed.unwrap_or_default()
    );
    kms.sigterm();
    idp.sigterm();
}
