//! The `AuditLog` actor: a service's hash-chained audit log (ARCHITECTURE §8: an operation that
//! cannot be audited fails).
//!
//! Operations hand it an [`AuditEntry`] with a [`Completion`]; the caller's answer waits in the
//! completion until the record is durable. Entries that arrive while a write is on disk queue
//! and go down together in the next transaction (group commit): one fsync for every entry that
//! arrived meanwhile, so audited throughput follows the disk's commit rate times the
//! concurrency rather than one fsync per operation. An entry may carry writes of its own (a
//! rotation's new material key): they commit in the same transaction as its record, so a
//! change and its audit record exist together or not at all.
//!
//! The chain's head (next sequence, last hash) is read from the store when the actor starts, so
//! a restart continues the chain; a write lock shared across restarts keeps a write of the
//! previous incarnation from racing the new one's first read.

pub mod record;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;

pub use record::{AuditEntry, AuditRecord, Break, Verifier, GENESIS};

use crate::error::{Error, Unavailability};
use crate::slot::Slot;

/// Most entries in one transaction.
const MAX_GROUP: usize = 4096;

/// What to do once an entry's record is durable (`Ok`) or could not be written (`Err`). Dropped
/// without being called (the actor crashed), it reports `Unavailable`, so no caller waits
/// forever and no caller is told an unaudited operation succeeded.
pub struct Completion(Option<OnDurable>);

/// The callback inside a [`Completion`].
type OnDurable = Box<dyn FnOnce(Result<(), Error>) + Send>;

impl Completion {
    /// A completion that runs `f`.
    pub fn new(f: impl FnOnce(Result<(), Error>) + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    fn finish(mut self, result: Result<(), Error>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Error::Unavailable {
                actor: "AuditLog",
                why: Unavailability::Stopped,
            }));
        }
    }
}

/// An entry waiting for the next write.
pub struct Pending {
    entry: AuditEntry,
    writes: Vec<Write>,
    done: Completion,
}

/// Messages.
pub enum AuditMsg {
    /// Append an entry (with writes of its own to commit alongside).
    Append(Box<Pending>),
    /// A group write finished: the new head (next sequence, last hash) if it committed.
    Written(Option<(u64, String)>),
    /// Fault injection.
    Crash,
}

/// The behaviour (empty).
#[derive(Debug, Default)]
pub struct AuditLog;

/// Start arguments.
#[derive(Clone)]
pub struct AuditArgs {
    /// The service's store.
    pub store: Arc<Store>,
    /// The service's name, written in every record.
    pub service: &'static str,
    /// Held while a group is written and while a starting actor reads the head.
    pub write_lock: Arc<Mutex<()>>,
}

