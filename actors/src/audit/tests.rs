use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::unseal;
use cryptoutil_storage::{Store, Table};

use super::*;
use crate::supervisor::child::ActorSpec;
use crate::supervisor::{SupervisorArgs, SupervisorHandle};
use crate::SupervisionConfig;

async fn start() -> (tempfile::TempDir, Arc<Store>, SupervisorHandle, AuditHandle) {
    start_with(file::Segments::default()).await
}

async fn start_with(
    segments: file::Segments,
) -> (tempfile::TempDir, Arc<Store>, SupervisorHandle, AuditHandle) {
    let dir = tempfile::tempdir().unwrap();
    let unseal = unseal::generate(1, 1).unwrap().0;
    let store = Arc::new(Store::open_redb(&dir.path().join("kms.redb"), &unseal).unwrap());
    let slot: Slot<AuditMsg> = Slot::new("AuditLog");
    let args = AuditArgs::open_with(Arc::clone(&store), "kms", segments).unwrap();
    let handle = AuditHandle::new(slot.clone(), &args, Duration::from_secs(5));
    let spec = ActorSpec::new(
        "kms/audit".to_owned(),
        "AuditLog",
        slot.clone(),
        move || (AuditLog, args.clone()),
        || AuditMsg::Crash,
    );
    let (sup, _join) = SupervisorHandle::spawn_root(SupervisorArgs {
        name: "kms".into(),
        kind: "ServiceSupervisor",
        service: "kms",
        children: vec![Arc::new(spec)],
        config: SupervisionConfig {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ask_timeout: Duration::from_secs(5),
        },
    })
    .await
    .unwrap();
    (dir, store, sup, handle)
}

