//! The audit log's append-only files: the current segment `<store>.audit` and the closed ones
//! `<store>.audit.<first sequence, 20 digits>` (owner-only), one line per record,
//! `<seq>:<base64url of the record sealed through the key barrier for (audit_log_v1, seq)>`, so a
//! line cannot be read without the barrier nor moved to another position undetected.
//!
//! A group of records is one `write(2)`: once it returns, the records survive a crash of the
//! process (kill -9 included). A syncer thread then makes them durable on the device
//! (`fdatasync`) behind the writes, at most every [`SYNC_INTERVAL`] (one sync covers every group
//! written meanwhile; syncing after every group cost a sixth of the KMS's throughput on this
//! 2-core machine): a crash of the operating system or the power can lose at most that last
//! interval of records. A failed sync poisons the file and every later append fails, so no
//! operation is answered on a log that cannot be made durable.
//!
//! Segments ([`Segments`]): once the current segment holds `max_bytes`, it is synced, closed
//! (renamed after its first sequence) and a new one begins; its last sequence and hash are
//! logged, so a log cut after that point is detectable from the logs alone. With `retain`, the
//! oldest closed segments beyond it are removed; the last record of the newest one removed
//! becomes the anchor (`<store>.audit.anchor`, sealed like a line), where verification starts.
//! Readers stream the segments line by line: nothing reads a whole file into memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cryptoutil_protocols::jose::b64;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};

use super::record::AuditRecord;
use crate::error::Error;

/// Pause between two syncs: a written record waits at most this plus one `fdatasync`.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(10);

/// Records by the sequence their line claims: the record, or `Err` for a line that does not
/// open (0 when not even the sequence reads).
pub type Numbered = Vec<(u64, Result<AuditRecord, ()>)>;

/// One line read: the sequence it claims and its record, or `Err` when it does not open.
pub type Line = (u64, Result<AuditRecord, ()>);

/// The barrier's key of the anchor's envelope (never a record's: those are 20 digits).
const ANCHOR_KEY: &[u8] = b"anchor";

/// `audit:` in the configuration: segment size and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Segments {
    /// The current segment is closed once it holds at least this many bytes.
    pub max_bytes: u64,
    /// How many closed segments are kept; the oldest beyond are removed (0: all are kept).
    pub retain: usize,
}

impl Default for Segments {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            retain: 0,
        }
    }
}

/// Shared between the file and its syncer thread.
struct Sync {
    /// Bytes written since the last sync began.
    dirty: Mutex<bool>,
    wake: Condvar,
    /// A sync failed: the file no longer accepts records.
    failed: AtomicBool,
    /// The file was dropped: the syncer syncs what is left and ends.
    closed: AtomicBool,
}

/// The segment being written.
struct Current {
    file: Arc<File>,
    /// Its length.
    len: u64,
    /// The sequence of its first line, once it has one.
    first: Option<u64>,
}

/// The open current segment and its syncer.
pub struct AuditFile {
    path: PathBuf,
    segments: Segments,
    current: Arc<Mutex<Current>>,
    sync: Arc<Sync>,
}

