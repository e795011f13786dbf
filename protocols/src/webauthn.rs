//! WebAuthn (Level 2/3) for a relying party: the options a browser's `navigator.credentials`
//! takes, the JSON it answers with, and the checks of a registration (attestation `none` and
//! `packed`, self or with a certificate) and of an assertion. CBOR is read by `ciborium`;
//! signatures are verified by aws-lc-rs: ES256 (P-256), RS256 (RSA 2048 to 8192 bits, PKCS#1
//! v1.5) and EdDSA (Ed25519).
//!
//! What is pure lives here. What a relying party must remember (the challenge it sent, the
//! credential's public key and signature counter) is its caller's: [`verify_registration`]
//! returns what to keep, [`verify_assertion`] takes it back.
//!
//! A packed attestation certificate is checked for what §8.2.1 requires of it (version 3, the
//! `Authenticator Attestation` unit, not a CA, its AAGUID extension matching) and must verify
//! the attestation signature; it is not chained to a trust list (no metadata service is
//! configured), so [`Attestation::Packed`] says what the authenticator claims, not that a vendor
//! vouches for it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::value::Value;
use serde::Deserialize;
use serde_json::{json, Value as Json};

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519 here).
pub const EDDSA: i64 = -8;
/// COSE algorithm RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub const RS256: i64 = -257;
/// The algorithms this relying party offers, in its order of preference.
pub const ALGORITHMS: [i64; 3] = [ES256, EDDSA, RS256];

/// Longest credential id accepted (§5.8.3 allows 1023 bytes).
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Longest clientDataJSON, attestation object or authenticator data accepted.
pub const MAX_INPUT: usize = 16 * 1024;

/// The AAGUID extension of a packed attestation certificate (id-fido-gen-ce-aaguid).
const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

/// Why a registration or an assertion was refused (for logs and tests; the user is told less).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebauthnError {
    /// Not the encoding or structure WebAuthn defines.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// clientDataJSON's `type` is not the ceremony's.
    #[error("clientDataJSON type is not {0}")]
    Type(&'static str),
    /// Not the challenge this relying party sent.
    #[error("the challenge is not the one sent")]
    Challenge,
    /// An origin this relying party does not serve (or a cross-origin frame).
    #[error("origin {0:?} is not allowed")]
    Origin(String),
    /// The authenticator data's RP ID hash is not this relying party's.
    #[error("the RP ID hash is not this relying party's")]
    RpId,
    /// The user presence flag is not set.
    #[error("user presence was not asserted")]
    UserPresence,
    /// User verification was required and not done.
    #[error("user verification was required and not done")]
    UserVerification,
    /// A key or algorithm this relying party does not accept.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// The signature does not verify.
    #[error("the {0} signature does not verify")]
    Signature(&'static str),
    /// The attestation certificate is not what §8.2.1 requires.
    #[error("attestation certificate: {0}")]
    Certificate(&'static str),
}

type Result<T> = std::result::Result<T, WebauthnError>;

/// What a ceremony is checked against: the challenge sent, the relying party's ID and the
/// origins its pages are served from, and whether the user must have been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The challenge sent with the options.
    pub challenge: Vec<u8>,
    /// The RP ID (a domain).
    pub rp_id: String,
    /// The origins (`https://host[:port]`) the ceremony may run on.
    pub origins: Vec<String>,
    /// User verification required (a passkey signing in alone).
    pub user_verification: bool,
}

/// The authenticator data's flags and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// UP: the user was present.
    pub user_present: bool,
    /// UV: the user was verified (PIN, biometrics).
    pub user_verified: bool,
    /// BE: the credential may be backed up (synced, a "software" passkey).
    pub backup_eligible: bool,
    /// BS: the credential is backed up.
    pub backup_state: bool,
}

/// Authenticator data (§6.1), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// The flags.
    pub flags: Flags,
    /// The signature counter.
    pub sign_count: u32,
    /// With a registration: the new credential.
    pub attested: Option<AttestedCredential>,
}

