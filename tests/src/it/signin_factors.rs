//! Second factors at sign-in, judged by code generators no one here wrote: an operator
//! enrolls TOTP and HOTP for a user through identity-idp's admin API, `oathtool` (Debian's
//! liboath) reads the secrets it answers and makes the codes, and the code flow's login form
//! asks for one after the password. A code signs in once; a replay, a wrong code and a code
//! without the browser's waiting sign-in are refused; the ID token says how the user signed
//! in (`amr`, `acr`); removing the factors brings back password-only sign-in; the audit log
//! holds every step and verifies.

use cryptoutil_actors::ServiceName;
use hyper::Method;
use serde_json::{json, Value};

use super::code_flow::{
    fixture, hidden, location, login_page, query, redeem, rp_client, Browser, Fixture,
};
use super::identity::{admin, api, claims, tenant_token};

pub(super) const PASSWORD: &str = "correct horse battery staple";

/// A new user `name` (password [`PASSWORD`]) made by `operator`: their `sub`.
pub(super) async fn new_user(app: &crate::TestApp, operator: &str, name: &str) -> String {
    let (status, v) = admin(
        app,
        operator,
        Method::POST,
        "/users",
        Some(json!({"username": name, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// `oathtool`'s one code for `args`.
fn oathtool(args: &[&str]) -> String {
    super::otp::oathtool(args).concat()
}

/// The password step of a fresh authorization request: the page it answers.
pub(super) async fn password_step(
    b: &mut Browser<'_>,
    client_id: &str,
    user: &str,
) -> (u16, String, String) {
    password_step_with(b, client_id, user, &[]).await
}

/// The same, the authorization request with `extra` parameters.
async fn password_step_with(
    b: &mut Browser<'_>,
    client_id: &str,
    user: &str,
    extra: &[(&str, &str)],
) -> (u16, String, String) {
    let (form, challenge, csrf) = login_page(b, client_id, extra).await;
    let origin = b_origin(b);
    let r = b
        .post(
            &form,
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("username", user),
                ("password", PASSWORD),
            ],
            Some(&origin),
        )
        .await;
    let status = u16::from(r.status);
    let text = r.text();
    if status == 303 {
        return (status, location(&r).unwrap(), challenge);
    }
    (status, text, challenge)
}

fn b_origin(b: &Browser<'_>) -> String {
    b.app.public(ServiceName::IdentityIdp).to_owned()
}

/// Posts the code form's `body` with `cookies` (a waiting sign-in's and its CSRF cookie) to
/// `app`'s identity-idp, as a script would, without a browser: the page it answers.
pub(super) async fn post_code(app: &crate::TestApp, cookies: &str, body: &str) -> String {
    let url = format!(
        "{}/browser/login/factor",
        app.public(ServiceName::IdentityIdp)
    );
    let r = app
        .client
        .send(
            Method::POST,
            &url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", cookies),
            ],
            body.to_owned().into(),
        )
        .await
        .unwrap();
    r.text()
}

/// Posts `code` on the code form `page` of request `challenge`.
pub(super) async fn code_step(
    b: &mut Browser<'_>,
    page: &str,
    challenge: &str,
    code: &str,
) -> (u16, String) {
    assert!(page.contains("name=\"code\""), "the code form: {page}");
    let csrf = hidden(page, "csrf");
    let origin = b_origin(b);
    let url = format!("{origin}/browser/login/factor");
    let r = b
        .post(
            &url,
            &[("challenge", challenge), ("csrf", &csrf), ("code", code)],
            Some(&origin),
        )
        .await;
    if r.status == 303 {
        return (303, location(&r).unwrap());
    }
    (u16::from(r.status), r.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_and_hotp_from_oathtool_sign_in_once_after_the_password() {
    let Fixture {
        _dir,
        app,
        operator,
        ..
    } = fixture().await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    let user_id = new_user(&app, &operator, "alice").await;
    let factors = format!("/identity/users/{user_id}/factors");
    let idp = ServiceName::IdentityIdp;

    // Enrolled by the operator: the secret and otpauth URI come once.
    let (status, totp) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        &factors,
        Some(json!({"type": "totp", "name": "phone", "algorithm": "SHA256", "digits": 8})),
    )
    .await;
    assert_eq!(status, 201, "{totp}");
    assert_eq!(totp["type"], "totp");
    let uri = totp["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/cryptoutil%20default:alice?secret=")
            && uri.contains("&algorithm=SHA256&digits=8&period=30"),
        "{uri}"
    );
    let totp_secret = totp["secret"].as_str().unwrap().to_owned();
    let (status, hotp) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        // By login name as well as by sub.
        "/identity/users/alice/factors",
        Some(json!({"type": "hotp", "name": "token"})),
    )
    .await;
    assert_eq!(status, 201, "{hotp}");
    let hotp_secret = hotp["secret"].as_str().unwrap().to_owned();
    // Out-of-range parameters and unknown types are refused, nothing enrolled.
    for bad in [
        json!({"type": "totp", "digits": 12}),
        json!({"type": "totp", "algorithm": "MD5"}),
        json!({"type": "sms"}),
        json!({"type": "totp", "perod": 30}),
    ] {
        let (status, v) = api(&app, idp, &operator, Method::POST, &factors, Some(bad)).await;
        assert_eq!(status, 400, "{v}");
    }
    let (status, list) = api(&app, idp, &operator, Method::GET, &factors, None).await;
    assert_eq!(status, 200, "{list}");
    let mut kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    // The password first, then by enrollment time (the same second here: any order).
    assert_eq!(kinds.first(), Some(&"password"), "{list}");
    kinds[1..].sort_unstable();
    assert_eq!(kinds, ["password", "hotp", "totp"], "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|f| f.get("secret").is_none()
                && f["id"].is_string()
                && f["name"].is_string()
                && f["created_at"].is_u64()),
        "listed without secrets: {list}"
    );
    // An unknown user is a 404; so is alice to another tenant's administrator, whatever it asks.
    let (status, _) = api(
        &app,
        idp,
        &operator,
        Method::GET,
        "/identity/users/nobody/factors",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let acme = tenant_token(&app, &operator, "acme", "identity").await;
    let totp_path = format!("{factors}/{}", totp["id"].as_str().unwrap());
    for (method, path, body) in [
        (Method::GET, factors.clone(), None),
        (Method::POST, factors.clone(), Some(json!({"type": "totp"}))),
        (Method::DELETE, totp_path.clone(), None),
        (
            Method::GET,
            "/identity/users/alice/factors".to_owned(),
            None,
        ),
    ] {
        let (status, v) = api(&app, idp, &acme, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path} from another tenant: {v}");
    }

    // The password alone no longer signs in: the code form comes instead of the redirect.
    let mut b = Browser::new(&app);
    let (status, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    assert_eq!(status, 200, "{page}");
    assert!(b.cookie("__Host-cryptoutil-idp-step").is_some());
    // A wrong code: the form again, with a message.
    let (status, page2) = code_step(&mut b, &page, &challenge, "00000000").await;
    assert_eq!(status, 200);
    assert!(page2.contains("The code is incorrect"), "{page2}");
    // oathtool's TOTP code signs in.
    let code = oathtool(&["--totp=SHA256", "--digits=8", "--base32", &totp_secret]);
    let (status, to) = code_step(&mut b, &page2, &challenge, &code).await;
    assert_eq!(status, 303, "{to}");
    let auth_code = query(&to, "code").unwrap();
    let (status, tokens) = redeem(&app, (&client_id, &secret), &auth_code).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    assert_eq!(id["acr"], "urn:cryptoutil:acr:mfa");

    // A request that needs a phishing-resistant sign-in: a TOTP code does not reach it, and
    // alice has no passkey or security key.
    let phr = [("acr_values", "urn:cryptoutil:acr:phr")];
    let mut b = Browser::new(&app);
    let (status, page, _) = password_step_with(&mut b, &client_id, "alice", &phr).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("needs a stronger sign-in"), "{page}");

    // The same code again, on a new sign-in in its window: refused.
    let mut b = Browser::new(&app);
    let (status, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = code_step(&mut b, &page, &challenge, &code).await;
    assert_eq!(status, 200, "a replayed TOTP code: {page}");
    assert!(page.contains("The code is incorrect"), "{page}");
    // HOTP: oathtool's code for counter 2 (two presses lost) signs in, once.
    let hotp_code = oathtool(&["--hotp", "--base32", "--counter=2", &hotp_secret]);
    let (status, to) = code_step(&mut b, &page, &challenge, &hotp_code).await;
    assert_eq!(status, 303, "{to}");
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    let (status, page) = code_step(&mut b, &page, &challenge, &hotp_code).await;
    assert_eq!(status, 200, "a replayed HOTP code: {page}");
    // Counter 1 is behind the one used: refused; counter 3 is next: accepted.
    let behind = oathtool(&["--hotp", "--base32", "--counter=1", &hotp_secret]);
    let (status, page) = code_step(&mut b, &page, &challenge, &behind).await;
    assert_eq!(status, 200, "{page}");
    let next = oathtool(&["--hotp", "--base32", "--counter=3", &hotp_secret]);
    let (status, to) = code_step(&mut b, &page, &challenge, &next).await;
    assert_eq!(status, 303, "{to}");

    // A code without the browser's waiting sign-in (another browser, no step cookie): the
    // password again.
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    let mut other = Browser::new(&app);
    let (_, _, csrf) = login_page(&mut other, &client_id, &[]).await;
    let next = oathtool(&["--hotp", "--base32", "--counter=4", &hotp_secret]);
    let origin = b_origin(&other);
    let r = other
        .post(
            &format!("{origin}/browser/login/factor"),
            &[("challenge", &challenge), ("csrf", &csrf), ("code", &next)],
            Some(&origin),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("This sign-in expired"), "{}", r.text());
    // Three codes per password: the fourth finds the sign-in gone (the name is not locked:
    // three failures are fewer than its five free ones).
    let mut page = page;
    for _ in 0..3 {
        let (status, p) = code_step(&mut b, &page, &challenge, "123456").await;
        assert_eq!(status, 200);
        assert!(p.contains("The code is incorrect"), "{p}");
        page = p;
    }
    let (status, page) = code_step(&mut b, &page, &challenge, &next).await;
    assert_eq!(status, 200);
    assert!(page.contains("This sign-in expired"), "{page}");
    // The password again, and counter 4 (never accepted) signs in.
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    let (status, to) = code_step(&mut b, &page, &challenge, &next).await;
    assert_eq!(status, 303, "{to}");
    // Codes sent at once are each counted before they are checked: of six wrong codes for
    // one waiting sign-in, three are checked and three find it gone.
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "alice").await;
    let csrf = hidden(&page, "csrf");
    let cookies = format!(
        "__Host-cryptoutil-idp-step={}; __Host-cryptoutil-idp-csrf={csrf}",
        b.cookie("__Host-cryptoutil-idp-step").unwrap()
    );
    let body = format!(
        "challenge={}&csrf={csrf}&code=654321",
        cryptoutil_protocols::oauth::form_encode(&challenge)
    );
    let guess = || post_code(&app, &cookies, &body);
    let pages = tokio::join!(guess(), guess(), guess(), guess(), guess(), guess());
    let pages = [pages.0, pages.1, pages.2, pages.3, pages.4, pages.5];
    let checked = pages
        .iter()
        .filter(|p| p.contains("The code is incorrect"))
        .count();
    let gone = pages
        .iter()
        .filter(|p| p.contains("This sign-in expired"))
        .count();
    assert_eq!((checked, gone), (3, 3), "{pages:?}");

    // Removed factors: the password alone signs in again (a fresh user: alice's last wrong
    // codes count toward her lockout).
    for f in list.as_array().unwrap().iter().skip(1) {
        let path = format!("{factors}/{}", f["id"].as_str().unwrap());
        let (status, v) = api(&app, idp, &operator, Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "{v}");
        let (status, _) = api(&app, idp, &operator, Method::DELETE, &path, None).await;
        assert_eq!(status, 404, "removed once");
    }
    let (status, _) = api(
        &app,
        idp,
        &operator,
        Method::DELETE,
        &format!("{factors}/password"),
        None,
    )
    .await;
    assert_eq!(status, 409, "the password is not removed here");
    let (status, list) = api(&app, idp, &operator, Method::GET, &factors, None).await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1), "{list}");
    new_user(&app, &operator, "bob").await;
    let mut b = Browser::new(&app);
    let (status, to, _) = password_step(&mut b, &client_id, "bob").await;
    assert_eq!(status, 303, "{to}");
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd"]), "{id}");
    assert_eq!(id["acr"], "urn:cryptoutil:acr:password");
    // A request that needs two factors (acr_values) is refused for a user with one, and says
    // what to add; an unknown acr value asks for nothing.
    let mfa = [("acr_values", "urn:cryptoutil:acr:mfa")];
    let mut b = Browser::new(&app);
    let (status, page, _) = password_step_with(&mut b, &client_id, "bob", &mfa).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("needs a stronger sign-in"), "{page}");
    let unknown = [("acr_values", "urn:example:gold")];
    let (status, _, _) = password_step_with(&mut b, &client_id, "bob", &unknown).await;
    assert_eq!(status, 303);
    // A client that requires two factors for every sign-in: the same refusal, no acr_values
    // needed; an acr the service does not know is refused at registration.
    let strict = json!({"first_party": true, "acr": "urn:cryptoutil:acr:mfa"});
    let (strict_id, _) = rp_client(&app, &operator, strict).await;
    let mut b = Browser::new(&app);
    let (status, page, _) = password_step(&mut b, &strict_id, "bob").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("needs a stronger sign-in"), "{page}");
    let (status, v) = admin(
        &app,
        &operator,
        Method::POST,
        "/clients",
        Some(json!({"name": "x", "redirect_uris": ["https://rp.example/cb"], "acr": "gold"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // identity-idp's audit log holds the enrollments, removals, sign-ins and refusals, and
    // its chain verifies.
    let verify: Value = app
        .client
        .get(&format!("{}/admin/v1/audit/verify", app.admin(idp)))
        .await
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .unwrap();
    assert_eq!(verify["valid"], Value::Bool(true), "{verify}");
    assert!(verify["records"].as_u64().unwrap() >= 15, "{verify}");
    app.stop().await;
}

/// Recovery codes: ten, shown once, each signing in once in place of the lost device's code;
/// a second set is refused while the first stands.
#[tokio::test(flavor = "multi_thread")]
async fn recovery_codes_sign_in_once_each() {
    let Fixture {
        _dir,
        app,
        operator,
        ..
    } = fixture().await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "carol").await;
    let idp = ServiceName::IdentityIdp;
    let factors = "/identity/users/carol/factors";
    let (status, set) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        factors,
        Some(json!({"type": "recovery_codes"})),
    )
    .await;
    assert_eq!(status, 201, "{set}");
    let codes: Vec<String> = set["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{set}");
    let (status, v) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        factors,
        Some(json!({"type": "recovery_codes"})),
    )
    .await;
    assert_eq!(status, 409, "one set at a time: {v}");
    let (_, list) = api(&app, idp, &operator, Method::GET, factors, None).await;
    assert_eq!(list[1]["type"], "recovery_codes", "{list}");
    assert!(
        !list.to_string().contains(&codes[0]),
        "never listed: {list}"
    );

    // A code signs in (typed in capitals, without dashes), once.
    let mut b = Browser::new(&app);
    let (status, page, challenge) = password_step(&mut b, &client_id, "carol").await;
    assert_eq!(status, 200, "{page}");
    let typed = codes[0].replace('-', "").to_uppercase();
    let (status, to) = code_step(&mut b, &page, &challenge, &typed).await;
    assert_eq!(status, 303, "{to}");
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "carol").await;
    let (status, page) = code_step(&mut b, &page, &challenge, &codes[0]).await;
    assert_eq!(status, 200, "a used recovery code: {page}");
    assert!(page.contains("The code is incorrect"), "{page}");
    let (status, to) = code_step(&mut b, &page, &challenge, &codes[9]).await;
    assert_eq!(status, 303, "another code: {to}");
    app.stop().await;
}

