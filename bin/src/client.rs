//! Commands that talk to a running service over its admin listener.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cryptoutil_actors::supervisor::tree::SupervisionNode;
use cryptoutil_federation::{tls, HttpsClient};

use crate::run::{endpoints_path, Endpoint};

/// A client trusting the PEM file at `ca_file`.
pub fn client(ca_file: &Path, timeout: Duration) -> anyhow::Result<HttpsClient> {
    let config = tls::client_config_from_file(ca_file)?;
    Ok(HttpsClient::new(config).with_timeout(timeout))
}

/// `cryptoutil healthcheck URL`: true when the URL answers 2xx to `method` (GET or POST).
pub async fn healthcheck(
    url: &str,
    ca_file: &Path,
    timeout: Duration,
    method: &str,
) -> anyhow::Result<bool> {
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => cryptoutil_federation::Method::GET,
        "POST" => cryptoutil_federation::Method::POST,
        other => return Err(anyhow!("--method: GET or POST, not {other}")),
    };
    let response = client(ca_file, timeout)?
        .send(method, url, &[], Default::default())
        .await?;
    Ok(response.status.is_success())
}

/// Reads `<data-dir>/endpoints.json`.
pub fn endpoints(data_dir: &Path) -> anyhow::Result<std::collections::BTreeMap<String, Endpoint>> {
    let path = endpoints_path(data_dir);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is a service running with this --data-dir?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `cryptoutil supervision`: the live tree from the admin listener at `admin_url`.
pub async fn supervision(admin_url: &str, ca_file: &Path) -> anyhow::Result<SupervisionNode> {
    let url = format!("{}/admin/v1/supervision", admin_url.trim_end_matches('/'));
    let response = client(ca_file, Duration::from_secs(10))?.get(&url).await?;
    if !response.status.is_success() {
        return Err(anyhow!(
            "{url} answered {}: {}",
            response.status,
            response.text()
        ));
    }
    Ok(serde_json::from_slice(&response.body)?)
}
