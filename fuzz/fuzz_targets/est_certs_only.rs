//! The EST `/simpleenroll` answer (base64 CMS certs-only) and certificate validity parsing must
//! never panic.
#![no_main]

use cryptoutil_protocols::{est, pki};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = est::certificates(data) {
        for cert in certs {
            let _ = pki::validity(&cert);
        }
    }
    let _ = est::certs_only(data);
    let _ = pki::validity(data);
});
