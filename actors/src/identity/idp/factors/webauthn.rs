//! WebAuthn credentials (amr `hwk`, or `swk` for a passkey that may be synced): a security key
//! given after the password, or a passkey that signs in alone (a discoverable credential with
//! user verification). Enrollment checks the browser's registration against the ceremony the
//! account page started ([`Holder::ceremony`]); sign-in checks an assertion against the one the
//! login page started, with the public key and counter kept here. A counter that does not grow
//! marks the credential as possibly cloned: it is refused from then on, until removed.

use cryptoutil_protocols::webauthn::{
    self, b64, counter_ok, Attestation, AuthenticationResponse, Descriptor, RegistrationResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder, Presented, Verdict,
};
use crate::error::Error;

/// The WebAuthn factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webauthn;

/// A credential's state (its public key is not secret, but is sealed like every record).
#[derive(Serialize, Deserialize)]
struct State {
    /// The credential id, base64url.
    credential_id: String,
    /// Its COSE public key, base64url.
    cose_key: String,
    /// Its COSE algorithm.
    alg: i64,
    /// The last counter seen.
    sign_count: u32,
    /// The authenticator model, hex.
    aaguid: String,
    /// Registered as a passkey (discoverable, user verification).
    passkey: bool,
    /// The credential may be synced (BE flag): `swk` rather than `hwk`.
    backup_eligible: bool,
    /// Transports the browser reported.
    transports: Vec<String>,
    /// How it was attested.
    attestation: Attestation,
    /// A counter went backwards: possibly cloned, refused.
    #[serde(default)]
    cloned: bool,
}

fn refused(reason: &'static str) -> Error {
    Error::BadRequest { reason }
}

impl Factor for Webauthn {
    fn kind(&self) -> FactorKind {
        FactorKind::Webauthn
    }

    /// `params`: `credential`, the browser's `RegistrationResponseJSON` (an object or its
    /// text), answering the ceremony in `holder`.
    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["credential"])?;
        let expected = holder.ceremony.ok_or(refused(
            "webauthn: enrolled from the account page, through a registration ceremony",
        ))?;
        let text = match params.get("credential") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => return Err(refused("credential: the browser's registration response")),
        };
        let response = RegistrationResponse::from_json(&text).map_err(|e| {
            tracing::info!(error = %e, "WebAuthn registration refused");
            refused("credential: not a registration response")
        })?;
        let registered = webauthn::verify_registration(
            expected,
            &response.client_data_json,
            &response.attestation_object,
        )
        .map_err(|e| {
            tracing::info!(error = %e, "WebAuthn registration refused");
            refused("credential: the registration does not verify")
        })?;
        if registered.credential_id != response.raw_id {
            return Err(refused("credential: its id is not the authenticator's"));
        }
        let aaguid = cryptoutil_protocols::hex(&registered.aaguid);
        let state = State {
            credential_id: b64(&registered.credential_id),
            cose_key: b64(&registered.cose_key),
            alg: registered.alg,
            sign_count: registered.sign_count,
            aaguid: aaguid.clone(),
            passkey: expected.user_verification,
            backup_eligible: registered.flags.backup_eligible,
            transports: response.transports,
            attestation: registered.attestation,
            cloned: false,
        };
        let mut shown = Map::new();
        shown.insert("credential_id".into(), json!(state.credential_id));
        shown.insert("aaguid".into(), json!(aaguid));
        shown.insert("passkey".into(), json!(state.passkey));
        shown.insert("attestation".into(), json!(state.attestation));
        Ok(Enrolled {
            state: write_state(&state)?,
            shown,
        })
    }

    fn verify(&self, state: &str, presented: &Presented<'_>, _now: u64) -> Result<Verdict, Error> {
        let Some(expected) = presented.ceremony else {
            return Ok(Verdict::Reject);
        };
        let Ok(response) = AuthenticationResponse::from_json(presented.input) else {
            return Ok(Verdict::Reject);
        };
        let mut st: State = read_state(state)?;
        if b64(&response.raw_id) != st.credential_id {
            return Ok(Verdict::Reject);
        }
        if st.cloned {
            return Ok(Verdict::Refuse {
                keep: None,
                why: "WebAuthn credential marked as possibly cloned",
            });
        }
        let cose = webauthn_bytes(&st.cose_key)?;
        let asserted = match webauthn::verify_assertion(
            expected,
            &cose,
            &response.client_data_json,
            &response.authenticator_data,
            &response.signature,
        ) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(error = %e, "WebAuthn assertion refused");
                return Ok(Verdict::Reject);
            }
        };
        if !counter_ok(st.sign_count, asserted.sign_count) {
            tracing::warn!(
                kept = st.sign_count,
                reported = asserted.sign_count,
                synced = st.backup_eligible,
                "WebAuthn signature counter did not grow"
            );
            // A synced passkey's copies may count apart: that assertion is refused. A
            // device-bound credential's counter lives in one authenticator: another one
            // signing is a clone, and the credential is refused from now on.
            if st.backup_eligible {
                return Ok(Verdict::Refuse {
                    keep: None,
                    why: "WebAuthn counter did not grow (synced credential)",
                });
            }
            st.cloned = true;
            return Ok(Verdict::Refuse {
                keep: Some(write_state(&st)?),
                why: "WebAuthn counter did not grow: credential marked as possibly cloned",
            });
        }
        st.sign_count = asserted.sign_count;
        let amr = if st.backup_eligible { "swk" } else { "hwk" };
        Ok(Verdict::Accept {
            keep: write_state(&st)?,
            amr,
            verified_user: asserted.flags.user_verified,
        })
    }

    fn lookup(&self, state: &str) -> Option<Vec<u8>> {
        let st: State = read_state(state).ok()?;
        Some(st.credential_id.into_bytes())
    }

    fn descriptor(&self, state: &str) -> Option<Value> {
        let st: State = read_state(state).ok()?;
        serde_json::to_value(Descriptor {
            id: st.credential_id,
            transports: st.transports,
        })
        .ok()
    }
}

