//! The CA API, under both `/service/api/v1/ca` and `/browser/api/v1/ca`: CAs (roots and
//! subordinates), certificates issued from PKCS#10 requests under a profile, their revocation,
//! hold and release. Every route needs the `ca` scope and acts in the caller's tenant; another
//! tenant's CA is a 404, like a CA that does not exist. The distribution routes (a CA's
//! certificate and CRL, DER) are public: relying parties fetch them before they can trust
//! anything.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoutil_actors::ca::{
    CaRecord, CasHandle, CertPage, CertRecord, CertRequest, Der, NewCa, NewCert, Status,
};
use cryptoutil_actors::caller::Caller;
use cryptoutil_actors::Scope;
use cryptoutil_protocols::ca::{self, KeyType, Reason, Subject};
use cryptoutil_protocols::ids::CaId;
use cryptoutil_protocols::jose::Jwk;
use cryptoutil_protocols::pki::cert_pem;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Principal, PrincipalExt};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The OpenAPI document of the CA API (checked in at `http/openapi/ca.yaml`).
pub const OPENAPI: &str = include_str!("../../openapi/ca.yaml");

/// The CA as one caller sees it: the handle, and who asks (its scope checked).
pub(crate) struct Ca {
    pub(super) cas: CasHandle,
    pub(super) who: Caller,
}

pub(super) fn handle(app: &AppState) -> Result<CasHandle, ApiError> {
    app.actors
        .get::<CasHandle>()
        .cloned()
        .ok_or(ApiError::NotFound)
}

/// The CA's handle and the authenticated caller, who must hold `scope`.
pub(super) fn scoped(
    parts: &Parts,
    app: &AppState,
    scope: Scope,
) -> Result<(CasHandle, Caller), ApiError> {
    let who = Principal::of(parts)?;
    who.require_scope(scope)?;
    let caller = Caller {
        tenant: who.tenant.clone(),
        subject: who.subject.clone(),
    };
    Ok((handle(app)?, caller))
}

impl FromRequestParts<AppState> for Ca {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let (cas, who) = scoped(parts, app, Scope::Ca)?;
        Ok(Ca { cas, who })
    }
}

/// The raw path parameters (a struct: the stack router captures its own `{*rest}`).
#[derive(Deserialize)]
struct CaPath {
    ca: String,
    #[serde(default)]
    serial: Option<String>,
}

/// The `{ca}` (and `{serial}`) path parameters, parsed: a malformed one names nothing (404).
pub(crate) struct Target {
    ca: CaId,
    serial: Option<String>,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Path(p) = Path::<CaPath>::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let ca = CaId::parse(&p.ca).map_err(|_| ApiError::NotFound)?;
        let serial = match p.serial {
            Some(s) if ca::parse_serial(&s).is_none() => return Err(ApiError::NotFound),
            other => other,
        };
        Ok(Target { ca, serial })
    }
}

impl Target {
    fn serial(&self) -> Result<&str, ApiError> {
        self.serial.as_deref().ok_or(ApiError::NotFound)
    }
}

pub(super) fn pems(chain: &[Der]) -> Vec<String> {
    chain.iter().map(|c| cert_pem(&c.0)).collect()
}

fn ca_json(ca: &CaRecord) -> Value {
    json!({
        "id": ca.id,
        "name": ca.name,
        "key": ca.key,
        "parent": ca.parent,
        "subject": ca.subject,
        "serial": ca.serial,
        "not_before": ca.not_before,
        "not_after": ca.not_after,
        "created_at": ca.created_at,
        "offline": ca.offline,
        "certificate": cert_pem(&ca.certificate.0),
        "chain": pems(&ca.chain),
    })
}

