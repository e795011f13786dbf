use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::jose::{jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::unseal;
use cryptoutil_storage::Store;
use zeroize::Zeroizing;

use super::*;

fn config(pepper: Option<&str>) -> AuthzConfig {
    AuthzConfig {
        issuer: "https://authz.test".into(),
        access_token_ttl: Duration::from_secs(600),
        pepper: pepper.map(|p| Zeroizing::new(p.as_bytes().to_vec())),
        resources: [("jose", "https://jose.test"), ("kms", "https://kms.test")]
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn open(dir: &std::path::Path, key: &cryptoutil_protocols::unseal::UnsealKey) -> Arc<Store> {
    Arc::new(Store::open_redb(&dir.join("identity-authz.redb"), key).unwrap())
}

fn request(client_id: &str, secret: &str) -> TokenRequest {
    TokenRequest {
        client: ClientAuth {
            client_id: client_id.into(),
            secret: Zeroizing::new(secret.into()),
            method: AuthMethod::ClientSecretBasic,
        },
        grant_type: "client_credentials".into(),
        scope: None,
        resource: None,
    }
}

#[test]
fn rotation_keeps_the_old_key_published_for_the_overlap_and_everything_persists() {
    let dir = tempfile::tempdir().unwrap();
    let key = unseal::generate(1, 1).unwrap().0;
    let mut st = AuthzState::load(open(dir.path(), &key), config(None)).unwrap();
    assert!(st.needs_bootstrap());
    let (loaded, creds) =
        AuthzState::bootstrap_records(&st.store(), &st.pepper(), st.audiences()).unwrap();
    st.merge(loaded);
    assert!(!st.needs_bootstrap());

    let now = 1_800_000_000;
    let first = st.current_kid().unwrap();
    let grant = st
        .token(&request(&creds.client_id, &creds.client_secret), now)
        .unwrap();
    assert_eq!(grant.key.kid.as_deref(), Some(first.as_str()));
    assert_eq!(grant.claims["aud"], serde_json::json!(["jose", "kms"]));
    let old_token = jwt::sign(&grant.key, &grant.claims, "at+jwt").unwrap();

    let rotated =
        AuthzState::new_signing_key(&st.store(), st.current_key().as_ref().map(|k| (k, now)))
            .unwrap();
    let second = rotated.first_kid();
    st.merge(rotated);
    assert_ne!(first, second);
    assert_eq!(st.current_kid().unwrap(), second, "the new key signs");
    let kids = |v: serde_json::Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(st.jwks(now + 1)), vec![second.clone(), first.clone()]);
    // The old key stays until every token it signed has expired (ttl + 5 min), then goes.
    assert_eq!(kids(st.jwks(now + 600 + 299)).len(), 2);
    assert_eq!(kids(st.jwks(now + 600 + 300)), vec![second.clone()]);
    let set = JwkSet::parse(&st.jwks(now + 1).to_string()).unwrap();
    let v = jwt::Validation {
        issuer: Some("https://authz.test".into()),
        audience: Some("kms".into()),
        typ: None,
        leeway: Duration::ZERO,
        require_exp: true,
    };
    jwt::verify(&old_token, &set, &[JwsAlg::ES256], &v, now + 1).unwrap();

    // Reloaded from the store: same clients (the secret still works), same keys, same pepper.
    drop(st);
    let mut st = AuthzState::load(open(dir.path(), &key), config(None)).unwrap();
    assert!(!st.needs_bootstrap());
    assert_eq!(st.current_kid().unwrap(), second);
    assert_eq!(kids(st.jwks(now + 1)), vec![second, first]);
    st.token(&request(&creds.client_id, &creds.client_secret), now)
        .unwrap();
    assert!(matches!(
        st.token(&request(&creds.client_id, "wrong"), now),
        Err(crate::Error::OAuth(
            cryptoutil_protocols::oauth::TokenError::InvalidClient
        ))
    ));
}

#[test]
fn a_configured_pepper_is_the_key_of_the_secret_macs() {
    let dir = tempfile::tempdir().unwrap();
    let key = unseal::generate(1, 1).unwrap().0;
    let mut st = AuthzState::load(
        open(dir.path(), &key),
        config(Some("a configured pepper of 32+ bytes!")),
    )
    .unwrap();
    let (loaded, creds) =
        AuthzState::bootstrap_records(&st.store(), &st.pepper(), st.audiences()).unwrap();
    st.merge(loaded);
    st.token(&request(&creds.client_id, &creds.client_secret), 1)
        .unwrap();
    drop(st);
    // Another pepper: the stored MACs no longer match (the pepper is not in the store).
    let mut st = AuthzState::load(
        open(dir.path(), &key),
        config(Some("another pepper, also 32+ bytes...")),
    )
    .unwrap();
    assert!(st
        .token(&request(&creds.client_id, &creds.client_secret), 1)
        .is_err());
}
