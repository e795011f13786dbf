//! identity-spa, the reference single-page app: one HTML page and one script, served with a
//! strict CSP (scripts from this origin only, no inline script or style, `connect-src` naming
//! exactly identity-authz and identity-rs), and the settings the script starts from. Copy
//! `app.js` to see a public client that keeps its tokens in memory, bound to a non-extractable
//! DPoP key.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use cryptoutil_actors::identity::spa::SpaSettings;
use cryptoutil_actors::ServiceName;

use crate::auth::Realm;
use crate::route::{spec, Access::Public, Handler, ProductRoutes, RouteSpec};
use crate::state::AppState;

/// identity-spa's routes.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::IdentitySpa, rows);

/// The page (also the redirect URI).
pub const HOME: &str = "/browser/spa/";
/// The script.
pub const SCRIPT: &str = "/browser/spa/app.js";
/// The settings the script reads.
pub const CONFIG: &str = "/browser/spa/config.json";

const PAGE: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");

fn rows(rows: &mut Vec<RouteSpec>) {
    let table: [(&'static str, Handler); 3] = [
        (HOME, || get(page_get)),
        (SCRIPT, || get(script_get)),
        (CONFIG, || get(config_get)),
    ];
    for (path, handler) in table {
        rows.push(spec(
            Some(Method::GET),
            path,
            Realm::Browser,
            Public,
            handler,
        ));
    }
}

fn settings(app: &AppState) -> Option<&SpaSettings> {
    app.actors.get::<SpaSettings>()
}

async fn page_get(State(app): State<AppState>) -> Response {
    let Some(s) = settings(&app) else {
        return crate::pages::page(
            StatusCode::NOT_FOUND,
            "Sign-in unavailable",
            "<p>identity-spa has no client at identity-authz: it runs in a process without \
             identity-authz, identity-idp and identity-rs.</p>",
        );
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; connect-src 'self' {}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        s.connect_origins().join(" ")
    );
    let mut r = axum::response::Html(PAGE).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

async fn script_get() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        APP_JS,
    )
        .into_response()
}

async fn config_get(State(app): State<AppState>) -> Response {
    match settings(&app) {
        Some(s) => Json(s.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
