//! A PKCS#10 request (PEM or DER) from anyone: parsing and checking it must never panic, and
//! whatever passes must be issuable-looking (a key, names of known kinds).
#![no_main]

use cryptoutil_protocols::ca::csr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = csr::parse(data) {
        assert!(!req.spki_der.is_empty());
        for san in &req.sans {
            let _ = san.kind();
        }
    }
});
