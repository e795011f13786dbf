use std::io::Write as _;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_with(
    file_yaml: Option<&str>,
    vars: &[(&str, &str)],
) -> (Result<Loaded, ConfigError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    if let Some(y) = file_yaml {
        std::fs::write(&path, y).unwrap();
    }
    let file = file_yaml.map(|_| path.as_path());
    (load(file, &env(vars), &Flags::default()), dir)
}

#[test]
fn embedded_defaults_match_the_typed_defaults() {
    let (loaded, _d) = load_with(None, &[]);
    let from_yaml = serde_json::to_value(&loaded.unwrap().config).unwrap();
    let typed = serde_json::to_value(AppConfig::default()).unwrap();
    assert_eq!(
        from_yaml, typed,
        "config/defaults.yaml and the Default impls disagree"
    );
}

#[test]
fn layers_apply_in_order_and_remember_their_source() {
    let (loaded, _d) = load_with(
        Some("services:\n  kms:\n    public:\n      port: 8443\nlog:\n  level: debug\n"),
        &[("CRYPTOUTIL_LOG__LEVEL", "warn"), ("OTHER_VAR", "ignored")],
    );
    let loaded = loaded.unwrap();
    assert_eq!(loaded.config.services.kms.public.port, 8443);
    assert_eq!(loaded.config.log.level, "warn");
    assert!(matches!(
        loaded.source_of("services.kms.public.port"),
        Source::File(_)
    ));
    assert_eq!(
        loaded.source_of("log.level"),
        Source::Env("CRYPTOUTIL_LOG__LEVEL".into())
    );
    assert_eq!(
        loaded.source_of("supervision.max_restarts"),
        Source::Default
    );
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_its_source() {
    let (err, _d) = load_with(Some("services:\n  kms:\n    publik: {}\n"), &[]);
    let err = err.unwrap_err();
    assert_eq!(err.key, "services.kms.publik");
    assert!(matches!(err.set_by, Source::File(_)));
    assert!(err.to_string().contains("services.kms.publik"), "{err}");
}

#[test]
fn an_unknown_environment_key_is_named() {
    let (err, _d) = load_with(None, &[("CRYPTOUTIL_NOPE", "1")]);
    let err = err.unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.set_by.clone()),
        ("nope", Source::Env("CRYPTOUTIL_NOPE".into()))
    );
}

#[test]
fn a_bad_port_is_named_with_the_variable_that_set_it() {
    let (err, _d) = load_with(None, &[("CRYPTOUTIL_SERVICES__KMS__PUBLIC__PORT", "70000")]);
    let err = err.unwrap_err();
    assert_eq!(err.key, "services.kms.public.port");
    assert_eq!(
        err.set_by,
        Source::Env("CRYPTOUTIL_SERVICES__KMS__PUBLIC__PORT".into())
    );
}

#[test]
fn a_missing_secret_file_is_named() {
    let (err, _d) = load_with(
        Some("tls:\n  private_key: file:///nonexistent/key.pem\n"),
        &[],
    );
    let err = err.unwrap_err();
    assert_eq!(err.key, "tls.private_key");
    assert!(err.message.contains("/nonexistent/key.pem"), "{err}");
}

#[test]
fn a_missing_share_file_is_named() {
    let (err, _d) = load_with(
        Some("barrier:\n  unseal:\n    shares: [/nonexistent/share-1]\n"),
        &[],
    );
    assert_eq!(err.unwrap_err().key, "barrier.unseal.shares[0]");
}

#[test]
fn a_postgres_backend_needs_its_url_and_anchors_and_keeps_them_secret() {
    let (err, _d) = load_with(None, &[("CRYPTOUTIL_STORAGE__BACKEND", "postgres")]);
    let err = err.unwrap_err();
    assert!(err.key.starts_with("storage.postgres."), "{err}");
    let (err, _d) = load_with(None, &[("CRYPTOUTIL_STORAGE__BACKEND", "sqlite")]);
    assert_eq!(err.unwrap_err().key, "storage.backend");

    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("url");
    std::fs::write(
        &url,
        "postgresql://u:hunter2-not-printed@db.test/cryptoutil",
    )
    .unwrap();
    let (loaded, _d) = load_with(
        Some(&format!(
            "storage:\n  backend: postgres\n  postgres:\n    url: file://{}\n    trust_anchors: |\n      -----BEGIN CERTIFICATE-----\n",
            url.display()
        )),
        &[],
    );
    let loaded = loaded.unwrap();
    assert_eq!(loaded.config.storage.backend, StorageBackend::Postgres);
    assert!(loaded
        .config
        .storage
        .postgres
        .url
        .expose()
        .contains("hunter2"));
    let shown = format!("{:?} {}", loaded.config, loaded.render_redacted());
    assert!(
        !shown.contains("hunter2"),
        "the URL's password shows: {shown}"
    );
    let options = loaded.config.storage.postgres.options();
    assert!(!format!("{options:?}").contains("hunter2"));
}

