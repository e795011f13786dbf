//! The JOSE service as the KMS's crypto engine (`federation.jose_enabled`): the KMS sends the
//! material key of the operation with the request (the JOSE API's brought-key form: nothing is
//! stored there) over verified TLS 1.3, authenticated with this process's access token. While
//! the JOSE service is unavailable, `internal_crypto` runs the same engine code
//! ([`crate::jose::engine`]) in this process. The key leaves the KMS only in the request
//! body: the public half where that is all an operation needs (encryption to an asymmetric
//! key, verification with one), the private or symmetric key otherwise.

use cryptoutil_federation::{Bytes, Method};
use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::jose::jwe::ContentAlg;
use cryptoutil_protocols::jose::jws::Verified;
use cryptoutil_protocols::jose::Jwk;
use serde_json::Value;
use zeroize::Zeroizing;

use super::peer::{CallAuth, Peer, PeerRequest, Retries};
use super::PeerError;
use crate::audit::{AuditEntry, AuditHandle};
use crate::error::Error;
use crate::jose::engine;

/// The JOSE API's brought-key operations.
pub const SIGN_PATH: &str = "/service/api/v1/jose/jws/sign";
/// Verification.
pub const VERIFY_PATH: &str = "/service/api/v1/jose/jws/verify";
/// Encryption.
pub const ENCRYPT_PATH: &str = "/service/api/v1/jose/jwe/encrypt";
/// Decryption.
pub const DECRYPT_PATH: &str = "/service/api/v1/jose/jwe/decrypt";

/// What became of a remote operation.
enum Remote<T> {
    /// The JOSE service answered.
    Done(T),
    /// It refused the input (400): the internal code tells exactly why.
    Refused,
    /// It could not be had: the fallback answers.
    Unavailable(PeerError),
}

impl Remote<String> {
    /// The answer's member read into what the operation returns; an answer that does not
    /// read is the peer failing its API (the fallback answers).
    fn read<U>(self, peer: &Peer, read: impl FnOnce(String) -> Option<U>) -> Remote<U> {
        match self {
            Remote::Done(text) => match read(text) {
                Some(value) => Remote::Done(value),
                None => Remote::Unavailable(garbage(peer)),
            },
            Remote::Refused => Remote::Refused,
            Remote::Unavailable(e) => Remote::Unavailable(e),
        }
    }
}

/// The JOSE service, with `internal_crypto` as its fallback; every fallback taken is audited
/// in the calling service's log before the internal engine answers.
#[derive(Clone, Debug)]
pub struct JoseEngine {
    peer: Peer,
    audit: AuditHandle,
    service: &'static str,
}

impl JoseEngine {
    /// Through `peer`, auditing fallbacks in `service`'s `audit` log.
    pub fn new(peer: Peer, audit: AuditHandle, service: &'static str) -> Self {
        Self {
            peer,
            audit,
            service,
        }
    }

