//! The JOSE service's API, mounted under both `/service/api/v1/jose` and `/browser/api/v1/jose`.
//! Handlers are thin: extract, decode, ask the `JoseKeys` actor, respond. Every route needs the
//! `jose` scope; keys belong to the caller's tenant.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::jose::{engine, JoseKeysHandle, KeySpec, KeyView};
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ids::Kid;
use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::jose::jwe::ContentAlg;
use cryptoutil_protocols::jose::jwt::Claims;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

fn keys(app: &AppState, who: &Principal) -> Result<JoseKeysHandle, ApiError> {
    who.require_scope(Scope::Jose)?;
    app.actors
        .get::<JoseKeysHandle>()
        .cloned()
        .ok_or(ApiError::NotFound)
}

fn decode(text: &str, field: &'static str) -> Result<Vec<u8>, ApiError> {
    b64::decode(text, field).map_err(|_| ApiError::BadRequest {
        reason: format!("{field} is not base64url"),
    })
}

fn view_json(v: KeyView) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("kid".into(), Value::String(v.kid));
    body.insert("jwk".into(), v.jwk);
    body.insert("exportable".into(), Value::Bool(v.exportable));
    if let Some(private) = v.private_jwk {
        body.insert(
            "private_jwk".into(),
            serde_json::from_str(&private).unwrap_or(Value::Null),
        );
    }
    Value::Object(body)
}

fn enc_param(enc: Option<&str>) -> Result<Option<ContentAlg>, ApiError> {
    enc.map(|e| {
        ContentAlg::parse(e).map_err(|err| ApiError::BadRequest {
            reason: err.to_string(),
        })
    })
    .transpose()
}

/// `POST .../jose/jwks` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    alg: String,
    #[serde(
        rename = "use",
        default,
        deserialize_with = "cryptoutil_actors::serde_ext::non_null"
    )]
    key_use: Option<String>,
    #[serde(default)]
    exportable: bool,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    enc: Option<String>,
}

pub(crate) async fn jwks_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    let spec = KeySpec {
        alg: req.alg,
        key_use: req.key_use,
        exportable: req.exportable,
        enc: enc_param(req.enc.as_deref())?,
    };
    let view = keys(&app, &who)?.create(who.tenant, spec).await?;
    Ok((StatusCode::CREATED, Json(view_json(view))).into_response())
}

pub(crate) async fn jwks_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(keys(&app, &who)?.list(who.tenant).await?))
}

/// `GET .../jose/keys`: every key of the tenant as metadata, symmetric ones included (the JWK
/// Set above holds public keys only).
pub(crate) async fn keys_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let views = keys(&app, &who)?.inventory(who.tenant).await?;
    let keys: Vec<Value> = views.into_iter().map(view_json).collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

/// The `{kid}` path parameter. A struct, not a bare `Path<String>`: the stack router in front
/// captures its own `{*rest}` parameter, which this ignores.
#[derive(Deserialize)]
pub(crate) struct KidPath {
    kid: String,
}

/// The `{kid}` parsed: a malformed one names no key (404).
fn kid(p: &KidPath) -> Result<Kid, ApiError> {
    Kid::parse(&p.kid).map_err(|_| ApiError::NotFound)
}

/// `GET .../jose/jwks/{kid}?export=true`.
#[derive(Deserialize)]
pub(crate) struct Export {
    #[serde(default)]
    export: bool,
}

pub(crate) async fn jwk_get(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KidPath>,
    Query(q): Query<Export>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view_json(
        keys(&app, &who)?
            .get(who.tenant, kid(&p)?, q.export)
            .await?,
    )))
}

