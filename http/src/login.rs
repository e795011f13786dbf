//! The browser side of sign-in: identity-authz's authorization endpoint and RP-initiated
//! logout, and identity-idp's login page. Server-rendered HTML without script or inline style,
//! so the /browser CSP applies unchanged (the login page widens only `form-action`, to the one
//! origin its form may redirect to).
//!
//! The login form is protected against cross-site request forgery by a double-submit token: a
//! `__Host-` cookie (HttpOnly, Secure, SameSite=Strict) and a hidden field that must match, and
//! by the `Origin` header when the browser sends one. Messages never tell whether a username
//! exists; the actor checks unknown names against a dummy record so timing does not either.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use cryptoutil_actors::authz::flow::{AuthorizeOutcome, LoginOutcome, LoginStart, LoginView, Next};
use cryptoutil_actors::authz::AuthzHandle;
use cryptoutil_protocols::oauth;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::AppState;

/// identity-idp's login page.
pub const LOGIN: &str = "/browser/login";
/// identity-idp's consent page's answer.
pub const CONSENT: &str = "/browser/consent";
/// identity-idp's sign-in session cookie (per service: cookies do not isolate ports).
pub const IDP_SESSION_COOKIE: &str = "__Host-cryptoutil-idp-session";
/// The login form's double-submit CSRF cookie.
pub const IDP_CSRF_COOKIE: &str = "__Host-cryptoutil-idp-csrf";

/// Largest form or query accepted.
const MAX_INPUT: usize = 16 * 1024;

/// HTML-escapes text for element content and quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title></head><body><main><h1>{}</h1>{body}</main></body></html>",
            esc(title),
            esc(title)
        )),
    )
        .into_response()
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "<p>The redirect address is not valid.</p>",
        ),
    }
}

/// Parameters of a query or form, each at most once.
pub(crate) fn params(raw: &[u8]) -> Option<Vec<(String, String)>> {
    if raw.len() > MAX_INPUT {
        return None;
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.iter().any(|(n, _)| *n == k) {
            return None;
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Some(out)
}

pub(crate) fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    crate::auth::cookie_value(headers, name).filter(|v| !v.is_empty())
}

fn bad_request() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        "<p>A parameter is repeated, malformed or too long.</p>",
    )
}

// === identity-authz ===

fn authz(app: &AppState) -> Result<&AuthzHandle, ApiError> {
    app.actors.authz.as_ref().ok_or(ApiError::NotFound)
}

async fn authorize(app: &AppState, raw: &[u8]) -> Result<Response, ApiError> {
    let authz = authz(app)?;
    let Some(params) = params(raw) else {
        return Ok(bad_request());
    };
    Ok(match authz.authorize(params).await? {
        AuthorizeOutcome::Redirect(to) => see_other(&to),
        AuthorizeOutcome::Refuse(why) => page(
            StatusCode::BAD_REQUEST,
            "Sign-in request refused",
            &format!("<p>{}</p>", esc(why)),
        ),
    })
}

pub(crate) async fn authorize_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&app, query.unwrap_or_default().as_bytes()).await
}

pub(crate) async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_form(&headers) {
        return Ok(bad_request());
    }
    authorize(&app, &body).await
}

pub(crate) async fn logout_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let authz = authz(&app)?;
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return Ok(bad_request());
    };
    let owned = |n: &str| get(&params, n).map(str::to_owned);
    match authz
        .logout(
            owned("id_token_hint"),
            owned("post_logout_redirect_uri"),
            owned("state"),
        )
        .await
    {
        Ok(Some(to)) => Ok(see_other(&to)),
        Ok(None) => Ok(page(
            StatusCode::OK,
            "Signed out",
            "<p>You are signed out. You can close this window.</p>",
        )),
        Err(cryptoutil_actors::Error::BadRequest { reason }) => Ok(page(
            StatusCode::BAD_REQUEST,
            "Sign-out refused",
            &format!("<p>{}</p>", esc(reason)),
        )),
        Err(e) => Err(e.into()),
    }
}

