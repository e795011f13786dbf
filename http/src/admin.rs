//! `/admin/v1/*`: the private admin API on the loopback-only listener.
//!
//! Who may use it ([`guard`]): a request with an `Origin` header (a web page in a browser on the
//! host) is refused, as is a POST that is not `application/json` (which a page could only send
//! after a CORS preflight this listener never answers); with `admin.token` configured, every
//! route but the health probes also needs `Authorization: Bearer <token>`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, AuthFailure};
use crate::metrics::StackLabels;
use crate::state::AdminState;

/// Liveness: the service's actors answer.
pub const LIVEZ: &str = "/admin/v1/livez";
/// Readiness: listeners serve and the store is unsealed.
pub const READYZ: &str = "/admin/v1/readyz";
/// Health details: version, FIPS mode, sealed state, peers.
pub const HEALTHZ: &str = "/admin/v1/healthz";
/// Graceful shutdown of the process.
pub const SHUTDOWN: &str = "/admin/v1/shutdown";
/// Prometheus text format.
pub const METRICS: &str = "/admin/v1/metrics";
/// The live supervision tree as JSON.
pub const SUPERVISION: &str = "/admin/v1/supervision";
/// The audit log, every tenant's records, a page at a time (services that keep one: kms).
pub const AUDIT: &str = "/admin/v1/audit";
/// Verifies the audit log's whole hash chain.
pub const AUDIT_VERIFY: &str = "/admin/v1/audit/verify";
/// Fault injection (only with `admin.danger_fault_injection`).
pub const FAULTS_CRASH: &str = "/admin/v1/faults/crash";
/// The one route of a metrics-only listener.
pub const METRICS_ONLY: &str = "/metrics";

/// A metrics-only listener's router: `GET /metrics` (the same text as `/admin/v1/metrics`) for
/// the networks of `allow`, 403 for every other client, 404 for every other path: nothing of
/// the admin API is reachable through it.
pub fn metrics_router(
    state: AdminState,
    allow: crate::middleware::ip_allow::IpAllowlist,
) -> Router {
    let service = state.app.service.as_str();
    metrics_only(service, get(metrics_get), allow).with_state(state)
}

/// The routes of a metrics-only listener of `service` (unsealed or sealed): `GET /metrics` by
/// `metrics`, 404 for every other path, for the clients `allow` lets in.
pub(crate) fn metrics_only<S: Clone + Send + Sync + 'static>(
    service: &'static str,
    metrics: axum::routing::MethodRouter<S>,
    allow: crate::middleware::ip_allow::IpAllowlist,
) -> Router<S> {
    let labels = StackLabels {
        service,
        stack: "metrics",
    };
    Router::new()
        .route(METRICS_ONLY, metrics)
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(
            allow,
            crate::middleware::ip_allow::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            labels,
            crate::metrics::count,
        ))
        .layer(middleware::from_fn(crate::middleware::headers::api))
}

/// The admin router, behind `guard`.
pub fn router(state: AdminState, guard: AdminGuard) -> Router {
    let labels = StackLabels {
        service: state.app.service.as_str(),
        stack: "admin",
    };
    let mut router = Router::new()
        .route(LIVEZ, get(livez_get))
        .route(READYZ, get(readyz_get))
        .route(HEALTHZ, get(healthz_get))
        .route(SHUTDOWN, post(shutdown_post))
        .route(METRICS, get(metrics_get))
        .route(SUPERVISION, get(supervision_get))
        .route(AUDIT, get(audit_get))
        .route(AUDIT_VERIFY, get(audit_verify_get));
    if state.fault_injection {
        router = router.route(FAULTS_CRASH, post(crash_post));
    }
    router
        .layer(middleware::from_fn_with_state(guard, self::guard))
        .layer(middleware::from_fn_with_state(
            labels,
            crate::metrics::count,
        ))
        .layer(middleware::from_fn(crate::middleware::headers::api))
        .with_state(state)
}

/// Who may use the admin API: the digest of `admin.token`, when one is configured.
#[derive(Clone, Default)]
pub struct AdminGuard {
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminGuard")
            .field("token", &self.token_digest.map(|_| "<redacted>"))
            .finish()
    }
}

impl AdminGuard {
    /// Requires `token` on every route but the health probes; an empty token requires none.
    pub fn new(token: &str) -> Self {
        Self {
            token_digest: (!token.is_empty())
                .then(|| cryptoutil_protocols::oauth::token_digest(token.as_bytes())),
        }
    }

    /// Checks the one `Authorization: Bearer` header against the token, in constant time
    /// (digests of equal length are compared, so the token's length does not leak either).
    fn check(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        if crate::auth::several_authorizations(headers) {
            return Err(AuthFailure::Invalid);
        }
        let presented = match crate::auth::bearer_token(headers) {
            None => return Err(AuthFailure::Missing),
            Some(Ok((crate::auth::Scheme::Bearer, token))) => token,
            Some(_) => return Err(AuthFailure::Invalid),
        };
        let got = cryptoutil_protocols::oauth::token_digest(presented.as_bytes());
        if cryptoutil_protocols::oauth::constant_time_eq(expected, &got) {
            Ok(())
        } else {
            Err(AuthFailure::Invalid)
        }
    }
}

