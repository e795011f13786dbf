//! identity-authz's protocol refusals, in one responder of their own: RFC 6749 §5.2 errors of
//! the token endpoint family (token, introspection, revocation, PAR: `{"error",
//! "error_description"}`, 401 with `WWW-Authenticate: Basic` for a failed client
//! authentication), RFC 6750 §3 errors of userinfo, and everything else as an [`ApiError`].
//! Every answer carries `Cache-Control: no-store`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoutil_protocols::oauth::{AuthorizeError, TokenError};
use serde_json::json;

use crate::error::ApiError;

/// A refusal of identity-authz's protocol endpoints.
#[derive(Debug)]
pub(crate) enum OAuthError {
    /// RFC 6749 §5.2, with its description.
    Token(TokenError, &'static str),
    /// An authorization request refused (RFC 6749 §4.1.2.1 codes, on PAR), and why.
    Authorize(AuthorizeError, &'static str),
    /// RFC 6750 §3 on a bearer-token request (userinfo).
    Bearer(BearerError),
    /// Not a protocol refusal: answered like any other error.
    Other(ApiError),
}

/// RFC 6750 §3.1 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerError {
    /// No token, or one that is expired, revoked or not ours (401).
    InvalidToken,
    /// The token lacks the scope (403).
    InsufficientScope,
}

/// What a token endpoint refusal tells the client.
pub(crate) fn description(e: TokenError) -> &'static str {
    match e {
        TokenError::InvalidClient => "client authentication failed",
        TokenError::UnsupportedGrantType => {
            "supported: client_credentials, authorization_code, refresh_token"
        }
        TokenError::UnauthorizedClient => "the client may not use this grant type",
        TokenError::InvalidScope => "a requested scope is not allowed to the client",
        TokenError::InvalidTarget => "the resource is not an audience of the client",
        TokenError::InvalidRequest => {
            "a required parameter is missing (grant_type, code, code_verifier, refresh_token)"
        }
        TokenError::InvalidDpopProof => "the DPoP proof is invalid, replayed or for another key",
        TokenError::InvalidGrant => {
            "the code or refresh token is invalid, expired, revoked or was issued to another client"
        }
    }
}

impl From<cryptoutil_actors::Error> for OAuthError {
    fn from(e: cryptoutil_actors::Error) -> Self {
        match e {
            cryptoutil_actors::Error::OAuth(e) => OAuthError::Token(e, description(e)),
            cryptoutil_actors::Error::Authorize(e, why) => OAuthError::Authorize(e, why),
            other => OAuthError::Other(ApiError::Actor(other)),
        }
    }
}

/// A userinfo request's refusal (RFC 6750 §3): a token identity-authz does not take is
/// `invalid_token`, one without `openid` `insufficient_scope`.
pub(crate) fn bearer_refusal(e: cryptoutil_actors::Error) -> OAuthError {
    match e {
        cryptoutil_actors::Error::OAuth(_) => OAuthError::Bearer(BearerError::InvalidToken),
        cryptoutil_actors::Error::Forbidden { .. } => {
            OAuthError::Bearer(BearerError::InsufficientScope)
        }
        other => other.into(),
    }
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        OAuthError::Other(e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = match self {
            OAuthError::Token(e, description) => {
                let status = match e {
                    TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
                    TokenError::InvalidRequest
                    | TokenError::InvalidGrant
                    | TokenError::UnauthorizedClient
                    | TokenError::UnsupportedGrantType
                    | TokenError::InvalidScope
                    | TokenError::InvalidTarget
                    | TokenError::InvalidDpopProof => StatusCode::BAD_REQUEST,
                };
                let body = json!({ "error": e.code(), "error_description": description });
                let mut r = (status, Json(body)).into_response();
                if e == TokenError::InvalidClient {
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Basic realm="cryptoutil""#),
                    );
                }
                r
            }
            OAuthError::Authorize(e, why) => {
                let body = json!({ "error": e.code(), "error_description": why });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            OAuthError::Bearer(e) => {
                let (status, code) = match e {
                    BearerError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
                    BearerError::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
                };
                let mut r = (status, Json(json!({ "error": code }))).into_response();
                let challenge = format!(r#"Bearer realm="cryptoutil", error="{code}""#);
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
            OAuthError::Other(e) => return e.into_response(),
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
