//! Bounded in-memory records (sign-ins under way, sessions, used one-time values): what to drop
//! when one is full.

use std::collections::HashMap;
use std::hash::Hash;

/// Forgets the entries of a full record that are no later than the median of their times (`at`
/// reads an entry's), making room for new ones; the time forgotten to.
pub(crate) fn forget_older_half<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    at: impl Fn(&V) -> u64,
) -> u64 {
    let mut times: Vec<u64> = map.values().map(&at).collect();
    if times.is_empty() {
        return 0;
    }
    let middle = times.len() / 2;
    let forget_to = *times.select_nth_unstable(middle).1;
    map.retain(|_, v| at(v) > forget_to);
    forget_to
}
