//! How identity-idp sends mail (magic links): by SMTP (RFC 5321) over TLS 1.3, STARTTLS
//! (RFC 3207, required: a server that does not offer it gets nothing in the clear) or
//! implicit TLS (RFC 8314), with `AUTH PLAIN` when credentials are configured; or, on the
//! embedded default, into an outbox directory, one `.eml` file per message (mode 0600), for
//! a developer to open; messages older than a link lives are removed as new ones come.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cryptoutil_protocols::mail::{self, MAX_REPLY_LINE};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain TCP upgraded with STARTTLS before anything else is sent (submission, port 587).
    StartTls,
    /// TLS from the first byte (submissions, port 465).
    Implicit,
}

/// An SMTP relay.
pub struct Smtp {
    /// Its host name (the name its certificate must carry) or IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// The TLS 1.3 client configuration (its trust anchors).
    pub tls_config: Arc<rustls::ClientConfig>,
    /// `AUTH PLAIN` credentials: user name and password.
    pub credentials: Option<(String, Zeroizing<String>)>,
    /// The name this side gives in `EHLO`.
    pub helo: String,
    /// How long one message may take, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("auth", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Mailer {
    /// An outbox directory.
    Outbox(PathBuf),
    /// An SMTP relay.
    Smtp(Arc<Smtp>),
}

/// A message to send: its envelope and its rendered text (RFC 5322, CRLF).
pub struct Outgoing {
    /// The envelope sender.
    pub from: String,
    /// The one recipient.
    pub to: String,
    /// The message.
    pub text: Zeroizing<String>,
}

impl Mailer {
    /// Sends `message`; why not, for the log (never the message).
    pub async fn send(&self, message: &Outgoing) -> Result<(), String> {
        match self {
            Self::Outbox(dir) => {
                let (dir, text) = (dir.clone(), message.text.clone());
                tokio::task::spawn_blocking(move || write_outbox(&dir, &text))
                    .await
                    .map_err(|e| format!("outbox task: {e}"))?
            }
            Self::Smtp(smtp) => tokio::time::timeout(smtp.timeout, smtp.send(message))
                .await
                .map_err(|_| format!("SMTP: no answer within {:?}", smtp.timeout))?,
        }
    }
}

fn write_outbox(dir: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder
        .create(dir)
        .map_err(|e| format!("outbox {}: {e}", dir.display()))?;
    let id = cryptoutil_protocols::oauth::random_token(9).map_err(|e| e.to_string())?;
    // Milliseconds first: the names sort as the messages were written.
    let millis = crate::now_millis();
    let name = format!("{millis:013}-{}", id.as_str());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("outbox {}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("outbox {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(format!("{name}.eml")))
        .map_err(|e| format!("outbox {}: {e}", dir.display()))?;
    prune(dir, millis);
    Ok(())
}

/// Removes the outbox's messages older than a magic link lives (their links are dead).
fn prune(dir: &std::path::Path, now_millis: u64) {
    let ttl = super::factors::magic_link::LINK_TTL.saturating_mul(1000);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let written = name
            .to_str()
            .filter(|n| n.ends_with(".eml"))
            .and_then(|n| n.split('-').next())
            .and_then(|m| m.parse::<u64>().ok());
        if written.is_some_and(|w| w.saturating_add(ttl) < now_millis) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The last reply's code and its lines' text.
async fn reply<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let limit = u64::try_from(MAX_REPLY_LINE).unwrap_or(512) + 2;
        let n = (&mut *s)
            .take(limit)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("SMTP read: {e}"))?;
        if n == 0 {
            return Err("SMTP: the server closed the connection".into());
        }
        if !line.ends_with('\n') {
            return Err("SMTP: a reply line longer than 512 octets".into());
        }
        let (code, more) = mail::reply_line(&line).map_err(|e| format!("SMTP: {e}"))?;
        lines.push(line.get(4..).unwrap_or_default().trim_end().to_owned());
        if !more {
            return Ok((code, lines));
        }
        if lines.len() > 100 {
            return Err("SMTP: a reply of more than 100 lines".into());
        }
    }
}

