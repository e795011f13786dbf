//! JWK and JWK Set parsing (and what a parsed key is used for) must never panic.
#![no_main]

use cryptoutil_protocols::jose::{Jwk, JwkSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = Jwk::parse(text) {
            let _ = key.thumbprint();
            let _ = key.to_public_value();
            let _ = key.to_private_value();
        }
        if let Ok(set) = JwkSet::parse(text) {
            let _ = set.to_public_value();
        }
    }
});
