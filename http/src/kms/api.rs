//! The KMS API, under both `/service/api/v1` and `/browser/api/v1`: elastic keys (create,
//! list, get, update, delete), their material keys and public JWKS, rotation, versions,
//! encrypt/decrypt (JWE), sign/verify (JWS), data keys, batches, import and export. Every route
//! needs the `kms` scope and acts in the caller's tenant; another tenant's key is a 404, like a
//! key that does not exist. The actors answer typed values; this module only parses requests
//! and writes JSON.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoutil_actors::kms::{
    BatchItem, BatchOp, BatchResult, Caller, KeyRingsHandle, KeyUpdate, NewElasticKey,
    VersionAction, VersionView,
};
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ids::ElasticKeyId;
use cryptoutil_protocols::jose::{b64, Jwk};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The OpenAPI document of the KMS API (checked in at `http/openapi/kms.yaml`).
pub const OPENAPI: &str = include_str!("../../openapi/kms.yaml");

/// The KMS as one caller sees it: the key rings, and who asks (its scope checked).
pub(crate) struct Kms {
    rings: KeyRingsHandle,
    who: Caller,
}

impl FromRequestParts<AppState> for Kms {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let who = Principal::of(parts)?;
        who.require_scope(Scope::Kms)?;
        let rings = app
            .actors
            .get::<KeyRingsHandle>()
            .ok_or(ApiError::NotFound)?;
        Ok(Kms {
            rings: rings.clone(),
            who: Caller {
                tenant: who.tenant.clone(),
                subject: who.subject.clone(),
            },
        })
    }
}

/// The `{id}` path parameter, parsed: a malformed id names no key (404).
pub(crate) struct KeyId(ElasticKeyId);

/// The raw path parameters (a struct: the stack router captures its own `{*rest}`).
#[derive(Deserialize)]
struct KeyPath {
    id: String,
}

impl FromRequestParts<AppState> for KeyId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Path(p) = Path::<KeyPath>::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::NotFound)?;
        ElasticKeyId::parse(&p.id)
            .map(KeyId)
            .map_err(|_| ApiError::NotFound)
    }
}

fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, ApiError> {
    b64::decode(text, what).map_err(|_| ApiError::BadRequest {
        reason: format!("{what} must be base64url"),
    })
}

fn versions_json(versions: Vec<VersionView>) -> Json<Value> {
    Json(json!({ "materialkeys": versions }))
}

pub(crate) async fn keys_post(
    kms: Kms,
    JsonBody(spec): JsonBody<NewElasticKey>,
) -> Result<Response, ApiError> {
    let key = kms.rings.create(&kms.who, spec).await?;
    Ok((StatusCode::CREATED, Json(json!(key))).into_response())
}

pub(crate) async fn keys_get(kms: Kms) -> Result<Json<Value>, ApiError> {
    let keys = kms.rings.list(&kms.who).await?;
    Ok(Json(json!({ "elastickeys": keys })))
}

pub(crate) async fn key_get(kms: Kms, KeyId(id): KeyId) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(kms.rings.key(&kms.who, &id).await?)))
}

pub(crate) async fn key_patch(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(update): JsonBody<KeyUpdate>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(kms.rings.update(&kms.who, &id, update).await?)))
}

/// Soft delete: the key stops working now and is destroyed after the deletion delay.
pub(crate) async fn key_delete(kms: Kms, KeyId(id): KeyId) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(kms.rings.delete(&kms.who, &id).await?)))
}

/// `POST .../batch/{op}` body: `{"items": [...]}`, each `{"plaintext"}` (encrypt),
/// `{"jwe"}` (decrypt), `{"payload"}` (sign) or `{"jws"}` (verify).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchReq {
    items: Vec<serde_json::Map<String, Value>>,
}

/// The `{op}` path parameter of a batch.
#[derive(Deserialize)]
pub(crate) struct BatchPath {
    op: String,
}

/// One request, many items of one operation, a result per item in order (an item's failure is
/// its own `{"error"}`; the request fails only as a whole: unknown key, bad shape, > 1000 items).
pub(crate) async fn batch_post(
    kms: Kms,
    KeyId(id): KeyId,
    Path(p): Path<BatchPath>,
    JsonBody(req): JsonBody<BatchReq>,
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
    let results = kms.rings.batch(&kms.who, &id, op, items).await?;
    let results: Vec<Value> = results.into_iter().map(batch_json).collect();
    Ok(Json(json!({ "results": results })))
}

/// One item's answer: `{"jwe"}`, `{"plaintext"}`, `{"jws"}`, `{"valid", "payload"}` or
/// `{"error"}`.
fn batch_json(result: BatchResult) -> Value {
    match result {
        Ok(BatchItem::Jwe(jwe)) => json!({ "jwe": jwe }),
        Ok(BatchItem::Plaintext(p)) => json!({ "plaintext": b64::encode(&p) }),
        Ok(BatchItem::Jws(jws)) => json!({ "jws": jws }),
        Ok(BatchItem::Verified(payload)) => {
            json!({ "valid": true, "payload": b64::encode(&payload) })
        }
        Err(e) => json!({ "error": e.0 }),
    }
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
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<DataKeyReq>,
) -> Result<Json<Value>, ApiError> {
    let dk = kms.rings.data_key(&kms.who, &id).await?;
    Ok(Json(if req.wrapped_only {
        json!({ "jwe": dk.jwe })
    } else {
        json!({ "plaintext": b64::encode(&dk.plaintext), "jwe": dk.jwe })
    }))
}

