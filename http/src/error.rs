//! `ApiError` and the only `impl IntoResponse` of the workspace: one exhaustive match, so a new
//! error variant anywhere fails to compile until someone picks its status code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoutil_actors::error::Unavailability;

/// Which stack a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// `/service/**`.
    Service,
    /// `/browser/**`.
    Browser,
}

/// The DPoP proof algorithms a challenge offers (`protocols::dpop::PROOF_ALGS`; a test keeps
/// the two equal).
macro_rules! dpop_algs {
    () => {
        "ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"
    };
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential.
    Missing,
    /// A credential that did not validate.
    Invalid,
    /// A token presented with the `DPoP` scheme that did not validate, or is not DPoP-bound
    /// (RFC 9449 §7.1: the challenge names the DPoP scheme).
    InvalidDpopToken,
    /// A DPoP-bound token whose proof is missing, malformed, replayed, or made for another
    /// request, token or key (RFC 9449 §7.1, `invalid_dpop_proof`).
    InvalidProof,
    /// The other stack's kind of credential (a bearer token on /browser, a cookie on /service).
    WrongKind,
    /// The token names a trusted issuer whose keys cannot be had (never fetched, issuer
    /// unreachable): the token can be neither accepted nor refused (503, not 401).
    IssuerUnavailable,
}

/// Every error a handler or middleware returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid credential for a protected route.
    #[error("authentication required")]
    Unauthorized {
        /// `/service` or `/browser`.
        realm: Realm,
        /// What was wrong.
        failure: AuthFailure,
    },
    /// No valid admin token (`admin.token`) on an admin route that needs it.
    #[error("admin token required (Authorization: Bearer, the value of admin.token)")]
    AdminUnauthorized {
        /// What was wrong.
        failure: AuthFailure,
    },
    /// The token lacks the scope the route needs.
    #[error("insufficient scope: {scope} required")]
    InsufficientScope {
        /// The scope.
        scope: &'static str,
        /// Whether the token is DPoP-bound (the challenge names its scheme).
        dpop: bool,
    },
    /// The route needs a stronger sign-in than the token's (`acr`): RFC 9470 step-up.
    #[error("this route needs a stronger sign-in ({acr_values})")]
    StepUp {
        /// The `acr` values that would do, space-separated.
        acr_values: &'static str,
        /// How old (seconds) the sign-in may be.
        max_age: u64,
        /// Whether the token is DPoP-bound (the challenge names its scheme).
        dpop: bool,
    },
    /// The token's issuer is trusted but its keys cannot be had right now.
    #[error("the token's issuer keys are unavailable; retry later")]
    IssuerUnavailable,
    /// A state-changing browser request without its session's CSRF token.
    #[error("missing or wrong CSRF token (send the session's token in X-CSRF-Token)")]
    Csrf,
    /// A cross-origin request from an origin not allowed by CORS.
    #[error("cross-origin request from an origin that is not allowed")]
    CrossOrigin,
    /// The client address is not on the stack's allowlist.
    #[error("client address not allowed")]
    IpNotAllowed,
    /// The client exceeded its rate.
    #[error("rate limit exceeded")]
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_secs: u64,
    },
    /// No such resource (only after authentication, so ids do not leak).
    #[error("not found")]
    NotFound,
    /// The service is not ready (starting, draining or sealed).
    #[error("service not ready: {reason}")]
    NotReady {
        /// Why.
        reason: &'static str,
    },
    /// The service is sealed: nothing but the admin listener's probes and unseal route works.
    #[error("the service is sealed: an operator unseals it on the admin listener (POST /admin/v1/unseal)")]
    Sealed,
    /// The request body is not what the route takes.
    #[error("bad request: {reason}")]
    BadRequest {
        /// Why.
        reason: String,
    },
    /// A body that is not `application/json` where JSON is required.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// A signature that does not verify (`{"valid": false, "reason"}`, 400).
    #[error("{reason}")]
    InvalidSignature {
        /// Why it does not verify.
        reason: String,
    },
    /// An actor answered with an error, or did not answer.
    #[error(transparent)]
    Actor(#[from] cryptoutil_actors::Error),
}

impl ApiError {
    /// A verification's failure: a signature that does not verify is its own answer
    /// (`{"valid": false}`), anything else as usual.
    pub fn verification(e: cryptoutil_actors::Error) -> Self {
        match e {
            cryptoutil_actors::Error::Jose(_) => ApiError::InvalidSignature {
                reason: e.to_string(),
            },
            other => ApiError::Actor(other),
        }
    }

