//! Every table, with its version in the name (`keys_v1`). A new record layout gets a new table
//! name and a migration, never a silent reinterpretation.

use redb::TableDefinition;

/// The tables of a service store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The key hierarchy: root, intermediate and content keys, each wrapped by its parent.
    Barrier,
    /// Dynamic TLS PKI: CA and leaf certificates with their wrapped private keys.
    Pki,
    /// Service metadata (first start, schema markers); not secret.
    Meta,
    /// Sealed records of a service's domain (products add their own tables later).
    Records,
    /// JOSE service keys: `<tenant>/<kid>` -> sealed key record.
    JoseKeys,
    /// identity-authz tenants: `<tenant>` -> sealed record.
    IdentityTenants,
    /// identity-authz OAuth clients: `<client_id>` -> sealed record (secret as a peppered MAC).
    IdentityClients,
    /// identity-authz users: `<tenant>/<username>` -> sealed record (password as PBKDF2 hash).
    IdentityUsers,
    /// identity-authz token signing keys: `<kid>` -> sealed private JWK and its lifetime; also
    /// the generated pepper (`pepper`) when none is configured.
    IdentityKeys,
    /// identity-authz revoked access tokens: `<jti>` -> sealed `{"exp": ...}` (kept until exp).
    IdentityRevoked,
    /// identity-authz refresh-token families: `<family id>` -> sealed record (the current
    /// token's digest, its generation, owner, scope, expiry, revoked flag).
    IdentityRefresh,
    /// identity-authz consents: `<tenant>/<user id>/<client_id>` -> sealed granted scopes.
    IdentityConsents,
    /// KMS elastic keys: `<tenant>/<id>` -> sealed record (no key material).
    KmsElasticKeys,
    /// KMS material keys: `<tenant>/<id>/<version, 10 digits>` -> sealed private JWK.
    KmsMaterialKeys,
    /// The hash-chained audit log: `<sequence, 20 digits>` -> sealed record.
    AuditLog,
    /// CA authorities: `<ca id>` -> sealed record (its tenant, certificate, chain; no key).
    /// Keyed by id alone: CRLs and CA certificates are fetched without a tenant.
    CaAuthorities,
    /// CA private keys: `<ca id>` -> sealed PKCS#8; the keys and certificates each CA
    /// delegates to (OCSP responder, time-stamping authority) under `<ca id>/ocsp`,
    /// `<ca id>/ocsp-certificate`, `<ca id>/tsa`, `<ca id>/tsa-certificate`.
    CaKeys,
    /// Certificates a CA issued: `<ca id>/<serial, lowercase hex>` -> sealed record (created,
    /// never overwritten by another issuance: a serial is never reused).
    CaCertificates,
    /// Each CA's current CRL: `<ca id>` -> sealed record (its number, DER and times).
    CaCrls,
    /// Profiles tenants define: `<tenant>/<name>` -> sealed record.
    CaProfiles,
    /// Enrollment labels (each names one CA and one profile): `<label>` -> sealed record.
    /// Keyed by label alone: enrollment URLs carry no tenant.
    CaLabels,
    /// RA enrollment secrets: `<reference>` -> sealed record (the secret, its label, subject
    /// and expiry).
    CaRaSecrets,
    /// RA enrollment requests: `<tenant>/<request id>` -> sealed record (the request, its
    /// status and decision).
    CaRaRequests,
    /// RA facts that may be recorded once only, each *created*: `secret/<reference>` (the
    /// secret was used, by which request), `decided/<request id>` (approved or rejected).
    CaRaMarks,
    /// ACME (RFC 8555) state: `account/<id>`, `key/<label>/<thumbprint>` (the account of a
    /// key), `order/<id>`, `orders-of/<account id>/<order id>`, `authz/<id>`, `finalized/<order id>`
    /// (created once), `issued/<ca id>/<serial>`
    /// (the account that ordered a certificate, which may revoke it).
    CaAcme,
    /// CMP (RFC 4210) transactions: `tx/<transactionID, hex>` -> sealed record (the label, the
    /// RA request it carries, who authenticated it, the last nonce sent, where it stands).
    CaCmp,
    /// SCEP (RFC 8894) transactions: `tx/<label>/<transactionID, hex>` -> sealed record (the
    /// RA request it carries and the certificate that signed it: only its key may poll).
    CaScep,
    /// identity-idp sign-in factors beyond the password: `<tenant>/<user id>/<factor id>` ->
    /// sealed record (its kind, name, secret and the state that makes each code count once).
    IdentityFactors,
    /// identity-idp factors found without a username: `<kind>/<lookup key>` (a passkey's
    /// credential id) -> sealed store key of the factor record in `identity_factors_v1`.
    IdentityFactorIndex,
    /// identity-rs notes (the reference resource server's data):
    /// `<tenant>/<SHA-256 of the owner's sub, base64url>/<note id>` -> sealed note.
    IdentityNotes,
    /// identity-authz's in-flight sign-ins, kept in the store when replicas share it
    /// (PostgreSQL), each as `{"expires": ..., "value": ...}`: `pending/<challenge>`,
    /// `pushed/<request_uri>`, `code/<digest>`, `used/<digest>` (created: a redeemed code),
    /// `ended/<sid>`, `took-part/<sid>/<client_id>`, `replay/<a|d>/<digest>` (created: a client
    /// assertion or DPoP proof seen), `family/<id>/<version>` (created: each write of a refresh
    /// family, so two replicas never both rotate one).
    IdentityFlow,
}

