//! The CA service end to end (issue 15, step 2): a root and a subordinate CA through the API,
//! certificates issued from `openssl req` requests, revocation, hold and release, CRLs fetched
//! without a token; judged by `openssl verify` (with `-crl_check_all`) and pkilint's
//! `lint_crl`; bad input refused with the field named and nothing stored; another tenant sees
//! nothing; everything audited and kept across a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};

use super::identity::{admin, bootstrap, client_token, tenant_token, Bootstrap};
use super::jose_interop::python;
use crate::TestApp;

pub(super) const SERVICES: [ServiceName; 2] = [ServiceName::IdentityAuthz, ServiceName::Ca];

/// A CA test's start: a temporary directory with `data` (the suite's) and `work` (the files
/// the tools read and write), identity-authz and the CA started on `data` with `vars`, the
/// bootstrap client and a token of it with `scope`.
pub(super) struct CaTest {
    pub(super) dir: tempfile::TempDir,
    pub(super) data: PathBuf,
    pub(super) work: PathBuf,
    pub(super) app: TestApp,
    pub(super) boot: Bootstrap,
    pub(super) token: String,
}

impl CaTest {
    pub(super) async fn start(vars: &[(&str, &str)], scope: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let app = TestApp::start(SERVICES.to_vec(), vars, Some(&data)).await;
        let boot = bootstrap(&data);
        let token = client_token(&app, &boot.client_id, &boot.secret, scope).await;
        Self {
            dir,
            data,
            work,
            app,
            boot,
            token,
        }
    }
}

/// The CA's audit records (`GET /ca/audit?limit=1000`, as the caller sees them), none of
/// which holds `secret`.
pub(super) struct Audited(pub(super) Value);

impl Audited {
    pub(super) async fn read(app: &TestApp, token: &str, secret: &str) -> Self {
        let (status, audit) = call(app, token, Method::GET, "/ca/audit?limit=1000", None).await;
        assert_eq!(status, 200, "{audit}");
        assert!(
            !audit.to_string().contains(secret),
            "a secret reached the audit log"
        );
        Self(audit)
    }

    /// How many records of `op` failed (`failed`) or succeeded.
    pub(super) fn ops(&self, op: &str, failed: bool) -> usize {
        self.0["records"]
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .filter(|r| r["op"] == op && r["error"].is_string() == failed)
                    .count()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Audited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The CA's audit log verifies (`/admin/v1/audit/verify`: its hash chain is whole).
pub(super) async fn audit_verifies(app: &TestApp) {
    let verified: Value = app
        .client
        .get(&format!(
            "{}/admin/v1/audit/verify",
            app.admin(ServiceName::Ca)
        ))
        .await
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .unwrap();
    assert_eq!(verified["valid"], true, "{verified}");
}

/// A root CA named `name` (P-256, subject `CN=<cn>`), made through the API.
pub(super) async fn root(app: &TestApp, token: &str, name: &str, cn: &str) -> Value {
    let (status, root) = call(
        app,
        token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": name, "subject": {"common_name": cn}, "key": "P-256"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    root
}

pub(super) async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    super::identity::api(app, ServiceName::Ca, token, method, path, body).await
}

/// A public GET of `/service/api/v1<path>` without a token: status, content type, body.
pub(super) async fn public_get(app: &TestApp, path: &str) -> (u16, String, Vec<u8>) {
    let url = format!("{}/service/api/v1{path}", app.public(ServiceName::Ca));
    let r = app
        .client
        .send(Method::GET, &url, &[], Vec::new().into())
        .await
        .unwrap();
    let kind = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status.as_u16(), kind, r.body.to_vec())
}

/// Runs a peer tool: (succeeded, what it printed on stdout and stderr).
pub(super) fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("the tool runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(super) fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// [`openssl`] that must succeed: its output.
#[track_caller]
pub(super) fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {}: {out}", args.join(" "));
    out
}

/// A P-256 key and a PEM request for `cn` with DNS SAN `cn`, made by openssl.
pub(super) fn csr(dir: &Path, cn: &str) -> String {
    let file = request_file(dir, cn, &format!("/CN={cn}"), &format!("DNS:{cn}"), "PEM");
    std::fs::read_to_string(file).unwrap()
}

/// A P-256 key (`<name>.key`) and a request for `subject` with `sans` (openssl's
/// `subjectAltName` text) made by openssl: `<name>.csr` (`form` PEM) or `<name>.der` (DER).
pub(super) fn request_file(
    dir: &Path,
    name: &str,
    subject: &str,
    sans: &str,
    form: &str,
) -> PathBuf {
    request_with_key(dir, ("ec", Some("P-256")), name, (subject, sans), form)
}

/// [`request_file`] with a key of `kind`: openssl's `-newkey` (`ec`, `rsa:3072`) and, for
/// `ec`, the curve.
pub(super) fn request_with_key(
    dir: &Path,
    (newkey, curve): (&str, Option<&str>),
    name: &str,
    (subject, sans): (&str, &str),
    form: &str,
) -> PathBuf {
    let out = dir.join(if form == "DER" {
        format!("{name}.der")
    } else {
        format!("{name}.csr")
    });
    let curve = curve.map(|c| format!("ec_paramgen_curve:{c}"));
    let mut args = vec!["req", "-new", "-newkey", newkey];
    if let Some(curve) = &curve {
        args.extend(["-pkeyopt", curve.as_str()]);
    }
    let key = format!("{name}.key");
    let sans = format!("subjectAltName={sans}");
    args.extend([
        "-nodes", "-keyout", &key, "-subj", subject, "-addext", &sans,
    ]);
    args.extend(["-outform", form, "-out", out.to_str().unwrap()]);
    let (ok, text) = openssl(dir, &args);
    assert!(ok, "{text}");
    out
}

/// Fetches CA `id`'s CRL (public) into `<name>.crl` as PEM.
async fn fetch_crl(app: &TestApp, dir: &Path, id: &str, name: &str) -> Vec<u8> {
    let (status, kind, der) = public_get(app, &format!("/ca/cas/{id}/crl")).await;
    assert_eq!((status, kind.as_str()), (200, "application/pkix-crl"));
    std::fs::write(dir.join(format!("{name}.der")), &der).unwrap();
    let (ok, out) = openssl(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-out",
            &format!("{name}.crl"),
        ],
    );
    assert!(ok, "{out}");
    der
}

fn verify_leaf(dir: &Path, with_crls: bool) -> (bool, String) {
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "inter.pem",
    ];
    if with_crls {
        args.extend([
            "-crl_check_all",
            "-CRLfile",
            "root.crl",
            "-CRLfile",
            "inter.crl",
        ]);
    }
    args.push("leaf.pem");
    openssl(dir, &args)
}

