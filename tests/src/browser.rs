//! A browser without a browser: whole sign-ins through identity-idp's pages (the authorization
//! request, the login page, the password form, the redirect with the code), with a cookie jar
//! as a browser keeps one. `signin_bench` and `soak` drive sign-ins with it.

use cryptoutil_federation::{HttpsClient, Response};
use hyper::Method;
use serde_json::{json, Value};

use crate::bench::{fail, Fallible};

/// The password every user these tools make has.
pub const PASSWORD: &str = "bench password, long enough to be one";
/// The redirect URI of the client these tools make.
pub const REDIRECT: &str = "https://rp.bench.test/cb";

/// A browser's cookies for one origin (every page here is identity-idp's or identity-authz's).
#[derive(Default)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    /// Keeps the cookies `r` sets.
    pub fn keep(&mut self, r: &Response) {
        for v in r.headers.get_all("set-cookie") {
            let Some((name, value)) = v
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .and_then(|p| p.split_once('='))
            else {
                continue;
            };
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header.
    pub fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    }
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The value of the hidden field `name` of `page`.
pub fn hidden(page: &str, name: &str) -> Fallible<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .ok_or_else(|| fail(format!("no {name} in the page")))?
        + marker.len();
    Ok(page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Where `r` redirects.
pub fn location(r: &Response) -> Fallible<String> {
    r.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| fail(format!("no redirect ({})", r.status)))
}

/// Where sign-ins go: identity-authz and identity-idp, and the client they sign in to.
pub struct Site {
    /// A client trusting the suite.
    pub client: HttpsClient,
    /// identity-authz's public URL.
    pub authz: String,
    /// identity-idp's public URL.
    pub idp: String,
    /// A first-party code-flow client redirecting to [`REDIRECT`].
    pub client_id: String,
}

/// One browser.
pub struct Browser<'a> {
    /// Its site.
    pub site: &'a Site,
    /// Its cookies.
    pub jar: Jar,
}

impl<'a> Browser<'a> {
    /// A browser without cookies.
    pub fn new(site: &'a Site) -> Self {
        Self {
            site,
            jar: Jar::default(),
        }
    }

    /// GET with the jar's cookies.
    pub async fn get(&mut self, url: &str) -> Fallible<Response> {
        let cookie = self.jar.header();
        let r = self
            .site
            .client
            .send(Method::GET, url, &[("cookie", &cookie)], Default::default())
            .await?;
        self.jar.keep(&r);
        Ok(r)
    }

    /// A form POST from identity-idp's origin with the jar's cookies.
    pub async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Fallible<Response> {
        let cookie = self.jar.header();
        let r = self
            .site
            .client
            .send(
                Method::POST,
                url,
                &[
                    ("cookie", &cookie),
                    ("origin", &self.site.idp),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form(fields).into(),
            )
            .await?;
        self.jar.keep(&r);
        Ok(r)
    }

    /// A new authorization request: the login page's challenge and CSRF token.
    pub async fn login_page(&mut self) -> Fallible<(String, String)> {
        let site = self.site;
        let url = format!(
            "{}/browser/oauth2/v1/authorize?{}",
            site.authz,
            form(&[
                ("response_type", "code"),
                ("client_id", &site.client_id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("state", "s"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                ),
                ("code_challenge_method", "S256"),
                ("prompt", "login"),
            ])
        );
        let r = self.get(&url).await?;
        let login = location(&r)?;
        let page = self.get(&login).await?;
        let text = String::from_utf8_lossy(&page.body).into_owned();
        Ok((hidden(&text, "challenge")?, hidden(&text, "csrf")?))
    }

    /// The password step: the answer (a redirect, or the code page).
    pub async fn password(&mut self, user: &str) -> Fallible<Response> {
        let (challenge, csrf) = self.login_page().await?;
        let url = format!("{}/browser/login", self.site.idp);
        self.post(
            &url,
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("username", user),
                ("password", PASSWORD),
            ],
        )
        .await
    }
}

/// The redirect back to the client with a code.
pub fn signed_in(r: &Response) -> Fallible<()> {
    let to = location(r)?;
    if to.starts_with(REDIRECT) && to.contains("code=") {
        Ok(())
    } else {
        Err(fail(format!("not signed in: {to}")))
    }
}

/// A JSON call with a bearer token: the answer's body, or a failure naming the status.
pub async fn api(
    client: &HttpsClient,
    token: &str,
    method: Method,
    url: &str,
    body: Value,
) -> Fallible<Value> {
    let auth = format!("Bearer {token}");
    let r = client
        .send(
            method,
            url,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().into(),
        )
        .await?;
    if !r.status.is_success() {
        return Err(fail(format!(
            "{url}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )));
    }
    Ok(serde_json::from_slice(&r.body)?)
}

/// A first-party code-flow client redirecting to [`REDIRECT`], made with an operator `token`
/// (scope `identity`) at identity-authz `authz`: its id.
pub async fn sign_in_client(client: &HttpsClient, authz: &str, token: &str) -> Fallible<String> {
    let made = api(
        client,
        token,
        Method::POST,
        &format!("{authz}/service/api/v1/identity/clients"),
        json!({"name": "Sign-in load", "redirect_uris": [REDIRECT], "first_party": true}),
    )
    .await?;
    Ok(made
        .pointer("/client_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}
