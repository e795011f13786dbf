//! Profiles: what a certificate of each kind carries (key usage, extended key usage, basic
//! constraints) and what its request may ask for (SAN kinds and patterns, extensions,
//! validity). Seven are built in; tenants define more through the API ([`ProfileSpec`]).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose,
};

use super::csr::{Csr, RequestKey, San};
use super::{der, CaError};

const DAY: u64 = 86_400;

/// The CA/Browser Forum's reserved policy OID for domain-validated TLS server certificates.
pub const CABF_DOMAIN_VALIDATED: &str = "2.23.140.1.2.1";

/// What a certificate of one kind carries and may be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name (`tls-server`, ...).
    pub name: String,
    /// One of the built-in profiles (whose names carry extra rules: the CA/B policy OID of
    /// `tls-server`, RSA key encipherment, the critical time-stamping EKU).
    pub builtin: bool,
    /// Key usages (critical).
    pub key_usages: Vec<KeyUsagePurpose>,
    /// Extended key usages (non-critical, except time stamping's, which RFC 3161 wants
    /// critical).
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    /// SAN kinds a request may carry (`dns`, `ip`, `email`, `uri`).
    pub allowed_sans: Vec<String>,
    /// A SAN of one of these kinds is required.
    pub required_san: Vec<String>,
    /// DNS names a request may carry (`example.com`: that name; `*.example.com`: any name
    /// below it); empty: any.
    pub dns_patterns: Vec<String>,
    /// Email addresses a request may carry (`a@example.com`, or `*@example.com`); empty: any.
    pub email_patterns: Vec<String>,
    /// IP ranges (CIDR) a request's addresses must fall in; empty: any.
    pub ip_ranges: Vec<String>,
    /// Extension OIDs (dotted) a request must ask for.
    pub required_extensions: Vec<String>,
    /// Extension OIDs (dotted) a request must not ask for.
    pub forbidden_extensions: Vec<String>,
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

/// A leaf certificate's profile: digitalSignature, `ekus`, the SAN kinds `allowed` and
/// `required`, 90 days by default and at most 397, built in.
fn leaf(
    name: &str,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    allowed: &[&str],
    required: &[&str],
) -> Profile {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Profile {
        name: name.to_owned(),
        builtin: true,
        key_usages: vec![KeyUsagePurpose::DigitalSignature],
        extended_key_usages: ekus,
        allowed_sans: strings(allowed),
        required_san: strings(required),
        dns_patterns: Vec::new(),
        email_patterns: Vec::new(),
        ip_ranges: Vec::new(),
        required_extensions: Vec::new(),
        forbidden_extensions: Vec::new(),
        is_ca: false,
        ocsp_nocheck: false,
        default_validity: Duration::from_secs(90 * DAY),
        max_validity: Duration::from_secs(397 * DAY),
    }
}