/// The chain's head and the queue.
pub struct AuditState {
    args: AuditArgs,
    next_seq: u64,
    head: String,
    queue: Vec<Pending>,
    writing: bool,
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The head after the last stored record: (next sequence, its hash).
fn read_head(store: &Store) -> Result<(u64, String), Error> {
    match store.last_sealed(Table::AuditLog)? {
        None => Ok((1, GENESIS.to_owned())),
        Some((_, plain)) => {
            let last: AuditRecord =
                serde_json::from_slice(&plain).map_err(|_| Error::BadRequest {
                    reason: "stored audit record",
                })?;
            if last.hash != last.computed_hash() {
                return Err(Error::BadRequest {
                    reason: "the last audit record does not match its hash",
                });
            }
            Ok((last.seq + 1, last.hash))
        }
    }
}

impl Actor for AuditLog {
    type Msg = AuditMsg;
    type State = AuditState;
    type Arguments = AuditArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<AuditMsg>,
        args: AuditArgs,
    ) -> Result<AuditState, ActorProcessingErr> {
        let (store, guard) = (Arc::clone(&args.store), Arc::clone(&args.write_lock));
        let (next_seq, head) = tokio::task::spawn_blocking(move || {
            let _held = lock(&guard);
            read_head(&store)
        })
        .await??;
        Ok(AuditState {
            args,
            next_seq,
            head,
            queue: Vec::new(),
            writing: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<AuditMsg>,
        msg: AuditMsg,
        st: &mut AuditState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AuditMsg::Append(pending) => {
                st.queue.push(*pending);
                flush(&me, st);
            }
            AuditMsg::Written(head) => {
                st.writing = false;
                if let Some((next_seq, hash)) = head {
                    st.next_seq = next_seq;
                    st.head = hash;
                }
                flush(&me, st);
            }
            AuditMsg::Crash => {
                #[allow(clippy::panic)]
                {
                    panic!("fault injection: AuditLog crash requested");
                }
            }
        }
        Ok(())
    }
}

/// Starts writing the queue (up to [`MAX_GROUP`] entries) unless a write is on disk already.
fn flush(me: &ActorRef<AuditMsg>, st: &mut AuditState) {
    if st.writing || st.queue.is_empty() {
        return;
    }
    let take = st.queue.len().min(MAX_GROUP);
    let group: Vec<Pending> = st.queue.drain(..take).collect();
    let now = crate::now_unix();
    let mut prev = st.head.clone();
    let mut records = Vec::with_capacity(group.len());
    let mut writes = Vec::new();
    let mut dones = Vec::with_capacity(group.len());
    for (i, p) in group.into_iter().enumerate() {
        let seq = st.next_seq + i as u64;
        let record = AuditRecord::chain(p.entry, st.args.service, seq, now, &prev);
        prev.clone_from(&record.hash);
        records.push(record);
        writes.extend(p.writes);
        dones.push(p.done);
    }
    let next_seq = st.next_seq + records.len() as u64;
    st.writing = true;
    let (me, args) = (me.clone(), st.args.clone());
    tokio::task::spawn_blocking(move || {
        let committed = {
            let _held = lock(&args.write_lock);
            write_group(&args.store, &records, writes)
        };
        let head = match committed {
            Ok(()) => {
                for done in dones {
                    done.finish(Ok(()));
                }
                Some((next_seq, prev))
            }
            Err(e) => {
                tracing::error!(error = %e, records = records.len(), "audit records not written; their operations fail");
                crate::metrics::audit_failed(args.service, records.len());
                for done in dones {
                    done.finish(Err(Error::AuditFailed));
                }
                None
            }
        };
        let _ = me.cast(AuditMsg::Written(head));
    });
}

fn write_group(
    store: &Store,
    records: &[AuditRecord],
    mut writes: Vec<Write>,
) -> Result<(), Error> {
    for r in records {
        let json = serde_json::to_vec(r).map_err(|_| Error::AuditFailed)?;
        writes.push(store.sealed_create(
            Table::AuditLog,
            &AuditRecord::storage_key(r.seq),
            &json,
        )?);
    }
    store.apply(writes)?;
    Ok(())
}

/// The result of verifying the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Every record fits.
    pub valid: bool,
    /// Records checked before the first break (all of them when valid).
    pub records: u64,
    /// Hash of the last record that fits.
    pub head: String,
    /// The first break, if any.
    pub first_break: Option<Break>,
}

/// A page of the log.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Records from the requested sequence on (only the tenant's, when filtered).
    pub records: Vec<AuditRecord>,
    /// The sequence to ask for next; `None` at the end of the log.
    pub next: Option<u64>,
}

/// Reaches a service's `AuditLog`.
#[derive(Clone)]
pub struct AuditHandle {
    slot: Slot<AuditMsg>,
    store: Arc<Store>,
    timeout: Duration,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHandle").finish_non_exhaustive()
    }
}

/// Records read per page when scanning.
const PAGE_SCAN: usize = 10_000;

