//! The `Enrollment` actor (`<service>/enroll` in the tree): certificates from the CA
//! (`federation.ca_enabled`) for one service. It asks the CA for a certificate (EST
//! `/simpleenroll` with a fresh key), presents it from the next handshake on, keeps it (the
//! key sealed), and asks again when it is due for renewal. While the CA is unavailable the
//! service presents what `ca_fallback_mode` says (`self_signed`: its own certificate, dynamic or static;
//! `cached`: the one the CA issued last, chosen at start) and the actor tries again after
//! `federation.health_poll_interval`. An enrollment runs on a task of its own and comes back as
//! a message; the mailbox never waits on the CA.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use zeroize::Zeroizing;

use super::CaPeer;
use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::federation::CaFallback;
use crate::service::ServiceName;

/// How long one enrollment may retry before the fallback stands until the next attempt.
const ENROLL_DEADLINE: Duration = Duration::from_secs(60);
/// The longest wait between two checks of a certificate for renewal (the next check is when
/// it is due, [`cryptoutil_protocols::pki::renew_at`], if that is sooner).
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
    /// Presents the service's own certificate again (the dynamic PKI's or the configured one),
    /// if it does not already: what serves once the CA's is about to expire and no new one
    /// came.
    fn present_own(&self) -> Result<(), String>;
    /// Blocking: the certificate the CA issued last, unless it is in the last tenth of its
    /// life at `now` ([`expiring`]).
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
    pub fn args(
        &self,
        service: ServiceName,
        ca: &CaPeer,
        audit: &AuditHandle,
    ) -> Option<EnrollmentArgs> {
        let c = self.certificates.get(&service)?;
        Some(EnrollmentArgs {
            service,
            ca: ca.clone(),
            audit: audit.clone(),
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
    /// The service's audit log (fallbacks taken are recorded).
    pub audit: AuditHandle,
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

/// Whether a certificate valid from `not_before` to `not_after` is in the last tenth of its
/// life at `now` (Unix seconds): then it is not presented any more, the service's own is.
pub fn expiring(not_before: u64, not_after: u64, now: u64) -> bool {
    now >= cryptoutil_protocols::pki::last_tenth(not_before, not_after)
}

/// Whether a certificate from the CA is due, and whether an enrollment runs.
pub struct EnrollmentState {
    args: EnrollmentArgs,
    /// No certificate from the CA is presented (or the last attempt failed).
    due: bool,
    /// An enrollment is running.
    running: bool,
    /// When this actor's last enrollment ended (Unix seconds): the life of what it got is
    /// counted from then, not from the CA's back-dated `notBefore`.
    enrolled_at: Option<u64>,
}

impl EnrollmentState {
    /// When the presented certificate is due for renewal (Unix seconds), if it can be read.
    fn renew_at(&self) -> Option<u64> {
        let leaf = self.args.home.presented_leaf()?;
        let (not_before, not_after) = cryptoutil_protocols::pki::validity(&leaf).ok()?;
        let from = not_before.max(self.enrolled_at.unwrap_or(0).min(not_after));
        Some(cryptoutil_protocols::pki::renew_at(from, not_after))
    }

    /// When the presented certificate enters the last tenth of its life (Unix seconds).
    fn expiring_at(&self) -> Option<u64> {
        let leaf = self.args.home.presented_leaf()?;
        let (not_before, not_after) = cryptoutil_protocols::pki::validity(&leaf).ok()?;
        let from = not_before.max(self.enrolled_at.unwrap_or(0).min(not_after));
        Some(cryptoutil_protocols::pki::last_tenth(from, not_after))
    }

    /// The CA's certificate is about to expire and no new one came: the service's own serves.
    fn expire(&self) {
        if self.expiring_at().is_some_and(|t| crate::now_unix() >= t) {
            let service = self.args.service;
            match self.args.home.present_own() {
                Ok(()) => tracing::warn!(
                    %service,
                    "the CA's certificate is about to expire: presenting the service's own"
                ),
                Err(e) => tracing::warn!(%service, error = %e, "the service's own certificate"),
            }
        }
    }

    /// Is the presented certificate due for renewal?
    fn renewal_due(&self) -> bool {
        self.renew_at().is_none_or(|t| crate::now_unix() >= t)
    }

    /// How long until the next check: until the certificate is due, at least a second, at
    /// most [`RENEWAL_CHECK`].
    fn next_check(&self) -> Duration {
        self.renew_at()
            .map(|t| Duration::from_secs(t.saturating_sub(crate::now_unix())))
            .unwrap_or(RENEWAL_CHECK)
            .clamp(Duration::from_secs(1), RENEWAL_CHECK)
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
            enrolled_at: None,
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
                // Also while an enrollment runs: the CA may hold it until its deadline.
                st.expire();
                if st.running {
                    return Ok(());
                }
                if st.due || st.renewal_due() {
                    st.running = true;
                    let (args, me2) = (st.args.clone(), me.clone());
                    tokio::spawn(async move {
                        let done = enroll(&args).await;
                        let _ = me2.cast(EnrollmentMsg::Enrolled(done));
                    });
                    // Look again when the presented certificate enters its last tenth, should
                    // the enrollment still run then.
                    if let Some(at) = st.expiring_at() {
                        let wait = Duration::from_secs(at.saturating_sub(crate::now_unix()));
                        if wait < ENROLL_DEADLINE {
                            me.send_after(wait.max(Duration::from_secs(1)), || {
                                EnrollmentMsg::Check
                            });
                        }
                    }
                } else {
                    me.send_after(st.next_check(), || EnrollmentMsg::Check);
                }
            }
            EnrollmentMsg::Enrolled(done) => {
                st.running = false;
                let service = st.args.service;
                let wait = match done {
                    Ok(()) => {
                        tracing::info!(%service, "presenting the certificate the CA issued");
                        st.due = false;
                        st.enrolled_at = Some(crate::now_unix());
                        st.next_check()
                    }
                    Err(e) => {
                        crate::metrics::fallback_used("ca", st.args.mode.as_str());
                        // Nobody waits on this record: one that cannot be written is logged.
                        let entry =
                            AuditEntry::fallback(service.as_str(), "", "ca", st.args.mode.as_str());
                        st.args
                            .audit
                            .submit(entry, Vec::new(), Completion::new(move |written| {
                                if let Err(e) = written {
                                    tracing::error!(%service, error = %e, "a CA fallback could not be audited");
                                }
                            }));
                        tracing::warn!(
                            %service,
                            fallback = st.args.mode.as_str(),
                            error = %e,
                            "no certificate from the CA: presenting the fallback certificate"
                        );
                        st.due = true;
                        st.expire();
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
    let (not_before, not_after) =
        cryptoutil_protocols::pki::validity(leaf).map_err(|e| e.to_string())?;
    // Its life counts from now (the CA back-dates `notBefore`): refused only when it would
    // not be presented at all.
    if expiring(
        not_before.max(crate::now_unix()),
        not_after,
        crate::now_unix(),
    ) {
        return Err("the CA issued a certificate that expires at once".into());
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
