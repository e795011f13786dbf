//! JOSE library throughput beside raw aws-lc-rs doing the same primitive, in one run, rounds
//! alternated so machine noise hits both sides alike. Prints ops/s and our/raw ratio.
//!
//! `cargo bench -p cryptoutil-protocols --bench jose -- [seconds-per-round] [rounds]`

// Benchmarks measure wall-clock time on purpose.
#![allow(
    clippy::disallowed_types,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::jwk::KeyMaterial;
use cryptoutil_protocols::jose::{jws, Jwk, JwsAlg};
use serde_json::Map;

fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < deadline {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn compare(name: &str, secs: f64, rounds: usize, mut ours: impl FnMut(), mut raw: impl FnMut()) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(rate(secs, &mut ours));
        b.push(rate(secs, &mut raw));
    }
    let (a, b) = (median(a), median(b));
    println!(
        "{name:<34} ours {a:>12.0} ops/s   raw aws-lc-rs {b:>12.0} ops/s   ratio {:.2}",
        a / b
    );
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rng = SystemRandom::new();
    let payload = [7u8; 32];

    // ES256 sign and verify: ours produces/consumes a whole compact JWS; raw signs the same
    // signing input.
    let es = Jwk::generate(JwsAlg::ES256).unwrap();
    let private: serde_json::Value = serde_json::from_str(&es.to_private_value().unwrap()).unwrap();
    let d = cryptoutil_protocols::jose::b64::decode(private["d"].as_str().unwrap(), "d").unwrap();
    let x = cryptoutil_protocols::jose::b64::decode(private["x"].as_str().unwrap(), "x").unwrap();
    let y = cryptoutil_protocols::jose::b64::decode(private["y"].as_str().unwrap(), "y").unwrap();
    let point = [&[4u8][..], &x, &y].concat();
    let raw_es = EcdsaKeyPair::from_private_key_and_public_key(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &d,
        &point,
    )
    .unwrap();
    let token = jws::sign_compact(&es, &payload, &Map::new()).unwrap();
    let input = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let sig = raw_es.sign(&rng, &input).unwrap();
    let public = es.public().unwrap();
    let raw_pub = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        raw_es.public_key().as_ref().to_vec(),
    );
    compare(
        "ES256 sign (compact JWS)",
        secs,
        rounds,
        || {
            black_box(jws::sign_compact(&es, &payload, &Map::new()).unwrap());
        },
        || {
            black_box(raw_es.sign(&rng, &input).unwrap());
        },
    );
    compare(
        "ES256 verify (compact JWS)",
        secs,
        rounds,
        || {
            black_box(jws::verify_compact(&token, &public, &[JwsAlg::ES256]).unwrap());
        },
        || {
            raw_pub.verify(&input, sig.as_ref()).unwrap();
        },
    );

    // A256GCM dir encryption of 1 KiB: ours makes a whole compact JWE; raw seals 1 KiB.
    let dir = Jwk::generate_jwe(KeyAlg::Dir, ContentAlg::A256GCM).unwrap();
    let dir_k = serde_json::from_str::<serde_json::Value>(&dir.to_private_value().unwrap())
        .unwrap()["k"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir_k = cryptoutil_protocols::jose::b64::decode(&dir_k, "k").unwrap();
    let raw_gcm = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dir_k).unwrap());
    let kib = vec![0x5au8; 1024];
    // Raw: seal 1 KiB under a fresh random IV; returns IV, ciphertext and tag.
    let raw_seal = |aad: &[u8]| {
        let mut buf = kib.clone();
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).unwrap();
        let tag = raw_gcm
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .unwrap();
        (nonce, buf, tag)
    };
    compare(
        "A256GCM dir encrypt 1 KiB (JWE)",
        secs,
        rounds,
        || {
            black_box(jwe::encrypt_compact(&dir, ContentAlg::A256GCM, &kib, &Map::new()).unwrap());
        },
        || {
            let _sealed = black_box(raw_seal(b"hdr"));
        },
    );

    // The same, against raw aws-lc-rs plus the least serialization a compact JWE needs (a fixed
    // header string, base64url of every part): what is left is our library's own overhead.
    let fixed_header = cryptoutil_protocols::jose::b64::encode(
        br#"{"alg":"dir","enc":"A256GCM","kid":"0123456789abcdef0123456789abcdef0123456789a"}"#,
    );
    compare(
        "A256GCM dir 1 KiB vs raw+serialize",
        secs,
        rounds,
        || {
            black_box(jwe::encrypt_compact(&dir, ContentAlg::A256GCM, &kib, &Map::new()).unwrap());
        },
        || {
            let (nonce, buf, tag) = raw_seal(fixed_header.as_bytes());
            let mut out = String::with_capacity(fixed_header.len() + 1500);
            out.push_str(&fixed_header);
            out.push_str("..");
            for part in [&nonce[..], &buf, tag.as_ref()] {
                cryptoutil_protocols::jose::b64::encode_into(part, &mut out);
                out.push('.');
            }
            out.pop();
            black_box(out);
        },
    );

    // RSA-OAEP-256 decrypt: ours decrypts a whole compact JWE (A256GCM, 32-byte payload); raw
    // unwraps the same 32-byte CEK.
    let pkcs8 = {
        use aws_lc_rs::encoding::AsDer as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        pair.as_der().unwrap().as_ref().to_vec()
    };
    let rsa = Jwk::from_material(KeyMaterial::rsa_from_pkcs8(&pkcs8).unwrap())
        .pinned_jwe(KeyAlg::RsaOaep256)
        .unwrap();
    let jwe_token = jwe::encrypt_compact(
        &rsa.public().unwrap(),
        ContentAlg::A256GCM,
        &payload,
        &Map::new(),
    )
    .unwrap();
    let encrypted_key =
        cryptoutil_protocols::jose::b64::decode(jwe_token.split('.').nth(1).unwrap(), "ek")
            .unwrap();
    let raw_rsa =
        OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap()).unwrap();
    compare(
        "RSA-OAEP-256 decrypt (JWE)",
        secs,
        rounds,
        || {
            black_box(
                jwe::decrypt_compact(
                    &jwe_token,
                    &rsa,
                    &[KeyAlg::RsaOaep256],
                    &[ContentAlg::A256GCM],
                )
                .unwrap(),
            );
        },
        || {
            let mut out = vec![0u8; raw_rsa.min_output_size()];
            black_box(
                raw_rsa
                    .decrypt(&OAEP_SHA256_MGF1SHA256, &encrypted_key, &mut out, None)
                    .unwrap()
                    .len(),
            );
        },
    );
}
