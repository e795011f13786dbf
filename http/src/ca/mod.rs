//! The CA's routes. Until the CA product lands the `ca` service serves only the routes every
//! service has (health, the placeholder info, browser sign-in); its protocols arrive as modules
//! here (`ca/<protocol>.rs`), each adding its rows below.

use cryptoutil_actors::ServiceName;

use crate::route::{ProductRoutes, RouteSpec};

/// The CA's routes, in the `ca` service.
pub const ROUTES: ProductRoutes = ProductRoutes::of(ServiceName::Ca, rows);

fn rows(_rows: &mut Vec<RouteSpec>) {}
