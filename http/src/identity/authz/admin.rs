//! identity-authz's admin API for tenants, clients and users, under both
//! `/service/api/v1/identity` and `/browser/api/v1/identity`. Every route needs the `identity`
//! scope; a caller acts in its own tenant, the operator tenant in any.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::identity::authz::admin::{
    AdminAnswer, AdminOp, Caller, NewClient, NewTenant, NewUser,
};
use cryptoutil_actors::identity::authz::AuthzHandle;
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ids::ClientId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

async fn run(app: &AppState, who: &Principal, op: AdminOp) -> Result<Value, ApiError> {
    who.require_scope(Scope::Identity)?;
    let authz = app.actors.get::<AuthzHandle>().ok_or(ApiError::NotFound)?;
    let caller = Caller {
        who: who.subject.clone(),
        tenant: who.tenant.to_string(),
        scopes: who.scopes.clone(),
    };
    Ok(answer_json(authz.admin(caller, op).await?))
}

/// An admin answer as the API writes it.
fn answer_json(answer: AdminAnswer) -> Value {
    match answer {
        AdminAnswer::Tenants(tenants) => json!({ "tenants": tenants }),
        AdminAnswer::Tenant(tenant) => json!(tenant),
        AdminAnswer::Clients(clients) => json!({ "clients": clients }),
        AdminAnswer::Client(client) => json!(client),
        AdminAnswer::Users(users) => json!({ "users": users }),
        AdminAnswer::User(user) => json!(user),
        AdminAnswer::Removed => Value::Null,
    }
}

/// A client `{id}` parsed: a malformed one names no client (404).
fn client_id(p: &IdPath) -> Result<ClientId, ApiError> {
    ClientId::parse(&p.id).map_err(|_| ApiError::NotFound)
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// The `{id}` path parameter (a struct: the stack router captures its own `{*rest}`).
#[derive(Deserialize)]
pub(crate) struct IdPath {
    id: String,
}

pub(crate) async fn tenants_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run(&app, &who, AdminOp::ListTenants).await?))
}

pub(crate) async fn tenants_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewTenant>,
) -> Result<Response, ApiError> {
    Ok(created(run(&app, &who, AdminOp::CreateTenant(req)).await?))
}

/// `PUT .../identity/tenants/{id}/policy` `{"acr"}`: the assurance every sign-in of the
/// tenant's users must reach (`null` clears it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPolicy {
    acr: Option<String>,
}

pub(crate) async fn tenant_policy_put(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
    JsonBody(req): JsonBody<TenantPolicy>,
) -> Result<Json<Value>, ApiError> {
    let op = AdminOp::TenantPolicy {
        tenant: p.id,
        acr: req.acr,
    };
    Ok(Json(run(&app, &who, op).await?))
}

pub(crate) async fn clients_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run(&app, &who, AdminOp::ListClients).await?))
}

pub(crate) async fn clients_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewClient>,
) -> Result<Response, ApiError> {
    Ok(created(run(&app, &who, AdminOp::CreateClient(req)).await?))
}

pub(crate) async fn client_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        run(&app, &who, AdminOp::GetClient(client_id(&p)?)).await?,
    ))
}

pub(crate) async fn client_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    run(&app, &who, AdminOp::DeleteClient(client_id(&p)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn users_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run(&app, &who, AdminOp::ListUsers).await?))
}

pub(crate) async fn users_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    Ok(created(run(&app, &who, AdminOp::CreateUser(req)).await?))
}

pub(crate) async fn user_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    run(&app, &who, AdminOp::DeleteUser(p.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
