//! State of the `JoseKeys` actor: synchronous methods over the tenants' keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::jws::{self, Verified};
use cryptoutil_protocols::jose::jwt::{self, Claims, Validation};
use cryptoutil_protocols::jose::{Jwk, JwkSet, JwsAlg, KeyUse};
use cryptoutil_storage::{Store, Table};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::service::ServiceName;

/// What key to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// A JWS alg (ES256, ...) or a JWE key management alg (A256KW, RSA-OAEP-256, ...).
    pub alg: String,
    /// `sig` or `enc`; must agree with `alg`.
    pub key_use: Option<String>,
    /// Whether the private key may ever be exported.
    pub exportable: bool,
    /// Content encryption for `dir` keys (sizes the key), default A256GCM.
    pub enc: Option<ContentAlg>,
}

/// A key as the API shows it.
#[derive(Debug, Clone)]
pub struct KeyView {
    /// The key id.
    pub kid: String,
    /// Public JWK (for symmetric keys: metadata without `k`).
    pub jwk: Value,
    /// Whether the private part may be exported.
    pub exportable: bool,
    /// The private JWK, only when asked for and exportable.
    pub private_jwk: Option<Zeroizing<String>>,
}

/// Largest payload or plaintext the service signs or encrypts (1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// A key with its policy, as stored (sealed).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    #[serde(with = "cryptoutil_protocols::jose::jwk::private_serde")]
    jwk: Jwk,
    #[serde(default)]
    exportable: bool,
    #[serde(default, rename = "created")]
    created_unix: u64,
}

/// All tenants' keys.
pub struct JoseKeysState {
    service: ServiceName,
    store: Arc<Store>,
    tenants: HashMap<String, BTreeMap<String, StoredKey>>,
}

impl std::fmt::Debug for JoseKeysState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoseKeysState")
            .field("service", &self.service)
            .field("tenants", &self.tenants.len())
            .finish()
    }
}

fn record_key(tenant: &str, kid: &str) -> Vec<u8> {
    format!("{tenant}/{kid}").into_bytes()
}

fn valid_tenant(tenant: &str) -> Result<(), Error> {
    let ok = !tenant.is_empty() && tenant.len() <= 128 && !tenant.contains('/');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest { reason: "tenant" })
    }
}

impl JoseKeysState {
    /// Blocking: reads every key of the service's store.
    pub fn load(service: ServiceName, store: Arc<Store>) -> Result<Self, Error> {
        let mut tenants: HashMap<String, BTreeMap<String, StoredKey>> = HashMap::new();
        for (k, plain) in store.scan_sealed(Table::JoseKeys, b"")? {
            let key = String::from_utf8_lossy(&k).into_owned();
            let Some((tenant, kid)) = key.split_once('/') else {
                continue;
            };
            let stored: StoredKey = serde_json::from_slice(&plain)
                .map_err(|_| Error::corrupt(Table::JoseKeys, &k, "JOSE key"))?;
            tenants
                .entry(tenant.to_owned())
                .or_default()
                .insert(kid.to_owned(), stored);
        }
        Ok(Self {
            service,
            store,
            tenants,
        })
    }

    /// The store, for blocking work off the mailbox.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// Blocking: generates a key for `spec` and persists it sealed.
    pub fn generate_and_persist(
        store: &Store,
        tenant: &str,
        spec: &KeySpec,
    ) -> Result<StoredKey, Error> {
        valid_tenant(tenant)?;
        let want = match spec.key_use.as_deref() {
            None => None,
            Some("sig") => Some(KeyUse::Sig),
            Some("enc") => Some(KeyUse::Enc),
            Some(_) => {
                return Err(Error::BadRequest {
                    reason: "use must be sig or enc",
                })
            }
        };
        let jwk = match (JwsAlg::parse(&spec.alg), KeyAlg::parse(&spec.alg)) {
            (Ok(alg), _) if want != Some(KeyUse::Enc) => Jwk::generate(alg)?,
            (_, Ok(alg)) if want != Some(KeyUse::Sig) => {
                if matches!(alg, KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW) {
                    return Err(Error::BadRequest {
                        reason: "PBES2 is for passwords, not service keys",
                    });
                }
                Jwk::generate_jwe(alg, spec.enc.unwrap_or(ContentAlg::A256GCM))?
            }
            (Err(e), Err(_)) => return Err(e.into()),
            _ => {
                return Err(Error::BadRequest {
                    reason: "use does not match alg",
                })
            }
        };
        let kid = jwk.kid.clone().ok_or(Error::BadRequest { reason: "kid" })?;
        let stored = StoredKey {
            jwk,
            exportable: spec.exportable,
            created_unix: crate::now_unix(),
        };
        let record = serde_json::to_vec(&stored)
            .map(Zeroizing::new)
            .map_err(|_| Error::Internal {
                what: "encoding a record",
            })?;
        store.put_sealed(Table::JoseKeys, &record_key(tenant, &kid), &record)?;
        Ok(stored)
    }

