//! Compact JWE parsing and decryption must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::Jwk;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [Jwk] {
    static KEYS: OnceLock<Vec<Jwk>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [(KeyAlg::A128KW, ContentAlg::A128CbcHs256), (KeyAlg::Dir, ContentAlg::A256GCM), (KeyAlg::EcdhEs, ContentAlg::A128GCM)]
            .into_iter()
            .filter_map(|(alg, enc)| Jwk::generate_jwe(alg, enc).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for key in keys() {
            // PBES2 is left out of the allow-list: its iteration count makes each run slow.
            let algs = [KeyAlg::A128KW, KeyAlg::Dir, KeyAlg::EcdhEs, KeyAlg::A256GCMKW, KeyAlg::RsaOaep256];
            let _ = jwe::decrypt_compact(text, key, &algs, &ContentAlg::ALL);
        }
    }
});