fn entry(i: usize) -> AuditEntry {
    AuditEntry::new(
        &format!("client-{}", i % 3),
        &format!("t{}", i % 2),
        "ek-1",
        "sign",
    )
    .version(Some(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_form_one_gapless_chain_that_survives_a_crash() {
    let (_dir, _store, sup, audit) = start().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move { audit.append(entry(i), Vec::new()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.records, 200);

    // A crash: the restarted actor reads the head back and continues the chain.
    sup.crash(vec!["audit".into()]).await.unwrap();
    let mut appended = false;
    for _ in 0..300 {
        if audit.append(entry(7), Vec::new()).await.is_ok() {
            appended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(appended, "the restarted audit log never accepted an entry");
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.records, 201);

    // Reading: pages, and one tenant's records only.
    let page = audit.read(1, 50, None).await.unwrap();
    assert_eq!(page.records.len(), 50);
    assert_eq!(page.records[0].seq, 1);
    assert_eq!(page.next, Some(51));
    let t1 = audit.read(1, 1000, Some("t1".into())).await.unwrap();
    assert_eq!(
        t1.records.len(),
        101,
        "100 of the first 200 and the one after the crash"
    );
    assert!(t1.records.iter().all(|r| r.tenant == "t1"));
    assert_eq!(t1.next, None);
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entrys_writes_commit_with_its_record_or_the_operation_fails_with_neither() {
    let (_dir, store, sup, audit) = start().await;
    let write = store.sealed_create(Table::Records, b"r1", b"one").unwrap();
    audit.append(entry(0), vec![write]).await.unwrap();
    assert_eq!(
        store
            .get_sealed(Table::Records, b"r1")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"one"
    );

    // A write that cannot commit (the record exists): the entry fails as a conflict, its
    // writes are not made, its record says it was refused, and the chain goes on.
    let clash = store.sealed_create(Table::Records, b"r1", b"two").unwrap();
    let err = audit.append(entry(1), vec![clash]).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        store
            .get_sealed(Table::Records, b"r1")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"one"
    );
    audit.append(entry(2), Vec::new()).await.unwrap();
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.records, 3);
    let refused = audit.read(2, 1, None).await.unwrap().records;
    assert!(
        refused[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("conflict"),
        "{refused:?}"
    );
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_clashing_entry_fails_alone_and_the_rest_of_its_group_commits() {
    let (_dir, store, sup, audit) = start().await;
    let first = store
        .sealed_create(Table::Records, b"taken", b"first")
        .unwrap();
    audit.append(entry(0), vec![first]).await.unwrap();
    // Submitted together (one group, as concurrent operations are): the clash in the middle.
    let mut answers = Vec::new();
    for (i, key) in [&b"a"[..], b"taken", b"b", b"c"].into_iter().enumerate() {
        let write = store.sealed_create(Table::Records, key, b"new").unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        audit.submit(
            entry(i + 1),
            vec![write],
            Completion::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        answers.push(rx);
    }
    let mut outcomes = Vec::new();
    for rx in answers {
        outcomes.push(rx.await.unwrap());
    }
    assert!(
        outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[3].is_ok(),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Err(Error::Conflict { .. })),
        "{outcomes:?}"
    );
    for key in [&b"a"[..], b"b", b"c"] {
        assert!(store.get_sealed(Table::Records, key).unwrap().is_some());
    }
    let kept = store.get_sealed(Table::Records, b"taken").unwrap().unwrap();
    assert_eq!(kept.as_slice(), b"first");
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.records, 5);
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_finds_the_first_altered_record_in_the_file_or_the_store() {
    let (dir, store, sup, audit) = start().await;
    for i in 0..5 {
        audit.append(entry(i), Vec::new()).await.unwrap();
    }
    // Record 6 lives in the store (it carried a write), 7 in the file again.
    let write = store.sealed_create(Table::Records, b"r", b"x").unwrap();
    audit.append(entry(5), vec![write]).await.unwrap();
    audit.append(entry(6), Vec::new()).await.unwrap();
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.records, 7);
    let page = audit.read(5, 10, None).await.unwrap();
    let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![5, 6, 7]);

    // Someone with the barrier key rewrites record 3 in the file (fixing up its own hash).
    let path = dir.path().join("kms.audit");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut r = audit.read(3, 1, None).await.unwrap().records.remove(0);
    r.outcome = "error".into();
    r.hash = r.computed_hash();
    let sealed = store
        .seal(
            Table::AuditLog,
            &AuditRecord::storage_key(3),
            &serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    lines[2] = format!("3:{}", cryptoutil_protocols::jose::b64::encode(&sealed));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let v = audit.verify().await.unwrap();
    assert!(!v.valid);
    assert_eq!(v.records, 3);
    assert_eq!(v.first_break.as_ref().map(|b| b.seq), Some(4));

    // Someone without it replaces record 2's bytes.
    lines[1] = "2:garbage".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let v = audit.verify().await.unwrap();
    assert_eq!(v.records, 1);
    assert_eq!(
        v.first_break.map(|b| (b.seq, b.reason)),
        Some((2, "the record does not open: altered or replaced on disk"))
    );

    // And a record deleted from the store is a gap.
    store
        .delete(Table::AuditLog, &AuditRecord::storage_key(6))
        .unwrap();
    lines[1] = text.lines().nth(1).unwrap().to_owned();
    lines[2] = text.lines().nth(2).unwrap().to_owned();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let v = audit.verify().await.unwrap();
    assert_eq!(v.first_break.map(|b| b.seq), Some(6));
    sup.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segmented_log_with_retention_verifies_from_its_anchor_and_a_lost_segment_is_a_gap() {
    let (dir, store, sup, audit) = start_with(file::Segments {
        max_bytes: 4096,
        retain: 3,
    })
    .await;
    for i in 0..100 {
        audit.append(entry(i), Vec::new()).await.unwrap();
        if i == 50 {
            // One in the store, between the segments.
            let write = store.sealed_create(Table::Records, b"r", b"x").unwrap();
            audit.append(entry(i), vec![write]).await.unwrap();
        }
    }
    let v = audit.verify().await.unwrap();
    assert!(v.valid, "{v:?}");
    assert!(v.from > 1, "retention removed the oldest segments: {v:?}");
    assert_eq!(v.from + v.records - 1, 101, "{v:?}");
    let page = audit.read(1, 1000, None).await.unwrap();
    assert_eq!(page.records.first().map(|r| r.seq), Some(v.from));
    assert_eq!(page.records.last().map(|r| r.seq), Some(101));

    // A closed segment removed by hand (not by retention) is a gap.
    let mut closed: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kms.audit.0")
        })
        .collect();
    closed.sort();
    assert_eq!(closed.len(), 3, "{closed:?}");
    std::fs::remove_file(&closed[1]).unwrap();
    let v = audit.verify().await.unwrap();
    assert!(!v.valid);
    assert_eq!(
        v.first_break.map(|b| b.reason),
        Some("sequence gap or reordering")
    );
    sup.stop(Duration::from_secs(1)).await;
}
