//! The SCEP server (RFC 8894): `GetCACaps`, `GetCACert` (the label's CA's SCEP RA and the CA
//! chain), and `PKIOperation`: a message read, its signature checked, its envelope opened by
//! the CA's SCEP RA (an RSA key the CA's signer makes on first use, `Delegate::Scep`), and
//! answered with a `CertRep` the RA signs.
//!
//! - `PKCSReq`: enrolled through the RA ([`CasHandle::enroll_as`]), authenticated by its
//!   `challengePassword`, an RA enrollment secret written `<reference>:<secret>`.
//! - `RenewalReq`: signed by a valid certificate of the label's CA; enrolled as its renewal.
//! - `CertPoll` (and a request sent again with its transactionID): where the RA request of
//!   the transaction stands: PENDING, the certificate, or FAILURE.
//! - `GetCert`, `GetCRL`: a certificate of the label's CA by its serial, the CA's CRL.
//!
//! SCEP's key transport is RSA PKCS#1 v1.5, which FIPS 140-3 no longer approves: every
//! operation is refused (403) unless `ca.scep.allow_rsa_pkcs1v15_key_transport` is set.
//! Transactions live sealed in `ca_scep_v1` under
//! `tx/<label>/<transactionID, hex>/<signer key hash>`, written in the commit that records the
//! request they carry: only the key that started one may poll it.

use std::sync::Arc;

use cryptoutil_protocols::ca::{self, CaError};
use cryptoutil_protocols::scep::{
    self, FailInfo, MessageType, Ra, Refusal, Reply, Request, Status,
};
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::handle::{blocking, CasHandle};
use super::ra::{load_request, Enrolled, Enrollee, LabelRecord};
use super::store::{self, CaRecord};
use crate::audit::AuditEntry;
use crate::error::Error;
use crate::record::{encode, load};

/// Why SCEP is off unless configured on.
pub const OFF: &str = "SCEP is off: its key transport (RSA PKCS#1 v1.5) is outside the \
                       FIPS-approved set; set ca.scep.allow_rsa_pkcs1v15_key_transport to serve it";

/// An answer to a SCEP HTTP operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScepAnswer {
    /// 200 with this media type and body.
    Ok(&'static str, Vec<u8>),
    /// An HTTP error: status and reason.
    Http(u16, String),
}

/// One SCEP transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScepTransaction {
    /// Its transactionID.
    pub id: String,
    /// The label it came through.
    pub label: String,
    /// The tenant of the label.
    pub tenant: cryptoutil_protocols::ids::TenantId,
    /// The RA request it carries.
    pub request: String,
    /// The certificate that signed it (DER), for the record (the transaction's key names its
    /// key: only that key finds it).
    pub signer: super::store::Der,
    /// When it started, Unix seconds.
    pub created_at: u64,
}

/// `tx/<label>/<transactionID, hex>/<the signer's key, SHA-256, first 16 bytes, hex>`: a
/// transaction is its signer's (another key naming the same transactionID finds nothing).
fn tx_key(label: &str, id: &str, signer_spki: &[u8]) -> Vec<u8> {
    format!(
        "tx/{label}/{}/{}",
        cryptoutil_protocols::hex(id.as_bytes()),
        scep::key_name(signer_spki)
    )
    .into_bytes()
}

fn load_tx(st: &Store, key: &[u8]) -> Result<Option<ScepTransaction>, Error> {
    load(st, Table::CaScep, key, "SCEP transaction")
}

fn failure(fail: FailInfo, reason: impl Into<String>) -> Refusal {
    Refusal::new(fail, reason)
}

/// An RA or CA error as SCEP names it.
fn refusal_of(e: &Error) -> Refusal {
    match e {
        Error::Refused(CaError { field, reason }) => {
            failure(FailInfo::BadRequest, format!("{field}: {reason}"))
        }
        Error::Unauthenticated { why } => failure(FailInfo::BadRequest, *why),
        Error::Forbidden { reason } => failure(FailInfo::BadRequest, *reason),
        Error::NotFound { what } => failure(FailInfo::BadCertId, format!("no such {what}")),
        _ => failure(FailInfo::BadRequest, "the CA could not answer"),
    }
}

