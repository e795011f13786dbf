//! A TLS 1.3 listener: accept, handshake with a deadline, serve HTTP/1.1 or HTTP/2, and on
//! shutdown stop accepting, let in-flight requests finish, and give up after the grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::tls::PeerCertificates;

/// A client must finish its TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// And send each HTTP/1.1 request head within this time (slow-loris defence).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving, listener.
pub struct Listener {
    tcp: TcpListener,
    tls: TlsAcceptor,
    local: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish()
    }
}

impl Listener {
    /// Binds `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr, tls: Arc<ServerConfig>) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        Ok(Self {
            tcp,
            tls: TlsAcceptor::from(tls),
            local,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `router` until `shutdown` turns true, then drains for at most `grace`.
    pub async fn serve(self, router: Router, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        tcp.set_nodelay(true).ok();
                        let watcher = graceful.watcher();
                        let (tls, router) = (self.tls.clone(), router.clone());
                        tokio::spawn(async move {
                            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await else {
                                return; // refused handshakes (TLS 1.2, bad client) end here
                            };
                            let certs = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .filter(|c| !c.is_empty())
                                .map(|c| PeerCertificates(Arc::new(c.to_vec())));
                            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                                req.extensions_mut().insert(ConnectInfo(peer));
                                if let Some(c) = &certs {
                                    req.extensions_mut().insert(c.clone());
                                }
                                router.clone().oneshot(req)
                            });
                            let mut builder = auto::Builder::new(TokioExecutor::new());
                            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                            let _ = watcher.watch(conn).await;
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%err, addr = %self.local, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        drop(self.tcp);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!(addr = %self.local, "grace period elapsed with connections still open");
            }
        }
    }
}