/// The CRL number of `<name>.crl`.
fn crl_number(dir: &Path, name: &str) -> u64 {
    let (ok, out) = openssl(
        dir,
        &["crl", "-in", &format!("{name}.crl"), "-noout", "-crlnumber"],
    );
    assert!(ok, "{out}");
    let hex = out
        .trim()
        .trim_start_matches("crlNumber=")
        .trim_start_matches("0x");
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{out}"))
}

/// `openssl ocsp` against the CA's responder: `args` name the certificate (and issuer); the
/// answer is verified up to `root.pem` (the issuing CA in `inter.pem`).
fn openssl_ocsp(app: &TestApp, dir: &Path, args: &[&str]) -> (bool, String) {
    let url = format!("{}/service/api/v1/ca/ocsp", app.public(ServiceName::Ca));
    let mut all = vec![
        "ocsp",
        "-url",
        &url,
        "-CAfile",
        "root.pem",
        "-verify_other",
        "inter.pem",
    ];
    all.extend(args);
    openssl(dir, &all)
}

/// A pkilint tool (`lint_crl`, ...) run in `dir` with `args`: passes when it succeeds and
/// prints no finding (the args ask for ERROR and above).
pub(super) fn pkilint(dir: &Path, tool: &str, args: &[&str]) -> (bool, String) {
    let bin = python().parent().unwrap().join(tool);
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

/// pkilint's `lint_ocsp_response` on `file`: no ERROR or FATAL finding.
fn lint_ocsp(dir: &Path, file: &str) -> (bool, String) {
    pkilint(dir, "lint_ocsp_response", &["lint", "-s", "ERROR", file])
}

/// POSTs `body` to the OCSP responder: the status and the answer.
async fn ocsp_post(app: &TestApp, body: Vec<u8>) -> (u16, Vec<u8>) {
    let url = format!("{}/service/api/v1/ca/ocsp", app.public(ServiceName::Ca));
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[("content-type", "application/ocsp-request")],
            body.into(),
        )
        .await
        .unwrap();
    (r.status.as_u16(), r.body.to_vec())
}

/// POSTs `tsq` (a file in `dir`) to CA `id`'s TSA and writes the reply to `tsr`.
async fn stamp(app: &TestApp, dir: &Path, id: &str, tsq: &str, tsr: &str) {
    let url = format!(
        "{}/service/api/v1/ca/cas/{id}/tsa",
        app.public(ServiceName::Ca)
    );
    let body = std::fs::read(dir.join(tsq)).unwrap();
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[("content-type", "application/timestamp-query")],
            body.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    std::fs::write(dir.join(tsr), &r.body).unwrap();
}

