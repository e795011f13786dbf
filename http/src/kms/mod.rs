//! The KMS's routes: the API under both `/service/api/v1` and `/browser/api/v1` (scope `kms`,
//! the caller's tenant) and its browser UI.
//!
//! # Layout
//! - [`api`]: the handlers of the KMS API and its OpenAPI document.

pub mod api;

use axum::http::Method;
use axum::routing::{delete, get, patch, post};
use cryptoutil_actors::ServiceName;

pub use api::OPENAPI;

use crate::route::{both, Access::Authenticated, Access::Public, ProductRoutes, RouteSpec};

/// The KMS's routes, in the `kms` service.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::Kms, rows)
    .with_home("<p><a href=\"ui/kms/\">KMS elastic keys, encryption, signatures and audit</a></p>");

crate::ui::product_ui!(
    /// The KMS's browser UI (`/browser/ui/kms/`).
    KmsUi,
    "kms"
);

fn rows(rows: &mut Vec<RouteSpec>) {
    crate::ui::rows::<KmsUi>(rows);
    both!(rows, Method::GET, "/openapi.yaml", Public, || {
        crate::route::openapi(OPENAPI)
    });
    both!(rows, Method::POST, "/elastickeys", Authenticated, || post(
        api::keys_post
    ));
    both!(rows, Method::GET, "/elastickeys", Authenticated, || get(
        api::keys_get
    ));
    both!(rows, Method::GET, "/audit", Authenticated, || get(
        crate::audit::audit_get
    ));
    both!(rows, Method::GET, "/importkey", Authenticated, || get(
        api::importkey_get
    ));
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/import",
        Authenticated,
        || post(api::import_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/export",
        Authenticated,
        || post(api::export_post)
    );
    both!(
        rows,
        Method::GET,
        "/elastickeys/{id}",
        Authenticated,
        || get(api::key_get)
    );
    both!(
        rows,
        Method::PATCH,
        "/elastickeys/{id}",
        Authenticated,
        || patch(api::key_patch)
    );
    both!(
        rows,
        Method::DELETE,
        "/elastickeys/{id}",
        Authenticated,
        || delete(api::key_delete)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/batch/{op}",
        Authenticated,
        || post(api::batch_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/datakey",
        Authenticated,
        || post(api::datakey_post)
    );
    both!(
        rows,
        Method::GET,
        "/elastickeys/{id}/materialkeys",
        Authenticated,
        || get(api::materialkeys_get)
    );
    both!(
        rows,
        Method::PATCH,
        "/elastickeys/{id}/materialkeys/{version}",
        Authenticated,
        || patch(api::version_patch)
    );
    both!(
        rows,
        Method::DELETE,
        "/elastickeys/{id}/materialkeys/{version}",
        Authenticated,
        || delete(api::version_delete)
    );
    both!(
        rows,
        Method::GET,
        "/elastickeys/{id}/jwks",
        Authenticated,
        || get(api::jwks_get)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/rotate",
        Authenticated,
        || post(api::rotate_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/encrypt",
        Authenticated,
        || post(api::encrypt_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/decrypt",
        Authenticated,
        || post(api::decrypt_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/sign",
        Authenticated,
        || post(api::sign_post)
    );
    both!(
        rows,
        Method::POST,
        "/elastickeys/{id}/verify",
        Authenticated,
        || post(api::verify_post)
    );
}