/// A certificate as the API shows it; with `chain`, its chain (the issuing CA first).
pub(super) fn cert_json(cert: &CertRecord, chain: Option<&[Der]>) -> Value {
    let mut value = json!({
        "serial": cert.serial,
        "ca": cert.ca,
        "profile": cert.profile,
        "subject": cert.subject,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "issued_at": cert.issued_at,
        "requested_by": cert.requested_by,
        "status": cert.status(cryptoutil_actors::now_unix()),
        "revocation": cert.revocation,
        "certificate": cert_pem(&cert.certificate.0),
    });
    if let (Some(chain), Some(map)) = (chain, value.as_object_mut()) {
        map.insert("chain".into(), json!(pems(chain)));
    }
    value
}

/// A CA request's refusal as the API answers it (400, the field named).
fn refusal(e: ca::CaError) -> ApiError {
    ApiError::Actor(cryptoutil_actors::Error::Refused(e))
}

/// An optional duration field (`90d`, `10y`), parsed.
pub(super) fn duration(
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<std::time::Duration>, ApiError> {
    text.map(|v| ca::parse_validity(field, v))
        .transpose()
        .map_err(refusal)
}

/// The request body's type must be `kind` (a DER protocol message, not JSON).
fn require_type(headers: &axum::http::HeaderMap, kind: &str) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given.eq_ignore_ascii_case(kind) {
        Ok(())
    } else {
        Err(ApiError::BadRequest {
            reason: format!("Content-Type must be {kind}"),
        })
    }
}

pub(super) fn refused(field: &'static str, reason: impl Into<String>) -> ApiError {
    refusal(ca::CaError {
        field,
        reason: reason.into(),
    })
}

/// `POST /ca/cas` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaReq {
    name: String,
    subject: Subject,
    key: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    parent: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    validity: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    path_len: Option<u8>,
    #[serde(default)]
    permitted_dns: Vec<String>,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    offline_parent: bool,
}

pub(crate) async fn cas_post(ca: Ca, JsonBody(req): JsonBody<CaReq>) -> Result<Response, ApiError> {
    let key: KeyType = serde_json::from_value(Value::String(req.key))
        .map_err(|_| refused("key", "one of P-256, P-384, RSA-3072, RSA-4096"))?;
    // A parent that is not even an id is an unknown CA, like one that does not exist.
    let parent = match req.parent {
        None => None,
        Some(p) => Some(CaId::parse(&p).map_err(|_| refused("parent", "no such CA"))?),
    };
    let validity = duration("validity", req.validity.as_deref())?;
    let new = NewCa {
        name: req.name,
        subject: req.subject,
        key,
        parent,
        validity,
        path_len: req.path_len,
        permitted_dns: req.permitted_dns,
        policies: req.policies,
        offline_parent: req.offline_parent,
    };
    let record = ca.cas.create(&ca.who, new).await?;
    Ok((StatusCode::CREATED, Json(ca_json(&record))).into_response())
}

/// The import key's public half: wrap a CA to import (a PEM bundle of its certificate, the
/// certificates above it and its PKCS#8 key) as a JWE (RSA-OAEP-256, A256GCM) to it.
pub(crate) async fn importkey_get(ca: Ca) -> Result<Json<Value>, ApiError> {
    let key = ca.cas.import_key().await?;
    let public = key
        .to_public_value()
        .map_err(|e| ApiError::Actor(e.into()))?;
    Ok(Json(json!({ "jwk": public })))
}

/// `POST /ca/cas/import` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportReq {
    name: String,
    jwe: String,
}

pub(crate) async fn import_post(
    ca: Ca,
    JsonBody(req): JsonBody<ImportReq>,
) -> Result<Response, ApiError> {
    let record = ca.cas.import(&ca.who, req.name, req.jwe).await?;
    Ok((StatusCode::CREATED, Json(ca_json(&record))).into_response())
}

pub(crate) async fn cas_get(ca: Ca) -> Result<Json<Value>, ApiError> {
    let cas = ca.cas.list(&ca.who).await?;
    Ok(Json(
        json!({ "cas": cas.iter().map(ca_json).collect::<Vec<_>>() }),
    ))
}

