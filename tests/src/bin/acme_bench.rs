//! ACME finalize beside the CA's issuance API, in one run (`scripts/bench-ca` runs it): an
//! account bound to an RA secret, `count` orders made ready (http-01 answered by this
//! program's own server on `--http01-port`), then, timed, `count` finalizes of those ready
//! orders and `count` issuances through the core API with the same CSR, each at
//! `--concurrency` requests in flight over kept-alive TLS connections. Prints rate and p99
//! for both, per round.
//!
//! Usage: acme_bench --ca-file F --directory URL --kid K --hmac H --http01-port P --name N
//!   --csr-pem FILE --issue-url URL --token T [--count 2000] [--concurrency 32] [--rounds 3]

use std::sync::Arc;

use cryptoutil_federation::HttpsClient;
use cryptoutil_protocols::jose::{b64, Jwk, JwsAlg};
use cryptoutil_tests::bench::{fail, pem_body, timed, Core, Fallible, Load, Rounds};
use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// The account: its key, its URL, and the nonces answers brought.
struct Account {
    client: HttpsClient,
    key: Jwk,
    kid: String,
    nonces: Mutex<Vec<String>>,
    new_nonce: String,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl Account {
    async fn nonce(&self) -> Fallible<String> {
        if let Some(n) = self.nonces.lock().await.pop() {
            return Ok(n);
        }
        let r = self
            .client
            .send(Method::HEAD, &self.new_nonce, &[], Default::default())
            .await?;
        Ok(r.headers
            .get("replay-nonce")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| fail("no nonce"))?
            .to_owned())
    }

    async fn post(&self, url: &str, payload: Option<&Value>) -> Fallible<Answer> {
        let nonce = self.nonce().await?;
        let mut header = json!({"alg": "ES256", "nonce": nonce, "url": url});
        if let Some(h) = header.as_object_mut() {
            if self.kid.is_empty() {
                h.insert("jwk".into(), self.key.to_public_value()?);
            } else {
                h.insert("kid".into(), self.kid.clone().into());
            }
        }
        let payload = payload.map(Value::to_string).unwrap_or_default();
        self.send(url, &header, &payload).await
    }

    async fn send(&self, url: &str, header: &Value, payload: &str) -> Fallible<Answer> {
        let protected = b64::encode(header.to_string().as_bytes());
        let payload = b64::encode(payload.as_bytes());
        let signature = self.key.sign(format!("{protected}.{payload}").as_bytes())?;
        let body = json!({"protected": protected, "payload": payload, "signature": b64::encode(&signature)});
        let r = self
            .client
            .send(
                Method::POST,
                url,
                &[("content-type", "application/jose+json")],
                body.to_string().into_bytes().into(),
            )
            .await?;
        if let Some(n) = r.headers.get("replay-nonce").and_then(|v| v.to_str().ok()) {
            self.nonces.lock().await.push(n.to_owned());
        }
        Ok(Answer {
            status: r.status.as_u16(),
            location: r
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        })
    }
}

