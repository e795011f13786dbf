//! The PostgreSQL backend (issue 19, first step) against a real throwaway cluster with TLS
//! ([`crate::pg`]): the storage contract both backends keep, the barrier over it, replicas of
//! one schema agreeing on creates and migrations, the schema version check, TLS verification
//! and certificate authentication, a database that goes away (mid-transaction too) and comes
//! back, and the KMS served from it by two processes in turn with an HTTP 503 while it is down.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use cryptoutil_actors::ServiceName;
use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::unseal::UnsealKey;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Backend, Error, PgOptions, PostgresBackend, RedbBackend, Store, Table};
use hyper::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::identity::{api_response, bootstrap, client_token};
use super::kms::call as kms;
use crate::pg::{Cluster, CERT_USER};
use crate::TestApp;

fn put(table: Table, key: &[u8], value: &[u8]) -> Write {
    Write::Put {
        table,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn create(table: Table, key: &[u8], value: &[u8]) -> Write {
    Write::Create {
        table,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| k.as_slice()).collect()
}

/// What every backend must do the same way: byte order, prefixes up to 0xff, limits, the
/// greatest key, tables kept apart, and batches that apply whole or not at all.
fn contract(b: &dyn Backend) {
    let t = Table::Records;
    assert_eq!(b.get(t, b"a").unwrap(), None);
    assert!(b.scan(t, b"").unwrap().is_empty());
    assert!(b.range(t, b"", 10).unwrap().is_empty());
    assert_eq!(b.last(t).unwrap(), None);

    let big = vec![7u8; 1 << 20];
    b.apply(vec![
        put(t, b"b", b"2"),
        put(t, b"a\xff\x01", b"ff1"),
        put(t, b"a/2", b"a2"),
        put(t, b"a", b"0"),
        put(t, b"a\xff", b"ff"),
        put(t, b"a/1", &big),
        put(Table::Meta, b"a", b"meta"),
    ])
    .unwrap();
    assert_eq!(b.get(t, b"a").unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(b.get(t, b"a/1").unwrap(), Some(big.clone()));
    assert_eq!(
        b.get(Table::Meta, b"a").unwrap().as_deref(),
        Some(&b"meta"[..])
    );
    let all = b.scan(t, b"").unwrap();
    assert_eq!(
        keys(&all),
        vec![&b"a"[..], b"a/1", b"a/2", b"a\xff", b"a\xff\x01", b"b"]
    );
    assert_eq!(keys(&b.scan(t, b"a/").unwrap()), vec![&b"a/1"[..], b"a/2"]);
    assert_eq!(
        keys(&b.scan(t, b"a\xff").unwrap()),
        vec![&b"a\xff"[..], b"a\xff\x01"]
    );
    assert!(b.scan(t, b"c").unwrap().is_empty());
    assert_eq!(
        keys(&b.range(t, b"a/2", 2).unwrap()),
        vec![&b"a/2"[..], b"a\xff"]
    );
    assert_eq!(keys(&b.range(t, b"a/10", 1).unwrap()), vec![&b"a/2"[..]]);
    assert!(b.range(t, b"a", 0).unwrap().is_empty());
    assert_eq!(b.last(t).unwrap(), Some((b"b".to_vec(), b"2".to_vec())));
    assert_eq!(
        b.last(Table::Meta).unwrap(),
        Some((b"a".to_vec(), b"meta".to_vec()))
    );

    // Put replaces; Create refuses a key that is there, and takes its whole batch with it.
    b.apply(vec![put(t, b"a", b"new")]).unwrap();
    assert_eq!(b.get(t, b"a").unwrap().as_deref(), Some(&b"new"[..]));
    let clash = b.apply(vec![
        put(t, b"c", b"lost"),
        create(t, b"b", b"again"),
        Write::Delete {
            table: t,
            key: b"a".to_vec(),
        },
    ]);
    assert!(
        matches!(
            clash,
            Err(Error::Exists {
                table: "records_v1",
                ..
            })
        ),
        "{clash:?}"
    );
    assert_eq!(
        b.get(t, b"c").unwrap(),
        None,
        "a failed batch wrote nothing"
    );
    assert_eq!(b.get(t, b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(b.get(t, b"a").unwrap().as_deref(), Some(&b"new"[..]));
    b.apply(vec![
        create(t, b"c", b"made"),
        create(Table::Meta, b"b", b"m"),
    ])
    .unwrap();
    assert_eq!(b.get(t, b"c").unwrap().as_deref(), Some(&b"made"[..]));
    // A delete of a missing key is no error; a delete removes.
    b.apply(vec![
        Write::Delete {
            table: t,
            key: b"c".to_vec(),
        },
        Write::Delete {
            table: t,
            key: b"never".to_vec(),
        },
    ])
    .unwrap();
    assert_eq!(b.get(t, b"c").unwrap(), None);
    b.apply(Vec::new()).unwrap();
}

#[test]
fn both_backends_keep_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&RedbBackend::open(&dir.path().join("contract.redb")).unwrap());
    let pg = Cluster::start();
    contract(&PostgresBackend::open(&pg.options(), "contract").unwrap());
    // The records are in the schema's table as the barrier's callers gave them.
    assert_eq!(
        pg.psql("SELECT count(*) FROM contract.records WHERE tbl = 'records_v1'"),
        "6\n"
    );
}

fn unseal_key() -> UnsealKey {
    cryptoutil_protocols::unseal::generate(1, 1).unwrap().0
}

#[test]
fn the_barrier_seals_what_postgres_holds_and_reopens_with_its_key_only() {
    let pg = Cluster::start();
    let key = unseal_key();
    let store = Store::open(
        Box::new(PostgresBackend::open(&pg.options(), "kms").unwrap()),
        &key,
        "kms",
    )
    .unwrap();
    store
        .put_sealed(Table::KmsMaterialKeys, b"t/k/1", b"secret key material")
        .unwrap();
    let rotated = store.rotate_content_key().unwrap();
    store
        .put_sealed(Table::KmsMaterialKeys, b"t/k/2", b"second secret")
        .unwrap();
    drop(store);

    // What PostgreSQL holds is sealed: no plaintext in any row.
    let dump = pg.psql("SELECT encode(value, 'hex') FROM kms.records");
    for secret in [&b"secret key material"[..], b"second secret"] {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "plaintext in the database");
    }

    let reopened = Store::open(
        Box::new(PostgresBackend::open(&pg.options(), "kms").unwrap()),
        &key,
        "kms",
    )
    .unwrap();
    assert_eq!(reopened.active_content_key(), rotated);
    let got = reopened
        .get_sealed(Table::KmsMaterialKeys, b"t/k/1")
        .unwrap();
    assert_eq!(
        got.as_deref().map(Vec::as_slice),
        Some(&b"secret key material"[..])
    );
    let got = reopened
        .get_sealed(Table::KmsMaterialKeys, b"t/k/2")
        .unwrap();
    assert_eq!(
        got.as_deref().map(Vec::as_slice),
        Some(&b"second secret"[..])
    );

    let wrong = Store::open(
        Box::new(PostgresBackend::open(&pg.options(), "kms").unwrap()),
        &unseal_key(),
        "kms",
    );
    assert!(
        matches!(wrong, Err(Error::WrongUnsealKey { .. })),
        "{wrong:?}"
    );
}

#[test]
fn replicas_of_a_schema_migrate_once_and_agree_on_every_create() {
    let pg = Cluster::start();
    let options = pg.options();
    // Four replicas start at once on a schema that does not exist yet.
    let replicas: Vec<Arc<PostgresBackend>> = std::thread::scope(|s| {
        let started: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Arc::new(PostgresBackend::open(&options, "ca").unwrap())))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        pg.psql("SELECT version, name FROM ca.schema_migrations"),
        "1|records\n"
    );
    // Each replica creates the same 50 serials: every serial is created exactly once.
    let won: Vec<usize> = std::thread::scope(|s| {
        let racers: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                s.spawn(move || {
                    (0..50)
                        .filter(|n| {
                            let key = format!("ca1/{n:04}");
                            match r.apply(vec![create(
                                Table::CaCertificates,
                                key.as_bytes(),
                                format!("replica {i}").as_bytes(),
                            )]) {
                                Ok(()) => true,
                                Err(Error::Exists { .. }) => false,
                                Err(e) => panic!("replica {i}: {e}"),
                            }
                        })
                        .count()
                })
            })
            .collect();
        racers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().sum::<usize>(), 50, "wins per replica: {won:?}");
    // What one replica wrote, every other reads.
    let seen = replicas[3].scan(Table::CaCertificates, b"ca1/").unwrap();
    assert_eq!(seen.len(), 50);
    replicas[0]
        .apply(vec![put(Table::CaCrls, b"ca1", b"crl 7")])
        .unwrap();
    assert_eq!(
        replicas[2].get(Table::CaCrls, b"ca1").unwrap().as_deref(),
        Some(&b"crl 7"[..])
    );
}

