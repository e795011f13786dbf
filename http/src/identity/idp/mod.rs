//! identity-idp's routes: the login, second-factor, WebAuthn, consent and account pages
//! (public: they carry their own checks: CSRF tokens, origins, identity-idp's own cookies), and
//! the admin API for users' factors (scope `identity`).
//!
//! # Layout
//! - [`login`]: the login, second-factor and consent pages.
//! - [`webauthn`]: passkeys and security keys at sign-in (options, the browser's answer).
//! - [`account`]: the signed-in user's own factors (list, add a passkey or key, remove).
//! - [`factors`]: the admin API for a user's factors: list, enroll, remove.

pub mod account;
pub mod factors;
pub mod login;
pub mod webauthn;

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
            (Method::GET, login::WEBAUTHN_SCRIPT, || {
                get(webauthn::script)
            }),
            (Method::POST, login::LOGIN_WEBAUTHN_OPTIONS, || {
                post(webauthn::options_post)
            }),
            (Method::POST, login::LOGIN_LINK, || post(login::link_post)),
            (Method::POST, login::LOGIN_CERTIFICATE, || {
                post(login::certificate_post)
            }),
            (Method::GET, login::LOGIN_LINK, || get(login::link_get)),
            (Method::POST, login::LOGIN_LINK_OPEN, || {
                post(login::link_open_post)
            }),
            (Method::POST, login::LOGIN_WEBAUTHN, || {
                post(webauthn::assertion_post)
            }),
            (Method::GET, account::ACCOUNT, || get(account::account_get)),
            (Method::POST, account::ACCOUNT_WEBAUTHN_OPTIONS, || {
                post(account::options_post)
            }),
            (Method::POST, account::ACCOUNT_WEBAUTHN, || {
                post(account::register_post)
            }),
            (Method::POST, account::ACCOUNT_REMOVE, || {
                post(account::remove_post)
            }),
            (Method::POST, account::ACCOUNT_TOTP, || {
                post(account::totp_post)
            }),
            (Method::POST, account::ACCOUNT_YUBIKEY, || {
                post(account::yubikey_post)
            }),
            (Method::POST, account::ACCOUNT_RECOVERY, || {
                post(account::recovery_post)
            }),
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
