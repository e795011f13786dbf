//! The CMP server (RFC 4210 with RFC 9480's updates, the Lightweight CMP Profile of RFC 9483):
//! every message authenticated before anything else is read (a MAC keyed by the RA enrollment
//! secret its `senderKID` names, or a signature by a valid certificate of the label's CA,
//! first in `extraCerts`), certificate requests enrolled through the RA
//! ([`CasHandle::enroll_as`]), and each transaction remembered so its `certConf` and
//! `pollReq` find it. Answers are protected the way the request was: the same MAC (a fresh
//! salt), or the CA's signature with its chain in `extraCerts`; refusals before the sender is
//! known go unprotected, and are audited.
//!
//! Transactions live sealed in `ca_cmp_v1` under `tx/<transactionID, hex>`, created in the
//! commit that records the request they carry (a crash never leaves one without the other).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cryptoutil_protocols::ca::{self, CaError, Reason};
use cryptoutil_protocols::cmp::protection::{self, KeyedMac, Protection};
use cryptoutil_protocols::cmp::reply::{self, Head, PkiStatus, Reply, Status, Unprotected};
use cryptoutil_protocols::cmp::{self, Body, Failure, Header, Message, Refusal};
use cryptoutil_protocols::ids::TenantId;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};

use super::handle::{blocking, CasHandle};
use super::ra::{load_request, load_secret, Enrolled, Enrollee, LabelRecord, RequestStatus};
use super::store::{self, CaRecord};
use crate::audit::AuditEntry;
use crate::caller::Caller;
use crate::error::Error;
use crate::record::{encode, load};

/// Seconds a client waits before it polls again for a request the RA has not decided.
pub const CHECK_AFTER: u64 = 3;

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    /// The request waits for the RA.
    Waiting,
    /// The certificate was sent; its confirmation is awaited.
    Issued,
    /// Confirmed (or implicitly confirmed).
    Confirmed,
    /// Rejected by the RA, or the certificate by the client.
    Rejected,
}

/// One CMP transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// Its `transactionID`, hex.
    pub id: String,
    /// The tenant of its label.
    pub tenant: TenantId,
    /// The label it came through.
    pub label: String,
    /// The body that opened it (`ir`, `cr`, `kur`, `p10cr`).
    pub body: String,
    /// The request's `certReqId`.
    pub cert_req_id: i64,
    /// The RA request it carries.
    pub request: String,
    /// Who authenticated it (`ra:<reference>` or `certificate:<ca>/<serial>`): only they
    /// may continue it.
    pub sender: String,
    /// The last `senderNonce` this server sent in it, hex (the next `recipNonce`).
    pub nonce: String,
    /// Whether the client asked for implicit confirmation (granted).
    pub implicit: bool,
    /// Where it stands.
    pub state: TxState,
    /// The serial of its certificate, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// When it started, Unix seconds.
    pub created_at: u64,
}

fn tx_key(id: &str) -> Vec<u8> {
    format!("tx/{id}").into_bytes()
}

fn load_tx(st: &Store, id: &str) -> Result<Option<TransactionRecord>, Error> {
    load(st, Table::CaCmp, &tx_key(id), "CMP transaction")
}

/// Who sent a message, as its protection proves.
enum Sender {
    /// The holder of an RA secret (MAC).
    Secret {
        record: Box<super::ra::SecretRecord>,
        /// The MAC keyed by it, as the request had it (its answer is protected the same way).
        mac: Box<KeyedMac>,
    },
    /// The holder of a valid certificate of the label's CA (signature).
    Certificate { der: Vec<u8>, serial: String },
}

impl Sender {
    fn name(&self, ca: &str) -> String {
        match self {
            Sender::Secret { record, .. } => format!("ra:{}", record.reference),
            Sender::Certificate { serial, .. } => format!("certificate:{ca}/{serial}"),
        }
    }
}

/// A certificate response's outcome.
enum Outcome {
    Issued(Vec<u8>),
    Waiting,
    Rejected(Refusal),
}

