//! identity-authz's sign-in back channel for an identity-idp in its own process:
//! `POST /service/api/v1/identity/signin` `{"op": ..., ...}`, answered by making the same call
//! on identity-authz's handle ([`cryptoutil_actors::federation::identity::signin`]). Only a
//! token with the scope `identity-idp` calls it, which only a client of
//! `identity.federation_clients` can hold: its holder finishes sign-ins for any user. The
//! client is looked up on every call: one deleted, or no longer holding the scope, is refused
//! at once, whatever tokens it still has.

use axum::extract::State;
use axum::{Extension, Json};
use cryptoutil_actors::federation::identity::signin::{self, SignInCall};
use cryptoutil_actors::identity::authz::admin::{AdminAnswer, AdminOp, Caller, OPERATOR_TENANT};
use cryptoutil_actors::identity::authz::AuthzHandle;
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ids::ClientId;
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
    // The token's subject is an operator resource server that still holds the scope.
    let insufficient = ApiError::InsufficientScope {
        scope: Scope::SignIn.as_str(),
        dpop: who.jkt.is_some(),
    };
    if who.tenant.as_str() != OPERATOR_TENANT {
        return Err(insufficient);
    }
    let id = ClientId::parse(&who.subject).map_err(|_| ApiError::InsufficientScope {
        scope: Scope::SignIn.as_str(),
        dpop: who.jkt.is_some(),
    })?;
    let caller = Caller {
        who: who.subject.clone(),
        tenant: OPERATOR_TENANT.to_owned(),
        scopes: Vec::new(),
    };
    let holds = match authz.admin(caller, AdminOp::GetClient(id)).await {
        Ok(AdminAnswer::Client(c)) => {
            c.tenant == OPERATOR_TENANT
                && c.resource_server
                && c.scopes.iter().any(|s| s == Scope::SignIn.as_str())
        }
        Ok(_) | Err(cryptoutil_actors::Error::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if !holds {
        tracing::warn!(client = %who.subject, "a sign-in back-channel call from a client without the scope");
        return Err(insufficient);
    }
    Ok(Json(signin::answer(authz, call).await?))
}
