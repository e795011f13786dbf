//! identity-authz's browser navigations: the authorization endpoint and RP-initiated logout.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cryptoutil_actors::identity::authz::flow::AuthorizeOutcome;
use cryptoutil_actors::identity::authz::AuthzHandle;

use crate::error::ApiError;
use crate::pages::{bad_request, esc, get, is_form, page, params, refused, see_other, Refusal};
use crate::state::AppState;

fn authz(app: &AppState) -> Result<&AuthzHandle, ApiError> {
    app.actors.get::<AuthzHandle>().ok_or(ApiError::NotFound)
}

async fn authorize(app: &AppState, raw: &[u8]) -> Result<Response, ApiError> {
    let authz = authz(app)?;
    let Some(params) = params(raw) else {
        return Ok(bad_request());
    };
    Ok(match authz.authorize(params).await? {
        AuthorizeOutcome::Redirect(to) => see_other(&to),
        AuthorizeOutcome::Refuse(why) => page(
            StatusCode::BAD_REQUEST,
            "Sign-in request refused",
            &format!("<p>{}</p>", esc(why)),
        ),
    })
}

pub(crate) async fn authorize_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&app, query.unwrap_or_default().as_bytes()).await
}

pub(crate) async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_form(&headers) {
        return Ok(bad_request());
    }
    authorize(&app, &body).await
}

pub(crate) async fn logout_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let authz = authz(&app)?;
    let Some(params) = params(query.unwrap_or_default().as_bytes()) else {
        return Ok(bad_request());
    };
    let owned = |n: &str| get(&params, n).map(str::to_owned);
    match authz
        .logout(
            owned("id_token_hint"),
            owned("post_logout_redirect_uri"),
            owned("state"),
        )
        .await
    {
        Ok(Some(to)) => Ok(see_other(&to)),
        Ok(None) => Ok(page(
            StatusCode::OK,
            "Signed out",
            "<p>You are signed out. You can close this window.</p>",
        )),
        Err(e) => Ok(refused(e, Refusal::Refused("Sign-out refused", None))),
    }
}
