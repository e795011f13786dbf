//! Ceremonies built here with aws-lc-rs keys (every branch, every refusal), and real ones
//! recorded from authenticators and browsers (`protocols/testdata/webauthn_vectors.json`, copied
//! from the test suites of py_webauthn and SimpleWebAuthn).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    RSA_PKCS1_SHA256,
};
use ciborium::value::Value;
use proptest::prelude::*;

use super::*;

const RP: &str = "localhost";
const ORIGIN: &str = "https://localhost:8443";

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A credential key of one algorithm: its COSE_Key and a signer.
enum TestKey {
    Es256(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl TestKey {
    fn es256() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        Self::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap(),
        )
    }

    fn ed25519() -> Self {
        Self::Ed(Ed25519KeyPair::generate().unwrap())
    }

    fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }

    fn cose(&self) -> Vec<u8> {
        let map = match self {
            Self::Es256(k) => {
                let p = k.public_key().as_ref();
                vec![
                    (int(1), int(2)),
                    (int(3), int(ES256)),
                    (int(-1), int(1)),
                    (int(-2), Value::Bytes(p[1..33].to_vec())),
                    (int(-3), Value::Bytes(p[33..65].to_vec())),
                ]
            }
            Self::Ed(k) => vec![
                (int(1), int(1)),
                (int(3), int(EDDSA)),
                (int(-1), int(6)),
                (int(-2), Value::Bytes(k.public_key().as_ref().to_vec())),
            ],
            Self::Rsa(k) => {
                let (n, e) = rsa_public_key(k.public_key().as_ref()).unwrap();
                vec![
                    (int(1), int(3)),
                    (int(3), int(RS256)),
                    (int(-1), Value::Bytes(n)),
                    (int(-2), Value::Bytes(e)),
                ]
            }
        };
        cbor(&Value::Map(map))
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Self::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
                sig
            }
        }
    }
}

fn expected(uv: bool) -> Expected {
    Expected {
        challenge: b"challenge-0123456789abcdef".to_vec(),
        rp_id: RP.into(),
        origins: vec![ORIGIN.into()],
        user_verification: uv,
    }
}

fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": kind, "challenge": b64(challenge), "origin": origin, "crossOrigin": false
    }))
    .unwrap()
}

fn auth_data(rp: &str, flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut d = crate::sha256(rp.as_bytes()).to_vec();
    d.push(flags | if attested.is_some() { FLAG_AT } else { 0 });
    d.extend_from_slice(&count.to_be_bytes());
    if let Some((id, cose)) = attested {
        d.extend_from_slice(&[7u8; 16]);
        d.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        d.extend_from_slice(id);
        d.extend_from_slice(cose);
    }
    d
}

fn attestation_object(fmt: &str, statement: Vec<(Value, Value)>, auth: &[u8]) -> Vec<u8> {
    cbor(&Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text(fmt.into())),
        (Value::Text("attStmt".into()), Value::Map(statement)),
        (Value::Text("authData".into()), Value::Bytes(auth.to_vec())),
    ]))
}

fn packed_self(key: &TestKey, auth: &[u8], cd: &[u8]) -> Vec<(Value, Value)> {
    let mut signed = auth.to_vec();
    signed.extend_from_slice(&crate::sha256(cd));
    let alg = match key {
        TestKey::Es256(_) => ES256,
        TestKey::Ed(_) => EDDSA,
        TestKey::Rsa(_) => RS256,
    };
    vec![
        (Value::Text("alg".into()), int(alg)),
        (Value::Text("sig".into()), Value::Bytes(key.sign(&signed))),
    ]
}