impl Table {
    /// Every table, created when a store opens so readers never meet a missing table.
    pub const ALL: [Table; 31] = [
        Table::Barrier,
        Table::Pki,
        Table::Meta,
        Table::Records,
        Table::JoseKeys,
        Table::IdentityTenants,
        Table::IdentityClients,
        Table::IdentityUsers,
        Table::IdentityKeys,
        Table::IdentityRevoked,
        Table::IdentityRefresh,
        Table::IdentityConsents,
        Table::KmsElasticKeys,
        Table::KmsMaterialKeys,
        Table::AuditLog,
        Table::CaAuthorities,
        Table::CaKeys,
        Table::CaCertificates,
        Table::CaCrls,
        Table::CaProfiles,
        Table::CaLabels,
        Table::CaRaSecrets,
        Table::CaRaRequests,
        Table::CaRaMarks,
        Table::CaAcme,
        Table::CaCmp,
        Table::CaScep,
        Table::IdentityFactors,
        Table::IdentityFactorIndex,
        Table::IdentityNotes,
        Table::IdentityFlow,
    ];

    /// The versioned table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Barrier => "barrier_v1",
            Table::Pki => "pki_v1",
            Table::Meta => "meta_v1",
            Table::Records => "records_v1",
            Table::JoseKeys => "jose_keys_v1",
            Table::IdentityTenants => "identity_tenants_v1",
            Table::IdentityClients => "identity_clients_v1",
            Table::IdentityUsers => "identity_users_v1",
            Table::IdentityKeys => "identity_keys_v1",
            Table::IdentityRevoked => "identity_revoked_v1",
            Table::IdentityRefresh => "identity_refresh_v1",
            Table::IdentityConsents => "identity_consents_v1",
            Table::KmsElasticKeys => "kms_elastic_keys_v1",
            Table::KmsMaterialKeys => "kms_material_keys_v1",
            Table::AuditLog => "audit_log_v1",
            Table::CaAuthorities => "ca_authorities_v1",
            Table::CaKeys => "ca_keys_v1",
            Table::CaCertificates => "ca_certificates_v1",
            Table::CaCrls => "ca_crls_v1",
            Table::CaProfiles => "ca_profiles_v1",
            Table::CaLabels => "ca_labels_v1",
            Table::CaRaSecrets => "ca_ra_secrets_v1",
            Table::CaRaRequests => "ca_ra_requests_v1",
            Table::CaRaMarks => "ca_ra_marks_v1",
            Table::CaAcme => "ca_acme_v1",
            Table::CaCmp => "ca_cmp_v1",
            Table::CaScep => "ca_scep_v1",
            Table::IdentityFactors => "identity_factors_v1",
            Table::IdentityFactorIndex => "identity_factor_index_v1",
            Table::IdentityNotes => "identity_notes_v1",
            Table::IdentityFlow => "identity_flow_v1",
        }
    }

    pub(crate) fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name())
    }
}
