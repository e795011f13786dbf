//! The factors a user signs in with, one module each. The password is checked against the
//! user's record at identity-authz; every other factor keeps its own record in identity-idp's
//! store ([`FactorRecord`], sealed by the barrier) and plugs in through [`Factor`]: it makes
//! a record's secret state at enrollment and checks what the user presents against it,
//! returning the state to keep (a code counts once). Adding a factor adds a module here and
//! one line in [`Registry::standard`]; it touches no other factor.
//!
//! # Layout
//! - [`password`]: PBKDF2-HMAC-SHA256 password records (amr `pwd`).
//! - [`totp`]: time-based one-time passwords (RFC 6238, amr `otp`).
//! - [`hotp`]: counter-based one-time passwords (RFC 4226, amr `otp`).
//! - [`recovery`]: ten one-time recovery codes, stored hashed (amr `otp`).
//! - [`webauthn`]: WebAuthn security keys and passkeys (amr `hwk` or `swk`).
//! - [`yubico`]: Yubico OTP validated against an imported key (amr `otp`).
//! - [`magic_link`]: a single-use sign-in link sent by mail (amr `otp`).
//! - [`certificate`]: a client certificate presented in the TLS handshake (amr `sc`).

pub mod certificate;
pub mod hotp;
pub mod magic_link;
pub mod password;
pub mod recovery;
pub mod totp;
pub mod webauthn;
pub mod yubico;

use std::sync::Arc;

use cryptoutil_protocols::webauthn::Expected;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;

/// A factor's type, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// The password (identity-authz's user record).
    Password,
    /// TOTP (RFC 6238).
    Totp,
    /// HOTP (RFC 4226).
    Hotp,
    /// WebAuthn security keys and passkeys.
    Webauthn,
    /// Yubico OTP.
    YubicoOtp,
    /// A link sent by mail.
    MagicLink,
    /// A client certificate.
    Certificate,
    /// One-time recovery codes.
    RecoveryCodes,
}

impl FactorKind {
    /// The API's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::Webauthn => "webauthn",
            Self::YubicoOtp => "yubico_otp",
            Self::MagicLink => "magic_link",
            Self::Certificate => "certificate",
            Self::RecoveryCodes => "recovery_codes",
        }
    }

    /// The kind the API names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Password,
            Self::Totp,
            Self::Hotp,
            Self::Webauthn,
            Self::YubicoOtp,
            Self::MagicLink,
            Self::Certificate,
            Self::RecoveryCodes,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One enrolled factor of one user, sealed in identity-idp's store under
/// `<tenant>/<user id>/<factor id>`. `state` is the factor's own (its secret and what makes a
/// code count once), zeroized when the record is dropped.
#[derive(Serialize, Deserialize)]
pub struct FactorRecord {
    /// Its id (`f-...`).
    pub id: String,
    /// The user's tenant.
    pub tenant: String,
    /// The user's `sub`.
    pub user_id: String,
    /// Its type.
    pub kind: FactorKind,
    /// The name its owner gave it.
    pub name: String,
    /// When it was enrolled (Unix seconds).
    pub created_at: u64,
    /// The factor's state (JSON of its own), secret.
    pub state: String,
    /// How many checks have changed `state` (counted only where replicas share the store:
    /// each change creates a claim of its revision, so two replicas never both spend one
    /// state).
    #[serde(default)]
    pub revision: u64,
}

impl Drop for FactorRecord {
    fn drop(&mut self) {
        self.state.zeroize();
    }
}

impl FactorRecord {
    /// What the API shows of it (never its state).
    pub fn info(&self) -> FactorInfo {
        FactorInfo {
            id: self.id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            created_at: self.created_at,
        }
    }

    /// Its store key.
    pub fn key(&self) -> String {
        record_key(&self.tenant, &self.user_id, &self.id)
    }
}

/// The store key of factor `id` of `user_id` in `tenant`.
pub fn record_key(tenant: &str, user_id: &str, id: &str) -> String {
    format!("{tenant}/{user_id}/{id}")
}

/// A factor as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorInfo {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FactorKind,
    /// Its name.
    pub name: String,
    /// When it was enrolled.
    pub created_at: u64,
}

/// What an enrollment makes: the state to seal, and what the user is shown once (an
/// `otpauth://` URI, the secret) and never again.
pub struct Enrolled {
    /// The factor's state.
    pub state: Zeroizing<String>,
    /// Shown once.
    pub shown: Map<String, Value>,
}

/// Who a factor is enrolled for, as an authenticator app labels it, and for a factor
/// enrolled through a browser ceremony (WebAuthn) what its answer must match.
pub struct Holder<'a> {
    /// The issuer name apps show (the service's).
    pub issuer: &'a str,
    /// The user's login name.
    pub account: &'a str,
    /// The user's tenant.
    pub tenant: &'a str,
    /// The ceremony the enrollment answers (its challenge, RP ID and origins), if any.
    pub ceremony: Option<&'a Expected>,
}

/// What the user presents at sign-in: a typed code, or a browser ceremony's answer (JSON) with
/// what it must match.
pub struct Presented<'a> {
    /// The code or the answer.
    pub input: &'a str,
    /// The ceremony the answer is for, if any.
    pub ceremony: Option<&'a Expected>,
}

