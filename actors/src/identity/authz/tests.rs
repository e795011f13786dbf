use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cryptoutil_protocols::jose::{jwt, JwkSet, JwsAlg};
use cryptoutil_protocols::unseal;
use cryptoutil_storage::Store;
use zeroize::Zeroizing;

use super::*;

fn config(pepper: Option<&str>) -> AuthzConfig {
    AuthzConfig {
        issuer: "https://authz.test".into(),
        access_token_ttl: Duration::from_secs(600),
        pepper: pepper.map(|p| Zeroizing::new(p.as_bytes().to_vec())),
        resources: [("jose", "https://jose.test"), ("kms", "https://kms.test")]
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        login_url: Some("https://idp.test/browser/login".into()),
        mtls_roots: None,
        refresh_token_ttl: Duration::from_secs(86_400),
        backchannel: None,
    }
}

fn open(dir: &std::path::Path, key: &cryptoutil_protocols::unseal::UnsealKey) -> Arc<Store> {
    Arc::new(Store::open_redb(&dir.join("identity-authz.redb"), key).unwrap())
}

fn request(client_id: &str, secret: &str) -> TokenRequest {
    TokenRequest {
        client: ClientAuth {
            client_id: client_id.into(),
            secret: Zeroizing::new(secret.into()),
            method: AuthMethod::ClientSecretBasic,
            certs: None,
        },
        grant_type: "client_credentials".into(),
        scope: None,
        resource: None,
        code: None,
        redirect_uri: None,
        code_verifier: None,
        refresh_token: None,
        dpop: None,
    }
}

#[test]
fn rotation_keeps_the_old_key_published_for_the_overlap_and_everything_persists() {
    let dir = tempfile::tempdir().unwrap();
    let key = unseal::generate(1, 1).unwrap().0;
    let mut st = AuthzState::load(open(dir.path(), &key), config(None)).unwrap();
    assert!(st.needs_bootstrap());
    let (loaded, creds) =
        AuthzState::bootstrap_records(&st.store(), &st.pepper(), st.audiences()).unwrap();
    st.merge(loaded);
    assert!(!st.needs_bootstrap());

    let now = 1_800_000_000;
    let first = st.current_kid().unwrap();
    let grant = st
        .token(&request(&creds.client_id, &creds.client_secret), now)
        .result
        .unwrap();
    assert_eq!(grant.key.kid.as_deref(), Some(first.as_str()));
    assert_eq!(grant.claims["aud"], serde_json::json!(["jose", "kms"]));
    let old_token = jwt::sign(&grant.key, &grant.claims, "at+jwt").unwrap();

    let rotated =
        AuthzState::new_signing_key(&st.store(), st.current_key().as_ref().map(|k| (k, now)))
            .unwrap();
    let second = rotated.first_kid();
    st.merge(rotated);
    assert_ne!(first, second);
    assert_eq!(st.current_kid().unwrap(), second, "the new key signs");
    let kids = |v: serde_json::Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(st.jwks(now + 1)), vec![second.clone(), first.clone()]);
    // The old key stays until every token it signed has expired (ttl + 5 min), then goes.
    assert_eq!(kids(st.jwks(now + 600 + 299)).len(), 2);
    assert_eq!(kids(st.jwks(now + 600 + 300)), vec![second.clone()]);
    let set = JwkSet::parse(&st.jwks(now + 1).to_string()).unwrap();
    let v = jwt::Validation {
        issuer: Some("https://authz.test".into()),
        audience: Some("kms".into()),
        typ: None,
        leeway: Duration::ZERO,
        require_exp: true,
    };
    jwt::verify(&old_token, &set, &[JwsAlg::ES256], &v, now + 1).unwrap();

    // Reloaded from the store: same clients (the secret still works), same keys, same pepper.
    drop(st);
    let mut st = AuthzState::load(open(dir.path(), &key), config(None)).unwrap();
    assert!(!st.needs_bootstrap());
    assert_eq!(st.current_kid().unwrap(), second);
    assert_eq!(kids(st.jwks(now + 1)), vec![second, first]);
    st.token(&request(&creds.client_id, &creds.client_secret), now)
        .result
        .unwrap();
    assert!(matches!(
        st.token(&request(&creds.client_id, "wrong"), now).result,
        Err(crate::Error::OAuth(
            cryptoutil_protocols::oauth::TokenError::InvalidClient
        ))
    ));
}

