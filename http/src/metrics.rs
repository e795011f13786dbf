//! HTTP metrics: described once, changed per request.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Requests by service, stack and status class.
pub const HTTP_REQUESTS: &str = "cryptoutil_http_requests_total";
/// 1 once every listener of the service serves, 0 before and while draining.
pub const SERVICE_READY: &str = "cryptoutil_service_ready";
/// Credentials refused on the public stacks, by service, realm and failure.
pub const AUTH_FAILURES: &str = "cryptoutil_auth_failures_total";
/// Connections closed at accept, by reason (`per_address_limit`).
pub const CONNECTIONS_REFUSED: &str = "cryptoutil_http_connections_refused_total";
/// Connections closed for having nothing in progress for `http.connections.idle_timeout`.
pub const CONNECTIONS_IDLE_CLOSED: &str = "cryptoutil_http_connections_idle_closed_total";
/// Request bodies that did not arrive within `http.connections.body_read_timeout`.
pub const BODY_READ_TIMEOUTS: &str = "cryptoutil_http_body_read_timeouts_total";

/// Describes this crate's metrics.
pub fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by service, stack and status class."
    );
    metrics::describe_gauge!(SERVICE_READY, "1 when the service's listeners serve.");
    metrics::describe_counter!(
        AUTH_FAILURES,
        "Requests refused for their credential, by service, realm (service, browser) and failure (missing, invalid, wrong_kind, issuer_unavailable)."
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at accept, by reason (per_address_limit)."
    );
    metrics::describe_counter!(
        CONNECTIONS_IDLE_CLOSED,
        "Connections closed after http.connections.idle_timeout with no request in progress."
    );
    metrics::describe_counter!(
        BODY_READ_TIMEOUTS,
        "Request bodies that did not arrive within http.connections.body_read_timeout."
    );
}

/// Counts a refused credential.
pub fn auth_failure(service: &'static str, realm: &'static str, failure: &'static str) {
    metrics::counter!(AUTH_FAILURES, "service" => service, "realm" => realm, "failure" => failure)
        .increment(1);
}

/// Counts a connection closed at accept.
pub fn connection_refused(reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

/// Counts a connection closed for idleness.
pub fn connection_closed_idle() {
    metrics::counter!(CONNECTIONS_IDLE_CLOSED).increment(1);
}

/// Counts a request body that came too slowly.
pub fn body_read_timeout() {
    metrics::counter!(BODY_READ_TIMEOUTS).increment(1);
}

/// Labels of one stack of one service.
#[derive(Clone, Copy, Debug)]
pub struct StackLabels {
    /// The service.
    pub service: &'static str,
    /// `service`, `browser` or `admin`.
    pub stack: &'static str,
}

/// Middleware counting responses by status class.
pub async fn count(State(labels): State<StackLabels>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(HTTP_REQUESTS, "service" => labels.service, "stack" => labels.stack, "status" => class).increment(1);
    response
}

/// Sets the readiness gauge of `service`.
pub fn service_ready(service: &'static str, ready: bool) {
    metrics::gauge!(SERVICE_READY, "service" => service).set(if ready { 1.0 } else { 0.0 });
}