impl CasHandle {
    /// Answers SCEP `operation` at label `label` (`message`: the request, DER, for
    /// `PKIOperation`).
    pub async fn scep(&self, label: &str, operation: &str, message: &[u8]) -> ScepAnswer {
        let label = match self.label(label).await {
            Ok(l) => l,
            Err(_) => return ScepAnswer::Http(404, format!("no SCEP label {label:?}")),
        };
        if !self.settings().scep_pkcs1v15_key_transport {
            return ScepAnswer::Http(403, OFF.to_owned());
        }
        match operation {
            "GetCACaps" => ScepAnswer::Ok("text/plain", scep::CAPS.as_bytes().to_vec()),
            "GetCACert" => match self.scep_ca(&label).await {
                Ok((ca, ra)) => {
                    // The RA first, then the CA and the certificates above it.
                    let chain = ca.issued_chain();
                    let certs = std::iter::once(ra.certificate())
                        .chain(chain.iter().map(|c| c.0.as_slice()));
                    let body = cryptoutil_protocols::est::certs_only_message(certs);
                    ScepAnswer::Ok(scep::CA_RA_CERT, body)
                }
                Err(e) => ScepAnswer::Http(503, format!("the CA cannot answer: {e}")),
            },
            "GetNextCACert" => ScepAnswer::Http(
                404,
                "this CA has no rollover certificate (GetNextCACert is not in GetCACaps)"
                    .to_owned(),
            ),
            "PKIOperation" => self.scep_operation(&label, message).await,
            other => ScepAnswer::Http(400, format!("unknown SCEP operation {other:?}")),
        }
    }

    /// The label's CA and its SCEP RA.
    async fn scep_ca(&self, label: &LabelRecord) -> Result<(CaRecord, Arc<Ra>), Error> {
        let ca = self.label_ca(label).await?;
        let ra = self.scep_ra(&ca.tenant, &ca.id).await?;
        Ok((ca, ra))
    }

    async fn scep_audit(&self, label: &LabelRecord, what: &str, r: &Refusal) {
        let entry = AuditEntry::new(
            "scep",
            label.tenant.as_str(),
            &format!("{}/{what}", label.label),
            "scep",
        );
        let e = Error::Refused(CaError {
            field: "scep",
            reason: r.reason.clone(),
        });
        let _ = self.audit.refused::<()>(entry, e).await;
    }

    async fn scep_operation(&self, label: &LabelRecord, der: &[u8]) -> ScepAnswer {
        let request = match Request::parse(der) {
            Ok(r) => r,
            Err(e) => {
                let r = failure(FailInfo::BadRequest, e.to_string());
                self.scep_audit(label, "unreadable", &r).await;
                return ScepAnswer::Http(400, format!("not a SCEP pkiMessage: {e}"));
            }
        };
        let (ca, ra) = match self.scep_ca(label).await {
            Ok(found) => found,
            Err(e) => return ScepAnswer::Http(503, format!("the CA cannot answer: {e}")),
        };
        let status = match self.scep_status(label, &ca, &ra, &request).await {
            Ok(s) => s,
            Err(r) => {
                self.scep_audit(label, request.message_type.name(), &r)
                    .await;
                Status::Failure(r.fail)
            }
        };
        let reply = blocking(move || {
            let reply = Reply {
                request: &request,
                status,
                now: crate::now_unix(),
            };
            ra.reply(&reply).map_err(|_| Error::Internal {
                what: "signing a SCEP reply",
            })
        })
        .await;
        match reply {
            Ok(der) => ScepAnswer::Ok(scep::PKI_MESSAGE, der),
            Err(e) => ScepAnswer::Http(500, e.to_string()),
        }
    }