// === identity-idp ===

fn login_handle(app: &AppState) -> Result<&AuthzHandle, Box<Response>> {
    app.actors.login.as_ref().ok_or_else(|| {
        Box::new(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "<p>identity-authz is not reachable from this identity-idp.</p>",
        ))
    })
}

fn expired() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in request expired",
        "<p>This sign-in request is unknown or has expired. Start again from the application.</p>",
    )
}

fn cookie_header(name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .ok()
}

/// A page with a form that posts back here, protected by a fresh double-submit CSRF token, under
/// a CSP whose `form-action` admits this origin and the client's (the answer redirects there).
fn csrf_page(
    title: &str,
    view: &LoginView,
    status: StatusCode,
    body: impl FnOnce(&str) -> String,
) -> Response {
    let Ok(csrf) = oauth::random_token(32) else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in unavailable",
            "<p>Try again.</p>",
        );
    };
    let mut response = page(status, title, &body(&csrf));
    let csp = format!(
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; \
         form-action 'self' {}",
        view.redirect_origin
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Some(v) = cookie_header(IDP_CSRF_COOKIE, &csrf, None) {
        headers.append(header::SET_COOKIE, v);
    }
    response
}

fn scope_list(view: &LoginView) -> String {
    view.scopes
        .iter()
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect()
}

/// The login form.
fn form(challenge: &str, view: &LoginView, message: Option<&str>, status: StatusCode) -> Response {
    let alert = message.map_or(String::new(), |m| {
        format!("<p role=\"alert\" id=\"message\">{}</p>", esc(m))
    });
    csrf_page("Sign in", view, status, |csrf| {
        format!(
            "<p><strong>{client}</strong> asks you to sign in{to_tenant} and to allow:</p>\
             <ul>{scopes}</ul>{alert}\
             <form method=\"post\" action=\"{LOGIN}\">\
             <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{tenant_field}\
             <p><label for=\"username\">Username</label><br>\
             <input id=\"username\" name=\"username\" autocomplete=\"username\" required maxlength=\"128\"></p>\
             <p><label for=\"password\">Password</label><br>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"512\"></p>\
             <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>",
            client = esc(&view.client_name),
            to_tenant = if view.any_tenant {
                String::new()
            } else {
                format!(" to tenant <strong>{}</strong>", esc(&view.tenant))
            },
            scopes = scope_list(view),
            challenge = esc(challenge),
            tenant_field = if view.any_tenant {
                format!(
                    "<p><label for=\"tenant\">Tenant</label><br>\
                     <input id=\"tenant\" name=\"tenant\" value=\"{}\" maxlength=\"64\" \
                     autocomplete=\"organization\"></p>",
                    esc(&view.tenant)
                )
            } else {
                String::new()
            },
        )
    })
}

/// The consent page: a third-party client asks for scopes the user has not granted it.
fn consent_form(challenge: &str, view: &LoginView) -> Response {
    csrf_page("Allow access?", view, StatusCode::OK, |csrf| {
        format!(
            "<p>Signed in as <strong>{user}</strong> (tenant <strong>{tenant}</strong>).</p>\
             <p><strong>{client}</strong> asks for:</p><ul>{scopes}</ul>\
             <form method=\"post\" action=\"{CONSENT}\">\
             <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <p><button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></p></form>",
            user = esc(view.username.as_deref().unwrap_or_default()),
            tenant = esc(&view.tenant),
            client = esc(&view.client_name),
            scopes = scope_list(view),
            challenge = esc(challenge),
        )
    })
}

