//! The `Enrollment` actor (`<service>/enroll` in the tree): certificates from the CA
//! (`federation.ca_enabled`) for one service. It asks the CA for a certificate (EST
//! `/simpleenroll` with a fresh key), presents it from the next handshake on, keeps it (the
//! key sealed), and asks again when it is due for renewal. While the CA is unavailable the
//! service presents what `ca_fallback_mode` says (`self_signed`: the dynamic PKI's certificate;
//! `cached`: the one the CA issued last, chosen at start) and the actor tries again after
//! `federation.health_poll_interval`. An enrollment runs on a task of its own and comes back as
//! a message; the mailbox never waits on the CA.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use zeroize::Zeroizing;

use super::CaPeer;
use crate::federation::CaFallback;
use crate::service::ServiceName;

/// How long one enrollment may retry before the fallback stands until the next attempt.
const ENROLL_DEADLINE: Duration = Duration::from_secs(60);
/// How often a certificate is checked for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);

/// A certificate the CA issued, as presented and kept.
pub struct CaLeaf {
    /// The chain, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key (PKCS#8).
    pub key: Zeroizing<Vec<u8>>,
    /// The leaf's notAfter (Unix seconds).
    pub not_after: u64,
}

/// Where a service's TLS certificate lives: its listeners (which present it) and the PKI
/// store (which keeps what the CA issued). The binary provides it.
pub trait CertificateHome: std::fmt::Debug + Send + Sync + 'static {
    /// The leaf the listeners present now (DER).
    fn presented_leaf(&self) -> Option<Vec<u8>>;
    /// Presents `leaf` from the next handshake on; refused unless the key is the leaf's.
    fn present(&self, leaf: &CaLeaf) -> Result<(), String>;
    /// Blocking: the certificate the CA issued last, unless it is due for renewal at `now`.
    fn cached(&self, now: SystemTime) -> Result<Option<CaLeaf>, String>;
    /// Blocking: keeps what the CA issued (the key sealed).
    fn keep(&self, leaf: &CaLeaf) -> Result<(), String>;
}

/// One service's certificate as the binary describes it: where it lives and the names it
/// carries.
#[derive(Clone, Debug)]
pub struct ServiceCertificate {
    /// Where it lives.
    pub home: Arc<dyn CertificateHome>,
    /// The DNS names it carries.
    pub dns: Vec<String>,
    /// The IP addresses it carries.
    pub ips: Vec<IpAddr>,
}

/// Certificates from the CA for the services of this process (`federation.ca_enabled`).
#[derive(Clone, Debug)]
pub struct EnrollmentPlan {
    /// Each service's certificate.
    pub certificates: std::collections::BTreeMap<ServiceName, ServiceCertificate>,
    /// What a service presents while the CA is away.
    pub mode: CaFallback,
    /// How long to wait before asking an unavailable CA again.
    pub retry_after: Duration,
}

impl EnrollmentPlan {
    /// The arguments of `service`'s `Enrollment` actor, if it takes its certificate from `ca`.
    pub fn args(&self, service: ServiceName, ca: &CaPeer) -> Option<EnrollmentArgs> {
        let c = self.certificates.get(&service)?;
        Some(EnrollmentArgs {
            service,
            ca: ca.clone(),
            home: Arc::clone(&c.home),
            dns: c.dns.clone(),
            ips: c.ips.clone(),
            mode: self.mode,
            retry_after: self.retry_after,
        })
    }
}

/// What one service's enrollment needs.
#[derive(Clone, Debug)]
pub struct EnrollmentArgs {
    /// The service.
    pub service: ServiceName,
    /// The CA, through its breaker.
    pub ca: CaPeer,
    /// Where its certificate lives.
    pub home: Arc<dyn CertificateHome>,
    /// The DNS names its certificate carries.
    pub dns: Vec<String>,
    /// The IP addresses its certificate carries.
    pub ips: Vec<IpAddr>,
    /// What it presents while the CA is away.
    pub mode: CaFallback,
    /// How long it waits before asking an unavailable CA again.
    pub retry_after: Duration,
}

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct Enrollment;

/// Messages.
pub enum EnrollmentMsg {
    /// Enroll if the certificate is due (or none from the CA is presented).
    Check,
    /// Internal: an enrollment ended.
    Enrolled(Result<(), String>),
    /// Fault injection.
    Crash,
}