/// Writes `bytes` and flushes them.
async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    bytes: &[u8],
) -> Result<(), String> {
    let out = s.get_mut();
    out.write_all(bytes)
        .await
        .map_err(|e| format!("SMTP write: {e}"))?;
    out.flush().await.map_err(|e| format!("SMTP write: {e}"))
}

/// The next reply's lines, if its code is one of `want` (else what it said, for `shown`).
async fn expect<S: AsyncRead + Unpin>(
    s: &mut BufReader<S>,
    want: &[u16],
    shown: &str,
) -> Result<Vec<String>, String> {
    let (code, lines) = reply(s).await?;
    if want.contains(&code) {
        Ok(lines)
    } else {
        Err(format!(
            "SMTP {shown}: {code} {}",
            lines.last().map_or("", String::as_str)
        ))
    }
}

/// Sends `command` (without CRLF) and reads the reply: its lines, if its code is `want`.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    command: &str,
    want: &[u16],
    shown: &str,
) -> Result<Vec<String>, String> {
    let line = Zeroizing::new(format!("{command}\r\n"));
    write(s, line.as_bytes()).await?;
    expect(s, want, shown).await
}

impl Smtp {
    async fn send(&self, message: &Outgoing) -> Result<(), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("SMTP connect {}:{}: {e}", self.host, self.port))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| format!("SMTP: {:?} is not a host name", self.host))?;
        let connector = TlsConnector::from(Arc::clone(&self.tls_config));
        match self.tls {
            SmtpTls::Implicit => {
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("SMTP TLS: {e}"))?;
                let mut s = BufReader::new(tls);
                self.greeted(&mut s).await?;
                self.session(&mut s, message).await
            }
            SmtpTls::StartTls => {
                let mut s = BufReader::new(tcp);
                let offered = self.greeted(&mut s).await?;
                if !offered.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                    return Err(
                        "SMTP: the server does not offer STARTTLS (nothing is sent in the clear)"
                            .into(),
                    );
                }
                command(&mut s, "STARTTLS", &[220], "STARTTLS").await?;
                // Anything the server sent after its 220 came before the handshake: an
                // injection (CVE-2011-0411's kind), not part of the session.
                if !s.buffer().is_empty() {
                    return Err("SMTP: data after the STARTTLS reply".into());
                }
                let tls = connector
                    .connect(name, s.into_inner())
                    .await
                    .map_err(|e| format!("SMTP TLS: {e}"))?;
                let mut s = BufReader::new(tls);
                command(&mut s, &format!("EHLO {}", self.helo), &[250], "EHLO").await?;
                self.session(&mut s, message).await
            }
        }
    }

    /// The greeting and `EHLO`: the extensions the server offers.
    async fn greeted<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut BufReader<S>,
    ) -> Result<Vec<String>, String> {
        expect(s, &[220], "greeting").await?;
        command(s, &format!("EHLO {}", self.helo), &[250], "EHLO").await
    }

    /// Authentication, the envelope, the message, the end.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut BufReader<S>,
        message: &Outgoing,
    ) -> Result<(), String> {
        if let Some((user, password)) = &self.credentials {
            let plain = Zeroizing::new(format!("\0{user}\0{}", password.as_str()));
            let encoded =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()));
            let auth = Zeroizing::new(format!("AUTH PLAIN {}", encoded.as_str()));
            command(s, &auth, &[235], "AUTH PLAIN").await?;
        }
        command(
            s,
            &format!("MAIL FROM:<{}>", message.from),
            &[250],
            "MAIL FROM",
        )
        .await?;
        command(
            s,
            &format!("RCPT TO:<{}>", message.to),
            &[250, 251],
            "RCPT TO",
        )
        .await?;
        command(s, "DATA", &[354], "DATA").await?;
        let data = Zeroizing::new(mail::dot_stuffed(&message.text));
        write(s, data.as_bytes()).await?;
        expect(s, &[250], "message").await?;
        // Sent: a failed QUIT changes nothing.
        let _ = command(s, "QUIT", &[221], "QUIT").await;
        Ok(())
    }
}
