//! PostgreSQL: the backend that replicas of a service share (`storage.backend: postgres`).
//!
//! Each store is one PostgreSQL schema, named after its service (`kms`, `identity_authz`),
//! holding one table, `records (tbl, key, value)`, whose primary key `(tbl, key)` orders keys
//! bytewise as redb does. PostgreSQL only ever sees what the barrier above has sealed.
//!
//! - **Migrations** are versioned ([`MIGRATIONS`]) and applied at open, each start, in one
//!   transaction under an advisory lock: replicas starting together apply them once, and a
//!   process killed mid-migration leaves nothing half-applied (the next start applies it
//!   again). A schema newer than this binary is refused ([`Error::SchemaTooNew`]).
//! - **TLS** is required, TLS 1.3 only, the server's certificate verified against the
//!   configured anchors and its name against the host ([`tls`]).
//! - **Connections**: a small pool per store, its statements prepared once per connection;
//!   `apply` is one transaction whose writes are pipelined.
//! - **Calls** are synchronous, like every [`Backend`]: the work runs on a runtime of this
//!   module's own, and the caller waits for at most `connect_timeout + statement_timeout`,
//!   after which the call fails with [`Error::Unavailable`] (and the database cancels the
//!   statement at `statement_timeout` on its side). A commit whose answer is lost is
//!   reported as unavailable although it may have been applied: writes that must happen once
//!   are `Create`s, which a retry finds already there.

mod tls;

use std::future::Future;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};
use zeroize::Zeroizing;

use crate::backend::{Backend, Entries, Entry, Write};
use crate::error::Error;
use crate::tables::Table;

/// The schema versions this binary knows, in order: `(version, name, SQL)`; `{schema}` in the
/// SQL is the store's schema. Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "records",
    "CREATE TABLE {schema}.records (
         tbl text NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tbl, key)
     )",
)];

/// How to reach the database (`storage.postgres` in the configuration).
#[derive(Clone)]
pub struct PgOptions {
    /// `postgresql://user:password@host:port/database` (or libpq's `key=value` form).
    pub url: Zeroizing<String>,
    /// PEM certificates the server's certificate must chain to.
    pub trust_anchors_pem: String,
    /// A client certificate chain (PEM, leaf first) and its private key (PEM), presented when
    /// the server asks for one (`hostssl ... cert` in pg_hba.conf).
    pub client_cert: Option<(String, Zeroizing<String>)>,
    /// Connections per store at most.
    pub pool_size: usize,
    /// How long connecting (TCP, TLS, authentication) may take.
    pub connect_timeout: Duration,
    /// How long one statement may run on the server; also bounds each call with
    /// `connect_timeout`.
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// A store in a PostgreSQL schema.
pub struct PostgresBackend {
    pool: Arc<Pool>,
    deadline: Duration,
    name: String,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.name)
            .finish()
    }
}

