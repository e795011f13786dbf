//! The CA under failure (issue 15): a `CaSigner` that panics mid-work is restarted and serves
//! again; kill -9 during a loop of issuances and revocations loses nothing acknowledged (every
//! acknowledged certificate is listed with the status that was acknowledged, no serial twice,
//! the audit chain verifies).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use cryptoutil_federation::{HttpsClient, Method};
use serde_json::{json, Value};

use super::federation_process::try_call as send;
use super::identity::{bootstrap, client_token};
use crate::{eventually, Process, TestApp};

/// A PEM request for `cn` with a fresh P-256 key.
fn request(cn: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// A root and an issuing CA under it: the issuing CA's id.
async fn hierarchy(client: &HttpsClient, base: &str, token: &str) -> String {
    let (status, root) = send(
        client,
        Method::POST,
        &format!("{base}/cas"),
        token,
        Some(json!({"name": "root", "subject": {"common_name": "Crash Root"}, "key": "P-256"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{root}");
    let (status, inter) = send(
        client,
        Method::POST,
        &format!("{base}/cas"),
        token,
        Some(
            json!({"name": "issuing", "subject": {"common_name": "Crash Issuing"},
                    "key": "P-256", "parent": root["id"]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{inter}");
    inter["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signer_that_panics_mid_work_is_restarted_and_issues_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(
        vec![ServiceName::IdentityAuthz, ServiceName::Ca],
        &[("CRYPTOUTIL_ADMIN__DANGER_FAULT_INJECTION", "true")],
        Some(&data),
    )
    .await;
    let boot = bootstrap(&data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "ca").await;
    let base = format!("{}/service/api/v1/ca", app.public(ServiceName::Ca));
    let ca = hierarchy(&app.client, &base, &token).await;
    let (client, url) = (app.client.clone(), format!("{base}/cas/{ca}/certificates"));
    let issue = move |n: usize| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let body =
                json!({"profile": "tls-server", "csr": request(&format!("h{n}.example.test"))});
            send(&client, Method::POST, &url, &token, Some(body)).await
        }
    };
    assert_eq!(issue(0).await.unwrap().0, 201);

    // Issuances in flight while the signer panics: each is answered (201, or 503 while it
    // restarts), never left hanging, and issuance works again afterwards.
    let loop_ = {
        let issue = issue.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 1..40 {
                statuses.push(issue(n).await.map_or(0, |(s, _)| s));
            }
            statuses
        })
    };
    let admin = app.admin(ServiceName::Ca).to_owned();
    let crash = app
        .client
        .send(
            Method::POST,
            &format!("{admin}/admin/v1/faults/crash"),
            &[("content-type", "application/json")],
            json!({"path": format!("ca/signer/{ca}")})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    assert_eq!(crash.status, 202, "{}", crash.text());
    let statuses = loop_.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            issue(99).await.is_some_and(|(s, _)| s == 201)
        })
        .await,
        "issuing again after the restart"
    );
    let tree: Value = serde_json::from_slice(
        &app.client
            .get(&format!("{admin}/admin/v1/supervision"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let text = tree.to_string();
    assert!(text.contains(&format!("ca/signer/{ca}")), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_issuances_and_revocations_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut p = Process::spawn(&data, &["suite"], &[]);
    let endpoints = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(30)));
    let client = p.client();
    let token = super::kms_crash::token_with_scope(
        &client,
        &endpoints["identity-authz"].public,
        &data,
        "ca",
    )
    .await;
    let base = format!("{}/service/api/v1/ca", endpoints["ca"].public);
    let ca = hierarchy(&client, &base, &token).await;
    let certs = format!("{base}/cas/{ca}/certificates");

    // One loop issues, one revokes what was issued: each records only what was acknowledged.
    let issued: Arc<Mutex<Vec<String>>> = Arc::default();
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    let issuer = {
        let (client, certs, token, issued) = (
            client.clone(),
            certs.clone(),
            token.clone(),
            Arc::clone(&issued),
        );
        tokio::spawn(async move {
            for n in 0..5_000 {
                let body = json!({"profile": "tls-client", "csr": request(&format!("c{n}"))});
                match send(&client, Method::POST, &certs, &token, Some(body)).await {
                    Some((201, v)) => issued
                        .lock()
                        .unwrap()
                        .push(v["serial"].as_str().unwrap().to_owned()),
                    _ => break,
                }
            }
        })
    };
    let revoker = {
        let (client, certs, token, issued, revoked) = (
            client.clone(),
            certs.clone(),
            token.clone(),
            Arc::clone(&issued),
            Arc::clone(&revoked),
        );
        tokio::spawn(async move {
            let mut next = 0;
            loop {
                let serial = issued.lock().unwrap().get(next).cloned();
                let Some(serial) = serial else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                next += 2;
                let url = format!("{certs}/{serial}/revoke");
                match send(
                    &client,
                    Method::POST,
                    &url,
                    &token,
                    Some(json!({"reason": "superseded"})),
                )
                .await
                {
                    Some((200, _)) => revoked.lock().unwrap().push(serial),
                    _ => break,
                }
            }
        })
    };
    for _ in 0..1_000 {
        if issued.lock().unwrap().len() >= 60 && revoked.lock().unwrap().len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| p.kill9());
    let _ = issuer.await;
    revoker.abort();
    let _ = revoker.await;
    let issued = issued.lock().unwrap().clone();
    let revoked: BTreeSet<String> = revoked.lock().unwrap().iter().cloned().collect();
    assert!(
        issued.len() >= 60 && revoked.len() >= 20,
        "{} issued, {} revoked",
        issued.len(),
        revoked.len()
    );
    eprintln!(
        "kill -9 after {} acknowledged issuances and {} revocations",
        issued.len(),
        revoked.len()
    );
    drop(p);

    let mut p = Process::spawn(&data, &["suite"], &[]);
    let endpoints = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(30)));
    let client = p.client();
    let token = super::kms_crash::token_with_scope(
        &client,
        &endpoints["identity-authz"].public,
        &data,
        "ca",
    )
    .await;
    let certs = format!(
        "{}/service/api/v1/ca/cas/{ca}/certificates",
        endpoints["ca"].public
    );
    let (status, listed) = send(&client, Method::GET, &certs, &token, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<(String, String)> = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["serial"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let serials: BTreeSet<&str> = listed.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(serials.len(), listed.len(), "no serial twice");
    for serial in &issued {
        let status = listed
            .iter()
            .find(|(s, _)| s == serial)
            .map(|(_, st)| st.as_str());
        let expected = if revoked.contains(serial) {
            "revoked"
        } else {
            "valid"
        };
        // An unacknowledged revocation may have committed: only acknowledged ones must hold.
        match status {
            Some(st) if st == expected || (expected == "valid" && st == "revoked") => {}
            other => panic!("{serial}: {other:?}, acknowledged {expected}"),
        }
    }
    let r = client
        .send(
            Method::GET,
            &format!("{}/admin/v1/audit/verify", endpoints["ca"].admin),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let verified: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(verified["valid"], true, "{verified}");
    let acked = (2 + issued.len() + revoked.len()) as u64;
    assert!(
        verified["records"].as_u64().unwrap() >= acked,
        "{verified}: at least {acked} acknowledged operations"
    );
    drop(p);
}
