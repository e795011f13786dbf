//! identity-authz's OAuth 2.1 endpoints: discovery (RFC 8414 and OpenID Connect Discovery), the
//! JWK Set, the token endpoint (client credentials; client_secret_basic, client_secret_post and
//! private_key_jwt),
//! introspection (RFC 7662) and revocation (RFC 7009), the last two for authenticated clients. Errors follow RFC 6749 §5.2: `{"error", "error_description"}`, 401 with
//! `WWW-Authenticate: Basic` for a failed client authentication, and `Cache-Control: no-store`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cryptoutil_actors::identity::authz::{AuthMethod, AuthzHandle, ClientAuth, TokenRequest};
use cryptoutil_protocols::jose::jwt;
use cryptoutil_protocols::oauth::{self, TokenError};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::errors::{bearer_refusal, BearerError, OAuthError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tls::PeerCertificates;

/// Discovery, RFC 8414.
pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
/// Discovery, OpenID Connect.
pub const OIDC_METADATA: &str = "/.well-known/openid-configuration";
/// The JWK Set of the token signing keys.
pub const JWKS: &str = cryptoutil_actors::federation::JWKS_PATH;
/// The token endpoint.
pub const TOKEN: &str = cryptoutil_actors::federation::TOKEN_PATH;
/// Token introspection (RFC 7662).
pub const INTROSPECT: &str = cryptoutil_actors::federation::INTROSPECT_PATH;
/// Token revocation (RFC 7009).
pub const REVOKE: &str = "/service/oauth2/v1/revoke";
/// Pushed authorization requests (RFC 9126).
pub const PAR: &str = "/service/oauth2/v1/par";
/// OpenID Connect userinfo (a bearer access token with `openid`, checked here, not by the gate:
/// its audience is the services, not identity-authz).
pub const USERINFO: &str = "/service/oauth2/v1/userinfo";
/// The authorization endpoint (a browser navigation).
pub const AUTHORIZE: &str = cryptoutil_actors::identity::authz::model::AUTHORIZE_PATH;
/// RP-initiated logout (a browser navigation).
pub const LOGOUT: &str = cryptoutil_actors::identity::authz::model::LOGOUT_PATH;

/// Largest token request body.
const MAX_FORM: usize = 16 * 1024;

fn authz(app: &AppState) -> Result<&AuthzHandle, ApiError> {
    app.actors.get::<AuthzHandle>().ok_or(ApiError::NotFound)
}

pub(crate) async fn metadata_get(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(authz(&app)?.metadata().await?))
}

pub(crate) async fn jwks_get(State(app): State<AppState>) -> Result<Response, ApiError> {
    let set = authz(&app)?.jwks().await?;
    Ok((
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        set.to_string(),
    )
        .into_response())
}

/// A refusal before the actor is asked.
type Refusal = OAuthError;

fn refusal(e: TokenError, why: &'static str) -> Refusal {
    OAuthError::Token(e, why)
}

