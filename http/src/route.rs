//! One row of a service's route table, as products write them: the method, the path, its
//! stack, who may call it and its handler. [`crate::routes`] composes the products' rows into
//! the table and builds the router from it.

use axum::http::Method;
use axum::routing::MethodRouter;
use cryptoutil_actors::ServiceName;

use crate::error::Realm;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// On the reviewed public allow-list.
    Public,
    /// Needs a valid credential of the route's stack.
    Authenticated,
}

/// What makes a route's handler (a function, so the table can be built again for every
/// router and test).
pub type Handler = fn() -> MethodRouter<AppState>;

/// One row of the table.
#[derive(Clone)]
pub struct RouteSpec {
    /// The method the route answers (`None`: any method).
    pub method: Option<Method>,
    /// The route path as registered (with `{param}` captures).
    pub path: &'static str,
    /// Its stack.
    pub realm: Realm,
    /// Who may call it.
    pub access: Access,
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .finish()
    }
}

/// A route under both `/service/api/v1` and `/browser/api/v1`.
macro_rules! both_prefixes {
    ($rows:ident, $method:expr, $suffix:literal, $access:expr, $handler:expr) => {
        $rows.push($crate::route::spec(
            Some($method),
            concat!("/service/api/v1", $suffix),
            $crate::error::Realm::Service,
            $access,
            $handler,
        ));
        $rows.push($crate::route::spec(
            Some($method),
            concat!("/browser/api/v1", $suffix),
            $crate::error::Realm::Browser,
            $access,
            $handler,
        ));
    };
}
pub(crate) use both_prefixes as both;

/// A product's public routes, added to the table of the service it runs in.
#[derive(Debug, Clone, Copy)]
pub struct ProductRoutes {
    /// The service.
    pub service: ServiceName,
    /// Adds its rows to the table.
    pub rows: fn(&mut Vec<RouteSpec>),
    /// Its line on the service's `/browser/` page (a link to its UI), if any.
    pub home: Option<&'static str>,
}

impl ProductRoutes {
    /// The rows `rows` adds to `service`'s table.
    pub const fn of(service: ServiceName, rows: fn(&mut Vec<RouteSpec>)) -> Self {
        Self {
            service,
            rows,
            home: None,
        }
    }

    /// The same with a line on the service's `/browser/` page.
    pub const fn with_home(self, home: &'static str) -> Self {
        Self {
            home: Some(home),
            ..self
        }
    }
}

/// One row.
pub(crate) fn spec(
    method: Option<Method>,
    path: &'static str,
    realm: Realm,
    access: Access,
    handler: Handler,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        realm,
        access,
        handler,
    }
}

/// Public rows of one realm (protocol endpoints and pages that carry their own checks).
pub(crate) fn public(
    rows: &mut Vec<RouteSpec>,
    realm: Realm,
    routes: &[(Method, &'static str, Handler)],
) {
    for (method, path, handler) in routes {
        rows.push(spec(
            Some(method.clone()),
            path,
            realm,
            Access::Public,
            *handler,
        ));
    }
}

/// A route serving a product's OpenAPI `document` (checked in under `http/openapi/`).
pub(crate) fn openapi(document: &'static str) -> MethodRouter<AppState> {
    axum::routing::get(move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, "application/yaml")],
            document,
        )
    })
}