pub(crate) async fn materialkeys_get(kms: Kms, KeyId(id): KeyId) -> Result<Json<Value>, ApiError> {
    Ok(versions_json(kms.rings.versions(&kms.who, &id).await?))
}

/// The `{version}` path parameter.
#[derive(Deserialize)]
pub(crate) struct VersionPath {
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
    kms: Kms,
    KeyId(id): KeyId,
    Path(p): Path<VersionPath>,
    JsonBody(req): JsonBody<VersionPatch>,
) -> Result<Json<Value>, ApiError> {
    let action = if req.enabled {
        VersionAction::Enable
    } else {
        VersionAction::Disable
    };
    let versions = kms.rings.version(&kms.who, &id, p.version, action).await?;
    Ok(versions_json(versions))
}

/// Destroys one material key version's material (not the latest): what it protected can no
/// longer be opened or verified.
pub(crate) async fn version_delete(
    kms: Kms,
    KeyId(id): KeyId,
    Path(p): Path<VersionPath>,
) -> Result<Json<Value>, ApiError> {
    let action = VersionAction::Destroy;
    let versions = kms.rings.version(&kms.who, &id, p.version, action).await?;
    Ok(versions_json(versions))
}

pub(crate) async fn jwks_get(kms: Kms, KeyId(id): KeyId) -> Result<Response, ApiError> {
    let keys = kms.rings.public_keys(&kms.who, &id).await?;
    let keys: Vec<Value> = keys
        .iter()
        .filter_map(|k| k.to_public_value().ok())
        .collect();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")],
        json!({ "keys": keys }).to_string(),
    )
        .into_response())
}

pub(crate) async fn rotate_post(kms: Kms, KeyId(id): KeyId) -> Result<Json<Value>, ApiError> {
    let version = kms.rings.rotate(&kms.who, &id).await?;
    Ok(Json(json!({ "version": version })))
}

/// `POST .../encrypt` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptReq {
    plaintext: Zeroizing<String>,
}

pub(crate) async fn encrypt_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<EncryptReq>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = Zeroizing::new(decode(&req.plaintext, "plaintext")?);
    let jwe = kms.rings.encrypt(&kms.who, &id, plaintext).await?;
    Ok(Json(json!({ "jwe": jwe })))
}

/// `POST .../decrypt` and `POST .../import` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JweBody {
    jwe: String,
}

pub(crate) async fn decrypt_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<JweBody>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = kms.rings.decrypt(&kms.who, &id, req.jwe).await?;
    Ok(Json(json!({ "plaintext": b64::encode(&plaintext) })))
}

/// `POST .../sign` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignReq {
    payload: String,
}

pub(crate) async fn sign_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<SignReq>,
) -> Result<Json<Value>, ApiError> {
    let payload = decode(&req.payload, "payload")?;
    let jws = kms.rings.sign(&kms.who, &id, payload).await?;
    Ok(Json(json!({ "jws": jws })))
}

/// `POST .../verify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyReq {
    jws: String,
}

/// `{"valid": true, "payload"}`, or 400 `{"valid": false, "reason"}` for a signature that does
/// not verify.
pub(crate) async fn verify_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<VerifyReq>,
) -> Result<Json<Value>, ApiError> {
    let verified = kms
        .rings
        .verify(&kms.who, &id, req.jws)
        .await
        .map_err(ApiError::verification)?;
    Ok(Json(
        json!({ "valid": true, "payload": b64::encode(&verified.payload) }),
    ))
}

/// The import key's public half: wrap key material to import as a JWE (RSA-OAEP-256, A256GCM)
/// of its private JWK with it.
pub(crate) async fn importkey_get(kms: Kms) -> Result<Json<Value>, ApiError> {
    let key = kms.rings.import_key().await?;
    let public = key
        .to_public_value()
        .map_err(|e| ApiError::Actor(e.into()))?;
    Ok(Json(json!({ "jwk": public })))
}

/// BYOK: the imported key becomes the latest version; `{"version"}`.
pub(crate) async fn import_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<JweBody>,
) -> Result<Json<Value>, ApiError> {
    let version = kms.rings.import(&kms.who, &id, req.jwe).await?;
    Ok(Json(json!({ "version": version })))
}

/// `POST .../export` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportReq {
    jwk: Value,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    version: Option<u32>,
}

/// An exportable key's private JWK (the latest version unless `version`), as a JWE to the
/// caller's public key (`alg` RSA-OAEP-256 or ECDH-ES+A256KW); `{"jwe"}`.
pub(crate) async fn export_post(
    kms: Kms,
    KeyId(id): KeyId,
    JsonBody(req): JsonBody<ExportReq>,
) -> Result<Json<Value>, ApiError> {
    let recipient = Jwk::from_value(&req.jwk).map_err(|e| ApiError::BadRequest {
        reason: format!("jwk: {e}"),
    })?;
    let jwe = kms
        .rings
        .export(&kms.who, &id, req.version, recipient)
        .await?;
    Ok(Json(json!({ "jwe": jwe })))
}
