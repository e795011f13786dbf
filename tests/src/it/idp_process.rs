//! identity-idp in its own process: `cryptoutil serve identity-idp` signs users in for
//! `cryptoutil serve identity-authz` in another process, over the back channel
//! (`POST /service/api/v1/identity/signin`, TLS 1.3 verified against identity-authz's anchor,
//! a client-credentials token of a configured federation client with the scope
//! `identity-idp`, through the idp's breaker for identity-authz). A browser (a cookie jar over
//! two TLS clients, each trusting one process's anchor) signs in with the password and a TOTP
//! code from `oathtool`; Authlib-free checks of the ID token's `amr`/`acr`. The back channel
//! refuses tokens without the scope; identity-authz is killed (-9): the login page answers a
//! clear 503 and the breaker opens; it comes back on the same port and data: the breaker
//! closes and a new sign-in works.

use std::time::Duration;

use cryptoutil_federation::{HttpsClient, Method, Response};
use serde_json::json;

use super::code_flow::{form_body, hidden, location, query, CHALLENGE, REDIRECT, VERIFIER};
use super::federation::metric;
use super::federation_process::{call, client_token, identity_breaker, token_post};
use super::identity::claims;
use super::otp::oathtool;
use crate::{free_port, Process};

/// A browser over two origins: the cookie jar sends every cookie to both (cookies do not
/// isolate ports), each request goes out on the client trusting the origin's process.
struct Jar {
    clients: Vec<(String, HttpsClient)>,
    cookies: Vec<(String, String)>,
}

impl Jar {
    fn client(&self, url: &str) -> &HttpsClient {
        &self
            .clients
            .iter()
            .find(|(base, _)| url.starts_with(base.as_str()))
            .unwrap_or_else(|| panic!("no client for {url}"))
            .1
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        form: Option<(&str, &[(&str, &str)])>,
    ) -> Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        let body = match form {
            Some((origin, fields)) => {
                headers.push(("content-type", "application/x-www-form-urlencoded"));
                headers.push(("origin", origin));
                form_body(fields)
            }
            None => String::new(),
        };
        let r = self
            .client(url)
            .send(method, url, &headers, body.into())
            .await
            .unwrap();
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        r
    }
}

impl Jar {
    /// A jar without cookies over identity-authz at `authz` and identity-idp at `idp`.
    fn new(authz: (&str, &HttpsClient), idp: (&str, &HttpsClient)) -> Self {
        Self {
            clients: vec![
                (authz.0.to_owned(), authz.1.clone()),
                (idp.0.to_owned(), idp.1.clone()),
            ],
            cookies: Vec::new(),
        }
    }
}

