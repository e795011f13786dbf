//! Short-lived records of an actor that replicas sharing a store (PostgreSQL) must agree on:
//! identity-authz's codes and pending requests, identity-idp's sessions and lockout counts.
//!
//! Such an actor still decides on its own maps; before deciding it reads the records the
//! decision is about from the store, and what the decision changes is written to a
//! [`Journal`] that is made durable before the caller hears the answer. A fact that must count
//! once (a code redeemed, a proof seen) is *created*: of two replicas that decide it at once,
//! one transaction fails whole with `Exists`. Every record carries its expiry ([`Kept`]) and
//! [`sweep`] deletes the expired ones. With a store of its own (redb) the journal is off and
//! costs nothing.

use std::sync::Arc;
use std::time::Duration;

use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A record as stored: its value and when it may be swept.
#[derive(Serialize, Deserialize)]
pub struct Kept<T> {
    /// Unix time after which the record is of no use.
    pub expires: u64,
    /// The value.
    pub value: T,
}

/// The value of a record read from `table` under `key` ([`crate::record::decode`] of its
/// [`Kept`] envelope).
pub fn decode<T: DeserializeOwned>(
    table: Table,
    key: &str,
    plain: &[u8],
    what: &'static str,
) -> Result<T, Error> {
    crate::record::decode::<Kept<T>>(table, key.as_bytes(), plain, what).map(|kept| kept.value)
}

/// [`decode`] of a record that may be absent (`None`: the store holds none under `key`).
pub fn decode_some<T: DeserializeOwned>(
    table: Table,
    key: &str,
    plain: Option<&[u8]>,
    what: &'static str,
) -> Result<Option<T>, Error> {
    plain.map(|p| decode(table, key, p, what)).transpose()
}

/// Sets `map[k]` to `v`, or removes it when `v` is `None` (the store no longer holds it).
pub fn mirror<K: std::hash::Hash + Eq, V>(
    map: &mut std::collections::HashMap<K, V>,
    k: K,
    v: Option<V>,
) {
    match v {
        Some(v) => {
            map.insert(k, v);
        }
        None => {
            map.remove(&k);
        }
    }
}

/// A SHA-256 digest as a key names it (base64url), or the record is corrupt.
pub fn digest_in(table: Table, key: &str, text: &str) -> Result<[u8; 32], Error> {
    cryptoutil_protocols::jose::b64::decode(text, "digest")
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
        .ok_or_else(|| Error::corrupt(table, key.as_bytes(), "digest"))
}

/// The writes of the decision being made.
pub struct Journal {
    /// The shared store and the table the records go to; `None`: the journal is off.
    at: Option<(Arc<Store>, Table)>,
    writes: Vec<Write>,
    /// A record could not be sealed: the decision must not be answered.
    failed: bool,
}

impl Default for Journal {
    fn default() -> Self {
        Self::off()
    }
}

impl Journal {
    /// Off: the store is the process's own.
    pub fn off() -> Self {
        Self {
            at: None,
            writes: Vec::new(),
            failed: false,
        }
    }

    /// On: records go to `table` of `store`, which other replicas share.
    pub fn on(store: Arc<Store>, table: Table) -> Self {
        Self {
            at: Some((store, table)),
            writes: Vec::new(),
            failed: false,
        }
    }

    /// Whether replicas share the store.
    pub fn is_on(&self) -> bool {
        self.at.is_some()
    }

    /// The shared store, when the journal is on.
    pub fn store(&self) -> Option<Arc<Store>> {
        self.at.as_ref().map(|(store, _)| Arc::clone(store))
    }

    /// Writes `value` under `key` until `expires`; `create`: the transaction fails if the
    /// record exists.
    pub fn keep<T: Serialize>(&mut self, key: &str, expires: u64, value: &T, create: bool) {
        let Some((store, table)) = &self.at else {
            return;
        };
        let write = crate::record::encode(&Kept { expires, value }).and_then(|plain| {
            let key = key.as_bytes();
            let w = if create {
                store.sealed_create(*table, key, &plain)
            } else {
                store.sealed_write(*table, key, &plain)
            };
            w.map_err(Error::from)
        });
        match write {
            Ok(w) => self.writes.push(w),
            Err(e) => {
                tracing::error!(error = %e, "a shared record could not be sealed");
                self.failed = true;
            }
        }
    }

