//! The CA product. Today the `ca` service runs only the common actors (health, vault,
//! sessions); its `CaSigner` actors (one per issuing CA, started on demand under a keyed
//! supervisor, like the KMS's key rings) arrive here.

use crate::product::ProductActors;
use crate::service::ServiceName;

/// The CA's part of the `ca` service: nothing yet.
pub const ACTORS: ProductActors = ProductActors {
    service: ServiceName::Ca,
    build: |_, _| Ok(()),
};
