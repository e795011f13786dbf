//! ACME (RFC 8555) end to end, judged by two clients no one here wrote, both from Debian:
//! `certbot` (Python, its own `acme` library) and `lego` (Go). Each binds a new account to a
//! one-time RA secret (external account binding), proves control of `acme.cryptoutil.test` over http-01
//! (its own standalone server on `ca.acme.http01_port`), obtains a certificate, renews it and
//! revokes it; a manual label keeps certbot's order `processing` until the RA approves it.
//! openssl verifies what they got against the CA's root and pkilint lints it. Bad input (a
//! reused nonce, a wrong or used binding key, an unknown label) is refused with ACME's own
//! problem documents, nothing issued, refusals of bindings audited.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::{b64, Jwk, JwsAlg};
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::ca_est::{count_certs, decide, make_labels, pending_requests, root_with_labels, secret};
use super::ca_service::{
    audit_verifies, call, openssl, pkilint, request_file, root, Audited, CaTest,
};
use crate::{free_port, TestApp};

/// The name proven over http-01: it resolves to 127.0.0.1 through the hosts file
/// (`scripts/test` adds it; pkilint refuses the single-label `localhost` in a certificate).
const NAME: &str = "acme.cryptoutil.test";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// certbot with its state under `dir/certbot`, trusting `anchor` for the ACME server's TLS.
fn certbot(dir: &Path, anchor: &Path, args: &[&str]) -> Command {
    let state = dir.join("certbot");
    let mut command = Command::new("certbot");
    command
        .env("REQUESTS_CA_BUNDLE", anchor)
        .args(["--non-interactive", "--config-dir"])
        .arg(state.join("config"))
        .arg("--work-dir")
        .arg(state.join("work"))
        .arg("--logs-dir")
        .arg(state.join("logs"))
        .args(args);
    command
}

/// `certbot certonly` for `name` at `directory` with a new ECDSA key, the account bound to
/// an RA secret (`kid`, `hmac`); the challenge flags follow.
fn certonly(
    dir: &Path,
    anchor: &Path,
    directory: &str,
    (kid, hmac): (&str, &str),
    name: &str,
) -> Command {
    certbot(
        dir,
        anchor,
        &[
            "certonly",
            "--server",
            directory,
            "--agree-tos",
            "--register-unsafely-without-email",
            // `--flag=value`: a base64url secret may begin with '-', which
            // argparse would take for an option of its own.
            &format!("--eab-kid={kid}"),
            &format!("--eab-hmac-key={hmac}"),
            "--key-type",
            "ecdsa",
            "-d",
            name,
        ],
    )
}

fn run(mut command: Command) -> (bool, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} runs (certbot and lego come from Debian): {e}"));
    (out.status.success(), text(&out))
}

/// lego with its state under `dir/lego`.
fn lego(dir: &Path, anchor: &Path, server: &str, args: &[&str]) -> Command {
    let mut command = Command::new("lego");
    command
        .env("LEGO_CA_CERTIFICATES", anchor)
        .arg("--path")
        .arg(dir.join("lego"))
        .args([
            "--server",
            server,
            "--accept-tos",
            "--email",
            "ops@example.test",
        ])
        .args(args);
    command
}

/// `serial=...` of a PEM certificate, lowercase hex as the API names serials.
fn serial(dir: &Path, pem: &Path) -> String {
    let (ok, out) = openssl(
        dir,
        &["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"],
    );
    assert!(ok, "{out}");
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// openssl verifies `pem` as a TLS server certificate for [`NAME`] under `root.pem`, and
/// pkilint finds no error in it.
fn judge(work: &Path, pem: &Path) {
    judge_for(work, pem, NAME);
}

/// [`judge`] for `name`.
fn judge_for(work: &Path, pem: &Path, name: &str) {
    let leaf = work.join("judged.pem");
    // The first certificate of the file (lego writes the chain after it).
    let text = std::fs::read_to_string(pem).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    std::fs::write(&leaf, &text[..end.min(text.len())]).unwrap();
    let (ok, out) = openssl(
        work,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            name,
            "-CAfile",
            "root.pem",
            "judged.pem",
        ],
    );
    assert!(ok, "{out}");
    let (ok, found) = pkilint(
        work,
        "lint_pkix_cert",
        &["lint", "-s", "ERROR", "judged.pem"],
    );
    assert!(ok, "pkilint: {found}");
}