/// A built-in profile by name.
pub fn builtin(name: &str) -> Option<Profile> {
    use ExtendedKeyUsagePurpose as Eku;
    use KeyUsagePurpose as Ku;
    let days = |n: u64| Duration::from_secs(n * DAY);
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

/// The profile of a CA's SCEP RA certificate (RFC 8894 §2.2): its RSA key signs answers
/// and decrypts what clients send, so digitalSignature and keyEncipherment; a year.
pub fn scep_ra() -> Profile {
    Profile {
        builtin: false,
        key_usages: vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        default_validity: Duration::from_secs(365 * DAY),
        ..leaf("scep-ra", Vec::new(), &[], &[])
    }
}

/// What the API shows of a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct View {
    /// Its name.
    pub name: String,
    /// Built in, or defined by the tenant.
    pub builtin: bool,
    /// Key usages, by their RFC 5280 names.
    pub key_usages: Vec<&'static str>,
    /// Extended key usages, by their RFC 5280 names.
    pub extended_key_usages: Vec<&'static str>,
    /// SAN kinds a request may carry.
    pub allowed_sans: Vec<String>,
    /// A SAN of one of these kinds is required (empty: none).
    pub required_san: Vec<String>,
    /// DNS name patterns (empty: any).
    pub dns_patterns: Vec<String>,
    /// Email patterns (empty: any).
    pub email_patterns: Vec<String>,
    /// IP ranges (empty: any).
    pub ip_ranges: Vec<String>,
    /// Extensions a request must ask for.
    pub required_extensions: Vec<String>,
    /// Extensions a request must not ask for.
    pub forbidden_extensions: Vec<String>,
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
        let mut key_usages: Vec<&'static str> = self.key_usages.iter().map(ku_name).collect();
        if self.builtin && matches!(self.name.as_str(), "tls-server" | "tls-client" | "email") {
            key_usages.push("keyEncipherment (RSA keys)");
        }
        let mut extended_key_usages: Vec<&'static str> =
            self.extended_key_usages.iter().map(eku_name).collect();
        if self.critical_time_stamping() {
            extended_key_usages.push("timeStamping (critical)");
        }
        View {
            name: self.name.clone(),
            builtin: self.builtin,
            key_usages,
            extended_key_usages,
            allowed_sans: self.allowed_sans.clone(),
            required_san: self.required_san.clone(),
            dns_patterns: self.dns_patterns.clone(),
            email_patterns: self.email_patterns.clone(),
            ip_ranges: self.ip_ranges.clone(),
            required_extensions: self.required_extensions.clone(),
            forbidden_extensions: self.forbidden_extensions.clone(),
            is_ca: self.is_ca,
            default_validity_days: self.default_validity.as_secs() / DAY,
            max_validity_days: self.max_validity.as_secs() / DAY,
        }
    }

    /// The time-stamping EKU, alone: RFC 3161 §2.3 wants it critical.
    fn critical_time_stamping(&self) -> bool {
        (self.builtin && self.name == "time-stamping")
            || self.extended_key_usages == [ExtendedKeyUsagePurpose::TimeStamping]
    }

    /// Refuses a request that asks for what this profile does not allow, naming the field.
    pub fn check(&self, csr: &Csr) -> Result<(), CaError> {
        let names = |field: &'static str, reason: String| Err(CaError::new(field, reason));
        for san in &csr.sans {
            if !self.allowed_sans.iter().any(|k| k == san.kind()) {
                return names(
                    "subject_alt_names",
                    format!(
                        "profile {} does not allow {} names ({:?})",
                        self.name,
                        san.kind(),
                        san
                    ),
                );
            }
            let allowed = match san {
                San::Dns(d) => patterns_allow(&self.dns_patterns, d, dns_matches),
                San::Email(e) => patterns_allow(&self.email_patterns, e, email_matches),
                San::Ip(ip) => {
                    self.ip_ranges.is_empty() || self.ip_ranges.iter().any(|r| in_range(r, *ip))
                }
                San::Uri(_) => true,
            };
            if !allowed {
                return names(
                    "subject_alt_names",
                    format!("{san:?} is outside what profile {} allows", self.name),
                );
            }
        }
        if !self.required_san.is_empty()
            && !csr
                .sans
                .iter()
                .any(|s| self.required_san.iter().any(|k| k == s.kind()))
        {
            return names(
                "subject_alt_names",
                format!(
                    "profile {} needs at least one {} name",
                    self.name,
                    self.required_san.join(" or ")
                ),
            );
        }
        for oid in &self.required_extensions {
            if !csr.extensions.contains(oid) {
                return names(
                    "extensions",
                    format!(
                        "profile {} requires the request to ask for extension {oid}",
                        self.name
                    ),
                );
            }
        }
        for oid in &self.forbidden_extensions {
            if csr.extensions.contains(oid) {
                return names(
                    "extensions",
                    format!("profile {} forbids extension {oid}", self.name),
                );
            }
        }
        Ok(())
    }

    /// Sets what this profile puts in a certificate for `csr`.
    pub(super) fn apply(&self, params: &mut CertificateParams, csr: &Csr) {
        params.key_usages = self.key_usages.clone();
        // RSA keys in TLS and S/MIME also encipher keys.
        if matches!(csr.key, RequestKey::Rsa(_))
            && self.builtin
            && matches!(self.name.as_str(), "tls-server" | "tls-client" | "email")
        {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = self.extended_key_usages.clone();
        params.is_ca = if self.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0))
        } else {
            IsCa::ExplicitNoCa
        };
        if self.critical_time_stamping() {
            params.extended_key_usages.clear();
            let mut eku = CustomExtension::from_oid_content(
                der::EXTENDED_KEY_USAGE,
                der::eku_time_stamping(),
            );
            eku.set_criticality(true);
            params.custom_extensions.push(eku);
        }
        if self.builtin && self.name == "tls-server" {
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

/// Key usages a profile defined through the API may give a leaf.
const LEAF_KEY_USAGES: [KeyUsagePurpose; 5] = [
    KeyUsagePurpose::DigitalSignature,
    KeyUsagePurpose::ContentCommitment,
    KeyUsagePurpose::KeyEncipherment,
    KeyUsagePurpose::DataEncipherment,
    KeyUsagePurpose::KeyAgreement,
];

/// Extended key usages a profile defined through the API may give.
const EXTENDED_KEY_USAGES: [ExtendedKeyUsagePurpose; 6] = [
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
    ExtendedKeyUsagePurpose::CodeSigning,
    ExtendedKeyUsagePurpose::EmailProtection,
    ExtendedKeyUsagePurpose::OcspSigning,
    ExtendedKeyUsagePurpose::TimeStamping,
];

/// A key usage's RFC 5280 name.
fn ku_name(k: &KeyUsagePurpose) -> &'static str {
    use KeyUsagePurpose as Ku;
    match k {
        Ku::DigitalSignature => "digitalSignature",
        Ku::ContentCommitment => "contentCommitment",
        Ku::KeyEncipherment => "keyEncipherment",
        Ku::DataEncipherment => "dataEncipherment",
        Ku::KeyAgreement => "keyAgreement",
        Ku::KeyCertSign => "keyCertSign",
        Ku::CrlSign => "cRLSign",
        Ku::EncipherOnly => "encipherOnly",
        Ku::DecipherOnly => "decipherOnly",
    }
}

