//! What a sign-in factor's check costs by itself: a TOTP code checked in its window (RFC 6238,
//! SHA-1, 6 digits, one step of skew) and a WebAuthn assertion verified (clientDataJSON,
//! authenticator data, signature) for ES256, EdDSA and RS256 credentials, and a Yubico OTP
//! opened (modhex, one AES-128 block, its CRC). Prints the median
//! microseconds per check over the rounds; the goal is well under 1 ms each.
//!
//! `cargo bench -p cryptoutil-protocols --bench factors -- [seconds-per-round] [rounds]`

// Benchmarks measure wall-clock time on purpose.
#![allow(
    clippy::disallowed_types,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    RSA_PKCS1_SHA256,
};
use cryptoutil_protocols::otp::{OtpAlg, OtpKey, TotpClock};
use cryptoutil_protocols::webauthn::{self, b64, Expected, PublicKey};
use cryptoutil_protocols::yubico::{Otp, Token, YubicoKey};

fn micros_per_op(seconds: f64, mut op: impl FnMut()) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < deadline {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A WebAuthn assertion by a credential with public key `key`, signed by `sign`.
fn assertion(
    key: PublicKey,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut auth = cryptoutil_protocols::sha256(b"localhost").to_vec();
    auth.push(0x05);
    auth.extend_from_slice(&7u32.to_be_bytes());
    let cd = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://localhost:8443"}}"#,
        b64(b"challenge-0123456789abcdef-0123")
    )
    .into_bytes();
    let mut signed = auth.clone();
    signed.extend_from_slice(&cryptoutil_protocols::sha256(&cd));
    let sig = sign(&signed);
    (key.to_cose().unwrap(), cd, auth, sig)
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rng = SystemRandom::new();

    let key = OtpKey::new(OtpAlg::Sha1, 6, b"12345678901234567890").unwrap();
    let now = 1_800_000_000;
    let code = key.totp(now, 30);
    let clock = TotpClock {
        period: 30,
        skew: 1,
    };

    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let es256 = assertion(PublicKey::Es256(ec.public_key().as_ref().to_vec()), |m| {
        ec.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    let ed = Ed25519KeyPair::generate().unwrap();
    let eddsa = assertion(PublicKey::Ed25519(ed.public_key().as_ref().to_vec()), |m| {
        ed.sign(m).as_ref().to_vec()
    });
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = rsa.public_key().as_ref().to_vec();
    let (n, e) = rsa_components(&der);
    let rs256 = assertion(PublicKey::Rs256 { n, e }, |m| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
        sig
    });
    let expected = Expected {
        challenge: b"challenge-0123456789abcdef-0123".to_vec(),
        rp_id: "localhost".into(),
        origins: vec!["https://localhost:8443".into()],
        user_verification: false,
    };

    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("TOTP verify (SHA-1, 6 digits, skew 1)", Vec::new()),
        ("WebAuthn assertion verify, ES256", Vec::new()),
        ("WebAuthn assertion verify, EdDSA", Vec::new()),
        ("WebAuthn assertion verify, RS256 2048", Vec::new()),
        ("Yubico OTP open (modhex, AES-128, CRC)", Vec::new()),
    ];
    let yubikey = YubicoKey::from_hex("c4422890653076cde73d449b191b416a").unwrap();
    let typed = yubikey
        .seal(
            "vvcccjgjgkhc",
            &Token {
                private_id: [0x33, 0xc6, 0x9e, 0x7f, 0x24, 0x9e],
                usage: 7,
                timestamp: 0x1234,
                session: 3,
                random: 9,
            },
        )
        .unwrap();
    for _ in 0..rounds {
        results[0].1.push(micros_per_op(secs, || {
            black_box(key.verify_totp(black_box(&code), now, clock, None)).unwrap();
        }));
        results[4].1.push(micros_per_op(secs, || {
            let otp = Otp::parse(black_box(&typed)).unwrap();
            black_box(yubikey.open(&otp)).unwrap();
        }));
        for (slot, (cose, cd, auth, sig)) in [(1, &es256), (2, &eddsa), (3, &rs256)] {
            results[slot].1.push(micros_per_op(secs, || {
                webauthn::verify_assertion(&expected, cose, cd, auth, sig).unwrap();
            }));
        }
    }
    for (name, v) in results {
        println!(
            "{name:<40} {:>8.1} µs per check (median of {rounds})",
            median(v)
        );
    }
}

/// Modulus and exponent of a DER RSAPublicKey (two INTEGERs in a SEQUENCE, long-form lengths).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn item(d: &[u8]) -> (&[u8], &[u8]) {
        let (len, skip) = match d[1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x81 => (usize::from(d[2]), 3),
            0x82 => (usize::from(d[2]) << 8 | usize::from(d[3]), 4),
            _ => panic!("length"),
        };
        (&d[skip..skip + len], &d[skip + len..])
    }
    let (seq, _) = item(der);
    let (n, rest) = item(seq);
    let (e, _) = item(rest);
    let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect();
    (strip(n), strip(e))
}
