//! Loading in layers with provenance: every leaf remembers which layer set it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{AppConfig, DEFAULTS_YAML, ENV_PREFIX};

/// A secret file larger than this is refused.
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Who set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `config/defaults.yaml`, embedded in the binary.
    Default,
    /// The `--config` file.
    File(PathBuf),
    /// A `CRYPTOUTIL_*` environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("the embedded defaults"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// An invalid configuration: the key, who set it, what is wrong. Exit status 64.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration: `{key}` (set by {set_by}): {message}")]
pub struct ConfigError {
    /// Dotted key (`services.kms.public.port`).
    pub key: String,
    /// Who set it.
    pub set_by: Source,
    /// What is wrong.
    pub message: String,
}

/// A loaded configuration and where each value came from.
#[derive(Debug)]
pub struct Loaded {
    /// The typed configuration.
    pub config: AppConfig,
    provenance: BTreeMap<String, Source>,
    secret_paths: BTreeSet<String>,
}

impl Loaded {
    /// Who set `key` (the nearest enclosing key that was set).
    pub fn source_of(&self, key: &str) -> Source {
        source_of(&self.provenance, key)
    }

    /// The merged configuration as YAML, secrets (typed secrets and every `file://` value)
    /// redacted, each line annotated with nothing secret.
    pub fn render_redacted(&self) -> String {
        let mut value = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        for path in &self.secret_paths {
            if let Some(slot) = pointer_mut(&mut value, path) {
                *slot = Value::String("<redacted>".into());
            }
        }
        serde_norway::to_string(&value).unwrap_or_default()
    }
}

/// Command-line overrides, applied last.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

/// Loads defaults, then `file`, then `env` (only `CRYPTOUTIL_*` entries are read), then `flags`.
pub fn load(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: &Flags,
) -> Result<Loaded, ConfigError> {
    let mut provenance = BTreeMap::new();
    let mut merged = Value::Object(Map::new());

    let defaults: Value = serde_norway::from_str(DEFAULTS_YAML).map_err(|e| ConfigError {
        key: String::new(),
        set_by: Source::Default,
        message: e.to_string(),
    })?;
    // The top-level sections (`federation`, `federation_fallback`, ...), longest first, for
    // single-underscore variables.
    let mut sections: Vec<String> = defaults
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_object())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    sections.sort_by_key(|s| std::cmp::Reverse(s.len()));
    merge(&mut merged, defaults, "", &Source::Default, &mut provenance);

    if let Some(path) = file {
        let source = Source::File(path.to_owned());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: "--config".into(),
            set_by: Source::Flag("--config"),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        let value: Value = serde_norway::from_str(&text).map_err(|e| ConfigError {
            key: yaml_error_key(&e),
            set_by: source.clone(),
            message: e.to_string(),
        })?;
        match value {
            Value::Object(_) => merge(&mut merged, value, "", &source, &mut provenance),
            Value::Null => {}
            _ => {
                return Err(ConfigError {
                    key: String::new(),
                    set_by: source,
                    message: "the file must be a YAML mapping".into(),
                })
            }
        }
    }

    // Which variable set each key: one key set by two variables (a name and its alias) is
    // refused rather than resolved by the order of the environment.
    let mut set_by_env: BTreeMap<String, String> = BTreeMap::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let source = Source::Env(name.clone());
        let segments: Vec<String> = if rest.contains("__") {
            rest.split("__").map(str::to_ascii_lowercase).collect()
        } else {
            single_underscore(&rest.to_ascii_lowercase(), &sections)
        };
        if let Some(other) = set_by_env.insert(segments.join("."), name.clone()) {
            return Err(ConfigError {
                key: segments.join("."),
                set_by: source,
                message: format!("{other} sets it too: set one of them"),
            });
        }
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError {
                key: name.clone(),
                set_by: source,
                message: "empty key segment (use __ between levels)".into(),
            });
        }
        let mut value = parse_env_value(raw);
        for segment in segments.iter().rev() {
            value = Value::Object(Map::from_iter([(segment.clone(), value)]));
        }
        merge(&mut merged, value, "", &source, &mut provenance);
    }

    if let Some(dir) = &flags.data_dir {
        let value = Value::Object(Map::from_iter([(
            "data_dir".into(),
            Value::String(dir.display().to_string()),
        )]));
        merge(
            &mut merged,
            value,
            "",
            &Source::Flag("--data-dir"),
            &mut provenance,
        );
    }

    federation_aliases(&mut merged, &mut provenance)?;
    let mut secret_paths = BTreeSet::new();
    resolve_files(&mut merged, "", &provenance, &mut secret_paths)?;

    let config: AppConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // The path already ends with an unknown field's name.
        let key = if path == "." {
            unknown_field(&inner).unwrap_or_default().to_owned()
        } else {
            path
        };
        ConfigError {
            set_by: source_of(&provenance, &key),
            key,
            message: inner,
        }
    })?;
    if let Some((key, message)) = config.validate().into_iter().next() {
        return Err(ConfigError {
            set_by: source_of(&provenance, &key),
            key,
            message,
        });
    }
    Ok(Loaded {
        config,
        provenance,
        secret_paths,
    })
}

