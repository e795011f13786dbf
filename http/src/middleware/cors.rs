//! CORS, limited to configured origins, one policy per stack.
//!
//! On `/browser/**` (`http.browser.cors_allowed_origins`): a cross-origin request from an
//! allowed origin gets `Access-Control-Allow-Origin` (that origin, never `*`), credentials
//! allowed, and preflights answered for the methods and headers the API uses. From any other
//! origin: a preflight is refused (403) and so is any state-changing request, whatever its
//! credentials; a plain GET passes without CORS headers, so the browser keeps its answer from
//! the foreign page. Cookies do not isolate ports, so "another origin" includes the other
//! services of the suite on the same host.
//!
//! On `/service/**` (`http.service.cors_allowed_origins`, for single-page apps that hold their
//! own tokens): the same for allowed origins, but without credentials (nothing ambient is
//! sent: a token travels in `Authorization`, its proof in `DPoP`), with `WWW-Authenticate` and
//! `DPoP-Nonce` readable by the page (a step-up or a token error is the page's to act on). A
//! preflight from another origin is refused; any other request goes on as without CORS (it
//! carries no cookie, and the browser keeps the answer from the page).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The allowed origins, exact `https://host[:port]` strings, and the stack's policy.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Arc<Vec<String>>,
    tokens: bool,
}

impl Cors {
    /// `/browser/**`'s, from configuration (trailing slashes ignored).
    pub fn new(origins: &[String]) -> Self {
        Self {
            origins: Arc::new(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect(),
            ),
            tokens: false,
        }
    }

    /// `/service/**`'s: pages holding their own tokens, no credentials.
    pub fn tokens(origins: &[String]) -> Self {
        Self {
            tokens: true,
            ..Self::new(origins)
        }
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
    let allowed = cors.origins.contains(&origin);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD) || cors.tokens;
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
            HeaderValue::from_static(if cors.tokens {
                "authorization, content-type, dpop"
            } else {
                "content-type, x-csrf-token"
            }),
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
    if cors.tokens {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("www-authenticate, dpop-nonce"),
        );
    } else {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}
