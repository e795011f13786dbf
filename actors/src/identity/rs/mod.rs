//! identity-rs, the reference resource server: per-user notes behind the suite's access tokens.
//! It is what a customer's API looks like next to identity-authz: it keeps nothing of the
//! authorization server's, only its own data, owned by the tenant, issuer and `sub` of the
//! token that wrote it. Tokens are checked at the HTTP seam before any of this runs.
//!
//! # Layout
//! - [`notes`]: the notes, sealed in identity-rs's store (`identity_notes_v1`).

pub mod notes;

use ractor::SpawnErr;

use crate::product::{ProductActors, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

pub use notes::{Note, NoteInput, NotesHandle, MAX_BODY, MAX_NOTES, MAX_TITLE};

/// identity-rs's part of the suite: the notes handle its routes use. It has no actor of its
/// own: a note is one sealed record, written in one transaction off the async task.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::IdentityRs,
    build,
};

/// What identity-rs publishes about itself (RFC 9728 Protected Resource Metadata).
#[derive(Debug, Clone, Default)]
pub struct RsSettings {
    /// The `iss` of every authorization server whose tokens it accepts.
    pub authorization_servers: Vec<String>,
    /// Its resource URI as configured (`identity.resource_uris`); none: the origin a client
    /// addressed.
    pub resource: Option<String>,
}

fn build(ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
    let settings = ctx
        .args
        .settings
        .get::<RsSettings>()
        .cloned()
        .unwrap_or_default();
    parts
        .handles
        .insert(NotesHandle::new(std::sync::Arc::clone(ctx.store), settings));
    Ok(())
}
