//! The CA's routes: the API under both `/service/api/v1/ca` and `/browser/api/v1/ca` (scope
//! `ca`, the caller's tenant), and the public distribution routes relying parties fetch
//! without a credential (a CA's certificate and CRL, OCSP, time stamps).
//!
//! # Layout
//! - [`api`]: the handlers of the CA API and its OpenAPI document.
//! - [`ra`]: the RA's API (labels, enrollment secrets, decisions on queued requests).
//! - [`est`]: the EST server (RFC 7030).
//! - [`acme`]: the ACME server (RFC 8555).
//! - [`cmp`]: the CMP server's HTTP transfer (RFC 6712).
//! - [`scep`]: the SCEP server's HTTP transport (RFC 8894 §4).

pub mod acme;
pub mod api;
pub mod cmp;
pub mod est;
pub mod ra;
pub mod scep;

use axum::http::Method;
use axum::routing::{get, head, post};
use axum::Router;
use cryptoutil_actors::ServiceName;

pub use api::OPENAPI;

use crate::error::Realm;
use crate::route::{both, public, Access::Authenticated, Access::Public, ProductRoutes, RouteSpec};
use crate::state::AppState;

/// The router of the CA's plain-HTTP distribution listener (`services.ca.distribution`): the
/// public routes of signed objects only, at the same paths as on the HTTPS listener (so
/// `ca.distribution_base_url` may name either): a CA's CRL and certificate, OCSP over GET and
/// POST. Nothing else answers (404); no credential is ever read.
pub fn distribution_router(state: AppState) -> Router {
    Router::new()
        .route("/service/api/v1/ca/cas/{ca}/crl", get(api::crl_get))
        .route(
            "/service/api/v1/ca/cas/{ca}/crl/delta",
            get(api::delta_crl_get),
        )
        .route(
            "/service/api/v1/ca/cas/{ca}/certificate",
            get(api::ca_certificate_get),
        )
        .route("/service/api/v1/ca/ocsp", post(api::ocsp_post))
        .route("/service/api/v1/ca/ocsp/{*request}", get(api::ocsp_get))
        .layer(axum::middleware::from_fn(
            crate::middleware::headers::service,
        ))
        .with_state(state)
}

/// The CA's routes, in the `ca` service.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::Ca, rows).with_home(
    "<p><a href=\"ui/ca/\">CA: authorities, issuance, revocation, CRLs and audit</a></p>",
);

crate::ui::product_ui!(
    /// The CA's browser UI (`/browser/ui/ca/`).
    CaUi,
    "ca"
);

