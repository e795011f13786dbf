//! A service's import key: an RSA-OAEP-256 key (A256GCM content) whose public half callers wrap
//! what they import to (BYOK: the KMS's key material, the CA's certificate authorities). Made
//! on first use and kept sealed in the service's store.

use cryptoutil_protocols::jose::Jwk;
use cryptoutil_storage::{Store, Table};

use crate::error::Error;

/// The import key stored under `record` in [`Table::Records`], or a new one stored (if two race,
/// the first write wins and both use it).
pub fn load_or_make(store: &Store, record: &[u8]) -> Result<Jwk, Error> {
    use cryptoutil_protocols::jose::jwe::{ContentAlg, KeyAlg};
    for _ in 0..2 {
        if let Some(plain) = store.get_sealed(Table::Records, record)? {
            let corrupt = || Error::corrupt(Table::Records, record, "import key");
            let text = std::str::from_utf8(&plain).map_err(|_| corrupt())?;
            return Jwk::parse(text).map_err(|_| corrupt());
        }
        let jwk = Jwk::generate_jwe(KeyAlg::RsaOaep256, ContentAlg::A256GCM)?;
        let private = jwk.to_private_value()?;
        let write = store.sealed_create(Table::Records, record, private.as_bytes())?;
        match store.apply(vec![write]) {
            Ok(()) => return Ok(jwk),
            Err(cryptoutil_storage::Error::Exists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict {
        what: "the import key was being made by another request",
    })
}
