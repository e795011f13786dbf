//! The `CaSigner` actor: one per CA in use, a child of the CA's keyed supervisor
//! (`ca/signers`), named `ca/signer/<id>`, started on demand and stopped after `idle` without
//! messages. It holds the CA's unsealed key and its revocation state, allocates serials,
//! signs certificates (of subordinate CAs too) and CRLs, and answers only once the audit
//! record (committed with what the operation stored) is durable.
//!
//! Issuance never waits on the store in the mailbox: the certificate's record is *created*
//! with its audit record by the `AuditLog` actor, so a serial that exists (even one a crashed
//! incarnation allocated) fails the commit instead of being reused. Revocations and CRLs are
//! one at a time: the mailbox waits for their commit, so each CRL number is used once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cryptoutil_protocols::ca::ocsp::{self, IssuerHashes, Refusal, Responder};
use cryptoutil_protocols::ca::tsa::{self, Tsa};
use cryptoutil_protocols::ca::{self, CaSpec, Csr, IssuingCa, Profile, Reason, Urls};
use cryptoutil_protocols::ids::{CaId, TenantId};
use cryptoutil_protocols::scep;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::store::{self, CaRecord, CertRecord, CrlRecord, Delegate, Der, Revocation};
use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::caller::Caller;
use crate::error::Error;
use crate::supervisor::keyed::Keyed;

/// A subordinate CA for its parent's signer to certify.
pub struct NewChild {
    /// Its record, all but the certificate's fields (the parent fills them).
    pub record: CaRecord,
    /// What its certificate says.
    pub spec: CaSpec,
    /// Its private key, PKCS#8.
    pub key: Zeroizing<Vec<u8>>,
}

/// A certificate just issued: its record and its chain (the issuing CA first).
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The record.
    pub cert: CertRecord,
    /// The issuing CA's certificate and the ones above it.
    pub chain: Vec<Der>,
    /// For a key the service made: its PKCS#8 as a compact JWE to the caller's key.
    pub key_jwe: Option<String>,
}

/// Writes made from a certificate just signed, committed with it and its audit record (or
/// the certificate is not issued): how the RA records which request a certificate answers.
pub type AlsoWrite = Box<dyn FnOnce(&CertRecord) -> Result<Vec<Write>, Error> + Send>;

/// A certificate to issue: a checked request under a profile.
pub struct Order {
    /// The profile.
    pub profile: Profile,
    /// The request, its signature checked.
    pub csr: Csr,
    /// The validity asked for (none: the profile's default).
    pub validity: Option<Duration>,
    /// More writes to commit with the certificate (the RA's record of the request).
    pub also: Option<AlsoWrite>,
}

/// Messages of a `CaSigner`.
pub enum CaSignerMsg {
    /// Issue a certificate for a checked request under `profile`.
    Issue {
        /// Who asks.
        who: Caller,
        /// The audit operation (`issue`, `issue-server-key`, `enroll`, `ra-approve`).
        op: &'static str,
        /// What to issue.
        order: Box<Order>,
        /// The issued certificate's record and chain.
        reply: RpcReplyPort<Result<IssuedCert, Error>>,
    },
    /// Certify a subordinate CA and store it (with its key and the parent's record of it).
    SignCa {
        /// Who asks.
        who: Caller,
        /// An explicit operator action (an offline CA's key is loaded for it).
        explicit: bool,
        /// The new CA.
        child: Box<NewChild>,
        /// Its record, certificate included.
        reply: RpcReplyPort<Result<CaRecord, Error>>,
    },
    /// Revoke a certificate (`reason`), or release it from hold (`None`).
    Revoke {
        /// Who asks.
        who: Caller,
        /// Its serial.
        serial: String,
        /// Why; none releases a hold.
        reason: Option<Reason>,
        /// The certificate's record as it now is.
        reply: RpcReplyPort<Result<CertRecord, Error>>,
    },
    /// The current CRL, signed anew if half its lifetime has passed.
    Crl {
        /// Who asks (the audit record of a new CRL names them).
        who: String,
        /// An operator's explicit request: sign a CRL now (an offline CA's key is loaded for
        /// it), valid for `lifetime` if given.
        explicit: Option<Option<Duration>>,
        /// The CRL.
        reply: RpcReplyPort<Result<CrlRecord, Error>>,
    },
    /// Answer an OCSP request (its ids name this CA): a complete `OCSPResponse`.
    Ocsp {
        /// The parsed request.
        request: Box<ocsp::Request>,
        /// The DER response.
        reply: RpcReplyPort<Result<Vec<u8>, Error>>,
    },
    /// Time-stamp a request (RFC 3161): a complete `TimeStampResp`.
    Stamp {
        /// The parsed request.
        request: Box<tsa::Request>,
        /// The DER response.
        reply: RpcReplyPort<Result<Vec<u8>, Error>>,
    },
    /// Sign a CMP answer's protected part with the CA's key (with the algorithm
    /// `ca::signature_algorithm_der` names for its key type).
    Protect {
        /// The bytes to sign.
        data: Vec<u8>,
        /// The signature.
        reply: RpcReplyPort<Result<Vec<u8>, Error>>,
    },
    /// The CA's SCEP RA (made first if it has none, or less than a week left): SCEP
    /// handlers decrypt and sign with it off the signer's mailbox.
    ScepRa {
        /// The RA.
        reply: RpcReplyPort<Result<Arc<scep::Ra>, Error>>,
    },
    /// Take the CA offline (its key leaves memory and is used only by explicit operator
    /// actions) or bring it back online.
    SetOffline {
        /// Who asks.
        who: Caller,
        /// Offline (true) or online.
        offline: bool,
        /// The CA's record as it now is.
        reply: RpcReplyPort<Result<CaRecord, Error>>,
    },
    /// Internal: stop if unused for `idle`.
    IdleCheck,
    /// Internal (replicas share the store): read what other replicas changed.
    Refresh,
    /// Fault injection: panic.
    Crash,
}

