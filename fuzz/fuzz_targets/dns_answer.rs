//! A DNS answer from the network (what ACME dns-01 validation reads from a resolver): the
//! header, question and answer records (compressed names, CNAMEs, TXT strings) must be read
//! or refused without a panic or a loop.
#![no_main]

use cryptoutil_protocols::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = u16::from_be_bytes([
        data.first().copied().unwrap_or_default(),
        data.get(1).copied().unwrap_or_default(),
    ]);
    let _ = dns::txt_answer(data, id, "_acme-challenge.a.example.test");
});
