//! identity-idp's admin API for a user's sign-in factors, under both
//! `/service/api/v1/identity/users/{id}/factors` and its `/browser/api/v1` twin (scope
//! `identity`, the caller's tenant; `{id}` is the user's `sub` or login name):
//! - `GET`: `[{"id", "type", "name", "created_at"}]`, the password first.
//! - `POST` `{"type": "totp"|"hotp"|"yubico_otp"|"magic_link"|"recovery_codes", "name", ...}`: enrolls a
//!   factor for the user (an operator provisioning a token, or handing out recovery codes);
//!   the answer carries its secret and `otpauth_uri`, or the ten codes, shown once. TOTP takes
//!   `algorithm` (`SHA1`, `SHA256`, `SHA512`), `digits` (6-8) and `period` (15-120 s); HOTP
//!   `algorithm`, `digits` and `counter`; a YubiKey's Yubico OTP slot is imported with
//!   `public_id` (modhex), `private_id` and `aes_key` (hex) and optionally one `otp` it typed,
//!   which proves the import and spends the OTPs before it (the answer shows `public_id`);
//!   a magic link with `address` (the login page mails links to it).
//! - `DELETE .../factors/{factor id}`: removes one (a user who lost their device). The
//!   password is identity-authz's and is not removed here. The last factor that reaches the
//!   tenant's `acr` policy is not removed either (409): enroll its replacement first.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::identity::authz::admin::UserView;
use cryptoutil_actors::identity::idp::factors::FactorKind;
use cryptoutil_actors::identity::idp::{FactorsHandle, IdpHandle, Owner};
use cryptoutil_actors::Scope;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// `{id}`.
#[derive(Deserialize)]
pub(crate) struct UserPath {
    id: String,
}

/// `{id}` and `{factor}`.
#[derive(Deserialize)]
pub(crate) struct FactorPath {
    id: String,
    factor: String,
}

/// The user `id` (their `sub` or login name) of the caller's tenant, and the factor records.
async fn user_of(
    app: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(UserView, FactorsHandle), ApiError> {
    who.require_scope(Scope::Identity)?;
    let idp = app.actors.get::<IdpHandle>().ok_or(ApiError::NotFound)?;
    let factors = app
        .actors
        .get::<FactorsHandle>()
        .ok_or(ApiError::NotFound)?;
    let user = idp
        .user(who.tenant.as_str(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((user, factors.clone()))
}

fn owner(user: &UserView) -> Owner {
    Owner {
        tenant: user.tenant.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
    }
}

pub(crate) async fn factors_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<UserPath>,
) -> Result<Json<Value>, ApiError> {
    let (user, factors) = user_of(&app, &who, &p.id).await?;
    let mut list = vec![json!({
        "id": "password",
        "type": FactorKind::Password,
        "name": "Password",
        "created_at": user.created,
    })];
    for info in factors.list(&user.tenant, &user.id).await? {
        list.push(json!(info));
    }
    Ok(Json(Value::Array(list)))
}

pub(crate) async fn factors_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<UserPath>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (user, factors) = user_of(&app, &who, &p.id).await?;
    let bad = |reason| ApiError::Actor(cryptoutil_actors::Error::BadRequest { reason });
    let kind = body
        .remove("type")
        .and_then(|t| t.as_str().and_then(FactorKind::parse))
        .ok_or_else(|| bad("type: a factor this service enrolls (totp, hotp, yubico_otp, magic_link, recovery_codes)"))?;
    let name = match body.remove("name") {
        None => kind.name().to_owned(),
        Some(Value::String(n)) => n,
        Some(_) => return Err(bad("name: a string")),
    };
    let shown = factors
        .enroll(&who.subject, &owner(&user), kind, &name, &body, None)
        .await?;
    Ok((StatusCode::CREATED, Json(Value::Object(shown))).into_response())
}

pub(crate) async fn factor_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<FactorPath>,
) -> Result<StatusCode, ApiError> {
    let (user, factors) = user_of(&app, &who, &p.id).await?;
    let idp = app.actors.get::<IdpHandle>().ok_or(ApiError::NotFound)?;
    if p.factor == "password" {
        return Err(ApiError::Actor(cryptoutil_actors::Error::Conflict {
            what: "the password is identity-authz's: set a new one there",
        }));
    }
    let policy = idp.tenant_policy(&user.tenant).await?;
    factors
        .remove(&who.subject, &owner(&user), &p.factor, policy)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
