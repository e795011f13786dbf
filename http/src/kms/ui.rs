//! The KMS's browser UI (`/browser/ui/kms/`).

use axum::response::IntoResponse;

use crate::ui::{asset, UiPaths, HTML, JS};

/// Where the KMS UI is served.
pub const PATHS: UiPaths = UiPaths {
    page: "/browser/ui/kms/",
    script: "/browser/ui/kms/app.js",
    style: "/browser/ui/kms/style.css",
};

pub(crate) async fn page() -> impl IntoResponse {
    asset(HTML, include_str!("../../ui/kms/index.html"))
}

pub(crate) async fn script() -> impl IntoResponse {
    asset(JS, include_str!("../../ui/kms/app.js"))
}
