use std::time::Duration;

use cryptoutil_protocols::unseal;

use super::*;
use crate::error::{Error, Unavailability};

fn cfg() -> SupervisionConfig {
    SupervisionConfig {
        max_restarts: 2,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ask_timeout: Duration::from_secs(2),
    }
}

async fn suite(dir: &std::path::Path) -> Suite {
    let key = unseal::generate(1, 1).unwrap().0;
    let store = Arc::new(Store::open_redb(&dir.join("kms.redb"), &key).unwrap());
    start(vec![(ServiceName::Kms, store)], &Default::default(), &cfg())
        .await
        .unwrap()
}

async fn until<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_panicking_child_is_restarted_and_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path()).await;
    let kms = suite.services[&ServiceName::Kms].clone();
    assert_eq!(kms.health.check().await.unwrap().checks, 1);

    suite
        .root
        .crash(vec!["kms".into(), "health".into()])
        .await
        .unwrap();
    assert!(
        until(|| async {
            kms.health
                .check()
                .await
                .map(|r| r.checks == 1)
                .unwrap_or(false)
        })
        .await
    );

    let tree = suite.root.snapshot().await.unwrap();
    let node = tree.find("kms/health").unwrap();
    assert_eq!(
        (node.state.as_str(), node.restarts),
        ("running", 1),
        "{}",
        tree.render()
    );
    assert_eq!(tree.find("kms/vault").unwrap().restarts, 0);
    suite.root.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_vault_crash_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path()).await;
    let vault = suite.services[&ServiceName::Kms].vault.clone();
    vault
        .put_secret(b"k".to_vec(), zeroize::Zeroizing::new(b"v".to_vec()))
        .await
        .unwrap();
    suite
        .root
        .crash(vec!["kms".into(), "vault".into()])
        .await
        .unwrap();
    assert!(until(|| async { vault.status().await.is_ok() }).await);
    assert_eq!(
        vault
            .get_secret(b"k".to_vec())
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        b"v"
    );
    suite.root.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn past_the_bound_the_failure_escalates_and_the_service_is_restarted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path()).await;
    let kms = suite.services[&ServiceName::Kms].clone();
    for _ in 0..3 {
        // Wait for the previous restart so each crash hits a live actor.
        assert!(until(|| async { kms.health.check().await.is_ok() }).await);
        suite
            .root
            .crash(vec!["kms".into(), "health".into()])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(until(|| async { kms.health.check().await.is_ok() }).await);
    let tree = suite.root.snapshot().await.unwrap();
    assert_eq!(tree.find("kms").unwrap().restarts, 1, "{}", tree.render());
    assert_eq!(tree.find("kms/health").unwrap().state, "running");
    suite.root.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_unknown_path_is_refused_and_a_stopped_tree_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite(dir.path()).await;
    let err = suite.root.crash(vec!["kms".into(), "nope".into()]).await;
    // The service supervisor answers asynchronously; the root names unknown services itself.
    assert!(err.is_ok() || matches!(err, Err(Error::NoSuchActor { .. })));
    let err = suite.root.crash(vec!["nope".into()]).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchActor { .. }), "{err}");
    let health = suite.services[&ServiceName::Kms].health.clone();
    suite.root.stop(Duration::from_secs(2)).await;
    let err = health.check().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                why: Unavailability::Restarting | Unavailability::Stopped,
                ..
            }
        ),
        "{err}"
    );
}
