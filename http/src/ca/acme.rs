//! The ACME server (RFC 8555) at `/acme/<label>/`: `directory`, `new-nonce`, `new-account`
//! (external account binding with an RA secret required: `kid` = its reference, the MAC key
//! its bytes), `new-order`, `authz/<id>`, `chall/<id>` (http-01 on `ca.acme.http01_port`,
//! and dns-01 through `ca.acme.dns_resolver`, validated when the client says it is ready), `finalize/<id>` (through the RA: issued at
//! once or `processing` until it decides), `cert/<id>`, `acct/<id>` and `revoke-cert` (by the
//! account that ordered the certificate).
//!
//! Public routes: every request is a JWS its account (or, for `new-account`, its new key)
//! signed, over a one-time nonce and the URL it was sent to. Errors are problem documents
//! (`urn:ietf:params:acme:error:*`); every answer carries a fresh `Replay-Nonce`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cryptoutil_actors::ca::acme::{
    AccountRecord, AccountStatus, AuthzRecord, AuthzStatus, NewAccount, OrderRecord, OrderStatus,
    Revoker,
};
use cryptoutil_actors::ca::ra::{LabelRecord, RETRY_AFTER};
use cryptoutil_actors::ca::CasHandle;
use cryptoutil_actors::Error;
use cryptoutil_protocols::acme::{self, Binding, Problem, Request, Signer};
use cryptoutil_protocols::ca::Reason;
use cryptoutil_protocols::dns;
use cryptoutil_protocols::jose::{b64, Jwk};
use serde_json::{json, Map, Value};

use super::api::handle;
use crate::state::AppState;

/// How long http-01 validation may take (connect, ask, read).
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest http-01 answer read.
const MAX_KEY_AUTHORIZATION: usize = 1024;
/// Most contacts an account keeps.
const MAX_CONTACTS: usize = 10;
/// Most validations in flight at once (an http-01 may hold a connection for 10 s, a dns-01
/// wait 9 s).
static VALIDATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(64);

const REPLAY_NONCE: header::HeaderName = header::HeaderName::from_static("replay-nonce");

/// What a request answers: a status, headers and a JSON or PEM body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    retry_after: bool,
    up: Option<String>,
    body: Body,
}

enum Body {
    Json(Value),
    Pem(String),
    Empty,
}

impl Answer {
    /// `body` with `status`, no other header.
    fn new(status: StatusCode, body: Body) -> Self {
        Self {
            status,
            location: None,
            retry_after: false,
            up: None,
            body,
        }
    }

    fn json(status: StatusCode, body: Value) -> Self {
        Self::new(status, Body::Json(body))
    }

    fn at(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }
}

/// `/acme/<label>/<op>[/<id>]` of a request.
struct Path {
    label: String,
    op: String,
    id: Option<String>,
}

impl Path {
    fn of(uri: &Uri) -> Option<Self> {
        let rest = uri.path().strip_prefix("/acme/")?;
        let mut parts = rest.splitn(3, '/');
        let label = parts.next()?.to_owned();
        let op = parts.next()?.to_owned();
        Some(Self {
            label,
            op,
            id: parts.next().map(str::to_owned),
        })
    }
}

/// Where a label's ACME server is: `https://<authority>/acme/<label>` (the authority the
/// client used, as every URL it signs names it).
fn base(uri: &Uri, headers: &HeaderMap, label: &str) -> Option<String> {
    let authority = crate::dpop::authority(headers, uri)?;
    Some(format!("https://{authority}/acme/{label}"))
}

fn problem(e: Error) -> Problem {
    match e {
        Error::Unauthenticated { why } => Problem::unauthorized(why),
        Error::Forbidden { reason } => Problem::unauthorized(reason),
        Error::NotFound { what } => Problem::new("malformed", 404, format!("{what} not found")),
        Error::Conflict { what } => Problem::new("malformed", 409, what),
        Error::Refused(e) => Problem::malformed(e.to_string()),
        Error::BadRequest { reason } => Problem::malformed(reason),
        other => {
            tracing::error!(error = %other, "ACME request failed");
            Problem::new("serverInternal", 500, "the CA could not answer")
        }
    }
}

