//! The EST server (RFC 7030) at `/.well-known/est/` (label `default`) and
//! `/.well-known/est/<label>/`: `cacerts`, `simpleenroll`, `simplereenroll`, `serverkeygen`
//! and `csrattrs`.
//! Public routes because each carries its own authentication: HTTP Basic with an RA
//! enrollment secret (`reference:secret`), an OAuth bearer token with scope `ca` of the
//! label's tenant, or the TLS client certificate a label's CA issued (the only way to
//! `simplereenroll`). Bodies are base64 DER; errors are `text/plain` with the reason.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cryptoutil_actors::ca::ra::{Approval, Enrolled, Enrollee, LabelRecord, RETRY_AFTER};
use cryptoutil_actors::ca::CasHandle;
use cryptoutil_actors::caller::Caller;
use cryptoutil_actors::{Error, Scope};
use cryptoutil_protocols::{ca as pki_ca, est, oauth};

use super::api::handle;
use crate::auth::{bearer_token, several_authorizations, PrincipalExt, Scheme};
use crate::extract::media_type_is;
use crate::state::AppState;
use crate::tls::PeerCertificates;

/// The label of `/.well-known/est/<op>` (RFC 7030 §3.2.2: the CA's default).
pub const DEFAULT_LABEL: &str = "default";

/// `Content-Transfer-Encoding` (RFC 7030 §4: EST bodies are base64), which `http` has no
/// constant for.
const CONTENT_TRANSFER_ENCODING: header::HeaderName =
    header::HeaderName::from_static("content-transfer-encoding");

/// Most serverkeygen keys made at once (RSA 4096 takes up to seconds of a core); more are
/// answered 503 with `Retry-After`.
static KEY_GENERATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// An EST failure: a status and a plain-text reason.
pub(crate) struct EstError(StatusCode, String);

impl IntoResponse for EstError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::UNAUTHORIZED {
            // A challenge without a body: clients answer it with credentials and do not read
            // one (BouncyCastle's EST client fails on a 401 body it has not read). The reason
            // stays in the log and the audit record.
            tracing::debug!(reason = %self.1, "EST client not authenticated");
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"cryptoutil EST\", charset=\"UTF-8\""),
                )],
            )
                .into_response();
        }
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

impl From<Error> for EstError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::NotFound { .. } | Error::KeyNotFound => StatusCode::NOT_FOUND,
            Error::Refused(_) | Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            _ => {
                // The API's mapping logs it and answers a generic reason.
                let answer = crate::error::ApiError::Actor(e).into_response();
                return EstError(answer.status(), "the CA could not answer".into());
            }
        };
        EstError(status, e.to_string())
    }
}

fn unauthorized(why: &str) -> EstError {
    EstError(StatusCode::UNAUTHORIZED, why.to_owned())
}

/// The CA's handle (a service without the CA answers 404).
fn cas(app: &AppState) -> Result<CasHandle, EstError> {
    handle(app).map_err(|_| EstError(StatusCode::NOT_FOUND, "no CA here".into()))
}

async fn label(app: &AppState, name: &str) -> Result<LabelRecord, EstError> {
    cas(app)?
        .label(name)
        .await
        .map_err(|_| EstError(StatusCode::NOT_FOUND, format!("no EST label {name:?}")))
}

/// A certs-only CMS answer (`application/pkcs7-mime; smime-type=certs-only`, base64).
fn certs_only(message: &[u8]) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/pkcs7-mime; smime-type=certs-only",
            ),
            (CONTENT_TRANSFER_ENCODING, "base64"),
        ],
        est::body(message),
    )
        .into_response()
}

async fn cacerts(app: AppState, name: &str) -> Result<Response, EstError> {
    let label = label(&app, name).await?;
    let chain = cas(&app)?.label_ca(&label).await?.issued_chain();
    Ok(certs_only(&est::certs_only_message(
        chain.iter().map(|c| c.0.as_slice()),
    )))
}

async fn csrattrs(app: AppState, name: &str) -> Result<Response, EstError> {
    let label = label(&app, name).await?;
    let key = cas(&app)?.label_ca(&label).await?.key;
    Ok((
        [
            (header::CONTENT_TYPE, "application/csrattrs"),
            (CONTENT_TRANSFER_ENCODING, "base64"),
        ],
        est::body(&est::csr_attrs(key)),
    )
        .into_response())
}

