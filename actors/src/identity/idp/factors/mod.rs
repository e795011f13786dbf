//! The factors a user signs in with, one module each: a factor checks what the user presents
//! against the record it keeps for them, off the mailbox when the check is slow. Adding a
//! factor adds a module here and its step in the sign-in sequence; it touches no other factor.
//!
//! # Layout
//! - [`password`]: PBKDF2-HMAC-SHA256 password records (amr `pwd`).

pub mod password;