/// Adds what every answer carries: a fresh nonce, the directory link, no caching.
fn finish(
    cas: Option<&CasHandle>,
    base: Option<&str>,
    result: Result<Answer, Problem>,
) -> Response {
    let answer = result.unwrap_or_else(|p| {
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
        Answer::json(status, p.document())
    });
    let is_problem = !answer.status.is_success();
    let mut response = match answer.body {
        Body::Json(v) => {
            let kind = if is_problem {
                "application/problem+json"
            } else {
                "application/json"
            };
            (answer.status, [(header::CONTENT_TYPE, kind)], v.to_string()).into_response()
        }
        Body::Pem(p) => (
            answer.status,
            [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
            p,
        )
            .into_response(),
        Body::Empty => answer.status.into_response(),
    };
    let headers = response.headers_mut();
    if let Some(nonce) = cas.and_then(|c| c.acme_nonces().issue().ok()) {
        if let Ok(v) = HeaderValue::from_str(&nonce) {
            headers.insert(REPLAY_NONCE, v);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut links = Vec::new();
    if let Some(base) = base {
        links.push(format!("<{base}/directory>;rel=\"index\""));
    }
    if let Some(up) = answer.up {
        links.push(format!("<{up}>;rel=\"up\""));
    }
    for link in links {
        if let Ok(v) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, v);
        }
    }
    if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    if answer.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER));
    }
    response
}

async fn label(cas: &CasHandle, name: &str) -> Result<LabelRecord, Problem> {
    cas.label(name)
        .await
        .map_err(|_| Problem::new("malformed", 404, format!("no ACME label {name:?}")))
}

/// Where a request landed: the CA, the path and the label's base URL (each missing when the
/// service has no CA, the path is not an ACME one, or no authority was named).
struct Site {
    cas: Option<CasHandle>,
    path: Option<Path>,
    base: Option<String>,
}

impl Site {
    fn of(app: &AppState, uri: &Uri, headers: &HeaderMap) -> Self {
        let path = Path::of(uri);
        Self {
            cas: handle(app).ok(),
            base: path.as_ref().and_then(|p| base(uri, headers, &p.label)),
            path,
        }
    }

    fn ctx(&self) -> Result<Ctx<'_>, Problem> {
        match (&self.cas, &self.path, &self.base) {
            (Some(cas), Some(path), Some(base)) => Ok(Ctx { cas, base, path }),
            _ => Err(Problem::new("malformed", 404, "no ACME server here")),
        }
    }

    /// The answer, with what every answer carries.
    fn finish(&self, result: Result<Answer, Problem>) -> Response {
        finish(self.cas.as_ref(), self.base.as_deref(), result)
    }
}

/// `GET /acme/<label>/directory`.
pub(crate) async fn directory_get(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let site = Site::of(&app, &uri, &headers);
    let result = match site.ctx() {
        Ok(ctx) => ctx.directory().await,
        Err(p) => Err(p),
    };
    site.finish(result)
}

/// `HEAD|GET /acme/<label>/new-nonce` (RFC 8555 §7.2: 200 to HEAD, 204 to GET).
pub(crate) async fn nonce_get(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let site = Site::of(&app, &uri, &headers);
    let result = match site.ctx() {
        Ok(ctx) => label(ctx.cas, &ctx.path.label).await.map(|_| {
            let status = if method == Method::HEAD {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            };
            Answer::new(status, Body::Empty)
        }),
        Err(p) => Err(p),
    };
    site.finish(result)
}

/// Every ACME `POST`.
pub(crate) async fn post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let site = Site::of(&app, &uri, &headers);
    let result = match site.ctx() {
        Ok(ctx) => ctx.post(&uri, &headers, &body).await,
        Err(p) => Err(p),
    };
    site.finish(result)
}

