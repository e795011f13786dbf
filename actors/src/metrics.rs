//! Metrics of the supervision tree: described once, changed on transitions.

/// Restarts of supervised actors, by service and actor kind.
pub const ACTOR_RESTARTS: &str = "cryptoutil_actor_restarts_total";
/// Failures escalated to a parent after the restart bound was reached.
pub const ACTOR_ESCALATIONS: &str = "cryptoutil_actor_escalations_total";
/// Fetches of trusted issuers' JWK Sets, by service and outcome (ok, error, rate_limited).
pub const JWKS_FETCHES: &str = "cryptoutil_auth_jwks_fetches_total";
/// Audit records that could not be written (their operations failed), by service.
pub const AUDIT_FAILURES: &str = "cryptoutil_audit_write_failures_total";

/// Describes this crate's metrics; call once after installing the recorder.
pub fn describe() {
    metrics::describe_counter!(
        ACTOR_RESTARTS,
        "Restarts of supervised actors after a failure."
    );
    metrics::describe_counter!(
        ACTOR_ESCALATIONS,
        "Actor failures escalated after the restart bound."
    );
    metrics::describe_counter!(
        JWKS_FETCHES,
        "Fetches of trusted issuers' JWK Sets (ok, error; rate_limited: a refresh refused)."
    );
    metrics::describe_counter!(
        AUDIT_FAILURES,
        "Audit records that could not be written; each one's operation failed."
    );
}

/// An actor of `actor_kind` in `service` was restarted.
pub fn actor_restarted(service: &'static str, actor_kind: &'static str) {
    metrics::counter!(ACTOR_RESTARTS, "service" => service, "actor_kind" => actor_kind)
        .increment(1);
}

/// An actor failed more often than its bound allows; the failure went to its parent.
pub fn actor_escalated(service: &'static str, actor_kind: &'static str) {
    metrics::counter!(ACTOR_ESCALATIONS, "service" => service, "actor_kind" => actor_kind)
        .increment(1);
}

/// A refresh of an issuer's JWK Set ended with `outcome`.
pub fn jwks_fetch(service: &'static str, outcome: &'static str) {
    metrics::counter!(JWKS_FETCHES, "service" => service, "outcome" => outcome).increment(1);
}

/// `records` audit records of `service` could not be written.
pub fn audit_failed(service: &'static str, records: usize) {
    metrics::counter!(AUDIT_FAILURES, "service" => service).increment(records as u64);
}
