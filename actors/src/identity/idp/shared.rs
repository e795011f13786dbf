//! identity-idp replicas sharing one store (PostgreSQL): sessions, waiting sign-ins, WebAuthn
//! ceremonies and failure counts in `identity_flow_v1` of identity-idp's store, each
//! `{"expires": ..., "value": ...}`:
//!
//! - `session/<digest of the cookie>`, `step/<digest of the token>`, `ceremony/<digest of
//!   the key>`: read before a decision on them, written or deleted before it is answered;
//! - `finished/<digest>` and `taken/<digest of the challenge>`: created, so a waiting sign-in
//!   finishes once and a WebAuthn challenge is taken once, whichever replica sees them;
//! - `tried/<digest>/<n>`: created with a waiting sign-in's `n`th attempt, so codes sent at
//!   once (to one replica or several) spend its attempts one each, never the same one twice;
//! - `factor-revision/<digest of a factor record's key>/<n>`: created with each change a
//!   check makes to a factor record, and with its removal ([`super::records`]), so one code,
//!   counter or recovery code is spent by one replica only and a removed record stays so;
//! - `failure/<digest of tenant and name>/<time>-<random>`: one record per failed sign-in, so
//!   replicas counting at once lose none; the name's failures are those of the last
//!   15 minutes, and a sign-in deletes them.

use cryptoutil_storage::{Store, Table};
use zeroize::Zeroizing;

use super::state::{failures_prefix, step_key, IdpState};
use crate::error::Error;

pub(super) const TABLE: Table = Table::IdentityFlow;

/// What a decision reads from the store first.
#[derive(Debug, Default)]
pub struct Fetch {
    /// Records by key.
    pub(super) keys: Vec<String>,
    /// Names whose failures count: (tenant, username).
    pub(super) names: Vec<(String, String)>,
    /// A waiting sign-in's token digest: its user's failures count too.
    pub(super) step_user: Option<[u8; 32]>,
}

/// A name's failure records: (key, time).
type FailureRecords = Vec<(String, u64)>;

/// What a [`Fetch`] read.
#[derive(Default)]
pub struct Fetched {
    records: Vec<(String, Option<Zeroizing<Vec<u8>>>)>,
    failures: Vec<((String, String), FailureRecords)>,
}

/// Whose a waiting sign-in is (the part of its record read to find the name's failures).
#[derive(serde::Deserialize)]
struct StepOf {
    user: NameOf,
}

#[derive(serde::Deserialize)]
struct NameOf {
    tenant: String,
    username: String,
}

fn failures_of(store: &Store, tenant: &str, username: &str) -> Result<Vec<(String, u64)>, Error> {
    store
        .scan_sealed(TABLE, failures_prefix(tenant, username).as_bytes())?
        .into_iter()
        .map(|(k, plain)| {
            let key = String::from_utf8_lossy(&k).into_owned();
            let at: u64 = crate::journal::decode(TABLE, &key, &plain, "failure")?;
            Ok((key, at))
        })
        .collect()
}

/// Blocking: reads what `fetch` names (and the failures of a waiting sign-in's user).
pub fn read(store: &Store, fetch: Fetch) -> Result<Fetched, Error> {
    let mut out = Fetched::default();
    let mut names = fetch.names;
    for key in fetch.keys {
        let plain = store.get_sealed(TABLE, key.as_bytes())?;
        if let (Some(d), Some(p)) = (&fetch.step_user, &plain) {
            if key == step_key(d) {
                let step: StepOf = crate::journal::decode(TABLE, &key, p, "waiting sign-in")?;
                names.push((step.user.tenant, step.user.username));
            }
        }
        out.records.push((key, plain));
    }
    for (tenant, username) in names {
        let found = failures_of(store, &tenant, &username)?;
        out.failures.push(((tenant, username), found));
    }
    Ok(out)
}

impl IdpState {
    /// Replicas share `store` from now on.
    pub fn share(&mut self, store: std::sync::Arc<Store>) {
        self.journal = crate::journal::Journal::on(store, TABLE);
    }

    /// The shared store, if replicas share it.
    pub fn journal_store(&self) -> Option<std::sync::Arc<Store>> {
        self.journal.store()
    }

    /// The writes of the decision just made, taken.
    pub fn take_journal(&mut self) -> Result<Vec<cryptoutil_storage::backend::Write>, Error> {
        self.journal.take()
    }
}

/// Blocking: deletes the expired records; how many.
pub fn sweep(store: &Store, now: u64) -> Result<usize, Error> {
    crate::journal::sweep(store, TABLE, now)
}

/// Makes `st` hold what the store holds for the records `fetched` read, at `now`.
pub fn absorb(st: &mut IdpState, fetched: Fetched, now: u64) -> Result<(), Error> {
    for (key, plain) in fetched.records {
        st.mirror(&key, plain.as_ref().map(|p| p.as_slice()))?;
    }
    for (name, records) in fetched.failures {
        st.mirror_failures(name, records, now);
    }
    Ok(())
}
