//! identity-idp's login and consent pages. Server-rendered HTML without script or inline
//! style, so the /browser CSP applies unchanged (the pages widen only `form-action`, to the one
//! origin their form may redirect to).
//!
//! The login form is protected against cross-site request forgery by a double-submit token: a
//! `__Host-` cookie (HttpOnly, Secure, SameSite=Strict) and a hidden field that must match, and
//! by the `Origin` header when the browser sends one. The session cookie alone is
//! `SameSite=Lax`, for single sign-on across sites (see [`session_cookie_header`]). Messages never tell whether a username
//! exists; the actor checks unknown names against a dummy record so timing does not either.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use cryptoutil_actors::identity::idp::{IdpHandle, LinkAsked, LoginOutcome, LoginStart};
use cryptoutil_actors::identity::signin::{LoginView, Next};
use cryptoutil_protocols::oauth;
use zeroize::Zeroizing;

use crate::pages::{
    bad_request, cookie, esc, get, is_form, page, params, refused, see_other, Refusal,
};
use crate::state::AppState;
use crate::tls::PeerCertificates;

/// identity-idp's login page.
pub const LOGIN: &str = "/browser/login";
/// identity-idp's consent page's answer.
pub const CONSENT: &str = "/browser/consent";
/// The second factor's form (a one-time code) of a sign-in whose password passed.
pub const LOGIN_FACTOR: &str = "/browser/login/factor";
/// Where a WebAuthn ceremony's answer is posted (a passkey, or a security key after the
/// password).
pub const LOGIN_WEBAUTHN: &str = "/browser/login/webauthn";
/// Where the login pages' script fetches a WebAuthn ceremony's options.
pub const LOGIN_WEBAUTHN_OPTIONS: &str = "/browser/login/webauthn/options";
/// The script that runs WebAuthn ceremonies on identity-idp's pages.
pub const WEBAUTHN_SCRIPT: &str = "/browser/login/webauthn.js";
/// The cookie naming a passkey ceremony (the browser that fetched its options is the one that
/// may answer it).
pub const IDP_PASSKEY_COOKIE: &str = "__Host-cryptoutil-idp-passkey";
/// identity-idp's sign-in session cookie (per service: cookies do not isolate ports).
pub const IDP_SESSION_COOKIE: &str = "__Host-cryptoutil-idp-session";
/// The login form's double-submit CSRF cookie.
pub const IDP_CSRF_COOKIE: &str = "__Host-cryptoutil-idp-csrf";
/// The cookie naming a sign-in that waits for its second factor (the browser that gave the
/// password is the one that may give the code).
pub const IDP_STEP_COOKIE: &str = "__Host-cryptoutil-idp-step";
/// Where "email me a sign-in link" posts, and where the link points (GET).
pub const LOGIN_LINK: &str = cryptoutil_actors::identity::idp::LINK_PATH;
/// Where "sign in with your certificate" posts (the connection's client certificate is what
/// it presents).
pub const LOGIN_CERTIFICATE: &str = "/browser/login/certificate";
/// Where an opened magic link's page posts to sign in.
pub const LOGIN_LINK_OPEN: &str = "/browser/login/link/open";
/// The cookie that binds a magic link to the browser that asked for it. `SameSite=Lax`: the
/// link is opened from a mail reader, a navigation from another site that a `Strict` cookie
/// would not come with.
pub const IDP_LINK_COOKIE: &str = "__Host-cryptoutil-idp-link";

pub(crate) fn login_handle(app: &AppState) -> Result<&IdpHandle, Box<Response>> {
    app.actors.get::<IdpHandle>().ok_or_else(|| {
        Box::new(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "<p>This identity-idp has no identity-authz to sign in for: it runs beside one, \
             or reaches one with <code>federation.identity_enabled</code>.</p>",
        ))
    })
}

fn expired() -> Response {
    refused(
        cryptoutil_actors::Error::NotFound {
            what: "sign-in request",
        },
        Refusal::SignInExpired,
    )
}