fn lint_crl(dir: &Path, name: &str, kind: &str) -> (bool, String) {
    let file = format!("{name}.der");
    pkilint(
        dir,
        "lint_crl",
        &["lint", "-t", kind, "-p", "PKIX", "-s", "ERROR", &file],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hierarchy_issues_revokes_and_publishes_crls_that_openssl_and_pkilint_accept() {
    let CaTest {
        dir: _dir,
        data,
        work,
        boot,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;

    let (status, root) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "root", "subject": {"common_name": "Test Root", "organization": "cryptoutil"}, "key": "P-384"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    assert_eq!(root["chain"], json!([]));
    let root_id = root["id"].as_str().unwrap().to_owned();
    let (status, inter) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({
            "name": "issuing", "subject": {"common_name": "Test Issuing CA"}, "key": "P-256",
            "parent": root_id, "validity": "3y", "path_len": 0,
            "permitted_dns": ["example.test"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{inter}");
    assert_eq!(inter["chain"], json!([root["certificate"]]));
    let inter_id = inter["id"].as_str().unwrap().to_owned();
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(
        work.join("inter.pem"),
        inter["certificate"].as_str().unwrap(),
    )
    .unwrap();
    // The public certificate route serves the same certificate, DER.
    let (status, kind, der) = public_get(&app, &format!("/ca/cas/{inter_id}/certificate")).await;
    assert_eq!((status, kind.as_str()), (200, "application/pkix-cert"));
    std::fs::write(work.join("inter.der"), &der).unwrap();
    let (ok, out) = openssl(
        &work,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "inter.der",
            "-noout",
            "-subject",
        ],
    );
    assert!(ok && out.contains("Test Issuing CA"), "{out}");

    // Issuance from an openssl request; the chain verifies for TLS servers.
    let request = csr(&work, "www.example.test");
    let (status, leaf) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{inter_id}/certificates"),
        Some(json!({"profile": "tls-server", "csr": request, "validity": "90d"})),
    )
    .await;
    assert_eq!(status, 201, "{leaf}");
    let serial = leaf["serial"].as_str().unwrap().to_owned();
    assert_eq!(serial.len(), 32, "16 random bytes: {serial}");
    assert_eq!(leaf["status"], "valid");
    assert_eq!(
        leaf["chain"],
        json!([inter["certificate"], root["certificate"]])
    );
    std::fs::write(work.join("leaf.pem"), leaf["certificate"].as_str().unwrap()).unwrap();
    let (ok, out) = verify_leaf(&work, false);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&work, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(ok, "{out}");
    let base = app.public(ServiceName::Ca);
    assert!(
        out.contains(&format!("URI:{base}/service/api/v1/ca/cas/{inter_id}/crl"))
            && out.contains(&format!(
                "CA Issuers - URI:{base}/service/api/v1/ca/cas/{inter_id}/certificate"
            )),
        "the CRL distribution point and caIssuers name this CA's public routes: {out}"
    );

    // OCSP: openssl asks (with a nonce) and verifies the delegated responder up to the root.
    let leaf_args = ["-issuer", "inter.pem", "-cert", "leaf.pem"];
    let (ok, out) = openssl_ocsp(&app, &work, &leaf_args);
    assert!(
        ok && out.contains("Response verify OK") && out.contains("leaf.pem: good"),
        "{out}"
    );
    let (ok, out) = openssl_ocsp(
        &app,
        &work,
        &["-issuer", "inter.pem", "-serial", "0x7f0123"],
    );
    assert!(
        ok && out.contains("0x7f0123: unknown"),
        "never issued: {out}"
    );
    // A request made by openssl, POSTed and sent by GET (base64, URL-encoded), linted.
    let (ok, out) = openssl(
        &work,
        &[
            "ocsp",
            "-issuer",
            "inter.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{out}");
    let ocsp_request = std::fs::read(work.join("req.der")).unwrap();
    let (status, answer) = ocsp_post(&app, ocsp_request.clone()).await;
    assert_eq!(status, 200);
    std::fs::write(work.join("post.der"), &answer).unwrap();
    let (ok, out) = lint_ocsp(&work, "post.der");
    assert!(ok, "lint_ocsp_response: {out}");
    let (again_status, again) = ocsp_post(&app, ocsp_request.clone()).await;
    assert_eq!(
        (again_status, &again),
        (200, &answer),
        "a nonce-less answer is pre-signed and cached"
    );
    use base64::Engine as _;
    let encoded: String = base64::engine::general_purpose::STANDARD
        .encode(&ocsp_request)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (status, kind, body) = public_get(&app, &format!("/ca/ocsp/{encoded}")).await;
    assert_eq!(
        (status, kind.as_str(), &body),
        (200, "application/ocsp-response", &answer)
    );
    // Refusals are OCSP answers: another issuer, garbage.
    let (ok, out) = openssl(
        &work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Someone Else",
            "-out",
            "other.pem",
        ],
    );
    assert!(ok, "{out}");
    let (_, out) = openssl_ocsp(&app, &work, &["-issuer", "other.pem", "-serial", "0x01"]);
    assert!(out.contains("Responder Error: unauthorized (6)"), "{out}");
    for garbage in [
        b"garbage".to_vec(),
        ocsp_request[..ocsp_request.len() / 2].to_vec(),
        Vec::new(),
    ] {
        let (status, answer) = ocsp_post(&app, garbage).await;
        assert_eq!(status, 200);
        std::fs::write(work.join("bad.der"), &answer).unwrap();
        let (_, out) = openssl(&work, &["ocsp", "-respin", "bad.der", "-resp_text"]);
        assert!(out.contains("malformedrequest (1)"), "{out}");
    }

    // Time stamps: openssl asks (SHA-256 imprint, nonce, certReq) and verifies the token up
    // to the root, against the request and against the data.
    std::fs::write(work.join("data.txt"), b"a document worth dating").unwrap();
    let query = |args: &[&str], out: &str| {
        let mut all = vec!["ts", "-query", "-data", "data.txt", "-out", out];
        all.extend(args);
        let (ok, text) = openssl(&work, &all);
        assert!(ok, "{text}");
    };
    query(&["-sha256", "-cert"], "q.tsq");
    stamp(&app, &work, &inter_id, "q.tsq", "r.tsr").await;
    let (ok, out) = openssl(&work, &["ts", "-reply", "-in", "r.tsr", "-text"]);
    assert!(
        ok && out.contains("Status: Granted.")
            && out.contains(&format!(
                "Policy OID: {}",
                cryptoutil_actors::ca::DEFAULT_TSA_POLICY
            ))
            && out.contains("Accuracy: 0x01 seconds"),
        "{out}"
    );
    for check in [["-queryfile", "q.tsq"], ["-data", "data.txt"]] {
        let (ok, out) = openssl(
            &work,
            &[
                "ts",
                "-verify",
                check[0],
                check[1],
                "-in",
                "r.tsr",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "inter.pem",
            ],
        );
        assert!(ok && out.contains("Verification: OK"), "{check:?}: {out}");
    }
    std::fs::write(work.join("data.txt"), b"another document").unwrap();
    let (ok, out) = openssl(
        &work,
        &[
            "ts",
            "-verify",
            "-data",
            "data.txt",
            "-in",
            "r.tsr",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "inter.pem",
        ],
    );
    assert!(!ok, "another document does not match the token: {out}");
    // Refusals are rejections naming the failure: SHA-1, a policy not ours, garbage.
    query(&["-sha1"], "sha1.tsq");
    query(&["-sha256", "-tspolicy", "1.2.3.4"], "policy.tsq");
    std::fs::write(work.join("garbage.tsq"), b"\x30\x03garbage").unwrap();
    for (tsq, failure) in [
        ("sha1.tsq", "unrecognized or unsupported algorithm"),
        ("policy.tsq", "requested TSA policy is not supported"),
        ("garbage.tsq", "the data submitted has the wrong format"),
    ] {
        stamp(&app, &work, &inter_id, tsq, "rejected.tsr").await;
        let (_, out) = openssl(&work, &["ts", "-reply", "-in", "rejected.tsr", "-text"]);
        assert!(
            out.contains("Status: Rejected.") && out.contains(failure),
            "{tsq}: {out}"
        );
    }

    // CRLs, fetched without a token: the chain verifies against them, pkilint accepts them.
    fetch_crl(&app, &work, &root_id, "root").await;
    fetch_crl(&app, &work, &inter_id, "inter").await;
    let (ok, out) = verify_leaf(&work, true);
    assert!(ok, "{out}");
    for (name, kind) in [("root", "ARL"), ("inter", "CRL")] {
        let (ok, out) = lint_crl(&work, name, kind);
        assert!(ok, "lint_crl {name}: {out}");
    }

    // Refused input: each a 400 naming the field, nothing stored.
    let issue = |body: Value| {
        let (app, token, inter_id) = (&app, &token, &inter_id);
        async move {
            call(
                app,
                token,
                Method::POST,
                &format!("/ca/cas/{inter_id}/certificates"),
                Some(body),
            )
            .await
        }
    };
    let outside = csr(&work, "www.other.org");
    let mut tampered = request.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    for (body, field) in [
        (
            json!({"profile": "tls-server", "csr": "not a request"}),
            "csr",
        ),
        (
            json!({"profile": "tls-server", "csr": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}),
            "csr",
        ),
        (
            json!({"profile": "tls-server", "csr": String::from_utf8(tampered).unwrap()}),
            "csr",
        ),
        (
            json!({"profile": "no-such-profile", "csr": request}),
            "profile",
        ),
        (
            json!({"profile": "tls-server", "csr": request, "validity": "9999d"}),
            "validity",
        ),
        (
            json!({"profile": "tls-server", "csr": outside}),
            "subject_alt_names",
        ),
    ] {
        let (status, v) = issue(body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("bad request: {field}")),
            "{field}: {v}"
        );
    }
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/ca/cas/{inter_id}/certificates"),
        None,
    )
    .await;
    let mut profiles: Vec<&str> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["profile"].as_str().unwrap())
        .collect();
    profiles.sort_unstable();
    assert_eq!(
        profiles,
        ["ocsp-signing", "time-stamping", "tls-server"],
        "the leaf, the OCSP responder's and the TSA's certificates; nothing refused was stored"
    );

    // Hold and release.
    let held = csr(&work, "held.example.test");
    let (status, v) = issue(json!({"profile": "tls-server", "csr": held})).await;
    assert_eq!(status, 201, "{v}");
    let held_serial = v["serial"].as_str().unwrap().to_owned();
    let path =
        |serial: &str, action: &str| format!("/ca/cas/{inter_id}/certificates/{serial}/{action}");
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &path(&held_serial, "revoke"),
        Some(json!({"reason": "certificateHold"})),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("on_hold")),
        "{v}"
    );
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/ca/cas/{inter_id}/certificates?status=on_hold"),
        None,
    )
    .await;
    assert_eq!(v["certificates"][0]["serial"], held_serial.as_str(), "{v}");
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &path(&held_serial, "release"),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("valid")), "{v}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &path(&held_serial, "release"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "only a held certificate is released");

    // Revocation: the next CRL names it, and openssl refuses the chain.
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &path(&serial, "revoke"),
        Some(json!({"reason": "sideways"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &path(&serial, "revoke"),
        Some(json!({"reason": "keyCompromise"})),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("revoked")),
        "{v}"
    );
    assert_eq!(v["revocation"]["reason"], "keyCompromise");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &path(&serial, "revoke"),
        Some(json!({"reason": "superseded"})),
    )
    .await;
    assert_eq!(status, 409, "revoked once");
    fetch_crl(&app, &work, &inter_id, "inter").await;
    let (ok, out) = openssl(&work, &["crl", "-in", "inter.crl", "-noout", "-text"]);
    assert!(
        ok && out.to_lowercase().contains(&serial) && out.contains("Key Compromise"),
        "{out}"
    );
    let (ok, out) = verify_leaf(&work, true);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = lint_crl(&work, "inter", "CRL");
    assert!(ok, "lint_crl with an entry: {out}");
    let (ok, out) = openssl_ocsp(&app, &work, &leaf_args);
    assert!(
        ok && out.contains("leaf.pem: revoked") && out.contains("Reason: keyCompromise"),
        "{out}"
    );
    let (status, answer) = ocsp_post(&app, ocsp_request.clone()).await;
    assert_eq!(status, 200);
    assert_ne!(answer, again, "a revocation empties the cache");
    std::fs::write(work.join("revoked.der"), &answer).unwrap();
    let (ok, out) = lint_ocsp(&work, "revoked.der");
    assert!(ok, "lint_ocsp_response (revoked): {out}");
    let number = crl_number(&work, "inter");
    assert!(
        number >= 4,
        "a CRL per revocation, hold and release: {number}"
    );

    // Another tenant sees none of it.
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let acme = tenant_token(&app, &operator, "acme", "ca").await;
    for (method, path, body) in [
        (Method::GET, format!("/ca/cas/{inter_id}"), None),
        (
            Method::GET,
            format!("/ca/cas/{inter_id}/certificates"),
            None,
        ),
        (
            Method::GET,
            format!("/ca/cas/{inter_id}/certificates/{serial}"),
            None,
        ),
        (
            Method::POST,
            format!("/ca/cas/{inter_id}/certificates"),
            Some(json!({"profile": "tls-server", "csr": request})),
        ),
        (
            Method::POST,
            path(&held_serial, "revoke"),
            Some(json!({"reason": "keyCompromise"})),
        ),
        (
            Method::POST,
            "/ca/cas".to_owned(),
            Some(
                json!({"name": "x", "subject": {"common_name": "x"}, "key": "P-256", "parent": root_id}),
            ),
        ),
    ] {
        let (status, v) = call(&app, &acme, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
    }
    let (_, v) = call(&app, &acme, Method::GET, "/ca/cas", None).await;
    assert_eq!(v["cas"], json!([]));
    let kms_only = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (status, _) = call(&app, &kms_only, Method::GET, "/ca/cas", None).await;
    assert_eq!(status, 403, "the ca scope is required");

    // Everything was audited, refusals included.
    let (_, v) = call(&app, &token, Method::GET, "/ca/audit?limit=1000", None).await;
    let ops: Vec<(String, bool)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["op"].as_str().unwrap().to_owned(), r["error"].is_null()))
        .collect();
    for (op, ok) in [
        ("create-ca", true),
        ("issue", true),
        ("issue", false),
        ("revoke", true),
        ("release", true),
        ("release", false),
        ("crl", true),
        ("ocsp-responder", true),
        ("tsa", true),
    ] {
        assert!(
            ops.contains(&(op.to_owned(), ok)),
            "{op} ok={ok} in {ops:?}"
        );
    }
    app.stop().await;

    // A restart keeps it all: statuses, the CRL (its number only grows), issuance.
    let app = TestApp::start(SERVICES.to_vec(), &[], Some(&data)).await;
    let token = client_token(&app, &boot.client_id, &boot.secret, "ca").await;
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/ca/cas/{inter_id}/certificates/{serial}"),
        None,
    )
    .await;
    assert_eq!(v["status"], "revoked", "{v}");
    let (_, v) = call(
        &app,
        &token,
        Method::GET,
        &format!("/ca/cas/{inter_id}/certificates?status=valid"),
        None,
    )
    .await;
    let valid: Vec<(&str, &str)> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["serial"].as_str().unwrap(),
                c["profile"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(valid.contains(&(held_serial.as_str(), "tls-server")), "{v}");
    assert!(!valid.iter().any(|(s, _)| *s == serial), "{v}");
    let (ok, out) = openssl_ocsp(&app, &work, &leaf_args);
    assert!(
        ok && out.contains("leaf.pem: revoked"),
        "after a restart: {out}"
    );
    fetch_crl(&app, &work, &inter_id, "inter").await;
    assert!(crl_number(&work, "inter") >= number);
    let (ok, out) = verify_leaf(&work, true);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let again = csr(&work, "again.example.test");
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{inter_id}/certificates"),
        Some(json!({"profile": "tls-server", "csr": again})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    app.stop().await;
}

/// `curl` over plain HTTP: status and body.
fn plain_get(url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let mut body = out.stdout;
    let split = body
        .iter()
        .rposition(|b| *b == b'\n')
        .expect("a status line");
    let status = std::str::from_utf8(&body[split + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    body.truncate(split);
    (status, body)
}

/// The opt-in plain-HTTP distribution listener serves CRLs, CA certificates and OCSP (and
/// nothing else); certificates name it by default; a tls-server certificate whose URLs name a
/// public host passes pkilint's CA/Browser Forum linter (`lint_cabf_serverauth_cert`).
#[tokio::test(flavor = "multi_thread")]
async fn the_distribution_listener_serves_signed_objects_over_http_and_tls_servers_pass_cabf_lint()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let app = TestApp::start(
        SERVICES.to_vec(),
        &[("CRYPTOUTIL_SERVICES__CA__DISTRIBUTION__ENABLED", "true")],
        Some(&data),
    )
    .await;
    let http = app.endpoints[&ServiceName::Ca]
        .distribution
        .clone()
        .expect("the distribution listener is bound");
    assert!(http.starts_with("http://127.0.0.1:"), "{http}");
    let boot = bootstrap(&data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "ca").await;
    let (status, root) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "root", "subject": {"common_name": "Plain Root"}, "key": "P-256"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    let root_id = root["id"].as_str().unwrap();
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(
        work.join("inter.pem"),
        root["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let request = csr(&work, "www.example.com");
    let (status, leaf) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{root_id}/certificates"),
        Some(json!({"profile": "tls-server", "csr": request})),
    )
    .await;
    assert_eq!(status, 201, "{leaf}");
    std::fs::write(work.join("leaf.pem"), leaf["certificate"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl(&work, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        ok && text.contains(&format!("URI:{http}/service/api/v1/ca/cas/{root_id}/crl"))
            && text.contains(&format!("OCSP - URI:{http}/service/api/v1/ca/ocsp")),
        "certificates name the plain-HTTP listener: {text}"
    );

    // What it serves: the CRL and the CA certificate (DER), OCSP (openssl over plain HTTP).
    let (status, crl) = plain_get(&format!("{http}/service/api/v1/ca/cas/{root_id}/crl"));
    assert_eq!(status, 200);
    std::fs::write(work.join("root.crl.der"), &crl).unwrap();
    let (ok, text) = openssl(
        &work,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "root.crl.der",
            "-noout",
            "-issuer",
        ],
    );
    assert!(ok && text.contains("Plain Root"), "{text}");
    let (status, cert) = plain_get(&format!(
        "{http}/service/api/v1/ca/cas/{root_id}/certificate"
    ));
    assert_eq!(status, 200);
    assert!(cert.starts_with(&[0x30]), "DER");
    let (ok, text) = openssl(
        &work,
        &[
            "ocsp",
            "-issuer",
            "root.pem",
            "-cert",
            "leaf.pem",
            "-url",
            &format!("{http}/service/api/v1/ca/ocsp"),
            "-CAfile",
            "root.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: good"), "{text}");
    // And nothing else: no API, no browser pages, no admin.
    for path in [
        "/service/api/v1/ca/cas".to_owned(),
        format!("/service/api/v1/ca/cas/{root_id}"),
        "/browser/".to_owned(),
        "/browser/ui/ca/".to_owned(),
        "/admin/v1/livez".to_owned(),
    ] {
        assert_eq!(plain_get(&format!("{http}{path}")).0, 404, "{path}");
    }
    app.stop().await;

    // With URLs under a public name (what a deployment configures), the CA/Browser Forum
    // linter finds no error in a tls-server certificate.
    let app = TestApp::start(
        SERVICES.to_vec(),
        &[
            ("CRYPTOUTIL_SERVICES__CA__DISTRIBUTION__ENABLED", "true"),
            (
                "CRYPTOUTIL_CA__DISTRIBUTION_BASE_URL",
                "http://pki.example.com",
            ),
        ],
        Some(&data),
    )
    .await;
    let token = client_token(&app, &boot.client_id, &boot.secret, "ca").await;
    let (status, leaf) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{root_id}/certificates"),
        Some(json!({"profile": "tls-server", "csr": request})),
    )
    .await;
    assert_eq!(status, 201, "{leaf}");
    std::fs::write(
        work.join("public.pem"),
        leaf["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let (ok, text) = pkilint(
        &work,
        "lint_cabf_serverauth_cert",
        &[
            "lint",
            "-t",
            "DV-FINAL-CERTIFICATE",
            "-s",
            "ERROR",
            "public.pem",
        ],
    );
    assert!(ok, "lint_cabf_serverauth_cert: {text}");
    app.stop().await;
}

/// Runs Python `code` with the interop venv's interpreter and `args`: success and stdout.
fn py(code: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A certificate whose key the service makes: the key reaches the caller only as a JWE to the
/// caller's key, which jwcrypto opens; `cryptography` finds the certificate's key in it.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_here_reaches_the_caller_only_as_a_jwe_that_jwcrypto_opens() {
    let CaTest {
        dir: _dir,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let (status, root) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "root", "subject": {"common_name": "Key Root"}, "key": "P-256"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    let certs = format!("/ca/cas/{}/certificates", root["id"].as_str().unwrap());
    // The caller's key, made by jwcrypto: its public half goes in the request.
    let (ok, out) = py(
        "from jwcrypto import jwk; import json\n\
         k = jwk.JWK.generate(kty='EC', crv='P-256', alg='ECDH-ES+A256KW')\n\
         print(json.dumps({'private': json.loads(k.export_private()), 'public': json.loads(k.export_public())}))",
        &[],
    );
    assert!(ok, "{out}");
    let mine: Value = serde_json::from_str(out.trim()).unwrap();
    let body = json!({
        "profile": "tls-client", "key": "P-384",
        "subject": {"common_name": "device-17", "organization": "Example"},
        "subject_alt_names": {"dns": ["device-17.example.test"], "uri": ["urn:example:device:17"]},
        "jwk": mine["public"],
    });
    let (status, v) = call(&app, &token, Method::POST, &certs, Some(body.clone())).await;
    assert_eq!(status, 201, "{v}");
    let jwe = v["key_jwe"].as_str().expect("the key, encrypted");
    let (ok, out) = py(
        "import json, sys\n\
         from jwcrypto import jwk, jwe\n\
         from cryptography import x509\n\
         from cryptography.hazmat.primitives.serialization import load_der_private_key, Encoding, PublicFormat\n\
         key = jwk.JWK(**json.loads(sys.argv[1]))\n\
         token = jwe.JWE(); token.deserialize(sys.argv[2], key=key)\n\
         assert token.jose_header['cty'] == 'application/pkcs8', token.jose_header\n\
         private = load_der_private_key(token.payload, None)\n\
         cert = x509.load_pem_x509_certificate(sys.argv[3].encode())\n\
         spki = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)\n\
         assert spki(private.public_key()) == spki(cert.public_key())\n\
         assert cert.subject.rfc4514_string() == 'CN=device-17,O=Example', cert.subject\n\
         print(private.curve.name)",
        &[
            &mine["private"].to_string(),
            jwe,
            v["certificate"].as_str().unwrap(),
        ],
    );
    assert!(ok && out.trim() == "secp384r1", "{out}");
    // The key is nowhere else: not in the answer in the clear, not in the store's listing.
    assert!(!v.to_string().contains("PRIVATE KEY"));
    let (_, listed) = call(&app, &token, Method::GET, &certs, None).await;
    assert!(!listed.to_string().contains("key_jwe"), "{listed}");

    // Refusals name the field: a private JWK, a JWK for signing, no subject, names the
    // profile does not allow, both a csr and a key.
    let private = json!({"jwk": mine["private"]});
    let signing = json!({"jwk": {"kty": "EC", "crv": "P-256", "alg": "ES256",
        "x": mine["public"]["x"], "y": mine["public"]["y"]}});
    let cases = [
        (private, "jwk"),
        (signing, "jwk"),
        (json!({"subject": null}), "subject"),
        (json!({"profile": "email"}), "subject_alt_names"),
        (json!({"csr": "x"}), "csr"),
    ];
    for (change, field) in cases {
        let mut bad = body.clone();
        for (k, val) in change.as_object().unwrap() {
            if val.is_null() {
                bad.as_object_mut().unwrap().remove(k);
            } else {
                bad[k] = val.clone();
            }
        }
        let (status, v) = call(&app, &token, Method::POST, &certs, Some(bad)).await;
        assert_eq!(status, 400, "{field}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("bad request: {field}")),
            "{field}: {v}"
        );
    }
    let (_, audit) = call(&app, &token, Method::GET, "/ca/audit?limit=1000", None).await;
    assert!(audit.to_string().contains("issue-server-key"), "{audit}");
    app.stop().await;
}

/// A CA made by openssl, wrapped by jwcrypto to the service's import key, becomes a CA of the
/// caller's tenant that issues what openssl verifies against the original certificate; a
/// leaf, a key that is not the certificate's and a JWE to another key are refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_made_elsewhere_is_imported_through_a_jwe_and_issues() {
    let CaTest {
        dir: _dir,
        work,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let (status, v) = call(&app, &token, Method::GET, "/ca/importkey", None).await;
    assert_eq!(status, 200, "{v}");
    let import_key = v["jwk"].to_string();
    assert!(v["jwk"].get("d").is_none(), "the public half only");

    // openssl makes a P-384 CA, another key, and a leaf (not a CA).
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=Outside CA/O=Elsewhere",
            "-days",
            "365",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
        vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "other.key",
        ],
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-subj",
            "/CN=not a CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-out",
            "leaf-only.pem",
        ],
    ] {
        let (ok, out) = openssl(&work, &args);
        assert!(ok, "{args:?}: {out}");
    }
    let read = |f: &str| std::fs::read_to_string(work.join(f)).unwrap();
    let wrap = |bundle: String, to: &str| {
        let (ok, out) = py(
            "import json, sys\n\
             from jwcrypto import jwk, jwe\n\
             key = jwk.JWK(**json.loads(sys.argv[1]))\n\
             t = jwe.JWE(sys.argv[2].encode(), json.dumps({'alg': 'RSA-OAEP-256', 'enc': 'A256GCM'}))\n\
             t.add_recipient(key)\n\
             print(t.serialize(compact=True))",
            &[to, &bundle],
        );
        assert!(ok, "{out}");
        out.trim().to_owned()
    };
    let good = wrap(read("ca.pem") + &read("ca.key"), &import_key);
    let (status, imported) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas/import",
        Some(json!({"name": "outside", "jwe": good})),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["key"], "P-384");
    assert_eq!(imported["parent"], Value::Null);
    assert!(
        imported["subject"].as_str().unwrap().contains("Outside CA"),
        "{imported}"
    );
    let id = imported["id"].as_str().unwrap();
    let request = csr(&work, "svc.example.test");
    let (status, leaf) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{id}/certificates"),
        Some(json!({"profile": "tls-server", "csr": request})),
    )
    .await;
    assert_eq!(status, 201, "{leaf}");
    std::fs::write(
        work.join("issued.pem"),
        leaf["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let (ok, out) = openssl(
        &work,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "ca.pem",
            "issued.pem",
        ],
    );
    assert!(
        ok,
        "the imported CA issues what openssl verifies against the original: {out}"
    );

    // Refusals: a leaf, a key that is not the certificate's, a JWE to another key.
    let (ok, out) = py(
        "from jwcrypto import jwk\nprint(jwk.JWK.generate(kty='RSA', size=2048, alg='RSA-OAEP-256').export_public())",
        &[],
    );
    assert!(ok, "{out}");
    for (jwe, why) in [
        (
            wrap(read("leaf-only.pem") + &read("leaf.key"), &import_key),
            "not a CA's",
        ),
        (
            wrap(read("ca.pem") + &read("other.key"), &import_key),
            "not the certificate's",
        ),
        (
            wrap(read("ca.pem") + &read("ca.key"), out.trim()),
            "does not open",
        ),
    ] {
        let (status, v) = call(
            &app,
            &token,
            Method::POST,
            "/ca/cas/import",
            Some(json!({"name": "bad", "jwe": jwe})),
        )
        .await;
        assert_eq!(status, 400, "{why}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("bad request: jwe") && message.contains(why),
            "{why}: {v}"
        );
    }
    let (_, cas) = call(&app, &token, Method::GET, "/ca/cas", None).await;
    assert_eq!(
        cas["cas"].as_array().unwrap().len(),
        1,
        "nothing refused was stored"
    );
    app.stop().await;
}

