//! Blocking persistence of rings through the key barrier: the elastic key under
//! `<tenant>/<id>` in `kms_elastic_keys_v1`, each material key under
//! `<tenant>/<id>/<version, 10 digits>` in `kms_material_keys_v1`, both serde records sealed by
//! the store. A record that does not decode is [`Error::Corrupt`] (our fault, never the
//! caller's).

use cryptoutil_protocols::ids::{ElasticKeyId, TenantId};
use cryptoutil_protocols::jose::Jwk;
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};

use super::state::{Change, ElasticKey, Material, Ring};
use crate::error::Error;
use crate::record::{decode, encode, scan};

/// Where the import key is sealed.
const IMPORT_KEY_RECORD: &[u8] = b"kms/import-key/v1";

fn key_record(tenant: &TenantId, id: &ElasticKeyId) -> Vec<u8> {
    format!("{tenant}/{id}").into_bytes()
}

fn material_record(tenant: &TenantId, id: &ElasticKeyId, version: u32) -> Vec<u8> {
    format!("{tenant}/{id}/{version:010}").into_bytes()
}

/// A new elastic key id (`ek-` and 96 random bits).
pub fn new_id() -> Result<ElasticKeyId, Error> {
    let random = cryptoutil_protocols::oauth::random_token(12).map_err(|_| Error::Internal {
        what: "random generator",
    })?;
    ElasticKeyId::parse(&format!("ek-{}", random.as_str())).map_err(|_| Error::Internal {
        what: "elastic key id",
    })
}

/// Whether elastic key `id` exists in `tenant`.
pub fn exists(store: &Store, tenant: &TenantId, id: &ElasticKeyId) -> Result<bool, Error> {
    Ok(store
        .get_sealed(Table::KmsElasticKeys, &key_record(tenant, id))?
        .is_some())
}

/// The elastic key `id` of `tenant` with its material keys (another tenant's key is not found,
/// whatever its id).
pub fn load(store: &Store, tenant: &TenantId, id: &ElasticKeyId) -> Result<Ring, Error> {
    let record = key_record(tenant, id);
    let plain = store
        .get_sealed(Table::KmsElasticKeys, &record)?
        .ok_or(Error::KeyNotFound)?;
    let key: ElasticKey = decode(Table::KmsElasticKeys, &record, &plain, "elastic key")?;
    let prefix = format!("{tenant}/{id}/");
    let materials: Vec<Material> = scan(
        store,
        Table::KmsMaterialKeys,
        prefix.as_bytes(),
        "material key",
    )?;
    Ring::from_records(key, materials)
}

/// The elastic keys whose record key starts with `prefix` (`<tenant>/`, or every tenant's with
/// an empty prefix).
pub fn scan_keys(store: &Store, prefix: &str) -> Result<Vec<ElasticKey>, Error> {
    scan(
        store,
        Table::KmsElasticKeys,
        prefix.as_bytes(),
        "elastic key",
    )
}

/// The sealed writes that make `change` of `ring` durable. A new version is *created*: a ring
/// that missed a committed rotation (a restart raced it) fails here instead of replacing a
/// material key that ciphertexts already name.
pub fn writes(store: &Store, ring: &Ring, change: &Change) -> Result<Vec<Write>, Error> {
    let (tenant, id) = (&ring.key.tenant, &ring.key.id);
    let key_write = |key: &ElasticKey| -> Result<Write, Error> {
        Ok(store.sealed_write(
            Table::KmsElasticKeys,
            &key_record(tenant, id),
            &encode(key)?,
        )?)
    };
    let material_write = |material: &Material, create: bool| -> Result<Write, Error> {
        let (record, plain) = (
            material_record(tenant, id, material.version),
            encode(material)?,
        );
        Ok(if create {
            store.sealed_create(Table::KmsMaterialKeys, &record, &plain)?
        } else {
            store.sealed_write(Table::KmsMaterialKeys, &record, &plain)?
        })
    };
    Ok(match change {
        Change::NewVersion { key, material } => {
            vec![material_write(material, true)?, key_write(key)?]
        }
        Change::Key(key) => vec![key_write(key)?],
        Change::Version(material) => vec![material_write(material, false)?],
        Change::DestroyVersion { key, version } => vec![
            Write::Delete {
                table: Table::KmsMaterialKeys,
                key: material_record(tenant, id, *version),
            },
            key_write(key)?,
        ],
    })
}

