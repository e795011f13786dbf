//! Metrics of the supervision tree: described once, changed on transitions.

/// Restarts of supervised actors, by service and actor kind.
pub const ACTOR_RESTARTS: &str = "cryptoutil_actor_restarts_total";
/// Failures escalated to a parent after the restart bound was reached.
pub const ACTOR_ESCALATIONS: &str = "cryptoutil_actor_escalations_total";

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
