//! The `AuditLog` actor: a service's hash-chained audit log (ARCHITECTURE §8: an operation that
//! cannot be audited fails).
//!
//! Operations hand it an [`AuditEntry`] with a [`Completion`]; the caller's answer waits in the
//! completion until the record is written. Entries that arrive together are written together
//! (group commit): the actor drains its mailbox before it writes.
//!
//! Two homes, one chain:
//! - Entries without writes of their own (encrypt, sign, ..., refusals) go to the append-only
//!   [`file::AuditFile`]: one `write(2)` per group before the answers (the records survive a
//!   crash of the process), made durable on the device by a syncer thread right behind.
//! - Entries that carry writes (a creation, rotation, update or deletion) go into the store, in
//!   the same transaction as those writes (fsynced before the answer): a change and its record
//!   exist together or not at all.
//!
//! - With a store that replicas share (PostgreSQL), every entry goes into the store, so the
//!   service keeps one chain whichever replica writes: a sequence another replica took first
//!   is found by the store's create-only write, and the group is chained again after the head
//!   the store holds now.
//!
//! Readers merge both by sequence. The head (next sequence, last hash) is read from both when
//! the actor starts, so a restart continues the chain; a lock shared across restarts keeps a
//! store write of the previous incarnation from racing the new one's first read.

pub mod file;
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

    /// Runs the callback with `result` (for a write made without the log).
    pub fn finish_with(self, result: Result<(), Error>) {
        self.finish(result);
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
    /// Write what has queued up (sent to itself after the first append of a group).
    Flush,
    /// A group write finished: the head (next sequence, last hash) after it.
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
    /// Held while a group is written to the store and while a starting actor reads the head.
    pub write_lock: Arc<Mutex<()>>,
    /// The append-only file (opened once, shared by every incarnation of the actor).
    pub file: Arc<file::AuditFile>,
    /// The store is shared with other replicas: every record goes into it (see the module).
    pub shared: bool,
}

impl AuditArgs {
    /// The arguments for `service`'s log: `store`, and the file beside the store's file
    /// (`<store>.audit`).
    pub fn open(store: Arc<Store>, service: &'static str) -> Result<Self, Error> {
        Self::open_with(store, service, file::Segments::default())
    }

    /// [`Self::open`] with the file's segment size and retention.
    pub fn open_with(
        store: Arc<Store>,
        service: &'static str,
        segments: file::Segments,
    ) -> Result<Self, Error> {
        let path = std::path::Path::new(store.name()).with_extension("audit");
        Self::open_at(store, service, segments, &path)
    }

    /// [`Self::open_with`] with the file at `path` (a store in a database has no file to put
    /// it beside).
    pub fn open_at(
        store: Arc<Store>,
        service: &'static str,
        segments: file::Segments,
        path: &std::path::Path,
    ) -> Result<Self, Error> {
        Ok(Self {
            file: Arc::new(file::AuditFile::open_with(path, segments)?),
            store,
            service,
            write_lock: Arc::default(),
            shared: false,
        })
    }

    /// Marks the store as shared with other replicas (see the module).
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }
}

