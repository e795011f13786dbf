//! The auth seam: every route not on the public allow-list refuses missing and wrong
//! credentials, on both stacks; the stacks' IP allowlist, rate limit and browser headers.

use cryptoutil_actors::ServiceName;
use cryptoutil_http::auth::{session_cookie, Realm};
use cryptoutil_http::routes::{self, Access};
use hyper::Method;

use crate::TestApp;

/// A concrete request path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{*rest}", "anything/at/all")
        .replace("{kid}", "some-kid")
        .replace("{id}", "some-id")
        .replace("{op}", "encrypt")
        .replace("{ca}", "ca-unknown")
        .replace("{serial}", "0123")
        .replace("{*request}", "MAMCAQA")
}

const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PUT, Method::DELETE];

#[tokio::test(flavor = "multi_thread")]
async fn every_route_but_the_allow_list_refuses_missing_and_wrong_credentials() {
    let app = TestApp::suite(&[]).await;
    for service in ServiceName::ALL {
        let cookie = format!("{}=forged", session_cookie(service.as_str()));
        let table = routes::table(service);
        // The reviewed allow-list: a new public route fails here until it is added on purpose.
        let mut public: Vec<String> = table
            .iter()
            .filter(|r| r.access == Access::Public)
            .map(|r| format!("{:?} {}", r.method, r.path))
            .collect();
        public.sort();
        // Browser sign-in (the code flow, with the service as identity-authz's client).
        let mut reviewed = vec![
            "Some(GET) /browser/",
            "Some(GET) /browser/auth/login",
            "Some(GET) /browser/auth/callback",
        ];
        if service == ServiceName::Jose {
            reviewed.extend([
                "Some(GET) /browser/api/v1/openapi.yaml",
                "Some(GET) /browser/ui/common.js",
                "Some(GET) /browser/ui/jose/",
                "Some(GET) /browser/ui/jose/app.js",
                "Some(GET) /browser/ui/jose/style.css",
                "Some(GET) /service/api/v1/openapi.yaml",
            ]);
        }
        if service == ServiceName::Kms {
            reviewed.extend([
                "Some(GET) /browser/api/v1/openapi.yaml",
                "Some(GET) /browser/ui/common.js",
                "Some(GET) /browser/ui/kms/",
                "Some(GET) /browser/ui/kms/app.js",
                "Some(GET) /browser/ui/kms/style.css",
                "Some(GET) /service/api/v1/openapi.yaml",
            ]);
        }
        if service == ServiceName::Ca {
            // Distribution: relying parties fetch these signed objects before they trust TLS.
            reviewed.extend([
                "Some(GET) /browser/api/v1/ca/cas/{ca}/certificate",
                "Some(GET) /browser/api/v1/ca/cas/{ca}/crl",
                "Some(GET) /browser/api/v1/ca/cas/{ca}/crl/delta",
                "Some(GET) /browser/api/v1/ca/ocsp/{*request}",
                "Some(GET) /browser/ui/ca/",
                "Some(GET) /browser/ui/ca/app.js",
                "Some(GET) /browser/ui/ca/style.css",
                "Some(GET) /browser/ui/common.js",
                "Some(POST) /browser/api/v1/ca/ocsp",
                "Some(POST) /browser/api/v1/ca/cas/{ca}/tsa",
                "Some(GET) /browser/api/v1/openapi.yaml",
                "Some(GET) /service/api/v1/ca/cas/{ca}/certificate",
                "Some(GET) /service/api/v1/ca/cas/{ca}/crl",
                "Some(GET) /service/api/v1/ca/cas/{ca}/crl/delta",
                "Some(GET) /service/api/v1/ca/ocsp/{*request}",
                "Some(POST) /service/api/v1/ca/ocsp",
                "Some(POST) /service/api/v1/ca/cas/{ca}/tsa",
                "Some(GET) /service/api/v1/openapi.yaml",
                // EST: every enrollment authenticates its client itself (an RA secret, a
                // bearer token or a client certificate); cacerts and csrattrs are public.
                "Some(GET) /.well-known/est/cacerts",
                "Some(GET) /.well-known/est/{label}/cacerts",
                "Some(GET) /.well-known/est/csrattrs",
                "Some(GET) /.well-known/est/{label}/csrattrs",
                "Some(POST) /.well-known/est/simpleenroll",
                "Some(POST) /.well-known/est/{label}/simpleenroll",
                "Some(POST) /.well-known/est/simplereenroll",
                "Some(POST) /.well-known/est/{label}/simplereenroll",
                "Some(POST) /.well-known/est/serverkeygen",
                "Some(POST) /.well-known/est/{label}/serverkeygen",
                // CMP: every message carries its own protection (an RA secret's MAC or a
                // signature by a certificate of the label's CA), checked first.
                "Some(POST) /.well-known/cmp",
                "Some(POST) /.well-known/cmp/{operation}",
                "Some(POST) /.well-known/cmp/p/{label}",
                "Some(POST) /.well-known/cmp/p/{label}/{operation}",
                // SCEP: every PKIOperation is signed by its client and authenticated by its
                // challenge password (an RA secret) or the certificate it renews; GetCACaps
                // and GetCACert are public.
                "Some(GET) /scep",
                "Some(POST) /scep",
                "Some(GET) /scep/{label}",
                "Some(POST) /scep/{label}",
                // ACME: every POST is a JWS its account (or new key, bound to an RA secret)
                // signed over a one-time nonce; the directory and nonces are public.
                "Some(GET) /acme/{label}/directory",
                "Some(GET) /acme/{label}/new-nonce",
                "Some(HEAD) /acme/{label}/new-nonce",
                "Some(POST) /acme/{label}/new-account",
                "Some(POST) /acme/{label}/new-order",
                "Some(POST) /acme/{label}/revoke-cert",
                "Some(POST) /acme/{label}/acct/{id}",
                "Some(POST) /acme/{label}/order/{id}",
                "Some(POST) /acme/{label}/orders/{id}",
                "Some(POST) /acme/{label}/authz/{id}",
                "Some(POST) /acme/{label}/chall/{id}",
                "Some(POST) /acme/{label}/finalize/{id}",
                "Some(POST) /acme/{label}/cert/{id}",
            ]);
        }
        if service == ServiceName::IdentityAuthz {
            // OAuth protocol endpoints: they publish metadata or authenticate clients themselves.
            reviewed.extend([
                "Some(GET) /.well-known/oauth-authorization-server",
                "Some(GET) /.well-known/openid-configuration",
                "Some(GET) /service/oauth2/v1/jwks",
                "Some(POST) /service/oauth2/v1/token",
                "Some(POST) /service/oauth2/v1/introspect",
                "Some(POST) /service/oauth2/v1/revoke",
                // Pushed authorization requests: the client authenticates like at the token
                // endpoint.
                "Some(POST) /service/oauth2/v1/par",
                // Checks its bearer token itself (its audience is the services, not authz).
                "Some(GET) /service/oauth2/v1/userinfo",
                "Some(POST) /service/oauth2/v1/userinfo",
                // Browser navigations of the code flow: they validate client, redirect URI and
                // PKCE, or an ID token hint, themselves.
                "Some(GET) /browser/oauth2/v1/authorize",
                "Some(POST) /browser/oauth2/v1/authorize",
                "Some(GET) /browser/oauth2/v1/logout",
                // The admin API's OpenAPI document.
                "Some(GET) /browser/api/v1/openapi.yaml",
                "Some(GET) /service/api/v1/openapi.yaml",
            ]);
        }
        if service == ServiceName::IdentityRs {
            // RFC 9728 metadata: what the resource is and who issues its tokens, nothing more.
            reviewed.extend([
                "Some(GET) /.well-known/oauth-protected-resource",
                "Some(GET) /service/api/v1/openapi.yaml",
            ]);
        }
        if service == ServiceName::IdentityRp {
            // The reference relying party is its own authentication: its pages read its own
            // session cookie and its forms carry its CSRF token; the sign-in is bound to the
            // browser by a cookie and used once; the back channel takes only a logout token
            // signed by identity-authz for this client, each once.
            reviewed.extend([
                "Some(GET) /browser/rp/",
                "Some(GET) /browser/rp/login",
                "Some(GET) /browser/rp/callback",
                "Some(POST) /browser/rp/notes",
                "Some(POST) /browser/rp/logout",
                "Some(POST) /service/rp/v1/backchannel-logout",
            ]);
        }
        if service == ServiceName::IdentitySpa {
            // The single-page app's static page, script and public settings.
            reviewed.extend([
                "Some(GET) /browser/spa/",
                "Some(GET) /browser/spa/app.js",
                "Some(GET) /browser/spa/config.json",
            ]);
        }
        if service == ServiceName::IdentityIdp {
            // The login form: CSRF-protected, rate limited, lockout with backoff.
            reviewed.extend([
                "Some(GET) /browser/login",
                "Some(POST) /browser/login",
                // The second factor's code: the same checks, and a waiting sign-in's cookie.
                "Some(POST) /browser/login/factor",
                // Magic links: asking is the login form's (CSRF, origin), the same answer for
                // any address, throttled per address; the link's page spends nothing, its
                // form (CSRF, origin) presents a 256-bit secret bound to the asking browser's
                // cookie, spent on first use.
                "Some(POST) /browser/login/link",
                "Some(GET) /browser/login/link",
                "Some(POST) /browser/login/link/open",
                // Certificate sign-in: the login form's checks; the connection's client
                // certificate must chain to identity.certificate_ca and name a user.
                "Some(POST) /browser/login/certificate",
                "Some(POST) /browser/consent",
                // WebAuthn at sign-in: the login forms' CSRF token and origin check; a passkey
                // ceremony is bound to its cookie, a security key's to the waiting sign-in's.
                "Some(GET) /browser/login/webauthn.js",
                "Some(POST) /browser/login/webauthn/options",
                "Some(POST) /browser/login/webauthn",
                // The account page: identity-idp's own sign-in session cookie (the one its
                // login form sets), its own CSRF token, a recent sign-in to change anything.
                "Some(GET) /browser/account",
                "Some(POST) /browser/account/webauthn/options",
                "Some(POST) /browser/account/webauthn",
                "Some(POST) /browser/account/remove",
                "Some(POST) /browser/account/totp",
                "Some(POST) /browser/account/yubikey",
                "Some(POST) /browser/account/recovery",
            ]);
        }
        reviewed.sort();
        assert_eq!(public, reviewed, "{service}: the public allow-list changed");
        let base = app.public(service);
        for route in &table {
            let url = format!("{base}{}", concrete(route.path));
            let methods: Vec<Method> = match &route.method {
                Some(m) => vec![m.clone()],
                None => METHODS.to_vec(),
            };
            for method in methods {
                if route.access == Access::Public {
                    // The one public catch-all: an OCSP GET request is base64, with '/'.
                    assert!(
                        !route.path.contains("{*") || route.path.ends_with("/ca/ocsp/{*request}"),
                        "no other public catch-all: {}",
                        route.path
                    );
                    // A parameter names nothing here: past the gate, a GET is a 404 (an OCSP
                    // GET answers malformedRequest itself); a POST answers for itself.
                    let parameterized = route.path.contains('{') && !route.path.contains("{*");
                    let r = app
                        .client
                        .send(method.clone(), &url, &[], Default::default())
                        .await
                        .unwrap();
                    // Past the gate: a GET serves (unless it needs input: a code-flow
                    // navigation, the login page, userinfo's own bearer check), anything else
                    // answers for itself.
                    let needs_input = [
                        "/browser/oauth2/v1/authorize",
                        "/browser/oauth2/v1/logout",
                        "/browser/login",
                        "/browser/login/link",
                        "/browser/account",
                        "/service/oauth2/v1/userinfo",
                        "/browser/auth/login",
                        "/browser/auth/callback",
                        "/browser/rp/login",
                        "/browser/rp/callback",
                    ]
                    .contains(&route.path);
                    // EST's and SCEP's default label: nothing to serve until a label
                    // `default` exists.
                    let unlabelled = (route.path.starts_with("/.well-known/est/")
                        || route.path == "/scep")
                        && !parameterized;
                    if (parameterized || unlabelled) && method == Method::GET {
                        assert_eq!(r.status, 404, "{method} {url} is public: {}", r.text());
                    } else if method == Method::GET && !needs_input {
                        assert_eq!(r.status, 200, "{method} {url} is public");
                    } else {
                        assert!(
                            !r.text().contains("\"unauthorized\""),
                            "{method} {url} is public: {}",
                            r.text()
                        );
                    }
                    continue;
                }
                let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
                    ("none", vec![]),
                    (
                        "wrong bearer",
                        vec![("authorization", "Bearer not-a-token")],
                    ),
                    (
                        "wrong scheme",
                        vec![("authorization", "Basic dXNlcjpwYXNz")],
                    ),
                    ("forged cookie", vec![("cookie", cookie.as_str())]),
                    (
                        "both",
                        vec![("authorization", "Bearer x"), ("cookie", cookie.as_str())],
                    ),
                ];
                for (case, headers) in cases {
                    let r = app
                        .client
                        .send(method.clone(), &url, &headers, Default::default())
                        .await
                        .unwrap();
                    assert_eq!(r.status, 401, "{method} {url} with {case}: {}", r.text());
                    assert!(
                        !r.headers.contains_key("allow"),
                        "{method} {url}: a 401 must not reveal methods"
                    );
                    let www = r
                        .headers
                        .get("www-authenticate")
                        .map(|v| v.to_str().unwrap().to_owned());
                    match route.realm {
                        Realm::Service => assert!(
                            www.as_deref().is_some_and(|w| w.starts_with("Bearer")),
                            "{url} {case}: {www:?}"
                        ),
                        Realm::Browser => assert!(
                            www.is_none(),
                            "{url} {case}: no Bearer challenge on /browser"
                        ),
                    }
                }
            }
        }
        // The public page with another method is not public.
        let r = app
            .client
            .send(
                Method::POST,
                &format!("{base}{}", routes::BROWSER_HOME),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        // Outside both prefixes there is nothing.
        let r = app
            .client
            .get(&format!("{base}/admin/v1/shutdown"))
            .await
            .unwrap();
        assert_eq!(
            r.status, 404,
            "admin routes do not exist on the public listener"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_responses_carry_security_headers_and_service_ones_do_not_need_them() {
    let app = TestApp::start(vec![ServiceName::Jose], &[], None).await;
    let base = app.public(ServiceName::Jose);
    for path in [routes::BROWSER_HOME, routes::BROWSER_INFO] {
        let r = app.client.get(&format!("{base}{path}")).await.unwrap();
        let h = |name: &str| {
            r.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            h("strict-transport-security").starts_with("max-age="),
            "{path}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("referrer-policy"), "same-origin", "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_stack_rate_limits_per_client() {
    let app = TestApp::start(
        vec![ServiceName::Kms],
        &[
            (
                "CRYPTOUTIL_HTTP__SERVICE__RATE_LIMIT__REQUESTS_PER_SECOND",
                "1",
            ),
            ("CRYPTOUTIL_HTTP__SERVICE__RATE_LIMIT__BURST", "3"),
        ],
        None,
    )
    .await;
    let url = format!("{}{}", app.public(ServiceName::Kms), routes::SERVICE_INFO);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.client.get(&url).await.unwrap());
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(&codes[..3], &[401, 401, 401], "{codes:?}");
    assert_eq!(codes[3], 429, "{codes:?}");
    assert!(statuses[3].headers.contains_key("retry-after"));
    // The browser stack has its own bucket.
    let page = app
        .client
        .get(&format!(
            "{}{}",
            app.public(ServiceName::Kms),
            routes::BROWSER_HOME
        ))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_outside_the_allowlist_is_refused_before_anything_else() {
    let app = TestApp::start(
        vec![ServiceName::Ca],
        &[
            ("CRYPTOUTIL_HTTP__SERVICE__IP_ALLOWLIST", "[10.0.0.0/8]"),
            ("CRYPTOUTIL_HTTP__BROWSER__IP_ALLOWLIST", "[10.0.0.0/8]"),
        ],
        None,
    )
    .await;
    for path in [routes::SERVICE_INFO, routes::BROWSER_HOME] {
        let r = app
            .client
            .get(&format!("{}{path}", app.public(ServiceName::Ca)))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{path}");
    }
    // Admin is unaffected: it is loopback-only by binding, not by allowlist.
    let r = app
        .client
        .get(&format!("{}/admin/v1/livez", app.admin(ServiceName::Ca)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    app.stop().await;
}

/// A request from a page of `origin` to `url`; with `asks`, a preflight of a POST sending those
/// headers.
async fn cross_origin(
    app: &TestApp,
    method: Method,
    url: String,
    origin: &str,
    asks: Option<&str>,
) -> cryptoutil_federation::Response {
    let mut headers = vec![("origin", origin)];
    if let Some(asked) = asks {
        headers.push(("access-control-request-method", "POST"));
        headers.push(("access-control-request-headers", asked));
    }
    app.client
        .send(method, &url, &headers, Default::default())
        .await
        .unwrap()
}

/// CORS on /browser: only configured origins get CORS headers and preflights; a state-changing
/// request from any other origin (another port of the same host included) is refused before
/// credentials are looked at.
#[tokio::test(flavor = "multi_thread")]
async fn cors_admits_configured_origins_only() {
    let app = TestApp::start(
        vec![ServiceName::Jose],
        &[(
            "CRYPTOUTIL_HTTP__BROWSER__CORS_ALLOWED_ORIGINS",
            r#"["https://app.example"]"#,
        )],
        None,
    )
    .await;
    let base = app.public(ServiceName::Jose).to_owned();
    let url = format!("{base}/browser/api/v1/jose/jwks");
    let send = |method: Method, origin: &'static str, preflight: bool| {
        let asks = preflight.then_some("content-type, x-csrf-token");
        cross_origin(&app, method, url.clone(), origin, asks)
    };
    let acao = |r: &cryptoutil_federation::Response| {
        r.headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = send(Method::OPTIONS, "https://app.example", true).await;
    assert_eq!(r.status, 204);
    assert_eq!(acao(&r).as_deref(), Some("https://app.example"));
    assert_eq!(
        r.headers.get("access-control-allow-credentials").unwrap(),
        "true"
    );
    let r = send(Method::GET, "https://app.example", false).await;
    assert_eq!(r.status, 401, "CORS admits, credentials still required");
    assert_eq!(acao(&r).as_deref(), Some("https://app.example"));

    let r = send(Method::OPTIONS, "https://evil.example", true).await;
    assert_eq!(r.status, 403);
    assert!(acao(&r).is_none());
    let r = send(Method::POST, "https://evil.example", false).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("cross_origin"));
    let r = send(Method::GET, "https://evil.example", false).await;
    assert_eq!(r.status, 401);
    assert!(acao(&r).is_none(), "no CORS headers for a foreign origin");
    // Another port of the same host is another origin.
    let other_port = "https://127.0.0.1:1";
    let r = send(Method::POST, other_port, false).await;
    assert_eq!(r.status, 403);
    // The page's own origin is not cross-origin.
    let own: &'static str = Box::leak(base.clone().into_boxed_str());
    let r = send(Method::POST, own, false).await;
    assert_eq!(r.status, 401, "same origin: on to the credential check");
    app.stop().await;
}

/// CORS on /service, for single-page apps that hold their own tokens: a configured origin's
/// preflight may send `Authorization` and `DPoP`, its answers expose `WWW-Authenticate`, and no
/// credentials are allowed; another origin's preflight is refused, its other requests go on to
/// the credential check as without CORS.
#[tokio::test(flavor = "multi_thread")]
async fn cors_on_service_admits_token_pages_without_credentials() {
    let app = TestApp::start(
        vec![ServiceName::IdentityRs],
        &[(
            "CRYPTOUTIL_HTTP__SERVICE__CORS_ALLOWED_ORIGINS",
            r#"["https://spa.example"]"#,
        )],
        None,
    )
    .await;
    let url = format!(
        "{}/service/api/v1/notes",
        app.public(ServiceName::IdentityRs)
    );
    let send = |method: Method, origin: &'static str, preflight: bool| {
        let asks = preflight.then_some("authorization, content-type, dpop");
        cross_origin(&app, method, url.clone(), origin, asks)
    };
    let header = |r: &cryptoutil_federation::Response, name: &str| {
        r.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    };
    let r = send(Method::OPTIONS, "https://spa.example", true).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://spa.example")
    );
    let allowed = header(&r, "access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("dpop"),
        "{allowed}"
    );
    assert!(header(&r, "access-control-allow-credentials").is_none());
    let r = send(Method::GET, "https://spa.example", false).await;
    assert_eq!(r.status, 401, "CORS admits, a token is still required");
    assert!(header(&r, "access-control-expose-headers")
        .unwrap()
        .contains("www-authenticate"));

    let r = send(Method::OPTIONS, "https://evil.example", true).await;
    assert_eq!(r.status, 403);
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = send(Method::POST, "https://evil.example", false).await;
    assert_eq!(
        r.status, 401,
        "no cookie to ride on: the credential check decides"
    );
    assert!(header(&r, "access-control-allow-origin").is_none());
    app.stop().await;
}
