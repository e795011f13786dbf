//! A TLS 1.3 listener: accept, handshake with a deadline, serve HTTP/1.1 or HTTP/2, and on
//! shutdown stop accepting, let in-flight requests finish, and give up after the grace period.
//! One kind of listener serves without TLS: the CA's opt-in distribution listener
//! ([`Listener::bind_plain`]), for CRLs, CA certificates and OCSP, which relying parties fetch
//! before they can trust any TLS.
//!
//! What keeps a listener from being held by clients that do nothing (`http.connections`):
//! - at most `max_per_address` open connections per client address, more are closed at accept;
//! - a connection with no request in progress for `idle_timeout` is closed (gracefully: HTTP/1.1
//!   after its last answer, HTTP/2 with a GOAWAY), counted from accept and from each answer's
//!   end;
//! - a request body that has not arrived whole `body_read_timeout` after its head fails to read
//!   (the handler answers 400 and the connection closes, its body unread).

use std::collections::HashMap;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::ConnectionConfig;
use crate::metrics;
use crate::tls::PeerCertificates;

/// A client must finish its TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// And send each HTTP/1.1 request head within this time (slow-loris defence).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection's graceful close may take before it is dropped (HTTP/2 waits
/// for the client to answer the PING that follows its GOAWAY; a silent client never does).
const IDLE_CLOSE_BOUND: Duration = Duration::from_secs(2);

/// A bound, not yet serving, listener.
pub struct Listener {
    tcp: TcpListener,
    /// None: plain HTTP (the CA's distribution listener only).
    tls: Option<TlsAcceptor>,
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
            tls: Some(TlsAcceptor::from(tls)),
            local,
        })
    }

    /// Binds `addr` for plain HTTP: only for routes that serve signed objects anyone may
    /// fetch (the CA's distribution router).
    pub async fn bind_plain(addr: SocketAddr) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        Ok(Self {
            tcp,
            tls: None,
            local,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `router` under `limits` until `shutdown` turns true, then drains for at most
    /// `grace`.
    pub async fn serve(
        self,
        router: Router,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
        limits: ConnectionConfig,
    ) {
        let per_address = PerAddress::new(limits.max_per_address.get());
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let Some(slot) = per_address.take(peer.ip()) else {
                            metrics::connection_refused("per_address_limit");
                            tracing::debug!(%peer, addr = %self.local, "connection refused: per-address limit");
                            continue; // dropping `tcp` closes it
                        };
                        tcp.set_nodelay(true).ok();
                        connections.spawn(serve_connection(Connection {
                            tcp,
                            peer,
                            tls: self.tls.clone(),
                            router: router.clone(),
                            shutdown: shutdown.clone(),
                            limits,
                            _slot: slot,
                        }));
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%err, addr = %self.local, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        drop(self.tcp);
        // Each connection saw the shutdown itself and is closing gracefully.
        let drain = async { while connections.join_next().await.is_some() {} };
        tokio::select! {
            () = drain => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!(addr = %self.local, "grace period elapsed with connections still open");
                connections.abort_all();
            }
        }
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: watch::Receiver<bool>,
    limits: ConnectionConfig,
    /// Its place in the per-address count, given back when the connection ends.
    _slot: Slot,
}

async fn serve_connection(c: Connection) {
    let Connection {
        tcp,
        peer,
        tls,
        router,
        shutdown,
        limits,
        _slot,
    } = c;
    let serving = Serving {
        peer,
        router,
        shutdown,
        limits,
    };
    match tls {
        None => serving.serve(tcp, None).await,
        Some(tls) => {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await
            else {
                return; // refused handshakes (TLS 1.2, bad client) end here
            };
            let certs = stream
                .get_ref()
                .1
                .peer_certificates()
                .filter(|c| !c.is_empty())
                .map(|c| PeerCertificates(Arc::new(c.to_vec())));
            serving.serve(stream, certs).await;
        }
    }
}

/// What serving one connection's requests needs, once its stream is ready.
struct Serving {
    peer: SocketAddr,
    router: Router,
    shutdown: watch::Receiver<bool>,
    limits: ConnectionConfig,
}

impl Serving {
    async fn serve<S>(self, stream: S, certs: Option<PeerCertificates>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Serving {
            peer,
            router,
            mut shutdown,
            limits,
        } = self;
        let activity = Arc::new(Activity::new());
        let tracker = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let in_flight = InFlight::begin(&tracker);
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(c) = &certs {
                req.extensions_mut().insert(c.clone());
            }
            let req = req.map(|body| {
                if body.is_end_stream() {
                    Body::new(body)
                } else {
                    Body::new(TimedBody::new(body, limits.body_read_timeout))
                }
            });
            // A HEAD answer has the GET answer's headers and no body, whoever made it (a
            // middleware's refusal too): hyper drops it on HTTP/1.1 but would send it on h2.
            let head = req.method() == axum::http::Method::HEAD;
            let answer = router.clone().oneshot(req);
            async move {
                let response = answer.await?;
                // The request is in progress until its answer's body is sent (or dropped).
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                    body: if head { Body::empty() } else { body },
                    _in_flight: in_flight,
                }))
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::pin!(conn);
        let idle = tokio::select! {
            _ = conn.as_mut() => return,
            () = shutdown_requested(&mut shutdown) => false,
            () = activity.idle_for(limits.idle_timeout) => true,
        };
        conn.as_mut().graceful_shutdown();
        if idle {
            metrics::connection_closed_idle();
            // Nothing is in progress: the close is immediate (HTTP/2: after its GOAWAY). Bound
            // it.
            let _ = tokio::time::timeout(IDLE_CLOSE_BOUND, conn).await;
        } else {
            // In-flight requests finish; the listener aborts what outlives the grace period.
            let _ = conn.await;
        }
    }
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// When a connection last had nothing in progress, and how much it has now.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the end of the last request (0: none yet).
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// Returns once the connection has had no request in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let since =
                self.start + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            let now = Instant::now();
            let next = if self.in_flight.load(Ordering::Acquire) > 0 {
                now + timeout // busy: look again later (its end restarts the count)
            } else if now >= since + timeout {
                return;
            } else {
                since + timeout
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// One request in progress on a connection; its end restarts the connection's idle count.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.fetch_max(elapsed, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body, which keeps its request in progress until it is sent or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails to read once `limit` has passed since its request began.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    began: Instant,
    /// Armed on the first read that has to wait.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            began: Instant::now(),
            deadline: None,
        }
    }
}

