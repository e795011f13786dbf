//! An RFC 3161 time-stamp request from anyone: parsing must never panic, and whatever passes
//! carries an imprint of a hash this TSA takes and a positive nonce without leading zeros.
#![no_main]

use cryptoutil_protocols::ca::tsa;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = tsa::parse_request(data) {
        assert!(!req.imprint.is_empty());
        assert!(req.nonce.as_ref().is_none_or(|n| n.first() != Some(&0)));
        assert!(req.policy.as_ref().is_none_or(|p| p.first() == Some(&0x06)));
    } else {
        // A rejection is always a well-formed answer.
        assert!(!tsa::rejection(tsa::Failure::BadDataFormat).is_empty());
    }
});