/// Attested credential data (§6.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator model.
    pub aaguid: [u8; 16],
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE_Key CBOR as the authenticator encoded it.
    pub cose_key: Vec<u8>,
}

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// One CBOR item from the front of `input`, and what follows it.
fn cbor_item(input: &[u8]) -> Result<(Value, &[u8])> {
    let mut rest = input;
    let value: Value =
        ciborium::de::from_reader(&mut rest).map_err(|_| WebauthnError::Malformed("CBOR"))?;
    Ok((value, rest))
}

/// Parses authenticator data (§6.1): the attested credential when the AT flag is set, and
/// extensions (checked to be one CBOR map, then ignored) when ED is.
pub fn parse_authenticator_data(data: &[u8]) -> Result<AuthenticatorData> {
    let bad = || WebauthnError::Malformed("authenticator data");
    if data.len() > MAX_INPUT {
        return Err(bad());
    }
    let rp_id_hash: [u8; 32] = data
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let flags = *data.get(32).ok_or_else(bad)?;
    let count: [u8; 4] = data
        .get(33..37)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let mut rest = data.get(37..).ok_or_else(bad)?;
    let attested = if flags & FLAG_AT != 0 {
        let aaguid: [u8; 16] = rest
            .get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        let len_bytes: [u8; 2] = rest
            .get(16..18)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if len == 0 || len > MAX_CREDENTIAL_ID {
            return Err(WebauthnError::Malformed("credential id length"));
        }
        let credential_id = rest.get(18..18 + len).ok_or_else(bad)?.to_vec();
        let key_and_more = rest.get(18 + len..).ok_or_else(bad)?;
        let (_, after) = cbor_item(key_and_more)?;
        let used = key_and_more
            .len()
            .checked_sub(after.len())
            .ok_or_else(bad)?;
        let cose_key = key_and_more.get(..used).ok_or_else(bad)?.to_vec();
        rest = after;
        Some(AttestedCredential {
            aaguid,
            credential_id,
            cose_key,
        })
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        let (extensions, after) = cbor_item(rest)?;
        if !matches!(extensions, Value::Map(_)) {
            return Err(WebauthnError::Malformed("extensions"));
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(WebauthnError::Malformed(
            "authenticator data: trailing bytes",
        ));
    }
    // A credential that is backed up is one that may be (§6.1, BS implies BE).
    if flags & FLAG_BS != 0 && flags & FLAG_BE == 0 {
        return Err(WebauthnError::Malformed(
            "backup state without backup eligibility",
        ));
    }
    Ok(AuthenticatorData {
        rp_id_hash,
        flags: Flags {
            user_present: flags & FLAG_UP != 0,
            user_verified: flags & FLAG_UV != 0,
            backup_eligible: flags & FLAG_BE != 0,
            backup_state: flags & FLAG_BS != 0,
        },
        sign_count: u32::from_be_bytes(count),
        attested,
    })
}

/// A CBOR map whose labels are all different (a duplicate could be read two ways).
fn unique_map(value: Value, what: &'static str) -> Result<Vec<(Value, Value)>> {
    let Value::Map(map) = value else {
        return Err(WebauthnError::Malformed(what));
    };
    for (i, (k, _)) in map.iter().enumerate() {
        if map.iter().skip(i + 1).any(|(other, _)| other == k) {
            return Err(WebauthnError::Malformed(what));
        }
    }
    Ok(map)
}

/// A map's entry by integer label.
fn by_int(map: &[(Value, Value)], label: i64) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| k.as_integer().map(i128::from) == Some(i128::from(label)))
        .map(|(_, v)| v)
}

/// A map's entry by text label.
fn by_text<'a>(map: &'a [(Value, Value)], label: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(label))
        .map(|(_, v)| v)
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_integer)
        .and_then(|i| i64::try_from(i128::from(i)).ok())
}

fn bytes_of(v: Option<&Value>) -> Option<&[u8]> {
    v.and_then(Value::as_bytes).map(Vec::as_slice)
}

