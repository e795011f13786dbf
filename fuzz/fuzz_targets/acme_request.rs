//! An ACME request body from anyone (RFC 8555 §6.2, as the CA's ACME server reads it before
//! any account is known): the flattened JWS, its header's key, an external account binding
//! in its payload and the identifiers of an order must be read or refused without a panic.
#![no_main]

use cryptoutil_protocols::acme::{self, Binding, Request, Signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let Ok(payload) = request.json() else {
        return;
    };
    let _ = acme::identifiers(&payload);
    if let Signer::Key(key) = &request.signer {
        let _ = request.verify(key);
        if let Some(binding) = payload.get("externalAccountBinding") {
            if let Ok(binding) = Binding::parse(binding, &request.url, key) {
                let _ = binding.verify(b"fuzz");
            }
        }
    }
});
