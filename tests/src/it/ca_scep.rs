//! SCEP (RFC 8894 over HTTPS), judged by strongSwan's `pki --scepca` / `pki --scep` (5.9.8,
//! Debian's strongswan-pki: a client no one here wrote, with its own CMS and X.509 code):
//! GetCACaps and GetCACert (the CA's SCEP RA and the root), a PKCSReq authenticated by an RA
//! secret as its challenge password (SHA-256 + PKCS #1 v1.5, and SHA-512 + PSS), a
//! RenewalReq signed by the certificate it renews, and a manual label whose request stays
//! PENDING (strongSwan polls with CertPoll) until the RA approves it. Each certificate chains
//! to the root and pkilint finds no error. Refused with a signed FAILURE, and nothing issued:
//! a wrong challenge, a used one, a 3DES envelope, a renewal by a revoked certificate; an
//! unknown label is a 404. GetCert and GetCRL, which no installable client sends, come from
//! `tests/interop/scep_get.py` (pyasn1-alt-modules and `cryptography`), and `openssl cms`
//! verifies and opens their answers. Without `ca.scep.allow_rsa_pkcs1v15_key_transport` SCEP answers 403 with the
//! reason. Every refusal is audited and the audit chain verifies.
//!
//! `pki` fetches over libcurl, which trusts only the system's CA file: each run sees the
//! suite's TLS anchor there through a private mount namespace (`unshare --mount`, as root),
//! and nothing outside it changes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use hyper::Method;

use super::ca_acme::cert_status;
use super::ca_est::{count_certs, decide, pending_requests, root_with_labels, secret};
use super::ca_service::{audit_verifies, call, openssl, pkilint, run, Audited, CaTest};
use super::jose_interop::python;

const ON: (&str, &str) = (
    "CRYPTOUTIL_CA__SCEP__ALLOW_RSA_PKCS1V15_KEY_TRANSPORT",
    "true",
);

/// How `pki` reaches the CA.
struct Pki {
    base: String,
    anchor: String,
}

impl Pki {
    /// `pki <args>` in `dir`, the suite's anchor as the only trusted CA: (succeeded, output).
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.current_dir(dir)
            .args(["--mount", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/ssl/certs/ca-certificates.crt && shift && exec pki \"$@\"")
            .arg(&self.anchor)
            .arg("--")
            .args(args);
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        run(&mut self.command(dir, args))
    }

    fn url(&self, label: &str) -> String {
        format!("{}/scep/{label}", self.base)
    }

    /// `pki --scep` at `label` for `dn` (DNS SAN `san`) with key `key`: the certificate
    /// (PEM) written to `out`, or what pki said.
    fn enroll(
        &self,
        dir: &Path,
        label: &str,
        key: &str,
        (dn, san): (&str, &str),
        extra: &[&str],
        out: &str,
    ) -> (bool, String) {
        let url = self.url(label);
        let mut args = vec![
            "--scep",
            "--url",
            &url,
            "--in",
            key,
            "--dn",
            dn,
            "--san",
            san,
            "--cacert-enc",
            "ra.der",
            "--cacert-sig",
            "ra.der",
            "--cacert",
            "ca.der",
            "--outform",
            "pem",
        ];
        args.extend_from_slice(extra);
        let output = self.command(dir, &args).output().expect("pki runs");
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            std::fs::write(dir.join(out), &output.stdout).unwrap();
        }
        (output.status.success(), text)
    }
}

/// `tests/interop/scep_get.py`: a GetCert or GetCRL for `serial` (a CertPoll for
/// transactionID `serial`) of the CA `ca` (a DER file) at `label`, encrypted to `ra.der`; the
/// answer is `<out>.der`, the client's certificate and key `<out>-me.pem` and `<out>-me.key`.
/// `openssl cms` verifies the answer's signature (the RA, chained to `root.pem`): what it
/// printed of the answer (`-cmsout -print`: its SCEP attributes).
fn scep_ask(
    pki: &Pki,
    dir: &Path,
    (label, ca): (&str, &str),
    op: &str,
    serial: &str,
    out: &str,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/scep_get.py");
    let (ok, said) = run(Command::new(python()).current_dir(dir).arg(script).args([
        &pki.url(label),
        &pki.anchor,
        "ra.der",
        ca,
        serial,
        op,
        out,
    ]));
    assert!(ok, "{said}");
    let (der, envelope) = (format!("{out}.der"), format!("{out}-env.der"));
    let (ok, printed) = openssl(
        dir,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", &der],
    );
    assert!(ok, "{printed}");
    // Only a SUCCESS carries content; the others are signed over none (an empty file).
    let mut verify = vec![
        "cms", "-verify", "-inform", "DER", "-in", &der, "-CAfile", "root.pem", "-purpose", "any",
        "-binary", "-out", &envelope,
    ];
    std::fs::write(dir.join("empty"), b"").unwrap();
    if !scep_attribute(&printed, "3", "0") {
        verify.extend(["-content", "empty"]);
    }
    let (ok, said) = openssl(dir, &verify);
    assert!(ok, "{said}");
    printed
}

