//! The audit log's append-only file (`<store>.audit`, owner-only): one line per record,
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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cryptoutil_protocols::jose::b64;
use cryptoutil_storage::{Store, Table};

use super::record::AuditRecord;
use crate::error::Error;

/// Pause between two syncs: a written record waits at most this plus one `fdatasync`.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(10);

/// Records by the sequence their line claims: the record, or `Err` for a line that does not
/// open (0 when not even the sequence reads).
pub type Numbered = Vec<(u64, Result<AuditRecord, ()>)>;

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

/// The open file and its syncer.
pub struct AuditFile {
    file: File,
    path: PathBuf,
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

impl AuditFile {
    /// Opens (or creates, mode 0600) the file at `path`. A last line that a crash left
    /// incomplete (no newline) is cut off: its `write(2)` never returned, so nobody was told
    /// its operation succeeded.
    pub fn open(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io("opening audit log", path))?;
        let len = file
            .metadata()
            .map_err(io("reading audit log", path))?
            .len();
        let tail = read_tail(&mut file, len, path)?;
        if let Some(cut) = tail.iter().rposition(|&b| b == b'\n').map(|i| i + 1) {
            let keep = len - (tail.len() - cut) as u64;
            if keep < len {
                tracing::warn!(path = %path.display(), bytes = len - keep, "cutting an incomplete audit line a crash left");
                file.set_len(keep)
                    .map_err(io("repairing audit log", path))?;
            }
        } else if len > 0 && tail.len() as u64 == len {
            tracing::warn!(path = %path.display(), "cutting an incomplete audit line a crash left");
            file.set_len(0).map_err(io("repairing audit log", path))?;
        }
        let sync = Arc::new(Sync {
            dirty: Mutex::new(false),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let syncer = file.try_clone().map_err(io("opening audit log", path))?;
        let (state, name) = (Arc::clone(&sync), path.to_owned());
        std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || run_syncer(&syncer, &state, &name))
            .map_err(io("starting the audit syncer", path))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            sync,
        })
    }

    /// Appends sealed lines for `records` in one write.
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
        if let Err(e) = (&self.file).write_all(&buf) {
            // Part of the group may be on disk: nothing may follow it.
            self.sync.failed.store(true, Ordering::Release);
            return Err(io("writing audit log", &self.path)(e));
        }
        let mut dirty = self
            .sync
            .dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *dirty = true;
        self.sync.wake.notify_one();
        Ok(())
    }

    /// The last complete record in the file, opened.
    pub fn last(&self, store: &Store) -> Result<Option<AuditRecord>, Error> {
        let mut file = File::open(&self.path).map_err(io("reading audit log", &self.path))?;
        let len = file
            .metadata()
            .map_err(io("reading audit log", &self.path))?
            .len();
        let tail = read_tail(&mut file, len, &self.path)?;
        let Some(line) = tail.split(|&b| b == b'\n').rev().find(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let (seq, result) = open_line(store, line);
        result.map(Some).map_err(|_| {
            tracing::error!(seq, "the last audit line does not open");
            Error::AuditFailed
        })
    }

    /// Every line from the start: (sequence it claims, the record or why it does not open).
    pub fn read_all(&self, store: &Store) -> Result<Numbered, Error> {
        let bytes = std::fs::read(&self.path).map_err(io("reading audit log", &self.path))?;
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| open_line(store, l))
            .collect())
    }
}

impl Drop for AuditFile {
    fn drop(&mut self) {
        self.sync.closed.store(true, Ordering::Release);
        self.sync.wake.notify_one();
    }
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

fn run_syncer(file: &File, sync: &Sync, path: &Path) {
    loop {
        {
            let mut dirty = sync
                .dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
}