/// The profiles certificates are issued under, built-in and the tenant's:
/// `{"profiles": [...]}`.
pub(crate) async fn profiles_get(ca: Ca) -> Result<Json<Value>, ApiError> {
    let profiles: Vec<ca::profile::View> = ca
        .cas
        .profiles(&ca.who)
        .await?
        .iter()
        .map(ca::Profile::view)
        .collect();
    Ok(Json(json!({ "profiles": profiles })))
}

/// Defines a profile in the caller's tenant: 201 with its view.
pub(crate) async fn profiles_post(
    ca: Ca,
    JsonBody(spec): JsonBody<ca::profile::ProfileSpec>,
) -> Result<Response, ApiError> {
    let profile = ca.cas.create_profile(&ca.who, spec).await?;
    Ok((StatusCode::CREATED, Json(json!(profile.view()))).into_response())
}

/// An empty JSON body (`{}`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

/// Takes a CA offline: its key leaves memory and signs only on explicit operator actions.
pub(crate) async fn offline_post(
    ca: Ca,
    target: Target,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(ca_json(
        &ca.cas.set_offline(&ca.who, &target.ca, true).await?,
    )))
}

/// Brings a CA back online.
pub(crate) async fn online_post(
    ca: Ca,
    target: Target,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(ca_json(
        &ca.cas.set_offline(&ca.who, &target.ca, false).await?,
    )))
}

/// `POST .../crl` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CrlReq {
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    lifetime: Option<String>,
}

/// Signs the CA's CRL now (an offline CA's key is used for it): `{number, this_update,
/// next_update}`.
pub(crate) async fn crl_post(
    ca: Ca,
    target: Target,
    JsonBody(req): JsonBody<CrlReq>,
) -> Result<Json<Value>, ApiError> {
    let lifetime = duration("lifetime", req.lifetime.as_deref())?;
    let crl = ca.cas.sign_crl(&ca.who, &target.ca, lifetime).await?;
    Ok(Json(json!({
        "number": crl.number,
        "this_update": crl.this_update,
        "next_update": crl.next_update,
    })))
}

pub(crate) async fn ca_get(ca: Ca, target: Target) -> Result<Json<Value>, ApiError> {
    Ok(Json(ca_json(&ca.cas.get(&ca.who, &target.ca).await?)))
}

/// `POST .../certificates` body: a `csr`, or a key the service makes (`key`, `subject`,
/// `subject_alt_names`, and the caller's public `jwk` the private key is encrypted to).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertReq {
    profile: String,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    csr: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    validity: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    key: Option<String>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    subject: Option<Subject>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    subject_alt_names: Option<ca::Names>,
    #[serde(default, deserialize_with = "cryptoutil_actors::serde_ext::non_null")]
    jwk: Option<Value>,
}

impl CertReq {
    /// What the certificate certifies, from either form of the body.
    fn request(&mut self) -> Result<CertRequest, ApiError> {
        match (self.csr.take(), self.key.take(), self.jwk.take()) {
            (Some(csr), None, None)
                if self.subject.is_none() && self.subject_alt_names.is_none() =>
            {
                // PEM as it is; anything else is base64 of DER.
                let csr = csr.trim();
                if csr.starts_with("-----BEGIN") {
                    Ok(CertRequest::Csr(csr.as_bytes().to_vec()))
                } else {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(csr)
                        .map(CertRequest::Csr)
                        .map_err(|_| refused("csr", "PEM, or base64 of DER"))
                }
            }
            (None, Some(key), Some(jwk)) => {
                let key: KeyType = serde_json::from_value(Value::String(key))
                    .map_err(|_| refused("key", "one of P-256, P-384, RSA-3072, RSA-4096"))?;
                let recipient =
                    Jwk::from_value(&jwk).map_err(|e| refused("jwk", format!("not a JWK: {e}")))?;
                let subject = self
                    .subject
                    .take()
                    .ok_or_else(|| refused("subject", "required with a server-made key"))?;
                Ok(CertRequest::ServerKey {
                    key,
                    subject,
                    names: self.subject_alt_names.take().unwrap_or_default(),
                    recipient: Box::new(recipient),
                })
            }
            _ => Err(refused(
                "csr",
                "send a csr, or key, subject, subject_alt_names and jwk for a key made here",
            )),
        }
    }
}