impl AuditHandle {
    /// A handle on the actor in `slot`, reading `store`.
    pub fn new(slot: Slot<AuditMsg>, store: Arc<Store>, timeout: Duration) -> Self {
        Self {
            slot,
            store,
            timeout,
        }
    }

    /// Queues `entry` (and `writes` to commit with it); `done` runs once it is durable or has
    /// failed. Never waits.
    pub fn submit(&self, entry: AuditEntry, writes: Vec<Write>, done: Completion) {
        match self.slot.current() {
            Ok(actor) => {
                let pending = Box::new(Pending {
                    entry,
                    writes,
                    done,
                });
                if let Err(ractor::MessagingErr::SendErr(AuditMsg::Append(p))) =
                    actor.cast(AuditMsg::Append(pending))
                {
                    drop(p); // its completion reports Unavailable
                }
            }
            Err(e) => done.finish(Err(e)),
        }
    }

    /// Appends `entry` (with `writes`) and waits until it is durable.
    pub async fn append(&self, entry: AuditEntry, writes: Vec<Write>) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            entry,
            writes,
            Completion::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Unavailable {
                actor: "AuditLog",
                why: Unavailability::Stopped,
            }),
            Err(_) => Err(Error::Unavailable {
                actor: "AuditLog",
                why: Unavailability::Timeout,
            }),
        }
    }

    /// Records from sequence `from` on: at most `limit` of them, only `tenant`'s if given (at
    /// most [`PAGE_SCAN`] records are scanned per call; `next` says where to go on).
    pub async fn read(
        &self,
        from: u64,
        limit: usize,
        tenant: Option<String>,
    ) -> Result<Page, Error> {
        let store = Arc::clone(&self.store);
        blocking(move || {
            let scanned = store.range_opened(
                Table::AuditLog,
                &AuditRecord::storage_key(from.max(1)),
                PAGE_SCAN,
            )?;
            let mut records = Vec::new();
            let mut next = None;
            let mut last_seq = None;
            let scanned_len = scanned.len();
            for (_, plain) in scanned {
                let r = parse(&plain?)?;
                last_seq = Some(r.seq);
                if tenant.as_deref().is_none_or(|t| t == r.tenant) {
                    if records.len() == limit {
                        next = Some(r.seq);
                        break;
                    }
                    records.push(r);
                }
            }
            if next.is_none() && scanned_len == PAGE_SCAN {
                next = last_seq.map(|s| s + 1);
            }
            Ok(Page { records, next })
        })
        .await
    }

    /// Verifies the whole chain from the first record.
    pub async fn verify(&self) -> Result<Verification, Error> {
        let store = Arc::clone(&self.store);
        blocking(move || {
            let mut v = Verifier::default();
            loop {
                let page = store.range_opened(
                    Table::AuditLog,
                    &AuditRecord::storage_key(v.checked + 1),
                    PAGE_SCAN,
                )?;
                let last_page = page.len() < PAGE_SCAN;
                for (_, plain) in page {
                    let checked = match plain.map_err(Error::from).and_then(|p| parse(&p)) {
                        Ok(r) => v.check(&r),
                        Err(_) => Err(Break {
                            seq: v.checked + 1,
                            reason: "the record does not open: altered or replaced on disk",
                        }),
                    };
                    if let Err(b) = checked {
                        return Ok(Verification {
                            valid: false,
                            records: v.checked,
                            head: v.head().to_owned(),
                            first_break: Some(b),
                        });
                    }
                }
                if last_page {
                    return Ok(Verification {
                        valid: true,
                        records: v.checked,
                        head: v.head().to_owned(),
                        first_break: None,
                    });
                }
            }
        })
        .await
    }
}

fn parse(plain: &[u8]) -> Result<AuditRecord, Error> {
    serde_json::from_slice(plain).map_err(|_| Error::BadRequest {
        reason: "stored audit record",
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Unavailable {
            actor: "AuditLog",
            why: Unavailability::Stopped,
        })?
}

#[cfg(test)]
mod tests;
