//! The browser UIs' shared assets and their rows: static HTML, JavaScript and CSS compiled into
//! the binary, served under `/browser/ui/`. The assets hold no data and are on the public
//! allow-list (like the login pages they link to); everything they show comes from
//! `/browser/api/v1/**`, which needs a session. No inline script or style: the pages run under
//! the /browser CSP unchanged. Each product's page and script live in its own folder.

use axum::http::{header, Method};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::auth::Realm;
use crate::route::{spec, Access, Handler, RouteSpec};

/// The helpers every UI script uses.
pub const COMMON_SCRIPT: &str = "/browser/ui/common.js";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A static asset with its content type.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

pub(crate) async fn style() -> impl IntoResponse {
    asset(CSS, include_str!("../ui/style.css"))
}

pub(crate) async fn common_script() -> impl IntoResponse {
    asset(JS, include_str!("../ui/common.js"))
}

/// A product's browser UI: where it is served and what it serves.
pub struct UiAssets {
    /// The page's path (`/browser/ui/<name>/`).
    pub page: &'static str,
    /// Its script's path.
    pub script: &'static str,
    /// The shared style sheet's path under the UI's.
    pub style: &'static str,
    /// The page (compiled in).
    pub html: &'static str,
    /// The script (compiled in).
    pub js: &'static str,
}

/// A product's browser UI type: served under `/browser/ui/<name>/`, its page and script
/// compiled in from `http/ui/<name>/` (paths relative to the invoking file: a product's
/// `http/src/<product>/mod.rs`).
macro_rules! product_ui {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        pub struct $ty;

        impl $crate::ui::Ui for $ty {
            const ASSETS: $crate::ui::UiAssets = $crate::ui::UiAssets {
                page: concat!("/browser/ui/", $name, "/"),
                script: concat!("/browser/ui/", $name, "/app.js"),
                style: concat!("/browser/ui/", $name, "/style.css"),
                html: include_str!(concat!("../../ui/", $name, "/index.html")),
                js: include_str!(concat!("../../ui/", $name, "/app.js")),
            };
        }
    };
}
pub(crate) use product_ui;

/// A product that has a browser UI.
pub trait Ui: Send + Sync + 'static {
    /// Its assets.
    const ASSETS: UiAssets;
}

async fn page<U: Ui>() -> impl IntoResponse {
    asset(HTML, U::ASSETS.html)
}

async fn script<U: Ui>() -> impl IntoResponse {
    asset(JS, U::ASSETS.js)
}

/// A browser UI's public rows: its page, its script, the shared style sheet (under the UI's
/// path) and the shared helper script.
pub(crate) fn rows<U: Ui>(rows: &mut Vec<RouteSpec>) {
    let assets = U::ASSETS;
    let handlers: [(&'static str, Handler); 4] = [
        (assets.page, || get(page::<U>)),
        (assets.script, || get(script::<U>)),
        (assets.style, || get(style)),
        (COMMON_SCRIPT, || get(common_script)),
    ];
    for (path, handler) in handlers {
        rows.push(spec(
            Some(Method::GET),
            path,
            Realm::Browser,
            Access::Public,
            handler,
        ));
    }
}
