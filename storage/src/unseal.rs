//! Reading unseal share files, and the development share a first run generates.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cryptoutil_protocols::unseal::{self, UnsealKey, UnsealShare};

use crate::config::UnsealConfig;
use crate::error::Error;

/// Share files are one line; anything much longer is not a share.
const MAX_SHARE_FILE: u64 = 4096;

/// Where the unseal key came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealSource {
    /// Configured share files.
    Shares {
        /// How many were read.
        count: usize,
        /// The threshold they carry.
        threshold: u8,
    },
    /// Shares an operator submitted to a sealed process.
    Submitted,
    /// The development share in the data directory.
    Development {
        /// Its file.
        path: PathBuf,
        /// True when this run created it.
        created: bool,
    },
}

/// The unseal key, or the process starts sealed.
pub enum Loaded {
    /// Rebuilt, and from where.
    Key(UnsealKey, UnsealSource),
    /// The configured shares do not reach their threshold (none when no share is configured
    /// and `dev_generate` is off): these are the first ones; an operator submits the rest.
    Sealed(Vec<UnsealShare>),
}

/// Rebuilds the unseal key from the configured shares, or from the development share when
/// none is configured and `dev_generate` allows it; else [`Loaded::Sealed`].
pub fn load(cfg: &UnsealConfig, data_dir: &Path) -> Result<Loaded, Error> {
    if !cfg.shares.is_empty() {
        let shares = cfg
            .shares
            .iter()
            .map(|p| read_share(p))
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = shares.first().map(UnsealShare::threshold).unwrap_or(0);
        if shares.len() < usize::from(threshold) {
            return Ok(Loaded::Sealed(shares));
        }
        let key = unseal::combine(&shares)?;
        return Ok(Loaded::Key(
            key,
            UnsealSource::Shares {
                count: shares.len(),
                threshold,
            },
        ));
    }
    if !cfg.dev_generate {
        return Ok(Loaded::Sealed(Vec::new()));
    }
    let (key, source) = dev_key(data_dir)?;
    Ok(Loaded::Key(key, source))
}

/// [`load`], for what cannot wait for an operator (the offline commands): not enough shares
/// is an error.
pub fn load_key(cfg: &UnsealConfig, data_dir: &Path) -> Result<(UnsealKey, UnsealSource), Error> {
    match load(cfg, data_dir)? {
        Loaded::Key(key, source) => Ok((key, source)),
        Loaded::Sealed(shares) if shares.is_empty() => Err(Error::NoShares),
        Loaded::Sealed(shares) => Err(unseal::ShareError::NotEnough {
            have: shares.len(),
            need: shares.first().map_or(1, |s| usize::from(s.threshold())),
        }
        .into()),
    }
}

/// The development share's key, the share made on the first start.
fn dev_key(data_dir: &Path) -> Result<(UnsealKey, UnsealSource), Error> {
    let path = dev_share_path(data_dir);
    if path.exists() {
        let key = unseal::combine(&[read_share(&path)?])?;
        return Ok((
            key,
            UnsealSource::Development {
                path,
                created: false,
            },
        ));
    }
    let (key, shares) = unseal::generate(1, 1)?;
    write_share_files(path.parent().unwrap_or(data_dir), "dev-share", &shares)?;
    Ok((
        key,
        UnsealSource::Development {
            path,
            created: true,
        },
    ))
}

/// The development share's file.
pub fn dev_share_path(data_dir: &Path) -> PathBuf {
    data_dir.join("unseal").join("dev-share-1.txt")
}

/// Generates a new unseal key split `threshold`-of-`total` and writes `<stem>-<index>.txt` files
/// (mode 0600, never overwriting) into `dir`. Returns the paths.
pub fn generate_share_files(
    dir: &Path,
    stem: &str,
    threshold: u8,
    total: u8,
) -> Result<Vec<PathBuf>, Error> {
    let (_key, shares) = unseal::generate(threshold, total)?;
    write_share_files(dir, stem, &shares)
}

fn write_share_files(
    dir: &Path,
    stem: &str,
    shares: &[UnsealShare],
) -> Result<Vec<PathBuf>, Error> {
    create_private_dir(dir)?;
    let mut paths = Vec::with_capacity(shares.len());
    for share in shares {
        let path = dir.join(format!("{stem}-{}.txt", share.index()));
        let io = |source| Error::Io {
            what: "writing unseal share",
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all(share.encode().as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Creates a directory readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            what: "creating directory",
            path: dir.to_owned(),
            source,
        })
}

fn read_share(path: &Path) -> Result<UnsealShare, Error> {
    use std::io::Read as _;
    let io = |source| Error::Io {
        what: "reading unseal share",
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_SHARE_FILE)
        .read_to_string(&mut text)
        .map_err(io)?;
    UnsealShare::parse(&text).map_err(|source| Error::ShareFile {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn dev_share_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = UnsealConfig {
            shares: vec![],
            dev_generate: true,
        };
        let (k1, s1) = load_key(&cfg, dir.path()).unwrap();
        assert!(matches!(
            s1,
            UnsealSource::Development { created: true, .. }
        ));
        let mode = std::fs::metadata(dev_share_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (k2, s2) = load_key(&cfg, dir.path()).unwrap();
        assert!(matches!(
            s2,
            UnsealSource::Development { created: false, .. }
        ));
        assert_eq!(k1.expose(), k2.expose());
    }

    #[test]
    fn no_shares_and_no_dev_generation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = UnsealConfig {
            shares: vec![],
            dev_generate: false,
        };
        let err = load_key(&cfg, dir.path()).unwrap_err();
        assert!(matches!(err, Error::NoShares));
    }

    #[test]
    fn three_of_five_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate_share_files(dir.path(), "share", 3, 5).unwrap();
        let cfg = |p: &[PathBuf]| UnsealConfig {
            shares: p.to_vec(),
            dev_generate: false,
        };
        let (a, _) = load_key(&cfg(&paths[..3]), dir.path()).unwrap();
        let (b, _) = load_key(&cfg(&paths[2..]), dir.path()).unwrap();
        assert_eq!(a.expose(), b.expose());
        let err = load_key(&cfg(&paths[..2]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("2 of the 3"), "{err}");
        std::fs::write(&paths[4], "garbage\n").unwrap();
        let err = load_key(&cfg(&paths[2..]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("share-5.txt"), "{err}");
        // Never overwrites existing shares.
        assert!(generate_share_files(dir.path(), "share", 3, 5).is_err());
    }
}