impl PostgresBackend {
    /// Connects, applies the migrations `schema` lacks, and returns the store's backend.
    /// `schema` is the store's own: lowercase ASCII letters, digits and `_`, at most 63 bytes,
    /// not starting with a digit or `pg_`.
    pub fn open(options: &PgOptions, schema: &str) -> Result<Self, Error> {
        let schema_ok = !schema.is_empty()
            && schema.len() <= 63
            && !schema.starts_with("pg_")
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !schema_ok {
            return Err(config_error(format!(
                "schema name {schema:?} is not lowercase letters, digits and _"
            )));
        }
        let config = client_config(options)?;
        let tls = tls::MakeRustls(tls_config(options)?);
        let deadline = options.connect_timeout + options.statement_timeout;
        let pool = Arc::new(Pool {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(options.pool_size.max(1))),
            sql: Sql::new(schema),
            schema: schema.to_owned(),
        });
        let backend = Self {
            pool,
            deadline,
            name: schema.to_owned(),
        };
        let pool = Arc::clone(&backend.pool);
        let version = backend.run("migrate", async move { pool.migrate().await })?;
        tracing::info!(schema, version, "postgres store open");
        Ok(backend)
    }

    /// The store's schema.
    pub fn schema(&self) -> &str {
        &self.name
    }

    /// The schema version the database is at (the greatest applied migration).
    pub fn schema_version(&self) -> Result<i32, Error> {
        let pool = Arc::clone(&self.pool);
        self.run("schema version", async move {
            let lease = pool.lease().await?;
            let sql = format!(
                "SELECT coalesce(max(version), 0) FROM {}.schema_migrations",
                pool.sql.schema
            );
            let row = lease
                .conn
                .client
                .query_one(&sql, &[])
                .await
                .map_err(pg("schema version"))?;
            let version: i32 = row.try_get(0).map_err(pg("schema version"))?;
            pool.give_back(lease);
            Ok(version)
        })
    }

    /// Runs `work` on this module's runtime and waits for it, at most the call deadline.
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let deadline = self.deadline;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime()?.spawn(async move {
            let out = tokio::time::timeout(deadline, work)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Unavailable {
                        op,
                        reason: format!("no answer within {} ms", deadline.as_millis()),
                    })
                });
            let _ = tx.send(out);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(Error::Unavailable {
                op,
                reason: "the database task ended without an answer".into(),
            })
        })
    }
}

impl Backend for PostgresBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let pool = Arc::clone(&self.pool);
        let key = key.to_vec();
        self.run("get", async move {
            let lease = pool.lease().await?;
            let c = &lease.conn;
            let row = c
                .client
                .query_opt(&c.get, &[&table.name(), &key])
                .await
                .map_err(pg("get"))?;
            let value = row
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(pg("get"))?;
            pool.give_back(lease);
            Ok(value)
        })
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, Error> {
        let pool = Arc::clone(&self.pool);
        let prefix = prefix.to_vec();
        self.run("scan", async move {
            let lease = pool.lease().await?;
            let c = &lease.conn;
            let rows = match prefix_end(&prefix) {
                Some(end) => {
                    c.client
                        .query(&c.scan_to, &[&table.name(), &prefix, &end])
                        .await
                }
                None => c.client.query(&c.scan, &[&table.name(), &prefix]).await,
            }
            .map_err(pg("scan"))?;
            let entries = pairs(rows)?;
            pool.give_back(lease);
            Ok(entries)
        })
    }

    fn range(&self, table: Table, from: &[u8], limit: usize) -> Result<Entries, Error> {
        let pool = Arc::clone(&self.pool);
        let from = from.to_vec();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("range", async move {
            let lease = pool.lease().await?;
            let c = &lease.conn;
            let rows = c
                .client
                .query(&c.range, &[&table.name(), &from, &limit])
                .await
                .map_err(pg("range"))?;
            let entries = pairs(rows)?;
            pool.give_back(lease);
            Ok(entries)
        })
    }

    fn last(&self, table: Table) -> Result<Option<Entry>, Error> {
        let pool = Arc::clone(&self.pool);
        self.run("last", async move {
            let lease = pool.lease().await?;
            let c = &lease.conn;
            let rows = c
                .client
                .query(&c.last, &[&table.name()])
                .await
                .map_err(pg("last"))?;
            let entry = pairs(rows)?.into_iter().next();
            pool.give_back(lease);
            Ok(entry)
        })
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        let pool = Arc::clone(&self.pool);
        self.run("apply", async move {
            let mut lease = pool.lease().await?;
            let outcome = apply_in(&mut lease.conn, &writes).await;
            // A transaction dropped uncommitted rolls back before the connection's next
            // statement, so the connection goes back to the pool either way.
            pool.give_back(lease);
            outcome
        })
    }

    /// One transaction that first takes a transaction-scoped advisory lock named after the
    /// schema and `table` (every replica appending to that table waits its turn), reads the
    /// last pair, hands it to `build` on the caller's thread, and writes what comes back.
    fn apply_after_last(
        &self,
        table: Table,
        build: &mut dyn FnMut(Option<Entry>) -> Result<Vec<Write>, Error>,
    ) -> Result<(), Error> {
        let pool = Arc::clone(&self.pool);
        let lock = format!("{}.{}", self.schema(), table.name());
        let (last_tx, last_rx) = std::sync::mpsc::sync_channel::<Option<Entry>>(1);
        let (writes_tx, writes_rx) = tokio::sync::oneshot::channel::<Vec<Write>>();
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let deadline = self.deadline;
        runtime()?.spawn(async move {
            let work = async {
                let mut lease = pool.lease().await?;
                let outcome = async {
                    let c = &mut lease.conn;
                    let tx = c.client.transaction().await.map_err(pg("begin"))?;
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtext($1)::bigint)",
                        &[&lock],
                    )
                    .await
                    .map_err(pg("lock"))?;
                    let rows = tx
                        .query(&c.last, &[&table.name()])
                        .await
                        .map_err(pg("last"))?;
                    let last = pairs(rows)?.into_iter().next();
                    last_tx.send(last).map_err(|_| Error::Unavailable {
                        op: "append",
                        reason: "the caller stopped waiting".into(),
                    })?;
                    // The caller's `build` failing drops the sender: nothing is written.
                    let Ok(writes) = writes_rx.await else {
                        return Ok(());
                    };
                    write_in(&tx, (&c.put, &c.create, &c.delete), &writes).await?;
                    tx.commit().await.map_err(pg("commit"))
                }
                .await;
                pool.give_back(lease);
                outcome
            };
            let out = tokio::time::timeout(deadline, work)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Unavailable {
                        op: "append",
                        reason: format!("no answer within {} ms", deadline.as_millis()),
                    })
                });
            let _ = done_tx.send(out);
        });
        let ended = || {
            done_rx.recv().unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    op: "append",
                    reason: "the database task ended without an answer".into(),
                })
            })
        };
        let Ok(last) = last_rx.recv() else {
            // The task failed before it read the last pair: its error.
            return ended();
        };
        let writes = build(last)?;
        let _ = writes_tx.send(writes);
        ended()
    }
}

