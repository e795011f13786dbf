//! Security headers on every `/browser/**` response, errors included, the two that every
//! `/service/**` answer carries (with the refusal of an ambiguous `Authorization`), and those
//! of the answers no stack makes: the admin and metrics listeners', and a public listener's 404
//! outside both stacks.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::config::BrowserConfig;

/// The header set, built once from configuration.
#[derive(Clone, Debug)]
pub struct SecurityHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

impl SecurityHeaders {
    /// From configuration; a CSP that is not a valid header value falls back to the default.
    pub fn new(cfg: &BrowserConfig) -> Self {
        let csp = HeaderValue::from_str(&cfg.content_security_policy).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
        });
        let hsts = format!("max-age={}; includeSubDomains", cfg.hsts_max_age.as_secs());
        let mut set = vec![
            (header::CONTENT_SECURITY_POLICY, csp),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                // Never a referrer to another origin; `same-origin` rather than `no-referrer`
                // because under `no-referrer` browsers send `Origin: null` on same-origin form
                // posts, and the login form checks `Origin`.
                HeaderValue::from_static("same-origin"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if let Ok(v) = HeaderValue::from_str(&hsts) {
            set.push((header::STRICT_TRANSPORT_SECURITY, v));
        }
        Self(Arc::new(set))
    }
}

/// Middleware.
pub async fn apply(State(headers): State<SecurityHeaders>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    for (name, value) in headers.0.iter() {
        // A page may narrow-or-widen its own CSP (the login page's form-action); every other
        // header is forced.
        if *name == header::CONTENT_SECURITY_POLICY
            && response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        {
            continue;
        }
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Middleware of the `/service/**` stack: more than one `Authorization` header is refused (400:
/// which one would be meant?), and every answer, errors included, says `nosniff` and, unless
/// its handler chose a cache policy (metadata, key sets), `no-store` (answers carry keys,
/// tokens and plaintexts).
pub async fn service(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/service/api/");
    let mut response = if crate::auth::several_authorizations(req.headers()) {
        crate::ApiError::BadRequest {
            reason: "more than one Authorization header".into(),
        }
        .into_response()
    } else {
        next.run(req).await
    };
    if api {
        response = json_errors(response).await;
    }
    nosniff_no_store(response.headers_mut());
    response
}

/// `nosniff`, and `no-store` unless the handler chose a cache policy: what every answer for
/// programs carries.
fn nosniff_no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Middleware of the admin and metrics listeners and of a public listener's answers outside
/// both stacks (a 404 at `/`): JSON or text for programs, never a page, so nothing in them may
/// run, be framed, be sniffed into a type, be cached or leak a referrer.
pub async fn api(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    nosniff_no_store(headers);
    response
}

/// The most of a plain-text error body [`json_errors`] keeps as its message (the framework's
/// rejections are a line); a longer one is answered with the status's reason alone.
const PLAIN_ERROR_MAX: usize = 4096;

/// The REST APIs (`/service/api/**`) answer errors as JSON, `{"error", "message"}`, whoever made
/// them: the framework's own rejections (a path or query that does not parse, a method the
/// route lacks) come as plain text or empty, and are rewritten here with the same status. The
/// protocol endpoints outside (`/.well-known/est`, ACME, SCEP, OAuth) keep their own formats.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, PLAIN_ERROR_MAX)
        .await
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let text = String::from_utf8_lossy(&bytes);
    let message = match text.trim() {
        _ if status.is_server_error() => "internal error",
        "" => reason,
        text => text,
    };
    let json = serde_json::json!({ "error": code, "message": message }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(json))
}