pub(crate) async fn jwk_delete(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(p): Path<KidPath>,
) -> Result<StatusCode, ApiError> {
    keys(&app, &who)?.delete(who.tenant, kid(&p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../jose/jws/sign` body: a tenant key by `kid`, or a key brought along as `jwk` (the
/// JOSE service as a stateless engine; nothing is stored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignReq {
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    kid: Option<Kid>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    jwk: Option<Value>,
    payload: String,
}

/// The key a request names: exactly one of `kid` and `jwk`.
enum KeyRef {
    Tenant(Kid),
    Brought(Box<cryptoutil_protocols::jose::Jwk>),
}

fn key_ref(kid: Option<Kid>, jwk: Option<&Value>) -> Result<KeyRef, ApiError> {
    match (kid, jwk) {
        (Some(kid), None) => Ok(KeyRef::Tenant(kid)),
        (None, Some(jwk)) => Ok(KeyRef::Brought(Box::new(engine::key(jwk)?))),
        _ => Err(ApiError::BadRequest {
            reason: "give exactly one of kid and jwk".into(),
        }),
    }
}

pub(crate) async fn jws_sign_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<SignReq>,
) -> Result<Json<Value>, ApiError> {
    let payload = decode(&req.payload, "payload")?;
    let jws = match key_ref(req.kid, req.jwk.as_ref())? {
        KeyRef::Tenant(kid) => keys(&app, &who)?.sign(who.tenant, kid, payload).await?,
        KeyRef::Brought(jwk) => {
            who.require_scope(Scope::Jose)?;
            engine::sign(&jwk, &payload)?
        }
    };
    Ok(Json(json!({ "jws": jws })))
}

/// `POST .../jose/jws/verify` body: the tenant key the header's `kid` names, or `jwk`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyReq {
    jws: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    jwk: Option<Value>,
}

/// A verification's answer: 200 with the payload, or 400 `{"valid": false}` for a signature
/// that does not verify.
fn verified(
    result: Result<cryptoutil_protocols::jose::jws::Verified, cryptoutil_actors::Error>,
) -> Result<Json<Value>, ApiError> {
    let v = result.map_err(ApiError::verification_by_kid)?;
    Ok(Json(
        json!({ "valid": true, "kid": v.kid, "alg": v.alg.as_str(), "payload": b64::encode(&v.payload) }),
    ))
}

pub(crate) async fn jws_verify_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<VerifyReq>,
) -> Result<Json<Value>, ApiError> {
    match req.jwk {
        None => verified(keys(&app, &who)?.verify(who.tenant, req.jws).await),
        Some(jwk) => {
            who.require_scope(Scope::Jose)?;
            verified(engine::key(&jwk).and_then(|k| engine::verify(&k, &req.jws)))
        }
    }
}

/// `POST .../jose/jwe/encrypt` body: to a tenant key by `kid`, or to `jwk`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptReq {
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    kid: Option<Kid>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    jwk: Option<Value>,
    plaintext: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    enc: Option<String>,
}

pub(crate) async fn jwe_encrypt_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<EncryptReq>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = Zeroizing::new(decode(&req.plaintext, "plaintext")?);
    let enc = enc_param(req.enc.as_deref())?;
    let jwe = match key_ref(req.kid, req.jwk.as_ref())? {
        KeyRef::Tenant(kid) => {
            keys(&app, &who)?
                .encrypt(who.tenant, kid, enc, plaintext)
                .await?
        }
        KeyRef::Brought(jwk) => {
            who.require_scope(Scope::Jose)?;
            engine::encrypt(&jwk, enc.unwrap_or(ContentAlg::A256GCM), &plaintext)?
        }
    };
    Ok(Json(json!({ "jwe": jwe })))
}

/// `POST .../jose/jwe/decrypt` body: with the tenant key the header's `kid` names, or with
/// `jwk` (and `enc`, default A256GCM: the only content algorithm accepted).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecryptReq {
    jwe: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    jwk: Option<Value>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    enc: Option<String>,
}

pub(crate) async fn jwe_decrypt_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<DecryptReq>,
) -> Result<Json<Value>, ApiError> {
    let plaintext = match (req.jwk, enc_param(req.enc.as_deref())?) {
        (None, None) => keys(&app, &who)?.decrypt(who.tenant, req.jwe).await?,
        (None, Some(_)) => {
            return Err(ApiError::BadRequest {
                reason: "enc goes with jwk (a tenant key's JWE names its own)".into(),
            })
        }
        (Some(jwk), enc) => {
            who.require_scope(Scope::Jose)?;
            let key = engine::key(&jwk)?;
            engine::decrypt(&key, enc.unwrap_or(ContentAlg::A256GCM), &req.jwe)?
        }
    };
    Ok(Json(json!({ "plaintext": b64::encode(&plaintext) })))
}

/// `POST .../jose/jwt/sign` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSignReq {
    kid: Kid,
    claims: Claims,
}

pub(crate) async fn jwt_sign_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<JwtSignReq>,
) -> Result<Json<Value>, ApiError> {
    let jwt = keys(&app, &who)?
        .jwt_sign(who.tenant, req.kid, req.claims)
        .await?;
    Ok(Json(json!({ "jwt": jwt })))
}

/// `POST .../jose/jwt/verify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtVerifyReq {
    jwt: String,
}

pub(crate) async fn jwt_verify_post(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<JwtVerifyReq>,
) -> Result<Response, ApiError> {
    let now = cryptoutil_actors::now_unix();
    match keys(&app, &who)?.jwt_verify(who.tenant, req.jwt, now).await {
        Ok(claims) => Ok(Json(json!({ "valid": true, "claims": claims })).into_response()),
        Err(e @ (cryptoutil_actors::Error::Jose(_) | cryptoutil_actors::Error::KeyNotFound)) => {
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({ "valid": false, "reason": e.to_string() })),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The OpenAPI document of the JOSE API (checked in at `http/openapi/jose.yaml`).
pub const OPENAPI: &str = include_str!("../../openapi/jose.yaml");
