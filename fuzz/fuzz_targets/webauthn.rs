//! What a browser sends a WebAuthn relying party (attestation objects, authenticator data,
//! COSE keys, the response JSON), from anyone: parsing and checking must never panic, and a
//! parsed credential must carry the key it was parsed with.
#![no_main]

use cryptoutil_protocols::webauthn::{
    parse_attestation_object, parse_authenticator_data, verify_registration,
    AuthenticationResponse, Expected, PublicKey, RegistrationResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = parse_attestation_object(data) {
        if let Ok(auth) = parse_authenticator_data(&object.auth_data) {
            if let Some(attested) = auth.attested {
                assert!(!attested.credential_id.is_empty());
                let _ = PublicKey::from_cose(&attested.cose_key);
            }
        }
    }
    let _ = parse_authenticator_data(data);
    let _ = PublicKey::from_cose(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RegistrationResponse::from_json(text);
        let _ = AuthenticationResponse::from_json(text);
    }
    let expected = Expected {
        challenge: b"fuzz".to_vec(),
        rp_id: "localhost".into(),
        origins: vec!["https://localhost".into()],
        user_verification: false,
    };
    let half = data.len() / 2;
    let _ = verify_registration(&expected, &data[..half], &data[half..]);
});