#[test]
fn a_configured_pepper_is_the_key_of_the_secret_macs() {
    let dir = tempfile::tempdir().unwrap();
    let key = unseal::generate(1, 1).unwrap().0;
    let mut st = AuthzState::load(
        open(dir.path(), &key),
        config(Some("a configured pepper of 32+ bytes!")),
    )
    .unwrap();
    let (loaded, creds) =
        AuthzState::bootstrap_records(&st.store(), &st.pepper(), st.audiences()).unwrap();
    st.merge(loaded);
    st.token(&request(&creds.client_id, &creds.client_secret), 1)
        .result
        .unwrap();
    drop(st);
    // Another pepper: the stored MACs no longer match (the pepper is not in the store).
    let mut st = AuthzState::load(
        open(dir.path(), &key),
        config(Some("another pepper, also 32+ bytes...")),
    )
    .unwrap();
    assert!(st
        .token(&request(&creds.client_id, &creds.client_secret), 1)
        .result
        .is_err());
}

mod flow {
    use super::*;
    use crate::identity::authz::admin::{AdminOp, Caller, NewClient};
    use crate::identity::authz::flow::AuthorizeOutcome;
    use crate::identity::idp::factors::password;
    use crate::identity::idp::state::{Check, IdpState};
    use crate::identity::idp::{LoginOutcome, LoginStart, LOGIN_FAILED, LOGIN_LOCKED};
    use crate::identity::signin::{Next, Prompt};
    use cryptoutil_protocols::jose::b64;
    use cryptoutil_protocols::oauth::{self, TokenError};
    use serde_json::Value;

    const NOW: u64 = 1_800_000_000;
    const REDIRECT: &str = "https://rp.test/cb";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    struct World {
        st: AuthzState,
        /// identity-idp's sessions and counters.
        idp: IdpState,
        client_id: String,
        client_secret: String,
        password: String,
        _dir: tempfile::TempDir,
    }

    fn world() -> World {
        world_with(true)
    }

    fn world_with(first_party: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = unseal::generate(1, 1).unwrap().0;
        let mut st = AuthzState::load(open(dir.path(), &key), config(None)).unwrap();
        let (loaded, creds) =
            AuthzState::bootstrap_records(&st.store(), &st.pepper(), st.audiences()).unwrap();
        st.merge(loaded);
        let spec = NewClient {
            name: "RP".into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec!["https://rp.test/bye".into()],
            first_party: Some(first_party),
            ..NewClient::default()
        };
        let caller = Caller {
            who: "test".into(),
            tenant: "default".into(),
            scopes: Vec::new(),
        };
        let admin::Step::Write(write) = st.admin(&caller, AdminOp::CreateClient(spec)).unwrap()
        else {
            panic!("a write")
        };
        let (loaded, answer, _) = AuthzState::persist_admin(&st.store(), *write).unwrap();
        st.merge(loaded);
        let admin::AdminAnswer::Client(client) = answer else {
            panic!("a client")
        };
        World {
            st,
            idp: IdpState::with_dummy(
                Duration::from_secs(3_600),
                password::dummy_record().unwrap(),
            ),
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone().unwrap().to_string(),
            password: creds.password.to_string(),
            _dir: dir,
        }
    }

    fn challenge() -> String {
        b64::encode(&oauth::token_digest(VERIFIER.as_bytes()))
    }

