//! General and flattened JSON JWS parsing and verification must never panic.
#![no_main]

use std::sync::OnceLock;

use cryptoutil_protocols::jose::{jws, Jwk, JwkSet, JwsAlg};
use libfuzzer_sys::fuzz_target;

fn set() -> &'static JwkSet {
    static SET: OnceLock<JwkSet> = OnceLock::new();
    SET.get_or_init(|| JwkSet {
        keys: [JwsAlg::HS256, JwsAlg::ES256]
            .into_iter()
            .filter_map(|alg| Jwk::generate(alg).ok())
            .collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jws::verify_json(text, set(), &JwsAlg::ALL);
    }
});
