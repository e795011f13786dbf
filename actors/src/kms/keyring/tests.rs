//! Key rings as actors: started on demand under the keyed supervisor, surviving a crash,
//! stopping when idle, audited, and the scheduler's jobs.

use cryptoutil_protocols::ids::{ElasticKeyId, TenantId};
use cryptoutil_protocols::unseal;
use cryptoutil_storage::Table;
use zeroize::Zeroizing;

use super::handle::{KeyRingsHandle, SYSTEM_SUBJECT};
use super::state::{NewElasticKey, VersionAction};
use super::*;
use crate::audit::{AuditArgs, AuditLog, AuditMsg};
use crate::kms::KmsAlg;
use crate::slot::Slot;
use crate::supervisor::child::{ActorSpec, ChildSpec};
use crate::supervisor::keyed::KeyedSpec;
use crate::supervisor::{SupervisorArgs, SupervisorHandle};
use crate::SupervisionConfig;

async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sup: SupervisorHandle,
    rings: KeyRingsHandle,
    audit: AuditHandle,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let unseal = unseal::generate(1, 1).unwrap().0;
    let store = Arc::new(Store::open_redb(&dir.path().join("kms.redb"), &unseal).unwrap());
    let config = SupervisionConfig {
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ask_timeout: Duration::from_secs(5),
    };
    let audit_slot = Slot::new("AuditLog");
    let audit_args = AuditArgs::open(Arc::clone(&store), "kms").unwrap();
    let audit = AuditHandle::new(audit_slot.clone(), &audit_args, Duration::from_secs(5));
    let keyed = KeyedSpec::new(
        "kms/keyrings".into(),
        "KeyRingSupervisor",
        "kms",
        Rings {
            store: Arc::clone(&store),
            audit: audit.clone(),
            engine: Engine::Local,
            service: "kms",
            idle: Duration::from_millis(300),
            refresh: None,
        },
        config.clone(),
    );
    let rings = KeyRingsHandle::new(
        Arc::clone(&store),
        audit.clone(),
        keyed.handle(Duration::from_secs(5)),
        Duration::from_secs(5),
    );
    let children: Vec<Arc<dyn ChildSpec>> = vec![
        Arc::new(ActorSpec::new(
            "kms/audit".into(),
            "AuditLog",
            audit_slot,
            move || (AuditLog, audit_args.clone()),
            || AuditMsg::Crash,
        )),
        Arc::new(keyed),
    ];
    let (sup, _join) = SupervisorHandle::spawn_root(SupervisorArgs {
        name: "kms".into(),
        kind: "ServiceSupervisor",
        service: "kms",
        children,
        config,
    })
    .await
    .unwrap();
    Env {
        _dir: dir,
        store,
        sup,
        rings,
        audit,
    }
}

fn caller(tenant: &str, subject: &str) -> Caller {
    Caller {
        tenant: TenantId::parse(tenant).unwrap(),
        subject: subject.into(),
    }
}

