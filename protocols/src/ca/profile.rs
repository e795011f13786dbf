//! Profiles: what a certificate of each kind carries (key usage, extended key usage, basic
//! constraints) and what its request may ask for (SAN kinds, how many, validity).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose,
};

use super::csr::{Csr, RequestKey};
use super::{der, CaError};

const DAY: u64 = 86_400;

/// The CA/Browser Forum's reserved policy OID for domain-validated TLS server certificates.
pub const CABF_DOMAIN_VALIDATED: &str = "2.23.140.1.2.1";

/// What a certificate of one kind carries and may be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name (`tls-server`, ...).
    pub name: &'static str,
    /// Key usages (critical).
    pub key_usages: Vec<KeyUsagePurpose>,
    /// Extended key usages (non-critical, except time stamping's, which RFC 3161 wants
    /// critical).
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    /// SAN kinds a request may carry (`dns`, `ip`, `email`, `uri`).
    pub allowed_sans: &'static [&'static str],
    /// A SAN of one of these kinds is required.
    pub required_san: &'static [&'static str],
    /// A CA certificate (`sub-ca`: path length 0).
    pub is_ca: bool,
    /// Adds id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
    pub ocsp_nocheck: bool,
    /// Without a requested validity.
    pub default_validity: Duration,
    /// The longest validity it allows.
    pub max_validity: Duration,
}

/// The names of the built-in profiles.
pub const BUILTIN: [&str; 7] = [
    "tls-server",
    "tls-client",
    "code-signing",
    "email",
    "ocsp-signing",
    "time-stamping",
    "sub-ca",
];

/// A built-in profile by name.
pub fn builtin(name: &str) -> Option<Profile> {
    use ExtendedKeyUsagePurpose as Eku;
    use KeyUsagePurpose as Ku;
    let days = |n: u64| Duration::from_secs(n * DAY);
    let leaf = |name, ekus: Vec<Eku>, allowed, required| Profile {
        name,
        key_usages: vec![Ku::DigitalSignature],
        extended_key_usages: ekus,
        allowed_sans: allowed,
        required_san: required,
        is_ca: false,
        ocsp_nocheck: false,
        default_validity: days(90),
        max_validity: days(397),
    };
    Some(match name {
        "tls-server" => leaf(
            "tls-server",
            vec![Eku::ServerAuth],
            &["dns", "ip"],
            &["dns", "ip"],
        ),
        "tls-client" => leaf(
            "tls-client",
            vec![Eku::ClientAuth],
            &["dns", "ip", "email", "uri"],
            &[],
        ),
        "code-signing" => Profile {
            max_validity: days(3 * 365),
            default_validity: days(365),
            ..leaf(
                "code-signing",
                vec![Eku::CodeSigning],
                &["email", "uri"],
                &[],
            )
        },
        "email" => Profile {
            default_validity: days(365),
            max_validity: days(825),
            ..leaf("email", vec![Eku::EmailProtection], &["email"], &["email"])
        },
        "ocsp-signing" => Profile {
            ocsp_nocheck: true,
            default_validity: days(30),
            max_validity: days(90),
            ..leaf("ocsp-signing", vec![Eku::OcspSigning], &[], &[])
        },
        "time-stamping" => Profile {
            default_validity: days(365),
            max_validity: days(3 * 365),
            // RFC 3161 §2.3: the only EKU, and critical: added as a custom extension.
            ..leaf("time-stamping", Vec::new(), &[], &[])
        },
        "sub-ca" => Profile {
            key_usages: vec![Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign],
            is_ca: true,
            default_validity: days(5 * 365),
            max_validity: days(10 * 365),
            ..leaf("sub-ca", Vec::new(), &["dns"], &[])
        },
        _ => return None,
    })
}

/// What the API shows of a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct View {
    /// Its name.
    pub name: &'static str,
    /// Key usages, by their RFC 5280 names.
    pub key_usages: Vec<&'static str>,
    /// Extended key usages, by their RFC 5280 names.
    pub extended_key_usages: Vec<&'static str>,
    /// SAN kinds a request may carry.
    pub allowed_sans: &'static [&'static str],
    /// A SAN of one of these kinds is required (empty: none).
    pub required_san: &'static [&'static str],
    /// A CA certificate.
    pub is_ca: bool,
    /// Without a requested validity, in days.
    pub default_validity_days: u64,
    /// The longest validity, in days.
    pub max_validity_days: u64,
}

