//! JSON Web Encryption (RFC 7516): compact and JSON serializations (several recipients), the
//! key management and content encryption algorithms of RFC 7518 within our FIPS set.
//!
//! Decryption takes allow-lists for `alg` and `enc`; the recipient key's pinned `alg` must equal
//! the header's. `zip` is refused (compression before encryption leaks plaintext length
//! patterns), as are RSA1_5 and any `crit`.

pub mod alg;
pub(crate) mod content;
mod kdf;
pub mod keymgmt;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub use alg::{ContentAlg, KeyAlg};

use super::b64;
use super::error::{bounded, JoseError, Result};
use super::header;
use super::jwk::{Jwk, JwkSet};

/// A decrypted JWE.
#[derive(Debug)]
pub struct Decrypted {
    /// The JOSE header of the recipient that decrypted (protected, shared and per-recipient).
    pub header: Map<String, Value>,
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key management algorithm.
    pub alg: KeyAlg,
    /// The content encryption algorithm.
    pub enc: ContentAlg,
    /// The recipient's `kid`, if any.
    pub kid: Option<String>,
}

/// Encrypts `plaintext` to `key` (its pinned `alg`) with `enc`, compact serialization. `extra`
/// members join the protected header; a `p2c` there sets the PBES2 iteration count (default
/// [`keymgmt::PBES2_ITERATIONS`]; some peers, jwcrypto among them, accept at most 16384).
pub fn encrypt_compact(
    key: &Jwk,
    enc: ContentAlg,
    plaintext: &[u8],
    extra: &Map<String, Value>,
) -> Result<String> {
    refuse_forbidden(extra)?;
    let alg = key.jwe_alg()?;
    // A caller's `p2c` is an instruction to PBES2, not a header member of its own.
    let mut extra = std::borrow::Cow::Borrowed(extra);
    let p2c = match extra.contains_key("p2c") {
        true => take_p2c(extra.to_mut())?,
        false => None,
    };
    let delivery = keymgmt::deliver(alg, enc, key.material(), None, p2c)?;
    let fixed = [("alg", alg.as_str()), ("enc", enc.as_str())];
    let protected = match &key.kid {
        Some(kid) => header::encode_protected(
            &[fixed[0], fixed[1], ("kid", kid)],
            &[&delivery.header, &extra],
        ),
        None => header::encode_protected(&fixed, &[&delivery.header, &extra]),
    }?;
    let sealed = content::encrypt(enc, &delivery.cek, plaintext, protected.as_bytes())?;
    // One buffer, base64 written straight into it: this path is hot for KMS encrypt.
    let parts: [&[u8]; 4] = [
        &delivery.encrypted_key,
        &sealed.iv,
        &sealed.ciphertext,
        &sealed.tag,
    ];
    let mut out = String::with_capacity(
        protected.len() + parts.iter().map(|p| p.len() * 4 / 3 + 4).sum::<usize>(),
    );
    out.push_str(&protected);
    for part in parts {
        out.push('.');
        b64::encode_into(part, &mut out);
    }
    Ok(out)
}

/// Decrypts a compact JWE with `key`.
pub fn decrypt_compact(
    token: &str,
    key: &Jwk,
    algs: &[KeyAlg],
    encs: &[ContentAlg],
) -> Result<Decrypted> {
    let token = bounded(token)?;
    let parts: Vec<&str> = token.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(JoseError::Malformed {
            what: "compact JWE (expected five parts)",
        });
    };
    let header = parse_header(protected)?;
    let (alg, enc) = check_header(&header, algs, encs)?;
    check_key(key, alg)?;
    let cek = keymgmt::recover(
        alg,
        enc,
        key.material(),
        &b64::decode(encrypted_key, "JWE encrypted key")?,
        &header,
    )?;
    let plaintext = content::decrypt(
        enc,
        &cek,
        &b64::decode(iv, "JWE iv")?,
        &b64::decode(ciphertext, "JWE ciphertext")?,
        &b64::decode(tag, "JWE tag")?,
        protected.as_bytes(),
    )?;
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok(Decrypted {
        header,
        plaintext,
        alg,
        enc,
        kid,
    })
}