pub(crate) fn cookie_header(name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .ok()
}

/// identity-idp's session cookie. `SameSite=Lax`, unlike the pages' other cookies: single
/// sign-on is an application on another site sending the browser here with a new
/// authorization request, answered from this session without a form, and a `Strict` cookie
/// would not come with that navigation. What the session does on a cross-site GET is what the
/// login page does: finish a request identity-authz has already validated (client, redirect
/// URI, PKCE; consent for third parties), and show the account page. Every POST still needs
/// the `Strict` CSRF cookie, its form field and this origin.
fn session_cookie_header(value: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{IDP_SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
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
             <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>{passkey}\
             <form method=\"post\" action=\"{LOGIN_LINK}\" id=\"link-form\">\
             <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{link_tenant}\
             <p><label for=\"address\">Or sign in with a link sent to your email address</label><br>\
             <input id=\"address\" name=\"address\" type=\"email\" autocomplete=\"email\" required maxlength=\"254\"></p>\
             <p><button type=\"submit\" id=\"send-link\">Email me a sign-in link</button></p></form>\
             <form method=\"post\" action=\"{LOGIN_CERTIFICATE}\" id=\"certificate-form\">\
             <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{certificate_tenant}\
             <p><button type=\"submit\" id=\"certificate-sign-in\">Sign in with your certificate</button></p></form>",
            passkey = ceremony_form(challenge, csrf, "passkey", "Sign in with a passkey"),
            certificate_tenant = tenant_input(view, "certificate-tenant"),
            link_tenant = tenant_input(view, "link-tenant"),
            client = esc(&view.client_name),
            to_tenant = if view.any_tenant {
                String::new()
            } else {
                format!(" to tenant <strong>{}</strong>", esc(&view.tenant))
            },
            scopes = scope_list(view),
            challenge = esc(challenge),
            tenant_field = tenant_input(view, "tenant"),
        )
    })
}

/// The tenant field of a form whose client admits users of any tenant (labelled, with id
/// `id`), else nothing.
fn tenant_input(view: &LoginView, id: &str) -> String {
    if !view.any_tenant {
        return String::new();
    }
    format!(
        "<p><label for=\"{id}\">Tenant</label><br>\
         <input id=\"{id}\" name=\"tenant\" value=\"{}\" maxlength=\"64\" \
         autocomplete=\"organization\"></p>",
        esc(&view.tenant)
    )
}

/// A button that runs a WebAuthn ceremony (the script `webauthn.js`) and the hidden form that
/// posts its answer: `purpose` `passkey` (sign in without a username) or `step` (a security
/// key after the password).
fn ceremony_form(challenge: &str, csrf: &str, purpose: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{LOGIN_WEBAUTHN}\" id=\"webauthn-form\">\
         <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"purpose\" value=\"{purpose}\">\
         <input type=\"hidden\" name=\"credential\" value=\"\">\
         <p><button type=\"button\" id=\"webauthn-{purpose}\" data-webauthn=\"get\" \
         data-options=\"{LOGIN_WEBAUTHN_OPTIONS}\" data-form=\"webauthn-form\" hidden>{label}</button></p>\
         <p id=\"webauthn-message\" role=\"status\"></p></form>\
         <script src=\"{WEBAUTHN_SCRIPT}\"></script>",
        challenge = esc(challenge),
        label = esc(label),
    )
}