    /// Blocking: removes a key's record.
    pub fn forget(store: &Store, tenant: &str, kid: &str) -> Result<(), Error> {
        Ok(store.delete(Table::JoseKeys, &record_key(tenant, kid))?)
    }

    /// Adds a persisted key.
    pub fn insert(&mut self, tenant: &str, key: StoredKey) -> KeyView {
        let kid = key.jwk.kid.clone().unwrap_or_default();
        let view = Self::view_of(&key, false);
        self.tenants
            .entry(tenant.to_owned())
            .or_default()
            .insert(kid, key);
        view
    }

    /// Drops a key from memory (the caller then forgets it on disk).
    pub fn remove(&mut self, tenant: &str, kid: &str) -> Result<(), Error> {
        self.tenants
            .get_mut(tenant)
            .and_then(|keys| keys.remove(kid))
            .map(|_| ())
            .ok_or(Error::KeyNotFound)
    }

    /// The tenant's public JWK Set (symmetric keys are not published).
    pub fn jwks(&self, tenant: &str) -> Value {
        let keys: Vec<Value> = self
            .tenants
            .get(tenant)
            .map(|keys| {
                keys.values()
                    .filter_map(|k| k.jwk.to_public_value().ok())
                    .collect()
            })
            .unwrap_or_default();
        json!({ "keys": keys })
    }

    /// Every key of the tenant, without secret material, by kid.
    pub fn inventory(&self, tenant: &str) -> Vec<KeyView> {
        self.tenants
            .get(tenant)
            .map(|keys| keys.values().map(|k| Self::view_of(k, false)).collect())
            .unwrap_or_default()
    }

    /// One key.
    pub fn view(&self, tenant: &str, kid: &str, export: bool) -> Result<KeyView, Error> {
        let key = self.key(tenant, kid)?;
        if export && !key.exportable {
            return Err(Error::BadRequest {
                reason: "the key is not exportable",
            });
        }
        Ok(Self::view_of(key, export))
    }

    fn view_of(key: &StoredKey, export: bool) -> KeyView {
        let jwk = key.jwk.to_public_value().unwrap_or_else(|_| {
            // Symmetric keys: metadata only, never `k`.
            json!({ "kty": key.jwk.kty(), "kid": key.jwk.kid, "alg": key.jwk.alg, "use": key.jwk.key_use.map(|u| u.as_str()) })
        });
        let private_jwk = if export && key.exportable {
            key.jwk.to_private_value().ok()
        } else {
            None
        };
        KeyView {
            kid: key.jwk.kid.clone().unwrap_or_default(),
            jwk,
            exportable: key.exportable,
            private_jwk,
        }
    }

    fn key(&self, tenant: &str, kid: &str) -> Result<&StoredKey, Error> {
        self.tenants
            .get(tenant)
            .and_then(|keys| keys.get(kid))
            .ok_or(Error::KeyNotFound)
    }

    fn set(&self, tenant: &str) -> JwkSet {
        JwkSet {
            keys: self
                .tenants
                .get(tenant)
                .map(|k| k.values().map(|s| s.jwk.clone()).collect())
                .unwrap_or_default(),
        }
    }

    /// A clone of key `kid` for signing elsewhere (private parts are shared, not copied).
    pub fn key_for_signing(&self, tenant: &str, kid: &str) -> Result<Jwk, Error> {
        Ok(self.key(tenant, kid)?.jwk.clone())
    }