fn spec(algorithm: &str, rotation_period: Option<u64>) -> NewElasticKey {
    NewElasticKey {
        name: "payments".into(),
        algorithm: KmsAlg::parse(algorithm).unwrap(),
        description: String::new(),
        exportable: false,
        rotation_period,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rings_start_on_demand_survive_a_crash_and_stop_when_idle() {
    let Env {
        _dir,
        store: _,
        sup,
        rings,
        audit,
    } = env().await;
    let (t1, t2) = (caller("t1", "alice"), caller("t2", "mallory"));
    let key = rings.create(&t1, spec("ES256", None)).await.unwrap();
    let children = async || {
        sup.snapshot()
            .await
            .unwrap()
            .find("kms/keyrings")
            .map(|n| n.children.clone())
            .unwrap_or_default()
    };
    assert!(children().await.is_empty(), "no ring until one is used");
    let jws = rings.sign(&t1, &key.id, b"pay".to_vec()).await.unwrap();
    let kids = children().await;
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].name, format!("kms/keyring/{}", key.id));
    assert_eq!(kids[0].kind, "KeyRing");

    // Tenant isolation and unknown ids: not found, no actor started.
    assert!(matches!(
        rings.sign(&t2, &key.id, b"x".to_vec()).await,
        Err(Error::KeyNotFound)
    ));
    let nope = ElasticKeyId::parse("ek-nope").unwrap();
    assert!(matches!(
        rings.sign(&t1, &nope, b"x".to_vec()).await,
        Err(Error::KeyNotFound)
    ));
    assert_eq!(children().await.len(), 1);

    // A crash: the keyed supervisor restarts the ring, which reloads its keys.
    sup.crash(vec!["keyrings".into(), key.id.to_string()])
        .await
        .unwrap();
    eventually(async || {
        children().await.first().is_some_and(|k| k.restarts >= 1)
            && rings.verify(&t1, &key.id, jws.clone()).await.is_ok()
    })
    .await;
    assert_eq!(rings.rotate(&t1, &key.id).await.unwrap(), 2);
    let jws2 = rings.sign(&t1, &key.id, b"pay".to_vec()).await.unwrap();

    // Idle: the ring stops and leaves the tree; the next use starts it again.
    eventually(async || children().await.is_empty()).await;
    assert!(rings.verify(&t1, &key.id, jws).await.is_ok());
    assert!(rings.verify(&t1, &key.id, jws2).await.is_ok());
    let listed = rings.list(&t1).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].latest, 2);
    assert!(rings.list(&t2).await.unwrap().is_empty());

    // Every operation left a record: who, tenant, key, version, outcome; the chain holds.
    let log = audit.read(1, 100, None).await.unwrap().records;
    let ops: Vec<(&str, &str, &str, Option<u32>, &str)> = log
        .iter()
        .map(|r| {
            (
                r.op.as_str(),
                r.who.as_str(),
                r.tenant.as_str(),
                r.version,
                r.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(ops[0], ("create", "alice", "t1", Some(1), "ok"));
    assert_eq!(ops[1], ("sign", "alice", "t1", Some(1), "ok"));
    assert_eq!(ops[2], ("sign", "mallory", "t2", None, "error"));
    assert_eq!(log[2].key, key.id.as_str());
    assert_eq!(ops[3], ("sign", "alice", "t1", None, "error"));
    assert!(ops.contains(&("rotate", "alice", "t1", Some(2), "ok")));
    assert!(ops.contains(&("verify", "alice", "t1", Some(2), "ok")));
    assert!(audit.verify().await.unwrap().valid);
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_policy_version_changes_and_the_destruction_job() {
    let Env {
        _dir,
        store,
        sup,
        rings,
        audit,
    } = env().await;
    let alice = caller("t1", "alice");
    let key = rings
        .create(&alice, spec("A256GCM", Some(3600)))
        .await
        .unwrap();
    let now = crate::now_unix();
    let v1 = rings
        .encrypt(&alice, &key.id, b"one".to_vec().into())
        .await
        .unwrap();

    // The policy: nothing before the period, one rotation after it.
    assert_eq!(rings.run_due(now).await.unwrap(), (vec![], vec![]));
    let (rotated, _) = rings.run_due(now + 3601).await.unwrap();
    assert_eq!(rotated, vec![key.id.clone()]);
    let described = rings.key(&alice, &key.id).await.unwrap();
    assert_eq!(described.latest, 2);
    assert!(described.rotated_at.unwrap() >= now);

    // Versions: the latest cannot be disabled or destroyed; v1 can, and then stops opening.
    let err = rings
        .version(&alice, &key.id, 2, VersionAction::Disable)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    rings
        .version(&alice, &key.id, 1, VersionAction::Disable)
        .await
        .unwrap();
    assert!(matches!(
        rings.decrypt(&alice, &key.id, v1.clone()).await,
        Err(Error::Forbidden { .. })
    ));
    rings
        .version(&alice, &key.id, 1, VersionAction::Enable)
        .await
        .unwrap();
    assert_eq!(
        rings
            .decrypt(&alice, &key.id, v1.clone())
            .await
            .unwrap()
            .as_slice(),
        b"one"
    );
    let versions = rings
        .version(&alice, &key.id, 1, VersionAction::Destroy)
        .await
        .unwrap();
    assert!(versions[1].destroyed, "{versions:?}");
    assert!(matches!(
        rings.decrypt(&alice, &key.id, v1.clone()).await,
        Err(Error::Forbidden { .. })
    ));
    let prefix = format!("t1/{}/", key.id);
    assert_eq!(
        store
            .scan_sealed(Table::KmsMaterialKeys, prefix.as_bytes())
            .unwrap()
            .len(),
        1,
        "v1's material is gone from the store"
    );
    assert!(matches!(
        rings
            .version(&alice, &key.id, 9, VersionAction::Destroy)
            .await,
        Err(Error::NotFound { .. })
    ));

    // The destruction job: a soft-deleted key goes, material and all, once its time comes.
    let deleted = rings.delete(&alice, &key.id).await.unwrap();
    let at = deleted.destroy_at.unwrap();
    assert_eq!(rings.run_due(at - 1).await.unwrap(), (vec![], vec![]));
    assert_eq!(
        rings.run_due(at).await.unwrap(),
        (vec![], vec![key.id.clone()])
    );
    assert!(store
        .scan_sealed(Table::KmsMaterialKeys, prefix.as_bytes())
        .unwrap()
        .is_empty());
    assert!(matches!(
        rings.key(&alice, &key.id).await,
        Err(Error::KeyNotFound)
    ));
    assert!(rings.list(&alice).await.unwrap().is_empty());

    let log = audit.read(1, 100, None).await.unwrap().records;
    let ops: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|r| (r.op.as_str(), r.who.as_str(), r.outcome.as_str()))
        .collect();
    assert!(ops.contains(&("rotate", SYSTEM_SUBJECT, "ok")), "{ops:?}");
    assert!(
        ops.contains(&("disable-version", "alice", "error")),
        "{ops:?}"
    );
    assert!(ops.contains(&("destroy-version", "alice", "ok")), "{ops:?}");
    assert_eq!(ops.last(), Some(&("destroy", SYSTEM_SUBJECT, "ok")));
    assert!(audit.verify().await.unwrap().valid);
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_answer_a_typed_result_per_item() {
    let Env {
        _dir,
        store: _,
        sup,
        rings,
        audit: _,
    } = env().await;
    let alice = caller("t1", "alice");
    let key = rings.create(&alice, spec("A256GCM", None)).await.unwrap();
    let items = vec![b"a".to_vec().into(), b"b".to_vec().into()];
    let sealed = rings
        .batch(&alice, &key.id, BatchOp::Encrypt, items)
        .await
        .unwrap();
    let jwes: Vec<Zeroizing<Vec<u8>>> = sealed
        .into_iter()
        .map(|r| match r {
            Ok(BatchItem::Jwe(jwe)) => Zeroizing::new(jwe.into_bytes()),
            _ => panic!("an encryption answers a JWE"),
        })
        .chain([Zeroizing::new(b"not a jwe".to_vec())])
        .collect();
    let opened = rings
        .batch(&alice, &key.id, BatchOp::Decrypt, jwes)
        .await
        .unwrap();
    assert!(matches!(&opened[0], Ok(BatchItem::Plaintext(p)) if p.as_slice() == b"a"));
    assert!(matches!(&opened[1], Ok(BatchItem::Plaintext(p)) if p.as_slice() == b"b"));
    assert!(
        matches!(&opened[2], Err(ItemError(_))),
        "a bad item fails alone"
    );
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ring_whose_record_is_corrupt_answers_corrupt_not_unavailable() {
    let Env {
        _dir,
        store,
        sup,
        rings,
        audit: _,
    } = env().await;
    store
        .put_sealed(Table::KmsElasticKeys, b"t1/ek-bad", b"{not json")
        .unwrap();
    let bad = ElasticKeyId::parse("ek-bad").unwrap();
    match rings
        .sign(&caller("t1", "alice"), &bad, b"x".to_vec())
        .await
    {
        Err(Error::Corrupt { table, key, .. }) => {
            assert_eq!(table, Table::KmsElasticKeys.name());
            assert_eq!(key, "t1/ek-bad");
        }
        other => panic!("{other:?}"),
    }
    // Another tenant's id of the same name is still just not found.
    assert!(matches!(
        rings.sign(&caller("t2", "bob"), &bad, b"x".to_vec()).await,
        Err(Error::KeyNotFound)
    ));
    sup.stop(Duration::from_secs(1)).await;
}
