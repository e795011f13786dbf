//! Sign-in load generator (`scripts/bench-signin`): whole browser sign-ins through
//! identity-idp's pages, each from the authorization request to the redirect that carries the
//! code, with a cookie jar per sign-in as a browser keeps one: the password alone (PBKDF2 at
//! 600,000 iterations is its cost), the password then a TOTP code (one user per sign-in: a
//! code counts once), and a passkey without a username (a software authenticator signing
//! with P-256; its counter stays 0, as synced passkeys' do). The users, their TOTP secrets and
//! passkeys are made first, untimed, through the admin API and the account page.
//!
//! `signin_bench --authz URL --idp URL --ca-file PEM --token OPERATOR_TOKEN --tenant T
//!  --rp-origin https://localhost:PORT [--count N] [--totp-users U] [--concurrency C]
//!  [--rounds R]`: N passkey sign-ins per round, a tenth as many with the password, U with
//!  the password and TOTP (default 64; each user signs in once per round, rounds 31 s apart).

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use cryptoutil_protocols::otp::{self, OtpAlg, OtpKey};
use cryptoutil_protocols::webauthn::{b64, PublicKey};
use cryptoutil_tests::bench::{fail, timed, Fallible, Load};
use cryptoutil_tests::browser::{
    api, hidden, location, sign_in_client, signed_in, Browser, Site, PASSWORD,
};
use hyper::Method;
use serde_json::{json, Value};

/// What every sign-in shares.
struct Bench {
    site: Site,
    /// The origin the WebAuthn RP serves its pages from (what clientDataJSON names).
    rp_origin: String,
}

/// A software passkey: its credential id and P-256 key.
struct Passkey {
    id: Vec<u8>,
    key: EcdsaKeyPair,
}

impl Passkey {
    fn new(n: usize) -> Fallible<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| fail("key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .map_err(|_| fail("key"))?;
        Ok(Self {
            id: format!("bench-passkey-{n}").into_bytes(),
            key,
        })
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn auth_data(rp_id: &str, flags: u8) -> Vec<u8> {
        let mut d = cryptoutil_protocols::sha256(rp_id.as_bytes()).to_vec();
        d.push(flags);
        d.extend_from_slice(&0u32.to_be_bytes());
        d
    }

    /// `RegistrationResponseJSON` for `options`: attestation `none`.
    fn register(&self, options: &Value, origin: &str) -> Fallible<String> {
        let rp_id = options
            .pointer("/publicKey/rp/id")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("rp.id"))?;
        let challenge = options
            .pointer("/publicKey/challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("challenge"))?;
        let cose = PublicKey::Es256(self.key.public_key().as_ref().to_vec()).to_cose()?;
        let mut auth = Self::auth_data(rp_id, 0x45);
        auth.extend_from_slice(&[0u8; 16]);
        auth.extend_from_slice(&u16::try_from(self.id.len())?.to_be_bytes());
        auth.extend_from_slice(&self.id);
        auth.extend_from_slice(&cose);
        // {"fmt": "none", "attStmt": {}, "authData": auth}, CBOR.
        let mut object = vec![0xa3, 0x63];
        object.extend_from_slice(b"fmt");
        object.push(0x64);
        object.extend_from_slice(b"none");
        object.push(0x67);
        object.extend_from_slice(b"attStmt");
        object.push(0xa0);
        object.push(0x68);
        object.extend_from_slice(b"authData");
        object.push(0x59);
        object.extend_from_slice(&u16::try_from(auth.len())?.to_be_bytes());
        object.extend_from_slice(&auth);
        let cd = Self::client_data("webauthn.create", challenge, origin);
        Ok(
            json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {"clientDataJSON": b64(&cd), "attestationObject": b64(&object),
                         "transports": ["internal"]}})
            .to_string(),
        )
    }

    /// `AuthenticationResponseJSON` for `options`, user verified, with `user_handle`.
    fn assert(&self, options: &Value, origin: &str, user_handle: &str) -> Fallible<String> {
        let rp_id = options
            .pointer("/publicKey/rpId")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("rpId"))?;
        let challenge = options
            .pointer("/publicKey/challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("challenge"))?;
        let auth = Self::auth_data(rp_id, 0x05);
        let cd = Self::client_data("webauthn.get", challenge, origin);
        let mut signed = auth.clone();
        signed.extend_from_slice(&cryptoutil_protocols::sha256(&cd));
        let sig = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .map_err(|_| fail("sign"))?;
        Ok(
            json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {"clientDataJSON": b64(&cd), "authenticatorData": b64(&auth),
                         "signature": b64(sig.as_ref()), "userHandle": user_handle}})
            .to_string(),
        )
    }
}

