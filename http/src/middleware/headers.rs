//! Security headers on every `/browser/**` response, errors included, and the two that every
//! `/service/**` answer carries (with the refusal of an ambiguous `Authorization`).

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
    let mut response = if crate::auth::several_authorizations(req.headers()) {
        crate::ApiError::BadRequest {
            reason: "more than one Authorization header".into(),
        }
        .into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