/// The second factor's form: a one-time code from the user's authenticator app or token, and
/// when the user has one, a security key.
fn code_form(challenge: &str, view: &LoginView, message: Option<&str>, keys: bool) -> Response {
    let alert = message.map_or(String::new(), |m| {
        format!("<p role=\"alert\" id=\"message\">{}</p>", esc(m))
    });
    csrf_page("Enter your code", view, StatusCode::OK, |csrf| {
        format!(
            "<p>Enter the code your authenticator app or token shows, or touch your YubiKey, for \
             <strong>{client}</strong>.</p>{alert}\
             <form method=\"post\" action=\"{LOGIN_FACTOR}\">\
             <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <p><label for=\"code\">Code</label><br>\
             <input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" \
             required maxlength=\"64\"></p>\
             <p><button type=\"submit\" id=\"verify\">Verify</button></p></form>{key}",
            client = esc(&view.client_name),
            challenge = esc(challenge),
            key = if keys {
                ceremony_form(challenge, csrf, "step", "Use your security key")
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
        Ok(LoginStart::StepUp(outcome)) => answer(challenge, Ok(outcome)),
        Err(e) => refused(e, Refusal::SignInExpired),
    }
}

/// A cross-origin POST (the `Origin` a browser sends) is refused. This origin is the request's
/// authority: the `Host` header in HTTP/1.1, the `:authority` pseudo-header (in the URI) in
/// HTTP/2, which browsers speak over TLS.
pub(crate) fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
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
pub(crate) struct Fields(pub(crate) Vec<(String, Zeroizing<String>)>);

impl Fields {
    /// A field's value ("" when absent).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// A posted identity-idp form after the checks every one needs: identity-authz reachable, a
/// form body with each field once, a pending request's challenge, the CSRF token and the
/// origin.
pub(crate) fn posted<'a>(
    app: &'a AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a IdpHandle, Fields), Box<Response>> {
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
    // Every one of them continues a pending request.
    if form.get("challenge").is_empty() {
        return Err(Box::new(bad_request()));
    }
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
        Err(e) => refused(e, Refusal::SignInExpired),
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
    if username.is_empty() || password.is_empty() {
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
    answer(challenge, outcome)
}

/// "Sign in with your certificate": the client certificate this connection's TLS handshake
/// presented (every listener asks for one and requires none).
pub(crate) async fn certificate_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let challenge = fields.get("challenge");
    let chain: Vec<Vec<u8>> = peer
        .map(|Extension(p)| p.0.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    let tenant = Some(fields.get("tenant").to_owned()).filter(|t| !t.is_empty());
    let outcome = handle
        .certificate(challenge.to_owned(), tenant, chain)
        .await;
    answer(challenge, outcome)
}

/// "Email me a sign-in link": the same page whether or not the address is anyone's, and the
/// cookie that binds the link to this browser.
pub(crate) async fn link_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let challenge = fields.get("challenge");
    let tenant = Some(fields.get("tenant").to_owned()).filter(|t| !t.is_empty());
    match handle
        .link_request(challenge.to_owned(), tenant, fields.get("address"))
        .await
    {
        Ok(LinkAsked::Sent { bind, view: _ }) => {
            let ttl = cryptoutil_actors::identity::idp::factors::magic_link::LINK_TTL;
            let mut response = page(
                StatusCode::OK,
                "Check your mail",
                &format!(
                    "<p id=\"link-sent\" role=\"status\">If that address belongs to an account, a \
                     sign-in link is on its way to it. Open it in this browser within {} \
                     minutes; it works once.</p>\
                     <p><a href=\"{LOGIN}?challenge={}\">Back to the sign-in page</a></p>",
                    ttl / 60,
                    esc(&oauth::form_encode(challenge))
                ),
            );
            let value = format!(
                "{IDP_LINK_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={ttl}",
                bind.as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Ok(LinkAsked::BadAddress(view)) => form(
            challenge,
            &view,
            Some("Enter an email address (name@example.com)."),
            StatusCode::OK,
        ),
        Err(e) => refused(e, Refusal::SignInExpired),
    }
}

/// `GET /browser/login/link?token=...`: an opened magic link's page, which spends nothing (a
/// mail reader that fetches links to scan them must not use them up): the user goes on with
/// its button, which posts to [`LOGIN_LINK_OPEN`].
pub(crate) async fn link_get(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let handle = match login_handle(&app) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return bad_request();
    };
    let token = Zeroizing::new(get(&params, "token").unwrap_or_default().to_owned());
    match handle.link_view(&token).await {
        Ok((challenge, view)) => csrf_page("Sign in", &view, StatusCode::OK, |csrf| {
            format!(
                "<p>Sign in to <strong>{client}</strong> with the link from your mail.</p>\
                 <form method=\"post\" action=\"{LOGIN_LINK_OPEN}\">\
                 <input type=\"hidden\" name=\"challenge\" value=\"{challenge}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"token\" value=\"{token}\">\
                 <p><button type=\"submit\" id=\"open-link\">Continue signing in</button></p></form>",
                client = esc(&view.client_name),
                challenge = esc(&challenge),
                token = esc(&token),
            )
        }),
        Err(cryptoutil_actors::Error::NotFound { .. }) => link_refused(),
        Err(e) => refused(e, Refusal::SignInExpired),
    }
}

fn link_refused() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Sign-in link not valid",
        "<p id=\"message\" role=\"alert\">This sign-in link does not sign you in: it was \
         used already, it expired, or it was opened in another browser than the one that \
         asked for it. Go back to the application and ask for a new one.</p>",
    )
}

/// `POST /browser/login/link/open` (`challenge`, `csrf`, `token`): the link is used. The
/// sign-in goes on as after the password (the next factor's page, or back to the client); a
/// used, expired or foreign link gets a page that says to ask again.
pub(crate) async fn link_open_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let bind = cookie(&headers, IDP_LINK_COOKIE).map(|c| Zeroizing::new(c.to_owned()));
    let mut response = match handle.link_open(fields.get("token"), bind).await {
        Ok((challenge, outcome)) => answer(&challenge, Ok(outcome)),
        Err(cryptoutil_actors::Error::NotFound { .. }) => link_refused(),
        Err(e) => refused(e, Refusal::SignInExpired),
    };
    // This browser's link has served (or expired).
    let clear = format!("{IDP_LINK_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The second factor's code for the sign-in the step cookie names.
pub(crate) async fn factor_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let challenge = fields.get("challenge");
    // No step cookie: the sign-in is gone (or another browser asks); the same answer as
    // an expired one.
    let step = cookie(&headers, IDP_STEP_COOKIE).unwrap_or_default();
    let outcome = handle
        .second(
            challenge.to_owned(),
            Zeroizing::new(step.to_owned()),
            Zeroizing::new(fields.get("code").to_owned()),
        )
        .await;
    answer(challenge, outcome)
}

/// The page (or redirect) a sign-in outcome answers with, and the cookies it sets.
pub(crate) fn answer(
    challenge: &str,
    outcome: Result<LoginOutcome, cryptoutil_actors::Error>,
) -> Response {
    match outcome {
        Ok(LoginOutcome::NextFactor { step, view, keys }) => {
            let mut response = code_form(challenge, &view, None, keys);
            let max_age = cryptoutil_actors::identity::idp::state::STEP_TTL;
            if let Some(v) = cookie_header(IDP_STEP_COOKIE, &step, Some(max_age)) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Ok(LoginOutcome::CodeFailed {
            message,
            view,
            keys,
        }) => code_form(challenge, &view, Some(message), keys),
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
            let headers = response.headers_mut();
            if let Some(v) = session_cookie_header(&session, max_age) {
                headers.append(header::SET_COOKIE, v);
            }
            if let Some(v) = cookie_header(IDP_STEP_COOKIE, "", Some(0)) {
                headers.append(header::SET_COOKIE, v);
            }
            response
        }
        Ok(LoginOutcome::Failed { message, view }) => {
            let mut response = form(challenge, &view, Some(message), StatusCode::OK);
            if let Some(v) = cookie_header(IDP_STEP_COOKIE, "", Some(0)) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => refused(e, Refusal::SignInExpired),
    }
}
