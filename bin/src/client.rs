//! Commands that talk to a running service over its admin listener.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cryptoutil_actors::supervisor::tree::SupervisionNode;
use cryptoutil_federation::{tls, HttpsClient};
use zeroize::Zeroizing;

use crate::run::{endpoints_path, Endpoint};

/// A client trusting the PEM file at `ca_file`.
pub fn client(ca_file: &Path, timeout: Duration) -> anyhow::Result<HttpsClient> {
    let config = tls::client_config_from_file(ca_file)?;
    Ok(HttpsClient::new(config).with_timeout(timeout))
}

/// The admin token to send to `url`: the file's content when `token_file` is given, else the
/// configuration's own `admin.token` but only to a loopback address, where admin listeners are
/// (empty: none).
pub fn admin_token(
    config: &crate::config::AppConfig,
    token_file: Option<&Path>,
    url: &str,
) -> anyhow::Result<Zeroizing<String>> {
    let Some(path) = token_file else {
        let loopback = cryptoutil_federation::client::HttpsUrl::parse(url).is_ok_and(|u| {
            u.host == "localhost"
                || u.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let token = if loopback {
            config.admin.token.expose()
        } else {
            ""
        };
        return Ok(Zeroizing::new(token.to_owned()));
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the admin token file {}", path.display()))?,
    );
    let token = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if token.is_empty() {
        return Err(anyhow!("the admin token file {} is empty", path.display()));
    }
    Ok(token)
}

/// `Authorization: Bearer` for `token`, when there is one.
fn bearer(token: &str) -> Option<Zeroizing<String>> {
    (!token.is_empty()).then(|| Zeroizing::new(format!("Bearer {token}")))
}

/// `cryptoutil healthcheck URL`: true when the URL answers 2xx to `method` (GET, or POST with
/// an empty JSON object), with the admin `token` if there is one.
pub async fn healthcheck(
    url: &str,
    ca_file: &Path,
    timeout: Duration,
    method: &str,
    token: &str,
) -> anyhow::Result<bool> {
    let (method, body) = match method.to_ascii_uppercase().as_str() {
        "GET" => (cryptoutil_federation::Method::GET, ""),
        "POST" => (cryptoutil_federation::Method::POST, "{}"),
        other => return Err(anyhow!("--method: GET or POST, not {other}")),
    };
    let authorization = bearer(token);
    let mut headers = Vec::new();
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(value) = &authorization {
        headers.push(("authorization", value.as_str()));
    }
    let response = client(ca_file, timeout)?
        .send(method, url, &headers, body.as_bytes().to_vec().into())
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
pub async fn supervision(
    admin_url: &str,
    ca_file: &Path,
    token: &str,
) -> anyhow::Result<SupervisionNode> {
    let url = format!("{}/admin/v1/supervision", admin_url.trim_end_matches('/'));
    let authorization = bearer(token);
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    let response = client(ca_file, Duration::from_secs(10))?
        .send(
            cryptoutil_federation::Method::GET,
            &url,
            &headers,
            Default::default(),
        )
        .await?;
    if !response.status.is_success() {
        return Err(anyhow!(
            "{url} answered {}: {}",
            response.status,
            response.text()
        ));
    }
    Ok(serde_json::from_slice(&response.body)?)
}