/// An extended key usage's RFC 5280 name.
fn eku_name(e: &ExtendedKeyUsagePurpose) -> &'static str {
    use ExtendedKeyUsagePurpose as Eku;
    match e {
        Eku::ServerAuth => "serverAuth",
        Eku::ClientAuth => "clientAuth",
        Eku::CodeSigning => "codeSigning",
        Eku::EmailProtection => "emailProtection",
        Eku::TimeStamping => "timeStamping",
        Eku::OcspSigning => "OCSPSigning",
        Eku::Any => "anyExtendedKeyUsage",
        Eku::Other(_) => "other",
    }
}

/// `names` as members of `allowed` (by `name_of`), or a refusal of `field` naming the choices.
fn by_name<T: Clone>(
    field: &'static str,
    names: &[String],
    allowed: &[T],
    name_of: fn(&T) -> &'static str,
) -> Result<Vec<T>, CaError> {
    names
        .iter()
        .map(|n| {
            allowed
                .iter()
                .find(|a| name_of(a) == n)
                .cloned()
                .ok_or_else(|| {
                    let choices: Vec<&str> = allowed.iter().map(name_of).collect();
                    CaError::new(field, format!("{n:?} is not one of {}", choices.join(", ")))
                })
        })
        .collect()
}

/// An empty list allows everything; else one pattern must match.
fn patterns_allow(patterns: &[String], value: &str, matches: fn(&str, &str) -> bool) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, value))
}

/// `example.com` matches itself; `*.example.com` any name below it (any depth).
fn dns_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => pattern == name,
    }
}

/// `a@example.com` matches itself; `*@example.com` any address at that domain.
fn email_matches(pattern: &str, address: &str) -> bool {
    match pattern.strip_prefix("*@") {
        Some(domain) => address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        None => pattern.eq_ignore_ascii_case(address),
    }
}

/// Whether `ip` falls in CIDR `range` (`10.0.0.0/8`, `2001:db8::/32`).
fn in_range(range: &str, ip: std::net::IpAddr) -> bool {
    parse_range(range).is_some_and(|(net, bits)| {
        let (net, ip): (u128, u128) = match (net, ip) {
            // In the low 32 bits: the prefix length counts the 96 zero bits above them.
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)))
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => (u128::from(n), u128::from(i)),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        net & mask == ip & mask
    })
}

/// A CIDR range: the network and its prefix length counted in 128 bits (IPv4: +96).
fn parse_range(range: &str) -> Option<(std::net::IpAddr, u8)> {
    let (net, len) = range.split_once('/')?;
    let net: std::net::IpAddr = net.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    match net {
        std::net::IpAddr::V4(_) if len <= 32 => Some((net, len + 96)),
        std::net::IpAddr::V6(_) if len <= 128 => Some((net, len)),
        _ => None,
    }
}

