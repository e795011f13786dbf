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
/// The KMS UI page.
pub const KMS_PAGE: &str = "/browser/ui/kms/";
/// Its script.
pub const KMS_SCRIPT: &str = "/browser/ui/kms/app.js";
/// Its style sheet (the same as the JOSE UI's).
pub const KMS_STYLE: &str = "/browser/ui/kms/style.css";
/// The helpers every UI script uses.
pub const COMMON_SCRIPT: &str = "/browser/ui/common.js";

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

pub(crate) async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CSS)],
        include_str!("../ui/style.css"),
    )
}

pub(crate) async fn common_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../ui/common.js"),
    )
}

pub(crate) async fn kms_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("../ui/kms/index.html"),
    )
}

pub(crate) async fn kms_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../ui/kms/app.js"),
    )
}