/// One transaction: every write sent at once (pipelined, in order), then checked, then
/// committed; a `Create` that found its key rolls the whole batch back.
async fn apply_in(conn: &mut Conn, writes: &[Write]) -> Result<(), Error> {
    let tx = conn.client.transaction().await.map_err(pg("begin"))?;
    write_in(&tx, (&conn.put, &conn.create, &conn.delete), writes).await?;
    tx.commit().await.map_err(pg("commit"))
}

/// `writes` in transaction `tx` (pipelined, in order), then checked: a `Create` that found its
/// key is `Error::Exists` (the caller drops `tx`, which rolls it back).
async fn write_in(
    tx: &tokio_postgres::Transaction<'_>,
    (put, create, delete): (&Statement, &Statement, &Statement),
    writes: &[Write],
) -> Result<(), Error> {
    let sent = writes.iter().map(|w| async move {
        match w {
            Write::Put { table, key, value } => {
                tx.execute(put, &[&table.name(), key, value]).await?;
                Ok(None)
            }
            Write::Create { table, key, value } => {
                let rows = tx.execute(create, &[&table.name(), key, value]).await?;
                Ok((rows == 0).then_some((*table, key)))
            }
            Write::Delete { table, key } => {
                tx.execute(delete, &[&table.name(), key]).await?;
                Ok(None)
            }
        }
    });
    let results: Vec<Option<(Table, &Vec<u8>)>> = futures_util::future::try_join_all(sent)
        .await
        .map_err(pg("write"))?;
    if let Some((table, key)) = results.into_iter().flatten().next() {
        return Err(Error::Exists {
            table: table.name(),
            key_hint: crate::error::key_hint(key),
        });
    }
    Ok(())
}

/// The smallest key greater than every key starting with `prefix`; `None` when there is
/// none (an empty prefix, or one of 0xff bytes only).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn pairs(rows: Vec<tokio_postgres::Row>) -> Result<Entries, Error> {
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read row"))
}

