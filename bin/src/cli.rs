//! The command line: `cryptoutil [--data-dir DIR] [--config FILE] <command>`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cryptoutil_actors::ServiceName;

use crate::config::{self, Flags, Loaded};
use crate::run::{self, Options};
use crate::{client, pki, telemetry, EXIT_CONFIG};

/// cryptoutil: KMS, Identity, CA and JOSE services.
#[derive(Debug, Parser)]
#[command(name = "cryptoutil", version, about)]
pub struct Cli {
    /// Data directory: stores, TLS trust anchor, endpoints.json.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// YAML configuration layered over the embedded defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// All eight services in one process: the embedded default.
    Suite,
    /// One service alone.
    Serve {
        /// kms, jose, ca, identity-authz, identity-idp, identity-rs, identity-rp or identity-spa.
        service: String,
    },
    /// Exit 0 if URL answers 2xx over TLS 1.3, else 1 (for container health checks).
    Healthcheck {
        /// For example https://127.0.0.1:9090/admin/v1/livez.
        url: String,
        /// PEM trust anchor (default: <data-dir>/tls/ca.pem).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        /// GET (default) or POST (an empty JSON object, `application/json`).
        #[arg(long, default_value = "GET")]
        method: String,
        /// File holding the admin token (`admin.token`) to send as `Authorization: Bearer`
        /// (default: the configured `admin.token`, sent to loopback addresses only).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Print the live actor tree of a running service, read from its admin listener.
    Supervision {
        /// Which service's admin listener to ask (from <data-dir>/endpoints.json).
        #[arg(long)]
        service: Option<String>,
        /// Admin base URL, instead of endpoints.json.
        #[arg(long)]
        url: Option<String>,
        /// PEM trust anchor (default: <data-dir>/tls/ca.pem).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Print JSON instead of the indented tree.
        #[arg(long)]
        json: bool,
        /// File holding the admin token (`admin.token`) to send as `Authorization: Bearer`
        /// (default: the configured `admin.token`, sent to loopback addresses only).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Configuration tools.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Unseal share tools.
    Unseal {
        /// What to do.
        #[command(subcommand)]
        action: UnsealAction,
    },
    /// PKI tools for deployments that bring their own certificates (`tls.mode: static`).
    Pki {
        /// What to do.
        #[command(subcommand)]
        action: PkiAction,
    },
}

/// `cryptoutil pki ...`.
#[derive(Debug, Subcommand)]
pub enum PkiAction {
    /// A new suite CA (root and intermediate) and one TLS leaf per name, for services that
    /// reach each other by those names (Docker Compose service names): `suite-ca.pem` (the trust
    /// anchor), `<name>.pem` (leaf and intermediate) and `<name>.key` (0600) in OUT. Existing
    /// files are never overwritten.
    Issue {
        /// Directory for the files.
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated names; each leaf carries its name, `localhost` and 127.0.0.1.
        #[arg(long, value_delimiter = ',', required = true)]
        names: Vec<String>,
    },
    /// A client's `private_key_jwt` key (ES256): `<name>.jwk` (the private JWK, 0600, for the
    /// client: `identity.reference.rp_key`) and `<name>.pub.jwk` (its public JWK Set, for
    /// identity-authz: `identity.reference_clients[].jwks`) in OUT. Existing files are never
    /// overwritten.
    ClientKey {
        /// Directory for the files.
        #[arg(long)]
        out: PathBuf,
        /// The files' name (the client id, say).
        #[arg(long)]
        name: String,
    },
}

/// `cryptoutil config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the merged configuration with secrets redacted; exit 64 if it is invalid.
    Check,
}

/// `cryptoutil unseal ...`.
#[derive(Debug, Subcommand)]
pub enum UnsealAction {
    /// Generate a new unseal key split into N share files, any M of which unseal.
    Generate {
        /// M: shares needed to unseal.
        #[arg(long)]
        threshold: u8,
        /// N: shares written.
        #[arg(long)]
        shares: u8,
        /// Directory for share-<i>.txt files (mode 0600; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    cryptoutil_protocols::duration::parse(s).map_err(|e| e.to_string())
}

/// Runs the parsed command line; returns the process exit status.
pub fn main(cli: Cli) -> ExitCode {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match config::load(
        cli.config.as_deref(),
        &env,
        &Flags {
            data_dir: cli.data_dir.clone(),
        },
    ) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("cryptoutil: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            print!("{}", loaded.render_redacted());
            ExitCode::SUCCESS
        }
        Command::Suite => serve(loaded, ServiceName::ALL.to_vec()),
        Command::Serve { service } => match ServiceName::parse(&service) {
            Some(s) => serve(loaded, vec![s]),
            None => {
                eprintln!(
                    "cryptoutil: unknown service {service:?}; one of: {}",
                    names()
                );
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Healthcheck {
            url,
            ca_file,
            timeout,
            method,
            token_file,
        } => {
            let ca = ca_file.unwrap_or_else(|| pki::anchor_path(&loaded.config.data_dir));
            let token = match client::admin_token(&loaded.config, token_file.as_deref(), &url) {
                Ok(token) => token,
                Err(err) => {
                    eprintln!("cryptoutil: healthcheck: {err:#}");
                    return ExitCode::FAILURE;
                }
            };
            match block_on(client::healthcheck(&url, &ca, timeout, &method, &token)) {
                Ok(Ok(true)) => ExitCode::SUCCESS,
                Ok(Ok(false)) => ExitCode::FAILURE,
                Ok(Err(err)) | Err(err) => {
                    eprintln!("cryptoutil: healthcheck {url}: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Supervision {
            service,
            url,
            ca_file,
            json,
            token_file,
        } => {
            let ca = ca_file.unwrap_or_else(|| pki::anchor_path(&loaded.config.data_dir));
            let target = (service, url);
            match block_on(print_supervision(&loaded, target, &ca, json, token_file)) {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(err)) | Err(err) => {
                    eprintln!("cryptoutil: supervision: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Pki {
            action: PkiAction::Issue { out, names },
        } => written("pki issue", pki::issue_suite_files(&out, &names)),
        Command::Pki {
            action: PkiAction::ClientKey { out, name },
        } => written("pki client-key", pki::client_key_files(&out, &name)),
        Command::Unseal {
            action:
                UnsealAction::Generate {
                    threshold,
                    shares,
                    out,
                },
        } => {
            match cryptoutil_storage::unseal::generate_share_files(&out, "share", threshold, shares)
            {
                Ok(paths) => {
                    for p in paths {
                        println!("{}", p.display());
                    }
                    eprintln!("cryptoutil: wrote {shares} shares; any {threshold} of them unseal. Distribute them to different custodians.");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("cryptoutil: {err}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
    }
}

/// The files a `pki` command wrote, one path a line, or why it wrote none.
fn written(command: &str, result: anyhow::Result<Vec<PathBuf>>) -> ExitCode {
    match result {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cryptoutil: {command}: {err:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn names() -> String {
    ServiceName::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn print_supervision(
    loaded: &Loaded,
    (service, url): (Option<String>, Option<String>),
    ca: &std::path::Path,
    json: bool,
    token_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let admin = match url {
        Some(url) => url,
        None => {
            let endpoints = client::endpoints(&loaded.config.data_dir)?;
            let entry = match &service {
                Some(name) => endpoints
                    .get(name)
                    .ok_or_else(|| anyhow::anyhow!("no service {name} in endpoints.json"))?,
                None => endpoints
                    .values()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("endpoints.json lists no service"))?,
            };
            entry.admin.clone()
        }
    };
    let token = client::admin_token(&loaded.config, token_file.as_deref(), &admin)?;
    let tree = client::supervision(&admin, ca, &token).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tree)?);
    } else {
        print!("{}", tree.render());
    }
    Ok(())
}

fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

fn serve(loaded: Loaded, services: Vec<ServiceName>) -> ExitCode {
    telemetry::init(&loaded.config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cryptoutil: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Listen before starting: a SIGTERM that comes as soon as endpoints.json exists must
        // drain the services, not kill the process with the signal's default action.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let stop = Arc::new(tokio::sync::watch::channel(false).0);
        let signalled = Arc::clone(&stop);
        tokio::spawn(async move {
            wait_for_signal(term).await;
            tracing::info!("signal received");
            signalled.send_replace(true);
        });
        let mut config = loaded.config;
        // Without enough unseal shares the process starts sealed and waits for an operator's.
        let unseal =
            match cryptoutil_storage::unseal::load(&config.barrier.unseal, &config.data_dir)? {
                cryptoutil_storage::unseal::Loaded::Key(..) => None,
                cryptoutil_storage::unseal::Loaded::Sealed(initial) => {
                    cryptoutil_storage::unseal::create_private_dir(&config.data_dir)?;
                    let shares = Arc::new(crate::sealed::Shares::new(
                        initial,
                        crate::sealed::store_files(&config, &services),
                    )?);
                    let metrics = run::metrics_handle();
                    match crate::sealed::serve(&mut config, &services, shares, &stop, metrics)
                        .await?
                    {
                        Some(key) => Some(key),
                        None => {
                            tracing::info!("stopped while sealed");
                            return Ok(());
                        }
                    }
                }
            };
        let running = run::start(Options {
            services,
            config,
            unseal,
        })
        .await?;
        let trigger = running.shutdown_trigger();
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
            trigger.send_replace(true);
        });
        running.wait().await
    });
    // Do not wait for stray blocking tasks beyond the grace period.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("cryptoutil: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (on the listener made before startup) or ctrl-c.
async fn wait_for_signal(term: Option<tokio::signal::unix::Signal>) {
    match term {
        Some(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
