//! The domain ring: one elastic key and its material keys, without I/O. The latest version
//! encrypts and signs; every version from `min_decrypt_version` on (and not disabled) still
//! decrypts and verifies. JWE and JWS carry the material key's `kid` (`<elastic id>.v<version>`),
//! so a ciphertext names the version that opens it. Changes are planned here as typed
//! [`Change`]s, written (sealed, with their audit record) elsewhere, and applied here once
//! durable.

use std::collections::BTreeMap;

use cryptoutil_protocols::ids::{ElasticKeyId, TenantId};
use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::jws::{self, Verified};
use cryptoutil_protocols::jose::{header, Jwk, JwsAlg};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::super::alg::KmsAlg;
use crate::error::Error;

/// Largest plaintext or payload (1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// How long a soft-deleted key waits before destruction.
pub const DELETION_DELAY: u64 = 7 * 86_400;

/// A request for a new elastic key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewElasticKey {
    /// Display name, 1-128 characters.
    pub name: String,
    /// See [`KmsAlg::parse`].
    pub algorithm: KmsAlg,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Whether material keys may be exported.
    #[serde(default)]
    pub exportable: bool,
    /// Seconds between automatic rotations.
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub rotation_period: Option<u64>,
}

/// An elastic key: its record, and the API's view of it (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticKey {
    /// Its id.
    pub id: ElasticKeyId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Display name.
    pub name: String,
    /// The algorithm (its API name in records and answers).
    pub algorithm: KmsAlg,
    /// Free text.
    pub description: String,
    /// Material keys may be exported.
    pub exportable: bool,
    /// Seconds between automatic rotations.
    pub rotation_period: Option<u64>,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// The latest material key's version (it encrypts and signs).
    pub latest: u32,
    /// Versions below this no longer decrypt or verify.
    pub min_decrypt_version: u32,
    /// A disabled key does nothing until enabled again.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Soft-deleted: scheduled for destruction at this time (Unix seconds); it does nothing
    /// meanwhile.
    #[serde(default)]
    pub destroy_at: Option<u64>,
    /// When the latest material key was made (Unix seconds); automatic rotation counts from it.
    #[serde(default)]
    pub rotated_at: Option<u64>,
    /// Versions whose material was destroyed (their ciphertexts and signatures are gone for
    /// good).
    #[serde(default)]
    pub destroyed_versions: Vec<u32>,
}

fn enabled() -> bool {
    true
}

impl ElasticKey {
    /// Whether its rotation policy wants a new material key at `now`.
    pub fn rotation_due(&self, now: u64) -> bool {
        self.enabled
            && self.destroy_at.is_none()
            && self
                .rotation_period
                .is_some_and(|p| now >= self.rotated_at.unwrap_or(self.created).saturating_add(p))
    }

    /// Whether a soft-deleted key's destruction time has come.
    pub fn destruction_due(&self, now: u64) -> bool {
        self.destroy_at.is_some_and(|at| now >= at)
    }
}

/// `PATCH` of an elastic key: what changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// New display name.
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub name: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub description: Option<String>,
    /// New rotation period (seconds, at least 3600).
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub rotation_period: Option<u64>,
    /// Versions below this stop decrypting (1 to the latest).
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub min_decrypt_version: Option<u32>,
    /// Enable or disable.
    #[serde(default, deserialize_with = "crate::serde_ext::non_null")]
    pub enabled: Option<bool>,
}

/// What to do with one material key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    /// It decrypts and verifies again.
    Enable,
    /// It stops decrypting and verifying, its material kept.
    Disable,
    /// Its material is deleted: what it protected cannot be opened again.
    Destroy,
}

impl VersionAction {
    /// The audit operation name.
    pub fn audit_name(self) -> &'static str {
        match self {
            VersionAction::Enable => "enable-version",
            VersionAction::Disable => "disable-version",
            VersionAction::Destroy => "destroy-version",
        }
    }
}

/// One material key version as the API shows it (never its material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionView {
    /// The version.
    pub version: u32,
    /// Its `kid`.
    pub kid: String,
    /// When it was made (absent for destroyed versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// Disabled (or destroyed).
    pub disabled: bool,
    /// Whether it still decrypts and verifies.
    pub decrypts: bool,
    /// Whether it is the latest (it encrypts and signs).
    pub latest: bool,
    /// Its material was destroyed.
    pub destroyed: bool,
}

