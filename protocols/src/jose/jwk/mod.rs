//! JSON Web Keys (RFC 7517, parameters of RFC 7518 §6 and RFC 8037), thumbprints (RFC 7638),
//! generation, and the signing primitives behind JWS.

mod low_s;
pub(crate) mod material;
mod set;
mod sign;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub use low_s::{ecdsa_twin, is_high_s};
pub use material::{Curve, KeyMaterial, RsaPrivate, ScalarPrivate};
pub use set::JwkSet;

use super::alg::JwsAlg;
use super::b64;
use super::error::{bounded, JoseError, Result};

/// RFC 7517 §4.2 `use`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Signatures.
    Sig,
    /// Encryption.
    Enc,
}

impl KeyUse {
    /// The registered value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Sig => "sig",
            KeyUse::Enc => "enc",
        }
    }
}

/// A key with its metadata. The `alg` pins the one algorithm the key serves.
#[derive(Clone)]
pub struct Jwk {
    /// `kid`.
    pub kid: Option<String>,
    /// `alg`, kept as a name so JWE algorithms fit too.
    pub alg: Option<String>,
    /// `use`.
    pub key_use: Option<KeyUse>,
    material: KeyMaterial,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.material.kty())
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.is_private())
            .finish()
    }
}

impl Jwk {
    /// Parses a JWK from JSON text.
    pub fn parse(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(bounded(json)?)
            .map_err(|_| JoseError::Malformed { what: "JWK JSON" })?;
        Self::from_value(&value)
    }