/// An answer before it is written.
enum Answer {
    Cert {
        tag: u8,
        cert_req_id: i64,
        outcome: Outcome,
        /// Implicit confirmation granted (asked when the transaction started).
        implicit: bool,
        /// The root goes in `caPubs` (an `ir` authenticated by an RA secret, RFC 9483
        /// §4.1.1), when a certificate does.
        ca_pubs: bool,
    },
    /// `rp`: accepted, or the refusal.
    Rp(Option<Refusal>),
    Genp(Vec<reply::GenpItem>),
    PkiConf,
    PollRep {
        cert_req_id: i64,
    },
    Error(Refusal),
}

fn refusal(failure: Failure, reason: impl Into<String>) -> Refusal {
    Refusal::new(failure, reason)
}

/// An RA or CA error as CMP names it.
fn refusal_of(e: &Error) -> Refusal {
    match e {
        Error::Refused(CaError { field, reason }) => {
            let failure = match *field {
                "popo" => Failure::BadPop,
                _ => Failure::BadCertTemplate,
            };
            refusal(failure, format!("{field}: {reason}"))
        }
        Error::Unauthenticated { why } => refusal(Failure::NotAuthorized, *why),
        Error::Forbidden { reason } => refusal(Failure::NotAuthorized, *reason),
        Error::NotFound { what } => refusal(Failure::BadRequest, format!("no such {what}")),
        Error::Conflict { what } => refusal(Failure::BadRequest, *what),
        Error::Unavailable { .. } => refusal(Failure::SystemUnavail, "the CA is busy: try again"),
        _ => refusal(Failure::SystemFailure, "the CA could not answer"),
    }
}

fn random() -> Result<Vec<u8>, Error> {
    cryptoutil_protocols::cmp::nonce().map_err(|_| Error::Internal {
        what: "random generator",
    })
}

impl CasHandle {
    /// Answers one CMP message (DER) sent to label `label`: always a `PKIMessage` (DER), an
    /// `error` body for what is refused. Refusals are audited.
    pub async fn cmp(&self, label: &str, der: &[u8]) -> Vec<u8> {
        let message = match Message::parse(der) {
            Ok(m) => m,
            Err(unreadable) => {
                if super::ra::check_label(label).is_ok() {
                    self.cmp_audit("-", label, "unreadable", &unreadable.refusal)
                        .await;
                }
                return unprotected(unreadable.header.as_deref(), &[], &unreadable.refusal);
            }
        };
        let label = match self.label(label).await {
            Ok(l) => l,
            Err(_) => {
                let r = refusal(Failure::BadRequest, format!("no CMP label {label:?}"));
                // Audited under the name asked, if it could be a label at all.
                if super::ra::check_label(label).is_ok() {
                    self.cmp_audit("-", label, message.body.name(), &r).await;
                }
                return unprotected(Some(&message.header), &[], &r);
            }
        };
        let ca = match self.cmp_ca(&label).await {
            Ok(ca) => ca,
            Err(e) => return unprotected(Some(&message.header), &[], &refusal_of(&e)),
        };
        let (sender, tx) = match self.cmp_sender(&label, &message).await {
            Ok(found) => found,
            Err(r) => {
                let body = message.body.name();
                self.cmp_audit(label.tenant.as_str(), &label.label, body, &r)
                    .await;
                return unprotected(Some(&message.header), ca.certificate.0.as_slice(), &r);
            }
        };
        let nonce = match random() {
            Ok(n) => n,
            Err(e) => return unprotected(Some(&message.header), &[], &refusal_of(&e)),
        };
        let answer = match self
            .cmp_answer(&label, &ca, (&sender, tx), &message, &nonce)
            .await
        {
            Ok(a) => a,
            Err(e) => Answer::Error(refusal_of(&e)),
        };
        if let Answer::Error(r) | Answer::Rp(Some(r)) = &answer {
            let body = message.body.name();
            self.cmp_audit(label.tenant.as_str(), &label.label, body, r)
                .await;
        }
        match self
            .cmp_write(&ca, &sender, &message, &nonce, &answer)
            .await
        {
            Ok(der) => der,
            Err(e) => unprotected(Some(&message.header), &[], &refusal_of(&e)),
        }
    }

