//! The RA: enrollment *labels* (each names one CA and one profile, and whether its requests
//! are issued at once or wait for a decision), one-time enrollment *secrets*, and the queue of
//! enrollment *requests* holders of the `ca-ra` scope approve or reject. Every enrollment
//! protocol (EST, and the others as they come) goes through [`CasHandle::enroll`]: one place
//! decides who may enroll, what is queued and what is issued.
//!
//! Facts that may hold once only are *created* in `ca_ra_marks_v1` in the same commit as what
//! they guard (a secret used: `secret/<reference>`; a request decided: `decided/<id>`), so two
//! racing uses of one secret, or two approvals of one request, cannot both succeed.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::ca::{self, CaError};
use cryptoutil_protocols::ids::{CaId, TenantId};
use cryptoutil_protocols::oauth;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::handle::{blocking, CasHandle, CertRequest, NewCert};
use super::signer::IssuedCert;
use super::store::{self, Der};
use crate::audit::AuditEntry;
use crate::caller::Caller;
use crate::error::Error;
use crate::record::{encode, load, scan};

/// How long an enrollment secret lives unless asked otherwise: a day.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(86_400);
/// The longest an enrollment secret may live: 30 days.
pub const MAX_SECRET_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long a client waits before it asks again about a pending request, in seconds.
pub const RETRY_AFTER: u64 = 10;

/// Most labels kept in memory.
pub(super) const LABELS_REMEMBERED: usize = 10_000;

/// Whether a label's requests are issued at once or wait for the RA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Issued at once.
    Auto,
    /// Queued until a holder of `ca-ra` approves or rejects it.
    Manual,
}

/// An enrollment label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    /// Its name, as enrollment URLs carry it.
    pub label: String,
    /// The tenant that owns it.
    pub tenant: TenantId,
    /// The CA that issues its certificates.
    pub ca: CaId,
    /// The profile they are issued under.
    pub profile: String,
    /// Whether they wait for the RA.
    pub approval: Approval,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// Who made it.
    pub created_by: String,
}