/// A profile a tenant defines through the API, as the API takes it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Its name: 1 to 64 of `a-z`, `0-9` and `-`, not a built-in profile's.
    pub name: String,
    /// Key usages by RFC 5280 name: `digitalSignature`, `contentCommitment`,
    /// `keyEncipherment`, `dataEncipherment`, `keyAgreement` (at least one).
    pub key_usages: Vec<String>,
    /// Extended key usages: `serverAuth`, `clientAuth`, `codeSigning`, `emailProtection`,
    /// `OCSPSigning`, `timeStamping` (alone: then critical).
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
    /// SAN kinds a request may carry: `dns`, `ip`, `email`, `uri`.
    #[serde(default)]
    pub allowed_sans: Vec<String>,
    /// A SAN of one of these kinds is required (a subset of `allowed_sans`).
    #[serde(default)]
    pub required_san: Vec<String>,
    /// DNS patterns (`example.com`, `*.example.com`).
    #[serde(default)]
    pub dns_patterns: Vec<String>,
    /// Email patterns (`a@example.com`, `*@example.com`).
    #[serde(default)]
    pub email_patterns: Vec<String>,
    /// IP ranges (CIDR).
    #[serde(default)]
    pub ip_ranges: Vec<String>,
    /// Without a requested validity (`90d`; default: `max_validity`).
    #[serde(default)]
    pub default_validity: Option<String>,
    /// The longest validity (`397d`; at most 3 years).
    pub max_validity: String,
    /// Extension OIDs a request must ask for.
    #[serde(default)]
    pub required_extensions: Vec<String>,
    /// Extension OIDs a request must not ask for.
    #[serde(default)]
    pub forbidden_extensions: Vec<String>,
}

const SAN_KINDS: [&str; 4] = ["dns", "ip", "email", "uri"];