/// Replicas opening a new shared store at the same moment end up with one key hierarchy:
/// what each seals, every other opens (the root is created once; the others load it).
#[test]
fn replicas_opening_a_new_store_at_once_share_one_barrier() {
    let pg = Cluster::start();
    let options = pg.options();
    let key = unseal_key();
    let stores: Vec<Store> = std::thread::scope(|s| {
        let opening: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let backend = PostgresBackend::open(&options, "jose").unwrap();
                    Store::open(Box::new(backend), &key, "jose").unwrap()
                })
            })
            .collect();
        opening.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, store) in stores.iter().enumerate() {
        store
            .put_sealed(Table::Records, format!("r{i}").as_bytes(), b"sealed by one")
            .unwrap();
    }
    for reader in &stores {
        for i in 0..stores.len() {
            let got = reader
                .get_sealed(Table::Records, format!("r{i}").as_bytes())
                .unwrap();
            assert_eq!(
                got.as_deref().map(Vec::as_slice),
                Some(&b"sealed by one"[..])
            );
        }
    }
}

/// Replicas appending to one log at once, each next record numbered after the last one
/// read: under `apply_after_last` every append lands, numbered without a gap or a clash.
#[test]
fn appends_after_the_last_record_take_turns_across_replicas() {
    let pg = Cluster::start();
    let options = pg.options();
    let replicas: Vec<Arc<PostgresBackend>> = (0..4)
        .map(|_| Arc::new(PostgresBackend::open(&options, "kms").unwrap()))
        .collect();
    let appended: Vec<usize> = std::thread::scope(|s| {
        let racers: Vec<_> = replicas
            .iter()
            .map(|b| {
                s.spawn(move || {
                    let mut landed = 0;
                    for _ in 0..50 {
                        b.apply_after_last(Table::AuditLog, &mut |last| {
                            let next = last.map_or(1, |(k, _)| {
                                std::str::from_utf8(&k).unwrap().parse::<u64>().unwrap() + 1
                            });
                            let key = format!("{next:020}");
                            Ok(vec![create(Table::AuditLog, key.as_bytes(), b"record")])
                        })
                        .unwrap();
                        landed += 1;
                    }
                    landed
                })
            })
            .collect();
        racers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(appended, vec![50, 50, 50, 50]);
    let all = replicas[0].scan(Table::AuditLog, b"").unwrap();
    let numbers: Vec<u64> = all
        .iter()
        .map(|(k, _)| std::str::from_utf8(k).unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=200).collect::<Vec<u64>>());
    // The same race through the plain read-then-write (what a redb store, opened by one
    // process, does): creates clash.
    let clashes: usize = std::thread::scope(|s| {
        let racers: Vec<_> = replicas
            .iter()
            .map(|b| {
                s.spawn(move || {
                    let mut clashed = 0;
                    for _ in 0..50 {
                        let next = b.last(Table::AuditLog).unwrap().map_or(1, |(k, _)| {
                            std::str::from_utf8(&k).unwrap().parse::<u64>().unwrap() + 1
                        });
                        let key = format!("{next:020}");
                        if let Err(Error::Exists { .. }) =
                            b.apply(vec![create(Table::AuditLog, key.as_bytes(), b"record")])
                        {
                            clashed += 1;
                        }
                    }
                    clashed
                })
            })
            .collect();
        racers.into_iter().map(|h| h.join().unwrap()).sum()
    });
    eprintln!("without the lock: {clashes} of 200 appends clashed");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_clearly() {
    let pg = Cluster::start();
    let backend = PostgresBackend::open(&pg.options(), "jose").unwrap();
    assert_eq!(backend.schema_version().unwrap(), 1);
    drop(backend);
    pg.psql("INSERT INTO jose.schema_migrations (version, name) VALUES (2, 'from the future')");
    let refused = PostgresBackend::open(&pg.options(), "jose").unwrap_err();
    assert!(
        matches!(
            refused,
            Error::SchemaTooNew {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("newer"), "{refused}");
    // Names that are not plain identifiers never reach SQL.
    for bad in ["Kms", "kms;drop", "pg_catalog", "1kms", ""] {
        let e = PostgresBackend::open(&pg.options(), bad).unwrap_err();
        assert!(matches!(e, Error::PostgresConfig { .. }), "{bad}: {e:?}");
    }
}

#[test]
fn tls_to_the_database_is_verified_and_certificates_authenticate() {
    let pg = Cluster::start();
    let backend = PostgresBackend::open(&pg.options(), "identity_authz").unwrap();
    backend
        .apply(vec![put(Table::IdentityTenants, b"t1", b"x")])
        .unwrap();
    // The pool's connection, seen by the server: TLS 1.3, as configured.
    assert_eq!(
        pg.psql(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'cryptoutil' LIMIT 1"
        ),
        "t|TLSv1.3\n"
    );

    // A server certificate that does not chain to the anchors: no connection.
    let other_ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap()
        .pem();
    let wrong_anchor = PgOptions {
        trust_anchors_pem: other_ca,
        ..pg.options()
    };
    let e = PostgresBackend::open(&wrong_anchor, "identity_authz").unwrap_err();
    assert!(
        matches!(&e, Error::Unavailable { .. }) && e.to_string().contains("certificate"),
        "{e}"
    );
    // The right anchors, but a host name the certificate does not carry: a name that
    // resolves to the server's address (scripts/test puts it in /etc/hosts for the ACME
    // tests), so the connection is made and only the name check can refuse it.
    let wrong_name = PgOptions {
        url: Zeroizing::new(pg.url().replace("127.0.0.1", "acme.cryptoutil.test")),
        ..pg.options()
    };
    let e = PostgresBackend::open(&wrong_name, "identity_authz").unwrap_err();
    assert!(
        matches!(&e, Error::Unavailable { .. }) && e.to_string().contains("not valid for name"),
        "{e}"
    );
    // A Unix socket carries no TLS: refused before connecting.
    let socket = PgOptions {
        url: Zeroizing::new("host=/var/run/postgresql user=x dbname=y".into()),
        ..pg.options()
    };
    assert!(matches!(
        PostgresBackend::open(&socket, "identity_authz"),
        Err(Error::PostgresConfig { .. })
    ));

    // The certificate role: with its client certificate it reads the tenants; without, the
    // server refuses it.
    pg.psql(&format!(
        "GRANT USAGE ON SCHEMA identity_authz TO {CERT_USER}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA identity_authz TO {CERT_USER}"
    ));
    let cert_url = format!("postgresql://{CERT_USER}@127.0.0.1:{}/stores", pg.port);
    let with_cert = PgOptions {
        url: Zeroizing::new(cert_url.clone()),
        client_cert: Some((
            pg.client_cert.0.clone(),
            Zeroizing::new(pg.client_cert.1.clone()),
        )),
        ..pg.options()
    };
    let by_cert = PostgresBackend::open(&with_cert, "identity_authz").unwrap();
    assert_eq!(
        by_cert
            .get(Table::IdentityTenants, b"t1")
            .unwrap()
            .as_deref(),
        Some(&b"x"[..])
    );
    let without = PgOptions {
        url: Zeroizing::new(cert_url),
        ..pg.options()
    };
    let e = PostgresBackend::open(&without, "identity_authz").unwrap_err();
    assert!(
        matches!(e, Error::Postgres { .. } | Error::Unavailable { .. }),
        "{e:?}"
    );
}

#[test]
fn a_database_that_goes_away_answers_unavailable_keeps_batches_whole_and_comes_back() {
    let pg = Cluster::start();
    let options = PgOptions {
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(3),
        ..pg.options()
    };
    let backend = Arc::new(PostgresBackend::open(&options, "kms").unwrap());
    backend
        .apply(vec![put(Table::KmsElasticKeys, b"t/k", b"1")])
        .unwrap();

    // A large batch in flight when the server dies: afterwards all of it or none is there.
    let writer = {
        let backend = Arc::clone(&backend);
        std::thread::spawn(move || {
            let writes = (0..20_000)
                .map(|n| {
                    put(
                        Table::KmsMaterialKeys,
                        format!("t/k/{n:010}").as_bytes(),
                        &[9u8; 256],
                    )
                })
                .collect();
            backend.apply(writes)
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    pg.stop();
    let outcome = writer.join().unwrap();

    let started = Instant::now();
    let down = backend.get(Table::KmsElasticKeys, b"t/k");
    assert!(matches!(down, Err(Error::Unavailable { .. })), "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    pg.restart();
    // The same backend, not reopened, works again once the server is back.
    let back = (0..50).find_map(|_| match backend.get(Table::KmsElasticKeys, b"t/k") {
        Ok(v) => Some(v),
        Err(_) => {
            std::thread::sleep(Duration::from_millis(200));
            None
        }
    });
    assert_eq!(back.flatten().as_deref(), Some(&b"1"[..]));
    let written = backend.scan(Table::KmsMaterialKeys, b"t/k/").unwrap().len();
    eprintln!("the batch in flight: {outcome:?}, {written} of 20000 records there");
    match outcome {
        Ok(()) => assert_eq!(written, 20_000, "acknowledged, so all of it is there"),
        Err(e) => assert!(
            written == 0 || written == 20_000,
            "half a batch ({written}) after {e}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kms_keeps_its_keys_in_postgres_for_the_next_process_and_answers_503_while_it_is_away()
{
    let pg = Cluster::start();
    let (app, _first_dir) = first_kms(&pg).await;
    let first_data = app.data_dir.clone();
    let boot = bootstrap(&first_data);
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (status, v) = kms(
        &app,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "orders", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let plaintext = b64::encode(b"card 4111");
    let (status, v) = kms(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/encrypt"),
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let jwe = v["jwe"].as_str().unwrap().to_owned();

    // The database goes away: a write answers 503 with Retry-After, then works again once it
    // is back, without restarting anything.
    pg.stop();
    let (status, v, r) = api_response(
        &app,
        ServiceName::Kms,
        &token,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "while-down", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"], "database_unavailable", "{v}");
    assert!(r.headers.get("retry-after").is_some());
    pg.restart();
    let mut created = 0;
    for _ in 0..50 {
        let (status, _) = kms(
            &app,
            &token,
            Method::POST,
            "/elastickeys",
            Some(json!({"name": "after", "algorithm": "A256GCM"})),
        )
        .await;
        if status == 201 {
            created = 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(created, 1, "the KMS writes again once the database is back");
    let (status, v) = kms(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;

    // Another process, with its own data directory but the same unseal share and database,
    // has the tenant, the client and both key versions.
    let (app, _second_dir) = replica_of(&pg, &first_data).await;
    let second_data = app.data_dir.clone();
    assert!(
        !second_data.join("bootstrap.json").exists(),
        "the second process found identity's tenant in the database"
    );
    let token = client_token(&app, &boot.client_id, &boot.secret, "kms").await;
    let (status, v) = kms(
        &app,
        &token,
        Method::POST,
        &format!("/elastickeys/{id}/decrypt"),
        Some(json!({"jwe": jwe})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["plaintext"], plaintext);
    let (status, v) = kms(
        &app,
        &token,
        Method::GET,
        &format!("/elastickeys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["latest"], 2, "{v}");
    app.stop().await;
}

const KMS_SERVICES: [ServiceName; 2] = [ServiceName::IdentityAuthz, ServiceName::Kms];

/// identity-authz and the KMS in one process, their stores in `pg`, data in `data`.
async fn kms_on(pg: &Cluster, data: &std::path::Path) -> TestApp {
    let vars = pg.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::start(KMS_SERVICES.to_vec(), &vars, Some(data)).await
}

/// The first such process, in a new data directory.
async fn first_kms(pg: &Cluster) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (kms_on(pg, &dir.path().join("data")).await, dir)
}

/// Another process on the same database: its own data directory with the first's unseal
/// share.
async fn replica_of(pg: &Cluster, first: &std::path::Path) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("unseal")).unwrap();
    std::fs::copy(
        first.join("unseal").join("dev-share-1.txt"),
        data.join("unseal").join("dev-share-1.txt"),
    )
    .unwrap();
    (kms_on(pg, &data).await, dir)
}

async fn audit_of(app: &TestApp) -> Value {
    let r = app
        .client
        .get(&format!(
            "{}/admin/v1/audit/verify",
            app.admin(ServiceName::Kms)
        ))
        .await
        .unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_kms_replicas_agree_on_rotations_never_overwrite_a_version_and_keep_one_audit_chain() {
    let pg = Cluster::start();
    let (a, _a_dir) = first_kms(&pg).await;
    let boot = bootstrap(&a.data_dir);
    let (b, _b_dir) = replica_of(&pg, &a.data_dir).await;
    let ta = client_token(&a, &boot.client_id, &boot.secret, "kms").await;
    let tb = client_token(&b, &boot.client_id, &boot.secret, "kms").await;

    // A key made through one replica is used through the other.
    let (status, v) = kms(
        &a,
        &ta,
        Method::POST,
        "/elastickeys",
        Some(json!({"name": "shared", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let encrypt = |app, token| {
        let path = format!("/elastickeys/{id}/encrypt");
        async move {
            let (status, v) = kms(
                app,
                token,
                Method::POST,
                &path,
                Some(json!({"plaintext": b64::encode(b"order 7")})),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            v["jwe"].as_str().unwrap().to_owned()
        }
    };
    let decrypts = |app, token, jwe: String| {
        let path = format!("/elastickeys/{id}/decrypt");
        async move {
            let (status, v) = kms(app, token, Method::POST, &path, Some(json!({"jwe": jwe}))).await;
            status == 200 && v["plaintext"] == b64::encode(b"order 7")
        }
    };
    let latest = |app, token| {
        let path = format!("/elastickeys/{id}");
        async move {
            let (status, v) = kms(app, token, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{v}");
            v["latest"].as_u64().unwrap()
        }
    };
    let jwe1 = encrypt(&a, &ta).await;
    assert!(decrypts(&b, &tb, jwe1.clone()).await);
    assert_eq!(latest(&b, &tb).await, 1);

    // A rotation through A: B decrypts the new version's ciphertexts and encrypts with it
    // within its refresh interval (1 s).
    let (status, v) = kms(
        &a,
        &ta,
        Method::POST,
        &format!("/elastickeys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let jwe2 = encrypt(&a, &ta).await;
    let rotated = Instant::now();
    let mut seen = None;
    while rotated.elapsed() < Duration::from_secs(10) {
        if decrypts(&b, &tb, jwe2.clone()).await && latest(&b, &tb).await == 2 {
            seen = Some(rotated.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.expect("replica B never saw the rotation made through A");
    assert!(seen < Duration::from_millis(2500), "seen after {seen:?}");
    eprintln!(
        "replica B used version 2 {} ms after A rotated",
        seen.as_millis()
    );

    // Both rotate at once: whichever loses the race is refused (409), and no version is
    // written twice.
    let rotate = format!("/elastickeys/{id}/rotate");
    let (ra, rb) = tokio::join!(
        kms(&a, &ta, Method::POST, &rotate, None),
        kms(&b, &tb, Method::POST, &rotate, None),
    );
    let ok = [ra.0, rb.0].iter().filter(|s| **s == 200).count() as u64;
    assert!(ok >= 1, "{ra:?} {rb:?}");
    for (status, v) in [&ra, &rb] {
        assert!(*status == 200 || *status == 409, "{status} {v}");
    }
    let expected = 2 + ok;
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(10)
        && (latest(&a, &ta).await != expected || latest(&b, &tb).await != expected)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(latest(&a, &ta).await, expected);
    assert_eq!(latest(&b, &tb).await, expected);
    let (status, v) = kms(
        &b,
        &tb,
        Method::GET,
        &format!("/elastickeys/{id}/materialkeys"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut versions: Vec<u64> = v["materialkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=expected).collect::<Vec<_>>(), "{v}");
    for jwe in [&jwe1, &jwe2] {
        assert!(decrypts(&a, &ta, jwe.clone()).await);
        assert!(decrypts(&b, &tb, jwe.clone()).await);
    }

    // Both wrote audit records (every operation above): the service has one chain, which each
    // replica verifies whole and ends at the same record.
    let (va, vb) = (audit_of(&a).await, audit_of(&b).await);
    assert_eq!(va["valid"], true, "{va}");
    assert_eq!(vb["valid"], true, "{vb}");
    assert_eq!(va["head"], vb["head"], "{va} {vb}");
    assert_eq!(va["records"], vb["records"]);
    assert!(va["records"].as_u64().unwrap() >= 12, "{va}");
    a.stop().await;
    b.stop().await;
}

/// identity-authz, identity-idp and the KMS, replicas of one deployment behind one issuer.
const IDENTITY_SERVICES: [ServiceName; 3] = [
    ServiceName::IdentityAuthz,
    ServiceName::IdentityIdp,
    ServiceName::Kms,
];
const SHARED_ISSUER: &str = "https://issuer.identity.test";

/// An identity replica on `pg` in `data` (a new directory, or one holding the first's unseal
/// share).
async fn identity_on(pg: &Cluster, data: &std::path::Path) -> TestApp {
    let mut vars = pg.vars();
    vars.push(("CRYPTOUTIL_IDENTITY__ISSUER".into(), SHARED_ISSUER.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::start(IDENTITY_SERVICES.to_vec(), &vars, Some(data)).await
}

/// A second data directory holding `first`'s unseal share.
fn share_of(first: &std::path::Path) -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("unseal")).unwrap();
    std::fs::copy(
        first.join("unseal").join("dev-share-1.txt"),
        data.join("unseal").join("dev-share-1.txt"),
    )
    .unwrap();
    (data, dir)
}

async fn refresh(app: &TestApp, client: (&str, &str), token: &str) -> (u16, Value) {
    let (status, v, _) = super::identity::token_request(
        app,
        Some(client),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    (status, v)
}

/// Waits (at most 10 s) until `ready` holds: what one replica wrote, the other knows.
async fn eventually<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two identity-authz replicas on one database: a client registered through one is known to
/// the other; a code from a sign-in through one is redeemed through the other, once; a refresh
/// token rotated through one and presented again through the other revokes its family, and
/// one presented to both at once succeeds once; a pushed request is used through the other,
/// once; a logout through one ends the session for the other; a client assertion used through
/// one is refused by the other.
#[tokio::test(flavor = "multi_thread")]
async fn two_identity_replicas_finish_each_others_flows_and_refuse_each_others_replays() {
    use super::code_flow::{
        authorize_url, location, query, redeem, rp_client, sign_in_with, Browser, CHALLENGE,
        REDIRECT,
    };
    let pg = Cluster::start();
    let a_dir = tempfile::tempdir().unwrap();
    let a = identity_on(&pg, &a_dir.path().join("data")).await;
    let boot = bootstrap(&a.data_dir);
    let (b_data, _b_dir) = share_of(&a.data_dir);
    let b = identity_on(&pg, &b_data).await;
    assert!(
        !b_data.join("bootstrap.json").exists(),
        "the second replica found the first's tenant and did not bootstrap again"
    );
    let operator = client_token(&a, &boot.client_id, &boot.secret, "identity").await;
    let (id, secret) = rp_client(&a, &operator, json!({ "first_party": true })).await;
    let client = (id.as_str(), secret.as_str());
    eventually("B knows the client registered through A", || async {
        redeem(&b, client, "no-such-code").await.1["error"] == "invalid_grant"
    })
    .await;

    // A code from a sign-in through A, redeemed through B; its second use, through A, is
    // refused and revokes what the first issued.
    let mut browser = Browser::new(&a);
    let back = sign_in_with(&mut browser, &id, &[], "admin", &boot.password).await;
    let code = query(&back, "code").expect(&back);
    let (status, first) = redeem(&b, client, &code).await;
    assert_eq!(status, 200, "{first}");
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, v) = redeem(&a, client, &code).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let (status, v) = refresh(&b, client, &r1).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "the code's reuse revoked its refresh family: {v}"
    );

    // Rotation through B, the old token again through A: the family is revoked everywhere.
    let mut browser_b = Browser::new(&b);
    let back = sign_in_with(&mut browser_b, &id, &[], "admin", &boot.password).await;
    let (status, v) = redeem(&a, client, &query(&back, "code").unwrap()).await;
    assert_eq!(status, 200, "{v}");
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let (status, v) = refresh(&b, client, &r1).await;
    assert_eq!(status, 200, "{v}");
    let r2 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        refresh(&a, client, &r1).await.0,
        400,
        "reuse through the other replica"
    );
    assert_eq!(
        refresh(&b, client, &r2).await.0,
        400,
        "the family is revoked"
    );

    // One refresh token presented to both at once: one rotation, then the family is revoked.
    for round in 0..3 {
        let mut fresh = Browser::new(&a);
        let back = sign_in_with(&mut fresh, &id, &[], "admin", &boot.password).await;
        let (_, v) = redeem(&a, client, &query(&back, "code").unwrap()).await;
        let r1 = v["refresh_token"].as_str().unwrap().to_owned();
        let (ra, rb) = tokio::join!(refresh(&a, client, &r1), refresh(&b, client, &r1));
        let won: Vec<&Value> = [&ra, &rb]
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {ra:?} {rb:?}");
        for (status, v) in [&ra, &rb] {
            assert!(
                *status == 200 || v["error"] == "invalid_grant",
                "{status} {v}"
            );
        }
        let r2 = won[0]["refresh_token"].as_str().unwrap();
        assert_eq!(
            refresh(&a, client, r2).await.0,
            400,
            "round {round}: the token presented twice revoked its family"
        );
    }

    // A request pushed to A, used through B (a sign-in there), then spent for both.
    let (status, v, _) = super::identity::oauth_post(
        &a,
        "par",
        Some(client),
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid kms"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let by_ref = |app: &TestApp| {
        cryptoutil_protocols::oauth::with_query(
            &format!(
                "{}/browser/oauth2/v1/authorize",
                app.public(ServiceName::IdentityAuthz)
            ),
            &[
                ("client_id", id.as_str()),
                ("request_uri", v["request_uri"].as_str().unwrap()),
            ],
        )
    };
    let mut pushed = Browser::new(&b);
    let r = pushed.get(&by_ref(&b)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let login = location(&r).unwrap();
    assert!(
        login.starts_with(b.public(ServiceName::IdentityIdp)),
        "{login}"
    );
    let r = Browser::new(&a).get(&by_ref(&a)).await;
    assert_eq!(r.status, 400, "the pushed request is spent for A too");

    // A logout through B ends A's sign-in session: A's next authorization asks for a sign-in.
    let mut browser = Browser::new(&a);
    let back = sign_in_with(&mut browser, &id, &[], "admin", &boot.password).await;
    let (_, v) = redeem(&a, client, &query(&back, "code").unwrap()).await;
    let id_token = v["id_token"].as_str().unwrap().to_owned();
    let r = browser.get(&authorize_url(&a, &id, &[])).await;
    let r = browser.get(&location(&r).unwrap()).await;
    assert_eq!(
        r.status, 303,
        "A's session signs in silently before the logout"
    );
    let logout = cryptoutil_protocols::oauth::with_query(
        &format!(
            "{}/browser/oauth2/v1/logout",
            b.public(ServiceName::IdentityAuthz)
        ),
        &[("id_token_hint", id_token.as_str())],
    );
    let r = Browser::new(&b).get(&logout).await;
    assert!(r.status == 200 || r.status == 303, "{}", r.text());
    let r = browser.get(&authorize_url(&a, &id, &[])).await;
    let r = browser.get(&location(&r).unwrap()).await;
    assert_eq!(
        r.status,
        200,
        "after the logout through B, A shows the login page: {}",
        r.text()
    );

    // A client assertion accepted by one replica is refused by the other, and one presented
    // to both at once is accepted once.
    let key = cryptoutil_protocols::jose::Jwk::generate(cryptoutil_protocols::jose::JwsAlg::ES256)
        .unwrap();
    let jwks = json!({ "keys": [key.to_public_value().unwrap()] });
    let (status, c) = super::identity::admin(
        &a,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "signer", "auth_methods": ["private_key_jwt"], "jwks": jwks, "scopes": ["kms"]})),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let signer = c["client_id"].as_str().unwrap().to_owned();
    let now = cryptoutil_actors::now_unix();
    let assertion = |jti: &str| {
        let claims = json!({"iss": signer, "sub": signer, "aud": SHARED_ISSUER,
            "exp": now + 120, "iat": now, "jti": jti});
        cryptoutil_protocols::jose::jwt::sign(&key, claims.as_object().unwrap(), "JWT").unwrap()
    };
    let with_assertion = |app, a: String| async move {
        let (status, v, _) = super::identity::token_request(
            app,
            None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
            ],
        )
        .await;
        (status, v)
    };
    let mut n = 0;
    eventually("B knows the signer registered through A", || {
        n += 1;
        let a = assertion(&format!("probe-{n}"));
        let b = &b;
        async move { with_assertion(b, a).await.0 == 200 }
    })
    .await;
    let once = assertion("once");
    let (status, v) = with_assertion(&a, once.clone()).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = with_assertion(&b, once).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed through the other replica: {v}"
    );
    for round in 0..3 {
        let both = assertion(&format!("both-{round}"));
        let (ra, rb) = tokio::join!(
            with_assertion(&a, both.clone()),
            with_assertion(&b, both.clone())
        );
        let ok = [ra.0, rb.0].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "round {round}: {ra:?} {rb:?}");
    }
    a.stop().await;
    b.stop().await;
}

/// Two identity-idp replicas on one database: a sign-in session opened through one signs in
/// silently through the other, failed sign-ins through both count toward one lockout, codes
/// sent to both at once spend a waiting sign-in's attempts once each, one HOTP code sent to
/// both at once signs in once, and a factor removed through one while the other checks it
/// stays removed.
#[tokio::test(flavor = "multi_thread")]
async fn two_idp_replicas_share_sign_in_sessions_and_count_failures_together() {
    use super::code_flow::{
        authorize_url, location, login_page, query, redeem, rp_client, sign_in_with, Browser,
        REDIRECT,
    };
    let pg = Cluster::start();
    let a_dir = tempfile::tempdir().unwrap();
    let a = identity_on(&pg, &a_dir.path().join("data")).await;
    let boot = bootstrap(&a.data_dir);
    let (b_data, _b_dir) = share_of(&a.data_dir);
    let b = identity_on(&pg, &b_data).await;
    let operator = client_token(&a, &boot.client_id, &boot.secret, "identity").await;
    let (id, secret) = rp_client(&a, &operator, json!({ "first_party": true })).await;
    let client = (id.as_str(), secret.as_str());
    let (status, v) = super::identity::admin(
        &a,
        &operator,
        Method::POST,
        "/users",
        Some(json!({"username": "carol", "password": "carol-password-123"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Two more users for the factor checks below.
    super::signin_factors::new_user(&a, &operator, "dave").await;
    super::signin_factors::new_user(&a, &operator, "erin").await;
    super::signin_factors::new_user(&a, &operator, "frank").await;
    eventually("B knows the client and the user made through A", || async {
        redeem(&b, client, "no-such-code").await.1["error"] == "invalid_grant"
    })
    .await;

    // A session opened through A's login page serves B's: no login page there.
    let mut at_a = Browser::new(&a);
    sign_in_with(&mut at_a, &id, &[], "admin", &boot.password).await;
    let mut at_b = at_a.to(&b);
    let r = at_b.get(&authorize_url(&b, &id, &[])).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = at_b.get(&location(&r).unwrap()).await;
    assert_eq!(
        r.status,
        303,
        "B's login page signs in silently: {}",
        r.text()
    );
    let back = location(&r).unwrap();
    assert!(back.starts_with(REDIRECT), "{back}");
    let (status, v) = redeem(&b, client, &query(&back, "code").unwrap()).await;
    assert_eq!(status, 200, "{v}");

    // Five failures, through A and B in turn, spend carol's free attempts: her right password
    // is then refused through either.
    async fn attempt(app: &TestApp, client_id: &str, password: &str) -> (u16, String) {
        let mut browser = Browser::new(app);
        let (form, challenge, csrf) = login_page(&mut browser, client_id, &[]).await;
        let r = browser
            .post(
                &form,
                &[
                    ("challenge", &challenge),
                    ("csrf", &csrf),
                    ("username", "carol"),
                    ("password", password),
                ],
                Some(app.public(ServiceName::IdentityIdp)),
            )
            .await;
        (r.status.into(), r.text())
    }
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (status, page) = attempt(app, &id, "wrong-password").await;
        assert!(
            page.contains("The username or password is incorrect."),
            "failure {i}: {status} {page}"
        );
    }
    for app in [&a, &b] {
        let (status, page) = attempt(app, &id, "carol-password-123").await;
        assert!(
            page.contains("Too many failed attempts"),
            "locked through both replicas: {status} {page}"
        );
    }

    // Six wrong codes sent at once for one waiting sign-in, three through each replica, spend
    // its three attempts once each: three are checked, three find it gone.
    let (status, v) = super::identity::api(
        &a,
        ServiceName::IdentityIdp,
        &operator,
        Method::POST,
        "/identity/users/dave/factors",
        Some(json!({"type": "totp", "name": "phone"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let mut at_a = Browser::new(&a);
    let (status, page, challenge) =
        super::signin_factors::password_step(&mut at_a, &id, "dave").await;
    assert_eq!(status, 200, "the code form: {page}");
    let csrf = super::code_flow::hidden(&page, "csrf");
    let cookies = format!(
        "__Host-cryptoutil-idp-step={}; __Host-cryptoutil-idp-csrf={csrf}",
        at_a.cookie("__Host-cryptoutil-idp-step").unwrap()
    );
    let body = format!(
        "challenge={}&csrf={csrf}&code=654321",
        cryptoutil_protocols::oauth::form_encode(&challenge)
    );
    let guess = |replica| super::signin_factors::post_code(replica, &cookies, &body);
    let pages = tokio::join!(
        guess(&a),
        guess(&b),
        guess(&a),
        guess(&b),
        guess(&a),
        guess(&b)
    );
    let pages = [pages.0, pages.1, pages.2, pages.3, pages.4, pages.5];
    let count = |text: &str| pages.iter().filter(|p| p.contains(text)).count();
    assert_eq!(
        (
            count("The code is incorrect"),
            count("This sign-in expired")
        ),
        (3, 3),
        "{pages:?}"
    );

    // One HOTP code presented through both replicas at once, each in a sign-in of its own
    // (3 rounds, the next counter each): it signs in once.
    let (status, hotp) = super::identity::api(
        &a,
        ServiceName::IdentityIdp,
        &operator,
        Method::POST,
        "/identity/users/erin/factors",
        Some(json!({"type": "hotp", "name": "token"})),
    )
    .await;
    assert_eq!(status, 201, "{hotp}");
    let hotp_secret = hotp["secret"].as_str().unwrap();
    for counter in 0..3 {
        let code = super::otp::oathtool(&[
            "--hotp",
            "--base32",
            &format!("--counter={counter}"),
            hotp_secret,
        ])
        .concat();
        let (mut at_a, mut at_b) = (Browser::new(&a), Browser::new(&b));
        let (_, page_a, challenge_a) =
            super::signin_factors::password_step(&mut at_a, &id, "erin").await;
        let (_, page_b, challenge_b) =
            super::signin_factors::password_step(&mut at_b, &id, "erin").await;
        let (ra, rb) = tokio::join!(
            super::signin_factors::code_step(&mut at_a, &page_a, &challenge_a, &code),
            super::signin_factors::code_step(&mut at_b, &page_b, &challenge_b, &code)
        );
        let signed_in = [ra.0, rb.0].iter().filter(|s| **s == 303).count();
        assert_eq!(signed_in, 1, "counter {counter}: {ra:?} {rb:?}");
    }

    // A factor removed through A while B checks a code of it (5 rounds, a new factor each):
    // either the removal lands and the factor stays gone, or it is refused (409: B's check
    // spent the record's revision first) and the sign-in went on. Never a removal answered
    // 204 with the record written back by the check.
    let idp = ServiceName::IdentityIdp;
    for round in 0..5 {
        let (status, f) = super::identity::api(
            &a,
            idp,
            &operator,
            Method::POST,
            "/identity/users/frank/factors",
            Some(json!({"type": "hotp", "name": format!("token {round}")})),
        )
        .await;
        assert_eq!(status, 201, "{f}");
        let fid = f["id"].as_str().unwrap().to_owned();
        let code = super::otp::oathtool(&[
            "--hotp",
            "--base32",
            "--counter=0",
            f["secret"].as_str().unwrap(),
        ])
        .concat();
        let mut at_b = Browser::new(&b);
        let (_, page, challenge) =
            super::signin_factors::password_step(&mut at_b, &id, "frank").await;
        let path = format!("/identity/users/frank/factors/{fid}");
        let (removed, checked) = tokio::join!(
            super::identity::api(&a, idp, &operator, Method::DELETE, &path, None),
            super::signin_factors::code_step(&mut at_b, &page, &challenge, &code)
        );
        let (status, list) = super::identity::api(
            &b,
            idp,
            &operator,
            Method::GET,
            "/identity/users/frank/factors",
            None,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        let listed = list.as_array().unwrap().iter().any(|x| x["id"] == fid);
        match removed.0 {
            204 => assert!(
                !listed,
                "round {round}: removed, then written back: {list} {checked:?}"
            ),
            409 => {
                assert!(
                    listed && checked.0 == 303,
                    "round {round}: {checked:?} {list}"
                );
                let (status, v) =
                    super::identity::api(&a, idp, &operator, Method::DELETE, &path, None).await;
                assert_eq!(status, 204, "{v}");
            }
            other => panic!("round {round}: removal answered {other}: {}", removed.1),
        }
    }
    a.stop().await;
    b.stop().await;
}

/// identity-authz and the CA, a replica on `pg` in `data`.
async fn ca_on(pg: &Cluster, data: &std::path::Path) -> TestApp {
    let mut vars = pg.vars();
    vars.push(("CRYPTOUTIL_IDENTITY__ISSUER".into(), SHARED_ISSUER.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::start(super::ca_service::SERVICES.to_vec(), &vars, Some(data)).await
}

/// Two CA replicas on one database: a CA made through one issues through both, serials stay
/// unique, a revocation through one reaches the other's OCSP answers (a cached "good" too)
/// and CRL within its refresh interval, and revocations through both at once all land in one
/// CRL sequence that openssl reads.
#[tokio::test(flavor = "multi_thread")]
async fn two_ca_replicas_share_issuance_revocations_crls_and_ocsp_answers() {
    use super::ca_service::{call, csr, openssl, openssl_ok, public_get, root};
    let pg = Cluster::start();
    let a_dir = tempfile::tempdir().unwrap();
    let a = ca_on(&pg, &a_dir.path().join("data")).await;
    let boot = bootstrap(&a.data_dir);
    let (b_data, b_dir) = share_of(&a.data_dir);
    let b = ca_on(&pg, &b_data).await;
    let work = b_dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ta = client_token(&a, &boot.client_id, &boot.secret, "ca").await;
    let tb = client_token(&b, &boot.client_id, &boot.secret, "ca").await;
    let ca = root(&a, &ta, "replicated", "Replicated Root").await;
    let id = ca["id"].as_str().unwrap().to_owned();
    std::fs::write(work.join("root.pem"), ca["certificate"].as_str().unwrap()).unwrap();

    // Issuance through both replicas, concurrently: every serial differs.
    let mut serials = Vec::new();
    let issue = format!("/ca/cas/{id}/certificates");
    for round in 0..3 {
        let for_a =
            json!({"profile": "tls-server", "csr": csr(&work, &format!("a{round}.replica.test"))});
        let for_b =
            json!({"profile": "tls-server", "csr": csr(&work, &format!("b{round}.replica.test"))});
        let (ra, rb) = tokio::join!(
            call(&a, &ta, Method::POST, &issue, Some(for_a)),
            call(&b, &tb, Method::POST, &issue, Some(for_b)),
        );
        for (status, v) in [ra, rb] {
            assert_eq!(status, 201, "{v}");
            let serial = v["serial"].as_str().unwrap().to_owned();
            std::fs::write(
                work.join(format!("{serial}.pem")),
                v["certificate"].as_str().unwrap(),
            )
            .unwrap();
            serials.push(serial);
        }
    }
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{serials:?}");

    // B answers "good" (and caches it); a revocation through A turns B's answer to
    // "revoked" within its refresh interval.
    let ocsp = |app: &TestApp, serial: &str| {
        let url = format!("{}/service/api/v1/ca/ocsp", app.public(ServiceName::Ca));
        let cert = format!("{serial}.pem");
        openssl(
            &work,
            &[
                "ocsp",
                "-url",
                &url,
                "-CAfile",
                "root.pem",
                "-issuer",
                "root.pem",
                "-cert",
                &cert,
                "-no_nonce",
            ],
        )
    };
    let first = serials[0].clone();
    let (ok, out) = ocsp(&b, &first);
    assert!(ok && out.contains(": good"), "{out}");
    let revoke = |app, token, serial: String| {
        let path = format!("/ca/cas/{id}/certificates/{serial}/revoke");
        async move {
            call(
                app,
                token,
                Method::POST,
                &path,
                Some(json!({"reason": "keyCompromise"})),
            )
            .await
        }
    };
    let (status, v) = revoke(&a, &ta, first.clone()).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("revoked")),
        "{v}"
    );
    let revoked_at = Instant::now();
    loop {
        let (ok, out) = ocsp(&b, &first);
        if ok && out.contains(": revoked") {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "B still answers: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "B's OCSP answer said revoked {} ms after A revoked",
        revoked_at.elapsed().as_millis()
    );
    // The same certificate again through B: already revoked.
    assert_eq!(revoke(&b, &tb, first.clone()).await.0, 409);

    // Revocations through both at once: all of them in the CRL either serves, whose numbers
    // only grow.
    let crl = |app, name: &'static str| {
        let path = format!("/ca/cas/{id}/crl");
        let work = work.clone();
        async move {
            let (status, _, der) = public_get(app, &path).await;
            assert_eq!(status, 200);
            std::fs::write(work.join(format!("{name}.der")), der).unwrap();
            openssl_ok(
                &work,
                &[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    &format!("{name}.der"),
                    "-CAfile",
                    "root.pem",
                    "-noout",
                    "-text",
                ],
            )
            .to_lowercase()
        }
    };
    let number = |text: &str| {
        let line = text
            .lines()
            .skip_while(|l| !l.contains("crl number"))
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned();
        u64::from_str_radix(line.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| line.parse().unwrap())
    };
    let before = number(&crl(&a, "before").await);
    let rounds = [(1, 2), (3, 4)];
    for (x, y) in rounds {
        let (ra, rb) = tokio::join!(
            revoke(&a, &ta, serials[x].clone()),
            revoke(&b, &tb, serials[y].clone())
        );
        assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    }
    let settled = Instant::now();
    loop {
        let (from_a, from_b) = (crl(&a, "from-a").await, crl(&b, "from-b").await);
        let all = |text: &str| serials[..5].iter().all(|s| text.contains(s.as_str()));
        if all(&from_a) && all(&from_b) && number(&from_a) == number(&from_b) {
            assert!(
                number(&from_a) > before,
                "{before} then {}",
                number(&from_a)
            );
            assert!(!from_a.contains(serials[5].as_str()), "{from_a}");
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "the CRLs do not agree: {from_a}\n{from_b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// The whole suite as a process on `pg` in `data`, every store in the database.
fn suite_process(pg: &Cluster, data: &std::path::Path) -> crate::Process {
    let mut vars = pg.vars();
    vars.push(("CRYPTOUTIL_IDENTITY__ISSUER".into(), SHARED_ISSUER.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::Process::spawn(data, &["suite"], &vars)
}

/// A request with a bearer token: the status and the JSON answer (`Null` when none); status 0
/// when no answer came (the replica was killed).
async fn bearer_call(
    client: &cryptoutil_federation::HttpsClient,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    super::federation_process::try_call(client, method, url, token, body)
        .await
        .unwrap_or((0, Value::Null))
}

/// kill -9 of one replica while it rotates a key, encrypts, issues certificates and grants
/// tokens: everything it acknowledged is there for the replica that survives, which never
/// stopped answering.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_replica_under_load_loses_nothing_it_acknowledged() {
    use std::sync::Mutex;
    let pg = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let a_data = tmp.path().join("a");
    let mut a = suite_process(&pg, &a_data);
    let a_end = tokio::task::block_in_place(|| a.wait_ready(Duration::from_secs(60)));
    let (b_data, _b_dir) = share_of(&a_data);
    let mut b = suite_process(&pg, &b_data);
    let b_end = tokio::task::block_in_place(|| b.wait_ready(Duration::from_secs(60)));
    let (ca_client, cb_client) = (a.client(), b.client());
    use super::kms_crash::token_with_scope as token;
    let a_authz = a_end["identity-authz"].public.clone();
    let kms_token = token(&ca_client, &a_authz, &a_data, "kms").await;
    let ca_token = token(&ca_client, &a_authz, &a_data, "ca").await;
    let (a_kms, b_kms) = (
        format!("{}/service/api/v1/elastickeys", a_end["kms"].public),
        format!("{}/service/api/v1/elastickeys", b_end["kms"].public),
    );
    let (a_ca, b_ca) = (
        format!("{}/service/api/v1/ca/cas", a_end["ca"].public),
        format!("{}/service/api/v1/ca/cas", b_end["ca"].public),
    );
    let (status, key) = bearer_call(
        &ca_client,
        Method::POST,
        &a_kms,
        &kms_token,
        Some(json!({"name": "survivor", "algorithm": "A256GCM"})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (status, root) = bearer_call(
        &ca_client,
        Method::POST,
        &a_ca,
        &ca_token,
        Some(json!({"name": "r", "subject": {"common_name": "Kill Root"}, "key": "P-256"})),
    )
    .await;
    assert_eq!(status, 201, "{root}");
    let ca_id = root["id"].as_str().unwrap().to_owned();
    let csr_dir = tempfile::tempdir().unwrap();
    let request = super::ca_service::csr(csr_dir.path(), "kill.replica.test");

    // Four loops on A, each recording only what A acknowledged.
    let rotated: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sealed: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let issued: Arc<Mutex<Vec<String>>> = Arc::default();
    let granted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut loops = Vec::new();
    {
        let (client, url, t, rotated) = (
            ca_client.clone(),
            format!("{a_kms}/{key_id}/rotate"),
            kms_token.clone(),
            Arc::clone(&rotated),
        );
        loops.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                match bearer_call(&client, Method::POST, &url, &t, Some(json!({}))).await {
                    (200, v) => rotated.lock().unwrap().push(v["version"].as_u64().unwrap()),
                    _ => break,
                }
            }
        }));
    }
    {
        let (client, url, t, sealed) = (
            ca_client.clone(),
            format!("{a_kms}/{key_id}/encrypt"),
            kms_token.clone(),
            Arc::clone(&sealed),
        );
        loops.push(tokio::spawn(async move {
            for i in 0..50_000u32 {
                let plaintext = b64::encode(format!("acknowledged {i}").as_bytes());
                let body = json!({ "plaintext": plaintext });
                match bearer_call(&client, Method::POST, &url, &t, Some(body)).await {
                    (200, v) => sealed
                        .lock()
                        .unwrap()
                        .push((v["jwe"].as_str().unwrap().to_owned(), plaintext)),
                    _ => break,
                }
            }
        }));
    }
    {
        let (client, url, t, issued) = (
            ca_client.clone(),
            format!("{a_ca}/{ca_id}/certificates"),
            ca_token.clone(),
            Arc::clone(&issued),
        );
        loops.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                let body = json!({"profile": "tls-server", "csr": request});
                match bearer_call(&client, Method::POST, &url, &t, Some(body)).await {
                    (201, v) => issued
                        .lock()
                        .unwrap()
                        .push(v["serial"].as_str().unwrap().to_owned()),
                    _ => break,
                }
            }
        }));
    }
    {
        let (client, authz, data, granted) = (
            ca_client.clone(),
            a_authz.clone(),
            a_data.clone(),
            Arc::clone(&granted),
        );
        loops.push(tokio::spawn(async move {
            for _ in 0..50_000 {
                let grant = tokio::time::timeout(
                    Duration::from_secs(5),
                    super::kms_crash::try_token_with_scope(&client, &authz, &data, "kms"),
                )
                .await;
                match grant {
                    Ok(Some(t)) => granted.lock().unwrap().push(t),
                    _ => break,
                }
            }
        }));
    }
    let enough = || {
        rotated.lock().unwrap().len() >= 10
            && sealed.lock().unwrap().len() >= 50
            && issued.lock().unwrap().len() >= 10
            && granted.lock().unwrap().len() >= 20
    };
    let started = Instant::now();
    while !enough() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(enough(), "A did too little before the kill");
    tokio::task::block_in_place(|| a.kill9());
    let killed = Instant::now();
    for l in loops {
        let _ = l.await;
    }
    let (rotated, sealed, issued, granted) = (
        rotated.lock().unwrap().clone(),
        sealed.lock().unwrap().clone(),
        issued.lock().unwrap().clone(),
        granted.lock().unwrap().clone(),
    );

    // B answered on at once; everything A acknowledged is there.
    let b_token = token(&cb_client, &b_end["identity-authz"].public, &a_data, "kms").await;
    let (status, key) = bearer_call(
        &cb_client,
        Method::GET,
        &format!("{b_kms}/{key_id}"),
        &b_token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{key}");
    eprintln!(
        "B answered {} ms after A was killed",
        killed.elapsed().as_millis()
    );
    let max_acked = rotated.iter().copied().max().unwrap();
    let latest = key["latest"].as_u64().unwrap();
    assert!(
        latest >= max_acked,
        "latest {latest} < acknowledged {max_acked}"
    );
    let mut lost = 0;
    for (jwe, plaintext) in &sealed {
        let (status, v) = bearer_call(
            &cb_client,
            Method::POST,
            &format!("{b_kms}/{key_id}/decrypt"),
            &b_token,
            Some(json!({ "jwe": jwe })),
        )
        .await;
        if status != 200 || v["plaintext"].as_str() != Some(plaintext.as_str()) {
            lost += 1;
        }
    }
    let b_ca_token = token(&cb_client, &b_end["identity-authz"].public, &a_data, "ca").await;
    for serial in &issued {
        let (status, v) = bearer_call(
            &cb_client,
            Method::GET,
            &format!("{b_ca}/{ca_id}/certificates/{serial}"),
            &b_ca_token,
            None,
        )
        .await;
        if status != 200 || v["serial"].as_str() != Some(serial.as_str()) {
            lost += 1;
        }
    }
    for t in &granted {
        let (status, _) = bearer_call(
            &cb_client,
            Method::GET,
            &format!("{b_kms}/{key_id}"),
            t,
            None,
        )
        .await;
        if status != 200 {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "acknowledged by A, missing through B");
    let (status, v) = bearer_call(
        &cb_client,
        Method::GET,
        &format!("{}/admin/v1/audit/verify", b_end["kms"].admin),
        "",
        None,
    )
    .await;
    assert_eq!((status, v["valid"].as_bool()), (200, Some(true)), "{v}");
    eprintln!(
        "kill -9 of replica A: {} rotations, {} ciphertexts, {} certificates, {} tokens acknowledged; all there through B",
        rotated.len(),
        sealed.len(),
        issued.len(),
        granted.len()
    );
    b.sigterm();
    tokio::task::block_in_place(|| b.wait_exit(Duration::from_secs(20)));
}

/// A process killed (-9) at any point of its first start on an empty database, again and
/// again: the next start migrates (or finds migrated) every schema, each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_killed_mid_migration_leaves_nothing_half_done() {
    let pg = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    // One start without the database, only to make the unseal share every attempt uses.
    let first = tmp.path().join("first");
    let mut p = crate::Process::spawn(&first, &["serve", "jose"], &[]);
    tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(30)));
    tokio::task::block_in_place(|| p.kill9());
    for delay in [0u64, 30, 60, 100, 150, 250, 400] {
        let (data, _dir) = share_of(&first);
        let mut p = suite_process(&pg, &data);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        tokio::task::block_in_place(|| p.kill9());
    }
    let (data, _dir) = share_of(&first);
    let mut p = suite_process(&pg, &data);
    let end = tokio::task::block_in_place(|| p.wait_ready(Duration::from_secs(60)));
    for schema in [
        "kms",
        "jose",
        "ca",
        "identity_authz",
        "identity_idp",
        "identity_rs",
        "identity_rp",
        "identity_spa",
    ] {
        let out = pg.psql(&format!(
            "SELECT count(*), min(version), max(version) FROM {schema}.schema_migrations"
        ));
        assert_eq!(out.trim(), "1|1|1", "{schema}: {out}");
    }
    let client = p.client();
    let r = client
        .get(&format!("{}/admin/v1/audit/verify", end["kms"].admin))
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    p.sigterm();
    tokio::task::block_in_place(|| p.wait_exit(Duration::from_secs(20)));
}