    /// A verification with a set of keys picked by the token's `kid`: no key of that `kid`
    /// is one more way not to verify (`{"valid": false}`), anything else as
    /// [`Self::verification`].
    pub fn verification_by_kid(e: cryptoutil_actors::Error) -> Self {
        match e {
            cryptoutil_actors::Error::KeyNotFound => ApiError::InvalidSignature {
                reason: e.to_string(),
            },
            other => Self::verification(other),
        }
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
}

/// The status and error code of an actor's answer: the one place where domain errors meet
/// HTTP. Our own failures (storage, corrupt records, internal errors) are logged here with what
/// names them, and answered without details.
fn actor_status(e: &cryptoutil_actors::Error) -> (StatusCode, &'static str) {
    use cryptoutil_actors::Error as E;
    match e {
        E::Unavailable { why, .. } => match why {
            Unavailability::Timeout
            | Unavailability::Stopped
            | Unavailability::Restarting
            | Unavailability::Unreachable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        },
        E::Storage(_) if e.database_unavailable().is_some() => {
            tracing::warn!(error = %e, "the database is unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
        }
        E::Storage(_) | E::Corrupt { .. } => {
            match e.corrupt_record() {
                Some((table, key)) => {
                    cryptoutil_actors::metrics::corrupt_record(table);
                    tracing::error!(table, key, error = %e, "stored record does not decode or authenticate");
                }
                // The store's message may name files; log it, answer generically.
                None => tracing::error!(error = %e, "storage failure"),
            }
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
        E::Internal { what } => {
            tracing::error!(what, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
        E::NoSuchActor { .. } | E::FaultInjectionDisabled => (StatusCode::NOT_FOUND, "not_found"),
        E::AuditFailed => (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
        E::KeyNotFound | E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        E::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        E::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        E::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
        E::Jose(_) | E::BadRequest { .. } | E::Refused(_) => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        // The token endpoint answers these itself (RFC 6749 §5.2); elsewhere, a 400.
        E::OAuth(e) => (StatusCode::BAD_REQUEST, e.code()),
        E::Authorize(e, _) => (StatusCode::BAD_REQUEST, e.code()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            ApiError::Unauthorized { .. } | ApiError::AdminUnauthorized { .. } => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::InsufficientScope { .. } => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::StepUp { .. } => {
                (StatusCode::UNAUTHORIZED, "insufficient_user_authentication")
            }
            ApiError::IssuerUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "issuer_unavailable"),
            ApiError::IpNotAllowed => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            ApiError::CrossOrigin => (StatusCode::FORBIDDEN, "cross_origin"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NotReady { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::InvalidSignature { reason } => {
                let body = serde_json::json!({ "valid": false, "reason": reason });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ApiError::Actor(e) => actor_status(e),
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".into()
        } else {
            message
        };
        let mut response = (
            status,
            Json(Body {
                error: code,
                message,
            }),
        )
            .into_response();
        match &self {
            ApiError::Unauthorized {
                realm: Realm::Service,
                failure,
            } => {
                // RFC 9449 §7.1: both schemes are offered; a DPoP request's refusal names
                // the DPoP scheme and, for a bad proof, `invalid_dpop_proof`.
                let value = match failure {
                    AuthFailure::Missing | AuthFailure::WrongKind => {
                        concat!(
                            r#"Bearer realm="cryptoutil", DPoP algs=""#,
                            dpop_algs!(),
                            '"'
                        )
                    }
                    AuthFailure::Invalid | AuthFailure::IssuerUnavailable => {
                        r#"Bearer realm="cryptoutil", error="invalid_token""#
                    }
                    AuthFailure::InvalidDpopToken => {
                        concat!(r#"DPoP error="invalid_token", algs=""#, dpop_algs!(), '"')
                    }
                    AuthFailure::InvalidProof => {
                        concat!(
                            r#"DPoP error="invalid_dpop_proof", algs=""#,
                            dpop_algs!(),
                            '"'
                        )
                    }
                };
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            ApiError::AdminUnauthorized { failure } => {
                let value = match failure {
                    AuthFailure::Missing | AuthFailure::WrongKind => {
                        r#"Bearer realm="cryptoutil-admin""#
                    }
                    AuthFailure::Invalid
                    | AuthFailure::InvalidDpopToken
                    | AuthFailure::InvalidProof
                    | AuthFailure::IssuerUnavailable => {
                        r#"Bearer realm="cryptoutil-admin", error="invalid_token""#
                    }
                };
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            ApiError::InsufficientScope { scope, dpop } => {
                let scheme = if *dpop { "DPoP" } else { "Bearer" };
                if let Ok(v) = HeaderValue::from_str(&format!(
                    r#"{scheme} realm="cryptoutil", error="insufficient_scope", scope="{scope}""#
                )) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::StepUp {
                acr_values,
                max_age,
                dpop,
            } => {
                let scheme = if *dpop { "DPoP" } else { "Bearer" };
                if let Ok(v) = HeaderValue::from_str(&format!(
                    r#"{scheme} error="insufficient_user_authentication", error_description="A stronger or more recent sign-in is required", acr_values="{acr_values}", max_age="{max_age}""#
                )) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::IssuerUnavailable | ApiError::Sealed => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
            }
            ApiError::Unauthorized {
                realm: Realm::Browser,
                ..
            }
            | ApiError::IpNotAllowed
            | ApiError::Csrf
            | ApiError::CrossOrigin
            | ApiError::NotFound
            | ApiError::NotReady { .. }
            | ApiError::BadRequest { .. }
            | ApiError::UnsupportedMediaType
            | ApiError::InvalidSignature { .. }
            | ApiError::Actor(_) => {}
        }
        // Every 503 says when to come back (an actor restarting, the database away).
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .entry(header::RETRY_AFTER)
                .or_insert(HeaderValue::from(5u64));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn the_dpop_challenge_offers_exactly_the_proof_algorithms() {
        let algs: Vec<&str> = cryptoutil_protocols::dpop::PROOF_ALGS
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(dpop_algs!(), algs.join(" "));
    }

    #[tokio::test]
    async fn a_step_up_names_the_acr_in_the_scheme_of_the_token() {
        for (dpop, scheme) in [(false, "Bearer"), (true, "DPoP")] {
            let response = ApiError::StepUp {
                acr_values: "urn:x:phr",
                max_age: 900,
                dpop,
            }
            .into_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let www = response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap();
            assert!(www.starts_with(scheme), "{www}");
            assert!(www.contains(r#"error="insufficient_user_authentication""#));
            assert!(www.contains(r#"acr_values="urn:x:phr""#));
            assert!(www.contains(r#"max_age="900""#));
        }
    }

    #[tokio::test]
    async fn stored_data_that_does_not_decode_is_our_fault_and_says_nothing_of_it() {
        let corrupt = cryptoutil_actors::Error::Corrupt {
            table: "kms_elastic_keys_v1",
            key: "t1/ek-x".into(),
            what: "elastic key",
        };
        let (status, body) = answer(ApiError::Actor(corrupt)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "internal");
        assert_eq!(body["message"], "internal error", "no table or key leaks");
        let internal = cryptoutil_actors::Error::Internal {
            what: "random generator",
        };
        assert_eq!(
            answer(ApiError::Actor(internal)).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // The caller's own mistakes stay 4xx.
        let bad = cryptoutil_actors::Error::BadRequest { reason: "name" };
        assert_eq!(
            answer(ApiError::Actor(bad)).await.0,
            StatusCode::BAD_REQUEST
        );
        let conflict = cryptoutil_actors::Error::Conflict { what: "x" };
        let (status, body) = answer(ApiError::Actor(conflict)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["message"], "conflict: x");
    }

    #[tokio::test]
    async fn a_signature_that_does_not_verify_is_valid_false() {
        let jose =
            cryptoutil_actors::Error::Jose(cryptoutil_protocols::jose::JoseError::BadSignature);
        let (status, body) = answer(ApiError::verification(jose)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["valid"], false);
        let unknown = cryptoutil_actors::Error::KeyNotFound;
        assert_eq!(
            answer(ApiError::verification(unknown)).await.0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = answer(ApiError::verification_by_kid(
            cryptoutil_actors::Error::KeyNotFound,
        ))
        .await;
        assert_eq!(
            (status, body["valid"].clone()),
            (StatusCode::BAD_REQUEST, false.into())
        );
    }
}
