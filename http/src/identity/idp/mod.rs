//! identity-idp's routes: the login and consent pages (public: they carry their own checks).
//!
//! # Layout
//! - [`login`]: the login and consent pages.

pub mod login;

use axum::http::Method;
use axum::routing::{get, post};
use cryptoutil_actors::ServiceName;

pub use login::{CONSENT, LOGIN};

use crate::auth::Realm;
use crate::route::{public, ProductRoutes, RouteSpec};

/// identity-idp's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentityIdp, rows);

fn rows(rows: &mut Vec<RouteSpec>) {
    public(
        rows,
        Realm::Browser,
        &[
            (Method::GET, login::LOGIN, || get(login::login_get)),
            (Method::POST, login::LOGIN, || post(login::login_post)),
            (Method::POST, login::CONSENT, || post(login::consent_post)),
        ],
    );
}
