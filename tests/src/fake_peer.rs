//! A controllable HTTPS peer on 127.0.0.1: its own self-signed P-256 certificate, TLS 1.3, and
//! one answer (status and body) for every request, changed while it runs; it counts requests.
//! Tests stand it in for a federated service (here: an issuer publishing its JWKS).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A running fake peer; stops when dropped.
pub struct FakePeer {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// PEM of its certificate, the only anchor a client needs.
    pub ca_pem: String,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePeer {
    /// Starts answering every request with 200 and `body`.
    pub async fn start(body: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        let config =
            rustls::ServerConfig::builder_with_provider(cryptoutil_protocols::tls::provider())
                .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new((200u16, body.to_owned())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (Arc::clone(&answer), Arc::clone(&hits));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, a, h) = (acceptor.clone(), Arc::clone(&a), Arc::clone(&h));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let (status, body) =
                            a.lock().unwrap_or_else(PoisonError::into_inner).clone();
                        async move {
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            base,
            ca_pem,
            answer,
            hits,
            task,
        }
    }

    /// From now on every request gets `status` and `body`.
    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = (status, body.to_owned());
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
