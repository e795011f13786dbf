//! The listeners of a sealed process: started without enough unseal shares, it binds every
//! listener and answers, until an operator has submitted enough shares on an admin listener
//! (`POST /admin/v1/unseal` `{"share"}` -> `{"sealed", "progress", "threshold"}`, Vault's
//! workflow), with:
//!
//! - public (and the CA's distribution) listeners: 503 `sealed` on every route;
//! - admin listeners, behind the same [`crate::admin::guard`] as when unsealed: `livez` (the
//!   process lives), `readyz` and `healthz` (503, `"status": "sealed"`), `unseal` (GET: the
//!   progress; POST: one share), `shutdown` and `metrics`; nothing else;
//! - metrics-only listeners: `/metrics` for their allow-list.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::admin::{AdminGuard, HEALTHZ, LIVEZ, METRICS, READYZ, SHUTDOWN};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::metrics::StackLabels;

/// `POST` one share, `GET` the progress (admin listener).
pub const UNSEAL: &str = "/admin/v1/unseal";

/// What the unseal route asks.
pub trait Unsealer: Send + Sync + 'static {
    /// `{"sealed", "progress", "threshold"}` now (`threshold` is null until a share is given:
    /// each share carries it).
    fn status(&self) -> Value;
    /// Adds one share (its text line): the status after it, or why it was refused (the share
    /// named; progress starts over when the shares given rebuild a wrong key).
    fn submit(&self, share: &str) -> Result<Value, String>;
}

/// Sets the sealed gauge (`cryptoutil_sealed`) of `service`.
pub fn set_sealed(service: &'static str, sealed: bool) {
    metrics::gauge!(SEALED, "service" => service).set(if sealed { 1.0 } else { 0.0 });
}

/// 1 while a service is sealed.
pub const SEALED: &str = "cryptoutil_sealed";

/// What the sealed admin routes share.
#[derive(Clone)]
pub struct SealedState {
    /// The service the listener is of.
    pub service: &'static str,
    /// Takes the shares (one for the whole process).
    pub unsealer: Arc<dyn Unsealer>,
    /// Set to stop the process.
    pub shutdown: Arc<watch::Sender<bool>>,
    /// The process's metrics.
    pub metrics: PrometheusHandle,
}

/// A public (or distribution) listener's router while sealed.
pub fn public_router(service: &'static str) -> Router {
    let labels = StackLabels {
        service,
        stack: "service",
    };
    Router::new()
        .fallback(|| async { ApiError::Sealed })
        .layer(middleware::from_fn_with_state(
            labels,
            crate::metrics::count,
        ))
        .layer(middleware::from_fn(crate::middleware::headers::api))
}

/// An admin listener's router while sealed, behind `guard`.
pub fn admin_router(state: SealedState, guard: AdminGuard) -> Router {
    let labels = StackLabels {
        service: state.service,
        stack: "admin",
    };
    Router::new()
        .route(LIVEZ, get(|| async { "ok\n" }))
        .route(
            READYZ,
            get(|| async { ApiError::NotReady { reason: "sealed" } }),
        )
        .route(HEALTHZ, get(healthz_get))
        .route(UNSEAL, get(unseal_get).post(unseal_post))
        .route(SHUTDOWN, axum::routing::post(shutdown_post))
        .route(METRICS, get(metrics_get))
        .fallback(|| async { ApiError::Sealed })
        .layer(middleware::from_fn_with_state(guard, crate::admin::guard))
        .layer(middleware::from_fn_with_state(
            labels,
            crate::metrics::count,
        ))
        .layer(middleware::from_fn(crate::middleware::headers::api))
        .with_state(state)
}

/// A metrics-only listener's router while sealed.
pub fn metrics_router(
    state: SealedState,
    allow: crate::middleware::ip_allow::IpAllowlist,
) -> Router {
    crate::admin::metrics_only(state.service, get(metrics_get), allow).with_state(state)
}

async fn healthz_get(State(st): State<SealedState>) -> Response {
    let body = json!({
        "service": st.service,
        "version": env!("CARGO_PKG_VERSION"),
        "status": "sealed",
        "ready": false,
        "sealed": true,
        "unseal": st.unsealer.status(),
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn unseal_get(State(st): State<SealedState>) -> Json<Value> {
    Json(st.unsealer.status())
}

/// `{"share": "cryptoutil-unseal-v1...."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareBody {
    share: Zeroizing<String>,
}

async fn unseal_post(
    State(st): State<SealedState>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<Json<Value>, ApiError> {
    let unsealer = Arc::clone(&st.unsealer);
    // Combining and checking the shares opens the stores: off the async task.
    let answer = tokio::task::spawn_blocking(move || unsealer.submit(body.share.trim()))
        .await
        .map_err(|_| ApiError::BadRequest {
            reason: "the unseal task failed".into(),
        })?;
    match answer {
        Ok(status) => {
            tracing::info!(service = st.service, %status, "unseal share accepted");
            Ok(Json(status))
        }
        Err(reason) => {
            tracing::warn!(service = st.service, %reason, "unseal share refused");
            Err(ApiError::BadRequest { reason })
        }
    }
}

async fn shutdown_post(State(st): State<SealedState>) -> (StatusCode, Json<Value>) {
    tracing::info!(
        service = st.service,
        "shutdown requested on the admin listener (sealed)"
    );
    st.shutdown.send_replace(true);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "shutting down" })),
    )
}

async fn metrics_get(State(st): State<SealedState>) -> Response {
    crate::admin::metrics_text(&st.metrics)
}
