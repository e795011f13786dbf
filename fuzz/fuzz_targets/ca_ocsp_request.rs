//! An OCSP request (DER, or a GET path's base64 decoded) from anyone: parsing must never panic,
//! and whatever passes is bounded (1 to 16 ids, a nonce of 1 to 32 bytes, ids with a positive
//! serial and their own DER).
#![no_main]

use cryptoutil_protocols::ca::ocsp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ocsp::parse_request(data) {
        assert!((1..=ocsp::MAX_IDS).contains(&req.ids.len()));
        assert!(req.nonce.as_ref().is_none_or(|n| (1..=32).contains(&n.len())));
        for id in &req.ids {
            assert!(!id.der.is_empty());
            assert!(id.serial.first() != Some(&0));
        }
    }
});
