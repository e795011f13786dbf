//! `FactorsHandle`: the users' factor records in identity-idp's store (sealed by the barrier,
//! table `identity_factors_v1`), enrolled, listed, removed and checked at sign-in. Every
//! enrollment, removal and check is written to identity-idp's audit log, in the same commit as
//! the record it changes: a code accepted is spent before the sign-in goes on, also across a
//! crash. Changes to one user's records take that user's lock and hold it until their commit
//! is durable (or has failed), not merely until the caller stops waiting: a check that timed
//! out, or whose browser went away, cannot let the next one read the state before it.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::oauth;
use cryptoutil_protocols::webauthn::Expected;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use serde_json::{Map, Value};
use tokio::sync::OwnedMutexGuard;
use zeroize::{Zeroize, Zeroizing};

use super::factors::{
    record_key, FactorInfo, FactorKind, FactorRecord, Holder, Presented, Registry, Verdict,
};
use crate::audit::{AuditEntry, AuditHandle, Completion};
use crate::error::{Error, Unavailability};

/// Most factors one user may enroll.
pub const MAX_FACTORS: usize = 10;
/// Most factors of one user that take a short typed code (a code typed is tried against
/// each, so each widens a guess).
pub const MAX_CODE_FACTORS: usize = 3;

/// Whether `kind` takes a typed code.
fn takes_code(kind: FactorKind) -> bool {
    guessable(kind) || kind == FactorKind::YubicoOtp
}

/// Whether `kind`'s codes are short enough that each record widens a guess (a Yubico OTP is
/// an AES block: it does not).
fn guessable(kind: FactorKind) -> bool {
    matches!(
        kind,
        FactorKind::Totp | FactorKind::Hotp | FactorKind::RecoveryCodes
    )
}

/// Whether `kind` only ever takes the password's place (it is not a second factor).
fn first_only(kind: FactorKind) -> bool {
    matches!(
        kind,
        FactorKind::Password | FactorKind::MagicLink | FactorKind::Certificate
    )
}

/// Whether factors of `kinds` (besides the password) let a sign-in reach `policy`: two
/// factors need one that is not a recovery code (those are a fallback, not a factor to keep)
/// nor a magic link or a certificate (they take the password's place); a phishing-resistant
/// sign-in needs WebAuthn or a client certificate.
fn reaches(policy: &str, kinds: impl Iterator<Item = FactorKind>) -> bool {
    use crate::identity::signin::{ACR_MFA, ACR_PHR};
    let kinds: Vec<FactorKind> = kinds.collect();
    let has = |k: FactorKind| kinds.contains(&k);
    let second = kinds
        .iter()
        .any(|k| !first_only(*k) && *k != FactorKind::RecoveryCodes);
    match policy {
        ACR_MFA => second,
        // WebAuthn, or a certificate followed by a second factor.
        ACR_PHR => has(FactorKind::Webauthn) || (has(FactorKind::Certificate) && second),
        _ => true,
    }
}

/// Locks factor checks are spread over.
const LOCKS: usize = 64;

/// The lock of `user_id`'s checks.
fn lock_of(user_id: &str) -> usize {
    let digest = oauth::token_digest(user_id.as_bytes());
    usize::from(digest.first().copied().unwrap_or(0)) % LOCKS
}

/// Who a factor belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The user's tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The user's login name (authenticator apps show it).
    pub username: String,
}

/// A factor check that passed: the factor and its `amr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// The factor's id.
    pub id: String,
    /// Its type.
    pub kind: FactorKind,
    /// Its RFC 8176 `amr` value.
    pub amr: &'static str,
    /// The authenticator verified the user itself (a passkey).
    pub verified_user: bool,
}

/// A challenge made and kept: whose record, and the secret to deliver where.
pub struct Sent {
    /// The user's tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// The record.
    pub factor_id: String,
    /// The secret.
    pub secret: Zeroizing<String>,
    /// Where it goes.
    pub to: String,
}

/// The index key of a record found by `lookup` (see [`Factor::lookup`]).
///
/// [`Factor::lookup`]: super::factors::Factor::lookup
fn index_key(kind: FactorKind, lookup: &[u8]) -> Vec<u8> {
    let mut key = format!("{}/", kind.name()).into_bytes();
    key.extend_from_slice(lookup);
    key
}

