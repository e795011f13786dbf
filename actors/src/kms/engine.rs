//! Where a ring's JWE and JWS run, chosen once per KMS from the configuration: here
//! (`internal_crypto`), or through the JOSE service (`federation.jose_enabled`; its own JOSE
//! code is then the fallback). Local work answers at once, in the mailbox; a call to the JOSE
//! service is a future the ring runs on a task of its own, so its mailbox never waits on the
//! network.

use std::future::Future;
use std::pin::Pin;

use cryptoutil_protocols::jose::jws::Verified;
use zeroize::Zeroizing;

use super::keyring::msg::DataKey;
use super::keyring::state::Ring;
use crate::error::Error;
use crate::federation::JoseEngine;

/// The engine of a KMS.
#[derive(Clone, Debug)]
pub enum Engine {
    /// This process's JOSE code.
    Local,
    /// The JOSE service, through its breaker.
    Jose(JoseEngine),
}

/// An engine's answer.
pub enum Run<T> {
    /// Done (local work, or a request refused before any call).
    Now(Result<T, Error>),
    /// A call to the JOSE service, to await off the mailbox.
    Later(Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>),
}

impl<T> Run<T> {
    fn later(f: impl Future<Output = Result<T, Error>> + Send + 'static) -> Self {
        Run::Later(Box::pin(f))
    }
}

impl Engine {
    /// A compact JWE of `plaintext` with the ring's latest material key.
    pub fn encrypt(&self, ring: &Ring, plaintext: Zeroizing<Vec<u8>>) -> Run<String> {
        let Engine::Jose(jose) = self else {
            return Run::Now(ring.encrypt(&plaintext));
        };
        match ring.encryption_job(plaintext.len()) {
            Err(e) => Run::Now(Err(e)),
            Ok((key, enc)) => {
                let jose = jose.clone();
                Run::later(async move { jose.encrypt(&key, enc, &plaintext).await })
            }
        }
    }

    /// Opens a compact JWE with the material key its `kid` names.
    pub fn decrypt(&self, ring: &Ring, jwe: String) -> Run<Zeroizing<Vec<u8>>> {
        let Engine::Jose(jose) = self else {
            return Run::Now(ring.decrypt(&jwe));
        };
        match ring.decryption(&jwe) {
            Err(e) => Run::Now(Err(e)),
            Ok((key, _, enc)) => {
                let (jose, key) = (jose.clone(), key.clone());
                Run::later(async move { jose.decrypt(&key, enc, &jwe).await })
            }
        }
    }

    /// A compact JWS of `payload` with the ring's latest material key.
    pub fn sign(&self, ring: &Ring, payload: Vec<u8>) -> Run<String> {
        let Engine::Jose(jose) = self else {
            return Run::Now(ring.sign(&payload));
        };
        match ring.signing(payload.len()) {
            Err(e) => Run::Now(Err(e)),
            Ok(key) => {
                let (jose, key) = (jose.clone(), key.clone());
                Run::later(async move { jose.sign(&key, &payload).await })
            }
        }
    }

    /// Verifies a compact JWS with the material key its `kid` names.
    pub fn verify(&self, ring: &Ring, jws: String) -> Run<Verified> {
        let Engine::Jose(jose) = self else {
            return Run::Now(ring.verify(&jws));
        };
        match ring.verification_job(&jws) {
            Err(e) => Run::Now(Err(e)),
            Ok(key) => {
                let jose = jose.clone();
                Run::later(async move { jose.verify(&key, &jws).await })
            }
        }
    }

    /// A data key: 32 random bytes and their JWE under the latest material key.
    pub fn data_key(&self, ring: &Ring) -> Run<DataKey> {
        let plaintext = match Ring::random_data_key() {
            Ok(dk) => dk,
            Err(e) => return Run::Now(Err(e)),
        };
        match self.encrypt(ring, plaintext.clone()) {
            Run::Now(jwe) => Run::Now(jwe.map(|jwe| DataKey { plaintext, jwe })),
            Run::Later(jwe) => Run::later(async move {
                Ok(DataKey {
                    jwe: jwe.await?,
                    plaintext,
                })
            }),
        }
    }
}