/// The statements' text for one schema.
struct Sql {
    schema: String,
    get: String,
    scan: String,
    scan_to: String,
    range: String,
    last: String,
    put: String,
    create: String,
    delete: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let t = format!("\"{schema}\".records");
        Self {
            schema: format!("\"{schema}\""),
            get: format!("SELECT value FROM {t} WHERE tbl = $1 AND key = $2"),
            scan: format!("SELECT key, value FROM {t} WHERE tbl = $1 AND key >= $2 ORDER BY key"),
            scan_to: format!(
                "SELECT key, value FROM {t} WHERE tbl = $1 AND key >= $2 AND key < $3 ORDER BY key"
            ),
            range: format!(
                "SELECT key, value FROM {t} WHERE tbl = $1 AND key >= $2 ORDER BY key LIMIT $3"
            ),
            last: format!("SELECT key, value FROM {t} WHERE tbl = $1 ORDER BY key DESC LIMIT 1"),
            put: format!(
                "INSERT INTO {t} (tbl, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value"
            ),
            create: format!(
                "INSERT INTO {t} (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            ),
            delete: format!("DELETE FROM {t} WHERE tbl = $1 AND key = $2"),
        }
    }
}

/// A connection with its statements prepared.
struct Conn {
    client: Client,
    get: Statement,
    scan: Statement,
    scan_to: Statement,
    range: Statement,
    last: Statement,
    put: Statement,
    create: Statement,
    delete: Statement,
}

/// A connection lent out, with the permit that counts it against the pool's size.
struct Lease {
    conn: Conn,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

struct Pool {
    config: tokio_postgres::Config,
    tls: tls::MakeRustls,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<tokio::sync::Semaphore>,
    sql: Sql,
    schema: String,
}

impl Pool {
    /// An idle connection, or a new one once fewer than `pool_size` are out.
    async fn lease(&self) -> Result<Lease, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable {
                op: "connect",
                reason: "the pool is closed".into(),
            })?;
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(conn) if !conn.client.is_closed() => {
                    return Ok(Lease {
                        conn,
                        _permit: permit,
                    })
                }
                Some(_closed) => continue,
                None => break,
            }
        }
        let client = self.connect().await?;
        let s = &self.sql;
        let texts = [
            &s.get, &s.scan, &s.scan_to, &s.range, &s.last, &s.put, &s.create, &s.delete,
        ];
        let prepared = futures_util::future::try_join_all(texts.map(|sql| client.prepare(sql)))
            .await
            .map_err(pg("prepare"))?;
        let [get, scan, scan_to, range, last, put, create, delete]: [Statement; 8] =
            prepared.try_into().map_err(|_| Error::Unavailable {
                op: "prepare",
                reason: "the server prepared fewer statements than asked".into(),
            })?;
        Ok(Lease {
            conn: Conn {
                client,
                get,
                scan,
                scan_to,
                range,
                last,
                put,
                create,
                delete,
            },
            _permit: permit,
        })
    }

    /// Keeps a connection that is still open for the next call.
    fn give_back(&self, lease: Lease) {
        if !lease.conn.client.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(lease.conn);
        }
    }

    /// A new connection, its I/O driven by a task of this runtime.
    async fn connect(&self) -> Result<Client, Error> {
        let (client, connection) =
            self.config
                .connect(self.tls.clone())
                .await
                .map_err(|e| match e.code() {
                    Some(_) => Error::Postgres {
                        op: "connect",
                        source: e,
                    },
                    None => Error::Unavailable {
                        op: "connect",
                        reason: error_chain(&e),
                    },
                })?;
        let schema = self.schema.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(schema, error = %error_chain(&e), "postgres connection ended");
            }
        });
        Ok(client)
    }

    /// Applies the migrations the schema lacks, in one transaction under an advisory lock;
    /// returns the version the schema is at.
    async fn migrate(&self) -> Result<i32, Error> {
        let mut client = self.connect().await?;
        let s = &self.sql.schema;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1)::bigint)",
            &[&format!("cryptoutil migrate {}", self.schema)],
        )
        .await
        .map_err(pg("migration lock"))?;
        // Created only when missing: a role granted nothing but reads and writes on a schema
        // an owner migrated opens it too.
        let known: bool = tx
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{s}.schema_migrations")],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg("migration table"))?;
        if !known {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE {s}.schema_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )"
            ))
            .await
            .map_err(pg("migration table"))?;
        }
        let found: i32 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {s}.schema_migrations"),
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg("schema version"))?;
        let supported = MIGRATIONS.last().map_or(0, |m| m.0);
        if found > supported {
            return Err(Error::SchemaTooNew {
                schema: self.schema.clone(),
                found,
                supported,
            });
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
            tx.batch_execute(&sql.replace("{schema}", s))
                .await
                .map_err(pg("migration"))?;
            tx.execute(
                &format!("INSERT INTO {s}.schema_migrations (version, name) VALUES ($1, $2)"),
                &[version, name],
            )
            .await
            .map_err(pg("migration"))?;
            tracing::info!(
                schema = self.schema,
                version,
                name,
                "schema migration applied"
            );
        }
        tx.commit().await.map_err(pg("migration commit"))?;
        Ok(found.max(supported))
    }
}

