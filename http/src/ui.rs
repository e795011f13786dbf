//! The browser UIs' shared assets and their rows: static HTML, JavaScript and CSS compiled into
//! the binary, served under `/browser/ui/`. The assets hold no data and are on the public
//! allow-list (like the login pages they link to); everything they show comes from
//! `/browser/api/v1/**`, which needs a session. No inline script or style: the pages run under
//! the /browser CSP unchanged. Each product's page and script live in its own folder.

use axum::http::{header, Method};
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};

use crate::auth::Realm;
use crate::route::{spec, Access, RouteSpec};
use crate::state::AppState;

/// The helpers every UI script uses.
pub const COMMON_SCRIPT: &str = "/browser/ui/common.js";

/// `Content-Type` of a page.
pub(crate) const HTML: &str = "text/html; charset=utf-8";
/// `Content-Type` of a script.
pub(crate) const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A static asset with its content type.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

pub(crate) async fn style() -> impl IntoResponse {
    asset(CSS, include_str!("../ui/style.css"))
}

pub(crate) async fn common_script() -> impl IntoResponse {
    asset(JS, include_str!("../ui/common.js"))
}

/// A product UI's paths: `/browser/ui/<name>/`, its `app.js` and the shared style sheet under it.
pub struct UiPaths {
    /// The page.
    pub page: &'static str,
    /// Its script.
    pub script: &'static str,
    /// The shared style sheet, under the UI's path.
    pub style: &'static str,
}

/// A browser UI's public rows: its page, its script, the shared style sheet (under the UI's
/// path) and the shared helper script.
pub(crate) fn rows(
    rows: &mut Vec<RouteSpec>,
    paths: &UiPaths,
    page_handler: fn() -> MethodRouter<AppState>,
    script_handler: fn() -> MethodRouter<AppState>,
) {
    for (path, handler) in [
        (paths.page, page_handler),
        (paths.script, script_handler),
        (paths.style, || get(style)),
        (COMMON_SCRIPT, || get(common_script)),
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
