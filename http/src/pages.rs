//! Server-rendered pages (sign-in, consent, sign-out, errors): HTML without script or inline
//! style, so the /browser CSP applies unchanged, and the query and form parsing they share.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

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

pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    crate::extract::media_type_is(headers, "application/x-www-form-urlencoded")
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    crate::auth::cookie_value(headers, name).filter(|v| !v.is_empty())
}

pub(crate) fn bad_request() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        "<p>A parameter is repeated, malformed or too long.</p>",
    )
}

/// What a refused browser page tells a person; the page chooses, since one answer of an actor
/// means different things on different pages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    /// The sign-in request is unknown or expired (`NotFound`).
    SignInExpired,
    /// This service has nowhere to sign in (`NotFound`).
    SignInUnavailable,
    /// The request was refused (`BadRequest`, its reason shown) under this title, with a link
    /// back to where to start again, if any.
    Refused(&'static str, Option<&'static str>),
}

/// The one place browser pages turn an actor's refusal into the page a person sees: the
/// refusals a page expects as pages, anything else as the usual error.
pub(crate) fn refused(e: cryptoutil_actors::Error, on: Refusal) -> Response {
    use cryptoutil_actors::Error as E;
    match (e, on) {
        (E::NotFound { .. }, Refusal::SignInExpired) => page(
            StatusCode::BAD_REQUEST,
            "Sign-in request expired",
            "<p>This sign-in request is unknown or has expired. Start again from the \
             application.</p>",
        ),
        (E::NotFound { .. }, Refusal::SignInUnavailable) => page(
            StatusCode::NOT_FOUND,
            "Sign-in unavailable",
            "<p>This service has no identity-authz to sign in at.</p>",
        ),
        (E::BadRequest { reason }, Refusal::Refused(title, again)) => {
            let again = again.map_or(String::new(), |to| {
                format!("<p><a href=\"{to}\">Sign in again</a></p>")
            });
            page(
                StatusCode::BAD_REQUEST,
                title,
                &format!("<p>{}.</p>{again}", esc(reason)),
            )
        }
        // A federated peer the page needs (identity-authz, for identity-idp in its own
        // process) is away: its breaker is open or calls fail.
        (
            E::Unavailable {
                actor,
                why: cryptoutil_actors::Unavailability::Unreachable,
            },
            _,
        ) => {
            let mut r = page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                &format!(
                    "<p>{} cannot be reached right now. Try again in a moment.</p>",
                    esc(actor)
                ),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            r
        }
        (e, _) => crate::error::ApiError::from(e).into_response(),
    }
}
