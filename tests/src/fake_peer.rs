//! A controllable HTTPS peer on 127.0.0.1: its own self-signed P-256 certificate, TLS 1.3, an
//! answer (status and body) per path or one for every other request, and a behaviour changed
//! while it runs: answer, fail with a status, hang, answer slowly, or reset connections. It
//! counts requests per path. Tests stand it in for a federated service (an issuer publishing
//! its JWKS, identity-authz's introspection, the JOSE service, the CA).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How the peer treats requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer as routed.
    Answer,
    /// Answer every request with this status (an empty JSON object).
    Fail(u16),
    /// Never answer.
    Hang,
    /// Answer as routed after this long.
    Slow(Duration),
    /// Reset new connections and drop open ones without an answer.
    Reset,
}

/// Computes an answer from the request body (for peers that must echo what they are sent).
pub type Handler = Arc<dyn Fn(&[u8]) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
enum Answer {
    Fixed(u16, String),
    Computed(Handler),
}

struct Shared {
    default: Mutex<(u16, String)>,
    routes: Mutex<HashMap<String, Answer>>,
    behaviour: Mutex<Behaviour>,
    hits: AtomicUsize,
    hits_by_path: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake peer; stops when dropped.
pub struct FakePeer {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// PEM of its certificate, the only anchor a client needs.
    pub ca_pem: String,
    shared: Arc<Shared>,
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
        let shared = Arc::new(Shared {
            default: Mutex::new((200, body.to_owned())),
            routes: Mutex::default(),
            behaviour: Mutex::new(Behaviour::Answer),
            hits: AtomicUsize::new(0),
            hits_by_path: Mutex::default(),
        });
        let state = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                if *lock(&state.behaviour) == Behaviour::Reset {
                    let _ = tcp.set_zero_linger();
                    continue;
                }
                let (acceptor, state) = (acceptor.clone(), Arc::clone(&state));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        respond(Arc::clone(&state), req)
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
            shared,
            task,
        }
    }

    /// From now on every request not routed gets `status` and `body`.
    pub fn answer(&self, status: u16, body: &str) {
        *lock(&self.shared.default) = (status, body.to_owned());
    }

    /// Requests to `path` get `status` and `body`.
    pub fn route(&self, path: &str, status: u16, body: &str) {
        lock(&self.shared.routes).insert(path.to_owned(), Answer::Fixed(status, body.to_owned()));
    }

    /// Requests to `path` get what `handler` makes of their body.
    pub fn route_with(&self, path: &str, handler: Handler) {
        lock(&self.shared.routes).insert(path.to_owned(), Answer::Computed(handler));
    }

    /// From now on, `behaviour`.
    pub fn behave(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Requests to `path` so far (whatever they were answered).
    pub fn hits_of(&self, path: &str) -> usize {
        lock(&self.shared.hits_by_path)
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// The answer to one request, as the behaviour and routes say; an `Err` drops the connection
/// without an answer.
async fn respond(
    state: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let path = req.uri().path().to_owned();
    state.hits.fetch_add(1, Ordering::SeqCst);
    *lock(&state.hits_by_path).entry(path.clone()).or_default() += 1;
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let behaviour = *lock(&state.behaviour);
    let (status, text) = match behaviour {
        Behaviour::Hang => {
            std::future::pending::<Infallible>().await;
            return Err(std::io::Error::other("unreachable"));
        }
        Behaviour::Reset => return Err(std::io::Error::other("reset")),
        Behaviour::Fail(status) => (status, "{}".to_owned()),
        Behaviour::Answer | Behaviour::Slow(_) => {
            if let Behaviour::Slow(d) = behaviour {
                tokio::time::sleep(d).await;
            }
            let routed = lock(&state.routes).get(&path).cloned();
            match routed {
                Some(Answer::Fixed(status, body)) => (status, body),
                Some(Answer::Computed(handler)) => handler(&body),
                None => lock(&state.default).clone(),
            }
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .map_err(std::io::Error::other)
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