/// A credential public key, from its COSE_Key, ready to verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256: the uncompressed P-256 point.
    Es256(Vec<u8>),
    /// RS256: modulus and exponent, big-endian.
    Rs256 {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// EdDSA: the Ed25519 public key.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// Parses a COSE_Key (RFC 9052/9053): EC2 P-256 with ES256, RSA with RS256, OKP Ed25519
    /// with EdDSA; anything else is unsupported. The key is checked to be usable.
    pub fn from_cose(cose: &[u8]) -> Result<Self> {
        let (value, rest) = cbor_item(cose)?;
        let map = unique_map(value, "COSE key")?;
        if !rest.is_empty() {
            return Err(WebauthnError::Malformed("COSE key: trailing bytes"));
        }
        let kty = int_of(by_int(&map, 1));
        let alg = int_of(by_int(&map, 3));
        let key = match (kty, alg) {
            (Some(2), Some(ES256)) => {
                let (x, y) = (bytes_of(by_int(&map, -2)), bytes_of(by_int(&map, -3)));
                match (int_of(by_int(&map, -1)), x, y) {
                    (Some(1), Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut point = Vec::with_capacity(65);
                        point.push(4);
                        point.extend_from_slice(x);
                        point.extend_from_slice(y);
                        Self::Es256(point)
                    }
                    _ => return Err(WebauthnError::Unsupported("EC2 key (P-256 only)")),
                }
            }
            (Some(3), Some(RS256)) => {
                match (bytes_of(by_int(&map, -1)), bytes_of(by_int(&map, -2))) {
                    (Some(n), Some(e)) => {
                        let n = n
                            .iter()
                            .skip_while(|b| **b == 0)
                            .copied()
                            .collect::<Vec<_>>();
                        if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                            return Err(WebauthnError::Unsupported("RSA key size"));
                        }
                        Self::Rs256 { n, e: e.to_vec() }
                    }
                    _ => return Err(WebauthnError::Malformed("RSA key")),
                }
            }
            (Some(1), Some(EDDSA)) => {
                match (int_of(by_int(&map, -1)), bytes_of(by_int(&map, -2))) {
                    (Some(6), Some(x)) if x.len() == 32 => Self::Ed25519(x.to_vec()),
                    _ => return Err(WebauthnError::Unsupported("OKP key (Ed25519 only)")),
                }
            }
            _ => return Err(WebauthnError::Unsupported("key type or algorithm")),
        };
        key.check()?;
        Ok(key)
    }

    /// Its COSE_Key (the labels [`from_cose`](Self::from_cose) reads).
    pub fn to_cose(&self) -> Result<Vec<u8>> {
        let int = |i: i64| Value::Integer(i.into());
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        let bad = || WebauthnError::Malformed("public key");
        let map = match self {
            Self::Es256(point) => vec![
                (int(1), int(2)),
                (int(3), int(ES256)),
                (int(-1), int(1)),
                (int(-2), bytes(point.get(1..33).ok_or_else(bad)?)),
                (int(-3), bytes(point.get(33..65).ok_or_else(bad)?)),
            ],
            Self::Rs256 { n, e } => vec![
                (int(1), int(3)),
                (int(3), int(RS256)),
                (int(-1), bytes(n)),
                (int(-2), bytes(e)),
            ],
            Self::Ed25519(x) => vec![
                (int(1), int(1)),
                (int(3), int(EDDSA)),
                (int(-1), int(6)),
                (int(-2), bytes(x)),
            ],
        };
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Map(map), &mut out).map_err(|_| bad())?;
        Ok(out)
    }

    /// Its COSE algorithm.
    pub fn alg(&self) -> i64 {
        match self {
            Self::Es256(_) => ES256,
            Self::Rs256 { .. } => RS256,
            Self::Ed25519(_) => EDDSA,
        }
    }

    /// Whether aws-lc-rs takes the key (a point on the curve, an Ed25519 key).
    fn check(&self) -> Result<()> {
        use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
        let ok = match self {
            Self::Es256(point) => ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).is_ok(),
            Self::Ed25519(x) => ParsedPublicKey::new(&ED25519, x).is_ok(),
            Self::Rs256 { .. } => true,
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::Malformed("public key"))
        }
    }

    /// Verifies `signature` over `message` (`what` names it in the error).
    pub fn verify(&self, message: &[u8], signature: &[u8], what: &'static str) -> Result<()> {
        use aws_lc_rs::signature::{
            RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519,
            RSA_PKCS1_2048_8192_SHA256,
        };
        let verified = match self {
            Self::Es256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(message, signature)
                .is_ok(),
            Self::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
            Self::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        };
        if verified {
            Ok(())
        } else {
            Err(WebauthnError::Signature(what))
        }
    }
}

