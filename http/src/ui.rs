//! The browser UIs: static HTML, JavaScript and CSS compiled into the binary, served under
//! `/browser/ui/`. The assets hold no data and are on the public allow-list (like the login
//! pages they link to); everything they show comes from `/browser/api/v1/**`, which needs a
//! session. No inline script or style: the pages run under the /browser CSP unchanged.

use axum::http::header;
use axum::response::IntoResponse;

/// The JOSE UI page.
pub const JOSE_PAGE: &str = "/browser/ui/jose/";
/// Its script.
pub const JOSE_SCRIPT: &str = "/browser/ui/jose/app.js";
/// Its style sheet.
pub const JOSE_STYLE: &str = "/browser/ui/jose/style.css";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

pub(crate) async fn jose_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("../ui/jose/index.html"),
    )
}

pub(crate) async fn jose_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../ui/jose/app.js"),
    )
}

pub(crate) async fn jose_style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CSS)],
        include_str!("../ui/jose/style.css"),
    )
}