/// Who signed a request, its signature checked.
enum SignedBy<'a> {
    Account(&'a AccountRecord),
    Key(&'a Jwk),
}

struct Ctx<'a> {
    cas: &'a CasHandle,
    base: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn url(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.base)
    }

    async fn directory(&self) -> Result<Answer, Problem> {
        label(self.cas, &self.path.label).await?;
        let base = self.base;
        Ok(Answer::json(
            StatusCode::OK,
            json!({
                "newNonce": format!("{base}/new-nonce"),
                "newAccount": format!("{base}/new-account"),
                "newOrder": format!("{base}/new-order"),
                "revokeCert": format!("{base}/revoke-cert"),
                "meta": {"externalAccountRequired": true},
            }),
        ))
    }

    fn id(&self) -> Result<&str, Problem> {
        self.path
            .id
            .as_deref()
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| Problem::new("malformed", 404, "no such resource"))
    }

    async fn post(&self, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Answer, Problem> {
        let kind = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !kind.eq_ignore_ascii_case("application/jose+json") {
            return Err(Problem::new(
                "malformed",
                415,
                "Content-Type must be application/jose+json",
            ));
        }
        let request = Request::parse(body)?;
        // The URL the client signed is the one it sent the request to (RFC 8555 §6.4).
        let expected = crate::dpop::request_url(headers, uri);
        if expected.as_deref() != Some(request.url.as_str()) {
            return Err(Problem::unauthorized(
                "the JWS url is not the URL this request was sent to",
            ));
        }
        if !self.cas.acme_nonces().redeem(&request.nonce) {
            return Err(Problem::bad_nonce());
        }
        let label = label(self.cas, &self.path.label).await?;
        match (self.path.op.as_str(), &request.signer) {
            ("new-account", Signer::Key(key)) => self.new_account(&label, &request, key).await,
            ("new-account", Signer::Account(_)) => Err(Problem::malformed(
                "new-account is signed with the new key (jwk), not an account (kid)",
            )),
            // RFC 8555 §7.6: the certificate's own key may revoke it.
            ("revoke-cert", Signer::Key(key)) => {
                request.verify(key)?;
                self.revoke(&label, SignedBy::Key(key), &request).await
            }
            (_, Signer::Key(_)) => Err(Problem::malformed(
                "sign with the account (kid); only new-account and revoke-cert take a jwk",
            )),
            (op, Signer::Account(kid)) => {
                let account = self.account(&request, kid).await?;
                match op {
                    "acct" => self.update_account(&account, &request).await,
                    "new-order" => self.new_order(&account, &request).await,
                    "order" => self.order(&account).await,
                    "orders" => self.orders(&account).await,
                    "authz" => self.authz(&account).await,
                    "chall" => self.challenge(&account, &request).await,
                    "finalize" => self.finalize(&label, &account, &request).await,
                    "cert" => self.certificate(&account).await,
                    "revoke-cert" => {
                        self.revoke(&label, SignedBy::Account(&account), &request)
                            .await
                    }
                    _ => Err(Problem::new("malformed", 404, "no such resource")),
                }
            }
        }
    }

    /// The account `kid` names, which must have signed `request`.
    async fn account(&self, request: &Request, kid: &str) -> Result<AccountRecord, Problem> {
        let id = kid
            .strip_prefix(&format!("{}/acct/", self.base))
            .filter(|id| !id.contains('/'))
            .ok_or_else(|| {
                Problem::new(
                    "accountDoesNotExist",
                    400,
                    "kid is not an account URL of this server",
                )
            })?;
        let account = self
            .cas
            .acme_account(&self.path.label, id)
            .await
            .map_err(|_| Problem::new("accountDoesNotExist", 400, "no such account"))?;
        let key = Jwk::from_value(&account.key)
            .map_err(|_| Problem::new("serverInternal", 500, "the account key does not read"))?;
        request.verify(&key)?;
        if account.status != AccountStatus::Valid {
            // RFC 8555 §7.3.6: 401 unauthorized.
            return Err(Problem::new(
                "unauthorized",
                401,
                "the account is deactivated",
            ));
        }
        Ok(account)
    }

    fn account_json(&self, account: &AccountRecord) -> Value {
        json!({
            "status": account.status,
            "contact": account.contact,
            "termsOfServiceAgreed": true,
            "orders": self.url("orders", &account.id),
        })
    }

    /// `orders/<account id>` (RFC 8555 §7.1.2.1): the account's orders not yet invalid, in
    /// one page.
    async fn orders(&self, account: &AccountRecord) -> Result<Answer, Problem> {
        if self.id()? != account.id {
            return Err(Problem::unauthorized(
                "an account lists only its own orders",
            ));
        }
        let orders = self.cas.acme_orders(account).await.map_err(problem)?;
        let urls: Vec<String> = orders.iter().map(|o| self.url("order", &o.id)).collect();
        Ok(Answer::json(StatusCode::OK, json!({ "orders": urls })))
    }

    async fn new_account(
        &self,
        label: &LabelRecord,
        request: &Request,
        key: &Jwk,
    ) -> Result<Answer, Problem> {
        request.verify(key)?;
        let payload = request.json()?;
        let thumbprint = key
            .thumbprint()
            .map_err(|_| Problem::new("badPublicKey", 400, "the key has no thumbprint"))?;
        if let Some(existing) = self
            .cas
            .acme_account_by_key(&label.label, &thumbprint)
            .await
            .map_err(problem)?
        {
            // RFC 8555 §7.3.1: the existing account, 200.
            return Ok(Answer::json(StatusCode::OK, self.account_json(&existing))
                .at(self.url("acct", &existing.id)));
        }
        if payload.get("onlyReturnExisting") == Some(&Value::Bool(true)) {
            return Err(Problem::new(
                "accountDoesNotExist",
                400,
                "no account has this key",
            ));
        }
        let contact = contacts(&payload)?.unwrap_or_default();
        let binding = payload.get("externalAccountBinding").ok_or_else(|| {
            Problem::new(
                "externalAccountRequired",
                400,
                "an external account binding with an RA enrollment secret is required \
                 (kid = its reference, the MAC key = the secret)",
            )
        })?;
        let binding = Binding::parse(binding, &request.url, key)?;
        self.cas
            .acme_bind(label, &binding.kid, |key| binding.verify(key).is_ok())
            .await
            .map_err(problem)?;
        let account = self
            .cas
            .acme_new_account(
                label,
                NewAccount {
                    key: key.to_public_value().map_err(|_| {
                        Problem::new("badPublicKey", 400, "the key does not serialize")
                    })?,
                    thumbprint,
                    contact,
                    binding: binding.kid,
                },
            )
            .await
            .map_err(problem)?;
        Ok(
            Answer::json(StatusCode::CREATED, self.account_json(&account))
                .at(self.url("acct", &account.id)),
        )
    }

    async fn update_account(
        &self,
        account: &AccountRecord,
        request: &Request,
    ) -> Result<Answer, Problem> {
        if self.id()? != account.id {
            return Err(Problem::unauthorized("an account changes only itself"));
        }
        if request.is_get() {
            return Ok(Answer::json(StatusCode::OK, self.account_json(account))
                .at(self.url("acct", &account.id)));
        }
        let payload = request.json()?;
        let deactivate = match payload.get("status").and_then(Value::as_str) {
            None => false,
            Some("deactivated") => true,
            Some(_) => return Err(Problem::malformed("status may only become deactivated")),
        };
        let contact = contacts(&payload)?;
        if contact.is_none() && !deactivate {
            return Ok(Answer::json(StatusCode::OK, self.account_json(account)));
        }
        let updated = self
            .cas
            .acme_update_account(account, contact, deactivate)
            .await
            .map_err(problem)?;
        Ok(Answer::json(StatusCode::OK, self.account_json(&updated)))
    }

    fn order_json(&self, order: &OrderRecord) -> Value {
        let identifiers: Vec<Value> = order
            .identifiers
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let authorizations: Vec<String> = order
            .authorizations
            .iter()
            .map(|a| self.url("authz", a))
            .collect();
        let mut body = Map::new();
        body.insert("status".into(), json!(order.status));
        body.insert("expires".into(), acme::rfc3339(order.expires).into());
        body.insert("identifiers".into(), identifiers.into());
        body.insert("authorizations".into(), authorizations.into());
        body.insert("finalize".into(), self.url("finalize", &order.id).into());
        if order.status == OrderStatus::Valid {
            body.insert("certificate".into(), self.url("cert", &order.id).into());
        }
        if let Some(error) = &order.error {
            // Why it failed: an authorization, the RA's rejection, or its expiry.
            let problem = Problem::new("unauthorized", 403, error.clone());
            body.insert("error".into(), problem.document());
        }
        Value::Object(body)
    }

    fn order_answer(&self, status: StatusCode, order: &OrderRecord) -> Answer {
        let mut answer =
            Answer::json(status, self.order_json(order)).at(self.url("order", &order.id));
        answer.retry_after = order.status == OrderStatus::Processing;
        answer
    }

    async fn new_order(
        &self,
        account: &AccountRecord,
        request: &Request,
    ) -> Result<Answer, Problem> {
        let payload = request.json()?;
        if payload.contains_key("notBefore") || payload.contains_key("notAfter") {
            return Err(Problem::malformed(
                "notBefore and notAfter are not supported: the label's profile sets validity",
            ));
        }
        let names = acme::identifiers(&payload)?;
        let (order, _) = self
            .cas
            .acme_new_order(account, names)
            .await
            .map_err(problem)?;
        Ok(self.order_answer(StatusCode::CREATED, &order))
    }

    /// The order the path names, of `account`.
    async fn this_order(&self, account: &AccountRecord) -> Result<OrderRecord, Problem> {
        self.cas
            .acme_order(account, self.id()?)
            .await
            .map_err(problem)
    }

    /// The authorization the path names, of `account`.
    async fn this_authz(&self, account: &AccountRecord) -> Result<AuthzRecord, Problem> {
        self.cas
            .acme_authz(account, self.id()?)
            .await
            .map_err(problem)
    }

    async fn order(&self, account: &AccountRecord) -> Result<Answer, Problem> {
        let order = self.this_order(account).await?;
        Ok(self.order_answer(StatusCode::OK, &order))
    }

    /// Challenge `kind` of `authz`: the one answered shares the authorization's status; the
    /// other stays pending.
    fn challenge_json(&self, authz: &AuthzRecord, kind: Challenge) -> Value {
        let answered = authz.challenge.as_deref() == Some(kind.name());
        let status = match authz.status {
            AuthzStatus::Pending => "pending",
            AuthzStatus::Valid if answered => "valid",
            AuthzStatus::Invalid if answered => "invalid",
            AuthzStatus::Valid | AuthzStatus::Invalid => "pending",
        };
        let mut challenge = Map::new();
        challenge.insert("type".into(), kind.name().into());
        challenge.insert("url".into(), self.url("chall", &kind.id(&authz.id)).into());
        challenge.insert("token".into(), authz.token.clone().into());
        challenge.insert("status".into(), status.into());
        if answered {
            if let Some(at) = authz.validated_at {
                challenge.insert("validated".into(), acme::rfc3339(at).into());
            }
            if let Some(error) = &authz.error {
                let kind = if error.starts_with(INCORRECT) {
                    "incorrectResponse"
                } else if kind == Challenge::Dns01 {
                    "dns"
                } else {
                    "connection"
                };
                let problem = Problem::new(kind, 400, error.clone());
                challenge.insert("error".into(), problem.document());
            }
        }
        Value::Object(challenge)
    }

    /// The challenges an authorization offers: http-01, and dns-01 when a resolver is named
    /// (and `_acme-challenge.<name>` can be asked); once one was answered, that one only.
    fn challenges(&self, authz: &AuthzRecord) -> Vec<Value> {
        let mut kinds = vec![Challenge::Http01];
        let owner = format!("_acme-challenge.{}", authz.identifier);
        if self.cas.settings().acme_dns_resolver.is_some() && dns::txt_query(0, &owner).is_ok() {
            kinds.push(Challenge::Dns01);
        }
        kinds
            .into_iter()
            .filter(|k| authz.challenge.as_deref().is_none_or(|a| a == k.name()))
            .map(|k| self.challenge_json(authz, k))
            .collect()
    }

    async fn authz(&self, account: &AccountRecord) -> Result<Answer, Problem> {
        let authz = self.this_authz(account).await?;
        let status = if authz.status == AuthzStatus::Pending
            && authz.expires <= cryptoutil_actors::now_unix()
        {
            json!("expired")
        } else {
            json!(authz.status)
        };
        Ok(Answer::json(
            StatusCode::OK,
            json!({
                "status": status,
                "expires": acme::rfc3339(authz.expires),
                "identifier": {"type": "dns", "value": authz.identifier},
                "challenges": self.challenges(&authz),
            }),
        ))
    }

    /// A challenge: read (POST-as-GET), or, when the client says it is ready (`{}`), the
    /// http-01 resource is fetched (or the dns-01 TXT record asked) now and the outcome
    /// recorded before the answer.
    async fn challenge(
        &self,
        account: &AccountRecord,
        request: &Request,
    ) -> Result<Answer, Problem> {
        let (authz_id, kind) = Challenge::of(self.id()?);
        let resolver = self.cas.settings().acme_dns_resolver;
        let mut authz = self
            .cas
            .acme_authz(account, authz_id)
            .await
            .map_err(problem)?;
        // dns-01 is offered only with a resolver (one answered before stays readable).
        if kind == Challenge::Dns01
            && resolver.is_none()
            && authz.challenge.as_deref() != Some(kind.name())
        {
            return Err(Problem::new("malformed", 404, "no such resource"));
        }
        // RFC 8555 §7.5.1: `{}` says "ready"; a POST-as-GET only reads the challenge.
        let ready = !request.is_get() && request.json()?.is_empty();
        let answered = authz.challenge.as_deref();
        if ready && answered.is_some_and(|a| a != kind.name()) {
            return Err(Problem::malformed(format!(
                "this authorization was answered through its {} challenge",
                answered.unwrap_or_default()
            )));
        }
        if ready && authz.status == AuthzStatus::Pending {
            if authz.expires <= cryptoutil_actors::now_unix() {
                return Err(Problem::malformed("the authorization expired"));
            }
            // A busy CA records nothing: the client answers again later.
            let Ok(_permit) = VALIDATIONS.try_acquire() else {
                return Err(Problem::new(
                    "rateLimited",
                    429,
                    "the CA is validating too much at once: answer the challenge again",
                ));
            };
            let expected = acme::key_authorization(&authz.token, &account.thumbprint);
            let outcome = match (kind, resolver) {
                (Challenge::Dns01, Some(resolver)) => {
                    dns01(&authz.identifier, resolver, &dns::dns01_digest(&expected)).await
                }
                _ => {
                    let port = self.cas.settings().acme_http01_port;
                    http01(&authz.identifier, port, &authz.token, &expected).await
                }
            };
            if let Err(why) = &outcome {
                tracing::info!(name = %authz.identifier, challenge = kind.name(), %why, "ACME validation failed");
            }
            authz = self
                .cas
                .acme_validated(account, (&authz, kind.name()), outcome)
                .await
                .map_err(problem)?;
        }
        let mut answer = Answer::json(StatusCode::OK, self.challenge_json(&authz, kind));
        answer.up = Some(self.url("authz", &authz.id));
        Ok(answer)
    }

    async fn finalize(
        &self,
        label: &LabelRecord,
        account: &AccountRecord,
        request: &Request,
    ) -> Result<Answer, Problem> {
        let order = self.this_order(account).await?;
        if order.status != OrderStatus::Ready {
            return Err(Problem::new(
                "orderNotReady",
                403,
                format!("the order is {:?}, not ready", order.status).to_lowercase(),
            ));
        }
        let payload = request.json()?;
        let csr = payload
            .get("csr")
            .and_then(Value::as_str)
            .and_then(|c| b64::decode(c, "csr").ok())
            .ok_or_else(|| Problem::new("badCSR", 400, "csr: a base64url DER PKCS#10 request"))?;
        let order = self
            .cas
            .acme_finalize(label, account, &order, csr)
            .await
            .map_err(|e| match e {
                Error::Refused(e) => Problem::new("badCSR", 400, e.to_string()),
                Error::Conflict { .. } => {
                    Problem::new("orderNotReady", 403, "the order was finalized meanwhile")
                }
                other => problem(other),
            })?;
        Ok(self.order_answer(StatusCode::OK, &order))
    }

    async fn certificate(&self, account: &AccountRecord) -> Result<Answer, Problem> {
        let order = self.this_order(account).await?;
        let chain = self.cas.acme_certificate(&order).await.map_err(problem)?;
        let pem: String = chain
            .iter()
            .map(|c| cryptoutil_protocols::pki::cert_pem(&c.0))
            .collect();
        Ok(Answer::new(StatusCode::OK, Body::Pem(pem)))
    }

    /// Revocation signed by an account, or by a key that must be the certificate's own.
    async fn revoke(
        &self,
        label: &LabelRecord,
        signed_by: SignedBy<'_>,
        request: &Request,
    ) -> Result<Answer, Problem> {
        let payload = request.json()?;
        let der = payload
            .get("certificate")
            .and_then(Value::as_str)
            .and_then(|c| b64::decode(c, "certificate").ok())
            .ok_or_else(|| Problem::malformed("certificate: base64url DER"))?;
        let reason = match payload.get("reason") {
            None => Reason::Unspecified,
            Some(code) => code.as_u64().and_then(Reason::subscriber).ok_or_else(|| {
                Problem::new(
                    "badRevocationReason",
                    400,
                    "an RFC 5280 CRLReason code other than 7 and 8",
                )
            })?,
        };
        let by = match signed_by {
            SignedBy::Account(account) => Revoker::Account(account),
            SignedBy::Key(key) if acme::key_of_certificate(key, &der) => Revoker::CertificateKey,
            SignedBy::Key(_) => {
                return Err(Problem::unauthorized(
                    "the request is signed neither by an account nor by the certificate's key",
                ))
            }
        };
        self.cas
            .acme_revoke(label, by, &der, reason)
            .await
            .map_err(|e| match e {
                Error::Conflict { what } => Problem::new("alreadyRevoked", 400, what),
                other => problem(other),
            })?;
        Ok(Answer::new(StatusCode::OK, Body::Empty))
    }
}

