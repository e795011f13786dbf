//! Blocking persistence of the CA through the key barrier: each CA under `<ca id>` in
//! `ca_authorities_v1` (with its tenant: CRLs and CA certificates are fetched without one) and
//! its key in `ca_keys_v1`; each issued certificate under `<ca id>/<serial>` in
//! `ca_certificates_v1`, *created* so a serial is never reused; each CA's current CRL under
//! `<ca id>` in `ca_crls_v1`. Every record is sealed by the store.

use cryptoutil_protocols::ca::{KeyType, Reason};
use cryptoutil_protocols::ids::{CaId, TenantId};
use cryptoutil_storage::backend::Write;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::record::{decode, encode, load, scan};

/// DER bytes, stored as standard base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Der(pub Vec<u8>);

impl std::fmt::Debug for Der {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Der({} bytes)", self.0.len())
    }
}

impl Serialize for Der {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Der {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Der)
            .map_err(serde::de::Error::custom)
    }
}

/// A CA (its key is in [`Table::CaKeys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    /// Its id.
    pub id: CaId,
    /// The tenant that owns it.
    pub tenant: TenantId,
    /// Its name (the operator's label).
    pub name: String,
    /// Its key type.
    pub key: KeyType,
    /// The CA that signed it (none: a root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CaId>,
    /// Its subject.
    pub subject: String,
    /// Its certificate's serial.
    pub serial: String,
    /// `notBefore`, Unix seconds.
    pub not_before: u64,
    /// `notAfter`, Unix seconds.
    pub not_after: u64,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// Its certificate.
    pub certificate: Der,
    /// The certificates above it, its issuer first (empty for a root).
    pub chain: Vec<Der>,
    /// Offline: its key stays sealed, used only by explicit operator actions.
    #[serde(default)]
    pub offline: bool,
}

impl CaRecord {
    /// The chain of a certificate this CA issues: its certificate and the ones above it.
    pub fn issued_chain(&self) -> Vec<Der> {
        std::iter::once(self.certificate.clone())
            .chain(self.chain.iter().cloned())
            .collect()
    }
}

/// A revocation (or a hold) of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the CA revoked it, Unix seconds.
    pub time: u64,
    /// Why.
    pub reason: Reason,
}

/// A certificate a CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Its serial, lowercase hex.
    pub serial: String,
    /// The CA that issued it.
    pub ca: CaId,
    /// The profile it was issued under.
    pub profile: String,
    /// Its subject.
    pub subject: String,
    /// `notBefore`, Unix seconds.
    pub not_before: u64,
    /// `notAfter`, Unix seconds.
    pub not_after: u64,
    /// When it was issued, Unix seconds.
    pub issued_at: u64,
    /// Who asked for it.
    pub requested_by: String,
    /// The certificate.
    pub certificate: Der,
    /// Its revocation or hold, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// A certificate's status as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Neither revoked, on hold nor expired.
    Valid,
    /// Revoked for good.
    Revoked,
    /// Revoked with `certificateHold` (can be released).
    OnHold,
    /// Past its `notAfter` (and not revoked).
    Expired,
}

impl Status {
    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

impl CertRecord {
    /// Its status at `now`.
    pub fn status(&self, now: u64) -> Status {
        match self.revocation {
            Some(Revocation {
                reason: Reason::CertificateHold,
                ..
            }) => Status::OnHold,
            Some(_) => Status::Revoked,
            None if self.not_after < now => Status::Expired,
            None => Status::Valid,
        }
    }
}

/// A CA's current CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlRecord {
    /// Its CRL number.
    pub number: u64,
    /// `thisUpdate`, Unix seconds.
    pub this_update: u64,
    /// `nextUpdate`, Unix seconds.
    pub next_update: u64,
    /// The CRL.
    pub der: Der,
    /// The complete CRL the delta counts from: (its number, its `thisUpdate`).
    #[serde(default)]
    pub base: Option<(u64, u64)>,
    /// Holds released since the base: (serial, when).
    #[serde(default)]
    pub released: Vec<(String, u64)>,
    /// The delta CRL signed with it: (its number, its DER).
    #[serde(default)]
    pub delta: Option<(u64, Der)>,
}