/// Random bytes in hex.
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    cryptoutil_protocols::oauth::fill_random(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a YubiKey programmed with `key`, `private_id` and `public_id` types when touched
/// `count` times from usage counter `usage`, session counter `session`, as yubiotp (a peer
/// written by no one here) simulates it.
async fn yubikey(token: (&str, &str, &str), usage: u16, session: u8, count: usize) -> Vec<String> {
    let (key, private_id, public_id) = token;
    let out = super::jose_interop::peer(
        "yubikey_otp.py",
        vec![
            key.to_owned(),
            private_id.to_owned(),
            public_id.to_owned(),
            usage.to_string(),
            session.to_string(),
            count.to_string(),
        ],
    )
    .await;
    let otps: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(otps.len(), count, "{otps:?}");
    otps
}

/// Yubico OTP validated here: an operator imports a YubiKey's OTP slot (public id, private id,
/// AES key) with one OTP it typed; the OTPs yubiotp types for it sign in after the password,
/// each once and never one older than the last accepted; an import that does not match its
/// OTP, and the same token for a second user, are refused.
#[tokio::test(flavor = "multi_thread")]
async fn yubico_otps_from_yubiotp_sign_in_once_and_only_forward() {
    let Fixture {
        _dir,
        app,
        operator,
        ..
    } = fixture().await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "dave").await;
    new_user(&app, &operator, "erin").await;
    let idp = ServiceName::IdentityIdp;
    let (key, private_id) = (random_hex(16), random_hex(6));
    let public_id =
        cryptoutil_protocols::yubico::modhex_encode(&[0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);
    let token = (key.as_str(), private_id.as_str(), public_id.as_str());
    // Touched five times since it was programmed, after four power-ups.
    let otps = yubikey(token, 4, 0, 5).await;
    let import = |otp: &str, key: &str| {
        json!({"type": "yubico_otp", "name": "YubiKey 5", "public_id": public_id,
               "private_id": private_id, "aes_key": key, "otp": otp})
    };
    // Another key than the token's: its OTP does not open, nothing enrolled.
    let (status, v) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        "/identity/users/dave/factors",
        Some(import(&otps[0], &random_hex(16))),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    // The token's: enrolled with the third OTP, which spends the two before it; the answer
    // shows the public id and never the key.
    let (status, v) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        "/identity/users/dave/factors",
        Some(import(&otps[2], &key)),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["type"], "yubico_otp", "{v}");
    assert_eq!(v["public_id"], public_id.as_str(), "{v}");
    assert!(!v.to_string().contains(&key), "{v}");
    // The same token for erin: refused (an OTP spent by one would open for the other).
    let (status, v) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        "/identity/users/erin/factors",
        Some(import(&otps[4], &key)),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    // dave's public id (every OTP shows it) with another key: no claim on dave's token.
    let erin_key = random_hex(16);
    let erins = yubikey((&erin_key, &private_id, &public_id), 1, 0, 1).await;
    let (status, v) = api(
        &app,
        idp,
        &operator,
        Method::POST,
        "/identity/users/erin/factors",
        Some(import(&erins[0], &erin_key)),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, list) = api(
        &app,
        idp,
        &operator,
        Method::GET,
        "/identity/users/dave/factors",
        None,
    )
    .await;
    assert_eq!(list[1]["type"], "yubico_otp", "{list}");
    assert_eq!(list[1]["name"], "YubiKey 5", "{list}");

    // An OTP spent at enrollment is refused; the next one signs in.
    let mut b = Browser::new(&app);
    let (status, page, challenge) = password_step(&mut b, &client_id, "dave").await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = code_step(&mut b, &page, &challenge, &otps[1]).await;
    assert_eq!(status, 200, "an OTP older than the one enrolled: {page}");
    assert!(page.contains("The code is incorrect"), "{page}");
    let (status, to) = code_step(&mut b, &page, &challenge, &otps[3]).await;
    assert_eq!(status, 303, "{to}");
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    assert_eq!(id["acr"], "urn:cryptoutil:acr:mfa");
    // Replayed: refused; the one after it (typed in capitals, as with caps lock) signs in.
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "dave").await;
    let (status, page) = code_step(&mut b, &page, &challenge, &otps[3]).await;
    assert_eq!(status, 200, "a replayed OTP: {page}");
    assert!(page.contains("The code is incorrect"), "{page}");
    let (status, to) = code_step(&mut b, &page, &challenge, &otps[4].to_uppercase()).await;
    assert_eq!(status, 303, "{to}");
    // Unplugged and plugged in again: the usage counter grew, the session counter restarts.
    let after = yubikey(token, 5, 0, 1).await;
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "dave").await;
    let (status, to) = code_step(&mut b, &page, &challenge, &after[0]).await;
    assert_eq!(status, 303, "{to}");
    // A token cloned before a power-up (usage counter 4 again, later session): refused.
    let clone = yubikey(token, 4, 9, 1).await;
    let mut b = Browser::new(&app);
    let (_, page, challenge) = password_step(&mut b, &client_id, "dave").await;
    let (status, page) = code_step(&mut b, &page, &challenge, &clone[0]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The code is incorrect"), "{page}");
    app.stop().await;
}

