//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) over HMAC-SHA-1, -256 or -512 with
//! 6 to 8 digits, the `otpauth://` URI authenticator apps read at enrollment, and base32
//! (RFC 4648) for the secret in it.
//!
//! What is pure lives here: the codes, where a presented code falls in a window, the URI. What
//! a factor must remember (the last counter or time step used, so a code is accepted once)
//! is its caller's: [`OtpKey::verify_hotp`] and [`OtpKey::verify_totp`] take it and return
//! the counter or step to remember.

use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

/// Shortest secret accepted: RFC 4226 §4 requires 128 bits (and recommends 160).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted (an HMAC-SHA-512 block).
pub const MAX_SECRET_LEN: usize = 128;
/// Length of the secrets this service makes: 160 bits for SHA-1 (RFC 4226's recommendation),
/// the hash's length for the others.
pub const fn secret_len(alg: OtpAlg) -> usize {
    match alg {
        OtpAlg::Sha1 => 20,
        OtpAlg::Sha256 => 32,
        OtpAlg::Sha512 => 64,
    }
}

/// The HMAC of a one-time password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OtpAlg {
    /// HMAC-SHA-1 (RFC 4226's, what every authenticator app supports).
    Sha1,
    /// HMAC-SHA-256 (RFC 6238).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238).
    Sha512,
}

impl OtpAlg {
    /// The name `otpauth://` URIs and configuration use: `SHA1`, `SHA256`, `SHA512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The algorithm named `name` (case-insensitive, with or without a dash).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            // HMAC-SHA-1 stays approved for HMAC (SP 800-131A Rev. 2), unlike SHA-1 signatures.
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Why an OTP key or code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// The secret is shorter than 128 bits or longer than 1024.
    #[error("an OTP secret has 16 to 128 bytes")]
    SecretLength,
    /// Digits outside 6..=8.
    #[error("an OTP code has 6 to 8 digits")]
    Digits,
    /// Not RFC 4648 base32.
    #[error("not base32")]
    Base32,
}

/// A shared OTP secret with its algorithm and code length.
#[derive(Clone)]
pub struct OtpKey {
    alg: OtpAlg,
    digits: u8,
    key: hmac::Key,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpKey")
            .field("alg", &self.alg)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

/// How a TOTP code is read against the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpClock {
    /// Seconds per time step (30 unless an enrollment said otherwise).
    pub period: u64,
    /// Steps accepted either side of now (clock drift, a code typed as it changed).
    pub skew: u64,
}

impl Default for TotpClock {
    fn default() -> Self {
        Self {
            period: 30,
            skew: 1,
        }
    }
}