impl std::fmt::Debug for AuditFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| {
        Error::Storage(cryptoutil_storage::Error::Io {
            what,
            path: path.to_owned(),
            source,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens (or creates, mode 0600) a segment for appending and reading.
fn open_segment(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io("opening audit log", path))
}

impl AuditFile {
    /// Opens the log at `path` with the default [`Segments`].
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with(path, Segments::default())
    }

    /// Opens (or creates, mode 0600) the current segment at `path`. A last line that a crash
    /// left incomplete (no newline) is cut off: its `write(2)` never returned, so nobody was
    /// told its operation succeeded.
    pub fn open_with(path: &Path, segments: Segments) -> Result<Self, Error> {
        let mut file = open_segment(path)?;
        let len = file
            .metadata()
            .map_err(io("reading audit log", path))?
            .len();
        let tail = read_tail(&mut file, len, path)?;
        let mut kept = len;
        if let Some(cut) = tail.iter().rposition(|&b| b == b'\n').map(|i| i + 1) {
            let keep = len - (tail.len() - cut) as u64;
            if keep < len {
                tracing::warn!(path = %path.display(), bytes = len - keep, "cutting an incomplete audit line a crash left");
                file.set_len(keep)
                    .map_err(io("repairing audit log", path))?;
                kept = keep;
            }
        } else if len > 0 && tail.len() as u64 == len {
            tracing::warn!(path = %path.display(), "cutting an incomplete audit line a crash left");
            file.set_len(0).map_err(io("repairing audit log", path))?;
            kept = 0;
        }
        let first = first_seq(path)?;
        let current = Arc::new(Mutex::new(Current {
            file: Arc::new(file),
            len: kept,
            first,
        }));
        let sync = Arc::new(Sync {
            dirty: Mutex::new(false),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let (state, syncing, name) = (Arc::clone(&sync), Arc::clone(&current), path.to_owned());
        std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || run_syncer(&syncing, &state, &name))
            .map_err(io("starting the audit syncer", path))?;
        Ok(Self {
            path: path.to_owned(),
            segments,
            current,
            sync,
        })
    }

    /// Appends sealed lines for `records` in one write; closes the segment when it is full.
    pub fn append(&self, store: &Store, records: &[AuditRecord]) -> Result<(), Error> {
        if self.sync.failed.load(Ordering::Acquire) {
            return Err(Error::AuditFailed);
        }
        let mut buf = Vec::with_capacity(records.len() * 512);
        for r in records {
            let json = serde_json::to_vec(r).map_err(|_| Error::AuditFailed)?;
            let sealed = store.seal(Table::AuditLog, &AuditRecord::storage_key(r.seq), &json)?;
            buf.extend_from_slice(format!("{}:", r.seq).as_bytes());
            buf.extend_from_slice(b64::encode(&sealed).as_bytes());
            buf.push(b'\n');
        }
        let mut current = lock(&self.current);
        if let Err(e) = current.file.as_ref().write_all(&buf) {
            // Part of the group may be on disk: nothing may follow it.
            self.sync.failed.store(true, Ordering::Release);
            return Err(io("writing audit log", &self.path)(e));
        }
        current.len += buf.len() as u64;
        if current.first.is_none() {
            current.first = records.first().map(|r| r.seq);
        }
        *lock(&self.sync.dirty) = true;
        self.sync.wake.notify_one();
        if current.len >= self.segments.max_bytes {
            if let Some(last) = records.last() {
                if let Err(e) = self.rotate(store, &mut current, last) {
                    // The records are written; the next append tries again.
                    tracing::error!(path = %self.path.display(), error = %e, "closing the audit segment failed");
                }
            }
        }
        Ok(())
    }

    /// Closes the current segment (its last record is `last`) and begins a new one; removes
    /// what retention no longer keeps.
    fn rotate(
        &self,
        store: &Store,
        current: &mut Current,
        last: &AuditRecord,
    ) -> Result<(), Error> {
        let Some(first) = current.first else {
            return Ok(());
        };
        current
            .file
            .sync_data()
            .map_err(io("syncing audit log", &self.path))?;
        let closed = segment_path(&self.path, first);
        std::fs::rename(&self.path, &closed).map_err(io("closing audit segment", &closed))?;
        let file = open_segment(&self.path)?;
        sync_dir(&self.path)?;
        *current = Current {
            file: Arc::new(file),
            len: 0,
            first: None,
        };
        tracing::info!(
            segment = %closed.display(),
            first,
            last = last.seq,
            head = %last.hash,
            "audit segment closed"
        );
        self.retain(store)
    }

    /// Removes the oldest closed segments beyond `retain`, anchoring the log at the last
    /// record of the newest one removed (the anchor is durable before any segment goes).
    fn retain(&self, store: &Store) -> Result<(), Error> {
        if self.segments.retain == 0 {
            return Ok(());
        }
        let closed = closed_segments(&self.path)?;
        let excess = closed.len().saturating_sub(self.segments.retain);
        if excess == 0 {
            return Ok(());
        }
        let Some((_, newest_removed)) = closed.get(excess - 1) else {
            return Ok(());
        };
        let mut file =
            File::open(newest_removed).map_err(io("reading audit log", newest_removed))?;
        let len = file
            .metadata()
            .map_err(io("reading audit log", newest_removed))?
            .len();
        let tail = read_tail(&mut file, len, newest_removed)?;
        let Some(line) = tail.split(|&b| b == b'\n').rev().find(|l| !l.is_empty()) else {
            return Ok(());
        };
        let (seq, Ok(record)) = open_line(store, line) else {
            tracing::error!(segment = %newest_removed.display(), "its last audit line does not open: nothing removed");
            return Err(Error::AuditFailed);
        };
        let anchor = serde_json::json!({ "seq": seq, "hash": record.hash }).to_string();
        let sealed = store.seal(Table::AuditLog, ANCHOR_KEY, anchor.as_bytes())?;
        let anchor_path = anchor_path(&self.path);
        let tmp = anchor_path.with_extension("anchor.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("writing audit anchor", &tmp))?;
            f.write_all(b64::encode(&sealed).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("writing audit anchor", &tmp))?;
        }
        std::fs::rename(&tmp, &anchor_path).map_err(io("writing audit anchor", &anchor_path))?;
        sync_dir(&self.path)?;
        for (first, path) in closed.iter().take(excess) {
            std::fs::remove_file(path).map_err(io("removing audit segment", path))?;
            tracing::info!(segment = %path.display(), first, "audit segment removed (retention)");
        }
        tracing::info!(seq, head = %record.hash, "the audit log now starts after this record");
        Ok(())
    }

    /// Where the retained log starts: (the sequence of the last record removed, its hash), or
    /// `None` when nothing was removed.
    pub fn anchor(&self, store: &Store) -> Result<Option<(u64, String)>, Error> {
        let path = anchor_path(&self.path);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading audit anchor", &path)(e)),
        };
        let corrupt = || Error::Corrupt {
            table: Table::AuditLog.name(),
            key: "anchor".into(),
            what: "the audit anchor does not open",
        };
        let sealed = b64::decode(text.trim(), "audit anchor").map_err(|_| corrupt())?;
        let plain = store
            .open_envelope(Table::AuditLog, ANCHOR_KEY, &sealed)
            .map_err(|_| corrupt())?;
        let v: serde_json::Value = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
        match (
            v.get("seq").and_then(serde_json::Value::as_u64),
            v.get("hash").and_then(serde_json::Value::as_str),
        ) {
            (Some(seq), Some(hash)) => Ok(Some((seq, hash.to_owned()))),
            _ => Err(corrupt()),
        }
    }

    /// The last complete record written, opened: the current segment's last line, else the
    /// newest closed segment's.
    pub fn last(&self, store: &Store) -> Result<Option<AuditRecord>, Error> {
        let mut candidates = vec![self.path.clone()];
        candidates.extend(
            closed_segments(&self.path)?
                .into_iter()
                .rev()
                .map(|(_, p)| p),
        );
        for path in candidates {
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading audit log", &path)(e)),
            };
            let len = file
                .metadata()
                .map_err(io("reading audit log", &path))?
                .len();
            let tail = read_tail(&mut file, len, &path)?;
            let Some(line) = tail.split(|&b| b == b'\n').rev().find(|l| !l.is_empty()) else {
                continue;
            };
            let (seq, result) = open_line(store, line);
            return result.map(Some).map_err(|_| {
                tracing::error!(seq, "the last audit line does not open");
                Error::AuditFailed
            });
        }
        Ok(None)
    }

