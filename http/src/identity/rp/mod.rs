//! identity-rp, the reference relying party: server-rendered pages that sign users in at
//! identity-authz and show their notes from identity-rs, and the back-channel logout endpoint
//! identity-authz posts to. Copy this folder and `actors/src/identity/rp/` to see how.
//!
//! The pages are on the public allow-list because the relying party is its own authentication:
//! each page reads the relying party's session cookie (`__Host-identity-rp-session`, HttpOnly,
//! Secure, SameSite=Lax so it arrives on the redirect back from identity-authz) and every form
//! carries the session's CSRF token. The browser never holds a token.
//!
//! # Layout
//! - [`pages`]: the handlers.

pub mod pages;

use axum::http::Method;
use axum::routing::{get, post};
use cryptoutil_actors::ServiceName;

use crate::auth::Realm;
use crate::route::{spec, Access::Public, Handler, ProductRoutes, RouteSpec};

/// identity-rp's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentityRp, rows);

/// The application: who is signed in, their notes, a form to add one.
pub const HOME: &str = "/browser/rp/";
/// Starts a sign-in.
pub const LOGIN: &str = "/browser/rp/login";
/// Where identity-authz sends the browser back.
pub const CALLBACK: &str = "/browser/rp/callback";
/// Adds a note (a form post).
pub const NOTES: &str = "/browser/rp/notes";
/// Signs out (a form post), then at identity-authz.
pub const LOGOUT: &str = "/browser/rp/logout";
/// OpenID Connect Back-Channel Logout: identity-authz posts logout tokens here.
pub const BACKCHANNEL_LOGOUT: &str = "/service/rp/v1/backchannel-logout";

fn rows(rows: &mut Vec<RouteSpec>) {
    let table: [(Method, &'static str, Realm, Handler); 6] = [
        (Method::GET, HOME, Realm::Browser, || get(pages::home_get)),
        (Method::GET, LOGIN, Realm::Browser, || get(pages::login_get)),
        (Method::GET, CALLBACK, Realm::Browser, || {
            get(pages::callback_get)
        }),
        (Method::POST, NOTES, Realm::Browser, || {
            post(pages::notes_post)
        }),
        (Method::POST, LOGOUT, Realm::Browser, || {
            post(pages::logout_post)
        }),
        (Method::POST, BACKCHANNEL_LOGOUT, Realm::Service, || {
            post(pages::backchannel_logout_post)
        }),
    ];
    for (method, path, realm, handler) in table {
        rows.push(spec(Some(method), path, realm, Public, handler));
    }
}
