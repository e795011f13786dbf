//! Client-certificate sign-in: a certificate the connection's TLS handshake presented takes
//! the password's place (amr `sc`).

use super::{IdpHandle, LoginOutcome};
use crate::error::Error;
use crate::identity::idp::factors::FactorKind;

/// The message when a client certificate did not sign in (none, untrusted, no user's).
pub const CERTIFICATE_FAILED: &str = "Your browser presented no certificate that names a user \
     here. Sign in another way.";

impl IdpHandle {
    /// A client certificate (`chain`, leaf first, DER: what this connection's TLS handshake
    /// presented) for the pending request `challenge`, in `tenant` (the form's, when the
    /// client admits any tenant): when it chains to `identity.certificate_ca` for client
    /// authentication and names a user (a registered fingerprint, else an email address that
    /// is a login name), the user has passed their first factor (amr `sc`): the next factor's
    /// page, or signed in. Refusals are audited and all look alike.
    pub async fn certificate(
        &self,
        challenge: String,
        tenant: Option<String>,
        chain: Vec<Vec<u8>>,
    ) -> Result<LoginOutcome, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let tenant = request.tenant(tenant.as_deref());
        let amr = vec!["sc".to_owned()];
        let fingerprint = chain
            .first()
            .map(|leaf| crate::identity::idp::factors::certificate::fingerprint(leaf));
        let who = format!(
            "certificate-sha256:{}",
            fingerprint
                .as_deref()
                .and_then(|f| f.get(..16))
                .unwrap_or("none")
        );
        let refuse = |why: &'static str| {
            let (who, tenant, amr) = (who.clone(), tenant.clone(), amr.clone());
            async move {
                self.factors
                    .audit_sign_in(&who, &tenant, &amr, Some(why))
                    .await
            }
        };
        let why = match (self.certificates.as_ref(), chain.first()) {
            (None, _) => Some("certificate sign-in is off (no identity.certificate_ca)"),
            (_, None) => Some("no certificate presented"),
            (Some(on), Some(_)) => on.refusal(&chain).await,
        };
        if let Some(why) = why {
            refuse(why).await?;
            return Ok(LoginOutcome::Failed {
                message: CERTIFICATE_FAILED,
                view: request.view,
            });
        }
        // A registered certificate names its user (and only that one); else, where the CA
        // vouches for addresses, an email address in it that is a user's login name.
        let lookup = crate::identity::idp::factors::certificate::lookup_key(
            &tenant,
            fingerprint.as_deref().unwrap_or_default(),
        );
        let mut names = Vec::new();
        match self.factors.find(FactorKind::Certificate, &lookup).await? {
            Some((t, u)) => {
                if let Some(user) = self.user(&t, &u).await?.filter(|v| v.id == u) {
                    names.push(user.username);
                }
            }
            None if self.certificates.as_ref().is_some_and(|c| c.email_login) => {
                let leaf = chain.first().map(Vec::as_slice).unwrap_or_default();
                names.extend(
                    cryptoutil_protocols::tls::client_emails(leaf)
                        .into_iter()
                        .filter(|e| e.matches('@').count() == 1),
                );
            }
            None => {}
        }
        let mut credential = None;
        for name in names.into_iter().filter(|n| n.len() <= 128) {
            credential = self.authz.credential(tenant.clone(), name).await?;
            if credential.is_some() {
                break;
            }
        }
        let Some(credential) = credential else {
            refuse("a certificate that names no user").await?;
            return Ok(LoginOutcome::Failed {
                message: CERTIFICATE_FAILED,
                view: request.view,
            });
        };
        self.after_first(credential, challenge, amr, request.view, request.acr)
            .await
    }
}