    /// Every line from sequence `from` on (and every line whose sequence does not read), in
    /// file order across the segments, read as it is consumed.
    pub fn lines<'a>(&self, store: &'a Store, from: u64) -> Result<Lines<'a>, Error> {
        let closed = closed_segments(&self.path)?;
        // A segment wholly before `from` (the next one starts at or before it) is skipped.
        let keep = closed
            .iter()
            .enumerate()
            .filter(|(i, _)| closed.get(i + 1).is_none_or(|(next, _)| *next > from))
            .map(|(_, (first, p))| (*first, p.clone()))
            .collect();
        Ok(Lines {
            store,
            from,
            base: self.path.clone(),
            queue: keep,
            current_done: false,
            reader: None,
            last_seen: 0,
        })
    }

    /// Every line from the start (tests).
    pub fn read_all(&self, store: &Store) -> Result<Numbered, Error> {
        self.lines(store, 0)?.collect()
    }
}

impl Drop for AuditFile {
    fn drop(&mut self) {
        self.sync.closed.store(true, Ordering::Release);
        self.sync.wake.notify_one();
    }
}

/// The lines of the segments, streamed: see [`AuditFile::lines`]. A segment closed while it is
/// read is found again by its new name, so no line is missed and none is read twice.
pub struct Lines<'a> {
    store: &'a Store,
    from: u64,
    base: PathBuf,
    /// Closed segments still to read, by first sequence.
    queue: std::collections::VecDeque<(u64, PathBuf)>,
    current_done: bool,
    reader: Option<(BufReader<File>, PathBuf)>,
    /// The greatest sequence yielded (a segment closed after the listing starts above it).
    last_seen: u64,
}