pub(super) async fn cert_status(app: &TestApp, token: &str, ca: &str, serial: &str) -> Value {
    let (status, cert) = call(
        app,
        token,
        Method::GET,
        &format!("/ca/cas/{ca}/certificates/{serial}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cert}");
    cert["status"].clone()
}

/// One signed request.
struct Signed<'a> {
    url: &'a str,
    key: &'a Jwk,
    kid: Option<&'a str>,
    nonce: &'a str,
    payload: Option<&'a Value>,
}

/// A hand-made ACME client, for what the real ones never send.
struct Raw<'a> {
    app: &'a TestApp,
    base: String,
}

impl Raw<'_> {
    async fn nonce(&self) -> String {
        let r = self
            .app
            .client
            .send(
                Method::HEAD,
                &format!("{}/new-nonce", self.base),
                &[],
                Vec::new().into(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        r.headers["replay-nonce"].to_str().unwrap().to_owned()
    }

    /// POSTs `payload` to `url` signed by `key` (with its `jwk` in the header) over `nonce`.
    async fn post(&self, url: &str, key: &Jwk, nonce: &str, payload: &Value) -> (u16, Value) {
        let signed = Signed {
            url,
            key,
            kid: None,
            nonce,
            payload: Some(payload),
        };
        let (status, body, _) = self.send(&signed, url, "application/jose+json").await;
        (status, body)
    }

    /// POSTs `signed` to `to` (its header's url may differ) as `content_type`: status, body
    /// and Location.
    async fn send(
        &self,
        signed: &Signed<'_>,
        to: &str,
        content_type: &str,
    ) -> (u16, Value, Option<String>) {
        let mut header = json!({"alg": "ES256", "nonce": signed.nonce, "url": signed.url});
        match signed.kid {
            Some(kid) => header["kid"] = json!(kid),
            None => header["jwk"] = signed.key.to_public_value().unwrap(),
        }
        let protected = b64::encode(header.to_string().as_bytes());
        let payload = b64::encode(
            signed
                .payload
                .map(Value::to_string)
                .unwrap_or_default()
                .as_bytes(),
        );
        let signature = signed
            .key
            .sign(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        let body = json!({"protected": protected, "payload": payload, "signature": b64::encode(&signature)});
        let r = self
            .app
            .client
            .send(
                Method::POST,
                to,
                &[("content-type", content_type)],
                body.to_string().into_bytes().into(),
            )
            .await
            .unwrap();
        assert!(
            r.headers.contains_key("replay-nonce"),
            "every answer carries a nonce"
        );
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            r.headers
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    }

    /// `payload` (None: POST-as-GET) to `url`, signed by account `kid` with `key`.
    async fn as_account(
        &self,
        url: &str,
        key: &Jwk,
        kid: &str,
        payload: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let nonce = self.nonce().await;
        let signed = Signed {
            url,
            key,
            kid: Some(kid),
            nonce: &nonce,
            payload,
        };
        self.send(&signed, url, "application/jose+json").await
    }

    /// A new account bound to RA secret (`kid`, `secret`): its URL.
    async fn account(&self, key: &Jwk, kid: &str, secret: &str) -> String {
        let binding = self.binding(key, kid, secret);
        let nonce = self.nonce().await;
        let url = format!("{}/new-account", self.base);
        let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding});
        let signed = Signed {
            url: &url,
            key,
            kid: None,
            nonce: &nonce,
            payload: Some(&payload),
        };
        let (status, body, location) = self.send(&signed, &url, "application/jose+json").await;
        assert_eq!(status, 201, "{body}");
        location.unwrap()
    }

    /// An external account binding of `account` with `kid` and MAC key `secret`.
    fn binding(&self, account: &Jwk, kid: &str, secret: &str) -> Value {
        let mac = Jwk::from_value(&json!({"kty": "oct", "k": secret, "alg": "HS256"})).unwrap();
        let protected = b64::encode(
            json!({"alg": "HS256", "kid": kid, "url": format!("{}/new-account", self.base)})
                .to_string()
                .as_bytes(),
        );
        let payload = b64::encode(account.to_public_value().unwrap().to_string().as_bytes());
        let tag = mac
            .sign(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64::encode(&tag)})
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certbot_and_lego_obtain_renew_and_revoke_certificates_over_acme() {
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(NAME, 80))
        .map(|mut a| a.any(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    assert!(
        resolved,
        "{NAME} must resolve to 127.0.0.1: scripts/test adds it to /etc/hosts"
    );
    let http01 = free_port();
    let port = http01.to_string();
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        boot: _,
        token,
    } = CaTest::start(&[("CRYPTOUTIL_CA__ACME__HTTP01_PORT", &port)], "ca ca-ra").await;
    let anchor: PathBuf = cryptoutil_bin::pki::anchor_path(&data);
    let root_id = root_with_labels(
        &app,
        &token,
        &work,
        ("web", "Web Root"),
        &[("web", "auto"), ("web-gated", "manual")],
    )
    .await;
    let public = app.public(ServiceName::Ca).to_owned();
    let directory = format!("{public}/acme/web/directory");
    let r = app.client.get(&directory).await.unwrap();
    assert_eq!(r.status, 200);
    let dir: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(dir["meta"]["externalAccountRequired"], true, "{dir}");
    assert_eq!(dir["newNonce"], format!("{public}/acme/web/new-nonce"));

    // certbot: account bound to an RA secret, http-01 on its own server, a certificate.
    let (kid, hmac) = secret(&app, &token, "web").await;
    let http01_flags = [
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        &port,
    ];
    let mut obtain = certonly(&work, &anchor, &directory, (&kid, &hmac), NAME);
    obtain.args(http01_flags);
    let (ok, out) = run(obtain);
    assert!(ok, "certbot certonly: {out}");
    let live = work.join("certbot/config/live/acme.cryptoutil.test");
    judge(&work, &live.join("cert.pem"));
    let first = serial(&work, &live.join("cert.pem"));
    assert_eq!(cert_status(&app, &token, &root_id, &first).await, "valid");

    // Renewal: a new order from the same account, a new certificate.
    // (Without the random delay of up to 8 minutes unattended renewals take.)
    let mut renew = certbot(
        &work,
        &anchor,
        &["renew", "--force-renewal", "--no-random-sleep-on-renew"],
    );
    renew.args(http01_flags);
    let (ok, out) = run(renew);
    assert!(ok, "certbot renew: {out}");
    let renewed = serial(&work, &live.join("cert.pem"));
    assert_ne!(renewed, first);
    judge(&work, &live.join("cert.pem"));

    // Revocation by the account that ordered it: the CA's status says so.
    let cert_path = live.join("cert.pem");
    let (ok, out) = run(certbot(
        &work,
        &anchor,
        &[
            "revoke",
            "--server",
            &directory,
            "--cert-path",
            cert_path.to_str().unwrap(),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    ));
    assert!(ok, "certbot revoke: {out}");
    assert_eq!(
        cert_status(&app, &token, &root_id, &renewed).await,
        "revoked"
    );
    assert_eq!(cert_status(&app, &token, &root_id, &first).await, "valid");
    // Revocation signed by the certificate's own key (RFC 8555 §7.6), not the account's: the
    // first certificate, with its key, from certbot's archive.
    let archive = work.join(format!("certbot/config/archive/{NAME}"));
    let (ok, out) = run(certbot(
        &work,
        &anchor,
        &[
            "revoke",
            "--server",
            &directory,
            "--cert-path",
            archive.join("cert1.pem").to_str().unwrap(),
            "--key-path",
            archive.join("privkey1.pem").to_str().unwrap(),
            "--reason",
            "superseded",
            "--no-delete-after-revoke",
        ],
    ));
    assert!(ok, "certbot revoke --key-path: {out}");
    assert_eq!(cert_status(&app, &token, &root_id, &first).await, "revoked");

    // lego: its own account (another secret), obtain, renew, revoke.
    let (lego_kid, lego_hmac) = secret(&app, &token, "web").await;
    let lego_http = format!("127.0.0.1:{port}");
    let (lego_kid, lego_hmac) = (format!("--kid={lego_kid}"), format!("--hmac={lego_hmac}"));
    let common = [
        "--eab",
        lego_kid.as_str(),
        lego_hmac.as_str(),
        "--http",
        "--http.port",
        lego_http.as_str(),
        "--domains",
        NAME,
    ];
    let mut obtain = lego(&work, &anchor, &directory, &common);
    obtain.arg("run");
    let (ok, out) = run(obtain);
    assert!(ok, "lego run: {out}");
    let lego_cert = work.join("lego/certificates/acme.cryptoutil.test.crt");
    judge(&work, &lego_cert);
    let lego_first = serial(&work, &lego_cert);
    let mut renew = lego(&work, &anchor, &directory, &common);
    renew.args(["renew", "--days", "100000", "--no-random-sleep"]);
    let (ok, out) = run(renew);
    assert!(ok, "lego renew: {out}");
    let lego_renewed = serial(&work, &lego_cert);
    assert_ne!(lego_renewed, lego_first);
    let mut revoke = lego(&work, &anchor, &directory, &common);
    revoke.arg("revoke");
    let (ok, out) = run(revoke);
    assert!(ok, "lego revoke: {out}");
    assert_eq!(
        cert_status(&app, &token, &root_id, &lego_renewed).await,
        "revoked"
    );

    // A manual label: certbot's order stays processing until the RA approves the request.
    let (gated_kid, gated_hmac) = secret(&app, &token, "web-gated").await;
    let gated = format!("{public}/acme/web-gated/directory");
    let gated_dir = work.join("gated");
    std::fs::create_dir(&gated_dir).unwrap();
    let mut waiting = certbot(
        &gated_dir,
        &anchor,
        &[
            "certonly",
            "--server",
            &gated,
            "--agree-tos",
            "--register-unsafely-without-email",
            &format!("--eab-kid={gated_kid}"),
            &format!("--eab-hmac-key={gated_hmac}"),
            "-d",
            NAME,
        ],
    );
    waiting.args(http01_flags);
    let child = waiting
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let pending = pending_requests(&app, &token).await;
        if let Some(first) = pending["requests"].as_array().and_then(|r| r.first()) {
            assert_eq!(first["protocol"], "acme", "{pending}");
            break first["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "certbot's request never reached the RA"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (status, approved) = decide(&app, &token, &id, "approve", json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "certbot (manual label): {}",
        text(&out)
    );
    let gated_cert = gated_dir.join("certbot/config/live/acme.cryptoutil.test/cert.pem");
    assert_eq!(
        serial(&work, &gated_cert),
        approved["serial"].as_str().unwrap()
    );
    // What the RA approved, its account may revoke.
    let (ok, out) = run(certbot(
        &gated_dir,
        &anchor,
        &[
            "revoke",
            "--server",
            &gated,
            "--cert-path",
            gated_cert.to_str().unwrap(),
            "--no-delete-after-revoke",
        ],
    ));
    assert!(ok, "certbot revoke (manual label): {out}");
    assert_eq!(
        cert_status(&app, &token, &root_id, approved["serial"].as_str().unwrap()).await,
        "revoked"
    );

    // Bad input, through a hand-made client: nothing is issued.
    let before = count_certs(&app, &token, &root_id).await;
    let raw = Raw {
        app: &app,
        base: format!("{public}/acme/web"),
    };
    let key = Jwk::generate(JwsAlg::ES256).unwrap();
    let new_account = format!("{}/new-account", raw.base);
    let nonce = raw.nonce().await;
    let (status, problem) = raw
        .post(
            &new_account,
            &key,
            &nonce,
            &json!({"termsOfServiceAgreed": true}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:ietf:params:acme:error:externalAccountRequired"
    );
    // The same nonce again.
    let (status, problem) = raw
        .post(
            &new_account,
            &key,
            &nonce,
            &json!({"termsOfServiceAgreed": true}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:badNonce");
    // A binding with a wrong key, then with certbot's used secret.
    let (fresh_kid, fresh_hmac) = secret(&app, &token, "web").await;
    let wrong = raw.binding(&key, &fresh_kid, &b64::encode(&[7u8; 32]));
    let (status, problem) = raw
        .post(
            &new_account,
            &key,
            &raw.nonce().await,
            &json!({"termsOfServiceAgreed": true, "externalAccountBinding": wrong}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:unauthorized");
    let used = raw.binding(&key, &kid, &hmac);
    let (status, problem) = raw
        .post(
            &new_account,
            &key,
            &raw.nonce().await,
            &json!({"termsOfServiceAgreed": true, "externalAccountBinding": used}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // A binding of another account's key (signed by this one) does not bind this one.
    let other = Jwk::generate(JwsAlg::ES256).unwrap();
    let foreign = raw.binding(&other, &fresh_kid, &fresh_hmac);
    let (status, problem) = raw
        .post(
            &new_account,
            &key,
            &raw.nonce().await,
            &json!({"termsOfServiceAgreed": true, "externalAccountBinding": foreign}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:malformed");
    assert!(
        problem["detail"].as_str().unwrap().contains("account key"),
        "{problem}"
    );
    // The right binding makes the account; its key then finds it again (200, same URL).
    let good = raw.binding(&key, &fresh_kid, &fresh_hmac);
    let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": good});
    let (status, account) = raw
        .post(&new_account, &key, &raw.nonce().await, &payload)
        .await;
    assert_eq!(status, 201, "{account}");
    let (status, again) = raw
        .post(
            &new_account,
            &key,
            &raw.nonce().await,
            &json!({"onlyReturnExisting": true}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    // An unknown label.
    let r = app
        .client
        .get(&format!("{public}/acme/nowhere/directory"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        count_certs(&app, &token, &root_id).await,
        before,
        "nothing issued"
    );

    // The audit log has the accounts, orders, validations and issuances, and the refused
    // bindings; its chain verifies.
    let audit = Audited::read(&app, &token, &hmac).await;
    let ops = |op: &str, failed: bool| audit.ops(op, failed);
    assert_eq!(ops("acme-new-account", false), 4, "{audit}");
    assert_eq!(ops("acme-new-account", true), 2, "{audit}");
    assert!(ops("acme-new-order", false) >= 5, "{audit}");
    assert!(ops("acme-validate", false) >= 5, "{audit}");
    assert!(ops("enroll", false) >= 4, "{audit}");
    assert_eq!(ops("revoke", false), 4, "{audit}");
    audit_verifies(&app).await;
    app.stop().await;
}

/// A CSR (DER, base64url) for `subject` with DNS names `names`, made by openssl.
fn csr_b64(dir: &Path, file: &str, subject: &str, names: &str) -> String {
    b64::encode(&std::fs::read(request_file(dir, file, subject, names, "DER")).unwrap())
}

/// What certbot and lego never send: requests signed with the wrong key, another account's
/// resources, a wrong URL or type, a challenge read before it is answered, CSRs naming more
/// than the order or another subject attribute. Each is refused with ACME's problem document
/// and nothing is issued.
#[tokio::test(flavor = "multi_thread")]
async fn a_hand_made_acme_client_is_held_to_the_protocol() {
    // The responder binds first (the services' own listeners then cannot take its port); it
    // answers for Alice's key, made before her account.
    let alice = Jwk::generate(JwsAlg::ES256).unwrap();
    let (http01, _responder) = crate::http01::responder(0, alice.thumbprint().unwrap())
        .await
        .unwrap();
    let port = http01.to_string();
    let CaTest {
        dir: _dir,
        work,
        app,
        token,
        ..
    } = CaTest::start(&[("CRYPTOUTIL_CA__ACME__HTTP01_PORT", &port)], "ca ca-ra").await;
    let root = root(&app, &token, "web", "Web Root").await;
    let root_id = root["id"].as_str().unwrap().to_owned();
    make_labels(&app, &token, &root_id, &[("web", "auto")]).await;
    let public = app.public(ServiceName::Ca).to_owned();
    let raw = Raw {
        app: &app,
        base: format!("{public}/acme/web"),
    };
    let bob = Jwk::generate(JwsAlg::ES256).unwrap();
    let (kid, secret_a) = secret(&app, &token, "web").await;
    let alice_url = raw.account(&alice, &kid, &secret_a).await;
    let (kid, secret_b) = secret(&app, &token, "web").await;
    let bob_url = raw.account(&bob, &kid, &secret_b).await;

    let new_order = format!("{}/new-order", raw.base);
    let names = json!({"identifiers": [{"type": "dns", "value": NAME}]});
    let (status, order, location) = raw
        .as_account(&new_order, &alice, &alice_url, Some(&names))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "pending");
    let order_url = location.unwrap();
    let authz_url = order["authorizations"][0].as_str().unwrap().to_owned();
    let finalize = order["finalize"].as_str().unwrap().to_owned();

    // Signed with another key than the account's: refused.
    let (status, problem, _) = raw.as_account(&order_url, &bob, &alice_url, None).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:malformed");
    // Another account does not see it (nor its authorization).
    for url in [&order_url, &authz_url] {
        let (status, problem, _) = raw.as_account(url, &bob, &bob_url, None).await;
        assert_eq!(status, 404, "{problem}");
    }
    // A header url that is not where the request went; a wrong content type.
    let nonce = raw.nonce().await;
    let signed = Signed {
        url: &authz_url,
        key: &alice,
        kid: Some(&alice_url),
        nonce: &nonce,
        payload: None,
    };
    let (status, problem, _) = raw.send(&signed, &order_url, "application/jose+json").await;
    assert_eq!(status, 403, "{problem}");
    let nonce = raw.nonce().await;
    let signed = Signed {
        url: &order_url,
        key: &alice,
        kid: Some(&alice_url),
        nonce: &nonce,
        payload: None,
    };
    let (status, problem, _) = raw.send(&signed, &order_url, "application/json").await;
    assert_eq!(status, 415, "{problem}");

    // Reading the challenge does not validate it; `{}` does.
    let (status, authz, _) = raw.as_account(&authz_url, &alice, &alice_url, None).await;
    assert_eq!(status, 200, "{authz}");
    let challenge = authz["challenges"][0]["url"].as_str().unwrap().to_owned();
    let (status, read, _) = raw.as_account(&challenge, &alice, &alice_url, None).await;
    assert_eq!(
        (status, read["status"].as_str()),
        (200, Some("pending")),
        "{read}"
    );
    let (status, done, _) = raw
        .as_account(&challenge, &alice, &alice_url, Some(&json!({})))
        .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("valid")),
        "{done}"
    );
    let (_, order, _) = raw.as_account(&order_url, &alice, &alice_url, None).await;
    assert_eq!(order["status"], "ready", "{order}");
    // The account lists it (and only its owner may read the list).
    let (status, account, _) = raw.as_account(&alice_url, &alice, &alice_url, None).await;
    assert_eq!(status, 200, "{account}");
    let orders_url = account["orders"].as_str().unwrap().to_owned();
    let (status, list, _) = raw.as_account(&orders_url, &alice, &alice_url, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["orders"], json!([order_url]), "{list}");
    let (status, _, _) = raw.as_account(&orders_url, &bob, &bob_url, None).await;
    assert_eq!(status, 403);

    // CSRs naming more than the order, or another subject attribute: badCSR, nothing issued.
    let before = count_certs(&app, &token, &root_id).await;
    for (file, subject, names) in [
        (
            "extra",
            format!("/CN={NAME}"),
            format!("DNS:{NAME},DNS:other.example.test"),
        ),
        (
            "org",
            format!("/CN={NAME}/O=Not Validated"),
            format!("DNS:{NAME}"),
        ),
        (
            "cn",
            "/CN=other.example.test".to_owned(),
            format!("DNS:{NAME}"),
        ),
    ] {
        let csr = csr_b64(&work, file, &subject, &names);
        let (status, problem, _) = raw
            .as_account(&finalize, &alice, &alice_url, Some(&json!({"csr": csr})))
            .await;
        assert_eq!(status, 400, "{file}: {problem}");
        assert_eq!(
            problem["type"], "urn:ietf:params:acme:error:badCSR",
            "{problem}"
        );
    }
    assert_eq!(
        count_certs(&app, &token, &root_id).await,
        before,
        "nothing issued"
    );
    // Another account cannot finalize it; its owner can, once.
    let csr = csr_b64(
        &work,
        "good",
        &format!("/CN={NAME}"),
        &format!("DNS:{NAME}"),
    );
    let (status, _, _) = raw
        .as_account(&finalize, &bob, &bob_url, Some(&json!({"csr": csr})))
        .await;
    assert_eq!(status, 404);
    let (status, order, _) = raw
        .as_account(&finalize, &alice, &alice_url, Some(&json!({"csr": csr})))
        .await;
    assert_eq!(
        (status, order["status"].as_str()),
        (200, Some("valid")),
        "{order}"
    );
    let (status, again, _) = raw
        .as_account(&finalize, &alice, &alice_url, Some(&json!({"csr": csr})))
        .await;
    assert_eq!(status, 403, "{again}");
    assert_eq!(again["type"], "urn:ietf:params:acme:error:orderNotReady");
    assert_eq!(count_certs(&app, &token, &root_id).await, before + 1);
    // The certificate: only its account downloads or revokes it.
    let cert_url = order["certificate"].as_str().unwrap().to_owned();
    let (status, _, _) = raw.as_account(&cert_url, &bob, &bob_url, None).await;
    assert_eq!(status, 404);
    let r = {
        let nonce = raw.nonce().await;
        let header = json!({"alg": "ES256", "kid": alice_url, "nonce": nonce, "url": cert_url});
        let protected = b64::encode(header.to_string().as_bytes());
        let signature = alice.sign(format!("{protected}.").as_bytes()).unwrap();
        let body =
            json!({"protected": protected, "payload": "", "signature": b64::encode(&signature)});
        app.client
            .send(
                Method::POST,
                &cert_url,
                &[("content-type", "application/jose+json")],
                body.to_string().into_bytes().into(),
            )
            .await
            .unwrap()
    };
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/pem-certificate-chain"
    );
    let pem = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "leaf and root");
    let first = pem.find("-----END CERTIFICATE-----").unwrap() + 25;
    let der = {
        use base64::Engine as _;
        let body: String = pem[..first]
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    let revoke = format!("{}/revoke-cert", raw.base);
    let request = json!({"certificate": b64::encode(&der), "reason": 4});
    let (status, problem, _) = raw
        .as_account(&revoke, &bob, &bob_url, Some(&request))
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem, _) = raw
        .as_account(
            &revoke,
            &alice,
            &alice_url,
            Some(&json!({"certificate": b64::encode(&der), "reason": 7})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:ietf:params:acme:error:badRevocationReason"
    );
    let (status, _, _) = raw
        .as_account(&revoke, &alice, &alice_url, Some(&request))
        .await;
    assert_eq!(status, 200);
    let (status, problem, _) = raw
        .as_account(&revoke, &alice, &alice_url, Some(&request))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:alreadyRevoked");
    // A deactivated account can do nothing more (401).
    let (status, _, _) = raw
        .as_account(
            &bob_url,
            &bob,
            &bob_url,
            Some(&json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, problem, _) = raw
        .as_account(&new_order, &bob, &bob_url, Some(&names))
        .await;
    assert_eq!(status, 401, "{problem}");
    app.stop().await;
}

/// certbot's manual auth hook for dns-01: a real DNS server (Debian's dnsmasq) answers
/// `_acme-challenge.<domain>` with `value` (a shell word: `$CERTBOT_VALIDATION`, or a wrong
/// one) on 127.0.0.1:`port`; the cleanup hook stops it.
fn dns_hooks(work: &Path, port: u16, value: &str) -> (String, String) {
    let pid = work.join("dnsmasq.pid");
    let auth = work.join(format!("auth-{port}-{}.sh", value.len()));
    std::fs::write(
        &auth,
        format!(
            "#!/bin/sh\nexec dnsmasq --port={port} --listen-address=127.0.0.1 --bind-interfaces \
             --no-resolv --no-hosts --user=root --group=root --pid-file={pid} \
             --txt-record=\"_acme-challenge.$CERTBOT_DOMAIN,{value}\"\n",
            pid = pid.display()
        ),
    )
    .unwrap();
    let cleanup = work.join("cleanup.sh");
    std::fs::write(
        &cleanup,
        // Stopped, and gone before the next run binds the same port.
        format!(
            "#!/bin/sh\npid=$(cat {})\nkill \"$pid\"\nwhile kill -0 \"$pid\" 2>/dev/null; do sleep 0.1; done\n",
            pid.display()
        ),
    )
    .unwrap();
    for script in [&auth, &cleanup] {
        let mut mode = std::fs::metadata(script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
        std::fs::set_permissions(script, mode).unwrap();
    }
    (auth.display().to_string(), cleanup.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn certbot_proves_a_name_over_dns01_against_a_real_dns_server() {
    let dns_port = free_port();
    let resolver = format!("127.0.0.1:{dns_port}");
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        boot: _,
        token,
    } = CaTest::start(
        &[("CRYPTOUTIL_CA__ACME__DNS_RESOLVER", &resolver)],
        "ca ca-ra",
    )
    .await;
    let anchor: PathBuf = cryptoutil_bin::pki::anchor_path(&data);
    let root_id =
        root_with_labels(&app, &token, &work, ("dns", "DNS Root"), &[("dns", "auto")]).await;
    let directory = format!("{}/acme/dns/directory", app.public(ServiceName::Ca));
    let (kid, hmac) = secret(&app, &token, "dns").await;
    let obtain = |name: &str, value: &str| {
        let (auth, cleanup) = dns_hooks(&work, dns_port, value);
        let mut command = certonly(&work, &anchor, &directory, (&kid, &hmac), name);
        command.args([
            "--manual",
            "--preferred-challenges",
            "dns",
            "--manual-auth-hook",
            &auth,
            "--manual-cleanup-hook",
            &cleanup,
        ]);
        command.env(
            "PATH",
            format!(
                "/usr/sbin:/sbin:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        run(command)
    };

    // The TXT record holds the key authorization's digest: issued, chained, linted.
    let (ok, out) = obtain("dns01.cryptoutil.test", "$CERTBOT_VALIDATION");
    assert!(ok, "certbot certonly (dns-01): {out}");
    let live = work.join("certbot/config/live/dns01.cryptoutil.test");
    judge_for(&work, &live.join("cert.pem"), "dns01.cryptoutil.test");
    let serial = serial(&work, &live.join("cert.pem"));
    assert_eq!(cert_status(&app, &token, &root_id, &serial).await, "valid");

    // A TXT record with anything else: the authorization is invalid, nothing issued.
    let before = count_certs(&app, &token, &root_id).await;
    let (ok, out) = obtain("wrong.cryptoutil.test", "not-the-digest");
    assert!(!ok, "{out}");
    assert!(
        out.contains("incorrectResponse") || out.contains("Incorrect"),
        "{out}"
    );
    assert_eq!(count_certs(&app, &token, &root_id).await, before);
    audit_verifies(&app).await;
    app.stop().await;
}
