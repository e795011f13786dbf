//! Compact JWS parsing and verification must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use cryptoutil_protocols::jose::{jws, Jwk, JwsAlg};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [Jwk] {
    static KEYS: OnceLock<Vec<Jwk>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [JwsAlg::HS256, JwsAlg::ES256, JwsAlg::EdDSA]
            .into_iter()
            .filter_map(|alg| Jwk::generate(alg).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for key in keys() {
            let _ = jws::verify_compact(text, key, &JwsAlg::ALL);
        }
    }
});