/// One material key.
#[derive(Clone, Serialize, Deserialize)]
pub struct Material {
    /// Its version.
    pub version: u32,
    /// The key (private or symmetric).
    #[serde(with = "cryptoutil_protocols::jose::jwk::private_serde")]
    pub jwk: Jwk,
    /// When it was made.
    #[serde(default)]
    pub created: u64,
    /// Disabled: it neither decrypts nor verifies.
    #[serde(default)]
    pub disabled: bool,
}

/// A change planned by the ring, to be written with its audit record, then applied.
pub enum Change {
    /// A new latest version (a rotation or an import): the material and the updated key.
    NewVersion {
        /// The updated elastic key.
        key: ElasticKey,
        /// The new material key.
        material: Material,
    },
    /// The elastic key's settings (an update or a soft deletion).
    Key(ElasticKey),
    /// One version enabled or disabled: the material as it becomes.
    Version(Material),
    /// One version's material destroyed: the updated key and the version.
    DestroyVersion {
        /// The updated elastic key.
        key: ElasticKey,
        /// The destroyed version.
        version: u32,
    },
}

/// An elastic key with its material keys.
pub struct Ring {
    /// The elastic key.
    pub key: ElasticKey,
    materials: BTreeMap<u32, Material>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("key", &self.key)
            .field("versions", &self.materials.len())
            .finish_non_exhaustive()
    }
}

