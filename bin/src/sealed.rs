//! Starting sealed (issue 20): a process whose configured unseal shares do not reach their
//! threshold (or with none and `barrier.unseal.dev_generate: false`) binds every listener it
//! will serve on and answers as [`cryptoutil_http::sealed`] describes, until an operator has
//! submitted enough shares to an admin listener. The rebuilt key is checked against every
//! store already on disk before it is accepted (shares of another key are refused, and
//! progress starts over); then the sealed listeners drain and the services start on the same
//! ports, in the same process.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use cryptoutil_actors::ServiceName;
use cryptoutil_http::admin::AdminGuard;
use cryptoutil_http::listener::Listener;
use cryptoutil_http::sealed::{SealedState, Unsealer};
use cryptoutil_protocols::unseal::{self, UnsealKey, UnsealShare};
use cryptoutil_storage::{Backend as _, PostgresBackend, Store, Table};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::AppConfig;
use crate::files;
use crate::run::{endpoints_path, store_at, Endpoint, StoreAt};

/// The shares submitted so far, and the key once they rebuild one that opens the stores.
pub struct Shares {
    state: Mutex<Progress>,
    /// The stores the key must open (those already there).
    stores: Vec<StoreAt>,
    /// Turns true once unsealed.
    done: watch::Sender<bool>,
}

struct Progress {
    shares: Vec<UnsealShare>,
    /// The key, until the services take it.
    key: Option<UnsealKey>,
    unsealed: bool,
}

impl Progress {
    fn status(&self) -> Value {
        json!({
            "sealed": !self.unsealed,
            "progress": self.shares.len(),
            "threshold": self.shares.first().map(UnsealShare::threshold),
        })
    }
}

impl Shares {
    /// Progress from the shares of the configuration; the key must open each of `stores` that
    /// exists.
    pub fn new(initial: Vec<UnsealShare>, stores: Vec<StoreAt>) -> anyhow::Result<Self> {
        let shares = Self {
            state: Mutex::new(Progress {
                shares: Vec::new(),
                key: None,
                unsealed: false,
            }),
            stores,
            done: watch::channel(false).0,
        };
        for share in initial {
            shares
                .add(share)
                .map_err(|why| anyhow::anyhow!("barrier.unseal.shares: {why}"))?;
        }
        Ok(shares)
    }

    /// Turns true once unsealed.
    pub fn unsealed(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    /// The key, once unsealed.
    pub fn take_key(&self) -> Option<UnsealKey> {
        self.lock().key.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, share: UnsealShare) -> Result<Value, String> {
        let mut st = self.lock();
        if st.unsealed {
            return Ok(st.status());
        }
        if let Some(first) = st.shares.first() {
            if share.set_id() != first.set_id() {
                return Err(format!(
                    "share {} belongs to another share set than the {} given so far",
                    share.index(),
                    st.shares.len()
                ));
            }
            if share.threshold() != first.threshold() || share.check() != first.check() {
                return Err(format!(
                    "share {} does not agree with the shares given so far (threshold or check \
                     value): it is damaged",
                    share.index()
                ));
            }
            if st.shares.iter().any(|s| s.index() == share.index()) {
                return Err(format!("share {} was already given", share.index()));
            }
        }
        st.shares.push(share);
        let need = st
            .shares
            .first()
            .map_or(usize::MAX, |s| usize::from(s.threshold()));
        if st.shares.len() < need {
            return Ok(st.status());
        }
        let given: Vec<u8> = st.shares.iter().map(UnsealShare::index).collect();
        let key = match unseal::combine(&st.shares) {
            Ok(key) => key,
            Err(e) => {
                st.shares.clear();
                return Err(format!(
                    "shares {given:?} do not rebuild their key ({e}): progress starts over"
                ));
            }
        };
        if let Err(why) = self.opens(&key) {
            st.shares.clear();
            return Err(format!("{why}: progress starts over"));
        }
        st.key = Some(key);
        st.unsealed = true;
        self.done.send_replace(true);
        tracing::info!(shares = ?given, "unsealed");
        Ok(st.status())
    }

    /// Whether `key` opens every store already there (a key of another split does not).
    fn opens(&self, key: &UnsealKey) -> Result<(), String> {
        for at in &self.stores {
            let (opened, name) = match at {
                StoreAt::File(path) if !path.exists() => continue,
                StoreAt::File(path) => (Store::open_redb(path, key), path.display().to_string()),
                StoreAt::Postgres { options, schema } => {
                    let name = format!("postgres schema {schema}");
                    let backend = PostgresBackend::open(options, schema)
                        .map_err(|e| format!("{name}: {e}"))?;
                    // A schema without a barrier is new: the key cannot be checked against it
                    // (and opening it would create one).
                    match backend.last(Table::Barrier) {
                        Ok(None) => continue,
                        Ok(Some(_)) => {}
                        Err(e) => return Err(format!("{name}: {e}")),
                    }
                    (Store::open(Box::new(backend), key, &name), name)
                }
            };
            match opened {
                Ok(_) => {}
                Err(cryptoutil_storage::Error::WrongUnsealKey { .. }) => {
                    return Err(format!(
                        "the shares rebuild a key that does not open {name}"
                    ))
                }
                Err(e) => return Err(format!("{name}: {e}")),
            }
        }
        Ok(())
    }
}

impl Unsealer for Shares {
    fn status(&self) -> Value {
        self.lock().status()
    }