/// An enrollment secret (never returned after it is made).
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretRecord {
    /// Its reference (the EST user name, the CMP `senderKID`, the ACME EAB `kid`).
    pub reference: String,
    /// The tenant that owns it.
    pub tenant: TenantId,
    /// The label it enrolls at.
    pub label: String,
    /// The subject it may enroll (none: any the profile allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The secret.
    pub secret: Zeroizing<String>,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// Who made it.
    pub created_by: String,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("reference", &self.reference)
            .field("label", &self.label)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A secret just made: the only time it is shown.
#[derive(Debug, Clone)]
pub struct MadeSecret {
    /// Its reference.
    pub reference: String,
    /// The secret.
    pub secret: Zeroizing<String>,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for the RA.
    Pending,
    /// Issued (at once, or approved).
    Issued,
    /// Rejected by the RA.
    Rejected,
}

impl RequestStatus {
    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

/// An enrollment request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its id.
    pub id: String,
    /// The tenant of its label.
    pub tenant: TenantId,
    /// The label it came through.
    pub label: String,
    /// The CA asked.
    pub ca: CaId,
    /// The profile asked.
    pub profile: String,
    /// The protocol it came by (`est`, ...).
    pub protocol: String,
    /// The subject of its PKCS#10 request.
    pub subject: String,
    /// The request as it came: PKCS#10 or, over CMP, a CRMF `CertReqMsg` (see `format`).
    pub csr: Der,
    /// How `csr` is encoded.
    #[serde(default, skip_serializing_if = "ca::csr::Format::is_pkcs10")]
    pub format: ca::csr::Format,
    /// Who asked: a secret's reference (`ra:<reference>`) or a client.
    pub requested_by: String,
    /// When, Unix seconds.
    pub created_at: u64,
    /// Where it stands.
    pub status: RequestStatus,
    /// Who decided (none: issued at once, or pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<u64>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The serial of the certificate issued for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// A label to make.
#[derive(Debug, Clone)]
pub struct NewLabel {
    /// Its name: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit.
    pub label: String,
    /// The caller's CA that issues.
    pub ca: CaId,
    /// The profile (built in or the caller's tenant's).
    pub profile: String,
    /// Whether requests wait for the RA.
    pub approval: Approval,
}

/// A secret to make.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// The caller's label it enrolls at.
    pub label: String,
    /// The only subject it may enroll: the request's subject as RFC 4514 text
    /// (`CN=device-1,O=Example`) or its common name alone.
    pub subject: Option<String>,
    /// How long it lives (default a day, at most 30 days).
    pub ttl: Option<Duration>,
}

/// Who enrolls.
#[derive(Debug, Clone)]
pub enum Enrollee {
    /// The holder of an RA enrollment secret.
    Secret {
        /// Its reference.
        reference: String,
        /// The secret presented.
        secret: Zeroizing<String>,
    },
    /// A client of the label's tenant with the `ca` scope.
    Client(Caller),
    /// The holder of a certificate the label's CA issued (its key proven by TLS), renewing it:
    /// the request must name the same subject.
    Certificate(Vec<u8>),
    /// An ACME account of the label that proved control of `names`: the request must name
    /// exactly those DNS names (its common name, if any, one of them) and nothing else.
    Account {
        /// The account's id.
        account: String,
        /// The order's DNS names.
        names: Vec<String>,
    },
}

impl Enrollee {
    /// Who it is in the audit log (never a secret).
    fn audit_subject(&self) -> String {
        match self {
            Enrollee::Secret { reference, .. } => format!("ra:{reference}"),
            Enrollee::Client(c) => c.subject.clone(),
            Enrollee::Certificate(_) => "certificate".to_owned(),
            Enrollee::Account { account, .. } => format!("acme:{account}"),
        }
    }
}

/// More writes committed with a new request (issued or queued): the protocol's own state,
/// made from the request as recorded.
pub type Then = Box<dyn FnOnce(&RequestRecord) -> Result<Vec<Write>, Error> + Send>;

/// What an enrollment came to.
#[derive(Debug, Clone)]
pub enum Enrolled {
    /// Issued: the certificate and its chain.
    Issued(Box<IssuedCert>),
    /// Waiting for the RA: ask again (with the same request) later.
    Pending {
        /// The request's id.
        id: String,
    },
    /// Rejected by the RA.
    Rejected {
        /// Why.
        reason: String,
    },
}

pub(super) fn refused(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Refused(CaError {
        field,
        reason: reason.into(),
    })
}

/// Reads and checks a request in `format`: PKCS#10 (PEM or DER), or a CRMF `CertReqMsg`
/// (CMP), whose refusals name the field `popo` when its proof of possession fails,
/// `template` otherwise.
fn read_request(format: ca::csr::Format, der: &[u8]) -> Result<ca::Csr, CaError> {
    use cryptoutil_protocols::cmp::{crmf, Failure};
    match format {
        ca::csr::Format::Pkcs10 => ca::csr::parse(der),
        ca::csr::Format::Crmf => crmf::read(der).map_err(|r| CaError {
            field: if r.failure == Failure::BadPop {
                "popo"
            } else {
                "template"
            },
            reason: r.reason,
        }),
    }
}

/// A label's name: 1 to 64 of `a-z 0-9 - _ .`, the first a letter or digit.
pub fn check_label(label: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && label
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(refused(
            "label",
            "1 to 64 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit",
        ))
    }
}

/// A new id: `prefix`, the milliseconds since 1970 as 12 hex digits, then `bytes` random bytes
/// (base64url). The time first keeps the records of a busy RA (requests, orders, accounts)
/// appended in creation order at the right edge of the store's B-tree, as a CA's serials are
/// (`ca::serial_at`); the random part keeps ids unguessable.
pub(super) fn random_id(prefix: &str, bytes: usize) -> Result<String, Error> {
    let random = oauth::random_token(bytes).map_err(|_| Error::Internal {
        what: "random generator",
    })?;
    let millis = crate::now_millis() & 0xffff_ffff_ffff;
    Ok(format!("{prefix}{millis:012x}{}", random.as_str()))
}

/// The prefix of ACME account ids (a secret used for an external account binding is marked
/// with the account's).
pub const ACCOUNT_PREFIX: &str = "acct-";

fn request_key(tenant: &TenantId, id: &str) -> Vec<u8> {
    format!("{tenant}/{id}").into_bytes()
}

pub(super) fn used_mark(reference: &str) -> Vec<u8> {
    format!("secret/{reference}").into_bytes()
}

fn decided_mark(id: &str) -> Vec<u8> {
    format!("decided/{id}").into_bytes()
}

/// Label `label`, whoever owns it.
pub fn load_label(store: &Store, label: &str) -> Result<Option<LabelRecord>, Error> {
    load(store, Table::CaLabels, label.as_bytes(), "label")
}