    /// The outcome of a request: its signature checked and its envelope opened to what its
    /// type carries (off the async threads: RSA), then acted on by type.
    async fn scep_status(
        &self,
        label: &LabelRecord,
        ca: &CaRecord,
        ra: &Arc<Ra>,
        request: &Request,
    ) -> Result<Status, Refusal> {
        let (ra2, req) = (Arc::clone(ra), request.clone());
        let content = blocking(move || {
            Ok(req.verify().and_then(|()| {
                let kind = req.message_type;
                ra2.open_with(&req.envelope, |plain| match kind {
                    MessageType::PkcsReq | MessageType::RenewalReq => {
                        let csr = ca::csr::parse(plain).ok()?;
                        Some(Content::Request {
                            der: plain.to_vec(),
                            spki: csr.spki_der,
                        })
                    }
                    _ => scep::issuer_and(plain)
                        .map(|(issuer, second)| Content::Names { issuer, second }),
                })
            }))
        })
        .await
        .map_err(|e| refusal_of(&e))??;
        let system = |e: Error| refusal_of(&e);
        let signer_spki = cryptoutil_protocols::cmp::identity(&request.signer)
            .map(|i| i.spki)
            .ok_or_else(|| {
                failure(
                    FailInfo::BadMessageCheck,
                    "the signer's certificate does not parse",
                )
            })?;
        let key = tx_key(&label.label, &request.transaction_id, &signer_spki);
        let (st, lookup) = (Arc::clone(&self.store), key.clone());
        let existing = || async move { blocking(move || load_tx(&st, &lookup)).await };
        match (request.message_type, content) {
            (MessageType::CertPoll, _) => {
                // Only the key that started a transaction finds it.
                let tx = existing().await.map_err(system)?.ok_or_else(|| {
                    failure(
                        FailInfo::BadCertId,
                        "no transaction of this signer with this transactionID",
                    )
                })?;
                self.scep_poll(&tx, None)
                    .await?
                    .ok_or_else(|| failure(FailInfo::BadCertId, "no such transaction"))
            }
            (MessageType::PkcsReq | MessageType::RenewalReq, Content::Request { der, spki }) => {
                if request.message_type == MessageType::PkcsReq && spki != signer_spki {
                    return Err(failure(
                        FailInfo::BadRequest,
                        "a PKCSReq is signed with its request's key (RFC 8894 §2.3)",
                    ));
                }
                let tx = existing().await.map_err(system)?;
                if let Some(tx) = &tx {
                    // Sent again: where the request stands, while it waits or if it is the
                    // same request; a new request starts the transaction over.
                    if let Some(status) = self.scep_poll(tx, Some(&der)).await.transpose() {
                        return status;
                    }
                }
                self.scep_enroll(label, request, key, tx.is_some(), der)
                    .await
            }
            (MessageType::GetCert | MessageType::GetCrl, Content::Names { issuer, second }) => {
                if issuer != ca_subject(ca) {
                    return Err(failure(FailInfo::BadCertId, "not this label's CA"));
                }
                if request.message_type == MessageType::GetCrl {
                    let crl = self.crl(&ca.id).await.map_err(system)?;
                    return Ok(Status::Success(scep::crl_only_message(&crl.der.0)));
                }
                let (st, ca_id, serial) = (
                    Arc::clone(&self.store),
                    ca.id.clone(),
                    ca::serial_hex(&second),
                );
                let cert = blocking(move || store::load_cert(&st, &ca_id, &serial))
                    .await
                    .map_err(system)?
                    .ok_or_else(|| failure(FailInfo::BadCertId, "no such certificate"))?;
                Ok(Status::Success(
                    cryptoutil_protocols::est::certs_only_message([cert.certificate.0.as_slice()]),
                ))
            }
            _ => Err(failure(FailInfo::BadRequest, "not a request")),
        }
    }

