//! The public routes of a service, as one table: the router is built from it, the public
//! allow-list is read from it, and the test that proves every other route refuses missing and
//! wrong credentials enumerates it.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::response::Html;
use axum::routing::{any, delete, get, patch, post, MethodRouter};
use axum::{middleware, Json, Router};
use cryptoutil_actors::ServiceName;
use serde_json::{json, Value};
use tower::ServiceBuilder;

use crate::auth::{self, AuthGate, Realm};
use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::metrics::StackLabels;
use crate::middleware::{cors, headers, ip_allow, rate_limit};
use crate::state::AppState;

/// Readiness for peers (ARCHITECTURE §6): authenticated like any /service route.
pub const SERVICE_HEALTH: &str = cryptoutil_actors::federation::HEALTH_PATH;
/// The same under /browser.
pub const BROWSER_HEALTH: &str = "/browser/api/v1/health";
/// Placeholder API of the service until its product issue lands.
pub const SERVICE_INFO: &str = "/service/api/v1/info";
/// The same under /browser.
pub const BROWSER_INFO: &str = "/browser/api/v1/info";
/// The browser landing page (the future login page): public.
pub const BROWSER_HOME: &str = "/browser/";
/// `/.well-known/**` (discovery): through the service stack; only listed paths are public.
pub const WELL_KNOWN: &str = "/.well-known/{*rest}";
/// Everything else under /service: authenticated, then 404.
pub const SERVICE_OTHER: &str = "/service/{*rest}";
/// Everything else under /browser: authenticated, then 404.
pub const BROWSER_OTHER: &str = "/browser/{*rest}";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// On the reviewed public allow-list.
    Public,
    /// Needs a valid credential of the route's stack.
    Authenticated,
}

/// One row of the table.
#[derive(Clone)]
pub struct RouteSpec {
    /// The method the route answers (`None`: any method).
    pub method: Option<Method>,
    /// The route path as registered (with `{param}` captures).
    pub path: &'static str,
    /// Its stack.
    pub realm: Realm,
    /// Who may call it.
    pub access: Access,
    handler: fn() -> MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .finish()
    }
}

/// A route under both `/service/api/v1` and `/browser/api/v1`.
macro_rules! both {
    ($rows:ident, $method:expr, $suffix:literal, $access:expr, $handler:expr) => {
        $rows.push(spec(
            Some($method),
            concat!("/service/api/v1", $suffix),
            Realm::Service,
            $access,
            $handler,
        ));
        $rows.push(spec(
            Some($method),
            concat!("/browser/api/v1", $suffix),
            Realm::Browser,
            $access,
            $handler,
        ));
    };
}