    /// Signs `payload` with `key` (one the actor handed out): the one signing path, wherever
    /// it runs.
    pub fn sign_with(key: &Jwk, payload: &[u8]) -> Result<String, Error> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::BadRequest {
                reason: "payload too large",
            });
        }
        Ok(jws::sign_compact(key, payload, &Map::new())?)
    }

    /// Verifies a compact JWS with the tenant's key named by its `kid`.
    pub fn verify(&self, tenant: &str, token: &str) -> Result<Verified, Error> {
        Ok(jws::verify_compact_in(
            token,
            &self.set(tenant),
            &JwsAlg::ALL,
        )?)
    }

    /// Encrypts to key `kid`.
    pub fn encrypt(
        &self,
        tenant: &str,
        kid: &str,
        enc: Option<ContentAlg>,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        if plaintext.len() > MAX_PAYLOAD {
            return Err(Error::BadRequest {
                reason: "plaintext too large",
            });
        }
        let key = &self.key(tenant, kid)?.jwk;
        Ok(jwe::encrypt_compact(
            key,
            enc.unwrap_or(ContentAlg::A256GCM),
            plaintext,
            &Map::new(),
        )?)
    }

    /// Decrypts a compact JWE with the tenant's key named by its `kid`.
    pub fn decrypt(&self, tenant: &str, token: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let kid =
            cryptoutil_protocols::jose::header::compact_kid(token).ok_or(Error::KeyNotFound)?;
        let key = &self.key(tenant, &kid)?.jwk;
        let algs: Vec<KeyAlg> = KeyAlg::ALL
            .into_iter()
            .filter(|a| !matches!(a, KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs512A256KW))
            .collect();
        Ok(jwe::decrypt_compact(token, key, &algs, &ContentAlg::ALL)?.plaintext)
    }

    /// Signs a claims set.
    pub fn jwt_sign(&self, tenant: &str, kid: &str, claims: &Claims) -> Result<String, Error> {
        Ok(jwt::sign(&self.key(tenant, kid)?.jwk, claims, "JWT")?)
    }

    /// Verifies a JWT and its time claims at `now`.
    pub fn jwt_verify(&self, tenant: &str, token: &str, now: u64) -> Result<Claims, Error> {
        let v = Validation {
            require_exp: false,
            ..Validation::default()
        };
        Ok(jwt::verify(
            token,
            &self.set(tenant),
            &JwsAlg::ALL,
            &v,
            now,
        )?)
    }

    /// Fault injection: panic, so supervision can be seen restarting the actor.
    pub fn crash(&self) {
        // INVARIANT: reachable only through the admin fault-injection route.
        #[allow(clippy::panic)]
        {
            panic!(
                "fault injection: {} jose keys actor panics on request",
                self.service
            );
        }
    }

    /// When a key was created.
    pub fn created(&self, tenant: &str, kid: &str) -> Option<u64> {
        self.key(tenant, kid).ok().map(|k| k.created_unix)
    }
}

#[cfg(test)]
mod tests {
    use cryptoutil_protocols::unseal;

    use super::*;

    fn state(dir: &std::path::Path) -> (JoseKeysState, Arc<Store>) {
        let key = unseal::generate(1, 1).unwrap().0;
        let store = Arc::new(Store::open_redb(&dir.join("jose.redb"), &key).unwrap());
        (
            JoseKeysState::load(ServiceName::Jose, Arc::clone(&store)).unwrap(),
            store,
        )
    }

    fn spec(alg: &str) -> KeySpec {
        KeySpec {
            alg: alg.into(),
            key_use: None,
            exportable: false,
            enc: None,
        }
    }

    #[test]
    fn keys_persist_sign_verify_and_stay_in_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, store) = state(dir.path());
        let k = JoseKeysState::generate_and_persist(&store, "t1", &spec("ES256")).unwrap();
        let view = st.insert("t1", k);
        let token =
            JoseKeysState::sign_with(&st.key_for_signing("t1", &view.kid).unwrap(), b"hi").unwrap();
        assert_eq!(st.verify("t1", &token).unwrap().payload, b"hi");
        assert!(matches!(
            st.key_for_signing("t2", &view.kid),
            Err(Error::KeyNotFound)
        ));
        assert!(st.verify("t2", &token).is_err());
        assert!(
            matches!(
                st.view("t1", &view.kid, true),
                Err(Error::BadRequest { .. })
            ),
            "not exportable"
        );
        assert!(view.jwk.get("d").is_none());
        // A fresh state over the same store has the key.
        let (again, _) = (JoseKeysState::load(ServiceName::Jose, store).unwrap(), ());
        assert_eq!(again.verify("t1", &token).unwrap().payload, b"hi");
        assert!(again.created("t1", &view.kid).is_some());
    }

    #[test]
    fn encryption_keys_round_trip_and_symmetric_keys_never_show_k() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, store) = state(dir.path());
        for alg in ["A256KW", "RSA-OAEP-256", "ECDH-ES+A256KW", "dir"] {
            let view = st.insert(
                "t",
                JoseKeysState::generate_and_persist(&store, "t", &spec(alg)).unwrap(),
            );
            let jwe = st.encrypt("t", &view.kid, None, b"secret").unwrap();
            assert_eq!(
                st.decrypt("t", &jwe).unwrap().as_slice(),
                b"secret",
                "{alg}"
            );
            assert!(
                view.jwk.get("k").is_none() && view.jwk.get("d").is_none(),
                "{alg}"
            );
        }
        assert!(JoseKeysState::generate_and_persist(&store, "t", &spec("RSA1_5")).is_err());
        assert!(JoseKeysState::generate_and_persist(&store, "t", &spec("none")).is_err());
        assert!(JoseKeysState::generate_and_persist(
            &store,
            "t",
            &KeySpec {
                key_use: Some("enc".into()),
                ..spec("ES256")
            }
        )
        .is_err());
        assert!(JoseKeysState::generate_and_persist(&store, "a/b", &spec("ES256")).is_err());
    }
}
