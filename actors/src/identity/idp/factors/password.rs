//! The password factor (RFC 8176 amr `pwd`): the user's PBKDF2-HMAC-SHA256 record (600,000
//! iterations), compared in constant time. Unknown users are checked against a dummy record,
//! so a wrong name costs the same time as a wrong password.

use cryptoutil_protocols::oauth;
use zeroize::Zeroizing;

use crate::error::Error;

/// Blocking (one PBKDF2 run): a record of a random password, that nothing presented matches.
pub fn dummy_record() -> Result<String, Error> {
    let internal = |_| Error::Internal {
        what: "random generator",
    };
    let random = oauth::random_token(18).map_err(internal)?;
    oauth::hash_password(&random, oauth::PASSWORD_ITERATIONS).map_err(internal)
}

/// Blocking (one PBKDF2 run): whether `presented` is the password `record` was made from.
pub fn matches(presented: &Zeroizing<String>, record: &str) -> bool {
    oauth::password_matches(presented, record)
}
