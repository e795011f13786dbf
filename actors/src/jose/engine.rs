//! JOSE operations with a key the caller brings instead of naming one of its tenant's keys: the
//! JOSE service as a stateless engine (the KMS performs its JWE/JWS here when `jose_enabled`).
//! Nothing is stored; the key lives for the request and is zeroized with it. The key must pin
//! its algorithm (`alg`), which is the only one it serves, and only FIPS-approved algorithms
//! parse (no `none`, no RSA1_5, no `zip`).

use cryptoutil_protocols::jose::jwe::{self, ContentAlg};
use cryptoutil_protocols::jose::jws::{self, Verified};
use cryptoutil_protocols::jose::Jwk;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::keys::MAX_PAYLOAD;
use crate::error::Error;

/// The key a request carries (a JWK object with `alg`).
pub fn key(value: &Value) -> Result<Jwk, Error> {
    let key = Jwk::from_value(value)?;
    if key.alg.is_none() {
        return Err(Error::BadRequest {
            reason: "jwk: alg is required (the key serves that algorithm only)",
        });
    }
    Ok(key)
}

fn bounded(len: usize) -> Result<(), Error> {
    if len > MAX_PAYLOAD {
        return Err(Error::BadRequest {
            reason: "payload too large",
        });
    }
    Ok(())
}

/// A compact JWS of `payload` with `key`.
pub fn sign(key: &Jwk, payload: &[u8]) -> Result<String, Error> {
    bounded(payload.len())?;
    Ok(jws::sign_compact(key, payload, &Map::new())?)
}

/// Verifies a compact JWS with `key` and its algorithm only.
pub fn verify(key: &Jwk, token: &str) -> Result<Verified, Error> {
    Ok(jws::verify_compact(token, key, &[key.jws_alg()?])?)
}

/// A compact JWE of `plaintext` to `key` (public or symmetric) with `enc`.
pub fn encrypt(key: &Jwk, enc: ContentAlg, plaintext: &[u8]) -> Result<String, Error> {
    bounded(plaintext.len())?;
    Ok(jwe::encrypt_compact(key, enc, plaintext, &Map::new())?)
}

/// Opens a compact JWE with `key`, its key-management algorithm only, and `enc` only.
pub fn decrypt(key: &Jwk, enc: ContentAlg, token: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    Ok(jwe::decrypt_compact(token, key, &[key.jwe_alg()?], &[enc])?.plaintext)
}

#[cfg(test)]
mod tests {
    use cryptoutil_protocols::jose::jwe::KeyAlg;
    use cryptoutil_protocols::jose::JwsAlg;

    use super::*;

    #[test]
    fn a_brought_key_serves_its_own_algorithm_only() {
        let es = Jwk::generate(JwsAlg::ES256).unwrap();
        let jws = sign(&es, b"m").unwrap();
        let public = key(&es.to_public_value().unwrap()).unwrap();
        assert_eq!(verify(&public, &jws).unwrap().payload, b"m");
        let other = Jwk::generate(JwsAlg::ES256).unwrap().public().unwrap();
        assert!(verify(&other, &jws).is_err());
        let mut no_alg = es.to_public_value().unwrap();
        no_alg.as_object_mut().unwrap().remove("alg");
        assert!(key(&no_alg).is_err());

        let kw = Jwk::generate_jwe(KeyAlg::A256KW, ContentAlg::A256GCM).unwrap();
        let jwe = encrypt(&kw, ContentAlg::A256GCM, b"p").unwrap();
        assert_eq!(
            decrypt(&kw, ContentAlg::A256GCM, &jwe).unwrap().as_slice(),
            b"p"
        );
        assert!(
            decrypt(&kw, ContentAlg::A128GCM, &jwe).is_err(),
            "enc is pinned too"
        );
        let mut tampered = jwe.clone();
        tampered.push('A');
        assert!(decrypt(&kw, ContentAlg::A256GCM, &tampered).is_err());
    }
}