    /// The label's CA, as answers use it: its certificate, chain and key type never change,
    /// so its record is read once.
    async fn cmp_ca(&self, label: &LabelRecord) -> Result<CaRecord, Error> {
        if let Some(ca) = self.cmp_cas.get(label.ca.as_str()) {
            return Ok(ca);
        }
        let ca = self.label_ca(label).await?;
        self.cmp_cas.put(label.ca.as_str(), &ca);
        Ok(ca)
    }

    /// Audits a refusal of a `body` message at `label` (`cmp` on `<label>/<body>`).
    async fn cmp_audit(&self, tenant: &str, label: &str, body: &str, r: &Refusal) {
        let entry = AuditEntry::new("cmp", tenant, &format!("{label}/{body}"), "cmp");
        let e = Error::Refused(CaError {
            field: "cmp",
            reason: r.reason.clone(),
        });
        let _ = self.audit.refused::<()>(entry, e).await;
    }

    /// Authenticates `message` for `label` by its protection, and reads the transaction it
    /// names (if one exists) in the same trip to the store.
    async fn cmp_sender(
        &self,
        label: &LabelRecord,
        message: &Message,
    ) -> Result<(Sender, Option<TransactionRecord>), Refusal> {
        let unprotected = || refusal(Failure::BadMessageCheck, "the message is not protected");
        let tag = message.protection.clone().ok_or_else(unprotected)?;
        let alg = message
            .header
            .protection_alg
            .as_deref()
            .ok_or_else(unprotected)?;
        let system = |_| refusal(Failure::SystemFailure, "the CA could not answer");
        let tid = cryptoutil_protocols::hex(&message.header.transaction_id);
        let st = Arc::clone(&self.store);
        match Protection::parse(alg)? {
            Protection::Mac(mac) => {
                let wrong = || refusal(Failure::BadMessageCheck, "the MAC does not verify");
                let reference = message
                    .header
                    .sender_kid
                    .as_deref()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .filter(|k| !k.is_empty() && k.len() <= 128)
                    .ok_or_else(|| {
                        refusal(
                            Failure::BadMessageCheck,
                            "a MAC-protected message's senderKID names an RA secret",
                        )
                    })?
                    .to_owned();
                let (label_name, tenant) = (label.label.clone(), label.tenant.clone());
                let data = message.protected_part.clone();
                // The secret read, the MAC checked (the iterations are work: off the async
                // threads) and the transaction read, in one blocking trip.
                let (found, tx) = blocking(move || {
                    let Some(record) = load_secret(&st, &reference)? else {
                        return Ok((None, None));
                    };
                    let fits = record.label == label_name
                        && record.tenant == tenant
                        && record.expires_at > crate::now_unix();
                    if !fits {
                        return Ok((None, None));
                    }
                    let keyed = mac.keyed(record.secret.as_bytes());
                    if !keyed.verify(&data, &tag) {
                        return Ok((None, None));
                    }
                    Ok((Some((record, keyed)), load_tx(&st, &tid)?))
                })
                .await
                .map_err(system)?;
                let (record, mac) = found.ok_or_else(wrong)?;
                Ok((
                    Sender::Secret {
                        record: Box::new(record),
                        mac: Box::new(mac),
                    },
                    tx,
                ))
            }
            Protection::Signature(alg) => {
                let untrusted = || {
                    refusal(
                        Failure::SignerNotTrusted,
                        "the signer's certificate (first in extraCerts) is not a valid \
                         certificate of this label's CA",
                    )
                };
                let cert = message.extra_certs.first().ok_or_else(untrusted)?;
                let signer = cmp::identity(cert).ok_or_else(untrusted)?;
                if !protection::verify(&signer.spki, alg, &message.protected_part, &tag) {
                    return Err(refusal(
                        Failure::BadMessageCheck,
                        "the signature does not verify",
                    ));
                }
                let serial = ca::summary(cert).map_err(|_| untrusted())?.serial;
                let (ca_id, s, der) = (label.ca.clone(), serial.clone(), cert.clone());
                let (valid, tx) = blocking(move || {
                    let valid = store::load_cert(&st, &ca_id, &s)?.is_some_and(|c| {
                        c.certificate.0 == der
                            && c.status(crate::now_unix()) == store::Status::Valid
                    });
                    Ok((valid, if valid { load_tx(&st, &tid)? } else { None }))
                })
                .await
                .map_err(system)?;
                if !valid {
                    return Err(untrusted());
                }
                Ok((
                    Sender::Certificate {
                        der: cert.clone(),
                        serial,
                    },
                    tx,
                ))
            }
        }
    }

