//! One elastic key and its ring of material keys: the latest version encrypts and signs, every
//! version from `min_decrypt_version` on (and not disabled) still decrypts and verifies. JWE
//! and JWS carry the material key's `kid` (`<elastic id>.v<version>`), so a ciphertext names the
//! version that opens it. Everything is sealed through the key barrier: the elastic key under
//! `<tenant>/<id>` in `kms_elastic_keys_v1`, each material key under
//! `<tenant>/<id>/<version, 10 digits>` in `kms_material_keys_v1`; a rotation writes the new
//! version and the updated elastic key in one transaction.

use std::collections::BTreeMap;

use cryptoutil_protocols::jose::jwe::{self, ContentAlg, KeyAlg};
use cryptoutil_protocols::jose::jws::{self, Verified};
use cryptoutil_protocols::jose::{header, Jwk, JwsAlg};
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::Error;

/// Largest plaintext or payload (1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// What an elastic key does: JWE with a key-management algorithm (content always A256GCM), or
/// JWS. FIPS-approved choices only.
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

    fn generate(self) -> Result<Jwk, Error> {
        Ok(match self {
            KmsAlg::Jwe(alg, enc) => Jwk::generate_jwe(alg, enc)?,
            KmsAlg::Jws(alg) => Jwk::generate(alg)?,
        })
    }

    /// An imported private key, pinned to this algorithm if it can serve it (key type, curve,
    /// size); anything else is refused.
    fn adopt(self, jwk: Jwk) -> Result<Jwk, Error> {
        if !jwk.is_private() {
            return Err(corrupt(
                "the imported key must be a private (or symmetric) JWK",
            ));
        }
        let jwk = match self {
            KmsAlg::Jws(alg) => jwk.pinned(alg)?,
            KmsAlg::Jwe(alg, enc) => {
                let jwk = jwk.pinned_jwe(alg)?;
                // `dir` keys must be exactly the content key size: a trial encryption says so.
                jwe::encrypt_compact(&jwk, enc, b"", &Map::new())?;
                jwk
            }
        };
        Ok(jwk)
    }
}

/// A request for a new elastic key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewElasticKey {
    /// Display name, 1-128 characters.
    pub name: String,
    /// See [`KmsAlg::parse`].
    pub algorithm: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Whether material keys may be exported.
    #[serde(default)]
    pub exportable: bool,
    /// Seconds between automatic rotations.
    #[serde(default)]
    pub rotation_period: Option<u64>,
}

/// An elastic key (its record; no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticKey {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// The algorithm as named in the API.
    pub algorithm: String,
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

/// A version change planned by [`KeyRingState::plan_version`], applied once written.
pub struct VersionChange {
    key: ElasticKey,
    version: u32,
    action: VersionAction,
}

fn enabled() -> bool {
    true
}

/// `PATCH` of an elastic key: what changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New rotation period (seconds, at least 3600).
    #[serde(default)]
    pub rotation_period: Option<u64>,
    /// Versions below this stop decrypting (1 to the latest).
    #[serde(default)]
    pub min_decrypt_version: Option<u32>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// How long a soft-deleted key waits before destruction.
pub const DELETION_DELAY: u64 = 7 * 86_400;

/// A prepared rotation (see [`KeyRingState::plan_rotation`]).
pub struct Rotation {
    key: ElasticKey,
    version: u32,
    material: Material,
}

impl Rotation {
    /// The version it creates.
    pub fn version(&self) -> u32 {
        self.version
    }
}

/// One material key.
struct Material {
    jwk: Jwk,
    created: u64,
    disabled: bool,
}

/// An elastic key with its material keys.
pub struct KeyRingState {
    /// The elastic key.
    pub key: ElasticKey,
    alg: KmsAlg,
    materials: BTreeMap<u32, Material>,
}

impl std::fmt::Debug for KeyRingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRingState")
            .field("key", &self.key)
            .field("versions", &self.materials.len())
            .finish_non_exhaustive()
    }
}

fn key_record(tenant: &str, id: &str) -> Vec<u8> {
    format!("{tenant}/{id}").into_bytes()
}

