//! General and flattened JSON JWE parsing and decryption must never panic.
#![no_main]

use std::sync::OnceLock;

use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::{Jwk, JwkSet};
use libfuzzer_sys::fuzz_target;

fn set() -> &'static JwkSet {
    static SET: OnceLock<JwkSet> = OnceLock::new();
    SET.get_or_init(|| JwkSet {
        keys: [(KeyAlg::A128KW, ContentAlg::A128CbcHs256), (KeyAlg::A256GCMKW, ContentAlg::A256GCM)]
            .into_iter()
            .filter_map(|(alg, enc)| Jwk::generate_jwe(alg, enc).ok())
            .collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let algs = [KeyAlg::A128KW, KeyAlg::A256GCMKW, KeyAlg::Dir, KeyAlg::EcdhEsA128KW];
        let _ = jwe::decrypt_json(text, set(), &algs, &ContentAlg::ALL);
    }
});