    async fn cmp_answer(
        &self,
        label: &LabelRecord,
        ca: &CaRecord,
        (sender, tx): (&Sender, Option<TransactionRecord>),
        message: &Message,
        nonce: &[u8],
    ) -> Result<Answer, Error> {
        let header = &message.header;
        let enrollment = match &message.body {
            Body::Ir(m) => Some(("ir", reply::IP, m.cert_req_id, &m.der)),
            Body::Cr(m) => Some(("cr", reply::CP, m.cert_req_id, &m.der)),
            Body::Kur(m) => Some(("kur", reply::KUP, m.cert_req_id, &m.der)),
            // RFC 9483 §4.1.4: a p10cr's certReqId is -1.
            Body::P10cr(csr) => Some(("p10cr", reply::CP, -1, csr)),
            _ => None,
        };
        if let Some((body, tag, id, der)) = enrollment {
            if tx.is_some() {
                return Ok(Answer::Error(refusal(
                    Failure::TransactionIdInUse,
                    "this transactionID was used already",
                )));
            }
            if body == "kur" && !matches!(sender, Sender::Certificate { .. }) {
                return Ok(Answer::Error(refusal(
                    Failure::NotAuthorized,
                    "kur is signed with the key of the certificate it updates",
                )));
            }
            return self
                .cmp_enroll(label, sender, header, nonce, (body, tag, id), der.clone())
                .await;
        }
        match &message.body {
            Body::CertConf(statuses) => match continued(label, sender, header, tx) {
                Ok(tx) => self.cmp_confirm(label, ca, tx, nonce, statuses).await,
                Err(r) => Ok(Answer::Error(r)),
            },
            Body::PollReq(ids) => match continued(label, sender, header, tx) {
                Ok(tx) => self.cmp_poll(tx, nonce, ids).await,
                Err(r) => Ok(Answer::Error(r)),
            },
            Body::Rr(details) => self.cmp_revoke(label, ca, sender, details).await,
            Body::Genm(asked) => {
                let wants_crl = asked.iter().any(|k| {
                    matches!(
                        k,
                        cryptoutil_protocols::cmp::InfoType::CurrentCrl
                            | cryptoutil_protocols::cmp::InfoType::CrlStatusList
                    )
                });
                let crl = match wants_crl {
                    true => Some(self.crl(&ca.id).await?.der.0),
                    false => None,
                };
                let chain = ca.issued_chain();
                let certs: Vec<&[u8]> = chain.iter().map(|c| c.0.as_slice()).collect();
                let info = reply::CaInfo {
                    chain: &certs,
                    crl: crl.as_deref(),
                    key: ca.key,
                };
                Ok(Answer::Genp(reply::genp(asked, &info)))
            }
            Body::Error => Ok(Answer::PkiConf),
            // Answered above.
            Body::Ir(_) | Body::Cr(_) | Body::Kur(_) | Body::P10cr(_) => Err(Error::Internal {
                what: "an enrollment not enrolled",
            }),
            Body::Other(n) => Ok(Answer::Error(refusal(
                Failure::BadRequest,
                format!("PKIBody [{n}] is not served here"),
            ))),
        }
    }

