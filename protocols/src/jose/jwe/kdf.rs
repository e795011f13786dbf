//! Concat KDF (NIST SP 800-56A §5.8.1) with SHA-256, as RFC 7518 §4.6.2 uses it for ECDH-ES.

use aws_lc_rs::digest;
use zeroize::Zeroizing;

fn with_len(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Derives `len` bytes from the shared secret `z` for `algorithm_id` with PartyUInfo `apu` and
/// PartyVInfo `apv`.
pub(crate) fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut other = Vec::with_capacity(algorithm_id.len() + apu.len() + apv.len() + 16);
    with_len(&mut other, algorithm_id.as_bytes());
    with_len(&mut other, apu);
    with_len(&mut other, apv);
    other.extend_from_slice(&((len * 8) as u32).to_be_bytes());
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut counter = 1u32;
    while out.len() < len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(&other);
        out.extend_from_slice(ctx.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::b64;

    /// RFC 7518 Appendix C: ECDH-ES with A128GCM, apu "Alice", apv "Bob".
    #[test]
    fn rfc7518_appendix_c() {
        let z: [u8; 32] = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16);
        assert_eq!(b64::encode(&key), "VqqN6vgjbSBcIijNcacQGg");
    }
}
