//! An EST `simpleenroll` body from anyone (base64 of a PKCS#10 request, as the CA's EST server
//! reads it before any credential is checked): decoding and checking it must never panic, and
//! a certs-only answer made of the decoded bytes reads back as exactly those bytes.
#![no_main]

use cryptoutil_protocols::ca::csr;
use cryptoutil_protocols::est;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = est::decode_body(data, est::MAX_REQUEST) {
        let _ = csr::parse(&der);
        let answer = est::body(&est::certs_only_message([der.as_slice()]));
        if let Ok(certs) = est::certs_only(answer.as_bytes()) {
            assert_eq!(certs.concat(), der);
        }
    }
});