/// clientDataJSON (§5.8.1), the members checked.
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Checks clientDataJSON against the ceremony `kind` and `expected`; its SHA-256.
fn check_client_data(json: &[u8], kind: &'static str, expected: &Expected) -> Result<[u8; 32]> {
    if json.len() > MAX_INPUT {
        return Err(WebauthnError::Malformed("clientDataJSON"));
    }
    let data: ClientData =
        serde_json::from_slice(json).map_err(|_| WebauthnError::Malformed("clientDataJSON"))?;
    if data.kind != kind {
        return Err(WebauthnError::Type(kind));
    }
    let challenge = URL_SAFE_NO_PAD
        .decode(data.challenge.as_bytes())
        .map_err(|_| WebauthnError::Challenge)?;
    if expected.challenge.is_empty()
        || !crate::oauth::constant_time_eq(&challenge, &expected.challenge)
    {
        return Err(WebauthnError::Challenge);
    }
    if data.cross_origin == Some(true) || !expected.origins.contains(&data.origin) {
        return Err(WebauthnError::Origin(data.origin));
    }
    Ok(crate::sha256(json))
}

/// The checks of authenticator data every ceremony makes: the RP ID hash, UP, and UV when
/// required.
fn check_flags(data: &AuthenticatorData, expected: &Expected) -> Result<()> {
    let rp = crate::sha256(expected.rp_id.as_bytes());
    if !crate::oauth::constant_time_eq(&data.rp_id_hash, &rp) {
        return Err(WebauthnError::RpId);
    }
    if !data.flags.user_present {
        return Err(WebauthnError::UserPresence);
    }
    if expected.user_verification && !data.flags.user_verified {
        return Err(WebauthnError::UserVerification);
    }
    Ok(())
}

/// How the authenticator attested the new credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attestation {
    /// `none`: nothing said.
    None,
    /// `packed`, signed by the credential's own key.
    PackedSelf,
    /// `packed`, signed by an attestation certificate (not chained to a trust list).
    Packed,
}

/// A registration that passed: what to keep of the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// Its public key, COSE_Key CBOR.
    pub cose_key: Vec<u8>,
    /// Its COSE algorithm.
    pub alg: i64,
    /// The authenticator's model.
    pub aaguid: [u8; 16],
    /// The counter at registration.
    pub sign_count: u32,
    /// The flags at registration.
    pub flags: Flags,
    /// How it was attested.
    pub attestation: Attestation,
}

/// The parts of an attestation object (§6.5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationObject {
    /// `fmt`.
    pub fmt: String,
    /// `attStmt`.
    pub statement: Vec<(Value, Value)>,
    /// `authData`, as sent (signed over).
    pub auth_data: Vec<u8>,
}

/// Parses an attestation object (a CBOR map of `fmt`, `attStmt`, `authData`).
pub fn parse_attestation_object(object: &[u8]) -> Result<AttestationObject> {
    let bad = || WebauthnError::Malformed("attestation object");
    if object.len() > MAX_INPUT {
        return Err(bad());
    }
    let (value, rest) = cbor_item(object)?;
    let map = unique_map(value, "attestation object")?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let fmt = by_text(&map, "fmt")
        .and_then(Value::as_text)
        .ok_or_else(bad)?
        .to_owned();
    let statement = match by_text(&map, "attStmt") {
        Some(v @ Value::Map(_)) => unique_map(v.clone(), "attestation statement")?,
        _ => return Err(bad()),
    };
    let auth_data = bytes_of(by_text(&map, "authData"))
        .ok_or_else(bad)?
        .to_vec();
    Ok(AttestationObject {
        fmt,
        statement,
        auth_data,
    })
}

