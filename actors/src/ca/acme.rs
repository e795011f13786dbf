//! ACME (RFC 8555) state: accounts (each bound at creation to a one-time RA secret by external
//! account binding), orders, their authorizations, the nonces handed out, and finalization
//! through the RA ([`CasHandle::enroll_then`]): the order's new state is committed with the
//! request (and certificate) it leads to, so a crash never leaves an issued certificate that
//! its order does not name.
//!
//! Records live sealed in `ca_acme_v1` under `account/<id>`, `key/<label>/<thumbprint>`,
//! `order/<id>`, `orders-of/<account id>/<order id>`, `authz/<id>`, `finalized/<order id>`
//! and `issued/<ca id>/<serial>`. Nonces live in memory (a restart
//! costs clients one `badNonce`, which they answer by retrying, RFC 8555 §6.5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use cryptoutil_protocols::ca::Reason;
use cryptoutil_protocols::ids::TenantId;
use cryptoutil_protocols::oauth;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};

use super::handle::{blocking, CasHandle};
use super::ra::{
    load_secret, random_id, used_by, used_mark, Enrolled, Enrollee, LabelRecord, RequestRecord,
    RequestStatus, ACCOUNT_PREFIX,
};
use super::store::{self, Der};
use crate::audit::AuditEntry;
use crate::caller::Caller;
use crate::error::Error;
use crate::record::{encode, load, scan};

/// How long a nonce may wait to be used.
const NONCE_LIFETIME: Duration = Duration::from_secs(3600);
/// Most nonces outstanding (then the expired go, and if that is not enough, all of them).
const NONCES_MAX: usize = 100_000;
/// Most accounts kept in memory.
pub(super) const ACCOUNTS_REMEMBERED: usize = 10_000;
/// How long an order and its authorizations live.
pub const ORDER_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// The nonces handed out and not yet used.
#[derive(Debug, Default)]
pub struct Nonces(Mutex<HashMap<String, Instant>>);

impl Nonces {
    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh nonce.
    pub fn issue(&self) -> Result<String, Error> {
        let nonce = oauth::random_token(16).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let mut book = self.book();
        if book.len() >= NONCES_MAX {
            // The expired go; if that is not enough, the oldest tenth (a flood of new-nonce
            // requests costs the oldest outstanding nonces one badNonce retry, not all).
            let now = Instant::now();
            book.retain(|_, made| now.duration_since(*made) < NONCE_LIFETIME);
            if book.len() >= NONCES_MAX {
                let mut ages: Vec<Instant> = book.values().copied().collect();
                ages.sort_unstable();
                if let Some(cut) = ages.get(NONCES_MAX / 10).copied() {
                    book.retain(|_, made| *made > cut);
                }
            }
        }
        book.insert(nonce.to_string(), Instant::now());
        Ok(nonce.to_string())
    }

    /// Uses `nonce`: true once for a nonce handed out within its lifetime, false after.
    pub fn redeem(&self, nonce: &str) -> bool {
        self.book()
            .remove(nonce)
            .is_some_and(|made| made.elapsed() < NONCE_LIFETIME)
    }
}

/// An account's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// In use.
    Valid,
    /// Deactivated by its holder: it can do nothing more.
    Deactivated,
}

/// An ACME account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Its id (the last segment of its URL).
    pub id: String,
    /// The label it was made at (its orders are issued there).
    pub label: String,
    /// The label's tenant.
    pub tenant: TenantId,
    /// Its public key (JWK).
    pub key: serde_json::Value,
    /// The key's RFC 7638 thumbprint.
    pub thumbprint: String,
    /// Its status.
    pub status: AccountStatus,
    /// Its contact URLs (`mailto:`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// The RA secret its external account binding used.
    pub binding: String,
    /// When it was made, Unix seconds.
    pub created_at: u64,
}

/// An order's status (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Authorizations to complete.
    Pending,
    /// Authorized: waiting for finalize.
    Ready,
    /// Finalized: waiting for the RA.
    Processing,
    /// Issued.
    Valid,
    /// Failed (an authorization failed, the RA rejected it, or it expired).
    Invalid,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Its id.
    pub id: String,
    /// The account that placed it.
    pub account: String,
    /// The account's label.
    pub label: String,
    /// The label's tenant.
    pub tenant: TenantId,
    /// The DNS names asked.
    pub identifiers: Vec<String>,
    /// Its authorizations' ids, one per identifier, in the same order.
    pub authorizations: Vec<String>,
    /// Its status as stored (see [`CasHandle::acme_order`] for the one answered).
    pub status: OrderStatus,
    /// When it expires, Unix seconds.
    pub expires: u64,
    /// The RA request finalize made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The serial of its certificate, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Why it is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was placed, Unix seconds.
    pub created_at: u64,
}

