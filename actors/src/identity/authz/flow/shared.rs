//! identity-authz replicas sharing one store (PostgreSQL).
//!
//! Each replica keeps deciding in its own actor, on its own maps; what makes them agree:
//!
//! - **Read before deciding.** A message that decides on an in-flight record (a code, a
//!   pending or pushed request, a refresh family, an ended session) first reads those records
//!   from the store ([`Fetch`], off the mailbox) and the decision runs on what it read, so a
//!   flow started on one replica finishes on another.
//! - **Written before answering.** Every change a decision makes to the flow is journaled as a
//!   store write ([`AuthzState::keep`], [`AuthzState::forget`]) and made durable with the
//!   decision's other writes, in one transaction, before the caller hears the answer.
//! - **Facts that count once are created.** A redeemed code (`used/`), a client assertion or
//!   DPoP proof seen (`replay/`), and each write of a refresh family (`family/<id>/<version>`)
//!   are create-only records: of two replicas that decided the same thing at once, one
//!   transaction fails whole with `Exists`, and that caller is refused (a refresh token used
//!   twice at once also revokes its family).
//! - **Administration is read again every second** ([`super::super::REFRESH`]): tenants,
//!   clients, users, signing keys, revocations and consents.
//!
//! Every record carries its expiry; a sweep deletes the expired ones.

use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use zeroize::Zeroizing;

use super::*;
use crate::identity::authz::state::{record_json, AuthzState};
use crate::journal::{mirror, Journal, Kept};

/// How long the store remembers that a session ended, or which clients it issued tokens to
/// (longer than any sign-in session lives).
const SESSION_MEMORY: u64 = 30 * 86_400;

/// What a decision reads from the store first.
#[derive(Debug, Default)]
pub struct Fetch {
    /// Flow records by key.
    pub(in crate::identity::authz) flow: Vec<String>,
    /// Flow records under a prefix (`took-part/<sid>/`).
    pub(in crate::identity::authz) prefixes: Vec<String>,
    /// Refresh families by id.
    pub(in crate::identity::authz) families: Vec<String>,
    /// Every refresh family (a logout finds a session's families among them).
    pub(in crate::identity::authz) all_families: bool,
}

/// Flow records read under one prefix: (key, plaintext).
type Prefixed = Vec<(String, Zeroizing<Vec<u8>>)>;

/// What a [`Fetch`] read.
#[derive(Default)]
pub struct Fetched {
    flow: Vec<(String, Option<Zeroizing<Vec<u8>>>)>,
    prefixed: Vec<(String, Prefixed)>,
    families: Vec<(String, Option<Family>)>,
    all_families: Option<Vec<Family>>,
}

pub(in crate::identity::authz) fn pending_key(challenge: &str) -> String {
    format!("pending/{challenge}")
}

pub(in crate::identity::authz) fn pushed_key(uri: &str) -> String {
    format!("pushed/{uri}")
}

pub(in crate::identity::authz) fn code_key(digest: &[u8; 32]) -> String {
    format!("code/{}", b64::encode(digest))
}

pub(in crate::identity::authz) fn used_key(digest: &[u8; 32]) -> String {
    format!("used/{}", b64::encode(digest))
}

pub(in crate::identity::authz) fn ended_key(sid: &str) -> String {
    format!("ended/{sid}")
}

pub(in crate::identity::authz) fn took_part_prefix(sid: &str) -> String {
    format!("took-part/{sid}/")
}

pub(in crate::identity::authz) fn took_part_key(sid: &str, client_id: &str) -> String {
    format!("{}{client_id}", took_part_prefix(sid))
}

/// A client assertion (`a`) or DPoP proof (`d`) identified by `who` and its `jti`.
pub(in crate::identity::authz) fn replay_key(kind: char, who: &str, jti: &str) -> String {
    let digest = oauth::token_digest(format!("{who}\n{jti}").as_bytes());
    format!("replay/{kind}/{}", b64::encode(&digest))
}

fn family_claim_key(id: &str, version: u64) -> String {
    format!("family/{id}/{version:020}")
}

