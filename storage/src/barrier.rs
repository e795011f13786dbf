//! The key barrier: unseal key -> root key -> intermediate keys -> content keys -> records.
//!
//! Every layer is AES-256-GCM with a random 96-bit nonce (aws-lc-rs `RandomizedNonceKey`), and
//! every ciphertext is bound by its AAD to where it lives: a wrapped key to its role and id, a
//! record to its table and key, so a ciphertext moved elsewhere fails authentication.
//!
//! Records of the `barrier_v1` table:
//! - `root`: the root key, wrapped by the unseal key.
//! - `intermediate/<id>`: an intermediate key, wrapped by the root key.
//! - `content/<id>`: `<intermediate id>` then a content key wrapped by that intermediate.
//! - `active`: the ids new records and new content keys use (not secret).
//!
//! The root key stays in memory only while the intermediates are unwrapped at unseal time.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand;
use cryptoutil_protocols::unseal::UnsealKey;
use zeroize::Zeroizing;

use crate::backend::{Backend, Write};
use crate::error::{key_hint, Error};
use crate::tables::Table;

const KEY_LEN: usize = 32;
const ENVELOPE_V1: u8 = 1;
const ROOT: &[u8] = b"root";
const ACTIVE: &[u8] = b"active";
const INTERMEDIATE_PREFIX: &[u8] = b"intermediate/";
const CONTENT_PREFIX: &[u8] = b"content/";

/// An unsealed barrier: the key hierarchy in memory (zeroized on drop), nothing of it in
/// plaintext on disk.
pub struct Barrier {
    intermediates: BTreeMap<u32, RandomizedNonceKey>,
    contents: BTreeMap<u32, RandomizedNonceKey>,
    active_intermediate: u32,
    active_content: u32,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("keys", &"<redacted>")
            .field("active_intermediate", &self.active_intermediate)
            .field("active_content", &self.active_content)
            .finish()
    }
}

impl Barrier {
    /// Opens the barrier of `backend` with `unseal`, creating the hierarchy on first use.
    /// `what` names the store in errors.
    pub fn unseal(backend: &dyn Backend, unseal: &UnsealKey, what: &str) -> Result<Self, Error> {
        let wrapped = match backend.get(Table::Barrier, ROOT)? {
            Some(wrapped) => wrapped,
            None => match Self::initialize(backend, unseal) {
                // Another process sharing the store (a replica starting at the same moment)
                // made the hierarchy first: use that one.
                Err(Error::Exists { .. }) => {
                    backend
                        .get(Table::Barrier, ROOT)?
                        .ok_or(Error::MissingKey {
                            kind: "root",
                            id: 0,
                        })?
                }
                made => return made,
            },
        };
        let root = unwrap_key(unseal.expose(), &wrapped, &root_aad())
            .ok_or_else(|| Error::WrongUnsealKey { path: what.into() })?;
        Self::load(backend, root)
    }

    /// Adds a content key under the active intermediate and makes it the one new records use.
    /// Older content keys stay, so older records still open. Returns the new id.
    pub fn rotate_content_key(&mut self, backend: &dyn Backend) -> Result<u32, Error> {
        let id = self
            .contents
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        let parent = self.active_intermediate;
        let parent_key = self.intermediates.get(&parent).ok_or(Error::MissingKey {
            kind: "intermediate",
            id: parent,
        })?;
        let key = random_key()?;
        let mut value = parent.to_be_bytes().to_vec();
        value.extend(wrap_key(parent_key, &key, &content_aad(id, parent))?);
        backend.apply(vec![
            Write::Put {
                table: Table::Barrier,
                key: numbered(CONTENT_PREFIX, id),
                value,
            },
            Write::Put {
                table: Table::Barrier,
                key: ACTIVE.to_vec(),
                value: active(parent, id),
            },
        ])?;
        self.contents.insert(id, aead_key(&key)?);
        self.active_content = id;
        Ok(id)
    }

