//! identity-rs load generator (`scripts/bench-rs`): `GET /service/api/v1/notes` with a plain
//! bearer token, with a DPoP-bound token (a fresh proof per request, made untimed before each
//! run: the figure is the server's, not the client's signing), and at a second identity-rs
//! that validates by introspection at identity-authz; beside the trivial `GET /browser/` of
//! the same identity-rs, one client for all, rounds alternated.
//!
//! `rs_bench --authz URL --rs URL --rs-introspect URL --ca-file PEM --client-id ID
//!  --client-secret S [--count N] [--concurrency C] [--rounds R]`

use std::sync::Arc;

use cryptoutil_federation::HttpsClient;
use cryptoutil_protocols::jose::{b64, jws, Jwk, JwsAlg};
use cryptoutil_protocols::oauth::token_digest;
use cryptoutil_tests::bench::{fail, timed, Fallible, Load};
use hyper::Method;
use serde_json::{json, Map, Value};

/// A DPoP proof by `key` for `htm` `htu` (and the token's hash, at a resource server).
fn proof(key: &Jwk, htm: &str, htu: &str, token: Option<&str>) -> Fallible<String> {
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), key.public()?.to_public_value()?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let jti = cryptoutil_protocols::oauth::random_token(12)?;
    let mut claims = Map::new();
    claims.insert("jti".into(), json!(jti.as_str()));
    claims.insert("htm".into(), json!(htm));
    claims.insert("htu".into(), json!(htu));
    claims.insert("iat".into(), json!(now));
    if let Some(t) = token {
        claims.insert(
            "ath".into(),
            json!(b64::encode(&token_digest(t.as_bytes()))),
        );
    }
    let claims = Value::Object(claims);
    Ok(jws::sign_compact(
        key,
        claims.to_string().as_bytes(),
        &header,
    )?)
}

/// A client-credentials token for `resource` (bound to `dpop`'s key when given).
async fn token(
    client: &HttpsClient,
    authz: &str,
    basic: &str,
    resource: &str,
    dpop: Option<&Jwk>,
) -> Fallible<String> {
    let url = format!("{authz}/service/oauth2/v1/token");
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("scope", "notes:read"),
            ("resource", resource),
        ])
        .finish();
    let mut headers = vec![
        ("authorization".to_owned(), basic.to_owned()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    if let Some(key) = dpop {
        headers.push(("dpop".to_owned(), proof(key, "POST", &url, None)?));
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = client
        .send(Method::POST, &url, &headers, body.into_bytes().into())
        .await?;
    let v: Value = serde_json::from_slice(&r.body)?;
    v.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| fail(format!("token: {} {v}", r.status)))
}

/// One GET of `url` with `headers`, 200 expected.
async fn get(client: HttpsClient, url: Arc<str>, headers: Vec<(String, String)>) -> Fallible<()> {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = client
        .send(Method::GET, &url, &h, Vec::new().into())
        .await?;
    if r.status.as_u16() != 200 {
        return Err(fail(format!("GET {url}: {}", r.status)));
    }
    Ok(())
}

/// `count` GETs of `url`, each with the headers `headers(i)` gives.
async fn run(
    load: &Load,
    url: &str,
    headers: impl Fn(usize) -> Vec<(String, String)> + Send + Sync + 'static,
) -> Fallible<(f64, f64)> {
    let (client, url) = (load.client.clone(), Arc::<str>::from(url));
    timed(load.count, load.concurrency, move |i| {
        get(client.clone(), Arc::clone(&url), headers(i))
    })
    .await
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let load = Load::parse()?;
    let args = &load.args;
    let authz = args.get("authz")?.to_owned();
    let rs = args.get("rs")?.to_owned();
    let rs_introspect = args.get("rs-introspect")?.to_owned();
    let basic = {
        use base64::Engine as _;
        let pair = format!("{}:{}", args.get("client-id")?, args.get("client-secret")?);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let plain = token(&load.client, &authz, &basic, &rs, None).await?;
    let key = Jwk::generate(JwsAlg::ES256)?;
    let bound = token(&load.client, &authz, &basic, &rs, Some(&key)).await?;
    let notes = format!("{rs}/service/api/v1/notes");
    let notes_introspect = format!("{rs_introspect}/service/api/v1/notes");
    let bearer = vec![("authorization".to_owned(), format!("Bearer {plain}"))];

    println!("round  run                                     req/s    p99_ms");
    let mut sums = [[0.0f64; 2]; 4];
    let names = [
        "GET /browser/ (trivial, same process)",
        "GET notes, bearer token (local JWKS)",
        "GET notes, DPoP-bound token + proof",
        "GET notes, bearer token (introspected)",
    ];
    for round in 1..=load.rounds {
        // The proofs of this run, made before it (each is accepted once).
        let proofs: Vec<String> = (0..load.count)
            .map(|_| proof(&key, "GET", &notes, Some(&bound)))
            .collect::<Fallible<_>>()?;
        let proofs = Arc::new(proofs);
        let dpop_auth = format!("DPoP {bound}");
        let figures = [
            run(&load, &format!("{rs}/browser/"), |_| Vec::new()).await?,
            {
                let h = bearer.clone();
                run(&load, &notes, move |_| h.clone()).await?
            },
            run(&load, &notes, move |i| {
                vec![
                    ("authorization".to_owned(), dpop_auth.clone()),
                    (
                        "dpop".to_owned(),
                        proofs.get(i).cloned().unwrap_or_default(),
                    ),
                ]
            })
            .await?,
            {
                let h = bearer.clone();
                run(&load, &notes_introspect, move |_| h.clone()).await?
            },
        ];
        for ((name, (rate, p99)), sum) in names.iter().zip(figures).zip(sums.iter_mut()) {
            println!("{round:<6} {name:<38} {rate:>8.0} {p99:>9.2}");
            sum[0] += rate;
            sum[1] += p99;
        }
    }
    let n = load.rounds.max(1) as f64;
    let trivial = sums[0][0] / n;
    for (name, [rate, p99]) in names.iter().zip(sums) {
        println!(
            "mean {name:<38} {:>8.0}/s p99 {:>6.2} ms (x{:.2} of the trivial endpoint)",
            rate / n,
            p99 / n,
            rate / n / trivial
        );
    }
    Ok(())
}
