//! Magic links: an operator enrolls a user's address; the login page's "email me a sign-in
//! link" answers alike for any address and mails a link only to an address someone has; the
//! link signs in once, within its time, in the browser that asked, and a user with a second
//! factor still gives it. On the embedded default the mail lands in the outbox; configured
//! with a relay, it goes through aiosmtpd (PyPI, a server no one here wrote) over STARTTLS
//! with AUTH PLAIN, and the mailer refuses a relay that offers no STARTTLS or presents a
//! certificate it does not trust.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use cryptoutil_actors::identity::idp::mail::{Mailer, Outgoing, Smtp, SmtpTls};
use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::code_flow::{
    fixture, fixture_with, hidden, location, login_page, query, redeem, rp_client, Browser, Fixture,
};
use super::identity::{api, claims};
use super::signin_factors::new_user;

/// Asks for a link to `address` on a fresh login page of `b`: the request's challenge and
/// the page answered.
async fn ask_link(b: &mut Browser<'_>, client_id: &str, address: &str) -> (String, String) {
    let (_, challenge, csrf) = login_page(b, client_id, &[]).await;
    let idp = b.app.public(ServiceName::IdentityIdp).to_owned();
    let r = b
        .post(
            &format!("{idp}/browser/login/link"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("address", address),
            ],
            Some(&idp),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (challenge, r.text())
}

/// The files of `dir` ending in `suffix`, sorted, once there are `n` of them (10 s at most).
fn files(dir: &Path, suffix: &str, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        if found.len() >= n || Instant::now() > deadline {
            assert_eq!(found.len(), n, "{found:?} in {}", dir.display());
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one file of `now` not in `before`.
fn newest(now: &[PathBuf], before: &[PathBuf]) -> PathBuf {
    let new: Vec<&PathBuf> = now.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{now:?} after {before:?}");
    new[0].clone()
}

/// The link in a mail.
fn link_in(mail: &str) -> String {
    mail.lines()
        .find(|l| l.contains("/browser/login/link?token="))
        .unwrap_or_else(|| panic!("a link in {mail}"))
        .trim()
        .to_owned()
}

/// Opens `link` in `b` and goes on from its page: the status and where it goes (a
/// redirect) or the page. The page itself spends nothing (a mail scanner fetches it).
async fn open(b: &mut Browser<'_>, link: &str) -> (u16, String) {
    let r = b.get(link).await;
    if r.status != 200 {
        return (u16::from(r.status), r.text());
    }
    let page = r.text();
    assert!(page.contains("id=\"open-link\""), "{page}");
    let origin = b.app.public(ServiceName::IdentityIdp).to_owned();
    let r = b
        .post(
            &format!("{origin}/browser/login/link/open"),
            &[
                ("challenge", hidden(&page, "challenge").as_str()),
                ("csrf", &hidden(&page, "csrf")),
                ("token", &hidden(&page, "token")),
            ],
            Some(&origin),
        )
        .await;
    let status = u16::from(r.status);
    (status, location(&r).unwrap_or_else(|| r.text()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_magic_link_from_the_outbox_signs_in_once_in_the_browser_that_asked() {
    let Fixture {
        _dir,
        data,
        app,
        operator,
        ..
    } = fixture().await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "hana").await;
    new_user(&app, &operator, "ivan").await;
    let idp = ServiceName::IdentityIdp;
    let enroll = |user: &str, body: Value| {
        let (app, operator) = (&app, &operator);
        let path = format!("/identity/users/{user}/factors");
        async move { api(app, idp, operator, Method::POST, &path, Some(body)).await }
    };
    let (status, v) = enroll(
        "hana",
        json!({"type": "magic_link", "address": "Hana@Example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["address"], "hana@example.com", "{v}");
    // One address, one user of a tenant; a malformed address is refused.
    let (status, v) = enroll(
        "ivan",
        json!({"type": "magic_link", "address": "hana@example.com"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let (status, v) = enroll(
        "ivan",
        json!({"type": "magic_link", "address": "ivan at example"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // Asked for hana's address and for nobody's: the same page (but for the request's
    // challenge), a binding cookie in both browsers, one mail.
    let outbox = data.join("outbox");
    let mut b = Browser::new(&app);
    let (challenge, page) = ask_link(&mut b, &client_id, "HANA@example.com").await;
    let mut nobody = Browser::new(&app);
    let (other_challenge, other_page) =
        ask_link(&mut nobody, &client_id, "nobody@example.com").await;
    assert!(page.contains("id=\"link-sent\""), "{page}");
    assert_eq!(
        page.replace(&challenge, ""),
        other_page.replace(&other_challenge, ""),
        "the answer does not tell whether the address is anyone's"
    );
    assert!(b.cookie("__Host-cryptoutil-idp-link").is_some());
    assert!(nobody.cookie("__Host-cryptoutil-idp-link").is_some());
    let first = files(&outbox, ".eml", 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        files(&outbox, ".eml", 1),
        first,
        "nothing for nobody@example.com"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&first[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the outbox is its owner's only");
    }
    let mail = std::fs::read_to_string(&first[0]).unwrap();
    assert!(mail.contains("\r\nTo: hana@example.com\r\n"), "{mail}");
    assert!(
        mail.starts_with("From: no-reply@cryptoutil.invalid\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("\r\nSubject: Your sign-in link\r\n"),
        "{mail}"
    );
    let link = link_in(&mail);

    // Fetched (as a mail scanner does): nothing spent. Opened in another browser: refused,
    // and not spent either: the browser that asked signs in with it (one factor, amr otp),
    // once.
    let mut scanner = Browser::new(&app);
    assert_eq!(scanner.get(&link).await.status, 200);
    let mut thief = Browser::new(&app);
    let (status, page) = open(&mut thief, &link).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("does not sign you in"), "{page}");
    let (status, to) = open(&mut b, &link).await;
    assert_eq!(status, 303, "{to}");
    assert!(
        b.cookie("__Host-cryptoutil-idp-link").is_none(),
        "the cookie served"
    );
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["otp"]), "{id}");
    assert_eq!(id["acr"], "urn:cryptoutil:acr:password", "{id}");
    let (status, page) = open(&mut b, &link).await;
    assert_eq!(status, 404, "used: {page}");
    // A link asked on another request in another browser does not push out this one.
    let mut b = Browser::new(&app);
    let (_, _) = ask_link(&mut b, &client_id, "hana@example.com").await;
    let second = files(&outbox, ".eml", 2);
    let link = link_in(&std::fs::read_to_string(newest(&second, &first)).unwrap());
    let mut other = Browser::new(&app);
    ask_link(&mut other, &client_id, "hana@example.com").await;
    let third = files(&outbox, ".eml", 3);
    let (status, to) = open(&mut b, &link).await;
    assert_eq!(status, 303, "{to}");
    // A garbled token: the same page.
    let (status, _) = open(&mut b, &format!("{}x", link)).await;
    assert_eq!(status, 404);

    // With an authenticator app enrolled, the link is the first factor and the app's code
    // follows: two factors.
    let (status, totp) = enroll("hana", json!({"type": "totp"})).await;
    assert_eq!(status, 201, "{totp}");
    let mut b = Browser::new(&app);
    let (challenge, _) = ask_link(&mut b, &client_id, "hana@example.com").await;
    let mail = std::fs::read_to_string(newest(&files(&outbox, ".eml", 4), &third)).unwrap();
    let (status, page) = open(&mut b, &link_in(&mail)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"code\""), "the code form: {page}");
    let code =
        super::otp::oathtool(&["--totp", "--base32", totp["secret"].as_str().unwrap()]).concat();
    let origin = app.public(idp).to_owned();
    let r = b
        .post(
            &format!("{origin}/browser/login/factor"),
            &[
                ("challenge", challenge.as_str()),
                ("csrf", &hidden(&page, "csrf")),
                ("code", &code),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let (status, tokens) = redeem(
        &app,
        (&client_id, &secret),
        &query(&location(&r).unwrap(), "code").unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["otp", "mfa"]), "{id}");

    // identity-idp's audit log holds the links made and the refusal, and verifies.
    let verify: Value = app
        .client
        .get(&format!("{}/admin/v1/audit/verify", app.admin(idp)))
        .await
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .unwrap();
    assert_eq!(verify["valid"], Value::Bool(true), "{verify}");
    app.stop().await;
}

/// aiosmtpd in `mode`, serving until dropped.
struct Relay {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Relay {
    fn start(mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/smtp_server.py");
        let mut child = Command::new(super::jose_interop::python())
            .arg(script)
            .args([
                mode,
                &dir.path().to_string_lossy(),
                "mailer",
                "relay-password-123",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("aiosmtpd (tests/interop/requirements.txt)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("smtp_server.py {mode}: {line:?}"));
        Self { child, dir, port }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A mailer for this relay, trusting `ca`.
    fn mailer(&self, tls: SmtpTls, ca: &Path) -> Mailer {
        let pem = std::fs::read(ca).unwrap();
        Mailer::Smtp(std::sync::Arc::new(Smtp {
            host: "localhost".into(),
            port: self.port,
            tls,
            tls_config: cryptoutil_federation::tls::client_config_from_pem(&pem).unwrap(),
            credentials: Some(("mailer".into(), Zeroizing::new("relay-password-123".into()))),
            helo: "cryptoutil.test".into(),
            timeout: Duration::from_secs(10),
        }))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn outgoing(to: &str) -> Outgoing {
    let text = cryptoutil_protocols::mail::Message {
        from: "idp@cryptoutil.test",
        to,
        subject: "test",
        body: "hello\n.\n",
        date: 0,
        id: "1",
    }
    .render()
    .unwrap();
    Outgoing {
        from: "idp@cryptoutil.test".into(),
        to: to.into(),
        text: Zeroizing::new(text),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn magic_links_go_through_an_smtp_relay_over_tls_and_nothing_goes_in_the_clear() {
    let relay = Relay::start("starttls");
    let data = tempfile::tempdir().unwrap();
    let password = data.path().join("smtp-password");
    std::fs::write(&password, "relay-password-123").unwrap();
    let (port, ca, password) = (
        relay.port.to_string(),
        format!("file://{}", relay.ca().display()),
        format!("file://{}", password.display()),
    );
    let Fixture {
        _dir,
        app,
        operator,
        ..
    } = fixture_with(&[
        ("CRYPTOUTIL_IDENTITY__SMTP__HOST", "localhost"),
        ("CRYPTOUTIL_IDENTITY__SMTP__PORT", &port),
        ("CRYPTOUTIL_IDENTITY__SMTP__TLS", "starttls"),
        ("CRYPTOUTIL_IDENTITY__SMTP__USERNAME", "mailer"),
        ("CRYPTOUTIL_IDENTITY__SMTP__PASSWORD", &password),
        ("CRYPTOUTIL_IDENTITY__SMTP__CA", &ca),
        ("CRYPTOUTIL_IDENTITY__SMTP__FROM", "idp@cryptoutil.test"),
    ])
    .await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "jo").await;
    let (status, v) = api(
        &app,
        ServiceName::IdentityIdp,
        &operator,
        Method::POST,
        "/identity/users/jo/factors",
        Some(json!({"type": "magic_link", "address": "jo@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let mut b = Browser::new(&app);
    ask_link(&mut b, &client_id, "jo@example.com").await;
    let sent = files(relay.dir.path(), ".eml", 1);
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(sent[0].with_extension("json")).unwrap()).unwrap();
    assert_eq!(
        envelope,
        json!({"from": "idp@cryptoutil.test", "to": ["jo@example.com"], "auth": "mailer",
               "tls": "TLSv1.3"}),
    );
    let mail = std::fs::read_to_string(&sent[0]).unwrap();
    let (status, to) = open(&mut b, &link_in(&mail)).await;
    assert_eq!(status, 303, "{to}");
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    app.stop().await;

    // The mailer alone: implicit TLS delivers (the message's lone "." line stuffed and
    // unstuffed); a relay without STARTTLS gets nothing, nor one whose certificate another
    // CA signed.
    let implicit = Relay::start("implicit");
    implicit
        .mailer(SmtpTls::Implicit, &implicit.ca())
        .send(&outgoing("kim@example.com"))
        .await
        .unwrap();
    let sent = files(implicit.dir.path(), ".eml", 1);
    let text = std::fs::read_to_string(&sent[0]).unwrap();
    assert!(
        text.replace("\r\n", "\n").ends_with("\n\nhello\n.\n"),
        "{text:?}"
    );
    let plain = Relay::start("plain");
    let refused = plain
        .mailer(SmtpTls::StartTls, &plain.ca())
        .send(&outgoing("kim@example.com"))
        .await
        .unwrap_err();
    assert!(refused.contains("STARTTLS"), "{refused}");
    files(plain.dir.path(), ".eml", 0);
    let refused = implicit
        .mailer(SmtpTls::Implicit, &relay.ca())
        .send(&outgoing("kim@example.com"))
        .await
        .unwrap_err();
    assert!(refused.contains("TLS"), "{refused}");
    files(implicit.dir.path(), ".eml", 1);
}
