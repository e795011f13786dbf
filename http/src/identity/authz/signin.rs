//! identity-authz's sign-in back channel for an identity-idp in its own process:
//! `POST /service/api/v1/identity/signin` `{"op": ..., ...}`, answered by making the same call
//! on identity-authz's handle ([`cryptoutil_actors::federation::identity::signin`]). Only a
//! token with the scope `identity-idp` calls it, which only a client of
//! `identity.federation_clients` can hold: its holder finishes sign-ins for any user.

use axum::extract::State;
use axum::{Extension, Json};
use cryptoutil_actors::federation::identity::signin::{self, SignInCall};
use cryptoutil_actors::identity::authz::AuthzHandle;
use cryptoutil_actors::Scope;
use serde_json::Value;

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

pub(crate) async fn signin_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(call): JsonBody<SignInCall>,
) -> Result<Json<Value>, ApiError> {
    who.require_scope(Scope::SignIn)?;
    let authz = app.actors.get::<AuthzHandle>().ok_or(ApiError::NotFound)?;
    Ok(Json(signin::answer(authz, call).await?))
}