/// Who enrolls: an enrollment secret (Basic), a client with scope `ca` (Bearer), or the
/// holder of the TLS client certificate (required to renew).
async fn enrollee(
    app: &AppState,
    headers: &HeaderMap,
    peer: Option<&PeerCertificates>,
    renewal: bool,
) -> Result<Enrollee, EstError> {
    if several_authorizations(headers) {
        return Err(unauthorized("one Authorization header at most"));
    }
    let leaf = peer.and_then(|p| p.0.first()).map(|c| c.as_ref().to_vec());
    if renewal {
        // RFC 7030 §4.2.2: the certificate being renewed authenticates the renewal.
        return leaf
            .map(Enrollee::Certificate)
            .ok_or_else(|| unauthorized("renewal needs the TLS client certificate it renews"));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return leaf.map(Enrollee::Certificate).ok_or_else(|| {
            unauthorized("an enrollment secret (Basic), a bearer token or a client certificate")
        });
    };
    let text = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    // The OAuth parser (RFC 6749 §2.3.1 form-decodes both halves): references and secrets are
    // base64url, which form decoding leaves as they are.
    if let Some((reference, secret)) = oauth::basic_credentials(text) {
        return Ok(Enrollee::Secret { reference, secret });
    }
    if text
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
    {
        return Err(unauthorized("malformed Basic credentials"));
    }
    match bearer_token(headers) {
        Some(Ok((Scheme::Bearer, token))) => {
            let principal = app
                .auth
                .bearer(token)
                .await
                .map_err(|_| unauthorized("invalid or expired bearer token"))?;
            // A sender-constrained token is good only with its proof.
            let bound_ok = principal.jkt.is_none()
                && principal.x5t.as_ref().is_none_or(|x5t| {
                    peer.and_then(PeerCertificates::thumbprint).as_ref() == Some(x5t)
                });
            if !bound_ok {
                return Err(unauthorized(
                    "this token is bound to a key this request does not prove",
                ));
            }
            principal
                .require_scope(Scope::Ca)
                .map_err(|_| EstError(StatusCode::FORBIDDEN, "the token lacks scope ca".into()))?;
            Ok(Enrollee::Client(Caller {
                tenant: principal.tenant.clone(),
                subject: principal.subject.clone(),
            }))
        }
        _ => Err(unauthorized("Authorization: Basic or Bearer")),
    }
}

/// The checks every enrollment starts with: the label, who asks, the media type; the request
/// (DER).
async fn enrollment(
    app: &AppState,
    name: &str,
    headers: &HeaderMap,
    peer: Option<&PeerCertificates>,
    body: &Bytes,
    renewal: bool,
) -> Result<(LabelRecord, Enrollee, Vec<u8>), EstError> {
    let label = label(app, name).await?;
    let who = enrollee(app, headers, peer, renewal).await?;
    if !media_type_is(headers, "application/pkcs10") {
        return Err(EstError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/pkcs10".into(),
        ));
    }
    let der = est::decode_body(body, est::MAX_REQUEST)
        .map_err(|e| EstError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((label, who, der))
}

/// The issued certificate first, then its chain (RFC 7030 §4.2.3 allows it; a server
/// presenting the certificate needs it), as a certs-only message.
fn issued_certs(issued: &cryptoutil_actors::ca::IssuedCert) -> Vec<u8> {
    est::certs_only_message(
        std::iter::once(&issued.cert.certificate)
            .chain(issued.chain.iter())
            .map(|c| c.0.as_slice()),
    )
}

async fn enroll(
    app: AppState,
    name: &str,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
    renewal: bool,
) -> Result<Response, EstError> {
    let peer = peer.as_ref().map(|e| &e.0);
    let (label, who, der) = enrollment(&app, name, &headers, peer, &body, renewal).await?;
    match cas(&app)?.enroll(&label, who, der, "est").await? {
        Enrolled::Issued(issued) => Ok(certs_only(&issued_certs(&issued))),
        // RFC 7030 §4.2.3: 202 and Retry-After, no body (clients do not read one); the
        // client sends the same request again later.
        Enrolled::Pending { id } => {
            tracing::debug!(request = %id, "EST request waits for the RA");
            Ok((
                StatusCode::ACCEPTED,
                [(header::RETRY_AFTER, RETRY_AFTER.to_string())],
            )
                .into_response())
        }
        Enrolled::Rejected { reason } => Err(rejected(&reason)),
    }
}

fn rejected(reason: &str) -> EstError {
    EstError(
        StatusCode::FORBIDDEN,
        format!("the RA rejected this request: {reason}"),
    )
}