/// An authorization's status (two challenges each, http-01 and dns-01; the one answered
/// shares it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    /// Not yet validated.
    Pending,
    /// Validated.
    Valid,
    /// Validation failed.
    Invalid,
}

/// An authorization of one DNS name for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzRecord {
    /// Its id (its challenge's too).
    pub id: String,
    /// The account it authorizes.
    pub account: String,
    /// The order it belongs to.
    pub order: String,
    /// The label.
    pub label: String,
    /// The DNS name.
    pub identifier: String,
    /// The challenges' token.
    pub token: String,
    /// The challenge the client answered (`http-01` or `dns-01`), once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// Its status.
    pub status: AuthzStatus,
    /// When it expires, Unix seconds.
    pub expires: u64,
    /// When it was validated, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<u64>,
    /// Why validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn key(kind: &str, id: &str) -> Vec<u8> {
    format!("{kind}/{id}").into_bytes()
}

fn key_of(label: &str, thumbprint: &str) -> Vec<u8> {
    format!("key/{label}/{thumbprint}").into_bytes()
}

fn load_account(st: &Store, id: &str) -> Result<Option<AccountRecord>, Error> {
    load(st, Table::CaAcme, &key("account", id), "ACME account")
}

fn load_order(st: &Store, id: &str) -> Result<Option<OrderRecord>, Error> {
    load(st, Table::CaAcme, &key("order", id), "ACME order")
}

fn load_authz(st: &Store, id: &str) -> Result<Option<AuthzRecord>, Error> {
    load(st, Table::CaAcme, &key("authz", id), "ACME authorization")
}

fn put<T: Serialize>(st: &Store, kind: &str, id: &str, record: &T) -> Result<Write, Error> {
    Ok(st.sealed_write(Table::CaAcme, &key(kind, id), &encode(record)?)?)
}

fn create<T: Serialize>(st: &Store, kind: &str, id: &str, record: &T) -> Result<Write, Error> {
    Ok(st.sealed_create(Table::CaAcme, &key(kind, id), &encode(record)?)?)
}

fn who(account: &AccountRecord) -> Caller {
    Caller {
        tenant: account.tenant.clone(),
        subject: format!("acme:{}", account.id),
    }
}

fn entry(account: &AccountRecord, target: &str, op: &'static str) -> AuditEntry {
    AuditEntry::new(
        &format!("acme:{}", account.id),
        account.tenant.as_str(),
        target,
        op,
    )
}

/// An account to make.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Its public key (JWK).
    pub key: serde_json::Value,
    /// The key's thumbprint.
    pub thumbprint: String,
    /// Its contact URLs.
    pub contact: Vec<String>,
    /// The RA secret its binding names.
    pub binding: String,
}

impl CasHandle {
    /// The ACME nonces.
    pub fn acme_nonces(&self) -> &Nonces {
        &self.acme_nonces
    }

    /// Checks an external account binding at `label` naming RA secret `reference`: the
    /// secret must be the label's, unexpired and unused, and `verify` must accept the MAC
    /// with its key (RFC 8555 §7.3.4: the key is the base64url-decoded secret). Every
    /// failure is the same `unauthorized` (which references exist is not told) and audited.
    pub async fn acme_bind(
        &self,
        label: &LabelRecord,
        reference: &str,
        verify: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(), Error> {
        // A reference is `ra-` and base64url: anything else is refused before any read, and
        // is not written to the audit log.
        let well_formed = reference.len() <= 64
            && reference.starts_with("ra-")
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(Error::Unauthenticated {
                why: "unknown, expired, used or wrong external account binding key",
            });
        }
        let entry = AuditEntry::new(
            &format!("ra:{reference}"),
            label.tenant.as_str(),
            &label.label,
            "acme-new-account",
        );
        // An account issues any number of certificates for names it proves: never CA
        // certificates, and never from a secret meant for one subject.
        let who = Caller {
            tenant: label.tenant.clone(),
            subject: format!("ra:{reference}"),
        };
        match self.profile(&who, &label.profile).await {
            Ok(p) if !p.is_ca => {}
            Ok(_) => {
                let e = Error::Forbidden {
                    reason: "ACME does not serve labels whose profile issues CA certificates",
                };
                return self.audit.refused(entry, e).await;
            }
            Err(e) => return self.audit.refused(entry, e).await,
        }
        let (st, r) = (Arc::clone(&self.store), reference.to_owned());
        let (record, used) =
            blocking(move || Ok((load_secret(&st, &r)?, used_by(&st, &r)?.is_some()))).await?;
        if record.as_ref().is_some_and(|s| s.subject.is_some()) {
            let e = Error::Forbidden {
                reason: "an enrollment secret bound to a subject cannot bind an ACME account",
            };
            return self.audit.refused(entry, e).await;
        }
        let key = record
            .filter(|s| {
                !used
                    && s.label == label.label
                    && s.tenant == label.tenant
                    && s.expires_at > crate::now_unix()
            })
            .and_then(|s| cryptoutil_protocols::acme::eab_key(&s.secret));
        match key {
            Some(key) if verify(&key) => Ok(()),
            _ => {
                let e = Error::Unauthenticated {
                    why: "unknown, expired, used or wrong external account binding key",
                };
                self.audit.refused(entry, e).await
            }
        }
    }

