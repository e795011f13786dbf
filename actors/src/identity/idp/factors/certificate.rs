//! Client certificates (amr `sc`): a certificate from `identity.certificate_ca`, presented in
//! the TLS handshake with identity-idp's public listener (which asks every client for one and
//! requires none), signs its user in in place of the password. It names its user by a
//! registered fingerprint (a record of this factor: SHA-256 of the certificate) or, without
//! one and only where `identity.certificate_email_login` trusts the CA to vouch for email
//! addresses, by an email address among its subject alternative names that is the user's
//! login name. The TLS handshake proved the key; the chain, its client-authentication usage
//! (present in the leaf) and its validity are checked at sign-in. Revocation is not checked.
//!
//! A fingerprint is held by one record of a tenant (the lookup index, `<tenant>/<fingerprint>`).

use cryptoutil_protocols::jose::b64;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{
    only_params, read_state, write_state, Enrolled, Factor, FactorKind, Holder, Presented, Verdict,
};
use crate::error::Error;

/// The client-certificate factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Certificate;

/// A registered certificate's state (nothing secret: what names it).
#[derive(Serialize, Deserialize)]
struct State {
    tenant: String,
    /// SHA-256 of the certificate (DER), base64url.
    fingerprint: String,
}

/// SHA-256 of certificate `der`, base64url: RFC 8705's `x5t#S256`, and the lookup key.
pub fn fingerprint(der: &[u8]) -> String {
    b64::encode(&cryptoutil_protocols::oauth::token_digest(der))
}

impl Factor for Certificate {
    fn kind(&self) -> FactorKind {
        FactorKind::Certificate
    }

    fn enroll(&self, params: &Map<String, Value>, holder: &Holder<'_>) -> Result<Enrolled, Error> {
        only_params(params, &["certificate"])?;
        let refused = Error::BadRequest {
            reason: "certificate: one X.509 certificate, PEM",
        };
        let pem = params
            .get("certificate")
            .and_then(Value::as_str)
            .ok_or(Error::BadRequest {
                reason: "certificate: one X.509 certificate, PEM",
            })?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| refused)?;
        if rustls::server::ParsedCertificate::try_from(&der).is_err() {
            return Err(Error::BadRequest {
                reason: "certificate: one X.509 certificate, PEM",
            });
        }
        let fingerprint = fingerprint(der.as_ref());
        let mut shown = Map::new();
        shown.insert("fingerprint".into(), json!(fingerprint));
        Ok(Enrolled {
            state: write_state(&State {
                tenant: holder.tenant.to_owned(),
                fingerprint,
            })?,
            shown,
        })
    }

    /// Nothing is typed: a sign-in finds the record by the presented certificate's
    /// fingerprint.
    fn verify(
        &self,
        _state: &str,
        _presented: &Presented<'_>,
        _now: u64,
    ) -> Result<Verdict, Error> {
        Ok(Verdict::Reject)
    }

    fn lookup(&self, state: &str) -> Option<Vec<u8>> {
        read_state::<State>(state)
            .ok()
            .map(|st| lookup_key(&st.tenant, &st.fingerprint))
    }
}

/// The index key that finds the record of the certificate with `fingerprint` in `tenant`.
pub fn lookup_key(tenant: &str, fingerprint: &str) -> Vec<u8> {
    format!("{tenant}/{fingerprint}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_certificate_registers_by_its_fingerprint() {
        let holder = Holder {
            issuer: "cryptoutil",
            account: "max",
            tenant: "default",
            ceremony: None,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["max.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let params = json!({"certificate": cert.pem()});
        let enrolled = Certificate
            .enroll(params.as_object().unwrap(), &holder)
            .unwrap();
        let expected = fingerprint(cert.der());
        assert_eq!(enrolled.shown["fingerprint"], expected.as_str());
        assert_eq!(
            Certificate.lookup(&enrolled.state).unwrap(),
            lookup_key("default", &expected)
        );
        for bad in [
            json!({}),
            json!({"certificate": "not pem"}),
            json!({"certificate": cert.pem(), "x": 1}),
        ] {
            assert!(
                Certificate
                    .enroll(bad.as_object().unwrap(), &holder)
                    .is_err(),
                "{bad}"
            );
        }
    }
}
