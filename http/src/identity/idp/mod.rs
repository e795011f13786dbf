//! identity-idp's routes: the login, second-factor and consent pages (public: they carry their
//! own checks), and the admin API for users' factors (scope `identity`).
//!
//! # Layout
//! - [`login`]: the login, second-factor and consent pages.
//! - [`factors`]: a user's factors: list, enroll, remove.

pub mod factors;
pub mod login;

use axum::http::Method;
use axum::routing::{delete, get, post};
use cryptoutil_actors::ServiceName;

pub use login::{CONSENT, LOGIN};

use crate::auth::Realm;
use crate::route::{both, public, Access::Authenticated, ProductRoutes, RouteSpec};

/// identity-idp's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentityIdp, rows);

fn rows(rows: &mut Vec<RouteSpec>) {
    public(
        rows,
        Realm::Browser,
        &[
            (Method::GET, login::LOGIN, || get(login::login_get)),
            (Method::POST, login::LOGIN, || post(login::login_post)),
            (Method::POST, login::LOGIN_FACTOR, || {
                post(login::factor_post)
            }),
            (Method::POST, login::CONSENT, || post(login::consent_post)),
        ],
    );
    both!(
        rows,
        Method::GET,
        "/identity/users/{id}/factors",
        Authenticated,
        || get(factors::factors_get)
    );
    both!(
        rows,
        Method::POST,
        "/identity/users/{id}/factors",
        Authenticated,
        || post(factors::factors_post)
    );
    both!(
        rows,
        Method::DELETE,
        "/identity/users/{id}/factors/{factor}",
        Authenticated,
        || delete(factors::factor_delete)
    );
}
