//! Federation with identity-authz (ARCHITECTURE §6), in-process on 127.0.0.1: the JOSE service
//! validates tokens by introspection at a controllable fake identity-authz reached through the
//! fault proxy. Every fault (the peer failing, hanging, answering slowly, resetting; the network
//! resetting, swallowing, delaying, throttling, refusing) opens the breaker; requests keep
//! succeeding under `local_validation`; the breaker half-opens after a health poll and closes on
//! its probes; the metrics count what happened. `reject_all` and `allow_all` do what they say,
//! and retries stay within the deadline.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::{b64, jwt, Jwk, JwsAlg};
use serde_json::{json, Value};

use super::issuer_jwks::list;
use crate::fake_peer::{Behaviour, FakePeer};
use crate::fault_proxy::{Fault, FaultProxy};
use crate::{eventually, TestApp};

const INTROSPECT: &str = "/service/oauth2/v1/introspect";
const TOKEN: &str = "/service/oauth2/v1/token";
const JWKS: &str = "/service/oauth2/v1/jwks";
const HEALTH: &str = "/service/api/v1/health";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fake identity-authz: it signs tokens, publishes its key, answers introspection with the
/// token's claims (inactive for revoked `jti`s), issues this process's own peer token, and
/// reports ready.
pub(crate) struct FakeIdentity {
    pub(crate) peer: FakePeer,
    key: Jwk,
    revoked: Arc<Mutex<HashSet<String>>>,
    /// Introspection requests answered 503 before answering for real.
    failing: Arc<AtomicUsize>,
    issued: AtomicUsize,
}

impl FakeIdentity {
    pub(crate) async fn start() -> Self {
        let key = Jwk::generate(JwsAlg::ES256).unwrap();
        let peer = FakePeer::start("{}").await;
        let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
        let failing: Arc<AtomicUsize> = Arc::default();
        peer.route(
            JWKS,
            200,
            &json!({ "keys": [key.to_public_value().unwrap()] }).to_string(),
        );
        peer.route(
            TOKEN,
            200,
            r#"{"access_token":"peer-token","token_type":"Bearer","expires_in":300}"#,
        );
        peer.route(HEALTH, 200, r#"{"status":"ready"}"#);
        let (r, f) = (Arc::clone(&revoked), Arc::clone(&failing));
        peer.route_with(
            INTROSPECT,
            Arc::new(move |body| {
                if f.load(Ordering::SeqCst) > 0 {
                    f.fetch_sub(1, Ordering::SeqCst);
                    return (503, "{}".into());
                }
                let token = form_urlencoded::parse(body)
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let claims: Option<Value> = token
                    .split('.')
                    .nth(1)
                    .and_then(|p| b64::decode(p, "payload").ok())
                    .and_then(|p| serde_json::from_slice(&p).ok());
                let Some(Value::Object(mut claims)) = claims else {
                    return (200, r#"{"active":false}"#.into());
                };
                let jti = claims
                    .get("jti")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if r.lock().unwrap().contains(jti) {
                    return (200, r#"{"active":false}"#.into());
                }
                claims.insert("active".into(), json!(true));
                (200, Value::Object(claims).to_string())
            }),
        );
        Self {
            peer,
            key,
            revoked,
            failing,
            issued: AtomicUsize::new(0),
        }
    }

    /// A token for the JOSE service with scope `jose` in tenant `t1`, signed by this issuer.
    pub(crate) fn token(&self) -> String {
        self.token_signed_by(&self.key)
    }

    /// The same claims signed by another key (a forgery).
    pub(crate) fn token_signed_by(&self, key: &Jwk) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let now = now();
        let claims = json!({"iss": self.peer.base, "sub": "client-1", "aud": ["jose", "kms"],
            "tenant": "t1", "scope": "jose kms", "iat": now, "exp": now + 300,
            "jti": format!("jti-{n}")});
        jwt::sign(key, claims.as_object().unwrap(), "at+jwt").unwrap()
    }

    pub(crate) fn revoke(&self, token: &str) {
        let claims: Value =
            serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap(), "p").unwrap())
                .unwrap();
        let jti = claims["jti"].as_str().unwrap().to_owned();
        self.revoked.lock().unwrap().insert(jti);
    }

