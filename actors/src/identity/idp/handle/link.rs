//! Magic links: "email me a sign-in link", the link's page, and the link used in place of
//! the password (amr `otp`).

use serde_json::Value;
use zeroize::Zeroizing;

use super::{IdpHandle, IdpMsg, LoginOutcome, Owner};
use crate::ask::ask;
use crate::error::Error;
use crate::identity::idp::factors::FactorKind;
use crate::identity::signin::LoginView;

/// Magic links made and sent at once, at most.
pub(super) const MAX_SENDS: usize = 32;
/// Where a magic link points on identity-idp's pages (its `token` parameter follows).
pub const LINK_PATH: &str = "/browser/login/link";
/// Longest link token read.
const MAX_LINK_TOKEN: usize = 2048;

/// The answer to "email me a sign-in link".
pub enum LinkAsked {
    /// Sent if the address is anyone's: the cookie that binds the link to this browser, and
    /// the page.
    Sent {
        /// The cookie's value.
        bind: Zeroizing<String>,
        /// The page.
        view: LoginView,
    },
    /// Not an address.
    BadAddress(LoginView),
}

impl std::fmt::Debug for LinkAsked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sent { .. } => "Sent",
            Self::BadAddress(_) => "BadAddress",
        })
    }
}

/// What a link's token names.
struct LinkToken {
    tenant: String,
    user_id: String,
    challenge: String,
    secret: Zeroizing<String>,
}

/// A link's token: base64url of `{"t", "u", "c", "s"}` (tenant, user, pending request,
/// secret).
fn link_token(
    tenant: &str,
    user_id: &str,
    challenge: &str,
    secret: &str,
) -> Result<Zeroizing<String>, String> {
    use base64::Engine as _;
    let json = Zeroizing::new(
        serde_json::json!({"t": tenant, "u": user_id, "c": challenge, "s": secret}).to_string(),
    );
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.as_bytes());
    if token.len() > MAX_LINK_TOKEN {
        return Err("a link token too long for its page".into());
    }
    Ok(Zeroizing::new(token))
}

fn open_link_token(token: &str) -> Option<LinkToken> {
    use base64::Engine as _;
    if token.len() > MAX_LINK_TOKEN {
        return None;
    }
    let json = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?,
    );
    let v: Value = serde_json::from_slice(&json).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(LinkToken {
        tenant: text("t")?,
        user_id: text("u")?,
        challenge: text("c")?,
        secret: Zeroizing::new(text("s")?),
    })
}