/// `/serverkeygen` (RFC 7030 §4.4): the CA makes the key. The client's request names the
/// subject and subject alternative names and, signed by the client's key, proves it holds
/// that key; the new key (of the same kind) is certified through the RA like any request and
/// returned only sealed to the request's key (RFC 7030 §4.4.2's asymmetric case, the request's
/// key identifying it), never in the clear and never kept. A label with manual approval is
/// refused: the key would have to wait in the CA for the RA's decision.
async fn serverkeygen(
    app: AppState,
    name: &str,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
) -> Result<Response, EstError> {
    let peer = peer.as_ref().map(|e| &e.0);
    let (label, who, der) = enrollment(&app, name, &headers, peer, &body, false).await?;
    if label.approval == Approval::Manual {
        return Err(EstError(
            StatusCode::BAD_REQUEST,
            format!(
                "label {:?} waits for the RA: serverkeygen needs automatic approval (a key \
                 made here does not wait in the CA)",
                label.label
            ),
        ));
    }
    // Nothing is read and no key made for a caller who cannot enroll here.
    let cas = cas(&app)?;
    cas.vouch(&label, &who).await?;
    let request =
        pki_ca::csr::parse(&der).map_err(|e| EstError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Ok(_permit) = KEY_GENERATIONS.try_acquire() else {
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many keys are being made: ask again shortly",
        )
            .into_response());
    };
    // Key generation (RSA: up to seconds) off the async task; the key is sealed before
    // anything is issued, so a key that cannot be delivered is never certified.
    let made = tokio::task::spawn_blocking(move || {
        let (key, csr) = pki_ca::server_request_like(&request).map_err(|e| e.to_string())?;
        let sealed = est::sealed_key(&key, &request.spki_der).map_err(|e| e.to_string())?;
        Ok::<_, String>((sealed, csr))
    })
    .await;
    let Ok(Ok((sealed, csr))) = made else {
        if let Ok(Err(e)) = made {
            tracing::warn!(error = %e, "EST serverkeygen could not make or seal a key");
        }
        return Err(EstError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the key could not be made".into(),
        ));
    };
    match cas.enroll(&label, who, csr, "est").await? {
        Enrolled::Issued(issued) => Ok((
            [
                (header::CONTENT_TYPE, est::SERVER_KEY_MEDIA_TYPE),
                (header::CACHE_CONTROL, "no-store"),
            ],
            est::server_key_body(&sealed, &issued_certs(&issued)),
        )
            .into_response()),
        Enrolled::Pending { id } => {
            // Not reached: the label (read above) issues at once. Should it queue, the
            // request is one nobody holds the key of: the RA rejects it.
            tracing::warn!(request = %id, "an EST serverkeygen request went to the RA");
            Err(EstError(
                StatusCode::CONFLICT,
                "the request went to the RA, and its key was not kept".into(),
            ))
        }
        Enrolled::Rejected { reason } => Err(rejected(&reason)),
    }
}

/// The label a request names: `<label>` of `/.well-known/est/<label>/<op>`, or `default` for
/// `/.well-known/est/<op>` (read from the path: the stack router captures the parameters).
fn label_of(uri: &Uri) -> String {
    let rest = uri.path().trim_start_matches("/.well-known/est/");
    match rest.split_once('/') {
        Some((label, _op)) => label.to_owned(),
        None => DEFAULT_LABEL.to_owned(),
    }
}

pub(crate) async fn cacerts_get(
    State(app): State<AppState>,
    uri: Uri,
) -> Result<Response, EstError> {
    cacerts(app, &label_of(&uri)).await
}

pub(crate) async fn csrattrs_get(
    State(app): State<AppState>,
    uri: Uri,
) -> Result<Response, EstError> {
    csrattrs(app, &label_of(&uri)).await
}

pub(crate) async fn simpleenroll_post(
    State(app): State<AppState>,
    uri: Uri,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EstError> {
    enroll(app, &label_of(&uri), headers, peer, body, false).await
}

pub(crate) async fn simplereenroll_post(
    State(app): State<AppState>,
    uri: Uri,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EstError> {
    enroll(app, &label_of(&uri), headers, peer, body, true).await
}

pub(crate) async fn serverkeygen_post(
    State(app): State<AppState>,
    uri: Uri,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EstError> {
    serverkeygen(app, &label_of(&uri), headers, peer, body).await
}