/// A root taken offline: its key signs nothing by itself (no issuance, no CRL re-signed on a
/// fetch), only explicit operator actions (a subordinate with offline_parent, a revocation, a
/// CRL signed on demand with a long lifetime); back online, it issues again. openssl checks
/// the CRL the offline root signed.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_root_signs_only_on_explicit_operator_actions() {
    let CaTest {
        dir: _dir,
        work,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let post = |path: String, body: Value| {
        let (app, token) = (&app, &token);
        async move { call(app, token, Method::POST, &path, Some(body)).await }
    };
    let (status, root) = post(
        "/ca/cas".into(),
        json!({"name": "root", "subject": {"common_name": "Offline Root"}, "key": "P-384"}),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    let root_id = root["id"].as_str().unwrap().to_owned();
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    let (status, first) = post(
        "/ca/cas".into(),
        json!({"name": "first", "subject": {"common_name": "First Issuing"}, "key": "P-256", "parent": root_id}),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, v) = post(format!("/ca/cas/{root_id}/offline"), json!({})).await;
    assert_eq!((status, v["offline"].as_bool()), (200, Some(true)), "{v}");

    // Refused while offline: issuance, and a subordinate without the operator's explicit flag.
    let request = csr(&work, "direct.example.test");
    let (status, v) = post(
        format!("/ca/cas/{root_id}/certificates"),
        json!({"profile": "tls-server", "csr": request}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("offline"), "{v}");
    let second = json!({"name": "second", "subject": {"common_name": "Second Issuing"},
                        "key": "P-256", "parent": root_id});
    let (status, v) = post("/ca/cas".into(), second.clone()).await;
    assert_eq!(status, 403, "{v}");
    // Explicit: a subordinate, a revocation of the first one, a CRL valid for half a year.
    let mut explicit = second.clone();
    explicit["offline_parent"] = json!(true);
    let (status, v) = post("/ca/cas".into(), explicit).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = post(
        format!(
            "/ca/cas/{root_id}/certificates/{}/revoke",
            first["serial"].as_str().unwrap()
        ),
        json!({"reason": "cACompromise"}),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("revoked")),
        "{v}"
    );
    let (status, v) = post(
        format!("/ca/cas/{root_id}/crl"),
        json!({"lifetime": "180d"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (number, this_update, next_update) = (
        v["number"].as_u64().unwrap(),
        v["this_update"].as_u64().unwrap(),
        v["next_update"].as_u64().unwrap(),
    );
    assert_eq!(next_update - this_update, 180 * 86_400);
    // The public route serves what the operator signed; it signs nothing itself.
    fetch_crl(&app, &work, &root_id, "root").await;
    assert_eq!(crl_number(&work, "root"), number);
    let (ok, out) = openssl(
        &work,
        &[
            "crl", "-in", "root.crl", "-noout", "-text", "-CAfile", "root.pem",
        ],
    );
    assert!(
        ok && out.contains("verify OK")
            && out.contains("CA Compromise")
            && out
                .to_lowercase()
                .contains(first["serial"].as_str().unwrap()),
        "{out}"
    );
    // Without the token, signing a CRL is refused; the fetch stays public.
    let url = format!(
        "{}/service/api/v1/ca/cas/{root_id}/crl",
        app.public(ServiceName::Ca)
    );
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 401);

    // Back online: it issues again.
    let (status, v) = post(format!("/ca/cas/{root_id}/online"), json!({})).await;
    assert_eq!((status, v["offline"].as_bool()), (200, Some(false)), "{v}");
    let (status, v) = post(
        format!("/ca/cas/{root_id}/certificates"),
        json!({"profile": "tls-server", "csr": request}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, audit) = call(&app, &token, Method::GET, "/ca/audit?limit=1000", None).await;
    let text = audit.to_string();
    for op in ["\"offline\"", "\"online\"", "\"crl\""] {
        assert!(text.contains(op), "{op} in {text}");
    }
    app.stop().await;
}

/// A profile a tenant defines: its patterns, extensions and validity bind what it issues;
/// another tenant cannot use it; a name is taken once.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_defines_a_profile_whose_rules_bind_what_it_issues() {
    let CaTest {
        dir: _dir,
        work,
        boot,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let spec = json!({
        "name": "iot-device",
        "key_usages": ["digitalSignature", "keyAgreement"],
        "extended_key_usages": ["clientAuth"],
        "allowed_sans": ["dns"], "required_san": ["dns"],
        "dns_patterns": ["*.devices.example.com"],
        "default_validity": "30d", "max_validity": "90d",
        "forbidden_extensions": ["1.3.6.1.5.5.7.1.24"],
    });
    let (status, v) = call(
        &app,
        &token,
        Method::POST,
        "/ca/profiles",
        Some(spec.clone()),
    )
    .await;
    assert_eq!((status, v["builtin"].as_bool()), (201, Some(false)), "{v}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        "/ca/profiles",
        Some(spec.clone()),
    )
    .await;
    assert_eq!(status, 409, "a name is taken once");
    let mut bad = spec.clone();
    bad["name"] = json!("tls-server");
    let (status, v) = call(&app, &token, Method::POST, "/ca/profiles", Some(bad)).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request: name"),
        "{v}"
    );
    let (_, v) = call(&app, &token, Method::GET, "/ca/profiles", None).await;
    let names: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names.contains(&"iot-device"));

    let (status, root) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "devices", "subject": {"common_name": "Device CA"}, "key": "P-256"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    let certs = format!("/ca/cas/{}/certificates", root["id"].as_str().unwrap());
    let issue = |csr: String, validity: Option<&str>| {
        let (app, token, certs) = (&app, &token, &certs);
        let mut body = json!({"profile": "iot-device", "csr": csr});
        if let Some(v) = validity {
            body["validity"] = json!(v);
        }
        async move { call(app, token, Method::POST, certs, Some(body)).await }
    };
    // A request inside the rules: issued with the profile's usages, clientAuth only.
    let good = csr(&work, "d17.devices.example.com");
    let (status, v) = issue(good.clone(), None).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["profile"], "iot-device");
    assert_eq!(
        v["not_after"].as_u64().unwrap() - v["not_before"].as_u64().unwrap(),
        30 * 86_400 + 300
    );
    std::fs::write(work.join("device.pem"), v["certificate"].as_str().unwrap()).unwrap();
    let (ok, out) = openssl(
        &work,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "device.pem",
        ],
    );
    assert!(ok, "{out}");
    let (_, text) = openssl(
        &work,
        &[
            "x509",
            "-in",
            "device.pem",
            "-noout",
            "-ext",
            "keyUsage,extendedKeyUsage",
        ],
    );
    assert!(
        text.contains("Digital Signature, Key Agreement")
            && text.contains("TLS Web Client Authentication")
            && !text.contains("Server"),
        "{text}"
    );
    // Outside them: a name outside the pattern, a forbidden extension (OCSP must-staple), a
    // validity over the maximum.
    let outside = csr(&work, "d17.example.com");
    let (status, v) = issue(outside, None).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request: subject_alt_names"),
        "{v}"
    );
    let (ok, out) = openssl(
        &work,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "staple.key",
            "-subj",
            "/CN=d18.devices.example.com",
            "-addext",
            "subjectAltName=DNS:d18.devices.example.com",
            "-addext",
            "tlsfeature=status_request",
            "-out",
            "staple.csr",
        ],
    );
    assert!(ok, "{out}");
    let (status, v) = issue(
        std::fs::read_to_string(work.join("staple.csr")).unwrap(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request: extensions"),
        "{v}"
    );
    let (status, v) = issue(good.clone(), Some("91d")).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request: validity"),
        "{v}"
    );

    // Another tenant has no such profile.
    let operator = client_token(&app, &boot.client_id, &boot.secret, "identity").await;
    let (status, _) = admin(
        &app,
        &operator,
        Method::POST,
        "/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "acme ca", "tenant": "acme", "scopes": ["ca"]})),
    )
    .await;
    let acme = client_token(
        &app,
        v["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
        "ca",
    )
    .await;
    let (_, v) = call(&app, &acme, Method::GET, "/ca/profiles", None).await;
    assert_eq!(v["profiles"].as_array().unwrap().len(), 7, "{v}");
    let (_, acme_root) = call(
        &app,
        &acme,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "acme", "subject": {"common_name": "Acme CA"}, "key": "P-256"})),
    )
    .await;
    let (status, v) = call(
        &app,
        &acme,
        Method::POST,
        &format!("/ca/cas/{}/certificates", acme_root["id"].as_str().unwrap()),
        Some(json!({"profile": "iot-device", "csr": good})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request: profile"),
        "{v}"
    );
    app.stop().await;
}

