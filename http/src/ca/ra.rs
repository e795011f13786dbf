//! The RA's API, under both `/service/api/v1/ca` and `/browser/api/v1/ca`: enrollment labels
//! (scope `ca`), enrollment secrets and the decisions on queued requests (scope `ca-ra`), each
//! in the caller's tenant.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoutil_actors::ca::ra::{
    Approval, LabelRecord, NewLabel, NewSecret, RequestRecord, RequestStatus,
};
use cryptoutil_actors::ca::CasHandle;
use cryptoutil_actors::caller::Caller;
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ca::csr::Format;
use cryptoutil_protocols::ids::CaId;
use cryptoutil_protocols::pki::csr_pem;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{duration, refused, scoped, Ca};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The RA as one holder of the `ca-ra` scope sees it.
pub(crate) struct Ra {
    cas: CasHandle,
    who: Caller,
}

impl FromRequestParts<AppState> for Ra {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let (cas, who) = scoped(parts, app, Scope::CaRa)?;
        Ok(Ra { cas, who })
    }
}

fn label_json(label: &LabelRecord) -> Value {
    json!({
        "label": label.label,
        "ca": label.ca,
        "profile": label.profile,
        "approval": label.approval,
        "created_at": label.created_at,
        "created_by": label.created_by,
    })
}

fn request_json(request: &RequestRecord) -> Value {
    use base64::Engine as _;
    // A PKCS#10 request as PEM; a CRMF one (CMP) as base64 of its DER.
    let (key, request_text) = match request.format {
        Format::Pkcs10 => ("csr", csr_pem(&request.csr.0)),
        Format::Crmf => (
            "crmf",
            base64::engine::general_purpose::STANDARD.encode(&request.csr.0),
        ),
    };
    let mut out = json!({
        "id": request.id,
        "label": request.label,
        "ca": request.ca,
        "profile": request.profile,
        "protocol": request.protocol,
        "subject": request.subject,
        "requested_by": request.requested_by,
        "created_at": request.created_at,
        "status": request.status,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "reason": request.reason,
        "serial": request.serial,
    });
    if let Some(map) = out.as_object_mut() {
        map.insert(key.to_owned(), Value::String(request_text));
    }
    out
}

/// `POST /ca/labels` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelReq {
    label: String,
    ca: String,
    profile: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    approval: Option<String>,
}

pub(crate) async fn labels_post(
    ca: Ca,
    JsonBody(req): JsonBody<LabelReq>,
) -> Result<Response, ApiError> {
    let approval = match req.approval.as_deref() {
        None | Some("auto") => Approval::Auto,
        Some("manual") => Approval::Manual,
        Some(_) => return Err(refused("approval", "auto or manual")),
    };
    let id = CaId::parse(&req.ca).map_err(|_| refused("ca", "no such CA"))?;
    let new = NewLabel {
        label: req.label,
        ca: id,
        profile: req.profile,
        approval,
    };
    let label = ca.cas.create_label(&ca.who, new).await?;
    Ok((StatusCode::CREATED, Json(label_json(&label))).into_response())
}

pub(crate) async fn labels_get(ca: Ca) -> Result<Json<Value>, ApiError> {
    let labels = ca.cas.labels(&ca.who).await?;
    Ok(Json(
        json!({ "labels": labels.iter().map(label_json).collect::<Vec<_>>() }),
    ))
}

/// `POST /ca/ra/secrets` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretReq {
    label: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    subject: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    ttl: Option<String>,
}

/// A one-time enrollment secret: `{"reference", "secret", "expires_at"}`, shown this once.
pub(crate) async fn secrets_post(
    ra: Ra,
    JsonBody(req): JsonBody<SecretReq>,
) -> Result<Response, ApiError> {
    let new = NewSecret {
        label: req.label,
        subject: req.subject,
        ttl: duration("ttl", req.ttl.as_deref())?,
    };
    let made = ra.cas.create_secret(&ra.who, new).await?;
    let body = json!({
        "reference": made.reference,
        "secret": made.secret.as_str(),
        "expires_at": made.expires_at,
    });
    // Not cached: both stacks answer `Cache-Control: no-store` unless a handler says otherwise.
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `?status=pending|issued|rejected` of the request listing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestQuery {
    #[serde(default)]
    status: Option<String>,
}

pub(crate) async fn requests_get(
    ra: Ra,
    Query(q): Query<RequestQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| ApiError::BadRequest {
            reason: "status: one of pending, issued, rejected".into(),
        })?),
    };
    let requests = ra.cas.requests(&ra.who, status).await?;
    Ok(Json(
        json!({ "requests": requests.iter().map(request_json).collect::<Vec<_>>() }),
    ))
}

/// The `{id}` of a request.
#[derive(Deserialize)]
pub(crate) struct RequestPath {
    id: String,
}

pub(crate) async fn request_get(
    ra: Ra,
    Path(p): Path<RequestPath>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(request_json(&ra.cas.request(&ra.who, &p.id).await?)))
}

/// `POST /ca/ra/requests/{id}/approve` body (empty).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveReq {}

pub(crate) async fn approve_post(
    ra: Ra,
    Path(p): Path<RequestPath>,
    JsonBody(ApproveReq {}): JsonBody<ApproveReq>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(request_json(&ra.cas.approve(&ra.who, &p.id).await?)))
}

/// `POST /ca/ra/requests/{id}/reject` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectReq {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn reject_post(
    ra: Ra,
    Path(p): Path<RequestPath>,
    JsonBody(req): JsonBody<RejectReq>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(request_json(
        &ra.cas.reject(&ra.who, &p.id, req.reason).await?,
    )))
}
