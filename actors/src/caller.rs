//! Who asks a product's actors: every audit record names them.

use cryptoutil_protocols::ids::TenantId;

/// An authenticated caller: its tenant bounds what it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's tenant: only its keys, CAs and certificates are visible.
    pub tenant: TenantId,
    /// The client or user id.
    pub subject: String,
}