/// The factor records' handle.
#[derive(Clone)]
pub struct FactorsHandle {
    store: Arc<Store>,
    audit: AuditHandle,
    registry: Registry,
    issuer: Arc<str>,
    /// One is held from when a change to a user's records (the one [`lock_of`] picks) reads
    /// them until what it wrote is durable: of two sign-ins with one code the second sees the
    /// first's state, and a factor removed meanwhile is not written back.
    locks: Arc<Vec<Arc<tokio::sync::Mutex<()>>>>,
    /// Held by an enrollment or a removal from its check of the lookup index until its commit
    /// is durable: two users cannot register one credential id.
    index_lock: Arc<tokio::sync::Mutex<()>>,
    /// Longest wait for a commit.
    timeout: Duration,
    /// Whether replicas share the store: the user locks above are this process's own, so a
    /// check that changes a record also creates the claim of its next revision.
    shared: bool,
}

impl std::fmt::Debug for FactorsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorsHandle")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::ask::blocking("Idp", f).await
}

fn load_all(store: &Store, tenant: &str, user_id: &str) -> Result<Vec<FactorRecord>, Error> {
    let prefix = format!("{tenant}/{user_id}/");
    store
        .scan_sealed(Table::IdentityFactors, prefix.as_bytes())?
        .into_iter()
        .map(|(key, plain)| {
            serde_json::from_slice::<FactorRecord>(&plain).map_err(|_| Error::Corrupt {
                table: Table::IdentityFactors.name(),
                key: String::from_utf8_lossy(&key).into_owned(),
                what: "factor record",
            })
        })
        .collect()
}

/// How long a revision's claim is kept: far longer than a check takes from its read to its
/// commit (identity-idp's sweep deletes it after).
const CLAIM_KEPT: u64 = 3600;

/// The writes of a check that changed `record`: the record and, with `shared`, the created
/// claim of its next revision ([`claim`]).
fn changed(
    store: &Store,
    record: &mut FactorRecord,
    shared: bool,
    now: u64,
) -> Result<Vec<Write>, Error> {
    if !shared {
        return Ok(vec![sealed(store, record)?]);
    }
    record.revision = record.revision.saturating_add(1);
    Ok(vec![
        sealed(store, record)?,
        claim(store, record, record.revision, now)?,
    ])
}

/// The claim of `record`'s `revision`: `factor-revision/<digest of its key>/<n>`, created in
/// identity-idp's `identity_flow_v1` (swept when expired). Of two changes made from one read
/// of the record (two checks, or a check and a removal, on two replicas), one commit fails.
fn claim(store: &Store, record: &FactorRecord, revision: u64, now: u64) -> Result<Write, Error> {
    let key = format!(
        "factor-revision/{}/{revision}",
        cryptoutil_protocols::jose::b64::encode(&oauth::token_digest(record.key().as_bytes())),
    );
    let value = crate::record::encode(&crate::journal::Kept {
        expires: now.saturating_add(CLAIM_KEPT),
        value: (),
    })?;
    Ok(store.sealed_create(Table::IdentityFlow, key.as_bytes(), &value)?)
}

fn sealed(store: &Store, record: &FactorRecord) -> Result<Write, Error> {
    let plain = Zeroizing::new(serde_json::to_vec(record).map_err(|_| Error::Internal {
        what: "encoding a factor record",
    })?);
    Ok(store.sealed_write(Table::IdentityFactors, record.key().as_bytes(), &plain)?)
}

