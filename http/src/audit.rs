//! The audit log's routes: a tenant's records on the public listener (with the service's API
//! scope), every record and the chain's verification on the admin listener.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::state::AppState;

/// `?from=<seq>&limit=<n>` of an audit read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

impl AuditQuery {
    /// Where the page starts: sequences start at 1.
    fn from(&self) -> Result<u64, ApiError> {
        match self.from.unwrap_or(1) {
            0 => Err(ApiError::BadRequest {
                reason: "from: 1 or more".into(),
            }),
            n => Ok(n),
        }
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(100) {
            n @ 1..=1000 => Ok(n),
            _ => Err(ApiError::BadRequest {
                reason: "limit: 1 to 1000".into(),
            }),
        }
    }
}

/// The caller's tenant's audit records, in log order, a page at a time (`next` is the `from`
/// of the next page). Whole-chain verification is on the admin listener, since it reads every
/// tenant's records.
pub(crate) async fn audit_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, limit) = (q.from()?, q.limit()?);
    let scope = app.service.api_scope().ok_or(ApiError::NotFound)?;
    who.require_scope(scope)?;
    let page = log(&app)?
        .read(from, limit, Some(who.tenant.to_string()))
        .await?;
    Ok(Json(json!(page)))
}

/// Admin: every tenant's records (`/admin/v1/audit`).
pub(crate) async fn admin_audit_get(
    app: &AppState,
    q: AuditQuery,
) -> Result<Json<Value>, ApiError> {
    let (from, limit) = (q.from()?, q.limit()?);
    let page = log(app)?.read(from, limit, None).await?;
    Ok(Json(json!(page)))
}

/// Admin: verifies the whole chain (`/admin/v1/audit/verify`).
pub(crate) async fn admin_audit_verify(app: &AppState) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(log(app)?.verify().await?)))
}

fn log(app: &AppState) -> Result<&cryptoutil_actors::audit::AuditHandle, ApiError> {
    Ok(&app.actors.audit)
}
