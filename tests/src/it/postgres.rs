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