/// An order made ready: its finalize URL.
async fn ready_order(account: &Account, new_order: &str, name: &str) -> Fallible<String> {
    let order = account
        .post(
            new_order,
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        )
        .await?;
    if order.status != 201 {
        return Err(fail(format!("new-order: {} {}", order.status, order.body)));
    }
    let authz = order
        .body
        .pointer("/authorizations/0")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no authorization"))?
        .to_owned();
    let finalize = order
        .body
        .get("finalize")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no finalize"))?
        .to_owned();
    let authz = account.post(&authz, None).await?;
    let challenge = authz
        .body
        .pointer("/challenges/0/url")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no challenge"))?
        .to_owned();
    let done = account.post(&challenge, Some(&json!({}))).await?;
    if done.body.get("status") != Some(&json!("valid")) {
        return Err(fail(format!("challenge: {}", done.body)));
    }
    Ok(finalize)
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let load = Load::parse()?;
    let (args, client) = (&load.args, load.client.clone());
    let (count, concurrency, rounds) = (load.count, load.concurrency, load.rounds);
    let name = args.get("name")?.to_owned();
    let csr_pem = std::fs::read_to_string(args.get("csr-pem")?)?;
    let der = pem_body(&csr_pem)?;
    let directory: Value = serde_json::from_slice(&client.get(args.get("directory")?).await?.body)?;
    let url = |n: &str| {
        directory
            .get(n)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("the directory has no {n}")))
    };
    let key = Jwk::generate(JwsAlg::ES256)?;
    let port = args
        .number("http01-port", 0)?
        .try_into()
        .map_err(|_| fail("--http01-port: a port"))?;
    let (_, _responder) = cryptoutil_tests::http01::responder(port, key.thumbprint()?).await?;
    let mut account = Account {
        client: client.clone(),
        key,
        kid: String::new(),
        nonces: Mutex::new(Vec::new()),
        new_nonce: url("newNonce")?,
    };
    // The external account binding: HS256 over the account key with the RA secret.
    let new_account = url("newAccount")?;
    let mac = Jwk::from_value(&json!({"kty": "oct", "k": args.get("hmac")?, "alg": "HS256"}))?;
    let protected = b64::encode(
        json!({"alg": "HS256", "kid": args.get("kid")?, "url": new_account})
            .to_string()
            .as_bytes(),
    );
    let payload = b64::encode(account.key.to_public_value()?.to_string().as_bytes());
    let tag = mac.sign(format!("{protected}.{payload}").as_bytes())?;
    let binding =
        json!({"protected": protected, "payload": payload, "signature": b64::encode(&tag)});
    let made = account
        .post(
            &new_account,
            Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding})),
        )
        .await?;
    account.kid = made
        .location
        .filter(|_| made.status == 201)
        .ok_or_else(|| fail(format!("new-account: {} {}", made.status, made.body)))?;
    let account = Arc::new(account);
    let new_order = url("newOrder")?;
    let csr_b64 = b64::encode(&der);
    let core = Core::new(&load, &csr_pem)?;

    let mut rounds_seen = Rounds::start();
    for round in 1..=rounds {
        // Ready orders, made untimed.
        let ready = Arc::new(Mutex::new(Vec::with_capacity(count)));
        {
            let (account, new_order, name, ready) = (
                Arc::clone(&account),
                new_order.clone(),
                name.clone(),
                Arc::clone(&ready),
            );
            timed(count, concurrency, move |_| {
                let (account, new_order, name, ready) = (
                    Arc::clone(&account),
                    new_order.clone(),
                    name.clone(),
                    Arc::clone(&ready),
                );
                async move {
                    let finalize = ready_order(&account, &new_order, &name).await?;
                    ready.lock().await.push(finalize);
                    Ok(())
                }
            })
            .await?;
        }
        let (core_rate, core_p99) = core.timed(count, concurrency).await?;
        let (account2, csr) = (Arc::clone(&account), csr_b64.clone());
        let (acme_rate, acme_p99) = timed(count, concurrency, move |_| {
            let (account, ready, csr) = (Arc::clone(&account2), Arc::clone(&ready), csr.clone());
            async move {
                let finalize = ready
                    .lock()
                    .await
                    .pop()
                    .ok_or_else(|| fail("no ready order left"))?;
                let r = account.post(&finalize, Some(&json!({"csr": csr}))).await?;
                if r.status != 200 || r.body.get("status") != Some(&json!("valid")) {
                    return Err(fail(format!("finalize: {} {}", r.status, r.body)));
                }
                Ok(())
            }
        })
        .await?;
        rounds_seen.round(
            round,
            "cryptoutil ACME finalize (ready order)",
            (core_rate, core_p99),
            (acme_rate, acme_p99),
        );
    }
    rounds_seen.summary("ACME finalize");
    Ok(())
}