/// How often a signer whose store other replicas share looks for their changes: how long
/// its CRL and OCSP answers may miss a revocation made through another replica.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct CaSigner;

/// Start arguments.
#[derive(Clone)]
pub struct SignerArgs {
    store: Arc<Store>,
    audit: AuditHandle,
    id: CaId,
    idle: Duration,
    settings: Arc<super::CaSettings>,
    /// Other replicas share the store.
    shared: bool,
}

/// The CA and its bookkeeping.
pub struct Running {
    args: SignerArgs,
    ca: CaRecord,
    /// The CA's key, loaded, with its certificate's limits; none while the CA is offline.
    signer: Option<ca::Signer>,
    /// Where certificates it issues point relying parties.
    urls: Urls,
    /// Revoked and held certificates by serial.
    revoked: BTreeMap<String, Revocation>,
    /// The current CRL, if one was made.
    crl: Option<CrlRecord>,
    /// How OCSP certificate ids name this CA.
    hashes: IssuerHashes,
    /// The delegated OCSP responder, once made.
    responder: Option<Responder>,
    /// The time-stamping authority, once made.
    tsa: Option<Tsa>,
    /// The SCEP RA, once made (loaded on first use).
    scep: Option<Arc<scep::Ra>>,
    /// Signed answers to nonce-less single-id requests by the id's DER, with their
    /// `thisUpdate`: served until half their lifetime has passed, dropped on any revocation.
    ocsp_cache: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    last_used: Instant,
}

/// What another replica of a shared store changed.
enum Elsewhere {
    Nothing,
    /// A revocation, a release or a new CRL.
    Crl,
    /// The CA record (offline or online, renewed).
    Ca,
}

/// Blocking: CA `id`'s revoked and held certificates by serial, and its current CRL.
fn revocations(
    store: &Store,
    id: &CaId,
) -> Result<(BTreeMap<String, Revocation>, Option<CrlRecord>), Error> {
    let revoked = store::certs(store, id)?
        .into_iter()
        .filter_map(|c| c.revocation.map(|r| (c.serial, r)))
        .collect();
    Ok((revoked, store::load_crl(store, id)?))
}

/// A CRL record's numbers and time: a different one is another CRL.
fn crl_version(crl: Option<&CrlRecord>) -> Option<(u64, Option<u64>, u64)> {
    crl.map(|c| (c.number, c.delta.as_ref().map(|(d, _)| *d), c.this_update))
}

/// Whether a new complete CRL becomes the base its delta CRLs count from.
enum Rebase {
    /// A scheduled or explicit CRL: the new base.
    Yes,
    /// A change: the base stays; a hold released now (serial, when) joins the delta.
    No { released: Option<(String, u64)> },
}

/// A delegate, loaded.
enum Loaded {
    Ocsp(Responder),
    Tsa(Tsa),
    Scep(Arc<scep::Ra>),
}

/// Most cached OCSP answers per CA (the cache starts over past it).
const OCSP_CACHE_MAX: usize = 100_000;
/// A delegate's certificate (OCSP responder, TSA) is renewed when it has less than this left.
const DELEGATE_RENEW: u64 = 7 * 86_400;

