//! The JOSE's browser UI (`/browser/ui/jose/`).

use axum::response::IntoResponse;

use crate::ui::{asset, UiPaths, HTML, JS};

/// Where the JOSE UI is served.
pub const PATHS: UiPaths = UiPaths {
    page: "/browser/ui/jose/",
    script: "/browser/ui/jose/app.js",
    style: "/browser/ui/jose/style.css",
};

pub(crate) async fn page() -> impl IntoResponse {
    asset(HTML, include_str!("../../ui/jose/index.html"))
}

pub(crate) async fn script() -> impl IntoResponse {
    asset(JS, include_str!("../../ui/jose/app.js"))
}