/// A tenant's policy: its administrator requires two factors of every sign-in of its users
/// (whatever the request or the client asks); a user without a second factor is told so; the
/// last factor that reaches the policy is not removed (a recovery code does not count), until
/// a replacement is enrolled or the policy is cleared.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_policy_raises_every_sign_in_and_keeps_the_last_factor_that_reaches_it() {
    let Fixture {
        _dir,
        app,
        operator,
        ..
    } = fixture().await;
    let (client_id, secret) = rp_client(&app, &operator, json!({"first_party": true})).await;
    new_user(&app, &operator, "frank").await;
    new_user(&app, &operator, "gina").await;
    let idp = ServiceName::IdentityIdp;
    let factors = "/identity/users/frank/factors";
    let enroll = |body: Value| {
        let (app, operator) = (&app, &operator);
        async move {
            let (status, v) = api(app, idp, operator, Method::POST, factors, Some(body)).await;
            assert_eq!(status, 201, "{v}");
            v
        }
    };
    let totp = enroll(json!({"type": "totp"})).await;
    enroll(json!({"type": "recovery_codes"})).await;

    // The policy: set by the tenant's administrator; an unknown value and another tenant's
    // administrator are refused.
    let policy = "/tenants/default/policy";
    let mfa = json!({"acr": "urn:cryptoutil:acr:mfa"});
    let (status, v) = admin(
        &app,
        &operator,
        Method::PUT,
        policy,
        Some(json!({"acr": "gold"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let acme = tenant_token(&app, &operator, "acme", "identity").await;
    let (status, v) = admin(&app, &acme, Method::PUT, policy, Some(mfa.clone())).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = admin(&app, &operator, Method::PUT, policy, Some(mfa.clone())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["acr"], "urn:cryptoutil:acr:mfa", "{v}");
    let (_, tenants) = admin(&app, &operator, Method::GET, "/tenants", None).await;
    assert!(
        tenants["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "default" && t["acr"] == "urn:cryptoutil:acr:mfa"),
        "{tenants}"
    );

    // gina has only her password: refused at once, whatever the client asks.
    let mut b = Browser::new(&app);
    let (status, page, _) = password_step(&mut b, &client_id, "gina").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("needs a stronger sign-in"), "{page}");
    // frank signs in with his TOTP code: acr mfa.
    let mut b = Browser::new(&app);
    let (status, page, challenge) = password_step(&mut b, &client_id, "frank").await;
    assert_eq!(status, 200, "{page}");
    let code = oathtool(&["--totp", "--base32", totp["secret"].as_str().unwrap()]);
    let (status, to) = code_step(&mut b, &page, &challenge, &code).await;
    assert_eq!(status, 303, "{to}");
    let (status, tokens) = redeem(&app, (&client_id, &secret), &query(&to, "code").unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:cryptoutil:acr:mfa", "{id}");

    // The TOTP is frank's last factor that reaches the policy (his recovery codes do not):
    // not removed. With an HOTP token enrolled first, it is; then the HOTP is the last.
    let totp_path = format!("{factors}/{}", totp["id"].as_str().unwrap());
    let (status, v) = api(&app, idp, &operator, Method::DELETE, &totp_path, None).await;
    assert_eq!(status, 409, "{v}");
    let hotp = enroll(json!({"type": "hotp"})).await;
    let (status, v) = api(&app, idp, &operator, Method::DELETE, &totp_path, None).await;
    assert_eq!(status, 204, "{v}");
    let hotp_path = format!("{factors}/{}", hotp["id"].as_str().unwrap());
    let (status, v) = api(&app, idp, &operator, Method::DELETE, &hotp_path, None).await;
    assert_eq!(status, 409, "{v}");
    // Cleared: the HOTP goes, and gina's password alone signs in again.
    let (status, v) = admin(
        &app,
        &operator,
        Method::PUT,
        policy,
        Some(json!({"acr": null})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("acr").is_none(), "{v}");
    let (status, v) = api(&app, idp, &operator, Method::DELETE, &hotp_path, None).await;
    assert_eq!(status, 204, "{v}");
    let mut b = Browser::new(&app);
    let (status, to, _) = password_step(&mut b, &client_id, "gina").await;
    assert_eq!(status, 303, "{to}");
    app.stop().await;
}
