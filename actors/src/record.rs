//! The JSON codec of sealed records: what a product's store module writes through the key
//! barrier and reads back. A record that does not decode is [`Error::Corrupt`] naming its
//! table and key (our fault, never the caller's).

use cryptoutil_storage::{Store, Table};
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

/// The record of `table` under `key`, opened and decoded, if there is one.
pub(crate) fn load<T: DeserializeOwned>(
    store: &Store,
    table: Table,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, Error> {
    store
        .get_sealed(table, key)?
        .map(|plain| decode(table, key, &plain, what))
        .transpose()
}

/// Every record of `table` whose key starts with `prefix`, opened and decoded, in key order.
pub(crate) fn scan<T: DeserializeOwned>(
    store: &Store,
    table: Table,
    prefix: &[u8],
    what: &'static str,
) -> Result<Vec<T>, Error> {
    store
        .scan_sealed(table, prefix)?
        .into_iter()
        .map(|(k, plain)| decode(table, &k, &plain, what))
        .collect()
}

/// A record encoded for sealing (zeroized once sealed: records may hold keys).
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Zeroizing<Vec<u8>>, Error> {
    serde_json::to_vec(record)
        .map(Zeroizing::new)
        .map_err(|_| Error::Internal {
            what: "encoding a record",
        })
}