impl Actor for CaSigner {
    type Msg = CaSignerMsg;
    type State = Running;
    type Arguments = SignerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<CaSignerMsg>,
        args: SignerArgs,
    ) -> Result<Running, ActorProcessingErr> {
        let (store, id) = (Arc::clone(&args.store), args.id.clone());
        let policy = args.settings.tsa_policy_der();
        let (ca, key, revoked, crl, responder, tsa) = tokio::task::spawn_blocking(move || {
            let ca = store::load_ca(&store, &id)?.ok_or(Error::NotFound { what: "CA" })?;
            let key = match ca.offline {
                true => zeroize::Zeroizing::new(Vec::new()),
                false => store::load_key(&store, &id)?,
            };
            let (revoked, crl) = revocations(&store, &id)?;
            let table = cryptoutil_storage::Table::CaKeys;
            let corrupt = |what| {
                let id = id.clone();
                move |_| Error::corrupt(table, id.as_bytes(), what)
            };
            let responder = store::load_delegate(&store, &id, Delegate::Ocsp)?
                .map(|(key, cert)| Responder::new(&key, &cert).map_err(corrupt("OCSP responder")))
                .transpose()?;
            let tsa = store::load_delegate(&store, &id, Delegate::Tsa)?
                .map(|(key, cert)| Tsa::new(&key, &cert, &policy).map_err(corrupt("TSA")))
                .transpose()?;
            Ok::<_, Error>((ca, key, revoked, crl, responder, tsa))
        })
        .await??;
        let hashes = IssuerHashes::of(&ca.certificate.0).map_err(|_| Error::Internal {
            what: "reading a CA certificate",
        })?;
        me.send_interval(args.idle.max(Duration::from_millis(10)) / 2, || {
            CaSignerMsg::IdleCheck
        });
        if args.shared {
            me.send_interval(REFRESH, || CaSignerMsg::Refresh);
        }
        let urls = args.settings.urls(&ca.id);
        // An offline CA's key stays sealed: loaded only for an explicit operator action.
        let signer = match ca.offline {
            true => None,
            false => Some(prepare(&ca, &key)?),
        };
        drop(key);
        Ok(Running {
            args,
            ca,
            signer,
            urls,
            revoked,
            crl,
            hashes,
            responder,
            tsa,
            scep: None,
            ocsp_cache: HashMap::new(),
            last_used: Instant::now(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CaSignerMsg>,
        msg: CaSignerMsg,
        st: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(msg, CaSignerMsg::IdleCheck | CaSignerMsg::Refresh) {
            st.last_used = Instant::now();
        }
        match msg {
            CaSignerMsg::Issue {
                who,
                op,
                order,
                reply,
            } => st.issue(&who, op, *order, reply),
            CaSignerMsg::SignCa {
                who,
                explicit,
                child,
                reply,
            } => st.sign_ca(&who, explicit, *child, reply),
            CaSignerMsg::Revoke {
                who,
                serial,
                reason,
                reply,
            } => {
                let _ = reply.send(st.revoke(&who, &serial, reason).await);
            }
            CaSignerMsg::Crl {
                who,
                explicit,
                reply,
            } => {
                let _ = reply.send(st.current_crl(&who, explicit).await);
            }
            CaSignerMsg::SetOffline {
                who,
                offline,
                reply,
            } => {
                let _ = reply.send(st.set_offline(&who, offline).await);
            }
            CaSignerMsg::Ocsp { request, reply } => {
                let _ = reply.send(st.ocsp(&request).await);
            }
            CaSignerMsg::Stamp { request, reply } => {
                let _ = reply.send(st.stamp(&request).await);
            }
            CaSignerMsg::Protect { data, reply } => {
                let signed = st.key(false).and_then(|key| {
                    key.protect(&data).map_err(|_| Error::Internal {
                        what: "signing a CMP answer",
                    })
                });
                let _ = reply.send(signed);
            }
            CaSignerMsg::ScepRa { reply } => {
                let _ = reply.send(st.scep_ra().await);
            }
            CaSignerMsg::IdleCheck => {
                if st.last_used.elapsed() >= st.args.idle {
                    me.stop(Some("idle".into()));
                }
            }
            CaSignerMsg::Refresh => match st.changed_elsewhere().await {
                Ok(Elsewhere::Nothing) => {}
                Ok(Elsewhere::Crl) => {
                    if let Err(e) = st.sync().await {
                        tracing::warn!(error = %e, "reading revocations again failed");
                    }
                }
                // Taken offline or online, renewed: this signer starts again from the
                // record when next asked.
                Ok(Elsewhere::Ca) => me.stop(Some("the CA changed through another replica".into())),
                Err(e) => tracing::warn!(error = %e, "looking for other replicas' changes failed"),
            },
            CaSignerMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: CaSigner crash requested");
                }
            }
        }
        Ok(())
    }
}

/// `ca`'s key prepared for signing.
fn prepare(ca: &CaRecord, key: &[u8]) -> Result<ca::Signer, Error> {
    ca::Signer::new(&IssuingCa {
        cert_der: &ca.certificate.0,
        key_pkcs8: key,
        key_type: ca.key,
    })
    .map_err(|_| {
        Error::corrupt(
            cryptoutil_storage::Table::CaKeys,
            ca.id.as_bytes(),
            "CA key",
        )
    })
}

/// The CA's key for one use: the one held, or an offline CA's, loaded for an explicit operator
/// action and dropped after it.
enum KeyUse<'a> {
    Held(&'a ca::Signer),
    Loaded(Box<ca::Signer>),
}

impl std::ops::Deref for KeyUse<'_> {
    type Target = ca::Signer;

    fn deref(&self) -> &ca::Signer {
        match self {
            KeyUse::Held(s) => s,
            KeyUse::Loaded(s) => s,
        }
    }
}

/// What an offline CA answers to anything but an explicit operator action.
const OFFLINE: Error = Error::Forbidden {
    reason: "the CA is offline: its key signs only on an explicit operator action \
             (a subordinate CA with offline_parent, a revocation, POST .../crl)",
};

// === impl Running ===

