//! A panic in a supervised actor is survived; the restart shows in the metrics and the tree.

use std::time::Duration;

use cryptoutil_actors::supervisor::tree::SupervisionNode;
use cryptoutil_actors::ServiceName;

use crate::{eventually, TestApp};

fn restarts_metric(text: &str, service: &str, kind: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with("cryptoutil_actor_restarts_total{"))
        .find(|l| {
            l.contains(&format!("service=\"{service}\""))
                && l.contains(&format!("actor_kind=\"{kind}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_actor_is_restarted_serves_again_and_is_counted() {
    let app = TestApp::suite(&[("CRYPTOUTIL_ADMIN__DANGER_FAULT_INJECTION", "true")]).await;
    let admin = app.admin(ServiceName::Ca).to_owned();
    let crash = app
        .client
        .send(
            hyper::Method::POST,
            &format!("{admin}/admin/v1/faults/crash"),
            &[("content-type", "application/json")],
            r#"{"path":"ca/health"}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(crash.status, 202, "{}", crash.text());

    // Serving again: livez answers from the new incarnation.
    let livez = format!("{admin}/admin/v1/livez");
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.client
                .get(&livez)
                .await
                .map(|r| r.status == 200)
                .unwrap_or(false)
        })
        .await
    );

    let tree: SupervisionNode = serde_json::from_slice(
        &app.client
            .get(&format!("{admin}/admin/v1/supervision"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let node = tree.find("ca/health").expect("ca/health in the tree");
    assert_eq!(
        (node.restarts, node.state.as_str()),
        (1, "running"),
        "{}",
        tree.render()
    );
    assert_eq!(
        tree.find("kms/health").unwrap().restarts,
        0,
        "other services are untouched"
    );

    let metrics = app.admin_metrics(ServiceName::Ca).await;
    let count = restarts_metric(&metrics, "ca", "Health").unwrap_or(0.0);
    assert!(count >= 1.0, "restart not counted:\n{metrics}");

    // An unknown actor is a clear 404.
    let r = app
        .client
        .send(
            hyper::Method::POST,
            &format!("{admin}/admin/v1/faults/crash"),
            &[("content-type", "application/json")],
            r#"{"path":"nope/health"}"#.into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_the_live_tree() {
    let app = TestApp::start(vec![ServiceName::Jose, ServiceName::Kms], &[], None).await;
    let dir = app.data_dir.to_str().unwrap().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        crate::run_cli(
            &["--data-dir", &dir, "supervision", "--service", "kms"],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "root [RootSupervisor] running restarts=0",
        "{out}"
    );
    assert!(
        out.contains("\n  kms [ServiceSupervisor] running restarts=0\n"),
        "{out}"
    );
    assert!(
        out.contains("\n    kms/health [Health] running restarts=0\n"),
        "{out}"
    );
    assert!(
        out.contains("\n    jose/vault [Vault] running restarts=0\n"),
        "{out}"
    );
    app.stop().await;
}