/// The `sid` an ID token names, read without verifying it: only to know which records to
/// fetch (the logout verifies the token before it acts on it).
pub(in crate::identity::authz) fn unverified_sid(id_token: &str) -> Option<String> {
    let payload = b64::decode(id_token.split('.').nth(1)?, "id_token").ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    Some(claims.get("sid")?.as_str()?.to_owned()).filter(|s| !s.is_empty() && s.len() <= 256)
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    plain: Option<&[u8]>,
    what: &'static str,
) -> Result<Option<T>, Error> {
    crate::journal::decode_some(Table::IdentityFlow, key, plain, what)
}

fn family(store: &Store, id: &str) -> Result<Option<Family>, Error> {
    crate::record::load(store, Table::IdentityRefresh, id.as_bytes(), "family")
}

/// Blocking: reads what `fetch` names (and the family a redeemed code produced, which a second
/// use of the code revokes).
pub fn read(store: &Store, fetch: Fetch) -> Result<Fetched, Error> {
    let mut out = Fetched::default();
    let mut families = fetch.families;
    for key in fetch.flow {
        let plain = store.get_sealed(Table::IdentityFlow, key.as_bytes())?;
        if key.starts_with("used/") {
            let used: Option<UsedCode> =
                decode(&key, plain.as_ref().map(|p| p.as_slice()), "redeemed code")?;
            families.extend(used.and_then(|u| u.family));
        }
        out.flow.push((key, plain));
    }
    for prefix in fetch.prefixes {
        let found = store
            .scan_sealed(Table::IdentityFlow, prefix.as_bytes())?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        out.prefixed.push((prefix, found));
    }
    for id in families {
        let f = family(store, &id)?;
        out.families.push((id, f));
    }
    if fetch.all_families {
        out.all_families = Some(crate::record::scan(
            store,
            Table::IdentityRefresh,
            b"",
            "family",
        )?);
    }
    Ok(out)
}

fn digest_of(key: &str, rest: &str) -> Result<[u8; 32], Error> {
    crate::journal::digest_in(Table::IdentityFlow, key, rest)
}

impl AuthzState {
    /// Makes the maps hold what the store holds for the records `fetched` read.
    pub fn absorb(&mut self, fetched: Fetched) -> Result<(), Error> {
        for (key, plain) in fetched.flow {
            let plain = plain.as_ref().map(|p| p.as_slice());
            if let Some(c) = key.strip_prefix("pending/") {
                let v = decode(&key, plain, "pending request")?;
                mirror(&mut self.flow.pending, c.to_owned(), v);
            } else if let Some(u) = key.strip_prefix("pushed/") {
                let v = decode(&key, plain, "pushed request")?;
                mirror(&mut self.flow.pushed, u.to_owned(), v);
            } else if let Some(d) = key.strip_prefix("code/") {
                let v = decode(&key, plain, "code")?;
                mirror(&mut self.flow.codes, digest_of(&key, d)?, v);
            } else if let Some(d) = key.strip_prefix("used/") {
                let v = decode(&key, plain, "redeemed code")?;
                mirror(&mut self.flow.used_codes, digest_of(&key, d)?, v);
            } else if let Some(sid) = key.strip_prefix("ended/") {
                let v = decode(&key, plain, "ended session")?;
                mirror(&mut self.flow.ended, sid.to_owned(), v);
            }
        }
        for (prefix, found) in fetched.prefixed {
            let Some(sid) = prefix
                .strip_prefix("took-part/")
                .and_then(|s| s.strip_suffix('/'))
            else {
                continue;
            };
            let mut clients = BTreeSet::new();
            let mut last = 0;
            for (key, plain) in found {
                let at: u64 =
                    crate::journal::decode(Table::IdentityFlow, &key, &plain, "session's client")?;
                last = last.max(at);
                clients.insert(key.trim_start_matches(&prefix).to_owned());
            }
            let v = (!clients.is_empty()).then_some((last, clients));
            mirror(&mut self.flow.participants, sid.to_owned(), v);
        }
        for (id, f) in fetched.families {
            mirror(&mut self.families, id, f);
        }
        if let Some(all) = fetched.all_families {
            self.families = all.into_iter().map(|f| (f.id.clone(), f)).collect();
        }
        Ok(())
    }

    /// Journals `value` under `key` until `expires` (created: a second write fails the
    /// transaction). Only when replicas share the store.
    pub(in crate::identity::authz) fn keep<T: Serialize>(
        &mut self,
        key: &str,
        expires: u64,
        value: &T,
        create: bool,
    ) {
        self.flow.journal.keep(key, expires, value, create);
    }

