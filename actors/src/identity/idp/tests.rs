//! identity-idp and identity-authz as actors, through their handles: a sign-in, single sign-on
//! from the session, lockout, and a logout that ends the session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::jose::{b64, jwt};
use cryptoutil_protocols::{oauth, unseal};
use cryptoutil_storage::Store;
use zeroize::Zeroizing;

use super::*;
use crate::identity::authz::admin::{AdminAnswer, AdminOp, Caller, NewClient};
use crate::identity::authz::flow::AuthorizeOutcome;
use crate::identity::authz::{AuthMethod, AuthzConfig, ClientAuth, TokenRequest};
use crate::identity::signin::Next;
use crate::product::{HandlesBuilder, SuiteArgs};
use crate::SupervisionConfig;

const REDIRECT: &str = "https://rp.test/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn challenge(authz: &AuthzHandle, client_id: &str) -> String {
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid kms"),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain([(
        "code_challenge".to_owned(),
        b64::encode(&oauth::token_digest(VERIFIER.as_bytes())),
    )])
    .collect();
    let AuthorizeOutcome::Redirect(page) = authz.authorize(params).await.unwrap() else {
        panic!("a redirect to the login page")
    };
    query(&page, "challenge").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_its_session_lockout_and_a_logout_through_both_actors() {
    let dir = tempfile::tempdir().unwrap();
    let key = unseal::generate(1, 1).unwrap().0;
    let store = |name: &str| Arc::new(Store::open_redb(&dir.path().join(name), &key).unwrap());
    let mut settings = HandlesBuilder::default();
    settings.insert(AuthzConfig {
        issuer: "https://authz.test".into(),
        access_token_ttl: Duration::from_secs(600),
        pepper: None,
        resources: BTreeMap::from([("kms".to_owned(), "https://kms.test".to_owned())]),
        login_url: Some("https://idp.test/browser/login".into()),
        mtls_roots: None,
        refresh_token_ttl: Duration::from_secs(86_400),
        backchannel: None,
    });
    settings.insert(IdpConfig {
        session_ttl: Duration::from_secs(3_600),
        webauthn: super::WebauthnRp {
            rp_id: "idp.test".into(),
            rp_name: "cryptoutil".into(),
            origins: vec!["https://idp.test".into()],
        },
        mail: super::MailSettings {
            mailer: super::mail::Mailer::Outbox(dir.path().join("outbox")),
            from: "idp@idp.test".into(),
        },
        certificates: None,
    });
    let args = SuiteArgs {
        settings: settings.build(),
        ..SuiteArgs::default()
    };
    let cfg = SupervisionConfig {
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ask_timeout: Duration::from_secs(10),
    };
    let suite = crate::suite::start(
        vec![
            (ServiceName::IdentityIdp, store("idp.redb")),
            (ServiceName::IdentityAuthz, store("authz.redb")),
        ],
        &args,
        &cfg,
    )
    .await
    .unwrap();
    let authz = suite.services[&ServiceName::IdentityAuthz]
        .get::<AuthzHandle>()
        .unwrap()
        .clone();
    let idp = suite.services[&ServiceName::IdentityIdp]
        .get::<IdpHandle>()
        .expect("identity-idp reaches identity-authz in this process")
        .clone();
    let creds = authz.bootstrap().await.unwrap().unwrap();
    let client = authz
        .admin(
            Caller {
                who: "test".into(),
                tenant: "default".into(),
                scopes: Vec::new(),
            },
            AdminOp::CreateClient(NewClient {
                name: "RP".into(),
                redirect_uris: vec![REDIRECT.into()],
                first_party: Some(true),
                ..NewClient::default()
            }),
        )
        .await
        .unwrap();
    let AdminAnswer::Client(client) = client else {
        panic!("a client")
    };
    let client_id = client.client_id.clone();
    let secret = client.client_secret.unwrap().to_string();

    // The form, a wrong password (the same answer for a name that does not exist), then in.
    let ch = challenge(&authz, &client_id).await;
    assert!(matches!(
        idp.login_start(ch.clone(), None).await.unwrap(),
        LoginStart::Form(_)
    ));
    for name in ["admin", "nobody"] {
        let LoginOutcome::Failed { message, .. } = idp
            .login(
                ch.clone(),
                None,
                name.into(),
                Zeroizing::new("wrong".into()),
            )
            .await
            .unwrap()
        else {
            panic!("{name}: refused")
        };
        assert_eq!(message, LOGIN_FAILED);
    }
    let LoginOutcome::Done {
        next: Next::Redirect(to),
        session,
        ..
    } = idp
        .login(ch, None, "admin".into(), creds.password.clone())
        .await
        .unwrap()
    else {
        panic!("signed in")
    };
    let code = query(&to, "code").unwrap();

    // Single sign-on: the next request goes straight back with a code.
    let ch = challenge(&authz, &client_id).await;
    let LoginStart::Redirect(to) = idp.login_start(ch, Some(session.clone())).await.unwrap() else {
        panic!("the session serves")
    };
    assert!(query(&to, "code").is_some());

    // RP-initiated logout with the ID token ends the session: the form again.
    let grant = authz
        .token(TokenRequest {
            client: ClientAuth {
                client_id: client_id.clone(),
                secret: Zeroizing::new(secret),
                method: AuthMethod::ClientSecretBasic,
                certs: None,
            },
            grant_type: "authorization_code".into(),
            scope: None,
            resource: None,
            code: Some(Zeroizing::new(code)),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: Some(Zeroizing::new(VERIFIER.into())),
            refresh_token: None,
            dpop: None,
        })
        .await
        .unwrap();
    let id_token = jwt::sign(&grant.key, &grant.id_token.unwrap(), "JWT").unwrap();
    authz.logout(Some(id_token), None, None).await.unwrap();
    let ch = challenge(&authz, &client_id).await;
    assert!(matches!(
        idp.login_start(ch, Some(session)).await.unwrap(),
        LoginStart::Form(_)
    ));

    // Five failures lock a name out, whether it exists or not.
    let ch = challenge(&authz, &client_id).await;
    for _ in 0..5 {
        idp.login(ch.clone(), None, "ghost".into(), Zeroizing::new("x".into()))
            .await
            .unwrap();
    }
    let LoginOutcome::Failed { message, .. } = idp
        .login(ch, None, "ghost".into(), Zeroizing::new("x".into()))
        .await
        .unwrap()
    else {
        panic!("locked")
    };
    assert_eq!(message, LOGIN_LOCKED);
    suite.root.stop(Duration::from_secs(2)).await;
}