/// The form parameters, each at most once (RFC 6749 §3.2).
fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, Zeroizing<String>)>, Refusal> {
    if !crate::pages::is_form(headers) || body.len() > MAX_FORM {
        return Err(refusal(
            TokenError::InvalidRequest,
            "the body must be application/x-www-form-urlencoded, at most 16 KiB",
        ));
    }
    let mut params: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if params.iter().any(|(n, _)| *n == name) {
            return Err(refusal(
                TokenError::InvalidRequest,
                "a parameter is repeated",
            ));
        }
        params.push((name.into_owned(), Zeroizing::new(value.into_owned())));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, Zeroizing<String>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// RFC 7523 §2.2's `client_assertion_type`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Exactly one client authentication method (RFC 6749 §2.3, RFC 7523 §2.2).
fn client_auth(
    headers: &HeaderMap,
    params: &[(String, Zeroizing<String>)],
    peer: Option<&PeerCertificates>,
) -> Result<ClientAuth, Refusal> {
    let certs = peer.map(|c| Arc::new(c.0.iter().map(|d| d.as_ref().to_vec()).collect::<Vec<_>>()));
    let basic = headers.get(header::AUTHORIZATION);
    let body_secret = param(params, "client_secret");
    let assertion = param(params, "client_assertion");
    let assertion_type = param(params, "client_assertion_type");
    let methods = [basic.is_some(), body_secret.is_some(), assertion.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(refusal(
            TokenError::InvalidRequest,
            "use one client authentication method",
        ));
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(JWT_BEARER) {
            return Err(refusal(TokenError::InvalidRequest,
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        return Ok(ClientAuth {
            client_id: param(params, "client_id").unwrap_or_default().to_owned(),
            secret: Zeroizing::new(assertion.to_owned()),
            method: AuthMethod::PrivateKeyJwt,
            certs: certs.clone(),
        });
    }
    match (basic, body_secret) {
        (Some(value), _) => {
            let (client_id, secret) = value
                .to_str()
                .ok()
                .and_then(oauth::basic_credentials)
                .ok_or(refusal(
                    TokenError::InvalidClient,
                    "client authentication failed",
                ))?;
            if param(params, "client_id").is_some_and(|id| id != client_id) {
                return Err(refusal(
                    TokenError::InvalidRequest,
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(ClientAuth {
                client_id,
                secret,
                method: AuthMethod::ClientSecretBasic,
                certs: certs.clone(),
            })
        }
        (None, Some(secret)) => Ok(ClientAuth {
            client_id: param(params, "client_id")
                .ok_or(refusal(TokenError::InvalidRequest, "client_id is missing"))?
                .to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
            method: AuthMethod::ClientSecretPost,
            certs: certs.clone(),
        }),
        // A public client names itself and proves nothing (RFC 6749 §2.1); only the code flow
        // with PKCE and rotated refresh tokens are open to it.
        (None, None) => match param(params, "client_id") {
            Some(id) => Ok(ClientAuth {
                client_id: id.to_owned(),
                secret: Zeroizing::new(String::new()),
                method: AuthMethod::None,
                certs: certs.clone(),
            }),
            None => Err(refusal(
                TokenError::InvalidClient,
                "client authentication is required",
            )),
        },
    }
}

/// Form parameters, zeroized on drop.
type Params = Vec<(String, Zeroizing<String>)>;

/// The form parameters and the client's credentials of a token-endpoint-like request.
fn form_and_client(
    headers: &HeaderMap,
    body: &[u8],
    peer: Option<&PeerCertificates>,
) -> Result<(Params, ClientAuth), Refusal> {
    let params = parse_form(headers, body)?;
    let client = client_auth(headers, &params, peer)?;
    Ok((params, client))
}

/// The client and the `token` parameter of an introspection or revocation request.
fn client_and_token(
    headers: &HeaderMap,
    body: &[u8],
    peer: Option<&PeerCertificates>,
) -> Result<(ClientAuth, Zeroizing<String>), Refusal> {
    let (params, client) = form_and_client(headers, body, peer)?;
    let token =
        param(&params, "token").ok_or(refusal(TokenError::InvalidRequest, "token is missing"))?;
    Ok((client, Zeroizing::new(token.to_owned())))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An introspection or revocation request: the asking client and the `token` parameter.
pub(crate) struct TokenOpRequest {
    authz: AuthzHandle,
    client: ClientAuth,
    token: Zeroizing<String>,
}

impl FromRequest<AppState> for TokenOpRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, OAuthError> {
        let authz = authz(app)?.clone();
        let peer = req.extensions().get::<PeerCertificates>().cloned();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, app)
            .await
            .map_err(|_| refusal(TokenError::InvalidRequest, "the body could not be read"))?;
        let (client, token) = client_and_token(&headers, &body, peer.as_ref())?;
        Ok(Self {
            authz,
            client,
            token,
        })
    }
}

pub(crate) async fn introspect_post(r: TokenOpRequest) -> Result<Response, OAuthError> {
    let claims = r.authz.introspect(r.client, r.token).await?;
    Ok(no_store(Json(claims).into_response()))
}

pub(crate) async fn revoke_post(r: TokenOpRequest) -> Result<Response, OAuthError> {
    r.authz.revoke(r.client, r.token).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// RFC 9126 §2: an authenticated client pushes its authorization request; 201 with the
/// `request_uri`, or an RFC 6749 §5.2-shaped error.
pub(crate) async fn par_post(
    State(app): State<AppState>,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let authz = authz(&app)?;
    let (params, client) = form_and_client(&headers, &body, peer.as_ref().map(|e| &e.0))?;
    let credentials = ["client_secret", "client_assertion", "client_assertion_type"];
    let request: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !credentials.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let (uri, expires_in) = authz.push(client, request).await?;
    let body = json!({ "request_uri": uri, "expires_in": expires_in });
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// `Authorization: Bearer <token>` of a userinfo request.
fn bearer(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| Zeroizing::new(token.trim().to_owned()))
}

pub(crate) async fn userinfo(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let authz = authz(&app)?;
    let token = bearer(&headers).ok_or(OAuthError::Bearer(BearerError::InvalidToken))?;
    let claims = authz.userinfo(token).await.map_err(bearer_refusal)?;
    Ok(no_store(Json(claims).into_response()))
}

pub(crate) async fn token_post(
    State(app): State<AppState>,
    peer: Option<Extension<PeerCertificates>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let authz = authz(&app)?;
    let (params, client) = form_and_client(&headers, &body, peer.as_ref().map(|e| &e.0))?;
    let dpop = crate::dpop::proof(&headers, &uri, "POST", None)
        .map_err(|why| refusal(TokenError::InvalidDpopProof, why))?;
    let secret = |name: &str| param(&params, name).map(|v| Zeroizing::new(v.to_owned()));
    let request = TokenRequest {
        grant_type: param(&params, "grant_type").unwrap_or_default().to_owned(),
        scope: param(&params, "scope").map(str::to_owned),
        resource: param(&params, "resource").map(str::to_owned),
        code: secret("code"),
        redirect_uri: param(&params, "redirect_uri").map(str::to_owned),
        code_verifier: secret("code_verifier"),
        refresh_token: secret("refresh_token"),
        dpop,
        client,
    };
    let grant = authz.token(request).await?;
    let jose = |e| OAuthError::Other(ApiError::Actor(cryptoutil_actors::Error::Jose(e)));
    let token = jwt::sign(&grant.key, &grant.claims, "at+jwt").map_err(jose)?;
    let mut body = serde_json::Map::new();
    if let Some(mut id) = grant.id_token {
        id.insert("at_hash".into(), json!(oauth::at_hash(&token)));
        body.insert(
            "id_token".into(),
            json!(jwt::sign(&grant.key, &id, "JWT").map_err(jose)?),
        );
    }
    if let Some(refresh) = &grant.refresh_token {
        body.insert("refresh_token".into(), json!(refresh.as_str()));
    }
    body.insert("access_token".into(), json!(token));
    body.insert("token_type".into(), json!(grant.token_type));
    body.insert("expires_in".into(), json!(grant.expires_in));
    body.insert("scope".into(), json!(grant.scope));
    Ok(no_store(Json(Value::Object(body)).into_response()))
}