pub(crate) async fn certificates_post(
    ca: Ca,
    target: Target,
    JsonBody(mut req): JsonBody<CertReq>,
) -> Result<Response, ApiError> {
    let validity = duration("validity", req.validity.as_deref())?;
    let new = NewCert {
        request: req.request()?,
        profile: req.profile,
        validity,
    };
    let issued = ca.cas.issue(&ca.who, &target.ca, new).await?;
    let mut value = cert_json(&issued.cert, Some(&issued.chain));
    if let (Some(jwe), Some(map)) = (issued.key_jwe, value.as_object_mut()) {
        map.insert("key_jwe".into(), json!(jwe));
    }
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// `?status=valid|revoked|on_hold|expired` (empty: any), `after=<serial>`, `limit=1..1000`
/// of a certificate listing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Records a listing looks at per request (a status filter may skip many).
const CERT_SCAN: usize = 10_000;

/// A page of the CA's certificates in serial order: `{"certificates", "next"}` (`next` is the
/// `after` of the next page, null at the end).
pub(crate) async fn certificates_get(
    ca: Ca,
    target: Target,
    Query(q): Query<CertQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| ApiError::BadRequest {
            reason: "status: one of valid, revoked, on_hold, expired".into(),
        })?),
    };
    let limit = match q.limit.unwrap_or(1000) {
        n @ 1..=1000 => n,
        _ => {
            return Err(ApiError::BadRequest {
                reason: "limit: 1 to 1000".into(),
            })
        }
    };
    let after = match q.after {
        Some(a) if ca::parse_serial(&a).is_none() => {
            return Err(ApiError::BadRequest {
                reason: "after: a serial (lowercase hex)".into(),
            })
        }
        other => other,
    };
    let page = CertPage {
        status,
        after,
        limit,
        scan: CERT_SCAN,
    };
    let (certs, next) = ca.cas.certificates(&ca.who, &target.ca, page).await?;
    let certs: Vec<Value> = certs.iter().map(|c| cert_json(c, None)).collect();
    Ok(Json(json!({ "certificates": certs, "next": next })))
}

pub(crate) async fn certificate_get(ca: Ca, target: Target) -> Result<Json<Value>, ApiError> {
    let cert = ca
        .cas
        .certificate(&ca.who, &target.ca, target.serial()?)
        .await?;
    let issuer = ca.cas.get(&ca.who, &target.ca).await?;
    let chain: Vec<Der> = std::iter::once(issuer.certificate)
        .chain(issuer.chain)
        .collect();
    Ok(Json(cert_json(&cert, Some(&chain))))
}

/// `POST .../revoke` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeReq {
    reason: String,
}

pub(crate) async fn revoke_post(
    ca: Ca,
    target: Target,
    JsonBody(req): JsonBody<RevokeReq>,
) -> Result<Json<Value>, ApiError> {
    let reason = Reason::parse(&req.reason).map_err(refusal)?;
    let cert = ca
        .cas
        .revoke(&ca.who, &target.ca, target.serial()?, Some(reason))
        .await?;
    Ok(Json(cert_json(&cert, None)))
}

/// `POST .../release` (body `{}`): a certificate on hold is valid again.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseReq {}

pub(crate) async fn release_post(
    ca: Ca,
    target: Target,
    JsonBody(ReleaseReq {}): JsonBody<ReleaseReq>,
) -> Result<Json<Value>, ApiError> {
    let cert = ca
        .cas
        .revoke(&ca.who, &target.ca, target.serial()?, None)
        .await?;
    Ok(Json(cert_json(&cert, None)))
}

