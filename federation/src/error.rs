//! The error enum of `cryptoutil-federation`.

/// Who is at fault: only `Upstream` failures will count toward opening a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The peer: refused, reset, timed out, answered 5xx or garbage.
    Upstream,
    /// Our caller: a bad URL or request.
    Downstream,
    /// This process: configuration or resources.
    Internal,
}

/// What can go wrong on an outbound call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `https://host[:port]/path`.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A trust anchor could not be read.
    #[error("trust anchors: {reason}")]
    TrustAnchors {
        /// What is wrong.
        reason: String,
    },
    /// This process's client certificate or key could not be read.
    #[error("client certificate: {reason}")]
    ClientCertificate {
        /// What is wrong.
        reason: String,
    },
    /// TCP connect failed.
    #[error("connect to {authority}: {source}")]
    Connect {
        /// host:port.
        authority: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, protocol version, ...).
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        /// host:port.
        authority: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {authority}: {source}")]
    Http {
        /// host:port.
        authority: String,
        /// The error.
        #[source]
        source: hyper::Error,
    },
    /// The response body broke off (connection reset, bad framing).
    #[error("response body from {authority}: {reason}")]
    Body {
        /// host:port.
        authority: String,
        /// What went wrong.
        reason: String,
    },
    /// The response body is larger than the caller allows.
    #[error("response from {authority} exceeds {limit} bytes")]
    TooLarge {
        /// host:port.
        authority: String,
        /// The limit.
        limit: usize,
    },
    /// No answer in time.
    #[error("{authority} did not answer within {timeout:?}")]
    Timeout {
        /// host:port.
        authority: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl Error {
    /// Who is at fault.
    pub fn source_kind(&self) -> Source {
        match self {
            Error::Url { .. } => Source::Downstream,
            Error::TrustAnchors { .. } | Error::ClientCertificate { .. } | Error::Config(_) => {
                Source::Internal
            }
            Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Http { .. }
            | Error::Body { .. }
            | Error::TooLarge { .. }
            | Error::Timeout { .. } => Source::Upstream,
        }
    }
}
