//! identity-rp, the reference relying party, end to end over TLS in one process with
//! identity-authz, identity-idp and identity-rs: the sign-in is pushed (PAR) with a
//! `private_key_jwt` assertion, so the browser carries only a `request_uri`; the callback is
//! bound to the browser and used once; the browser holds an opaque cookie and never a token;
//! notes are read and written at identity-rs with the user's token, refreshed with rotation
//! before every call (access tokens live 10 s here, under the refresh margin); a form without
//! the session's CSRF token is refused; a logout at identity-authz that the relying party did
//! not start ends its session through the back channel; RP-initiated logout goes through
//! identity-authz's end-session endpoint and back.

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::Value;

use super::code_flow::{hidden, location, query, redeem, rp_client, Browser, REDIRECT};
use super::identity::{bootstrap, claims, client_token};
use crate::TestApp;

/// Follows a sign-in from `url` through identity-authz and, when asked, identity-idp's password
/// form, until the browser is sent to a URL starting with `until`.
async fn follow_sign_in(
    b: &mut Browser<'_>,
    mut url: String,
    password: &str,
    until: &str,
) -> String {
    let idp = b.app.public(ServiceName::IdentityIdp).to_owned();
    for _ in 0..10 {
        if url.starts_with(until) {
            return url;
        }
        let r = b.get(&url).await;
        if r.status == 200 && url.starts_with(&format!("{idp}/browser/login")) {
            let page = r.text();
            let r = b
                .post(
                    &format!("{idp}/browser/login"),
                    &[
                        ("challenge", &hidden(&page, "challenge")),
                        ("csrf", &hidden(&page, "csrf")),
                        ("username", "admin"),
                        ("password", password),
                    ],
                    Some(&idp),
                )
                .await;
            assert_eq!(r.status, 303, "{}", r.text());
            url = location(&r).unwrap();
            continue;
        }
        assert_eq!(r.status, 303, "{url}: {}", r.text());
        url = location(&r).unwrap();
    }
    panic!("the sign-in did not come back to {until}: {url}");
}

/// Signs in at identity-rp: the page it lands on.
async fn rp_sign_in(b: &mut Browser<'_>, rp: &str, password: &str) -> String {
    let authz = b.app.public(ServiceName::IdentityAuthz).to_owned();
    let r = b.get(&format!("{rp}/browser/rp/login")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r).unwrap();
    assert!(
        to.starts_with(&format!("{authz}/browser/oauth2/v1/authorize?")),
        "{to}"
    );
    // PAR: the browser sees the client and a request_uri, nothing of the request itself.
    assert_eq!(query(&to, "client_id").as_deref(), Some("identity-rp"));
    assert!(query(&to, "request_uri")
        .unwrap()
        .starts_with("urn:ietf:params:oauth:request_uri:"));
    for p in ["redirect_uri", "code_challenge", "state", "nonce", "scope"] {
        assert!(query(&to, p).is_none(), "{p} in {to}");
    }
    let callback = follow_sign_in(b, to, password, &format!("{rp}/browser/rp/callback")).await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r).as_deref(), Some("/browser/rp/"));
    // The callback is used once.
    let again = b.get(&callback).await;
    assert_eq!(again.status, 400, "{}", again.text());
    let page = b.get(&format!("{rp}/browser/rp/")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.text()
}