impl OtpKey {
    /// `secret` for codes of `digits` digits under `alg`.
    pub fn new(alg: OtpAlg, digits: u8, secret: &[u8]) -> Result<Self, OtpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(OtpError::SecretLength);
        }
        if !(6..=8).contains(&digits) {
            return Err(OtpError::Digits);
        }
        Ok(Self {
            alg,
            digits,
            key: hmac::Key::new(alg.hmac(), secret),
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> OtpAlg {
        self.alg
    }

    /// Digits per code.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// The shared secret (for sealing it, or showing it once at enrollment).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The HOTP value for `counter` (RFC 4226 §5.3: dynamic truncation), zero-padded.
    pub fn hotp(&self, counter: u64) -> Zeroizing<String> {
        let tag = hmac::sign(&self.key, &counter.to_be_bytes());
        let mac = tag.as_ref();
        // The low four bits of the last byte say where the 31-bit value starts.
        let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
        let word = mac
            .get(offset..offset + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_be_bytes)
            & 0x7fff_ffff;
        let modulus = 10u32.pow(u32::from(self.digits));
        Zeroizing::new(format!(
            "{:0width$}",
            word % modulus,
            width = usize::from(self.digits)
        ))
    }

    /// The TOTP value at Unix time `unix` (RFC 6238 §4: HOTP of the time step).
    pub fn totp(&self, unix: u64, period: u64) -> Zeroizing<String> {
        self.hotp(time_step(unix, period))
    }

    /// The counter `code` was made for, looking from `next` (the first counter not yet used)
    /// up to `window` counters ahead; the caller's next counter is the one returned plus
    /// one. Every candidate is compared, in constant time.
    pub fn verify_hotp(&self, code: &str, next: u64, window: u64) -> Option<u64> {
        if !self.well_formed(code) {
            return None;
        }
        let mut found = None;
        for counter in next..=next.saturating_add(window) {
            if self.same(code, counter) && found.is_none() {
                found = Some(counter);
            }
        }
        found
    }

    /// RFC 4226 §7.4 resynchronisation: two consecutive codes, both within the `window`
    /// counters from `next` (wider than sign-in's look-ahead); the counter of the second.
    pub fn resync_hotp(&self, first: &str, second: &str, next: u64, window: u64) -> Option<u64> {
        if !self.well_formed(first) || !self.well_formed(second) || window < 2 {
            return None;
        }
        let mut found = None;
        for counter in next..next.saturating_add(window - 1) {
            let pair = self.same(first, counter) & self.same(second, counter.saturating_add(1));
            if pair && found.is_none() {
                found = Some(counter.saturating_add(1));
            }
        }
        found
    }

    /// The time step `code` was made for at Unix time `now`, within `clock.skew` steps and
    /// after `last_used` (the step of the last code accepted): a code is accepted once, and
    /// none older than the last one. The caller remembers the step returned.
    pub fn verify_totp(
        &self,
        code: &str,
        now: u64,
        clock: TotpClock,
        last_used: Option<u64>,
    ) -> Option<u64> {
        if clock.period == 0 || !self.well_formed(code) {
            return None;
        }
        let step = time_step(now, clock.period);
        let first = step
            .saturating_sub(clock.skew)
            .max(last_used.map_or(0, |l| l.saturating_add(1)));
        let mut found = None;
        for candidate in first..=step.saturating_add(clock.skew) {
            if self.same(code, candidate) && found.is_none() {
                found = Some(candidate);
            }
        }
        found
    }

    /// The `otpauth://` URI an authenticator app reads (Google Authenticator's key URI
    /// format): `kind` with its `counter` (HOTP) or `period` (TOTP), labelled `issuer:account`.
    pub fn uri(&self, kind: OtpKind, issuer: &str, account: &str) -> Zeroizing<String> {
        let (name, extra) = match kind {
            OtpKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
            OtpKind::Totp { period } => ("totp", format!("period={period}")),
        };
        Zeroizing::new(format!(
            "otpauth://{name}/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&{extra}",
            percent_encode(issuer),
            percent_encode(account),
            base32_encode(&self.secret).as_str(),
            percent_encode(issuer),
            self.alg.name(),
            self.digits,
        ))
    }

    fn well_formed(&self, code: &str) -> bool {
        code.len() == usize::from(self.digits) && code.bytes().all(|b| b.is_ascii_digit())
    }

    fn same(&self, code: &str, counter: u64) -> bool {
        constant_time::verify_slices_are_equal(code.as_bytes(), self.hotp(counter).as_bytes())
            .is_ok()
    }
}

/// Which OTP an `otpauth://` URI describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// Counter-based, from `counter`.
    Hotp {
        /// The next counter.
        counter: u64,
    },
    /// Time-based, one code per `period` seconds.
    Totp {
        /// Seconds per step.
        period: u64,
    },
}

/// RFC 6238's T: whole periods since the Unix epoch (T0 = 0).
pub fn time_step(unix: u64, period: u64) -> u64 {
    unix.checked_div(period).unwrap_or(0)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (as `otpauth://` URIs carry secrets).
pub fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

/// The base32 digit of the low five bits of `value`.
fn base32_char(value: u32) -> char {
    let index = usize::try_from(value & 31).unwrap_or(0);
    BASE32.get(index).map_or('A', |&c| char::from(c))
}

/// RFC 4648 base32: case ignored, spaces allowed (as people type secrets), padding only at
/// the end; a length no encoding has, or bits left over that are not zero, is refused.
pub fn base32_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(text.bytes().filter(|c| *c != b' ').collect());
    let end = compact
        .iter()
        .rposition(|c| *c != b'=')
        .map_or(0, |last| last + 1);
    let unpadded = compact.get(..end).unwrap_or_default();
    // 1, 3 or 6 digits past a multiple of 8 encode no whole number of bytes.
    if matches!(unpadded.len() % 8, 1 | 3 | 6) {
        return Err(OtpError::Base32);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(unpadded.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &c in unpadded {
        let value = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(OtpError::Base32),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or(0));
        }
        buffer &= (1 << bits) - 1;
    }
    if buffer != 0 {
        return Err(OtpError::Base32);
    }
    Ok(out)
}