    fn submit(&self, share: &str) -> Result<Value, String> {
        let share = UnsealShare::parse(share).map_err(|e| format!("share: {e}"))?;
        self.add(share)
    }
}

/// The stores of `services` (and the dynamic PKI's file) under `cfg.storage`.
pub fn store_files(cfg: &AppConfig, services: &[ServiceName]) -> Vec<StoreAt> {
    let mut stores: Vec<StoreAt> = services.iter().map(|&s| store_at(cfg, s)).collect();
    stores.push(StoreAt::File(cfg.data_dir.join("tls").join("pki.redb")));
    stores
}

/// Serves sealed until `shares` unseal (then the listeners drain, `cfg`'s ports become the
/// ones bound, so the services start where the sealed process answered, and the key is
/// returned) or until `stop` turns true (`None`).
pub async fn serve(
    cfg: &mut AppConfig,
    services: &[ServiceName],
    shares: Arc<Shares>,
    stop: &Arc<watch::Sender<bool>>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<Option<UnsealKey>> {
    let tls = {
        let (cfg, services) = (cfg.clone(), services.to_vec());
        tokio::task::spawn_blocking(move || crate::pki::sealed_tls(&cfg, &services))
            .await
            .context("startup task")??
    };
    let sealed_stop = Arc::new(watch::channel(false).0);
    let guard = AdminGuard::new(cfg.admin.token.expose());
    let scrapers = cryptoutil_http::middleware::ip_allow::IpAllowlist::new(
        cfg.http.metrics.ip_allowlist.clone(),
    );
    let (grace, limits) = (Duration::from_secs(2), cfg.http.connections);
    let mut listeners = JoinSet::new();
    let mut endpoints = BTreeMap::new();
    for service in services {
        let name = service.as_str();
        let sc = cfg.services.of(*service).clone();
        let state = SealedState {
            service: name,
            unsealer: Arc::clone(&shares) as Arc<dyn Unsealer>,
            shutdown: Arc::clone(stop),
            metrics: metrics.clone(),
        };
        let public_addr = SocketAddr::new(sc.public.bind_address, sc.public.port);
        let public = Listener::bind(public_addr, Arc::clone(&tls))
            .await
            .with_context(|| format!("binding the {service} public listener on {public_addr}"))?;
        let admin_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), sc.admin.port);
        let admin = Listener::bind(admin_addr, Arc::clone(&tls))
            .await
            .with_context(|| format!("binding the {service} admin listener on {admin_addr}"))?;
        let ports = cfg.services.of_mut(*service);
        ports.public.port = public.local_addr().port();
        ports.admin.port = admin.local_addr().port();
        let mut endpoint = Endpoint {
            public: crate::run::url(public.local_addr()),
            admin: crate::run::url(admin.local_addr()),
            metrics: None,
            distribution: None,
        };
        listeners.spawn(public.serve(
            cryptoutil_http::sealed::public_router(name),
            sealed_stop.subscribe(),
            grace,
            limits,
        ));
        listeners.spawn(admin.serve(
            cryptoutil_http::sealed::admin_router(state.clone(), guard.clone()),
            sealed_stop.subscribe(),
            grace,
            limits,
        ));
        if sc.metrics.enabled {
            let addr = SocketAddr::new(sc.metrics.bind_address, sc.metrics.port);
            let listener = Listener::bind(addr, Arc::clone(&tls))
                .await
                .with_context(|| format!("binding the {service} metrics listener on {addr}"))?;
            cfg.services.of_mut(*service).metrics.port = listener.local_addr().port();
            endpoint.metrics = Some(crate::run::url(listener.local_addr()));
            listeners.spawn(listener.serve(
                cryptoutil_http::sealed::metrics_router(state.clone(), scrapers.clone()),
                sealed_stop.subscribe(),
                grace,
                limits,
            ));
        }
        if sc.distribution.enabled && *service == ServiceName::Ca {
            let addr = SocketAddr::new(sc.distribution.bind_address, sc.distribution.port);
            let listener = Listener::bind_plain(addr).await.with_context(|| {
                format!("binding the {service} distribution listener on {addr}")
            })?;
            cfg.services.of_mut(*service).distribution.port = listener.local_addr().port();
            endpoint.distribution =
                Some(crate::run::url(listener.local_addr()).replacen("https://", "http://", 1));
            listeners.spawn(listener.serve(
                cryptoutil_http::sealed::public_router(name),
                sealed_stop.subscribe(),
                grace,
                limits,
            ));
        }
        cryptoutil_http::sealed::set_sealed(name, true);
        endpoints.insert(service.as_str(), endpoint);
    }
    files::write_atomic(
        &endpoints_path(&cfg.data_dir),
        &serde_json::to_vec_pretty(&endpoints)?,
        0o644,
    )?;
    let status = shares.status();
    tracing::warn!(
        %status,
        admin = ?endpoints.values().map(|e| e.admin.clone()).collect::<Vec<_>>(),
        "SEALED: submit unseal shares one at a time to an admin listener \
         (POST /admin/v1/unseal {{\"share\": ...}}); every other route answers 503"
    );
    let (mut unsealed, mut stopped) = (shares.unsealed(), stop.subscribe());
    let key = tokio::select! {
        _ = unsealed.wait_for(|u| *u) => shares.take_key(),
        _ = stopped.wait_for(|s| *s) => None,
    };
    // The last share's answer goes out before the listeners close.
    sealed_stop.send_replace(true);
    while listeners.join_next().await.is_some() {}
    for service in services {
        cryptoutil_http::sealed::set_sealed(service.as_str(), false);
    }
    Ok(key)
}