/// Encrypts to several recipients (general JSON) or one (flattened JSON). Per-recipient header
/// members (epk, iv/tag, p2s/p2c, kid) go into each recipient's unprotected header; `extra`
/// joins the protected header (a `p2c` there sets the PBES2 iterations, as for compact); `aad`
/// is optional additional authenticated data.
pub fn encrypt_json(
    recipients: &[&Jwk],
    enc: ContentAlg,
    plaintext: &[u8],
    extra: &Map<String, Value>,
    aad: Option<&[u8]>,
    flattened: bool,
) -> Result<Value> {
    if recipients.is_empty() || (flattened && recipients.len() != 1) {
        return Err(JoseError::Malformed {
            what: "recipient list",
        });
    }
    refuse_forbidden(extra)?;
    let mut protected = extra.clone();
    let p2c = take_p2c(&mut protected)?;
    protected.insert("enc".into(), Value::String(enc.as_str().into()));
    let protected_b64 = b64::encode(Value::Object(protected).to_string().as_bytes());
    let many = recipients.len() > 1;
    let mut shared: Option<Zeroizing<Vec<u8>>> = None;
    let mut entries = Vec::with_capacity(recipients.len());
    for key in recipients {
        let alg = key.jwe_alg()?;
        if many && keymgmt::is_direct(alg) {
            return Err(JoseError::Malformed {
                what: "recipients (dir and ECDH-ES allow only one)",
            });
        }
        let delivery = keymgmt::deliver(
            alg,
            enc,
            key.material(),
            shared.as_deref().map(|c| c.as_slice()),
            p2c,
        )?;
        shared.get_or_insert_with(|| delivery.cek.clone());
        let mut header = delivery.header;
        header.insert("alg".into(), Value::String(alg.as_str().into()));
        if let Some(kid) = &key.kid {
            header.insert("kid".into(), Value::String(kid.clone()));
        }
        let mut entry = Map::new();
        entry.insert("header".into(), Value::Object(header));
        if !delivery.encrypted_key.is_empty() {
            entry.insert(
                "encrypted_key".into(),
                Value::String(b64::encode(&delivery.encrypted_key)),
            );
        }
        entries.push(entry);
    }
    let cek = shared.ok_or(JoseError::Malformed {
        what: "recipient list",
    })?;
    let aad_b64 = aad.map(b64::encode);
    let full_aad = match &aad_b64 {
        Some(a) => format!("{protected_b64}.{a}"),
        None => protected_b64.clone(),
    };
    let sealed = content::encrypt(enc, &cek, plaintext, full_aad.as_bytes())?;
    let mut top = Map::new();
    top.insert("protected".into(), Value::String(protected_b64));
    if let Some(a) = aad_b64 {
        top.insert("aad".into(), Value::String(a));
    }
    top.insert("iv".into(), Value::String(b64::encode(&sealed.iv)));
    top.insert(
        "ciphertext".into(),
        Value::String(b64::encode(&sealed.ciphertext)),
    );
    top.insert("tag".into(), Value::String(b64::encode(&sealed.tag)));
    if flattened {
        if let Some(entry) = entries.pop() {
            top.extend(entry);
        }
    } else {
        top.insert(
            "recipients".into(),
            Value::Array(entries.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(Value::Object(top))
}

/// Decrypts a JSON JWE (general or flattened) with the first recipient whose key `set` holds.
pub fn decrypt_json(
    json: &str,
    set: &JwkSet,
    algs: &[KeyAlg],
    encs: &[ContentAlg],
) -> Result<Decrypted> {
    let value: Value = serde_json::from_str(bounded(json)?)
        .map_err(|_| JoseError::Malformed { what: "JWE JSON" })?;
    let top = value
        .as_object()
        .ok_or(JoseError::Malformed { what: "JWE JSON" })?;
    let text = |name: &'static str| -> Result<&str> {
        top.get(name)
            .and_then(Value::as_str)
            .ok_or(JoseError::Malformed { what: name })
    };
    let protected_b64 = match top.get("protected") {
        None => "",
        Some(_) => text("protected")?,
    };
    let protected = if protected_b64.is_empty() {
        Map::new()
    } else {
        parse_header(protected_b64)?
    };
    let shared = object(top.get("unprotected"), "JWE unprotected")?;
    let recipients: Vec<&Map<String, Value>> = match top.get("recipients") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|r| {
                r.as_object().ok_or(JoseError::Malformed {
                    what: "JWE recipients",
                })
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(JoseError::Malformed {
                what: "JWE recipients",
            })
        }
        None => vec![top],
    };
    let iv = b64::decode(text("iv")?, "JWE iv")?;
    let ciphertext = b64::decode(text("ciphertext")?, "JWE ciphertext")?;
    let tag = b64::decode(text("tag")?, "JWE tag")?;
    let full_aad = match top.get("aad") {
        Some(_) => format!("{protected_b64}.{}", text("aad")?),
        None => protected_b64.to_owned(),
    };
    let mut last = JoseError::UnknownKid { kid: None };
    for r in recipients {
        let own = object(r.get("header"), "JWE header")?;
        let mut header = protected.clone();
        for part in [&shared, &own] {
            for (k, v) in part {
                if header.insert(k.clone(), v.clone()).is_some() {
                    return Err(JoseError::Malformed {
                        what: "JWE header (member in more than one header)",
                    });
                }
            }
        }
        // A recipient we may not or cannot process (RSA1_5, an algorithm outside the allow-list)
        // is skipped like one whose key we lack; another recipient may still be ours.
        let (alg, enc) = match check_header(&header, algs, encs) {
            Ok(pair) => pair,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let key = set.resolve(kid.as_deref());
        let Some(key) = key else {
            last = JoseError::UnknownKid { kid };
            continue;
        };
        check_key(key, alg)?;
        let encrypted_key = match r.get("encrypted_key") {
            Some(Value::String(s)) => b64::decode(s, "JWE encrypted key")?,
            Some(_) => {
                return Err(JoseError::Malformed {
                    what: "JWE encrypted key",
                })
            }
            None => Vec::new(),
        };
        let attempt =
            keymgmt::recover(alg, enc, key.material(), &encrypted_key, &header).and_then(|cek| {
                content::decrypt(enc, &cek, &iv, &ciphertext, &tag, full_aad.as_bytes())
            });
        match attempt {
            Ok(plaintext) => {
                return Ok(Decrypted {
                    header,
                    plaintext,
                    alg,
                    enc,
                    kid,
                })
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Removes a caller's `p2c` from a header under construction (it belongs to the recipient).
fn take_p2c(header: &mut Map<String, Value>) -> Result<Option<u32>> {
    match header.remove("p2c") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(JoseError::Malformed { what: "p2c" }),
    }
}

fn object(value: Option<&Value>, what: &'static str) -> Result<Map<String, Value>> {
    match value {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(JoseError::Malformed { what }),
    }
}

fn parse_header(b64_header: &str) -> Result<Map<String, Value>> {
    let bytes = b64::decode(b64_header, "JWE protected header")?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JoseError::Malformed {
            what: "JWE protected header (not a JSON object)",
        }),
    }
}

fn refuse_forbidden(header: &Map<String, Value>) -> Result<()> {
    if header.contains_key("zip") {
        return Err(JoseError::UnsupportedAlg {
            alg: "zip (compression is refused)".into(),
        });
    }
    crate::jose::header::refuse_crit(header)?;
    Ok(())
}

fn check_header(
    header: &Map<String, Value>,
    algs: &[KeyAlg],
    encs: &[ContentAlg],
) -> Result<(KeyAlg, ContentAlg)> {
    refuse_forbidden(header)?;
    let alg = KeyAlg::parse(
        header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JoseError::Malformed { what: "JWE alg" })?,
    )?;
    let enc = ContentAlg::parse(
        header
            .get("enc")
            .and_then(Value::as_str)
            .ok_or(JoseError::Malformed { what: "JWE enc" })?,
    )?;
    if !algs.contains(&alg) {
        return Err(JoseError::AlgNotAllowed { alg: alg.as_str() });
    }
    if !encs.contains(&enc) {
        return Err(JoseError::AlgNotAllowed { alg: enc.as_str() });
    }
    Ok((alg, enc))
}

fn check_key(key: &Jwk, alg: KeyAlg) -> Result<()> {
    let pinned = key.jwe_alg()?;
    if pinned != alg {
        return Err(JoseError::KeyAlgMismatch {
            token: alg.as_str(),
            key: pinned.as_str().into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
