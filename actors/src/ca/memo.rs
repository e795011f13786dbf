//! Records the CA keeps in memory after their first read, by key: bounded (emptied when
//! full, then read again as needed). Only for records that change solely through this
//! process's `CasHandle`, which updates the memo with the store.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Records by key, at most `max` of them.
#[derive(Debug)]
pub struct Memo<V> {
    records: RwLock<HashMap<String, V>>,
    max: usize,
}

impl<V: Clone> Memo<V> {
    /// An empty memo keeping at most `max` records.
    pub fn new(max: usize) -> Self {
        Self {
            records: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// The record under `key`, if remembered.
    pub fn get(&self, key: &str) -> Option<V> {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Remembers `record` under `key` (replacing what was there).
    pub fn put(&self, key: &str, record: &V) {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= self.max {
            records.clear();
        }
        records.insert(key.to_owned(), record.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_full_memo_starts_again_and_a_put_replaces() {
        let memo = Memo::new(2);
        memo.put("a", &1);
        memo.put("a", &2);
        memo.put("b", &3);
        assert_eq!((memo.get("a"), memo.get("b")), (Some(2), Some(3)));
        memo.put("c", &4);
        assert_eq!((memo.get("a"), memo.get("c")), (None, Some(4)));
    }
}
