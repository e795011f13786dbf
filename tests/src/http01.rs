//! An ACME http-01 responder (RFC 8555 §8.3) on 127.0.0.1: every request for
//! `/.well-known/acme-challenge/<token>` is answered `<token>.<thumbprint>` (the key
//! authorization of the account key with that thumbprint), one request per connection.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Largest request head read.
const MAX_HEAD: usize = 4096;

/// Serves on `port` (0: one the system picks) until the returned task is aborted or the
/// process ends: the port bound, and the task.
pub async fn responder(port: u16, thumbprint: String) -> std::io::Result<(u16, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let thumbprint = thumbprint.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let token = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                    .unwrap_or_default();
                let body = format!("{token}.{thumbprint}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok((port, task))
}
