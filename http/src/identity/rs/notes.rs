//! The notes API of identity-rs. A handler reads who called from the principal the credential
//! seam put on the request (tenant, `sub`, scopes, `acr`), checks the route's scope (and, for
//! a delete, the sign-in's strength), and asks the notes handle for that caller's notes only.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::identity::rs::notes::Owner;
use cryptoutil_actors::identity::rs::{Note, NoteInput, NotesHandle};
use cryptoutil_actors::identity::signin::ACR_PHR;
use cryptoutil_actors::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The notes handle, once the caller holds `scope`.
fn notes(app: &AppState, who: &Principal, scope: Scope) -> Result<NotesHandle, ApiError> {
    who.require_scope(scope)?;
    app.actors
        .get::<NotesHandle>()
        .cloned()
        .ok_or(ApiError::NotFound)
}

/// How recent (seconds) the phishing-resistant sign-in behind a delete must be: a token
/// refreshed for hours keeps its sign-in's `acr` and `auth_time`, and a destructive action
/// wants the user at the keyboard now.
pub const STEP_UP_MAX_AGE: u64 = 900;

/// RFC 9470: the route needs a phishing-resistant sign-in no older than [`STEP_UP_MAX_AGE`]
/// at `now`; any other token (a weaker or older sign-in, or a client's own token, which has
/// no `acr`) is asked to step up.
fn require_phishing_resistant(who: &Principal, now: u64) -> Result<(), ApiError> {
    let recent = who
        .auth_time
        .is_some_and(|t| t <= now.saturating_add(60) && now.saturating_sub(t) <= STEP_UP_MAX_AGE);
    if who.acr.as_deref() == Some(ACR_PHR) && recent {
        Ok(())
    } else {
        Err(ApiError::StepUp {
            acr_values: ACR_PHR,
            max_age: STEP_UP_MAX_AGE,
            dpop: who.jkt.is_some(),
        })
    }
}

fn owner(who: &Principal) -> Owner {
    Owner::new(&who.tenant, &who.issuer, &who.subject)
}

fn note_json(n: Note) -> Value {
    json!({ "id": n.id, "title": n.title, "body": n.body, "created": n.created })
}

/// The `{id}` path parameter.
#[derive(Deserialize)]
pub(crate) struct IdPath {
    id: String,
}

/// Ids are base64url of 12 random bytes; anything else names no note.
fn note_id(p: &IdPath) -> Result<String, ApiError> {
    let ok = p.id.len() == 16
        && p.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| p.id.clone()).ok_or(ApiError::NotFound)
}

/// `GET /service/api/v1/notes` (scope `notes:read`): the caller's notes, oldest first.
pub(crate) async fn list_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let list = notes(&app, &who, Scope::NotesRead)?
        .list(owner(&who))
        .await?;
    let list: Vec<Value> = list.into_iter().map(note_json).collect();
    Ok(Json(json!({ "notes": list })))
}

/// `POST /service/api/v1/notes` `{"title", "body"?}` (scope `notes:write`): 201 and the note.
pub(crate) async fn create_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(input): JsonBody<NoteInput>,
) -> Result<Response, ApiError> {
    let note = notes(&app, &who, Scope::NotesWrite)?
        .create(owner(&who), input)
        .await?;
    Ok((StatusCode::CREATED, Json(note_json(note))).into_response())
}

/// `GET /service/api/v1/notes/{id}` (scope `notes:read`).
pub(crate) async fn note_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    let handle = notes(&app, &who, Scope::NotesRead)?;
    let note = handle.get(owner(&who), note_id(&p)?).await?;
    Ok(Json(note_json(note)))
}

/// `DELETE /service/api/v1/notes/{id}` (scope `notes:write` and a phishing-resistant sign-in):
/// 204.
pub(crate) async fn note_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    let handle = notes(&app, &who, Scope::NotesWrite)?;
    require_phishing_resistant(&who, cryptoutil_actors::now_unix())?;
    handle.delete(owner(&who), note_id(&p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /.well-known/oauth-protected-resource`: RFC 9728 metadata. The resource identifier is
/// the configured one (`identity.resource_uris.identity-rs`, what identity-authz maps to the
/// audience `identity-rs`), else the origin the client addressed (the metadata sits at its
/// root); a client compares it with the URL it fetched, as RFC 9728 §3.3 asks.
pub(crate) async fn metadata_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Value>, ApiError> {
    let handle = app.actors.get::<NotesHandle>().ok_or(ApiError::NotFound)?;
    let resource = match &handle.settings().resource {
        Some(configured) => configured.clone(),
        None => format!(
            "https://{}",
            crate::dpop::authority(&headers, &uri).ok_or(ApiError::BadRequest {
                reason: "no Host".into(),
            })?
        ),
    };
    let algs: Vec<&str> = cryptoutil_protocols::dpop::PROOF_ALGS
        .iter()
        .map(|a| a.as_str())
        .collect();
    Ok(Json(json!({
        "resource": resource,
        "resource_name": "cryptoutil identity-rs (notes)",
        "authorization_servers": handle.settings().authorization_servers,
        "scopes_supported": [Scope::NotesRead.as_str(), Scope::NotesWrite.as_str()],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": algs,
        "dpop_bound_access_tokens_required": false,
        "tls_client_certificate_bound_access_tokens": true,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoutil_protocols::ids::TenantId;

    const NOW: u64 = 1_800_000_000;

    fn principal(acr: Option<&str>, auth_time: Option<u64>) -> Principal {
        Principal {
            issuer: "https://as.example".into(),
            subject: "alice".into(),
            tenant: TenantId::parse("acme").unwrap(),
            scopes: vec!["notes:write".into()],
            csrf: None,
            jkt: None,
            x5t: None,
            acr: acr.map(str::to_owned),
            auth_time,
        }
    }

    #[test]
    fn only_a_recent_phishing_resistant_sign_in_may_delete() {
        use cryptoutil_actors::identity::signin::{ACR_MFA, ACR_PASSWORD};
        let ok = |acr, at| require_phishing_resistant(&principal(acr, at), NOW).is_ok();
        assert!(ok(Some(ACR_PHR), Some(NOW - 10)));
        assert!(ok(Some(ACR_PHR), Some(NOW - STEP_UP_MAX_AGE)));
        assert!(
            !ok(Some(ACR_PHR), Some(NOW - STEP_UP_MAX_AGE - 1)),
            "too old"
        );
        assert!(!ok(Some(ACR_PHR), None), "no auth_time");
        assert!(!ok(Some(ACR_PHR), Some(NOW + 3600)), "from the future");
        for weaker in [Some(ACR_MFA), Some(ACR_PASSWORD), None, Some("phr")] {
            assert!(
                matches!(
                    require_phishing_resistant(&principal(weaker, Some(NOW)), NOW),
                    Err(ApiError::StepUp { acr_values, max_age, .. })
                        if acr_values == ACR_PHR && max_age == STEP_UP_MAX_AGE
                ),
                "{weaker:?}"
            );
        }
    }

    #[test]
    fn note_ids_are_sixteen_base64url_characters() {
        let id = |s: &str| note_id(&IdPath { id: s.into() });
        assert!(id("AbCdEfGh-_123456").is_ok());
        for bad in ["short", "AbCdEfGh-_1234567", "AbCdEfGh/_123456", "..", ""] {
            assert!(id(bad).is_err(), "{bad}");
        }
    }
}