pub(crate) async fn login_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let handle = match login_handle(&app) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return bad_request();
    };
    let Some(challenge) = get(&params, "challenge") else {
        return expired();
    };
    let session = cookie(&headers, IDP_SESSION_COOKIE).map(|c| Zeroizing::new(c.to_owned()));
    match handle.login_start(challenge.to_owned(), session).await {
        Ok(LoginStart::Form(view)) => form(challenge, &view, None, StatusCode::OK),
        Ok(LoginStart::Redirect(to)) => see_other(&to),
        Ok(LoginStart::Consent(view)) => consent_form(challenge, &view),
        Err(cryptoutil_actors::Error::NotFound { .. }) => expired(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A cross-origin POST (the `Origin` a browser sends) is refused. This origin is the request's
/// authority: the `Host` header in HTTP/1.1, the `:authority` pseudo-header (in the URI) in
/// HTTP/2, which browsers speak over TLS.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o == format!("https://{h}"),
        _ => false,
    }
}

/// The double-submit CSRF check (cookie = field) and the `Origin` check of a posted form.
fn verify_form(
    headers: &HeaderMap,
    uri: &Uri,
    challenge: &str,
    csrf: &str,
) -> Result<(), Box<Response>> {
    let csrf_ok = match cookie(headers, IDP_CSRF_COOKIE) {
        Some(c) => !csrf.is_empty() && oauth::constant_time_eq(c.as_bytes(), csrf.as_bytes()),
        None => false,
    };
    if csrf_ok && same_origin(headers, uri) {
        return Ok(());
    }
    Err(Box::new(page(
        StatusCode::FORBIDDEN,
        "Sign-in form expired",
        &format!(
            "<p>The form could not be verified. <a href=\"{LOGIN}?challenge={}\">Open the \
             sign-in page again</a>.</p>",
            esc(&oauth::form_encode(challenge))
        ),
    )))
}

/// The fields of a posted identity-idp form, zeroized on drop.
struct Fields(Vec<(String, Zeroizing<String>)>);

impl Fields {
    /// A field's value ("" when absent).
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// A posted identity-idp form after the checks every one needs: identity-authz reachable, a
/// form body with each field once, the CSRF token and the origin.
fn posted<'a>(
    app: &'a AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a AuthzHandle, Fields), Box<Response>> {
    let handle = login_handle(app)?;
    if !is_form(headers) {
        return Err(Box::new(bad_request()));
    }
    let form = Fields(
        params(body)
            .ok_or_else(|| Box::new(bad_request()))?
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v)))
            .collect(),
    );
    verify_form(headers, uri, form.get("challenge"), form.get("csrf"))?;
    Ok((handle, form))
}

/// The consent page's answer: allow or deny.
pub(crate) async fn consent_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, form) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let challenge = form.get("challenge");
    let allow = match form.get("decision") {
        "allow" => true,
        "deny" => false,
        _ => return bad_request(),
    };
    match handle.consent(challenge.to_owned(), allow).await {
        Ok(to) => {
            let mut r = see_other(&to);
            if let Some(v) = cookie_header(IDP_CSRF_COOKIE, "", Some(0)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(cryptoutil_actors::Error::NotFound { .. }) => expired(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub(crate) async fn login_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let field = |n: &str| fields.get(n);
    let challenge = field("challenge");
    let (username, password) = (field("username"), field("password"));
    if challenge.is_empty() || username.is_empty() || password.is_empty() {
        return bad_request();
    }
    let outcome = handle
        .login(
            challenge.to_owned(),
            Some(field("tenant").to_owned()).filter(|t| !t.is_empty()),
            username.to_owned(),
            Zeroizing::new(password.to_owned()),
        )
        .await;
    match outcome {
        Ok(LoginOutcome::Done {
            next,
            session,
            max_age,
        }) => {
            let mut response = match next {
                Next::Redirect(to) => {
                    let mut r = see_other(&to);
                    // The CSRF cookie has served its form.
                    if let Some(v) = cookie_header(IDP_CSRF_COOKIE, "", Some(0)) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                    r
                }
                Next::Consent(view) => consent_form(challenge, &view),
            };
            if let Some(v) = cookie_header(IDP_SESSION_COOKIE, &session, Some(max_age)) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Ok(LoginOutcome::Failed { message, view }) => {
            form(challenge, &view, Some(message), StatusCode::OK)
        }
        Err(cryptoutil_actors::Error::NotFound { .. }) => expired(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