fn cert_key(ca: &CaId, serial: &str) -> Vec<u8> {
    format!("{ca}/{serial}").into_bytes()
}

/// A new CA id (`ca-` and 96 random bits).
pub fn new_id() -> Result<CaId, Error> {
    let random = cryptoutil_protocols::oauth::random_token(12).map_err(|_| Error::Internal {
        what: "random generator",
    })?;
    CaId::parse(&format!("ca-{}", random.as_str())).map_err(|_| Error::Internal { what: "CA id" })
}

/// CA `id`, whoever owns it.
pub fn load_ca(store: &Store, id: &CaId) -> Result<Option<CaRecord>, Error> {
    let key = id.as_bytes();
    load(store, Table::CaAuthorities, key, "CA")
}

/// CA `id` of `tenant` (another tenant's CA is not found, whatever its id).
pub fn tenant_ca(store: &Store, tenant: &TenantId, id: &CaId) -> Result<CaRecord, Error> {
    load_ca(store, id)?
        .filter(|ca| &ca.tenant == tenant)
        .ok_or(Error::NotFound { what: "CA" })
}

/// The CAs of `tenant`, oldest first.
pub fn tenant_cas(store: &Store, tenant: &TenantId) -> Result<Vec<CaRecord>, Error> {
    let mut cas: Vec<CaRecord> = all_cas(store)?
        .into_iter()
        .filter(|ca| &ca.tenant == tenant)
        .collect();
    cas.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(cas)
}

/// CA `id`'s private key (PKCS#8).
pub fn load_key(store: &Store, id: &CaId) -> Result<Zeroizing<Vec<u8>>, Error> {
    store
        .get_sealed(Table::CaKeys, id.as_bytes())?
        .map(|k| Zeroizing::new(k.to_vec()))
        .ok_or_else(|| Error::corrupt(Table::CaKeys, id.as_bytes(), "CA key (missing)"))
}

/// The writes that create CA `ca` with `key`.
pub fn create_ca(store: &Store, ca: &CaRecord, key: &[u8]) -> Result<Vec<Write>, Error> {
    Ok(vec![
        store.sealed_create(Table::CaAuthorities, ca.id.as_bytes(), &encode(ca)?)?,
        store.sealed_create(Table::CaKeys, ca.id.as_bytes(), key)?,
    ])
}

/// A key the CA delegates to: its OCSP responder, its time-stamping authority or its SCEP RA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delegate {
    /// The OCSP responder (`<ca id>/ocsp`).
    Ocsp,
    /// The time-stamping authority (`<ca id>/tsa`).
    Tsa,
    /// The SCEP RA (`<ca id>/scep`): an RSA key that decrypts and signs SCEP messages.
    Scep,
}

impl Delegate {
    fn keys(self, ca: &CaId) -> (Vec<u8>, Vec<u8>) {
        let name = match self {
            Delegate::Ocsp => "ocsp",
            Delegate::Tsa => "tsa",
            Delegate::Scep => "scep",
        };
        (
            format!("{ca}/{name}").into_bytes(),
            format!("{ca}/{name}-certificate").into_bytes(),
        )
    }
}

/// A delegate's key (PKCS#8) and certificate (DER).
pub type DelegateKeys = (Zeroizing<Vec<u8>>, Vec<u8>);

/// CA `ca`'s `delegate`: its key and certificate, if it has one.
pub fn load_delegate(
    store: &Store,
    ca: &CaId,
    delegate: Delegate,
) -> Result<Option<DelegateKeys>, Error> {
    let (key, cert) = delegate.keys(ca);
    let key = store.get_sealed(Table::CaKeys, &key)?;
    let cert = store.get_sealed(Table::CaKeys, &cert)?;
    Ok(key.zip(cert).map(|(k, c)| (k, c.to_vec())))
}