#[test]
fn file_values_are_read_and_redacted_in_the_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    let mut f = std::fs::File::create(&key_path).unwrap();
    writeln!(f, "-----BEGIN PRIVATE KEY-----SECRETBYTES").unwrap();
    let chain_path = dir.path().join("chain.pem");
    std::fs::write(&chain_path, "CHAINTEXT\n").unwrap();
    let yaml = format!(
        "tls:\n  mode: static\n  private_key: file://{}\n  cert_chain: file://{}\n",
        key_path.display(),
        chain_path.display()
    );
    let (loaded, _d) = load_with(Some(&yaml), &[]);
    let loaded = loaded.unwrap();
    assert_eq!(
        loaded.config.tls.private_key.expose(),
        "-----BEGIN PRIVATE KEY-----SECRETBYTES"
    );
    assert_eq!(loaded.config.tls.cert_chain, "CHAINTEXT");
    let text = loaded.render_redacted();
    assert!(
        !text.contains("SECRETBYTES") && !text.contains("CHAINTEXT"),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
    assert!(!format!("{:?}", loaded.config).contains("SECRETBYTES"));
}

#[test]
fn a_duplicate_static_port_is_refused() {
    let (err, _d) = load_with(
        None,
        &[
            ("CRYPTOUTIL_SERVICES__KMS__PUBLIC__PORT", "8080"),
            ("CRYPTOUTIL_SERVICES__JOSE__ADMIN__PORT", "8080"),
        ],
    );
    let err = err.unwrap_err();
    assert!(err.message.contains("8080"), "{err}");
}

#[test]
fn the_data_dir_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let flags = Flags {
        data_dir: Some(dir.path().join("d")),
    };
    let loaded = load(None, &env(&[("CRYPTOUTIL_DATA_DIR", "/elsewhere")]), &flags).unwrap();
    assert_eq!(loaded.config.data_dir, dir.path().join("d"));
    assert_eq!(loaded.source_of("data_dir"), Source::Flag("--data-dir"));
}

#[test]
fn federation_is_configured_by_environment_and_checked() {
    let (loaded, _d) = load_with(
        None,
        &[
            (
                "CRYPTOUTIL_FEDERATION__IDENTITY_URL",
                "https://identity-authz:8443",
            ),
            ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
            ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
            ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "kms-peer"),
            (
                "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_SECRET",
                "s3cret-from-a-file",
            ),
            ("CRYPTOUTIL_FEDERATION__BREAKER__OPEN_TIMEOUT", "2s"),
            (
                "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
                "reject_all",
            ),
        ],
    );
    let loaded = loaded.unwrap();
    let f = &loaded.config.federation;
    assert_eq!(f.identity_url, "https://identity-authz:8443");
    assert!(f.identity_enabled && !f.jose_enabled);
    assert_eq!(
        f.breaker.machine().open_timeout,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        loaded.config.federation_fallback.identity_fallback_mode,
        federation::IdentityFallback::RejectAll
    );
    assert_eq!(
        loaded.source_of("federation.identity_url"),
        Source::Env("CRYPTOUTIL_FEDERATION__IDENTITY_URL".into())
    );
    assert_eq!(
        f.token_endpoint(),
        "https://identity-authz:8443/service/oauth2/v1/token",
        "the token endpoint defaults to identity-authz's"
    );
    assert_eq!(f.identity_issuer(), "https://identity-authz:8443");

    for (vars, key) in [
        (
            vec![("CRYPTOUTIL_FEDERATION__JOSE_ENABLED", "true")],
            "federation.jose_url",
        ),
        (
            vec![("CRYPTOUTIL_FEDERATION__CA_URL", "http://ca:8443")],
            "federation.ca_url",
        ),
        (
            vec![(
                "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
                "allow_all",
            )],
            "federation_fallback.identity_fallback_mode",
        ),
        (
            vec![("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials")],
            "federation.auth.client_id",
        ),
        (
            vec![
                ("CRYPTOUTIL_FEDERATION__IDENTITY_ENABLED", "true"),
                ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", "https://idp:8180"),
            ],
            "federation.auth.mode",
        ),
        (
            vec![
                ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "mtls"),
                ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "kms-peer"),
                ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", "https://idp:8180"),
            ],
            "federation.auth.client_cert",
        ),
        (
            vec![("CRYPTOUTIL_FEDERATION__RETRY__DEADLINE", "0s")],
            "federation.retry.deadline",
        ),
        (
            vec![("CRYPTOUTIL_FEDERATION__RETRY__MAX_RETRIES", "9")],
            "federation.retry.max_retries",
        ),
        (
            vec![("CRYPTOUTIL_FEDERATION__BREAKER__FAILURE_RATE", "0")],
            "federation.breaker.failure_rate",
        ),
    ] {
        let (err, _d) = load_with(None, &vars);
        let err = err.expect_err(key);
        assert_eq!(err.key, key, "{err}");
    }
    // allow_all with the development flag is accepted.
    let (ok, _d) = load_with(
        None,
        &[
            (
                "CRYPTOUTIL_FEDERATION_FALLBACK__IDENTITY_FALLBACK_MODE",
                "allow_all",
            ),
            ("CRYPTOUTIL_FEDERATION__DANGER_ALLOW_ALL_FALLBACK", "true"),
        ],
    );
    assert!(ok.is_ok());
}

