//! Audit records and their hash chain, without I/O.
//!
//! Each record carries `prev`, the hash of the record before it (64 zeros for the first), and
//! `hash`, the SHA-256 (hex) of its canonical form: the record without `hash` as compact JSON
//! with keys in alphabetical order, which is what Python's
//! `json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes. Changing,
//! removing or reordering a record breaks the chain at that point, and [`Verifier`] finds where;
//! cutting records off the end leaves a shorter valid chain (nothing anchors the head outside
//! the log).

use serde::{Deserialize, Serialize};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an operation reports; the log adds the sequence, time, service and chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The caller: a client id or user id.
    pub who: String,
    /// The caller's tenant.
    pub tenant: String,
    /// What was operated on (an elastic key id).
    pub key: String,
    /// The material key version, where one was used.
    pub version: Option<u32>,
    /// The operation (`encrypt`, `rotate`, ...).
    pub op: &'static str,
    /// `None` for success, else why it failed.
    pub error: Option<String>,
}

impl AuditEntry {
    /// An entry for `op` by `who` in `tenant` on `key`, successful until [`Self::failed`].
    pub fn new(who: &str, tenant: &str, key: &str, op: &'static str) -> Self {
        Self {
            who: who.to_owned(),
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            version: None,
            op,
            error: None,
        }
    }

    /// A federation fallback taken for `who` in `tenant`: `peer` was unavailable and its
    /// fallback `mode` served instead (key `<peer>:<mode>`, op `fallback`).
    pub fn fallback(who: &str, tenant: &str, peer: &str, mode: &str) -> Self {
        Self::new(who, tenant, &format!("{peer}:{mode}"), "fallback")
    }

    /// The entry with the version used.
    #[must_use]
    pub fn version(mut self, version: Option<u32>) -> Self {
        self.version = version;
        self
    }

    /// The entry with the outcome of `result`.
    #[must_use]
    pub fn outcome<T, E: std::fmt::Display>(mut self, result: &Result<T, E>) -> Self {
        self.error = result.as_ref().err().map(ToString::to_string);
        self
    }
}

/// One record of the log, as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When (Unix seconds).
    pub time: u64,
    /// The service that wrote it.
    pub service: String,
    /// The caller.
    pub who: String,
    /// The caller's tenant.
    pub tenant: String,
    /// The elastic key.
    pub key: String,
    /// The material key version used, if any.
    pub version: Option<u32>,
    /// The operation.
    pub op: String,
    /// `ok` or `error`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The previous record's hash.
    pub prev: String,
    /// SHA-256 of this record's canonical form.
    pub hash: String,
}

impl AuditRecord {
    /// The record `seq` after a record whose hash is `prev`.
    pub fn chain(entry: AuditEntry, service: &str, seq: u64, time: u64, prev: &str) -> Self {
        let mut record = Self {
            seq,
            time,
            service: service.to_owned(),
            who: entry.who,
            tenant: entry.tenant,
            key: entry.key,
            version: entry.version,
            op: entry.op.to_owned(),
            outcome: if entry.error.is_none() { "ok" } else { "error" }.to_owned(),
            error: entry.error,
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        record
    }

    /// The record without `hash`, keys sorted, compact.
    pub fn canonical(&self) -> String {
        let s = |v: &str| serde_json::Value::from(v).to_string();
        let opt = |v: &Option<String>| v.as_deref().map_or("null".to_owned(), s);
        format!(
            "{{\"error\":{},\"key\":{},\"op\":{},\"outcome\":{},\"prev\":{},\"seq\":{},\
             \"service\":{},\"tenant\":{},\"time\":{},\"version\":{},\"who\":{}}}",
            opt(&self.error),
            s(&self.key),
            s(&self.op),
            s(&self.outcome),
            s(&self.prev),
            self.seq,
            s(&self.service),
            s(&self.tenant),
            self.time,
            self.version.map_or("null".to_owned(), |v| v.to_string()),
            s(&self.who),
        )
    }

    /// SHA-256 (hex) of [`Self::canonical`].
    pub fn computed_hash(&self) -> String {
        cryptoutil_protocols::hex(&cryptoutil_protocols::sha256(self.canonical().as_bytes()))
    }

    /// The storage key: the sequence as 20 digits, so key order is log order.
    pub fn storage_key(seq: u64) -> Vec<u8> {
        format!("{seq:020}").into_bytes()
    }
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first record that does not fit.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks records in log order, one at a time, so a long log verifies in pages.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_seq: u64,
    prev: String,
    /// Records checked so far.
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS.to_owned(),
            checked: 0,
        }
    }
}