/// The writes that make `key` and `cert` CA `ca`'s `delegate` (replacing an old one).
pub fn put_delegate(
    store: &Store,
    ca: &CaId,
    delegate: Delegate,
    key: &[u8],
    cert: &[u8],
) -> Result<Vec<Write>, Error> {
    let (key_name, cert_name) = delegate.keys(ca);
    Ok(vec![
        store.sealed_write(Table::CaKeys, &key_name, key)?,
        store.sealed_write(Table::CaKeys, &cert_name, cert)?,
    ])
}

/// Every CA, whoever owns it.
pub fn all_cas(store: &Store) -> Result<Vec<CaRecord>, Error> {
    scan(store, Table::CaAuthorities, b"", "CA")
}

/// The write that replaces CA `ca`'s record (taken offline or online).
pub fn update_ca(store: &Store, ca: &CaRecord) -> Result<Write, Error> {
    Ok(store.sealed_write(Table::CaAuthorities, ca.id.as_bytes(), &encode(ca)?)?)
}

/// Certificate `serial` of CA `ca`.
pub fn load_cert(store: &Store, ca: &CaId, serial: &str) -> Result<Option<CertRecord>, Error> {
    let key = cert_key(ca, serial);
    load(store, Table::CaCertificates, &key, "certificate")
}

/// Every certificate CA `ca` issued.
pub fn certs(store: &Store, ca: &CaId) -> Result<Vec<CertRecord>, Error> {
    let prefix = format!("{ca}/");
    scan(
        store,
        Table::CaCertificates,
        prefix.as_bytes(),
        "certificate",
    )
}

/// Certificates of CA `ca` in serial order after serial `after` (from the first when none) with
/// `status` at `now` if given: at most `limit` of them, looking at most at `scan` records; the
/// serial to go on after, when there may be more.
pub fn certs_page(
    store: &Store,
    ca: &CaId,
    page: &CertPage,
    now: u64,
) -> Result<(Vec<CertRecord>, Option<String>), Error> {
    let prefix = format!("{ca}/");
    let mut from = match &page.after {
        Some(serial) => format!("{prefix}{serial}\u{0}").into_bytes(),
        None => prefix.clone().into_bytes(),
    };
    let (mut found, mut looked) = (Vec::new(), 0usize);
    loop {
        let batch = store.range_opened(Table::CaCertificates, &from, 256)?;
        let done = batch.len() < 256;
        for (key, plain) in batch {
            if !key.starts_with(prefix.as_bytes()) {
                return Ok((found, None));
            }
            let plain = plain?;
            let cert: CertRecord = decode(Table::CaCertificates, &key, &plain, "certificate")?;
            looked += 1;
            from = key;
            from.push(0);
            if page.status.is_none_or(|s| cert.status(now) == s) {
                found.push(cert);
            }
            if found.len() >= page.limit || looked >= page.scan {
                let next = found.last().map(|c| c.serial.clone());
                let next = if looked >= page.scan && found.len() < page.limit {
                    // Nothing more matched within the scan: go on after the last looked at.
                    let key = from.get(prefix.len()..from.len().saturating_sub(1));
                    std::str::from_utf8(key.unwrap_or_default())
                        .ok()
                        .map(str::to_owned)
                } else {
                    next
                };
                return Ok((found, next));
            }
        }
        if done {
            return Ok((found, None));
        }
    }
}

/// Which page of a CA's certificates.
#[derive(Debug, Clone)]
pub struct CertPage {
    /// Only those with this status.
    pub status: Option<Status>,
    /// After this serial (none: from the first).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// Looking at most at this many records.
    pub scan: usize,
}

/// The write that records a new certificate: created, so an existing serial fails the commit.
pub fn create_cert(store: &Store, cert: &CertRecord) -> Result<Write, Error> {
    Ok(store.sealed_create(
        Table::CaCertificates,
        &cert_key(&cert.ca, &cert.serial),
        &encode(cert)?,
    )?)
}

