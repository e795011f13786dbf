//! identity-rs, the reference resource server: a small notes API under `/service` that takes
//! the suite's access tokens the way a customer's API would. Copy this folder to see how.
//!
//! - Tokens are checked before a handler runs, by the service's credential seam: the issuer's
//!   signature against its JWK Set (or introspection at identity-authz, with its fallback, when
//!   `federation.identity_enabled`), `aud` = `identity-rs`, expiry, and the token's binding: a
//!   DPoP-bound token (RFC 9449) needs a fresh proof by its key for this very request, a
//!   certificate-bound one (RFC 8705) the connection's client certificate. Refusals carry the
//!   RFC 6750 / RFC 9449 `WWW-Authenticate` challenge.
//! - Each route names its scope: `notes:read` to read, `notes:write` to write (403
//!   `insufficient_scope` otherwise).
//! - Deleting a note needs a phishing-resistant sign-in (`acr` `urn:cryptoutil:acr:phr`): a
//!   weaker token gets the RFC 9470 step-up challenge (401 `insufficient_user_authentication`
//!   with `acr_values`), which the client answers by signing the user in again with
//!   `acr_values`.
//! - `/.well-known/oauth-protected-resource` publishes the RFC 9728 metadata: who issues the
//!   tokens, the scopes, and that DPoP and certificate binding are understood.
//!
//! # Layout
//! - [`notes`]: the handlers.

pub mod notes;

use axum::http::Method;
use axum::routing::{delete, get, post};
use cryptoutil_actors::ServiceName;

use crate::auth::Realm;
use crate::route::{
    spec, Access, Access::Authenticated, Access::Public, Handler, ProductRoutes, RouteSpec,
};

/// identity-rs's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentityRs, rows);

/// The notes collection.
pub const NOTES: &str = "/service/api/v1/notes";
/// One note.
pub const NOTE: &str = "/service/api/v1/notes/{id}";
/// RFC 9728 §3: the metadata of a resource at the host's root.
pub const METADATA: &str = "/.well-known/oauth-protected-resource";

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/service/api/v1/openapi.yaml";
/// The OpenAPI document of the notes API (checked in at `http/openapi/identity-rs.yaml`).
pub const OPENAPI: &str = include_str!("../../../openapi/identity-rs.yaml");

fn rows(rows: &mut Vec<RouteSpec>) {
    let table: [(Method, &'static str, Access, Handler); 6] = [
        (Method::GET, METADATA, Public, || get(notes::metadata_get)),
        (Method::GET, OPENAPI_PATH, Public, || {
            crate::route::openapi(OPENAPI)
        }),
        (Method::GET, NOTES, Authenticated, || get(notes::list_get)),
        (Method::POST, NOTES, Authenticated, || {
            post(notes::create_post)
        }),
        (Method::GET, NOTE, Authenticated, || get(notes::note_get)),
        (Method::DELETE, NOTE, Authenticated, || {
            delete(notes::note_delete)
        }),
    ];
    for (method, path, access, handler) in table {
        rows.push(spec(Some(method), path, Realm::Service, access, handler));
    }
}
