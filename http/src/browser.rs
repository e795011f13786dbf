//! Browser sign-in on every service: `/browser/auth/login` starts the code flow at
//! identity-authz (the service is its confidential client), `/browser/auth/callback` exchanges
//! the code and starts a session, `/browser/auth/logout` ends it (and the identity-idp session,
//! through identity-authz's end-session endpoint), `/browser/api/v1/session` tells the page who
//! is signed in.
//!
//! Cookies: the session (`__Host-cryptoutil-<service>-session`: HttpOnly, Secure,
//! SameSite=Strict, as long as its access token), its CSRF token (the same but readable by the
//! page's script, which echoes it in `X-CSRF-Token`), and during a sign-in a binding cookie
//! (SameSite=Lax, so it survives the top-level redirect back from identity-authz) that ties the
//! callback to the browser that started it.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::{cookie_value, csrf_cookie, session_cookie, Principal};
use crate::error::ApiError;
use crate::pages::{page, params, refused, see_other, Refusal};
use crate::state::AppState;

/// Starts a sign-in (`?return_to=/browser/...`).
pub const LOGIN: &str = "/browser/auth/login";
/// Where identity-authz sends the browser back.
pub const CALLBACK: &str = "/browser/auth/callback";
/// Ends the session (POST, with the CSRF token).
pub const LOGOUT: &str = "/browser/auth/logout";
/// Who is signed in.
pub const SESSION: &str = "/browser/api/v1/session";

fn binding_cookie(service: &str) -> String {
    format!("__Host-cryptoutil-{service}-login")
}

fn set_cookie(response: &mut Response, name: &str, value: &str, attrs: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; {attrs}")) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(crate) async fn login_get(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "<p>Malformed query.</p>",
        );
    };
    let return_to = crate::pages::get(&params, "return_to").map(str::to_owned);
    match app.actors.sessions.begin(return_to).await {
        Ok(begun) => {
            let mut response = see_other(&begun.redirect);
            set_cookie(
                &mut response,
                &binding_cookie(app.service.as_str()),
                &begun.binding,
                "HttpOnly; SameSite=Lax; Max-Age=600",
            );
            response
        }
        Err(e) => refused(e, Refusal::SignInUnavailable),
    }
}

pub(crate) async fn callback_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let service = app.service.as_str();
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "<p>Malformed query.</p>",
        );
    };
    let binding =
        cookie_value(&headers, &binding_cookie(service)).map(|b| Zeroizing::new(b.to_owned()));
    let mut response = match app.actors.sessions.callback(params, binding).await {
        Ok(started) => {
            let mut r = see_other(&started.return_to);
            let age = started.max_age;
            set_cookie(
                &mut r,
                &session_cookie(service),
                &started.cookie,
                &format!("HttpOnly; SameSite=Strict; Max-Age={age}"),
            );
            set_cookie(
                &mut r,
                &csrf_cookie(service),
                &started.csrf,
                &format!("SameSite=Strict; Max-Age={age}"),
            );
            r
        }
        Err(e) => refused(e, Refusal::Refused("Sign-in failed", Some(LOGIN))),
    };
    set_cookie(
        &mut response,
        &binding_cookie(service),
        "",
        "HttpOnly; SameSite=Lax; Max-Age=0",
    );
    response
}

/// Ends the session: `{"logout_url"}` is identity-authz's end-session URL (which also ends the
/// identity-idp session) for the page to navigate to.
pub(crate) async fn logout_post(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let service = app.service.as_str();
    let cookie = cookie_value(&headers, &session_cookie(service)).unwrap_or_default();
    let url = app
        .actors
        .sessions
        .end(Zeroizing::new(cookie.to_owned()))
        .await?;
    let mut response = Json(json!({ "logout_url": url })).into_response();
    set_cookie(
        &mut response,
        &session_cookie(service),
        "",
        "HttpOnly; SameSite=Strict; Max-Age=0",
    );
    set_cookie(
        &mut response,
        &csrf_cookie(service),
        "",
        "SameSite=Strict; Max-Age=0",
    );
    Ok(response)
}

pub(crate) async fn session_get(Extension(who): Extension<Principal>) -> Json<Value> {
    Json(json!({ "subject": who.subject, "tenant": who.tenant, "scopes": who.scopes }))
}