/// The health probes: open to every local client, token or not (container health checks).
fn is_probe(path: &str) -> bool {
    matches!(path, LIVEZ | READYZ | HEALTHZ)
}

fn is_json(headers: &HeaderMap) -> bool {
    crate::extract::media_type_is(headers, "application/json")
}

/// The admin API's gate (see the module's documentation).
pub async fn guard(
    State(g): State<AdminGuard>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = req.uri().path();
    if req.headers().contains_key(header::ORIGIN) {
        tracing::warn!(
            path,
            "admin request refused: it carries an Origin header (a browser)"
        );
        return Err(ApiError::CrossOrigin);
    }
    if req.method() == Method::POST && !is_json(req.headers()) {
        tracing::warn!(
            path,
            "admin request refused: a POST that is not application/json"
        );
        return Err(ApiError::UnsupportedMediaType);
    }
    if !is_probe(path) {
        if let Err(failure) = g.check(req.headers()) {
            tracing::warn!(
                path,
                ?failure,
                "admin request refused: no valid admin token"
            );
            return Err(ApiError::AdminUnauthorized { failure });
        }
    }
    Ok(next.run(req).await)
}

async fn livez_get(State(st): State<AdminState>) -> Result<&'static str, ApiError> {
    st.app.actors.health.check().await?;
    Ok("ok\n")
}

async fn readyz_get(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    if !st.app.readiness.is_ready() {
        return Err(ApiError::NotReady {
            reason: "starting or draining",
        });
    }
    if st.app.actors.vault.status().await?.sealed {
        return Err(ApiError::NotReady { reason: "sealed" });
    }
    Ok(Json(json!({ "ready": true })))
}

async fn healthz_get(State(st): State<AdminState>) -> Response {
    let (health, vault) = tokio::join!(st.app.actors.health.check(), st.app.actors.vault.status());
    let ready = st.app.readiness.is_ready();
    let sealed = vault.as_ref().map(|v| v.sealed).ok();
    let healthy = ready && health.is_ok() && sealed == Some(false);
    let body = json!({
        "service": st.app.service,
        "version": env!("CARGO_PKG_VERSION"),
        "status": if healthy { "ok" } else { "degraded" },
        "ready": ready,
        "fips": st.fips,
        "sealed": sealed,
        "actors": {
            "health": health.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
            "vault": vault.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        },
        "uptime_seconds": health.as_ref().map(|h| h.uptime_seconds).ok(),
        "peers": peers(&st).await,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The breakers of the peers this service calls: a peer whose breaker is open is served by
/// its fallback mode, so it does not make the service unhealthy.
async fn peers(st: &AdminState) -> Value {
    let mut out = serde_json::Map::new();
    for breaker in &st.app.actors.peers {
        let view = match breaker.describe().await {
            Ok(view) => serde_json::to_value(view).unwrap_or(Value::Null),
            Err(e) => json!({ "state": breaker.state(), "error": e.to_string() }),
        };
        out.insert(breaker.peer().as_str().to_owned(), view);
    }
    Value::Object(out)
}

async fn shutdown_post(State(st): State<AdminState>) -> (StatusCode, Json<Value>) {
    tracing::info!(service = %st.app.service, "shutdown requested on the admin listener");
    st.shutdown.send_replace(true);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "shutting down" })),
    )
}

async fn metrics_get(State(st): State<AdminState>) -> Response {
    metrics_text(&st.metrics)
}

/// The Prometheus text exposition of `metrics`.
pub(crate) fn metrics_text(metrics: &PrometheusHandle) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

async fn audit_get(
    State(st): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<crate::audit::AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::audit::admin_audit_get(&st.app, q).await
}

async fn audit_verify_get(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    crate::audit::admin_audit_verify(&st.app).await
}

async fn supervision_get(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let tree = st.root.snapshot().await?;
    Ok(Json(serde_json::to_value(tree).unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
struct CrashRequest {
    /// `kms/health`: service then actor.
    path: String,
}

async fn crash_post(
    State(st): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CrashRequest = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        reason: e.to_string(),
    })?;
    // Only names in the live tree (`kms`, `kms/health`): an unknown path is a clear 404.
    let tree = st.root.snapshot().await?;
    if req.path.is_empty() || req.path == tree.name || tree.find(&req.path).is_none() {
        return Err(ApiError::Actor(cryptoutil_actors::Error::NoSuchActor {
            path: req.path,
        }));
    }
    let path: Vec<String> = req.path.split('/').map(str::to_owned).collect();
    tracing::warn!(path = %req.path, "fault injection: crashing actor on request");
    st.root.crash(path).await?;
    // Give the panic a moment to reach the supervisor so a follow-up read sees it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "crashed": req.path }))))
}