/// A challenge made for a record: the state to keep (stored, and audited, before the secret
/// leaves) and the secret with where it goes.
pub struct Challenge {
    /// The state to keep.
    pub keep: Zeroizing<String>,
    /// The secret to deliver.
    pub secret: Zeroizing<String>,
    /// Where (a magic link's address).
    pub to: String,
}

/// A factor's verdict on what was presented.
pub enum Verdict {
    /// Accepted: the state to keep (stored before the sign-in goes on), the RFC 8176 `amr`
    /// value it adds, and whether it verified the user itself (a passkey with user
    /// verification counts as two factors).
    Accept {
        /// The state to keep.
        keep: Zeroizing<String>,
        /// Its `amr`.
        amr: &'static str,
        /// The authenticator verified the user (PIN, biometrics).
        verified_user: bool,
    },
    /// Not this factor's, or wrong.
    Reject,
    /// This record's, refused for a reason the audit log names (a WebAuthn counter that did
    /// not grow), with the state to keep if it changed (the credential marked as possibly
    /// cloned).
    Refuse {
        /// The state to keep, if it changed.
        keep: Option<Zeroizing<String>>,
        /// Why, for the audit log.
        why: &'static str,
    },
}

/// A sign-in factor with a record of its own.
pub trait Factor: Send + Sync {
    /// Its type.
    fn kind(&self) -> FactorKind;

    /// A new record's state from the enrollment's parameters (each factor reads its own;
    /// an unknown or out-of-range one is refused).
    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error>;

    /// A challenge for the record at `now`, asked with `request` (the factor's own JSON: what
    /// it is bound to): the state to keep and a secret to deliver out of band (a magic link's).
    /// `None` for a factor without one.
    fn challenge(
        &self,
        _state: &str,
        _request: &Value,
        _now: u64,
    ) -> Result<Option<Challenge>, Error> {
        Ok(None)
    }

    /// Checks `presented` against `state` at `now` (Unix seconds).
    fn verify(&self, state: &str, presented: &Presented<'_>, now: u64) -> Result<Verdict, Error>;

    /// A key that finds the record without a username (a WebAuthn credential id), unique
    /// among the records of this kind: a second record with it is refused.
    fn lookup(&self, _state: &str) -> Option<Vec<u8>> {
        None
    }

    /// What a ceremony may show of the record (a WebAuthn credential's id and transports).
    fn descriptor(&self, _state: &str) -> Option<Value> {
        None
    }
}

/// The factors identity-idp knows, by kind.
#[derive(Clone)]
pub struct Registry(Vec<Arc<dyn Factor>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|x| x.kind()))
            .finish()
    }
}

impl Registry {
    /// Every factor with a record of its own.
    pub fn standard() -> Self {
        Self(vec![
            Arc::new(totp::Totp),
            Arc::new(hotp::Hotp),
            Arc::new(recovery::RecoveryCodes),
            Arc::new(webauthn::Webauthn),
            Arc::new(yubico::YubicoOtp),
            Arc::new(magic_link::MagicLink),
            Arc::new(certificate::Certificate),
        ])
    }

    /// The factor of `kind`, if it is registered.
    pub fn get(&self, kind: FactorKind) -> Option<&Arc<dyn Factor>> {
        self.0.iter().find(|f| f.kind() == kind)
    }
}

/// A factor's state as JSON of type `T`, or a corrupt-record error.
pub(crate) fn read_state<T: serde::de::DeserializeOwned>(state: &str) -> Result<T, Error> {
    serde_json::from_str(state).map_err(|_| Error::Corrupt {
        table: "identity_factors_v1",
        key: "(factor state)".into(),
        what: "factor state",
    })
}

/// `T` as a factor's state.
pub(crate) fn write_state<T: Serialize>(state: &T) -> Result<Zeroizing<String>, Error> {
    serde_json::to_string(state)
        .map(Zeroizing::new)
        .map_err(|_| Error::Internal {
            what: "encoding a factor's state",
        })
}

/// A parameter of an enrollment: absent, or a number within `range`.
pub(crate) fn number_param(
    params: &Map<String, Value>,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    refusal: &'static str,
) -> Result<u64, Error> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| range.contains(n))
            .ok_or(Error::BadRequest { reason: refusal }),
    }
}

/// Refuses parameters other than `known` (a typo must not enroll a weaker factor silently).
pub(crate) fn only_params(params: &Map<String, Value>, known: &[&str]) -> Result<(), Error> {
    if params.keys().all(|k| known.contains(&k.as_str())) {
        Ok(())
    } else {
        Err(Error::BadRequest {
            reason: "unknown enrollment parameter",
        })
    }
}

/// The verdict of a typed-code factor's check (amr `otp`).
pub(crate) fn code_verdict(kept: Option<Zeroizing<String>>) -> Verdict {
    match kept {
        Some(keep) => Verdict::Accept {
            keep,
            amr: "otp",
            verified_user: false,
        },
        None => Verdict::Reject,
    }
}