/// The error a [`TimedBody`] reads once its time is up.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (http.connections.body_read_timeout)")]
pub struct BodyReadTimeout(Duration);

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let (began, limit) = (this.began, this.limit);
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(began + limit)));
        if deadline.as_mut().poll(cx).is_ready() {
            metrics::body_read_timeout();
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Open connections per client address on one listener.
#[derive(Clone)]
struct PerAddress {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max: u32,
}

impl PerAddress {
    fn new(max: u32) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// A place for one more connection from `ip`, if it holds fewer than the limit.
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`PerAddress`].
struct Slot {
    owner: PerAddress,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_places_back_as_connections_end() {
        let limit = PerAddress::new(2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = limit.take(a).unwrap();
        let _second = limit.take(a).unwrap();
        assert!(limit.take(a).is_none(), "a third from the same address");
        let _other = limit.take(b).expect("another address has its own count");
        drop(first);
        assert!(limit.take(a).is_some(), "a place given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_when_nothing_has_been_in_progress_for_the_timeout() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(30);
        // From the start: idle after 30 s.
        let t0 = Instant::now();
        activity.idle_for(timeout).await;
        assert_eq!(t0.elapsed(), timeout);

        // A request in progress for 100 s: not idle until 30 s after it ends.
        let request = InFlight::begin(&activity);
        let watcher = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                let t = Instant::now();
                activity.idle_for(timeout).await;
                t.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_secs(100)).await;
        drop(request);
        let waited = watcher.await.unwrap();
        assert!(
            waited >= Duration::from_secs(130) && waited <= Duration::from_secs(131),
            "{waited:?}"
        );
    }
}
