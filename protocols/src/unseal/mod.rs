//! M-of-N unseal shares: Shamir's secret sharing of the 256-bit barrier unseal key over
//! GF(2^8), one polynomial per key byte.
//!
//! A share's text form is one line:
//! `cryptoutil-unseal-v1.<set id, 16 hex>.<threshold>.<index>.<share, base64url>.<check, base64url>`.
//! The set id ties shares of one split together, so shares of two sets are told apart by name.
//! The check value (HMAC-SHA256 of the set id under the unseal key, 16 bytes) lets a holder of
//! any M shares prove the key they rebuilt is the one that was split: a wrong share yields a
//! different key and the check fails, before any ciphertext is tried.

mod gf256;
mod share;

use aws_lc_rs::{constant_time, hmac, rand};
use zeroize::Zeroizing;

pub use share::{ShareError, UnsealShare};

/// Length of the unseal key and of each share value.
pub const KEY_LEN: usize = 32;
/// Length of the key check value carried by each share.
pub const CHECK_LEN: usize = 16;
/// Length of a set id.
pub const SET_ID_LEN: usize = 8;

/// The 256-bit key the shares reconstruct. Zeroized on drop, `<redacted>` in Debug.
pub struct UnsealKey(Zeroizing<[u8; KEY_LEN]>);

impl UnsealKey {
    /// The key bytes, for wrapping the barrier's root key.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealKey(<redacted>)")
    }
}

/// Generates a fresh random unseal key and splits it into `total` shares, any `threshold` of
/// which rebuild it. 1 <= threshold <= total <= 255.
pub fn generate(threshold: u8, total: u8) -> Result<(UnsealKey, Vec<UnsealShare>), ShareError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(key.as_mut()).map_err(|_| ShareError::Random)?;
    let mut set_id = [0u8; SET_ID_LEN];
    rand::fill(&mut set_id).map_err(|_| ShareError::Random)?;
    let shares = split(&key, set_id, threshold, total)?;
    Ok((UnsealKey(key), shares))
}

/// Splits `key` into `total` shares with threshold `threshold`.
pub fn split(
    key: &[u8; KEY_LEN],
    set_id: [u8; SET_ID_LEN],
    threshold: u8,
    total: u8,
) -> Result<Vec<UnsealShare>, ShareError> {
    if threshold == 0 || total == 0 || threshold > total {
        return Err(ShareError::BadThreshold { threshold, total });
    }
    let check = check_value(key, &set_id);
    // coefficients[byte][k] for k in 1..threshold; the constant term is the key byte itself.
    let degree = usize::from(threshold) - 1;
    let mut coefficients = Zeroizing::new(vec![0u8; KEY_LEN * degree]);
    rand::fill(&mut coefficients).map_err(|_| ShareError::Random)?;
    let mut shares = Vec::with_capacity(usize::from(total));
    for index in 1..=total {
        let mut value = Zeroizing::new([0u8; KEY_LEN]);
        for (byte, (out, secret)) in value.iter_mut().zip(key.iter()).enumerate() {
            let coeffs = coefficients
                .get(byte * degree..(byte + 1) * degree)
                .unwrap_or(&[]);
            *out = eval(*secret, coeffs, index);
        }
        shares.push(UnsealShare::new(set_id, threshold, index, value, check));
    }
    Ok(shares)
}