async fn add_note(b: &mut Browser<'_>, rp: &str, csrf: &str, title: &str) -> u16 {
    let r = b
        .post(
            &format!("{rp}/browser/rp/notes"),
            &[
                ("csrf", csrf),
                ("title", title),
                ("body", "written by identity-rp"),
            ],
            None,
        )
        .await;
    r.status.as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relying_party_signs_in_with_par_keeps_tokens_and_follows_back_channel_logout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::IdentityRs,
            ServiceName::IdentityRp,
        ],
        &[("CRYPTOUTIL_IDENTITY__ACCESS_TOKEN_TTL", "10s")],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let (rp, authz) = (
        app.public(ServiceName::IdentityRp).to_owned(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
    );
    let home = format!("{rp}/browser/rp/");

    let mut b = Browser::new(&app);
    let r = b.get(&home).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Not signed in."), "{}", r.text());
    let csp = r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("form-action 'self' {authz}")) && !csp.contains("script-src"),
        "{csp}"
    );

    // A callback from a browser that did not start the sign-in is refused.
    let r = b.get(&format!("{rp}/browser/rp/login")).await;
    let stolen = location(&r).unwrap();
    let mut other = Browser::new(&app);
    let callback = follow_sign_in(
        &mut other,
        stolen,
        &boot.password,
        &format!("{rp}/browser/rp/callback"),
    )
    .await;
    let r = other.get(&callback).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("another browser"), "{}", r.text());

    let page = rp_sign_in(&mut b, &rp, &boot.password).await;
    assert!(page.contains("Signed in as"), "{page}");
    for v in b.cookie_values() {
        assert!(v.matches('.').count() < 2, "a token in a cookie: {v}");
    }
    let csrf = hidden(&page, "csrf");

    // Every call refreshes first (10 s tokens): three rotations in a row keep working.
    for title in ["first note", "second note"] {
        assert_eq!(add_note(&mut b, &rp, &csrf, title).await, 303);
    }
    let page = b.get(&home).await.text();
    assert!(
        page.contains("first note") && page.contains("second note"),
        "{page}"
    );
    assert_eq!(add_note(&mut b, &rp, "forged", "x").await, 403);
    let mut stranger = Browser::new(&app);
    let r = stranger
        .post(
            &format!("{rp}/browser/rp/notes"),
            &[("csrf", &csrf), ("title", "x")],
            None,
        )
        .await;
    assert!(r.text().contains("Not signed in."), "{}", r.text());

    // The back channel refuses what is not a logout token from the issuer for this client.
    let post = |token: String| {
        let (client, url) = (
            app.client.clone(),
            format!("{rp}/service/rp/v1/backchannel-logout"),
        );
        async move {
            client
                .send(
                    Method::POST,
                    &url,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    format!("logout_token={token}").into_bytes().into(),
                )
                .await
                .unwrap()
        }
    };
    let r = post("not-a-token".into()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"], "invalid_request");

    // Single sign-on: another client of the same identity-authz session gets an ID token with
    // its sid; logging out there (RP-initiated at identity-authz, not through identity-rp)
    // tells identity-rp over the back channel.
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let (other_client, secret) =
        rp_client(&app, &operator, serde_json::json!({"first_party": true})).await;
    let back = follow_sign_in(
        &mut b,
        super::code_flow::authorize_url(&app, &other_client, &[]),
        &boot.password,
        REDIRECT,
    )
    .await;
    let (status, tokens) = redeem(
        &app,
        (&other_client, &secret),
        &query(&back, "code").unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    assert!(claims(&id_token)["sid"].is_string());
    // An ID token is not a logout token (typ, events).
    let r = post(id_token.clone()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(b.get(&home).await.text().contains("Signed in as"));

    let logout = cryptoutil_protocols::oauth::with_query(
        &format!("{authz}/browser/oauth2/v1/logout"),
        &[("id_token_hint", id_token.as_str())],
    );
    let r = app.client.get(&logout).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ended = false;
    for _ in 0..50 {
        if b.get(&home).await.text().contains("Not signed in.") {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        ended,
        "the back-channel logout did not end identity-rp's session"
    );
    let metrics = app.admin_metrics(ServiceName::IdentityAuthz).await;
    assert!(
        metrics
            .contains("cryptoutil_identity_backchannel_logouts_total{outcome=\"delivered\"} 1\n"),
        "one logout token, delivered: {metrics}"
    );

    // RP-initiated logout from identity-rp: its session ends, then identity-authz's, and the
    // browser comes home.
    let page = rp_sign_in(&mut b, &rp, &boot.password).await;
    assert!(
        page.contains("first note"),
        "the notes outlive the session: {page}"
    );
    let r = b
        .post(
            &format!("{rp}/browser/rp/logout"),
            &[("csrf", &hidden(&page, "csrf"))],
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r).unwrap();
    assert!(
        to.starts_with(&format!("{authz}/browser/oauth2/v1/logout?")),
        "{to}"
    );
    assert!(query(&to, "id_token_hint").is_some());
    let r = b.get(&to).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r).as_deref(), Some(home.as_str()));
    assert!(b.get(&home).await.text().contains("Not signed in."));
    app.stop().await;
}

/// The reference applications in headless Chromium (`tests/interop/browser_reference_apps.py`):
/// the SPA signs in with a password and a TOTP code and writes a note through identity-rs (its
/// DPoP-bound refresh token rotated before every call: access tokens live 10 s here); a
/// passkey registered on identity-idp's account page signs in to the RP, which reads that note;
/// signing out of the SPA ends the RP's session over the back channel; nothing in storage, no
/// console error, no CSP violation. identity-idp is `https://localhost:<port>` (a WebAuthn RP
/// ID is a domain).
#[tokio::test(flavor = "multi_thread")]
async fn chromium_uses_the_spa_and_the_rp_with_a_second_factor_a_passkey_and_the_back_channel() {
    use super::identity::api;
    use super::signin_factors::{new_user, PASSWORD};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = crate::free_port().to_string();
    let origin = format!("https://localhost:{port}");
    let login = format!("{origin}/browser/login");
    let app = TestApp::start(
        vec![
            ServiceName::IdentityAuthz,
            ServiceName::IdentityIdp,
            ServiceName::IdentityRs,
            ServiceName::IdentityRp,
            ServiceName::IdentitySpa,
        ],
        &[
            ("CRYPTOUTIL_SERVICES__IDENTITY_IDP__PUBLIC__PORT", &port),
            ("CRYPTOUTIL_IDENTITY__LOGIN_URL", &login),
            // Access tokens of 10 s, under both apps' 30 s refresh margin: every call of the SPA
            // and the RP to identity-rs refreshes first (rotation; the SPA's DPoP-bound).
            ("CRYPTOUTIL_IDENTITY__ACCESS_TOKEN_TTL", "10s"),
        ],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    new_user(&app, &operator, "erin").await;
    let (status, totp) = api(
        &app,
        ServiceName::IdentityIdp,
        &operator,
        Method::POST,
        "/identity/users/erin/factors",
        Some(serde_json::json!({"type": "totp", "name": "phone"})),
    )
    .await;
    assert_eq!(status, 201, "{totp}");
    let args = vec![
        app.public(ServiceName::IdentitySpa).to_owned(),
        app.public(ServiceName::IdentityRp).to_owned(),
        app.public(ServiceName::IdentityRs).to_owned(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
        origin,
        data.join("tls/ca.pem").display().to_string(),
        "erin".to_owned(),
        PASSWORD.to_owned(),
        totp["secret"].as_str().unwrap().to_owned(),
    ];
    let report = super::jose_interop::peer_report("browser_reference_apps.py", args, 5).await;
    eprintln!("{report}");
    app.stop().await;
}