impl Profile {
    /// What the API shows of it.
    pub fn view(&self) -> View {
        use ExtendedKeyUsagePurpose as Eku;
        use KeyUsagePurpose as Ku;
        let mut key_usages: Vec<&'static str> = self
            .key_usages
            .iter()
            .map(|k| match k {
                Ku::DigitalSignature => "digitalSignature",
                Ku::ContentCommitment => "contentCommitment",
                Ku::KeyEncipherment => "keyEncipherment",
                Ku::DataEncipherment => "dataEncipherment",
                Ku::KeyAgreement => "keyAgreement",
                Ku::KeyCertSign => "keyCertSign",
                Ku::CrlSign => "cRLSign",
                Ku::EncipherOnly => "encipherOnly",
                Ku::DecipherOnly => "decipherOnly",
            })
            .collect();
        if matches!(self.name, "tls-server" | "tls-client" | "email") {
            key_usages.push("keyEncipherment (RSA keys)");
        }
        let mut extended_key_usages: Vec<&'static str> = self
            .extended_key_usages
            .iter()
            .map(|e| match e {
                Eku::ServerAuth => "serverAuth",
                Eku::ClientAuth => "clientAuth",
                Eku::CodeSigning => "codeSigning",
                Eku::EmailProtection => "emailProtection",
                Eku::TimeStamping => "timeStamping",
                Eku::OcspSigning => "OCSPSigning",
                Eku::Any => "anyExtendedKeyUsage",
                Eku::Other(_) => "other",
            })
            .collect();
        if self.name == "time-stamping" {
            extended_key_usages.push("timeStamping (critical)");
        }
        View {
            name: self.name,
            key_usages,
            extended_key_usages,
            allowed_sans: self.allowed_sans,
            required_san: self.required_san,
            is_ca: self.is_ca,
            default_validity_days: self.default_validity.as_secs() / DAY,
            max_validity_days: self.max_validity.as_secs() / DAY,
        }
    }

    /// Refuses a request that asks for what this profile does not allow, naming the field.
    pub fn check(&self, csr: &Csr) -> Result<(), CaError> {
        for san in &csr.sans {
            if !self.allowed_sans.contains(&san.kind()) {
                return Err(CaError::new(
                    "subject_alt_names",
                    format!(
                        "profile {} does not allow {} names ({:?})",
                        self.name,
                        san.kind(),
                        san
                    ),
                ));
            }
        }
        if !self.required_san.is_empty()
            && !csr
                .sans
                .iter()
                .any(|s| self.required_san.contains(&s.kind()))
        {
            return Err(CaError::new(
                "subject_alt_names",
                format!(
                    "profile {} needs at least one {} name",
                    self.name,
                    self.required_san.join(" or ")
                ),
            ));
        }
        Ok(())
    }

    /// Sets what this profile puts in a certificate for `csr`.
    pub(super) fn apply(&self, params: &mut CertificateParams, csr: &Csr) {
        params.key_usages = self.key_usages.clone();
        // RSA keys in TLS and S/MIME also encipher keys.
        if matches!(csr.key, RequestKey::Rsa(_))
            && matches!(self.name, "tls-server" | "tls-client" | "email")
        {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = self.extended_key_usages.clone();
        params.is_ca = if self.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0))
        } else {
            IsCa::ExplicitNoCa
        };
        if self.name == "time-stamping" {
            let mut eku = CustomExtension::from_oid_content(
                der::EXTENDED_KEY_USAGE,
                der::eku_time_stamping(),
            );
            eku.set_criticality(true);
            params.custom_extensions.push(eku);
        }
        if self.name == "tls-server" {
            // Shaped after the CA/Browser Forum's Baseline Requirements for TLS server
            // certificates, whose linters want the reserved domain-validated policy OID.
            if let Ok(content) = der::policies(&[CABF_DOMAIN_VALIDATED.to_owned()]) {
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        der::CERTIFICATE_POLICIES,
                        content,
                    ));
            }
        }
        if self.ocsp_nocheck {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    der::OCSP_NOCHECK,
                    der::null(),
                ));
        }
    }
}
