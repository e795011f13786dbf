//! `CasHandle`: the CA's typed handle. It makes roots itself and reaches each CA's `CaSigner`
//! through the keyed supervisor for everything that needs a CA's key (subordinate CAs,
//! issuance, revocation, CRLs). Every operation that changes something, refused ones included
//! (an unknown CA, another tenant's CA), leaves an audit record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cryptoutil_protocols::ca::ocsp::{self, Refusal};
use cryptoutil_protocols::ca::{self, CaSpec, KeyType, Reason, Subject};
use cryptoutil_protocols::ids::CaId;
use cryptoutil_storage::Store;
use ractor::RpcReplyPort;

use super::signer::{AlsoWrite, CaSignerMsg, IssuedCert, NewChild, Order, SignerKey, Signers};
use super::store::{self, CaRecord, CertRecord, CrlRecord, Der};
use crate::ask::call;
use crate::audit::{AuditEntry, AuditHandle};
use crate::caller::Caller;
use crate::error::Error;
use crate::supervisor::keyed::KeyedHandle;

/// Who audit records name for what the CA does for anonymous relying parties (a CRL signed
/// anew when one is fetched).
pub const DISTRIBUTION_SUBJECT: &str = "cryptoutil:ca-distribution";

/// A CA to make.
#[derive(Debug, Clone)]
pub struct NewCa {
    /// Its name (1 to 64 characters).
    pub name: String,
    /// Its subject.
    pub subject: Subject,
    /// Its key type.
    pub key: KeyType,
    /// The CA that signs it (none: a self-signed root).
    pub parent: Option<CaId>,
    /// How long its certificate is valid (none: 10 years for a root, 5 for a subordinate).
    pub validity: Option<Duration>,
    /// Its path length constraint.
    pub path_len: Option<u8>,
    /// Permitted DNS name constraints.
    pub permitted_dns: Vec<String>,
    /// Certificate policy OIDs.
    pub policies: Vec<String>,
    /// The operator means it: the parent is offline and its key may sign this subordinate.
    pub offline_parent: bool,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct NewCert {
    /// The profile's name.
    pub profile: String,
    /// What it certifies: a caller's request, or a key the service makes.
    pub request: CertRequest,
    /// How long it should be valid (none: the profile's default).
    pub validity: Option<Duration>,
}

/// The key a certificate certifies.
#[derive(Debug, Clone)]
pub enum CertRequest {
    /// The caller's PKCS#10 request, PEM or DER (its signature is checked).
    Csr(Vec<u8>),
    /// A request parsed and its signature checked already (by the RA, which read it first).
    Checked(Box<ca::Csr>),
    /// A key the service makes: returned only as a JWE to `recipient` (the caller's public
    /// JWK, RSA-OAEP-256 or ECDH-ES+A256KW), never stored.
    ServerKey {
        /// The key's type.
        key: KeyType,
        /// The certificate's subject.
        subject: Subject,
        /// Its subject alternative names.
        names: ca::Names,
        /// Who the private key is encrypted to.
        recipient: Box<cryptoutil_protocols::jose::Jwk>,
    },
}

const YEAR: u64 = 365 * 86_400;

/// How OCSP requests find their CA: every CA's issuer hashes, read from the store when a
/// request names an issuer not seen yet (at most once a second).
#[derive(Default)]
struct IssuerIndex {
    cas: Vec<(SignerKey, ocsp::IssuerHashes)>,
    scanned: Option<tokio::time::Instant>,
}

/// Most CA records kept in memory for CMP answers.
const CAS_REMEMBERED: usize = 1_000;

/// Reads of the store for unknown issuers are at most this frequent.
const INDEX_RESCAN: Duration = Duration::from_secs(1);

/// The CA's authorities and certificates.
#[derive(Clone)]
pub struct CasHandle {
    pub(super) store: Arc<Store>,
    pub(super) audit: AuditHandle,
    signers: KeyedHandle<Signers>,
    settings: Arc<super::CaSettings>,
    issuers: Arc<std::sync::RwLock<IssuerIndex>>,
    import_key: Arc<tokio::sync::OnceCell<Arc<cryptoutil_protocols::jose::Jwk>>>,
    pub(super) labels: Arc<super::memo::Memo<super::ra::LabelRecord>>,
    pub(super) acme_nonces: Arc<super::acme::Nonces>,
    pub(super) acme_accounts: Arc<super::memo::Memo<super::acme::AccountRecord>>,
    pub(super) acme_updates: Arc<tokio::sync::Mutex<()>>,
    /// CA records as CMP answers use them (certificate, chain, key type: what never changes).
    pub(super) cmp_cas: Arc<super::memo::Memo<CaRecord>>,
    timeout: Duration,
}

/// Where the CA service's import key is sealed.
const IMPORT_KEY_RECORD: &[u8] = b"ca/import-key/v1";

impl std::fmt::Debug for CasHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasHandle").finish_non_exhaustive()
    }
}

