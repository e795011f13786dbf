//! The revocation lists of client certificates' issuers (`identity.certificate_crls`), as
//! files an operator, or a job fetching the CA's CRL distribution point, keeps current. Read
//! at start; re-read whenever a file changes (its modification time, size, inode or change
//! time: a rename over it, a copy that keeps the time, a rewrite in place). Of several lists
//! of one issuer only the newest counts (the verifier would consult whichever came first).

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use cryptoutil_protocols::tls::{crls_from_bytes, newest_per_issuer, TrustRoots};

/// What says a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
    changed: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            modified: m.modified().ok(),
            len: m.len(),
            inode: m.ino(),
            changed: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The lists last read (DER), and the files' stamps they were read at.
type Loaded = (Vec<Stamp>, Arc<Vec<Vec<u8>>>);

/// The lists, cloneable.
#[derive(Debug, Clone)]
pub struct RevocationLists {
    paths: Vec<PathBuf>,
    /// The certificates' trust anchors (a list is checked to read against them).
    roots: TrustRoots,
    cached: Arc<tokio::sync::Mutex<Loaded>>,
}

/// `e`, naming the file at `path`.
fn named(path: &std::path::Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Blocking: the files' stamps, then their lists (checked against `roots`; of one issuer the
/// newest). A file replaced between its stamp and its read is read again at the next call:
/// the stamp kept is the older one.
fn load(paths: &[PathBuf], roots: &TrustRoots) -> Result<Loaded, String> {
    let mut stamps = Vec::new();
    for p in paths {
        stamps.push(Stamp::of(&std::fs::metadata(p).map_err(|e| named(p, e))?));
    }
    let mut lists = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).map_err(|e| named(p, e))?;
        lists.extend(crls_from_bytes(&bytes, roots).map_err(|e| named(p, e))?);
    }
    Ok((stamps, Arc::new(newest_per_issuer(lists))))
}

impl RevocationLists {
    /// The lists at `paths`, read once now: an error names the file that does not read.
    pub fn new(paths: Vec<PathBuf>, roots: &TrustRoots) -> Result<Self, String> {
        let loaded = load(&paths, roots)?;
        Ok(Self {
            paths,
            roots: Arc::clone(roots),
            cached: Arc::new(tokio::sync::Mutex::new(loaded)),
        })
    }

    /// The lists (DER) as the files are now; an error when one no longer reads (certificate
    /// sign-in then fails closed).
    pub async fn current(&self) -> Result<Arc<Vec<Vec<u8>>>, String> {
        let mut stamps = Vec::new();
        for p in &self.paths {
            let meta = tokio::fs::metadata(p).await.map_err(|e| named(p, e))?;
            stamps.push(Stamp::of(&meta));
        }
        let mut cached = self.cached.lock().await;
        if cached.0 == stamps {
            return Ok(Arc::clone(&cached.1));
        }
        let (paths, roots) = (self.paths.clone(), Arc::clone(&self.roots));
        *cached = tokio::task::spawn_blocking(move || load(&paths, &roots))
            .await
            .map_err(|_| "reading the revocation lists stopped".to_owned())??;
        tracing::info!(
            files = self.paths.len(),
            "certificate revocation lists re-read"
        );
        Ok(Arc::clone(&cached.1))
    }
}