/// Public: a CA's certificate, DER (`application/pkix-cert`, RFC 2585).
pub(crate) async fn ca_certificate_get(
    axum::extract::State(app): axum::extract::State<AppState>,
    target: Target,
) -> Result<Response, ApiError> {
    let der = handle(&app)?.ca_certificate(&target.ca).await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-cert")], der.0).into_response())
}

/// Public: a CA's current CRL, DER (`application/pkix-crl`, RFC 2585), cacheable until half
/// its lifetime has passed.
pub(crate) async fn crl_get(
    axum::extract::State(app): axum::extract::State<AppState>,
    target: Target,
) -> Result<Response, ApiError> {
    let crl = handle(&app)?.crl(&target.ca).await?;
    Ok(crl_answer(crl.this_update, crl.next_update, crl.der.0))
}

/// A CRL (complete or delta) of the CA's current set, cacheable until the set is signed anew
/// (half its lifetime).
fn crl_answer(this_update: u64, next_update: u64, der: Vec<u8>) -> Response {
    let max_age = (this_update + next_update.saturating_sub(this_update) / 2)
        .saturating_sub(cryptoutil_actors::now_unix());
    (
        [
            (header::CONTENT_TYPE, "application/pkix-crl".to_owned()),
            (header::CACHE_CONTROL, format!("public, max-age={max_age}")),
        ],
        der,
    )
        .into_response()
}

/// An OCSP answer (`application/ocsp-response`); a minute of caching (an answer is valid for
/// at least half of `ca.ocsp_lifetime`, and a revocation replaces cached ones at once).
fn ocsp_answer(der: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/ocsp-response"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        der,
    )
        .into_response()
}

/// Public: OCSP over POST (RFC 6960 Appendix A.1), a DER request of type
/// `application/ocsp-request`.
pub(crate) async fn ocsp_post(
    axum::extract::State(app): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_type(&headers, "application/ocsp-request")?;
    Ok(ocsp_answer(handle(&app)?.ocsp(&body).await))
}

/// The rest of an OCSP GET path: the request, base64 then URL-encoded.
#[derive(Deserialize)]
pub(crate) struct OcspPath {
    request: String,
}

/// Public: OCSP over GET, the request base64 (standard or URL-safe) in the path.
pub(crate) async fn ocsp_get(
    axum::extract::State(app): axum::extract::State<AppState>,
    Path(p): Path<OcspPath>,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let text = p.request.trim_end_matches('=');
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text));
    let cas = handle(&app)?;
    Ok(ocsp_answer(match der {
        Ok(der) => cas.ocsp(&der).await,
        Err(_) => ca::ocsp::refusal(ca::ocsp::Refusal::MalformedRequest),
    }))
}

/// Public: a time stamp (RFC 3161 over HTTP, §3.4) from CA `{ca}`'s TSA: a DER
/// `application/timestamp-query` in, an `application/timestamp-reply` out (a rejection for a
/// request the TSA does not take).
pub(crate) async fn tsa_post(
    axum::extract::State(app): axum::extract::State<AppState>,
    target: Target,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_type(&headers, "application/timestamp-query")?;
    let reply = handle(&app)?.stamp(&target.ca, &body).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        reply,
    )
        .into_response())
}

/// Public: a CA's current delta CRL, DER (the changes since the complete CRL its delta CRL
/// indicator names).
pub(crate) async fn delta_crl_get(
    axum::extract::State(app): axum::extract::State<AppState>,
    target: Target,
) -> Result<Response, ApiError> {
    let crl = handle(&app)?.crl(&target.ca).await?;
    let (_, der) = crl.delta.ok_or(ApiError::NotFound)?;
    Ok(crl_answer(crl.this_update, crl.next_update, der.0))
}