fn webauthn_bytes(text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| Error::Corrupt {
            table: "identity_factors_v1",
            key: "(factor state)".into(),
            what: "WebAuthn key",
        })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use cryptoutil_protocols::webauthn::{Expected, PublicKey};

    use super::*;

    /// A credential's state, a signer of its assertions with a given counter, and the
    /// ceremony they answer.
    fn credential(backup_eligible: bool) -> (String, impl Fn(u32) -> String, Expected) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let cose = PublicKey::Es256(key.public_key().as_ref().to_vec())
            .to_cose()
            .unwrap();
        let state = write_state(&State {
            credential_id: b64(b"cred"),
            cose_key: b64(&cose),
            alg: -7,
            sign_count: 0,
            aaguid: "00".repeat(16),
            passkey: false,
            backup_eligible,
            transports: vec![],
            attestation: Attestation::None,
            cloned: false,
        })
        .unwrap()
        .to_string();
        let expected = Expected {
            challenge: b"c-1".to_vec(),
            rp_id: "localhost".into(),
            origins: vec!["https://localhost".into()],
            user_verification: false,
        };
        let sign = move |count: u32| {
            let mut auth = cryptoutil_protocols::sha256(b"localhost").to_vec();
            auth.push(0x01 | if backup_eligible { 0x08 } else { 0 });
            auth.extend_from_slice(&count.to_be_bytes());
            let cd = json!({"type": "webauthn.get", "challenge": b64(b"c-1"),
                            "origin": "https://localhost"})
            .to_string();
            let mut signed = auth.clone();
            signed.extend_from_slice(&cryptoutil_protocols::sha256(cd.as_bytes()));
            let sig = key.sign(&SystemRandom::new(), &signed).unwrap();
            json!({"id": b64(b"cred"), "rawId": b64(b"cred"), "type": "public-key",
                   "response": {"clientDataJSON": b64(cd.as_bytes()),
                                "authenticatorData": b64(&auth),
                                "signature": b64(sig.as_ref())}})
            .to_string()
        };
        (state, sign, expected)
    }

    fn verdict(state: &str, input: &str, expected: &Expected) -> Verdict {
        let presented = Presented {
            input,
            ceremony: Some(expected),
        };
        Webauthn.verify(state, &presented, 0).unwrap()
    }

    #[test]
    fn a_counter_that_does_not_grow_marks_a_device_bound_key_as_cloned() {
        let (state, sign, expected) = credential(false);
        let Verdict::Accept { keep, amr, .. } = verdict(&state, &sign(5), &expected) else {
            panic!("a growing counter signs in")
        };
        assert_eq!(amr, "hwk");
        // The same counter again: refused, and the credential marked.
        let Verdict::Refuse {
            keep: Some(marked), ..
        } = verdict(&keep, &sign(5), &expected)
        else {
            panic!("a counter that did not grow is refused and kept")
        };
        // From now on even a higher counter is refused.
        assert!(matches!(
            verdict(&marked, &sign(9), &expected),
            Verdict::Refuse { keep: None, .. }
        ));
        // Another credential's answer is not this record's.
        let other = sign(7).replace(&b64(b"cred"), &b64(b"else"));
        assert!(matches!(verdict(&keep, &other, &expected), Verdict::Reject));
    }

    #[test]
    fn a_synced_passkey_is_swk_and_a_stale_counter_refuses_only_that_assertion() {
        let (state, sign, expected) = credential(true);
        let Verdict::Accept { keep, amr, .. } = verdict(&state, &sign(5), &expected) else {
            panic!("signs in")
        };
        assert_eq!(amr, "swk");
        assert!(matches!(
            verdict(&keep, &sign(3), &expected),
            Verdict::Refuse { keep: None, .. }
        ));
        assert!(matches!(
            verdict(&keep, &sign(6), &expected),
            Verdict::Accept { .. }
        ));
    }

    #[test]
    fn enrollment_needs_a_ceremony_and_a_registration() {
        let holder = Holder {
            issuer: "i",
            account: "a",
            tenant: "default",
            ceremony: None,
        };
        assert!(matches!(
            Webauthn.enroll(&Map::new(), &holder),
            Err(Error::BadRequest { .. })
        ));
        let expected = webauthn::Expected {
            challenge: b"c".to_vec(),
            rp_id: "localhost".into(),
            origins: vec!["https://localhost".into()],
            user_verification: true,
        };
        let holder = Holder {
            ceremony: Some(&expected),
            ..holder
        };
        let params = json!({"credential": {"id": "AA", "rawId": "AA", "type": "public-key",
            "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}});
        assert!(matches!(
            Webauthn.enroll(params.as_object().unwrap(), &holder),
            Err(Error::BadRequest { .. })
        ));
    }
}