impl Lines<'_> {
    /// Opens the next file to read: a queued closed segment, else the current segment (after
    /// queueing any segment closed since the listing); `None` at the end.
    fn next_reader(&mut self) -> Result<Option<(BufReader<File>, PathBuf)>, Error> {
        loop {
            if let Some((_, path)) = self.queue.pop_front() {
                match File::open(&path) {
                    Ok(f) => return Ok(Some((BufReader::new(f), path))),
                    // Removed by retention meanwhile: its records are before the anchor.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("reading audit log", &path)(e)),
                }
            }
            if self.current_done {
                return Ok(None);
            }
            self.current_done = true;
            let opened = match File::open(&self.base) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io("reading audit log", &self.base)(e)),
            };
            // Closed after the listing: read before the current one.
            let newer: Vec<_> = closed_segments(&self.base)?
                .into_iter()
                .filter(|(first, _)| *first > self.last_seen)
                .collect();
            if !newer.is_empty() {
                self.queue.extend(newer);
                self.current_done = false;
                continue;
            }
            return Ok(opened.map(|f| (BufReader::new(f), self.base.clone())));
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = Result<Line, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::with_capacity(512);
        loop {
            if self.reader.is_none() {
                match self.next_reader() {
                    Ok(Some(r)) => self.reader = Some(r),
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e)),
                }
            }
            let (reader, path) = self.reader.as_mut()?;
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    self.reader = None;
                    continue;
                }
                Ok(_) => {}
                Err(e) => return Some(Err(io("reading audit log", path)(e))),
            }
            // A line being written (no newline yet) is not a record yet.
            if buf.last() != Some(&b'\n') {
                self.reader = None;
                continue;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if line.is_empty() {
                continue;
            }
            let claimed = claimed_seq(line);
            if claimed != 0 && claimed < self.from {
                continue;
            }
            let (seq, record) = open_line(self.store, line);
            self.last_seen = self.last_seen.max(seq);
            return Some(Ok((seq, record)));
        }
    }
}

/// A closed segment's name: the current one's and its first sequence.
fn segment_path(base: &Path, first: u64) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{first:020}"));
    PathBuf::from(name)
}

fn anchor_path(base: &Path) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".anchor");
    PathBuf::from(name)
}

