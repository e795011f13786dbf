//! Pure formats and crypto for cryptoutil: no tokio, axum, redb, ractor, sockets or files.
//!
//! CI fails if `cargo tree -p cryptoutil-protocols -e normal` shows tokio, axum, redb or ractor.
//!
//! # Layout
//! - [`unseal`]: M-of-N unseal shares (Shamir over GF(2^8)) and their text encoding.
//! - [`ca`]: the CA product's certificate work: CA keys, roots and intermediates, PKCS#10
//!   requests checked, certificates issued under profiles.
//! - [`pki`]: the dynamic TLS PKI: a private root, an intermediate and leaf certificates.
//! - [`acme`]: RFC 8555 requests (flattened JWS, external account binding), problems,
//!   identifiers, key authorizations.
//! - [`cmp`]: CMP (RFC 4210/9480/9483) messages, CRMF requests, MAC and signature
//!   protection.
//! - [`est`]: RFC 7030 enrollment messages (the request body, the certs-only answer).
//! - [`duration`]: human durations in configuration (`250ms`, `5s`, `2m`, `1h`, `7d`).
//! - [`jose`]: JWK, JWK Set, JWS, JWE and JWT on aws-lc-rs.
//! - [`oauth`]: OAuth 2.1 pieces without I/O: client secrets, password hashes, client
//!   authentication headers, scopes, token endpoint errors.
//! - [`otp`]: HOTP (RFC 4226) and TOTP (RFC 6238) codes, `otpauth://` URIs, base32.
//! - [`webauthn`]: WebAuthn relying-party checks: registrations (`none`, `packed`),
//!   assertions, COSE keys, the options and responses' JSON.
//! - [`yubico`]: Yubico OTP validated locally: modhex, the AES-128 block, its CRC and
//!   counters.
//! - [`mail`]: addresses, RFC 5322 messages, SMTP dot-stuffing and replies (no I/O).
//! - [`ids`]: identifiers from outside (tenant, elastic key id, client id, kid), parsed once.
//! - [`fips`]: whether the crypto module runs in FIPS 140-3 mode.
//! - [`secret`]: `Secret`, a configuration string that never prints and is zeroized.
//! - [`tls`]: the one TLS policy (TLS 1.3, FIPS-approved suites and groups) for every socket.
//! - [`error`]: the crate's error enum.
#![warn(missing_docs)]

pub mod acme;
pub mod ca;
pub mod cmp;
pub mod cms;
mod der;
pub mod dns;
pub mod dpop;
pub mod duration;
pub mod error;
pub mod est;
pub mod fips;
pub mod ids;
pub mod jose;
pub mod mail;
pub mod oauth;
pub mod otp;
pub mod pki;
pub mod scep;
pub mod secret;
pub mod tls;
pub mod unseal;
pub mod webauthn;
pub mod yubico;

pub use error::Error;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The civil date (year, month 1-12, day 1-31) of day `days` since 1970-01-01 (Howard
/// Hinnant's days-to-civil, in unsigned arithmetic: shifted to the era starting 0000-03-01).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Lowercase hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
