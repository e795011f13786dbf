use cryptoutil_protocols::unseal;

use super::*;

const SECRET: &[u8] = b"known-secret-7f3a9c2e-do-not-store-in-plaintext";

fn key() -> UnsealKey {
    unseal::generate(1, 1).unwrap().0
}

#[test]
fn a_sealed_secret_never_appears_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.redb");
    let k = key();
    {
        let store = Store::open_redb(&path, &k).unwrap();
        store
            .put_sealed(Table::Records, b"secret/1", SECRET)
            .unwrap();
        assert_eq!(
            store
                .get_sealed(Table::Records, b"secret/1")
                .unwrap()
                .unwrap()
                .as_slice(),
            SECRET
        );
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "plaintext found in the redb file"
    );
    // Nor does a 16-byte piece of it (no partial leak either).
    assert!(!bytes
        .windows(16)
        .any(|w| SECRET.windows(16).any(|s| s == w)));
    // Reopened with the same key, the secret is still there.
    let store = Store::open_redb(&path, &k).unwrap();
    assert_eq!(
        store
            .get_sealed(Table::Records, b"secret/1")
            .unwrap()
            .unwrap()
            .as_slice(),
        SECRET
    );
}

#[test]
fn another_unseal_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.redb");
    drop(Store::open_redb(&path, &key()).unwrap());
    let err = Store::open_redb(&path, &key()).unwrap_err();
    assert!(matches!(err, Error::WrongUnsealKey { .. }), "{err}");
}

#[test]
fn a_record_moved_to_another_key_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_redb(&dir.path().join("s.redb"), &key()).unwrap();
    store.put_sealed(Table::Records, b"a", SECRET).unwrap();
    let envelope = store.get_plain(Table::Records, b"a").unwrap().unwrap();
    store.put_plain(Table::Records, b"b", &envelope).unwrap();
    let err = store.get_sealed(Table::Records, b"b").unwrap_err();
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    let mut flipped = envelope.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    store.put_plain(Table::Records, b"a", &flipped).unwrap();
    assert!(matches!(
        store.get_sealed(Table::Records, b"a"),
        Err(Error::Tampered { .. })
    ));
}

#[test]
fn rotated_content_keys_still_open_old_records_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let k = key();
    {
        let store = Store::open_redb(&path, &k).unwrap();
        store.put_sealed(Table::Records, b"old", b"one").unwrap();
        assert_eq!(store.rotate_content_key().unwrap(), 2);
        store.put_sealed(Table::Records, b"new", b"two").unwrap();
    }
    let store = Store::open_redb(&path, &k).unwrap();
    assert_eq!(
        store
            .get_sealed(Table::Records, b"old")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"one"
    );
    assert_eq!(
        store
            .get_sealed(Table::Records, b"new")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"two"
    );
    let envelope = store.get_plain(Table::Records, b"new").unwrap().unwrap();
    assert_eq!(&envelope[1..5], &2u32.to_be_bytes());
}

#[test]
fn a_second_open_of_the_same_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let k = key();
    let _first = Store::open_redb(&path, &k).unwrap();
    let err = Store::open_redb(&path, &k).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}