/// The write that replaces a certificate's record (its revocation changed).
pub fn update_cert(store: &Store, cert: &CertRecord) -> Result<Write, Error> {
    Ok(store.sealed_write(
        Table::CaCertificates,
        &cert_key(&cert.ca, &cert.serial),
        &encode(cert)?,
    )?)
}

fn profile_key(tenant: &TenantId, name: &str) -> Vec<u8> {
    format!("{tenant}/{name}").into_bytes()
}

/// The profiles `tenant` defined.
pub fn tenant_profiles(
    store: &Store,
    tenant: &TenantId,
) -> Result<Vec<cryptoutil_protocols::ca::profile::ProfileSpec>, Error> {
    scan(
        store,
        Table::CaProfiles,
        format!("{tenant}/").as_bytes(),
        "profile",
    )
}

/// Profile `name` of `tenant`, if it defined one.
pub fn tenant_profile(
    store: &Store,
    tenant: &TenantId,
    name: &str,
) -> Result<Option<cryptoutil_protocols::ca::profile::ProfileSpec>, Error> {
    let key = profile_key(tenant, name);
    load(store, Table::CaProfiles, &key, "profile")
}

/// The write that creates profile `spec` of `tenant` (a name already taken fails the commit).
pub fn create_profile(
    store: &Store,
    tenant: &TenantId,
    spec: &cryptoutil_protocols::ca::profile::ProfileSpec,
) -> Result<Write, Error> {
    Ok(store.sealed_create(
        Table::CaProfiles,
        &profile_key(tenant, &spec.name),
        &encode(spec)?,
    )?)
}

/// CA `ca`'s current CRL.
pub fn load_crl(store: &Store, ca: &CaId) -> Result<Option<CrlRecord>, Error> {
    let key = ca.as_bytes();
    load(store, Table::CaCrls, key, "CRL")
}

fn acme_claim_key(ca: &CaId, serial: &str) -> Vec<u8> {
    format!("issued/{ca}/{serial}").into_bytes()
}

/// The write that remembers ACME `account` ordered certificate `serial` of CA `ca` (so it may
/// revoke it), created with the certificate: at once, or when the RA approves.
pub fn acme_claim_write(
    store: &Store,
    ca: &CaId,
    serial: &str,
    account: &str,
) -> Result<Write, Error> {
    Ok(store.sealed_create(
        Table::CaAcme,
        &acme_claim_key(ca, serial),
        &encode(&account)?,
    )?)
}

/// The ACME account that ordered certificate `serial` of CA `ca`, if one did.
pub fn acme_claim(store: &Store, ca: &CaId, serial: &str) -> Result<Option<String>, Error> {
    load(
        store,
        Table::CaAcme,
        &acme_claim_key(ca, serial),
        "ACME claim",
    )
}

/// The write that makes `crl` CA `ca`'s current CRL.
pub fn put_crl(store: &Store, ca: &CaId, crl: &CrlRecord) -> Result<Write, Error> {
    Ok(store.sealed_write(Table::CaCrls, ca.as_bytes(), &encode(crl)?)?)
}

/// The write that claims CRL number `number` of CA `ca` (created: replicas sharing the store
/// never sign two CRLs under one number): `<ca id>/number/<number>` in the CRL table.
pub fn claim_crl_number(store: &Store, ca: &CaId, number: u64) -> Result<Write, Error> {
    let key = format!("{ca}/number/{number:020}");
    Ok(store.sealed_create(Table::CaCrls, key.as_bytes(), b"{}")?)
}

