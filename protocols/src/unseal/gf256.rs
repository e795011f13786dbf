//! Arithmetic in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, branch-free so the
//! time taken does not depend on share bytes.

/// Carry-less multiplication reduced modulo 0x11b; eight fixed rounds, no secret-dependent branch.
pub(super) fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse as a^254 (Fermat); inv(0) is 0, which callers never ask for.
pub(super) fn inv(a: u8) -> u8 {
    // a^254 = a^(2+4+8+16+32+64+128)
    let mut result = 1u8;
    let mut square = a;
    for _ in 0..7 {
        square = mul(square, square);
        result = mul(result, square);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_products() {
        // FIPS 197 §4.2: {57} • {83} = {c1}, {57} • {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
    }

    #[test]
    fn every_nonzero_element_has_an_inverse() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "a = {a}");
        }
    }
}