impl Verifier {
    /// A verifier of the records after record `seq`, whose hash is `hash` (the anchor of a log
    /// whose oldest segments retention removed).
    pub fn after(seq: u64, hash: &str) -> Self {
        Self {
            next_seq: seq.saturating_add(1),
            prev: hash.to_owned(),
            checked: 0,
        }
    }

    /// Checks the next record: its sequence follows, it names the previous hash, and its own
    /// hash matches its content.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), Break> {
        let reason = if record.seq != self.next_seq {
            Some("sequence gap or reordering")
        } else if record.prev != self.prev {
            Some("prev does not match the previous record's hash")
        } else if record.hash != record.computed_hash() {
            Some("hash does not match the record's content")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Break {
                seq: self.next_seq,
                reason,
            });
        }
        self.next_seq += 1;
        self.prev.clone_from(&record.hash);
        self.checked += 1;
        Ok(())
    }

    /// The hash of the last record checked (the chain's head).
    pub fn head(&self) -> &str {
        &self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry::new("client-1", "t1", "ek-1", "encrypt")
                    .version(Some(2))
                    .outcome(&if seq % 2 == 0 {
                        Ok(())
                    } else {
                        Err("bad \"jwe\"")
                    });
                let r = AuditRecord::chain(entry, "kms", seq, 1_800_000_000 + seq, &prev);
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> Result<u64, Break> {
        let mut v = Verifier::default();
        for r in records {
            v.check(r)?;
        }
        Ok(v.checked)
    }

    #[test]
    fn an_untouched_chain_verifies_and_every_change_breaks_it_where_it_was_made() {
        let records = chain(6);
        assert_eq!(verify(&records), Ok(6));
        assert_eq!(records[0].prev, GENESIS);
        assert_eq!(records[1].outcome, "ok");
        assert_eq!(records[0].error.as_deref(), Some("bad \"jwe\""));

        let mut edited = records.clone();
        edited[3].outcome = "error".into();
        assert_eq!(verify(&edited).unwrap_err().seq, 4);

        let mut rehashed = records.clone();
        rehashed[3].who = "someone-else".into();
        rehashed[3].hash = rehashed[3].computed_hash();
        let err = verify(&rehashed).unwrap_err();
        assert_eq!(
            (err.seq, err.reason),
            (5, "prev does not match the previous record's hash")
        );

        let mut removed = records.clone();
        removed.remove(2);
        assert_eq!(verify(&removed).unwrap_err().seq, 3);

        let mut swapped = records;
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped).unwrap_err().seq, 2);
    }

    #[test]
    fn the_canonical_form_is_sorted_compact_json_without_the_hash() {
        let r = &chain(1)[0];
        let value: serde_json::Value = serde_json::from_str(&r.canonical()).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(value.get("hash").is_none());
        assert_eq!(value["seq"], 1);
        assert_eq!(value["version"], 2);
        assert!(!r.canonical().contains(": "));
        // SHA-256 of the canonical bytes, as any other implementation would compute it.
        assert_eq!(
            r.hash,
            cryptoutil_protocols::hex(&cryptoutil_protocols::sha256(r.canonical().as_bytes()))
        );
        assert_eq!(
            AuditRecord::storage_key(42),
            b"00000000000000000042".to_vec()
        );
    }
}