/// Percent-encodes all but RFC 3986's unreserved characters (a URI label or parameter).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4226 appendix D's secret: "12345678901234567890".
    const RFC4226: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let key = OtpKey::new(OtpAlg::Sha1, 6, RFC4226).unwrap();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                key.hotp(counter as u64).as_str(),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        // Appendix B's seeds: the ASCII digits repeated to the hash's length.
        let sha1 = OtpKey::new(OtpAlg::Sha1, 8, b"12345678901234567890").unwrap();
        let sha256 = OtpKey::new(OtpAlg::Sha256, 8, b"12345678901234567890123456789012").unwrap();
        let sha512 = OtpKey::new(
            OtpAlg::Sha512,
            8,
            b"1234567890123456789012345678901234567890123456789012345678901234",
        )
        .unwrap();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, one, two, five) in table {
            assert_eq!(sha1.totp(time, 30).as_str(), one, "SHA1 at {time}");
            assert_eq!(sha256.totp(time, 30).as_str(), two, "SHA256 at {time}");
            assert_eq!(sha512.totp(time, 30).as_str(), five, "SHA512 at {time}");
        }
    }

    #[test]
    fn a_totp_code_is_accepted_once_and_none_older_after_it() {
        let key = OtpKey::new(OtpAlg::Sha1, 8, RFC4226).unwrap();
        let clock = TotpClock::default();
        let now = 1_111_111_109;
        let code = key.totp(now, 30);
        let step = key.verify_totp(&code, now, clock, None).unwrap();
        assert_eq!(step, time_step(now, 30));
        // The same code again, in its window: refused.
        assert_eq!(key.verify_totp(&code, now + 5, clock, Some(step)), None);
        // The previous step's code (within the skew) is older than the one used: refused.
        let older = key.totp(now - 30, 30);
        assert_eq!(key.verify_totp(&older, now, clock, Some(step)), None);
        // The next step's code is accepted.
        let next = key.totp(now + 30, 30);
        assert_eq!(
            key.verify_totp(&next, now + 30, clock, Some(step)),
            Some(step + 1)
        );
        // Outside the skew: refused; wrong length, non-digits: refused.
        assert_eq!(
            key.verify_totp(&key.totp(now + 90, 30), now, clock, None),
            None
        );
        assert_eq!(key.verify_totp(&code[1..], now, clock, None), None);
        assert_eq!(key.verify_totp("abcdefgh", now, clock, None), None);
    }

    #[test]
    fn hotp_looks_ahead_and_resynchronises() {
        let key = OtpKey::new(OtpAlg::Sha1, 6, RFC4226).unwrap();
        // Counter 3's code with the next counter at 0 and a window of 5: found at 3.
        assert_eq!(key.verify_hotp("969429", 0, 5), Some(3));
        // Used codes (below next) and codes beyond the window: refused.
        assert_eq!(key.verify_hotp("969429", 4, 5), None);
        assert_eq!(key.verify_hotp("520489", 0, 5), None);
        // Two consecutive codes far ahead resynchronise; one alone or two apart does not.
        assert_eq!(key.resync_hotp("399871", "520489", 0, 20), Some(9));
        assert_eq!(key.resync_hotp("399871", "162583", 0, 20), None);
    }

    #[test]
    fn keys_and_codes_out_of_bounds_are_refused() {
        assert_eq!(
            OtpKey::new(OtpAlg::Sha1, 6, &[0; 15]).unwrap_err(),
            OtpError::SecretLength
        );
        assert_eq!(
            OtpKey::new(OtpAlg::Sha1, 5, RFC4226).unwrap_err(),
            OtpError::Digits
        );
        assert_eq!(
            OtpKey::new(OtpAlg::Sha1, 9, RFC4226).unwrap_err(),
            OtpError::Digits
        );
    }

    #[test]
    fn base32_round_trips_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()).as_str(), encoded);
            assert_eq!(base32_decode(encoded).unwrap().as_slice(), plain.as_bytes());
        }
        assert_eq!(
            base32_decode("mzxw 6ytb oi======").unwrap().as_slice(),
            b"foobar"
        );
        for bad in ["MZ1", "M", "MZX", "MZXW6Y", "MZ=XQ", "MZ"] {
            // A foreign digit, impossible lengths, padding inside, bits left over ("MZ" is
            // 10 bits: "f" and two more that must be zero, and are not).
            assert_eq!(base32_decode(bad), Err(OtpError::Base32), "{bad}");
        }
    }

    #[test]
    fn the_uri_names_everything_an_app_needs() {
        let key = OtpKey::new(OtpAlg::Sha256, 8, RFC4226).unwrap();
        let uri = key.uri(
            OtpKind::Totp { period: 30 },
            "Example Co",
            "alice@example.test",
        );
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Example%20Co:alice%40example.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co&algorithm=SHA256&digits=8&period=30"
        );
    }
}
