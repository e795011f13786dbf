//! The CA product: per-tenant root and subordinate CAs, certificates issued under profiles,
//! revocation and CRLs; one supervised `CaSigner` actor per CA in use, started on demand
//! under the CA's keyed supervisor (`ca/signers`); the service's audit log. The certificate
//! work itself is pure, in `cryptoutil_protocols::ca`.
//!
//! # Layout
//! - [`store`]: the records and their sealed persistence.
//! - [`signer`]: the `CaSigner` actor (key, serials, signatures, revocation state).
//! - [`handle`]: `CasHandle`, the CA's handle (roots, dispatch to signers, reads).
//! - [`ra`]: the RA (labels, enrollment secrets, the request queue) and enrollment.
//! - [`acme`]: ACME accounts, orders, authorizations and nonces.
//! - [`cmp`]: the CMP server (messages authenticated, enrolled, confirmed, polled, revoked).
//! - [`scep`]: the SCEP server (messages verified, opened by the CA's SCEP RA, enrolled,
//!   polled, answered).
//! - [`memo`]: records kept in memory after their first read (labels, ACME accounts).

pub mod acme;
pub mod cmp;
pub mod handle;
pub mod memo;
pub mod ra;
pub mod scep;
pub mod signer;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::ca::Urls;
use cryptoutil_protocols::ids::CaId;
use ractor::SpawnErr;

pub use handle::{CasHandle, CertRequest, NewCa, NewCert, DISTRIBUTION_SUBJECT};
pub use signer::IssuedCert;
pub use store::{CaRecord, CertPage, CertRecord, CrlRecord, Der, Revocation, Status};

use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;
use crate::supervisor::keyed::KeyedSpec;

/// How long a signer waits for work before it stops (it starts again on the next use).
const SIGNER_IDLE: Duration = Duration::from_secs(300);

/// The CA's settings (`ca:` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSettings {
    /// Where relying parties reach this CA's distribution routes (`https://ca.example:8443`):
    /// certificates name their CA's CRL and certificate under it. None: no URLs in
    /// certificates.
    pub distribution_base_url: Option<String>,
    /// How long a CRL is valid (`nextUpdate - thisUpdate`); it is signed anew once half of it
    /// has passed.
    pub crl_lifetime: Duration,
    /// How long an OCSP answer is valid (`nextUpdate - thisUpdate`); a cached one is served
    /// until half of it has passed.
    pub ocsp_lifetime: Duration,
    /// The policy OID (dotted) of the time stamps the CAs' TSAs sign.
    pub tsa_policy: String,
    /// The port ACME http-01 validation connects to (RFC 8555 §8.3: 80).
    pub acme_http01_port: u16,
    /// The resolver ACME dns-01 validation asks (none: dns-01 is not offered).
    pub acme_dns_resolver: Option<std::net::SocketAddr>,
    /// Whether SCEP is served: its key transport, RSA PKCS#1 v1.5, is not FIPS-approved.
    pub scep_pkcs1v15_key_transport: bool,
}

/// The default TSA policy: an OID of the `2.25` arc (ITU-T X.667: an OID from a UUID, which
/// needs no registration), made once for this project.
pub const DEFAULT_TSA_POLICY: &str = "2.25.116857771501124967086809086249885710883";

impl Default for CaSettings {
    fn default() -> Self {
        Self {
            distribution_base_url: None,
            crl_lifetime: Duration::from_secs(86_400),
            ocsp_lifetime: Duration::from_secs(3600),
            tsa_policy: DEFAULT_TSA_POLICY.to_owned(),
            acme_http01_port: 80,
            acme_dns_resolver: None,
            scep_pkcs1v15_key_transport: false,
        }
    }
}

impl CaSettings {
    /// The URLs certificates issued by CA `id` name: its CRL, the OCSP responder and its
    /// certificate (AIA caIssuers).
    pub fn urls(&self, id: &CaId) -> Urls {
        match &self.distribution_base_url {
            None => Urls::default(),
            Some(base) => {
                let base = base.trim_end_matches('/');
                Urls {
                    crl: Some(format!("{base}/service/api/v1/ca/cas/{id}/crl")),
                    ocsp: Some(format!("{base}/service/api/v1/ca/ocsp")),
                    ca_issuers: Some(format!("{base}/service/api/v1/ca/cas/{id}/certificate")),
                }
            }
        }
    }

    /// The TSA policy's OID DER (the default policy's if the configured one does not parse,
    /// which configuration validation refuses first).
    pub fn tsa_policy_der(&self) -> Vec<u8> {
        cryptoutil_protocols::ca::tsa::oid_der(&self.tsa_policy)
            .or_else(|| cryptoutil_protocols::ca::tsa::oid_der(DEFAULT_TSA_POLICY))
            .unwrap_or_default()
    }

    /// Whether `crl` may still be served at `now` (less than half its lifetime has passed).
    pub fn fresh(&self, crl: &CrlRecord, now: u64) -> bool {
        now < crl
            .this_update
            .saturating_add(self.crl_lifetime.as_secs() / 2)
    }
}

/// The CA's part of the `ca` service: its audit log and the keyed supervisor of signers.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::Ca,
    build,
};

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let name = ctx.service.as_str();
    let audit = ctx.audit.clone();
    let settings = Arc::new(
        ctx.args
            .settings
            .get::<CaSettings>()
            .cloned()
            .unwrap_or_default(),
    );
    let keyed = KeyedSpec::new(
        format!("{name}/signers"),
        "CaSignerSupervisor",
        name,
        signer::Signers {
            store: Arc::clone(ctx.store),
            audit: audit.clone(),
            service: name,
            idle: SIGNER_IDLE,
            settings: Arc::clone(&settings),
            shared: ctx.args.shared_store,
        },
        ctx.config.clone(),
    );
    let cas = CasHandle::new(
        Arc::clone(ctx.store),
        audit.clone(),
        keyed.handle(ctx.config.ask_timeout),
        settings,
        ctx.config.ask_timeout,
    );
    parts.children.push(Arc::new(keyed));
    parts.handles.insert(cas);
    Ok(())
}