/// The closed segments beside `base`, oldest first.
fn closed_segments(base: &Path) -> Result<std::collections::VecDeque<(u64, PathBuf)>, Error> {
    let dir = base
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing audit segments", dir))? {
        let entry = entry.map_err(io("listing audit segments", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&stem).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(first) = rest.parse::<u64>() {
                found.push((first, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found.into())
}

/// The sequence of a segment's first line, if it has one.
fn first_seq(path: &Path) -> Result<Option<u64>, Error> {
    let file = File::open(path).map_err(io("reading audit log", path))?;
    let mut line = Vec::new();
    BufReader::new(file.take(64))
        .read_until(b':', &mut line)
        .map_err(io("reading audit log", path))?;
    Ok(std::str::from_utf8(line.strip_suffix(b":").unwrap_or(&[]))
        .ok()
        .and_then(|s| s.parse().ok()))
}

/// Makes a rename or creation in `base`'s directory durable.
fn sync_dir(base: &Path) -> Result<(), Error> {
    let dir = base
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the audit directory", dir))
}

/// Up to the last 64 KiB of the file (enough for the last line).
fn read_tail(file: &mut File, len: u64, path: &Path) -> Result<Vec<u8>, Error> {
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))
        .map_err(io("reading audit log", path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(io("reading audit log", path))?;
    Ok(tail)
}

/// The sequence a line claims, without opening it (0 if it does not read).
fn claimed_seq(line: &[u8]) -> u64 {
    line.iter()
        .position(|&b| b == b':')
        .and_then(|i| std::str::from_utf8(line.get(..i)?).ok()?.parse().ok())
        .unwrap_or(0)
}

/// A line's claimed sequence (0 if unreadable) and its record.
fn open_line(store: &Store, line: &[u8]) -> (u64, Result<AuditRecord, ()>) {
    let text = std::str::from_utf8(line).unwrap_or("");
    let Some((seq, body)) = text.split_once(':') else {
        return (0, Err(()));
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return (0, Err(()));
    };
    let record = b64::decode(body, "audit line")
        .ok()
        .and_then(|sealed| {
            store
                .open_envelope(Table::AuditLog, &AuditRecord::storage_key(seq), &sealed)
                .ok()
        })
        .and_then(|plain| serde_json::from_slice::<AuditRecord>(&plain).ok())
        .filter(|r| r.seq == seq)
        .ok_or(());
    (seq, record)
}

fn run_syncer(current: &Mutex<Current>, sync: &Sync, path: &Path) {
    loop {
        {
            let mut dirty = lock(&sync.dirty);
            while !*dirty && !sync.closed.load(Ordering::Acquire) {
                dirty = sync
                    .wake
                    .wait_timeout(dirty, Duration::from_secs(1))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            if !*dirty && sync.closed.load(Ordering::Acquire) {
                return;
            }
            *dirty = false;
        }
        // A segment closed meanwhile was synced when it closed.
        let file = Arc::clone(&lock(current).file);
        if let Err(e) = file.sync_data() {
            tracing::error!(path = %path.display(), error = %e, "audit log sync failed; the audit log refuses new records");
            sync.failed.store(true, Ordering::Release);
            return;
        }
        if !sync.closed.load(Ordering::Acquire) {
            std::thread::sleep(SYNC_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use cryptoutil_protocols::unseal;

    use super::*;
    use crate::audit::record::{AuditEntry, GENESIS};

    #[test]
    fn lines_are_sealed_and_a_torn_last_line_is_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = unseal::generate(1, 1).unwrap().0;
        let store = Store::open_redb(&dir.path().join("kms.redb"), &key).unwrap();
        let path = dir.path().join("kms.audit");
        let file = AuditFile::open(&path).unwrap();
        assert_eq!(file.last(&store).unwrap(), None);
        let r1 = AuditRecord::chain(
            AuditEntry::new("a", "t", "k", "encrypt"),
            "kms",
            1,
            9,
            GENESIS,
        );
        let r2 = AuditRecord::chain(
            AuditEntry::new("a", "t", "k", "sign"),
            "kms",
            2,
            9,
            &r1.hash,
        );
        file.append(&store, &[r1.clone(), r2.clone()]).unwrap();
        assert_eq!(file.last(&store).unwrap(), Some(r2.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("encrypt"), "records are sealed on disk");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(file);

        // A crash in the middle of a write leaves half a line: it is cut off at the next open.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"3:AAAA")
            .unwrap();
        let file = AuditFile::open(&path).unwrap();
        let all = file.read_all(&store).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], (2, Ok(r2)));

        // A line moved to another position does not open there.
        let moved = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("1:", "7:", 1);
        std::fs::write(&path, moved).unwrap();
        assert_eq!(file.read_all(&store).unwrap()[0], (7, Err(())));
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let r = AuditRecord::chain(
                    AuditEntry::new("a", "t", &format!("k{seq}"), "encrypt"),
                    "kms",
                    seq,
                    9,
                    &prev,
                );
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    #[test]
    fn full_segments_close_retention_anchors_the_rest_and_readers_stream_across() {
        let dir = tempfile::tempdir().unwrap();
        let key = unseal::generate(1, 1).unwrap().0;
        let store = Store::open_redb(&dir.path().join("kms.redb"), &key).unwrap();
        let path = dir.path().join("kms.audit");
        let segments = Segments {
            max_bytes: 4096,
            retain: 2,
        };
        let records = chain(300);
        let file = AuditFile::open_with(&path, segments).unwrap();
        let (first_part, rest) = records.split_at(120);
        for group in first_part.chunks(3) {
            file.append(&store, group).unwrap();
        }
        let closed = closed_segments(&path).unwrap();
        assert_eq!(closed.len(), 2, "two closed segments are kept");
        for (first, p) in &closed {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(
                text.starts_with(&format!("{first}:")),
                "named after its first record"
            );
            assert!(text.len() >= 4096);
        }
        // The anchor is the last record before the oldest segment kept.
        let oldest_kept = closed.front().unwrap().0;
        let (seq, hash) = file.anchor(&store).unwrap().expect("an anchor");
        assert_eq!(seq + 1, oldest_kept);
        assert_eq!(hash, records[usize::try_from(seq).unwrap() - 1].hash);
        // Readers start at the oldest kept record and go on, in order, to the last one.
        let read: Vec<u64> = file
            .lines(&store, 0)
            .unwrap()
            .map(|l| l.unwrap().0)
            .collect();
        assert_eq!(read, (oldest_kept..=120).collect::<Vec<_>>());
        // From a sequence in the middle, segments wholly before it are not read.
        let from_110: Vec<u64> = file
            .lines(&store, 110)
            .unwrap()
            .map(|l| l.unwrap().0)
            .collect();
        assert_eq!(from_110, (110..=120).collect::<Vec<_>>());
        assert_eq!(file.last(&store).unwrap().map(|r| r.seq), Some(120));

        // Right after a close the current segment is empty: reopened, the last record is the
        // newest closed segment's.
        let mut last = 120;
        for r in rest {
            file.append(&store, std::slice::from_ref(r)).unwrap();
            last = r.seq;
            if std::fs::metadata(&path).unwrap().len() == 0 {
                break;
            }
        }
        assert!(last < 300, "a segment closed");
        drop(file);
        let file = AuditFile::open_with(&path, segments).unwrap();
        assert_eq!(file.last(&store).unwrap().map(|r| r.seq), Some(last));
        assert_eq!(closed_segments(&path).unwrap().len(), 2);
    }
}