#[test]
fn registrations_of_each_algorithm_and_format_pass_and_keep_the_key() {
    let e = expected(true);
    for key in [TestKey::es256(), TestKey::ed25519(), TestKey::rsa()] {
        let cose = key.cose();
        let auth = auth_data(RP, FLAG_UP | FLAG_UV | FLAG_BE, 0, Some((b"cred-1", &cose)));
        let cd = client_data("webauthn.create", &e.challenge, ORIGIN);
        let parsed = PublicKey::from_cose(&cose).unwrap();
        assert_eq!(
            PublicKey::from_cose(&parsed.to_cose().unwrap()).unwrap(),
            parsed
        );
        let none =
            verify_registration(&e, &cd, &attestation_object("none", vec![], &auth)).unwrap();
        assert_eq!(none.attestation, Attestation::None);
        assert_eq!(none.credential_id, b"cred-1");
        assert_eq!(none.cose_key, cose);
        assert!(none.flags.user_verified && none.flags.backup_eligible && !none.flags.backup_state);
        let st = packed_self(&key, &auth, &cd);
        let packed =
            verify_registration(&e, &cd, &attestation_object("packed", st, &auth)).unwrap();
        assert_eq!(packed.attestation, Attestation::PackedSelf);
        assert_eq!(packed.alg, PublicKey::from_cose(&cose).unwrap().alg());
        // A self attestation by another key does not verify.
        let other = TestKey::es256();
        let forged = attestation_object("packed", packed_self(&other, &auth, &cd), &auth);
        assert!(verify_registration(&e, &cd, &forged).is_err());
    }
}

#[test]
fn a_packed_attestation_certificate_is_checked_and_must_sign() {
    let e = expected(false);
    let key = TestKey::es256();
    let cose = key.cose();
    let auth = auth_data(RP, FLAG_UP, 0, Some((b"cred-2", &cose)));
    let cd = client_data("webauthn.create", &e.challenge, ORIGIN);
    let mut signed = auth.clone();
    signed.extend_from_slice(&crate::sha256(&cd));
    let make = |ou: &str, ca: bool, aaguid: [u8; 16]| {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "US");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Test Vendor");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, ou);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Batch");
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let mut ext = vec![0x04, 16];
        ext.extend_from_slice(&aaguid);
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
                ext,
            ));
        let cert = params.self_signed(&kp).unwrap();
        let pkcs8 = kp.serialize_der();
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).unwrap();
        let sig = signer
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        vec![
            (Value::Text("alg".into()), int(ES256)),
            (Value::Text("sig".into()), Value::Bytes(sig)),
            (
                Value::Text("x5c".into()),
                Value::Array(vec![Value::Bytes(cert.der().to_vec())]),
            ),
        ]
    };
    let ok = make("Authenticator Attestation", false, [7; 16]);
    let r = verify_registration(&e, &cd, &attestation_object("packed", ok.clone(), &auth)).unwrap();
    assert_eq!(r.attestation, Attestation::Packed);
    for (bad, why) in [
        (make("Sales", false, [7; 16]), "OU"),
        (make("Authenticator Attestation", true, [7; 16]), "CA"),
        (make("Authenticator Attestation", false, [8; 16]), "AAGUID"),
    ] {
        let err = verify_registration(&e, &cd, &attestation_object("packed", bad, &auth));
        assert!(
            matches!(err, Err(WebauthnError::Certificate(_))),
            "{why}: {err:?}"
        );
    }
    // The certificate's key must have signed.
    let mut tampered = ok;
    tampered[1].1 = Value::Bytes(key.sign(&signed));
    assert_eq!(
        verify_registration(&e, &cd, &attestation_object("packed", tampered, &auth)),
        Err(WebauthnError::Signature("attestation"))
    );
}