    /// Enrolls a certificate request (CRMF, or PKCS#10 for `p10cr`) through the RA, the new
    /// transaction recorded with it.
    async fn cmp_enroll(
        &self,
        label: &LabelRecord,
        sender: &Sender,
        header: &Header,
        nonce: &[u8],
        (body, tag, cert_req_id): (&'static str, u8, i64),
        der: Vec<u8>,
    ) -> Result<Answer, Error> {
        let id = cryptoutil_protocols::hex(&header.transaction_id);
        let who = match sender {
            Sender::Secret { record, .. } => Enrollee::Secret {
                reference: record.reference.clone(),
                secret: record.secret.clone(),
            },
            Sender::Certificate { der, .. } => Enrollee::Certificate(der.clone()),
        };
        let implicit = header.implicit_confirm;
        let tx = TransactionRecord {
            id,
            tenant: label.tenant.clone(),
            label: label.label.clone(),
            body: body.to_owned(),
            cert_req_id,
            request: String::new(),
            sender: sender.name(label.ca.as_str()),
            nonce: cryptoutil_protocols::hex(nonce),
            implicit,
            state: TxState::Waiting,
            serial: None,
            created_at: crate::now_unix(),
        };
        let recorded = Arc::new(AtomicBool::new(false));
        let (st, flag, mut new_tx) = (Arc::clone(&self.store), Arc::clone(&recorded), tx.clone());
        let then: super::ra::Then = Box::new(move |request| {
            new_tx.request = request.id.clone();
            new_tx.serial = request.serial.clone();
            new_tx.state = state_of(request.status, implicit);
            flag.store(true, Ordering::SeqCst);
            Ok(vec![st.sealed_create(
                Table::CaCmp,
                &tx_key(&new_tx.id),
                &encode(&new_tx)?,
            )?])
        });
        let format = match body {
            "p10cr" => ca::csr::Format::Pkcs10,
            _ => ca::csr::Format::Crmf,
        };
        let enrolled = self
            .enroll_as(label, who, (format, der), "cmp", Some(then))
            .await;
        let mut known_request = String::new();
        let outcome = match enrolled {
            Ok(Enrolled::Issued(issued)) => Outcome::Issued(issued.cert.certificate.0.clone()),
            Ok(Enrolled::Pending { id }) => {
                known_request = id;
                Outcome::Waiting
            }
            Ok(Enrolled::Rejected { reason }) => {
                Outcome::Rejected(refusal(Failure::NotAuthorized, reason))
            }
            Err(e) => Outcome::Rejected(refusal_of(&e)),
        };
        // A request seen before (the same request with the same secret, in a new
        // transaction): the RA answered where it stands; this transaction is recorded now
        // (created: never over another of the same id).
        if !recorded.load(Ordering::SeqCst) && !matches!(outcome, Outcome::Rejected(_)) {
            let mut tx = tx;
            tx.request = known_request;
            tx.state = match &outcome {
                Outcome::Issued(cert) => {
                    tx.serial = ca::summary(cert).ok().map(|s| s.serial);
                    state_of(RequestStatus::Issued, implicit)
                }
                _ => TxState::Waiting,
            };
            let st = Arc::clone(&self.store);
            blocking(move || {
                let write = st.sealed_create(Table::CaCmp, &tx_key(&tx.id), &encode(&tx)?)?;
                Ok(st.apply(vec![write])?)
            })
            .await?;
        }
        Ok(Answer::Cert {
            tag,
            cert_req_id,
            outcome,
            implicit,
            ca_pubs: body == "ir" && matches!(sender, Sender::Secret { .. }),
        })
    }

    async fn cmp_confirm(
        &self,
        label: &LabelRecord,
        ca: &CaRecord,
        mut tx: TransactionRecord,
        nonce: &[u8],
        statuses: &[cryptoutil_protocols::cmp::CertStatus],
    ) -> Result<Answer, Error> {
        let serial = match (tx.state, &tx.serial) {
            (TxState::Issued | TxState::Confirmed, Some(serial)) => serial.clone(),
            _ => {
                return Ok(Answer::Error(refusal(
                    Failure::BadRequest,
                    "this transaction has no certificate to confirm",
                )))
            }
        };
        let (st, ca_id, s) = (Arc::clone(&self.store), ca.id.clone(), serial.clone());
        let cert = blocking(move || store::load_cert(&st, &ca_id, &s))
            .await?
            .ok_or(Error::NotFound {
                what: "certificate",
            })?;
        // An empty certConf rejects every certificate (RFC 4210 §5.3.18).
        let accepted = match statuses {
            [] => false,
            [one] if one.cert_req_id == tx.cert_req_id => {
                let hash = protection::cert_hash(&cert.certificate.0, one.hash_alg.as_deref());
                if hash.as_deref() != Some(one.cert_hash.as_slice()) {
                    return Ok(Answer::Error(refusal(
                        Failure::BadRequest,
                        "certHash is not the hash of the certificate sent",
                    )));
                }
                one.accepted
            }
            _ => {
                return Ok(Answer::Error(refusal(
                    Failure::BadRequest,
                    "certConf names the one certificate of this transaction",
                )))
            }
        };
        if tx.state == TxState::Issued {
            if !accepted {
                // RFC 9483 §4.1.1: a certificate its subject rejects is revoked.
                let who = Caller {
                    tenant: label.tenant.clone(),
                    subject: format!("cmp:{}", tx.sender),
                };
                self.revoke(&who, &ca.id, &serial, Some(Reason::CessationOfOperation))
                    .await?;
            }
            tx.state = if accepted {
                TxState::Confirmed
            } else {
                TxState::Rejected
            };
            tx.nonce = cryptoutil_protocols::hex(nonce);
            self.cmp_save(tx).await?;
        }
        Ok(Answer::PkiConf)
    }

    /// Stores `tx` as it now stands.
    async fn cmp_save(&self, tx: TransactionRecord) -> Result<(), Error> {
        let st = Arc::clone(&self.store);
        blocking(move || Ok(st.put_sealed(Table::CaCmp, &tx_key(&tx.id), &encode(&tx)?)?)).await
    }

    async fn cmp_poll(
        &self,
        mut tx: TransactionRecord,
        nonce: &[u8],
        ids: &[i64],
    ) -> Result<Answer, Error> {
        if ids != [tx.cert_req_id] {
            return Ok(Answer::Error(refusal(
                Failure::BadRequest,
                "pollReq names the one request of this transaction",
            )));
        }
        if tx.state != TxState::Waiting {
            return Ok(Answer::Error(refusal(
                Failure::BadRequest,
                "this transaction does not wait",
            )));
        }
        let (st, tenant, id) = (
            Arc::clone(&self.store),
            tx.tenant.clone(),
            tx.request.clone(),
        );
        let request = blocking(move || load_request(&st, &tenant, &id))
            .await?
            .ok_or(Error::NotFound { what: "request" })?;
        let tag = match tx.body.as_str() {
            "ir" => reply::IP,
            "kur" => reply::KUP,
            _ => reply::CP,
        };
        let answer = match request.status {
            RequestStatus::Pending => Answer::PollRep {
                cert_req_id: tx.cert_req_id,
            },
            RequestStatus::Rejected => {
                tx.state = TxState::Rejected;
                Answer::Cert {
                    tag,
                    cert_req_id: tx.cert_req_id,
                    outcome: Outcome::Rejected(refusal(
                        Failure::NotAuthorized,
                        request
                            .reason
                            .unwrap_or_else(|| "rejected by the RA".into()),
                    )),
                    implicit: false,
                    ca_pubs: false,
                }
            }
            RequestStatus::Issued => {
                let serial = request.serial.ok_or(Error::Internal {
                    what: "an issued RA request without a serial",
                })?;
                let (st, ca_id, s) = (Arc::clone(&self.store), request.ca.clone(), serial.clone());
                let cert = blocking(move || store::load_cert(&st, &ca_id, &s))
                    .await?
                    .ok_or(Error::NotFound {
                        what: "certificate",
                    })?;
                tx.state = state_of(RequestStatus::Issued, tx.implicit);
                tx.serial = Some(serial);
                Answer::Cert {
                    tag,
                    cert_req_id: tx.cert_req_id,
                    outcome: Outcome::Issued(cert.certificate.0),
                    implicit: tx.implicit,
                    ca_pubs: tx.body == "ir" && tx.sender.starts_with("ra:"),
                }
            }
        };
        tx.nonce = cryptoutil_protocols::hex(nonce);
        self.cmp_save(tx).await?;
        Ok(answer)
    }

    /// Revokes the certificate that signed the request (RFC 9483 §4.2): a holder revokes its
    /// own certificate only.
    async fn cmp_revoke(
        &self,
        label: &LabelRecord,
        ca: &CaRecord,
        sender: &Sender,
        details: &cryptoutil_protocols::cmp::RevDetails,
    ) -> Result<Answer, Error> {
        let Sender::Certificate { serial, .. } = sender else {
            return Ok(Answer::Rp(Some(refusal(
                Failure::NotAuthorized,
                "rr is signed with the key of the certificate to revoke",
            ))));
        };
        let asked = details.serial.as_deref().map(ca::serial_hex);
        let issuer_fits = details.issuer.as_deref().is_none_or(|issuer| {
            cmp::identity(&ca.certificate.0).is_some_and(|c| c.name == issuer)
        });
        if asked.as_deref() != Some(serial.as_str()) || !issuer_fits {
            return Ok(Answer::Rp(Some(refusal(
                Failure::NotAuthorized,
                "rr names the certificate that signed it, and no other",
            ))));
        }
        let code = details.reason.unwrap_or(0);
        let Some(reason) = Reason::subscriber(u64::from(code)) else {
            return Ok(Answer::Rp(Some(refusal(
                Failure::BadRequest,
                format!("reason code {code} is not one a holder gives (0, 1, 3, 4, 5, 9)"),
            ))));
        };
        let who = Caller {
            tenant: label.tenant.clone(),
            subject: format!("cmp:certificate:{serial}"),
        };
        match self.revoke(&who, &ca.id, serial, Some(reason)).await {
            Ok(_) => Ok(Answer::Rp(None)),
            Err(Error::Conflict { .. }) => Ok(Answer::Rp(Some(refusal(
                Failure::CertRevoked,
                "the certificate is revoked already",
            )))),
            Err(e) => Err(e),
        }
    }

    /// Writes and protects `answer`: the request's MAC (a fresh salt) for a secret's holder,
    /// the CA's signature (its chain in `extraCerts`) for a certificate's.
    async fn cmp_write(
        &self,
        ca: &CaRecord,
        sender: &Sender,
        message: &Message,
        nonce: &[u8],
        answer: &Answer,
    ) -> Result<Vec<u8>, Error> {
        let chain = ca.issued_chain();
        let certs: Vec<&[u8]> = chain.iter().map(|c| c.0.as_slice()).collect();
        let root: Vec<&[u8]> = certs.last().copied().into_iter().collect();
        let header = &message.header;
        let me = cmp::identity(&ca.certificate.0).ok_or(Error::Internal {
            what: "reading a CA certificate",
        })?;
        let ca_name = me.name;
        let ca_key_id = me.key_id;
        // A MAC answer uses the request's parameters (salt and iterations: the key derived
        // once); a signed one the CA's algorithm.
        let alg = match sender {
            Sender::Secret { mac, .. } => mac.algorithm_der().to_vec(),
            Sender::Certificate { .. } => ca::signature_algorithm_der(ca.key),
        };
        let sender_kid = match sender {
            Sender::Secret { .. } => header.sender_kid.clone(),
            Sender::Certificate { .. } => ca_key_id,
        };
        let grant = matches!(
            answer,
            Answer::Cert {
                outcome: Outcome::Issued(_),
                implicit: true,
                ..
            }
        );
        let head = Head {
            pvno: header.pvno,
            sender: &ca_name,
            recipient: &header.sender,
            time: crate::now_unix(),
            protection_alg: Some(&alg),
            sender_kid: sender_kid.as_deref(),
            transaction_id: &header.transaction_id,
            sender_nonce: nonce,
            recip_nonce: &header.sender_nonce,
            implicit_confirm: grant,
        };
        let body = to_reply(answer, &root);
        let unsigned = Unprotected::new(&head, &body).map_err(|_| Error::Internal {
            what: "writing a CMP answer",
        })?;
        let part = unsigned.protected_part();
        match sender {
            Sender::Secret { mac, .. } => {
                let tag = mac.compute(&part);
                Ok(unsigned.finish(Some(&tag), &certs))
            }
            Sender::Certificate { .. } => {
                let signature = self.protect(&ca.tenant, &ca.id, part).await?;
                Ok(unsigned.finish(Some(&signature), &certs))
            }
        }
    }
}

/// The transaction `header` continues (`tx`, read with its sender), if `sender` started it
/// and the nonce it echoes is the last one sent.
fn continued(
    label: &LabelRecord,
    sender: &Sender,
    header: &Header,
    tx: Option<TransactionRecord>,
) -> Result<TransactionRecord, Refusal> {
    let tx = tx.ok_or_else(|| refusal(Failure::BadRequest, "no such transaction"))?;
    if tx.label != label.label || tx.sender != sender.name(label.ca.as_str()) {
        return Err(refusal(
            Failure::NotAuthorized,
            "this transaction is another sender's",
        ));
    }
    let echoed = header.recip_nonce.as_deref().map(cryptoutil_protocols::hex);
    if echoed.as_deref() != Some(tx.nonce.as_str()) {
        return Err(refusal(
            Failure::BadRecipientNonce,
            "recipNonce is not the nonce last sent",
        ));
    }
    Ok(tx)
}

fn state_of(status: RequestStatus, implicit: bool) -> TxState {
    match status {
        RequestStatus::Pending => TxState::Waiting,
        RequestStatus::Rejected => TxState::Rejected,
        RequestStatus::Issued if implicit => TxState::Confirmed,
        RequestStatus::Issued => TxState::Issued,
    }
}

fn to_reply<'a>(answer: &'a Answer, root: &'a [&'a [u8]]) -> Reply<'a> {
    let rejected = |r: &'a Refusal| Status {
        status: PkiStatus::Rejection,
        text: Some(r.reason.as_str()),
        failure: Some(r.failure),
    };
    match answer {
        Answer::Cert {
            tag,
            cert_req_id,
            outcome,
            ca_pubs,
            ..
        } => {
            let (status, cert) = match outcome {
                Outcome::Issued(cert) => (Status::ACCEPTED, Some(cert.as_slice())),
                Outcome::Waiting => (
                    Status {
                        status: PkiStatus::Waiting,
                        text: Some("the request waits for the RA"),
                        failure: None,
                    },
                    None,
                ),
                Outcome::Rejected(r) => (rejected(r), None),
            };
            let issued = cert.is_some();
            Reply::Cert {
                tag: *tag,
                cert_req_id: *cert_req_id,
                status,
                cert,
                ca_pubs: if *ca_pubs && issued { root } else { &[] },
            }
        }
        Answer::Rp(None) => Reply::Rp(Status::ACCEPTED),
        Answer::Rp(Some(r)) => Reply::Rp(rejected(r)),
        Answer::Genp(items) => Reply::Genp(items.clone()),
        Answer::PkiConf => Reply::PkiConf,
        Answer::PollRep { cert_req_id } => Reply::PollRep {
            cert_req_id: *cert_req_id,
            check_after: CHECK_AFTER,
        },
        Answer::Error(r) => Reply::Error(rejected(r)),
    }
}

