//! Whether the crypto module runs in FIPS 140-3 mode.

/// True when aws-lc-rs was built against the FIPS 140-3 validated AWS-LC module and its
/// power-on self tests passed. The `fips` cargo feature selects that module.
pub fn enabled() -> bool {
    aws_lc_rs::try_fips_mode().is_ok()
}

/// True when the crate was compiled with the `fips` feature.
pub const COMPILED_FOR_FIPS: bool = cfg!(feature = "fips");
