//! CMP (RFC 4210/9480, the Lightweight CMP Profile of RFC 9483, over HTTPS per RFC 6712),
//! judged by `openssl cmp` (OpenSSL 3.0, a client no one here wrote) and pkilint: `ir` with
//! an RA secret's MAC and the confirmation that follows, `p10cr`, `cr` and `kur` signed with
//! a certificate the CA issued (answers signed by the CA, checked by openssl against the
//! root), `rr` signed with the certificate revoked, `genm` for the CA certificates, a request
//! template, the current CRL and the key types; a manual label whose request waits
//! (`waiting`, then `pollReq`/`pollRep`) until the RA approves it. Refused, with CMP's own
//! error and nothing issued: a wrong MAC, a used secret, an unknown label, a revoked signer.
//! Every refusal is audited and the audit chain verifies.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use hyper::Method;

use super::ca_acme::cert_status;
use super::ca_est::{count_certs, decide, make_labels, pending_requests, root_with_labels, secret};
use super::ca_service::{
    audit_verifies, call, openssl, pkilint, request_file, run, Audited, CaTest,
};

/// How `openssl cmp` reaches the CA: over HTTPS, trusting the suite's TLS anchor.
#[derive(Clone)]
struct Client {
    server: String,
    anchor: String,
    recipient: String,
}

impl Client {
    /// `openssl cmp` at `label` with `args`: (succeeded, what it printed).
    fn run(&self, dir: &Path, label: &str, args: &[&str]) -> (bool, String) {
        run(&mut self.command(Command::new("openssl"), dir, label, args))
    }

    /// The `openssl cmp` command [`Self::run`] runs, as arguments of `cmd` (`openssl`, or a
    /// wrapper that runs it).
    fn command(&self, mut cmd: Command, dir: &Path, label: &str, args: &[&str]) -> Command {
        cmd.current_dir(dir)
            .arg("cmp")
            .args(["-server", &self.server, "-tls_used", "-tls_trusted"])
            .arg(&self.anchor)
            .args(["-path", &format!("/.well-known/cmp/p/{label}")])
            .args(["-recipient", &self.recipient, "-batch", "-config", ""])
            .args(["-msg_timeout", "20", "-total_timeout", "60"])
            .args(args);
        cmd
    }
}

/// A P-256 key `<name>.pem`, made by openssl.
fn key(dir: &Path, name: &str) -> String {
    let file = format!("{name}.pem");
    let (ok, out) = openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &file,
        ],
    );
    assert!(ok, "{out}");
    file
}