/// Every public-listener route of `service`. Adding a route means adding a row here.
pub fn table(service: ServiceName) -> Vec<RouteSpec> {
    use Access::{Authenticated, Public};
    let mut rows = base_rows();
    if service == ServiceName::IdentityAuthz {
        use crate::oauth;
        // Protocol endpoints: public, they authenticate clients themselves or publish metadata.
        for (method, path, handler) in [
            (
                Method::GET,
                oauth::OIDC_METADATA,
                (|| get(oauth::metadata_get)) as fn() -> MethodRouter<AppState>,
            ),
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
        ] {
            rows.push(spec(Some(method), path, Realm::Service, Public, handler));
        }
        // Browser navigations of the code flow: public, they carry their own checks.
        for (method, path, handler) in [
            (
                Method::GET,
                oauth::AUTHORIZE,
                (|| get(crate::login::authorize_get)) as fn() -> MethodRouter<AppState>,
            ),
            (Method::POST, oauth::AUTHORIZE, || {
                post(crate::login::authorize_post)
            }),
            (Method::GET, oauth::LOGOUT, || get(crate::login::logout_get)),
        ] {
            rows.push(spec(Some(method), path, Realm::Browser, Public, handler));
        }
        use crate::identity as admin;
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
    if service == ServiceName::Kms {
        use crate::{kms, ui};
        ui_rows(
            &mut rows,
            ui::KMS_PAGE,
            ui::KMS_SCRIPT,
            ui::KMS_STYLE,
            || get(ui::kms_page),
            || get(ui::kms_script),
        );
        both!(rows, Method::GET, "/openapi.yaml", Public, || get(
            kms::openapi_get
        ));
        both!(rows, Method::POST, "/elastickeys", Authenticated, || post(
            kms::keys_post
        ));
        both!(rows, Method::GET, "/elastickeys", Authenticated, || get(
            kms::keys_get
        ));
        both!(rows, Method::GET, "/audit", Authenticated, || get(
            kms::audit_get
        ));
        both!(rows, Method::GET, "/importkey", Authenticated, || get(
            kms::importkey_get
        ));
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/import",
            Authenticated,
            || post(kms::import_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/export",
            Authenticated,
            || post(kms::export_post)
        );
        both!(
            rows,
            Method::GET,
            "/elastickeys/{id}",
            Authenticated,
            || get(kms::key_get)
        );
        both!(
            rows,
            Method::PATCH,
            "/elastickeys/{id}",
            Authenticated,
            || patch(kms::key_patch)
        );
        both!(
            rows,
            Method::DELETE,
            "/elastickeys/{id}",
            Authenticated,
            || delete(kms::key_delete)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/batch/{op}",
            Authenticated,
            || post(kms::batch_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/datakey",
            Authenticated,
            || post(kms::datakey_post)
        );
        both!(
            rows,
            Method::GET,
            "/elastickeys/{id}/materialkeys",
            Authenticated,
            || get(kms::materialkeys_get)
        );
        both!(
            rows,
            Method::PATCH,
            "/elastickeys/{id}/materialkeys/{version}",
            Authenticated,
            || patch(kms::version_patch)
        );
        both!(
            rows,
            Method::DELETE,
            "/elastickeys/{id}/materialkeys/{version}",
            Authenticated,
            || delete(kms::version_delete)
        );
        both!(
            rows,
            Method::GET,
            "/elastickeys/{id}/jwks",
            Authenticated,
            || get(kms::jwks_get)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/rotate",
            Authenticated,
            || post(kms::rotate_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/encrypt",
            Authenticated,
            || post(kms::encrypt_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/decrypt",
            Authenticated,
            || post(kms::decrypt_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/sign",
            Authenticated,
            || post(kms::sign_post)
        );
        both!(
            rows,
            Method::POST,
            "/elastickeys/{id}/verify",
            Authenticated,
            || post(kms::verify_post)
        );
    }
    if service == ServiceName::IdentityIdp {
        use crate::login;
        for (method, path, handler) in [
            (
                Method::GET,
                login::LOGIN,
                (|| get(login::login_get)) as fn() -> MethodRouter<AppState>,
            ),
            (Method::POST, login::LOGIN, || post(login::login_post)),
            (Method::POST, login::CONSENT, || post(login::consent_post)),
        ] {
            rows.push(spec(Some(method), path, Realm::Browser, Public, handler));
        }
    }
    if service == ServiceName::Jose {
        use crate::{jose, ui};
        ui_rows(
            &mut rows,
            ui::JOSE_PAGE,
            ui::JOSE_SCRIPT,
            ui::JOSE_STYLE,
            || get(ui::jose_page),
            || get(ui::jose_script),
        );
        both!(rows, Method::GET, "/openapi.yaml", Public, || get(
            jose::openapi_get
        ));
        both!(rows, Method::POST, "/jose/jwks", Authenticated, || post(
            jose::jwks_post
        ));
        both!(rows, Method::GET, "/jose/jwks", Authenticated, || get(
            jose::jwks_get
        ));
        both!(rows, Method::GET, "/jose/keys", Authenticated, || get(
            jose::keys_get
        ));
        both!(
            rows,
            Method::GET,
            "/jose/jwks/{kid}",
            Authenticated,
            || get(jose::jwk_get)
        );
        both!(
            rows,
            Method::DELETE,
            "/jose/jwks/{kid}",
            Authenticated,
            || delete(jose::jwk_delete)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jws/sign",
            Authenticated,
            || post(jose::jws_sign_post)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jws/verify",
            Authenticated,
            || post(jose::jws_verify_post)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jwe/encrypt",
            Authenticated,
            || post(jose::jwe_encrypt_post)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jwe/decrypt",
            Authenticated,
            || post(jose::jwe_decrypt_post)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jwt/sign",
            Authenticated,
            || post(jose::jwt_sign_post)
        );
        both!(
            rows,
            Method::POST,
            "/jose/jwt/verify",
            Authenticated,
            || post(jose::jwt_verify_post)
        );
    }
    rows
}

/// A browser UI's public rows: its page, its script, the shared style sheet (under the UI's
/// path) and the shared helper script. The assets hold no data; everything they show comes
/// from authenticated API routes.
fn ui_rows(
    rows: &mut Vec<RouteSpec>,
    page: &'static str,
    script: &'static str,
    style: &'static str,
    page_handler: fn() -> MethodRouter<AppState>,
    script_handler: fn() -> MethodRouter<AppState>,
) {
    use crate::ui;
    for (path, handler) in [
        (page, page_handler),
        (script, script_handler),
        (style, || get(ui::style)),
        (ui::COMMON_SCRIPT, || get(ui::common_script)),
    ] {
        rows.push(spec(
            Some(Method::GET),
            path,
            Realm::Browser,
            Access::Public,
            handler,
        ));
    }
}

fn base_rows() -> Vec<RouteSpec> {
    use Access::{Authenticated, Public};
    vec![
        spec(
            Some(Method::GET),
            SERVICE_HEALTH,
            Realm::Service,
            Authenticated,
            || get(health_get),
        ),
        spec(
            Some(Method::GET),
            SERVICE_INFO,
            Realm::Service,
            Authenticated,
            || get(info_get),
        ),
        spec(None, SERVICE_OTHER, Realm::Service, Authenticated, || {
            any(other_any)
        }),
        spec(
            Some(Method::GET),
            BROWSER_HOME,
            Realm::Browser,
            Public,
            || get(home_get),
        ),
        spec(
            Some(Method::GET),
            BROWSER_HEALTH,
            Realm::Browser,
            Authenticated,
            || get(health_get),
        ),
        spec(
            Some(Method::GET),
            BROWSER_INFO,
            Realm::Browser,
            Authenticated,
            || get(info_get),
        ),
        spec(None, BROWSER_OTHER, Realm::Browser, Authenticated, || {
            any(other_any)
        }),
        spec(
            Some(Method::GET),
            crate::browser::LOGIN,
            Realm::Browser,
            Public,
            || get(crate::browser::login_get),
        ),
        spec(
            Some(Method::GET),
            crate::browser::CALLBACK,
            Realm::Browser,
            Public,
            || get(crate::browser::callback_get),
        ),
        spec(
            Some(Method::POST),
            crate::browser::LOGOUT,
            Realm::Browser,
            Authenticated,
            || post(crate::browser::logout_post),
        ),
        spec(
            Some(Method::GET),
            crate::browser::SESSION,
            Realm::Browser,
            Authenticated,
            || get(crate::browser::session_get),
        ),
    ]
}

fn spec(
    method: Option<Method>,
    path: &'static str,
    realm: Realm,
    access: Access,
    handler: fn() -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        realm,
        access,
        handler,
    }
}

/// The public router: `/service/**` and `/browser/**`, each behind its own middleware stack.
///
/// The stacks wrap the whole inner router, not each route, so nothing the router says (a 405
/// with its `Allow` header, a 404) reaches a client that has not passed its stack: an
/// unauthenticated request learns only 401. Public routes are therefore literal paths, matched
/// on the raw request path before routing.
pub fn router(state: AppState, cfg: &HttpConfig) -> Router {
    let service = state.service.as_str();
    let auth = Arc::clone(&state.auth);
    let rows = table(state.service);
    let public = |realm: Realm| -> HashSet<(Method, &'static str)> {
        rows.iter()
            .filter(|r| r.realm == realm && r.access == Access::Public)
            .filter_map(|r| r.method.clone().map(|m| (m, r.path)))
            .collect()
    };
    let service_gate = AuthGate::new(
        service,
        Realm::Service,
        public(Realm::Service),
        Arc::clone(&auth),
    );
    let browser_gate = AuthGate::new(service, Realm::Browser, public(Realm::Browser), auth);
    let inner: Router = rows
        .into_iter()
        .fold(Router::new(), |r, row| r.route(row.path, (row.handler)()))
        .with_state(state);

    // ServiceBuilder: the first layer is the outermost.
    let service_stack = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            StackLabels {
                service,
                stack: "service",
            },
            crate::metrics::count,
        ))
        .layer(middleware::from_fn_with_state(
            ip_allow::IpAllowlist::new(cfg.service.ip_allowlist.clone()),
            ip_allow::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            rate_limit::RateLimiter::new(&cfg.service.rate_limit),
            rate_limit::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            service_gate,
            auth::require_credentials,
        ))
        .service(inner.clone());
    let browser_stack = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            StackLabels {
                service,
                stack: "browser",
            },
            crate::metrics::count,
        ))
        .layer(middleware::from_fn_with_state(
            headers::SecurityHeaders::new(&cfg.browser),
            headers::apply,
        ))
        .layer(middleware::from_fn_with_state(
            ip_allow::IpAllowlist::new(cfg.browser.ip_allowlist.clone()),
            ip_allow::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            rate_limit::RateLimiter::new(&cfg.browser.rate_limit),
            rate_limit::enforce,
        ))
        // After the allowlist and rate limit, before credentials (preflights carry none).
        .layer(middleware::from_fn_with_state(
            cors::Cors::new(&cfg.browser.cors_allowed_origins),
            cors::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            browser_gate,
            auth::require_credentials,
        ))
        .service(inner);
    Router::new()
        .route_service(WELL_KNOWN, service_stack.clone())
        .route_service(SERVICE_OTHER, service_stack)
        .route_service(BROWSER_HOME, browser_stack.clone())
        .route_service(BROWSER_OTHER, browser_stack)
}

// === handlers ===

async fn health_get(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !app.readiness.is_ready() {
        return Err(ApiError::NotReady {
            reason: "starting or draining",
        });
    }
    let vault = app.actors.vault.status().await?;
    if vault.sealed {
        return Err(ApiError::NotReady { reason: "sealed" });
    }
    Ok(Json(json!({ "service": app.service, "status": "ready" })))
}

async fn info_get(State(app): State<AppState>) -> Json<Value> {
    Json(
        json!({ "service": app.service, "version": env!("CARGO_PKG_VERSION"), "api": "placeholder" }),
    )
}

async fn home_get(State(app): State<AppState>) -> Html<String> {
    let ui = match app.service {
        ServiceName::Jose => "<p><a href=\"ui/jose/\">JOSE keys, signatures and encryption</a></p>",
        ServiceName::Kms => {
            "<p><a href=\"ui/kms/\">KMS elastic keys, encryption, signatures and audit</a></p>"
        }
        _ => "",
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cryptoutil {0}</title></head>\
         <body><h1>cryptoutil {0}</h1><p><a href=\"auth/login\">Sign in</a></p>{ui}</body></html>",
        app.service
    ))
}

async fn other_any() -> ApiError {
    ApiError::NotFound
}
