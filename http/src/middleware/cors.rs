//! CORS on `/browser/**`, limited to configured origins (`http.browser.cors_allowed_origins`).
//!
//! A cross-origin request from an allowed origin gets `Access-Control-Allow-Origin` (that
//! origin, never `*`), credentials allowed, and preflights answered for the methods and headers
//! the API uses. From any other origin: a preflight is refused (403) and so is any
//! state-changing request, whatever its credentials; a plain GET passes without CORS headers, so
//! the browser keeps its answer from the foreign page. Cookies do not isolate ports, so "another
//! origin" includes the other services of the suite on the same host.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The allowed origins, exact `https://host[:port]` strings.
#[derive(Clone, Debug, Default)]
pub struct Cors(Arc<Vec<String>>);

impl Cors {
    /// From configuration (trailing slashes ignored).
    pub fn new(origins: &[String]) -> Self {
        Self(Arc::new(
            origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        ))
    }
}

/// The request's own origin: `https://` and its authority (HTTP/2) or `Host` (HTTP/1.1).
fn own_origin(req: &Request) -> Option<String> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    Some(format!("https://{authority}"))
}

/// Middleware.
pub async fn enforce(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    if own_origin(&req).as_deref() == Some(origin.as_str()) {
        return next.run(req).await;
    }
    let allowed = cors.0.contains(&origin);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !allowed && (preflight || !safe) {
        return ApiError::CrossOrigin.into_response();
    }
    if !allowed {
        return next.run(req).await;
    }
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, x-csrf-token"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}
