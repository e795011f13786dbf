//! Trusted issuers that publish their keys at a `jwks_uri` (what identity-authz will do): the
//! service fetches the set on first need over verified TLS 1.3, refreshes it when a token names a
//! new `kid`, rate-limits those refreshes however many made-up `kid`s arrive, keeps validating
//! with the cached set while the issuer is down, and answers 503 (not 401) when it never had one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::Response;
use cryptoutil_protocols::jose::{jwt, Jwk, JwsAlg};
use hyper::Method;
use serde_json::json;

use crate::fake_peer::FakePeer;
use crate::TestApp;

const ISSUER: &str = "https://idp.test";

fn token(key: &Jwk, n: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // `jti` makes every token distinct, so the verified-token cache never answers for it.
    let claims = json!({"iss": ISSUER, "sub": "c", "aud": "jose", "tenant": "t", "scope": "jose",
        "iat": now, "exp": now + 300, "jti": n.to_string()});
    jwt::sign(key, claims.as_object().unwrap(), "at+jwt").unwrap()
}

fn jwks(keys: &[&Jwk]) -> String {
    let keys: Vec<_> = keys.iter().map(|k| k.to_public_value().unwrap()).collect();
    json!({ "keys": keys }).to_string()
}

async fn start(peer: &FakePeer, dir: &tempfile::TempDir, min_interval: &str) -> TestApp {
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, &peer.ca_pem).unwrap();
    let issuers = format!(
        "[{{issuer: \"{ISSUER}\", jwks_uri: \"{}/jwks\", jwks_ca: \"file://{}\"}}]",
        peer.base,
        ca.display()
    );
    TestApp::start(
        vec![ServiceName::Jose],
        &[
            ("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", issuers.as_str()),
            ("CRYPTOUTIL_AUTH__JWKS_REFRESH__MIN_INTERVAL", min_interval),
        ],
        None,
    )
    .await
}

/// `GET /service/api/v1/jose/jwks` with `token` (any authenticated JOSE call will do).
pub(super) async fn list(app: &TestApp, token: &str) -> Response {
    let url = format!("{}/service/api/v1/jose/jwks", app.public(ServiceName::Jose));
    let auth = format!("Bearer {token}");
    app.client
        .send(
            Method::GET,
            &url,
            &[("authorization", auth.as_str())],
            Default::default(),
        )
        .await
        .unwrap()
}

async fn list_keys(app: &TestApp, token: &str) -> u16 {
    list(app, token).await.status.as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetched_on_need_refreshed_on_new_kid_rate_limited_and_kept_while_the_issuer_is_down() {
    let (k1, k2, stranger) = (
        Jwk::generate(JwsAlg::ES256).unwrap(),
        Jwk::generate(JwsAlg::ES384).unwrap(),
        Jwk::generate(JwsAlg::ES256).unwrap(),
    );
    let peer = FakePeer::start(&jwks(&[&k1])).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&peer, &dir, "2s").await;
    assert_eq!(peer.hits(), 0, "nothing is fetched before a token needs it");

    assert_eq!(list_keys(&app, &token(&k1, 1)).await, 200);
    assert_eq!(peer.hits(), 1);
    assert_eq!(list_keys(&app, &token(&k1, 2)).await, 200);
    assert_eq!(
        peer.hits(),
        1,
        "a fresh set that knows the kid is used as is"
    );

    // Tokens from a key the issuer never published: each asks for a refresh, the actor grants at
    // most one per interval.
    for n in 0..20 {
        assert_eq!(list_keys(&app, &token(&stranger, 100 + n)).await, 401);
    }
    assert!(
        peer.hits() <= 2,
        "20 unknown kids caused {} fetches",
        peer.hits()
    );

    // The issuer rotates in a new key: after the interval, a token naming it triggers a refresh.
    peer.answer(200, &jwks(&[&k1, &k2]));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = peer.hits();
    assert_eq!(list_keys(&app, &token(&k2, 3)).await, 200);
    assert_eq!(peer.hits(), before + 1);

    // The issuer fails: cached keys keep validating, failures are not cached as an empty set.
    peer.answer(500, "{}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(list_keys(&app, &token(&stranger, 4)).await, 401);
    assert_eq!(list_keys(&app, &token(&k1, 5)).await, 200);
    assert_eq!(list_keys(&app, &token(&k2, 6)).await, 200);

    // What operators see.
    let metrics = app.admin_metrics(ServiceName::Jose).await;
    for outcome in ["ok", "error", "rate_limited"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("cryptoutil_auth_jwks_fetches_total")
                    && l.contains("service=\"jose\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))),
            "no {outcome} fetch counted:\n{metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_never_reached_gives_503_and_a_bad_set_is_not_trusted() {
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let peer = FakePeer::start("{}").await;
    peer.answer(503, "down");
    let dir = tempfile::tempdir().unwrap();
    let app = start(&peer, &dir, "1s").await;
    let r = list(&app, &token(&key, 1)).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text());
    assert!(r.text().contains("issuer_unavailable"), "{}", r.text());
    assert!(r.headers.contains_key("retry-after"));

    // An issuer publishing only a symmetric key is never trusted: the set is refused whole.
    let hmac = Jwk::generate(JwsAlg::HS256).unwrap();
    let secret: serde_json::Value =
        serde_json::from_str(&hmac.to_private_value().unwrap()).unwrap();
    peer.answer(200, &json!({ "keys": [secret] }).to_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(list_keys(&app, &token(&key, 2)).await, 503);

    // Once it publishes the real key, the same kind of token passes.
    peer.answer(200, &jwks(&[&key]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(list_keys(&app, &token(&key, 3)).await, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_an_untrusted_certificate_is_not_fetched_from() {
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let peer = FakePeer::start(&jwks(&[&key])).await;
    // Trust the suite's own anchor (the default) instead of the peer's certificate.
    let issuers = format!(
        "[{{issuer: \"{ISSUER}\", jwks_uri: \"{}/jwks\"}}]",
        peer.base
    );
    let app = TestApp::start(
        vec![ServiceName::Jose],
        &[("CRYPTOUTIL_AUTH__TRUSTED_ISSUERS", issuers.as_str())],
        None,
    )
    .await;
    assert_eq!(list_keys(&app, &token(&key, 1)).await, 503);
    assert_eq!(peer.hits(), 0, "the TLS handshake fails before any request");
    app.stop().await;
}
