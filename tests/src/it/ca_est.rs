//! EST (RFC 7030) and the RA end to end (issue 16, step 1), judged by BouncyCastle's EST client
//! (Debian's libbcpkix-java, driven by `tests/interop/EstClient.java`), `openssl` and pkilint:
//! cacerts, csrattrs, enrollment with a one-time RA secret, renewal authenticated by the TLS
//! client certificate being renewed, enrollment with a bearer token; a manual label whose
//! requests wait (202 + Retry-After) until the RA approves or rejects them; bad credentials,
//! reused secrets and unknown labels refused with nothing issued, every decision audited.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};

use super::ca_service::{
    audit_verifies, call, csr, openssl, openssl_ok, pkilint, request_with_key, root, run, Audited,
    CaTest,
};
use super::identity::client_token;
use crate::TestApp;

const JARS: [&str; 3] = [
    "/usr/share/java/bcprov.jar",
    "/usr/share/java/bcpkix.jar",
    "/usr/share/java/bcutil.jar",
];

/// BouncyCastle's EST client, compiled once into `dir`.
struct Bc {
    classes: PathBuf,
    authority: String,
    anchor: PathBuf,
}

impl Bc {
    fn compile(dir: &Path, app: &TestApp, anchor: PathBuf) -> Self {
        for jar in JARS {
            assert!(
                Path::new(jar).exists(),
                "{jar} is missing: install libbcpkix-java (scripts/test does)"
            );
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/EstClient.java");
        let classes = dir.join("est-classes");
        let out = Command::new("javac")
            .args(["-nowarn", "-d"])
            .arg(&classes)
            .args(["-cp", &JARS.join(":")])
            .arg(&source)
            .output()
            .expect("javac runs (default-jdk-headless)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let authority = app
            .public(ServiceName::Ca)
            .trim_start_matches("https://")
            .to_owned();
        Self {
            classes,
            authority,
            anchor,
        }
    }

    /// Runs `command` at `label` with `args`: (succeeded, what it printed).
    fn run(&self, dir: &Path, command: &str, label: &str, args: &[&str]) -> (bool, String) {
        let cp = format!("{}:{}", self.classes.display(), JARS.join(":"));
        run(Command::new("java")
            .current_dir(dir)
            .args(["-cp", &cp, "EstClient", command, &self.authority])
            .arg(&self.anchor)
            .arg(label)
            .args(args))
    }
}

/// `<cn>.csr` (PEM, made by openssl) as `<cn>.der`.
fn csr_der(dir: &Path, cn: &str) -> String {
    csr(dir, cn);
    let der = format!("{cn}.der");
    let (ok, out) = openssl(
        dir,
        &[
            "req",
            "-in",
            &format!("{cn}.csr"),
            "-outform",
            "DER",
            "-out",
            &der,
        ],
    );
    assert!(ok, "{out}");
    der
}

fn serial_of(dir: &Path, pem: &str) -> String {
    let (ok, out) = openssl(dir, &["x509", "-in", pem, "-noout", "-serial", "-subject"]);
    assert!(ok, "{out}");
    out
}

/// Labels (name, approval) of CA `ca` with profile tls-server, made through the API.
pub(super) async fn make_labels(app: &TestApp, token: &str, ca: &str, labels: &[(&str, &str)]) {
    for (label, approval) in labels {
        let (status, made) = call(
            app,
            token,
            Method::POST,
            "/ca/labels",
            Some(json!({"label": label, "ca": ca, "profile": "tls-server", "approval": approval})),
        )
        .await;
        assert_eq!(status, 201, "{made}");
    }
}

/// A P-256 root CA `name` (subject `CN=<cn>`), its certificate written to `work/root.pem`,
/// issuing at `labels` (name, approval; profile tls-server): its id.
pub(super) async fn root_with_labels(
    app: &TestApp,
    token: &str,
    work: &Path,
    (name, cn): (&str, &str),
    labels: &[(&str, &str)],
) -> String {
    let root = root(app, token, name, cn).await;
    let root_id = root["id"].as_str().unwrap().to_owned();
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    make_labels(app, token, &root_id, labels).await;
    root_id
}

/// An RA secret for `label` (the caller holds `ca-ra`): (reference, secret).
pub(super) async fn secret(app: &TestApp, token: &str, label: &str) -> (String, String) {
    let (status, made) = call(
        app,
        token,
        Method::POST,
        "/ca/ra/secrets",
        Some(json!({"label": label, "ttl": "1h"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    (
        made["reference"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

/// POSTs a base64 PKCS#10 body to EST `simpleenroll` at `label` with `authorization`.
async fn enroll_raw(
    app: &TestApp,
    label: &str,
    authorization: &str,
    der: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let url = format!(
        "{}/.well-known/est/{label}/simpleenroll",
        app.public(ServiceName::Ca)
    );
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[
                ("authorization", authorization),
                ("content-type", "application/pkcs10"),
                ("content-transfer-encoding", "base64"),
            ],
            body.into_bytes().into(),
        )
        .await
        .unwrap();
    let headers = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    (r.status.as_u16(), headers, r.body.to_vec())
}

/// The RA's decision on request `id` (`approve` or `reject`): status and the request.
pub(super) async fn decide(
    app: &TestApp,
    token: &str,
    id: &str,
    decision: &str,
    body: Value,
) -> (u16, Value) {
    let path = format!("/ca/ra/requests/{id}/{decision}");
    call(app, token, Method::POST, &path, Some(body)).await
}

/// The RA's queue: `GET /ca/ra/requests?status=pending`.
pub(super) async fn pending_requests(app: &TestApp, token: &str) -> Value {
    let path = "/ca/ra/requests?status=pending";
    let (status, pending) = call(app, token, Method::GET, path, None).await;
    assert_eq!(status, 200, "{pending}");
    pending
}

pub(super) async fn count_certs(app: &TestApp, token: &str, ca: &str) -> usize {
    let (status, list) = call(
        app,
        token,
        Method::GET,
        &format!("/ca/cas/{ca}/certificates"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["certificates"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn bouncycastles_est_client_enrolls_renews_and_waits_for_the_ra() {
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        boot,
        token,
    } = CaTest::start(&[], "ca ca-ra").await;
    let ca_only = client_token(&app, &boot.client_id, &boot.secret, "ca").await;
    let bc = Bc::compile(&work, &app, cryptoutil_bin::pki::anchor_path(&data));

    let root_id = root_with_labels(
        &app,
        &token,
        &work,
        ("devices", "Device Root"),
        &[("devices", "auto"), ("gated", "manual")],
    )
    .await;
    // A label is unique across tenants; bad names and unknown profiles are refused.
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        "/ca/labels",
        Some(json!({"label": "devices", "ca": root_id, "profile": "tls-server"})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    for (body, field) in [
        (
            json!({"label": "Bad Label", "ca": root_id, "profile": "tls-server"}),
            "label",
        ),
        (
            json!({"label": "x", "ca": root_id, "profile": "nope"}),
            "profile",
        ),
    ] {
        let (status, v) = call(&app, &token, Method::POST, "/ca/labels", Some(body)).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    // Secrets need the ca-ra scope.
    let (status, _) = call(
        &app,
        &ca_only,
        Method::POST,
        "/ca/ra/secrets",
        Some(json!({"label": "devices"})),
    )
    .await;
    assert_eq!(status, 403);

    // cacerts and csrattrs, read by BouncyCastle.
    let (ok, out) = bc.run(&work, "cacerts", "devices", &["cacerts.pem"]);
    assert!(ok && out.contains("cacerts 1"), "{out}");
    let (ok, out) = openssl(&work, &["x509", "-in", "cacerts.pem", "-noout", "-subject"]);
    assert!(ok && out.contains("Device Root"), "{out}");
    let (ok, out) = bc.run(&work, "csrattrs", "devices", &[]);
    assert!(ok && out.contains("1.2.840.10045.4.3.2"), "{out}");
    // No label `default` here: /.well-known/est/ answers 404; nor for an unknown label.
    let (ok, out) = bc.run(&work, "cacerts", "-", &["none.pem"]);
    assert!(!ok && out.contains("refused 404"), "{out}");
    let (ok, out) = bc.run(&work, "cacerts", "nowhere", &["none.pem"]);
    assert!(!ok && out.contains("refused 404"), "{out}");

    // Enrollment with a one-time secret: issued, verified by openssl, accepted by pkilint.
    let (reference, pass) = secret(&app, &token, "devices").await;
    let first = csr_der(&work, "www.example.test");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "devices",
        &[&reference, &pass, &first, "leaf.pem"],
    );
    // The certificate and its chain (the root) came back.
    assert!(ok && out.contains("issued 2"), "{out}");
    let (ok, out) = openssl(
        &work,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{out}");
    let (ok, text) = pkilint(
        &work,
        "lint_pkix_cert",
        &["lint", "-s", "ERROR", "leaf.pem"],
    );
    assert!(ok, "pkilint: {text}");
    let issued = serial_of(&work, "leaf.pem");
    // The same request again with the same secret: the same certificate (a lost answer).
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "devices",
        &[&reference, &pass, &first, "again.pem"],
    );
    assert!(ok && out.contains("issued"), "{out}");
    assert_eq!(serial_of(&work, "again.pem"), issued);
    let before = count_certs(&app, &token, &root_id).await;
    // Another request with the used secret, a wrong secret, a secret at another label: 401.
    let second = csr_der(&work, "two.example.test");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "devices",
        &[&reference, &pass, &second, "x.pem"],
    );
    assert!(!ok && out.contains("refused 401"), "{out}");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "devices",
        &[&reference, "wrong", &second, "x.pem"],
    );
    assert!(!ok && out.contains("refused 401"), "{out}");
    let (gated_ref, gated_pass) = secret(&app, &token, "gated").await;
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "devices",
        &[&gated_ref, &gated_pass, &second, "x.pem"],
    );
    assert!(!ok && out.contains("refused 401"), "{out}");
    assert_eq!(
        count_certs(&app, &token, &root_id).await,
        before,
        "nothing issued"
    );

    // Renewal, authenticated by the TLS client certificate being renewed (its key).
    let (ok, out) = bc.run(
        &work,
        "reenroll",
        "devices",
        &["www.example.test.key", "leaf.pem", &first, "renewed.pem"],
    );
    assert!(ok && out.contains("issued"), "{out}");
    let renewed = serial_of(&work, "renewed.pem");
    assert_ne!(renewed, issued);
    assert!(renewed.contains("www.example.test"), "{renewed}");
    // Renewing someone else's subject with that certificate is refused.
    let (ok, out) = bc.run(
        &work,
        "reenroll",
        "devices",
        &["www.example.test.key", "leaf.pem", &second, "x.pem"],
    );
    assert!(!ok && out.contains("refused 400"), "{out}");

    // A bearer token with scope ca of the label's tenant enrolls too; openssl reads the
    // certs-only answer.
    let third = csr_der(&work, "three.example.test");
    let der = std::fs::read(work.join(&third)).unwrap();
    let (status, headers, body) =
        enroll_raw(&app, "devices", &format!("Bearer {ca_only}"), &der).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/pkcs7-mime")));
    let p7 = base64::engine::general_purpose::STANDARD
        .decode(
            body.iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    std::fs::write(work.join("bearer.p7"), p7).unwrap();
    let (ok, out) = openssl(
        &work,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "bearer.p7",
            "-print_certs",
            "-noout",
        ],
    );
    assert!(ok && out.contains("three.example.test"), "{out}");
    // A malformed body, a wrong type, no credentials at all.
    let (status, _, _) = enroll_raw(
        &app,
        "devices",
        &format!("Bearer {ca_only}"),
        b"\x30\x03\x02\x01",
    )
    .await;
    assert_eq!(status, 400);
    let (status, headers, _) = enroll_raw(&app, "devices", "Basic Zm9vOmJhcg==", &der).await;
    assert_eq!(status, 401);
    // Who sends comes first: an unknown secret with a malformed request is a 401 too.
    let (status, _, _) =
        enroll_raw(&app, "devices", "Basic Zm9vOmJhcg==", b"\x30\x03\x02\x01").await;
    assert_eq!(status, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.starts_with("Basic")));

    // A manual label: the request waits for the RA, then is approved; another is rejected.
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "gated",
        &[&gated_ref, &gated_pass, &second, "g.pem"],
    );
    assert!(ok && out.contains("pending"), "{out}");
    let pending = pending_requests(&app, &token).await;
    let queued = pending["requests"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{pending}");
    assert_eq!(queued[0]["subject"], "CN=two.example.test");
    let id = queued[0]["id"].as_str().unwrap().to_owned();
    // Asking again before a decision: still pending; the RA list needs ca-ra.
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "gated",
        &[&gated_ref, &gated_pass, &second, "g.pem"],
    );
    assert!(ok && out.contains("pending"), "{out}");
    let (status, _) = call(&app, &ca_only, Method::GET, "/ca/ra/requests", None).await;
    assert_eq!(status, 403);
    let (status, approved) = decide(&app, &token, &id, "approve", json!({})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "issued");
    let (status, again) = decide(&app, &token, &id, "approve", json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "gated",
        &[&gated_ref, &gated_pass, &second, "g.pem"],
    );
    assert!(ok && out.contains("issued"), "{out}");
    let approved_serial = serial_of(&work, "g.pem");
    assert!(
        approved_serial
            .to_lowercase()
            .contains(approved["serial"].as_str().unwrap()),
        "{approved_serial} {approved}"
    );
    let (other_ref, other_pass) = secret(&app, &token, "gated").await;
    let fourth = csr_der(&work, "four.example.test");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "gated",
        &[&other_ref, &other_pass, &fourth, "r.pem"],
    );
    assert!(ok && out.contains("pending"), "{out}");
    let pending = pending_requests(&app, &token).await;
    let id = pending["requests"][0]["id"].as_str().unwrap().to_owned();
    let (status, rejected) = decide(
        &app,
        &token,
        &id,
        "reject",
        json!({"reason": "unknown device"}),
    )
    .await;
    assert_eq!(status, 200, "{rejected}");
    let (ok, out) = bc.run(
        &work,
        "enroll",
        "gated",
        &[&other_ref, &other_pass, &fourth, "r.pem"],
    );
    assert!(!ok && out.contains("refused 403"), "{out}");

    // Every decision and refusal is in the audit log, whose chain verifies.
    let audit = Audited::read(&app, &token, &pass).await;
    let ops = |op: &str, failed: bool| audit.ops(op, failed);
    assert_eq!(ops("create-label", false), 2);
    assert_eq!(ops("create-ra-secret", false), 3);
    assert!(ops("enroll", false) >= 3, "{audit}");
    assert!(ops("enroll", true) >= 4, "{audit}");
    assert_eq!(ops("ra-request", false), 2);
    assert_eq!(ops("ra-approve", false), 1);
    assert_eq!(ops("ra-reject", false), 1);
    audit_verifies(&app).await;
    app.stop().await;
}

/// `curl` POSTs the request `der_file` (DER, sent base64) to EST `serverkeygen` at `label`
/// with Basic `user`: the HTTP status; on 200, Python's `email` parser splits the multipart
/// answer into `<name>.key.p7` (the sealed key) and `<name>.certs.p7` (certificate and chain),
/// DER, and the parts' media types are checked.
fn serverkeygen(
    work: &Path,
    app: &TestApp,
    anchor: &Path,
    (label, user): (&str, &str),
    (der_file, name): (&str, &str),
) -> String {
    let url = format!(
        "{}/.well-known/est/{label}/serverkeygen",
        app.public(ServiceName::Ca)
    );
    let b64 = format!("{name}.b64");
    let der = std::fs::read(work.join(der_file)).unwrap();
    std::fs::write(
        work.join(&b64),
        base64::engine::general_purpose::STANDARD.encode(der),
    )
    .unwrap();
    let headers = format!("{name}.headers");
    let body = format!("{name}.body");
    let (ok, status) = run(Command::new("curl")
        .current_dir(work)
        .args(["-sS", "--tlsv1.3", "--cacert"])
        .arg(anchor)
        .args(["-u", user, "-H", "Content-Type: application/pkcs10"])
        .args(["-H", "Content-Transfer-Encoding: base64"])
        .args(["--data-binary", &format!("@{b64}"), "-D", &headers])
        .args(["-o", &body, "-w", "%{http_code}", &url]));
    assert!(ok, "{status}");
    if status != "200" {
        return status;
    }
    let split = r#"
import base64, email, sys
name = sys.argv[1]
head = open(name + ".headers", "rb").read().split(b"\r\n", 1)[1]
msg = email.message_from_bytes(head + open(name + ".body", "rb").read())
assert msg.get_content_type() == "multipart/mixed", msg.get_content_type()
parts = msg.get_payload()
assert len(parts) == 2, len(parts)
assert parts[0].get_content_type() == "application/pkcs7-mime"
assert parts[0].get_param("smime-type") == "server-generated-key"
assert parts[1].get_content_type() == "application/pkcs7-mime"
assert parts[1].get_param("smime-type") == "certs-only"
assert "no-store" in msg.get("cache-control", "")
open(name + ".key.p7", "wb").write(parts[0].get_payload(decode=True))
open(name + ".certs.p7", "wb").write(parts[1].get_payload(decode=True))
"#;
    let (ok, out) = run(Command::new("python3")
        .current_dir(work)
        .args(["-c", split, name]));
    assert!(ok, "{out}");
    status
}

/// EST `serverkeygen` (RFC 7030 §4.4) judged by curl, Python's MIME parser and openssl: the
/// CA makes the key (of the request's kind: P-256, P-384, RSA 3072) and returns it only sealed
/// to the request's key; `openssl cms -decrypt` with the client's key opens it (ECDH with the
/// SHA-256 and SHA-384 KDFs, RSA-OAEP), it is the key the issued certificate certifies, the
/// certificate verifies under the root and passes pkilint. A used or wrong secret, a request
/// whose signature does not verify, a label with manual approval and a wrong media type are
/// refused with nothing issued.
#[tokio::test(flavor = "multi_thread")]
async fn server_made_keys_come_sealed_to_the_requests_key_and_openssl_opens_them() {
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca ca-ra").await;
    let anchor = cryptoutil_bin::pki::anchor_path(&data);
    let root_id = root_with_labels(
        &app,
        &token,
        &work,
        ("keygen", "Keygen Root"),
        &[("keygen", "auto"), ("held", "manual")],
    )
    .await;

    // A P-256 request, a P-384 one and an RSA 3072 one (openssl makes the keys and requests).
    for (name, kind) in [
        ("ec", ("ec", Some("P-256"))),
        ("p384", ("ec", Some("P-384"))),
        ("rsa", ("rsa:3072", None)),
    ] {
        let cn = format!("{name}.example.test");
        let names = (format!("/CN={cn}"), format!("DNS:{cn}"));
        request_with_key(&work, kind, name, (&names.0, &names.1), "DER");
    }
    for (name, key_text) in [
        ("ec", "ASN1 OID: prime256v1"),
        ("p384", "ASN1 OID: secp384r1"),
        ("rsa", "Private-Key: (3072 bit"),
    ] {
        let (reference, pass) = secret(&app, &token, "keygen").await;
        let user = format!("{reference}:{pass}");
        let status = serverkeygen(
            &work,
            &app,
            &anchor,
            ("keygen", &user),
            (&format!("{name}.der"), name),
        );
        assert_eq!(status, "200", "{name}");
        // The sealed key: an EnvelopedData only the request's key opens.
        openssl_ok(
            &work,
            &[
                "cms",
                "-decrypt",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.key.p7"),
                "-inkey",
                &format!("{name}.key"),
                "-binary",
                "-out",
                &format!("{name}.package.der"),
            ],
        );
        let out = openssl_ok(
            &work,
            &[
                "cms",
                "-cmsout",
                "-print",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.key.p7"),
            ],
        );
        assert!(
            out.contains("contentType: undefined (2.16.840.1.101.2.1.2.78.5)"),
            "the content is an AsymmetricKeyPackage (id-ct-KP-aKeyPackage): {out}"
        );
        // An AsymmetricKeyPackage of one key: the PKCS#8 inside, read by openssl.
        let package = std::fs::read(work.join(format!("{name}.package.der"))).unwrap();
        let (ok, out) = openssl(
            &work,
            &[
                "asn1parse",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.package.der"),
            ],
        );
        // A SEQUENCE of exactly one key (one element at depth 1).
        assert!(ok && out.starts_with("    0:d=0"), "{out}");
        assert_eq!(out.matches(":d=1 ").count(), 1, "{out}");
        let header = if package[1] < 0x80 {
            2
        } else {
            2 + usize::from(package[1] & 0x7f)
        };
        std::fs::write(work.join(format!("{name}.pk8")), &package[header..]).unwrap();
        let (ok, key_out) = openssl(
            &work,
            &[
                "pkey",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.pk8"),
                "-noout",
                "-text",
            ],
        );
        assert!(ok && key_out.contains(key_text), "{name}: {key_out}");
        let key_pub = openssl_ok(
            &work,
            &[
                "pkey",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.pk8"),
                "-pubout",
            ],
        );
        // The certificate and its chain: it certifies that key, not the request's.
        let chain = format!("{name}.chain.pem");
        openssl_ok(
            &work,
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.certs.p7"),
                "-print_certs",
                "-out",
                &chain,
            ],
        );
        let cert_pub = openssl_ok(&work, &["x509", "-in", &chain, "-noout", "-pubkey"]);
        assert_eq!(
            key_pub, cert_pub,
            "{name}: the certificate certifies the sealed key"
        );
        let request_pub = openssl_ok(&work, &["pkey", "-in", &format!("{name}.key"), "-pubout"]);
        assert_ne!(
            request_pub, cert_pub,
            "{name}: a new key, not the request's"
        );
        openssl_ok(
            &work,
            &["x509", "-in", &chain, "-out", &format!("{name}.leaf.pem")],
        );
        openssl_ok(
            &work,
            &[
                "verify",
                "-purpose",
                "sslserver",
                "-CAfile",
                "root.pem",
                &format!("{name}.leaf.pem"),
            ],
        );
        let (ok, out) = openssl(
            &work,
            &[
                "x509",
                "-in",
                &format!("{name}.leaf.pem"),
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
            ],
        );
        assert!(
            ok && out.contains(&format!("DNS:{name}.example.test")),
            "{out}"
        );
        let (ok, text) = pkilint(
            &work,
            "lint_pkix_cert",
            &["lint", "-s", "ERROR", &format!("{name}.leaf.pem")],
        );
        assert!(ok, "pkilint: {text}");
        // The secret is spent: asking again is refused before any key is made.
        let status = serverkeygen(
            &work,
            &app,
            &anchor,
            ("keygen", &user),
            (&format!("{name}.der"), &format!("{name}-again")),
        );
        assert_eq!(status, "401", "{name}");
    }
    assert_eq!(count_certs(&app, &token, &root_id).await, 3);

    // Refused, nothing issued: a wrong secret, a request whose signature does not verify, a
    // manual label, a wrong media type.
    let mut forged = std::fs::read(work.join("ec.der")).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    std::fs::write(work.join("forged.der"), &forged).unwrap();
    let (reference, pass) = secret(&app, &token, "keygen").await;
    let wrong = format!("{reference}:{pass}x");
    let status = serverkeygen(
        &work,
        &app,
        &anchor,
        ("keygen", &wrong),
        ("ec.der", "wrong"),
    );
    assert_eq!(status, "401");
    let user = format!("{reference}:{pass}");
    let status = serverkeygen(
        &work,
        &app,
        &anchor,
        ("keygen", &user),
        ("forged.der", "forged"),
    );
    assert_eq!(status, "400");
    let (held_ref, held_pass) = secret(&app, &token, "held").await;
    let status = serverkeygen(
        &work,
        &app,
        &anchor,
        ("held", &format!("{held_ref}:{held_pass}")),
        ("ec.der", "held"),
    );
    assert_eq!(status, "400");
    let body = std::fs::read_to_string(work.join("held.body")).unwrap();
    assert!(body.contains("automatic approval"), "{body}");
    let (ok, status) = run(Command::new("curl")
        .current_dir(&work)
        .args(["-sS", "--cacert"])
        .arg(&anchor)
        .args([
            "-u",
            &user,
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "@ec.b64",
        ])
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "{}/.well-known/est/keygen/serverkeygen",
            app.public(ServiceName::Ca)
        )));
    assert!(ok && status == "415", "{status}");
    assert_eq!(count_certs(&app, &token, &root_id).await, 3);
    assert!(pending_requests(&app, &token).await["requests"]
        .as_array()
        .unwrap()
        .is_empty());
    audit_verifies(&app).await;
    app.stop().await;
}

/// The suite enrolls from itself: a KMS with `federation.ca_enabled` pointed at the CA
/// service takes its TLS certificate over EST (the federation client's bearer token, the
/// `default` label), presents it, and a client trusting only the CA's root reaches it. Before
/// the label exists the CA refuses and the KMS serves its dynamic certificate.
#[tokio::test(flavor = "multi_thread")]
async fn a_kms_takes_its_tls_certificate_from_the_ca_service_over_est() {
    use std::time::Duration;

    use super::federation_ca::trusted_by;

    let CaTest {
        dir,
        data,
        app: ca_app,
        boot,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let kms_data = dir.path().join("kms");
    let root = root(&ca_app, &token, "suite", "Suite Root").await;
    let root_pem = root["certificate"].as_str().unwrap().to_owned();

    let anchor = format!(
        "file://{}",
        cryptoutil_bin::pki::anchor_path(&data).display()
    );
    let token_endpoint = format!(
        "{}/service/oauth2/v1/token",
        ca_app.public(ServiceName::IdentityAuthz)
    );
    let ca_url = ca_app.public(ServiceName::Ca).to_owned();
    let federated = |mode: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("CRYPTOUTIL_FEDERATION__CA_ENABLED", "true".into()),
            ("CRYPTOUTIL_FEDERATION__CA_URL", ca_url.clone()),
            ("CRYPTOUTIL_FEDERATION__CA_TIMEOUT", "2s".into()),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__MODE",
                "client_credentials".into(),
            ),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID",
                boot.client_id.clone(),
            ),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
                boot.secret.clone(),
            ),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__TOKEN_ENDPOINT",
                token_endpoint.clone(),
            ),
            ("CRYPTOUTIL_FEDERATION__AUTH__CA", anchor.clone()),
            (
                "CRYPTOUTIL_FEDERATION__RETRY__INITIAL_BACKOFF",
                "20ms".into(),
            ),
            ("CRYPTOUTIL_FEDERATION__RETRY__MAX_RETRIES", "1".into()),
            (
                "CRYPTOUTIL_FEDERATION__HEALTH_POLL_INTERVAL",
                "300ms".into(),
            ),
            (
                "CRYPTOUTIL_FEDERATION_FALLBACK__CA_FALLBACK_MODE",
                mode.into(),
            ),
        ]
    };
    fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let dynamic = federated("self_signed");
    let kms = TestApp::start(vec![ServiceName::Kms], &as_refs(&dynamic), Some(&kms_data)).await;
    // No `default` label yet: the CA refuses, the KMS serves its own dynamic certificate.
    assert!(!trusted_by(&kms, &root_pem).await);

    // One-minute certificates (back-dated 5 minutes by the CA): renewed 40 s after they come,
    // dropped for the service's own 54 s after.
    let (status, profile) = call(
        &ca_app,
        &token,
        Method::POST,
        "/ca/profiles",
        Some(json!({"name": "minute", "key_usages": ["digitalSignature"],
            "extended_key_usages": ["serverAuth"], "allowed_sans": ["dns", "ip"],
            "max_validity": "1m"})),
    )
    .await;
    assert_eq!(status, 201, "{profile}");
    let (status, label) = call(
        &ca_app,
        &token,
        Method::POST,
        "/ca/labels",
        Some(json!({"label": "default", "ca": root["id"], "profile": "minute"})),
    )
    .await;
    assert_eq!(status, 201, "{label}");
    assert!(
        crate::eventually(Duration::from_secs(30), || async {
            trusted_by(&kms, &root_pem).await
        })
        .await,
        "the KMS presents a certificate from the CA service"
    );
    // The CA recorded the enrollment: the KMS's request, issued under the default label.
    let (_, ra) = call(&ca_app, &token, Method::GET, "/ca/labels", None).await;
    assert_eq!(ra["labels"][0]["label"], "default");
    let (_, certs) = call(
        &ca_app,
        &token,
        Method::GET,
        &format!("/ca/cas/{}/certificates", root["id"].as_str().unwrap()),
        None,
    )
    .await;
    let subjects: Vec<&str> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.iter().any(|s| s.ends_with("CN=kms")),
        "{subjects:?}"
    );
    kms.stop().await;

    // The same from static material (`tls.mode: static`, as Compose runs it): the configured
    // certificate serves until the CA's arrives; `cached` keeps the CA's across a restart
    // while the CA is down.
    let suite = dir.path().join("suite");
    std::fs::create_dir_all(&suite).unwrap();
    cryptoutil_bin::pki::issue_suite_files(&suite, &["kms".to_owned()]).unwrap();
    let file = |name: &str| format!("file://{}", suite.join(name).display());
    let mut static_vars = federated("cached");
    static_vars.extend([
        ("CRYPTOUTIL_TLS__MODE", "static".to_owned()),
        ("CRYPTOUTIL_TLS__CERT_CHAIN", file("kms.pem")),
        ("CRYPTOUTIL_TLS__PRIVATE_KEY", file("kms.key")),
        (
            "CRYPTOUTIL_TLS__EXTRA_TRUSTED_CAS",
            format!("[{}]", file("suite-ca.pem")),
        ),
    ]);
    let static_data = dir.path().join("kms-static");
    let kms = TestApp::start(
        vec![ServiceName::Kms],
        &as_refs(&static_vars),
        Some(&static_data),
    )
    .await;
    assert!(
        crate::eventually(Duration::from_secs(30), || async {
            trusted_by(&kms, &root_pem).await
        })
        .await,
        "a KMS with static material presents a certificate from the CA service"
    );
    kms.stop().await;
    ca_app.stop().await;
    let kms = TestApp::start(
        vec![ServiceName::Kms],
        &as_refs(&static_vars),
        Some(&static_data),
    )
    .await;
    assert!(
        trusted_by(&kms, &root_pem).await,
        "the CA is down: the KMS presents the CA's certificate it kept (cached)"
    );
    // It is never presented expired: in its last tenth, with the CA still down, the KMS
    // presents its own (static) certificate again.
    let suite_pem = std::fs::read_to_string(suite.join("suite-ca.pem")).unwrap();
    assert!(
        crate::eventually(Duration::from_secs(90), || async {
            !trusted_by(&kms, &root_pem).await && trusted_by(&kms, &suite_pem).await
        })
        .await,
        "the KMS went back to its own certificate before the CA's expired"
    );
    kms.stop().await;
}