/// A fresh authorization request through the login page and the password: the code form's
/// page and the challenge.
async fn password_step(
    jar: &mut Jar,
    authz: &str,
    idp: &str,
    client_id: &str,
) -> (u16, String, String) {
    let authorize = cryptoutil_protocols::oauth::with_query(
        &format!("{authz}/browser/oauth2/v1/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = jar.send(Method::GET, &authorize, None).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let login = location(&r).unwrap();
    assert!(
        login.starts_with(&format!("{idp}/browser/login?challenge=")),
        "{login}"
    );
    let page = jar.send(Method::GET, &login, None).await;
    if page.status != 200 {
        return (u16::from(page.status), page.text(), String::new());
    }
    let text = page.text();
    let (challenge, csrf) = (hidden(&text, "challenge"), hidden(&text, "csrf"));
    let form = [
        ("challenge", challenge.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "alice"),
        ("password", super::signin_factors::PASSWORD),
    ];
    let r = jar
        .send(
            Method::POST,
            &format!("{idp}/browser/login"),
            Some((idp, &form)),
        )
        .await;
    (u16::from(r.status), r.text(), challenge)
}

/// The TOTP code on the code form `page`: where the browser goes.
async fn code_step(
    jar: &mut Jar,
    idp: &str,
    page: &str,
    challenge: &str,
    code: &str,
) -> (u16, String) {
    assert!(page.contains("name=\"code\""), "the code form: {page}");
    let csrf = hidden(page, "csrf");
    let form = [
        ("challenge", challenge),
        ("csrf", csrf.as_str()),
        ("code", code),
    ];
    let r = jar
        .send(
            Method::POST,
            &format!("{idp}/browser/login/factor"),
            Some((idp, &form)),
        )
        .await;
    match location(&r) {
        Some(to) => (u16::from(r.status), to),
        None => (u16::from(r.status), r.text()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_idp_in_its_own_process_signs_in_with_password_and_totp_over_the_back_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let (authz_data, idp_data) = (tmp.path().join("authz"), tmp.path().join("idp"));
    let (authz_port, idp_port) = (free_port().to_string(), free_port().to_string());
    let idp = format!("https://127.0.0.1:{idp_port}");
    let login_url = format!("{idp}/browser/login");
    let secret_file = tmp.path().join("idp-client");
    let idp_secret = "the-idp-back-channel-secret-of-48-characters-xyz";
    std::fs::write(&secret_file, idp_secret).unwrap();
    let clients = format!(
        "[{{client_id: suite-idp, secret: \"file://{}\", scopes: [identity-idp]}}]",
        secret_file.display()
    );
    let authz_env = [
        (
            "CRYPTOUTIL_SERVICES__IDENTITY_AUTHZ__PUBLIC__PORT",
            authz_port.as_str(),
        ),
        ("CRYPTOUTIL_IDENTITY__LOGIN_URL", login_url.as_str()),
        ("CRYPTOUTIL_IDENTITY__FEDERATION_CLIENTS", clients.as_str()),
    ];
    let mut authz_proc = Process::spawn(&authz_data, &["serve", "identity-authz"], &authz_env);
    let endpoints = tokio::task::block_in_place(|| authz_proc.wait_ready(Duration::from_secs(30)));
    let authz = endpoints["identity-authz"].public.clone();
    let authz_client = authz_proc.client();

    let anchor = format!(
        "file://{}",
        cryptoutil_bin::pki::anchor_path(&authz_data).display()
    );
    let secret_ref = format!("file://{}", secret_file.display());
    let idp_env = [
        (
            "CRYPTOUTIL_SERVICES__IDENTITY_IDP__PUBLIC__PORT",
            idp_port.as_str(),
        ),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
        ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", authz.as_str()),
        // Generous: the whole suite runs beside this test on two cores. A kill is seen at
        // once (connections refused), not by this timeout.
        ("CRYPTOUTIL_FEDERATION__IDENTITY_TIMEOUT", "3s"),
        ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
        ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "suite-idp"),
        (
            "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
            secret_ref.as_str(),
        ),
        ("CRYPTOUTIL_FEDERATION__AUTH__CA", anchor.as_str()),
        ("CRYPTOUTIL_FEDERATION__BREAKER__FAILURE_THRESHOLD", "3"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "1s"),
        ("CRYPTOUTIL_FEDERATION__BREAKER__HALF_OPEN_PROBES", "2"),
        ("CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL", "250ms"),
    ];
    let mut idp_proc = Process::spawn(&idp_data, &["serve", "identity-idp"], &idp_env);
    let idp_endpoints =
        tokio::task::block_in_place(|| idp_proc.wait_ready(Duration::from_secs(30)));
    assert_eq!(idp_endpoints["identity-idp"].public, idp);
    let idp_admin = idp_endpoints["identity-idp"].admin.clone();
    let idp_client = idp_proc.client();

    // The operator makes a user and a code-flow client at identity-authz, and enrolls the
    // user's authenticator app at identity-idp (which finds the user over the back channel).
    let boot = super::identity::bootstrap(&authz_data);
    let (boot_id, boot_secret) = (boot.client_id.as_str(), boot.secret.as_str());
    let operator = client_token(&authz_client, &authz, boot_id, boot_secret, "identity").await;
    let api = |path: &str| format!("{authz}/service/api/v1/identity{path}");
    let (s, v) = call(
        &authz_client,
        Method::POST,
        &api("/users"),
        &operator,
        Some(json!({"username": "alice", "password": super::signin_factors::PASSWORD})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, rp) = call(
        &authz_client,
        Method::POST,
        &api("/clients"),
        &operator,
        Some(json!({"name": "Example RP", "redirect_uris": [REDIRECT], "first_party": true})),
    )
    .await;
    assert_eq!(s, 201, "{rp}");
    let (client_id, client_secret) = (
        rp["client_id"].as_str().unwrap().to_owned(),
        rp["client_secret"].as_str().unwrap().to_owned(),
    );
    let (s, totp) = call(
        &idp_client,
        Method::POST,
        &format!("{idp}/service/api/v1/identity/users/alice/factors"),
        &operator,
        Some(json!({"type": "totp", "name": "phone"})),
    )
    .await;
    assert_eq!(s, 201, "{totp}\n{}", idp_proc.log_text());
    let totp_secret = totp["secret"].as_str().unwrap().to_owned();

    // The back channel: only the scope identity-idp calls it (the operator's `identity`
    // token does not), and it needs a token at all.
    let signin = format!("{authz}/service/api/v1/identity/signin");
    let users = json!({"op": "users", "tenant": boot.tenant});
    let (s, _) = call(
        &authz_client,
        Method::POST,
        &signin,
        &operator,
        Some(users.clone()),
    )
    .await;
    assert_eq!(s, 403, "the identity scope is not the back channel's");
    let (s, _) = call(
        &authz_client,
        Method::POST,
        &signin,
        "",
        Some(users.clone()),
    )
    .await;
    assert_eq!(s, 401);
    let link = client_token(
        &authz_client,
        &authz,
        "suite-idp",
        idp_secret,
        "identity-idp",
    )
    .await;
    // Only asked for by name, and only by a configured client: the same client's token
    // without a scope (what it shows its other peers) does not carry it, and the bootstrap
    // client cannot have it.
    let credentials = "grant_type=client_credentials";
    let (s, v) = token_post(
        &authz_client,
        &authz,
        ("suite-idp", idp_secret),
        credentials.into(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let scope = claims(v["access_token"].as_str().unwrap())["scope"].to_string();
    assert!(!scope.contains("identity-idp"), "{scope}");
    let asked = format!("{credentials}&scope=identity-idp");
    let (s, v) = token_post(&authz_client, &authz, (boot_id, boot_secret), asked).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_scope")),
        "{v}"
    );
    let (s, listed) = call(&authz_client, Method::POST, &signin, &link, Some(users)).await;
    assert_eq!(s, 200, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "alice"),
        "{listed}"
    );
    let (s, v) = call(
        &authz_client,
        Method::POST,
        &signin,
        &link,
        Some(json!({"op": "password", "tenant": boot.tenant, "username": "alice", "password": "wrong"})),
    )
    .await;
    assert_eq!((s, &v["matched"]), (200, &json!(false)), "{v}");
    assert!(
        v["user"].get("password_hash").is_none(),
        "no record travels: {v}"
    );

    // A browser signs in: the password, then the TOTP code, back to the client with a code.
    let mut jar = Jar::new((&authz, &authz_client), (&idp, &idp_client));
    let (s, page, challenge) = password_step(&mut jar, &authz, &idp, &client_id).await;
    assert_eq!(s, 200, "{page}\n{}", idp_proc.log_text());
    let code = oathtool(&["--totp", "--base32", &totp_secret]).concat();
    let (s, to) = code_step(&mut jar, &idp, &page, &challenge, &code).await;
    assert_eq!(s, 303, "{to}\n{}", idp_proc.log_text());
    assert!(to.starts_with(REDIRECT), "{to}");
    let redeem = |code: String| {
        let (authz_client, authz) = (&authz_client, &authz);
        let client = (client_id.as_str(), client_secret.as_str());
        async move {
            let form = format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                cryptoutil_protocols::oauth::form_encode(REDIRECT)
            );
            let (s, v) = token_post(authz_client, authz, client, form).await;
            assert_eq!(s, 200, "{v}");
            claims(v["id_token"].as_str().unwrap())
        }
    };
    let id = redeem(query(&to, "code").unwrap()).await;
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    assert_eq!(id["acr"], "urn:cryptoutil:acr:mfa");
    assert_eq!(id["sub"], v["user"]["user_id"], "{id}");

    // The same code again, in a new sign-in: refused (the idp keeps the factor's state).
    let mut again = Jar::new((&authz, &authz_client), (&idp, &idp_client));
    let (s, page, challenge) = password_step(&mut again, &authz, &idp, &client_id).await;
    assert_eq!(s, 200, "{page}");
    let (s, refused) = code_step(&mut again, &idp, &page, &challenge, &code).await;
    assert_ne!(s, 303, "a replayed code: {refused}");

    // identity-authz dies: the login page says so (503, Retry-After), the breaker opens.
    let (_, page, challenge) = password_step(&mut again, &authz, &idp, &client_id).await;
    assert!(page.contains("name=\"code\""), "{page}");
    authz_proc.kill9();
    let login_again = format!("{idp}/browser/login?challenge={challenge}");
    let r = again.send(Method::GET, &login_again, None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.headers.get("retry-after").is_some());
    assert!(
        r.text().contains("identity-authz cannot be reached"),
        "{}",
        r.text()
    );
    let state = || identity_breaker(&idp_client, &idp_admin);
    assert!(
        crate::eventually(Duration::from_secs(20), || async {
            let _ = idp_client.get(&login_again).await;
            state().await == "open"
        })
        .await,
        "the breaker never opened:\n{}",
        idp_proc.log_text()
    );

    // It comes back on the same port with the same data: the breaker closes, a new sign-in
    // works (the pending request it had died with it).
    let mut authz_proc = Process::spawn(&authz_data, &["serve", "identity-authz"], &authz_env);
    tokio::task::block_in_place(|| authz_proc.wait_ready(Duration::from_secs(30)));
    // Traffic (a login page of an unknown request: identity-authz's 404 is an answer) and
    // health polls bring it back.
    let probe = format!("{idp}/browser/login?challenge=unknown");
    assert!(
        crate::eventually(Duration::from_secs(20), || async {
            let _ = idp_client.get(&probe).await;
            state().await == "closed"
        })
        .await,
        "the breaker never closed:\n{}",
        idp_proc.log_text()
    );
    let mut jar = Jar::new((&authz, &authz_proc.client()), (&idp, &idp_client));
    let (s, page, challenge) = password_step(&mut jar, &authz, &idp, &client_id).await;
    assert_eq!(s, 200, "{page}\n{}", idp_proc.log_text());
    // A fresh code: the last one was spent.
    let next = loop {
        let c = oathtool(&["--totp", "--base32", &totp_secret]).concat();
        if c != code {
            break c;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let (s, to) = code_step(&mut jar, &idp, &page, &challenge, &next).await;
    assert_eq!(s, 303, "{to}");
    let id = redeem(query(&to, "code").unwrap()).await;
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");

    // Every back-channel call went through the idp's breaker for identity-authz.
    let m = idp_client
        .get(&format!("{idp_admin}/admin/v1/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metric(
            &m,
            "federation_request_duration_seconds_count",
            &[("service", "identity")]
        ) >= 8.0,
        "{m}"
    );
}
