//! The domain ring without spawning or storing anything.

use cryptoutil_protocols::jose::b64;
use serde_json::json;

use super::*;

fn tenant() -> TenantId {
    TenantId::parse("t1").unwrap()
}

fn ring(algorithm: &str, id: &str) -> Ring {
    let spec = NewElasticKey {
        name: "orders".into(),
        algorithm: KmsAlg::parse(algorithm).unwrap(),
        description: String::new(),
        exportable: false,
        rotation_period: None,
    };
    let (mut ring, first) =
        Ring::create(tenant(), ElasticKeyId::parse(id).unwrap(), spec, 100).unwrap();
    ring.apply(first);
    ring
}

fn rotate(ring: &mut Ring, now: u64) -> u32 {
    let change = ring.plan_rotation(now).unwrap();
    ring.apply(change);
    ring.key.latest
}

#[test]
fn old_versions_keep_decrypting_after_rotation_until_the_minimum_moves() {
    for algorithm in ["A256GCM", "A256KW", "ECDH-ES+A256KW"] {
        let mut ring = ring(algorithm, "ek-one");
        let v1 = ring.encrypt(b"first").unwrap();
        assert_eq!(header::compact_kid(&v1).as_deref(), Some("ek-one.v1"));
        assert_eq!(rotate(&mut ring, 200), 2);
        let v2 = ring.encrypt(b"second").unwrap();
        assert_eq!(header::compact_kid(&v2).as_deref(), Some("ek-one.v2"));
        assert_eq!(
            ring.decrypt(&v1).unwrap().as_slice(),
            b"first",
            "{algorithm}"
        );
        assert_eq!(ring.decrypt(&v2).unwrap().as_slice(), b"second");
        let change = ring
            .plan_update(KeyUpdate {
                min_decrypt_version: Some(2),
                ..KeyUpdate::default()
            })
            .unwrap();
        ring.apply(change);
        assert!(ring.decrypt(&v1).is_err(), "below the minimum");
        assert!(ring.decrypt(&v2).is_ok());
        assert!(ring.sign(b"x").is_err(), "an encryption key does not sign");
        assert!(ring
            .plan_update(KeyUpdate {
                min_decrypt_version: Some(3),
                ..KeyUpdate::default()
            })
            .is_err());
    }
}

#[test]
fn signatures_verify_across_versions_and_only_public_keys_are_published() {
    let mut ring = ring("ES256", "ek-sig");
    let jws1 = ring.sign(b"hello").unwrap();
    rotate(&mut ring, 200);
    let jws2 = ring.sign(b"hello").unwrap();
    assert_eq!(ring.verify(&jws1).unwrap().payload, b"hello");
    assert_eq!(ring.verify(&jws2).unwrap().payload, b"hello");
    let keys = ring.public_keys();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| !k.is_private()));
    assert!(
        ring.encrypt(b"x").is_err(),
        "a signing key does not encrypt"
    );
    // Another ring's token is not ours, even with the same algorithm.
    let other = self::ring("ES256", "ek-other");
    assert!(matches!(
        ring.verify(&other.sign(b"x").unwrap()),
        Err(Error::KeyNotFound)
    ));
    // A kid that merely starts with this key's id is not ours either.
    let longer = self::ring("ES256", "ek-sig2");
    assert!(matches!(
        ring.verify(&longer.sign(b"x").unwrap()),
        Err(Error::KeyNotFound)
    ));
    // HMAC keys sign too, and publish nothing.
    let hs = self::ring("HS256", "ek-hs");
    assert!(hs.verify(&hs.sign(b"m").unwrap()).is_ok());
    assert!(hs.public_keys().is_empty());
    assert_eq!(ring.versions().len(), 2);
}

#[test]
fn versions_disable_enable_destroy_but_never_the_latest() {
    let mut ring = ring("A256GCM", "ek-ver");
    let v1 = ring.encrypt(b"one").unwrap();
    rotate(&mut ring, 200);
    assert!(matches!(
        ring.plan_version(2, VersionAction::Disable),
        Err(Error::Conflict { .. })
    ));
    let change = ring.plan_version(1, VersionAction::Disable).unwrap();
    ring.apply(change);
    assert!(matches!(ring.decrypt(&v1), Err(Error::Forbidden { .. })));
    let change = ring.plan_version(1, VersionAction::Enable).unwrap();
    ring.apply(change);
    assert_eq!(ring.decrypt(&v1).unwrap().as_slice(), b"one");
    let change = ring.plan_version(1, VersionAction::Destroy).unwrap();
    ring.apply(change);
    assert!(matches!(ring.decrypt(&v1), Err(Error::Forbidden { .. })));
    let versions = ring.versions();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.destroyed, v.latest))
            .collect::<Vec<_>>(),
        vec![(2, false, true), (1, true, false)]
    );
    assert_eq!(ring.stored_versions().collect::<Vec<_>>(), vec![2]);
    assert!(matches!(
        ring.plan_version(9, VersionAction::Destroy),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_deleted_or_disabled_key_does_nothing_and_refuses_changes() {
    let mut ring = ring("A256GCM", "ek-del");
    let change = ring.plan_update(KeyUpdate {
        enabled: Some(false),
        ..KeyUpdate::default()
    });
    ring.apply(change.unwrap());
    assert!(matches!(ring.encrypt(b"x"), Err(Error::Forbidden { .. })));
    let deleted = ring.plan_deletion(1000);
    ring.apply(deleted);
    assert_eq!(ring.key.destroy_at, Some(1000 + DELETION_DELAY));
    assert!(ring.key.destruction_due(1000 + DELETION_DELAY));
    assert!(!ring.key.rotation_due(u64::MAX));
    assert!(matches!(
        ring.plan_update(KeyUpdate::default()),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        ring.plan_rotation(1001),
        Err(Error::Forbidden { .. })
    ));
}

#[test]
fn imports_must_fit_the_algorithm_and_exports_need_an_exportable_key() {
    let mut ring = ring("A256GCM", "ek-byok");
    let oct = |len: usize| {
        Jwk::from_value(&json!({"kty": "oct", "k": b64::encode(&vec![7u8; len])})).unwrap()
    };
    assert!(
        ring.plan_import(200, oct(16)).is_err(),
        "AES-128 into A256GCM"
    );
    let es = Jwk::generate(JwsAlg::ES256).unwrap();
    assert!(
        ring.plan_import(200, es.public().unwrap()).is_err(),
        "public only"
    );
    assert!(ring.plan_import(200, es).is_err(), "EC into AES");
    let change = ring.plan_import(200, oct(32)).unwrap();
    ring.apply(change);
    assert_eq!(ring.key.latest, 2);
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
    assert_eq!(back.kid.as_deref(), Some("ek-byok.v2"));
}

#[test]
fn records_without_their_latest_material_are_corrupt_not_a_bad_request() {
    let ring = ring("A256GCM", "ek-lost");
    let mut key = ring.key.clone();
    key.latest = 2;
    assert!(matches!(
        Ring::from_records(key, Vec::new()),
        Err(Error::Corrupt { .. })
    ));
}