/// [`scep_ask`] answered SUCCESS: its envelope opened by `openssl cms` with the client's key,
/// and the degenerate PKCS#7 inside as `openssl pkcs7 -print_certs -text` prints it.
fn scep_get(pki: &Pki, dir: &Path, label: &str, op: &str, serial: &str, out: &str) -> String {
    let printed = scep_ask(pki, dir, (label, "ca.der"), op, serial, out);
    assert!(scep_attribute(&printed, "3", "0"), "SUCCESS: {printed}");
    let (envelope, inner) = (format!("{out}-env.der"), format!("{out}.p7"));
    let (ok, said) = openssl(
        dir,
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &envelope,
            "-recip",
            &format!("{out}-me.pem"),
            "-inkey",
            &format!("{out}-me.key"),
            "-binary",
            "-out",
            &inner,
        ],
    );
    assert!(ok, "{said}");
    let (ok, text) = openssl(
        dir,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &inner,
            "-print_certs",
            "-text",
            "-noout",
        ],
    );
    assert!(ok, "{text}");
    text
}

/// Whether `openssl cms -cmsout -print` shows SCEP attribute `2.16.840.1.113733.1.9.<n>`
/// (3: pkiStatus, 4: failInfo) with PrintableString `value`.
fn scep_attribute(printed: &str, n: &str, value: &str) -> bool {
    let oid = format!("(2.16.840.1.113733.1.9.{n})");
    let mut lines = printed.lines().skip_while(|l| !l.contains(&oid));
    lines.next().is_some()
        && lines
            .take(3)
            .any(|l| l.trim() == format!("PRINTABLESTRING:{value}"))
}

/// An RSA 3072 key `<name>.key` (pki --scep signs with RSA keys only), made by openssl.
fn rsa_key(dir: &Path, name: &str) -> String {
    let file = format!("{name}.key");
    let (ok, out) = openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
            &file,
        ],
    );
    assert!(ok, "{out}");
    file
}

/// `pem` chains to `root.pem` as a TLS server certificate, pkilint finds no error, and its
/// subject names `cn`: its serial (lowercase hex).
fn judged(dir: &Path, pem: &str, cn: &str) -> String {
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            pem,
        ],
    );
    assert!(ok, "{out}");
    let (ok, text) = pkilint(dir, "lint_pkix_cert", &["lint", "-s", "ERROR", pem]);
    assert!(ok, "pkilint: {text}");
    let (ok, out) = openssl(dir, &["x509", "-in", pem, "-noout", "-subject", "-serial"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("CN = {cn}")) || out.contains(&format!("CN={cn}")),
        "{out}"
    );
    out.lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .trim_start_matches("00")
        .to_ascii_lowercase()
}

