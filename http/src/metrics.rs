//! HTTP metrics: described once, changed per request.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Requests by service, stack and status class.
pub const HTTP_REQUESTS: &str = "cryptoutil_http_requests_total";
/// 1 once every listener of the service serves, 0 before and while draining.
pub const SERVICE_READY: &str = "cryptoutil_service_ready";

/// Describes this crate's metrics.
pub fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by service, stack and status class."
    );
    metrics::describe_gauge!(SERVICE_READY, "1 when the service's listeners serve.");
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
