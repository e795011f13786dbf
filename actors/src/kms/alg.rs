//! What an elastic key does, stored as its enum (its API name in records and answers).

use cryptoutil_protocols::jose::jwe::{ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::{Jwk, JwsAlg};

use crate::error::Error;

/// JWE with a key-management algorithm (content always A256GCM), or JWS. FIPS-approved choices
/// only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsAlg {
    /// JWE (`alg`, `enc`).
    Jwe(KeyAlg, ContentAlg),
    /// JWS.
    Jws(JwsAlg),
}

impl KmsAlg {
    /// The API's algorithm names: `A256GCM` (dir + A256GCM), `A256KW`, `RSA-OAEP-256`,
    /// `ECDH-ES+A256KW`; `ES256/384/512`, `PS256/384/512`, `EdDSA`, `HS256/384/512`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let enc = ContentAlg::A256GCM;
        Ok(match name {
            "A256GCM" => KmsAlg::Jwe(KeyAlg::Dir, enc),
            "A256KW" => KmsAlg::Jwe(KeyAlg::A256KW, enc),
            "RSA-OAEP-256" => KmsAlg::Jwe(KeyAlg::RsaOaep256, enc),
            "ECDH-ES+A256KW" => KmsAlg::Jwe(KeyAlg::EcdhEsA256KW, enc),
            "ES256" | "ES384" | "ES512" | "PS256" | "PS384" | "PS512" | "EdDSA" | "HS256"
            | "HS384" | "HS512" => KmsAlg::Jws(JwsAlg::parse(name)?),
            _ => {
                return Err(Error::BadRequest {
                    reason: "algorithm: A256GCM, A256KW, RSA-OAEP-256, ECDH-ES+A256KW, ES256, \
                             ES384, ES512, PS256, PS384, PS512, EdDSA, HS256, HS384 or HS512",
                })
            }
        })
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            KmsAlg::Jwe(KeyAlg::Dir, _) => "A256GCM",
            KmsAlg::Jwe(alg, _) => alg.as_str(),
            KmsAlg::Jws(alg) => alg.as_str(),
        }
    }

    /// A new key for this algorithm.
    pub(crate) fn generate(self) -> Result<Jwk, Error> {
        Ok(match self {
            KmsAlg::Jwe(alg, enc) => Jwk::generate_jwe(alg, enc)?,
            KmsAlg::Jws(alg) => Jwk::generate(alg)?,
        })
    }

    /// An imported private key, pinned to this algorithm if it can serve it (key type, curve,
    /// size); anything else is refused.
    pub(crate) fn adopt(self, jwk: Jwk) -> Result<Jwk, Error> {
        if !jwk.is_private() {
            return Err(Error::BadRequest {
                reason: "the imported key must be a private (or symmetric) JWK",
            });
        }
        Ok(match self {
            KmsAlg::Jws(alg) => jwk.pinned(alg)?,
            KmsAlg::Jwe(alg, enc) => {
                let jwk = jwk.pinned_jwe(alg)?;
                // `dir` keys must be exactly the content key size: a trial encryption says so.
                cryptoutil_protocols::jose::jwe::encrypt_compact(
                    &jwk,
                    enc,
                    b"",
                    &serde_json::Map::new(),
                )?;
                jwk
            }
        })
    }
}

impl std::fmt::Display for KmsAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for KmsAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KmsAlg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KmsAlg::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fips_approved_algorithms_are_accepted_and_names_round_trip() {
        for bad in [
            "RSA1_5",
            "A128GCM",
            "dir",
            "none",
            "RS256",
            "PBES2-HS256+A128KW",
            "",
        ] {
            assert!(KmsAlg::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "A256GCM",
            "A256KW",
            "RSA-OAEP-256",
            "ECDH-ES+A256KW",
            "ES384",
            "PS512",
            "EdDSA",
            "HS512",
        ] {
            let alg = KmsAlg::parse(good).unwrap();
            assert_eq!(alg.as_str(), good);
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(serde_json::from_str::<KmsAlg>(&json).unwrap(), alg);
        }
    }
}