/// A serial as `openssl x509 -text` prints it: `1a:2b:...`.
fn serial_colons(serial: &str) -> String {
    let padded = if serial.len() % 2 == 1 {
        format!("0{serial}")
    } else {
        serial.to_owned()
    };
    padded
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread")]
async fn strongswan_pki_enrolls_renews_polls_and_is_refused() {
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        boot: _,
        token,
    } = CaTest::start(&[ON], "ca ca-ra").await;
    let root_id = root_with_labels(
        &app,
        &token,
        &work,
        ("scep", "SCEP Root"),
        &[("devices", "auto"), ("gated", "manual")],
    )
    .await;
    let pki = Pki {
        base: app.public(ServiceName::Ca).to_owned(),
        anchor: cryptoutil_bin::pki::anchor_path(&data)
            .display()
            .to_string(),
    };

    // GetCACaps: AES and SHA-2, POST, renewal; no DES, no SHA-1.
    let caps = app
        .client
        .get(&format!("{}?operation=GetCACaps", pki.url("devices")))
        .await
        .unwrap();
    let status = caps.status;
    let caps = String::from_utf8_lossy(&caps.body).into_owned();
    assert_eq!(status, 200, "{caps}");
    for cap in [
        "AES",
        "SHA-256",
        "POSTPKIOperation",
        "Renewal",
        "SCEPStandard",
    ] {
        assert!(caps.lines().any(|l| l == cap), "{caps}");
    }
    assert!(!caps.contains("DES") && !caps.contains("SHA-1\n"), "{caps}");

    // GetCACert: the CA and its SCEP RA (RSA, digitalSignature + keyEncipherment).
    let (ok, out) = pki.run(
        &work,
        &[
            "--scepca",
            "--url",
            &pki.url("devices"),
            "--caout",
            "ca.der",
            "--raout",
            "ra.der",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Root CA cert \"CN=SCEP Root\"") && out.contains("RA cert"),
        "{out}"
    );
    let (ok, ra_text) = openssl(
        &work,
        &["x509", "-inform", "DER", "-in", "ra.der", "-noout", "-text"],
    );
    assert!(ok, "{ra_text}");
    assert!(
        ra_text.contains("Public-Key: (3072 bit)") && ra_text.contains("Key Encipherment"),
        "{ra_text}"
    );
    let (ok, out) = openssl(
        &work,
        &["x509", "-inform", "DER", "-in", "ra.der", "-out", "ra.pem"],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        &work,
        &["verify", "-x509_strict", "-CAfile", "root.pem", "ra.pem"],
    );
    assert!(ok, "{out}");

    // PKCSReq with an RA secret as the challenge: issued at once, chained, linted.
    let (reference, pass) = secret(&app, &token, "devices").await;
    let challenge = format!("{reference}:{pass}");
    let key = rsa_key(&work, "device");
    let (ok, out) = pki.enroll(
        &work,
        "devices",
        &key,
        ("CN=device-1.example", "device-1.example"),
        &["--password", &challenge],
        "device.pem",
    );
    assert!(ok, "{out}");
    let serial = judged(&work, "device.pem", "device-1.example");
    assert_eq!(cert_status(&app, &token, &root_id, &serial).await, "valid");

    // SHA-512 and PSS signatures, another secret.
    let (reference2, pass2) = secret(&app, &token, "devices").await;
    let key2 = rsa_key(&work, "pss");
    let (ok, out) = pki.enroll(
        &work,
        "devices",
        &key2,
        ("CN=pss.example", "pss.example"),
        &[
            "--password",
            &format!("{reference2}:{pass2}"),
            "--digest",
            "sha512",
            "--rsa-padding",
            "pss",
        ],
        "pss-cert.pem",
    );
    assert!(ok, "{out}");
    judged(&work, "pss-cert.pem", "pss.example");

    // Refused with a signed FAILURE, nothing issued: a wrong secret, a used one, and a 3DES
    // envelope (badAlg; GetCACaps does not offer 3DES, but strongSwan 5.9.8 sends it when
    // asked to).
    let before = count_certs(&app, &token, &root_id).await;
    let other = rsa_key(&work, "other");
    // Another key, for x.example, at `label` with `extra` (its certificate never written).
    let stranger = |label: &str, extra: &[&str]| {
        pki.enroll(
            &work,
            label,
            &other,
            ("CN=x.example", "x.example"),
            extra,
            "x.pem",
        )
    };
    let (ok, out) = stranger("devices", &["--password", &format!("{reference}:wrong")]);
    assert!(!ok && out.contains("badRequest"), "{out}");
    let (ok, out) = stranger("devices", &["--password", &challenge]);
    assert!(!ok && out.contains("badRequest"), "{out}");
    let (reference3, pass3) = secret(&app, &token, "devices").await;
    let (ok, out) = stranger(
        "devices",
        &[
            "--password",
            &format!("{reference3}:{pass3}"),
            "--cipher",
            "des3",
        ],
    );
    assert!(!ok && out.contains("failInfo:     badAlg"), "{out}");
    let (ok, out) = stranger("nowhere", &["--password", &challenge]);
    assert!(!ok && out.contains("404"), "{out}");
    assert_eq!(count_certs(&app, &token, &root_id).await, before);

    // RenewalReq signed by the certificate it renews, for a new key: same subject.
    let new_key = rsa_key(&work, "device-next");
    let (ok, out) = pki.enroll(
        &work,
        "devices",
        &new_key,
        ("CN=device-1.example", "device-1.example"),
        &["--cert", "device.pem", "--key", &key],
        "device-next.pem",
    );
    assert!(ok, "{out}");
    let renewed = judged(&work, "device-next.pem", "device-1.example");
    assert_ne!(renewed, serial);

    // GetCert: the certificate by its serial, checked by openssl (signature, envelope).
    let got = scep_get(&pki, &work, "devices", "GetCert", &serial, "get-cert");
    assert!(got.contains("Subject: CN=device-1.example"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains(&serial_colons(&serial)),
        "{got}"
    );

    // GetCert naming another issuer (the RA as "CA"): FAILURE badCertId.
    let printed = scep_ask(
        &pki,
        &work,
        ("devices", "ra.der"),
        "GetCert",
        &serial,
        "get-other",
    );
    assert!(
        scep_attribute(&printed, "3", "2") && scep_attribute(&printed, "4", "4"),
        "{printed}"
    );

    // A renewal signed by a revoked certificate is refused.
    let (status, revoked) = call(
        &app,
        &token,
        Method::POST,
        &format!("/ca/cas/{root_id}/certificates/{serial}/revoke"),
        Some(serde_json::json!({"reason": "keyCompromise"})),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let (ok, out) = pki.enroll(
        &work,
        "devices",
        &other,
        ("CN=device-1.example", "device-1.example"),
        &["--cert", "device.pem", "--key", &key],
        "x.pem",
    );
    assert!(!ok && out.contains("badRequest"), "{out}");
    // GetCRL: the CA's CRL, which lists the revoked certificate.
    let crl = scep_get(&pki, &work, "devices", "GetCRL", &serial, "get-crl");
    assert!(
        crl.contains("Certificate Revocation List") && crl.contains("Key Compromise"),
        "{crl}"
    );
    assert!(
        crl.to_ascii_uppercase()
            .contains(&serial.to_ascii_uppercase()),
        "{crl}"
    );

    // A manual label: PENDING while the RA decides; strongSwan polls (CertPoll) and gets the
    // certificate once a holder of ca-ra approves.
    let (gated_ref, gated_pass) = secret(&app, &token, "gated").await;
    let gated_key = rsa_key(&work, "gated");
    let url = pki.url("gated");
    let challenge = format!("{gated_ref}:{gated_pass}");
    let args = [
        "--scep",
        "--url",
        url.as_str(),
        "--in",
        gated_key.as_str(),
        "--dn",
        "CN=gated.example",
        "--san",
        "gated.example",
        "--password",
        challenge.as_str(),
        "--cacert-enc",
        "ra.der",
        "--cacert-sig",
        "ra.der",
        "--cacert",
        "ca.der",
        "--outform",
        "pem",
        "--interval",
        "1",
        "--maxpolltime",
        "90",
    ];
    let poller = pki
        .command(&work, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = None;
    for _ in 0..60 {
        let pending = pending_requests(&app, &token).await;
        id = pending["requests"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["label"] == "gated"))
            .map(|r| r["id"].as_str().unwrap().to_owned());
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let id = id.expect("the gated request is queued");
    tokio::time::sleep(Duration::from_secs(2)).await; // strongSwan has polled at least once
    let (status, decided) = decide(&app, &token, &id, "approve", serde_json::json!({})).await;
    assert_eq!(status, 200, "{decided}");
    let output = tokio::task::spawn_blocking(move || poller.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(said.contains("SCEP request pending"), "{said}");
    std::fs::write(work.join("gated.pem"), &output.stdout).unwrap();
    judged(&work, "gated.pem", "gated.example");
    // A CertPoll of that transaction by another key finds nothing (badCertId): a
    // transaction is its signer's.
    let transaction = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("transaction ID: "))
        .unwrap()
        .to_owned();
    let printed = scep_ask(
        &pki,
        &work,
        ("gated", "ca.der"),
        "CertPoll",
        &transaction,
        "stranger",
    );
    assert!(
        scep_attribute(&printed, "3", "2") && scep_attribute(&printed, "4", "4"),
        "{printed}"
    );

    // Every refusal is audited (the secret never), and the chain verifies.
    let audit = Audited::read(&app, &token, &pass).await;
    assert!(audit.ops("scep", true) >= 3, "{audit}");
    assert!(audit.ops("enroll", true) >= 1, "{audit}");
    audit_verifies(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scep_is_off_unless_its_key_transport_is_allowed() {
    let CaTest {
        dir: _dir,
        data: _,
        work,
        app,
        boot: _,
        token,
    } = CaTest::start(&[], "ca ca-ra").await;
    root_with_labels(
        &app,
        &token,
        &work,
        ("scep-off", "Off Root"),
        &[("devices", "auto")],
    )
    .await;
    let base = format!("{}/scep/devices", app.public(ServiceName::Ca));
    for op in ["GetCACaps", "GetCACert", "PKIOperation&message=MA=="] {
        let off = app
            .client
            .get(&format!("{base}?operation={op}"))
            .await
            .unwrap();
        assert_eq!(off.status, 403);
        let reason = String::from_utf8_lossy(&off.body).into_owned();
        assert!(
            reason.contains("allow_rsa_pkcs1v15_key_transport") && reason.contains("FIPS"),
            "{reason}"
        );
    }
    app.stop().await;
}