/// An unprotected `error` answering `header` (if it could be read), `ca_name` (Name DER; none:
/// the NULL-DN) as its sender.
fn unprotected(header: Option<&Header>, ca_cert: &[u8], r: &Refusal) -> Vec<u8> {
    let ca_name = cmp::identity(ca_cert).map_or_else(|| vec![0x30, 0x00], |c| c.name);
    let null_dn = [0xa4, 0x02, 0x30, 0x00];
    let nonce = random().unwrap_or_else(|_| vec![0u8; 16]);
    let fallback = vec![0u8; 16];
    let head = Head {
        pvno: header.map_or(2, |h| h.pvno),
        sender: &ca_name,
        recipient: header.map_or(&null_dn[..], |h| h.sender.as_slice()),
        time: crate::now_unix(),
        protection_alg: None,
        sender_kid: None,
        transaction_id: header.map_or(fallback.as_slice(), |h| h.transaction_id.as_slice()),
        sender_nonce: &nonce,
        recip_nonce: header.map_or(fallback.as_slice(), |h| h.sender_nonce.as_slice()),
        implicit_confirm: false,
    };
    let status = Status {
        status: PkiStatus::Rejection,
        text: Some(r.reason.as_str()),
        failure: Some(r.failure),
    };
    Unprotected::new(&head, &Reply::Error(status))
        .map(|u| u.finish(None, &[]))
        .unwrap_or_default()
}