impl FactorsHandle {
    /// Factor records in `store`, audited to `audit` (a commit waited for at most
    /// `timeout`); authenticator apps show `issuer`.
    pub fn new(
        store: Arc<Store>,
        audit: AuditHandle,
        registry: Registry,
        issuer: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            audit,
            registry,
            issuer: Arc::from(issuer),
            locks: Arc::new((0..LOCKS).map(|_| Arc::default()).collect()),
            index_lock: Arc::default(),
            timeout,
            shared: false,
        }
    }

    /// Replicas share the store (`storage.backend: postgres`): a check that changes a factor
    /// record, and a removal, claims its next revision, so of two replicas spending one code
    /// (or one counter, one recovery code) at once, one commit fails and that check is
    /// refused, and a check cannot write back a record removed meanwhile.
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// `user_id`'s lock.
    async fn lock(&self, user_id: &str) -> Result<OwnedMutexGuard<()>, Error> {
        let lock = self.locks.get(lock_of(user_id)).ok_or(Error::Internal {
            what: "factor lock",
        })?;
        Ok(Arc::clone(lock).lock_owned().await)
    }

    /// Commits `writes` with `entry` and waits for it; `held` is released once the commit is
    /// durable or has failed, whether or not this caller still waits.
    async fn append_holding<G: Send + 'static>(
        &self,
        held: G,
        entry: AuditEntry,
        writes: Vec<Write>,
    ) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.audit.submit(
            entry,
            writes,
            Completion::new(move |result| {
                drop(held);
                let _ = tx.send(result);
            }),
        );
        let unavailable = |why| Error::Unavailable {
            actor: "AuditLog",
            why,
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(unavailable(Unavailability::Stopped)),
            Err(_) => Err(unavailable(Unavailability::Timeout)),
        }
    }

    /// `owner`'s factors (never their state).
    pub async fn list(&self, tenant: &str, user_id: &str) -> Result<Vec<FactorInfo>, Error> {
        let (st, t, u) = (
            Arc::clone(&self.store),
            tenant.to_owned(),
            user_id.to_owned(),
        );
        let records = blocking(move || load_all(&st, &t, &u)).await?;
        let mut infos: Vec<FactorInfo> = records.iter().map(FactorRecord::info).collect();
        infos.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(infos)
    }

    /// Enrolls a factor of `kind` named `name` for `owner`, by `who` (audited): what the
    /// user is shown once (its secret), with the factor's id, type, name and time. A factor
    /// enrolled through a browser ceremony (WebAuthn) answers `ceremony`.
    pub async fn enroll(
        &self,
        who: &str,
        owner: &Owner,
        kind: FactorKind,
        name: &str,
        params: &Map<String, Value>,
        ceremony: Option<&Expected>,
    ) -> Result<Map<String, Value>, Error> {
        let entry = AuditEntry::new(who, &owner.tenant, &owner.user_id, "factor-enroll");
        let held = self.lock(&owner.user_id).await?;
        let index_held = Arc::clone(&self.index_lock).lock_owned().await;
        let result = self
            .enroll_checked(owner, kind, name, params, ceremony)
            .await;
        match result {
            Ok((record, shown, index)) => {
                let mut writes = vec![sealed(&self.store, &record)?];
                if let Some(index) = index {
                    writes.push(self.store.sealed_write(
                        Table::IdentityFactorIndex,
                        &index,
                        record.key().as_bytes(),
                    )?);
                }
                let entry = AuditEntry {
                    key: format!("{}/{}", owner.user_id, record.id),
                    ..entry
                };
                self.append_holding((held, index_held), entry, writes)
                    .await?;
                let mut answer = match serde_json::to_value(record.info()) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                answer.extend(shown);
                Ok(answer)
            }
            Err(e) => self.audit.refused(entry, e).await,
        }
    }

    async fn enroll_checked(
        &self,
        owner: &Owner,
        kind: FactorKind,
        name: &str,
        params: &Map<String, Value>,
        ceremony: Option<&Expected>,
    ) -> Result<(FactorRecord, Map<String, Value>, Option<Vec<u8>>), Error> {
        let factor = self.registry.get(kind).ok_or(Error::BadRequest {
            reason: "type: a factor this service enrolls (totp, hotp, yubico_otp, magic_link, recovery_codes, webauthn)",
        })?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::BadRequest {
                reason: "name: 1 to 64 printable characters",
            });
        }
        let (st, t, u) = (
            Arc::clone(&self.store),
            owner.tenant.clone(),
            owner.user_id.clone(),
        );
        let existing = blocking(move || load_all(&st, &t, &u)).await?;
        let codes = existing.iter().filter(|r| guessable(r.kind)).count();
        if kind == FactorKind::RecoveryCodes && existing.iter().any(|r| r.kind == kind) {
            return Err(Error::Conflict {
                what: "this user has recovery codes: remove them to make new ones",
            });
        }
        if existing.len() >= MAX_FACTORS || (guessable(kind) && codes >= MAX_CODE_FACTORS) {
            return Err(Error::Conflict {
                what: "this user has as many factors of this kind as allowed",
            });
        }
        // Apps list entries by issuer and account: the tenant tells apart two of one name.
        let issuer = format!("{} {}", self.issuer, owner.tenant);
        let holder = Holder {
            issuer: &issuer,
            account: &owner.username,
            tenant: &owner.tenant,
            ceremony,
        };
        let enrolled = factor.enroll(params, &holder)?;
        let index = factor
            .lookup(&enrolled.state)
            .map(|lookup| index_key(kind, &lookup));
        if let Some(index) = index.clone() {
            let st = Arc::clone(&self.store);
            let taken =
                blocking(move || Ok(st.get_sealed(Table::IdentityFactorIndex, &index)?.is_some()))
                    .await?;
            if taken {
                return Err(Error::Conflict {
                    what: "this credential is registered already",
                });
            }
        }
        let id = oauth::random_token(12).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let record = FactorRecord {
            id: format!("f-{}", id.as_str()),
            tenant: owner.tenant.clone(),
            user_id: owner.user_id.clone(),
            kind,
            name: name.to_owned(),
            created_at: crate::now_unix(),
            state: enrolled.state.to_string(),
            revision: 0,
        };
        Ok((record, enrolled.shown, index))
    }

    /// Removes factor `id` of `owner`, by `who` (audited), unless it is the last of
    /// `owner`'s factors that reach `policy` (their tenant's `acr`): then a conflict (enroll
    /// another first).
    pub async fn remove(
        &self,
        who: &str,
        owner: &Owner,
        id: &str,
        policy: Option<&'static str>,
    ) -> Result<(), Error> {
        let key = record_key(&owner.tenant, &owner.user_id, id);
        let entry = AuditEntry::new(
            who,
            &owner.tenant,
            &format!("{}/{id}", owner.user_id),
            "factor-remove",
        );
        let held = self.lock(&owner.user_id).await?;
        let index_held = Arc::clone(&self.index_lock).lock_owned().await;
        let (st, k) = (Arc::clone(&self.store), key.clone());
        let found =
            blocking(move || Ok(st.get_sealed(Table::IdentityFactors, k.as_bytes())?)).await?;
        let Some(plain) = found else {
            drop((held, index_held));
            return self
                .audit
                .refused(entry, Error::NotFound { what: "factor" })
                .await;
        };
        let record: FactorRecord = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt {
            table: Table::IdentityFactors.name(),
            key: key.clone(),
            what: "factor record",
        })?;
        if let Some(policy) = policy {
            let (st, t, u) = (
                Arc::clone(&self.store),
                owner.tenant.clone(),
                owner.user_id.clone(),
            );
            let kinds: Vec<(String, FactorKind)> = blocking(move || load_all(&st, &t, &u))
                .await?
                .iter()
                .map(|r| (r.id.clone(), r.kind))
                .collect();
            let before = reaches(policy, kinds.iter().map(|(_, k)| *k));
            let after = reaches(
                policy,
                kinds.iter().filter(|(i, _)| i != id).map(|(_, k)| *k),
            );
            if before && !after {
                drop((held, index_held));
                return self
                    .audit
                    .refused(
                        entry,
                        Error::Conflict {
                            what: "the tenant's policy needs this factor: enroll another that reaches it first",
                        },
                    )
                    .await;
            }
        }
        let mut deletes = vec![Write::Delete {
            table: Table::IdentityFactors,
            key: key.clone().into_bytes(),
        }];
        if self.shared {
            // A check on another replica that read the record before this removal cannot
            // write it back: its claim of the same revision fails.
            let next = record.revision.saturating_add(1);
            deletes.push(claim(&self.store, &record, next, crate::now_unix())?);
        }
        let lookup = self
            .registry
            .get(record.kind)
            .and_then(|f| f.lookup(&record.state));
        if let Some(lookup) = lookup {
            // Only the entry that names this record (never another user's).
            let index = index_key(record.kind, &lookup);
            let (st, i) = (Arc::clone(&self.store), index.clone());
            let named =
                blocking(move || Ok(st.get_sealed(Table::IdentityFactorIndex, &i)?)).await?;
            if named.as_ref().map(|v| v.as_slice()) == Some(key.as_bytes()) {
                deletes.push(Write::Delete {
                    table: Table::IdentityFactorIndex,
                    key: index,
                });
            }
        }
        self.append_holding((held, index_held), entry, deletes)
            .await
    }

    /// Who holds the factor of `kind` that `lookup` finds (a passkey's credential id, as its
    /// factor keeps it): the tenant and the user's `sub`.
    pub async fn find(
        &self,
        kind: FactorKind,
        lookup: &[u8],
    ) -> Result<Option<(String, String)>, Error> {
        let (st, index) = (Arc::clone(&self.store), index_key(kind, lookup));
        let found =
            blocking(move || Ok(st.get_sealed(Table::IdentityFactorIndex, &index)?)).await?;
        let Some(key) = found else {
            return Ok(None);
        };
        let key = String::from_utf8_lossy(&key).into_owned();
        let mut parts = key.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some(tenant), Some(user)) => Ok(Some((tenant.to_owned(), user.to_owned()))),
            _ => Err(Error::Corrupt {
                table: Table::IdentityFactorIndex.name(),
                key,
                what: "factor index entry",
            }),
        }
    }

    /// Makes a challenge for the record of `kind` that `lookup` finds (a magic link for an
    /// address), asked with `request`: whose it is and the secret to deliver, or `None` when
    /// no record has that lookup. The record's new state is kept, and audited, before the
    /// secret leaves.
    pub async fn challenge(
        &self,
        kind: FactorKind,
        lookup: &[u8],
        request: Value,
    ) -> Result<Option<Sent>, Error> {
        let (st, index) = (Arc::clone(&self.store), index_key(kind, lookup));
        let found =
            blocking(move || Ok(st.get_sealed(Table::IdentityFactorIndex, &index)?)).await?;
        let Some(key) = found else {
            return Ok(None);
        };
        let key = String::from_utf8_lossy(&key).into_owned();
        let mut parts = key.splitn(3, '/');
        let (Some(tenant), Some(user_id), Some(_)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Corrupt {
                table: Table::IdentityFactorIndex.name(),
                key,
                what: "factor index entry",
            });
        };
        let (tenant, user_id) = (tenant.to_owned(), user_id.to_owned());
        let held = self.lock(&user_id).await?;
        let (st, k) = (Arc::clone(&self.store), key.clone());
        let found =
            blocking(move || Ok(st.get_sealed(Table::IdentityFactors, k.as_bytes())?)).await?;
        // Removed since the index was read.
        let Some(plain) = found else {
            return Ok(None);
        };
        let mut record: FactorRecord =
            serde_json::from_slice(&plain).map_err(|_| Error::Corrupt {
                table: Table::IdentityFactors.name(),
                key: key.clone(),
                what: "factor record",
            })?;
        let Some(factor) = self
            .registry
            .get(record.kind)
            .filter(|_| record.kind == kind)
        else {
            return Ok(None);
        };
        let Some(made) = factor.challenge(&record.state, &request, crate::now_unix())? else {
            return Ok(None);
        };
        record.state.zeroize();
        record.state = made.keep.to_string();
        let write = sealed(&self.store, &record)?;
        let entry = AuditEntry::new(
            &user_id,
            &tenant,
            &format!("{user_id}/{}", record.id),
            "factor-challenge",
        );
        self.append_holding(held, entry, vec![write]).await?;
        Ok(Some(Sent {
            tenant,
            user_id,
            factor_id: record.id.clone(),
            secret: made.secret,
            to: made.to,
        }))
    }

    /// Checks an opened magic link (`presented`: its secret, the browser's cookie and the
    /// pending request, as JSON) against `owner`'s magic-link records, like
    /// [`check_code`](Self::check_code).
    pub async fn check_link(
        &self,
        owner: &Owner,
        presented: &str,
    ) -> Result<Option<Passed>, Error> {
        self.check(owner, |k| k == FactorKind::MagicLink, presented, None)
            .await
    }

    /// What ceremonies may show of `owner`'s factors of `kind` (WebAuthn credential ids).
    pub async fn descriptors(
        &self,
        tenant: &str,
        user_id: &str,
        kind: FactorKind,
    ) -> Result<Vec<Value>, Error> {
        let (st, t, u) = (
            Arc::clone(&self.store),
            tenant.to_owned(),
            user_id.to_owned(),
        );
        let records = blocking(move || load_all(&st, &t, &u)).await?;
        let Some(factor) = self.registry.get(kind) else {
            return Ok(Vec::new());
        };
        Ok(records
            .iter()
            .filter(|r| r.kind == kind)
            .filter_map(|r| factor.descriptor(&r.state))
            .collect())
    }

    /// Whether `owner` has a factor of `kind`.
    pub async fn has(&self, tenant: &str, user_id: &str, kind: FactorKind) -> Result<bool, Error> {
        Ok(self
            .list(tenant, user_id)
            .await?
            .iter()
            .any(|f| f.kind == kind))
    }

    /// Whether `owner` has a factor to give after a first one (anything but the password, a
    /// magic link and a client certificate, which take the first factor's place).
    pub async fn has_any(&self, tenant: &str, user_id: &str) -> Result<bool, Error> {
        Ok(self
            .list(tenant, user_id)
            .await?
            .iter()
            .any(|f| !first_only(f.kind)))
    }

    /// Checks `presented` against `owner`'s factors of the kinds that take a typed code; the
    /// first that accepts it keeps what it spent (in the commit that audits the check). A
    /// refusal is audited too.
    pub async fn check_code(
        &self,
        owner: &Owner,
        presented: &str,
    ) -> Result<Option<Passed>, Error> {
        self.check(owner, takes_code, presented, None).await
    }

    /// Checks a WebAuthn assertion (`response`, the browser's JSON) for the ceremony
    /// `expected` against `owner`'s credentials, like [`check_code`](Self::check_code).
    pub async fn check_webauthn(
        &self,
        owner: &Owner,
        response: &str,
        expected: &Expected,
    ) -> Result<Option<Passed>, Error> {
        self.check(
            owner,
            |k| k == FactorKind::Webauthn,
            response,
            Some(expected.clone()),
        )
        .await
    }

    async fn check(
        &self,
        owner: &Owner,
        kinds: fn(FactorKind) -> bool,
        presented: &str,
        ceremony: Option<Expected>,
    ) -> Result<Option<Passed>, Error> {
        let held = self.lock(&owner.user_id).await?;
        let (st, t, u) = (
            Arc::clone(&self.store),
            owner.tenant.clone(),
            owner.user_id.clone(),
        );
        let registry = self.registry.clone();
        let input = Zeroizing::new(presented.to_owned());
        let shared = self.shared;
        let checked = blocking(move || {
            let now = crate::now_unix();
            let presented = Presented {
                input: input.as_str(),
                ceremony: ceremony.as_ref(),
            };
            for mut record in load_all(&st, &t, &u)? {
                let Some(factor) = registry.get(record.kind).filter(|_| kinds(record.kind)) else {
                    continue;
                };
                match factor.verify(&record.state, &presented, now)? {
                    Verdict::Reject => {}
                    Verdict::Refuse { keep, why } => {
                        let writes = match keep {
                            Some(state) => {
                                record.state.zeroize();
                                record.state = state.to_string();
                                changed(&st, &mut record, shared, now)?
                            }
                            None => Vec::new(),
                        };
                        return Ok((None, writes, why));
                    }
                    Verdict::Accept {
                        keep,
                        amr,
                        verified_user,
                    } => {
                        record.state.zeroize();
                        record.state = keep.to_string();
                        let passed = Passed {
                            id: record.id.clone(),
                            kind: record.kind,
                            amr,
                            verified_user,
                        };
                        let writes = changed(&st, &mut record, shared, now)?;
                        return Ok((Some(passed), writes, ""));
                    }
                }
            }
            Ok((None, Vec::new(), "no factor accepted what was presented"))
        })
        .await?;
        // A claimed revision's clash: another replica changed the record since it was read
        // (it spent the same code, counter or recovery code first); refused, and audited so.
        let spent_elsewhere = |result: Result<(), Error>| match result {
            Err(Error::Conflict { .. }) => Ok(false),
            other => other.map(|()| true),
        };
        match checked {
            (Some(passed), writes, _) => {
                let entry = AuditEntry::new(
                    &owner.user_id,
                    &owner.tenant,
                    &format!("{}/{}", owner.user_id, passed.id),
                    "sign-in-factor",
                );
                let kept = spent_elsewhere(self.append_holding(held, entry, writes).await)?;
                Ok(kept.then_some(passed))
            }
            (None, writes, why) => {
                let entry = AuditEntry::new(
                    &owner.user_id,
                    &owner.tenant,
                    &owner.user_id,
                    "sign-in-factor",
                )
                .outcome(&Err::<(), _>(why));
                spent_elsewhere(self.append_holding(held, entry, writes).await)?;
                Ok(None)
            }
        }
    }

    /// Audits a change of `owner`'s factors refused before any record was read (an expired
    /// ceremony) and returns `e`.
    pub async fn refuse<T>(&self, who: &str, owner: &Owner, e: Error) -> Result<T, Error> {
        let entry = AuditEntry::new(who, &owner.tenant, &owner.user_id, "factor-enroll");
        self.audit.refused(entry, e).await
    }

    /// Records a sign-in (or a refused one) in the audit log.
    pub async fn audit_sign_in(
        &self,
        who: &str,
        tenant: &str,
        amr: &[String],
        refused: Option<&str>,
    ) -> Result<(), Error> {
        let mut entry = AuditEntry::new(who, tenant, &amr.join("+"), "sign-in");
        if let Some(why) = refused {
            entry = entry.outcome(&Err::<(), _>(why));
        }
        self.audit.append(entry, Vec::new()).await
    }
}