    /// Deletes `key`.
    pub fn forget(&mut self, key: &str) {
        if let Some((_, table)) = &self.at {
            self.writes.push(Write::Delete {
                table: *table,
                key: key.as_bytes().to_vec(),
            });
        }
    }

    /// The writes so far, taken (the journal is empty after).
    pub fn take(&mut self) -> Result<Vec<Write>, Error> {
        let writes = std::mem::take(&mut self.writes);
        if std::mem::take(&mut self.failed) {
            return Err(Error::Internal {
                what: "sealing a shared record",
            });
        }
        Ok(writes)
    }
}

/// Answers `result` (through `answer`) once `writes` are durable in `store`: at once when there
/// are none, else after a commit off the caller's thread; a failed commit answers what
/// `failed` makes of its error instead (a create-only clash is another replica's decision).
pub fn answer_when_written<T: Send + 'static>(
    store: Arc<Store>,
    writes: Vec<Write>,
    result: Result<T, Error>,
    failed: impl FnOnce(&Store, cryptoutil_storage::Error) -> Error + Send + 'static,
    answer: impl FnOnce(Result<T, Error>) + Send + 'static,
) {
    if writes.is_empty() {
        return answer(result);
    }
    tokio::task::spawn_blocking(move || {
        let written = store.apply(writes).map_err(|e| failed(&store, e));
        answer(written.and(result));
    });
}

/// Blocking: deletes the records of `table` whose time is up; how many.
pub fn sweep(store: &Store, table: Table, now: u64) -> Result<usize, Error> {
    let mut expired = Vec::new();
    for (k, plain) in store.scan_sealed(table, b"")? {
        let gone = serde_json::from_slice::<Kept<serde::de::IgnoredAny>>(&plain)
            .map_or(true, |kept| kept.expires <= now);
        if gone {
            expired.push(Write::Delete { table, key: k });
        }
    }
    let n = expired.len();
    for chunk in expired.chunks(1000) {
        store.apply(chunk.to_vec())?;
    }
    Ok(n)
}

/// Blocking: whether this replica does the periodic job `name` for the interval (`every`)
/// that holds `now`: of the replicas sharing `store`, the first to create
/// `scheduler/<name>/<interval number>` in the metadata table does, so a job runs once per
/// interval, not once per replica (the claim two intervals back is deleted). A replica that
/// wins and then dies leaves its interval's work to the next interval's winner.
pub fn run_once(store: &Store, name: &str, every: Duration, now: u64) -> Result<bool, Error> {
    let slot = now / every.as_secs().max(1);
    let key = |slot: u64| format!("scheduler/{name}/{slot:020}").into_bytes();
    let claim = Write::Create {
        table: Table::Meta,
        key: key(slot),
        value: format!("{{\"at\":{now}}}").into_bytes(),
    };
    match store.apply(vec![claim]) {
        Ok(()) => {
            if let Some(old) = slot.checked_sub(2) {
                store.delete(Table::Meta, &key(old))?;
            }
            Ok(true)
        }
        Err(cryptoutil_storage::Error::Exists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_job_runs_once_per_interval_whichever_replica_claims_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = cryptoutil_protocols::unseal::generate(1, 1).unwrap().0;
        let store = Store::open_redb(&dir.path().join("s.redb"), &key).unwrap();
        let every = Duration::from_secs(60);
        // Two replicas ask in the same interval: one runs.
        assert!(run_once(&store, "job", every, 6_000).unwrap());
        assert!(!run_once(&store, "job", every, 6_030).unwrap());
        // Another job is claimed on its own.
        assert!(run_once(&store, "other", every, 6_030).unwrap());
        // The next intervals run again; the claim two intervals back is gone.
        assert!(run_once(&store, "job", every, 6_060).unwrap());
        assert!(run_once(&store, "job", every, 6_120).unwrap());
        assert!(store
            .get_plain(Table::Meta, b"scheduler/job/00000000000000000100")
            .unwrap()
            .is_none());
        assert!(store
            .get_plain(Table::Meta, b"scheduler/job/00000000000000000102")
            .unwrap()
            .is_some());
    }
}