fn material_record(tenant: &str, id: &str, version: u32) -> Vec<u8> {
    format!("{tenant}/{id}/{version:010}").into_bytes()
}

/// A material key's stored record (what [`KeyRingState::load`] reads back), zeroized on drop.
fn material_json(
    version: u32,
    jwk: &Jwk,
    created: u64,
    disabled: bool,
) -> Result<Zeroizing<String>, Error> {
    let private = jwk.to_private_value()?;
    Ok(Zeroizing::new(format!(
        "{{\"version\":{version},\"jwk\":{},\"created\":{created},\"disabled\":{disabled}}}",
        private.as_str()
    )))
}

/// The public half of an asymmetric key; a symmetric key as it is.
fn public_or_secret(key: &Jwk) -> Result<Jwk, Error> {
    if key.kty() == "oct" {
        Ok(key.clone())
    } else {
        Ok(key.public()?)
    }
}

fn kid(id: &str, version: u32) -> String {
    format!("{id}.v{version}")
}

fn corrupt(what: &'static str) -> Error {
    Error::BadRequest { reason: what }
}

fn valid_tenant(tenant: &str) -> Result<(), Error> {
    if tenant.is_empty() || tenant.len() > 128 || tenant.contains('/') {
        return Err(corrupt("tenant"));
    }
    Ok(())
}

impl KeyRingState {
    /// Blocking: a new elastic key with its first material key, persisted in one write.
    pub fn create(
        store: &Store,
        tenant: &str,
        spec: NewElasticKey,
        now: u64,
    ) -> Result<Self, Error> {
        let (ring, writes) = Self::plan_create(store, tenant, spec, now)?;
        store.apply(writes)?;
        Ok(ring)
    }

    /// A new elastic key with its first material key, and the writes that persist both (the
    /// caller commits them, with the key's audit record).
    pub fn plan_create(
        store: &Store,
        tenant: &str,
        spec: NewElasticKey,
        now: u64,
    ) -> Result<(Self, Vec<cryptoutil_storage::backend::Write>), Error> {
        valid_tenant(tenant)?;
        let alg = KmsAlg::parse(&spec.algorithm)?;
        if spec.name.is_empty() || spec.name.chars().count() > 128 {
            return Err(corrupt("name: 1-128 characters"));
        }
        if spec.description.len() > 1024 {
            return Err(corrupt("description: at most 1024 bytes"));
        }
        if spec.rotation_period.is_some_and(|p| p < 3600) {
            return Err(corrupt("rotation_period: at least 3600 seconds"));
        }
        let id = format!(
            "ek-{}",
            cryptoutil_protocols::oauth::random_token(12)
                .map_err(|_| corrupt("random"))?
                .as_str()
        );
        let key = ElasticKey {
            id,
            tenant: tenant.to_owned(),
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
        };
        let mut ring = Self {
            key,
            alg,
            materials: BTreeMap::new(),
        };
        let (rotation, writes) = ring.plan_rotation(store, now)?;
        ring.apply_rotation(rotation);
        Ok((ring, writes))
    }