    /// The account of `label` with key `thumbprint`, if any.
    pub async fn acme_account_by_key(
        &self,
        label: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, Error> {
        let (st, k) = (Arc::clone(&self.store), key_of(label, thumbprint));
        blocking(move || {
            let id: Option<String> = load(&st, Table::CaAcme, &k, "ACME key")?;
            match id {
                Some(id) => load_account(&st, &id),
                None => Ok(None),
            }
        })
        .await
    }

    /// Account `id` of `label`.
    ///
    /// Accounts change only through this handle (made, updated, deactivated), so each is read
    /// from the store once, then from memory. (Replicas sharing a store, issue 19, must share
    /// or drop this cache.)
    pub async fn acme_account(&self, label: &str, id: &str) -> Result<AccountRecord, Error> {
        let account = match self.acme_accounts.get(id) {
            Some(account) => Some(account),
            None => {
                let (st, id) = (Arc::clone(&self.store), id.to_owned());
                let loaded = blocking(move || load_account(&st, &id)).await?;
                if let Some(account) = &loaded {
                    self.acme_accounts.put(&account.id, account);
                }
                loaded
            }
        };
        account.filter(|a| a.label == label).ok_or(Error::NotFound {
            what: "ACME account",
        })
    }

    /// Makes an account at `label` bound to RA secret `new.binding` (already verified), which
    /// is used up in the same commit (audited as `acme-new-account`).
    pub async fn acme_new_account(
        &self,
        label: &LabelRecord,
        new: NewAccount,
    ) -> Result<AccountRecord, Error> {
        let account = AccountRecord {
            id: random_id(ACCOUNT_PREFIX, 12)?,
            label: label.label.clone(),
            tenant: label.tenant.clone(),
            key: new.key,
            thumbprint: new.thumbprint,
            status: AccountStatus::Valid,
            contact: new.contact,
            binding: new.binding,
            created_at: crate::now_unix(),
        };
        let entry = AuditEntry::new(
            &format!("ra:{}", account.binding),
            label.tenant.as_str(),
            &format!("{}/{}", label.label, account.id),
            "acme-new-account",
        );
        let (st, made) = (Arc::clone(&self.store), account.clone());
        let writes = blocking(move || {
            Ok(vec![
                create(&st, "account", &made.id, &made)?,
                st.sealed_create(
                    Table::CaAcme,
                    &key_of(&made.label, &made.thumbprint),
                    &encode(&made.id)?,
                )?,
                st.sealed_create(
                    Table::CaRaMarks,
                    &used_mark(&made.binding),
                    &encode(&(&made.tenant, &made.id))?,
                )?,
            ])
        })
        .await?;
        match self.audit.append(entry.clone(), writes).await {
            Ok(()) => {
                self.acme_accounts.put(&account.id, &account);
                Ok(account)
            }
            Err(Error::Conflict { .. }) => Err(Error::Unauthenticated {
                why: "the external account binding key was used meanwhile",
            }),
            Err(e) => Err(e),
        }
    }

    /// Changes `account`'s contact, or deactivates it (audited as `acme-update-account`).
    pub async fn acme_update_account(
        &self,
        account: &AccountRecord,
        contact: Option<Vec<String>>,
        deactivate: bool,
    ) -> Result<AccountRecord, Error> {
        // One change at a time, each to the account as stored: a contact change racing a
        // deactivation cannot bring the account back.
        let _one = self.acme_updates.lock().await;
        let (st, id) = (Arc::clone(&self.store), account.id.clone());
        let (updated, write) = blocking(move || {
            let mut updated = load_account(&st, &id)?.ok_or(Error::NotFound {
                what: "ACME account",
            })?;
            if let Some(contact) = contact {
                updated.contact = contact;
            }
            if deactivate {
                updated.status = AccountStatus::Deactivated;
            }
            let write = put(&st, "account", &updated.id, &updated)?;
            Ok((updated, write))
        })
        .await?;
        let op = if deactivate {
            "acme-deactivate-account"
        } else {
            "acme-update-account"
        };
        self.audit
            .append(entry(account, &account.id, op), vec![write])
            .await?;
        self.acme_accounts.put(&updated.id, &updated);
        Ok(updated)
    }

    /// Places an order for `names` (checked DNS names) with one pending authorization each
    /// (audited as `acme-new-order`).
    pub async fn acme_new_order(
        &self,
        account: &AccountRecord,
        names: Vec<String>,
    ) -> Result<(OrderRecord, Vec<AuthzRecord>), Error> {
        let now = crate::now_unix();
        let expires = now.saturating_add(ORDER_LIFETIME.as_secs());
        let order_id = random_id("order-", 12)?;
        let mut authzs = Vec::with_capacity(names.len());
        for name in &names {
            authzs.push(AuthzRecord {
                id: random_id("authz-", 12)?,
                account: account.id.clone(),
                order: order_id.clone(),
                label: account.label.clone(),
                identifier: name.clone(),
                token: oauth::random_token(32)
                    .map_err(|_| Error::Internal {
                        what: "random generator",
                    })?
                    .to_string(),
                challenge: None,
                status: AuthzStatus::Pending,
                expires,
                validated_at: None,
                error: None,
            });
        }
        let order = OrderRecord {
            id: order_id,
            account: account.id.clone(),
            label: account.label.clone(),
            tenant: account.tenant.clone(),
            identifiers: names,
            authorizations: authzs.iter().map(|a| a.id.clone()).collect(),
            status: OrderStatus::Pending,
            expires,
            request: None,
            serial: None,
            error: None,
            created_at: now,
        };
        let (st, o, a) = (Arc::clone(&self.store), order.clone(), authzs.clone());
        let writes = blocking(move || {
            let mut writes = vec![
                create(&st, "order", &o.id, &o)?,
                // The account's list of orders (RFC 8555 §7.1.2.1).
                st.sealed_create(
                    Table::CaAcme,
                    &key("orders-of", &format!("{}/{}", o.account, o.id)),
                    &encode(&o.id)?,
                )?,
            ];
            for authz in &a {
                writes.push(create(&st, "authz", &authz.id, authz)?);
            }
            Ok(writes)
        })
        .await?;
        self.audit
            .append(entry(account, &order.id, "acme-new-order"), writes)
            .await?;
        Ok((order, authzs))
    }

    /// Order `id` of `account`, its status as it stands: an expired unfinished order is
    /// invalid, and a processing one follows its RA request.
    pub async fn acme_order(
        &self,
        account: &AccountRecord,
        id: &str,
    ) -> Result<OrderRecord, Error> {
        let (st, id, owner) = (Arc::clone(&self.store), id.to_owned(), account.id.clone());
        blocking(move || {
            let mut order = load_order(&st, &id)?
                .filter(|o| o.account == owner)
                .ok_or(Error::NotFound { what: "ACME order" })?;
            if order.status == OrderStatus::Processing {
                if let Some(request) = &order.request {
                    let decided = super::ra::load_request(&st, &order.tenant, request)?;
                    match decided {
                        Some(r) if r.status == RequestStatus::Issued => {
                            order.status = OrderStatus::Valid;
                            order.serial = r.serial;
                        }
                        Some(r) if r.status == RequestStatus::Rejected => {
                            order.status = OrderStatus::Invalid;
                            order.error = r.reason.or(Some("rejected by the RA".into()));
                        }
                        _ => {}
                    }
                }
            }
            if order.status == OrderStatus::Pending {
                // Derived from its authorizations (each validation writes only its own, so
                // two validated at once cannot overwrite each other's outcome).
                let mut ready = true;
                for id in &order.authorizations {
                    match load_authz(&st, id)?.map(|a| (a.status, a.identifier)) {
                        Some((AuthzStatus::Valid, _)) => {}
                        Some((AuthzStatus::Invalid, name)) => {
                            order.status = OrderStatus::Invalid;
                            order.error = Some(format!("the authorization of {name} failed"));
                            ready = false;
                            break;
                        }
                        _ => ready = false,
                    }
                }
                if ready {
                    order.status = OrderStatus::Ready;
                }
            }
            if matches!(order.status, OrderStatus::Pending | OrderStatus::Ready)
                && order.expires <= crate::now_unix()
            {
                order.status = OrderStatus::Invalid;
                order.error = Some("the order expired".into());
            }
            Ok(order)
        })
        .await
    }

    /// The orders of `account` not yet invalid, oldest first, as they stand.
    pub async fn acme_orders(&self, account: &AccountRecord) -> Result<Vec<OrderRecord>, Error> {
        let (st, prefix) = (
            Arc::clone(&self.store),
            format!("orders-of/{}/", account.id),
        );
        let ids: Vec<String> =
            blocking(move || scan(&st, Table::CaAcme, prefix.as_bytes(), "ACME order index"))
                .await?;
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            let order = self.acme_order(account, &id).await?;
            if order.status != OrderStatus::Invalid {
                orders.push(order);
            }
        }
        orders.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(orders)
    }