/// The writes that destroy `ring`'s elastic key and all its material keys.
pub fn destruction(ring: &Ring) -> Vec<Write> {
    let (tenant, id) = (&ring.key.tenant, &ring.key.id);
    let mut writes: Vec<Write> = ring
        .stored_versions()
        .map(|v| Write::Delete {
            table: Table::KmsMaterialKeys,
            key: material_record(tenant, id, v),
        })
        .collect();
    writes.push(Write::Delete {
        table: Table::KmsElasticKeys,
        key: key_record(tenant, id),
    });
    writes
}

/// The KMS's import key (see [`crate::import_key`]).
pub fn load_or_make_import_key(store: &Store) -> Result<Jwk, Error> {
    crate::import_key::load_or_make(store, IMPORT_KEY_RECORD)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cryptoutil_protocols::unseal;

    use super::super::state::{KeyUpdate, NewElasticKey, VersionAction};
    use super::*;
    use crate::kms::KmsAlg;

    fn open(dir: &std::path::Path, key: &unseal::UnsealKey) -> Arc<Store> {
        Arc::new(Store::open_redb(&dir.join("kms.redb"), key).unwrap())
    }

    fn commit(store: &Store, ring: &mut Ring, change: Change) {
        store.apply(writes(store, ring, &change).unwrap()).unwrap();
        ring.apply(change);
    }

    #[test]
    fn every_change_survives_a_reopen_and_another_tenant_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        let t1 = TenantId::parse("t1").unwrap();
        let spec = NewElasticKey {
            name: "orders".into(),
            algorithm: KmsAlg::parse("A256GCM").unwrap(),
            description: String::new(),
            exportable: false,
            rotation_period: None,
        };
        let s = open(dir.path(), &unseal);
        let (mut ring, first) = Ring::create(t1.clone(), new_id().unwrap(), spec, 100).unwrap();
        commit(&s, &mut ring, first);
        let id = ring.key.id.clone();
        let v1 = ring.encrypt(b"first").unwrap();
        let change = ring.plan_rotation(200).unwrap();
        commit(&s, &mut ring, change);
        let change = ring.plan_version(1, VersionAction::Disable).unwrap();
        commit(&s, &mut ring, change);
        let change = ring
            .plan_update(KeyUpdate {
                name: Some("renamed".into()),
                ..KeyUpdate::default()
            })
            .unwrap();
        commit(&s, &mut ring, change);
        // A second rotation planned from the old state cannot overwrite version 3 once a
        // first one committed it.
        let stale = ring.plan_rotation(300).unwrap();
        let racing = ring.plan_rotation(301).unwrap();
        s.apply(writes(&s, &ring, &racing).unwrap()).unwrap();
        assert!(s.apply(writes(&s, &ring, &stale).unwrap()).is_err());
        drop(s);

        let s = open(dir.path(), &unseal);
        let ring = load(&s, &t1, &id).unwrap();
        assert_eq!(ring.key.latest, 3);
        assert_eq!(ring.key.name, "renamed");
        assert!(matches!(ring.decrypt(&v1), Err(Error::Forbidden { .. })));
        let t2 = TenantId::parse("t2").unwrap();
        assert!(matches!(load(&s, &t2, &id), Err(Error::KeyNotFound)));
        assert!(exists(&s, &t1, &id).unwrap());
        assert!(!exists(&s, &t2, &id).unwrap());
        assert_eq!(scan_keys(&s, "t1/").unwrap().len(), 1);
        s.apply(destruction(&ring)).unwrap();
        assert!(!exists(&s, &t1, &id).unwrap());
        assert!(s
            .scan_sealed(Table::KmsMaterialKeys, b"t1/")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_record_that_does_not_decode_is_corrupt_with_its_table_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let unseal = unseal::generate(1, 1).unwrap().0;
        let s = open(dir.path(), &unseal);
        s.put_sealed(Table::KmsElasticKeys, b"t1/ek-bad", b"{not json")
            .unwrap();
        let err = load(
            &s,
            &TenantId::parse("t1").unwrap(),
            &ElasticKeyId::parse("ek-bad").unwrap(),
        )
        .unwrap_err();
        match err {
            Error::Corrupt { table, key, .. } => {
                assert_eq!(table, "kms_elastic_keys_v1");
                assert_eq!(key, "t1/ek-bad");
            }
            other => panic!("{other:?}"),
        }
    }
}
