//! The authorization code flow end to end: Authlib as the relying party through identity-idp's
//! login form, and the RFC 9700 negatives (open redirects, PKCE, code reuse and theft, CSRF on
//! the login form, user enumeration, audience confusion, logout redirects).

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::Response;
use hyper::Method;
use serde_json::{json, Value};

use super::identity::{admin, bootstrap, client_token, get_with, token_request};
use crate::TestApp;

const SERVICES: [ServiceName; 5] = [
    ServiceName::IdentityAuthz,
    ServiceName::IdentityIdp,
    ServiceName::Kms,
    ServiceName::Jose,
    ServiceName::Ca,
];
pub(super) const REDIRECT: &str = "https://rp.example/cb";
const POST_LOGOUT: &str = "https://rp.example/bye";
pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(super) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A suite of [`SERVICES`] in a temporary data directory, its bootstrap credentials and an
/// operator token (scope `identity`).
pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) data: std::path::PathBuf,
    pub(super) app: TestApp,
    pub(super) boot: super::identity::Bootstrap,
    pub(super) operator: String,
}

pub(super) async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

/// The same, configured with `vars` (environment variables).
pub(super) async fn fixture_with(vars: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(SERVICES.to_vec(), vars, Some(&data)).await;
    let boot = bootstrap(&data);
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    Fixture {
        _dir: dir,
        data,
        app,
        boot,
        operator,
    }
}