    /// Authorization `id` of `account`.
    pub async fn acme_authz(
        &self,
        account: &AccountRecord,
        id: &str,
    ) -> Result<AuthzRecord, Error> {
        let (st, id, owner) = (Arc::clone(&self.store), id.to_owned(), account.id.clone());
        blocking(move || load_authz(&st, &id))
            .await?
            .filter(|a| a.account == owner)
            .ok_or(Error::NotFound {
                what: "ACME authorization",
            })
    }

    /// Records the outcome of validating `authz` (`Err`: why it failed): the authorization
    /// becomes valid or invalid (its order's status follows from its authorizations when
    /// read), audited as `acme-validate` (failed when validation failed).
    pub async fn acme_validated(
        &self,
        account: &AccountRecord,
        (authz, challenge): (&AuthzRecord, &str),
        outcome: Result<(), String>,
    ) -> Result<AuthzRecord, Error> {
        // One outcome per authorization: two validations racing (its http-01 and dns-01
        // answered at once) cannot overwrite each other; the first recorded stands.
        let _one = self.acme_updates.lock().await;
        let mut done = authz.clone();
        done.challenge = Some(challenge.to_owned());
        match &outcome {
            Ok(()) => {
                done.status = AuthzStatus::Valid;
                done.validated_at = Some(crate::now_unix());
            }
            Err(why) => {
                done.status = AuthzStatus::Invalid;
                done.error = Some(why.clone());
            }
        }
        let (st, stored) = (Arc::clone(&self.store), done.clone());
        let write = blocking(move || match load_authz(&st, &stored.id)? {
            Some(now) if now.status != AuthzStatus::Pending => Ok(Err(now)),
            _ => Ok(Ok(put(&st, "authz", &stored.id, &stored)?)),
        })
        .await?;
        let write = match write {
            Ok(write) => write,
            Err(already) => return Ok(already),
        };
        let mut audit = entry(
            account,
            &format!("{}/{challenge}", authz.id),
            "acme-validate",
        );
        if let Err(why) = &outcome {
            audit = audit.outcome(&Err::<(), _>(why));
        }
        self.audit.append(audit, vec![write]).await?;
        Ok(done)
    }