#[test]
fn a_registration_is_refused_for_each_mismatch() {
    let e = expected(true);
    let key = TestKey::es256();
    let cose = key.cose();
    let good_auth = auth_data(RP, FLAG_UP | FLAG_UV, 0, Some((b"c", &cose)));
    let good_cd = client_data("webauthn.create", &e.challenge, ORIGIN);
    let cases: Vec<(Vec<u8>, Vec<u8>, &str, WebauthnError)> = vec![
        (
            client_data("webauthn.get", &e.challenge, ORIGIN),
            attestation_object("none", vec![], &good_auth),
            "none",
            WebauthnError::Type("webauthn.create"),
        ),
        (
            client_data("webauthn.create", b"another challenge", ORIGIN),
            attestation_object("none", vec![], &good_auth),
            "none",
            WebauthnError::Challenge,
        ),
        (
            client_data("webauthn.create", &e.challenge, "https://evil.test"),
            attestation_object("none", vec![], &good_auth),
            "none",
            WebauthnError::Origin("https://evil.test".into()),
        ),
        (
            good_cd.clone(),
            attestation_object(
                "none",
                vec![],
                &auth_data("evil.test", FLAG_UP | FLAG_UV, 0, Some((b"c", &cose))),
            ),
            "none",
            WebauthnError::RpId,
        ),
        (
            good_cd.clone(),
            attestation_object(
                "none",
                vec![],
                &auth_data(RP, FLAG_UV, 0, Some((b"c", &cose))),
            ),
            "none",
            WebauthnError::UserPresence,
        ),
        (
            good_cd.clone(),
            attestation_object(
                "none",
                vec![],
                &auth_data(RP, FLAG_UP, 0, Some((b"c", &cose))),
            ),
            "none",
            WebauthnError::UserVerification,
        ),
        (
            good_cd.clone(),
            attestation_object("fido-u2f", vec![], &good_auth),
            "fido-u2f",
            WebauthnError::Unsupported("attestation format"),
        ),
    ];
    for (cd, object, fmt, want) in cases {
        assert_eq!(verify_registration(&e, &cd, &object), Err(want), "{fmt}");
    }
    // A cross-origin frame is refused even from an allowed origin.
    let framed = serde_json::to_vec(&json!({
        "type": "webauthn.create", "challenge": b64(&e.challenge), "origin": ORIGIN, "crossOrigin": true
    }))
    .unwrap();
    assert!(matches!(
        verify_registration(&e, &framed, &attestation_object("none", vec![], &good_auth)),
        Err(WebauthnError::Origin(_))
    ));
    // A P-384 key is not offered and not accepted.
    let p384 = cbor(&Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(-35)),
        (int(-1), int(2)),
        (int(-2), Value::Bytes(vec![1; 48])),
        (int(-3), Value::Bytes(vec![1; 48])),
    ]));
    let auth = auth_data(RP, FLAG_UP | FLAG_UV, 0, Some((b"c", &p384)));
    assert!(matches!(
        verify_registration(&e, &good_cd, &attestation_object("none", vec![], &auth)),
        Err(WebauthnError::Unsupported(_))
    ));
}

#[test]
fn assertions_verify_with_the_kept_key_and_nothing_else() {
    let e = expected(false);
    for key in [TestKey::es256(), TestKey::ed25519(), TestKey::rsa()] {
        let cose = key.cose();
        let auth = auth_data(RP, FLAG_UP, 5, None);
        let cd = client_data("webauthn.get", &e.challenge, ORIGIN);
        let mut signed = auth.clone();
        signed.extend_from_slice(&crate::sha256(&cd));
        let sig = key.sign(&signed);
        let a = verify_assertion(&e, &cose, &cd, &auth, &sig).unwrap();
        assert_eq!(a.sign_count, 5);
        assert!(!a.flags.user_verified);
        // Another key, another message, a registration's client data, UV required: refused.
        assert_eq!(
            verify_assertion(&e, &TestKey::es256().cose(), &cd, &auth, &sig),
            Err(WebauthnError::Signature("assertion"))
        );
        let later = auth_data(RP, FLAG_UP, 6, None);
        assert!(verify_assertion(&e, &cose, &cd, &later, &sig).is_err());
        let create = client_data("webauthn.create", &e.challenge, ORIGIN);
        assert_eq!(
            verify_assertion(&e, &cose, &create, &auth, &sig),
            Err(WebauthnError::Type("webauthn.get"))
        );
        assert_eq!(
            verify_assertion(&expected(true), &cose, &cd, &auth, &sig),
            Err(WebauthnError::UserVerification)
        );
    }
}

#[test]
fn extensions_after_the_key_are_read_past_and_trailing_bytes_refused() {
    let key = TestKey::es256();
    let cose = key.cose();
    let mut auth = auth_data(RP, FLAG_UP | FLAG_ED, 1, Some((b"id", &cose)));
    auth.extend_from_slice(&cbor(&Value::Map(vec![(
        Value::Text("credProtect".into()),
        int(2),
    )])));
    let parsed = parse_authenticator_data(&auth).unwrap();
    assert_eq!(parsed.attested.unwrap().cose_key, cose);
    auth.push(0);
    assert!(parse_authenticator_data(&auth).is_err());
    // Backed up but not backup eligible: malformed.
    let bs = auth_data(RP, FLAG_UP | FLAG_BS, 1, None);
    assert!(parse_authenticator_data(&bs).is_err());
    // A COSE key with a label twice could be read two ways: refused.
    let twice = cbor(&Value::Map(vec![(int(1), int(1)), (int(1), int(2))]));
    assert_eq!(
        PublicKey::from_cose(&twice),
        Err(WebauthnError::Malformed("COSE key"))
    );
    for len in 0..40 {
        assert!(parse_authenticator_data(&auth[..len.min(auth.len())]).is_err() || len >= 37);
    }
}