fn rows(rows: &mut Vec<RouteSpec>) {
    crate::ui::rows::<CaUi>(rows);
    both!(rows, Method::GET, "/openapi.yaml", Public, || {
        crate::route::openapi(OPENAPI)
    });
    both!(rows, Method::POST, "/ca/cas", Authenticated, || post(
        api::cas_post
    ));
    both!(rows, Method::GET, "/ca/cas", Authenticated, || get(
        api::cas_get
    ));
    both!(rows, Method::GET, "/ca/cas/{ca}", Authenticated, || get(
        api::ca_get
    ));
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/offline",
        Authenticated,
        || post(api::offline_post)
    );
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/online",
        Authenticated,
        || post(api::online_post)
    );
    // The same path as the public GET: signing a CRL now needs the ca scope.
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/crl",
        Authenticated,
        || post(api::crl_post)
    );
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/certificates",
        Authenticated,
        || post(api::certificates_post)
    );
    both!(
        rows,
        Method::GET,
        "/ca/cas/{ca}/certificates",
        Authenticated,
        || get(api::certificates_get)
    );
    both!(
        rows,
        Method::GET,
        "/ca/cas/{ca}/certificates/{serial}",
        Authenticated,
        || get(api::certificate_get)
    );
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/certificates/{serial}/revoke",
        Authenticated,
        || post(api::revoke_post)
    );
    both!(
        rows,
        Method::POST,
        "/ca/cas/{ca}/certificates/{serial}/release",
        Authenticated,
        || post(api::release_post)
    );
    both!(rows, Method::GET, "/ca/importkey", Authenticated, || get(
        api::importkey_get
    ));
    both!(
        rows,
        Method::POST,
        "/ca/cas/import",
        Authenticated,
        || post(api::import_post)
    );
    both!(rows, Method::GET, "/ca/profiles", Authenticated, || get(
        api::profiles_get
    ));
    both!(rows, Method::POST, "/ca/profiles", Authenticated, || post(
        api::profiles_post
    ));
    both!(rows, Method::GET, "/ca/audit", Authenticated, || get(
        crate::audit::audit_get
    ));
    // The RA: labels (scope ca), secrets and decisions (scope ca-ra).
    both!(rows, Method::POST, "/ca/labels", Authenticated, || post(
        ra::labels_post
    ));
    both!(rows, Method::GET, "/ca/labels", Authenticated, || get(
        ra::labels_get
    ));
    both!(
        rows,
        Method::POST,
        "/ca/ra/secrets",
        Authenticated,
        || post(ra::secrets_post)
    );
    both!(rows, Method::GET, "/ca/ra/requests", Authenticated, || get(
        ra::requests_get
    ));
    both!(
        rows,
        Method::GET,
        "/ca/ra/requests/{id}",
        Authenticated,
        || get(ra::request_get)
    );
    both!(
        rows,
        Method::POST,
        "/ca/ra/requests/{id}/approve",
        Authenticated,
        || post(ra::approve_post)
    );
    both!(
        rows,
        Method::POST,
        "/ca/ra/requests/{id}/reject",
        Authenticated,
        || post(ra::reject_post)
    );
    // EST (RFC 7030): public because every operation authenticates its client itself (an
    // enrollment secret, a bearer token or a client certificate); cacerts and csrattrs are
    // public information.
    public(
        rows,
        Realm::Service,
        &[
            (Method::GET, "/.well-known/est/cacerts", || {
                get(est::cacerts_get)
            }),
            (Method::GET, "/.well-known/est/{label}/cacerts", || {
                get(est::cacerts_get)
            }),
            (Method::GET, "/.well-known/est/csrattrs", || {
                get(est::csrattrs_get)
            }),
            (Method::GET, "/.well-known/est/{label}/csrattrs", || {
                get(est::csrattrs_get)
            }),
            (Method::POST, "/.well-known/est/simpleenroll", || {
                post(est::simpleenroll_post)
            }),
            (
                Method::POST,
                "/.well-known/est/{label}/simpleenroll",
                || post(est::simpleenroll_post),
            ),
            (Method::POST, "/.well-known/est/simplereenroll", || {
                post(est::simplereenroll_post)
            }),
            (
                Method::POST,
                "/.well-known/est/{label}/simplereenroll",
                || post(est::simplereenroll_post),
            ),
            (Method::POST, "/.well-known/est/serverkeygen", || {
                post(est::serverkeygen_post)
            }),
            (
                Method::POST,
                "/.well-known/est/{label}/serverkeygen",
                || post(est::serverkeygen_post),
            ),
        ],
    );
    // CMP (RFC 4210/9483 over HTTP, RFC 6712): public because every message carries its own
    // protection (a MAC keyed by an RA secret, or a signature by a certificate of the label's
    // CA), checked before the message is acted on.
    public(
        rows,
        Realm::Service,
        &[
            (Method::POST, "/.well-known/cmp", || post(cmp::post)),
            (Method::POST, "/.well-known/cmp/{operation}", || {
                post(cmp::post)
            }),
            (Method::POST, "/.well-known/cmp/p/{label}", || {
                post(cmp::post)
            }),
            (
                Method::POST,
                "/.well-known/cmp/p/{label}/{operation}",
                || post(cmp::post),
            ),
        ],
    );
    // SCEP (RFC 8894): public because every PKIOperation is signed by its client and
    // authenticated by its challenge password (an RA secret) or the certificate it renews;
    // GetCACaps and GetCACert are public information.
    public(
        rows,
        Realm::Service,
        &[
            (Method::GET, "/scep", || get(scep::get)),
            (Method::POST, "/scep", || post(scep::post)),
            (Method::GET, "/scep/{label}", || get(scep::get)),
            (Method::POST, "/scep/{label}", || post(scep::post)),
        ],
    );
    // ACME (RFC 8555): public because every request is a JWS its account (or, for
    // new-account, its new key bound to an RA secret) signed over a one-time nonce; the
    // directory and nonces are public information.
    public(
        rows,
        Realm::Service,
        &[
            (Method::GET, "/acme/{label}/directory", || {
                get(acme::directory_get)
            }),
            (Method::GET, "/acme/{label}/new-nonce", || {
                get(acme::nonce_get)
            }),
            (Method::HEAD, "/acme/{label}/new-nonce", || {
                head(acme::nonce_get)
            }),
            (Method::POST, "/acme/{label}/new-account", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/new-order", || post(acme::post)),
            (Method::POST, "/acme/{label}/revoke-cert", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/acct/{id}", || post(acme::post)),
            (Method::POST, "/acme/{label}/order/{id}", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/orders/{id}", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/authz/{id}", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/chall/{id}", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/finalize/{id}", || {
                post(acme::post)
            }),
            (Method::POST, "/acme/{label}/cert/{id}", || post(acme::post)),
        ],
    );
    // Distribution: signed objects relying parties fetch before they trust any TLS.
    both!(
        rows,
        Method::GET,
        "/ca/cas/{ca}/certificate",
        Public,
        || get(api::ca_certificate_get)
    );
    both!(rows, Method::GET, "/ca/cas/{ca}/crl", Public, || get(
        api::crl_get
    ));
    both!(rows, Method::GET, "/ca/cas/{ca}/crl/delta", Public, || get(
        api::delta_crl_get
    ));
    both!(rows, Method::POST, "/ca/ocsp", Public, || post(
        api::ocsp_post
    ));
    both!(rows, Method::GET, "/ca/ocsp/{*request}", Public, || get(
        api::ocsp_get
    ));
    both!(rows, Method::POST, "/ca/cas/{ca}/tsa", Public, || post(
        api::tsa_post
    ));
}