impl Running {
    /// The CA's key: held while online; an offline CA's only for an `explicit` action.
    fn key(&self, explicit: bool) -> Result<KeyUse<'_>, Error> {
        match &self.signer {
            Some(signer) => Ok(KeyUse::Held(signer)),
            None if explicit => {
                let key = store::load_key(&self.args.store, &self.ca.id)?;
                Ok(KeyUse::Loaded(Box::new(prepare(&self.ca, &key)?)))
            }
            None => Err(OFFLINE),
        }
    }

    fn entry(&self, who: &Caller, what: &str, op: &'static str) -> AuditEntry {
        AuditEntry::new(&who.subject, self.ca.tenant.as_str(), what, op)
    }

    /// A record of a certificate this CA signs now (read back from its DER).
    fn record(
        &self,
        who: &Caller,
        profile: &str,
        der: Vec<u8>,
        now: u64,
    ) -> Result<CertRecord, Error> {
        let summary = ca::summary(&der).map_err(|_| Error::Internal {
            what: "reading an issued certificate",
        })?;
        Ok(self.issued_record(who, profile, ca::Issued { der, summary }, now))
    }

    /// The record of `issued`.
    fn issued_record(
        &self,
        who: &Caller,
        profile: &str,
        issued: ca::Issued,
        now: u64,
    ) -> CertRecord {
        let ca::Issued { der, summary } = issued;
        CertRecord {
            serial: summary.serial,
            ca: self.ca.id.clone(),
            profile: profile.to_owned(),
            subject: summary.subject,
            not_before: summary.not_before,
            not_after: summary.not_after,
            issued_at: now,
            requested_by: who.subject.clone(),
            certificate: Der(der),
            revocation: None,
        }
    }

    fn issue(
        &self,
        who: &Caller,
        op: &'static str,
        order: Order,
        reply: RpcReplyPort<Result<IssuedCert, Error>>,
    ) {
        let Order {
            profile,
            csr,
            validity,
            also,
        } = order;
        let (profile, csr) = (&profile, &csr);
        let now = SystemTime::now();
        let signed = ca::random_serial()
            .map_err(|_| Error::Internal {
                what: "random generator",
            })
            .and_then(|serial| {
                let req = ca::Issue {
                    csr,
                    profile,
                    validity,
                    serial: &serial,
                    urls: &self.urls,
                };
                Ok(self.key(false)?.issue(&req, now)?)
            })
            .map(|issued| self.issued_record(who, &profile.name, issued, crate::now_unix()))
            .and_then(|cert| {
                let mut writes = vec![store::create_cert(&self.args.store, &cert)?];
                if let Some(also) = also {
                    writes.extend(also(&cert)?);
                }
                Ok((writes, cert))
            });
        match signed {
            Err(e) => self.refused(self.entry(who, self.ca.id.as_str(), op), e, reply),
            Ok((writes, cert)) => {
                let entry = self.entry(who, &format!("{}/{}", self.ca.id, cert.serial), op);
                let chain = self.ca.issued_chain();
                self.args.audit.submit(
                    entry,
                    writes,
                    Completion::new(move |done| {
                        let _ = reply.send(done.map(|()| IssuedCert {
                            cert,
                            chain,
                            key_jwe: None,
                        }));
                    }),
                );
            }
        }
    }

    fn sign_ca(
        &self,
        who: &Caller,
        explicit: bool,
        child: NewChild,
        reply: RpcReplyPort<Result<CaRecord, Error>>,
    ) {
        let NewChild {
            mut record,
            spec,
            key,
        } = child;
        let now = SystemTime::now();
        let signed = ca::random_serial()
            .map_err(|_| Error::Internal {
                what: "random generator",
            })
            .and_then(|serial| {
                Ok(self
                    .key(explicit)?
                    .intermediate(&spec, record.key, &key, &self.urls, &serial, now)?)
            })
            .and_then(|der| {
                let issued = self.record(who, "sub-ca", der.clone(), crate::now_unix())?;
                record.subject.clone_from(&issued.subject);
                record.serial.clone_from(&issued.serial);
                record.not_before = issued.not_before;
                record.not_after = issued.not_after;
                record.certificate = Der(der);
                record.chain = self.ca.issued_chain();
                let mut writes = store::create_ca(&self.args.store, &record, &key)?;
                writes.push(store::create_cert(&self.args.store, &issued)?);
                Ok(writes)
            });
        let entry = self.entry(who, record.id.as_str(), "create-ca");
        match signed {
            Err(e) => self.refused(entry, e, reply),
            Ok(writes) => self.args.audit.submit(
                entry,
                writes,
                Completion::new(move |done| {
                    let _ = reply.send(done.map(|()| record));
                }),
            ),
        }
    }

    /// Audits a refused operation and answers its error (or the audit's, if that failed).
    fn refused<T: Send + 'static>(
        &self,
        entry: AuditEntry,
        e: Error,
        reply: RpcReplyPort<Result<T, Error>>,
    ) {
        let entry = entry.outcome(&Err::<(), _>(&e));
        self.args.audit.submit(
            entry,
            Vec::new(),
            Completion::new(move |audited| {
                let _ = reply.send(Err(audited.err().unwrap_or(e)));
            }),
        );
    }

    async fn revoke(
        &mut self,
        who: &Caller,
        serial: &str,
        reason: Option<Reason>,
    ) -> Result<CertRecord, Error> {
        let op = if reason.is_some() {
            "revoke"
        } else {
            "release"
        };
        let entry = self.entry(who, &format!("{}/{serial}", self.ca.id), op);
        // With a shared store the revocations and CRL are read first, and the new CRL's
        // number is claimed: of two replicas that made the same number, one reads again.
        let mut tries = if self.args.shared { 4 } else { 1 };
        let (cert, crl) = loop {
            tries -= 1;
            let planned = match self.sync_shared().await {
                Ok(()) => self.plan_revocation(serial, reason),
                Err(e) => Err(e),
            };
            let (cert, crl, writes) = match planned {
                Ok(planned) => planned,
                Err(e) => {
                    return self.args.audit.refused(entry, e).await;
                }
            };
            match self.args.audit.append(entry.clone(), writes).await {
                Ok(()) => break (cert, crl),
                Err(e) if tries > 0 && store::crl_number_taken(&e) => continue,
                Err(e) => return Err(e),
            }
        };
        match cert.revocation {
            Some(r) => self.revoked.insert(cert.serial.clone(), r),
            None => self.revoked.remove(&cert.serial),
        };
        self.crl = Some(crl);
        self.ocsp_cache.clear();
        Ok(cert)
    }

    /// The certificate's new record, the CRL that says so, and the writes of both.
    fn plan_revocation(
        &self,
        serial: &str,
        reason: Option<Reason>,
    ) -> Result<
        (
            CertRecord,
            CrlRecord,
            Vec<cryptoutil_storage::backend::Write>,
        ),
        Error,
    > {
        let mut cert =
            store::load_cert(&self.args.store, &self.ca.id, serial)?.ok_or(Error::NotFound {
                what: "certificate",
            })?;
        let held = |r: &Revocation| r.reason == Reason::CertificateHold;
        cert.revocation = match (cert.revocation, reason) {
            (Some(r), Some(_)) if !held(&r) => {
                return Err(Error::Conflict {
                    what: "the certificate is already revoked",
                })
            }
            (Some(r), None) if held(&r) => None,
            (_, None) => {
                return Err(Error::Conflict {
                    what: "only a certificate on hold can be released",
                })
            }
            (_, Some(reason)) => Some(Revocation {
                time: crate::now_unix(),
                reason,
            }),
        };
        let mut revoked = self.revoked.clone();
        match cert.revocation {
            Some(r) => revoked.insert(cert.serial.clone(), r),
            None => revoked.remove(&cert.serial),
        };
        let released = match cert.revocation {
            None => Some((cert.serial.clone(), crate::now_unix())),
            Some(_) => None,
        };
        let change = Rebase::No { released };
        let crl = self.sign_crl(&revoked, &*self.key(true)?, None, change)?;
        let mut writes = vec![store::update_cert(&self.args.store, &cert)?];
        writes.extend(self.crl_writes(&crl)?);
        Ok((cert, crl, writes))
    }

    /// The writes that make `crl` current: the record and, with a shared store, the claim of
    /// its number (another replica that signed the same number makes the transaction fail).
    fn crl_writes(&self, crl: &CrlRecord) -> Result<Vec<Write>, Error> {
        let mut writes = vec![store::put_crl(&self.args.store, &self.ca.id, crl)?];
        if self.args.shared {
            writes.push(store::claim_crl_number(
                &self.args.store,
                &self.ca.id,
                crl.number,
            )?);
        }
        Ok(writes)
    }

    /// A new complete CRL of `revoked` signed by `signer`, numbered after the current CRLs,
    /// valid for `lifetime` (default `ca.crl_lifetime`), with a delta CRL numbered after it:
    /// the changes since the base, which a scheduled or explicit CRL moves to itself
    /// (`Rebase::Yes`) and a change (a revocation, hold or release) keeps (`Rebase::No`), so
    /// a relying party holding the base needs only the delta.
    fn sign_crl(
        &self,
        revoked: &BTreeMap<String, Revocation>,
        signer: &ca::Signer,
        lifetime: Option<Duration>,
        rebase: Rebase,
    ) -> Result<CrlRecord, Error> {
        let serial = |s: &str| {
            ca::parse_serial(s).ok_or(Error::Internal {
                what: "a stored serial is not hex",
            })
        };
        let entries = revoked
            .iter()
            .map(|(s, r)| {
                Ok(ca::Revoked {
                    serial: serial(s)?,
                    time: r.time,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let now = SystemTime::now();
        let this_update = crate::now_unix();
        let lifetime = lifetime.unwrap_or(self.args.settings.crl_lifetime);
        // Complete and delta CRLs share one number sequence (RFC 5280 §5.2.3).
        let last = self.crl.as_ref().map_or(0, |c| {
            c.delta
                .as_ref()
                .map_or(c.number, |(d, _)| (*d).max(c.number))
        });
        let spec = ca::CrlSpec {
            number: last.saturating_add(1),
            this_update: now,
            lifetime,
            delta_url: self.urls.crl.as_ref().map(|u| format!("{u}/delta")),
        };
        let der = signer.crl(&spec, &entries)?;
        let previous = self
            .crl
            .as_ref()
            .and_then(|c| c.base.map(|b| (b, c.released.clone())));
        let ((base_number, base_time), mut released) = match (rebase, previous) {
            (Rebase::No { released: newly }, Some((base, mut released))) => {
                if let Some(r) = newly {
                    released.retain(|(s, _)| *s != r.0);
                    released.push(r);
                }
                (base, released)
            }
            _ => ((spec.number, this_update), Vec::new()),
        };
        released.retain(|(s, _)| !revoked.contains_key(s));
        let mut changes = entries
            .iter()
            .zip(revoked.values())
            .filter(|(_, r)| r.time >= base_time)
            .map(|(e, _)| ca::crl::Change {
                serial: e.serial.clone(),
                time: e.time,
                reason: Some(e.reason),
            })
            .collect::<Vec<_>>();
        for (s, time) in &released {
            changes.push(ca::crl::Change {
                serial: serial(s)?,
                time: *time,
                reason: None,
            });
        }
        let delta_spec = ca::CrlSpec {
            number: spec.number.saturating_add(1),
            ..spec.clone()
        };
        let delta = signer.delta_crl(&delta_spec, base_number, &changes)?;
        Ok(CrlRecord {
            number: spec.number,
            this_update,
            next_update: this_update.saturating_add(lifetime.as_secs()),
            der: Der(der),
            base: Some((base_number, base_time)),
            released,
            delta: Some((delta_spec.number, Der(delta))),
        })
    }

    /// The current CRL, or a new one (audited as `crl`) once half its lifetime has passed; on
    /// an `explicit` request, a new one now (valid for its lifetime, if given). An offline CA
    /// signs only on an explicit request: otherwise its stored CRL is served, however old.
    async fn current_crl(
        &mut self,
        who: &str,
        explicit: Option<Option<Duration>>,
    ) -> Result<CrlRecord, Error> {
        let now = crate::now_unix();
        if explicit.is_none() {
            if let Some(crl) = &self.crl {
                if self.ca.offline || self.args.settings.fresh(crl, now) {
                    return Ok(crl.clone());
                }
            } else if self.ca.offline {
                return Err(Error::NotFound { what: "CRL" });
            }
        }
        let entry = AuditEntry::new(who, self.ca.tenant.as_str(), self.ca.id.as_str(), "crl");
        if self.args.shared && explicit.is_none() {
            // Another replica may have made the new CRL already.
            self.sync().await?;
            if let Some(crl) = &self.crl {
                if self.args.settings.fresh(crl, now) {
                    return Ok(crl.clone());
                }
            }
        }
        let mut tries = if self.args.shared { 4 } else { 1 };
        loop {
            tries -= 1;
            let made = self.key(explicit.is_some()).and_then(|signer| {
                let crl = self.sign_crl(&self.revoked, &signer, explicit.flatten(), Rebase::Yes)?;
                let writes = self.crl_writes(&crl)?;
                Ok((crl, writes))
            });
            match made {
                Err(e) => return self.args.audit.refused(entry, e).await,
                Ok((crl, writes)) => match self.args.audit.append(entry.clone(), writes).await {
                    Ok(()) => {
                        self.crl = Some(crl.clone());
                        return Ok(crl);
                    }
                    Err(e) if tries > 0 && store::crl_number_taken(&e) => {
                        // Another replica signed this number first: its CRL is current.
                        self.sync().await?;
                        if let (Some(crl), None) = (&self.crl, explicit) {
                            return Ok(crl.clone());
                        }
                    }
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// Shared store only: [`Self::sync`].
    async fn sync_shared(&mut self) -> Result<(), Error> {
        if self.args.shared {
            self.sync().await
        } else {
            Ok(())
        }
    }

    /// Reads the CA's revocations and current CRL again (another replica of a shared store
    /// revoked, released or signed); the cached OCSP answers go when the CRL changed.
    async fn sync(&mut self) -> Result<(), Error> {
        let (store, id) = (Arc::clone(&self.args.store), self.ca.id.clone());
        let (revoked, crl) = tokio::task::spawn_blocking(move || revocations(&store, &id))
            .await
            .map_err(|_| Error::Internal {
                what: "reading revocations",
            })??;
        if crl_version(crl.as_ref()) != crl_version(self.crl.as_ref()) || revoked != self.revoked {
            self.ocsp_cache.clear();
        }
        self.revoked = revoked;
        self.crl = crl;
        Ok(())
    }

    /// What another replica changed since this signer last read: its CA record (one read), or
    /// its CRL (one read: every revocation signs a new one).
    async fn changed_elsewhere(&self) -> Result<Elsewhere, Error> {
        let (store, id) = (Arc::clone(&self.args.store), self.ca.id.clone());
        let (ca, crl) = tokio::task::spawn_blocking(move || {
            Ok::<_, Error>((store::load_ca(&store, &id)?, store::load_crl(&store, &id)?))
        })
        .await
        .map_err(|_| Error::Internal {
            what: "reading the CA",
        })??;
        Ok(if ca.as_ref() != Some(&self.ca) {
            Elsewhere::Ca
        } else if crl_version(crl.as_ref()) != crl_version(self.crl.as_ref()) {
            Elsewhere::Crl
        } else {
            Elsewhere::Nothing
        })
    }

    /// Takes the CA offline (its key leaves memory) or brings it online (its key is loaded),
    /// audited as `offline` or `online`.
    async fn set_offline(&mut self, who: &Caller, offline: bool) -> Result<CaRecord, Error> {
        let op = if offline { "offline" } else { "online" };
        let entry = self.entry(who, self.ca.id.as_str(), op);
        let mut record = self.ca.clone();
        record.offline = offline;
        let planned = (|| {
            let signer = match offline {
                true => None,
                false => Some(prepare(
                    &record,
                    &store::load_key(&self.args.store, &record.id)?,
                )?),
            };
            Ok((store::update_ca(&self.args.store, &record)?, signer))
        })();
        match planned {
            Err(e) => self.args.audit.refused(entry, e).await,
            Ok((write, signer)) => {
                self.args.audit.append(entry, vec![write]).await?;
                self.ca = record.clone();
                self.signer = signer;
                Ok(record)
            }
        }
    }
}

// === OCSP ===

impl Running {
    /// The answer to `req`: `unauthorized` unless every id names this CA; a cached answer
    /// when one may still be served; else signed now by the delegated responder (made, or
    /// renewed, first).
    async fn ocsp(&mut self, req: &ocsp::Request) -> Result<Vec<u8>, Error> {
        if !req.ids.iter().all(|id| self.hashes.names(id)) {
            return Ok(ocsp::refusal(Refusal::Unauthorized));
        }
        let now = crate::now_unix();
        let lifetime = self.args.settings.ocsp_lifetime.as_secs();
        let cacheable = match (req.ids.as_slice(), &req.nonce) {
            ([id], None) => Some(id),
            _ => None,
        };
        if let Some(id) = cacheable {
            if let Some((der, this_update)) = self.ocsp_cache.get(&id.der) {
                if now < this_update.saturating_add(lifetime / 2) {
                    return Ok(der.clone());
                }
            }
        }
        self.ensure_delegate(Delegate::Ocsp, now).await?;
        let statuses = req
            .ids
            .iter()
            .map(|id| self.status(id))
            .collect::<Result<Vec<_>, Error>>()?;
        let singles: Vec<ocsp::Single<'_>> = req
            .ids
            .iter()
            .zip(&statuses)
            .map(|(id, status)| ocsp::Single {
                id,
                status: *status,
                this_update: now,
                next_update: now.saturating_add(lifetime),
            })
            .collect();
        let responder = self.responder.as_ref().ok_or(Error::Internal {
            what: "no OCSP responder",
        })?;
        let der = responder
            .respond(&singles, req.nonce.as_deref(), now)
            .map_err(|_| Error::Internal {
                what: "signing an OCSP response",
            })?;
        if let (Some(id), [status]) = (cacheable, statuses.as_slice()) {
            if *status != ocsp::Status::Unknown {
                if self.ocsp_cache.len() >= OCSP_CACHE_MAX {
                    self.ocsp_cache.clear();
                }
                self.ocsp_cache.insert(id.der.clone(), (der.clone(), now));
            }
        }
        Ok(der)
    }

    /// What this CA knows of `id`'s certificate.
    fn status(&self, id: &ocsp::CertId) -> Result<ocsp::Status, Error> {
        let serial = ca::serial_hex(&id.serial);
        if let Some(r) = self.revoked.get(&serial) {
            return Ok(ocsp::Status::Revoked {
                time: r.time,
                reason: r.reason,
            });
        }
        Ok(
            match store::load_cert(&self.args.store, &self.ca.id, &serial)? {
                Some(_) => ocsp::Status::Good,
                None => ocsp::Status::Unknown,
            },
        )
    }

    /// Makes `delegate` (a P-256 key and a certificate from this CA under the delegate's
    /// profile, audited as `ocsp-responder` or `tsa`) unless it has more than a week left.
    async fn ensure_delegate(&mut self, delegate: Delegate, now: u64) -> Result<(), Error> {
        let not_after = match delegate {
            Delegate::Ocsp => self.responder.as_ref().map(|r| r.not_after),
            Delegate::Tsa => self.tsa.as_ref().map(|t| t.not_after),
            Delegate::Scep => self.scep.as_ref().map(|r| r.not_after),
        };
        if not_after.is_some_and(|t| t > now.saturating_add(DELEGATE_RENEW)) {
            return Ok(());
        }
        let who = Caller {
            tenant: self.ca.tenant.clone(),
            subject: super::DISTRIBUTION_SUBJECT.to_owned(),
        };
        let op = match delegate {
            Delegate::Ocsp => "ocsp-responder",
            Delegate::Tsa => "tsa",
            Delegate::Scep => "scep-ra",
        };
        let entry = self.entry(&who, self.ca.id.as_str(), op);
        match self.plan_delegate(&who, delegate) {
            Err(e) => self.args.audit.refused(entry, e).await,
            Ok(((key, cert), writes)) => {
                let internal = |what| move |_| Error::Internal { what };
                // Loaded before the commit: a delegate that does not load is never stored.
                let loaded = match delegate {
                    Delegate::Ocsp => Loaded::Ocsp(
                        Responder::new(&key, &cert).map_err(internal("an OCSP responder"))?,
                    ),
                    Delegate::Tsa => Loaded::Tsa(
                        Tsa::new(&key, &cert, &self.args.settings.tsa_policy_der())
                            .map_err(internal("a TSA"))?,
                    ),
                    Delegate::Scep => Loaded::Scep(Arc::new(
                        scep::Ra::new(&key, &cert).map_err(internal("a SCEP RA"))?,
                    )),
                };
                self.args.audit.append(entry, writes).await?;
                match loaded {
                    Loaded::Ocsp(responder) => {
                        self.responder = Some(responder);
                        self.ocsp_cache.clear();
                    }
                    Loaded::Tsa(tsa) => self.tsa = Some(tsa),
                    Loaded::Scep(ra) => self.scep = Some(ra),
                }
                Ok(())
            }
        }
    }

    /// A new key for `delegate`, its certificate from this CA, and the writes that store both
    /// (the certificate is also listed among the CA's certificates).
    fn plan_delegate(
        &self,
        who: &Caller,
        delegate: Delegate,
    ) -> Result<(store::DelegateKeys, Vec<cryptoutil_storage::backend::Write>), Error> {
        let internal = |what| move |_| Error::Internal { what };
        let (profile, name, key_type) = match delegate {
            Delegate::Ocsp => (
                ca::profile::builtin("ocsp-signing"),
                "OCSP responder",
                ca::KeyType::P256,
            ),
            Delegate::Tsa => (
                ca::profile::builtin("time-stamping"),
                "Time stamping",
                ca::KeyType::P256,
            ),
            // RSA: SCEP clients send their content keys with RSA key transport.
            Delegate::Scep => (
                Some(ca::profile::scep_ra()),
                "SCEP RA",
                ca::KeyType::Rsa3072,
            ),
        };
        let (key, csr) = ca::delegate_request(&format!("{name} {}", self.ca.id), key_type)
            .map_err(internal("making a delegate key"))?;
        let profile = profile.ok_or(Error::Internal {
            what: "a delegate's profile",
        })?;
        let serial = ca::random_serial().map_err(internal("random generator"))?;
        let req = ca::Issue {
            csr: &csr,
            profile: &profile,
            validity: None,
            serial: &serial,
            urls: &self.urls,
        };
        let issued = self.key(false)?.issue(&req, SystemTime::now())?;
        let der = issued.der.clone();
        let issued = self.issued_record(who, &profile.name, issued, crate::now_unix());
        let mut writes = store::put_delegate(&self.args.store, &self.ca.id, delegate, &key, &der)?;
        writes.push(store::create_cert(&self.args.store, &issued)?);
        Ok(((key, der), writes))
    }

    /// The SCEP RA: loaded from the store on first use, made (and audited as `scep-ra`) if
    /// there is none or it expires within a week.
    async fn scep_ra(&mut self) -> Result<Arc<scep::Ra>, Error> {
        if self.scep.is_none() {
            let (store, id) = (Arc::clone(&self.args.store), self.ca.id.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                store::load_delegate(&store, &id, Delegate::Scep)?
                    .map(|(key, cert)| {
                        scep::Ra::new(&key, &cert).map_err(|_| {
                            Error::corrupt(
                                cryptoutil_storage::Table::CaKeys,
                                id.as_bytes(),
                                "SCEP RA",
                            )
                        })
                    })
                    .transpose()
            })
            .await
            .map_err(|_| Error::Internal {
                what: "loading the SCEP RA",
            })??;
            self.scep = loaded.map(Arc::new);
        }
        self.ensure_delegate(Delegate::Scep, crate::now_unix())
            .await?;
        self.scep
            .clone()
            .ok_or(Error::Internal { what: "no SCEP RA" })
    }

    /// A time stamp of `req` (RFC 3161) by this CA's TSA (made first if needed), with a new
    /// random serial.
    async fn stamp(&mut self, req: &tsa::Request) -> Result<Vec<u8>, Error> {
        let now = crate::now_unix();
        self.ensure_delegate(Delegate::Tsa, now).await?;
        let tsa = self
            .tsa
            .as_ref()
            .ok_or(Error::Internal { what: "no TSA" })?;
        let serial = ca::random_serial().map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        tsa.stamp(req, &serial, now).map_err(|_| Error::Internal {
            what: "signing a time stamp",
        })
    }
}

// === the keyed supervisor's view of signers ===

/// How the CA's keyed supervisor (`ca/signers`) starts signers.
pub struct Signers {
    /// The CA service's store.
    pub store: Arc<Store>,
    /// Its audit log.
    pub audit: AuditHandle,
    /// The service name, for the tree.
    pub service: &'static str,
    /// How long a signer waits for work before it stops.
    pub idle: Duration,
    /// Distribution URLs and CRL lifetime.
    pub settings: Arc<super::CaSettings>,
    /// Other replicas share the store: signers read their changes ([`REFRESH`]) and claim
    /// each CRL number.
    pub shared: bool,
}

impl Keyed for Signers {
    type Child = CaSigner;
    type Key = SignerKey;

    fn kind(&self) -> &'static str {
        "CaSigner"
    }

    fn name(&self, key: &SignerKey) -> String {
        format!("{}/signer/{}", self.service, key.id)
    }

    fn exists(&self, key: &SignerKey) -> Result<bool, Error> {
        Ok(store::load_ca(&self.store, &key.id)?.is_some_and(|ca| ca.tenant == key.tenant))
    }

    fn make(&self, key: &SignerKey) -> (CaSigner, SignerArgs) {
        (
            CaSigner,
            SignerArgs {
                store: Arc::clone(&self.store),
                audit: self.audit.clone(),
                id: key.id.clone(),
                idle: self.idle,
                settings: Arc::clone(&self.settings),
                shared: self.shared,
            },
        )
    }

    fn crash_message(&self) -> CaSignerMsg {
        CaSignerMsg::Crash
    }
}

/// A signer's key: the CA id within its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignerKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The CA.
    pub id: CaId,
}

impl std::fmt::Display for SignerKey {
    /// The id alone: what the tree and fault injection name a signer by.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id.as_str())
    }
}
