//! A DNS answer from the network (what ACME dns-01 validation reads from a resolver): the
//! header, the echoed question, answer records (compressed names, CNAME chains, TXT strings)
//! must be read or refused without a panic or a loop.
#![no_main]

use cryptoutil_protocols::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The query whose id the answer carries (so the fuzzer reaches past the id check).
    let id = u16::from_be_bytes([
        data.first().copied().unwrap_or_default(),
        data.get(1).copied().unwrap_or_default(),
    ]);
    if let Ok(query) = dns::txt_query(id, "_acme-challenge.a.example.test") {
        let _ = dns::txt_answer(data, &query);
    }
});