/// A code-flow client registered through the admin API: (id, secret).
pub(super) async fn rp_client(app: &TestApp, operator: &str, extra: Value) -> (String, String) {
    let mut spec = json!({
        "name": "Example RP",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": [POST_LOGOUT],
    });
    if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
        s.extend(e);
    }
    let (status, v) = admin(app, operator, Method::POST, "/clients", Some(spec)).await;
    assert_eq!(status, 201, "{v}");
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A minimal browser: a cookie jar over the test client (cookies do not isolate ports).
pub(super) struct Browser<'a> {
    pub(super) app: &'a TestApp,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    pub(super) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// A request with this browser's cookies and `headers`.
    async fn call(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let cookie = self.cookie_header();
        let mut all = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("cookie", cookie.as_str()));
        }
        let r = self
            .app
            .client
            .send(method, url, &all, body.to_owned().into())
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    pub(super) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
        }
    }

    /// This browser, its cookies kept, talking to `app` (another replica behind one name).
    pub(super) fn to<'b>(&self, app: &'b TestApp) -> Browser<'b> {
        Browser {
            app,
            cookies: self.cookies.clone(),
        }
    }

    fn keep(&mut self, r: &Response) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            assert!(
                name.starts_with("__Host-") && v.contains("; Path=/; Secure"),
                "{v}"
            );
            if name == "__Host-identity-rp-session" || name == "__Host-cryptoutil-idp-session" {
                // identity-rp's session must arrive on the redirect back from identity-authz,
                // and identity-idp's on a new sign-in from another application (single
                // sign-on): other sites in a real deployment. Their forms carry CSRF tokens.
                assert!(
                    v.contains("; HttpOnly") && v.contains("SameSite=Lax"),
                    "{v}"
                );
            } else if name.ends_with("-session") {
                assert!(
                    v.contains("; HttpOnly") && v.contains("SameSite=Strict"),
                    "{v}"
                );
            } else if name.ends_with("-login") || name.ends_with("-link") {
                // The sign-in binding must survive the top-level redirect back.
                assert!(
                    v.contains("; HttpOnly") && v.contains("SameSite=Lax"),
                    "{v}"
                );
            } else {
                assert!(v.contains("SameSite=Strict"), "{v}");
            }
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// Every cookie value this browser holds.
    pub(super) fn cookie_values(&self) -> Vec<String> {
        self.cookies.iter().map(|(_, v)| v.clone()).collect()
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) async fn get(&mut self, url: &str) -> Response {
        let cookie = self.cookie_header();
        let mut headers = vec![];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        let r = self
            .app
            .client
            .send(Method::GET, url, &headers, Default::default())
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    pub(super) async fn post(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Response {
        let cookie = self.cookie_header();
        let body = form_body(form);
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let r = self
            .app
            .client
            .send(Method::POST, url, &headers, body.into())
            .await
            .unwrap();
        self.keep(&r);
        r
    }
}

/// `form` as an `application/x-www-form-urlencoded` body.
pub(super) fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                cryptoutil_protocols::oauth::form_encode(k),
                cryptoutil_protocols::oauth::form_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn location(r: &Response) -> Option<String> {
    r.headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

pub(super) fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(super) fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

pub(super) fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid kms"),
        ("state", "s-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    cryptoutil_protocols::oauth::with_query(
        &format!(
            "{}/browser/oauth2/v1/authorize",
            app.public(ServiceName::IdentityAuthz)
        ),
        &params,
    )
}

/// Opens the login page of a fresh authorization request: (form URL, challenge, csrf).
pub(super) async fn login_page(
    b: &mut Browser<'_>,
    client_id: &str,
    extra: &[(&str, &str)],
) -> (String, String, String) {
    let r = b.get(&authorize_url(b.app, client_id, extra)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let login = location(&r).unwrap();
    let idp = b.app.public(ServiceName::IdentityIdp).to_owned();
    assert!(
        login.starts_with(&format!("{idp}/browser/login?challenge=")),
        "{login}"
    );
    let page = b.get(&login).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    (
        format!("{idp}/browser/login"),
        hidden(&text, "challenge"),
        hidden(&text, "csrf"),
    )
}

/// Signs in as `user`: the redirect back to the client.
async fn sign_in(b: &mut Browser<'_>, client_id: &str, user: &str, password: &str) -> String {
    sign_in_with(b, client_id, &[], user, password).await
}

/// The same for an authorization request with `extra` parameters.
pub(super) async fn sign_in_with(
    b: &mut Browser<'_>,
    client_id: &str,
    extra: &[(&str, &str)],
    user: &str,
    password: &str,
) -> String {
    let (form, challenge, csrf) = login_page(b, client_id, extra).await;
    let origin = b.app.public(ServiceName::IdentityIdp).to_owned();
    let r = b
        .post(
            &form,
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    location(&r).unwrap()
}

async fn token_par(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, Response) {
    super::identity::oauth_post(app, "par", basic, form).await
}

pub(super) async fn redeem(app: &TestApp, client: (&str, &str), code: &str) -> (u16, Value) {
    let (status, v, _) = token_request(
        app,
        Some(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    (status, v)
}

/// Authlib (an independent OAuth/OIDC client) runs the code flow with PKCE through the login
/// form, validates the ID token against our JWK Set, uses the access token, signs in silently
/// the second time, refreshes (rotation and reuse detection), introspects, revokes and logs out.
#[tokio::test(flavor = "multi_thread")]
async fn authlib_runs_the_code_flow_through_the_login_form() {
    let Fixture {
        _dir,
        data,
        app,
        boot,
        operator,
    } = fixture().await;
    let (id, secret) = rp_client(&app, &operator, json!({})).await;
    let ca = data.join("tls/ca.pem");
    let args = vec![
        "code-flow".to_owned(),
        app.public(ServiceName::IdentityAuthz).to_owned(),
        ca.display().to_string(),
        id,
        secret,
        app.public(ServiceName::Kms).to_owned(),
        "admin".to_owned(),
        boot.password.clone(),
        REDIRECT.to_owned(),
        POST_LOGOUT.to_owned(),
    ];
    super::jose_interop::peer_report("oauth_interop.py", args, 9).await;
    app.stop().await;
}

/// RFC 9700 negatives: nothing redirects to an unregistered URI; PKCE is S256 or nothing; a
/// code works once, for its own client, and its reuse revokes what it issued; the login form
/// needs its CSRF token and refuses cross-origin posts; a wrong password and an unknown user
/// look the same; a token for one audience fails on another service; logout redirects only to
/// registered URIs.
#[tokio::test(flavor = "multi_thread")]
async fn rfc9700_negatives_of_the_code_flow() {
    let Fixture {
        _dir,
        data: _,
        app,
        boot,
        operator,
    } = fixture().await;
    let (id, secret) = rp_client(&app, &operator, json!({ "first_party": true })).await;
    let mut b = Browser::new(&app);

    // Open redirects: an unregistered (or missing) redirect_uri, an unknown client: a page.
    for extra in [
        vec![("redirect_uri", "https://evil.example/cb")],
        vec![("redirect_uri", "https://rp.example/cb?x=1")],
        vec![("redirect_uri", "")],
        vec![("client_id", "client-unknown")],
    ] {
        let client = extra
            .iter()
            .find(|(k, _)| *k == "client_id")
            .map_or(id.as_str(), |(_, v)| v);
        let r = b.get(&authorize_url(&app, client, &extra)).await;
        assert_eq!(r.status, 400, "{extra:?}");
        assert!(location(&r).is_none(), "{extra:?} must not redirect");
    }
    // PKCE: missing, plain, malformed: back to the client with invalid_request.
    for extra in [
        vec![("code_challenge", ""), ("code_challenge_method", "")],
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge", "short")],
    ] {
        let r = b.get(&authorize_url(&app, &id, &extra)).await;
        assert_eq!(r.status, 303, "{extra:?}");
        let to = location(&r).unwrap();
        assert!(to.starts_with(REDIRECT), "{to}");
        assert_eq!(
            query(&to, "error").as_deref(),
            Some("invalid_request"),
            "{to}"
        );
        assert_eq!(query(&to, "state").as_deref(), Some("s-1"));
    }

    // The login form: no CSRF cookie, a wrong CSRF token, a cross-origin post: 403.
    let (form, challenge, csrf) = login_page(&mut b, &id, &[]).await;
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let creds = [("username", "admin"), ("password", boot.password.as_str())];
    let mut stranger = Browser::new(&app);
    let r = stranger
        .post(
            &form,
            &[
                &[("challenge", challenge.as_str()), ("csrf", csrf.as_str())][..],
                &creds,
            ]
            .concat(),
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 403, "no CSRF cookie");
    let r = b
        .post(
            &form,
            &[
                &[("challenge", challenge.as_str()), ("csrf", "forged")][..],
                &creds,
            ]
            .concat(),
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 403, "wrong CSRF token");
    let r = b
        .post(
            &form,
            &[
                &[("challenge", challenge.as_str()), ("csrf", csrf.as_str())][..],
                &creds,
            ]
            .concat(),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(r.status, 403, "cross-origin");

    // No user enumeration: an unknown name and a wrong password give the same page.
    let mut pages = Vec::new();
    for user in ["admin", "no-such-user"] {
        let (form, challenge, csrf) = login_page(&mut b, &id, &[]).await;
        let r = b
            .post(
                &form,
                &[
                    ("challenge", &challenge),
                    ("csrf", &csrf),
                    ("username", user),
                    ("password", "wrong-password"),
                ],
                Some(&idp),
            )
            .await;
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(
            text.contains("The username or password is incorrect."),
            "{text}"
        );
        pages.push(
            text.replace(&hidden(&text, "csrf"), "")
                .replace(&challenge, ""),
        );
    }
    assert_eq!(pages[0], pages[1], "the two failures must look alike");

    // A code redeemed by another client: refused (and burnt).
    let back = sign_in(&mut b, &id, "admin", &boot.password).await;
    assert!(
        back.starts_with(REDIRECT) && query(&back, "iss").is_some(),
        "{back}"
    );
    let code = query(&back, "code").unwrap();
    let (other_id, other_secret) = rp_client(&app, &operator, json!({ "first_party": true })).await;
    let (status, v) = redeem(&app, (&other_id, &other_secret), &code).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let (status, v) = redeem(&app, (&boot.client_id, &boot.secret), &code).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{v}"
    );
    let (status, _) = redeem(&app, (&id, &secret), &code).await;
    assert_eq!(status, 400, "a failed redemption burns the code");

    // The session signs in silently; the code works once; its reuse revokes what it issued.
    let r = b.get(&authorize_url(&app, &id, &[])).await;
    let r = b.get(&location(&r).unwrap()).await;
    assert_eq!(r.status, 303, "single sign-on");
    let code = query(&location(&r).unwrap(), "code").unwrap();
    let (status, tokens) = redeem(&app, (&id, &secret), &code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(&app, ServiceName::Kms, "/service/api/v1/info", &access).await,
        200
    );
    let (status, v) = redeem(&app, (&id, &secret), &code).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
    let (_, v, _) = super::identity::oauth_post(
        &app,
        "introspect",
        Some((&id, &secret)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(
        v,
        json!({ "active": false }),
        "the reused code's access token is revoked"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, v, _) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "and its refresh family"
    );

    // Audience: a token for KMS (resource indicator) does not work on JOSE.
    let r = b
        .get(&authorize_url(
            &app,
            &id,
            &[("resource", "urn:cryptoutil:kms"), ("scope", "kms jose")],
        ))
        .await;
    let r = b.get(&location(&r).unwrap()).await;
    let code = query(&location(&r).unwrap(), "code").unwrap();
    let (status, tokens) = redeem(&app, (&id, &secret), &code).await;
    assert_eq!(status, 200, "{tokens}");
    let kms_only = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        get_with(&app, ServiceName::Kms, "/service/api/v1/info", kms_only).await,
        200
    );
    assert_eq!(
        get_with(
            &app,
            ServiceName::Jose,
            "/service/api/v1/jose/jwks",
            kms_only
        )
        .await,
        401
    );
    // A user access token is a bearer credential: refused on /browser.
    assert_eq!(
        get_with(&app, ServiceName::Kms, "/browser/api/v1/info", kms_only).await,
        401
    );

    // Pushed requests (RFC 9126): checked like any, by an authenticated client, for itself.
    let (status, v, _) =
        token_par(&app, None, &[("client_id", &id), ("response_type", "code")]).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );
    let base = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid kms"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let plain = [&base[..4], &[("code_challenge_method", "plain")]].concat();
    let (status, v, _) = token_par(&app, Some((&id, &secret)), &plain).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let evil = [
        &base[..1],
        &[("redirect_uri", "https://evil.example/cb")],
        &base[2..],
    ]
    .concat();
    let (status, v, _) = token_par(&app, Some((&id, &secret)), &evil).await;
    assert_eq!(status, 400, "{v}");
    let (status, v, _) = token_par(&app, Some((&id, &secret)), &base).await;
    assert_eq!(status, 201, "{v}");
    let request_uri = v["request_uri"].as_str().unwrap().to_owned();
    let by_ref = |client: &str| {
        cryptoutil_protocols::oauth::with_query(
            &format!(
                "{}/browser/oauth2/v1/authorize",
                app.public(ServiceName::IdentityAuthz)
            ),
            &[("client_id", client), ("request_uri", &request_uri)],
        )
    };
    let r = b.get(&by_ref(&other_id)).await;
    assert_eq!(r.status, 400, "another client's request_uri");
    let r = b.get(&by_ref(&id)).await;
    assert_eq!(r.status, 400, "the failed attempt spent it");
    let (_, v, _) = token_par(&app, Some((&id, &secret)), &base).await;
    let request_uri = v["request_uri"].as_str().unwrap().to_owned();
    let url = cryptoutil_protocols::oauth::with_query(
        &format!(
            "{}/browser/oauth2/v1/authorize",
            app.public(ServiceName::IdentityAuthz)
        ),
        &[
            ("client_id", id.as_str()),
            ("request_uri", request_uri.as_str()),
        ],
    );
    let r = b.get(&url).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.get(&location(&r).unwrap()).await;
    let code = query(&location(&r).unwrap(), "code").unwrap();
    assert_eq!(redeem(&app, (&id, &secret), &code).await.0, 200);
    let r = b.get(&url).await;
    assert_eq!(r.status, 400, "single use");

    // Logout: an unregistered post_logout_redirect_uri gets a page, not a redirect.
    let id_token = {
        let r = b.get(&authorize_url(&app, &id, &[])).await;
        let r = b.get(&location(&r).unwrap()).await;
        let code = query(&location(&r).unwrap(), "code").unwrap();
        redeem(&app, (&id, &secret), &code).await.1["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let logout = |post: &str| {
        cryptoutil_protocols::oauth::with_query(
            &format!(
                "{}/browser/oauth2/v1/logout",
                app.public(ServiceName::IdentityAuthz)
            ),
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", post),
            ],
        )
    };
    let r = b.get(&logout("https://evil.example/bye")).await;
    assert_eq!(r.status, 200);
    assert!(location(&r).is_none());
    let r = b.get(&logout(POST_LOGOUT)).await;
    assert_eq!(location(&r).as_deref(), Some(POST_LOGOUT));
    // An access token is not an ID token hint.
    let r = b
        .get(&cryptoutil_protocols::oauth::with_query(
            &format!(
                "{}/browser/oauth2/v1/logout",
                app.public(ServiceName::IdentityAuthz)
            ),
            &[("id_token_hint", kms_only)],
        ))
        .await;
    assert_eq!(r.status, 400);

    // Public clients: PKCE-bound codes, no client_credentials, no introspection.
    let (public_id, _) = rp_client(
        &app,
        &operator,
        json!({ "auth_methods": ["none"], "first_party": true }),
    )
    .await;
    let back = sign_in(&mut Browser::new(&app), &public_id, "admin", &boot.password).await;
    let code = query(&back, "code").unwrap();
    let (status, v, _) = token_request(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &public_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &public_id),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = super::identity::oauth_post(
        &app,
        "introspect",
        None,
        &[
            ("client_id", &public_id),
            ("token", v["access_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 401);

    // A third-party client: the user is asked; a denial goes back as access_denied.
    let (third, _) = rp_client(&app, &operator, json!({})).await;
    let mut fresh = Browser::new(&app);
    let (form, challenge, csrf) = login_page(&mut fresh, &third, &[]).await;
    let r = fresh
        .post(
            &form,
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", &boot.password),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 200, "the consent page");
    let text = r.text();
    assert!(
        text.contains("Allow access?") && text.contains("Example RP"),
        "{text}"
    );
    let consent = format!("{idp}/browser/consent");
    let csrf = hidden(&text, "csrf");
    let r = fresh
        .post(
            &consent,
            &[
                ("challenge", &challenge),
                ("csrf", "forged"),
                ("decision", "allow"),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 403, "the consent form needs its CSRF token");
    let r = fresh
        .post(
            &consent,
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("decision", "deny"),
            ],
            Some(&idp),
        )
        .await;
    let to = location(&r).unwrap();
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query(&to, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&to, "state").as_deref(), Some("s-1"));
    app.stop().await;
}

/// Browser sessions on a service: the JOSE service signs the browser in as identity-authz's
/// client (through identity-idp's form), its /browser API then works with the session cookie,
/// state-changing calls need the CSRF token, a bearer is refused on /browser and the cookie on
/// /service, and logout ends the session here and at identity-idp.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_signs_in_to_a_service_and_uses_its_browser_api_with_csrf() {
    let Fixture {
        _dir, app, boot, ..
    } = fixture().await;
    let jose = app.public(ServiceName::Jose).to_owned();
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let mut b = Browser::new(&app);

    // Unauthenticated, the UI's API says 401; sign-in starts at the service.
    let r = b.get(&format!("{jose}/browser/api/v1/session")).await;
    assert_eq!(r.status, 401);
    let r = b
        .get(&format!(
            "{jose}/browser/auth/login?return_to=/browser/ui/jose/"
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(b.cookie("__Host-cryptoutil-jose-login").is_some());
    let to_authz = location(&r).unwrap();
    assert_eq!(
        query(&to_authz, "client_id").as_deref(),
        Some("browser-jose")
    );
    assert_eq!(
        query(&to_authz, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let r = b.get(&to_authz).await;
    let login = location(&r).unwrap();
    let page = b.get(&login).await;
    let text = page.text();
    let form = [
        ("challenge", hidden(&text, "challenge")),
        ("csrf", hidden(&text, "csrf")),
        ("username", "admin".to_owned()),
        ("password", boot.password.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b
        .post(&format!("{idp}/browser/login"), &form, Some(&idp))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let callback = location(&r).unwrap();
    assert!(
        callback.starts_with(&format!("{jose}/browser/auth/callback?")),
        "{callback}"
    );

    // A callback from another browser (no binding cookie) is refused.
    let r = Browser::new(&app).get(&callback).await;
    assert_eq!(r.status, 400);
    let mut replay = Browser::new(&app);
    replay.cookies = b.cookies.clone();
    let r = b.get(&callback).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r).as_deref(), Some("/browser/ui/jose/"));
    let csrf = b
        .cookie("__Host-cryptoutil-jose-csrf")
        .expect("a CSRF cookie");
    assert!(b.cookie("__Host-cryptoutil-jose-session").is_some());
    assert!(
        b.cookie("__Host-cryptoutil-jose-login").is_none(),
        "the binding is spent"
    );
    let r = replay.get(&callback).await;
    assert_eq!(r.status, 400, "a callback works once");

    let r = b.get(&format!("{jose}/browser/api/v1/session")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let who: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(who["tenant"], "default");
    assert_eq!(who["scopes"], json!(["openid", "jose"]));

    // State-changing calls need the CSRF token.
    let key = r#"{"alg":"ES256"}"#;
    let url = format!("{jose}/browser/api/v1/jose/jwks");
    let json_ct = ("content-type", "application/json");
    let r = b.call(Method::POST, &url, &[json_ct], key).await;
    assert_eq!(r.status, 403, "no CSRF token: {}", r.text());
    let r = b
        .call(
            Method::POST,
            &url,
            &[json_ct, ("x-csrf-token", "forged")],
            key,
        )
        .await;
    assert_eq!(r.status, 403, "a wrong CSRF token");
    let r = b
        .call(Method::POST, &url, &[json_ct, ("x-csrf-token", &csrf)], key)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = b.get(&url).await;
    assert_eq!(r.status, 200);

    // The session cookie is not a credential on /service, nor on another service's /browser.
    let r = b.get(&format!("{jose}/service/api/v1/jose/jwks")).await;
    assert_eq!(r.status, 401);
    let kms = app.public(ServiceName::Kms).to_owned();
    let r = b.get(&format!("{kms}/browser/api/v1/info")).await;
    assert_eq!(r.status, 401);

    // Logout: the session ends here and identity-authz ends the identity-idp session.
    let r = b
        .call(
            Method::POST,
            &format!("{jose}/browser/auth/logout"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 403, "logout needs the CSRF token too");
    let r = b
        .call(
            Method::POST,
            &format!("{jose}/browser/auth/logout"),
            &[("x-csrf-token", &csrf)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let logout_url = v["logout_url"].as_str().unwrap();
    assert!(b.cookie("__Host-cryptoutil-jose-session").is_none());
    let r = b.get(logout_url).await;
    assert_eq!(location(&r), Some(format!("{jose}/browser/")));
    let r = b.get(&format!("{jose}/browser/api/v1/session")).await;
    assert_eq!(r.status, 401);
    // The next sign-in asks for the password again.
    let r = b.get(&format!("{jose}/browser/auth/login")).await;
    let r = b.get(&location(&r).unwrap()).await;
    let r = b.get(&location(&r).unwrap()).await;
    assert_eq!(r.status, 200, "the form, not a silent sign-in");
    app.stop().await;
}

/// A real browser: headless Chromium (Debian's, driven by Selenium) signs in to the JOSE UI
/// through identity-idp's form, manages keys, signs, verifies, encrypts, decrypts and signs
/// out, under the real CSP (no console errors).
#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_and_uses_the_jose_ui() {
    chromium(ServiceName::Jose, "browser_ui.py", 6).await;
}

/// Runs a Selenium `script` against `service`'s UI as the bootstrap admin; `cases` results,
/// all ok.
async fn chromium(service: ServiceName, script: &str, cases: usize) {
    let Fixture {
        _dir, app, boot, ..
    } = fixture().await;
    let args = vec![
        app.public(service).to_owned(),
        "admin".to_owned(),
        boot.password.clone(),
    ];
    super::jose_interop::peer_report(script, args, cases).await;
    app.stop().await;
}

/// The same for the KMS UI: keys, encryption, data keys, rotation, versions, signatures,
/// batches, import and export (jwcrypto on the other side) and the tenant's audit log, in
/// headless Chromium.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_and_uses_the_kms_ui() {
    chromium(ServiceName::Kms, "browser_kms_ui.py", 9).await;
}

/// The same for the CA UI: a root and a subordinate CA, issuance from a request `cryptography`
/// made, revocation found on the CRL the page links to, hold and release, a refused request, an
/// EST label and RA secret, an EST request approved in the page, and the tenant's audit log, in
/// headless Chromium.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_and_uses_the_ca_ui() {
    chromium(ServiceName::Ca, "browser_ca_ui.py", 11).await;
}

/// The Rust `openidconnect` crate, a second independent OpenID Connect client: discovery, the
/// code flow with PKCE and a nonce (the browser part played by the test), its ID token
/// verification (signature against our JWK Set, iss, aud, exp, nonce) and its `at_hash` check,
/// and userinfo.
#[tokio::test(flavor = "multi_thread")]
async fn the_openidconnect_crate_runs_discovery_and_the_code_flow() {
    use openidconnect::core::{
        CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
    };
    use openidconnect::{
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    let Fixture {
        _dir,
        data: _,
        app,
        boot,
        operator,
    } = fixture().await;
    let (id, secret) = rp_client(&app, &operator, json!({ "first_party": true })).await;

    // The crate's HTTP seam, over the test's TLS 1.3 client (trusting the suite's anchor).
    let https = app.client.clone();
    let http = move |req: openidconnect::HttpRequest| {
        let https = https.clone();
        async move {
            let (parts, body) = req.into_parts();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = https
                .send(parts.method, &parts.uri.to_string(), &borrowed, body.into())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut response = openidconnect::http::Response::builder().status(r.status.as_u16());
            for (k, v) in &r.headers {
                response = response.header(k.as_str(), v.as_bytes());
            }
            response
                .body(r.body.to_vec())
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    };

    let issuer = IssuerUrl::new(app.public(ServiceName::IdentityAuthz).to_owned()).unwrap();
    let provider = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        provider,
        ClientId::new(id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("kms".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser: the crate's URL, identity-idp's form, back with the code.
    let mut b = Browser::new(&app);
    let r = b.get(url.as_str()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = b.get(&location(&r).unwrap()).await;
    let text = page.text();
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let r = b
        .post(
            &format!("{idp}/browser/login"),
            &[
                ("challenge", &hidden(&text, "challenge")),
                ("csrf", &hidden(&text, "csrf")),
                ("username", "admin"),
                ("password", &boot.password),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let back = location(&r).unwrap();
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query(&back, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("the ID token verifies");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("admin")
    );
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    // The access token works at KMS.
    assert_eq!(
        get_with(
            &app,
            ServiceName::Kms,
            "/service/api/v1/info",
            tokens.access_token().secret()
        )
        .await,
        200
    );
    app.stop().await;
}

/// The services' browser sign-in admits users of every tenant (the form asks for the tenant;
/// the session carries the user's tenant); an unknown tenant fails like a wrong password.
#[tokio::test(flavor = "multi_thread")]
async fn users_of_any_tenant_sign_in_to_a_service_ui() {
    let Fixture {
        _dir,
        data: _,
        app,
        boot: _,
        operator,
    } = fixture().await;
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": "bob-password-123", "tenant": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let bob = v["id"].as_str().unwrap().to_owned();
    let jose = app.public(ServiceName::Jose).to_owned();
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let mut b = Browser::new(&app);
    async fn attempt(b: &mut Browser<'_>, jose: &str, idp: &str, tenant: &str) -> Response {
        let r = b.get(&format!("{jose}/browser/auth/login")).await;
        let r = b.get(&location(&r).unwrap()).await;
        let page = b.get(&location(&r).unwrap()).await;
        let text = page.text();
        assert!(text.contains("name=\"tenant\""), "{text}");
        b.post(
            &format!("{idp}/browser/login"),
            &[
                ("challenge", &hidden(&text, "challenge")),
                ("csrf", &hidden(&text, "csrf")),
                ("tenant", tenant),
                ("username", "bob"),
                ("password", "bob-password-123"),
            ],
            Some(idp),
        )
        .await
    }
    let r = attempt(&mut b, &jose, &idp, "nope").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("The username or password is incorrect."));
    let r = attempt(&mut b, &jose, &idp, "acme").await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.get(&location(&r).unwrap()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.get(&format!("{jose}/browser/api/v1/session")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let who: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (who["tenant"].as_str(), who["subject"].as_str()),
        (Some("acme"), Some(bob.as_str()))
    );
    // acme requires two factors of its users: the operator's browser client (of another
    // tenant) gets acme's policy once bob is known. His password session no longer serves,
    // and a new sign-in with the password alone is refused (he has no second factor).
    let (status, v) = admin(
        &app,
        &operator,
        Method::PUT,
        "/tenants/acme/policy",
        Some(json!({"acr": "urn:cryptoutil:acr:mfa"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let r = b.get(&format!("{jose}/browser/auth/login")).await;
    let r = b.get(&location(&r).unwrap()).await;
    let page = b.get(&location(&r).unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("needs a stronger sign-in"),
        "{}",
        page.text()
    );
    let mut fresh = Browser::new(&app);
    let r = attempt(&mut fresh, &jose, &idp, "acme").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("needs a stronger sign-in"),
        "{}",
        r.text()
    );
    app.stop().await;
}

/// Nothing issued is lost across a restart: a refresh family and a consent outlive the process
/// (sign-in sessions and unredeemed codes, in memory, do not).
#[tokio::test(flavor = "multi_thread")]
async fn refresh_families_and_consents_survive_a_restart() {
    let Fixture {
        _dir,
        data,
        app,
        boot,
        operator,
    } = fixture().await;
    let (id, secret) = rp_client(&app, &operator, json!({})).await;
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let mut b = Browser::new(&app);
    let (form, challenge, csrf) = login_page(&mut b, &id, &[]).await;
    let creds = [("username", "admin"), ("password", boot.password.as_str())];
    let r = b
        .post(
            &form,
            &[
                &[("challenge", challenge.as_str()), ("csrf", csrf.as_str())][..],
                &creds,
            ]
            .concat(),
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 200, "the consent page");
    let csrf = hidden(&r.text(), "csrf");
    let r = b
        .post(
            &format!("{idp}/browser/consent"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("decision", "allow"),
            ],
            Some(&idp),
        )
        .await;
    let code = query(&location(&r).unwrap(), "code").unwrap();
    let (status, tokens) = redeem(&app, (&id, &secret), &code).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    app.stop().await;

    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let (status, v, _) = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200, "the refresh family survived: {v}");
    // The consent survived too: after the password, straight back with a code.
    let idp = app.public(ServiceName::IdentityIdp).to_owned();
    let mut b = Browser::new(&app);
    let (form, challenge, csrf) = login_page(&mut b, &id, &[]).await;
    let r = b
        .post(
            &form,
            &[
                &[("challenge", challenge.as_str()), ("csrf", csrf.as_str())][..],
                &creds,
            ]
            .concat(),
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 303, "no consent page again: {}", r.text());
    assert!(query(&location(&r).unwrap(), "code").is_some());
    app.stop().await;
}
