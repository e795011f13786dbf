//! Metrics of the supervision tree: described once, changed on transitions.

/// Restarts of supervised actors, by service and actor kind.
pub const ACTOR_RESTARTS: &str = "cryptoutil_actor_restarts_total";
/// Failures escalated to a parent after the restart bound was reached.
pub const ACTOR_ESCALATIONS: &str = "cryptoutil_actor_escalations_total";
/// Fetches of trusted issuers' JWK Sets, by service and outcome (ok, error, rate_limited).
pub const JWKS_FETCHES: &str = "cryptoutil_auth_jwks_fetches_total";
/// Audit records that could not be written (their operations failed), by service.
pub const AUDIT_FAILURES: &str = "cryptoutil_audit_write_failures_total";
/// Stored records that failed to decode or authenticate (answered 500), by table.
pub const CORRUPT_RECORDS: &str = "cryptoutil_storage_corrupt_records_total";
/// Logout tokens posted to clients (OpenID Connect Back-Channel Logout), by outcome.
pub const BACKCHANNEL_LOGOUTS: &str = "cryptoutil_identity_backchannel_logouts_total";

/// Duration of each call (each try) to a federated peer, by peer (`service`).
pub const FEDERATION_DURATION: &str = "federation_request_duration_seconds";
/// Tries that failed because of the peer (connect errors, timeouts, 429, 5xx), by peer.
pub const FEDERATION_FAILURES: &str = "federation_request_failures_total";
/// A peer's breaker: 0 closed, 1 half-open, 2 open.
pub const FEDERATION_BREAKER_STATE: &str = "federation_circuit_breaker_state";
/// Breaker transitions by peer, `from` and `to`.
pub const FEDERATION_BREAKER_TRANSITIONS: &str = "federation_circuit_breaker_transitions_total";
/// Requests served by a fallback mode while a peer was unavailable, by peer and mode.
pub const FEDERATION_FALLBACKS: &str = "federation_fallback_total";
/// Calls a breaker refused (open, half-open and full, or the retry budget spent), by peer and
/// reason.
pub const FEDERATION_REJECTIONS: &str = "federation_rejected_total";
/// Health polls of a peer whose breaker is open, by peer and outcome (ok, failed).
pub const FEDERATION_HEALTH_POLLS: &str = "federation_health_polls_total";

/// Describes this crate's metrics; call once after installing the recorder.
pub fn describe() {
    metrics::describe_histogram!(
        FEDERATION_DURATION,
        metrics::Unit::Seconds,
        "Duration of each try of a call to a federated peer (service = the peer)."
    );
    metrics::describe_counter!(
        FEDERATION_FAILURES,
        "Tries of calls to a peer that failed because of the peer (connect, timeout, 429, 5xx)."
    );
    metrics::describe_gauge!(
        FEDERATION_BREAKER_STATE,
        "Circuit breaker state of a peer: 0 closed, 1 half-open, 2 open."
    );
    metrics::describe_counter!(
        FEDERATION_BREAKER_TRANSITIONS,
        "Circuit breaker transitions of a peer (from, to)."
    );
    metrics::describe_counter!(
        FEDERATION_FALLBACKS,
        "Requests served by a fallback mode while a peer was unavailable."
    );
    metrics::describe_counter!(
        FEDERATION_REJECTIONS,
        "Calls to a peer refused by its breaker (open, half_open_full, retry_budget)."
    );
    metrics::describe_counter!(
        FEDERATION_HEALTH_POLLS,
        "Health polls of a peer, every poll interval whatever its breaker state (ok, failed)."
    );
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
    metrics::describe_counter!(
        CORRUPT_RECORDS,
        "Stored records that failed to decode or authenticate (the request answered 500)."
    );
    metrics::describe_counter!(
        BACKCHANNEL_LOGOUTS,
        "Logout tokens posted to clients' backchannel_logout_uri, by outcome (delivered, failed)."
    );
}

/// A logout token was posted to a client (`delivered`) or could not be (`failed`).
pub fn backchannel_logout(outcome: &'static str) {
    metrics::counter!(BACKCHANNEL_LOGOUTS, "outcome" => outcome).increment(1);
}

/// A stored record of `table` failed to decode or authenticate.
pub fn corrupt_record(table: &'static str) {
    metrics::counter!(CORRUPT_RECORDS, "table" => table).increment(1);
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

/// `peer`'s breaker is now in `to` (gauge `value`), coming from `from`.
pub fn breaker_transitioned(peer: &'static str, from: &'static str, to: &'static str, value: u8) {
    metrics::counter!(FEDERATION_BREAKER_TRANSITIONS, "service" => peer, "from" => from, "to" => to)
        .increment(1);
    breaker_state(peer, value);
}

/// Sets `peer`'s breaker gauge (also at start, so the series exists before any transition).
pub fn breaker_state(peer: &'static str, value: u8) {
    metrics::gauge!(FEDERATION_BREAKER_STATE, "service" => peer).set(f64::from(value));
}

/// One try of a call to `peer` took `seconds`; `failed` when the peer was at fault.
pub fn peer_call(peer: &'static str, seconds: f64, failed: bool) {
    metrics::histogram!(FEDERATION_DURATION, "service" => peer).record(seconds);
    if failed {
        metrics::counter!(FEDERATION_FAILURES, "service" => peer).increment(1);
    }
}

/// `peer`'s breaker refused a call for `reason`.
pub fn peer_rejected(peer: &'static str, reason: &'static str) {
    metrics::counter!(FEDERATION_REJECTIONS, "service" => peer, "reason" => reason).increment(1);
}

/// A health poll of `peer` ended with `outcome`.
pub fn health_polled(peer: &'static str, outcome: &'static str) {
    metrics::counter!(FEDERATION_HEALTH_POLLS, "service" => peer, "outcome" => outcome)
        .increment(1);
}

/// A request was served by `mode` because `peer` was unavailable.
pub fn fallback_used(peer: &'static str, mode: &'static str) {
    metrics::counter!(FEDERATION_FALLBACKS, "service" => peer, "mode" => mode).increment(1);
}