    /// Finalizes ready `order` with `csr_der`: the request goes through the RA (enrollment
    /// `acme`), which issues it or queues it; the order becomes valid or processing in the
    /// same commit, and the issued certificate is remembered as `account`'s (so it may revoke
    /// it).
    pub async fn acme_finalize(
        &self,
        label: &LabelRecord,
        account: &AccountRecord,
        order: &OrderRecord,
        csr_der: Vec<u8>,
    ) -> Result<OrderRecord, Error> {
        let (st, mut next) = (Arc::clone(&self.store), order.clone());
        let written = Arc::new(Mutex::new(None::<OrderRecord>));
        let answer = Arc::clone(&written);
        let then: super::ra::Then = Box::new(move |request: &RequestRecord| {
            next.request = Some(request.id.clone());
            let mut writes = Vec::with_capacity(2);
            match (&request.status, &request.serial) {
                (RequestStatus::Issued, Some(serial)) => {
                    next.status = OrderStatus::Valid;
                    next.serial = Some(serial.clone());
                    writes.push(store::acme_claim_write(
                        &st,
                        &request.ca,
                        serial,
                        &next.account,
                    )?);
                }
                _ => next.status = OrderStatus::Processing,
            }
            // Created once: of two finalizes racing over one ready order, one commits.
            writes.push(st.sealed_create(
                Table::CaAcme,
                &key("finalized", &next.id),
                &encode(&request.id)?,
            )?);
            writes.push(put(&st, "order", &next.id, &next)?);
            *answer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(next);
            Ok(writes)
        });
        let who = Enrollee::Account {
            account: account.id.clone(),
            names: order.identifiers.clone(),
        };
        match self
            .enroll_then(label, who, csr_der, "acme", Some(then))
            .await?
        {
            Enrolled::Issued(_) | Enrolled::Pending { .. } => {
                // The order as this finalize committed it; one seen before (the same request
                // again) is read back.
                let committed = written
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                match committed {
                    Some(order) => Ok(order),
                    None => self.acme_order(account, &order.id).await,
                }
            }
            Enrolled::Rejected { reason } => {
                Err(Error::Refused(cryptoutil_protocols::ca::CaError {
                    field: "csr",
                    reason,
                }))
            }
        }
    }

