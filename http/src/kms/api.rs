//! The KMS API (issue 5, first step), under both `/service/api/v1` and `/browser/api/v1`:
//! elastic keys (create, list, get), their material keys and public JWKS, rotation, and
//! encrypt/decrypt (JWE) and sign/verify (JWS). Every route needs the `kms` scope and acts in
//! the caller's tenant; another tenant's key is a 404, like a key that does not exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::kms::{
    BatchOp, Caller, KeyRingsHandle, KeyUpdate, NewElasticKey, VersionAction,
};
use cryptoutil_actors::Scope;
use cryptoutil_protocols::jose::b64;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI document of the KMS API (checked in at `http/openapi/kms.yaml`).
pub const OPENAPI: &str = include_str!("../../openapi/kms.yaml");

pub(crate) async fn openapi_get() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI,
    )
}

fn rings<'a>(app: &'a AppState, who: &Principal) -> Result<&'a KeyRingsHandle, ApiError> {
    who.require_scope(Scope::Kms)?;
    app.actors.get::<KeyRingsHandle>().ok_or(ApiError::NotFound)
}

/// The caller as the key rings and their audit records see it.
fn caller(who: &Principal) -> Caller {
    Caller {
        tenant: who.tenant.clone(),
        subject: who.subject.clone(),
    }
}

fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, ApiError> {
    b64::decode(text, what).map_err(|_| ApiError::BadRequest {
        reason: format!("{what} must be base64url"),
    })
}

/// The `{id}` path parameter.
#[derive(Deserialize)]
pub(crate) struct KeyPath {
    id: String,
}

pub(crate) async fn keys_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(spec): Json<NewElasticKey>,
) -> Result<Response, ApiError> {
    let key = rings(&app, &who)?.create(&caller(&who), spec).await?;
    Ok((StatusCode::CREATED, Json(json!(key))).into_response())
}

pub(crate) async fn keys_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let keys = rings(&app, &who)?.list(&caller(&who)).await?;
    Ok(Json(json!({ "elastickeys": keys })))
}

async fn describe(app: &AppState, who: &Principal, id: &str) -> Result<Value, ApiError> {
    Ok(rings(app, who)?.describe(&caller(who), id).await?)
}

pub(crate) async fn key_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
) -> Result<Json<Value>, ApiError> {
    let mut d = describe(&app, &who, &p.id).await?;
    Ok(Json(d.get_mut("key").map(Value::take).unwrap_or_default()))
}

pub(crate) async fn key_patch(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(update): Json<KeyUpdate>,
) -> Result<Json<Value>, ApiError> {
    let key = rings(&app, &who)?
        .update(&caller(&who), &p.id, update)
        .await?;
    Ok(Json(json!(key)))
}

/// Soft delete: the key stops working now and is destroyed after the deletion delay.
pub(crate) async fn key_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
) -> Result<Json<Value>, ApiError> {
    let key = rings(&app, &who)?.delete(&caller(&who), &p.id).await?;
    Ok(Json(json!(key)))
}

/// `POST .../batch/{op}` body: `{"items": [...]}`, each `{"plaintext"}` (encrypt),
/// `{"jwe"}` (decrypt), `{"payload"}` (sign) or `{"jws"}` (verify).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchReq {
    items: Vec<serde_json::Map<String, Value>>,
}

/// The `{id}` and `{op}` path parameters of a batch.
#[derive(Deserialize)]
pub(crate) struct BatchPath {
    id: String,
    op: String,
}

/// One request, many items of one operation, a result per item in order (an item's failure is
/// its own `{"error"}`; the request fails only as a whole: unknown key, bad shape, > 1000 items).
pub(crate) async fn batch_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<BatchPath>,
    Json(req): Json<BatchReq>,
) -> Result<Json<Value>, ApiError> {
    let (op, field, base64) = match p.op.as_str() {
        "encrypt" => (BatchOp::Encrypt, "plaintext", true),
        "decrypt" => (BatchOp::Decrypt, "jwe", false),
        "sign" => (BatchOp::Sign, "payload", true),
        "verify" => (BatchOp::Verify, "jws", false),
        _ => return Err(ApiError::NotFound),
    };
    let mut items = Vec::with_capacity(req.items.len());
    for item in &req.items {
        let text = item
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::BadRequest {
                reason: format!("each item needs {field}"),
            })?;
        items.push(Zeroizing::new(if base64 {
            decode(text, "item")?
        } else {
            text.as_bytes().to_vec()
        }));
    }
    let results = rings(&app, &who)?
        .batch(&caller(&who), &p.id, op, items)
        .await?;
    Ok(Json(json!({ "results": results })))
}

/// `POST .../datakey` body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataKeyReq {
    /// Return only the wrapped key (default: both).
    #[serde(default)]
    wrapped_only: bool,
}

pub(crate) async fn datakey_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<DataKeyReq>,
) -> Result<Json<Value>, ApiError> {
    let (plaintext, jwe) = rings(&app, &who)?.data_key(&caller(&who), &p.id).await?;
    Ok(Json(if req.wrapped_only {
        json!({ "jwe": jwe })
    } else {
        json!({ "plaintext": b64::encode(&plaintext), "jwe": jwe })
    }))
}

