//! Extractors whose refusals are `ApiError`s (JSON bodies, like every other error), not the
//! framework's plain-text rejections.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Whether the request's media type (its `Content-Type` without parameters, in any case) is
/// `kind`.
pub fn media_type_is(headers: &axum::http::HeaderMap, kind: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(kind))
}

/// A JSON request body: a missing `application/json` content type is 415, anything that does
/// not parse into `T` (syntax, a missing or invalid field, an unknown one) is 400 naming why.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(e) => Err(ApiError::BadRequest {
                reason: e.body_text(),
            }),
        }
    }
}