impl IdpHandle {
    /// "Email me a sign-in link" for the pending request `challenge`, by `address` of `tenant`
    /// (the form's, when the client admits any tenant): the same answer whether or not the
    /// address is anyone's. The cookie that binds the link to this browser is made here; the
    /// link itself is made, kept, audited and mailed on a task of its own, so neither the
    /// answer nor its time tells whether a link went out. Each address gets five links freely,
    /// then fewer and fewer (the name lockout's backoff, under `mail:<address>`).
    pub async fn link_request(
        &self,
        challenge: String,
        tenant: Option<String>,
        address: &str,
    ) -> Result<LinkAsked, Error> {
        let request = self.authz.sign_in_request(challenge.clone()).await?;
        let tenant = request.tenant(tenant.as_deref());
        let Ok(address) = cryptoutil_protocols::mail::address(address) else {
            return Ok(LinkAsked::BadAddress(request.view));
        };
        let bind = cryptoutil_protocols::oauth::random_token(32).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let this = self.clone();
        let (cookie, client) = (bind.clone(), request.view.client_name.clone());
        match std::sync::Arc::clone(&self.sends).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    if let Err(e) = this
                        .send_link(tenant, address, challenge, cookie, client)
                        .await
                    {
                        tracing::warn!(error = %e, "a magic link was not sent");
                    }
                    drop(permit);
                });
            }
            // The same answer: the page cannot tell the user more without telling everyone.
            Err(_) => tracing::warn!("too many magic links on their way: one was not made"),
        }
        Ok(LinkAsked::Sent {
            bind,
            view: request.view,
        })
    }

    async fn send_link(
        &self,
        tenant: String,
        address: String,
        challenge: String,
        bind: Zeroizing<String>,
        client: String,
    ) -> Result<(), String> {
        let lookup = crate::identity::idp::factors::magic_link::lookup_key(&tenant, &address);
        // Only an address someone has is rationed (made-up ones cannot fill the counters),
        // checked and counted in one step (requests at once cannot slip past it).
        if self
            .factors
            .find(FactorKind::MagicLink, &lookup)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Ok(());
        }
        let name = format!("mail:{address}");
        let allowed = ask(
            &self.slot,
            |reply| IdpMsg::Ration {
                tenant: tenant.clone(),
                name,
                reply,
            },
            self.timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !allowed {
            return Err("too many links asked for one address: backing off".into());
        }
        let request = serde_json::json!({"bind": bind.as_str(), "challenge": challenge});
        let Some(sent) = self
            .factors
            .challenge(FactorKind::MagicLink, &lookup, request)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let token = link_token(&sent.tenant, &sent.user_id, &challenge, &sent.secret)?;
        let base = self.rp.origins.first().map_or("", String::as_str);
        let body = Zeroizing::new(format!(
            "Someone, probably you, asked to sign in to {client} with this address.\n\n\
             Open this link in the same browser, within 10 minutes, to sign in:\n\n\
             {base}{LINK_PATH}?token={}\n\n\
             The link works once. If you did not ask for it, ignore this message.\n",
            token.as_str(),
            client = client.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?"),
        ));
        let id = cryptoutil_protocols::oauth::random_token(12).map_err(|e| e.to_string())?;
        let message = cryptoutil_protocols::mail::Message {
            from: &self.mail.from,
            to: &sent.to,
            subject: "Your sign-in link",
            body: &body,
            date: crate::now_unix(),
            id: id.as_str(),
        };
        let text = Zeroizing::new(message.render().map_err(|e| e.to_string())?);
        self.mail
            .mailer
            .send(&crate::identity::idp::mail::Outgoing {
                from: self.mail.from.clone(),
                to: sent.to.clone(),
                text,
            })
            .await
    }

    /// What a magic link (`token`, from its URL) is for, before anything is spent: the pending
    /// request's challenge and page (a mail reader that fetches links to scan them spends
    /// nothing; the page asks the user to go on).
    pub async fn link_view(&self, token: &str) -> Result<(String, LoginView), Error> {
        let opened = open_link_token(token).ok_or(Error::NotFound {
            what: "sign-in link",
        })?;
        let request = self.authz.sign_in_request(opened.challenge.clone()).await?;
        Ok((opened.challenge, request.view))
    }

    /// An opened magic link (`token`, from its URL) in a browser whose link cookie is `bind`:
    /// the link is spent, and when this browser asked for it within its time, the user has
    /// passed their first factor for the request it was asked on (the next factor's page, or
    /// signed in), and the request's challenge. Anything else is a not-found (the page says to
    /// ask again).
    pub async fn link_open(
        &self,
        token: &str,
        bind: Option<Zeroizing<String>>,
    ) -> Result<(String, LoginOutcome), Error> {
        let gone = || Error::NotFound {
            what: "sign-in link",
        };
        let opened = open_link_token(token).ok_or_else(gone)?;
        let user = self
            .user(&opened.tenant, &opened.user_id)
            .await?
            .filter(|u| u.id == opened.user_id)
            .ok_or_else(gone)?;
        let owner = Owner {
            tenant: user.tenant.clone(),
            user_id: user.id.clone(),
            username: user.username.clone(),
        };
        let presented = Zeroizing::new(
            serde_json::json!({
                "secret": opened.secret.as_str(),
                "bind": bind.as_ref().map_or("", |b| b.as_str()),
                "challenge": opened.challenge,
            })
            .to_string(),
        );
        if self.factors.check_link(&owner, &presented).await?.is_none() {
            return Err(gone());
        }
        let request = self.authz.sign_in_request(opened.challenge.clone()).await?;
        let credential = self
            .authz
            .credential(owner.tenant.clone(), owner.username.clone())
            .await?
            .filter(|c| c.user_id == owner.user_id)
            .ok_or_else(gone)?;
        let outcome = self
            .after_first(
                credential,
                opened.challenge.clone(),
                vec!["otp".to_owned()],
                request.view,
                request.acr,
            )
            .await?;
        Ok((opened.challenge, outcome))
    }
}