/// Verifies a registration ceremony (§7.1): clientDataJSON, the attestation object, the new
/// credential's key and the attestation statement (`none` or `packed`).
pub fn verify_registration(
    expected: &Expected,
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<Registered> {
    let client_hash = check_client_data(client_data_json, "webauthn.create", expected)?;
    let object = parse_attestation_object(attestation_object)?;
    let data = parse_authenticator_data(&object.auth_data)?;
    check_flags(&data, expected)?;
    let attested = data
        .attested
        .ok_or(WebauthnError::Malformed("no attested credential"))?;
    let key = PublicKey::from_cose(&attested.cose_key)?;
    let attestation = match object.fmt.as_str() {
        "none" if object.statement.is_empty() => Attestation::None,
        "none" => {
            return Err(WebauthnError::Malformed(
                "none attestation with a statement",
            ))
        }
        "packed" => {
            let mut signed = object.auth_data.clone();
            signed.extend_from_slice(&client_hash);
            packed(&object.statement, &key, &attested.aaguid, &signed)?
        }
        _ => return Err(WebauthnError::Unsupported("attestation format")),
    };
    Ok(Registered {
        credential_id: attested.credential_id,
        alg: key.alg(),
        cose_key: attested.cose_key,
        aaguid: attested.aaguid,
        sign_count: data.sign_count,
        flags: data.flags,
        attestation,
    })
}

/// The `packed` attestation statement (§8.2): self attestation with the credential's key, or
/// an attestation certificate (`x5c`) whose key signed.
fn packed(
    statement: &[(Value, Value)],
    credential: &PublicKey,
    aaguid: &[u8; 16],
    signed: &[u8],
) -> Result<Attestation> {
    let alg = int_of(by_text(statement, "alg")).ok_or(WebauthnError::Malformed("packed alg"))?;
    let sig = bytes_of(by_text(statement, "sig")).ok_or(WebauthnError::Malformed("packed sig"))?;
    match by_text(statement, "x5c") {
        None => {
            if alg != credential.alg() {
                return Err(WebauthnError::Malformed(
                    "packed alg is not the credential's",
                ));
            }
            credential.verify(signed, sig, "attestation")?;
            Ok(Attestation::PackedSelf)
        }
        Some(Value::Array(chain)) => {
            let leaf = bytes_of(chain.first()).ok_or(WebauthnError::Malformed("packed x5c"))?;
            let key = attestation_certificate(leaf, aaguid, alg)?;
            key.verify(signed, sig, "attestation")?;
            Ok(Attestation::Packed)
        }
        Some(_) => Err(WebauthnError::Malformed("packed x5c")),
    }
}

/// A packed attestation certificate's key, after the checks of §8.2.1.
fn attestation_certificate(der: &[u8], aaguid: &[u8; 16], alg: i64) -> Result<PublicKey> {
    use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|_| WebauthnError::Certificate("not DER X.509"))?;
    if !rest.is_empty() {
        return Err(WebauthnError::Certificate("trailing bytes"));
    }
    if cert.version() != X509Version::V3 {
        return Err(WebauthnError::Certificate("not version 3"));
    }
    let unit = cert
        .subject()
        .iter_organizational_unit()
        .any(|ou| ou.as_str().ok() == Some("Authenticator Attestation"));
    if !unit {
        return Err(WebauthnError::Certificate(
            "subject OU is not Authenticator Attestation",
        ));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(WebauthnError::Certificate("a CA")),
        Ok(_) => {}
        Err(_) => return Err(WebauthnError::Certificate("basic constraints")),
    }
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == OID_FIDO_AAGUID {
            // extnValue holds an OCTET STRING of the 16-byte AAGUID.
            let inner = ext.value;
            let ok = !ext.critical
                && inner.len() == 18
                && inner.first() == Some(&0x04)
                && inner.get(1) == Some(&16)
                && inner.get(2..) == Some(aaguid.as_slice());
            if !ok {
                return Err(WebauthnError::Certificate(
                    "AAGUID extension does not match",
                ));
            }
        }
    }
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.to_vec();
    let key = match alg {
        ES256 => PublicKey::Es256(bits),
        EDDSA => PublicKey::Ed25519(bits),
        RS256 => {
            let (n, e) = rsa_public_key(&bits)?;
            PublicKey::Rs256 { n, e }
        }
        _ => return Err(WebauthnError::Unsupported("attestation algorithm")),
    };
    key.check()?;
    Ok(key)
}

