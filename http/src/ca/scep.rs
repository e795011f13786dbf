//! The SCEP server's HTTP transport (RFC 8894 §4): `GET /scep[/<label>]?operation=...` for
//! `GetCACaps`, `GetCACert`, `GetNextCACert` and `PKIOperation` (`&message=<base64>`), and
//! `POST /scep[/<label>]?operation=PKIOperation` with the message as the body. `/scep` is
//! label `default`. Public routes because every `PKIOperation` is signed by its client and
//! authenticated by its challenge password (an RA enrollment secret) or, for a renewal, by
//! the certificate it renews; `GetCACaps` and `GetCACert` are public information.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cryptoutil_actors::ca::scep::ScepAnswer;
use cryptoutil_protocols::scep;

use super::api::handle;
use super::est::DEFAULT_LABEL;
use crate::state::AppState;

/// The query of a SCEP request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ScepQuery {
    operation: Option<String>,
    message: Option<String>,
}

fn label_of(uri: &Uri) -> &str {
    match uri.path().strip_prefix("/scep/") {
        Some(rest) if !rest.is_empty() => rest,
        _ => DEFAULT_LABEL,
    }
}

fn error(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        reason.to_owned(),
    )
        .into_response()
}

async fn answer(app: &AppState, uri: &Uri, operation: &str, message: &[u8]) -> Response {
    let Ok(cas) = handle(app) else {
        return error(StatusCode::NOT_FOUND, "no CA here");
    };
    match cas.scep(label_of(uri), operation, message).await {
        ScepAnswer::Ok(media_type, body) => (
            [
                (header::CONTENT_TYPE, media_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        ScepAnswer::Http(status, reason) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &reason,
        ),
    }
}

pub(crate) async fn get(
    State(app): State<AppState>,
    uri: Uri,
    Query(q): Query<ScepQuery>,
) -> Response {
    // An unknown label is a 404 before anything else; then a missing operation is a 400.
    let operation = q.operation.unwrap_or_default();
    let message = match (operation.as_str(), q.message) {
        ("PKIOperation", Some(text)) => {
            if text.len() > scep::MAX_MESSAGE * 2 {
                return error(StatusCode::URI_TOO_LONG, "a SCEP message is at most 64 KiB");
            }
            // Base64, perhaps with line breaks, and with `+` read as a space by form decoding.
            let text: String = text
                .chars()
                .filter(|c| *c != '\n' && *c != '\r')
                .map(|c| if c == ' ' { '+' } else { c })
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(der) => der,
                Err(_) => return error(StatusCode::BAD_REQUEST, "the message is not base64"),
            }
        }
        ("PKIOperation", None) => {
            return error(StatusCode::BAD_REQUEST, "PKIOperation carries a message")
        }
        _ => Vec::new(),
    };
    answer(&app, &uri, &operation, &message).await
}

pub(crate) async fn post(
    State(app): State<AppState>,
    uri: Uri,
    Query(q): Query<ScepQuery>,
    body: Bytes,
) -> Response {
    if q.operation.as_deref() != Some("PKIOperation") {
        return error(
            StatusCode::BAD_REQUEST,
            "a SCEP POST is operation=PKIOperation",
        );
    }
    if body.len() > scep::MAX_MESSAGE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a SCEP message is at most 64 KiB",
        );
    }
    answer(&app, &uri, "PKIOperation", &body).await
}
