//! The integration test harness: start the real `run::start` in-process on 127.0.0.1 with a
//! temporary data directory, or the real `cryptoutil` binary as a child process, and talk to it
//! over TLS 1.3 like any client.
//!
//! All tests live in one binary: `src/it/mod.rs` declares the modules.
//!
//! # Layout
//! - [`TestApp`]: in-process services and a client that trusts their anchor.
//! - [`Process`]: the `cryptoutil` binary as a child process.
//! - [`fake_peer`]: a controllable HTTPS peer on 127.0.0.1 (answer, fail, hang, slow, reset).
//! - [`fault_proxy`]: a TCP fault proxy (delay, reset, blackhole, bandwidth, refuse).
//! - [`http01`]: an ACME http-01 responder (the ACME test and `acme_bench`).
//! - [`pg`]: a throwaway PostgreSQL cluster with TLS (the postgres backend's tests).
//! - [`browser`]: sign-ins through identity-idp's pages without a browser (`signin_bench`, `soak`).
//! - `it/`: the tests.

// This crate is test support: a panic is how a test fails, so the workspace's no-panic lints
// are relaxed here and only here.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use cryptoutil_actors::ServiceName;
use cryptoutil_bin::config::{self, Flags};
use cryptoutil_bin::run::{self, Endpoint, Options, Running};
use cryptoutil_federation::{tls, HttpsClient};

pub mod bench;
pub mod browser;
pub mod fake_peer;
pub mod fault_proxy;
pub mod http01;
#[cfg(test)]
mod it;
pub mod pg;

/// A port free on 127.0.0.1 now (bound and released; for a server a test starts later),
/// chosen below the kernel's ephemeral range (32768 and up on Linux): servers bound to port 0
/// and outgoing connections take ephemeral ports, so one of them cannot take this port in
/// the time between its release and the later bind, as an ephemeral pick allowed.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    for _ in 0..1000 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = 20_000 + (hasher.finish() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range on 127.0.0.1")
}

/// Services started in-process (their stores in redb, or in PostgreSQL with
/// `CRYPTOUTIL_TEST_BACKEND=postgres`: see [`pg`]).
pub struct TestApp {
    /// URLs per service.
    pub endpoints: BTreeMap<ServiceName, Endpoint>,
    /// A client trusting the app's anchor.
    pub client: HttpsClient,
    /// The data directory.
    pub data_dir: PathBuf,
    running: Option<Running>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestApp {
    /// All eight services with configuration `vars` (as `CRYPTOUTIL_*` pairs) in a new data dir.
    pub async fn suite(vars: &[(&str, &str)]) -> Self {
        Self::start(ServiceName::ALL.to_vec(), vars, None).await
    }

    /// `services` with `vars`, in `data_dir` or a new temporary one.
    pub async fn start(
        services: Vec<ServiceName>,
        vars: &[(&str, &str)],
        data_dir: Option<&Path>,
    ) -> Self {
        let tmp = match data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temporary directory")),
        };
        let dir = data_dir
            .map(Path::to_owned)
            .or_else(|| tmp.as_ref().map(|t| t.path().join("data")))
            .expect("a dir");
        let mut env: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // CRYPTOUTIL_TEST_BACKEND=postgres: the stores go into this process's cluster, in a
        // database of this data directory's own (unless the test chose a store itself).
        if pg::requested()
            && !env
                .iter()
                .any(|(k, _)| k.starts_with("CRYPTOUTIL_STORAGE__"))
        {
            let dir = dir.clone();
            let pg_vars = tokio::task::spawn_blocking(move || pg::shared().vars_for(&dir))
                .await
                .expect("the test cluster");
            env.extend(pg_vars);
        }
        let loaded = config::load(
            None,
            &env,
            &Flags {
                data_dir: Some(dir.clone()),
            },
        )
        .expect("valid test configuration");
        let running = run::start(Options {
            services,
            config: loaded.config,
            unseal: None,
        })
        .await
        .expect("services start");
        let client = HttpsClient::new(
            tls::client_config_from_pem(running.anchor_pem.as_bytes()).expect("anchor"),
        )
        .with_timeout(Duration::from_secs(10));
        Self {
            endpoints: running.endpoints.clone(),
            client,
            data_dir: dir,
            running: Some(running),
            _tmp: tmp,
        }
    }

    /// Public base URL of `service`.
    pub fn public(&self, service: ServiceName) -> &str {
        &self.endpoints[&service].public
    }

    /// Admin base URL of `service`.
    pub fn admin(&self, service: ServiceName) -> &str {
        &self.endpoints[&service].admin
    }

    /// The Prometheus text of `service`'s admin listener.
    pub async fn admin_metrics(&self, service: ServiceName) -> String {
        let url = format!("{}/admin/v1/metrics", self.admin(service));
        let r = self.client.get(&url).await.expect("metrics");
        assert_eq!(r.status, 200, "{url}");
        r.text()
    }

    /// Shuts down gracefully and waits.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
            running.wait().await.expect("clean shutdown");
        }
    }
}

/// The `cryptoutil` binary next to this test binary (`cargo build --bin cryptoutil` first; the
/// README's test command does).
pub fn bin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("cryptoutil");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bin cryptoutil` before the tests",
        bin.display()
    );
    bin
}

/// The binary as a child process with its own data directory.
pub struct Process {
    /// The child.
    pub child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Captured stdout+stderr file.
    pub log: PathBuf,
}

impl Process {
    /// Runs `cryptoutil --data-dir <dir> <args>` with extra `env`, output to a log file.
    pub fn spawn(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir.parent().unwrap_or(data_dir)).expect("parent dir");
        // A process killed with -9 leaves its endpoints.json: never mistake it for this one's.
        let _ = std::fs::remove_file(cryptoutil_bin::run::endpoints_path(data_dir));
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(bin_path());
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn cryptoutil");
        Self {
            child,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    /// Waits until `endpoints.json` appears (the process is ready), or panics after `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> BTreeMap<String, Endpoint> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(e) = cryptoutil_bin::client::endpoints(&self.data_dir) {
                return e;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "cryptoutil exited with {status} before ready:\n{}",
                    self.log_text()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not ready within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no drain, no flush, nothing the process could do about it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit, at most `timeout`; kills and panics after it.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "cryptoutil did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the process printed.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client trusting this process's anchor.
    pub fn client(&self) -> HttpsClient {
        let ca = cryptoutil_bin::pki::anchor_path(&self.data_dir);
        HttpsClient::new(tls::client_config_from_file(&ca).expect("anchor"))
            .with_timeout(Duration::from_secs(10))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin_path());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cryptoutil");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `probe` every 10 ms for at most `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