pub(crate) async fn materialkeys_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
) -> Result<Json<Value>, ApiError> {
    let mut d = describe(&app, &who, &p.id).await?;
    let versions = d
        .get_mut("materialkeys")
        .map(Value::take)
        .unwrap_or_default();
    Ok(Json(json!({ "materialkeys": versions })))
}

/// The `{id}` and `{version}` path parameters.
#[derive(Deserialize)]
pub(crate) struct VersionPath {
    id: String,
    version: u32,
}

/// `PATCH .../materialkeys/{version}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionPatch {
    enabled: bool,
}

/// Enables or disables one material key version (not the latest): `{"materialkeys": [...]}`.
pub(crate) async fn version_patch(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<VersionPath>,
    Json(req): Json<VersionPatch>,
) -> Result<Json<Value>, ApiError> {
    let action = if req.enabled {
        VersionAction::Enable
    } else {
        VersionAction::Disable
    };
    let versions = rings(&app, &who)?
        .version(&caller(&who), &p.id, p.version, action)
        .await?;
    Ok(Json(json!({ "materialkeys": versions })))
}

/// Destroys one material key version's material (not the latest): what it protected can no
/// longer be opened or verified.
pub(crate) async fn version_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<VersionPath>,
) -> Result<Json<Value>, ApiError> {
    let versions = rings(&app, &who)?
        .version(&caller(&who), &p.id, p.version, VersionAction::Destroy)
        .await?;
    Ok(Json(json!({ "materialkeys": versions })))
}

pub(crate) async fn jwks_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
) -> Result<Response, ApiError> {
    let mut d = describe(&app, &who, &p.id).await?;
    let set = d.get_mut("jwks").map(Value::take).unwrap_or_default();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")],
        set.to_string(),
    )
        .into_response())
}

pub(crate) async fn rotate_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
) -> Result<Json<Value>, ApiError> {
    let version = rings(&app, &who)?.rotate(&caller(&who), &p.id).await?;
    Ok(Json(json!({ "version": version })))
}

/// `POST .../encrypt` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptReq {
    plaintext: Zeroizing<String>,
}

pub(crate) async fn encrypt_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<EncryptReq>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = Zeroizing::new(decode(&req.plaintext, "plaintext")?);
    let jwe = rings(&app, &who)?
        .encrypt(&caller(&who), &p.id, plaintext)
        .await?;
    Ok(Json(json!({ "jwe": jwe })))
}

/// `POST .../decrypt` and `POST .../import` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JweBody {
    jwe: String,
}

pub(crate) async fn decrypt_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<JweBody>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = rings(&app, &who)?
        .decrypt(&caller(&who), &p.id, req.jwe)
        .await?;
    Ok(Json(json!({ "plaintext": b64::encode(&plaintext) })))
}

/// `POST .../sign` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignReq {
    payload: String,
}

pub(crate) async fn sign_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<SignReq>,
) -> Result<Json<Value>, ApiError> {
    let payload = decode(&req.payload, "payload")?;
    let jws = rings(&app, &who)?
        .sign(&caller(&who), &p.id, payload)
        .await?;
    Ok(Json(json!({ "jws": jws })))
}

/// `POST .../verify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyReq {
    jws: String,
}

pub(crate) async fn verify_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<VerifyReq>,
) -> Result<Response, ApiError> {
    match rings(&app, &who)?
        .verify(&caller(&who), &p.id, req.jws)
        .await
    {
        Ok(v) => {
            Ok(Json(json!({ "valid": true, "payload": b64::encode(&v.payload) })).into_response())
        }
        Err(e @ cryptoutil_actors::Error::Jose(_)) => Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({ "valid": false, "reason": e.to_string() })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// The import key's public half: wrap key material to import as a JWE (RSA-OAEP-256, A256GCM)
/// of its private JWK with it.
pub(crate) async fn importkey_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let key = rings(&app, &who)?.import_key().await?;
    let public = key
        .to_public_value()
        .map_err(|e| ApiError::Actor(e.into()))?;
    Ok(Json(json!({ "jwk": public })))
}

/// BYOK: the imported key becomes the latest version; `{"version"}`.
pub(crate) async fn import_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<JweBody>,
) -> Result<Json<Value>, ApiError> {
    let version = rings(&app, &who)?
        .import(&caller(&who), &p.id, req.jwe)
        .await?;
    Ok(Json(json!({ "version": version })))
}

/// `POST .../export` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportReq {
    jwk: Value,
    #[serde(default)]
    version: Option<u32>,
}

/// An exportable key's private JWK (the latest version unless `version`), as a JWE to the
/// caller's public key (`alg` RSA-OAEP-256 or ECDH-ES+A256KW); `{"jwe"}`.
pub(crate) async fn export_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KeyPath>,
    Json(req): Json<ExportReq>,
) -> Result<Json<Value>, ApiError> {
    let recipient = cryptoutil_protocols::jose::Jwk::from_value(&req.jwk).map_err(|e| {
        ApiError::BadRequest {
            reason: format!("jwk: {e}"),
        }
    })?;
    let jwe = rings(&app, &who)?
        .export(&caller(&who), &p.id, req.version, recipient)
        .await?;
    Ok(Json(json!({ "jwe": jwe })))
}
