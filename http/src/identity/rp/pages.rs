//! identity-rp's pages. Server-rendered HTML without script; every state-changing form carries
//! the session's CSRF token; every network call (identity-authz, identity-rs) is made by the
//! relying party's handle, never by the browser.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cryptoutil_actors::identity::rp::{RpHandle, SessionView};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{HOME, LOGIN, LOGOUT, NOTES};
use crate::pages::{cookie, esc, get, is_form, page, params, refused, see_other, Refusal};
use crate::state::AppState;

/// The session cookie.
const SESSION: &str = "__Host-identity-rp-session";
/// The cookie that binds a sign-in to the browser that started it.
const SIGN_IN: &str = "__Host-identity-rp-login";

fn handle(app: &AppState) -> Option<RpHandle> {
    app.actors.get::<RpHandle>().cloned()
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Sign-in unavailable",
        "<p>identity-rp has no client at identity-authz: it runs in a process without \
         identity-authz, identity-idp and identity-rs.</p>",
    )
}

fn set_cookie(response: &mut Response, name: &str, value: &str, attrs: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; {attrs}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn clear_session(response: &mut Response) {
    set_cookie(response, SESSION, "", "SameSite=Lax; Max-Age=0");
}

/// The session a request's cookie names.
async fn session(rp: &RpHandle, headers: &HeaderMap) -> Result<Option<SessionView>, Response> {
    let Some(value) = cookie(headers, SESSION) else {
        return Ok(None);
    };
    rp.session(value).await.map_err(|e| trouble(rp, e))
}

/// A page whose forms may also go to identity-authz (sign-out continues there).
fn app_page(rp: &RpHandle, status: StatusCode, body: &str) -> Response {
    let mut r = page(status, "Notes (identity-rp)", body);
    let csp = format!(
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; \
         form-action 'self' {}",
        rp.issuer_origin()
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn signed_out_page(rp: &RpHandle, note: &str) -> Response {
    let mut r = app_page(
        rp,
        StatusCode::OK,
        &format!(
            "<p id=\"status\">{}</p><p><a id=\"sign-in\" href=\"{LOGIN}\">Sign in</a></p>",
            esc(note)
        ),
    );
    clear_session(&mut r);
    r
}

/// What a page shows when a call of the relying party's failed: identity-authz or identity-rs
/// away is "sign-in unavailable" (503, `Retry-After`); a refused sign-in or refresh ends the
/// session; anything else says what was refused, as a page.
fn trouble(rp: &RpHandle, e: cryptoutil_actors::Error) -> Response {
    use cryptoutil_actors::Error as E;
    match e {
        E::Unauthenticated { .. } => signed_out_page(rp, "Your session has ended. Sign in again."),
        E::Unavailable { actor, .. } => {
            let mut r = page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                &format!(
                    "<p id=\"status\">{} cannot be reached right now. Try again in a \
                     moment.</p><p><a href=\"{HOME}\">Back</a></p>",
                    esc(actor)
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        E::BadRequest { reason } => page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            &format!(
                "<p id=\"status\">{}.</p><p><a href=\"{LOGIN}\">Sign in again</a></p>",
                esc(reason)
            ),
        ),
        other => refused(other, Refusal::SignInUnavailable),
    }
}

/// `GET /browser/rp/`: who is signed in and their notes (read from identity-rs with their
/// token), or a link to sign in.
pub(crate) async fn home_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(rp) = handle(&app) else {
        return not_configured();
    };
    let s = match session(&rp, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return signed_out_page(&rp, "Not signed in."),
        Err(r) => return r,
    };
    let (status, notes) = match rp.notes(&s, Method::GET, None).await {
        Ok(answer) => answer,
        Err(e) => return trouble(&rp, e),
    };
    if status == 401 {
        // Refused even with a fresh token: the sign-in is over.
        return signed_out_page(&rp, "Your session has ended. Sign in again.");
    }
    if status != 200 {
        return app_page(
            &rp,
            StatusCode::BAD_GATEWAY,
            &format!("<p id=\"status\">identity-rs answered {status}.</p>"),
        );
    }
    let items: String = notes
        .get("notes")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|n| {
                    let field = |k: &str| esc(n.get(k).and_then(Value::as_str).unwrap_or(""));
                    format!(
                        "<li><strong class=\"title\">{}</strong> <span class=\"body\">{}</span></li>",
                        field("title"),
                        field("body")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let csrf = esc(&s.csrf);
    app_page(
        &rp,
        StatusCode::OK,
        &format!(
            "<p id=\"status\">Signed in as <span id=\"subject\">{sub}</span>.</p>\
             <h2>Your notes</h2><ul id=\"notes\">{items}</ul>\
             <form method=\"post\" action=\"{NOTES}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label>Title <input name=\"title\" id=\"title\" required maxlength=\"200\"></label>\
             <label>Body <input name=\"body\" id=\"body\"></label>\
             <button type=\"submit\" id=\"add\">Add note</button></form>\
             <form method=\"post\" action=\"{LOGOUT}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
            sub = esc(&s.sub),
        ),
    )
}

/// `GET /browser/rp/login`: pushes the authorization request and sends the browser to
/// identity-authz; "sign-in unavailable" when it cannot be reached.
pub(crate) async fn login_get(State(app): State<AppState>) -> Response {
    let Some(rp) = handle(&app) else {
        return not_configured();
    };
    match rp.sign_in().await {
        Ok(start) => {
            let mut r = see_other(&start.redirect);
            set_cookie(&mut r, SIGN_IN, &start.binding, "SameSite=Lax; Max-Age=600");
            r
        }
        Err(e) => trouble(&rp, e),
    }
}

/// `GET /browser/rp/callback`: identity-authz's answer; a session, then home.
pub(crate) async fn callback_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(rp) = handle(&app) else {
        return not_configured();
    };
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "<p>Malformed query.</p>",
        );
    };
    let binding = cookie(&headers, SIGN_IN).map(|b| Zeroizing::new(b.to_owned()));
    let mut r = match rp.callback(&params, binding).await {
        Ok(opened) => {
            let mut r = see_other(HOME);
            set_cookie(
                &mut r,
                SESSION,
                &opened.cookie,
                &format!("SameSite=Lax; Max-Age={}", opened.max_age),
            );
            r
        }
        Err(e @ cryptoutil_actors::Error::BadRequest { .. }) => {
            refused(e, Refusal::Refused("Sign-in failed", Some(LOGIN)))
        }
        Err(e) => trouble(&rp, e),
    };
    set_cookie(&mut r, SIGN_IN, "", "SameSite=Lax; Max-Age=0");
    r
}

/// A state-changing form of a live session: its fields, once its CSRF token matches.
async fn session_form(
    rp: &RpHandle,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(SessionView, Vec<(String, String)>), Response> {
    if !is_form(headers) {
        return Err(page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Invalid request",
            "<p>A form was expected.</p>",
        ));
    }
    let fields = params(body).ok_or_else(crate::pages::bad_request)?;
    let Some(s) = session(rp, headers).await? else {
        return Err(signed_out_page(rp, "Not signed in."));
    };
    let sent = get(&fields, "csrf").unwrap_or_default();
    if !cryptoutil_protocols::oauth::constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
        return Err(page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "<p>This form is stale or came from another site. Go back and try again.</p>",
        ));
    }
    Ok((s, fields))
}