    /// Blocking: the elastic key `id` of `tenant` with its material keys (another tenant's key
    /// is not found, whatever its id).
    pub fn load(store: &Store, tenant: &str, id: &str) -> Result<Self, Error> {
        valid_tenant(tenant)?;
        let plain = store
            .get_sealed(Table::KmsElasticKeys, &key_record(tenant, id))?
            .ok_or(Error::KeyNotFound)?;
        let key: ElasticKey =
            serde_json::from_slice(&plain).map_err(|_| corrupt("stored elastic key"))?;
        let alg = KmsAlg::parse(&key.algorithm)?;
        let mut materials = BTreeMap::new();
        let prefix = format!("{tenant}/{id}/");
        for (_, plain) in store.scan_sealed(Table::KmsMaterialKeys, prefix.as_bytes())? {
            let record: Value =
                serde_json::from_slice(&plain).map_err(|_| corrupt("stored material key"))?;
            let version = record
                .get("version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(corrupt("stored material key"))?;
            let jwk = Jwk::from_value(record.get("jwk").unwrap_or(&Value::Null))?;
            materials.insert(
                version,
                Material {
                    jwk,
                    created: record.get("created").and_then(Value::as_u64).unwrap_or(0),
                    disabled: record
                        .get("disabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                },
            );
        }
        if !materials.contains_key(&key.latest) {
            return Err(corrupt(
                "stored elastic key without its latest material key",
            ));
        }
        Ok(Self {
            key,
            alg,
            materials,
        })
    }

    /// Blocking: a new material key becomes the latest; the new version and the elastic key
    /// are written in one transaction before the ring changes.
    pub fn rotate(&mut self, store: &Store, now: u64) -> Result<u32, Error> {
        let (rotation, writes) = self.plan_rotation(store, now)?;
        store.apply(writes)?;
        Ok(self.apply_rotation(rotation))
    }

    /// A rotation prepared without I/O (the key generated, the records sealed): write the
    /// returned batch, then [`Self::apply_rotation`].
    pub fn plan_rotation(
        &self,
        store: &Store,
        now: u64,
    ) -> Result<(Rotation, Vec<cryptoutil_storage::backend::Write>), Error> {
        self.plan_new_version(store, now, self.alg.generate()?)
    }

    /// Like a rotation, with imported key material (BYOK) as the new latest version.
    pub fn plan_import(
        &self,
        store: &Store,
        now: u64,
        imported: Jwk,
    ) -> Result<(Rotation, Vec<cryptoutil_storage::backend::Write>), Error> {
        if self.key.destroy_at.is_some() {
            return Err(Error::Conflict {
                what: "elastic key scheduled for deletion",
            });
        }
        let jwk = self.alg.adopt(imported)?;
        self.plan_new_version(store, now, jwk)
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
            return Err(corrupt(
                "the recipient key's alg must be RSA-OAEP-256 or ECDH-ES+A256KW",
            ));
        }
        if recipient.is_private() {
            return Err(corrupt("send the recipient's public key only"));
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
            .map_err(|_| corrupt("the imported key is not a JWK"))?;
        Ok(Jwk::parse(text)?)
    }

    fn plan_new_version(
        &self,
        store: &Store,
        now: u64,
        jwk: Jwk,
    ) -> Result<(Rotation, Vec<cryptoutil_storage::backend::Write>), Error> {
        let version = self.key.latest + 1;
        let jwk = jwk.with_kid(kid(&self.key.id, version));
        let record = material_json(version, &jwk, now, false)?;
        let mut key = self.key.clone();
        key.latest = version;
        key.rotated_at = Some(now);
        let key_json = serde_json::to_vec(&key).map_err(|_| corrupt("record"))?;
        // `create`: a ring that missed a committed rotation (a restart raced it) fails here
        // instead of replacing a material key that ciphertexts already name.
        let writes = vec![
            store.sealed_create(
                Table::KmsMaterialKeys,
                &material_record(&key.tenant, &key.id, version),
                record.as_bytes(),
            )?,
            store.sealed_write(
                Table::KmsElasticKeys,
                &key_record(&key.tenant, &key.id),
                &key_json,
            )?,
        ];
        Ok((
            Rotation {
                key,
                version,
                material: Material {
                    jwk,
                    created: now,
                    disabled: false,
                },
            },
            writes,
        ))
    }

    /// Makes a written rotation current; the new version.
    pub fn apply_rotation(&mut self, rotation: Rotation) -> u32 {
        self.key = rotation.key;
        self.materials.insert(rotation.version, rotation.material);
        rotation.version
    }

    /// Blocking: versions below `version` stop decrypting and verifying (it cannot pass the
    /// latest).
    pub fn set_min_decrypt_version(&mut self, store: &Store, version: u32) -> Result<(), Error> {
        if version == 0 || version > self.key.latest {
            return Err(corrupt("min_decrypt_version: 1 to the latest version"));
        }
        let mut key = self.key.clone();
        key.min_decrypt_version = version;
        let key_json = serde_json::to_vec(&key).map_err(|_| corrupt("record"))?;
        store.put_sealed(
            Table::KmsElasticKeys,
            &key_record(&key.tenant, &key.id),
            &key_json,
        )?;
        self.key = key;
        Ok(())
    }

    /// The elastic key with `update` applied, and its write (apply with [`Self::set_key`] once
    /// written).
    pub fn plan_update(
        &self,
        store: &Store,
        update: KeyUpdate,
    ) -> Result<(ElasticKey, cryptoutil_storage::backend::Write), Error> {
        let mut key = self.key.clone();
        if key.destroy_at.is_some() {
            return Err(Error::Conflict {
                what: "elastic key scheduled for deletion",
            });
        }
        if let Some(name) = update.name {
            if name.is_empty() || name.chars().count() > 128 {
                return Err(corrupt("name: 1-128 characters"));
            }
            key.name = name;
        }
        if let Some(d) = update.description {
            if d.len() > 1024 {
                return Err(corrupt("description: at most 1024 bytes"));
            }
            key.description = d;
        }
        if let Some(p) = update.rotation_period {
            if p < 3600 {
                return Err(corrupt("rotation_period: at least 3600 seconds"));
            }
            key.rotation_period = Some(p);
        }
        if let Some(v) = update.min_decrypt_version {
            if v == 0 || v > key.latest {
                return Err(corrupt("min_decrypt_version: 1 to the latest version"));
            }
            key.min_decrypt_version = v;
        }
        if let Some(e) = update.enabled {
            key.enabled = e;
        }
        let write = self.key_write(store, &key)?;
        Ok((key, write))
    }

    /// The elastic key soft-deleted (destruction at `now` + [`DELETION_DELAY`]), and its write.
    pub fn plan_deletion(
        &self,
        store: &Store,
        now: u64,
    ) -> Result<(ElasticKey, cryptoutil_storage::backend::Write), Error> {
        let mut key = self.key.clone();
        key.destroy_at = Some(key.destroy_at.unwrap_or(now + DELETION_DELAY));
        let write = self.key_write(store, &key)?;
        Ok((key, write))
    }

    fn key_write(
        &self,
        store: &Store,
        key: &ElasticKey,
    ) -> Result<cryptoutil_storage::backend::Write, Error> {
        let json = serde_json::to_vec(key).map_err(|_| corrupt("record"))?;
        Ok(store.sealed_write(
            Table::KmsElasticKeys,
            &key_record(&key.tenant, &key.id),
            &json,
        )?)
    }

    /// Makes a written update current.
    pub fn set_key(&mut self, key: ElasticKey) {
        self.key = key;
    }

    /// Enables, disables or destroys material key `version` (never the latest: rotate first),
    /// and its writes (apply with [`Self::apply_version`] once written).
    pub fn plan_version(
        &self,
        store: &Store,
        version: u32,
        action: VersionAction,
    ) -> Result<(VersionChange, Vec<cryptoutil_storage::backend::Write>), Error> {
        let material = self.materials.get(&version).ok_or(Error::NotFound {
            what: "material key version",
        })?;
        if version == self.key.latest && action != VersionAction::Enable {
            return Err(Error::Conflict {
                what: "the latest version encrypts and signs; rotate first",
            });
        }
        let mut key = self.key.clone();
        let (tenant, id) = (&key.tenant, &key.id);
        let writes = match action {
            VersionAction::Destroy => {
                key.destroyed_versions.push(version);
                vec![
                    cryptoutil_storage::backend::Write::Delete {
                        table: Table::KmsMaterialKeys,
                        key: material_record(tenant, id, version),
                    },
                    self.key_write(store, &key)?,
                ]
            }
            VersionAction::Enable | VersionAction::Disable => {
                let record = material_json(
                    version,
                    &material.jwk,
                    material.created,
                    action == VersionAction::Disable,
                )?;
                vec![store.sealed_write(
                    Table::KmsMaterialKeys,
                    &material_record(tenant, id, version),
                    record.as_bytes(),
                )?]
            }
        };
        Ok((
            VersionChange {
                key,
                version,
                action,
            },
            writes,
        ))
    }

    /// Makes a written version change current.
    pub fn apply_version(&mut self, change: VersionChange) {
        match change.action {
            VersionAction::Destroy => {
                self.materials.remove(&change.version);
            }
            VersionAction::Enable | VersionAction::Disable => {
                if let Some(m) = self.materials.get_mut(&change.version) {
                    m.disabled = change.action == VersionAction::Disable;
                }
            }
        }
        self.key = change.key;
    }

    /// The writes that destroy this elastic key and all its material keys.
    pub fn plan_destruction(&self) -> Vec<cryptoutil_storage::backend::Write> {
        let (tenant, id) = (&self.key.tenant, &self.key.id);
        let mut writes: Vec<_> = self
            .materials
            .keys()
            .map(|v| cryptoutil_storage::backend::Write::Delete {
                table: Table::KmsMaterialKeys,
                key: material_record(tenant, id, *v),
            })
            .collect();
        writes.push(cryptoutil_storage::backend::Write::Delete {
            table: Table::KmsElasticKeys,
            key: key_record(tenant, id),
        });
        writes
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

    /// A data key: 32 random bytes and their JWE under the latest material key.
    pub fn data_key(&self) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
        let dk = Self::random_data_key()?;
        let jwe = self.encrypt(&dk)?;
        Ok((dk, jwe))
    }

    /// 32 random bytes for a data key.
    pub fn random_data_key() -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut dk = Zeroizing::new(vec![0u8; 32]);
        cryptoutil_protocols::oauth::fill_random(&mut dk).map_err(|_| corrupt("random"))?;
        Ok(dk)
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
        header::compact_kid(token)?
            .strip_prefix(&format!("{}.v", self.key.id))
            .and_then(|v| v.parse::<u32>().ok())
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
        match self.alg {
            KmsAlg::Jwe(alg, enc) => Ok((alg, enc)),
            KmsAlg::Jws(_) => Err(corrupt("this elastic key signs; it does not encrypt")),
        }
    }

    fn jws_alg(&self) -> Result<JwsAlg, Error> {
        match self.alg {
            KmsAlg::Jws(alg) => Ok(alg),
            KmsAlg::Jwe(..) => Err(corrupt("this elastic key encrypts; it does not sign")),
        }
    }

    /// What an engine needs to encrypt `len` bytes with the latest material key: the key (its
    /// public half for asymmetric algorithms) and the content algorithm.
    pub fn encryption_job(&self, len: usize) -> Result<(Jwk, ContentAlg), Error> {
        let (_, enc) = self.jwe_pair()?;
        if len > MAX_PAYLOAD {
            return Err(corrupt("plaintext too large"));
        }
        Ok((public_or_secret(self.latest()?)?, enc))
    }

    /// What an engine needs to open `token`: the material key its `kid` names and the content
    /// algorithm.
    pub fn decryption_job(&self, token: &str) -> Result<(Jwk, ContentAlg), Error> {
        let (_, enc) = self.jwe_pair()?;
        Ok((self.usable(token)?.clone(), enc))
    }

    /// What an engine needs to sign `len` bytes: the latest material key.
    pub fn signing_job(&self, len: usize) -> Result<Jwk, Error> {
        self.jws_alg()?;
        if len > MAX_PAYLOAD {
            return Err(corrupt("payload too large"));
        }
        Ok(self.latest()?.clone())
    }

    /// What an engine needs to verify `token`: the material key its `kid` names (its public
    /// half for asymmetric algorithms).
    pub fn verification_job(&self, token: &str) -> Result<Jwk, Error> {
        self.jws_alg()?;
        public_or_secret(self.usable(token)?)
    }

    /// A compact JWE of `plaintext` with the latest material key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, Error> {
        let (_, enc) = self.jwe_pair()?;
        if plaintext.len() > MAX_PAYLOAD {
            return Err(corrupt("plaintext too large"));
        }
        Ok(jwe::encrypt_compact(
            self.latest()?,
            enc,
            plaintext,
            &Map::new(),
        )?)
    }

    /// Opens a compact JWE made by one of this ring's usable material keys.
    pub fn decrypt(&self, token: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (alg, enc) = self.jwe_pair()?;
        let key = self.usable(token)?;
        Ok(jwe::decrypt_compact(token, key, &[alg], &[enc])?.plaintext)
    }

    /// A compact JWS of `payload` with the latest material key.
    pub fn sign(&self, payload: &[u8]) -> Result<String, Error> {
        self.jws_alg()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(corrupt("payload too large"));
        }
        Ok(jws::sign_compact(self.latest()?, payload, &Map::new())?)
    }