/// The key a variable without `__` names (the seed's style, `CRYPTOUTIL_FEDERATION_IDENTITY_URL`):
/// `<section>.<rest>` when its name begins with a top-level section and an underscore, else the
/// top-level key of that name (`CRYPTOUTIL_DATA_DIR`).
fn single_underscore(name: &str, sections: &[String]) -> Vec<String> {
    if sections.iter().any(|s| s == name) {
        return vec![name.to_owned()];
    }
    for section in sections {
        if let Some(rest) = name
            .strip_prefix(section.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .filter(|r| !r.is_empty())
        {
            return vec![section.clone(), rest.to_owned()];
        }
    }
    vec![name.to_owned()]
}

/// The seed's names for peer authentication, `federation.<alias>`, and the key each stands for
/// under `federation.auth`.
const FEDERATION_ALIASES: [(&str, &str); 6] = [
    ("identity_client_cert", "client_cert"),
    ("identity_client_key", "client_key"),
    ("identity_ca_cert", "ca"),
    ("identity_client_id", "client_id"),
    ("identity_client_secret", "client_secret"),
    ("identity_token_endpoint", "token_endpoint"),
];

/// Moves each alias of [`FEDERATION_ALIASES`] (from any layer) to its key, which keeps the
/// alias's source; an alias whose key another layer or variable also set is refused, naming
/// both.
fn federation_aliases(
    merged: &mut Value,
    prov: &mut BTreeMap<String, Source>,
) -> Result<(), ConfigError> {
    let Some(fed) = merged.get_mut("federation").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (alias, key) in FEDERATION_ALIASES {
        let Some(value) = fed.remove(alias) else {
            continue;
        };
        let (alias_path, canonical) = (
            format!("federation.{alias}"),
            format!("federation.auth.{key}"),
        );
        let alias_source = source_of(prov, &alias_path);
        let canonical_source = source_of(prov, &canonical);
        if canonical_source != Source::Default {
            return Err(ConfigError {
                key: alias_path,
                set_by: alias_source,
                message: format!(
                    "an alias of `{canonical}`, which {canonical_source} sets too: set one of them"
                ),
            });
        }
        let auth = fed
            .entry("auth")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(auth) = auth.as_object_mut() else {
            return Err(ConfigError {
                key: "federation.auth".into(),
                set_by: source_of(prov, "federation.auth"),
                message: "must be a mapping".into(),
            });
        };
        auth.insert(key.to_owned(), value);
        let below = format!("{alias_path}.");
        prov.retain(|k, _| k != &alias_path && !k.starts_with(&below));
        prov.insert(canonical, alias_source);
    }
    Ok(())
}

/// Environment values are YAML scalars or flow collections (`8080`, `true`, `[a, b]`);
/// anything that does not parse is taken as a string.
fn parse_env_value(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::String(String::new());
    }
    match serde_norway::from_str::<Value>(raw) {
        Ok(Value::Null) | Err(_) => Value::String(raw.to_owned()),
        Ok(v) => v,
    }
}

fn merge(
    base: &mut Value,
    overlay: Value,
    path: &str,
    source: &Source,
    prov: &mut BTreeMap<String, Source>,
) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let p = join(path, &k);
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge(existing, v, &p, source, prov)
                    }
                    _ => {
                        record(&v, &p, source, prov);
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => {
            record(&o, path, source, prov);
            *b = o;
        }
    }
}

fn record(value: &Value, path: &str, source: &Source, prov: &mut BTreeMap<String, Source>) {
    prov.insert(path.to_owned(), source.clone());
    if let Value::Object(map) = value {
        for (k, v) in map {
            record(v, &join(path, k), source, prov);
        }
    }
}

fn resolve_files(
    value: &mut Value,
    path: &str,
    prov: &BTreeMap<String, Source>,
    secrets: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                resolve_files(v, &join(path, k), prov, secrets)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                resolve_files(v, &format!("{path}[{i}]"), prov, secrets)?;
            }
        }
        Value::String(s) => {
            if let Some(file) = s.strip_prefix("file://") {
                let content = read_secret_file(Path::new(file)).map_err(|message| ConfigError {
                    key: path.to_owned(),
                    set_by: source_of(prov, path),
                    message,
                })?;
                *s = content;
                secrets.insert(path.to_owned());
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "secret file {} is larger than {MAX_SECRET_FILE} bytes",
            path.display()
        ));
    }
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    Ok(text)
}

fn source_of(prov: &BTreeMap<String, Source>, key: &str) -> Source {
    let mut k = key.to_owned();
    loop {
        if let Some(s) = prov.get(&k) {
            return s.clone();
        }
        // Strip the last `[i]` or `.segment`.
        match k.rfind(['.', '[']) {
            Some(i) => k.truncate(i),
            None => return prov.get("").cloned().unwrap_or(Source::Default),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// serde's "unknown field `x`, expected ..." names the field outside the path.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn yaml_error_key(e: &serde_norway::Error) -> String {
    e.location()
        .map(|l| format!("line {} column {}", l.line(), l.column()))
        .unwrap_or_default()
}

fn pointer_mut<'a>(value: &'a mut Value, dotted: &str) -> Option<&'a mut Value> {
    let mut current = value;
    for part in dotted.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        current = current.get_mut(name)?;
        if let Some(i) = index {
            current = current.get_mut(i)?;
        }
    }
    Some(current)
}
