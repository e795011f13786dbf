//! A throwaway PostgreSQL cluster for the tests: Debian's server binaries (`initdb`,
//! `pg_ctl`, `psql` under `/usr/lib/postgresql/<version>/bin`, or `$PG_BIN`), a data directory
//! in a temporary directory, a free port on 127.0.0.1, TLS 1.3 only with a server certificate
//! of a CA made here, `scram-sha-256` password authentication, and a second role that
//! authenticates with a client certificate of the same CA. As root (CI), the server runs as
//! the `postgres` user the Debian package creates: PostgreSQL refuses to run as root.
//!
//! Missing binaries fail the test with what to install; they are never a reason to skip.
//!
//! With `CRYPTOUTIL_TEST_BACKEND=postgres` ([`BACKEND_VAR`]), every [`crate::TestApp`] keeps
//! its stores in [`shared`], this test process's cluster, in a database of its own per data
//! directory (so a restart on the same directory finds its store). `scripts/test` runs the
//! KMS, Identity and CA suites a second time that way.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cryptoutil_storage::PgOptions;
use zeroize::Zeroizing;

/// The role the stores connect as (a password), and the one that presents a certificate.
pub const USER: &str = "cryptoutil";
/// The role that authenticates with a client certificate.
pub const CERT_USER: &str = "cryptoutil_cert";

/// A running cluster, stopped (immediately) when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA of the server's (and the client's) certificate, PEM.
    pub ca_pem: String,
    /// `CERT_USER`'s certificate chain and key, PEM.
    pub client_cert: (String, String),
    password: String,
    /// The user the server runs as when the tests run as root.
    owner: Option<(u32, u32)>,
    /// The databases [`Cluster::vars_for`] made.
    databases: Mutex<Vec<String>>,
}

/// The variable that puts every [`crate::TestApp`]'s stores in PostgreSQL: `postgres`, or
/// `redb` (the default).
pub const BACKEND_VAR: &str = "CRYPTOUTIL_TEST_BACKEND";

/// Whether [`BACKEND_VAR`] asks for PostgreSQL; any value but `redb` and `postgres` fails.
pub fn requested() -> bool {
    match std::env::var(BACKEND_VAR) {
        Err(std::env::VarError::NotPresent) => false,
        Ok(v) if v == "redb" => false,
        Ok(v) if v == "postgres" => true,
        other => panic!("{BACKEND_VAR} must be redb or postgres, not {other:?}"),
    }
}

/// This test process's cluster, started on first use. A watcher process stops it and removes
/// its directory once this process has exited (a static is never dropped; a test that
/// panics or is killed leaves no server behind).
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.remove_after_exit();
        cluster
    })
}

impl Cluster {
    /// initdb, configure TLS, start, and wait until it accepts connections.
    pub fn start() -> Self {
        let bin = server_bin();
        let dir = tempfile::tempdir().expect("temporary directory");
        let owner = if std::fs::metadata("/proc/self").expect("/proc").uid() == 0 {
            Some(postgres_user())
        } else {
            None
        };
        let password = hex(&random::<16>());
        let pgdata = dir.path().join("pgdata");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let mut cluster = Self {
            dir,
            bin,
            port: crate::free_port(),
            ca_pem: String::new(),
            client_cert: (String::new(), String::new()),
            password,
            owner,
            databases: Mutex::new(Vec::new()),
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        std::fs::remove_file(&pwfile).unwrap();
        cluster.certificates(&pgdata);
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'ca.crt'\nssl_min_protocol_version = 'TLSv1.3'\n\
             max_connections = 200\nshared_buffers = 32MB\n",
            port = cluster.port,
            sock = cluster.dir.path().display(),
        );
        append(&pgdata.join("postgresql.conf"), &conf);
        // Password over TLS for USER, a client certificate for CERT_USER; nothing in clear.
        std::fs::write(
            pgdata.join("pg_hba.conf"),
            format!(
                "local all all trust\nhostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 hostssl all {USER} 127.0.0.1/32 scram-sha-256\n"
            ),
        )
        .unwrap();
        cluster.chown_tree(&pgdata);
        cluster.pg_ctl_start();
        cluster.psql_in("postgres", &format!("CREATE ROLE {CERT_USER} LOGIN"));
        cluster.psql_in("postgres", &format!("CREATE DATABASE stores OWNER {USER}"));
        cluster.psql(&format!("GRANT ALL ON DATABASE stores TO {CERT_USER}"));
        cluster
    }