    /// Encrypts a record for `table`/`key` under the active content key.
    pub fn seal(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let id = self.active_content;
        let content = self.contents.get(&id).ok_or(Error::MissingKey {
            kind: "content",
            id,
        })?;
        let mut buf = plaintext.to_vec();
        let nonce = content
            .seal_in_place_append_tag(Aad::from(record_aad(table, key)), &mut buf)
            .map_err(|_| Error::Crypto { op: "seal" })?;
        let mut out = Vec::with_capacity(1 + 4 + NONCE_LEN + buf.len());
        out.push(ENVELOPE_V1);
        out.extend(id.to_be_bytes());
        out.extend(nonce.as_ref());
        out.extend(buf);
        Ok(out)
    }

    /// Decrypts a record sealed for `table`/`key`.
    pub fn open(
        &self,
        table: Table,
        key: &[u8],
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let tampered = || Error::Tampered {
            table: table.name(),
            key_hint: key_hint(key),
        };
        let (&version, rest) = envelope.split_first().ok_or_else(tampered)?;
        if version != ENVELOPE_V1 {
            return Err(Error::UnknownEnvelope {
                table: table.name(),
                key_hint: key_hint(key),
                version,
            });
        }
        let (id, rest) = rest.split_first_chunk::<4>().ok_or_else(tampered)?;
        let id = u32::from_be_bytes(*id);
        let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or_else(tampered)?;
        let content = self.contents.get(&id).ok_or(Error::MissingKey {
            kind: "content",
            id,
        })?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = content
            .open_in_place(
                Nonce::from(nonce),
                Aad::from(record_aad(table, key)),
                &mut buf,
            )
            .map_err(|_| tampered())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// The content key new records are sealed with.
    pub fn active_content_key(&self) -> u32 {
        self.active_content
    }

    fn initialize(backend: &dyn Backend, unseal: &UnsealKey) -> Result<Self, Error> {
        let root = random_key()?;
        let intermediate = random_key()?;
        let content = random_key()?;
        let root_kek = aead_key(&root)?;
        let int_kek = aead_key(&intermediate)?;
        let mut content_value = 1u32.to_be_bytes().to_vec();
        content_value.extend(wrap_key(&int_kek, &content, &content_aad(1, 1))?);
        // One transaction: a crash leaves either no barrier or a whole one. The root is
        // created: of two processes initializing one shared store at once, one succeeds and
        // the other loads its hierarchy.
        backend.apply(vec![
            Write::Create {
                table: Table::Barrier,
                key: ROOT.to_vec(),
                value: wrap_key(&aead_key(unseal.expose())?, &root, &root_aad())?,
            },
            Write::Put {
                table: Table::Barrier,
                key: numbered(INTERMEDIATE_PREFIX, 1),
                value: wrap_key(&root_kek, &intermediate, &intermediate_aad(1))?,
            },
            Write::Put {
                table: Table::Barrier,
                key: numbered(CONTENT_PREFIX, 1),
                value: content_value,
            },
            Write::Put {
                table: Table::Barrier,
                key: ACTIVE.to_vec(),
                value: active(1, 1),
            },
        ])?;
        Ok(Self {
            intermediates: BTreeMap::from([(1, int_kek)]),
            contents: BTreeMap::from([(1, aead_key(&content)?)]),
            active_intermediate: 1,
            active_content: 1,
        })
    }

    fn load(backend: &dyn Backend, root: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, Error> {
        let root_kek = aead_key(&root)?;
        let mut intermediates = BTreeMap::new();
        for (k, wrapped) in backend.scan(Table::Barrier, INTERMEDIATE_PREFIX)? {
            let id = parse_numbered(&k, INTERMEDIATE_PREFIX)?;
            let key = unwrap_with(&root_kek, &wrapped, &intermediate_aad(id)).ok_or_else(|| {
                Error::Tampered {
                    table: Table::Barrier.name(),
                    key_hint: key_hint(&k),
                }
            })?;
            intermediates.insert(id, aead_key(&key)?);
        }
        let mut contents = BTreeMap::new();
        for (k, value) in backend.scan(Table::Barrier, CONTENT_PREFIX)? {
            let id = parse_numbered(&k, CONTENT_PREFIX)?;
            let tampered = || Error::Tampered {
                table: Table::Barrier.name(),
                key_hint: key_hint(&k),
            };
            let (parent, wrapped) = value.split_first_chunk::<4>().ok_or_else(tampered)?;
            let parent = u32::from_be_bytes(*parent);
            let kek = intermediates.get(&parent).ok_or(Error::MissingKey {
                kind: "intermediate",
                id: parent,
            })?;
            let key = unwrap_with(kek, wrapped, &content_aad(id, parent)).ok_or_else(tampered)?;
            contents.insert(id, aead_key(&key)?);
        }
        let active_record = backend.get(Table::Barrier, ACTIVE)?.unwrap_or_default();
        let (int_id, rest) = active_record
            .split_first_chunk::<4>()
            .ok_or(Error::MissingKey {
                kind: "active",
                id: 0,
            })?;
        let content_id = rest.first_chunk::<4>().ok_or(Error::MissingKey {
            kind: "active",
            id: 0,
        })?;
        Ok(Self {
            intermediates,
            contents,
            active_intermediate: u32::from_be_bytes(*int_id),
            active_content: u32::from_be_bytes(*content_id),
        })
    }
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(key.as_mut()).map_err(|_| Error::Crypto { op: "random" })?;
    Ok(key)
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<RandomizedNonceKey, Error> {
    RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| Error::Crypto { op: "key setup" })
}

/// nonce || ciphertext || tag of a 32-byte key.
fn wrap_key(kek: &RandomizedNonceKey, key: &[u8; KEY_LEN], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = key.to_vec();
    let nonce = kek
        .seal_in_place_append_tag(Aad::from(aad), &mut buf)
        .map_err(|_| Error::Crypto { op: "wrap" })?;
    let mut out = nonce.as_ref().to_vec();
    out.extend(buf);
    Ok(out)
}

fn unwrap_key(kek: &[u8; KEY_LEN], wrapped: &[u8], aad: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    unwrap_with(&aead_key(kek).ok()?, wrapped, aad)
}

fn unwrap_with(
    kek: &RandomizedNonceKey,
    wrapped: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let (nonce, ciphertext) = wrapped.split_first_chunk::<NONCE_LEN>()?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let plain = kek
        .open_in_place(Nonce::from(nonce), Aad::from(aad), &mut buf)
        .ok()?;
    let key: [u8; KEY_LEN] = (&*plain).try_into().ok()?;
    Some(Zeroizing::new(key))
}

fn root_aad() -> Vec<u8> {
    b"cryptoutil/barrier/v1/root".to_vec()
}

fn intermediate_aad(id: u32) -> Vec<u8> {
    let mut aad = b"cryptoutil/barrier/v1/intermediate/".to_vec();
    aad.extend(id.to_be_bytes());
    aad
}

fn content_aad(id: u32, parent: u32) -> Vec<u8> {
    let mut aad = b"cryptoutil/barrier/v1/content/".to_vec();
    aad.extend(id.to_be_bytes());
    aad.extend(parent.to_be_bytes());
    aad
}

fn record_aad(table: Table, key: &[u8]) -> Vec<u8> {
    let mut aad = b"cryptoutil/record/v1/".to_vec();
    aad.extend(table.name().as_bytes());
    aad.push(0);
    aad.extend(key);
    aad
}

fn numbered(prefix: &[u8], id: u32) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend(id.to_be_bytes());
    k
}

fn parse_numbered(key: &[u8], prefix: &[u8]) -> Result<u32, Error> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 4]>::try_from(rest).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| Error::Tampered {
            table: Table::Barrier.name(),
            key_hint: key_hint(key),
        })
}

fn active(intermediate: u32, content: u32) -> Vec<u8> {
    let mut v = intermediate.to_be_bytes().to_vec();
    v.extend(content.to_be_bytes());
    v
}
