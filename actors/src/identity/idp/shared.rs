//! identity-idp replicas sharing one store (PostgreSQL): sessions, waiting sign-ins, WebAuthn
//! ceremonies and failure counts in `identity_flow_v1` of identity-idp's store, each
//! `{"expires": ..., "value": ...}`:
//!
//! - `session/<digest of the cookie>`, `step/<digest of the token>`, `ceremony/<digest of
//!   the key>`: read before a decision on them, written or deleted before it is answered;
//! - `finished/<digest>` and `taken/<digest of the challenge>`: created, so a waiting sign-in
//!   finishes once and a WebAuthn challenge is taken once, whichever replica sees them;
//! - `failure/<digest of tenant and name>/<time>-<random>`: one record per failed sign-in, so
//!   replicas counting at once lose none; the name's failures are those of the last
//!   15 minutes, and a sign-in deletes them.

use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use cryptoutil_storage::{Store, Table};
use zeroize::Zeroizing;

use super::msg::IdpMsg;
use super::state::IdpState;
use crate::error::Error;
use crate::journal::Kept;

const TABLE: Table = Table::IdentityFlow;

pub(super) fn session_key(digest: &[u8; 32]) -> String {
    format!("session/{}", b64::encode(digest))
}

pub(super) fn step_key(digest: &[u8; 32]) -> String {
    format!("step/{}", b64::encode(digest))
}

pub(super) fn finished_key(digest: &[u8; 32]) -> String {
    format!("finished/{}", b64::encode(digest))
}

pub(super) fn ceremony_key(digest: &[u8; 32]) -> String {
    format!("ceremony/{}", b64::encode(digest))
}

pub(super) fn taken_key(challenge: &[u8]) -> String {
    format!("taken/{}", b64::encode(&oauth::token_digest(challenge)))
}

fn failures_prefix(tenant: &str, username: &str) -> String {
    let name = format!("{tenant}\n{}", username.to_ascii_lowercase());
    format!(
        "failure/{}/",
        b64::encode(&oauth::token_digest(name.as_bytes()))
    )
}

/// A new failure record of `tenant`/`username` at `now`.
pub(super) fn failure_key(tenant: &str, username: &str, now: u64) -> String {
    let mut nonce = [0u8; 6];
    // A clash of two failures in one second on one name would only count them once.
    let _ = oauth::fill_random(&mut nonce);
    format!(
        "{}{now:020}-{}",
        failures_prefix(tenant, username),
        b64::encode(&nonce)
    )
}

/// What a decision reads from the store first.
#[derive(Debug, Default)]
pub struct Fetch {
    /// Records by key.
    keys: Vec<String>,
    /// Names whose failures count: (tenant, username).
    names: Vec<(String, String)>,
    /// A waiting sign-in's token digest: its user's failures count too.
    step_user: Option<[u8; 32]>,
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

/// What `msg` decides on; `None`: nothing to read first.
pub fn fetch_for(msg: &IdpMsg) -> Option<Fetch> {
    let mut f = Fetch::default();
    let digest = |s: &str| oauth::token_digest(s.as_bytes());
    match msg {
        IdpMsg::Session { cookie, .. } => f.keys = vec![session_key(&digest(cookie))],
        IdpMsg::Check {
            tenant, username, ..
        }
        | IdpMsg::Failed {
            tenant, username, ..
        }
        | IdpMsg::Ration {
            tenant,
            name: username,
            ..
        } => f.names = vec![(tenant.clone(), username.clone())],
        IdpMsg::Open { user, .. } => f.names = vec![(user.tenant.clone(), user.username.clone())],
        IdpMsg::Attempt { token, .. } | IdpMsg::Finish { token, .. } => {
            let d = digest(token);
            f.keys = vec![step_key(&d)];
            f.step_user = Some(d);
        }
        IdpMsg::Waiting { token, .. } => f.keys = vec![step_key(&digest(token))],
        IdpMsg::TakeCeremony { key, .. } => f.keys = vec![ceremony_key(&digest(key))],
        _ => return None,
    }
    Some(f)
}

fn failures_of(store: &Store, tenant: &str, username: &str) -> Result<Vec<(String, u64)>, Error> {
    store
        .scan_sealed(TABLE, failures_prefix(tenant, username).as_bytes())?
        .into_iter()
        .map(|(k, plain)| {
            let key = String::from_utf8_lossy(&k).into_owned();
            let at: Kept<u64> = crate::journal::decode(TABLE, &key, &plain, "failure")?;
            Ok((key, at.value))
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
                let step: Kept<StepOf> = crate::journal::decode(TABLE, &key, p, "waiting sign-in")?;
                names.push((step.value.user.tenant, step.value.user.username));
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
