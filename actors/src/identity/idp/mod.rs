//! identity-idp: the login and consent pages ask the authorization server through
//! [`IdpHandle`], served in memory when identity-authz runs in the same process.

use ractor::SpawnErr;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::identity::authz::flow::{LoginOutcome, LoginStart};
use crate::identity::authz::AuthzHandle;
use crate::product::{Product, ServiceBuild, ServiceParts};
use crate::service::ServiceName;

/// identity-idp's part of its service.
#[derive(Debug)]
pub struct IdpProduct;

impl Product for IdpProduct {
    fn service(&self) -> ServiceName {
        ServiceName::IdentityIdp
    }

    fn build(&self, ctx: &ServiceBuild<'_>, parts: &mut ServiceParts) -> Result<(), SpawnErr> {
        if let Some(authz) = ctx.handle_of::<AuthzHandle>(ServiceName::IdentityAuthz) {
            parts.handles.insert(IdpHandle { authz });
        }
        Ok(())
    }
}

/// The sign-in pages' handle.
#[derive(Clone, Debug)]
pub struct IdpHandle {
    authz: AuthzHandle,
}

impl IdpHandle {
    /// Opening the login page of a pending request.
    pub async fn login_start(
        &self,
        challenge: String,
        session: Option<Zeroizing<String>>,
    ) -> Result<LoginStart, Error> {
        self.authz.login_start(challenge, session).await
    }

    /// A submitted username and password.
    pub async fn login(
        &self,
        challenge: String,
        tenant: Option<String>,
        username: String,
        password: Zeroizing<String>,
    ) -> Result<LoginOutcome, Error> {
        self.authz
            .login(challenge, tenant, username, password)
            .await
    }

    /// The consent page's answer; where the browser goes.
    pub async fn consent(&self, challenge: String, allow: bool) -> Result<String, Error> {
        self.authz.consent(challenge, allow).await
    }
}