/// Delta CRLs: numbered after their complete CRL, naming their base; with the base a relying
/// party learns a revocation from the delta alone (openssl -use_deltas), and a released hold
/// is removeFromCRL; pkilint's lint_crl finds no error in one.
#[tokio::test(flavor = "multi_thread")]
async fn delta_crls_carry_what_changed_since_their_base_and_openssl_uses_them() {
    let CaTest {
        dir: _dir,
        work,
        app,
        token,
        ..
    } = CaTest::start(&[], "ca").await;
    let (_, root) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(json!({"name": "root", "subject": {"common_name": "Delta Root"}, "key": "P-256"})),
    )
    .await;
    let root_id = root["id"].as_str().unwrap().to_owned();
    std::fs::write(work.join("root.pem"), root["certificate"].as_str().unwrap()).unwrap();
    let mut serials = Vec::new();
    for name in ["a.example.test", "b.example.test"] {
        let (status, v) = call(
            &app,
            &token,
            Method::POST,
            &format!("/ca/cas/{root_id}/certificates"),
            Some(json!({"profile": "tls-server", "csr": csr(&work, name)})),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        std::fs::write(
            work.join(format!("{name}.pem")),
            v["certificate"].as_str().unwrap(),
        )
        .unwrap();
        serials.push(v["serial"].as_str().unwrap().to_owned());
    }
    // Listing is paged in serial order.
    let list = format!("/ca/cas/{root_id}/certificates");
    let (_, first) = call(&app, &token, Method::GET, &format!("{list}?limit=1"), None).await;
    assert_eq!(
        first["certificates"].as_array().unwrap().len(),
        1,
        "{first}"
    );
    let next = first["next"].as_str().expect("a next page").to_owned();
    let (_, second) = call(
        &app,
        &token,
        Method::GET,
        &format!("{list}?limit=1&after={next}"),
        None,
    )
    .await;
    let mut both = vec![
        first["certificates"][0]["serial"]
            .as_str()
            .unwrap()
            .to_owned(),
        second["certificates"][0]["serial"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    assert!(both[0] < both[1], "serial order: {both:?}");
    both.sort();
    let mut expected = serials.clone();
    expected.sort();
    assert_eq!(both, expected);
    for bad in ["limit=0", "limit=1001", "after=XYZ"] {
        let (status, v) = call(&app, &token, Method::GET, &format!("{list}?{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let delta = |name: &'static str| {
        let (app, work, root_id) = (&app, &work, &root_id);
        async move {
            let (status, kind, der) =
                public_get(app, &format!("/ca/cas/{root_id}/crl/delta")).await;
            assert_eq!((status, kind.as_str()), (200, "application/pkix-crl"));
            std::fs::write(work.join(format!("{name}.der")), &der).unwrap();
            let (ok, out) = openssl(
                work,
                &[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    &format!("{name}.der"),
                    "-out",
                    &format!("{name}.crl"),
                ],
            );
            assert!(ok, "{out}");
            let (ok, text) = openssl(
                work,
                &[
                    "crl",
                    "-in",
                    &format!("{name}.crl"),
                    "-noout",
                    "-text",
                    "-CAfile",
                    "root.pem",
                ],
            );
            assert!(ok && text.contains("verify OK"), "{text}");
            text
        }
    };
    // The base: the complete CRL as first fetched, and its (empty) delta.
    fetch_crl(&app, &work, &root_id, "base").await;
    let base = crl_number(&work, "base");
    let text = delta("delta0").await;
    assert!(
        text.contains("Delta CRL Indicator: critical") && text.contains(&format!("{base}")),
        "{text}"
    );
    assert_eq!(crl_number(&work, "delta0"), base + 1, "one number sequence");

    // A revocation: the base plus the new delta say so; the base alone does not.
    let revoke = |serial: String, reason: &'static str| {
        let (app, token, root_id) = (&app, &token, &root_id);
        async move {
            call(
                app,
                token,
                Method::POST,
                &format!("/ca/cas/{root_id}/certificates/{serial}/revoke"),
                Some(json!({"reason": reason})),
            )
            .await
        }
    };
    assert_eq!(revoke(serials[0].clone(), "keyCompromise").await.0, 200);
    let text = delta("delta1").await;
    assert!(
        text.to_lowercase().contains(&serials[0]) && text.contains("Key Compromise"),
        "{text}"
    );
    let verify = |crls: &[&str]| {
        let mut args = vec!["verify", "-crl_check", "-use_deltas", "-CAfile", "root.pem"];
        for c in crls {
            args.extend(["-CRLfile", c]);
        }
        args.push("a.example.test.pem");
        openssl(&work, &args)
    };
    let (ok, out) = verify(&["base.crl"]);
    assert!(ok, "the base predates the revocation: {out}");
    let (ok, out) = verify(&["base.crl", "delta1.crl"]);
    assert!(
        !ok && out.contains("certificate revoked"),
        "the delta carries it: {out}"
    );
    let (ok, out) = lint_crl(&work, "delta1", "CRL");
    assert!(ok, "lint_crl on a delta CRL: {out}");

    // A hold, then its release: removeFromCRL in the delta.
    assert_eq!(revoke(serials[1].clone(), "certificateHold").await.0, 200);
    let text = delta("delta2").await;
    assert!(text.contains("Certificate Hold"), "{text}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{root_id}/certificates/{}/release", serials[1]),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let text = delta("delta3").await;
    assert!(
        text.contains("Remove From CRL") && text.contains(&format!("{base}")),
        "same base: {text}"
    );
    app.stop().await;
}