#[test]
fn the_counter_must_grow_unless_the_authenticator_keeps_none() {
    assert!(counter_ok(0, 0));
    assert!(counter_ok(0, 1));
    assert!(counter_ok(41, 42));
    assert!(!counter_ok(42, 42));
    assert!(!counter_ok(42, 7));
    assert!(!counter_ok(42, 0));
}

#[test]
fn options_and_responses_use_the_level_3_json() {
    let user = UserEntity {
        handle: &user_handle("default", "u-1"),
        name: "alice",
        display_name: "alice",
    };
    let exclude = [Descriptor {
        id: b64(b"old"),
        transports: vec!["usb".into()],
    }];
    let o = creation_options(
        RP,
        "cryptoutil",
        user,
        b"ch",
        Kind::Passkey,
        &exclude,
        60_000,
    );
    assert_eq!(o["user"]["id"].as_str().unwrap().len(), 43);
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["pubKeyCredParams"][0]["alg"], ES256);
    assert_eq!(o["excludeCredentials"][0]["transports"][0], "usb");
    let r = request_options(RP, b"ch", &[], 60_000);
    assert_eq!(r["userVerification"], "required");
    let json = json!({
        "id": b64(b"cred"), "rawId": b64(b"cred"), "type": "public-key",
        "response": {"clientDataJSON": b64(b"{}"), "authenticatorData": b64(b"a"),
                     "signature": b64(b"s"), "userHandle": b64(b"h")},
        "clientExtensionResults": {}
    });
    let a = AuthenticationResponse::from_json(&json.to_string()).unwrap();
    assert_eq!(a.user_handle.as_deref(), Some(&b"h"[..]));
    let mut mismatched = json.clone();
    mismatched["id"] = json!(b64(b"other"));
    assert!(AuthenticationResponse::from_json(&mismatched.to_string()).is_err());
}

/// Ceremonies recorded from real authenticators and browsers, with what they must give.
#[test]
fn recorded_ceremonies_from_real_authenticators() {
    let vectors: Json =
        serde_json::from_str(include_str!("../../testdata/webauthn_vectors.json")).unwrap();
    let d = |v: &Json, k: &str| URL_SAFE_NO_PAD.decode(v[k].as_str().unwrap()).unwrap();
    let mut checked = 0;
    for v in vectors["registrations"].as_array().unwrap() {
        let e = Expected {
            challenge: d(v, "challenge_b64url"),
            rp_id: v["rp_id"].as_str().unwrap().into(),
            origins: vec![v["origin"].as_str().unwrap().into()],
            user_verification: v["require_user_verification"].as_bool().unwrap(),
        };
        let r = verify_registration(
            &e,
            &d(v, "client_data_json_b64url"),
            &d(v, "attestation_object_b64url"),
        );
        let want = v["expect_ok"].as_bool().unwrap();
        assert_eq!(r.is_ok(), want, "{}: {r:?}", v["source"]);
        if let Ok(r) = r {
            assert_eq!(
                r.credential_id,
                d(v, "credential_id_b64url"),
                "{}",
                v["source"]
            );
        }
        checked += 1;
    }
    for v in vectors["authentications"].as_array().unwrap() {
        let e = Expected {
            challenge: d(v, "challenge_b64url"),
            rp_id: v["rp_id"].as_str().unwrap().into(),
            origins: vec![v["origin"].as_str().unwrap().into()],
            user_verification: v["require_user_verification"].as_bool().unwrap(),
        };
        let r = verify_assertion(
            &e,
            &d(v, "credential_public_key_b64url"),
            &d(v, "client_data_json_b64url"),
            &d(v, "authenticator_data_b64url"),
            &d(v, "signature_b64url"),
        );
        let want = v["expect_ok"].as_bool().unwrap();
        assert_eq!(r.is_ok(), want, "{}: {r:?}", v["source"]);
        checked += 1;
    }
    assert!(checked >= 4, "the recorded vectors are read");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_authenticator_data(&bytes);
        let _ = parse_attestation_object(&bytes);
        let _ = PublicKey::from_cose(&bytes);
        let _ = verify_registration(&expected(false), &bytes, &bytes);
    }
}