    fn authorize(w: &mut World, extra: &[(&str, &str)]) -> AuthorizeOutcome {
        let mut params: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), w.client_id.clone()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("scope".into(), "openid profile kms identity".into()),
            ("state".into(), "st-1".into()),
            ("nonce".into(), "n-1".into()),
            ("code_challenge".into(), challenge()),
            ("code_challenge_method".into(), "S256".into()),
        ];
        for (k, v) in extra {
            params.retain(|(n, _)| n != k);
            if !v.is_empty() {
                params.push(((*k).into(), (*v).into()));
            }
        }
        w.st.authorize(&params, NOW)
    }

    fn query(url: &str, name: &str) -> Option<String> {
        let q = url.split_once('?')?.1;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// identity-idp's sign-in of `name` with `presented` for `ch`, step by step as
    /// `IdpHandle::login` takes it, on the two states.
    fn login(w: &mut World, ch: &str, name: &str, presented: &str, now: u64) -> LoginOutcome {
        let request = w.st.sign_in_request(ch, now).unwrap();
        let tenant = request.tenant(None);
        let Check::Proceed { dummy } = w.idp.check(&tenant, name, now) else {
            return LoginOutcome::Failed {
                message: LOGIN_LOCKED,
                view: request.view,
            };
        };
        let user = w.st.credential(&tenant, name);
        let record = user.as_ref().map_or(dummy, |u| u.password_hash.clone());
        let matched = password::matches(&Zeroizing::new(presented.into()), &record);
        let Some(user) = user.filter(|_| matched) else {
            let message = w.idp.failed(&tenant, name, now);
            return LoginOutcome::Failed {
                message,
                view: request.view,
            };
        };
        let opened = w.idp.open(&user, vec!["pwd".into()], now).unwrap();
        match w.st.signed_in(ch, opened.subject, now).unwrap() {
            Some(next) => LoginOutcome::Done {
                next,
                session: opened.cookie,
                max_age: opened.max_age,
            },
            None => LoginOutcome::Failed {
                message: LOGIN_FAILED,
                view: request.view,
            },
        }
    }

    /// identity-idp's login page for `ch` with the session `cookie`, as
    /// `IdpHandle::login_start` decides it, on the two states.
    fn login_start(w: &mut World, ch: &str, cookie: Option<&str>, now: u64) -> LoginStart {
        let request = w.st.sign_in_request(ch, now).unwrap();
        let subject = cookie
            .filter(|_| request.prompt != Prompt::Login)
            .and_then(|c| w.idp.session(c, now))
            .filter(|s| request.served_by(s, now));
        if let Some(subject) = subject {
            match w.st.signed_in(ch, subject, now).unwrap() {
                Some(Next::Redirect(to)) => return LoginStart::Redirect(to),
                Some(Next::Consent(view)) => return LoginStart::Consent(view),
                None => {}
            }
        }
        match request.prompt {
            Prompt::None => LoginStart::Redirect(w.st.login_required(ch, now).unwrap()),
            Prompt::Default | Prompt::Login => LoginStart::Form(request.view),
        }
    }

    /// A pending request's challenge, signed in as admin: (code redirect, session cookie).
    fn sign_in(w: &mut World) -> (String, String) {
        sign_in_at(w, NOW)
    }

    /// The same at `now`.
    fn sign_in_at(w: &mut World, now: u64) -> (String, String) {
        let AuthorizeOutcome::Redirect(login_page) = authorize(w, &[]) else {
            panic!("a redirect to the login page")
        };
        assert!(login_page.starts_with("https://idp.test/browser/login?challenge="));
        let ch = query(&login_page, "challenge").unwrap();
        assert!(matches!(
            login_start(w, &ch, None, now),
            LoginStart::Form(_)
        ));
        let password = w.password.clone();
        match login(w, &ch, "admin", &password, now) {
            LoginOutcome::Done {
                next: Next::Redirect(redirect),
                session,
                ..
            } => (redirect, session.to_string()),
            LoginOutcome::Done { next, .. } => panic!("{next:?}"),
            LoginOutcome::Failed { message, .. } | LoginOutcome::CodeFailed { message, .. } => {
                panic!("{message}")
            }
            LoginOutcome::NextFactor { .. } => panic!("no second factor here"),
        }
    }

    fn code_request(w: &World, code: &str, verifier: &str, redirect: &str) -> TokenRequest {
        let mut r = request(&w.client_id, &w.client_secret);
        r.grant_type = "authorization_code".into();
        r.code = Some(Zeroizing::new(code.into()));
        r.code_verifier = Some(Zeroizing::new(verifier.into()));
        r.redirect_uri = Some(redirect.into());
        r
    }

    fn refresh_request(w: &World, token: &str) -> TokenRequest {
        let mut r = request(&w.client_id, &w.client_secret);
        r.grant_type = "refresh_token".into();
        r.refresh_token = Some(Zeroizing::new(token.into()));
        r
    }

    fn refused(d: &crate::identity::authz::flow::TokenDecision) -> Option<TokenError> {
        match &d.result {
            Err(crate::Error::OAuth(e)) => Some(*e),
            _ => None,
        }
    }

    #[test]
    fn a_code_is_single_use_and_its_second_use_revokes_what_the_first_issued() {
        let mut w = world();
        let (redirect, _) = sign_in(&mut w);
        assert!(redirect.starts_with(REDIRECT));
        assert_eq!(query(&redirect, "state").as_deref(), Some("st-1"));
        assert_eq!(
            query(&redirect, "iss").as_deref(),
            Some("https://authz.test")
        );
        let code = query(&redirect, "code").unwrap();

        let first =
            w.st.token(&code_request(&w, &code, VERIFIER, REDIRECT), NOW);
        assert_eq!(
            first.persist.families.len(),
            1,
            "a refresh family is persisted"
        );
        let grant = first.result.unwrap();
        assert_eq!(
            grant.scope, "openid profile kms identity",
            "admin keeps identity"
        );
        let id = grant.id_token.as_ref().unwrap();
        assert_eq!(id["nonce"], "n-1");
        assert_eq!(id["aud"], Value::from(w.client_id.clone()));
        assert_eq!(id["amr"], serde_json::json!(["pwd"]));
        assert_eq!(id["auth_time"], Value::from(NOW));
        assert_eq!(id["preferred_username"], "admin");
        assert!(grant.refresh_token.is_some());

        let again =
            w.st.token(&code_request(&w, &code, VERIFIER, REDIRECT), NOW + 1);
        assert_eq!(refused(&again), Some(TokenError::InvalidGrant));
        assert_eq!(
            again.persist.revoked.len(),
            1,
            "the access token is revoked"
        );
        assert!(again.persist.families[0].revoked, "and the refresh family");
        let refresh = grant.refresh_token.unwrap();
        let r = w.st.token(&refresh_request(&w, &refresh), NOW + 2);
        assert_eq!(refused(&r), Some(TokenError::InvalidGrant));
    }

    #[test]
    fn pkce_redirect_uri_and_client_must_match_and_a_failed_redemption_burns_the_code() {
        let mut w = world();
        let (redirect, _) = sign_in(&mut w);
        let code = query(&redirect, "code").unwrap();
        let wrong = "x".repeat(43);
        let d = w.st.token(&code_request(&w, &code, &wrong, REDIRECT), NOW);
        assert_eq!(refused(&d), Some(TokenError::InvalidGrant));
        let d =
            w.st.token(&code_request(&w, &code, VERIFIER, REDIRECT), NOW);
        assert_eq!(refused(&d), Some(TokenError::InvalidGrant), "burnt");

        let (redirect, _) = sign_in(&mut w);
        let code = query(&redirect, "code").unwrap();
        let d = w.st.token(
            &code_request(&w, &code, VERIFIER, "https://rp.test/other"),
            NOW,
        );
        assert_eq!(refused(&d), Some(TokenError::InvalidGrant));

        let (redirect, _) = sign_in(&mut w);
        let code = query(&redirect, "code").unwrap();
        let d =
            w.st.token(&code_request(&w, &code, VERIFIER, REDIRECT), NOW + 61);
        assert_eq!(
            refused(&d),
            Some(TokenError::InvalidGrant),
            "expired after 60 s"
        );
    }

    #[test]
    fn authorization_requests_without_s256_pkce_or_a_registered_redirect_are_refused() {
        let mut w = world();
        for extra in [
            vec![("code_challenge_method", "plain")],
            vec![("code_challenge_method", "")],
            vec![("code_challenge", "")],
            vec![("response_type", "token")],
            vec![("scope", "openid admin")],
        ] {
            let AuthorizeOutcome::Redirect(to) = authorize(&mut w, &extra) else {
                panic!("an error redirect for {extra:?}")
            };
            assert!(to.starts_with(REDIRECT), "{to}");
            assert!(query(&to, "error").is_some(), "{to}");
            assert_eq!(query(&to, "state").as_deref(), Some("st-1"));
        }
        // Unknown client, unregistered redirect: an error page, never a redirect.
        for extra in [
            vec![("redirect_uri", "https://evil.test/cb")],
            vec![("redirect_uri", "https://rp.test/cb/../x")],
            vec![("redirect_uri", "")],
            vec![("client_id", "client-nope")],
        ] {
            assert!(
                matches!(authorize(&mut w, &extra), AuthorizeOutcome::Refuse(_)),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
        let mut w = world();
        let (redirect, _) = sign_in(&mut w);
        let code = query(&redirect, "code").unwrap();
        let r1 =
            w.st.token(&code_request(&w, &code, VERIFIER, REDIRECT), NOW)
                .result
                .unwrap()
                .refresh_token
                .unwrap();
        let d = w.st.token(&refresh_request(&w, &r1), NOW + 10);
        assert_eq!(d.persist.families[0].generation, 2);
        let r2 = d.result.unwrap().refresh_token.unwrap();
        assert_ne!(r1, r2);
        let mut narrower = refresh_request(&w, &r2);
        narrower.scope = Some("kms".into());
        let d = w.st.token(&narrower, NOW + 20);
        let g = d.result.unwrap();
        assert_eq!(g.scope, "kms");
        assert!(g.id_token.is_none(), "no openid, no ID token");
        let r3 = g.refresh_token.unwrap();
        // r1 comes back: the whole family dies, r3 included.
        let d = w.st.token(&refresh_request(&w, &r1), NOW + 30);
        assert_eq!(refused(&d), Some(TokenError::InvalidGrant));
        assert!(d.persist.families[0].revoked);
        let d = w.st.token(&refresh_request(&w, &r3), NOW + 31);
        assert_eq!(refused(&d), Some(TokenError::InvalidGrant));
    }

    #[test]
    fn wrong_passwords_fail_alike_for_known_and_unknown_names_and_sessions_give_single_sign_on() {
        let mut w = world();
        let AuthorizeOutcome::Redirect(login_page) = authorize(&mut w, &[]) else {
            panic!()
        };
        let ch = query(&login_page, "challenge").unwrap();
        for name in ["admin", "nobody"] {
            let LoginOutcome::Failed { message, view } = login(&mut w, &ch, name, "wrong", NOW)
            else {
                panic!("{name}: a wrong password fails")
            };
            assert_eq!(message, LOGIN_FAILED);
            assert_eq!(view.tenant, "default");
        }
        // The request is still pending: the right password signs in.
        let password = w.password.clone();
        let LoginOutcome::Done { .. } = login(&mut w, &ch, "admin", &password, NOW + 1) else {
            panic!("the right password signs in")
        };

        let (_, session) = sign_in(&mut w);
        let AuthorizeOutcome::Redirect(login) = authorize(&mut w, &[]) else {
            panic!()
        };
        let ch = query(&login, "challenge").unwrap();
        let LoginStart::Redirect(to) = login_start(&mut w, &ch, Some(&session), NOW + 20) else {
            panic!("a live session signs in without the form")
        };
        assert!(query(&to, "code").is_some());
        let AuthorizeOutcome::Redirect(login) = authorize(&mut w, &[("prompt", "login")]) else {
            panic!()
        };
        let ch = query(&login, "challenge").unwrap();
        assert!(matches!(
            login_start(&mut w, &ch, Some(&session), NOW + 20),
            LoginStart::Form(_)
        ));
        let AuthorizeOutcome::Redirect(login) = authorize(&mut w, &[("prompt", "none")]) else {
            panic!()
        };
        let ch = query(&login, "challenge").unwrap();
        let LoginStart::Redirect(to) = login_start(&mut w, &ch, None, NOW + 20) else {
            panic!()
        };
        assert_eq!(query(&to, "error").as_deref(), Some("login_required"));
    }

    /// A session that serves `w`'s next request: whether it still signs in without the form.
    fn serves(w: &mut World, session: &str, now: u64) -> bool {
        let AuthorizeOutcome::Redirect(login) = authorize(w, &[]) else {
            panic!()
        };
        let ch = query(&login, "challenge").unwrap();
        match login_start(w, &ch, Some(session), now) {
            LoginStart::Redirect(to) => query(&to, "code").is_some(),
            LoginStart::Form(_) => false,
            LoginStart::Consent(_) | LoginStart::StepUp(_) => panic!("first party, no acr_values"),
        }
    }

    #[test]
    fn acr_values_and_the_client_policy_keep_a_weaker_sign_in_from_a_code() {
        let mut w = world();
        let phr = [("acr_values", "urn:example:gold urn:cryptoutil:acr:phr")];
        let AuthorizeOutcome::Redirect(login_page) = authorize(&mut w, &phr) else {
            panic!("a redirect to the login page")
        };
        let ch = query(&login_page, "challenge").unwrap();
        let request = w.st.sign_in_request(&ch, NOW).unwrap();
        assert_eq!(request.acr, Some(crate::identity::signin::ACR_PHR));
        let user = w.st.credential("default", "admin").unwrap();
        let pwd = w.idp.open(&user, vec!["pwd".into()], NOW).unwrap().subject;
        assert!(request.admits(&pwd, NOW) && !request.served_by(&pwd, NOW));
        // identity-authz refuses it too (identity-idp would have stepped it up first).
        assert!(w.st.stands(&pwd));
        assert!(w.st.signed_in(&ch, pwd, NOW).unwrap().is_none());
        let otp = ["pwd", "otp", "mfa"].map(String::from).to_vec();
        let mfa = w.idp.open(&user, otp, NOW).unwrap().subject;
        assert!(w.st.signed_in(&ch, mfa, NOW).unwrap().is_none());
        let key = ["pwd", "hwk", "mfa"].map(String::from).to_vec();
        let phr_subject = w.idp.open(&user, key, NOW).unwrap().subject;
        assert_eq!(phr_subject.acr(), crate::identity::signin::ACR_PHR);
        assert!(w.st.signed_in(&ch, phr_subject, NOW).unwrap().is_some());
        // The weakest known value of several is asked for; an unknown one asks nothing.
        assert_eq!(
            crate::identity::signin::required_acr("urn:cryptoutil:acr:phr urn:cryptoutil:acr:mfa"),
            Some(crate::identity::signin::ACR_MFA)
        );
        assert_eq!(
            crate::identity::signin::required_acr("urn:example:gold"),
            None
        );
    }

    #[test]
    fn a_logout_stays_effective_when_identity_authz_restarts_or_its_record_is_full() {
        use crate::identity::authz::flow::MAX_ENTRIES;
        let mut w = world();
        let (_, session) = sign_in(&mut w);
        assert!(serves(&mut w, &session, NOW + 1));
        // identity-authz restarted: it remembers no logout from before, so no older session serves.
        w.st.started(NOW + 2);
        assert!(
            !serves(&mut w, &session, NOW + 3),
            "a session from before the restart"
        );

        let mut w = world();
        let (_, session) = sign_in(&mut w);
        let sid = w.idp.session(&session, NOW + 1).unwrap().sid;
        w.st.end_session(&sid, NOW + 1);
        assert!(!serves(&mut w, &session, NOW + 2), "logged out");
        // A flood of logouts fills the record and the oldest are forgotten: the session stays
        // ended, and a session begun after the forgotten ones still serves.
        for i in 0..MAX_ENTRIES as u64 {
            w.st.end_session(&format!("other-{i}"), NOW + 2 + i / 1_000);
        }
        assert!(w.st.flow.ended.len() < MAX_ENTRIES);
        assert!(
            !w.st.flow.ended.contains_key(&sid),
            "forgotten to make room"
        );
        assert!(!serves(&mut w, &session, NOW + 200), "still logged out");
        let (_, later) = sign_in_at(&mut w, NOW + 200);
        assert!(serves(&mut w, &later, NOW + 201));
    }

    #[test]
    fn third_party_clients_ask_for_consent_once_per_scope_set() {
        let mut w = world_with(false);
        let sign_in = |w: &mut World, extra: &[(&str, &str)]| -> (String, LoginOutcome) {
            let AuthorizeOutcome::Redirect(page) = authorize(w, extra) else {
                panic!()
            };
            let ch = query(&page, "challenge").unwrap();
            let password = w.password.clone();
            let outcome = login(w, &ch, "admin", &password, NOW);
            (ch, outcome)
        };
        let (ch, outcome) = sign_in(&mut w, &[]);
        let LoginOutcome::Done {
            next: Next::Consent(view),
            ..
        } = outcome
        else {
            panic!("a third-party client asks for consent")
        };
        assert_eq!(view.username.as_deref(), Some("admin"));
        let (to, persist) = w.st.consent(&ch, false, NOW).unwrap();
        assert_eq!(query(&to, "error").as_deref(), Some("access_denied"));
        assert!(persist.is_empty());
        assert!(
            w.st.consent(&ch, true, NOW).is_err(),
            "a decided request is gone"
        );

        let (ch, outcome) = sign_in(&mut w, &[]);
        let LoginOutcome::Done {
            next: Next::Consent(_),
            session,
            ..
        } = outcome
        else {
            panic!("denied before: asked again")
        };
        let (to, persist) = w.st.consent(&ch, true, NOW).unwrap();
        assert!(query(&to, "code").is_some());
        assert_eq!(persist.consents.len(), 1);

        // Granted: the session signs in without asking; a wider request asks again.
        let AuthorizeOutcome::Redirect(l) = authorize(&mut w, &[("scope", "openid kms")]) else {
            panic!()
        };
        let ch = query(&l, "challenge").unwrap();
        assert!(matches!(
            login_start(&mut w, &ch, Some(&session), NOW),
            LoginStart::Redirect(_)
        ));
        let wider = [("scope", "openid profile kms identity jose")];
        let AuthorizeOutcome::Redirect(l) = authorize(&mut w, &wider) else {
            panic!()
        };
        let ch = query(&l, "challenge").unwrap();
        assert!(matches!(
            login_start(&mut w, &ch, Some(&session), NOW),
            LoginStart::Consent(_)
        ));
        let none = [wider[0], ("prompt", "none")];
        let AuthorizeOutcome::Redirect(l) = authorize(&mut w, &none) else {
            panic!()
        };
        let ch = query(&l, "challenge").unwrap();
        let LoginStart::Redirect(to) = login_start(&mut w, &ch, Some(&session), NOW) else {
            panic!()
        };
        assert_eq!(query(&to, "error").as_deref(), Some("consent_required"));
    }

    #[test]
    fn a_public_clients_refresh_family_is_bound_to_its_dpop_key() {
        let mut w = world();
        let spec = NewClient {
            name: "SPA".into(),
            auth_methods: Some(vec!["none".into()]),
            redirect_uris: vec![REDIRECT.into()],
            first_party: Some(true),
            ..NewClient::default()
        };
        let caller = Caller {
            who: "test".into(),
            tenant: "default".into(),
            scopes: Vec::new(),
        };
        let admin::Step::Write(write) = w.st.admin(&caller, AdminOp::CreateClient(spec)).unwrap()
        else {
            panic!()
        };
        let (loaded, answer, _) = AuthzState::persist_admin(&w.st.store(), *write).unwrap();
        w.st.merge(loaded);
        let admin::AdminAnswer::Client(client) = answer else {
            panic!("a client")
        };
        assert!(
            client.client_secret.is_none(),
            "a public client has no secret"
        );
        w.client_id = client.client_id;
        w.client_secret = String::new();
        let public = |r: &mut TokenRequest, jkt: Option<&str>, jti: &str| {
            r.client.method = AuthMethod::None;
            r.client.secret = Zeroizing::new(String::new());
            r.dpop = jkt.map(|k| cryptoutil_protocols::dpop::Proof {
                jkt: k.into(),
                jti: jti.into(),
                iat: NOW,
            });
        };
        let (redirect, _) = sign_in(&mut w);
        let code = query(&redirect, "code").unwrap();
        let mut r = code_request(&w, &code, VERIFIER, REDIRECT);
        public(&mut r, Some("key-1"), "p1");
        let d = w.st.token(&r, NOW);
        assert_eq!(d.persist.families[0].jkt.as_deref(), Some("key-1"));
        let g = d.result.unwrap();
        assert_eq!(g.token_type, "DPoP");
        assert_eq!(g.claims["cnf"]["jkt"], "key-1");
        let refresh = g.refresh_token.unwrap();
        for (jkt, jti) in [(None, "p2"), (Some("key-2"), "p3")] {
            let mut r = refresh_request(&w, &refresh);
            public(&mut r, jkt, jti);
            assert_eq!(
                refused(&w.st.token(&r, NOW + 1)),
                Some(TokenError::InvalidDpopProof),
                "{jkt:?}"
            );
        }
        let mut r = refresh_request(&w, &refresh);
        public(&mut r, Some("key-1"), "p1");
        assert_eq!(
            refused(&w.st.token(&r, NOW + 1)),
            Some(TokenError::InvalidDpopProof),
            "a replayed proof"
        );
        public(&mut r, Some("key-1"), "p4");
        assert!(w.st.token(&r, NOW + 1).result.is_ok());
    }
}