    /// The certificate of valid order `order` and its chain, leaf first.
    pub async fn acme_certificate(&self, order: &OrderRecord) -> Result<Vec<Der>, Error> {
        let (serial, label) = match (&order.status, &order.serial) {
            (OrderStatus::Valid, Some(serial)) => (serial.clone(), self.label(&order.label).await?),
            _ => {
                return Err(Error::NotFound {
                    what: "certificate",
                })
            }
        };
        let (st, ca) = (Arc::clone(&self.store), label.ca.clone());
        let (cert, ca) = blocking(move || {
            Ok((
                store::load_cert(&st, &ca, &serial)?,
                store::load_ca(&st, &ca)?,
            ))
        })
        .await?;
        let (cert, ca) = cert.zip(ca).ok_or(Error::NotFound {
            what: "certificate",
        })?;
        let mut chain = vec![cert.certificate];
        chain.extend(ca.issued_chain());
        Ok(chain)
    }

    /// Revokes `cert_der` (issued by `label`'s CA) for `by`: the account that ordered it, or
    /// the holder of its key (already proven by the request's signature). Audited by the CA's
    /// revocation.
    pub async fn acme_revoke(
        &self,
        label: &LabelRecord,
        by: Revoker<'_>,
        cert_der: &[u8],
        reason: Reason,
    ) -> Result<(), Error> {
        let summary = cryptoutil_protocols::ca::summary(cert_der).map_err(|_| Error::NotFound {
            what: "certificate",
        })?;
        let (st, ca, serial, der) = (
            Arc::clone(&self.store),
            label.ca.clone(),
            summary.serial.clone(),
            cert_der.to_vec(),
        );
        let found = blocking(move || {
            let cert = store::load_cert(&st, &ca, &serial)?;
            if cert.is_none_or(|c| c.certificate.0 != der) {
                return Ok(None);
            }
            Ok(Some(store::acme_claim(&st, &ca, &serial)?))
        })
        .await?;
        let Some(owner) = found else {
            return Err(Error::NotFound {
                what: "certificate",
            });
        };
        let who = match by {
            Revoker::Account(account) if owner.as_deref() == Some(account.id.as_str()) => {
                who(account)
            }
            Revoker::Account(_) => {
                return Err(Error::Forbidden {
                    reason: "this account did not order the certificate",
                })
            }
            Revoker::CertificateKey => Caller {
                tenant: label.tenant.clone(),
                subject: format!("acme:certificate-key:{}", summary.serial),
            },
        };
        self.revoke(&who, &label.ca, &summary.serial, Some(reason))
            .await?;
        Ok(())
    }
}

/// Who asks to revoke a certificate over ACME (RFC 8555 §7.6).
#[derive(Debug, Clone, Copy)]
pub enum Revoker<'a> {
    /// The account that ordered it.
    Account(&'a AccountRecord),
    /// The holder of its private key (the request was signed with it).
    CertificateKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_redeemed_once() {
        let nonces = Nonces::default();
        let n = nonces.issue().unwrap();
        assert!(nonces.redeem(&n));
        assert!(!nonces.redeem(&n));
        assert!(!nonces.redeem("never-issued"));
    }
}