    pub(crate) fn fail_next_introspections(&self, n: usize) {
        self.failing.store(n, Ordering::SeqCst);
    }
}

/// The JOSE service alone, federated to identity-authz at `url` (the fake, or the proxy in
/// front of it), with short timers; `extra` overrides or adds settings.
async fn jose_federated(
    idp: &FakeIdentity,
    url: &str,
    dir: &tempfile::TempDir,
    extra: &[(&str, &str)],
) -> TestApp {
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, &idp.peer.ca_pem).unwrap();
    let ca = format!("file://{}", ca.display());
    let mut vars: Vec<(&str, &str)> = vec![
        ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", url),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_ISSUER", &idp.peer.base),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_TIMEOUT", "400ms"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_CACHE_TTL", "0s"),
        ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
        ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "jose-peer"),
        (
            "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
            "not-a-real-secret",
        ),
        ("CRYPTOUTIL_FEDERATION__AUTH__CA", &ca),
        ("CRYPTOUTIL_FEDERATION__BREAKER__FAILURE_THRESHOLD", "3"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "1s"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__HALF_OPEN_PROBES", "2"),
        ("CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL", "200ms"),
        ("CRYPTOUTIL_FEDERATION__RETRY__INITIAL_BACKOFF", "50ms"),
        ("CRYPTOUTIL_FEDERATION__RETRY__DEADLINE", "1s"),
    ];
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k, v));
    }
    TestApp::start(vec![ServiceName::Jose], &vars, None).await
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let url = format!("{}{path}", app.admin(ServiceName::Jose));
    let r = app.client.get(&url).await.unwrap();
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