/// A passkey sign-in without a username.
async fn passkey_sign_in(bench: &Bench, key: &Passkey, handle: &str) -> Fallible<()> {
    let mut b = Browser::new(&bench.site);
    let (challenge, csrf) = b.login_page().await?;
    let idp = &bench.site.idp;
    let r = b
        .post(
            &format!("{idp}/browser/login/webauthn/options"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("purpose", "passkey"),
            ],
        )
        .await?;
    let options: Value = serde_json::from_slice(&r.body)?;
    let answer = key.assert(&options, &bench.rp_origin, handle)?;
    let r = b
        .post(
            &format!("{idp}/browser/login/webauthn"),
            &[
                ("challenge", &challenge),
                ("csrf", &csrf),
                ("purpose", "passkey"),
                ("credential", &answer),
            ],
        )
        .await?;
    signed_in(&r)
}

/// The TOTP step after the password.
async fn totp_sign_in(bench: &Bench, user: &str, key: &OtpKey) -> Fallible<()> {
    let mut b = Browser::new(&bench.site);
    let r = b.password(user).await?;
    let page = String::from_utf8_lossy(&r.body).into_owned();
    let (challenge, csrf) = (hidden(&page, "challenge")?, hidden(&page, "csrf")?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let code = key.totp(now, 30);
    let url = format!("{}/browser/login/factor", bench.site.idp);
    let r = b
        .post(
            &url,
            &[("challenge", &challenge), ("csrf", &csrf), ("code", &code)],
        )
        .await?;
    signed_in(&r)
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let load = Load::parse()?;
    let args = &load.args;
    let token = args.get("token")?.to_owned();
    let (count, concurrency, rounds) = (load.count, load.concurrency, load.rounds);
    let totp_users = args.number("totp-users", 64)?;
    let tenant = args.get("tenant")?.to_owned();
    let authz = args.get("authz")?.to_owned();
    let client_id = sign_in_client(&load.client, &authz, &token).await?;
    let bench = Bench {
        site: Site {
            client: load.client.clone(),
            authz,
            idp: args.get("idp")?.to_owned(),
            client_id,
        },
        rp_origin: args.get("rp-origin")?.to_owned(),
    };
    let admin = format!("{}/service/api/v1/identity", bench.site.authz);
    // Users: one for the password alone, `count` with a TOTP secret each (a code counts once
    // per user), one with a passkey per worker (its counter stays 0: many at once are fine).
    let mut users = Vec::new();
    for i in 0..=totp_users + concurrency {
        let name = format!("bench-{i}");
        let v = api(
            &bench.site.client,
            &token,
            Method::POST,
            &format!("{admin}/users"),
            json!({"username": name, "password": PASSWORD}),
        )
        .await?;
        users.push((
            name,
            v.pointer("/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    let mut totp = Vec::new();
    for (name, _) in users.iter().skip(1).take(totp_users) {
        let v = api(
            &bench.site.client,
            &token,
            Method::POST,
            &format!(
                "{}/service/api/v1/identity/users/{name}/factors",
                bench.site.idp
            ),
            json!({"type": "totp", "name": "bench"}),
        )
        .await?;
        let secret = otp::base32_decode(
            v.pointer("/secret")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        totp.push((name.clone(), OtpKey::new(OtpAlg::Sha1, 6, &secret)?));
    }
    let mut passkeys = Vec::new();
    for (i, (name, sub)) in users.iter().skip(1 + totp_users).enumerate() {
        let key = Passkey::new(i)?;
        let mut b = Browser::new(&bench.site);
        signed_in(&b.password(name).await?)?;
        let page = b
            .get(&format!("{}/browser/account", bench.site.idp))
            .await?;
        let csrf = hidden(&String::from_utf8_lossy(&page.body), "csrf")?;
        let r = b
            .post(
                &format!("{}/browser/account/webauthn/options", bench.site.idp),
                &[("csrf", &csrf), ("kind", "passkey")],
            )
            .await?;
        let options: Value = serde_json::from_slice(&r.body)?;
        let answer = key.register(&options, &bench.rp_origin)?;
        let r = b
            .post(
                &format!("{}/browser/account/webauthn", bench.site.idp),
                &[
                    ("csrf", &csrf),
                    ("kind", "passkey"),
                    ("name", "bench"),
                    ("credential", &answer),
                ],
            )
            .await?;
        if !location(&r)?.ends_with("done=added") {
            return Err(fail("the passkey was not registered"));
        }
        let handle = b64(&cryptoutil_protocols::webauthn::user_handle(&tenant, sub));
        passkeys.push((key, handle));
    }
    let bench = Arc::new(bench);
    let password_user = Arc::new(users.first().map(|u| u.0.clone()).unwrap_or_default());
    let totp = Arc::new(totp);
    let passkeys = Arc::new(passkeys);
    println!("round  sign-in                                       per_s    p99_ms");
    let mut sums = [0f64; 6];
    for round in 1..=rounds {
        // The password alone: PBKDF2-bound, so a tenth of the count.
        let (b, u) = (Arc::clone(&bench), Arc::clone(&password_user));
        let pwd = timed((count / 10).max(concurrency), concurrency, move |_| {
            let (b, u) = (Arc::clone(&b), Arc::clone(&u));
            async move {
                let mut browser = Browser::new(&b.site);
                signed_in(&browser.password(&u).await?)
            }
        })
        .await?;
        let (b, t) = (Arc::clone(&bench), Arc::clone(&totp));
        let used = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let two = timed(t.len(), concurrency, move |_| {
            let (b, t, used) = (Arc::clone(&b), Arc::clone(&t), Arc::clone(&used));
            async move {
                // Each user once per round: their code of this time step counts once.
                let i = used.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (name, key) = t.get(i).ok_or_else(|| fail("out of TOTP users"))?;
                totp_sign_in(&b, name, key).await
            }
        })
        .await?;
        let (b, p) = (Arc::clone(&bench), Arc::clone(&passkeys));
        let pk = timed(count, concurrency, move |i| {
            let (b, p) = (Arc::clone(&b), Arc::clone(&p));
            async move {
                let (key, handle) = p.get(i % p.len()).ok_or_else(|| fail("no passkey"))?;
                passkey_sign_in(&b, key, handle).await
            }
        })
        .await?;
        for (name, (rate, p99)) in [
            ("password (PBKDF2-SHA256, 600,000 iterations)", pwd),
            ("password + TOTP", two),
            ("passkey (no username, ES256, UV)", pk),
        ] {
            println!("{round:<6} {name:<45} {rate:>7.1} {p99:>9.1}");
        }
        for (sum, v) in sums
            .iter_mut()
            .zip([pwd.0, pwd.1, two.0, two.1, pk.0, pk.1])
        {
            *sum += v;
        }
        // The TOTP users' codes of this step are spent: the next round waits for the next step.
        if round < rounds {
            tokio::time::sleep(std::time::Duration::from_secs(31)).await;
        }
    }
    let n = rounds.max(1) as f64;
    let [a, ap, b, bp, c, cp] = sums.map(|s| s / n);
    println!(
        "mean: password {a:.1}/s p99 {ap:.0} ms | password + TOTP {b:.1}/s p99 {bp:.0} ms | passkey {c:.1}/s p99 {cp:.0} ms (x{:.1} of the password)",
        c / a
    );
    Ok(())
}