    /// Enrolls the request of a `PKCSReq` (by its challenge password) or `RenewalReq` (by
    /// its signer) through the RA; the transaction (at `key`) is recorded with the request,
    /// replacing an older one of the same signer and transactionID.
    async fn scep_enroll(
        &self,
        label: &LabelRecord,
        request: &Request,
        key: Vec<u8>,
        replaces: bool,
        csr: Vec<u8>,
    ) -> Result<Status, Refusal> {
        let who = match request.message_type {
            MessageType::RenewalReq => Enrollee::Certificate(request.signer.clone()),
            _ => {
                let challenge = scep::challenge_password(&csr).ok_or_else(|| {
                    failure(
                        FailInfo::BadRequest,
                        "a PKCSReq carries a challengePassword: an RA enrollment secret, \
                         <reference>:<secret>",
                    )
                })?;
                let (reference, secret) = challenge.split_once(':').ok_or_else(|| {
                    failure(
                        FailInfo::BadRequest,
                        "the challengePassword is <reference>:<secret> of an RA enrollment secret",
                    )
                })?;
                Enrollee::Secret {
                    reference: reference.to_owned(),
                    secret: Zeroizing::new(secret.to_owned()),
                }
            }
        };
        let tx = ScepTransaction {
            id: request.transaction_id.clone(),
            label: label.label.clone(),
            tenant: label.tenant.clone(),
            request: String::new(),
            signer: super::store::Der(request.signer.clone()),
            created_at: crate::now_unix(),
        };
        let st = Arc::clone(&self.store);
        let then: super::ra::Then = Box::new(move |record| {
            let mut tx = tx;
            tx.request = record.id.clone();
            let value = encode(&tx)?;
            Ok(vec![if replaces {
                st.sealed_write(Table::CaScep, &key, &value)?
            } else {
                st.sealed_create(Table::CaScep, &key, &value)?
            }])
        });
        let enrolled = self
            .enroll_as(
                label,
                who,
                (ca::csr::Format::Pkcs10, csr),
                "scep",
                Some(then),
            )
            .await
            .map_err(|e| refusal_of(&e))?;
        outcome(enrolled)
    }

    /// Where a transaction's RA request stands; with `again` (a request sent again), only
    /// while it waits or when it is the same request (else `None`: a new one).
    async fn scep_poll(
        &self,
        tx: &ScepTransaction,
        again: Option<&[u8]>,
    ) -> Result<Option<Status>, Refusal> {
        let (st, tenant, id) = (
            Arc::clone(&self.store),
            tx.tenant.clone(),
            tx.request.clone(),
        );
        let request = blocking(move || load_request(&st, &tenant, &id))
            .await
            .map_err(|e| refusal_of(&e))?
            .ok_or_else(|| failure(FailInfo::BadCertId, "the transaction's request is gone"))?;
        if let Some(csr) = again {
            let waiting = request.status == super::ra::RequestStatus::Pending;
            if !waiting && request.csr.0 != csr {
                return Ok(None);
            }
        }
        let enrolled = super::ra::answer(self, &request)
            .await
            .map_err(|e| refusal_of(&e))?;
        outcome(enrolled).map(Some)
    }
}

/// What an envelope carried.
enum Content {
    /// A PKCS#10 request (DER) and its key (SubjectPublicKeyInfo DER).
    Request { der: Vec<u8>, spki: Vec<u8> },
    /// An IssuerAndSerialNumber or IssuerAndSubject: the issuer and the second part.
    Names { issuer: Vec<u8>, second: Vec<u8> },
}

/// The CA's subject (Name DER), as `IssuerAndSerialNumber` names it.
fn ca_subject(ca: &CaRecord) -> Vec<u8> {
    cryptoutil_protocols::cmp::identity(&ca.certificate.0)
        .map(|i| i.name)
        .unwrap_or_default()
}

/// An RA outcome as a `CertRep` status: the certificate with its chain.
fn outcome(enrolled: Enrolled) -> Result<Status, Refusal> {
    match enrolled {
        Enrolled::Issued(issued) => {
            let certs = std::iter::once(issued.cert.certificate.0.as_slice())
                .chain(issued.chain.iter().map(|c| c.0.as_slice()));
            Ok(Status::Success(
                cryptoutil_protocols::est::certs_only_message(certs),
            ))
        }
        Enrolled::Pending { .. } => Ok(Status::Pending),
        Enrolled::Rejected { reason } => Err(failure(FailInfo::BadRequest, reason)),
    }
}