impl ProfileSpec {
    /// The profile it defines, or a refusal naming the field at fault.
    pub fn profile(&self) -> Result<Profile, CaError> {
        use ExtendedKeyUsagePurpose as Eku;
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(CaError::new("name", "1 to 64 of a-z, 0-9 and -"));
        }
        if BUILTIN.contains(&self.name.as_str()) {
            return Err(CaError::new("name", "a built-in profile has this name"));
        }
        if self.key_usages.is_empty() {
            return Err(CaError::new("key_usages", "at least one"));
        }
        let key_usages = by_name("key_usages", &self.key_usages, &LEAF_KEY_USAGES, ku_name)?;
        let extended_key_usages = by_name(
            "extended_key_usages",
            &self.extended_key_usages,
            &EXTENDED_KEY_USAGES,
            eku_name,
        )?;
        if extended_key_usages.contains(&Eku::TimeStamping) && extended_key_usages.len() > 1 {
            return Err(CaError::new(
                "extended_key_usages",
                "timeStamping must be the only one (RFC 3161)",
            ));
        }
        for (field, kinds) in [
            ("allowed_sans", &self.allowed_sans),
            ("required_san", &self.required_san),
        ] {
            if let Some(bad) = kinds.iter().find(|k| !SAN_KINDS.contains(&k.as_str())) {
                return Err(CaError::new(
                    field,
                    format!("{bad:?} is not one of dns, ip, email, uri"),
                ));
            }
        }
        if let Some(bad) = self
            .required_san
            .iter()
            .find(|k| !self.allowed_sans.contains(k))
        {
            return Err(CaError::new(
                "required_san",
                format!("{bad} is not allowed"),
            ));
        }
        for pattern in &self.dns_patterns {
            super::csr::check_dns(
                "dns_patterns",
                pattern.strip_prefix("*.").unwrap_or(pattern),
            )?;
        }
        for pattern in &self.email_patterns {
            if !pattern.contains('@')
                || pattern.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(CaError::new(
                    "email_patterns",
                    format!("{pattern:?} is not an address or *@domain"),
                ));
            }
        }
        if let Some(bad) = self.ip_ranges.iter().find(|r| parse_range(r).is_none()) {
            return Err(CaError::new(
                "ip_ranges",
                format!("{bad:?} is not a CIDR range"),
            ));
        }
        for (field, oids) in [
            ("required_extensions", &self.required_extensions),
            ("forbidden_extensions", &self.forbidden_extensions),
        ] {
            if let Some(bad) = oids.iter().find(|o| super::tsa::oid_der(o).is_none()) {
                return Err(CaError::new(field, format!("{bad:?} is not a dotted OID")));
            }
        }
        let max_validity = super::parse_validity("max_validity", &self.max_validity)?;
        if max_validity > Duration::from_secs(3 * 365 * DAY) {
            return Err(CaError::new("max_validity", "at most 3 years"));
        }
        let default_validity = match &self.default_validity {
            Some(v) => super::parse_validity("default_validity", v)?,
            None => max_validity,
        };
        if default_validity > max_validity {
            return Err(CaError::new("default_validity", "longer than max_validity"));
        }
        Ok(Profile {
            name: self.name.clone(),
            builtin: false,
            key_usages,
            extended_key_usages,
            allowed_sans: self.allowed_sans.clone(),
            required_san: self.required_san.clone(),
            dns_patterns: self.dns_patterns.clone(),
            email_patterns: self.email_patterns.clone(),
            ip_ranges: self.ip_ranges.clone(),
            required_extensions: self.required_extensions.clone(),
            forbidden_extensions: self.forbidden_extensions.clone(),
            is_ca: false,
            ocsp_nocheck: false,
            default_validity,
            max_validity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_ranges_match_what_they_say() {
        assert!(dns_matches("example.com", "EXAMPLE.com"));
        assert!(!dns_matches("example.com", "www.example.com"));
        assert!(dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(!dns_matches("*.example.com", "badexample.com"));
        assert!(email_matches("*@example.com", "ops@Example.com"));
        assert!(!email_matches("*@example.com", "ops@example.com.evil"));
        assert!(email_matches("a@example.com", "a@example.com"));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(in_range("10.0.0.0/8", ip("10.200.1.2")));
        assert!(!in_range("10.0.0.0/8", ip("11.0.0.1")));
        assert!(in_range("0.0.0.0/0", ip("192.0.2.1")));
        assert!(in_range("2001:db8::/32", ip("2001:db8:1::1")));
        assert!(!in_range("2001:db8::/32", ip("10.0.0.1")));
        assert!(parse_range("10.0.0.0/33").is_none());
    }

    #[test]
    fn a_spec_is_refused_naming_its_field() {
        let good = ProfileSpec {
            name: "iot-device".into(),
            key_usages: vec!["digitalSignature".into()],
            extended_key_usages: vec!["clientAuth".into()],
            allowed_sans: vec!["dns".into(), "uri".into()],
            required_san: vec!["uri".into()],
            dns_patterns: vec!["*.devices.example.com".into()],
            email_patterns: Vec::new(),
            ip_ranges: vec!["10.0.0.0/8".into()],
            default_validity: Some("30d".into()),
            max_validity: "90d".into(),
            required_extensions: Vec::new(),
            forbidden_extensions: vec!["1.3.6.1.5.5.7.1.24".into()],
        };
        assert!(good.profile().is_ok());
        let field = |f: fn(&mut ProfileSpec)| {
            let mut spec = good.clone();
            f(&mut spec);
            spec.profile().unwrap_err().field
        };
        assert_eq!(field(|s| s.name = "tls-server".into()), "name");
        assert_eq!(field(|s| s.name = "Bad Name".into()), "name");
        assert_eq!(
            field(|s| s.key_usages = vec!["keyCertSign".into()]),
            "key_usages"
        );
        assert_eq!(
            field(|s| s.extended_key_usages = vec!["anyExtendedKeyUsage".into()]),
            "extended_key_usages"
        );
        assert_eq!(
            field(|s| s.required_san = vec!["email".into()]),
            "required_san"
        );
        assert_eq!(
            field(|s| s.ip_ranges = vec!["10.0.0.0".into()]),
            "ip_ranges"
        );
        assert_eq!(field(|s| s.max_validity = "4y".into()), "max_validity");
        assert_eq!(
            field(|s| s.default_validity = Some("1y".into())),
            "default_validity"
        );
        assert_eq!(
            field(|s| s.forbidden_extensions = vec!["x".into()]),
            "forbidden_extensions"
        );
    }
}
