//! A minimal HTTPS/1.1 client: TLS 1.3, a timeout on the whole exchange, a bound on the
//! response body. By default one connection a request (health checks, the CLI, tests); a
//! client made [`HttpsClient::pooled`] keeps idle connections per authority for reuse, as calls
//! between federated services want (a TLS handshake costs more than most of those calls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;

/// Default bound on response bodies.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// The body as UTF-8 (lossy), for messages and tests.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTPS client bound to one TLS configuration.
#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
    max_body: usize,
    pool: Option<Arc<Pool>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle HTTP/1.1 connections by authority.
struct Pool {
    idle: Mutex<HashMap<String, Vec<Sender>>>,
    max_idle: usize,
}

impl Pool {
    /// An idle connection to `authority` that can take a request now.
    fn take(&self, authority: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        while let Some(sender) = list.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, authority: String, sender: Sender) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(authority).or_default();
        if list.len() < self.max_idle {
            list.push(sender);
        }
    }
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A parsed `https://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (443 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpsUrl {
    /// Parses an https URL; anything else is refused.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |reason| Error::Url {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// URLs are allowed"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("missing host, or user info present"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unterminated IPv6 literal"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl HttpsClient {
    /// A client using `tls`, with a 10 s timeout and a 4 MiB body bound.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        Self {
            tls,
            timeout: Duration::from_secs(10),
            max_body: DEFAULT_MAX_BODY,
            pool: None,
        }
    }

    /// The same client keeping up to `max_idle` idle connections per authority for reuse
    /// (clones share them).
    pub fn pooled(mut self, max_idle: usize) -> Self {
        self.pool = Some(Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
        }));
        self
    }

    /// The timeout of the whole exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same client with another timeout for the whole exchange.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Response, Error> {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    /// Sends one request with `headers` and `body`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, Error> {
        let parsed = HttpsUrl::parse(url)?;
        let authority = parsed.authority();
        let exchange = self.exchange(method, &parsed, headers, body);
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                authority,
                timeout: self.timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        url: &HttpsUrl,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, Error> {
        let authority = url.authority();
        let build = || {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(url.path.as_str())
                .header("host", &authority);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request
                .body(Full::new(body.clone()))
                .map_err(|_| Error::Url {
                    url: url.path.clone(),
                    reason: "bad request header",
                })
        };
        if let Some(pool) = &self.pool {
            if let Some(sender) = pool.take(&authority) {
                // The peer may have closed an idle connection as we took it: only an error
                // before any answer on a reused connection is tried again on a new one.
                match self.roundtrip(sender, build()?, &authority).await {
                    Ok((response, sender)) => {
                        pool.put(authority, sender);
                        return Ok(response);
                    }
                    Err(Error::Http { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let (sender, driver) = self.connect(url, &authority).await?;
        let result = self.roundtrip(sender, build()?, &authority).await;
        match (&self.pool, result) {
            (Some(pool), Ok((response, sender))) => {
                // The driver task lives on with the connection; it ends when the pool drops it.
                pool.put(authority, sender);
                Ok(response)
            }
            (_, result) => {
                driver.abort();
                result.map(|(response, _)| response)
            }
        }
    }

    /// A new TLS connection to `url` and the task that drives it.
    async fn connect(
        &self,
        url: &HttpsUrl,
        authority: &str,
    ) -> Result<(Sender, tokio::task::JoinHandle<()>), Error> {
        let server_name = ServerName::try_from(url.host.clone()).map_err(|_| Error::Url {
            url: url.host.clone(),
            reason: "bad host name",
        })?;
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| Error::Connect {
                authority: authority.to_owned(),
                source,
            })?;
        tcp.set_nodelay(true).ok();
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(server_name, tcp)
            .await
            .map_err(|source| Error::Tls {
                authority: authority.to_owned(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| Error::Http {
                authority: authority.to_owned(),
                source,
            })?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, driver))
    }

    /// One request on `sender`, its body read whole; the sender comes back for reuse.
    async fn roundtrip(
        &self,
        mut sender: Sender,
        request: Request<Full<Bytes>>,
        authority: &str,
    ) -> Result<(Response, Sender), Error> {
        let http = |source| Error::Http {
            authority: authority.to_owned(),
            source,
        };
        sender.ready().await.map_err(http)?;
        let response = sender.send_request(request).await.map_err(http)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::TooLarge {
                        authority: authority.to_owned(),
                        limit: self.max_body,
                    }
                } else {
                    Error::Body {
                        authority: authority.to_owned(),
                        reason: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        Ok((
            Response {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            sender,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_urls_only() {
        let u = HttpsUrl::parse("https://127.0.0.1:8443/admin/v1/livez").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8443, "/admin/v1/livez")
        );
        let u = HttpsUrl::parse("https://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(HttpsUrl::parse("https://example.test").unwrap().port, 443);
        for bad in [
            "http://x/",
            "https://",
            "https://:80/",
            "https://x:0/",
            "https://x:99999/",
            "https://u@x/",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