/// Whether `e`, the failure of an audited commit of a CRL's writes, is its number claim that
/// another replica made first: the only write among them that creates (the audit log reports
/// such a clash as a conflict).
pub fn crl_number_taken(e: &Error) -> bool {
    matches!(e, Error::Conflict { .. })
        || matches!(
            e,
            Error::Storage(cryptoutil_storage::Error::Exists { table, .. })
                if *table == Table::CaCrls.name()
        )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cryptoutil_protocols::unseal;

    use super::*;

    fn cert(ca: &CaId, serial: &str, subject: &str) -> CertRecord {
        CertRecord {
            serial: serial.into(),
            ca: ca.clone(),
            profile: "tls-server".into(),
            subject: subject.into(),
            not_before: 1,
            not_after: 2,
            issued_at: 1,
            requested_by: "me".into(),
            certificate: Der(vec![0x30, 0x00]),
            revocation: None,
        }
    }

    #[test]
    fn a_serial_is_created_once_and_never_overwritten_by_another_issuance() {
        let dir = tempfile::tempdir().unwrap();
        let key = unseal::generate(1, 1).unwrap().0;
        let s = Arc::new(Store::open_redb(&dir.path().join("ca.redb"), &key).unwrap());
        let ca = new_id().unwrap();
        s.apply(vec![
            create_cert(&s, &cert(&ca, "7f01", "CN=first")).unwrap()
        ])
        .unwrap();
        let again = create_cert(&s, &cert(&ca, "7f01", "CN=second")).unwrap();
        assert!(
            s.apply(vec![again]).is_err(),
            "a reused serial fails the commit"
        );
        let kept = load_cert(&s, &ca, "7f01").unwrap().unwrap();
        assert_eq!(kept.subject, "CN=first");
        // A revocation replaces the record it read.
        let mut revoked = kept;
        revoked.revocation = Some(Revocation {
            time: 5,
            reason: Reason::KeyCompromise,
        });
        s.apply(vec![update_cert(&s, &revoked).unwrap()]).unwrap();
        assert_eq!(certs(&s, &ca).unwrap(), vec![revoked.clone()]);
        assert_eq!(revoked.status(1), Status::Revoked);
        // Another CA's listing is its own.
        assert!(certs(&s, &new_id().unwrap()).unwrap().is_empty());
    }

    #[test]
    fn pages_go_in_serial_order_and_end_with_no_next() {
        let dir = tempfile::tempdir().unwrap();
        let key = unseal::generate(1, 1).unwrap().0;
        let s = Arc::new(Store::open_redb(&dir.path().join("ca.redb"), &key).unwrap());
        let (ca, other) = (new_id().unwrap(), new_id().unwrap());
        for serial in ["7f05", "7f01", "7f03", "7f02", "7f04"] {
            let mut c = cert(&ca, serial, "CN=x");
            if serial == "7f03" {
                c.revocation = Some(Revocation {
                    time: 1,
                    reason: Reason::Superseded,
                });
            }
            s.apply(vec![create_cert(&s, &c).unwrap()]).unwrap();
        }
        s.apply(vec![create_cert(&s, &cert(&other, "7f00", "CN=y")).unwrap()])
            .unwrap();
        let page = |after: Option<&str>, status: Option<Status>, limit: usize, scan: usize| {
            let page = CertPage {
                status,
                after: after.map(str::to_owned),
                limit,
                scan,
            };
            let (found, next) = certs_page(&s, &ca, &page, 0).unwrap();
            let serials: Vec<String> = found.into_iter().map(|c| c.serial).collect();
            (serials, next)
        };
        assert_eq!(
            page(None, None, 2, 100),
            (vec!["7f01".into(), "7f02".into()], Some("7f02".into()))
        );
        assert_eq!(
            page(Some("7f02"), None, 2, 100),
            (vec!["7f03".into(), "7f04".into()], Some("7f04".into()))
        );
        assert_eq!(
            page(Some("7f04"), None, 2, 100),
            (vec!["7f05".into()], None)
        );
        assert_eq!(
            page(None, Some(Status::Revoked), 10, 100),
            (vec!["7f03".into()], None)
        );
        // A scan cap with nothing found yet: go on after the last record looked at.
        assert_eq!(
            page(None, Some(Status::Revoked), 10, 2),
            (vec![], Some("7f02".into()))
        );
    }
}