/// Modulus and exponent of a DER RSAPublicKey (PKCS#1).
fn rsa_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let (n, e) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let n = r.next().read_bigint_bytes()?;
            let e = r.next().read_bigint_bytes()?;
            Ok((n, e))
        })
    })
    .map_err(|_| WebauthnError::Certificate("RSA key"))?;
    let unsigned = |(bytes, positive): (Vec<u8>, bool)| {
        positive.then(|| {
            bytes
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect::<Vec<u8>>()
        })
    };
    match (unsigned(n), unsigned(e)) {
        (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => Ok((n, e)),
        _ => Err(WebauthnError::Certificate("RSA key")),
    }
}

/// An assertion that passed: the authenticator's counter and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asserted {
    /// The signature counter the authenticator reports.
    pub sign_count: u32,
    /// The flags.
    pub flags: Flags,
}

/// Verifies an assertion (§7.2) by the credential whose COSE key is `cose_key`: clientDataJSON,
/// the authenticator data and the signature over both. The signature counter is reported;
/// comparing it with the one kept is the caller's ([`counter_ok`]).
pub fn verify_assertion(
    expected: &Expected,
    cose_key: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
) -> Result<Asserted> {
    let client_hash = check_client_data(client_data_json, "webauthn.get", expected)?;
    let data = parse_authenticator_data(authenticator_data)?;
    check_flags(&data, expected)?;
    let key = PublicKey::from_cose(cose_key)?;
    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&client_hash);
    key.verify(&signed, signature, "assertion")?;
    Ok(Asserted {
        sign_count: data.sign_count,
        flags: data.flags,
    })
}

/// Whether a counter reported after `kept` is plausible (§6.1.1): both zero (an authenticator
/// without a counter), or it grew. Otherwise the credential may have been cloned.
pub fn counter_ok(kept: u32, reported: u32) -> bool {
    (kept == 0 && reported == 0) || reported > kept
}

/// The user handle (`user.id`) of `user_id` in `tenant`: SHA-256 of `<tenant>/<user_id>`,
/// opaque and without personal data (§14.6.1), the same at every registration.
pub fn user_handle(tenant: &str, user_id: &str) -> [u8; 32] {
    crate::sha256(format!("{tenant}/{user_id}").as_bytes())
}

/// base64url without padding, the JSON encoding of WebAuthn's binary values.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str, what: &'static str) -> Result<Vec<u8>> {
    if text.len() > MAX_INPUT * 2 {
        return Err(WebauthnError::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('=').as_bytes())
        .map_err(|_| WebauthnError::Malformed(what))
}

/// A credential a user already has, as options list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    /// The credential id, base64url.
    pub id: String,
    /// The transports the browser reported at registration.
    #[serde(default)]
    pub transports: Vec<String>,
}

fn descriptors(list: &[Descriptor]) -> Json {
    Json::Array(
        list.iter()
            .map(|d| {
                if d.transports.is_empty() {
                    json!({"type": "public-key", "id": d.id})
                } else {
                    json!({"type": "public-key", "id": d.id, "transports": d.transports})
                }
            })
            .collect(),
    )
}

/// What a registration asks of the authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A passkey: a discoverable credential, user verification required, no attestation asked.
    Passkey,
    /// A security key used after the password: not discoverable, no user verification, the
    /// `packed` attestation asked (its AAGUID names the model).
    SecurityKey,
}

/// Who registers: the user entity of the options.
#[derive(Debug, Clone, Copy)]
pub struct UserEntity<'a> {
    /// The user handle.
    pub handle: &'a [u8],
    /// The login name.
    pub name: &'a str,
    /// The name shown.
    pub display_name: &'a str,
}

