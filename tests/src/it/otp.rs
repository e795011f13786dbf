//! One-time passwords judged by two implementations no one here wrote: `oathtool` (Debian's
//! liboath) and PyPI `pyotp`. Each makes codes for the same secrets, times and counters as
//! `protocols::otp` (SHA-1, SHA-256 and SHA-512; 6, 7 and 8 digits), our verifier accepts
//! theirs, and pyotp reads our `otpauth://` URI back to the same key. Neither may be missing:
//! the test fails, not skips.

use std::process::Command;

use cryptoutil_protocols::otp::{base32_encode, time_step, OtpAlg, OtpKey, OtpKind, TotpClock};

use super::jose_interop::peer;

/// A secret of `len` bytes that differs per `seed`.
fn secret(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = u8::try_from(i % 256).unwrap();
            i.wrapping_mul(73).wrapping_add(seed.wrapping_mul(151)) ^ 0x5a
        })
        .collect()
}

/// Runs `oathtool` with `args`: the lines it prints.
pub(super) fn oathtool(args: &[&str]) -> Vec<String> {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool (Debian package oathtool; .ci/run installs it)");
    assert!(
        out.status.success(),
        "oathtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

const CASES: [(OtpAlg, u8, usize); 6] = [
    (OtpAlg::Sha1, 6, 20),
    (OtpAlg::Sha1, 8, 16),
    (OtpAlg::Sha256, 6, 32),
    (OtpAlg::Sha256, 7, 40),
    (OtpAlg::Sha512, 8, 64),
    (OtpAlg::Sha512, 6, 20),
];

/// Times (Unix seconds) each case is checked at: RFC 6238's and a few odd ones.
const TIMES: [u64; 5] = [
    59,
    1_111_111_109,
    1_234_567_890,
    1_700_000_123,
    2_000_000_000,
];

#[test]
fn oathtool_makes_the_codes_we_make_and_we_accept_its_codes() {
    for (seed, (alg, digits, len)) in (1u8..).zip(CASES) {
        let secret = secret(seed, len);
        let key = OtpKey::new(alg, digits, &secret).unwrap();
        let b32 = base32_encode(&secret);
        let digits_arg = format!("--digits={digits}");
        let mode = format!("--totp={}", alg.name());
        for time in TIMES {
            let now = format!("--now=@{time}");
            // Its code for that time.
            let theirs = oathtool(&[
                &mode,
                &digits_arg,
                "--base32",
                &now,
                "--time-step-size=30s",
                b32.as_str(),
            ]);
            assert_eq!(theirs.len(), 1, "{theirs:?}");
            assert_eq!(theirs[0], *key.totp(time, 30), "{alg:?}/{digits} at {time}");
            assert_eq!(
                key.verify_totp(&theirs[0], time, TotpClock::default(), None),
                Some(time_step(time, 30))
            );
        }
        // HOTP: counters 0.. 9 in one call (`--window=9` prints ten from the counter).
        let theirs = oathtool(&[
            "--hotp",
            &digits_arg,
            "--base32",
            "--counter=0",
            "--window=9",
            b32.as_str(),
        ]);
        assert_eq!(theirs.len(), 10);
        // oathtool's HOTP is HMAC-SHA-1 only: compared with our SHA-1 key of the secret.
        let sha1 = OtpKey::new(OtpAlg::Sha1, digits, &secret).unwrap();
        for (counter, code) in (0u64..).zip(&theirs) {
            assert_eq!(
                *code,
                *sha1.hotp(counter),
                "HOTP {counter} ({digits} digits)"
            );
        }
        assert_eq!(sha1.verify_hotp(&theirs[7], 5, 3), Some(7));
        assert_eq!(sha1.verify_hotp(&theirs[4], 5, 3), None, "used counter");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pyotp_makes_the_codes_we_make_and_reads_our_uri() {
    let mut lines = Vec::new();
    for (seed, (alg, digits, len)) in (1u8..).zip(CASES) {
        let secret = secret(seed.wrapping_add(100), len);
        let key = OtpKey::new(alg, digits, &secret).unwrap();
        let totp = key.uri(
            OtpKind::Totp { period: 30 },
            "cryptoutil test",
            "alice@example.test",
        );
        let hotp = key.uri(OtpKind::Hotp { counter: 3 }, "cryptoutil", "bob");
        let ours_totp: Vec<String> = TIMES.iter().map(|&t| key.totp(t, 30).to_string()).collect();
        let ours_hotp: Vec<String> = (3..8).map(|c| key.hotp(c).to_string()).collect();
        lines.push(serde_json::json!({
            "totp_uri": totp.as_str(),
            "hotp_uri": hotp.as_str(),
            "times": TIMES,
            "totp": ours_totp,
            "hotp": ours_hotp,
            "issuer": "cryptoutil test",
            "name": "alice@example.test",
        }));
    }
    // pyotp parses each URI (secret, algorithm, digits, period or counter, issuer, name) and
    // makes the codes; it prints one line per case with its codes, compared here.
    let code = r#"
import json, sys, pyotp
for case in json.loads(sys.argv[1]):
    t = pyotp.parse_uri(case["totp_uri"])
    assert isinstance(t, pyotp.TOTP), type(t)
    assert t.issuer == case["issuer"] and t.name == case["name"], (t.issuer, t.name)
    h = pyotp.parse_uri(case["hotp_uri"])
    assert isinstance(h, pyotp.HOTP) and h.initial_count == 3, h
    print(json.dumps({
        "totp": [t.at(x) for x in case["times"]],
        "hotp": [h.at(c) for c in range(0, 5)],
        "now": t.now(),
    }))
"#;
    let input = serde_json::Value::Array(lines.clone()).to_string();
    let out = peer("-c", vec![code.to_owned(), input]).await;
    let out = String::from_utf8(out).unwrap();
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), CASES.len(), "{out}");
    for ((theirs, ours), (seed, (alg, digits, len))) in
        answers.iter().zip(&lines).zip((1u8..).zip(CASES))
    {
        assert_eq!(theirs["totp"], ours["totp"], "TOTP {alg:?}/{digits}");
        // pyotp's HOTP counts from the URI's counter (3): our 3..8.
        assert_eq!(theirs["hotp"], ours["hotp"], "HOTP {alg:?}/{digits}");
        // Its code for its now: accepted by ours (the clock read a moment apart: skew 1).
        let key = OtpKey::new(alg, digits, &secret(seed.wrapping_add(100), len)).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            key.verify_totp(
                theirs["now"].as_str().unwrap(),
                now,
                TotpClock::default(),
                None
            )
            .is_some(),
            "pyotp's current code for {alg:?}/{digits}"
        );
    }
}