    /// Journals the deletion of `key`. Only when replicas share the store.
    pub(in crate::identity::authz) fn forget(&mut self, key: &str) {
        self.flow.journal.forget(key);
    }

    /// The journal of the decision just made, emptied.
    pub fn take_journal(&mut self) -> Result<Vec<Write>, Error> {
        self.flow.journal.take()
    }

    /// Whether replicas share the store.
    pub fn shared(&self) -> bool {
        self.flow.journal.is_on()
    }

    /// Replicas share the store from now on.
    pub fn share(&mut self) {
        self.flow.journal = Journal::on(self.store(), Table::IdentityFlow);
    }

    /// Records `sid` ended at `now` (journaled).
    pub(in crate::identity::authz) fn keep_ended(&mut self, sid: &str, now: u64) {
        self.keep(&ended_key(sid), now + SESSION_MEMORY, &now, false);
    }

    /// Records that `sid` issued tokens to `client_id` at `now` (journaled).
    pub(in crate::identity::authz) fn keep_took_part(
        &mut self,
        sid: &str,
        client_id: &str,
        now: u64,
    ) {
        self.keep(
            &took_part_key(sid, client_id),
            now + SESSION_MEMORY,
            &now,
            false,
        );
    }
}

/// The writes of `families` to a shared store: each a new version, claimed by creating
/// `family/<id>/<version>` (so of two replicas that read one version and write the next, one
/// fails); the families as written.
pub fn family_writes(
    store: &Store,
    families: &[Family],
    writes: &mut Vec<Write>,
) -> Result<Vec<Family>, Error> {
    let mut written = Vec::with_capacity(families.len());
    for f in families {
        let mut f = f.clone();
        f.version += 1;
        let claim = record_json(&Kept {
            expires: f.expires,
            value: (),
        })?;
        writes.push(store.sealed_create(
            Table::IdentityFlow,
            family_claim_key(&f.id, f.version).as_bytes(),
            &claim,
        )?);
        writes.push(store.sealed_write(
            Table::IdentityRefresh,
            f.id.as_bytes(),
            &record_json(&f)?,
        )?);
        written.push(f);
    }
    Ok(written)
}

/// The refusal a create-only clash stands for: what another replica decided first.
pub fn clash(e: &Error) -> Option<Clash> {
    let Error::Storage(cryptoutil_storage::Error::Exists { table, key_hint }) = e else {
        return None;
    };
    if *table != Table::IdentityFlow.name() {
        return None;
    }
    let mut parts = key_hint.split('/');
    Some(match (parts.next(), parts.next()) {
        (Some("family"), Some(id)) => Clash::Family(id.to_owned()),
        (Some("replay"), Some("a")) => Clash::Refused(oauth::TokenError::InvalidClient),
        (Some("replay"), Some("d")) => Clash::Refused(oauth::TokenError::InvalidDpopProof),
        _ => Clash::Refused(oauth::TokenError::InvalidGrant),
    })
}

/// What another replica did first.
#[derive(Debug)]
pub enum Clash {
    /// It decided the same (a code, a proof, an assertion used twice): refuse.
    Refused(oauth::TokenError),
    /// It wrote this refresh family first: the token was presented twice, revoke the family.
    Family(String),
}

/// Blocking: revokes family `id` (and the last access token it issued) in the store, writing
/// a new version; read again and retried while other replicas write it too.
pub fn revoke_family(store: &Store, id: &str) -> Result<(), Error> {
    for _ in 0..8 {
        let Some(mut f) = family(store, id)? else {
            return Ok(());
        };
        if f.revoked {
            return Ok(());
        }
        f.revoked = true;
        let mut writes = Vec::new();
        family_writes(store, std::slice::from_ref(&f), &mut writes)?;
        if let Some((jti, exp)) = &f.last_jti {
            let record = serde_json::json!({ "exp": exp }).to_string();
            writes.push(store.sealed_write(
                Table::IdentityRevoked,
                jti.as_bytes(),
                record.as_bytes(),
            )?);
        }
        match store.apply(writes) {
            Ok(()) => return Ok(()),
            Err(cryptoutil_storage::Error::Exists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal {
        what: "revoking a refresh family other replicas keep writing",
    })
}

/// Blocking: deletes the flow records whose time is up; how many.
pub fn sweep(store: &Store, now: u64) -> Result<usize, Error> {
    crate::journal::sweep(store, Table::IdentityFlow, now)
}