/// The driver's configuration from the URL, with what this module insists on: TLS required
/// over TCP, the timeouts, keepalives that notice a vanished server.
fn client_config(options: &PgOptions) -> Result<tokio_postgres::Config, Error> {
    // The parser's messages name the offending option, never its value (the password).
    let mut config = tokio_postgres::Config::from_str(&options.url)
        .map_err(|e| config_error(format!("url: {e}")))?;
    if config.get_hosts().is_empty() {
        return Err(config_error("url: no host".into()));
    }
    if config
        .get_hosts()
        .iter()
        .any(|h| !matches!(h, Host::Tcp(_)))
    {
        return Err(config_error(
            "url: a Unix socket carries no TLS; name the server's host".into(),
        ));
    }
    let timeout_ms = options.statement_timeout.as_millis().max(1);
    config
        .ssl_mode(SslMode::Require)
        .connect_timeout(options.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(options.connect_timeout + options.statement_timeout)
        .application_name("cryptoutil")
        .options(format!("-c statement_timeout={timeout_ms}"));
    Ok(config)
}

/// The suite's client TLS policy with the configured anchors (and client certificate).
fn tls_config(options: &PgOptions) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let roots = cryptoutil_protocols::tls::roots_from_pem(&options.trust_anchors_pem)
        .map_err(|e| config_error(format!("trust_anchors: {e}")))?;
    let builder =
        rustls::ClientConfig::builder_with_provider(cryptoutil_protocols::tls::provider())
            .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)
            .map_err(|e| config_error(format!("TLS: {e}")))?
            .with_root_certificates(Arc::unwrap_or_clone(roots));
    let config = match &options.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| config_error(format!("client_cert_chain: {e}")))?;
            if chain.is_empty() {
                return Err(config_error(
                    "client_cert_chain: no certificate in the PEM".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| config_error(format!("client_key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error(format!("client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

/// The runtime every PostgreSQL connection of the process lives on (two threads; never
/// dropped, so a store may be dropped anywhere, inside an async task too).
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("postgres")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Unavailable {
            op: "start",
            reason: format!("the postgres runtime: {e}"),
        })
}

fn config_error(reason: String) -> Error {
    Error::PostgresConfig { reason }
}

/// Maps a driver error: a connection that failed or went away, a statement cancelled by its
/// timeout, a server shutting down or out of resources are [`Error::Unavailable`] (try
/// again later); anything else the server said is [`Error::Postgres`].
fn pg(op: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| {
        let transient = match e.code() {
            None => true,
            Some(code) => {
                let class = code.code().get(..2).unwrap_or("");
                *code == SqlState::QUERY_CANCELED
                    || matches!(class, "08" | "53" | "57" | "58")
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            }
        };
        if transient {
            Error::Unavailable {
                op,
                reason: error_chain(&e),
            }
        } else {
            Error::Postgres { op, source: e }
        }
    }
}

/// The error and its causes on one line (the driver's top-level message is often just
/// "error connecting to server").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