/// Whether a certificate from the CA is due, and whether an enrollment runs.
pub struct EnrollmentState {
    args: EnrollmentArgs,
    /// No certificate from the CA is presented (or the last attempt failed).
    due: bool,
    /// An enrollment is running.
    running: bool,
}

impl EnrollmentState {
    /// Is the presented certificate due for renewal?
    fn renewal_due(&self) -> bool {
        self.args
            .home
            .presented_leaf()
            .and_then(|leaf| cryptoutil_protocols::pki::not_after(&leaf).ok())
            .is_none_or(|t| cryptoutil_protocols::pki::needs_renewal(t, SystemTime::now()))
    }
}

impl Actor for Enrollment {
    type Msg = EnrollmentMsg;
    type State = EnrollmentState;
    type Arguments = EnrollmentArgs;

    async fn pre_start(
        &self,
        me: ActorRef<EnrollmentMsg>,
        args: EnrollmentArgs,
    ) -> Result<EnrollmentState, ActorProcessingErr> {
        // A cached certificate from the CA serves until it is due for renewal.
        let presents_cached = presents_cached(&args).await;
        me.cast(EnrollmentMsg::Check)?;
        Ok(EnrollmentState {
            args,
            due: !presents_cached,
            running: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<EnrollmentMsg>,
        msg: EnrollmentMsg,
        st: &mut EnrollmentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EnrollmentMsg::Check => {
                if st.running {
                    return Ok(());
                }
                if st.due || st.renewal_due() {
                    st.running = true;
                    let (args, me) = (st.args.clone(), me.clone());
                    tokio::spawn(async move {
                        let done = enroll(&args).await;
                        let _ = me.cast(EnrollmentMsg::Enrolled(done));
                    });
                } else {
                    me.send_after(RENEWAL_CHECK, || EnrollmentMsg::Check);
                }
            }
            EnrollmentMsg::Enrolled(done) => {
                st.running = false;
                let service = st.args.service;
                let wait = match done {
                    Ok(()) => {
                        tracing::info!(%service, "presenting the certificate the CA issued");
                        st.due = false;
                        RENEWAL_CHECK
                    }
                    Err(e) => {
                        crate::metrics::fallback_used("ca", st.args.mode.as_str());
                        tracing::warn!(
                            %service,
                            fallback = st.args.mode.as_str(),
                            error = %e,
                            "no certificate from the CA: presenting the fallback certificate"
                        );
                        st.due = true;
                        st.args.retry_after
                    }
                };
                me.send_after(wait, || EnrollmentMsg::Check);
            }
            EnrollmentMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: Enrollment crash requested");
                }
            }
        }
        Ok(())
    }
}

/// Does the listener present the certificate the CA issued last (`cached` mode, chosen at
/// start)?
async fn presents_cached(args: &EnrollmentArgs) -> bool {
    let (Some(presented), CaFallback::Cached) = (args.home.presented_leaf(), args.mode) else {
        return false;
    };
    let home = Arc::clone(&args.home);
    let cached = tokio::task::spawn_blocking(move || home.cached(SystemTime::now())).await;
    matches!(cached, Ok(Ok(Some(c))) if c.chain.first() == Some(&presented))
}

/// One enrollment: a new key and request, the CA's chain presented and kept.
async fn enroll(args: &EnrollmentArgs) -> Result<(), String> {
    let (service, dns, ips) = (args.service, args.dns.clone(), args.ips.clone());
    let (csr, key) = tokio::task::spawn_blocking(move || {
        cryptoutil_protocols::pki::leaf_request(service.as_str(), &dns, &ips)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let chain = args
        .ca
        .enroll(&csr, ENROLL_DEADLINE)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = chain.first().ok_or("the CA sent no certificate")?;
    let not_after = cryptoutil_protocols::pki::not_after(leaf).map_err(|e| e.to_string())?;
    if cryptoutil_protocols::pki::needs_renewal(not_after, SystemTime::now()) {
        return Err("the CA issued a certificate that is already due for renewal".into());
    }
    let issued = CaLeaf {
        chain,
        key,
        not_after,
    };
    args.home.present(&issued)?;
    // Presented already; only `cached` after a restart misses it if this fails.
    let home = Arc::clone(&args.home);
    match tokio::task::spawn_blocking(move || home.keep(&issued)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%service, error = %e, "the CA's certificate was not kept"),
        Err(e) => tracing::warn!(%service, error = %e, "the CA's certificate was not kept"),
    }
    Ok(())
}