/// The chain's head and the queue.
pub struct AuditState {
    args: AuditArgs,
    next_seq: u64,
    head: String,
    queue: Vec<Pending>,
    writing: bool,
    flush_sent: bool,
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The head after the last record in the store or the file: (next sequence, its hash).
fn read_head(store: &Store, file: &file::AuditFile) -> Result<(u64, String), Error> {
    let in_store = match store.last_sealed(Table::AuditLog)? {
        None => None,
        Some((key, plain)) => {
            Some(parse(&plain).map_err(|_| Error::corrupt(Table::AuditLog, &key, "audit record"))?)
        }
    };
    let last = match (in_store, file.last(store)?) {
        (Some(a), Some(b)) => Some(if a.seq > b.seq { a } else { b }),
        (a, b) => a.or(b),
    };
    match last {
        None => Ok((1, GENESIS.to_owned())),
        Some(last) if last.hash != last.computed_hash() => Err(Error::Corrupt {
            table: Table::AuditLog.name(),
            key: last.seq.to_string(),
            what: "the last audit record does not match its hash",
        }),
        Some(last) => Ok((last.seq + 1, last.hash)),
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
        let reading = args.clone();
        let (next_seq, head) = tokio::task::spawn_blocking(move || {
            let _held = lock(&reading.write_lock);
            read_head(&reading.store, &reading.file)
        })
        .await??;
        Ok(AuditState {
            args,
            next_seq,
            head,
            queue: Vec::new(),
            writing: false,
            flush_sent: false,
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
                if !st.flush_sent {
                    // Behind the appends already in the mailbox: they join this group.
                    st.flush_sent = true;
                    let _ = me.cast(AuditMsg::Flush);
                }
            }
            AuditMsg::Flush => {
                st.flush_sent = false;
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

/// Writes the queue (up to [`MAX_GROUP`] entries) unless a store write is in flight: to the
/// file, in the mailbox, when no entry carries writes; else to the store, off the mailbox.
fn flush(me: &ActorRef<AuditMsg>, st: &mut AuditState) {
    if st.writing || st.queue.is_empty() {
        return;
    }
    let take = st.queue.len().min(MAX_GROUP);
    let group: Vec<Pending> = st.queue.drain(..take).collect();
    let now = crate::now_unix();
    if !st.args.shared && group.iter().all(|p| p.writes.is_empty()) {
        let mut prev = st.head.clone();
        let mut records = Vec::with_capacity(group.len());
        let mut dones = Vec::with_capacity(group.len());
        for (i, p) in group.into_iter().enumerate() {
            let seq = st.next_seq + i as u64;
            let record = AuditRecord::chain(p.entry, st.args.service, seq, now, &prev);
            prev.clone_from(&record.hash);
            records.push(record);
            dones.push(p.done);
        }
        let written = st.args.file.append(&st.args.store, &records);
        if written.is_ok() {
            st.next_seq += records.len() as u64;
            st.head = prev;
        }
        finish(st.args.service, dones, records.len(), written);
        if !st.queue.is_empty() && !st.flush_sent {
            st.flush_sent = true;
            let _ = me.cast(AuditMsg::Flush);
        }
        return;
    }
    st.writing = true;
    let (me, args) = (me.clone(), st.args.clone());
    let head = (st.next_seq, st.head.clone());
    tokio::task::spawn_blocking(move || {
        let (dones, members): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|p| (p.done, (p.entry, p.writes)))
            .unzip();
        let (head, outcomes) = {
            let _held = lock(&args.write_lock);
            commit(&args, head, now, members)
        };
        let unwritten = outcomes
            .iter()
            .filter(|o| match o {
                Err(e) => matches!(e, Error::AuditFailed) || e.database_unavailable().is_some(),
                Ok(()) => false,
            })
            .count();
        if unwritten > 0 {
            tracing::error!(
                records = unwritten,
                "audit records not written; their operations fail"
            );
            crate::metrics::audit_failed(args.service, unwritten);
        }
        for (done, outcome) in dones.into_iter().zip(outcomes) {
            done.finish(outcome);
        }
        let _ = me.cast(AuditMsg::Written(Some(head)));
    });
}

/// [`commit_once`]; a member whose sequence was taken fails the audit (in a shared store the
/// records are chained under the log's lock, so only a writer outside this log could take it).
/// The new head and each member's outcome.
fn commit(
    args: &AuditArgs,
    head: (u64, String),
    now: u64,
    members: Vec<(AuditEntry, Vec<Write>)>,
) -> ((u64, String), Vec<Result<(), Error>>) {
    let (head, outcomes) = commit_once(args, head, now, members);
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Err(e) if head_taken(&e) => {
                tracing::error!("the audit log's sequence was taken by another writer");
                Err(Error::AuditFailed)
            }
            other => other,
        })
        .collect();
    (head, outcomes)
}

/// Whether `e` is the log's own record clashing: its sequence is already written (by another
/// replica of a shared store, or by an earlier incarnation whose write the head missed).
fn head_taken(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage(cryptoutil_storage::Error::Exists { table, .. })
            if *table == Table::AuditLog.name()
    )
}

/// What another caller of the same failed commit is told: the database being away as such,
/// anything else as an audit failure.
fn copy(e: &Error) -> Error {
    match e.database_unavailable() {
        Some((op, reason)) => Error::Storage(cryptoutil_storage::Error::Unavailable {
            op,
            reason: reason.to_owned(),
        }),
        None => Error::AuditFailed,
    }
}

/// Commits `members` (each an entry and its writes) to the store after `head` (next sequence,
/// last hash): all in one transaction; when that fails because one of them creates a record
/// that exists, each in its own, so the one that clashes fails alone (its record, without its
/// writes, says why) and the others commit. A member whose own record's sequence is taken fails
/// with that clash ([`head_taken`]), and so does every member after it. The new head and each
/// member's outcome.
fn commit_once(
    args: &AuditArgs,
    head: (u64, String),
    now: u64,
    members: Vec<(AuditEntry, Vec<Write>)>,
) -> ((u64, String), Vec<Result<(), Error>>) {
    let clashed = |e: &Error| {
        matches!(e, Error::Storage(cryptoutil_storage::Error::Exists { .. })) && !head_taken(e)
    };
    let taken = || {
        Err(Error::Storage(cryptoutil_storage::Error::Exists {
            table: Table::AuditLog.name(),
            key_hint: String::new(),
        }))
    };
    if members.len() > 1 {
        let entries = members.iter().map(|(e, _)| e.clone()).collect();
        let writes = members
            .iter()
            .flat_map(|(_, w)| w.iter().cloned())
            .collect();
        match append(args, &head, now, entries, writes) {
            Ok(next) => return (next, members.iter().map(|_| Ok(())).collect()),
            Err(e) if clashed(&e) => {}
            Err(e) if head_taken(&e) => return (head, members.iter().map(|_| taken()).collect()),
            Err(e) => return (head, members.iter().map(|_| Err(failed(&e))).collect()),
        }
    }
    let mut head = head;
    let mut outcomes = Vec::with_capacity(members.len());
    for (entry, writes) in members {
        if outcomes
            .last()
            .is_some_and(|o: &Result<(), Error>| matches!(o, Err(e) if head_taken(e)))
        {
            outcomes.push(taken());
            continue;
        }
        let outcome = match append(args, &head, now, vec![entry.clone()], writes) {
            Ok(next) => {
                head = next;
                Ok(())
            }
            Err(e) if clashed(&e) => {
                let e = Error::Conflict {
                    what: "a record that must be unique exists",
                };
                let refused = vec![entry.outcome(&Err::<(), _>(&e))];
                match append(args, &head, now, refused, Vec::new()) {
                    Ok(next) => {
                        head = next;
                        Err(e)
                    }
                    Err(e) if head_taken(&e) => taken(),
                    Err(e) => Err(failed(&e)),
                }
            }
            Err(e) if head_taken(&e) => taken(),
            Err(e) => Err(failed(&e)),
        };
        outcomes.push(outcome);
    }
    (head, outcomes)
}

/// What the callers of a store commit that failed with `e` are told: the database being
/// away as such (HTTP 503 `database_unavailable`, try again), anything else as the audit
/// failure it is.
fn failed(e: &Error) -> Error {
    tracing::error!(error = %e, "the audited commit failed");
    copy(e)
}

/// Tells every caller of a group how its write went.
fn finish(
    service: &'static str,
    dones: Vec<Completion>,
    records: usize,
    written: Result<(), Error>,
) {
    match written {
        Ok(()) => {
            for done in dones {
                done.finish(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, records, "audit records not written; their operations fail");
            crate::metrics::audit_failed(service, records);
            for done in dones {
                done.finish(Err(Error::AuditFailed));
            }
        }
    }
}

fn write_group(
    store: &Store,
    records: &[AuditRecord],
    mut writes: Vec<Write>,
) -> Result<(), Error> {
    add_records(store, records, &mut writes)?;
    store.apply(writes)?;
    Ok(())
}

/// The sealed, create-only writes of `records`, added to `writes`.
fn add_records(
    store: &Store,
    records: &[AuditRecord],
    writes: &mut Vec<Write>,
) -> Result<(), Error> {
    for r in records {
        let json = serde_json::to_vec(r).map_err(|_| Error::AuditFailed)?;
        writes.push(store.sealed_create(
            Table::AuditLog,
            &AuditRecord::storage_key(r.seq),
            &json,
        )?);
    }
    Ok(())
}

/// `entries` chained after `head` (next sequence, last hash) at `now`, and the head after them.
fn chain(
    args: &AuditArgs,
    entries: Vec<AuditEntry>,
    (mut seq, mut prev): (u64, String),
    now: u64,
) -> (Vec<AuditRecord>, (u64, String)) {
    let records = entries
        .into_iter()
        .map(|entry| {
            let record = AuditRecord::chain(entry, args.service, seq, now, &prev);
            (seq, prev) = (seq + 1, record.hash.clone());
            record
        })
        .collect();
    (records, (seq, prev))
}

/// Writes `entries`' records and `writes` in one transaction; the head after them. In a shared
/// store they are chained after the store's last record, read in that transaction under the
/// log's lock ([`Store::apply_after_last`]): replicas appending at once take turns instead of
/// taking each other's sequence. Otherwise after `head`.
fn append(
    args: &AuditArgs,
    head: &(u64, String),
    now: u64,
    entries: Vec<AuditEntry>,
    writes: Vec<Write>,
) -> Result<(u64, String), Error> {
    if !args.shared {
        let (records, next) = chain(args, entries, head.clone(), now);
        write_group(&args.store, &records, writes)?;
        return Ok(next);
    }
    let mut next = head.clone();
    // What went wrong in `build` that is not the store's (its error type is the store's).
    let mut failure: Option<Error> = None;
    let placeholder = || cryptoutil_storage::Error::Tampered {
        table: Table::AuditLog.name(),
        key_hint: String::new(),
    };
    let appended = args.store.apply_after_last(Table::AuditLog, &mut |last| {
        let after = match last {
            None => (1, GENESIS.to_owned()),
            Some((key, plain)) => match parse(&plain) {
                Ok(last) => (last.seq + 1, last.hash),
                Err(_) => {
                    failure = Some(Error::corrupt(Table::AuditLog, &key, "audit record"));
                    return Err(placeholder());
                }
            },
        };
        let (records, after) = chain(args, entries.clone(), after, now);
        let mut all = writes.clone();
        if let Err(e) = add_records(&args.store, &records, &mut all) {
            failure = Some(e);
            return Err(placeholder());
        }
        next = after;
        Ok(all)
    });
    match (appended, failure) {
        (Ok(()), _) => {}
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(e.into()),
    }
    Ok(next)
}

/// The result of verifying the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Every record fits.
    pub valid: bool,
    /// The first sequence verified: 1, or the one after the anchor when retention removed the
    /// oldest segments.
    pub from: u64,
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
    file: Arc<file::AuditFile>,
    timeout: Duration,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHandle").finish_non_exhaustive()
    }
}

