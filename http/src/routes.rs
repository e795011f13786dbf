//! The public routes of a service, as one table: the router is built from it, the public
//! allow-list is read from it, and the test that proves every other route refuses missing and
//! wrong credentials enumerates it.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::response::Html;
use axum::routing::{any, get, post};
use axum::{middleware, Json, Router};
use cryptoutil_actors::ServiceName;
use serde_json::{json, Value};
use tower::ServiceBuilder;

use crate::auth::{self, AuthGate, Realm};
use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::metrics::StackLabels;
use crate::middleware::{cors, headers, ip_allow, rate_limit};
use crate::route::spec;
pub use crate::route::{Access, ProductRoutes, RouteSpec};
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
/// `/acme/**` (RFC 8555 servers name their own URLs; the CA's issue fixes
/// `/acme/<label>/directory`): through the service stack; only listed paths are public.
pub const ACME: &str = "/acme/{*rest}";
/// `/scep` and `/scep/**` (RFC 8894 §4.1: SCEP clients are configured with a bare URL; the
/// CA's issue fixes `/scep/<label>`): through the service stack; only listed paths are public.
pub const SCEP: &str = "/scep";
/// The same, with a label.
pub const SCEP_LABEL: &str = "/scep/{*rest}";
/// Everything else under /service: authenticated, then 404.
pub const SERVICE_OTHER: &str = "/service/{*rest}";
/// Everything else under /browser: authenticated, then 404.
pub const BROWSER_OTHER: &str = "/browser/{*rest}";

/// Every product's routes, each registered once here; a product's rows live in its folder.
const PRODUCTS: [ProductRoutes; 8] = [
    crate::identity::authz::ROUTES,
    crate::identity::idp::ROUTES,
    crate::identity::rp::ROUTES,
    crate::identity::rs::ROUTES,
    crate::identity::spa::ROUTES,
    crate::jose::ROUTES,
    crate::kms::ROUTES,
    crate::ca::ROUTES,
];

/// Every public-listener route of `service`: the routes every service has, then its products'.
pub fn table(service: ServiceName) -> Vec<RouteSpec> {
    let mut rows = base_rows();
    for product in PRODUCTS.iter().filter(|p| p.service == service) {
        (product.rows)(&mut rows);
    }
    rows
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
    let audit = state.actors.audit.clone();
    let service_gate = AuthGate::new(
        service,
        Realm::Service,
        public(Realm::Service),
        Arc::clone(&auth),
        audit.clone(),
    );
    let browser_gate = AuthGate::new(service, Realm::Browser, public(Realm::Browser), auth, audit);
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
        .layer(middleware::from_fn(headers::service))
        .layer(middleware::from_fn_with_state(
            ip_allow::IpAllowlist::new(cfg.service.ip_allowlist.clone()),
            ip_allow::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            rate_limit::RateLimiter::new(&cfg.service.rate_limit),
            rate_limit::enforce,
        ))
        // Before credentials: preflights carry none.
        .layer(middleware::from_fn_with_state(
            cors::Cors::tokens(&cfg.service.cors_allowed_origins),
            cors::enforce,
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
        .route_service(ACME, service_stack.clone())
        .route_service(SCEP, service_stack.clone())
        .route_service(SCEP_LABEL, service_stack.clone())
        .route_service(SERVICE_OTHER, service_stack)
        .route_service(BROWSER_HOME, browser_stack.clone())
        .route_service(BROWSER_OTHER, browser_stack)
        // Outside both stacks (`/`, `/favicon.ico`): a 404 with the headers of an API answer.
        .fallback_service(
            any(|| async { ApiError::NotFound }).layer(middleware::from_fn(headers::api)),
        )
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
    let ui: String = PRODUCTS
        .iter()
        .filter(|p| p.service == app.service)
        .filter_map(|p| p.home)
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cryptoutil {0}</title></head>\
         <body><h1>cryptoutil {0}</h1><p><a href=\"auth/login\">Sign in</a></p>{ui}</body></html>",
        app.service
    ))
}

async fn other_any() -> ApiError {
    ApiError::NotFound
}