/// The serial of certificate `pem`, lowercase hex as the API names it.
fn serial(dir: &Path, pem: &str) -> String {
    let (ok, out) = openssl(dir, &["x509", "-in", pem, "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim()
        .trim_start_matches("serial=")
        .trim_start_matches("00")
        .to_ascii_lowercase()
}

/// `pem` chains to `root.pem` (through `issuing.pem` when it exists) as a TLS server
/// certificate, and pkilint finds no error.
fn judged(dir: &Path, pem: &str) {
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        "root.pem",
    ];
    if dir.join("issuing.pem").exists() {
        args.extend(["-untrusted", "issuing.pem"]);
    }
    args.push(pem);
    let (ok, out) = openssl(dir, &args);
    assert!(ok, "{out}");
    let (ok, text) = pkilint(dir, "lint_pkix_cert", &["lint", "-s", "ERROR", pem]);
    assert!(ok, "pkilint: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_cmp_enrolls_confirms_polls_updates_revokes_and_asks() {
    let CaTest {
        dir: _dir,
        data,
        work,
        app,
        boot: _,
        token,
    } = CaTest::start(&[], "ca ca-ra").await;
    let root_id = root_with_labels(
        &app,
        &token,
        &work,
        ("cmp", "CMP Root"),
        &[("devices", "auto"), ("gated", "manual")],
    )
    .await;
    let client = Client {
        server: app
            .public(ServiceName::Ca)
            .trim_start_matches("https://")
            .to_owned(),
        anchor: cryptoutil_bin::pki::anchor_path(&data)
            .display()
            .to_string(),
        recipient: "/CN=CMP Root".to_owned(),
    };

    // ir, MAC-protected with an RA secret (PBM), confirmed by certConf: issued, chained,
    // linted; the root comes back in caPubs.
    let (reference, pass) = secret(&app, &token, "devices").await;
    let mac = |reference: &str, pass: &str| {
        vec![
            "-ref".to_owned(),
            reference.to_owned(),
            "-secret".to_owned(),
            format!("pass:{pass}"),
        ]
    };
    let with = |base: &[&str], extra: &[String]| -> Vec<String> {
        base.iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().cloned())
            .collect()
    };
    let run = |label: &str, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client.run(&work, label, &args)
    };
    let k1 = key(&work, "k1");
    let (ok, out) = run(
        "devices",
        with(
            &[
                "-cmd",
                "ir",
                "-newkey",
                &k1,
                "-subject",
                "/CN=dev1.example.test",
                "-sans",
                "dev1.example.test",
                "-certout",
                "dev1.pem",
                "-cacertsout",
                "capubs.pem",
                "-reqout",
                "ir1.der,conf1.der",
            ],
            &mac(&reference, &pass),
        ),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("received PKICONF"),
        "certConf confirmed: {out}"
    );
    judged(&work, "dev1.pem");
    let (ok, out) = openssl(&work, &["x509", "-in", "capubs.pem", "-noout", "-subject"]);
    assert!(ok && out.contains("CMP Root"), "{out}");
    let dev1 = serial(&work, "dev1.pem");
    assert_eq!(cert_status(&app, &token, &root_id, &dev1).await, "valid");

    // The same ir again (a replay, its MAC still valid): its transactionID is in use.
    let replayed = app
        .client
        .send(
            Method::POST,
            &format!("{}/.well-known/cmp/p/devices", app.public(ServiceName::Ca)),
            &[("content-type", "application/pkixcmp")],
            std::fs::read(work.join("ir1.der")).unwrap().into(),
        )
        .await
        .unwrap();
    assert_eq!(replayed.status, 200);
    std::fs::write(work.join("replayed.der"), &replayed.body).unwrap();
    let (ok, out) = openssl(
        &work,
        &["asn1parse", "-inform", "DER", "-in", "replayed.der"],
    );
    assert!(
        ok && out.contains("this transactionID was used already"),
        "{out}"
    );

    // The used secret cannot enroll again; a wrong secret's MAC does not verify; an unknown
    // label is refused: CMP errors, nothing issued.
    let before = count_certs(&app, &token, &root_id).await;
    let k9 = key(&work, "k9");
    let enroll = |cn: &str, out: &str| {
        vec![
            "-cmd".to_owned(),
            "ir".to_owned(),
            "-newkey".to_owned(),
            k9.clone(),
            "-subject".to_owned(),
            format!("/CN={cn}"),
            "-sans".to_owned(),
            cn.to_owned(),
            "-certout".to_owned(),
            out.to_owned(),
            "-unprotected_errors".to_owned(),
        ]
    };
    let mut args = enroll("again.example.test", "again.pem");
    args.extend(mac(&reference, &pass));
    let (ok, out) = run("devices", args);
    assert!(!ok && out.contains("was used for another request"), "{out}");
    let (reference2, pass2) = secret(&app, &token, "devices").await;
    let mut args = enroll("wrong.example.test", "wrong.pem");
    args.extend(mac(&reference2, "not-the-secret"));
    let (ok, out) = run("devices", args);
    assert!(
        !ok && out.contains("badMessageCheck") && out.contains("the MAC does not verify"),
        "{out}"
    );
    let mut args = enroll("nowhere.example.test", "nowhere.pem");
    args.extend(mac(&reference2, &pass2));
    let (ok, out) = run("nowhere", args);
    assert!(!ok && out.contains("no CMP label"), "{out}");
    assert_eq!(count_certs(&app, &token, &root_id).await, before);

    // p10cr with the second secret (untouched by the refusals above).
    request_file(
        &work,
        "p10",
        "/CN=p10.example.test",
        "DNS:p10.example.test",
        "PEM",
    );
    // (At the label's path with an operation segment after it, RFC 9480 §3.3.)
    let (ok, out) = run(
        "devices/pkcs10",
        with(
            &["-cmd", "p10cr", "-csr", "p10.csr", "-certout", "p10.pem"],
            &mac(&reference2, &pass2),
        ),
    );
    assert!(ok, "{out}");
    judged(&work, "p10.pem");

    // cr and kur signed with dev1's certificate and key: the CA signs its answers, which
    // openssl checks against the root (digitalSignature in its key usage included).
    let signed = ["-cert", "dev1.pem", "-key", &k1, "-trusted", "root.pem"];
    let k2 = key(&work, "k2");
    let (ok, out) = client.run(
        &work,
        "devices",
        &[
            &signed[..],
            &[
                "-cmd",
                "cr",
                "-newkey",
                &k2,
                "-subject",
                "/CN=dev1.example.test",
                "-sans",
                "dev1.example.test",
                "-certout",
                "cr.pem",
            ],
        ]
        .concat(),
    );
    assert!(ok, "{out}");
    judged(&work, "cr.pem");
    let k3 = key(&work, "k3");
    let (ok, out) = client.run(
        &work,
        "devices",
        &[
            &signed[..],
            &["-cmd", "kur", "-newkey", &k3, "-certout", "kur.pem"],
        ]
        .concat(),
    );
    assert!(ok, "{out}");
    judged(&work, "kur.pem");
    let (ok, out) = openssl(&work, &["x509", "-in", "kur.pem", "-noout", "-subject"]);
    assert!(ok && out.contains("dev1.example.test"), "{out}");
    // kur needs a signature: a MAC cannot update a key.
    let (ok, out) = run(
        "devices",
        with(
            &[
                "-cmd",
                "kur",
                "-oldcert",
                "dev1.pem",
                "-newkey",
                &k3,
                "-certout",
                "x.pem",
                "-unprotected_errors",
            ],
            &mac(&reference2, &pass2),
        ),
    );
    assert!(!ok, "{out}");

    // genm: CA certificates, a request template, the current CRL, the key types.
    for (kind, shown) in [
        ("caCerts", "id-it-caCerts"),
        ("certReqTemplate", "id-it-certReqTemplate"),
        ("currentCRL", "id-it-currentCRL"),
        ("signKeyPairTypes", "id-it-signKeyPairTypes"),
    ] {
        let (ok, out) = client.run(
            &work,
            "devices",
            &[&signed[..], &["-cmd", "genm", "-infotype", kind]].concat(),
        );
        assert!(ok && out.contains(shown), "{kind}: {out}");
    }

    // rr signed with the certificate to revoke: revoked (keyCompromise); then that
    // certificate signs nothing more.
    let (ok, out) = client.run(
        &work,
        "devices",
        &[
            &signed[..],
            &["-cmd", "rr", "-oldcert", "dev1.pem", "-revreason", "1"],
        ]
        .concat(),
    );
    assert!(ok, "{out}");
    assert_eq!(cert_status(&app, &token, &root_id, &dev1).await, "revoked");
    let (ok, out) = client.run(
        &work,
        "devices",
        &[
            &signed[..],
            &[
                "-cmd",
                "genm",
                "-infotype",
                "caCerts",
                "-unprotected_errors",
            ],
        ]
        .concat(),
    );
    assert!(!ok && out.contains("signerNotTrusted"), "{out}");

    // A manual label: the ir waits (PKIStatus waiting), openssl polls (pollReq, pollRep with
    // checkAfter) until the RA approves, then gets its certificate and confirms it.
    let (gated_ref, gated_pass) = secret(&app, &token, "gated").await;
    let k4 = key(&work, "k4");
    // openssl runs in the background, its output in a file: the RA approves only once it
    // has been told to wait at least once (a pollRep), so the poll is always exercised.
    let mut args: Vec<String> = with(
        &[
            "-cmd",
            "ir",
            "-newkey",
            &k4,
            "-subject",
            "/CN=gated.example.test",
            "-sans",
            "gated.example.test",
            "-certout",
            "gated.pem",
        ],
        &[],
    );
    args.extend(mac(&gated_ref, &gated_pass));
    let log = work.join("gated.log");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Unbuffered (coreutils' stdbuf): openssl's log reaches the file as it goes.
    let mut unbuffered = Command::new("stdbuf");
    unbuffered.args(["-o0", "-e0", "openssl"]);
    let mut waiting = client
        .command(unbuffered, &work, "gated", &args)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(work.join("gated.err")).unwrap())
        .spawn()
        .expect("openssl cmp runs");
    let output = || {
        std::fs::read_to_string(&log).unwrap_or_default()
            + &std::fs::read_to_string(work.join("gated.err")).unwrap_or_default()
    };
    let mut id = None;
    for _ in 0..300 {
        let pending = pending_requests(&app, &token).await;
        if let Some(r) = pending["requests"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["protocol"] == "cmp"))
        {
            if output().contains("received POLLREP") {
                assert!(r["crmf"].is_string(), "{r}");
                id = r["id"].as_str().map(str::to_owned);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.unwrap_or_else(|| panic!("the CMP request waits, polled: {}", output()));
    let (status, decided) = decide(&app, &token, &id, "approve", serde_json::json!({})).await;
    assert_eq!(status, 200, "{decided}");
    let status = tokio::task::spawn_blocking(move || waiting.wait())
        .await
        .unwrap()
        .unwrap();
    let out = output();
    assert!(status.success(), "{out}");
    assert!(out.contains("received ip/cp/kup after polling"), "{out}");
    judged(&work, "gated.pem");

    // An intermediate (P-384) under the root issues at label `sub`: the ir's answer carries
    // the chain (openssl saves it), and a cr signed with what it got is answered with the
    // intermediate's signature (ECDSA with SHA-384), checked by openssl up to the root.
    let (status, issuing) = call(
        &app,
        &token,
        Method::POST,
        "/ca/cas",
        Some(serde_json::json!({
            "name": "cmp-issuing", "subject": {"common_name": "CMP Issuing"}, "key": "P-384",
            "parent": root_id,
        })),
    )
    .await;
    assert_eq!(status, 201, "{issuing}");
    let issuing_id = issuing["id"].as_str().unwrap().to_owned();
    make_labels(&app, &token, &issuing_id, &[("sub", "auto")]).await;
    let sub = Client {
        recipient: "/CN=CMP Issuing".to_owned(),
        ..client.clone()
    };
    let (sub_ref, sub_pass) = secret(&app, &token, "sub").await;
    let k5 = key(&work, "k5");
    let (ok, out) = sub.run(
        &work,
        "sub",
        &with(
            &[
                "-cmd",
                "ir",
                "-newkey",
                &k5,
                "-subject",
                "/CN=sub.example.test",
                "-sans",
                "sub.example.test",
                "-certout",
                "sub.pem",
                "-chainout",
                "sub-chain.pem",
            ],
            &mac(&sub_ref, &sub_pass),
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        &work,
        &["x509", "-in", "sub-chain.pem", "-noout", "-subject"],
    );
    assert!(
        ok && out.contains("CMP Issuing"),
        "the chain came back: {out}"
    );
    std::fs::write(
        work.join("issuing.pem"),
        issuing["certificate"].as_str().unwrap(),
    )
    .unwrap();
    judged(&work, "sub.pem");
    let k6 = key(&work, "k6");
    let (ok, out) = sub.run(
        &work,
        "sub",
        &[
            "-cert",
            "sub.pem",
            "-key",
            &k5,
            "-trusted",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-cmd",
            "cr",
            "-newkey",
            &k6,
            "-subject",
            "/CN=sub.example.test",
            "-sans",
            "sub.example.test",
            "-certout",
            "sub-cr.pem",
        ],
    );
    assert!(ok, "{out}");
    judged(&work, "sub-cr.pem");

    // Every refusal is audited (the secret never), and the chain verifies.
    let audit = Audited::read(&app, &token, &pass).await;
    assert!(audit.ops("cmp", true) >= 3, "{audit}");
    assert!(audit.ops("enroll", true) >= 1, "{audit}");
    audit_verifies(&app).await;
    app.stop().await;
}