/// The seed's names (issue 20): `CRYPTOUTIL_FEDERATION_IDENTITY_URL`-style variables and the
/// `federation.identity_client_*` keys work as aliases, keep their source, and a name set in
/// both forms is refused naming both.
#[test]
fn the_seed_s_federation_names_are_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let secret_url = format!("file://{}", secret.display());
    let (loaded, _d) = load_with(
        Some("federation:\n  identity_client_id: kms-peer\n  identity_token_endpoint: https://authz.example/token\n"),
        &[
            ("CRYPTOUTIL_FEDERATION_IDENTITY_URL", "https://identity-authz:8443"),
            ("CRYPTOUTIL_FEDERATION_IDENTITY_ENABLED", "true"),
            ("CRYPTOUTIL_FEDERATION__AUTH__MODE", "client_credentials"),
            ("CRYPTOUTIL_FEDERATION_IDENTITY_CLIENT_SECRET", &secret_url),
            ("CRYPTOUTIL_FEDERATION_FALLBACK_IDENTITY_FALLBACK_MODE", "reject_all"),
            ("CRYPTOUTIL_DATA_DIR", "/tmp/seed-style"),
        ],
    );
    let loaded = loaded.unwrap();
    let f = &loaded.config.federation;
    assert_eq!(f.identity_url, "https://identity-authz:8443");
    assert!(f.identity_enabled);
    assert_eq!(f.auth.client_id, "kms-peer");
    assert_eq!(f.auth.client_secret.expose(), "s3cret");
    assert_eq!(f.auth.token_endpoint, "https://authz.example/token");
    assert_eq!(
        loaded.config.federation_fallback.identity_fallback_mode,
        federation::IdentityFallback::RejectAll
    );
    assert_eq!(
        loaded.config.data_dir,
        std::path::PathBuf::from("/tmp/seed-style")
    );
    assert_eq!(
        loaded.source_of("federation.identity_url"),
        Source::Env("CRYPTOUTIL_FEDERATION_IDENTITY_URL".into())
    );
    assert_eq!(
        loaded.source_of("federation.auth.client_secret"),
        Source::Env("CRYPTOUTIL_FEDERATION_IDENTITY_CLIENT_SECRET".into())
    );
    assert!(matches!(
        loaded.source_of("federation.auth.client_id"),
        Source::File(_)
    ));
    assert!(
        !loaded.render_redacted().contains("s3cret"),
        "the alias's file stays a secret"
    );

    // mTLS names of the seed, from a file.
    let (loaded, _d) = load_with(
        Some("federation:\n  identity_client_cert: cert-pem\n  identity_client_key: key-pem\n  identity_ca_cert: ca-pem\n"),
        &[],
    );
    let auth = loaded.unwrap().config.federation.auth;
    assert_eq!(
        (
            auth.client_cert.as_str(),
            auth.client_key.expose(),
            auth.ca.as_str()
        ),
        ("cert-pem", "key-pem", "ca-pem")
    );

    // Both forms: refused, naming both.
    for (file, vars, key, other) in [
        (
            None,
            vec![
                ("CRYPTOUTIL_FEDERATION_IDENTITY_URL", "https://a:1"),
                ("CRYPTOUTIL_FEDERATION__IDENTITY_URL", "https://b:1"),
            ],
            "federation.identity_url",
            "CRYPTOUTIL_FEDERATION_IDENTITY_URL sets it too",
        ),
        (
            Some("federation:\n  identity_client_id: a\n  auth:\n    client_id: b\n"),
            vec![],
            "federation.identity_client_id",
            "federation.auth.client_id",
        ),
        (
            None,
            vec![
                ("CRYPTOUTIL_FEDERATION_IDENTITY_CLIENT_ID", "a"),
                ("CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID", "b"),
            ],
            "federation.identity_client_id",
            "CRYPTOUTIL_FEDERATION__AUTH__CLIENT_ID",
        ),
    ] {
        let (err, _d) = load_with(file, &vars);
        let err = err.unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.to_string().contains(other), "{err}");
        assert!(err.to_string().contains("set one of them"), "{err}");
    }
}
