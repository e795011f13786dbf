//! The CA product. Today the `ca` service runs only the common actors (health, vault,
//! sessions); its `CaSigner` actors (one per issuing CA, started on demand) arrive here.

use ractor::SpawnErr;

use crate::product::{Product, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

/// The CA's part of the `ca` service.
#[derive(Debug)]
pub struct CaProduct;

impl Product for CaProduct {
    fn service(&self) -> ServiceName {
        ServiceName::Ca
    }

    fn build(&self, _ctx: &ServiceBuild<'_>, _parts: &mut ServiceParts) -> Result<(), SpawnErr> {
        Ok(())
    }
}