    /// Verifies a compact JWS made by one of this ring's usable material keys.
    pub fn verify(&self, token: &str) -> Result<Verified, Error> {
        let alg = self.jws_alg()?;
        let key = self.usable(token)?;
        Ok(jws::verify_compact(token, key, &[alg])?)
    }

    /// The public keys of the usable asymmetric material keys (`{"keys": [...]}`).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .materials
            .iter()
            .filter(|(v, m)| **v >= self.key.min_decrypt_version && !m.disabled)
            .filter(|(_, m)| m.jwk.kty() != "oct")
            .filter_map(|(_, m)| m.jwk.to_public_value().ok())
            .collect();
        json!({ "keys": keys })
    }

    /// The material keys' metadata, newest first (never material); destroyed versions too.
    pub fn versions(&self) -> Vec<Value> {
        let mut all: Vec<(u32, Value)> = self
            .materials
            .iter()
            .map(|(v, m)| {
                (*v, json!({
                    "version": v, "kid": m.jwk.kid, "created": m.created, "disabled": m.disabled,
                    "decrypts": *v >= self.key.min_decrypt_version && !m.disabled,
                    "latest": *v == self.key.latest, "destroyed": false,
                }))
            })
            .collect();
        all.extend(self.key.destroyed_versions.iter().map(|v| {
            (
                *v,
                json!({
                    "version": v, "kid": kid(&self.key.id, *v), "disabled": true, "decrypts": false,
                    "latest": false, "destroyed": true,
                }),
            )
        }));
        all.sort_by_key(|v| std::cmp::Reverse(v.0));
        all.into_iter().map(|(_, v)| v).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cryptoutil_protocols::unseal;

    use super::*;

    fn store(dir: &std::path::Path, key: &cryptoutil_protocols::unseal::UnsealKey) -> Arc<Store> {
        Arc::new(Store::open_redb(&dir.join("kms.redb"), key).unwrap())
    }

    fn spec(algorithm: &str) -> NewElasticKey {
        NewElasticKey {
            name: "orders".into(),
            algorithm: algorithm.into(),
            description: String::new(),
            exportable: false,
            rotation_period: None,
        }
    }

    #[test]
    fn old_versions_keep_decrypting_after_rotation_and_a_restart_until_the_minimum_moves() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        for algorithm in ["A256GCM", "A256KW", "ECDH-ES+A256KW"] {
            let s = store(dir.path(), &unseal);
            let mut ring = KeyRingState::create(&s, "t1", spec(algorithm), 100).unwrap();
            let id = ring.key.id.clone();
            let v1 = ring.encrypt(b"first").unwrap();
            assert_eq!(header::compact_kid(&v1), Some(format!("{id}.v1")));
            assert_eq!(ring.rotate(&s, 200).unwrap(), 2);
            let v2 = ring.encrypt(b"second").unwrap();
            assert_eq!(header::compact_kid(&v2), Some(format!("{id}.v2")));
            assert_eq!(ring.decrypt(&v1).unwrap().as_slice(), b"first");
            drop((ring, s));

            let s = store(dir.path(), &unseal);
            let mut ring = KeyRingState::load(&s, "t1", &id).unwrap();
            assert_eq!(ring.key.latest, 2);
            assert_eq!(
                ring.decrypt(&v1).unwrap().as_slice(),
                b"first",
                "{algorithm}"
            );
            assert_eq!(ring.decrypt(&v2).unwrap().as_slice(), b"second");
            assert!(KeyRingState::load(&s, "t2", &id).is_err(), "another tenant");
            ring.set_min_decrypt_version(&s, 2).unwrap();
            assert!(ring.decrypt(&v1).is_err(), "below the minimum");
            assert!(ring.decrypt(&v2).is_ok());
            assert!(ring.sign(b"x").is_err(), "an encryption key does not sign");
            let ring = KeyRingState::load(&s, "t1", &id).unwrap();
            assert!(ring.decrypt(&v1).is_err(), "the minimum is persisted");
            drop((ring, s));
        }
    }

    #[test]
    fn signatures_verify_across_versions_and_the_jwks_publishes_public_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        let s = store(dir.path(), &unseal);
        let mut ring = KeyRingState::create(&s, "t1", spec("ES256"), 100).unwrap();
        let jws1 = ring.sign(b"hello").unwrap();
        ring.rotate(&s, 200).unwrap();
        let jws2 = ring.sign(b"hello").unwrap();
        assert_eq!(ring.verify(&jws1).unwrap().payload, b"hello");
        assert_eq!(ring.verify(&jws2).unwrap().payload, b"hello");
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.get("d").is_none()));
        assert!(
            ring.encrypt(b"x").is_err(),
            "a signing key does not encrypt"
        );
        // Another ring's token is not ours, even with the same algorithm.
        let other = KeyRingState::create(&s, "t1", spec("ES256"), 100).unwrap();
        assert!(matches!(
            ring.verify(&other.sign(b"x").unwrap()),
            Err(Error::KeyNotFound)
        ));
        // HMAC keys sign too, and publish nothing.
        let hs = KeyRingState::create(&s, "t1", spec("HS256"), 100).unwrap();
        assert!(hs.verify(&hs.sign(b"m").unwrap()).is_ok());
        assert_eq!(hs.jwks()["keys"].as_array().unwrap().len(), 0);
        assert_eq!(ring.versions().len(), 2);
    }

    #[test]
    fn only_fips_approved_algorithms_are_accepted() {
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
        for good in ["A256GCM", "RSA-OAEP-256", "PS512", "EdDSA", "HS512"] {
            assert!(KmsAlg::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn imports_must_fit_the_algorithm_and_exports_need_an_exportable_key() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        let s = store(dir.path(), &unseal);
        let mut ring = KeyRingState::create(&s, "t1", spec("A256GCM"), 100).unwrap();
        let oct = |len: usize| {
            Jwk::from_value(&json!({"kty": "oct", "k": cryptoutil_protocols::jose::b64::encode(&vec![7u8; len])}))
                .unwrap()
        };
        assert!(
            ring.plan_import(&s, 200, oct(16)).is_err(),
            "AES-128 into A256GCM"
        );
        let es = Jwk::generate(JwsAlg::ES256).unwrap();
        assert!(
            ring.plan_import(&s, 200, es.public().unwrap()).is_err(),
            "public only"
        );
        assert!(ring.plan_import(&s, 200, es).is_err(), "EC into AES");
        let (rotation, writes) = ring.plan_import(&s, 200, oct(32)).unwrap();
        s.apply(writes).unwrap();
        assert_eq!(ring.apply_rotation(rotation), 2);
        let token = ring.encrypt(b"byok").unwrap();
        // The imported bytes really are the key: a JWE made with them directly opens.
        let direct = oct(32).pinned_jwe(KeyAlg::Dir).unwrap();
        assert_eq!(
            jwe::decrypt_compact(&token, &direct, &[KeyAlg::Dir], &[ContentAlg::A256GCM])
                .unwrap()
                .plaintext
                .as_slice(),
            b"byok"
        );
        let recipient = Jwk::generate_jwe(KeyAlg::EcdhEsA256KW, ContentAlg::A256GCM).unwrap();
        assert!(matches!(
            ring.export(None, &recipient.public().unwrap()),
            Err(Error::Forbidden { .. })
        ));
        ring.key.exportable = true;
        assert!(
            ring.export(None, &recipient).is_err(),
            "a private recipient key"
        );
        let exported = ring.export(Some(2), &recipient.public().unwrap()).unwrap();
        let opened = jwe::decrypt_compact(
            &exported,
            &recipient,
            &[KeyAlg::EcdhEsA256KW],
            &[ContentAlg::A256GCM],
        )
        .unwrap();
        let back = Jwk::parse(std::str::from_utf8(&opened.plaintext).unwrap()).unwrap();
        assert_eq!(
            back.kid.as_deref(),
            Some(format!("{}.v2", ring.key.id).as_str())
        );
    }
}