/// Rebuilds the unseal key from at least `threshold` shares of one set and verifies it against
/// the set's check value. With more shares than the threshold, a failed check names the shares
/// that agree with no other subset, so an operator knows which file to replace.
pub fn combine(shares: &[UnsealShare]) -> Result<UnsealKey, ShareError> {
    let first = shares
        .first()
        .ok_or(ShareError::NotEnough { have: 0, need: 1 })?;
    let (set_id, threshold, check) = (first.set_id(), first.threshold(), *first.check());
    for s in shares {
        if s.set_id() != set_id {
            return Err(ShareError::MixedSets { index: s.index() });
        }
        if s.threshold() != threshold || s.check() != &check {
            return Err(ShareError::Inconsistent { index: s.index() });
        }
    }
    let mut seen = [false; 256];
    for s in shares {
        let slot = seen
            .get_mut(usize::from(s.index()))
            .ok_or(ShareError::Malformed {
                reason: "index out of range",
            })?;
        if *slot {
            return Err(ShareError::DuplicateIndex { index: s.index() });
        }
        *slot = true;
    }
    let need = usize::from(threshold);
    if shares.len() < need {
        return Err(ShareError::NotEnough {
            have: shares.len(),
            need,
        });
    }
    let chosen: Vec<&UnsealShare> = shares.iter().take(need).collect();
    let key = interpolate(&chosen);
    if verify(&key, &set_id, &check) {
        return Ok(UnsealKey(key));
    }
    Err(ShareError::WrongShare {
        suspects: suspects(shares, need, &set_id, &check),
    })
}

/// The shares that are in no subset of size `need` whose key passes the check. Empty when no
/// subset passes (every share may be wrong, or there are exactly `need` shares).
fn suspects(shares: &[UnsealShare], need: usize, set_id: &[u8; 8], check: &[u8; 16]) -> Vec<u8> {
    // Bounded: at most C(12, 6) = 924 subsets; past 12 shares we do not search.
    if shares.len() == need || shares.len() > 12 {
        return Vec::new();
    }
    let mut trusted = [false; 256];
    let mut any = false;
    for mask in 0u32..(1u32 << shares.len()) {
        if mask.count_ones() as usize != need {
            continue;
        }
        let subset: Vec<&UnsealShare> = shares
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, s)| s)
            .collect();
        if verify(&interpolate(&subset), set_id, check) {
            any = true;
            for s in subset {
                if let Some(t) = trusted.get_mut(usize::from(s.index())) {
                    *t = true;
                }
            }
        }
    }
    if !any {
        return Vec::new();
    }
    shares
        .iter()
        .map(UnsealShare::index)
        .filter(|i| !trusted.get(usize::from(*i)).copied().unwrap_or(false))
        .collect()
}

/// Lagrange interpolation at x = 0 over the shares' points, byte by byte.
fn interpolate(shares: &[&UnsealShare]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for (j, sj) in shares.iter().enumerate() {
        // basis_j(0) = prod_{m != j} x_m / (x_m - x_j); subtraction is xor in GF(2^8).
        let mut basis = 1u8;
        for (m, sm) in shares.iter().enumerate() {
            if m != j {
                let denominator = sm.index() ^ sj.index();
                basis = gf256::mul(basis, gf256::mul(sm.index(), gf256::inv(denominator)));
            }
        }
        for (out, y) in key.iter_mut().zip(sj.value().iter()) {
            *out ^= gf256::mul(basis, *y);
        }
    }
    key
}

/// Horner evaluation of secret + c1 x + c2 x^2 + ... at x.
fn eval(secret: u8, coefficients: &[u8], x: u8) -> u8 {
    let mut acc = 0u8;
    for c in coefficients.iter().rev() {
        acc = gf256::mul(acc, x) ^ c;
    }
    gf256::mul(acc, x) ^ secret
}

fn check_value(key: &[u8; KEY_LEN], set_id: &[u8; SET_ID_LEN]) -> [u8; CHECK_LEN] {
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&mac_key);
    ctx.update(b"cryptoutil-unseal-check-v1");
    ctx.update(set_id);
    let tag = ctx.sign();
    let mut out = [0u8; CHECK_LEN];
    for (o, t) in out.iter_mut().zip(tag.as_ref()) {
        *o = *t;
    }
    out
}

fn verify(key: &[u8; KEY_LEN], set_id: &[u8; SET_ID_LEN], check: &[u8; CHECK_LEN]) -> bool {
    constant_time::verify_slices_are_equal(&check_value(key, set_id), check).is_ok()
}

#[cfg(test)]
mod tests;
