//! identity-authz's routes: the OAuth 2.1 / OpenID Connect protocol endpoints (public: they
//! authenticate clients themselves or publish metadata), the browser navigations of the code
//! flow, and the admin API for tenants, clients and users (scope `identity`).
//!
//! # Layout
//! - [`oauth`]: discovery, JWK Set, token, introspection, revocation, PAR and userinfo.
//! - [`authorize`]: the authorization endpoint and RP-initiated logout.
//! - [`admin`]: tenants, clients and users.
//! - [`signin`]: the sign-in back channel of an identity-idp in its own process (scope
//!   `identity-idp`).
//! - `errors`: the protocol refusals (RFC 6749 §5.2, RFC 6750 §3) in one responder.

pub mod admin;
pub mod authorize;
mod errors;
pub mod oauth;
pub mod signin;

use axum::http::Method;
use axum::routing::{delete, get, post, put};
use cryptoutil_actors::ServiceName;

use crate::auth::Realm;
use crate::route::{
    both, public, spec, Access::Authenticated, Access::Public, ProductRoutes, RouteSpec,
};

/// The OpenAPI document of the admin API (checked in at `http/openapi/identity.yaml`).
pub const OPENAPI: &str = include_str!("../../../openapi/identity.yaml");

/// identity-authz's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentityAuthz, rows);

fn rows(rows: &mut Vec<RouteSpec>) {
    // Protocol endpoints: public, they authenticate clients themselves or publish metadata.
    public(
        rows,
        Realm::Service,
        &[
            (Method::GET, oauth::OIDC_METADATA, || {
                get(oauth::metadata_get)
            }),
            (Method::GET, oauth::AS_METADATA, || get(oauth::metadata_get)),
            (Method::GET, oauth::JWKS, || get(oauth::jwks_get)),
            (Method::POST, oauth::TOKEN, || post(oauth::token_post)),
            (Method::POST, oauth::INTROSPECT, || {
                post(oauth::introspect_post)
            }),
            (Method::POST, oauth::REVOKE, || post(oauth::revoke_post)),
            (Method::POST, oauth::PAR, || post(oauth::par_post)),
            (Method::GET, oauth::USERINFO, || get(oauth::userinfo)),
            (Method::POST, oauth::USERINFO, || post(oauth::userinfo)),
        ],
    );
    // Browser navigations of the code flow: public, they carry their own checks.
    public(
        rows,
        Realm::Browser,
        &[
            (Method::GET, oauth::AUTHORIZE, || {
                get(authorize::authorize_get)
            }),
            (Method::POST, oauth::AUTHORIZE, || {
                post(authorize::authorize_post)
            }),
            (Method::GET, oauth::LOGOUT, || get(authorize::logout_get)),
        ],
    );
    // identity-idp's back channel: /service only (a process calls it, never a browser).
    rows.push(spec(
        Some(Method::POST),
        cryptoutil_actors::federation::identity::signin::SIGNIN_PATH,
        Realm::Service,
        Authenticated,
        || post(signin::signin_post),
    ));
    both!(rows, Method::GET, "/openapi.yaml", Public, || {
        crate::route::openapi(OPENAPI)
    });
    both!(rows, Method::GET, "/identity/audit", Authenticated, || {
        get(crate::audit::audit_get)
    });
    both!(
        rows,
        Method::GET,
        "/identity/tenants",
        Authenticated,
        || get(admin::tenants_get)
    );
    both!(
        rows,
        Method::POST,
        "/identity/tenants",
        Authenticated,
        || post(admin::tenants_post)
    );
    both!(
        rows,
        Method::PUT,
        "/identity/tenants/{id}/policy",
        Authenticated,
        || put(admin::tenant_policy_put)
    );
    both!(
        rows,
        Method::GET,
        "/identity/clients",
        Authenticated,
        || get(admin::clients_get)
    );
    both!(
        rows,
        Method::POST,
        "/identity/clients",
        Authenticated,
        || post(admin::clients_post)
    );
    both!(
        rows,
        Method::GET,
        "/identity/clients/{id}",
        Authenticated,
        || get(admin::client_get)
    );
    both!(
        rows,
        Method::DELETE,
        "/identity/clients/{id}",
        Authenticated,
        || delete(admin::client_delete)
    );
    both!(rows, Method::GET, "/identity/users", Authenticated, || get(
        admin::users_get
    ));
    both!(rows, Method::POST, "/identity/users", Authenticated, || {
        post(admin::users_post)
    });
    both!(
        rows,
        Method::DELETE,
        "/identity/users/{id}",
        Authenticated,
        || delete(admin::user_delete)
    );
}
