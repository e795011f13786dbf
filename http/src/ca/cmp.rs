//! The CMP server's HTTP transfer (RFC 6712) at `POST /.well-known/cmp` (label `default`) and
//! `POST /.well-known/cmp/p/<label>` (RFC 9483 §5.1's path for a named CA), each optionally
//! followed by an operation segment (`/initialization`, `/pkcs10`, ...): a public route
//! because every message carries its own protection (a MAC keyed by an RA enrollment secret,
//! or a signature by a certificate the label's CA issued), checked before anything else is
//! read. `application/pkixcmp` both ways; every CMP answer, error messages included, is a
//! 200 (RFC 6712 §3.6); only what is not CMP at all gets an HTTP error.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cryptoutil_protocols::cmp;

use super::api::handle;
use super::est::DEFAULT_LABEL;
use crate::extract::media_type_is;
use crate::state::AppState;

/// The label of `/.well-known/cmp/p/<label>[/<operation>]`, or `default` for
/// `/.well-known/cmp[/<operation>]` (RFC 9480 §3.3: an operation segment may follow; the
/// message's body says what it is, so the segment is not read).
fn label_of(uri: &Uri) -> &str {
    match uri.path().strip_prefix("/.well-known/cmp/p/") {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => DEFAULT_LABEL,
    }
}

pub(crate) async fn post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !media_type_is(&headers, cmp::CONTENT_TYPE) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a CMP request is application/pkixcmp",
        )
            .into_response();
    }
    if body.len() > cmp::MAX_MESSAGE {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "a CMP message is at most 64 KiB",
        )
            .into_response();
    }
    let Ok(cas) = handle(&app) else {
        return (StatusCode::NOT_FOUND, "no CA here").into_response();
    };
    let answer = cas.cmp(label_of(&uri), &body).await;
    (
        [
            (header::CONTENT_TYPE, cmp::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer,
    )
        .into_response()
}