/// The labels of `tenant`, by name.
pub fn tenant_labels(store: &Store, tenant: &TenantId) -> Result<Vec<LabelRecord>, Error> {
    let all: Vec<LabelRecord> = scan(store, Table::CaLabels, b"", "label")?;
    Ok(all.into_iter().filter(|l| &l.tenant == tenant).collect())
}

pub(super) fn load_secret(store: &Store, reference: &str) -> Result<Option<SecretRecord>, Error> {
    load(store, Table::CaRaSecrets, reference.as_bytes(), "RA secret")
}

/// Request `id` of `tenant`.
pub fn load_request(
    store: &Store,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<RequestRecord>, Error> {
    let key = request_key(tenant, id);
    load(store, Table::CaRaRequests, &key, "RA request")
}

/// The requests of `tenant` (with `status`, if given), oldest first.
pub fn tenant_requests(
    store: &Store,
    tenant: &TenantId,
    status: Option<RequestStatus>,
) -> Result<Vec<RequestRecord>, Error> {
    let prefix = format!("{tenant}/");
    let mut all: Vec<RequestRecord> =
        scan(store, Table::CaRaRequests, prefix.as_bytes(), "RA request")?;
    all.retain(|r| status.is_none_or(|s| r.status == s));
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(all)
}

/// The request that used secret `reference`: (tenant, id).
pub(super) fn used_by(store: &Store, reference: &str) -> Result<Option<(TenantId, String)>, Error> {
    let key = used_mark(reference);
    load(store, Table::CaRaMarks, &key, "RA mark")
}

fn put_request(store: &Store, request: &RequestRecord) -> Result<Write, Error> {
    Ok(store.sealed_write(
        Table::CaRaRequests,
        &request_key(&request.tenant, &request.id),
        &encode(request)?,
    )?)
}

/// The writes that record `request` as new: the request, and the mark that `reference` (if
/// it came with a secret) is used by it.
fn new_request_writes(
    store: &Store,
    request: &RequestRecord,
    reference: Option<&str>,
) -> Result<Vec<Write>, Error> {
    let mut writes = vec![store.sealed_create(
        Table::CaRaRequests,
        &request_key(&request.tenant, &request.id),
        &encode(request)?,
    )?];
    if let Some(reference) = reference {
        writes.push(store.sealed_create(
            Table::CaRaMarks,
            &used_mark(reference),
            &encode(&(&request.tenant, &request.id))?,
        )?);
    }
    Ok(writes)
}

/// Does the request's subject match what a secret is bound to (its RFC 4514 text, or its
/// common name alone)?
fn subject_matches(bound: &str, csr: &ca::Csr) -> bool {
    let normalize = |s: &str| s.replace(", ", ",");
    normalize(bound) == normalize(&csr.subject_text) || csr.common_name() == Some(bound)
}

/// Whether the request is the one `request` recorded (the same DER).
fn same_request(request: &RequestRecord, csr_der: &[u8]) -> bool {
    request.csr.0 == csr_der
}

impl CasHandle {
    /// Makes a label in the caller's tenant (audited as `create-label`): the CA must be the
    /// caller's, the profile one it can use; a name taken (by any tenant) is a conflict.
    pub async fn create_label(&self, who: &Caller, new: NewLabel) -> Result<LabelRecord, Error> {
        let entry = AuditEntry::new(
            &who.subject,
            who.tenant.as_str(),
            &new.label,
            "create-label",
        );
        if let Err(e) = check_label(&new.label) {
            return self.audit.refused(entry, e).await;
        }
        if let Err(e) = self.profile(who, &new.profile).await {
            return self.audit.refused(entry, e).await;
        }
        let record = LabelRecord {
            label: new.label,
            tenant: who.tenant.clone(),
            ca: new.ca,
            profile: new.profile,
            approval: new.approval,
            created_at: crate::now_unix(),
            created_by: who.subject.clone(),
        };
        let (st, made) = (Arc::clone(&self.store), record.clone());
        let write = blocking(move || {
            store::tenant_ca(&st, &made.tenant, &made.ca)?;
            if load_label(&st, &made.label)?.is_some() {
                return Err(Error::Conflict {
                    what: "a label of this name exists",
                });
            }
            Ok(st.sealed_create(Table::CaLabels, made.label.as_bytes(), &encode(&made)?)?)
        })
        .await;
        match write {
            Ok(write) => {
                self.audit.append(entry, vec![write]).await?;
                Ok(record)
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    /// The caller's tenant's labels.
    pub async fn labels(&self, who: &Caller) -> Result<Vec<LabelRecord>, Error> {
        let (st, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        blocking(move || tenant_labels(&st, &tenant)).await
    }

    /// Label `label`, whoever owns it (enrollment URLs name labels without a tenant). Labels
    /// never change once made: each is read from the store once, then from memory.
    pub async fn label(&self, label: &str) -> Result<LabelRecord, Error> {
        if let Some(known) = self.labels.get(label) {
            return Ok(known);
        }
        let (st, name) = (Arc::clone(&self.store), label.to_owned());
        let found = blocking(move || load_label(&st, &name))
            .await?
            .ok_or(Error::NotFound { what: "label" })?;
        self.labels.put(&found.label, &found);
        Ok(found)
    }

    /// Makes an enrollment secret for one of the caller's labels (audited as
    /// `create-ra-secret`, the secret itself never).
    pub async fn create_secret(&self, who: &Caller, new: NewSecret) -> Result<MadeSecret, Error> {
        let entry = AuditEntry::new(
            &who.subject,
            who.tenant.as_str(),
            &new.label,
            "create-ra-secret",
        );
        let ttl = new.ttl.unwrap_or(DEFAULT_SECRET_TTL);
        if ttl.is_zero() || ttl > MAX_SECRET_TTL {
            let e = refused("ttl", "more than nothing and at most 30 days (720h)");
            return self.audit.refused(entry, e).await;
        }
        if let Some(subject) = &new.subject {
            if subject.is_empty() || subject.len() > 1024 || subject.chars().any(char::is_control) {
                let e = refused("subject", "1 to 1024 characters, no control characters");
                return self.audit.refused(entry, e).await;
            }
        }
        let (st, tenant, by) = (
            Arc::clone(&self.store),
            who.tenant.clone(),
            who.subject.clone(),
        );
        let made = blocking(move || {
            match load_label(&st, &new.label)? {
                Some(l) if l.tenant == tenant => {}
                _ => return Err(Error::NotFound { what: "label" }),
            }
            let now = crate::now_unix();
            let record = SecretRecord {
                reference: random_id("ra-", 12)?,
                tenant,
                label: new.label,
                subject: new.subject,
                secret: oauth::random_token(32).map_err(|_| Error::Internal {
                    what: "random generator",
                })?,
                expires_at: now.saturating_add(ttl.as_secs()),
                created_at: now,
                created_by: by,
            };
            let write = st.sealed_create(
                Table::CaRaSecrets,
                record.reference.as_bytes(),
                &encode(&record)?,
            )?;
            Ok((record, write))
        })
        .await;
        match made {
            Ok((record, write)) => {
                let entry = AuditEntry::new(
                    &who.subject,
                    who.tenant.as_str(),
                    &format!("{}/{}", record.label, record.reference),
                    "create-ra-secret",
                );
                self.audit.append(entry, vec![write]).await?;
                Ok(MadeSecret {
                    reference: record.reference,
                    secret: record.secret,
                    expires_at: record.expires_at,
                })
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    /// The caller's tenant's requests (with `status`, if given), oldest first.
    pub async fn requests(
        &self,
        who: &Caller,
        status: Option<RequestStatus>,
    ) -> Result<Vec<RequestRecord>, Error> {
        let (st, tenant) = (Arc::clone(&self.store), who.tenant.clone());
        blocking(move || tenant_requests(&st, &tenant, status)).await
    }

    /// Request `id` of the caller's tenant.
    pub async fn request(&self, who: &Caller, id: &str) -> Result<RequestRecord, Error> {
        let (st, tenant, id) = (Arc::clone(&self.store), who.tenant.clone(), id.to_owned());
        blocking(move || load_request(&st, &tenant, &id))
            .await?
            .ok_or(Error::NotFound { what: "RA request" })
    }

    /// Approves pending request `id` of the caller's tenant: its certificate is issued and the
    /// decision recorded in one commit with one audit record (`ra-approve`). A request
    /// already decided is a conflict.
    pub async fn approve(&self, who: &Caller, id: &str) -> Result<RequestRecord, Error> {
        let entry = AuditEntry::new(&who.subject, who.tenant.as_str(), id, "ra-approve");
        let request = match self.pending(who, id).await {
            Ok(r) => r,
            Err(e) => return self.audit.refused(entry, e).await,
        };
        // Issued as the requester asked it (the audit record names the approver).
        let new = NewCert {
            profile: request.profile.clone(),
            request: match request.format {
                ca::csr::Format::Pkcs10 => CertRequest::Csr(request.csr.0.clone()),
                format => CertRequest::Checked(Box::new(
                    read_request(format, &request.csr.0).map_err(Error::Refused)?,
                )),
            },
            validity: None,
        };
        let mut decided = request;
        decided.status = RequestStatus::Issued;
        decided.decided_by = Some(who.subject.clone());
        decided.decided_at = Some(crate::now_unix());
        let (st, stored) = (Arc::clone(&self.store), decided.clone());
        let also: super::signer::AlsoWrite = Box::new(move |cert| {
            let mut stored = stored;
            stored.serial = Some(cert.serial.clone());
            let mut writes = vec![
                st.sealed_create(Table::CaRaMarks, &decided_mark(&stored.id), b"approved")?,
                put_request(&st, &stored)?,
            ];
            // An ACME account's request: the account may revoke what it ordered.
            if let Some(account) = stored.requested_by.strip_prefix("acme:") {
                writes.push(store::acme_claim_write(
                    &st,
                    &stored.ca,
                    &cert.serial,
                    account,
                )?);
            }
            Ok(writes)
        });
        let issued = self
            .issue_with(who, &decided.ca, new, Some(("ra-approve", also)))
            .await?;
        decided.serial = Some(issued.cert.serial);
        Ok(decided)
    }

    /// Rejects pending request `id` of the caller's tenant with `reason` (audited as
    /// `ra-reject`). A request already decided is a conflict.
    pub async fn reject(
        &self,
        who: &Caller,
        id: &str,
        reason: String,
    ) -> Result<RequestRecord, Error> {
        let entry = AuditEntry::new(&who.subject, who.tenant.as_str(), id, "ra-reject");
        if reason.len() > 1024 || reason.chars().any(char::is_control) {
            let e = refused("reason", "at most 1024 characters, no control characters");
            return self.audit.refused(entry, e).await;
        }
        let mut request = match self.pending(who, id).await {
            Ok(r) => r,
            Err(e) => return self.audit.refused(entry, e).await,
        };
        request.status = RequestStatus::Rejected;
        request.decided_by = Some(who.subject.clone());
        request.decided_at = Some(crate::now_unix());
        request.reason = Some(if reason.is_empty() {
            "rejected by the RA".to_owned()
        } else {
            reason
        });
        let (st, decided) = (Arc::clone(&self.store), request.clone());
        let writes = blocking(move || {
            Ok(vec![
                st.sealed_create(Table::CaRaMarks, &decided_mark(&decided.id), b"rejected")?,
                put_request(&st, &decided)?,
            ])
        })
        .await;
        match writes {
            Ok(writes) => {
                self.audit.append(entry, writes).await?;
                Ok(request)
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    async fn pending(&self, who: &Caller, id: &str) -> Result<RequestRecord, Error> {
        let request = self.request(who, id).await?;
        if request.status != RequestStatus::Pending {
            return Err(Error::Conflict {
                what: "the request is decided already",
            });
        }
        Ok(request)
    }

    /// Label `label`'s CA (its key type for `csrattrs`, its chain for `cacerts`).
    pub async fn label_ca(&self, label: &LabelRecord) -> Result<store::CaRecord, Error> {
        let (st, id) = (Arc::clone(&self.store), label.ca.clone());
        blocking(move || store::load_ca(&st, &id))
            .await?
            .ok_or(Error::NotFound { what: "CA" })
    }

    /// Enrolls `csr_der` (a PKCS#10 request, DER) at label `label` by `protocol` for `who`:
    /// issued at once (auto approval), queued (manual), or, for a request seen before (the
    /// same request again with the same secret), where that one stands. The request is read
    /// only once its sender is authenticated (an anonymous caller costs no signature check).
    /// Refusals are audited as failed `enroll`s; nothing is stored for them.
    pub async fn enroll(
        &self,
        label: &LabelRecord,
        who: Enrollee,
        csr_der: Vec<u8>,
        protocol: &'static str,
    ) -> Result<Enrolled, Error> {
        self.enroll_then(label, who, csr_der, protocol, None).await
    }

    /// [`Self::enroll`], with `then`'s writes committed with a new request.
    pub async fn enroll_then(
        &self,
        label: &LabelRecord,
        who: Enrollee,
        csr_der: Vec<u8>,
        protocol: &'static str,
        then: Option<Then>,
    ) -> Result<Enrolled, Error> {
        let format = ca::csr::Format::Pkcs10;
        self.enroll_as(label, who, (format, csr_der), protocol, then)
            .await
    }

    /// [`Self::enroll_then`] for a request in `format` (PKCS#10, or a CRMF `CertReqMsg`).
    pub async fn enroll_as(
        &self,
        label: &LabelRecord,
        who: Enrollee,
        (format, csr_der): (ca::csr::Format, Vec<u8>),
        protocol: &'static str,
        then: Option<Then>,
    ) -> Result<Enrolled, Error> {
        let entry = AuditEntry::new(
            &who.audit_subject(),
            label.tenant.as_str(),
            &label.label,
            "enroll",
        );
        match self.admit(label, &who, format, &csr_der).await {
            Ok(Admitted::Known(request)) => Ok(answer(self, &request).await?),
            Ok(Admitted::New(new)) => {
                self.submit(label, new, (format, csr_der), protocol, then)
                    .await
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    /// Checks who enrolls and the request: a new request to record, or one seen before.
    /// Checks who sends a request to `label` before anything of the request is read: a
    /// client of the label's tenant, an RA secret of the label (right, unexpired, unused or
    /// used for the request it was used for), a valid certificate of the label's CA. For work
    /// that must not be done for an unauthenticated caller (EST serverkeygen makes a key);
    /// a refusal is audited as a failed `enroll`. A used secret is refused here: a request
    /// made anew never is the one it was used for.
    pub async fn vouch(&self, label: &LabelRecord, who: &Enrollee) -> Result<(), Error> {
        let checked = match who {
            Enrollee::Client(caller) if caller.tenant != label.tenant => {
                Err(Error::NotFound { what: "label" })
            }
            Enrollee::Client(_) | Enrollee::Account { .. } => Ok(()),
            Enrollee::Secret { reference, secret } => {
                match self.vouched_secret(label, reference, secret).await {
                    Ok((_, None)) => Ok(()),
                    Ok((_, Some(_))) => Err(Error::Unauthenticated {
                        why: "this enrollment secret was used for another request",
                    }),
                    Err(e) => Err(e),
                }
            }
            Enrollee::Certificate(der) => self.vouched_certificate(label, der).await.map(|_| ()),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(e) => {
                let subject = who.audit_subject();
                let entry =
                    AuditEntry::new(&subject, label.tenant.as_str(), &label.label, "enroll");
                self.audit.refused(entry, e).await
            }
        }
    }

    /// RA secret `reference` checked against `secret` for `label`: its record and, if it was
    /// used, the request it was used for.
    async fn vouched_secret(
        &self,
        label: &LabelRecord,
        reference: &str,
        secret: &str,
    ) -> Result<(SecretRecord, Option<RequestRecord>), Error> {
        let (st, r) = (Arc::clone(&self.store), reference.to_owned());
        let (record, used) = blocking(move || {
            let used = match used_by(&st, &r)? {
                None => None,
                // Bound to an ACME account (external account binding).
                Some((_, id)) if id.starts_with(ACCOUNT_PREFIX) => {
                    return Err(Error::Unauthenticated {
                        why: "this enrollment secret was used for another request",
                    })
                }
                Some((tenant, id)) => {
                    Some(load_request(&st, &tenant, &id)?.ok_or(Error::corrupt(
                        Table::CaRaMarks,
                        &used_mark(&r),
                        "RA mark",
                    ))?)
                }
            };
            Ok((load_secret(&st, &r)?, used))
        })
        .await?;
        let wrong = || Error::Unauthenticated {
            why: "unknown, expired or wrong enrollment secret",
        };
        let record = record.ok_or_else(wrong)?;
        let fits = oauth::constant_time_eq(record.secret.as_bytes(), secret.as_bytes());
        if !fits
            || record.label != label.label
            || record.tenant != label.tenant
            || record.expires_at <= crate::now_unix()
        {
            return Err(wrong());
        }
        Ok((record, used))
    }

    /// A TLS client certificate checked for `label`: one its CA issued, valid now.
    async fn vouched_certificate(
        &self,
        label: &LabelRecord,
        der: &[u8],
    ) -> Result<store::CertRecord, Error> {
        let summary = ca::summary(der).map_err(|_| Error::Unauthenticated {
            why: "the TLS client certificate does not parse",
        })?;
        let (st, ca_id, serial) = (Arc::clone(&self.store), label.ca.clone(), summary.serial);
        let cert = blocking(move || store::load_cert(&st, &ca_id, &serial))
            .await?
            .filter(|c| c.certificate.0 == der)
            .ok_or(Error::Unauthenticated {
                why: "the TLS client certificate is not one this label's CA issued",
            })?;
        if cert.status(crate::now_unix()) != store::Status::Valid {
            return Err(Error::Unauthenticated {
                why: "the TLS client certificate is revoked, on hold or expired",
            });
        }
        Ok(cert)
    }

    async fn admit(
        &self,
        label: &LabelRecord,
        who: &Enrollee,
        format: ca::csr::Format,
        csr_der: &[u8],
    ) -> Result<Admitted, Error> {
        // Read (its signature checked) only once who sends it is known.
        let parse = || read_request(format, csr_der).map_err(Error::Refused);
        match who {
            Enrollee::Client(caller) => {
                if caller.tenant != label.tenant {
                    return Err(Error::NotFound { what: "label" });
                }
                Ok(Admitted::New(Admission {
                    csr: parse()?,
                    reference: None,
                    requested_by: caller.subject.clone(),
                }))
            }
            Enrollee::Secret { reference, secret } => {
                let (record, used) = self.vouched_secret(label, reference, secret).await?;
                let csr = parse()?;
                if let Some(bound) = &record.subject {
                    if !subject_matches(bound, &csr) {
                        return Err(refused(
                            "subject",
                            format!("this enrollment secret is for subject {bound:?} only"),
                        ));
                    }
                }
                match used {
                    Some(request) if same_request(&request, csr_der) => {
                        Ok(Admitted::Known(request))
                    }
                    Some(_) => Err(Error::Unauthenticated {
                        why: "this enrollment secret was used for another request",
                    }),
                    None => Ok(Admitted::New(Admission {
                        csr,
                        requested_by: format!("ra:{reference}"),
                        reference: Some(reference.clone()),
                    })),
                }
            }
            Enrollee::Account { account, names } => {
                let csr = parse()?;
                // Domain validation proves names only: no other subject attribute.
                if !csr.subject_is_common_name_only() {
                    return Err(refused(
                        "subject",
                        "an ACME request's subject has a common name at most",
                    ));
                }
                let mut asked: Vec<String> = Vec::with_capacity(csr.sans.len());
                for san in &csr.sans {
                    match san {
                        ca::San::Dns(name) => asked.push(name.to_ascii_lowercase()),
                        _ => {
                            return Err(refused(
                                "subject_alt_names",
                                "an ACME request names DNS names only",
                            ))
                        }
                    }
                }
                if let Some(cn) = csr.common_name() {
                    let cn = cn.to_ascii_lowercase();
                    if !names.contains(&cn) {
                        return Err(refused(
                            "subject",
                            "the common name is not one of the order's identifiers",
                        ));
                    }
                    if !asked.contains(&cn) {
                        asked.push(cn);
                    }
                }
                asked.sort();
                asked.dedup();
                let mut ordered = names.clone();
                ordered.sort();
                if asked != ordered {
                    return Err(refused(
                        "subject_alt_names",
                        "the request names exactly the order's identifiers",
                    ));
                }
                Ok(Admitted::New(Admission {
                    csr,
                    reference: None,
                    requested_by: format!("acme:{account}"),
                }))
            }
            Enrollee::Certificate(der) => {
                let cert = self.vouched_certificate(label, der).await?;
                let csr = parse()?;
                if cert.subject != csr.subject_text {
                    return Err(refused(
                        "subject",
                        "a renewal names the subject of the certificate it renews",
                    ));
                }
                // RFC 7030 §4.2.2: the same subject and subjectAltName; and the same profile
                // (a certificate of one label does not renew into another label's profile).
                let old_sans =
                    ca::csr::certificate_sans(&cert.certificate.0).map_err(Error::Refused)?;
                let same_sans = old_sans.len() == csr.sans.len()
                    && old_sans.iter().all(|s| csr.sans.contains(s));
                if !same_sans {
                    return Err(refused(
                        "subject_alt_names",
                        "a renewal names the subject alternative names of the certificate it renews",
                    ));
                }
                if cert.profile != label.profile {
                    return Err(refused(
                        "profile",
                        "a renewal is made at a label of the profile the certificate was issued under",
                    ));
                }
                Ok(Admitted::New(Admission {
                    csr,
                    reference: None,
                    requested_by: format!("certificate:{}/{}", cert.ca, cert.serial),
                }))
            }
        }
    }

    /// Records a new request: issued at once with its record (auto approval), or queued.
    async fn submit(
        &self,
        label: &LabelRecord,
        new: Admission,
        (format, csr_der): (ca::csr::Format, Vec<u8>),
        protocol: &'static str,
        then: Option<Then>,
    ) -> Result<Enrolled, Error> {
        let Admission {
            csr,
            reference,
            requested_by,
        } = new;
        let request = RequestRecord {
            id: random_id("rq-", 12)?,
            tenant: label.tenant.clone(),
            label: label.label.clone(),
            ca: label.ca.clone(),
            profile: label.profile.clone(),
            protocol: protocol.to_owned(),
            subject: csr.subject_text.clone(),
            csr: Der(csr_der),
            format,
            requested_by: requested_by.clone(),
            created_at: crate::now_unix(),
            status: RequestStatus::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            serial: None,
        };
        let who = Caller {
            tenant: label.tenant.clone(),
            subject: requested_by,
        };
        match label.approval {
            Approval::Manual => {
                let entry = AuditEntry::new(
                    &who.subject,
                    who.tenant.as_str(),
                    &format!("{}/{}", label.label, request.id),
                    "ra-request",
                );
                let (st, queued) = (Arc::clone(&self.store), request.clone());
                let writes = blocking(move || {
                    let mut writes = new_request_writes(&st, &queued, reference.as_deref())?;
                    if let Some(then) = then {
                        writes.extend(then(&queued)?);
                    }
                    Ok(writes)
                })
                .await;
                match writes {
                    Ok(writes) => {
                        self.audit.append(entry, writes).await?;
                        Ok(Enrolled::Pending { id: request.id })
                    }
                    Err(e) => self.audit.refused(entry, e).await,
                }
            }
            Approval::Auto => {
                let st = Arc::clone(&self.store);
                let also: super::signer::AlsoWrite = Box::new(move |cert| {
                    let mut issued = request;
                    issued.status = RequestStatus::Issued;
                    issued.serial = Some(cert.serial.clone());
                    let mut writes = new_request_writes(&st, &issued, reference.as_deref())?;
                    if let Some(then) = then {
                        writes.extend(then(&issued)?);
                    }
                    Ok(writes)
                });
                let new = NewCert {
                    profile: label.profile.clone(),
                    request: CertRequest::Checked(Box::new(csr)),
                    validity: None,
                };
                let issued = self
                    .issue_with(&who, &label.ca, new, Some(("enroll", also)))
                    .await?;
                Ok(Enrolled::Issued(Box::new(issued)))
            }
        }
    }
}

/// A new request, admitted, to record.
struct Admission {
    /// The request, read.
    csr: ca::Csr,
    /// The secret it used, if any (marked used with it).
    reference: Option<String>,
    /// Who asked.
    requested_by: String,
}

/// An enrollment admitted: a new request, or one seen before.
enum Admitted {
    New(Admission),
    Known(RequestRecord),
}

/// Where a request seen before stands, as an enrollment answer.
pub(super) async fn answer(cas: &CasHandle, request: &RequestRecord) -> Result<Enrolled, Error> {
    match request.status {
        RequestStatus::Pending => Ok(Enrolled::Pending {
            id: request.id.clone(),
        }),
        RequestStatus::Rejected => Ok(Enrolled::Rejected {
            reason: request
                .reason
                .clone()
                .unwrap_or_else(|| "rejected by the RA".to_owned()),
        }),
        RequestStatus::Issued => {
            let serial = request.serial.clone().ok_or(Error::Internal {
                what: "an issued RA request without a serial",
            })?;
            let (st, ca_id) = (Arc::clone(&cas.store), request.ca.clone());
            let (cert, ca) = blocking(move || {
                Ok((
                    store::load_cert(&st, &ca_id, &serial)?,
                    store::load_ca(&st, &ca_id)?,
                ))
            })
            .await?;
            let (cert, ca) = cert.zip(ca).ok_or(Error::NotFound {
                what: "certificate",
            })?;
            Ok(Enrolled::Issued(Box::new(IssuedCert {
                cert,
                chain: ca.issued_chain(),
                key_jwe: None,
            })))
        }
    }
}