/// A CA's name: 1 to 64 characters, no control characters.
fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Refused(ca::CaError {
            field: "name",
            reason: "1 to 64 characters, no control characters".into(),
        }));
    }
    Ok(())
}

/// A recipient of a server-made key: a public JWK for RSA-OAEP-256 or ECDH-ES+A256KW.
fn check_recipient(jwk: &cryptoutil_protocols::jose::Jwk) -> Result<(), Error> {
    use cryptoutil_protocols::jose::jwe::KeyAlg;
    let refused = |reason: &str| {
        Error::Refused(ca::CaError {
            field: "jwk",
            reason: reason.into(),
        })
    };
    match jwk.jwe_alg() {
        Ok(KeyAlg::RsaOaep256 | KeyAlg::EcdhEsA256KW) if !jwk.is_private() => Ok(()),
        Ok(KeyAlg::RsaOaep256 | KeyAlg::EcdhEsA256KW) => {
            Err(refused("send the public half of your key only"))
        }
        _ => Err(refused(
            "a public JWK with alg RSA-OAEP-256 or ECDH-ES+A256KW",
        )),
    }
}

/// Blocking store or key work off the async task.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::ask::blocking("CaSigner", f).await
}

impl CasHandle {
    /// The CA's handle: signers reached through `signers`, audited to `audit`.
    pub fn new(
        store: Arc<Store>,
        audit: AuditHandle,
        signers: KeyedHandle<Signers>,
        settings: Arc<super::CaSettings>,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            audit,
            signers,
            settings,
            issuers: Arc::default(),
            import_key: Arc::default(),
            labels: Arc::new(super::memo::Memo::new(super::ra::LABELS_REMEMBERED)),
            acme_nonces: Arc::default(),
            acme_accounts: Arc::new(super::memo::Memo::new(super::acme::ACCOUNTS_REMEMBERED)),
            acme_updates: Arc::default(),
            cmp_cas: Arc::new(super::memo::Memo::new(CAS_REMEMBERED)),
            timeout,
        }
    }

    /// The CA's settings.
    pub fn settings(&self) -> &super::CaSettings {
        &self.settings
    }

    /// Makes a CA in the caller's tenant: a root here, a subordinate through its parent's
    /// signer (the parent must be the caller's).
    pub async fn create(&self, who: &Caller, new: NewCa) -> Result<CaRecord, Error> {
        let made = self.make(who, new).await;
        if made.is_ok() {
            // OCSP requests for the new CA look again at once.
            self.issuers
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .scanned = None;
        }
        made
    }

    async fn make(&self, who: &Caller, new: NewCa) -> Result<CaRecord, Error> {
        let entry =
            |what: &str| AuditEntry::new(&who.subject, who.tenant.as_str(), what, "create-ca");
        let parent_name = new.parent.as_ref().map_or("", |p| p.as_str());
        if let Err(e) = check_name(&new.name) {
            return self.audit.refused(entry(parent_name), e).await;
        }
        let key_type = new.key;
        let made = blocking(move || {
            let key = key_type.generate().map_err(|_| Error::Internal {
                what: "generating a CA key",
            })?;
            Ok((store::new_id()?, key))
        })
        .await;
        let (id, key) = match made {
            Ok(made) => made,
            Err(e) => return self.audit.refused(entry(parent_name), e).await,
        };
        let default_years = if new.parent.is_some() { 5 } else { 10 };
        let spec = CaSpec {
            subject: new.subject,
            validity: new
                .validity
                .unwrap_or(Duration::from_secs(default_years * YEAR)),
            path_len: new.path_len,
            permitted_dns: new.permitted_dns,
            policies: new.policies,
        };
        let record = CaRecord {
            id: id.clone(),
            tenant: who.tenant.clone(),
            name: new.name,
            key: key_type,
            parent: new.parent.clone(),
            subject: String::new(),
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            created_at: crate::now_unix(),
            certificate: Der(Vec::new()),
            chain: Vec::new(),
            offline: false,
        };
        let new_offline_parent = new.offline_parent;
        match new.parent {
            Some(parent) => {
                let child = Box::new(NewChild { record, spec, key });
                self.ask(who, &parent, "create-ca", |who, reply| {
                    CaSignerMsg::SignCa {
                        who,
                        explicit: new_offline_parent,
                        child,
                        reply,
                    }
                })
                .await
            }
            None => {
                let store = Arc::clone(&self.store);
                let planned = blocking(move || {
                    let serial = ca::random_serial().map_err(|_| Error::Internal {
                        what: "random generator",
                    })?;
                    let der = ca::root(&spec, key_type, &key, &serial, SystemTime::now())?;
                    let summary = ca::summary(&der).map_err(|_| Error::Internal {
                        what: "reading a CA certificate",
                    })?;
                    let mut record = record;
                    record.subject = summary.subject;
                    record.serial = summary.serial;
                    record.not_before = summary.not_before;
                    record.not_after = summary.not_after;
                    record.certificate = Der(der);
                    let writes = store::create_ca(&store, &record, &key)?;
                    Ok((record, writes))
                })
                .await;
                match planned {
                    Err(e) => self.audit.refused(entry(""), e).await,
                    Ok((record, writes)) => {
                        self.audit.append(entry(id.as_str()), writes).await?;
                        Ok(record)
                    }
                }
            }
        }
    }

    /// The import key: callers wrap a CA to import to its public half.
    pub async fn import_key(&self) -> Result<Arc<cryptoutil_protocols::jose::Jwk>, Error> {
        let store = Arc::clone(&self.store);
        self.import_key
            .get_or_try_init(|| async move {
                blocking(move || crate::import_key::load_or_make(&store, IMPORT_KEY_RECORD))
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Imports a CA into the caller's tenant: `jwe` is a compact JWE (RSA-OAEP-256, A256GCM) to
    /// [`Self::import_key`] of a PEM bundle: the CA's certificate, the certificates above it
    /// (optional, issuer first) and its PKCS#8 key. The CA, its key sealed, and the audit
    /// record (`import-ca`) commit together.
    pub async fn import(&self, who: &Caller, name: String, jwe: String) -> Result<CaRecord, Error> {
        use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
        let entry =
            |what: &str| AuditEntry::new(&who.subject, who.tenant.as_str(), what, "import-ca");
        if let Err(e) = check_name(&name) {
            return self.audit.refused(entry(""), e).await;
        }
        let import_key = self.import_key().await?;
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        let planned = blocking(move || {
            let opened = jwe::decrypt_compact(
                &jwe,
                &import_key,
                &[KeyAlg::RsaOaep256],
                &[ContentAlg::A256GCM],
            )
            .map_err(|e| {
                Error::Refused(ca::CaError {
                    field: "jwe",
                    reason: format!("does not open with the import key: {e}"),
                })
            })?;
            let imported = ca::import(&opened.plaintext, SystemTime::now())?;
            let summary = ca::summary(&imported.certificate).map_err(|_| Error::Internal {
                what: "reading an imported certificate",
            })?;
            let record = CaRecord {
                id: store::new_id()?,
                tenant,
                name,
                key: imported.key_type,
                parent: None,
                subject: summary.subject,
                serial: summary.serial,
                not_before: summary.not_before,
                not_after: summary.not_after,
                created_at: crate::now_unix(),
                certificate: Der(imported.certificate),
                chain: imported.chain.into_iter().map(Der).collect(),
                offline: false,
            };
            let writes = store::create_ca(&store, &record, &imported.key)?;
            Ok((record, writes))
        })
        .await;
        match planned {
            Err(e) => self.audit.refused(entry(""), e).await,
            Ok((record, writes)) => {
                self.audit.append(entry(record.id.as_str()), writes).await?;
                self.issuers
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .scanned = None;
                Ok(record)
            }
        }
    }

    /// Profile `name`: a built-in one, or one the caller's tenant defined.
    pub(super) async fn profile(&self, who: &Caller, name: &str) -> Result<ca::Profile, Error> {
        if let Some(p) = ca::profile::builtin(name) {
            return Ok(p);
        }
        let (store, tenant, lookup) =
            (Arc::clone(&self.store), who.tenant.clone(), name.to_owned());
        let spec = blocking(move || store::tenant_profile(&store, &tenant, &lookup)).await?;
        match spec {
            Some(spec) => spec.profile().map_err(Error::Refused),
            None => Err(Error::Refused(ca::CaError {
                field: "profile",
                reason: format!(
                    "unknown profile {name:?} (built in: {}; or one your tenant defined)",
                    ca::profile::BUILTIN.join(", ")
                ),
            })),
        }
    }

    /// The built-in profiles and the caller's tenant's.
    pub async fn profiles(&self, who: &Caller) -> Result<Vec<ca::Profile>, Error> {
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        let specs = blocking(move || store::tenant_profiles(&store, &tenant)).await?;
        let mut all: Vec<ca::Profile> = ca::profile::BUILTIN
            .iter()
            .filter_map(|n| ca::profile::builtin(n))
            .collect();
        for spec in specs {
            all.push(spec.profile().map_err(|_| Error::Internal {
                what: "a stored profile no longer validates",
            })?);
        }
        Ok(all)
    }

    /// Defines a profile in the caller's tenant (audited as `create-profile`); a name taken
    /// is a conflict.
    pub async fn create_profile(
        &self,
        who: &Caller,
        spec: ca::profile::ProfileSpec,
    ) -> Result<ca::Profile, Error> {
        let entry = AuditEntry::new(
            &who.subject,
            who.tenant.as_str(),
            &spec.name,
            "create-profile",
        );
        let profile = match spec.profile() {
            Ok(p) => p,
            Err(e) => return self.audit.refused(entry, Error::Refused(e)).await,
        };
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        // Checked first for a clear answer; two creates of one name racing meet at the
        // create, which fails the second alone (a conflict).
        let write = blocking(move || {
            if store::tenant_profile(&store, &tenant, &spec.name)?.is_some() {
                return Err(Error::Conflict {
                    what: "a profile of this name exists in your tenant",
                });
            }
            store::create_profile(&store, &tenant, &spec)
        })
        .await;
        match write {
            Ok(write) => {
                self.audit.append(entry, vec![write]).await?;
                Ok(profile)
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    /// The caller's tenant's CAs, oldest first.
    pub async fn list(&self, who: &Caller) -> Result<Vec<CaRecord>, Error> {
        let (store, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        blocking(move || store::tenant_cas(&store, &tenant)).await
    }

    /// CA `id` of the caller's tenant.
    pub async fn get(&self, who: &Caller, id: &CaId) -> Result<CaRecord, Error> {
        let (store, tenant, id) = (Arc::clone(&self.store), who.tenant.clone(), id.clone());
        blocking(move || store::tenant_ca(&store, &tenant, &id)).await
    }

    /// Issues a certificate from CA `id` (the caller's): the request is parsed and its
    /// signature checked here, the profile applied and the certificate signed by the signer.
    pub async fn issue(&self, who: &Caller, id: &CaId, new: NewCert) -> Result<IssuedCert, Error> {
        self.issue_with(who, id, new, None).await
    }

    /// [`Self::issue`], with `also`'s writes committed with the certificate (and, if given,
    /// `op` naming the operation in the audit log instead of `issue`).
    pub(super) async fn issue_with(
        &self,
        who: &Caller,
        id: &CaId,
        new: NewCert,
        also: Option<(&'static str, AlsoWrite)>,
    ) -> Result<IssuedCert, Error> {
        let (also_op, also) = match also {
            Some((op, also)) => (Some(op), Some(also)),
            None => (None, None),
        };
        let entry = AuditEntry::new(
            &who.subject,
            who.tenant.as_str(),
            id.as_str(),
            also_op.unwrap_or("issue"),
        );
        let profile = match self.profile(who, &new.profile).await {
            Ok(p) => p,
            Err(e) => return self.audit.refused(entry, e).await,
        };
        let (csr, made, op) = match new.request {
            // On this task: parsing and one signature check take tens of microseconds, less
            // than handing the work to a blocking thread and back costs.
            CertRequest::Csr(der) => match ca::csr::parse(&der) {
                Ok(csr) => (csr, None, also_op.unwrap_or("issue")),
                Err(e) => return self.audit.refused(entry, Error::Refused(e)).await,
            },
            CertRequest::Checked(csr) => (*csr, None, also_op.unwrap_or("issue")),
            CertRequest::ServerKey {
                key,
                subject,
                names,
                recipient,
            } => {
                let entry = AuditEntry::new(
                    &who.subject,
                    who.tenant.as_str(),
                    id.as_str(),
                    "issue-server-key",
                );
                if let Err(e) = check_recipient(&recipient) {
                    return self.audit.refused(entry, e).await;
                }
                // Key generation (RSA: up to seconds) off the async task.
                match blocking(move || Ok(ca::server_request(key, &subject, &names)?)).await {
                    Ok((pkcs8, csr)) => (csr, Some((pkcs8, recipient)), "issue-server-key"),
                    Err(e) => return self.audit.refused(entry, e).await,
                }
            }
        };
        let order = Box::new(Order {
            profile,
            csr,
            validity: new.validity,
            also,
        });
        let mut issued = self
            .ask(who, id, op, |who, reply| CaSignerMsg::Issue {
                who,
                op,
                order,
                reply,
            })
            .await?;
        if let Some((pkcs8, recipient)) = made {
            let mut header = serde_json::Map::new();
            header.insert("cty".into(), serde_json::Value::from("application/pkcs8"));
            let jwe = cryptoutil_protocols::jose::jwe::encrypt_compact(
                &recipient,
                cryptoutil_protocols::jose::jwe::ContentAlg::A256GCM,
                &pkcs8,
                &header,
            )?;
            issued.key_jwe = Some(jwe);
        }
        Ok(issued)
    }

    /// A page of the certificates CA `id` (the caller's) issued, in serial order (see
    /// [`store::certs_page`]), and the serial to go on after, if there may be more.
    pub async fn certificates(
        &self,
        who: &Caller,
        id: &CaId,
        page: store::CertPage,
    ) -> Result<(Vec<CertRecord>, Option<String>), Error> {
        let (store, tenant, id) = (Arc::clone(&self.store), who.tenant.clone(), id.clone());
        blocking(move || {
            store::tenant_ca(&store, &tenant, &id)?;
            store::certs_page(&store, &id, &page, crate::now_unix())
        })
        .await
    }

    /// Certificate `serial` of CA `id` (the caller's).
    pub async fn certificate(
        &self,
        who: &Caller,
        id: &CaId,
        serial: &str,
    ) -> Result<CertRecord, Error> {
        let (store, tenant, id) = (Arc::clone(&self.store), who.tenant.clone(), id.clone());
        let serial = serial.to_owned();
        blocking(move || {
            store::tenant_ca(&store, &tenant, &id)?;
            store::load_cert(&store, &id, &serial)?.ok_or(Error::NotFound {
                what: "certificate",
            })
        })
        .await
    }

    /// Revokes certificate `serial` of CA `id` (the caller's) for `reason`, or releases it
    /// from hold (`None`); the CA's CRL is signed anew with it.
    pub async fn revoke(
        &self,
        who: &Caller,
        id: &CaId,
        serial: &str,
        reason: Option<Reason>,
    ) -> Result<CertRecord, Error> {
        let serial = serial.to_owned();
        let op = if reason.is_some() {
            "revoke"
        } else {
            "release"
        };
        self.ask(who, id, op, |who, reply| CaSignerMsg::Revoke {
            who,
            serial,
            reason,
            reply,
        })
        .await
    }

    /// Takes CA `id` (the caller's) offline, or brings it back online.
    pub async fn set_offline(
        &self,
        who: &Caller,
        id: &CaId,
        offline: bool,
    ) -> Result<CaRecord, Error> {
        let op = if offline { "offline" } else { "online" };
        self.ask(who, id, op, |who, reply| CaSignerMsg::SetOffline {
            who,
            offline,
            reply,
        })
        .await
    }

    /// Signs CA `id`'s CRL now (an explicit operator action: an offline CA's key is loaded for
    /// it), valid for `lifetime` if given.
    pub async fn sign_crl(
        &self,
        who: &Caller,
        id: &CaId,
        lifetime: Option<Duration>,
    ) -> Result<CrlRecord, Error> {
        let subject = who.subject.clone();
        self.ask(who, id, "crl", |_, reply| CaSignerMsg::Crl {
            who: subject,
            explicit: Some(lifetime),
            reply,
        })
        .await
    }

    /// CA `id`'s certificate, for anyone (relying parties fetch it before they trust TLS).
    pub async fn ca_certificate(&self, id: &CaId) -> Result<Der, Error> {
        let (store, id) = (Arc::clone(&self.store), id.clone());
        blocking(move || {
            store::load_ca(&store, &id)?
                .map(|ca| ca.certificate)
                .ok_or(Error::NotFound { what: "CA" })
        })
        .await
    }

    /// CA `id`'s current CRL, for anyone: the stored one while fresh, else signed anew by its
    /// signer.
    pub async fn crl(&self, id: &CaId) -> Result<CrlRecord, Error> {
        let (store, lookup) = (Arc::clone(&self.store), id.clone());
        let (ca, crl) = blocking(move || {
            let ca = store::load_ca(&store, &lookup)?.ok_or(Error::NotFound { what: "CA" })?;
            Ok((ca, store::load_crl(&store, &lookup)?))
        })
        .await?;
        if let Some(crl) = crl.filter(|c| self.settings.fresh(c, crate::now_unix())) {
            return Ok(crl);
        }
        let key = SignerKey {
            tenant: ca.tenant,
            id: ca.id,
        };
        let signer = self.signers.open(&key).await?;
        call(
            &signer,
            "CaSigner",
            |reply| CaSignerMsg::Crl {
                who: DISTRIBUTION_SUBJECT.to_owned(),
                explicit: None,
                reply,
            },
            self.timeout,
        )
        .await
    }

    /// The answer to a DER OCSP request, for anyone: always an `OCSPResponse` (a refusal for
    /// a request that does not parse, `unauthorized` for an issuer that is not one of ours or
    /// ids of several CAs, `tryLater` while the CA's signer is unavailable).
    pub async fn ocsp(&self, der: &[u8]) -> Vec<u8> {
        let request = match ocsp::parse_request(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "OCSP request refused");
                return ocsp::refusal(Refusal::MalformedRequest);
            }
        };
        let Some(first) = request.ids.first() else {
            return ocsp::refusal(Refusal::MalformedRequest);
        };
        let Some(key) = self.issuer_of(first).await else {
            return ocsp::refusal(Refusal::Unauthorized);
        };
        let answer = match self.signers.open(&key).await {
            Ok(signer) => {
                let request = Box::new(request);
                call(
                    &signer,
                    "CaSigner",
                    |reply| CaSignerMsg::Ocsp { request, reply },
                    self.timeout,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(der) => der,
            Err(Error::Unavailable { .. }) => ocsp::refusal(Refusal::TryLater),
            // An offline CA without a responder yet: nothing here may answer for it.
            Err(Error::Forbidden { .. }) => ocsp::refusal(Refusal::Unauthorized),
            Err(e) => {
                tracing::error!(error = %e, ca = %key.id, "OCSP answer failed");
                ocsp::refusal(Refusal::InternalError)
            }
        }
    }

    /// A time stamp (RFC 3161) of a DER `TimeStampReq` by CA `id`'s TSA, for anyone: always a
    /// `TimeStampResp` (a rejection naming the failure for a request that does not parse or
    /// that this TSA does not take); `NotFound` for a CA that does not exist.
    pub async fn stamp(&self, id: &CaId, der: &[u8]) -> Result<Vec<u8>, Error> {
        let (store, lookup) = (Arc::clone(&self.store), id.clone());
        let ca = blocking(move || {
            store::load_ca(&store, &lookup)?.ok_or(Error::NotFound { what: "CA" })
        })
        .await?;
        let request = match ca::tsa::parse_request(der) {
            Ok(r) => Box::new(r),
            Err(failure) => return Ok(ca::tsa::rejection(failure)),
        };
        let key = SignerKey {
            tenant: ca.tenant,
            id: ca.id,
        };
        let signer = self.signers.open(&key).await?;
        match call(
            &signer,
            "CaSigner",
            |reply| CaSignerMsg::Stamp { request, reply },
            self.timeout,
        )
        .await
        {
            Ok(der) => Ok(der),
            Err(e @ Error::Unavailable { .. }) => Err(e),
            Err(e) => {
                tracing::error!(error = %e, ca = %key.id, "time stamp failed");
                Ok(ca::tsa::rejection(ca::tsa::Failure::SystemFailure))
            }
        }
    }

    /// The CA an OCSP certificate id names, if it is one of ours.
    async fn issuer_of(&self, id: &ocsp::CertId) -> Option<SignerKey> {
        let find = |index: &IssuerIndex| {
            index
                .cas
                .iter()
                .find(|(_, hashes)| hashes.names(id))
                .map(|(key, _)| key.clone())
        };
        {
            let index = self
                .issuers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(key) = find(&index) {
                return Some(key);
            }
            if index.scanned.is_some_and(|at| at.elapsed() < INDEX_RESCAN) {
                return None;
            }
        }
        let store = Arc::clone(&self.store);
        let scanned = blocking(move || {
            Ok(store::all_cas(&store)?
                .into_iter()
                .filter_map(|ca| {
                    let hashes = ocsp::IssuerHashes::of(&ca.certificate.0).ok()?;
                    Some((
                        SignerKey {
                            tenant: ca.tenant,
                            id: ca.id,
                        },
                        hashes,
                    ))
                })
                .collect::<Vec<_>>())
        })
        .await;
        let mut index = self
            .issuers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.scanned = Some(tokio::time::Instant::now());
        match scanned {
            Ok(cas) => index.cas = cas,
            Err(e) => tracing::error!(error = %e, "reading the CAs for OCSP"),
        }
        find(&index)
    }

    /// Asks the signer of CA `id` (of `tenant`), opened if it is not running.
    async fn signer_call<T: Send + 'static>(
        &self,
        tenant: &cryptoutil_protocols::ids::TenantId,
        id: &CaId,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> CaSignerMsg,
    ) -> Result<T, Error> {
        let key = SignerKey {
            tenant: tenant.clone(),
            id: id.clone(),
        };
        let signer = self.signers.open(&key).await?;
        call(&signer, "CaSigner", build, self.timeout).await
    }

    /// Signs a CMP answer's protected part with CA `id`'s key (of `tenant`), with the
    /// algorithm `ca::signature_algorithm_der` names for its key type.
    pub(super) async fn protect(
        &self,
        tenant: &cryptoutil_protocols::ids::TenantId,
        id: &CaId,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        self.signer_call(tenant, id, |reply| CaSignerMsg::Protect { data, reply })
            .await
    }

    /// CA `id`'s SCEP RA (of `tenant`), made by its signer on first use.
    pub(super) async fn scep_ra(
        &self,
        tenant: &cryptoutil_protocols::ids::TenantId,
        id: &CaId,
    ) -> Result<Arc<cryptoutil_protocols::scep::Ra>, Error> {
        self.signer_call(tenant, id, |reply| CaSignerMsg::ScepRa { reply })
            .await
    }

    /// Asks the signer of CA `id` in the caller's tenant; a CA that is not there (or is
    /// another tenant's) is audited as a failed `op` and answered `NotFound`.
    async fn ask<T: Send + 'static>(
        &self,
        who: &Caller,
        id: &CaId,
        op: &'static str,
        build: impl FnOnce(Caller, RpcReplyPort<Result<T, Error>>) -> CaSignerMsg,
    ) -> Result<T, Error> {
        let key = SignerKey {
            tenant: who.tenant.clone(),
            id: id.clone(),
        };
        match self.signers.open(&key).await {
            Ok(signer) => {
                let caller = who.clone();
                call(&signer, "CaSigner", |r| build(caller, r), self.timeout).await
            }
            Err(e) => {
                let e = match e {
                    Error::KeyNotFound => Error::NotFound { what: "CA" },
                    other => other,
                };
                let entry = AuditEntry::new(&who.subject, who.tenant.as_str(), id.as_str(), op);
                self.audit.refused(entry, e).await
            }
        }
    }
}