    /// The URL of database `stores` for the password role.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{USER}:{}@127.0.0.1:{}/stores",
            self.password, self.port
        )
    }

    /// Storage options for the password role.
    pub fn options(&self) -> PgOptions {
        PgOptions {
            url: Zeroizing::new(self.url()),
            trust_anchors_pem: self.ca_pem.clone(),
            client_cert: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }

    /// `CRYPTOUTIL_*` variables that put every service's store in this cluster's database
    /// `stores` (the URL and the anchors as `file://` secrets in the cluster's directory).
    pub fn vars(&self) -> Vec<(String, String)> {
        self.vars_in("stores", &self.url())
    }

    /// `CRYPTOUTIL_*` variables for a database of `data_dir`'s own, made on first use: the
    /// same directory always gets the same database, another directory another one.
    pub fn vars_for(&self, data_dir: &Path) -> Vec<(String, String)> {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            data_dir.as_os_str().as_encoded_bytes(),
        );
        let name = format!("d_{}", &hex(digest.as_ref())[..24]);
        let mut made = self.databases.lock().unwrap();
        if !made.contains(&name) {
            self.psql_in("postgres", &format!("CREATE DATABASE {name} OWNER {USER}"));
            made.push(name.clone());
        }
        let url = format!(
            "postgresql://{USER}:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        );
        self.vars_in(&name, &url)
    }

    fn vars_in(&self, db: &str, url: &str) -> Vec<(String, String)> {
        let url_file = self.dir.path().join(format!("url-{db}.secret"));
        let ca = self.dir.path().join("ca.pem");
        std::fs::write(&url_file, url).unwrap();
        std::fs::write(&ca, &self.ca_pem).unwrap();
        vec![
            ("CRYPTOUTIL_STORAGE__BACKEND".into(), "postgres".into()),
            (
                "CRYPTOUTIL_STORAGE__POSTGRES__URL".into(),
                format!("file://{}", url_file.display()),
            ),
            (
                "CRYPTOUTIL_STORAGE__POSTGRES__TRUST_ANCHORS".into(),
                format!("file://{}", ca.display()),
            ),
            ("CRYPTOUTIL_STORAGE__POSTGRES__POOL_SIZE".into(), "4".into()),
        ]
    }

    /// Starts a watcher, in a process group of its own (out of reach of a signal to the
    /// test's group) and in the background of a shell that exits at once, that waits for
    /// this process to exit, then stops the server and removes the cluster's directory.
    fn remove_after_exit(&self) {
        use std::os::unix::process::CommandExt as _;
        let mut stop: Vec<String> = Vec::new();
        if self.owner.is_some() {
            stop.extend(["runuser", "-u", "postgres", "--"].map(String::from));
        }
        stop.push(self.bin.join("pg_ctl").display().to_string());
        stop.extend(["-D".into(), self.pgdata().display().to_string()]);
        stop.extend(["-m", "immediate", "stop"].map(String::from));
        Command::new("sh")
            .args([
                "-c",
                "pid=$1 dir=$2; shift 2; \
                 (while kill -0 \"$pid\" 2>/dev/null; do sleep 1; done; \
                 \"$@\"; rm -rf \"$dir\") &",
                "watcher",
                &std::process::id().to_string(),
                &self.dir.path().display().to_string(),
            ])
            .args(&stop)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .status()
            .expect("the cluster's watcher");
    }

    /// Runs SQL through `psql` on the local socket (as the superuser `USER`), in database
    /// `stores`; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("stores", sql)
    }

    /// Runs SQL through `psql` in database `db` (one transaction for the whole text).
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        self.run(
            "psql",
            &[
                "-h",
                self.dir.path().to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )
    }

    /// Stops the server now (`-m immediate`: as a crash would, no checkpoint).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.pgdata().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    fn pg_ctl_start(&self) {
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.pgdata().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// A CA, the server's certificate for 127.0.0.1 and localhost, and CERT_USER's.
    fn certificates(&mut self, pgdata: &Path) {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test PostgreSQL CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let issue = |names: Vec<String>, cn: &str, eku: rcgen::ExtendedKeyUsagePurpose| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.extended_key_usages = vec![eku];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = issue(
            vec!["127.0.0.1".into(), "localhost".into()],
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        self.client_cert = issue(
            Vec::new(),
            CERT_USER,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        self.ca_pem = ca_cert.pem();
        std::fs::write(pgdata.join("ca.crt"), &self.ca_pem).unwrap();
        std::fs::write(pgdata.join("server.crt"), server).unwrap();
        let key_path = pgdata.join("server.key");
        std::fs::write(&key_path, server_key).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn chown_tree(&self, path: &Path) {
        let Some((uid, gid)) = self.owner else {
            return;
        };
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                self.chown_tree(&entry.unwrap().path());
            }
        }
    }

    /// Runs a server program (as `postgres` when root); fails the test with its output.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let path = self.bin.join(program);
        let mut cmd = match self.owner {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed ({}):\n{text}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let pgdata = self.pgdata();
        let mut cmd = match self.owner {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let _ = cmd
            .args([
                "-D",
                pgdata.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// The directory of `initdb` and `pg_ctl`: `$PG_BIN`, else Debian's newest.
fn server_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): \
             apt-get install postgresql, or set PG_BIN"
        ),
    }
}

/// The uid and gid of the `postgres` user (Debian's package creates it).
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        assert!(
            out.status.success(),
            "running as root, the server needs the postgres user (apt-get install postgresql)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
