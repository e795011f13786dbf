//! Transient children: started on demand, restarted after a failure, forgotten when they stop
//! on their own, never duplicated.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::child::ActorSpec;
use super::*;

#[derive(Debug, Default)]
struct Echo;

enum EchoMsg {
    Ping(RpcReplyPort<Result<u32, Error>>),
    Idle,
    Crash,
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EchoMsg::Ping(reply) => {
                let _ = reply.send(Ok(7));
            }
            EchoMsg::Idle => me.stop(Some("idle".into())),
            #[allow(clippy::panic)]
            EchoMsg::Crash => panic!("echo crash"),
        }
        Ok(())
    }
}

fn config() -> SupervisionConfig {
    SupervisionConfig {
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ask_timeout: Duration::from_secs(2),
    }
}

async fn children(root: &SupervisorHandle) -> Vec<SupervisionNode> {
    root.snapshot().await.unwrap().children
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn transient_children_restart_after_failures_and_are_forgotten_when_idle() {
    let (root, _join) = SupervisorHandle::spawn_root(SupervisorArgs {
        name: "keyrings".into(),
        kind: "Supervisor",
        service: "kms",
        children: Vec::new(),
        config: config(),
    })
    .await
    .unwrap();
    let slot: Slot<EchoMsg> = Slot::new("Echo");
    let spec = || -> Arc<dyn ChildSpec> {
        Arc::new(ActorSpec::new(
            "kms/keyring/k1".into(),
            "KeyRing",
            slot.clone(),
            || (Echo, ()),
            || EchoMsg::Crash,
        ))
    };
    let ping = || {
        let slot = slot.clone();
        async move {
            crate::ask::ask(&slot, EchoMsg::Ping, Duration::from_secs(1))
                .await
                .ok()
        }
    };
    assert!(children(&root).await.is_empty());
    root.start_child(spec()).await.unwrap();
    root.start_child(spec()).await.unwrap();
    let kids = children(&root).await;
    assert_eq!(kids.len(), 1, "started once, however often asked");
    assert_eq!(ping().await, Some(7));

    // A failure: restarted after the backoff, and counted.
    root.crash(vec!["k1".into()]).await.unwrap();
    eventually(async || {
        let kids = children(&root).await;
        kids.first()
            .is_some_and(|k| k.restarts == 1 && k.state == "running")
            && ping().await == Some(7)
    })
    .await;

    // Stopping on its own: gone from the tree and from its handles, not restarted.
    slot.current().unwrap().cast(EchoMsg::Idle).unwrap();
    eventually(async || children(&root).await.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(children(&root).await.is_empty(), "not restarted");
    assert_eq!(ping().await, None);

    // On demand again.
    root.start_child(spec()).await.unwrap();
    assert_eq!(ping().await, Some(7));
    root.stop(Duration::from_secs(1)).await;
}
