//! The JSON codec of sealed records: what a product's store module writes through the key
//! barrier and reads back. A record that does not decode is [`Error::Corrupt`] naming its
//! table and key (our fault, never the caller's).

use cryptoutil_storage::Table;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Error;

/// A stored record decoded, or `Corrupt` naming where it is.
pub(crate) fn decode<T: DeserializeOwned>(
    table: Table,
    key: &[u8],
    plain: &[u8],
    what: &'static str,
) -> Result<T, Error> {
    serde_json::from_slice(plain).map_err(|_| Error::corrupt(table, key, what))
}

/// A record encoded for sealing (zeroized once sealed: records may hold keys).
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Zeroizing<Vec<u8>>, Error> {
    serde_json::to_vec(record)
        .map(Zeroizing::new)
        .map_err(|_| Error::Internal {
            what: "encoding a record",
        })
}