/// Records looked at per read.
const PAGE_SCAN: usize = 10_000;

impl AuditHandle {
    /// A handle on the actor in `slot`, reading the log the actor's `args` name.
    pub fn new(slot: Slot<AuditMsg>, args: &AuditArgs, timeout: Duration) -> Self {
        Self {
            slot,
            store: Arc::clone(&args.store),
            file: Arc::clone(&args.file),
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

    /// Records `entry` as refused with `e` and answers `e` (or, if the record cannot be
    /// written, that failure).
    pub async fn refused<T>(&self, entry: AuditEntry, e: Error) -> Result<T, Error> {
        self.append(entry.outcome(&Err::<(), _>(&e)), Vec::new())
            .await?;
        Err(e)
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

    /// Records from sequence `from` on (from the anchor on, when retention removed the oldest
    /// segments): at most `limit` of them, only `tenant`'s if given (at most [`PAGE_SCAN`]
    /// records are looked at per call; `next` says where to go on). Records that do not open
    /// are skipped here; [`Self::verify`] reports them.
    pub async fn read(
        &self,
        from: u64,
        limit: usize,
        tenant: Option<String>,
    ) -> Result<Page, Error> {
        let (store, file) = (Arc::clone(&self.store), Arc::clone(&self.file));
        blocking(move || {
            let mut records = Vec::new();
            let mut next = None;
            // The log begins after its anchor once retention removed the oldest segments.
            let start = match file.anchor(&store)? {
                Some((seq, _)) => from.max(seq.saturating_add(1)),
                None => from.max(1),
            };
            for (scanned, item) in Merged::new(&store, &file, start)?.enumerate() {
                let (seq, r) = item?;
                if scanned == PAGE_SCAN {
                    next = Some(seq);
                    break;
                }
                let Ok(r) = r else { continue };
                if tenant.as_deref().is_none_or(|t| t == r.tenant) {
                    if records.len() == limit {
                        next = Some(seq);
                        break;
                    }
                    records.push(r);
                }
            }
            Ok(Page { records, next })
        })
        .await
    }

    /// Verifies the whole chain, across the file's segments and the store, streaming: from
    /// the first record, or from the anchor when retention removed the oldest segments.
    pub async fn verify(&self) -> Result<Verification, Error> {
        let (store, file) = (Arc::clone(&self.store), Arc::clone(&self.file));
        blocking(move || {
            let (mut v, from) = match file.anchor(&store)? {
                Some((seq, hash)) => (Verifier::after(seq, &hash), seq.saturating_add(1)),
                None => (Verifier::default(), 1),
            };
            for item in Merged::new(&store, &file, from)? {
                let (_, record) = item?;
                let checked = match record {
                    Ok(r) => v.check(&r),
                    Err(()) => Err(Break {
                        seq: from + v.checked,
                        reason: "the record does not open: altered or replaced on disk",
                    }),
                };
                if let Err(b) = checked {
                    return Ok(Verification {
                        valid: false,
                        from,
                        records: v.checked,
                        head: v.head().to_owned(),
                        first_break: Some(b),
                    });
                }
            }
            Ok(Verification {
                valid: true,
                from,
                records: v.checked,
                head: v.head().to_owned(),
                first_break: None,
            })
        })
        .await
    }
}

/// Store records read per page.
const STORE_PAGE: usize = 512;

/// Every record from `from` on, from the file's segments and the store, merged by sequence as
/// they are read (each source is in sequence order).
struct Merged<'a> {
    lines: std::iter::Peekable<file::Lines<'a>>,
    store: &'a Store,
    /// The store's next page starts here; `None` once it is read to the end.
    cursor: Option<u64>,
    page: std::collections::VecDeque<file::Line>,
}

impl<'a> Merged<'a> {
    fn new(store: &'a Store, file: &file::AuditFile, from: u64) -> Result<Self, Error> {
        Ok(Self {
            lines: file.lines(store, from)?.peekable(),
            store,
            cursor: Some(from),
            page: std::collections::VecDeque::new(),
        })
    }

    /// Reads the store's next page when the current one is used up.
    fn fill(&mut self) -> Result<(), Error> {
        let Some(from) = self.cursor.filter(|_| self.page.is_empty()) else {
            return Ok(());
        };
        let rows = self.store.range_opened(
            Table::AuditLog,
            &AuditRecord::storage_key(from),
            STORE_PAGE,
        )?;
        self.cursor = None;
        let full = rows.len() == STORE_PAGE;
        for (key, plain) in rows {
            let seq = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            let record = plain
                .ok()
                .and_then(|p| parse(&p).ok())
                .filter(|r| r.seq == seq)
                .ok_or(());
            if full {
                self.cursor = Some(seq.saturating_add(1));
            }
            self.page.push_back((seq, record));
        }
        Ok(())
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<file::Line, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            return Some(Err(e));
        }
        let from_file = match (self.lines.peek(), self.page.front()) {
            (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
            (Some(Ok((a, _))), Some((b, _))) => a <= b,
            (None, _) => false,
        };
        if from_file {
            self.lines.next()
        } else {
            self.page.pop_front().map(Ok)
        }
    }
}

fn parse(plain: &[u8]) -> Result<AuditRecord, serde_json::Error> {
    serde_json::from_slice(plain)
}

/// Blocking reads of the log off the async task.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::ask::blocking("AuditLog", f).await
}

#[cfg(test)]
mod tests;