    /// Reads a JWK from a JSON object.
    pub fn from_value(value: &Value) -> Result<Self> {
        let obj = value.as_object().ok_or(JoseError::Malformed {
            what: "JWK (not an object)",
        })?;
        let text = |name: &'static str| -> Result<Option<String>> {
            match obj.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(JoseError::Malformed { what: name }),
            }
        };
        let key_use = match text("use")?.as_deref() {
            None => None,
            Some("sig") => Some(KeyUse::Sig),
            Some("enc") => Some(KeyUse::Enc),
            Some(_) => return Err(JoseError::Malformed { what: "use" }),
        };
        let alg = text("alg")?;
        if alg
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("none"))
        {
            return Err(JoseError::AlgNone);
        }
        Ok(Self {
            kid: text("kid")?,
            alg,
            key_use,
            material: KeyMaterial::from_object(obj)?,
        })
    }

    /// A key from material, unpinned.
    pub fn from_material(material: KeyMaterial) -> Self {
        Self {
            kid: None,
            alg: None,
            key_use: None,
            material,
        }
    }

    /// Pins `alg` (and `use: sig`), checking the key can serve it.
    pub fn pinned(mut self, alg: JwsAlg) -> Result<Self> {
        sign::check_key_fits(&self.material, alg)?;
        self.alg = Some(alg.as_str().to_owned());
        self.key_use = Some(KeyUse::Sig);
        Ok(self)
    }

    /// Pins a JWE key management `alg` (and `use: enc`), checking the key can serve it.
    pub fn pinned_jwe(mut self, alg: crate::jose::jwe::alg::KeyAlg) -> Result<Self> {
        crate::jose::jwe::alg::check_key_fits(&self.material, alg, None)?;
        self.alg = Some(alg.as_str().to_owned());
        self.key_use = Some(KeyUse::Enc);
        Ok(self)
    }

    /// The pinned JWE key management algorithm; keys without `use: enc` (or none) are refused.
    pub fn jwe_alg(&self) -> Result<crate::jose::jwe::alg::KeyAlg> {
        if self.key_use == Some(KeyUse::Sig) {
            return Err(JoseError::KeyUseMismatch { key_use: "sig" });
        }
        crate::jose::jwe::alg::KeyAlg::parse(self.alg.as_deref().ok_or(JoseError::KeyNotPinned)?)
    }

    /// Generates a new key for JWE key management `alg` (for `dir`, sized for `enc`; PBES2 gets
    /// a random 32-byte password), pinned, with its thumbprint as `kid`.
    pub fn generate_jwe(
        alg: crate::jose::jwe::alg::KeyAlg,
        enc: crate::jose::jwe::alg::ContentAlg,
    ) -> Result<Self> {
        use crate::jose::jwe::alg::KeyAlg as K;
        let failed = |_| JoseError::Crypto {
            op: "key generation",
        };
        let oct = |len: usize| -> Result<KeyMaterial> {
            let mut k = Zeroizing::new(vec![0u8; len]);
            aws_lc_rs::rand::fill(&mut k).map_err(failed)?;
            Ok(KeyMaterial::Oct { k })
        };
        let material = match alg {
            K::Dir => oct(enc.key_len())?,
            K::A128KW | K::A128GCMKW => oct(16)?,
            K::A256KW | K::A256GCMKW | K::Pbes2Hs256A128KW | K::Pbes2Hs512A256KW => oct(32)?,
            K::RsaOaep | K::RsaOaep256 => sign::generate(JwsAlg::RS256)?,
            K::RsaOaep384 => sign::generate(JwsAlg::RS384)?,
            K::RsaOaep512 => sign::generate(JwsAlg::RS512)?,
            K::EcdhEs | K::EcdhEsA128KW | K::EcdhEsA256KW => sign::generate(JwsAlg::ES256)?,
        };
        let key = Self::from_material(material).pinned_jwe(alg)?;
        let kid = key.thumbprint()?;
        Ok(key.with_kid(kid))
    }

    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Generates a new signing key for `alg`, pinned to it, with the RFC 7638 thumbprint as
    /// `kid`. RSA keys are 2048 bits for *S256, 3072 for *S384 and 4096 for *S512.
    pub fn generate(alg: JwsAlg) -> Result<Self> {
        let material = sign::generate(alg)?;
        let key = Self::from_material(material).pinned(alg)?;
        let kid = key.thumbprint()?;
        Ok(key.with_kid(kid))
    }

    /// The key material.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// `kty`.
    pub fn kty(&self) -> &'static str {
        self.material.kty()
    }

    /// Does it hold a private (or secret) part?
    pub fn is_private(&self) -> bool {
        self.material.is_private()
    }

    /// The public half (oct keys have none: error).
    pub fn public(&self) -> Result<Self> {
        Ok(Self {
            material: self.material.public()?,
            ..self.clone()
        })
    }

    /// JSON of the public key: never any private parameter.
    pub fn to_public_value(&self) -> Result<Value> {
        let mut obj = self.material.public()?.to_object(false);
        self.add_metadata(&mut obj);
        Ok(Value::Object(obj))
    }

    /// JSON with private parameters, for exportable keys only (the caller decides).
    pub fn to_private_value(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.private_object()?.to_string()))
    }

    fn private_object(&self) -> Result<Value> {
        if !self.is_private() {
            return Err(JoseError::NotPrivate);
        }
        let mut obj = self.material.to_object(true);
        self.add_metadata(&mut obj);
        Ok(Value::Object(obj))
    }

    /// RFC 7638 thumbprint (SHA-256, base64url) over the required members in lexical order.
    pub fn thumbprint(&self) -> Result<String> {
        let members = self.material.thumbprint_members()?;
        let mut json = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            // Names and values are ASCII base64url or registered names: no escaping needed.
            json.push_str(&format!("\"{name}\":\"{value}\""));
        }
        json.push('}');
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
        Ok(b64::encode(digest.as_ref()))
    }

    /// The pinned JWS algorithm, if the pin is one.
    pub fn jws_alg(&self) -> Result<JwsAlg> {
        if self.key_use == Some(KeyUse::Enc) {
            return Err(JoseError::KeyUseMismatch { key_use: "enc" });
        }
        JwsAlg::parse(self.alg.as_deref().ok_or(JoseError::KeyNotPinned)?)
    }

    /// Signs `message` with the pinned algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.check_sig_use()?;
        sign::sign(&self.material, self.jws_alg()?, message)
    }

    /// Verifies `signature` over `message` made with `alg`, which must equal the pinned alg.
    pub fn verify(&self, alg: JwsAlg, message: &[u8], signature: &[u8]) -> Result<()> {
        self.check_sig_use()?;
        let pinned = self.alg.as_deref().ok_or(JoseError::KeyNotPinned)?;
        if pinned != alg.as_str() {
            return Err(JoseError::KeyAlgMismatch {
                token: alg.as_str(),
                key: pinned.chars().take(32).collect(),
            });
        }
        sign::verify(&self.material, alg, message, signature)
    }

    fn check_sig_use(&self) -> Result<()> {
        match self.key_use {
            Some(KeyUse::Enc) => Err(JoseError::KeyUseMismatch { key_use: "enc" }),
            Some(KeyUse::Sig) | None => Ok(()),
        }
    }

    fn add_metadata(&self, obj: &mut Map<String, Value>) {
        if let Some(kid) = &self.kid {
            obj.insert("kid".into(), Value::String(kid.clone()));
        }
        if let Some(alg) = &self.alg {
            obj.insert("alg".into(), Value::String(alg.clone()));
        }
        if let Some(u) = self.key_use {
            obj.insert("use".into(), Value::String(u.as_str().into()));
        }
    }
}

#[cfg(test)]
mod tests;

/// `#[serde(with = "private_serde")]` for a record field holding a private (or symmetric) key:
/// written as the JWK with its private parameters, read back with [`Jwk::from_value`]. For
/// records sealed through the key barrier only.
pub mod private_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use super::Jwk;

    /// Writes the private JWK.
    pub fn serialize<S: Serializer>(jwk: &Jwk, s: S) -> Result<S::Ok, S::Error> {
        jwk.private_object()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }

    /// Reads a JWK.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Jwk, D::Error> {
        let value = Value::deserialize(d)?;
        Jwk::from_value(&value).map_err(serde::de::Error::custom)
    }
}