/// `POST /browser/rp/notes`: adds a note at identity-rs for the signed-in user.
pub(crate) async fn notes_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(rp) = handle(&app) else {
        return not_configured();
    };
    let (s, fields) = match session_form(&rp, &headers, &body).await {
        Ok(ok) => ok,
        Err(r) => return r,
    };
    let note = json!({
        "title": get(&fields, "title").unwrap_or_default(),
        "body": get(&fields, "body").unwrap_or_default(),
    });
    match rp.notes(&s, Method::POST, Some(note)).await {
        Ok((201, _)) => see_other(HOME),
        Ok((401, _)) => signed_out_page(&rp, "Your session has ended. Sign in again."),
        Ok((status, answer)) => app_page(
            &rp,
            StatusCode::BAD_REQUEST,
            &format!(
                "<p id=\"status\">identity-rs refused the note ({status}: {}).</p>\
                 <p><a href=\"{HOME}\">Back</a></p>",
                esc(answer
                    .get("error_description")
                    .or_else(|| answer.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given"))
            ),
        ),
        Err(e) => trouble(&rp, e),
    }
}

/// `POST /browser/rp/logout`: ends the session here, then at identity-authz (RP-initiated
/// logout, which also tells every other client over the back channel).
pub(crate) async fn logout_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(rp) = handle(&app) else {
        return not_configured();
    };
    if let Err(r) = session_form(&rp, &headers, &body).await {
        return r;
    }
    let value = cookie(&headers, SESSION).unwrap_or_default();
    let mut r = match rp.sign_out(value).await {
        Ok(to) => see_other(&to),
        Err(e) => trouble(&rp, e),
    };
    clear_session(&mut r);
    r
}

/// `POST /service/rp/v1/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0 §2.5):
/// `logout_token` in a form; 200 once the sessions it names have ended, 400 with
/// `invalid_request` for a token that does not verify.
pub(crate) async fn backchannel_logout_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    let invalid = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            no_store.clone(),
            axum::Json(json!({"error": "invalid_request", "error_description": why})),
        )
            .into_response()
    };
    let Some(rp) = handle(&app) else {
        return (StatusCode::NOT_FOUND, no_store).into_response();
    };
    if !is_form(&headers) {
        return invalid("a form was expected");
    }
    let Some(fields) = params(&body) else {
        return invalid("malformed form");
    };
    let Some(token) = get(&fields, "logout_token") else {
        return invalid("no logout_token");
    };
    match rp.back_channel_logout(token).await {
        Ok(_) => (StatusCode::OK, no_store).into_response(),
        Err(cryptoutil_actors::Error::BadRequest { reason }) => invalid(reason),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