    /// The remote answer, or (audited) the internal engine's: see [`settle`].
    async fn settled<T>(
        &self,
        remote: Remote<T>,
        internal: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        if matches!(remote, Remote::Unavailable(_)) {
            let mode = super::JoseFallback::InternalCrypto.as_str();
            let entry = AuditEntry::fallback(self.service, "", "jose", mode);
            self.audit.append(entry, Vec::new()).await?;
        }
        settle(remote, internal)
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// A compact JWE of `plaintext` to `key` with `enc`.
    pub async fn encrypt(
        &self,
        key: &Jwk,
        enc: ContentAlg,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        let body = format!(
            r#"{{"jwk":{},"plaintext":"{}","enc":"{}"}}"#,
            key_json(key, true)?.as_str(),
            b64::encode(plaintext),
            enc.as_str()
        );
        let remote = self.post(ENCRYPT_PATH, body, "jwe").await;
        self.settled(remote, || engine::encrypt(key, enc, plaintext))
            .await
    }

    /// Opens a compact JWE with `key` and `enc`.
    pub async fn decrypt(
        &self,
        key: &Jwk,
        enc: ContentAlg,
        token: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let body = format!(
            r#"{{"jwk":{},"jwe":{},"enc":"{}"}}"#,
            key_json(key, false)?.as_str(),
            Value::String(token.to_owned()),
            enc.as_str()
        );
        let remote = self
            .post(DECRYPT_PATH, body, "plaintext")
            .await
            .read(&self.peer, |text| {
                b64::decode(&text, "plaintext").ok().map(Zeroizing::new)
            });
        self.settled(remote, || engine::decrypt(key, enc, token))
            .await
    }

    /// A compact JWS of `payload` with `key`.
    pub async fn sign(&self, key: &Jwk, payload: &[u8]) -> Result<String, Error> {
        let body = format!(
            r#"{{"jwk":{},"payload":"{}"}}"#,
            key_json(key, false)?.as_str(),
            b64::encode(payload)
        );
        let remote = self.post(SIGN_PATH, body, "jws").await;
        self.settled(remote, || engine::sign(key, payload)).await
    }

    /// Verifies a compact JWS with `key`.
    pub async fn verify(&self, key: &Jwk, token: &str) -> Result<Verified, Error> {
        let body = format!(
            r#"{{"jwk":{},"jws":{}}}"#,
            key_json(key, true)?.as_str(),
            Value::String(token.to_owned())
        );
        let remote = self
            .post(VERIFY_PATH, body, "payload")
            .await
            .read(&self.peer, |text| {
                let header = protected_header(token)?;
                Some(Verified {
                    kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
                    header,
                    payload: b64::decode(&text, "payload").ok()?,
                    alg: key.jws_alg().ok()?,
                })
            });
        self.settled(remote, || engine::verify(key, token)).await
    }

    /// POSTs `body` and reads the answer's string member `field`.
    async fn post(&self, path: &str, body: String, field: &str) -> Remote<String> {
        let body = Zeroizing::new(body);
        let request = PeerRequest {
            method: Method::POST,
            path,
            headers: vec![("content-type", "application/json".to_owned())],
            body: Bytes::from(body.as_bytes().to_vec()),
            auth: CallAuth::Bearer,
        };
        let peer = self.peer.name().as_str();
        // The fallback gives the same answer: no retries, it answers at once instead.
        let r = match self.peer.call(&request, Retries::None).await {
            Ok(r) => r,
            Err(e) => return Remote::Unavailable(e),
        };
        match r.status.as_u16() {
            200..=299 => {}
            400 => return Remote::Refused,
            // Our token refused or lacking the scope: the JOSE service is of no use to us.
            status => {
                return Remote::Unavailable(PeerError::Credentials {
                    peer,
                    reason: format!("the JOSE service answered HTTP {status}"),
                })
            }
        }
        let value: Option<Value> = serde_json::from_slice(&r.body).ok();
        match value
            .as_ref()
            .and_then(|v| v.get(field))
            .and_then(Value::as_str)
        {
            Some(text) => Remote::Done(text.to_owned()),
            None => Remote::Unavailable(garbage(&self.peer)),
        }
    }
}

/// The protected header of a compact JWS the JOSE service verified.
fn protected_header(token: &str) -> Option<serde_json::Map<String, Value>> {
    let header = token.split('.').next()?;
    serde_json::from_slice(&b64::decode(header, "header").ok()?).ok()
}

fn garbage(peer: &Peer) -> PeerError {
    PeerError::Failed {
        peer: peer.name().as_str(),
        reason: "the JOSE service's answer is not what its API promises".into(),
    }
}

/// The key as the request carries it: the public half when `public_suffices` and the key is
/// asymmetric, else the whole key.
fn key_json(key: &Jwk, public_suffices: bool) -> Result<Zeroizing<String>, Error> {
    if public_suffices && key.kty() != "oct" {
        return Ok(Zeroizing::new(key.to_public_value()?.to_string()));
    }
    Ok(key.to_private_value()?)
}

/// The remote answer, or the internal engine's: as the fallback while the JOSE service is
/// unavailable, and for a refusal, whose exact error only the internal code can name (were the
/// two to disagree, the refusal stands).
fn settle<T>(remote: Remote<T>, internal: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match remote {
        Remote::Done(value) => Ok(value),
        Remote::Unavailable(why) => {
            crate::metrics::fallback_used("jose", super::JoseFallback::InternalCrypto.as_str());
            tracing::debug!(%why, "the JOSE service is unavailable: internal_crypto");
            internal()
        }
        Remote::Refused => match internal() {
            Err(e) => Err(e),
            Ok(_) => {
                tracing::error!("the JOSE service refused what the internal JOSE code accepts");
                Err(Error::BadRequest {
                    reason: "the JOSE service refused the operation",
                })
            }
        },
    }
}
