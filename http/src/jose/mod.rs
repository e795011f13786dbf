//! The JOSE service's routes: the API under both `/service/api/v1/jose` and
//! `/browser/api/v1/jose` (scope `jose`, the caller's tenant) and its browser UI.
//!
//! # Layout
//! - [`api`]: the handlers of the JOSE API and its OpenAPI document.

pub mod api;

use axum::http::Method;
use axum::routing::{delete, get, post};
use cryptoutil_actors::ServiceName;

pub use api::OPENAPI;

use crate::route::{both, Access::Authenticated, Access::Public, ProductRoutes, RouteSpec};

/// The JOSE product's routes, in the `jose` service.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::Jose, rows)
    .with_home("<p><a href=\"ui/jose/\">JOSE keys, signatures and encryption</a></p>");

crate::ui::product_ui!(
    /// The JOSE's browser UI (`/browser/ui/jose/`).
    JoseUi,
    "jose"
);

fn rows(rows: &mut Vec<RouteSpec>) {
    crate::ui::rows::<JoseUi>(rows);
    both!(rows, Method::GET, "/openapi.yaml", Public, || {
        crate::route::openapi(OPENAPI)
    });
    both!(rows, Method::POST, "/jose/jwks", Authenticated, || post(
        api::jwks_post
    ));
    both!(rows, Method::GET, "/jose/jwks", Authenticated, || get(
        api::jwks_get
    ));
    both!(rows, Method::GET, "/jose/keys", Authenticated, || get(
        api::keys_get
    ));
    both!(
        rows,
        Method::GET,
        "/jose/jwks/{kid}",
        Authenticated,
        || get(api::jwk_get)
    );
    both!(
        rows,
        Method::DELETE,
        "/jose/jwks/{kid}",
        Authenticated,
        || delete(api::jwk_delete)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jws/sign",
        Authenticated,
        || post(api::jws_sign_post)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jws/verify",
        Authenticated,
        || post(api::jws_verify_post)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jwe/encrypt",
        Authenticated,
        || post(api::jwe_encrypt_post)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jwe/decrypt",
        Authenticated,
        || post(api::jwe_decrypt_post)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jwt/sign",
        Authenticated,
        || post(api::jwt_sign_post)
    );
    both!(
        rows,
        Method::POST,
        "/jose/jwt/verify",
        Authenticated,
        || post(api::jwt_verify_post)
    );
}
