//! A TCP fault proxy on 127.0.0.1, standing in for toxiproxy and netem (which this machine does
//! not have): it forwards bytes to an upstream address and, as told while it runs, delays them,
//! resets connections, swallows them (blackhole), limits bandwidth, or refuses connections.
//! TLS passes through untouched, so the client still verifies the upstream's certificate.
//!
//! The fault is read again for every chunk, so a change reaches connections that are already
//! open (a pooled connection is reset or blackholed mid-use, as a real network fault would).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    Pass,
    /// Hold every chunk this long before forwarding it (each direction).
    Delay(Duration),
    /// Reset every connection (RST, no FIN): new ones at once, open ones at their next chunk.
    Reset,
    /// Accept, then never forward or answer: the client waits for its own timeout.
    Blackhole,
    /// At most this many bytes per second, each direction.
    Bandwidth(u32),
    /// Stop listening: connections are refused, as to a dead host's closed port.
    Refuse,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `https://127.0.0.1:PORT` (the upstream's scheme is the caller's business).
    pub url: String,
    addr: SocketAddr,
    upstream: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    connections: Arc<AtomicUsize>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:(a free port) to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Self {
            url: format!("https://{addr}"),
            addr,
            upstream,
            fault: Arc::new(Mutex::new(Fault::Pass)),
            connections: Arc::default(),
            task: Mutex::new(None),
        };
        proxy.listen(listener);
        proxy
    }

    /// Forwards to the host and port of an `https://host:port` URL.
    pub async fn to_url(url: &str) -> Self {
        let authority = url.trim_start_matches("https://").trim_end_matches('/');
        let upstream: SocketAddr = authority.parse().expect("an ip:port URL");
        Self::start(upstream).await
    }

    fn listen(&self, listener: TcpListener) {
        let (fault, upstream, count) = (
            Arc::clone(&self.fault),
            self.upstream,
            Arc::clone(&self.connections),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(client, upstream, Arc::clone(&fault)));
            }
        });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// From now on, `fault`.
    pub async fn set(&self, fault: Fault) {
        let before = std::mem::replace(
            &mut *self.fault.lock().unwrap_or_else(PoisonError::into_inner),
            fault,
        );
        match (before, fault) {
            (Fault::Refuse, Fault::Refuse) => {}
            (_, Fault::Refuse) => {
                let task = self
                    .task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(task) = task {
                    task.abort();
                    let _ = task.await;
                }
            }
            (Fault::Refuse, _) => {
                // Listen again on the same port (the address the clients were given).
                let mut tries = 0;
                let listener = loop {
                    match TcpListener::bind(self.addr).await {
                        Ok(l) => break l,
                        Err(e) if tries < 100 => {
                            tries += 1;
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("rebinding {}: {e}", self.addr),
                    }
                };
                self.listen(listener);
            }
            _ => {}
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

fn current(fault: &Mutex<Fault>) -> Fault {
    *fault.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(client: TcpStream, upstream: SocketAddr, fault: Arc<Mutex<Fault>>) {
    match current(&fault) {
        Fault::Reset | Fault::Refuse => {
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Blackhole => {
            hold(client, &fault).await;
            return;
        }
        Fault::Pass | Fault::Delay(_) | Fault::Bandwidth(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut up = tokio::spawn(pump(cr, sw, Arc::clone(&fault)));
    let mut down = tokio::spawn(pump(sr, cw, fault));
    // A reset in one direction resets the other at once; an end (FIN) waits for the other side.
    let (first, other) = tokio::select! {
        r = &mut up => (r, down),
        r = &mut down => (r, up),
    };
    if matches!(first, Ok(End::Reset)) {
        other.abort();
    } else {
        let _ = other.await;
    }
}

/// How a direction ended.
enum End {
    /// The sender closed: the close was passed on.
    Closed,
    /// The proxy reset the connection.
    Reset,
}

/// Reads and discards whatever arrives until the fault changes, then drops the connection.
async fn hold(mut client: TcpStream, fault: &Mutex<Fault>) {
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(50), client.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ if current(fault) != Fault::Blackhole => {
                let _ = client.set_zero_linger();
                return;
            }
            _ => {}
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
) -> End {
    let reset = |from: &tokio::net::tcp::OwnedReadHalf, to: &tokio::net::tcp::OwnedWriteHalf| {
        // SO_LINGER 0: the close sends RST on both sockets once their halves drop.
        let _ = AsRef::<TcpStream>::as_ref(from).set_zero_linger();
        let _ = AsRef::<TcpStream>::as_ref(to).set_zero_linger();
        End::Reset
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Closed;
            }
            Err(_) => return reset(&from, &to),
            Ok(n) => n,
        };
        let mut chunk = buf.get(..n).unwrap_or_default();
        while !chunk.is_empty() {
            let send = match current(&fault) {
                Fault::Reset | Fault::Refuse => return reset(&from, &to),
                Fault::Blackhole => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Fault::Pass => chunk.len(),
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    chunk.len()
                }
                // Slices of at most a tenth of a second's worth, each followed by its time.
                Fault::Bandwidth(bps) => (bps as usize / 10).clamp(1, chunk.len()),
            };
            let (now, rest) = chunk.split_at(send);
            if to.write_all(now).await.is_err() {
                return reset(&from, &to);
            }
            if let Fault::Bandwidth(bps) = current(&fault) {
                let secs = now.len() as f64 / f64::from(bps.max(1));
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            chunk = rest;
        }
    }
}