/// `contact` of an account payload: up to 10 `mailto:` URLs.
fn contacts(payload: &Map<String, Value>) -> Result<Option<Vec<String>>, Problem> {
    let Some(list) = payload.get("contact") else {
        return Ok(None);
    };
    let bad = || Problem::new("invalidContact", 400, "contact: up to 10 mailto: URLs");
    let list = list
        .as_array()
        .filter(|l| l.len() <= MAX_CONTACTS)
        .ok_or_else(bad)?;
    list.iter()
        .map(|c| {
            c.as_str()
                .filter(|c| {
                    c.strip_prefix("mailto:").is_some_and(|a| {
                        a.contains('@') && a.len() <= 254 && !a.contains([',', '?', ' '])
                    })
                })
                .map(str::to_owned)
                .ok_or_else(|| {
                    Problem::new("unsupportedContact", 400, "contact: mailto: URLs only")
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The challenge types offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    Http01,
    Dns01,
}

/// A dns-01 challenge's id is its authorization's with this suffix (never in an id itself).
const DNS01_SUFFIX: &str = ".dns-01";

impl Challenge {
    fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::Dns01 => "dns-01",
        }
    }

    /// The id of this challenge of authorization `authz`.
    fn id(self, authz: &str) -> String {
        match self {
            Challenge::Http01 => authz.to_owned(),
            Challenge::Dns01 => format!("{authz}{DNS01_SUFFIX}"),
        }
    }

    /// The authorization and type a challenge id names.
    fn of(id: &str) -> (&str, Challenge) {
        match id.strip_suffix(DNS01_SUFFIX) {
            Some(authz) => (authz, Challenge::Dns01),
            None => (id, Challenge::Http01),
        }
    }
}

/// dns-01 (RFC 8555 §8.4): a TXT record of `_acme-challenge.<name>` must hold `expected`
/// (the key authorization's digest), as `resolver` answers over UDP. Each of 3 tries (3 s)
/// has its own connected socket (a random source port; the kernel drops datagrams from
/// elsewhere), a random query id and a randomly cased name that the answer must echo byte
/// for byte (0x20), so a forged answer must guess about 16 + 16 + one bit per letter.
async fn dns01(name: &str, resolver: std::net::SocketAddr, expected: &str) -> Result<(), String> {
    let owner = format!("_acme-challenge.{name}");
    let mut last = format!("{resolver} did not answer for {owner}");
    for _ in 0..3 {
        let random = cryptoutil_protocols::cmp::nonce().map_err(|_| "no randomness".to_owned())?;
        let mut bits = random
            .iter()
            .skip(2)
            .flat_map(|b| (0..8).map(move |i| b >> i & 1 == 1));
        let cased: String = owner
            .chars()
            .map(|c| match bits.next() {
                Some(true) if c.is_ascii_alphabetic() => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect();
        let id = u16::from_be_bytes([
            random.first().copied().unwrap_or_default(),
            random.get(1).copied().unwrap_or_default(),
        ]);
        let query = dns::txt_query(id, &cased).map_err(|e| e.to_string())?;
        let local: std::net::SocketAddr = if resolver.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| format!("no UDP socket: {e}"))?;
        socket
            .connect(resolver)
            .await
            .map_err(|e| format!("{resolver}: {e}"))?;
        socket
            .send(&query)
            .await
            .map_err(|e| format!("{resolver}: {e}"))?;
        let mut buffer = vec![0u8; dns::MAX_ANSWER];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await;
            let Ok(Ok(n)) = received else { break };
            match dns::txt_answer(buffer.get(..n).unwrap_or_default(), &query) {
                Ok(texts) => {
                    let found = texts.iter().any(|t| {
                        cryptoutil_protocols::oauth::constant_time_eq(
                            t.as_bytes(),
                            expected.as_bytes(),
                        )
                    });
                    return if found {
                        Ok(())
                    } else if texts.is_empty() {
                        Err(format!("{INCORRECT}{owner} has no TXT record"))
                    } else {
                        Err(format!(
                            "{INCORRECT}no TXT record of {owner} holds the key authorization's digest"
                        ))
                    };
                }
                // Not the answer to this query: keep listening until the deadline.
                Err(dns::DnsError::Malformed(why)) if why.starts_with("not the answer") => {}
                Err(e) => {
                    last = format!("{owner}: {e}");
                    break;
                }
            }
        }
    }
    Err(last)
}

/// The prefix of a validation failure that reached the resource but read the wrong answer.
const INCORRECT: &str = "incorrect response: ";

/// http-01 (RFC 8555 §8.3): `GET http://<name>:<port>/.well-known/acme-challenge/<token>`
/// must answer 200 with the key authorization (trailing whitespace ignored). No redirects.
async fn http01(name: &str, port: u16, token: &str, expected: &str) -> Result<(), String> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::rt::TokioIo;
    let url = format!("http://{name}:{port}/.well-known/acme-challenge/{token}");
    let fetch = async {
        let stream = tokio::net::TcpStream::connect((name, port))
            .await
            .map_err(|e| format!("could not connect to {name}:{port}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let driver = tokio::spawn(connection);
        let host = if port == 80 {
            name.to_owned()
        } else {
            format!("{name}:{port}")
        };
        let request = hyper::Request::get(format!("/.well-known/acme-challenge/{token}"))
            .header(header::HOST, host)
            .header(header::USER_AGENT, "cryptoutil-acme")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status() != StatusCode::OK {
            driver.abort();
            return Err(format!("{url} answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_KEY_AUTHORIZATION)
            .collect()
            .await
            .map_err(|_| format!("{url}: the answer is not a key authorization"))?
            .to_bytes();
        driver.abort();
        let text = std::str::from_utf8(&body).unwrap_or_default().trim_end();
        if cryptoutil_protocols::oauth::constant_time_eq(text.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(format!(
                "{INCORRECT}{url} does not hold the key authorization"
            ))
        }
    };
    tokio::time::timeout(VALIDATION_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("{url}: no answer within 10 s")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_label_operation_and_id() {
        let uri: Uri = "/acme/web/order/order-1".parse().unwrap();
        let path = Path::of(&uri).unwrap();
        assert_eq!((path.label.as_str(), path.op.as_str()), ("web", "order"));
        assert_eq!(path.id.as_deref(), Some("order-1"));
        let uri: Uri = "/acme/web/new-order".parse().unwrap();
        assert!(Path::of(&uri).unwrap().id.is_none());
        assert!(Path::of(&"/other".parse().unwrap()).is_none());
    }

    #[test]
    fn contacts_are_mailto_urls_and_reasons_are_crl_codes() {
        let ok = json!({"contact": ["mailto:a@example.test"]});
        assert_eq!(
            contacts(ok.as_object().unwrap()).unwrap(),
            Some(vec!["mailto:a@example.test".to_owned()])
        );
        for bad in [
            json!({"contact": ["tel:+1"]}),
            json!({"contact": "mailto:a@b"}),
        ] {
            assert!(contacts(bad.as_object().unwrap()).is_err(), "{bad}");
        }
        assert_eq!(Reason::subscriber(1), Some(Reason::KeyCompromise));
        assert_eq!(Reason::subscriber(7), None);
        assert_eq!(Reason::subscriber(8), None);
    }
}