fn bad(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

/// The `kid` of material key `version` of elastic key `id`.
pub fn kid(id: &ElasticKeyId, version: u32) -> String {
    format!("{id}.v{version}")
}

/// The public half of an asymmetric key; a symmetric key as it is.
fn public_or_secret(key: &Jwk) -> Result<Jwk, Error> {
    if key.kty() == "oct" {
        Ok(key.clone())
    } else {
        Ok(key.public()?)
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(bad("name: 1-128 characters"));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), Error> {
    if description.len() > 1024 {
        return Err(bad("description: at most 1024 bytes"));
    }
    Ok(())
}

fn check_rotation_period(period: u64) -> Result<(), Error> {
    if period < 3600 {
        return Err(bad("rotation_period: at least 3600 seconds"));
    }
    Ok(())
}

impl Ring {
    /// A new elastic key `id` of `tenant` from `spec`, and its first material key as the
    /// change that persists both.
    pub fn create(
        tenant: TenantId,
        id: ElasticKeyId,
        spec: NewElasticKey,
        now: u64,
    ) -> Result<(Self, Change), Error> {
        check_name(&spec.name)?;
        check_description(&spec.description)?;
        if let Some(p) = spec.rotation_period {
            check_rotation_period(p)?;
        }
        let ring = Self {
            key: ElasticKey {
                id,
                tenant,
                name: spec.name,
                algorithm: spec.algorithm,
                description: spec.description,
                exportable: spec.exportable,
                rotation_period: spec.rotation_period,
                created: now,
                latest: 0,
                min_decrypt_version: 1,
                enabled: true,
                destroy_at: None,
                rotated_at: None,
                destroyed_versions: Vec::new(),
            },
            materials: BTreeMap::new(),
        };
        let first = ring.plan_new_version(now, ring.key.algorithm.generate()?)?;
        Ok((ring, first))
    }

    /// A ring from its stored records; the latest version must be among them.
    pub fn from_records(key: ElasticKey, materials: Vec<Material>) -> Result<Self, Error> {
        let materials: BTreeMap<u32, Material> =
            materials.into_iter().map(|m| (m.version, m)).collect();
        if !materials.contains_key(&key.latest) {
            return Err(Error::Corrupt {
                table: "kms_material_keys_v1",
                key: format!("{}/{}/{:010}", key.tenant, key.id, key.latest),
                what: "the latest material key of an elastic key is missing",
            });
        }
        Ok(Self { key, materials })
    }

    /// A rotation: a new material key becomes the latest.
    pub fn plan_rotation(&self, now: u64) -> Result<Change, Error> {
        self.changeable()?;
        self.plan_new_version(now, self.key.algorithm.generate()?)
    }

    /// Like a rotation, with imported key material (BYOK) as the new latest version.
    pub fn plan_import(&self, now: u64, imported: Jwk) -> Result<Change, Error> {
        self.changeable()?;
        let jwk = self.key.algorithm.adopt(imported)?;
        self.plan_new_version(now, jwk)
    }

    fn plan_new_version(&self, now: u64, jwk: Jwk) -> Result<Change, Error> {
        let version = self.key.latest + 1;
        let mut key = self.key.clone();
        key.latest = version;
        key.rotated_at = Some(now);
        Ok(Change::NewVersion {
            material: Material {
                version,
                jwk: jwk.with_kid(kid(&key.id, version)),
                created: now,
                disabled: false,
            },
            key,
        })
    }

    /// The elastic key with `update` applied.
    pub fn plan_update(&self, update: KeyUpdate) -> Result<Change, Error> {
        self.changeable()?;
        let mut key = self.key.clone();
        if let Some(name) = update.name {
            check_name(&name)?;
            key.name = name;
        }
        if let Some(d) = update.description {
            check_description(&d)?;
            key.description = d;
        }
        if let Some(p) = update.rotation_period {
            check_rotation_period(p)?;
            key.rotation_period = Some(p);
        }
        if let Some(v) = update.min_decrypt_version {
            if v == 0 || v > key.latest {
                return Err(bad("min_decrypt_version: 1 to the latest version"));
            }
            key.min_decrypt_version = v;
        }
        if let Some(e) = update.enabled {
            key.enabled = e;
        }
        Ok(Change::Key(key))
    }

    /// The elastic key soft-deleted (destruction at `now` + [`DELETION_DELAY`]).
    pub fn plan_deletion(&self, now: u64) -> Change {
        let mut key = self.key.clone();
        key.destroy_at = Some(key.destroy_at.unwrap_or(now + DELETION_DELAY));
        Change::Key(key)
    }

    /// Enables, disables or destroys material key `version` (never the latest: rotate first).
    pub fn plan_version(&self, version: u32, action: VersionAction) -> Result<Change, Error> {
        let material = self.materials.get(&version).ok_or(Error::NotFound {
            what: "material key version",
        })?;
        if version == self.key.latest && action != VersionAction::Enable {
            return Err(Error::Conflict {
                what: "the latest version encrypts and signs; rotate first",
            });
        }
        Ok(match action {
            VersionAction::Destroy => {
                let mut key = self.key.clone();
                key.destroyed_versions.push(version);
                Change::DestroyVersion { key, version }
            }
            VersionAction::Enable | VersionAction::Disable => Change::Version(Material {
                disabled: action == VersionAction::Disable,
                ..material.clone()
            }),
        })
    }

    /// Makes a written change current.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::NewVersion { key, material } => {
                self.key = key;
                self.materials.insert(material.version, material);
            }
            Change::Key(key) => self.key = key,
            Change::Version(material) => {
                self.materials.insert(material.version, material);
            }
            Change::DestroyVersion { key, version } => {
                self.key = key;
                self.materials.remove(&version);
            }
        }
    }

    /// The versions whose material is stored (for the destruction job).
    pub fn stored_versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.materials.keys().copied()
    }

    /// Refuses every change (rotation, import, update) of a soft-deleted key: 403, like its
    /// use; only its destruction or the end of its deletion delay follow.
    fn changeable(&self) -> Result<(), Error> {
        if self.key.destroy_at.is_some() {
            return Err(Error::Forbidden {
                reason: "the elastic key is scheduled for deletion",
            });
        }
        Ok(())
    }

    /// Refuses every operation of a disabled or soft-deleted key.
    fn usable_key(&self) -> Result<(), Error> {
        if self.key.destroy_at.is_some() {
            return Err(Error::Forbidden {
                reason: "the elastic key is scheduled for deletion",
            });
        }
        if !self.key.enabled {
            return Err(Error::Forbidden {
                reason: "the elastic key is disabled",
            });
        }
        Ok(())
    }

    fn latest(&self) -> Result<&Jwk, Error> {
        self.usable_key()?;
        self.materials
            .get(&self.key.latest)
            .filter(|m| !m.disabled)
            .map(|m| &m.jwk)
            .ok_or(Error::Forbidden {
                reason: "the latest material key is disabled",
            })
    }

    /// The version of this key that a compact JWE's or JWS's `kid` names, if it names one.
    pub fn token_version(&self, token: &str) -> Option<u32> {
        let kid = header::compact_kid(token)?;
        let version = kid.strip_prefix(self.key.id.as_str())?.strip_prefix(".v")?;
        version.parse::<u32>().ok()
    }

    /// The material key a token's `kid` names, if it may still open or verify it.
    fn usable(&self, token: &str) -> Result<&Jwk, Error> {
        self.usable_key()?;
        let version = self.token_version(token).ok_or(Error::KeyNotFound)?;
        if self.key.destroyed_versions.contains(&version) {
            return Err(Error::Forbidden {
                reason: "this material key version was destroyed",
            });
        }
        if version < self.key.min_decrypt_version {
            return Err(Error::Forbidden {
                reason: "this material key version is below the minimum decryption version",
            });
        }
        match self.materials.get(&version) {
            None => Err(Error::KeyNotFound),
            Some(m) if m.disabled => Err(Error::Forbidden {
                reason: "this material key version is disabled",
            }),
            Some(m) => Ok(&m.jwk),
        }
    }

    fn jwe_pair(&self) -> Result<(KeyAlg, ContentAlg), Error> {
        match self.key.algorithm {
            KmsAlg::Jwe(alg, enc) => Ok((alg, enc)),
            KmsAlg::Jws(_) => Err(bad("this elastic key signs; it does not encrypt")),
        }
    }

    fn jws_alg(&self) -> Result<JwsAlg, Error> {
        match self.key.algorithm {
            KmsAlg::Jws(alg) => Ok(alg),
            KmsAlg::Jwe(..) => Err(bad("this elastic key encrypts; it does not sign")),
        }
    }

    /// The key and content algorithm that encrypt `len` bytes: the latest material key.
    pub fn encryption(&self, len: usize) -> Result<(&Jwk, ContentAlg), Error> {
        let (_, enc) = self.jwe_pair()?;
        if len > MAX_PAYLOAD {
            return Err(bad("plaintext too large"));
        }
        Ok((self.latest()?, enc))
    }

    /// The key and content algorithm that open `token`: the material key its `kid` names.
    pub fn decryption(&self, token: &str) -> Result<(&Jwk, KeyAlg, ContentAlg), Error> {
        let (alg, enc) = self.jwe_pair()?;
        Ok((self.usable(token)?, alg, enc))
    }

    /// The key that signs `len` bytes: the latest material key.
    pub fn signing(&self, len: usize) -> Result<&Jwk, Error> {
        self.jws_alg()?;
        if len > MAX_PAYLOAD {
            return Err(bad("payload too large"));
        }
        self.latest()
    }

    /// The key and algorithm that verify `token`: the material key its `kid` names.
    pub fn verification(&self, token: &str) -> Result<(&Jwk, JwsAlg), Error> {
        let alg = self.jws_alg()?;
        Ok((self.usable(token)?, alg))
    }

    /// What the JOSE service needs to encrypt: the latest key (its public half for
    /// asymmetric algorithms) and the content algorithm.
    pub fn encryption_job(&self, len: usize) -> Result<(Jwk, ContentAlg), Error> {
        let (key, enc) = self.encryption(len)?;
        Ok((public_or_secret(key)?, enc))
    }

    /// What the JOSE service needs to verify `token`: the key its `kid` names (its public
    /// half for asymmetric algorithms).
    pub fn verification_job(&self, token: &str) -> Result<Jwk, Error> {
        public_or_secret(self.verification(token)?.0)
    }

    /// A compact JWE of `plaintext` with the latest material key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, Error> {
        let (key, enc) = self.encryption(plaintext.len())?;
        Ok(jwe::encrypt_compact(key, enc, plaintext, &Map::new())?)
    }

    /// Opens a compact JWE made by one of this ring's usable material keys.
    pub fn decrypt(&self, token: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (key, alg, enc) = self.decryption(token)?;
        Ok(jwe::decrypt_compact(token, key, &[alg], &[enc])?.plaintext)
    }

    /// A compact JWS of `payload` with the latest material key.
    pub fn sign(&self, payload: &[u8]) -> Result<String, Error> {
        Ok(jws::sign_compact(
            self.signing(payload.len())?,
            payload,
            &Map::new(),
        )?)
    }

    /// Verifies a compact JWS made by one of this ring's usable material keys.
    pub fn verify(&self, token: &str) -> Result<Verified, Error> {
        let (key, alg) = self.verification(token)?;
        Ok(jws::verify_compact(token, key, &[alg])?)
    }

    /// 32 random bytes for a data key.
    pub fn random_data_key() -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut dk = Zeroizing::new(vec![0u8; 32]);
        cryptoutil_protocols::oauth::fill_random(&mut dk).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        Ok(dk)
    }

    /// The private JWK of `version` (the latest if `None`) encrypted to `recipient` (a public
    /// RSA-OAEP-256 or ECDH-ES+A256KW JWK with its `alg`), if the elastic key is exportable.
    pub fn export(&self, version: Option<u32>, recipient: &Jwk) -> Result<String, Error> {
        if !self.key.exportable {
            return Err(Error::Forbidden {
                reason: "the elastic key is not exportable",
            });
        }
        self.usable_key()?;
        let version = version.unwrap_or(self.key.latest);
        let material = self.materials.get(&version).ok_or(Error::NotFound {
            what: "material key version",
        })?;
        let alg = recipient.jwe_alg()?;
        if !matches!(alg, KeyAlg::RsaOaep256 | KeyAlg::EcdhEsA256KW) {
            return Err(bad(
                "the recipient key's alg must be RSA-OAEP-256 or ECDH-ES+A256KW",
            ));
        }
        if recipient.is_private() {
            return Err(bad("send the recipient's public key only"));
        }
        let private = material.jwk.to_private_value()?;
        let mut header = Map::new();
        header.insert("cty".into(), Value::from("jwk+json"));
        Ok(jwe::encrypt_compact(
            recipient,
            ContentAlg::A256GCM,
            private.as_bytes(),
            &header,
        )?)
    }

    /// Opens an import: a compact JWE (RSA-OAEP-256, A256GCM) of a private JWK, made with the
    /// public half of `import_key`.
    pub fn open_import(jwe_token: &str, import_key: &Jwk) -> Result<Jwk, Error> {
        let opened = jwe::decrypt_compact(
            jwe_token,
            import_key,
            &[KeyAlg::RsaOaep256],
            &[ContentAlg::A256GCM],
        )?;
        let text = std::str::from_utf8(&opened.plaintext)
            .map_err(|_| bad("the imported key is not a JWK"))?;
        Ok(Jwk::parse(text)?)
    }

    /// The public keys of the usable asymmetric material keys.
    pub fn public_keys(&self) -> Vec<Jwk> {
        self.materials
            .iter()
            .filter(|(v, m)| **v >= self.key.min_decrypt_version && !m.disabled)
            .filter(|(_, m)| m.jwk.kty() != "oct")
            .filter_map(|(_, m)| m.jwk.public().ok())
            .collect()
    }

    /// The material keys' metadata, newest first; destroyed versions too.
    pub fn versions(&self) -> Vec<VersionView> {
        let mut all: Vec<VersionView> = self
            .materials
            .iter()
            .map(|(v, m)| VersionView {
                version: *v,
                kid: m.jwk.kid.clone().unwrap_or_else(|| kid(&self.key.id, *v)),
                created: Some(m.created),
                disabled: m.disabled,
                decrypts: *v >= self.key.min_decrypt_version && !m.disabled,
                latest: *v == self.key.latest,
                destroyed: false,
            })
            .collect();
        all.extend(self.key.destroyed_versions.iter().map(|v| VersionView {
            version: *v,
            kid: kid(&self.key.id, *v),
            created: None,
            disabled: true,
            decrypts: false,
            latest: false,
            destroyed: true,
        }));
        all.sort_by_key(|v| std::cmp::Reverse(v.version));
        all
    }
}

#[cfg(test)]
mod tests;
