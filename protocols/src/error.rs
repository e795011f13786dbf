//! The error enum of `cryptoutil-protocols`.

/// Everything that can go wrong in pure protocol code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unseal share could not be parsed, or a set of shares could not be combined.
    #[error(transparent)]
    Unseal(#[from] crate::unseal::ShareError),
    /// A duration string is not of the form `<number><unit>`.
    #[error("invalid duration {input:?}: expected a number followed by ms, s, m, h or d")]
    Duration {
        /// What was given.
        input: String,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate {what}: {reason}")]
    Certificate {
        /// Which certificate or key.
        what: &'static str,
        /// The library's explanation.
        reason: String,
    },
    /// A JOSE object or key is unusable.
    #[error(transparent)]
    Jose(#[from] crate::jose::JoseError),
    /// The platform random generator failed.
    #[error("random generator failure")]
    Random,
}