/// `PublicKeyCredentialCreationOptionsJSON` (Level 3) for a registration of `kind`, the
/// user's existing credentials excluded.
pub fn creation_options(
    rp_id: &str,
    rp_name: &str,
    user: UserEntity<'_>,
    challenge: &[u8],
    kind: Kind,
    exclude: &[Descriptor],
    timeout_ms: u64,
) -> Json {
    let (resident, uv, attestation) = match kind {
        Kind::Passkey => ("required", "required", "none"),
        Kind::SecurityKey => ("discouraged", "discouraged", "direct"),
    };
    json!({
        "rp": {"id": rp_id, "name": rp_name},
        "user": {"id": b64(user.handle), "name": user.name, "displayName": user.display_name},
        "challenge": b64(challenge),
        "pubKeyCredParams": ALGORITHMS
            .iter()
            .map(|a| json!({"type": "public-key", "alg": a}))
            .collect::<Vec<_>>(),
        "timeout": timeout_ms,
        "excludeCredentials": descriptors(exclude),
        "authenticatorSelection": {
            "residentKey": resident,
            "requireResidentKey": kind == Kind::Passkey,
            "userVerification": uv,
        },
        "attestation": attestation,
    })
}

/// `PublicKeyCredentialRequestOptionsJSON` (Level 3): for `allow` credentials (a second
/// factor), or any discoverable one when `allow` is empty (a passkey, user verification
/// required).
pub fn request_options(
    rp_id: &str,
    challenge: &[u8],
    allow: &[Descriptor],
    timeout_ms: u64,
) -> Json {
    json!({
        "rpId": rp_id,
        "challenge": b64(challenge),
        "timeout": timeout_ms,
        "allowCredentials": descriptors(allow),
        "userVerification": if allow.is_empty() { "required" } else { "discouraged" },
    })
}

/// `RegistrationResponseJSON` as the browser page sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    /// The credential id (`rawId`).
    pub raw_id: Vec<u8>,
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// The attestation object.
    pub attestation_object: Vec<u8>,
    /// Transports the browser reported.
    pub transports: Vec<String>,
}

/// `AuthenticationResponseJSON` as the browser page sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationResponse {
    /// The credential id (`rawId`).
    pub raw_id: Vec<u8>,
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// The authenticator data.
    pub authenticator_data: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// The user handle, for a discoverable credential.
    pub user_handle: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct CredentialJson<R> {
    id: String,
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: R,
}

#[derive(Deserialize)]
struct AttestationJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "attestationObject")]
    attestation_object: String,
    #[serde(default)]
    transports: Vec<String>,
}

#[derive(Deserialize)]
struct AssertionJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "authenticatorData")]
    authenticator_data: String,
    signature: String,
    #[serde(rename = "userHandle", default)]
    user_handle: Option<String>,
}

fn credential<R: serde::de::DeserializeOwned>(text: &str) -> Result<(Vec<u8>, R)> {
    if text.len() > MAX_INPUT * 3 {
        return Err(WebauthnError::Malformed("credential JSON"));
    }
    let c: CredentialJson<R> =
        serde_json::from_str(text).map_err(|_| WebauthnError::Malformed("credential JSON"))?;
    let raw_id = unb64(&c.raw_id, "rawId")?;
    if c.kind != "public-key" || unb64(&c.id, "id")? != raw_id || raw_id.is_empty() {
        return Err(WebauthnError::Malformed("credential id"));
    }
    Ok((raw_id, c.response))
}

impl RegistrationResponse {
    /// Parses the JSON a registration page sends.
    pub fn from_json(text: &str) -> Result<Self> {
        let (raw_id, r) = credential::<AttestationJson>(text)?;
        let transports: Vec<String> = r
            .transports
            .into_iter()
            .filter(|t| t.len() <= 16 && t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .take(8)
            .collect();
        Ok(Self {
            raw_id,
            client_data_json: unb64(&r.client_data_json, "clientDataJSON")?,
            attestation_object: unb64(&r.attestation_object, "attestationObject")?,
            transports,
        })
    }
}

impl AuthenticationResponse {
    /// Parses the JSON a sign-in page sends.
    pub fn from_json(text: &str) -> Result<Self> {
        let (raw_id, r) = credential::<AssertionJson>(text)?;
        let user_handle = match r.user_handle.as_deref() {
            None | Some("") => None,
            Some(h) => Some(unb64(h, "userHandle")?),
        };
        Ok(Self {
            raw_id,
            client_data_json: unb64(&r.client_data_json, "clientDataJSON")?,
            authenticator_data: unb64(&r.authenticator_data, "authenticatorData")?,
            signature: unb64(&r.signature, "signature")?,
            user_handle,
        })
    }
}

#[cfg(test)]
mod tests;