async fn breaker_state(app: &TestApp) -> String {
    admin_json(app, "/admin/v1/healthz").await["peers"]["identity"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

async fn metrics(app: &TestApp) -> String {
    let url = format!("{}/admin/v1/metrics", app.admin(ServiceName::Jose));
    app.client.get(&url).await.unwrap().text()
}

/// The value of the series `name` whose labels include every `labels` pair (0 if absent).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn transitions(text: &str, from: &str, to: &str) -> f64 {
    metric(
        text,
        "federation_circuit_breaker_transitions_total",
        &[("service", "identity"), ("from", from), ("to", to)],
    )
}

/// Drives requests until the breaker reads `state`; every request must succeed. Returns how
/// many were made.
async fn until_state(app: &TestApp, idp: &FakeIdentity, state: &str, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut served = 0;
    loop {
        let r = list(app, &idp.token()).await;
        assert_eq!(
            r.status,
            200,
            "a request failed on the way to {state}: {}",
            r.text()
        );
        served += 1;
        if breaker_state(app).await == state {
            return served;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker did not become {state} within {within:?} (it is {})",
            breaker_state(app).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_opens_the_breaker_local_validation_keeps_serving_and_it_closes_again() {
    let idp = FakeIdentity::start().await;
    let proxy = FaultProxy::to_url(&idp.peer.base).await;
    let dir = tempfile::tempdir().unwrap();
    let app = jose_federated(&idp, &proxy.url, &dir, &[]).await;

    // Closed: introspection decides, and the key set is fetched for later.
    assert_eq!(breaker_state(&app).await, "closed");
    assert_eq!(list(&app, &idp.token()).await.status, 200);
    assert_eq!(idp.peer.hits_of(INTROSPECT), 1);
    assert!(
        eventually(Duration::from_secs(5), || async {
            idp.peer.hits_of(JWKS) >= 1
        })
        .await
    );
    // A token identity-authz calls inactive (revoked) is refused, though its signature is good.
    let revoked = idp.token();
    idp.revoke(&revoked);
    assert_eq!(list(&app, &revoked).await.status, 401);
    // A slow peer that still answers within the timeout is just slow.
    idp.peer.behave(Behaviour::Slow(Duration::from_millis(100)));
    for _ in 0..4 {
        assert_eq!(list(&app, &idp.token()).await.status, 200);
    }
    assert_eq!(breaker_state(&app).await, "closed");

    let before = metrics(&app).await;
    let faults: Vec<(&str, Fault, Option<Behaviour>)> = vec![
        ("peer 503", Fault::Pass, Some(Behaviour::Fail(503))),
        ("peer hangs", Fault::Pass, Some(Behaviour::Hang)),
        (
            "peer too slow",
            Fault::Pass,
            Some(Behaviour::Slow(Duration::from_secs(2))),
        ),
        ("peer resets", Fault::Pass, Some(Behaviour::Reset)),
        ("network reset", Fault::Reset, None),
        ("network blackhole", Fault::Blackhole, None),
        (
            "network delay",
            Fault::Delay(Duration::from_millis(600)),
            None,
        ),
        ("network bandwidth", Fault::Bandwidth(200), None),
        ("connection refused", Fault::Refuse, None),
    ];
    let mut served_by_fallback = 0;
    for (name, fault, behaviour) in &faults {
        let started = tokio::time::Instant::now();
        proxy.set(*fault).await;
        if let Some(b) = behaviour {
            idp.peer.behave(*b);
        }
        until_state(&app, &idp, "open", Duration::from_secs(20)).await;
        let opened = started.elapsed();
        // Open: nothing reaches introspection, everything is served locally.
        let calls = idp.peer.hits_of(INTROSPECT);
        for _ in 0..5 {
            assert_eq!(list(&app, &idp.token()).await.status, 200, "{name}");
        }
        served_by_fallback += 5;
        assert_eq!(
            idp.peer.hits_of(INTROSPECT),
            calls,
            "{name}: open, yet called"
        );
        let tree = admin_json(&app, "/admin/v1/supervision").await.to_string();
        assert!(tree.contains("\"breaker=open\""), "{name}: {tree}");

        proxy.set(Fault::Pass).await;
        idp.peer.behave(Behaviour::Answer);
        let back = tokio::time::Instant::now();
        until_state(&app, &idp, "closed", Duration::from_secs(20)).await;
        eprintln!(
            "{name:20} open after {opened:?}, closed {:?} after the peer returned",
            back.elapsed()
        );
    }

    let after = metrics(&app).await;
    let n = faults.len() as f64;
    let delta = |from, to| transitions(&after, from, to) - transitions(&before, from, to);
    assert_eq!(delta("closed", "open"), n, "{after}");
    assert_eq!(delta("open", "half_open"), n);
    assert_eq!(delta("half_open", "closed"), n);
    let fallbacks = metric(
        &after,
        "federation_fallback_total",
        &[("service", "identity"), ("mode", "local_validation")],
    ) - metric(
        &before,
        "federation_fallback_total",
        &[("service", "identity"), ("mode", "local_validation")],
    );
    assert!(
        fallbacks >= f64::from(served_by_fallback),
        "{fallbacks} < {served_by_fallback}"
    );
    let failures = metric(
        &after,
        "federation_request_failures_total",
        &[("service", "identity")],
    ) - metric(
        &before,
        "federation_request_failures_total",
        &[("service", "identity")],
    );
    // Each fault opened the breaker through three failed calls or, polled every 200 ms while
    // closed too, a failed health poll.
    let polls_failed = metric(
        &after,
        "federation_health_polls_total",
        &[("service", "identity"), ("outcome", "failed")],
    ) - metric(
        &before,
        "federation_health_polls_total",
        &[("service", "identity"), ("outcome", "failed")],
    );
    assert!(failures > 0.0, "no failure counted");
    assert!(
        failures / 3.0 + polls_failed >= n,
        "{failures} failures and {polls_failed} failed polls counted for {n} faults"
    );
    assert_eq!(
        metric(
            &after,
            "federation_circuit_breaker_state",
            &[("service", "identity")]
        ),
        0.0
    );
    assert!(
        metric(
            &after,
            "federation_request_duration_seconds_count",
            &[("service", "identity")]
        ) > 0.0
    );
    assert!(proxy.connections() > 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_all_refuses_while_identity_is_down_and_retries_ride_out_a_short_blip() {
    let idp = FakeIdentity::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = jose_federated(
        &idp,
        &idp.peer.base.clone(),
        &dir,
        &[(
            "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
            "reject_all",
        )],
    )
    .await;

    // Two failures, then an answer: the retries (50 ms, 100 ms, within the 1 s deadline) get it.
    idp.fail_next_introspections(2);
    let r = list(&app, &idp.token()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.peer.hits_of(INTROSPECT), 3, "one try and two retries");

    // Down for good: 503 (the token may be valid), never a local acceptance.
    idp.peer.behave(Behaviour::Fail(500));
    let started = tokio::time::Instant::now();
    let r = list(&app, &idp.token()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("issuer_unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline bounds the wait"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            list(&app, &idp.token()).await.status == 503 && breaker_state(&app).await == "open"
        })
        .await
    );
    let open_fast = tokio::time::Instant::now();
    assert_eq!(list(&app, &idp.token()).await.status, 503);
    assert!(
        open_fast.elapsed() < Duration::from_millis(300),
        "an open breaker answers at once"
    );
    let m = metrics(&app).await;
    assert!(
        metric(
            &m,
            "federation_fallback_total",
            &[("service", "identity"), ("mode", "reject_all")]
        ) > 0.0
    );
    assert!(
        metric(
            &m,
            "federation_rejected_total",
            &[("service", "identity"), ("reason", "open")]
        ) > 0.0,
        "{m}"
    );

    idp.peer.behave(Behaviour::Answer);
    assert!(
        eventually(Duration::from_secs(10), || async {
            list(&app, &idp.token()).await.status == 200 && breaker_state(&app).await == "closed"
        })
        .await
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_all_is_refused_without_the_flag_and_with_it_believes_tokens_only_while_down() {
    let idp = FakeIdentity::start().await;
    let dir = tempfile::tempdir().unwrap();
    let forger = Jwk::generate(JwsAlg::ES256).unwrap();
    let app = jose_federated(
        &idp,
        &idp.peer.base.clone(),
        &dir,
        &[
            (
                "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
                "allow_all",
            ),
            ("CRYPTOUTIL_FEDERATION__DANGER_ALLOW_ALL_FALLBACK", "true"),
        ],
    )
    .await;
    // identity-authz up: it decides, and a revoked token is refused.
    let revoked = idp.token();
    idp.revoke(&revoked);
    assert_eq!(list(&app, &revoked).await.status, 401);
    // Down: even a forged token passes (that is what allow_all means), counted every time.
    idp.peer.behave(Behaviour::Fail(503));
    let forged = idp.token_signed_by(&forger);
    let r = list(&app, &forged).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = metrics(&app).await;
    assert!(
        metric(
            &m,
            "federation_fallback_total",
            &[("service", "identity"), ("mode", "allow_all")]
        ) >= 1.0
    );
    app.stop().await;

    // Without the development flag the configuration is refused, naming the key.
    let (code, _, err) = crate::run_cli(
        &["config", "check"],
        &[(
            "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
            "allow_all",
        )],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("`federation_fallback.identity_fallback_mode`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_token_is_cached_renewed_in_the_background_and_never_waits_on_a_hung_endpoint() {
    use cryptoutil_actors::federation::credentials::{ClientProof, Credentials};
    let idp = FakeIdentity::start().await;
    idp.peer.route(
        TOKEN,
        200,
        r#"{"access_token":"t-1","token_type":"Bearer","expires_in":2}"#,
    );
    let client = cryptoutil_federation::HttpsClient::new(
        cryptoutil_federation::tls::client_config_from_pem(idp.peer.ca_pem.as_bytes()).unwrap(),
    )
    .with_timeout(Duration::from_secs(3));
    let creds = Arc::new(Credentials::new(
        "me".into(),
        ClientProof::Secret(zeroize::Zeroizing::new("s".into())),
        format!("{}{TOKEN}", idp.peer.base),
        client,
    ));
    assert_eq!(creds.token().await.unwrap().as_str(), "t-1");
    assert_eq!(creds.token().await.unwrap().as_str(), "t-1");
    assert_eq!(idp.peer.hits_of(TOKEN), 1, "cached");
    // Past 80 % of its lifetime, with the endpoint hung: the old token, at once.
    idp.peer.behave(Behaviour::Hang);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let asked = tokio::time::Instant::now();
    assert_eq!(creds.token().await.unwrap().as_str(), "t-1");
    assert_eq!(creds.token().await.unwrap().as_str(), "t-1");
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            idp.peer.hits_of(TOKEN) == 2
        })
        .await
    );
    // Expired, the endpoint back with a new token: the one request callers wait for.
    idp.peer.route(
        TOKEN,
        200,
        r#"{"access_token":"t-2","token_type":"Bearer","expires_in":300}"#,
    );
    idp.peer.behave(Behaviour::Answer);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(creds.token().await.unwrap().as_str(), "t-2");
}
