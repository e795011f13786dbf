//! WebAuthn at sign-in: the login pages' script fetches a ceremony's options here (a passkey
//! without a username, or the user's security keys after the password) and posts the
//! browser's answer in a form, which signs in like the password and code forms do. Both carry
//! the pages' CSRF token and pass their origin check; a passkey ceremony is bound to the
//! browser that started it by a cookie, a security key's to the waiting sign-in's cookie.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::login::{answer, cookie_header, posted, IDP_PASSKEY_COOKIE, IDP_STEP_COOKIE};
use crate::error::ApiError;
use crate::pages::{bad_request, cookie};
use crate::state::AppState;

const JS: &str = "text/javascript; charset=utf-8";

/// The script that runs WebAuthn ceremonies on identity-idp's pages (no inline script: the
/// pages keep their CSP).
pub(crate) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../../../ui/idp/webauthn.js"),
    )
}

/// Options answered to the page's script, never cached.
pub(crate) fn options_answer(options: Value) -> Response {
    let mut response = Json(json!({ "publicKey": options })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /browser/login/webauthn/options` (`challenge`, `csrf`, `purpose`): a passkey
/// ceremony's options (and its cookie), or the waiting sign-in's security keys'.
pub(crate) async fn options_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields) = match posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let challenge = fields.get("challenge").to_owned();
    match fields.get("purpose") {
        "passkey" => match handle.passkey_options(challenge).await {
            Ok((token, options)) => {
                let mut response = options_answer(options);
                let ttl = cryptoutil_actors::identity::idp::state::CEREMONY_TTL;
                if let Some(v) = cookie_header(IDP_PASSKEY_COOKIE, &token, Some(ttl)) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
                response
            }
            Err(e) => ApiError::from(e).into_response(),
        },
        "step" => {
            let step = Zeroizing::new(
                cookie(&headers, IDP_STEP_COOKIE)
                    .unwrap_or_default()
                    .to_owned(),
            );
            match handle.step_options(challenge, step).await {
                Ok(options) => options_answer(options),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        _ => (StatusCode::BAD_REQUEST, "purpose: passkey or step").into_response(),
    }
}

/// `POST /browser/login/webauthn` (`challenge`, `csrf`, `purpose`, `credential`): the
/// browser's assertion; signs in (or shows the form again) like the password and code forms.
pub(crate) async fn assertion_post(
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
    let credential = Zeroizing::new(fields.get("credential").to_owned());
    if credential.is_empty() {
        return bad_request();
    }
    let from = |name| Zeroizing::new(cookie(&headers, name).unwrap_or_default().to_owned());
    match fields.get("purpose") {
        "passkey" => {
            let outcome = handle
                .passkey(challenge.to_owned(), from(IDP_PASSKEY_COOKIE), credential)
                .await;
            let mut response = answer(challenge, outcome);
            if let Some(v) = cookie_header(IDP_PASSKEY_COOKIE, "", Some(0)) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        "step" => {
            let outcome = handle
                .second_key(challenge.to_owned(), from(IDP_STEP_COOKIE), credential)
                .await;
            answer(challenge, outcome)
        }
        _ => bad_request(),
    }
}
